/*
 * track.c — meter.track_usage(): event rows in, pending partial states out, in the
 * event's transaction (SPEC §7).
 *
 * Works as statement-level AFTER triggers with transition tables (one each for INSERT,
 * UPDATE and DELETE, as PostgreSQL requires; the fast path), as a row-level AFTER
 * trigger, and as a statement-level BEFORE TRUNCATE trigger. Each event is matched
 * against the compiled meters of its tenant, environment and event name; inserted rows
 * add to per-slot partial states, deleted rows (and the old side of updated ones) take
 * away from them — or, for MAX, MIN and LATEST, mark their slot for recomputation. What
 * a statement did is appended as one pending row per meter: no row is ever updated in
 * place, so the order in which PostgreSQL fires the triggers of one statement cannot
 * matter and writers never wait for each other. Past a threshold the writer compacts, at
 * the end of its statement (statement_end.c). While meter.restoring is on the trigger
 * counts nothing: a restore loads events whose usage the dump already holds.
 * On a Citus cluster it fires on the shards, on the workers, and works in the shard's
 * placement (placement.h): the co-located shards of the same tenants on that node.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/relation.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/tuplestore.h"

#include "accumulate.h"
#include "event_table.h"
#include "legacy.h"
#include "locks.h"
#include "meter_cache.h"
#include "placement.h"
#include "seal.h"
#include "settings.h"
#include "store.h"
#include "track.h"

/* What a trigger call site knows about its table (fn_extra). */
typedef struct TrackedTable
{
	Oid			relid;
	EventColumns cols;
} TrackedTable;

/* One pass over a statement's rows. */
typedef struct TrackState
{
	Accumulator *acc;
	const EventColumns *cols;
	MemoryContext row_context;
	char	   *locked_tenant;
	char	   *seal_scope;		/* the scope whose seal is in seal_before */
	TimestampTz seal_before;
	const CompiledMeter **matched;
	int			matched_cap;
	EventColumns cols_buf;		/* track_table_rows: the columns of its table */
} TrackState;

static char *
relation_display_name(Relation rel)
{
	return quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)),
									  RelationGetRelationName(rel));
}

static bool
table_registered(Oid relid)
{
	Datum		args[1] = {ObjectIdGetDatum(relid)};
	bool		found;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (store_exec(STORE_REGISTERED, args, NULL, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "meter: reading the tracked tables failed");
	found = SPI_processed > 0;
	SPI_finish();
	return found;
}

/*
 * The table the trigger fires on must keep the event-table contract (checked on every
 * statement: a column may have been altered since) and be a tracked table: a trigger
 * attached by hand never registers its table from inside a user's statement.
 */
static const EventColumns *
tracked_table(FunctionCallInfo fcinfo, Relation rel)
{
	TrackedTable *t = fcinfo->flinfo->fn_extra;

	if (t == NULL || t->relid != RelationGetRelid(rel))
	{
		/* On a Citus worker rel is a shard: the registry names its table. */
		if (!table_registered(placement_logical_of(RelationGetRelid(rel))))
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("table %s is not tracked", relation_display_name(rel)),
					 errdetail("meter.track_usage() counts the events of tracked tables only."),
					 errhint("Run SELECT meter.track('%s') instead of creating the trigger by hand.",
							 relation_display_name(rel))));
		t = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(TrackedTable));
		t->relid = RelationGetRelid(rel);
		fcinfo->flinfo->fn_extra = t;
	}
	event_columns_find(RelationGetDescr(rel), relation_display_name(rel), &t->cols);
	return &t->cols;
}

/* Hold the tenant's share lock before matching its events (see locks.h). */
static void
lock_tenant(TrackState *state, const char *tenant)
{
	if (state->locked_tenant != NULL && strcmp(state->locked_tenant, tenant) == 0)
		return;
	tenant_lock_share(tenant);
	state->locked_tenant = MemoryContextStrdup(TopTransactionContext, tenant);
}

/* The seal of the row's scope, remembered for the statement's next rows. */
static TimestampTz
scope_seal(TrackState *state, const EventRow *row)
{
	char	   *scope = psprintf("%s\x1f%s", row->tenant, row->environment);

	if (state->seal_scope == NULL || strcmp(state->seal_scope, scope) != 0)
	{
		state->seal_before = seal_of(row->tenant, row->environment);
		state->seal_scope = MemoryContextStrdup(TopTransactionContext, scope);
	}
	return state->seal_before;
}

