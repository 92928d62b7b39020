/*
 * windows.c — usage windows (SPEC §8).
 *
 * meter.windows(start, end, window_size, timezone, billing_anchor) lists the windows that
 * partition [start, end): aligned to the wall clock of an IANA time zone, the first and
 * the last clipped to start and end. The arithmetic is done on the zone's own transition
 * table (pg_next_dst_boundary), so a local DAY is 23 or 25 hours across a DST change and
 * zones with 30- or 45-minute offsets (Asia/Kolkata, Asia/Kathmandu) align correctly.
 *
 * What a boundary is, exactly — the choice for times a DST change skips or repeats:
 *   - MINUTE … 12HOUR (N minutes, a divisor of a day): every instant at which the wall
 *     clock shows a multiple of N minutes after local midnight is a boundary, each time
 *     it shows it. A fall-back day therefore has 25 HOUR windows (the repeated hour is a
 *     window of its own). When the clock jumps forward over a multiple (02:00 on a
 *     spring-forward day), the instant of the jump is the boundary instead.
 *   - DAY, WEEK, MONTH: the boundary for a local date and time L is the first instant at
 *     which the wall clock reads L or later. A local time that does not exist (02:30 on a
 *     spring-forward day) starts at the instant of the jump (03:00 local); one that exists
 *     twice (01:30 on a fall-back day) starts at its first occurrence.
 *   - MONTH windows start on the anchor's local day of month at its local time of day,
 *     clamped to the month's last day (an anchor on the 31st gives Jan 31, Feb 29, Mar 31,
 *     Apr 30, …); with no anchor, on the 1st at 00:00. The anchor is read in the query's
 *     time zone and only matters for MONTH.
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/timestamp.h"

#include "windows.h"

/* Seconds from the Unix epoch to PostgreSQL's (2000-01-01). */
#define EPOCH_DIFF_SECS ((pg_time_t) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY)

/* A local boundary more than this past `end` (wall clock vs UTC) is past `end` for sure:
 * no zone is more than a day off UTC. */
#define OFFSET_MARGIN (2 * USECS_PER_DAY)

/* Length of the sub-day sizes, in microseconds (0 for DAY and longer). */
static int64
subday_step(WindowSize size)
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

/* The shortest a window of the size normally is (for the early too-many check). */
static double
nominal_seconds(WindowSize size)
{
	int64		step = subday_step(size);

	if (step > 0)
		return (double) step / USECS_PER_SEC;
	switch (size)
	{
		case WINDOW_DAY:
			return 23.0 * SECS_PER_HOUR;
		case WINDOW_WEEK:
			return 7.0 * SECS_PER_DAY - SECS_PER_HOUR;
		case WINDOW_MONTH:
			return 28.0 * SECS_PER_DAY - SECS_PER_HOUR;
		default:
			return 1.0;
	}
}

static inline int64
floor_div(int64 a, int64 b)
{
	int64		q = a / b;

	return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* The zone's state at an instant: its UTC offset and the next change of it. */
typedef struct ZoneState
{
	int64		offset;			/* local = utc + offset, microseconds */
	bool		has_next;
	TimestampTz next;			/* the next transition (> the instant) */
	int64		next_offset;	/* the offset from then on */
} ZoneState;

static void
zone_at(TimestampTz t, const pg_tz *tz, ZoneState *zs)
{
	pg_time_t	secs = (pg_time_t) floor_div(t, USECS_PER_SEC) + EPOCH_DIFF_SECS;
	long int	before_off = 0,
				after_off = 0;
	int			before_dst,
				after_dst;
	pg_time_t	boundary = 0;
	int			r;

	r = pg_next_dst_boundary(&secs, &before_off, &before_dst, &boundary,
							 &after_off, &after_dst, tz);
	if (r < 0)
	{
		/* Not reached with PostgreSQL's implementation; fall back to localtime. */
		struct pg_tm *tm = pg_localtime(&secs, tz);

		if (tm == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
					 errmsg("timestamp out of range")));
		before_off = tm->tm_gmtoff;
	}
	zs->offset = (int64) before_off * USECS_PER_SEC;
	zs->has_next = (r == 1 &&
					boundary - EPOCH_DIFF_SECS < END_TIMESTAMP / USECS_PER_SEC);
	if (zs->has_next)
	{
		zs->next = (TimestampTz) (boundary - EPOCH_DIFF_SECS) * USECS_PER_SEC;
		zs->next_offset = (int64) after_off * USECS_PER_SEC;
	}
}

