/*
 * raw.c — reading raw events (see raw.h). One query per event table: a range scan of
 * (tenant_id, environment_id, event_name, "timestamp") per time range, read through a
 * cursor in batches; the rows are checked against the event-table contract first.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/regproc.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "placement.h"
#include "raw.h"
#include "scope.h"
#include "store.h"

#define RAW_BATCH 1000

Oid *
raw_tracked_tables(int *n, Snapshot snap)
{
	MemoryContext caller = CurrentMemoryContext;
	Oid		   *out;
	int			rc;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	rc = store_exec(STORE_TRACKED_TABLES, NULL, NULL, snap, true, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "meter: reading the tracked tables failed");
	out = MemoryContextAlloc(caller, sizeof(Oid) * (SPI_processed + 1));
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;

		out[i] = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
	}
	*n = (int) SPI_processed;
	SPI_finish();
	return out;
}

static char *
table_name(Oid table)
{
	return quote_qualified_identifier(get_namespace_name(get_rel_namespace(table)),
									  get_rel_name(table));
}

/*
 * The relations to read: the source, or every tracked table that still exists (a table
 * dropped meanwhile has no events left to count), each as the relation that holds its
 * rows in the current placement (its co-located shard on a Citus worker).
 */
static Oid *
scan_tables(const RawScan *scan, Snapshot snap, int *n)
{
	Placement  *p = placement_current();
	Oid		   *tables;
	int			ntables;

	if (OidIsValid(scan->source))
	{
		tables = palloc(sizeof(Oid));
		tables[0] = scan->source;
		ntables = 1;
	}
	else
		tables = raw_tracked_tables(&ntables, snap);
	*n = 0;
	for (int t = 0; t < ntables; t++)
		if (get_rel_name(tables[t]) != NULL)
			tables[(*n)++] = placement_local_table(p, tables[t]);
	return tables;
}

static char *
scan_sql(Oid table, const RawScan *scan)
{
	StringInfoData sql;
	char	   *name = table_name(table);

	initStringInfo(&sql);
	appendStringInfo(&sql,
					 "SELECT e.* FROM ROWS FROM (pg_catalog.unnest($4::pg_catalog.timestamptz[]), pg_catalog.unnest($5::pg_catalog.timestamptz[])) AS r(lo, hi)"
					 " CROSS JOIN LATERAL (SELECT " EVENT_COLUMNS_SQL " FROM %s AS x"
					 " WHERE x.tenant_id OPERATOR(pg_catalog.=) $1 AND x.environment_id OPERATOR(pg_catalog.=) $2"
					 " AND x.event_name OPERATOR(pg_catalog.=) $3"
					 " AND x.\"timestamp\" OPERATOR(pg_catalog.>=) r.lo AND x.\"timestamp\" OPERATOR(pg_catalog.<) r.hi",
					 name);
	if (scan->customer != NULL)
		appendStringInfoString(&sql, " AND COALESCE(x.customer_id::pg_catalog.text, '') OPERATOR(pg_catalog.=) $6");
	if (scan->external_customer != NULL)
		appendStringInfoString(&sql, " AND COALESCE(x.external_customer_id::pg_catalog.text, '') OPERATOR(pg_catalog.=) $7");
	appendStringInfoString(&sql, scan->ordered ? " ORDER BY x.\"timestamp\" OFFSET 0) AS e" : " OFFSET 0) AS e");
	return sql.data;
}

static void
scan_table(Oid table, const RawScan *scan, Datum *args, Snapshot snap, MemoryContext caller,
		   RawEventVisitor visit, void *arg)
{
	static const Oid types[7] = {TEXTOID, TEXTOID, TEXTOID, TIMESTAMPTZARRAYOID,
	TIMESTAMPTZARRAYOID, TEXTOID, TEXTOID};
	SPIPlanPtr	plan = SPI_prepare(scan_sql(table, scan), 7, (Oid *) types);
	Portal		portal;
	EventColumns cols;
	bool		checked = false;
	MemoryContext rowcxt = AllocSetContextCreate(caller, "meter raw event", ALLOCSET_DEFAULT_SIZES);

	if (plan == NULL)
		elog(ERROR, "meter: preparing a raw event scan failed: %s", SPI_result_code_string(SPI_result));
	/* A read-only cursor runs in the snapshot active when it is opened. */
	if (snap != NULL)
		PushActiveSnapshot(snap);
	portal = SPI_cursor_open(NULL, plan, args, NULL, true);
	if (snap != NULL)
		PopActiveSnapshot();
	for (;;)
	{
		SPI_cursor_fetch(portal, true, RAW_BATCH);
		if (SPI_processed == 0)
			break;
		if (!checked)
		{
			event_columns_find(SPI_tuptable->tupdesc, get_rel_name(table), &cols);
			checked = true;
		}
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			MemoryContext spi = MemoryContextSwitchTo(rowcxt);
			TupleTableSlot *slot = MakeSingleTupleTableSlot(SPI_tuptable->tupdesc, &TTSOpsHeapTuple);
			EventRow	row;

			ExecStoreHeapTuple(SPI_tuptable->vals[i], slot, false);
			if (event_row_read(slot, &cols, &row))
				visit(&row, arg);
			ExecDropSingleTupleTableSlot(slot);
			MemoryContextSwitchTo(spi);
			MemoryContextReset(rowcxt);
		}
		SPI_freetuptable(SPI_tuptable);
	}
	SPI_cursor_close(portal);
	SPI_freeplan(plan);
	MemoryContextDelete(rowcxt);
}

