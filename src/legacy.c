/*
 * legacy.c — the 0.1.0 engine's write path, so that a database still at 0.1.0 keeps
 * working on this library, and the conversion of 0.1.0's stored usage for the upgrade.
 *
 * Why it exists. A server has one meter.so, the newest installed. From `make install` of
 * 0.2.0 until `ALTER EXTENSION meter UPDATE` (and while the upgrade script itself runs),
 * PostgreSQL runs a 0.1.0 database's declarations against it. Every C symbol 0.1.0's
 * script declares is still exported, but three of them now serve 0.2.0's storage only:
 * meter_track_usage (appends to meter.pending), meter_on_meter_change and
 * meter_rebuild_all (recompute through the 0.2.0 engine). Each asks legacy_schema()
 * first and, on a 0.1.0 schema, comes here instead: events keep being counted into
 * 0.1.0's meter.rollups / meter.rollup_values, and meters are rebuilt by 0.1.0's own
 * SQL (meter.rebuild, meter.refresh_rollups), as 0.1.0 did.
 *
 * How: as 0.1.0 did, in fewer lines. The trigger matches each row against the compiled
 * meters (meter_cache.h, as 0.2.0's trigger does) and hands SQL one row per (event,
 * meter): inserted rows are added to their rollups by 0.1.0's upserts (grouped in SQL
 * instead of in C), updated and deleted rows have their rollups recomputed from the raw
 * events by 0.1.0's meter.refresh_rollups(). meter.verify() checks the result.
 *
 * meter.legacy_import() is the upgrade's conversion: the frozen usage of an archived or
 * deleted meter, read from 0.1.0's rollups, becomes 0.2.0 partial states.
 *
 * When it can go: when 0.1.0 stops being an upgrade source, i.e. in the release that
 * removes sql/meter--0.1.0.sql and sql/meter--0.1.0--0.2.0.sql. Then delete this file,
 * legacy.h and the dispatch lines at the top of meter_track_usage (track.c),
 * meter_on_meter_change and meter_rebuild_all (recompute.c).
 */
#include "postgres.h"

#include <ctype.h>

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "tcop/tcopprot.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "accumulate.h"
#include "buckets.h"
#include "compaction.h"
#include "event_table.h"
#include "event_value.h"
#include "legacy.h"
#include "locks.h"
#include "meter_cache.h"
#include "meter_def.h"
#include "scope.h"
#include "settings.h"
#include "slotset.h"

bool
legacy_schema(void)
{
	Oid			nsp = get_namespace_oid("meter", true);

	return OidIsValid(nsp) && !OidIsValid(get_relname_relid("pending", nsp));
}

/* ── Rebuilding (0.1.0: rebuild.c) ───────────────────────────────────────────────── */

/* 0.1.0's meter.rebuild() in every scope with published meters; returns the meters. */
static int64
rebuild_every_scope(void)
{
	SPITupleTable *scopes;
	uint64		nscopes;
	int64		rebuilt = 0;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute("SELECT DISTINCT tenant_id, environment_id FROM meter.meters"
					" WHERE status OPERATOR(pg_catalog.=) 'published'::meter.status"
					" ORDER BY 1, 2", false, 0) != SPI_OK_SELECT)
		elog(ERROR, "meter: listing scopes failed");
	scopes = SPI_tuptable;
	nscopes = SPI_processed;
	for (uint64 i = 0; i < nscopes; i++)
	{
		int			level = scope_enter(SPI_getvalue(scopes->vals[i], scopes->tupdesc, 1),
										SPI_getvalue(scopes->vals[i], scopes->tupdesc, 2));
		bool		isnull;

		if (SPI_execute("SELECT pg_catalog.count(*) FROM meter.rebuild()", false, 0) != SPI_OK_SELECT)
			elog(ERROR, "meter: rebuilding failed");
		rebuilt += DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		scope_leave(level);
	}
	SPI_finish();
	return rebuilt;
}

Datum
legacy_rebuild_all(FunctionCallInfo fcinfo)
{
	PG_RETURN_INT64(rebuild_every_scope());
}

