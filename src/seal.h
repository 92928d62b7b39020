/*
 * seal.h — sealed periods (retention): once a scope is sealed before a time, its usage
 * before that time is frozen in the compacted rows. Events written with an earlier
 * timestamp are stored but not counted (they show in meter.skipped), removals of earlier
 * events change nothing, and verify, rebuild and recomputation leave sealed time alone —
 * so the raw events of sealed periods may be dropped.
 */
#ifndef METER_SEAL_H
#define METER_SEAL_H

#include "datatype/timestamp.h"

/* The seal of a scope (DT_NOBEGIN when none): the newest committed (cached per backend,
 * invalidated when seals change). */
extern TimestampTz seal_of(const char *tenant, const char *environment);

extern void seal_register(void);

#endif							/* METER_SEAL_H */
