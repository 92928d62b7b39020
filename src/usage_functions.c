/*
 * usage_functions.c — the SQL usage functions (SPEC §8) over the engine of usage.c:
 * meter.usage and meter.usage_from_events.
 */
#include "postgres.h"

#include "access/relation.h"
#include "catalog/pg_type.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/regproc.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

#include "event_table.h"
#include "forward.h"
#include "usage.h"
#include "windows.h"

/* Arguments shared by every usage function: start_time and end_time at start_arg and
 * the next, window_size, timezone and billing_anchor where each signature has them. */
void
usage_window_args(FunctionCallInfo fcinfo, UsageRequest *r, int start_arg, int size_arg,
				  int tz_arg, int anchor_arg)
{
	if (PG_ARGISNULL(start_arg) || PG_ARGISNULL(start_arg + 1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("start_time and end_time must not be null"),
				 errhint("Pass the range [start_time, end_time) to report usage over.")));
	r->start = PG_GETARG_TIMESTAMPTZ(start_arg);
	r->end = PG_GETARG_TIMESTAMPTZ(start_arg + 1);
	r->window_size = PG_ARGISNULL(size_arg) ? WINDOW_NONE :
		(WindowSize) window_size_from_enum(PG_GETARG_OID(size_arg));
	r->tz = usage_timezone(fcinfo, tz_arg);
	r->has_anchor = !PG_ARGISNULL(anchor_arg);
	r->anchor = r->has_anchor ? PG_GETARG_TIMESTAMPTZ(anchor_arg) : 0;
}

const char *
usage_text_arg(FunctionCallInfo fcinfo, int n)
{
	return PG_ARGISNULL(n) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(n));
}

/* A source table for the *_from_events functions: it must have the event columns. */
Oid
usage_source_arg(FunctionCallInfo fcinfo, int n)
{
	volatile Oid relid;
	Relation	rel;

	if (PG_ARGISNULL(n))
		return InvalidOid;
	relid = PG_GETARG_OID(n);
	rel = relation_open(relid, AccessShareLock);
	PG_TRY();
	{
		EventColumns cols;

		event_columns_find(RelationGetDescr(rel), RelationGetRelationName(rel), &cols);
	}
	PG_CATCH();
	{
		ErrorData  *e;

		MemoryContextSwitchTo(fcinfo->flinfo->fn_mcxt);
		e = CopyErrorData();
		FlushErrorState();
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("source table %s lacks event columns",
						DatumGetCString(DirectFunctionCall1(regclassout, ObjectIdGetDatum(relid)))),
				 errdetail("%s.", e->message),
				 errhint("An event table has the columns of meter.events: tenant_id, environment_id, event_name, customer_id, external_customer_id, \"timestamp\" timestamptz, properties jsonb.")));
	}
	PG_END_TRY();
	relation_close(rel, AccessShareLock);
	return relid;
}

static Datum
usage_rows(FunctionCallInfo fcinfo, UsageRequest *r)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Usage		u;
	Numeric    *values;
	bool	   *nulls;

	InitMaterializedSRF(fcinfo, 0);
	usage_compute(&u, r);
	usage_values(&u, 0, &values, &nulls);
	for (int i = 0; i < usage_nwindows(&u); i++)
	{
		Datum		row[3];
		bool		rownulls[3] = {false, false, nulls[i]};

		row[0] = TimestampTzGetDatum(u.ws[u.first_window + i]);
		row[1] = TimestampTzGetDatum(u.we[u.first_window + i]);
		row[2] = nulls[i] ? (Datum) 0 : NumericGetDatum(values[i]);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, row, rownulls);
	}
	return (Datum) 0;
}

/* meter.usage, run where the tenant's rows are (forward.h). */
static Datum
usage_here(FunctionCallInfo fcinfo)
{
	UsageRequest r = {0};

	r.meter = meter_def_get(usage_text_arg(fcinfo, 0));
	usage_window_args(fcinfo, &r, 1, 5, 6, 7);
	r.customer = usage_text_arg(fcinfo, 3);
	r.external_customer = usage_text_arg(fcinfo, 4);
	return usage_rows(fcinfo, &r);
}

/*
 * meter.usage(meter_id, start_time, end_time, customer_id, external_customer_id,
 * window_size, timezone, billing_anchor) → TABLE(window_start, window_end, value): usage
 * of a meter of the current scope per window over [start_time, end_time), served from
 * the stored partial states (raw events only for slots a boundary cuts). Not STRICT: the
 * optional arguments default to NULL.
 */
PG_FUNCTION_INFO_V1(meter_usage);
Datum
meter_usage(PG_FUNCTION_ARGS)
{
	return forward_run(fcinfo, usage_here);
}

/* meter.usage_from_events, run where the tenant's rows are (forward.h). */
static Datum
usage_from_events_here(FunctionCallInfo fcinfo)
{
	UsageRequest r = {0};

	r.meter = meter_def_get(usage_text_arg(fcinfo, 0));
	usage_window_args(fcinfo, &r, 1, 5, 6, 7);
	r.customer = usage_text_arg(fcinfo, 3);
	r.external_customer = usage_text_arg(fcinfo, 4);
	r.from_events = true;
	r.source = usage_source_arg(fcinfo, 8);
	return usage_rows(fcinfo, &r);
}

/*
 * meter.usage_from_events(…the same…, source regclass) → the same answer from the raw
 * events only: every tracked table, or source (which need not be tracked).
 */
PG_FUNCTION_INFO_V1(meter_usage_from_events);
Datum
meter_usage_from_events(PG_FUNCTION_ARGS)
{
	return forward_run(fcinfo, usage_from_events_here);
}
