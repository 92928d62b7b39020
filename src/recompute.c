/*
 * recompute.c — a meter's stored usage recomputed from the raw events (see recompute.h),
 * and the SQL entry points that do it: the meter-change trigger, meter.rebuild(),
 * meter.rebuild_all() and meter.lock_tenant().
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "accumulate.h"
#include "compaction.h"
#include "forward.h"
#include "legacy.h"
#include "locks.h"
#include "placement.h"
#include "raw.h"
#include "recompute.h"
#include "scope.h"
#include "seal.h"
#include "slotset.h"
#include "buckets.h"
#include "settings.h"
#include "store.h"

typedef struct MeterScan
{
	const MeterDef *meter;
	Accumulator *acc;
	int64		events;
} MeterScan;

static void
recompute_event(const EventRow *row, void *arg)
{
	MeterScan  *s = arg;
	const MeterDef *m = s->meter;

	if (m->filters->nkeys > 0 &&
		(row->properties == NULL || !filters_match(m->filters, row->properties)))
		return;
	accumulator_add_def(s->acc, m, row, 1);
	s->events++;
	if (accumulator_full(s->acc))
		accumulator_flush(s->acc);
}

/* ── Sealed time stays as it is ──────────────────────────────────────────────────── */

typedef struct Kept
{
	TimestampTz before;
	SlotSet    *set;
	const Aggregation *agg;
} Kept;

static void
kept_target(const SlotKey *key, bool mark, void *arg, Partial **into)
{
	Kept	   *k = arg;

	if (key->slot < k->before)
		into[0] = &slotset_entry(k->set, key)->partial;
}

static void
kept_row(const StoredRow *row, void *arg)
{
	Kept	   *k = arg;

	if (row->shard != STORE_ALL_CUSTOMERS)
		slotset_decode(row->data, k->agg, NULL, NULL, kept_target, NULL, k);
}

/*
 * Recomputing from a seal on: the sealed slots of the day the seal falls in go back as
 * pending entries, folded again with the recomputed ones once the day's rows are
 * forgotten (the all-customers row is rebuilt from them).
 */
static void
keep_sealed_part_of_day(const MeterDef *m, TimestampTz before, Accumulator *acc)
{
	MeterScope	scope = {m->tenant, m->environment, m->id};
	Kept		k = {before, slotset_create(CurrentMemoryContext), m->agg};
	int16		shards[STORE_SHARDS];
	int			nshards = store_shards_for(NULL, NULL, shards);

	if ((TimestampTz) slot_day(before) * USECS_PER_DAY == before)
		return;					/* midnight: no sealed slot on the seal's day */
	store_read(&scope, shards, nshards, slot_day(before), slot_day(before), false, kept_row, &k);
	accumulator_put(acc, m, k.set);
}

int64
recompute_meter(const MeterDef *m)
{
	MeterScope	scope = {m->tenant, m->environment, m->id};
	RawScan		raw = {0};
	TimestampTz lo,
				hi = DT_NOEND;
	MeterScan	s = {m, NULL, 0};
	Snapshot	snap;

	/*
	 * The lock waits for the tenant's writers; what they committed meanwhile is after the
	 * statement's snapshot: forget and read in one taken now.
	 */
	tenant_lock_exclusive(m->tenant);
	snap = RegisterSnapshot(GetLatestSnapshot());
	lo = seal_of(m->tenant, m->environment);
	s.acc = accumulator_create();
	if (lo != DT_NOBEGIN)
		keep_sealed_part_of_day(m, lo, s.acc);
	store_forget(&scope, lo == DT_NOBEGIN ? DATEVAL_NOBEGIN : slot_day(lo), snap);
	raw.tenant = m->tenant;
	raw.environment = m->environment;
	raw.event_name = m->event_name;
	raw.source = InvalidOid;
	raw.ordered = true;
	raw_scan(&raw, &lo, &hi, 1, snap, recompute_event, &s);
	UnregisterSnapshot(snap);
	accumulator_flush(s.acc);
	accumulator_destroy(s.acc);
	(void) compaction_run(m->tenant, m->environment, m->id, true);
	return s.events;
}

void
recompute_forget(const char *tenant, const char *environment, const char *meter_id)
{
	MeterScope	scope = {tenant, environment, meter_id};
	Snapshot	snap;

	tenant_lock_exclusive(tenant);
	snap = RegisterSnapshot(GetLatestSnapshot());
	store_forget(&scope, DATEVAL_NOBEGIN, snap);
	UnregisterSnapshot(snap);
}