/*
 * Is the current command a COPY? pg_dump's restores load meter.meters by COPY before the
 * rollups the dump holds for those meters: 0.1.0 rebuilt no meter that arrived by COPY.
 */
static bool
command_is_copy(void)
{
	const char *q = debug_query_string;

	if (q == NULL)
		return false;
	while (isspace((unsigned char) *q))
		q++;
	return pg_strncasecmp(q, "copy", 4) == 0 && !isalnum((unsigned char) q[4]) && q[4] != '_';
}

static bool
is_published(HeapTuple row, TupleDesc desc)
{
	return strcmp(SPI_getvalue(row, desc, SPI_fnumber(desc, "status")), "published") == 0;
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
	return !datumIsEqual(da, db, att->attbyval, att->attlen);
}

/* Run one statement about a meter (its id as $1) inside the meter's own scope. */
static void
run_for_meter(HeapTuple row, TupleDesc desc, const char *sql)
{
	int			level = scope_enter(SPI_getvalue(row, desc, SPI_fnumber(desc, "tenant_id")),
									SPI_getvalue(row, desc, SPI_fnumber(desc, "environment_id")));
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1];
	bool		isnull;

	args[0] = SPI_getbinval(row, desc, SPI_fnumber(desc, "id"), &isnull);
	if (SPI_execute_with_args(sql, 1, argtypes, args, NULL, false, 0) < 0)
		elog(ERROR, "meter: maintaining the rollups of a meter failed");
	scope_leave(level);
}

/* 0.1.0's meter.on_meter_change(): rebuild a (re)defined published meter, forget a
 * deleted row's rollups; an archived meter keeps its rollups frozen. */
Datum
legacy_on_meter_change(FunctionCallInfo fcinfo)
{
	TriggerData *trig = (TriggerData *) fcinfo->context;
	TupleDesc	desc;
	HeapTuple	old_row = NULL,
				new_row = NULL;
	const char *sql = NULL;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_AFTER(trig->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(trig->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("meter.on_meter_change() must be an AFTER … FOR EACH ROW trigger")));
	if (meter_restoring)
		return PointerGetDatum(NULL);
	desc = RelationGetDescr(trig->tg_relation);
	if (!TRIGGER_FIRED_BY_DELETE(trig->tg_event))
		new_row = TRIGGER_FIRED_BY_UPDATE(trig->tg_event) ? trig->tg_newtuple : trig->tg_trigtuple;
	if (!TRIGGER_FIRED_BY_INSERT(trig->tg_event))
		old_row = trig->tg_trigtuple;

	if (old_row == NULL && command_is_copy())
		sql = NULL;				/* a restore: the dump's rollups follow */
	else if (new_row != NULL && is_published(new_row, desc) &&
			 (old_row == NULL || !is_published(old_row, desc) ||
			  column_changed(old_row, new_row, desc, "event_name") ||
			  column_changed(old_row, new_row, desc, "aggregation") ||
			  column_changed(old_row, new_row, desc, "filters")))
		sql = "SELECT pg_catalog.count(*) FROM meter.rebuild($1)";
	else if (new_row == NULL)
		sql = "WITH r AS (DELETE FROM meter.rollups WHERE tenant_id OPERATOR(pg_catalog.=) meter.current_tenant()"
			"  AND environment_id OPERATOR(pg_catalog.=) meter.current_environment()"
			"  AND meter_id OPERATOR(pg_catalog.=) $1)"
			" DELETE FROM meter.rollup_values WHERE tenant_id OPERATOR(pg_catalog.=) meter.current_tenant()"
			"  AND environment_id OPERATOR(pg_catalog.=) meter.current_environment()"
			"  AND meter_id OPERATOR(pg_catalog.=) $1";
	if (sql != NULL)
	{
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		run_for_meter(new_row ? new_row : old_row, desc, sql);
		SPI_finish();
	}
	return PointerGetDatum(NULL);
}

/* ── Tracking (0.1.0: track.c, rollup_batch.c, rollup_write.c) ───────────────────── */

