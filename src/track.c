/*
 * track.c — meter.track_usage(): event rows in, exact rollups out, same transaction.
 *
 * Works as a row-level AFTER INSERT OR UPDATE OR DELETE trigger and, the fast path, as
 * statement-level AFTER triggers with transition tables (one each for INSERT, UPDATE and
 * DELETE, as PostgreSQL requires), reading the transition tuplestores directly whatever
 * they are named. Each event is matched against the compiled meters of its tenant,
 * environment and event name (meter_cache.c); inserted events are added to per-rollup
 * accumulators; updated and deleted ones mark their buckets for recomputation from the
 * raw events. Everything is written once at the end of the statement (rollup_batch.c).
 * A property that cannot serve a meter never fails the statement: the meter skips the
 * event and the skip shows in meter.skipped.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "commands/trigger.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/tuplestore.h"

#include "filters.h"
#include "meter_cache.h"
#include "rollup_batch.h"
#include "tenant_lock.h"
#include "track.h"

/* The event columns the trigger reads, by name (SPEC §7: the same names as meter.events). */
enum
{
	COL_TENANT, COL_ENVIRONMENT, COL_EVENT_NAME, COL_CUSTOMER, COL_EXTERNAL_CUSTOMER,
	COL_TIMESTAMP, COL_PROPERTIES, NUM_COLS
};
static const char *const column_names[NUM_COLS] = {
	"tenant_id", "environment_id", "event_name", "customer_id", "external_customer_id",
	"timestamp", "properties"
};

/* Attribute numbers of the event columns, cached per trigger call site in fn_extra. */
typedef struct EventColumns
{
	Oid			relid;
	bool		rebuilt;		/* this statement registered the table and rebuilt usage */
	AttrNumber	attnum[NUM_COLS];
} EventColumns;

/* One pass over a statement's rows: the batch, and the tenant whose lock we hold. */
typedef struct TrackState
{
	RollupBatch *batch;
	EventColumns *columns;
	MemoryContext call_context;
	MemoryContext row_context;
	char	   *locked_tenant;
} TrackState;

/*
 * A table the trigger tracks is a tracked table (SPEC §7: usage, verify and rebuild cover
 * every tracked table), even when the trigger was attached by hand rather than by
 * meter.track(). Registering it counts the rows it already holds — this statement's
 * included — by rebuilding every meter; returns true when it did so.
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
		elog(ERROR, "registering a tracked table failed");
	registered = SPI_processed > 0;
	if (registered && SPI_execute("SELECT meter.rebuild_all()", false, 0) != SPI_OK_SELECT)
		elog(ERROR, "rebuilding usage for a newly tracked table failed");
	SPI_finish();
	return registered;
}

static EventColumns *
event_columns(FunctionCallInfo fcinfo, Relation rel)
{
	EventColumns *cols = fcinfo->flinfo->fn_extra;
	TupleDesc	desc = RelationGetDescr(rel);

	if (cols != NULL && cols->relid == RelationGetRelid(rel))
		return cols;
	cols = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(EventColumns));
	cols->relid = RelationGetRelid(rel);
	for (int c = 0; c < NUM_COLS; c++)
	{
		for (int i = 0; i < desc->natts; i++)
		{
			Form_pg_attribute att = TupleDescAttr(desc, i);

			if (!att->attisdropped && strcmp(NameStr(att->attname), column_names[c]) == 0)
				cols->attnum[c] = att->attnum;
		}
		if (cols->attnum[c] == 0)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("table \"%s\" has no column \"%s\"",
							RelationGetRelationName(rel), column_names[c]),
					 errdetail("meter.track_usage() reads the columns of meter.events by name."),
					 errhint("Run SELECT meter.track('%s') to check the table's columns.",
							 RelationGetRelationName(rel))));
	}
	fcinfo->flinfo->fn_extra = cols;
	cols->rebuilt = register_table(cols->relid);
	return cols;
}

static char *
text_column(TupleTableSlot *slot, AttrNumber attnum, const char *if_null)
{
	bool		isnull;
	Datum		d = slot_getattr(slot, attnum, &isnull);

	return isnull ? (char *) if_null : TextDatumGetCString(d);
}

/* Hold the tenant's share lock before matching its events (see tenant_lock.h). */
static void
lock_tenant(TrackState *state, const char *tenant)
{
	if (state->locked_tenant != NULL && strcmp(state->locked_tenant, tenant) == 0)
		return;
	tenant_lock_share(tenant);
	if (state->locked_tenant != NULL)
		pfree(state->locked_tenant);
	state->locked_tenant = MemoryContextStrdup(state->call_context, tenant);
}

/* Rows with NULL properties are events without properties. */
static Jsonb *
empty_object(void)
{
	return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum("{}")));
}