/* Wall-clock time (a Timestamp in the zone) of an instant. */
static Timestamp
local_of(TimestampTz t, const pg_tz *tz)
{
	ZoneState	zs;

	zone_at(t, tz, &zs);
	return t + zs.offset;
}

/*
 * The first instant at which the wall clock reads `local` or later: the instant itself
 * when it exists (its first occurrence when it exists twice), the instant of the jump
 * when a DST change skips it.
 */
static TimestampTz
first_instant_at(Timestamp local, const pg_tz *tz)
{
	TimestampTz p = local - 3 * USECS_PER_DAY;	/* its wall clock is before `local` */
	int			guard;

	for (guard = 0; guard < 1000; guard++)
	{
		ZoneState	zs;
		TimestampTz c;

		zone_at(p, tz, &zs);
		c = local - zs.offset;	/* when the clock reads `local` at this offset */
		if (zs.has_next && zs.next <= c)
		{
			if (zs.next + zs.next_offset >= local)
				return zs.next; /* the clock jumps to `local` or past it */
			p = zs.next;		/* still before `local` after the change */
			continue;
		}
		return c;
	}
	elog(ERROR, "time zone transitions do not converge");
	return 0;					/* keep the compiler quiet */
}

/*
 * The first instant after p at which the wall clock shows a multiple of `step` after
 * local midnight, or jumps forward over one.
 */
static TimestampTz
next_clock_multiple(TimestampTz p, int64 step, const pg_tz *tz)
{
	int			guard;

	for (guard = 0; guard < 1000; guard++)
	{
		ZoneState	zs;
		Timestamp	local;
		Timestamp	m;
		TimestampTz c;

		zone_at(p, tz, &zs);
		local = p + zs.offset;
		m = floor_div(local, step) * step + step;	/* next multiple on the clock */
		c = m - zs.offset;
		if (zs.has_next && zs.next <= c)
		{
			Timestamp	after = zs.next + zs.next_offset;

			if (zs.next_offset > zs.offset && after >= m)
				return zs.next; /* jumped forward onto or over m */
			if (zs.next_offset < zs.offset && after - floor_div(after, step) * step == 0)
				return zs.next; /* fell back onto a multiple: it shows again */
			p = zs.next;
			continue;
		}
		return c;
	}
	elog(ERROR, "time zone transitions do not converge");
	return 0;
}

/* Wall-clock midnight starting the given day (days since 2000-01-01). */
static inline Timestamp
day_start(int64 day)
{
	return day * USECS_PER_DAY;
}

/* Wall-clock start of the MONTH window in (year, month) for the iterator's anchor. */
static Timestamp
month_label(const WindowIter *it, int year, int month)
{
	int			last = day_tab[isleap(year) ? 1 : 0][month - 1];
	int			mday = Min(it->anchor_mday, last);

	return day_start((int64) date2j(year, month, mday) - POSTGRES_EPOCH_JDATE) + it->anchor_time;
}

static void
month_advance(int *year, int *month, int by)
{
	int64		m = (int64) *year * 12 + (*month - 1) + by;

	/* floor division: years before 1 AD are zero or negative */
	*year = (int) floor_div(m, 12);
	*month = (int) (m - floor_div(m, 12) * 12) + 1;
}