/*
 * What a statement did, as columns: inserted rows are added to their rollups as
 * increments, one row per (event, meter it matched); updated and deleted rows mark their
 * rollups (the first six columns) for recomputation from the raw events. Written out
 * whenever this many are held, and at the end of the statement.
 */
#define LEGACY_ROWS_MAX 65536
enum
{
	K_TENANT, K_ENVIRONMENT, K_METER, K_CUSTOMER, K_EXTERNAL, K_BUCKET,
	K_VALUE, K_UNIQUE, K_TIME, K_USABLE, NUM_K
};
static const Oid legacy_types[NUM_K] = {
	TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TIMESTAMPTZOID,
	NUMERICOID, TEXTOID, TIMESTAMPTZOID, BOOLOID
};

typedef struct LegacyTrack
{
	EventColumns cols;
	bool		add;			/* an INSERT: increments; else marks */
	MemoryContext call_cxt;
	MemoryContext rows_cxt;
	MemoryContext row_cxt;
	int			nrows;
	Datum	   *values[NUM_K];
	bool	   *nulls[NUM_K];
	char	   *locked_tenant;
} LegacyTrack;

/* The upserts of 0.1.0 (rollup_write.c), over the increments grouped by rollup and
 * sorted by its primary key (concurrent statements lock rows in the same order). */
#define LEGACY_ROWS_FROM \
	" FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2), pg_catalog.unnest($3)," \
	" pg_catalog.unnest($4), pg_catalog.unnest($5), pg_catalog.unnest($6), pg_catalog.unnest($7)," \
	" pg_catalog.unnest($8), pg_catalog.unnest($9), pg_catalog.unnest($10)) AS k(t, e, m, c, x, b, v, u, ts, ok)"
static const char *const upsert_rollups_sql =
"INSERT INTO meter.rollups AS r (tenant_id, environment_id, meter_id, customer_id,"
"   external_customer_id, bucket, events, n, sum, sum_vt, min, max, latest_at, latest_value)"
" SELECT k.t, k.e, k.m, k.c, k.x, k.b, pg_catalog.count(*), pg_catalog.count(*) FILTER (WHERE k.ok),"
"  pg_catalog.sum(k.v), pg_catalog.sum(k.v OPERATOR(pg_catalog.*) extract(epoch FROM k.ts)),"
"  pg_catalog.min(k.v), pg_catalog.max(k.v), pg_catalog.max(k.ts) FILTER (WHERE k.v IS NOT NULL),"
"  (pg_catalog.max(ARRAY[extract(epoch FROM k.ts), k.v]) FILTER (WHERE k.v IS NOT NULL))[2]"
LEGACY_ROWS_FROM
" GROUP BY k.t, k.e, k.m, k.x, k.c, k.b ORDER BY k.t, k.e, k.m, k.x, k.c, k.b"
" ON CONFLICT (tenant_id, environment_id, meter_id, customer_id, external_customer_id, bucket)"
" DO UPDATE SET"
"  events = r.events OPERATOR(pg_catalog.+) excluded.events,"
"  n = r.n OPERATOR(pg_catalog.+) excluded.n,"
"  sum = CASE WHEN r.sum IS NULL THEN excluded.sum WHEN excluded.sum IS NULL THEN r.sum"
"        ELSE r.sum OPERATOR(pg_catalog.+) excluded.sum END,"
"  sum_vt = CASE WHEN r.sum_vt IS NULL THEN excluded.sum_vt WHEN excluded.sum_vt IS NULL"
"        THEN r.sum_vt ELSE r.sum_vt OPERATOR(pg_catalog.+) excluded.sum_vt END,"
"  min = LEAST(r.min, excluded.min),"
"  max = GREATEST(r.max, excluded.max),"
"  latest_at = CASE WHEN excluded.latest_value IS NOT NULL AND (r.latest_value IS NULL"
"        OR excluded.latest_at OPERATOR(pg_catalog.>) r.latest_at"
"        OR (excluded.latest_at OPERATOR(pg_catalog.=) r.latest_at"
"            AND excluded.latest_value OPERATOR(pg_catalog.>) r.latest_value))"
"        THEN excluded.latest_at ELSE r.latest_at END,"
"  latest_value = CASE WHEN excluded.latest_value IS NOT NULL AND (r.latest_value IS NULL"
"        OR excluded.latest_at OPERATOR(pg_catalog.>) r.latest_at"
"        OR (excluded.latest_at OPERATOR(pg_catalog.=) r.latest_at"
"            AND excluded.latest_value OPERATOR(pg_catalog.>) r.latest_value))"
"        THEN excluded.latest_value ELSE r.latest_value END";
static const char *const upsert_values_sql =
"INSERT INTO meter.rollup_values AS r (tenant_id, environment_id, meter_id, customer_id,"
"   external_customer_id, bucket, value, refs)"
" SELECT k.t, k.e, k.m, k.c, k.x, k.b, k.u, pg_catalog.count(*)"
LEGACY_ROWS_FROM
" WHERE k.u IS NOT NULL"
" GROUP BY k.t, k.e, k.m, k.x, k.c, k.b, k.u ORDER BY k.t, k.e, k.m, k.x, k.c, k.b, k.u"
" ON CONFLICT (tenant_id, environment_id, meter_id, customer_id, external_customer_id, bucket, value)"
" DO UPDATE SET refs = r.refs OPERATOR(pg_catalog.+) excluded.refs";
/* Marked rollups, grouped by scope: each scope's go to its meter.refresh_rollups(). */
static const char *const marked_sql =
"SELECT k.t, k.e, pg_catalog.array_agg(k.m ORDER BY k.m, k.x, k.c, k.b),"
" pg_catalog.array_agg(k.c ORDER BY k.m, k.x, k.c, k.b),"
" pg_catalog.array_agg(k.x ORDER BY k.m, k.x, k.c, k.b),"
" pg_catalog.array_agg(k.b ORDER BY k.m, k.x, k.c, k.b)"
" FROM (SELECT DISTINCT k.t, k.e, k.m, k.c, k.x, k.b" LEGACY_ROWS_FROM ") AS k"
" GROUP BY k.t, k.e ORDER BY k.t, k.e";