/* Match one event row against its meters and count it (sign +1) or take it out (-1). */
static void
track_row(TrackState *state, TupleTableSlot *slot, int sign)
{
	MemoryContext old = MemoryContextSwitchTo(state->row_context);
	EventRow	row;

	if (event_row_read(slot, state->cols, &row))
	{
		const MeterSet *meters;
		int			n;

		lock_tenant(state, row.tenant);
		meters = meter_cache_lookup(row.tenant, row.environment, row.event_name);
		if (meters->nmeters > state->matched_cap)
		{
			state->matched_cap = meters->nmeters;
			state->matched = MemoryContextAlloc(TopTransactionContext,
												sizeof(CompiledMeter *) * meters->nmeters);
		}
		n = meter_cache_match(meters, row.properties, state->matched);
		if (row.timestamp < scope_seal(state, &row))
		{
			/* Sealed time: a new event is stored but not counted; removals change nothing. */
			if (sign > 0)
				for (int i = 0; i < n; i++)
					accumulator_add_late(state->acc, state->matched[i], &row);
		}
		else
			for (int i = 0; i < n; i++)
				accumulator_add(state->acc, state->matched[i], &row, sign);
	}
	MemoryContextSwitchTo(old);
	MemoryContextReset(state->row_context);
	if (accumulator_full(state->acc))
		accumulator_flush(state->acc);
}

static void
track_tuplestore(TrackState *state, Tuplestorestate *store, TupleDesc desc, int sign)
{
	TupleTableSlot *slot = MakeSingleTupleTableSlot(desc, &TTSOpsMinimalTuple);

	tuplestore_rescan(store);
	while (tuplestore_gettupleslot(store, true, false, slot))
		track_row(state, slot, sign);
	ExecDropSingleTupleTableSlot(slot);
}

static void
track_tuple(TrackState *state, HeapTuple tuple, TupleDesc desc, int sign)
{
	TupleTableSlot *slot = MakeSingleTupleTableSlot(desc, &TTSOpsHeapTuple);

	ExecStoreHeapTuple(tuple, slot, false);
	track_row(state, slot, sign);
	ExecDropSingleTupleTableSlot(slot);
}

/*
 * Every row a table holds (only its own rows, or its partitions' too) counted in (+1) or
 * out (-1): TRUNCATE before it runs, and partitions attached or detached. The event
 * columns are found in the query's own row type: "SELECT *" leaves dropped columns out,
 * so the table's attribute numbers may not fit it.
 */
static void
track_rows_of(TrackState *state, Oid relid, bool only, int sign)
{
	char	   *sql = psprintf("SELECT * FROM %s%s", only ? "ONLY " : "",
							   quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
														  get_rel_name(relid)));
	SPIPlanPtr	plan;
	Portal		portal;
	const EventColumns *table_cols = state->cols;
	EventColumns query_cols;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	plan = SPI_prepare(sql, 0, NULL);
	if (plan == NULL)
		elog(ERROR, "meter: reading %s failed", sql);
	portal = SPI_cursor_open(NULL, plan, NULL, NULL, true);
	for (;;)
	{
		SPI_cursor_fetch(portal, true, 1000);
		if (SPI_processed == 0)
			break;
		event_columns_find(SPI_tuptable->tupdesc, get_rel_name(relid), &query_cols);
		state->cols = &query_cols;
		for (uint64 i = 0; i < SPI_processed; i++)
			track_tuple(state, SPI_tuptable->vals[i], SPI_tuptable->tupdesc, sign);
		SPI_freetuptable(SPI_tuptable);
	}
	state->cols = table_cols;
	SPI_cursor_close(portal);
	SPI_finish();
}

void
track_table_rows(Oid relid, int sign)
{
	TrackState	state = {0};
	Relation	rel;

	if (meter_restoring)
		return;
	rel = relation_open(relid, AccessShareLock);

	event_columns_find(RelationGetDescr(rel), relation_display_name(rel), &state.cols_buf);
	relation_close(rel, AccessShareLock);
	state.cols = &state.cols_buf;
	state.acc = accumulator_create();
	state.row_context = AllocSetContextCreate(CurrentMemoryContext, "meter track row",
											  ALLOCSET_DEFAULT_SIZES);
	track_rows_of(&state, relid, false, sign);
	accumulator_flush(state.acc);
	accumulator_destroy(state.acc);
	MemoryContextDelete(state.row_context);
}

