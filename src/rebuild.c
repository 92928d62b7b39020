/*
 * rebuild.c — keeping rollups in line with changes to meters (SPEC §6, §7).
 *
 * A published meter whose definition changes (event name, aggregation, filters), that
 * is created, or that is published again is rebuilt from the raw events in the same
 * transaction, so its usage is always what its current definition says. A meter that is
 * archived keeps its rollups frozen as billing history; a deleted row takes its rollups
 * with it. All of it runs in the meter's own tenant and environment, whatever scope the
 * session has set.
 */
#include "postgres.h"

#include <ctype.h>

#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/rel.h"

#include "scope.h"
#include "tenant_lock.h"

static Datum
column(HeapTuple row, TupleDesc desc, const char *name, bool *isnull)
{
	return SPI_getbinval(row, desc, SPI_fnumber(desc, name), isnull);
}

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

/* Run one statement about a meter (its id as $1) inside the meter's own scope. */
static void
run_for_meter(HeapTuple row, TupleDesc desc, const char *sql)
{
	int			level = scope_enter(column_text(row, desc, "tenant_id"),
									column_text(row, desc, "environment_id"));
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1];
	bool		isnull;
	int			rc;

	args[0] = column(row, desc, "id", &isnull);
	rc = SPI_execute_with_args(sql, 1, argtypes, args, NULL, false, 0);
	if (rc < 0)
		elog(ERROR, "maintaining rollups of a meter failed: %s", SPI_result_code_string(rc));
	scope_leave(level);
}

/*
 * Is the current command a COPY? pg_dump's restores (pg_restore, or psql running a plain
 * dump) load meter.meters with COPY, before loading the rollups the dump holds for those
 * meters: rebuilding there would both duplicate the restored rollups and recompute
 * published meters before their tracked tables' rows are back. So meters that arrive by
 * COPY come with their rollups as they are (run meter.rebuild() after loading meters
 * without rollups).
 */
static bool
command_is_copy(void)
{
	const char *q = debug_query_string;

	if (q == NULL)
		return false;
	while (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r')
		q++;
	return pg_strncasecmp(q, "copy", 4) == 0 && !isalnum((unsigned char) q[4]) && q[4] != '_';
}

static const char *const rebuild_sql = "SELECT pg_catalog.count(*) FROM meter.rebuild($1)";
static const char *const forget_sql =
"WITH r AS (DELETE FROM meter.rollups WHERE tenant_id OPERATOR(pg_catalog.=) meter.current_tenant()"
"  AND environment_id OPERATOR(pg_catalog.=) meter.current_environment()"
"  AND meter_id OPERATOR(pg_catalog.=) $1)"
" DELETE FROM meter.rollup_values WHERE tenant_id OPERATOR(pg_catalog.=) meter.current_tenant()"
"  AND environment_id OPERATOR(pg_catalog.=) meter.current_environment()"
"  AND meter_id OPERATOR(pg_catalog.=) $1";

/*
 * meter.on_meter_change() — AFTER INSERT OR UPDATE OR DELETE row trigger on
 * meter.meters: rebuilds a (re)defined published meter, forgets a deleted one.
 */
PG_FUNCTION_INFO_V1(meter_on_meter_change);
Datum
meter_on_meter_change(PG_FUNCTION_ARGS)
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

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (old_row == NULL && command_is_copy())
		sql = NULL;				/* a restore: the dump's rollups follow */
	else if (new_row != NULL && is_published(new_row, desc) &&
		(old_row == NULL || !is_published(old_row, desc) ||
		 column_changed(old_row, new_row, desc, "event_name") ||
		 column_changed(old_row, new_row, desc, "aggregation") ||
		 column_changed(old_row, new_row, desc, "filters")))
		sql = rebuild_sql;
	else if (new_row == NULL)
		sql = forget_sql;
	if (sql != NULL)
		run_for_meter(new_row ? new_row : old_row, desc, sql);
	SPI_finish();
	return PointerGetDatum(NULL);
}

/*
 * meter.lock_tenant(tenant text) — take the tenant's exclusive lock for the rest of the
 * transaction: in-flight tracking of the tenant's events finishes first, new tracking
 * waits. meter.rebuild() and meter changes call it.
 */
PG_FUNCTION_INFO_V1(meter_lock_tenant);
Datum
meter_lock_tenant(PG_FUNCTION_ARGS)
{
	tenant_lock_exclusive(text_to_cstring(PG_GETARG_TEXT_PP(0)));
	PG_RETURN_VOID();
}

/*
 * meter.rebuild_all() → integer: meter.rebuild() in every tenant and environment that
 * has published meters (those the caller can see). Used after TRUNCATE of a tracked
 * table and by meter.track()/meter.untrack(); returns the number of meters rebuilt.
 */
PG_FUNCTION_INFO_V1(meter_rebuild_all);
Datum
meter_rebuild_all(PG_FUNCTION_ARGS)
{
	int64		rebuilt = 0;
	SPITupleTable *scopes;
	uint64		nscopes;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute("SELECT DISTINCT tenant_id, environment_id FROM meter.meters"
					" WHERE status OPERATOR(pg_catalog.=) 'published'::meter.status"
					" ORDER BY 1, 2", false, 0) != SPI_OK_SELECT)
		elog(ERROR, "listing scopes failed");
	scopes = SPI_tuptable;
	nscopes = SPI_processed;
	for (uint64 i = 0; i < nscopes; i++)
	{
		HeapTuple	row = scopes->vals[i];
		int			level = scope_enter(SPI_getvalue(row, scopes->tupdesc, 1),
										SPI_getvalue(row, scopes->tupdesc, 2));
		bool		isnull;

		if (SPI_execute("SELECT pg_catalog.count(*) FROM meter.rebuild()", false, 0) != SPI_OK_SELECT)
			elog(ERROR, "rebuilding failed");
		rebuilt += DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
											   1, &isnull));
		scope_leave(level);
	}
	SPI_finish();
	PG_RETURN_INT64(rebuilt);
}