static void
start_rows(LegacyTrack *t)
{
	MemoryContextReset(t->rows_cxt);
	t->nrows = 0;
	for (int k = 0; k < NUM_K; k++)
	{
		t->values[k] = MemoryContextAlloc(t->rows_cxt, sizeof(Datum) * LEGACY_ROWS_MAX);
		t->nulls[k] = MemoryContextAllocZero(t->rows_cxt, sizeof(bool) * LEGACY_ROWS_MAX);
	}
}

/* Write what is held: increments by upsert, or marked rollups recomputed. */
static void
write_rows(LegacyTrack *t)
{
	Oid			argtypes[NUM_K];
	Datum		args[NUM_K];

	if (t->nrows == 0)
		return;
	for (int k = 0; k < NUM_K; k++)
	{
		int16		len;
		bool		byval;
		char		align;
		int			dims[1] = {t->nrows};
		int			lbs[1] = {1};

		get_typlenbyvalalign(legacy_types[k], &len, &byval, &align);
		argtypes[k] = get_array_type(legacy_types[k]);
		args[k] = PointerGetDatum(construct_md_array(t->values[k], t->nulls[k], 1, dims, lbs,
													 legacy_types[k], len, byval, align));
	}
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (t->add)
	{
		if (SPI_execute_with_args(upsert_rollups_sql, NUM_K, argtypes, args, NULL, false, 0) != SPI_OK_INSERT ||
			SPI_execute_with_args(upsert_values_sql, NUM_K, argtypes, args, NULL, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "meter: writing rollups failed");
	}
	else
	{
		SPITupleTable *scopes;
		uint64		nscopes;

		if (SPI_execute_with_args(marked_sql, NUM_K, argtypes, args, NULL, true, 0) != SPI_OK_SELECT)
			elog(ERROR, "meter: grouping marked rollups failed");
		scopes = SPI_tuptable;
		nscopes = SPI_processed;
		for (uint64 i = 0; i < nscopes; i++)
		{
			HeapTuple	row = scopes->vals[i];
			int			level = scope_enter(SPI_getvalue(row, scopes->tupdesc, 1),
											SPI_getvalue(row, scopes->tupdesc, 2));
			Oid			keytypes[4] = {TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID,
			get_array_type(TIMESTAMPTZOID)};
			Datum		keys[4];
			bool		isnull;

			for (int c = 0; c < 4; c++)
				keys[c] = SPI_getbinval(row, scopes->tupdesc, c + 3, &isnull);
			if (SPI_execute_with_args("SELECT meter.refresh_rollups($1, $2, $3, $4)", 4, keytypes, keys,
									  NULL, false, 0) != SPI_OK_SELECT)
				elog(ERROR, "meter: recomputing rollups failed");
			scope_leave(level);
		}
	}
	SPI_finish();
	start_rows(t);
}

static void
put(LegacyTrack *t, int k, Datum value, bool isnull)
{
	t->values[k][t->nrows] = value;
	t->nulls[k][t->nrows] = isnull;
}

/* One event row: a row per published meter it matches (0.1.0: rollup_batch_add/mark). */
static void
track_slot(LegacyTrack *t, TupleTableSlot *slot)
{
	MemoryContext old = MemoryContextSwitchTo(t->row_cxt);
	EventRow	row;

	if (event_row_read(slot, &t->cols, &row))
	{
		const MeterSet *meters;
		const CompiledMeter **matched;
		int			n;

		if (t->locked_tenant == NULL || strcmp(t->locked_tenant, row.tenant) != 0)
		{
			tenant_lock_share(row.tenant);
			t->locked_tenant = MemoryContextStrdup(t->call_cxt, row.tenant);
		}
		meters = meter_cache_lookup(row.tenant, row.environment, row.event_name);
		matched = palloc(sizeof(CompiledMeter *) * (meters->nmeters + 1));
		n = meter_cache_match(meters, row.properties, matched);
		for (int i = 0; i < n; i++)
		{
			const Aggregation *agg = matched[i]->aggregation;
			Numeric		v = NULL;
			char	   *u = NULL;

			if (t->nrows == LEGACY_ROWS_MAX)
				write_rows(t);
			if (t->add && agg->type == AGG_COUNT_UNIQUE)
				u = event_value_unique(agg, row.properties);
			else if (t->add && agg->type != AGG_COUNT)
				v = event_value_numeric(agg, row.properties);
			MemoryContextSwitchTo(t->rows_cxt);
			put(t, K_TENANT, CStringGetTextDatum(row.tenant), false);
			put(t, K_ENVIRONMENT, CStringGetTextDatum(row.environment), false);
			put(t, K_METER, CStringGetTextDatum(matched[i]->id), false);
			put(t, K_CUSTOMER, CStringGetTextDatum(row.customer), false);
			put(t, K_EXTERNAL, CStringGetTextDatum(row.external_customer), false);
			put(t, K_BUCKET, TimestampTzGetDatum(slot_start(row.timestamp)), false);
			put(t, K_VALUE, v ? datumCopy(NumericGetDatum(v), false, -1) : (Datum) 0, v == NULL);
			put(t, K_UNIQUE, u ? CStringGetTextDatum(u) : (Datum) 0, u == NULL);
			put(t, K_TIME, TimestampTzGetDatum(row.timestamp), false);
			put(t, K_USABLE, BoolGetDatum(agg->type == AGG_COUNT || v != NULL || u != NULL), false);
			t->nrows++;
			MemoryContextSwitchTo(t->row_cxt);
		}
	}
	MemoryContextSwitchTo(old);
	MemoryContextReset(t->row_cxt);
}

static void
track_tuplestore(LegacyTrack *t, Tuplestorestate *store, TupleDesc desc)
{
	TupleTableSlot *slot = MakeSingleTupleTableSlot(desc, &TTSOpsMinimalTuple);

	tuplestore_rescan(store);
	while (tuplestore_gettupleslot(store, true, false, slot))
		track_slot(t, slot);
	ExecDropSingleTupleTableSlot(slot);
}

static void
track_tuple(LegacyTrack *t, HeapTuple tuple, TupleDesc desc)
{
	TupleTableSlot *slot = MakeSingleTupleTableSlot(desc, &TTSOpsHeapTuple);

	ExecStoreHeapTuple(tuple, slot, false);
	track_slot(t, slot);
	ExecDropSingleTupleTableSlot(slot);
}

/*
 * 0.1.0 registered a table whose trigger fires before it is tracked (attached by hand),
 * counting its rows, this statement's included, by a rebuild. True when it did so.
 */
static bool
register_table(Oid relid)
{
	Oid			argtypes[1] = {REGCLASSOID};
	Datum		args[1] = {ObjectIdGetDatum(relid)};
	bool		registered;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args("INSERT INTO meter.tracked_tables (relid) VALUES ($1)"
							  " ON CONFLICT (relid) DO NOTHING", 1, argtypes, args, NULL,
							  false, 0) != SPI_OK_INSERT)
		elog(ERROR, "meter: registering a tracked table failed");
	registered = SPI_processed > 0;
	SPI_finish();
	if (registered)
		(void) rebuild_every_scope();
	return registered;
}

