/*
 * matching.c — which meters count an event, and why or why not (SPEC §3).
 *
 * meter.matching_meters answers from the compiled-meter cache (meter_cache.c): a hash
 * lookup by event name, then the set's filter index (one property lookup per distinct
 * filter key).
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
#include "utils/inval.h"
#include "utils/lsyscache.h"

#include "aggregation.h"
#include "catalog.h"
#include "event_value.h"
#include "filters.h"
#include "meter_cache.h"
#include "scope.h"

/*
 * What one call site of meter.matching_meters keeps across its calls (fn_extra, in
 * fn_mcxt: it lives for one execution of the calling query): whether the current user
 * may read meter.meters, and room for the matching meters of a call.
 */
typedef struct MatchingCallSite
{
	Oid			checked_user;	/* the user whose SELECT privilege was checked */
	int			room;			/* size of out */
	const CompiledMeter **out;
} MatchingCallSite;

static MatchingCallSite *
matching_call_site(FunctionCallInfo fcinfo)
{
	MatchingCallSite *site = (MatchingCallSite *) fcinfo->flinfo->fn_extra;
	Oid			user = GetUserId();

	if (site == NULL)
	{
		site = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(MatchingCallSite));
		site->checked_user = InvalidOid;
		fcinfo->flinfo->fn_extra = site;
	}
	/* The cache is shared by every role of the session: check this one may read meters. */
	if (site->checked_user != user)
	{
		Oid			relid = catalog_meters_relid();

		if (!OidIsValid(relid))
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("table meter.meters does not exist"),
					 errhint("Run CREATE EXTENSION meter.")));
		if (pg_class_aclcheck(relid, user, ACL_SELECT) != ACLCHECK_OK)
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("permission denied for table meter.meters"),
					 errhint("GRANT SELECT ON meter.meters to the role, or grant it a meter role.")));
		site->checked_user = user;
	}
	return site;
}

/*
 * meter.matching_meters(event_name text, properties jsonb) → SETOF meter.meters: the
 * published meters of the current scope whose event name and filters match the event,
 * in id order. Each call first accepts pending invalidation messages, so that it sees
 * the meters committed before it started even inside a long transaction (SPEC §3), then
 * asks the compiled set's filter index (meter_cache_match). Rows go straight into the
 * tuplestore the executor reads (materialize mode); setDesc stays NULL because the row
 * type is meter.meters, which the executor already knows (execSRF.c checks setDesc only
 * when given, and frees it each call when it is a copy).
 */
PG_FUNCTION_INFO_V1(meter_matching_meters);
Datum
meter_matching_meters(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	MatchingCallSite *site;
	const char *tenant = scope_tenant();
	char	   *event_name;
	Jsonb	   *properties;
	const MeterSet *meters;
	Tuplestorestate *store;
	MemoryContext old;
	int			n;

	if (rsinfo == NULL || !IsA(rsinfo, ReturnSetInfo) ||
		(rsinfo->allowedModes & SFRM_Materialize) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("meter.matching_meters() called in a context that cannot accept a set"),
				 errhint("Call it in FROM, e.g. SELECT * FROM meter.matching_meters('api.call', '{}').")));
	site = matching_call_site(fcinfo);
	event_name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	properties = PG_GETARG_JSONB_P(1);

	AcceptInvalidationMessages();
	meters = meter_cache_lookup(tenant, scope_environment(), event_name);
	if (site->room < meters->nmeters)
	{
		int			room = Max(meters->nmeters, 16);

		if (site->out != NULL)
			pfree(site->out);
		site->out = MemoryContextAlloc(fcinfo->flinfo->fn_mcxt, sizeof(CompiledMeter *) * room);
		site->room = room;
	}
	n = meter_cache_match(meters, properties, site->out);

	old = MemoryContextSwitchTo(rsinfo->econtext->ecxt_per_query_memory);
	store = tuplestore_begin_heap(false, false, work_mem);
	MemoryContextSwitchTo(old);
	for (int i = 0; i < n; i++)
		tuplestore_puttuple(store, site->out[i]->row);
	rsinfo->returnMode = SFRM_Materialize;
	rsinfo->setResult = store;
	rsinfo->setDesc = NULL;
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