/* ── The meter-change trigger ────────────────────────────────────────────────────── */

static char *
column_text(HeapTuple row, TupleDesc desc, const char *name)
{
	return SPI_getvalue(row, desc, SPI_fnumber(desc, name));
}

static bool
column_changed(HeapTuple a, HeapTuple b, TupleDesc desc, const char *name)
{
	int			attnum = SPI_fnumber(desc, name);
	Form_pg_attribute att = TupleDescAttr(desc, attnum - 1);
	bool		na,
				nb;
	Datum		da = SPI_getbinval(a, desc, attnum, &na);
	Datum		db = SPI_getbinval(b, desc, attnum, &nb);

	if (na || nb)
		return na != nb;
	/* Both types store a canonical form, so equal values have equal bytes. */
	return !datumIsEqual(da, db, att->attbyval, att->attlen);
}

static bool
is_published(HeapTuple row, TupleDesc desc)
{
	return strcmp(column_text(row, desc, "status"), "published") == 0;
}

/* A meter row changed from old_row to new_row (either NULL): what its usage needs. */
static void
meter_changed(HeapTuple old_row, HeapTuple new_row, TupleDesc desc)
{
	if (new_row == NULL)
		recompute_forget(column_text(old_row, desc, "tenant_id"),
						 column_text(old_row, desc, "environment_id"),
						 column_text(old_row, desc, "id"));
	else if (is_published(new_row, desc) &&
			 (old_row == NULL || !is_published(old_row, desc) ||
			  column_changed(old_row, new_row, desc, "event_name") ||
			  column_changed(old_row, new_row, desc, "aggregation") ||
			  column_changed(old_row, new_row, desc, "filters")))
		(void) recompute_meter(meter_def_from_row(new_row, desc));
}

/*
 * meter.on_meter_change() — AFTER INSERT OR UPDATE OR DELETE row trigger on
 * meter.meters: a created, redefined (event name, aggregation, filters) or re-published
 * meter is recomputed from the raw events in the same transaction; an archived one keeps
 * its usage frozen; a deleted row takes its stored usage with it. Inert while
 * meter.restoring is on (a restore brings the usage along).
 *
 * On a Citus cluster meter.meters is a reference table: a change made once, on the
 * coordinator, is written to its placement on every node in one distributed
 * transaction, and the trigger fires on each. The node that holds the tenant's shards
 * recomputes there, against those shards (placement.h), in the same local transaction
 * as its copy of the row — under its tenant lock, which the tracking trigger of every
 * write of the tenant's events takes on that same node (locks.h); the other nodes do
 * nothing.
 */
PG_FUNCTION_INFO_V1(meter_on_meter_change);
Datum
meter_on_meter_change(PG_FUNCTION_ARGS)
{
	TriggerData *trig = (TriggerData *) fcinfo->context;
	TupleDesc	desc;
	HeapTuple	old_row = NULL,
				new_row = NULL;
	Placement  *placement;
	Placement  *previous;

	if (legacy_schema())
		return legacy_on_meter_change(fcinfo);	/* a 0.1.0 schema: legacy.c */
	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_AFTER(trig->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(trig->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("meter.on_meter_change() must be an AFTER … FOR EACH ROW trigger")));
	if (meter_restoring)
		return PointerGetDatum(NULL);
	desc = RelationGetDescr(trig->tg_relation);
	if (TRIGGER_FIRED_BY_INSERT(trig->tg_event))
		new_row = trig->tg_trigtuple;
	else if (TRIGGER_FIRED_BY_UPDATE(trig->tg_event))
	{
		old_row = trig->tg_trigtuple;
		new_row = trig->tg_newtuple;
	}
	else
		old_row = trig->tg_trigtuple;

	placement = placement_of_tenant(column_text(new_row ? new_row : old_row, desc, "tenant_id"));
	if (placement == NULL)
		return PointerGetDatum(NULL);
	previous = placement_enter(placement);
	PG_TRY();
	{
		meter_changed(old_row, new_row, desc);
	}
	PG_FINALLY();
	{
		placement_leave(previous);
	}
	PG_END_TRY();
	return PointerGetDatum(NULL);
}

/* ── meter.rebuild, meter.rebuild_all, meter.lock_tenant ─────────────────────────── */