pg_tz *
windows_timezone(const char *name)
{
	pg_tz	   *tz = NULL;

	/* FlexPrice's backward-compatible default: no zone is UTC. */
	if (name == NULL || name[0] == '\0')
		name = "UTC";
	if (strlen(name) <= TZ_STRLEN_MAX)
		tz = pg_tzset(name);
	if (tz == NULL || !pg_tz_acceptable(tz))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("time zone \"%.100s\" not recognized", name),
				 tz ? errdetail("The time zone uses leap seconds.") :
				 errdetail("Windows are aligned to the wall clock of an IANA time zone."),
				 errhint("Use an IANA time zone name such as 'UTC', 'Europe/Berlin' or 'America/New_York'.")));
	return tz;
}

static void
too_many_windows(double about)
{
	ereport(ERROR,
			(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
			 errmsg("too many windows"),
			 errdetail("The range would be split into about %.0f windows; the limit is %d.",
					   about, WINDOWS_MAX),
			 errhint("Use a larger window_size or a shorter range.")));
}

void
windows_begin(WindowIter *it, TimestampTz start, TimestampTz end,
			  WindowSize size, pg_tz *tz, bool has_anchor, TimestampTz anchor)
{
	Timestamp	local;
	int64		day;

	if (TIMESTAMP_NOT_FINITE(start) || TIMESTAMP_NOT_FINITE(end))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("start_time and end_time must be finite"),
				 errdetail("Usage is reported over a bounded range [start_time, end_time)."),
				 errhint("Pass finite timestamps, e.g. the billing period's start and end.")));
	if (end <= start)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("end_time must be after start_time"),
				 errdetail("The range [start_time, end_time) is empty."),
				 errhint("Swap the arguments, or widen the range.")));
	if (has_anchor && TIMESTAMP_NOT_FINITE(anchor))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("billing_anchor must be finite"),
				 errhint("Pass the timestamp the customer's billing cycle started at, or NULL.")));

	memset(it, 0, sizeof(*it));
	it->start = start;
	it->end = end;
	it->size = size;
	it->tz = tz;
	it->cur = start;
	it->anchor_mday = 1;
	it->anchor_time = 0;

	if (size == WINDOW_NONE)
		return;

	{
		double		about = ((double) end - (double) start) / USECS_PER_SEC / nominal_seconds(size);

		if (about > WINDOWS_MAX)
			too_many_windows(about);
	}

	local = local_of(start, tz);
	day = floor_div(local, USECS_PER_DAY);
	switch (size)
	{
		case WINDOW_DAY:
			it->label = day_start(day + 1);
			break;
		case WINDOW_WEEK:
			{
				/* j2day: 0 = Sunday; weeks start on Monday */
				int			dow = j2day((int) (day + POSTGRES_EPOCH_JDATE));

				it->label = day_start(day - (dow + 6) % 7 + 7);
				break;
			}
		case WINDOW_MONTH:
			{
				int			y,
							m,
							d;

				if (has_anchor)
				{
					Timestamp	alocal = local_of(anchor, tz);
					int64		aday = floor_div(alocal, USECS_PER_DAY);

					j2date((int) (aday + POSTGRES_EPOCH_JDATE), &y, &m, &d);
					it->anchor_mday = d;
					it->anchor_time = alocal - aday * USECS_PER_DAY;
				}
				j2date((int) (day + POSTGRES_EPOCH_JDATE), &y, &m, &d);
				/* the window containing start began this month or the one before */
				if (month_label(it, y, m) > local)
					month_advance(&y, &m, -1);
				month_advance(&y, &m, 1);
				it->year = y;
				it->month = m;
				break;
			}
		default:
			break;				/* sub-day sizes need no state */
	}
}

