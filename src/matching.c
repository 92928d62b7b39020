/*
 * matching.c — which meters count an event, and why or why not (SPEC §3).
 *
 * meter.matching_meters answers from the compiled-meter cache (meter_cache.c): a hash
 * lookup by event name, then each candidate's filters against the properties.
 * meter.explain_match is the "why isn't my event counted" question, answered in words.
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"

#include "aggregation.h"
#include "event_value.h"
#include "filters.h"
#include "meter_cache.h"
#include "scope.h"

/*
 * meter.matching_meters(event_name text, properties jsonb) → SETOF meter.meters: the
 * published meters of the current scope whose event name and filters match the event.
 */
PG_FUNCTION_INFO_V1(meter_matching_meters);
Datum
meter_matching_meters(PG_FUNCTION_ARGS)
{
	char	   *event_name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	Jsonb	   *properties = PG_GETARG_JSONB_P(1);
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	const char *tenant = scope_tenant();
	const MeterSet *meters;
	Oid			nsp = get_namespace_oid("meter", false);

	/* The cache is shared by every role of the session: check this one may read meters. */
	if (pg_class_aclcheck(get_relname_relid("meters", nsp), GetUserId(), ACL_SELECT) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for table meter.meters"),
				 errhint("GRANT SELECT ON meter.meters to the role, or grant it a meter role.")));

	meters = meter_cache_lookup(tenant, scope_environment(), event_name);
	InitMaterializedSRF(fcinfo, 0);
	for (int i = 0; i < meters->nmeters; i++)
	{
		const CompiledMeter *m = &meters->meters[i];

		if (filters_match(m->filters, properties))
			tuplestore_puttuple(rsinfo->setResult, m->row);
	}
	return (Datum) 0;
}

/*
 * meter.explain_match(meter_id text, event_name text, properties jsonb) → text: whether
 * the event counts for the meter, and if not, the first reason why not.
 */
PG_FUNCTION_INFO_V1(meter_explain_match);
Datum
meter_explain_match(PG_FUNCTION_ARGS)
{
	char	   *meter_id = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *event_name = text_to_cstring(PG_GETARG_TEXT_PP(1));
	Jsonb	   *properties = PG_GETARG_JSONB_P(2);
	Oid			types[3] = {TEXTOID, TEXTOID, TEXTOID};
	Datum		args[3];
	HeapTuple	row;
	TupleDesc	desc;
	bool		isnull;
	char	   *status;
	char	   *meter_event;
	char	   *reason;
	char	   *result;
	Aggregation *agg;

	args[0] = PG_GETARG_DATUM(0);
	args[1] = CStringGetTextDatum(scope_tenant());
	args[2] = CStringGetTextDatum(scope_environment());
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args("SELECT status, event_name, filters, aggregation FROM meter.meters"
							  " WHERE id OPERATOR(pg_catalog.=) $1"
							  " AND tenant_id OPERATOR(pg_catalog.=) $2"
							  " AND environment_id OPERATOR(pg_catalog.=) $3"
							  " AND status OPERATOR(pg_catalog.<>) 'deleted'::meter.status",
							  3, types, args, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "looking up the meter failed");
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("meter \"%s\" not found", meter_id),
				 errhint("meter.list_meters() lists the meters of the current tenant and environment.")));
	row = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	status = SPI_getvalue(row, desc, 1);
	meter_event = SPI_getvalue(row, desc, 2);
	if (strcmp(status, "published") != 0)
		reason = psprintf("meter \"%s\" is %s: it counts no new events", meter_id, status);
	else if (strcmp(meter_event, event_name) != 0)
		reason = psprintf("event name \"%s\" is not the meter's event name \"%s\"",
						  event_name, meter_event);
	else
	{
		Filters    *filters = filters_unpack((struct varlena *) DatumGetPointer(SPI_getbinval(row, desc, 3, &isnull)));

		agg = aggregation_unpack((struct varlena *) DatumGetPointer(SPI_getbinval(row, desc, 4, &isnull)));
		reason = filters_explain(filters, properties);
		if (reason == NULL)
			reason = event_value_explain(agg, properties);
		if (reason == NULL)
			reason = psprintf("the event counts for meter \"%s\"", meter_id);
	}
	result = SPI_palloc(strlen(reason) + 1);
	strcpy(result, reason);
	SPI_finish();
	PG_RETURN_TEXT_P(cstring_to_text(result));
}