/* The published meters of a scope (or the one given), ordered by id. */
static char **
published_meters(const char *tenant, const char *environment, const char *only, int *n)
{
	MemoryContext caller = CurrentMemoryContext;
	Datum		args[3];
	char		nulls[3] = {' ', ' ', only ? ' ' : 'n'};
	char	  **ids;

	args[0] = CStringGetTextDatum(tenant);
	args[1] = CStringGetTextDatum(environment);
	args[2] = only ? CStringGetTextDatum(only) : (Datum) 0;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (store_exec(STORE_PUBLISHED_METERS, args, nulls, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "meter: listing meters failed");
	ids = MemoryContextAlloc(caller, sizeof(char *) * (SPI_processed + 1));
	for (uint64 i = 0; i < SPI_processed; i++)
		ids[i] = MemoryContextStrdup(caller, SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1));
	*n = (int) SPI_processed;
	SPI_finish();
	return ids;
}

static int64
count_rollups(const MeterDef *m)
{
	Datum		args[3];
	bool		isnull;
	int64		n;

	args[0] = CStringGetTextDatum(m->tenant);
	args[1] = CStringGetTextDatum(m->environment);
	args[2] = CStringGetTextDatum(m->id);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (store_exec(STORE_COUNT_ROLLUPS, args, NULL, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "meter: counting rollups failed");
	n = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	SPI_finish();
	return n;
}

/* meter.rebuild, run where the tenant's rows are (forward.h). */
static Datum
rebuild_here(FunctionCallInfo fcinfo)
{
	const char *tenant = scope_tenant();
	const char *environment = scope_environment();
	char	   *only = PG_ARGISNULL(0) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(0));
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	  **ids;
	int			n;

	if (only != NULL)
		(void) meter_def_get(only); /* P0002 when unknown or deleted */
	InitMaterializedSRF(fcinfo, 0);
	tenant_lock_exclusive(tenant);
	ids = published_meters(tenant, environment, only, &n);
	for (int i = 0; i < n; i++)
	{
		MeterDef   *m = meter_def_find(ids[i], tenant, environment, NULL);
		Datum		values[3];
		bool		nulls[3] = {false, false, false};

		values[1] = Int64GetDatum(recompute_meter(m));
		values[0] = CStringGetTextDatum(m->id);
		values[2] = Int64GetDatum(count_rollups(m));
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/*
 * meter.rebuild(meter_id text DEFAULT NULL) → SETOF meter.rebuilt(meter_id, events,
 * rollups): recompute one published meter of the current scope, or all of them, from the
 * raw events of every tracked table; one row per meter recomputed.
 */
PG_FUNCTION_INFO_V1(meter_rebuild);
Datum
meter_rebuild(PG_FUNCTION_ARGS)
{
	return forward_run(fcinfo, rebuild_here);
}

/*
 * meter.rebuild_all() → bigint: every published meter of every tenant and environment
 * recomputed (the tracked tables changed); returns how many. Each scope is rebuilt by
 * meter.rebuild() inside that scope: where its rows are (forward.h).
 */
PG_FUNCTION_INFO_V1(meter_rebuild_all);
Datum
meter_rebuild_all(PG_FUNCTION_ARGS)
{
	int64		rebuilt = 0;
	char	  **tenants;
	char	  **environments;
	int			nscopes;

	if (legacy_schema())
		return legacy_rebuild_all(fcinfo);	/* a 0.1.0 schema: legacy.c */
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (store_exec(STORE_PUBLISHED_SCOPES, NULL, NULL, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "meter: listing scopes failed");
	nscopes = (int) SPI_processed;
	tenants = SPI_palloc(sizeof(char *) * (nscopes + 1));
	environments = SPI_palloc(sizeof(char *) * (nscopes + 1));
	for (int i = 0; i < nscopes; i++)
	{
		tenants[i] = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
		environments[i] = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2);
	}
	for (int i = 0; i < nscopes; i++)
	{
		int			level = scope_enter(tenants[i], environments[i]);
		bool		isnull;

		if (SPI_execute("SELECT pg_catalog.count(*) FROM meter.rebuild(NULL)", false, 0) != SPI_OK_SELECT)
			elog(ERROR, "meter: rebuilding a scope failed");
		rebuilt += DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		scope_leave(level);
	}
	SPI_finish();
	PG_RETURN_INT64(rebuilt);
}

/*
 * meter.lock_tenant(tenant text) — take the tenant's exclusive lock for the rest of the
 * transaction: in-flight tracking of the tenant's events finishes first, new tracking
 * waits.
 */
PG_FUNCTION_INFO_V1(meter_lock_tenant);
Datum
meter_lock_tenant(PG_FUNCTION_ARGS)
{
	tenant_lock_exclusive(text_to_cstring(PG_GETARG_TEXT_PP(0)));
	PG_RETURN_VOID();
}
