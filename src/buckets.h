/*
 * buckets.h — the time arithmetic of the engine, in one place (SPEC §7, §8).
 *
 * Rollups hold one partial state per 15-minute UTC slot. Every zone offset in use is a
 * multiple of 15 minutes, so usage windows of 15 minutes or more in any zone are unions of
 * whole slots. Compacted rows hold the slots of one UTC day (96 of them). meter.aggregate's
 * bucket_size buckets are aligned in UTC.
 */
#ifndef METER_BUCKETS_H
#define METER_BUCKETS_H

#include "datatype/timestamp.h"
#include "utils/date.h"

#include "aggregation.h"

#define SLOT_USECS		(15 * USECS_PER_MINUTE)
#define SLOTS_PER_DAY	96

/* Floor division (toward minus infinity) for signed 64-bit numbers. */
static inline int64
floor_div64(int64 a, int64 b)
{
	int64		q = a / b;

	return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

/* Start of the 15-minute UTC slot holding a finite ts. */
static inline TimestampTz
slot_start(TimestampTz ts)
{
	return floor_div64(ts, SLOT_USECS) * SLOT_USECS;
}

/* The UTC day (days since 2000-01-01, a DateADT) holding a finite ts. */
static inline DateADT
slot_day(TimestampTz ts)
{
	return (DateADT) floor_div64(ts, USECS_PER_DAY);
}

/* Index of the slot within its UTC day, 0..95. */
static inline int
slot_index(TimestampTz ts)
{
	return (int) ((ts - (TimestampTz) slot_day(ts) * USECS_PER_DAY) / SLOT_USECS);
}

/* The start of slot `index` of a UTC day. */
static inline TimestampTz
slot_at(DateADT day, int index)
{
	return (TimestampTz) day * USECS_PER_DAY + (TimestampTz) index * SLOT_USECS;
}

/* True when ts starts a slot. */
static inline bool
slot_aligned(TimestampTz ts)
{
	return ts % SLOT_USECS == 0;
}

/*
 * The key a bucketed MAX keeps a value under inside one slot's partial state: the
 * minute for MINUTE buckets (finer than a slot), else the slot itself.
 */
extern TimestampTz bucket_key_in_slot(TimestampTz ts, WindowSize bucket_size);

/* Start of the UTC-aligned bucket_size bucket holding ts (meter.aggregate): MINUTE …
 * 12HOUR on multiples of the width since UTC midnight, DAY at UTC midnight, WEEK on
 * Monday 00:00 UTC, MONTH on the 1st 00:00 UTC. Infinite timestamps are their own bucket. */
extern TimestampTz bucket_start_utc(TimestampTz ts, WindowSize size);

/* Seconds since 1970 as an exact numeric with 6 decimals, like extract(epoch from ts). */
extern Numeric epoch_numeric(TimestampTz ts);

/* The length of MINUTE … 12HOUR buckets in microseconds; 0 for DAY and longer. */
extern int64 bucket_subday_usecs(WindowSize size);

#endif							/* METER_BUCKETS_H */
