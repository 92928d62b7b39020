/*
 * forward.c — running a tenant's functions where its rows are (see forward.h).
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "nodes/makefuncs.h"
#include "parser/parse_func.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "forward.h"
#include "placement.h"
#include "scope.h"

/* Inside a meter.<name>_at call: the work is here or nowhere. */
static int	pushed_down = 0;

static void
pg_attribute_noreturn()
not_here(const char *tenant)
{
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("the shards of tenant \"%s\" are not on this node", tenant),
			 errdetail("A meter.*_at function runs where Citus pushes it down: on the node that holds "
					   "the tenant's shards."),
			 errhint("Run SELECT meter.distribute() on the coordinator: it makes them distributed functions.")));
}

/* Call meter.<name>_at(<the arguments>, tenant, environment) and return its result as
 * the function's own. */
static Datum
forward(FunctionCallInfo fcinfo)
{
	HeapTuple	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(fcinfo->flinfo->fn_oid));
	Form_pg_proc proc;
	int			nargs = PG_NARGS();
	Oid		   *types = palloc(sizeof(Oid) * (nargs + 2));
	Datum	   *values = palloc(sizeof(Datum) * (nargs + 2));
	char	   *nulls = palloc(nargs + 2);
	StringInfoData sql;
	bool		retset;
	bool		read_only;
	Datum		result = (Datum) 0;
	bool		isnull = true;
	MemoryContext caller = CurrentMemoryContext;

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "meter: function %u vanished", fcinfo->flinfo->fn_oid);
	proc = (Form_pg_proc) GETSTRUCT(tup);
	initStringInfo(&sql);
	appendStringInfo(&sql, "SELECT * FROM meter.%s(",
					 quote_identifier(psprintf("%s_at", NameStr(proc->proname))));
	for (int i = 0; i < nargs; i++)
	{
		types[i] = proc->proargtypes.values[i];
		values[i] = fcinfo->args[i].value;
		nulls[i] = fcinfo->args[i].isnull ? 'n' : ' ';
		appendStringInfo(&sql, "$%d, ", i + 1);
	}
	appendStringInfo(&sql, "$%d, $%d)", nargs + 1, nargs + 2);
	types[nargs] = TEXTOID;
	types[nargs + 1] = TEXTOID;
	values[nargs] = CStringGetTextDatum(scope_tenant());
	values[nargs + 1] = CStringGetTextDatum(scope_environment());
	nulls[nargs] = nulls[nargs + 1] = ' ';
	retset = proc->proretset;
	read_only = proc->provolatile != PROVOLATILE_VOLATILE;
	ReleaseSysCache(tup);

	if (retset)
		InitMaterializedSRF(fcinfo, 0);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	/* Bound parameters: Citus pushes the call down with their values (never a column). */
	if (SPI_execute_with_args(sql.data, nargs + 2, types, values, nulls, read_only, 0) != SPI_OK_SELECT)
		elog(ERROR, "meter: \"%s\" failed", sql.data);
	if (retset)
	{
		ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

		for (uint64 i = 0; i < SPI_processed; i++)
			tuplestore_puttuple(rsinfo->setResult, SPI_tuptable->vals[i]);
	}
	else if (SPI_processed == 1 && SPI_tuptable->tupdesc->natts == 1)
	{
		Form_pg_attribute att = TupleDescAttr(SPI_tuptable->tupdesc, 0);

		result = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		if (!isnull)
		{
			MemoryContext spi = MemoryContextSwitchTo(caller);

			result = datumCopy(result, att->attbyval, att->attlen);
			MemoryContextSwitchTo(spi);
		}
	}
	SPI_finish();
	if (retset)
		return (Datum) 0;
	fcinfo->isnull = isnull;
	return result;
}

bool
forward_elsewhere(void)
{
	return placement_distributed() && pushed_down == 0 &&
		placement_of_tenant(scope_tenant()) == NULL;
}

