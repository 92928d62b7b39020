/*
 * buckets.c — the time arithmetic of the engine (see buckets.h): slots, days, UTC
 * buckets and epoch seconds. The trigger, compaction, recomputation, meter.aggregate and
 * usage all go through these functions.
 */
#include "postgres.h"

#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/fmgrprotos.h"
#include "utils/numeric.h"

#include "buckets.h"

int64
bucket_subday_usecs(WindowSize size)
{
	switch (size)
	{
		case WINDOW_MINUTE:
			return USECS_PER_MINUTE;
		case WINDOW_15MIN:
			return 15 * USECS_PER_MINUTE;
		case WINDOW_30MIN:
			return 30 * USECS_PER_MINUTE;
		case WINDOW_HOUR:
			return USECS_PER_HOUR;
		case WINDOW_3HOUR:
			return 3 * USECS_PER_HOUR;
		case WINDOW_6HOUR:
			return 6 * USECS_PER_HOUR;
		case WINDOW_12HOUR:
			return 12 * USECS_PER_HOUR;
		default:
			return 0;
	}
}

TimestampTz
bucket_key_in_slot(TimestampTz ts, WindowSize bucket_size)
{
	if (bucket_size == WINDOW_MINUTE)
		return floor_div64(ts, USECS_PER_MINUTE) * USECS_PER_MINUTE;
	return slot_start(ts);
}

TimestampTz
bucket_start_utc(TimestampTz ts, WindowSize size)
{
	int64		width = bucket_subday_usecs(size);
	int64		origin = 0;
	TimestampTz start;

	if (TIMESTAMP_NOT_FINITE(ts) || size == WINDOW_NONE)
		return ts;
	if (size == WINDOW_DAY)
		width = USECS_PER_DAY;
	else if (size == WINDOW_WEEK)
	{
		/* The PostgreSQL epoch 2000-01-01 is a Saturday; 2000-01-03 a Monday. */
		width = 7 * USECS_PER_DAY;
		origin = 2 * USECS_PER_DAY;
	}
	else if (size == WINDOW_MONTH)
	{
		int			y,
					m,
					d;

		j2date((int) floor_div64(ts, USECS_PER_DAY) + POSTGRES_EPOCH_JDATE, &y, &m, &d);
		start = (int64) (date2j(y, m, 1) - POSTGRES_EPOCH_JDATE) * USECS_PER_DAY;
		return Max(start, MIN_TIMESTAMP);
	}
	start = origin + floor_div64(ts - origin, width) * width;
	return Max(start, MIN_TIMESTAMP);
}

Numeric
epoch_numeric(TimestampTz ts)
{
	const int64 offset = (int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY;

	/* ts + offset overflows int64 near the end of the range: take extract()'s path there. */
	if (!TIMESTAMP_NOT_FINITE(ts) && ts <= PG_INT64_MAX - offset)
		return int64_div_fast_to_numeric(ts + offset, 6);
	return DatumGetNumeric(DirectFunctionCall2(extract_timestamptz,
											   PointerGetDatum(cstring_to_text("epoch")),
											   TimestampTzGetDatum(ts)));
}