/* 0.1.0's meter.track_usage(): AFTER statement triggers with transition tables, AFTER
 * row triggers, and AFTER TRUNCATE (which rebuilds every meter from what remains). */
Datum
legacy_track_usage(FunctionCallInfo fcinfo)
{
	TriggerData *trig = (TriggerData *) fcinfo->context;
	TupleDesc	desc;
	LegacyTrack t = {0};
	Oid		   *registered = fcinfo->flinfo->fn_extra;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_AFTER(trig->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("meter.track_usage() must be fired AFTER the change"),
				 errhint("Run SELECT meter.track('your_table') to create the right triggers.")));
	if (TRIGGER_FIRED_BY_TRUNCATE(trig->tg_event))
	{
		(void) rebuild_every_scope();
		return PointerGetDatum(NULL);
	}
	if (TRIGGER_FIRED_FOR_STATEMENT(trig->tg_event) &&
		((!TRIGGER_FIRED_BY_INSERT(trig->tg_event) && trig->tg_oldtable == NULL) ||
		 (!TRIGGER_FIRED_BY_DELETE(trig->tg_event) && trig->tg_newtable == NULL)))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("statement-level meter.track_usage() needs transition tables"),
				 errhint("Run SELECT meter.track('%s') to create the right triggers.",
						 RelationGetRelationName(trig->tg_relation))));
	desc = RelationGetDescr(trig->tg_relation);
	event_columns_find(desc, RelationGetRelationName(trig->tg_relation), &t.cols);
	if (registered == NULL || *registered != RelationGetRelid(trig->tg_relation))
	{
		if (register_table(RelationGetRelid(trig->tg_relation)))
			return PointerGetDatum(NULL);	/* the rebuild counted this statement's rows */
		registered = MemoryContextAlloc(fcinfo->flinfo->fn_mcxt, sizeof(Oid));
		*registered = RelationGetRelid(trig->tg_relation);
		fcinfo->flinfo->fn_extra = registered;
	}

	t.add = TRIGGER_FIRED_BY_INSERT(trig->tg_event);
	t.call_cxt = CurrentMemoryContext;
	t.rows_cxt = AllocSetContextCreate(CurrentMemoryContext, "meter legacy rows", ALLOCSET_DEFAULT_SIZES);
	t.row_cxt = AllocSetContextCreate(CurrentMemoryContext, "meter legacy row", ALLOCSET_DEFAULT_SIZES);
	start_rows(&t);
	if (TRIGGER_FIRED_FOR_ROW(trig->tg_event))
	{
		track_tuple(&t, trig->tg_trigtuple, desc);
		if (TRIGGER_FIRED_BY_UPDATE(trig->tg_event))
			track_tuple(&t, trig->tg_newtuple, desc);
	}
	else
	{
		if (!TRIGGER_FIRED_BY_INSERT(trig->tg_event))
			track_tuplestore(&t, trig->tg_oldtable, desc);
		if (!TRIGGER_FIRED_BY_DELETE(trig->tg_event))
			track_tuplestore(&t, trig->tg_newtable, desc);
	}
	write_rows(&t);
	MemoryContextDelete(t.rows_cxt);
	MemoryContextDelete(t.row_cxt);
	return PointerGetDatum(NULL);
}