/* Match one event row against its meters; add it (insert) or mark its buckets. */
static void
track_row(TrackState *state, TupleTableSlot *slot, bool add)
{
	const AttrNumber *att = state->columns->attnum;
	MemoryContext old = MemoryContextSwitchTo(state->row_context);
	EventKey	event;
	char	   *event_name;
	bool		isnull;
	Datum		d;
	Jsonb	   *properties;
	const MeterSet *meters;

	event.tenant = text_column(slot, att[COL_TENANT], NULL);
	event_name = text_column(slot, att[COL_EVENT_NAME], NULL);
	if (event.tenant == NULL || event_name == NULL)
	{
		/* No tenant or no event name: no meter can count this row. */
		MemoryContextSwitchTo(old);
		MemoryContextReset(state->row_context);
		return;
	}
	event.environment = text_column(slot, att[COL_ENVIRONMENT], "");
	event.customer = text_column(slot, att[COL_CUSTOMER], "");
	event.external_customer = text_column(slot, att[COL_EXTERNAL_CUSTOMER], "");
	d = slot_getattr(slot, att[COL_TIMESTAMP], &isnull);
	if (isnull || TIMESTAMP_NOT_FINITE(DatumGetTimestampTz(d)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("event timestamp must be a finite time"),
				 errdetail("Event \"%s\" of tenant \"%s\" has timestamp %s.", event_name,
						   event.tenant, isnull ? "NULL" : "infinity"),
				 errhint("Give every event the time it happened.")));
	event.timestamp = DatumGetTimestampTz(d);
	d = slot_getattr(slot, att[COL_PROPERTIES], &isnull);
	properties = isnull ? empty_object() : DatumGetJsonbP(d);

	lock_tenant(state, event.tenant);
	meters = meter_cache_lookup(event.tenant, event.environment, event_name);
	for (int i = 0; i < meters->nmeters; i++)
	{
		const CompiledMeter *m = &meters->meters[i];

		if (m->filters->nkeys > 0 && !filters_match(m->filters, properties))
			continue;
		if (add)
			rollup_batch_add(state->batch, m, &event, properties);
		else
			rollup_batch_mark(state->batch, m, &event);
	}
	MemoryContextSwitchTo(old);
	MemoryContextReset(state->row_context);
	if (MemoryContextMemAllocated(CurrentMemoryContext, true) > TRACK_BATCH_MEMORY)
		rollup_batch_flush(state->batch);
}

static void
track_tuplestore(TrackState *state, Tuplestorestate *store, TupleDesc desc, bool add)
{
	TupleTableSlot *slot = MakeSingleTupleTableSlot(desc, &TTSOpsMinimalTuple);

	tuplestore_rescan(store);
	while (tuplestore_gettupleslot(store, true, false, slot))
		track_row(state, slot, add);
	ExecDropSingleTupleTableSlot(slot);
}

static void
track_tuple(TrackState *state, HeapTuple tuple, TupleDesc desc, bool add)
{
	TupleTableSlot *slot = MakeSingleTupleTableSlot(desc, &TTSOpsHeapTuple);

	ExecStoreHeapTuple(tuple, slot, false);
	track_row(state, slot, add);
	ExecDropSingleTupleTableSlot(slot);
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
	if (!TRIGGER_FIRED_AFTER(trig->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("meter.track_usage() must be fired AFTER the change"),
				 errdetail("A BEFORE trigger would count rows that may still be rejected."),
				 errhint("Run SELECT meter.track('%s') to create the right triggers.",
						 RelationGetRelationName(trig->tg_relation))));
	if (TRIGGER_FIRED_BY_TRUNCATE(trig->tg_event))
		return;
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

/* TRUNCATE empties the table at once: recompute every meter from what remains. */
static void
track_truncate(void)
{
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute("SELECT meter.rebuild_all()", false, 0) != SPI_OK_SELECT)
		elog(ERROR, "rebuilding rollups after TRUNCATE failed");
	SPI_finish();
}

/*
 * meter.track_usage() — trigger function keeping meter.rollups exact (SPEC §7).
 * Attach it with meter.track(table); see the file header for how it works.
 */
PG_FUNCTION_INFO_V1(meter_track_usage);
Datum
meter_track_usage(PG_FUNCTION_ARGS)
{
	TriggerData *trig;
	TupleDesc	desc;
	TrackState	state;
	bool		insert,
				update;

	check_trigger_protocol(fcinfo);
	trig = (TriggerData *) fcinfo->context;
	if (TRIGGER_FIRED_BY_TRUNCATE(trig->tg_event))
	{
		track_truncate();
		return PointerGetDatum(NULL);
	}
	desc = RelationGetDescr(trig->tg_relation);
	insert = TRIGGER_FIRED_BY_INSERT(trig->tg_event);
	update = TRIGGER_FIRED_BY_UPDATE(trig->tg_event);

	state.columns = event_columns(fcinfo, trig->tg_relation);
	if (state.columns->rebuilt)
		return PointerGetDatum(NULL);	/* the rebuild counted this statement's rows */
	state.call_context = CurrentMemoryContext;
	state.batch = rollup_batch_create();
	state.row_context = AllocSetContextCreate(CurrentMemoryContext, "meter track row",
											  ALLOCSET_DEFAULT_SIZES);
	state.locked_tenant = NULL;

	if (TRIGGER_FIRED_FOR_ROW(trig->tg_event))
	{
		track_tuple(&state, trig->tg_trigtuple, desc, insert);
		if (update)
			track_tuple(&state, trig->tg_newtuple, desc, false);
	}
	else
	{
		if (!insert)
			track_tuplestore(&state, trig->tg_oldtable, desc, false);
		if (insert || update)
			track_tuplestore(&state, trig->tg_newtable, desc, insert);
	}
	rollup_batch_flush(state.batch);
	rollup_batch_destroy(state.batch);
	MemoryContextDelete(state.row_context);
	return PointerGetDatum(NULL);
}
