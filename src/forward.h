/*
 * forward.h — functions of a tenant's scope run where the tenant's rows are (SPEC §9).
 *
 * On one server every function runs where it is called. On a Citus cluster a tenant's
 * events, pending and compacted rows live in one shard group, on one node; the functions
 * that read or write them (usage, verify, compact, rebuild, …) run there, against the
 * shards themselves (placement.h), in one snapshot and under that node's locks — the same
 * code, the same answers as on one server. Called anywhere else (the coordinator, another
 * worker), such a function forwards the call to its twin meter.<name>_at(<the same
 * arguments>, tenant, environment): a distributed function (meter.distribute() creates
 * them, distribution argument tenant, co-located with meter.events, force_delegation) that
 * Citus pushes down to the tenant's node, passing the scope explicitly — the session's
 * settings do not travel to workers. There the twin enters the scope and calls the
 * function itself, which then runs locally.
 */
#ifndef METER_FORWARD_H
#define METER_FORWARD_H

#include "fmgr.h"

typedef Datum (*TenantFunction) (FunctionCallInfo fcinfo);

/*
 * Run fn (the body of the SQL function being called) for the current scope: here, in the
 * placement of the tenant's rows, when this node holds them (always on one server), or
 * forwarded to meter.<name>_at on the node that does. Set-returning functions return in
 * materialize mode.
 */
extern Datum forward_run(FunctionCallInfo fcinfo, TenantFunction fn);

/* Would forward_run forward a call for the current scope? */
extern bool forward_elsewhere(void);

#endif							/* METER_FORWARD_H */