/* ── The upgrade's conversion ────────────────────────────────────────────────────── */

/* One 0.1.0 rollup row (and its distinct values) as the partial state of its slot. */
static void
import_row(SlotSet *set, const MeterDef *m, const char *dims, HeapTuple row, TupleDesc desc)
{
	const Aggregation *agg = m->agg;
	SlotKey		key;
	Partial    *p;
	bool		isnull;
	Datum		d;

	key.customer = SPI_getvalue(row, desc, 1);
	key.external_customer = SPI_getvalue(row, desc, 2);
	key.slot = DatumGetTimestampTz(SPI_getbinval(row, desc, 3, &isnull));
	key.dims = dims;
	p = &slotset_entry(set, &key)->partial;
	p->events += DatumGetInt64(SPI_getbinval(row, desc, 4, &isnull));
	p->n += DatumGetInt64(SPI_getbinval(row, desc, 5, &isnull));

	if (agg->type == AGG_COUNT_UNIQUE)
	{
		Datum	   *v,
				   *r;
		int			nv,
					nr;

		d = SPI_getbinval(row, desc, 12, &isnull);	/* NULL: no value had an identity */
		if (isnull)
			return;
		deconstruct_array(DatumGetArrayTypeP(d), TEXTOID, -1, false, TYPALIGN_INT, &v, NULL, &nv);
		deconstruct_array(DatumGetArrayTypeP(SPI_getbinval(row, desc, 13, &isnull)), INT8OID, 8,
						  FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &r, NULL, &nr);
		for (int i = 0; i < nv && i < nr; i++)
			partial_unique_add(p, TextDatumGetCString(v[i]), DatumGetInt64(r[i]));
		return;
	}
	if (AGG_HAS_SUM(agg->type))
	{
		d = SPI_getbinval(row, desc, 6, &isnull);	/* Σv: NULL when no usable value */
		if (!isnull)
		{
			Numeric		sum = DatumGetNumeric(d);
			Datum		vt = SPI_getbinval(row, desc, 7, &isnull);

			partial_add_sums(p, sum, agg->type == AGG_WEIGHTED_SUM && !isnull ? DatumGetNumeric(vt) : NULL, 1);
			/* the sum's scale is the largest of its values' (numeric addition keeps it) */
			partial_set_scale(p, num_scale(sum), DatumGetInt64(SPI_getbinval(row, desc, 5, &isnull)));
		}
		return;
	}
	if (agg->type == AGG_LATEST)
	{
		d = SPI_getbinval(row, desc, 11, &isnull);
		if (!isnull)
			partial_best_offer(p, agg, DatumGetNumeric(d),
							   DatumGetTimestampTz(SPI_getbinval(row, desc, 10, &isnull)));
		return;
	}
	if (agg->type != AGG_MAX && agg->type != AGG_MIN)
		return;
	d = SPI_getbinval(row, desc, agg->type == AGG_MAX ? 9 : 8, &isnull);
	if (isnull)
		return;
	/* 0.1.0 kept neither the extreme's time (unused by MAX and MIN) nor, for MINUTE
	 * buckets, its minute (MINUTE cells are always read from the raw events) */
	if (AGG_BUCKETED(agg))
		partial_max_offer(p, bucket_key_in_slot(key.slot, agg->bucket_size), NULL, DatumGetNumeric(d));
	else
		partial_best_offer(p, agg, DatumGetNumeric(d), key.slot);
}

