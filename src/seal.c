/*
 * seal.c — sealed periods (see seal.h): the per-backend cache of each scope's seal, and
 * meter.seal() itself.
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
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
#include "locks.h"
#include "scope.h"
#include "seal.h"

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
	Oid			types[2] = {TEXTOID, TEXTOID};
	Datum		args[2];
	TimestampTz before = DT_NOBEGIN;
	bool		isnull;
	SPIPlanPtr	plan;

	args[0] = CStringGetTextDatum(tenant);
	args[1] = CStringGetTextDatum(environment);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	plan = SPI_prepare("SELECT pg_catalog.max(sealed_before) FROM meter.seals"
					   " WHERE tenant_id OPERATOR(pg_catalog.=) $1 AND environment_id OPERATOR(pg_catalog.=) $2",
					   2, types);
	if (plan == NULL ||
		SPI_execute_snapshot(plan, args, NULL, GetLatestSnapshot(), InvalidSnapshot, true, false, 1) != SPI_OK_SELECT)
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
 * meter.seal(before timestamptz) → timestamptz: seal the current scope's usage before
 * `before` (a 15-minute boundary, not earlier than the current seal). Waits for the
 * scope's in-flight ingestion, folds everything pending (marked slots are recomputed from
 * the raw events while they are still there), then records the seal (sealing at the
 * current seal again records nothing: a retried billing job succeeds); returns it.
 */
PG_FUNCTION_INFO_V1(meter_seal);
Datum
meter_seal(PG_FUNCTION_ARGS)
{
	const char *tenant = scope_tenant();
	const char *environment = scope_environment();
	TimestampTz before;
	TimestampTz current;
	Oid			types[4] = {TEXTOID, TEXTOID, TIMESTAMPTZOID, TEXTOID};
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
	tenant_lock_exclusive(tenant);
	current = seal_of(tenant, environment);
	if (before < current)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("seal cannot move back"),
				 errdetail("The scope is sealed before %s already.", timestamptz_to_str(current)),
				 errhint("Sealed usage is billed usage: it stays frozen.")));
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute("SELECT meter.compact()", false, 0) != SPI_OK_SELECT)
		elog(ERROR, "meter: compacting before sealing failed");
	args[0] = CStringGetTextDatum(tenant);
	args[1] = CStringGetTextDatum(environment);
	args[2] = TimestampTzGetDatum(before);
	args[3] = scope_user() ? CStringGetTextDatum(scope_user()) : (Datum) 0;
	nulls[3] = scope_user() ? ' ' : 'n';
	if (SPI_execute_with_args("INSERT INTO meter.seals (tenant_id, environment_id, sealed_before, sealed_by)"
							  " VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING", 4, types, args, nulls, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "meter: recording the seal failed");
	SPI_finish();
	CacheInvalidateRelcacheByRelid(get_relname_relid("seals", get_namespace_oid("meter", false)));
	PG_RETURN_TIMESTAMPTZ(before);
}