void
raw_scan(const RawScan *scan, const TimestampTz *lo, const TimestampTz *hi, int nranges,
		 Snapshot snap, RawEventVisitor visit, void *arg)
{
	MemoryContext caller = CurrentMemoryContext;
	Oid		   *tables;
	int			ntables;
	Datum		args[7];
	Datum	   *los,
			   *his;

	if (nranges == 0)
		return;
	tables = scan_tables(scan, snap, &ntables);
	los = palloc(sizeof(Datum) * nranges);
	his = palloc(sizeof(Datum) * nranges);
	for (int i = 0; i < nranges; i++)
	{
		los[i] = TimestampTzGetDatum(lo[i]);
		his[i] = TimestampTzGetDatum(hi[i]);
	}
	args[0] = CStringGetTextDatum(scan->tenant);
	args[1] = CStringGetTextDatum(scan->environment);
	args[2] = CStringGetTextDatum(scan->event_name);
	args[3] = PointerGetDatum(construct_array(los, nranges, TIMESTAMPTZOID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	args[4] = PointerGetDatum(construct_array(his, nranges, TIMESTAMPTZOID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	args[5] = CStringGetTextDatum(scan->customer ? scan->customer : "");
	args[6] = CStringGetTextDatum(scan->external_customer ? scan->external_customer : "");

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	for (int t = 0; t < ntables; t++)
		scan_table(tables[t], scan, args, snap, caller, visit, arg);
	SPI_finish();
}

TimestampTz
raw_first_before(const RawScan *scan, TimestampTz before)
{
	static const Oid types[4] = {TEXTOID, TEXTOID, TEXTOID, TIMESTAMPTZOID};
	Datum		args[4];
	int			ntables;
	Oid		   *tables = scan_tables(scan, NULL, &ntables);
	TimestampTz first = DT_NOEND;

	args[0] = CStringGetTextDatum(scan->tenant);
	args[1] = CStringGetTextDatum(scan->environment);
	args[2] = CStringGetTextDatum(scan->event_name);
	args[3] = TimestampTzGetDatum(before);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	for (int t = 0; t < ntables; t++)
	{
		char	   *sql = psprintf("SELECT pg_catalog.min(\"timestamp\") FROM %s"
								   " WHERE tenant_id OPERATOR(pg_catalog.=) $1 AND environment_id OPERATOR(pg_catalog.=) $2"
								   " AND event_name OPERATOR(pg_catalog.=) $3 AND \"timestamp\" OPERATOR(pg_catalog.<) $4",
								   table_name(tables[t]));

		if (SPI_execute_with_args(sql, 4, (Oid *) types, args, NULL, true, 1) == SPI_OK_SELECT &&
			SPI_processed == 1)
		{
			bool		isnull;
			Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

			if (!isnull)
				first = Min(first, DatumGetTimestampTz(d));
		}
	}
	SPI_finish();
	return first;
}

/*
 * meter.event_sources() → SETOF regclass: the relations that hold the current scope's raw
 * events — every tracked table that exists, or on a Citus worker each one's shard of the
 * tenant's group. For verify's SQL oracle, which reads them by name.
 */
PG_FUNCTION_INFO_V1(meter_event_sources);
Datum
meter_event_sources(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Placement  *p = placement_of_tenant(scope_tenant());
	Placement  *previous;
	RawScan		scan = {0};
	Oid		   *volatile tables = NULL;
	int			n = 0;

	if (p == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the shards of tenant \"%s\" are not on this node", scope_tenant()),
				 errhint("Call meter.verify(): it runs on the node that holds them.")));
	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	previous = placement_enter(p);
	PG_TRY();
	{
		tables = scan_tables(&scan, NULL, &n);
	}
	PG_FINALLY();
	{
		placement_leave(previous);
	}
	PG_END_TRY();
	for (int i = 0; i < n; i++)
	{
		Datum		v = ObjectIdGetDatum(tables[i]);
		bool		isnull = false;

		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, &v, &isnull);
	}
	return (Datum) 0;
}
