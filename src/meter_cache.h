/*
 * meter_cache.h — published meters compiled per (tenant, environment, event name) and
 * kept in backend memory (SPEC §3). Invalidated by relcache invalidations of
 * meter.meters, which the catalog trigger sends on every change: other backends drop
 * their compiled meters when the change commits, this one at the next command.
 */
#ifndef METER_METER_CACHE_H
#define METER_METER_CACHE_H

#include "access/htup.h"
#include "access/tupdesc.h"

#include "aggregation.h"
#include "filters.h"

typedef struct CompiledMeter
{
	char	   *id;
	Aggregation *aggregation;
	Filters    *filters;
	HeapTuple	row;			/* the meter.meters row, for matching_meters */
} CompiledMeter;

/* The published meters of one (tenant, environment, event name), ordered by id. */
typedef struct MeterSet
{
	int			nmeters;
	CompiledMeter *meters;
} MeterSet;

extern void meter_cache_register(void);

/*
 * The compiled meters for the key. The result stays valid until the next call (a call may
 * rebuild the cache after an invalidation): copy what must outlive it.
 */
extern const MeterSet *meter_cache_lookup(const char *tenant, const char *environment,
										  const char *event_name);

/* The meters of a set that count an event with these properties (SPEC §3), written to
 * out (room for set->nmeters) in meter-id order; returns how many. */
extern int	meter_cache_match(const MeterSet *set, Jsonb *properties, const CompiledMeter **out);

/* Copies of a compiled meter's definition in CurrentMemoryContext, for holders that
 * outlive the cache entry (a statement's accumulator). */
extern Aggregation *meter_cache_copy_aggregation(const CompiledMeter *meter);
extern Filters *meter_cache_copy_filters(const CompiledMeter *meter);

/* The row type of meter.meters, as the cached rows carry it. */
extern TupleDesc meter_cache_tupdesc(void);

#endif							/* METER_METER_CACHE_H */