/*
 * meter.legacy_import(meter_id text, tenant text, environment text, rollups regclass,
 * rollup_values regclass) → bigint: the usage 0.1.0 stored for one meter (its rows of
 * rollups and rollup_values, 0.1.0's tables under the names given) written as 0.2.0
 * partial states and compacted. The upgrade from 0.1.0 calls it for archived and deleted
 * meters, whose usage is frozen history the raw events may no longer give. 0.1.0 kept no
 * dimensions: the states carry "missing" for every filter key. Returns the rows read.
 */
PG_FUNCTION_INFO_V1(meter_legacy_import);
Datum
meter_legacy_import(PG_FUNCTION_ARGS)
{
	char	   *id = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *tenant = text_to_cstring(PG_GETARG_TEXT_PP(1));
	char	   *environment = text_to_cstring(PG_GETARG_TEXT_PP(2));
	Oid			rollups = PG_GETARG_OID(3);
	Oid			values = PG_GETARG_OID(4);
	MeterDef   *m = meter_def_find(id, tenant, environment, NULL);
	MemoryContext caller = CurrentMemoryContext;
	MemoryContext batch_cxt;
	Accumulator *acc;
	char	   *dims;
	char	   *values_sql;
	char	   *sql;
	Oid			types[3] = {TEXTOID, TEXTOID, TEXTOID};
	Datum		args[3];
	Portal		portal;
	int64		rows = 0;

	if (m == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("meter \"%s\" not found", id),
				 errdetail("No meter with this id exists in tenant \"%s\", environment \"%s\".",
						   tenant, environment)));
	dims = palloc(m->filters->nkeys + 1);
	memset(dims, '-', m->filters->nkeys);
	dims[m->filters->nkeys] = '\0';
	/* the distinct values of COUNT_UNIQUE rollups, in one array per rollup */
	if (m->agg->type == AGG_COUNT_UNIQUE)
		values_sql = psprintf(" LEFT JOIN LATERAL (SELECT pg_catalog.array_agg(v.value ORDER BY v.value) AS vals,"
							  " pg_catalog.array_agg(v.refs ORDER BY v.value) AS refs FROM %s v"
							  " WHERE v.tenant_id = r.tenant_id AND v.environment_id = r.environment_id"
							  " AND v.meter_id = r.meter_id AND v.external_customer_id = r.external_customer_id"
							  " AND v.customer_id = r.customer_id AND v.bucket = r.bucket) u ON true",
							  quote_qualified_identifier(get_namespace_name(get_rel_namespace(values)),
														 get_rel_name(values)));
	else
		values_sql = " CROSS JOIN (SELECT NULL::text[] AS vals, NULL::bigint[] AS refs) u";
	sql = psprintf("SELECT r.customer_id, r.external_customer_id, r.bucket, r.events, r.n, r.sum,"
				   " r.sum_vt, r.min, r.max, r.latest_at, r.latest_value, u.vals, u.refs FROM %s r%s"
				   " WHERE r.tenant_id = $1 AND r.environment_id = $2 AND r.meter_id = $3 AND r.events > 0"
				   " ORDER BY r.external_customer_id, r.customer_id, r.bucket",
				   quote_qualified_identifier(get_namespace_name(get_rel_namespace(rollups)), get_rel_name(rollups)),
				   values_sql);
	args[0] = CStringGetTextDatum(tenant);
	args[1] = CStringGetTextDatum(environment);
	args[2] = CStringGetTextDatum(id);

	acc = accumulator_create();
	batch_cxt = AllocSetContextCreate(caller, "meter legacy import", ALLOCSET_DEFAULT_SIZES);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	portal = SPI_cursor_open_with_args(NULL, sql, 3, types, args, NULL, true, 0);
	for (;;)
	{
		MemoryContext old;
		SlotSet    *set;

		SPI_cursor_fetch(portal, true, 10000);
		if (SPI_processed == 0)
			break;
		old = MemoryContextSwitchTo(batch_cxt);
		set = slotset_create(batch_cxt);
		for (uint64 i = 0; i < SPI_processed; i++)
			import_row(set, m, dims, SPI_tuptable->vals[i], SPI_tuptable->tupdesc);
		rows += SPI_processed;
		accumulator_put(acc, m, set);
		MemoryContextSwitchTo(old);
		accumulator_flush(acc);
		MemoryContextReset(batch_cxt);
		SPI_freetuptable(SPI_tuptable);
	}
	SPI_cursor_close(portal);
	SPI_finish();
	accumulator_destroy(acc);
	MemoryContextDelete(batch_cxt);
	(void) compaction_run(tenant, environment, id, true);
	PG_RETURN_INT64(rows);
}
