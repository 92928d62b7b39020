/*
 * seal.c — sealed periods (see seal.h): the per-backend cache of each scope's seal, and
 * meter.seal() itself.
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "buckets.h"
#include "compaction.h"
#include "forward.h"
#include "locks.h"
#include "scope.h"
#include "seal.h"
#include "store.h"

typedef struct SealEntry
{
	char		key[NAMEDATALEN * 4];	/* tenant \x1f environment (hashed as a string) */
	TimestampTz before;
} SealEntry;

static HTAB *seals = NULL;
static Oid	seals_relid = InvalidOid;

static void
seals_changed(Datum arg, Oid relid)
{
	if (seals != NULL && (relid == InvalidOid || relid == seals_relid))
	{
		hash_destroy(seals);
		seals = NULL;
	}
}

void
seal_register(void)
{
	CacheRegisterRelcacheCallback(seals_changed, (Datum) 0);
}

static TimestampTz
load_seal(const char *tenant, const char *environment)
{
	Datum		args[2];
	TimestampTz before = DT_NOBEGIN;
	bool		isnull;

	args[0] = CStringGetTextDatum(tenant);
	args[1] = CStringGetTextDatum(environment);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (store_exec(STORE_SEAL_OF, args, NULL, GetLatestSnapshot(), true, 1) != SPI_OK_SELECT)
		elog(ERROR, "meter: reading the seals failed");
	if (SPI_processed == 1)
	{
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		if (!isnull)
			before = DatumGetTimestampTz(d);
	}
	SPI_finish();
	return before;
}

TimestampTz
seal_of(const char *tenant, const char *environment)
{
	char		key[NAMEDATALEN * 4];
	SealEntry  *e;
	bool		found;

	/* Long scope ids (rare) are not cached. */
	if (strlen(tenant) + strlen(environment) + 2 > sizeof(key))
		return load_seal(tenant, environment);
	if (seals == NULL)
	{
		HASHCTL		ctl;
		Oid			nsp = get_namespace_oid("meter", true);

		seals_relid = OidIsValid(nsp) ? get_relname_relid("seals", nsp) : InvalidOid;
		ctl.keysize = sizeof(key);
		ctl.entrysize = sizeof(SealEntry);
		ctl.hcxt = CacheMemoryContext;
		seals = hash_create("meter seals", 16, &ctl, HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	}
	memset(key, 0, sizeof(key));
	snprintf(key, sizeof(key), "%s\x1f%s", tenant, environment);
	e = hash_search(seals, key, HASH_FIND, &found);
	if (!found)
	{
		TimestampTz before = load_seal(tenant, environment);

		/* Loading may have processed an invalidation that dropped the table. */
		if (seals == NULL)
			return before;
		e = hash_search(seals, key, HASH_ENTER, &found);
		e->before = before;
	}
	return e->before;
}

/*
 * The scope made ready for a seal at `before`: the tenant's in-flight ingestion finishes
 * first (the tenant's exclusive lock, held until commit), the seal may not move back, and
 * everything pending is folded (marked slots are recomputed from the raw events while
 * they are still there).
 */
static Datum
seal_fold_here(FunctionCallInfo fcinfo)
{
	const char *tenant = scope_tenant();
	const char *environment = scope_environment();
	TimestampTz before = PG_GETARG_TIMESTAMPTZ(0);
	TimestampTz current;

	tenant_lock_exclusive(tenant);
	current = seal_of(tenant, environment);
	if (before < current)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("seal cannot move back"),
				 errdetail("The scope is sealed before %s already.", timestamptz_to_str(current)),
				 errhint("Sealed usage is billed usage: it stays frozen.")));
	(void) compaction_run_scope(tenant, environment);
	PG_RETURN_VOID();
}

/*
 * meter.seal_fold(before timestamptz): internal, the first half of meter.seal(), run
 * where the tenant's rows are (forward.h).
 */
PG_FUNCTION_INFO_V1(meter_seal_fold);
Datum
meter_seal_fold(PG_FUNCTION_ARGS)
{
	return forward_run(fcinfo, seal_fold_here);
}

/*
 * meter.seal(before timestamptz) → timestamptz: seal the current scope's usage before
 * `before` (a 15-minute boundary, not earlier than the current seal). Waits for the
 * scope's in-flight ingestion, folds everything pending (meter.seal_fold: marked slots are
 * recomputed from the raw events while they are still there), then records the seal
 * (sealing at the current seal again records nothing: a retried billing job succeeds);
 * returns it. The trigger on meter.seals tells every backend's seal cache.
 */
PG_FUNCTION_INFO_V1(meter_seal);
Datum
meter_seal(PG_FUNCTION_ARGS)
{
	const char *tenant = scope_tenant();
	const char *environment = scope_environment();
	TimestampTz before;
	Oid			types[1] = {TIMESTAMPTZOID};
	Datum		args[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};

	if (PG_ARGISNULL(0) || TIMESTAMP_NOT_FINITE(PG_GETARG_TIMESTAMPTZ(0)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("seal time must be a finite time"),
				 errhint("Pass the end of the last billed period, e.g. '2024-02-01 00:00+00'.")));
	before = PG_GETARG_TIMESTAMPTZ(0);
	if (!slot_aligned(before))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("seal time must fall on a 15-minute boundary"),
				 errdetail("Usage is kept per 15-minute slot; a slot cannot be half sealed."),
				 errhint("Seal at a period boundary such as midnight, e.g. date_trunc('hour', …).")));
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	args[0] = TimestampTzGetDatum(before);
	if (SPI_execute_with_args("SELECT meter.seal_fold($1)", 1, types, args, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "meter: folding before sealing failed");
	args[0] = CStringGetTextDatum(tenant);
	args[1] = CStringGetTextDatum(environment);
	args[2] = TimestampTzGetDatum(before);
	args[3] = scope_user() ? CStringGetTextDatum(scope_user()) : (Datum) 0;
	nulls[3] = scope_user() ? ' ' : 'n';
	if (store_exec(STORE_INSERT_SEAL, args, nulls, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "meter: recording the seal failed");
	SPI_finish();
	PG_RETURN_TIMESTAMPTZ(before);
}

/*
 * meter.seals_changed() — AFTER statement trigger of meter.seals (and, on a Citus
 * cluster, of its placement on every node): every backend of this node drops its cached
 * seals once the change commits.
 */
PG_FUNCTION_INFO_V1(meter_seals_changed);
Datum
meter_seals_changed(PG_FUNCTION_ARGS)
{
	Oid			nsp = get_namespace_oid("meter", true);
	Oid			seals = OidIsValid(nsp) ? get_relname_relid("seals", nsp) : InvalidOid;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("meter.seals_changed() must be called as a trigger")));
	if (OidIsValid(seals))
		CacheInvalidateRelcacheByRelid(seals);
	return PointerGetDatum(NULL);
}
