/*
 * recompute.h — a meter's stored usage recomputed from the raw events of every tracked
 * table: when a meter is created, redefined or published again, by meter.rebuild(), and
 * when the set of tracked tables changes. It goes through the same path as the trigger:
 * the raw events are accumulated into pending partial states, then compacted.
 */
#ifndef METER_RECOMPUTE_H
#define METER_RECOMPUTE_H

#include "meter_def.h"

/* Recompute one meter (any status) from the raw events; takes its tenant's lock in
 * exclusive mode. Returns the events it counted. */
extern int64 recompute_meter(const MeterDef *m);

/* Forget everything stored for a meter (its row was deleted). */
extern void recompute_forget(const char *tenant, const char *environment, const char *meter_id);

#endif							/* METER_RECOMPUTE_H */
