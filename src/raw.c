/*
 * raw.c — reading raw events (see raw.h). One query per event table: a range scan of
 * (tenant_id, environment_id, event_name, "timestamp") per time range, read through a
 * cursor in batches; the rows are checked against the event-table contract first.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/regproc.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "raw.h"

#define RAW_BATCH 1000

Oid *
raw_tracked_tables(int *n, Snapshot snap)
{
	MemoryContext caller = CurrentMemoryContext;
	Oid		   *out;
	int			rc;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	rc = SPI_execute_snapshot(SPI_prepare("SELECT relid::pg_catalog.oid FROM meter.tracked_tables"
										  " ORDER BY 1", 0, NULL),
							  NULL, NULL, snap ? snap : InvalidSnapshot, InvalidSnapshot,
							  true, false, 0);
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
scan_sql(Oid table, const RawScan *scan)
{
	StringInfoData sql;
	char	   *name = quote_qualified_identifier(get_namespace_name(get_rel_namespace(table)),
												  get_rel_name(table));

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
	if (OidIsValid(scan->source))
	{
		tables = palloc(sizeof(Oid));
		tables[0] = scan->source;
		ntables = 1;
	}
	else
		tables = raw_tracked_tables(&ntables, snap);
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
	{
		/* A table dropped meanwhile has no events left to count. */
		if (get_rel_name(tables[t]) != NULL)
			scan_table(tables[t], scan, args, snap, caller, visit, arg);
	}
	SPI_finish();
}
