/*
 * meter_cache.h — published meters compiled per (tenant, environment, event name) and
 * kept in backend memory (SPEC §3), each set with an index from (filter key, value) to
 * its candidate meters. Invalidated by relcache invalidations of meter.meters, which the
 * catalog trigger sends on every change: this backend drops its compiled meters at its
 * next command, other backends when they next accept invalidation messages after the
 * change commits (at their next transaction or lock, or AcceptInvalidationMessages()).
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

/* The index of a set's filters (meter_cache.c). */
typedef struct MeterIndex MeterIndex;

/* The published meters of one (tenant, environment, event name), ordered by id. */
typedef struct MeterSet
{
	int			nmeters;
	CompiledMeter *meters;
	MeterIndex *index;			/* (filter key, value) → meters; see meter_cache_match */
} MeterSet;

extern void meter_cache_register(void);

/*
 * The compiled meters for the key. The result stays valid until the next call (a call may
 * rebuild the cache after an invalidation): copy what must outlive it.
 */
extern const MeterSet *meter_cache_lookup(const char *tenant, const char *environment,
										  const char *event_name);

/*
 * The meters of the set whose filters match the properties (SPEC §3), written to out
 * (room for set->nmeters) in the set's order (by id); returns how many. One property
 * lookup per distinct filter key of the set, whatever the number of meters.
 */
extern int	meter_cache_match(const MeterSet *set, Jsonb *properties,
							  const CompiledMeter **out);

/* Copies of a compiled meter's definition in CurrentMemoryContext, for holders that
 * outlive the cache entry (a statement's accumulator). */
extern Aggregation *meter_cache_copy_aggregation(const CompiledMeter *meter);
extern Filters *meter_cache_copy_filters(const CompiledMeter *meter);

/* The row type of meter.meters, as the cached rows carry it. */
extern TupleDesc meter_cache_tupdesc(void);

#endif							/* METER_METER_CACHE_H */