static void
check_trigger_protocol(FunctionCallInfo fcinfo)
{
	TriggerData *trig;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("meter.track_usage() must be called as a trigger"),
				 errhint("Run SELECT meter.track('your_table') to attach it.")));
	trig = (TriggerData *) fcinfo->context;
	if (TRIGGER_FIRED_BY_TRUNCATE(trig->tg_event))
		return;
	if (!TRIGGER_FIRED_AFTER(trig->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("meter.track_usage() must be fired AFTER the change"),
				 errdetail("A BEFORE trigger would count rows that may still be rejected."),
				 errhint("Run SELECT meter.track('%s') to create the right triggers.",
						 RelationGetRelationName(trig->tg_relation))));
	if (TRIGGER_FIRED_FOR_STATEMENT(trig->tg_event) &&
		((TRIGGER_FIRED_BY_INSERT(trig->tg_event) && trig->tg_newtable == NULL) ||
		 (TRIGGER_FIRED_BY_UPDATE(trig->tg_event) &&
		  (trig->tg_newtable == NULL || trig->tg_oldtable == NULL)) ||
		 (TRIGGER_FIRED_BY_DELETE(trig->tg_event) && trig->tg_oldtable == NULL)))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("statement-level meter.track_usage() needs transition tables"),
				 errdetail("Without REFERENCING NEW TABLE / OLD TABLE the trigger cannot see the rows."),
				 errhint("Run SELECT meter.track('%s') to create the right triggers.",
						 RelationGetRelationName(trig->tg_relation))));
}

/* The rows of one firing, in the placement of the trigger's relation. */
static void
track_statement(FunctionCallInfo fcinfo, TriggerData *trig)
{
	Relation	rel = trig->tg_relation;
	TupleDesc	desc = RelationGetDescr(rel);
	TrackState	state = {0};

	/*
	 * Citus creates a table's TRUNCATE triggers on its shards when it distributes the
	 * table, and DROP TRIGGER (meter.untrack) does not reach them: on the shard of a table
	 * no longer tracked there is nothing to count out.
	 */
	if (TRIGGER_FIRED_BY_TRUNCATE(trig->tg_event) && placement_current()->shardid != 0 &&
		!table_registered(placement_logical_of(RelationGetRelid(rel))))
		return;
	state.cols = tracked_table(fcinfo, rel);
	state.acc = accumulator_create();
	state.row_context = AllocSetContextCreate(CurrentMemoryContext, "meter track row",
											  ALLOCSET_DEFAULT_SIZES);

	if (TRIGGER_FIRED_BY_TRUNCATE(trig->tg_event))
	{
		if (!TRIGGER_FIRED_BEFORE(trig->tg_event))
			ereport(ERROR,
					(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
					 errmsg("meter.track_usage() must be fired BEFORE TRUNCATE"),
					 errdetail("After TRUNCATE the rows whose usage must go are gone."),
					 errhint("Run SELECT meter.untrack('%s') and SELECT meter.track('%s') to recreate the triggers.",
							 RelationGetRelationName(rel), RelationGetRelationName(rel))));
		track_rows_of(&state, RelationGetRelid(rel), true, -1);
	}
	else if (TRIGGER_FIRED_FOR_ROW(trig->tg_event))
	{
		if (TRIGGER_FIRED_BY_INSERT(trig->tg_event))
			track_tuple(&state, trig->tg_trigtuple, desc, 1);
		else
			track_tuple(&state, trig->tg_trigtuple, desc, -1);
		if (TRIGGER_FIRED_BY_UPDATE(trig->tg_event))
			track_tuple(&state, trig->tg_newtuple, desc, 1);
	}
	else
	{
		if (!TRIGGER_FIRED_BY_INSERT(trig->tg_event))
			track_tuplestore(&state, trig->tg_oldtable, desc, -1);
		if (!TRIGGER_FIRED_BY_DELETE(trig->tg_event))
			track_tuplestore(&state, trig->tg_newtable, desc, 1);
	}
	accumulator_flush(state.acc);
	accumulator_destroy(state.acc);
	MemoryContextDelete(state.row_context);
}

/*
 * meter.track_usage() — the trigger function keeping usage exact (SPEC §7). Attach it
 * with meter.track(table); see the file header for how it works. On a Citus cluster it
 * fires on the shards, on the nodes that hold them, and works on each shard's co-located
 * shards there (placement.h); on a distributed table itself (Citus fires TRUNCATE
 * triggers there too) it does nothing: its shards' triggers count the rows.
 */
PG_FUNCTION_INFO_V1(meter_track_usage);
Datum
meter_track_usage(PG_FUNCTION_ARGS)
{
	TriggerData *trig;
	Placement  *placement;
	Placement  *previous;

	if (legacy_schema())
		return legacy_track_usage(fcinfo);	/* a 0.1.0 schema: legacy.c */
	check_trigger_protocol(fcinfo);
	if (meter_restoring)
		return PointerGetDatum(NULL);
	trig = (TriggerData *) fcinfo->context;
	placement = placement_of_relation(RelationGetRelid(trig->tg_relation));
	if (placement == NULL)
		return PointerGetDatum(NULL);
	previous = placement_enter(placement);
	PG_TRY();
	{
		track_statement(fcinfo, trig);
	}
	PG_FINALLY();
	{
		placement_leave(previous);
	}
	PG_END_TRY();
	return PointerGetDatum(NULL);
}
