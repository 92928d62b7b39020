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
#include "meter_def.h"
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
	MeterDef   *m = meter_def_find(meter_id, scope_tenant(), scope_environment(), NULL);
	char	   *reason;

	if (m == NULL || strcmp(m->status, "deleted") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("meter \"%s\" not found", meter_id),
				 errhint("meter.list_meters() lists the meters of the current tenant and environment.")));
	if (strcmp(m->status, "published") != 0)
		reason = psprintf("meter \"%s\" is %s: it counts no new events", meter_id, m->status);
	else if (strcmp(m->event_name, event_name) != 0)
		reason = psprintf("event name \"%s\" is not the meter's event name \"%s\"",
						  event_name, m->event_name);
	else
	{
		reason = filters_explain(m->filters, properties);
		if (reason == NULL)
			reason = event_value_explain(m->agg, properties);
		if (reason == NULL)
			reason = psprintf("the event counts for meter \"%s\"", meter_id);
	}
	PG_RETURN_TEXT_P(cstring_to_text(reason));
}
