/*
 * aggregate.h — the meter.aggregate aggregate (SPEC §8): rules shared with its state's
 * input functions.
 */
#ifndef METER_AGGREGATE_H
#define METER_AGGREGATE_H

#include "datatype/timestamp.h"

#include "aggregation.h"

/* Start of the bucket holding ts, aligned in UTC: MINUTE … 12HOUR on multiples of the
 * width since UTC midnight, DAY at UTC midnight, WEEK on Monday 00:00 UTC, MONTH on the
 * 1st 00:00 UTC. Infinite timestamps are their own bucket. */
extern TimestampTz aggregate_bucket_start(TimestampTz ts, WindowSize size);

#endif							/* METER_AGGREGATE_H */