/* The next boundary after it->cur, or it->end when there is none before it. */
static TimestampTz
next_boundary(WindowIter *it)
{
	int64		step = subday_step(it->size);

	if (it->size == WINDOW_NONE)
		return it->end;
	if (step > 0)
	{
		TimestampTz b = next_clock_multiple(it->cur, step, it->tz);

		return Min(b, it->end);
	}
	for (;;)
	{
		Timestamp	label;
		TimestampTz b;

		if (it->size == WINDOW_MONTH)
		{
			label = month_label(it, it->year, it->month);
			if (label > it->end + OFFSET_MARGIN)
				return it->end;
			month_advance(&it->year, &it->month, 1);
		}
		else
		{
			label = it->label;
			if (label > it->end + OFFSET_MARGIN)
				return it->end;
			it->label += (it->size == WINDOW_WEEK ? 7 : 1) * USECS_PER_DAY;
		}
		b = first_instant_at(label, it->tz);
		/* A label can map to an instant already passed (a day a zone skipped). */
		if (b > it->cur)
			return Min(b, it->end);
	}
}

bool
windows_next(WindowIter *it, TimestampTz *ws, TimestampTz *we)
{
	TimestampTz b;

	if (it->cur >= it->end)
		return false;
	if (++it->count > WINDOWS_MAX)
		too_many_windows((double) it->count);
	b = next_boundary(it);
	*ws = it->cur;
	*we = b;
	it->cur = b;
	return true;
}

/*
 * meter.windows(start_time, end_time, window_size, timezone, billing_anchor) → the
 * windows [window_start, window_end) that partition [start_time, end_time), aligned in
 * the time zone (see the head of this file for DST gaps and overlaps). A NULL
 * window_size gives one window; a NULL or empty timezone means UTC; a NULL
 * billing_anchor means MONTH windows start on the 1st at 00:00. Not STRICT for those
 * defaults; NULL start_time or end_time is an error. IMMUTABLE like timezone(text, timestamptz): the result
 * depends on the arguments and the time zone database only.
 */
PG_FUNCTION_INFO_V1(meter_windows);
Datum
meter_windows(PG_FUNCTION_ARGS)
{
	FuncCallContext *funcctx;
	WindowIter *it;
	TimestampTz ws,
				we;

	if (SRF_IS_FIRSTCALL())
	{
		MemoryContext oldcontext;
		TupleDesc	tupdesc;
		WindowSize	size;
		pg_tz	   *tz;
		char	   *tzname;

		if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("start_time and end_time must not be null"),
					 errhint("Pass the range [start_time, end_time) to split into windows.")));

		funcctx = SRF_FIRSTCALL_INIT();
		oldcontext = MemoryContextSwitchTo(funcctx->multi_call_memory_ctx);

		if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
			elog(ERROR, "return type must be a row type");
		funcctx->tuple_desc = BlessTupleDesc(tupdesc);

		size = PG_ARGISNULL(2) ? WINDOW_NONE : (WindowSize) window_size_from_enum(PG_GETARG_OID(2));
		tzname = PG_ARGISNULL(3) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(3));
		tz = windows_timezone(tzname);

		it = palloc(sizeof(WindowIter));
		windows_begin(it, PG_GETARG_TIMESTAMPTZ(0), PG_GETARG_TIMESTAMPTZ(1), size, tz,
					  !PG_ARGISNULL(4), PG_ARGISNULL(4) ? 0 : PG_GETARG_TIMESTAMPTZ(4));
		funcctx->user_fctx = it;
		MemoryContextSwitchTo(oldcontext);
	}

	funcctx = SRF_PERCALL_SETUP();
	it = (WindowIter *) funcctx->user_fctx;
	if (windows_next(it, &ws, &we))
	{
		Datum		values[2];
		bool		nulls[2] = {false, false};
		HeapTuple	tuple;

		values[0] = TimestampTzGetDatum(ws);
		values[1] = TimestampTzGetDatum(we);
		tuple = heap_form_tuple(funcctx->tuple_desc, values, nulls);
		SRF_RETURN_NEXT(funcctx, HeapTupleGetDatum(tuple));
	}
	SRF_RETURN_DONE(funcctx);
}