Datum
forward_run(FunctionCallInfo fcinfo, TenantFunction fn)
{
	Placement  *p;
	Placement  *previous;
	volatile Datum result = (Datum) 0;

	if (!placement_distributed())
		return fn(fcinfo);
	p = placement_of_tenant(scope_tenant());
	if (p == NULL)
	{
		if (pushed_down > 0)
			not_here(scope_tenant());
		return forward(fcinfo);
	}
	previous = placement_enter(p);
	PG_TRY();
	{
		result = fn(fcinfo);
	}
	PG_FINALLY();
	{
		placement_leave(previous);
	}
	PG_END_TRY();
	return result;
}

/* The function a twin stands for: meter.<name> with the twin's arguments but the last two. */
static pg_noinline FmgrInfo *
base_function(FunctionCallInfo fcinfo)
{
	FmgrInfo   *base = fcinfo->flinfo->fn_extra;

	if (base == NULL)
	{
		HeapTuple	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(fcinfo->flinfo->fn_oid));
		Form_pg_proc proc;
		char	   *name;
		int			len;
		Oid			oid;

		if (!HeapTupleIsValid(tup))
			elog(ERROR, "meter: function %u vanished", fcinfo->flinfo->fn_oid);
		proc = (Form_pg_proc) GETSTRUCT(tup);
		name = pstrdup(NameStr(proc->proname));
		len = strlen(name);
		if (len < 4 || strcmp(name + len - 3, "_at") != 0 || proc->pronargs < 2)
			elog(ERROR, "meter: meter_at serves meter.<name>_at(…, tenant, environment) only");
		name[len - 3] = '\0';
		oid = LookupFuncName(list_make2(makeString("meter"), makeString(name)), proc->pronargs - 2,
							 proc->proargtypes.values, false);
		ReleaseSysCache(tup);
		base = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(FmgrInfo));
		fmgr_info_cxt(oid, base, fcinfo->flinfo->fn_mcxt);
		fcinfo->flinfo->fn_extra = base;
	}
	return base;
}

/*
 * meter.<name>_at(<the arguments of meter.<name>>, tenant text, environment text) — the
 * twin a function forwards to: Citus pushes it down to the node holding the tenant's
 * shards, where it calls meter.<name> inside that scope (as a SET clause would: restored
 * at the end). Not STRICT: the function's own arguments may be NULL.
 */
PG_FUNCTION_INFO_V1(meter_at);
Datum
meter_at(PG_FUNCTION_ARGS)
{
	FmgrInfo   *base = base_function(fcinfo);
	int			nargs = PG_NARGS() - 2;
	char	   *tenant;
	char	   *environment;
	int			level;
	volatile Datum result = (Datum) 0;
	volatile bool isnull = false;

	if (PG_ARGISNULL(nargs) || PG_ARGISNULL(nargs + 1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("tenant and environment must not be null"),
				 errhint("Call meter.%s itself: it passes the current scope.",
						 get_func_name(base->fn_oid))));
	tenant = text_to_cstring(PG_GETARG_TEXT_PP(nargs));
	environment = text_to_cstring(PG_GETARG_TEXT_PP(nargs + 1));
	if (placement_of_tenant(tenant) == NULL)
		not_here(tenant);
	level = scope_enter(tenant, environment);
	pushed_down++;
	PG_TRY();
	{
		LOCAL_FCINFO(call, FUNC_MAX_ARGS);

		InitFunctionCallInfoData(*call, base, nargs, fcinfo->fncollation, NULL, fcinfo->resultinfo);
		for (int i = 0; i < nargs; i++)
			call->args[i] = fcinfo->args[i];
		result = FunctionCallInvoke(call);
		isnull = call->isnull;
	}
	PG_FINALLY();
	{
		pushed_down--;
	}
	PG_END_TRY();
	scope_leave(level);
	fcinfo->isnull = isnull;
	return result;
}

/* meter.tenant_elsewhere() → boolean: are the current tenant's rows on another node (so
 * that a function of its scope forwards to its meter.<name>_at twin)? */
PG_FUNCTION_INFO_V1(meter_tenant_elsewhere);
Datum
meter_tenant_elsewhere(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(forward_elsewhere());
}

/* meter.distributed() → boolean: are the extension's tables distributed by Citus? */
PG_FUNCTION_INFO_V1(meter_distributed);
Datum
meter_distributed(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(placement_distributed());
}
