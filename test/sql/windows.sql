-- Usage windows (SPEC §8): meter.windows(start, end, window_size, timezone, billing_anchor)
SET timezone = 'UTC';
SET datestyle = 'ISO, YMD';
SET intervalstyle = 'postgres';
-- Show windows as UTC instants, as local wall clock and as their length.
CREATE FUNCTION pg_temp.w(s timestamptz, e timestamptz, size meter.window_size,
	tz text DEFAULT 'UTC', anchor timestamptz DEFAULT NULL)
RETURNS TABLE (window_start timestamptz, window_end timestamptz, local_start timestamp, length interval)
LANGUAGE sql AS $$
	SELECT w.window_start, w.window_end, w.window_start AT TIME ZONE tz, w.window_end - w.window_start
	FROM meter.windows(s, e, size, tz, anchor) w $$;
CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE q;
	RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ': ' || SQLERRM;
END $$;

-- No window size: one window spanning [start, end).
SELECT * FROM meter.windows('2024-01-01 10:07Z', '2024-01-03 00:00Z');
-- Every size in UTC, first and last windows clipped.
SELECT * FROM pg_temp.w('2024-01-01 10:07:30Z', '2024-01-01 10:11Z', 'MINUTE');
SELECT * FROM pg_temp.w('2024-01-01 10:07Z', '2024-01-01 11:00Z', '15MIN');
SELECT * FROM pg_temp.w('2024-01-01 10:07Z', '2024-01-01 12:00Z', '30MIN');
SELECT * FROM pg_temp.w('2024-01-01 10:07Z', '2024-01-01 13:30Z', 'HOUR');
SELECT * FROM pg_temp.w('2024-01-01 10:07Z', '2024-01-02 00:00Z', '3HOUR');
SELECT * FROM pg_temp.w('2024-01-01 10:07Z', '2024-01-02 13:00Z', '6HOUR');
SELECT * FROM pg_temp.w('2024-01-01 10:07Z', '2024-01-03 00:00Z', '12HOUR');
SELECT * FROM pg_temp.w('2024-01-01 10:07Z', '2024-01-04 06:00Z', 'DAY');
-- WEEK starts Monday: 2024-01-01 is a Monday, 2024-01-10 a Wednesday.
SELECT * FROM pg_temp.w('2024-01-10 00:00Z', '2024-02-01 00:00Z', 'WEEK');
SELECT * FROM pg_temp.w('2024-01-01 00:00Z', '2024-01-15 00:00Z', 'WEEK');
-- MONTH without an anchor: the 1st at 00:00.
SELECT * FROM pg_temp.w('2024-01-15 00:00Z', '2024-05-01 00:00Z', 'MONTH');
-- MONTH anchored on the 31st: clamped to each month's last day (2024 is a leap year).
SELECT * FROM pg_temp.w('2024-01-01 00:00Z', '2024-07-15 00:00Z', 'MONTH', 'UTC', '2023-10-31 00:00Z');
SELECT * FROM pg_temp.w('2023-01-01 00:00Z', '2023-04-01 00:00Z', 'MONTH', 'UTC', '2022-12-31 00:00Z');
-- MONTH anchored with a time of day (10:07:30 on the 15th).
SELECT * FROM pg_temp.w('2024-01-01 00:00Z', '2024-04-01 00:00Z', 'MONTH', 'UTC', '2023-06-15 10:07:30Z');
-- An anchor after the range only gives the day and the time.
SELECT * FROM pg_temp.w('2024-01-01 00:00Z', '2024-03-01 00:00Z', 'MONTH', 'UTC', '2030-01-20 00:00Z');
-- The anchor is ignored for other sizes.
SELECT * FROM pg_temp.w('2024-01-01 00:00Z', '2024-01-03 00:00Z', 'DAY', 'UTC', '2023-06-15 10:07Z');
-- Range inside one window: one clipped row.
SELECT * FROM pg_temp.w('2024-01-01 10:07Z', '2024-01-01 10:08Z', 'MONTH');

-- America/New_York, spring forward on 2024-03-10 (02:00 EST → 03:00 EDT): a 23-hour day.
SELECT * FROM pg_temp.w('2024-03-09 00:00Z', '2024-03-12 00:00Z', 'DAY', 'America/New_York');
SELECT * FROM pg_temp.w('2024-03-10 04:00Z', '2024-03-10 09:00Z', 'HOUR', 'America/New_York');
SELECT * FROM pg_temp.w('2024-03-10 00:00Z', '2024-03-10 12:00Z', '3HOUR', 'America/New_York');
-- Fall back on 2024-11-03 (02:00 EDT → 01:00 EST): a 25-hour day, 01:00 shows twice.
SELECT * FROM pg_temp.w('2024-11-02 00:00Z', '2024-11-05 00:00Z', 'DAY', 'America/New_York');
SELECT count(*) AS hours_on_nov_3 FROM meter.windows('2024-11-03 04:00Z', '2024-11-04 05:00Z', 'HOUR', 'America/New_York');
SELECT count(*) AS hours_on_mar_10 FROM meter.windows('2024-03-10 05:00Z', '2024-03-11 04:00Z', 'HOUR', 'America/New_York');
SELECT * FROM pg_temp.w('2024-11-03 03:00Z', '2024-11-03 09:00Z', 'HOUR', 'America/New_York');
SELECT * FROM pg_temp.w('2024-11-02 00:00Z', '2024-11-05 00:00Z', '12HOUR', 'America/New_York');
SELECT * FROM pg_temp.w('2024-11-03 05:00Z', '2024-11-03 07:00Z', '30MIN', 'America/New_York');
-- WEEK and MONTH across the changes.
SELECT * FROM pg_temp.w('2024-03-01 00:00Z', '2024-03-20 00:00Z', 'WEEK', 'America/New_York');
SELECT * FROM pg_temp.w('2024-01-01 00:00Z', '2025-01-01 00:00Z', 'MONTH', 'America/New_York');
-- A MONTH anchor at a local time that does not exist on 2024-03-10 (02:30) starts at the
-- jump (03:00 EDT); one that exists twice on 2024-11-03 (01:30) at its first occurrence.
SELECT * FROM pg_temp.w('2024-02-01 00:00Z', '2024-05-01 00:00Z', 'MONTH', 'America/New_York', '2024-01-10 02:30-05');
SELECT * FROM pg_temp.w('2024-10-01 00:00Z', '2024-12-01 00:00Z', 'MONTH', 'America/New_York', '2024-01-03 01:30-05');

-- Asia/Kolkata (+05:30): days start at 18:30Z; an event at 2024-03-10 20:00Z falls in the
-- window starting 2024-03-10 18:30Z.
SELECT * FROM pg_temp.w('2024-03-09 00:00Z', '2024-03-12 00:00Z', 'DAY', 'Asia/Kolkata');
SELECT window_start FROM meter.windows('2024-03-01Z', '2024-04-01Z', 'DAY', 'Asia/Kolkata')
WHERE '2024-03-10 20:00Z' >= window_start AND '2024-03-10 20:00Z' < window_end;
SELECT * FROM pg_temp.w('2024-03-10 17:00Z', '2024-03-10 21:00Z', 'HOUR', 'Asia/Kolkata');
SELECT * FROM pg_temp.w('2024-03-10 00:00Z', '2024-04-10 00:00Z', 'MONTH', 'Asia/Kolkata');
-- Asia/Kathmandu (+05:45).
SELECT * FROM pg_temp.w('2024-03-10 17:00Z', '2024-03-10 20:00Z', 'HOUR', 'Asia/Kathmandu');
SELECT * FROM pg_temp.w('2024-03-01 00:00Z', '2024-03-20 00:00Z', 'WEEK', 'Asia/Kathmandu');
SELECT * FROM pg_temp.w('2024-03-10 18:00Z', '2024-03-10 19:00Z', '15MIN', 'Asia/Kathmandu');
-- Australia/Lord_Howe changes by 30 minutes: HOUR windows around the changes.
SELECT * FROM pg_temp.w('2024-04-06 13:00Z', '2024-04-06 17:00Z', 'HOUR', 'Australia/Lord_Howe');
SELECT * FROM pg_temp.w('2024-10-05 14:00Z', '2024-10-05 17:00Z', 'HOUR', 'Australia/Lord_Howe');
-- America/Santiago skips midnight (2024-09-08 00:00 → 01:00): that day starts at the jump.
SELECT * FROM pg_temp.w('2024-09-07 00:00Z', '2024-09-10 00:00Z', 'DAY', 'America/Santiago');
-- Pacific/Apia skipped 2011-12-30 entirely.
SELECT * FROM pg_temp.w('2011-12-29 00:00Z', '2012-01-01 00:00Z', 'DAY', 'Pacific/Apia');

-- The windows always partition [start, end): no gap, no overlap, nothing outside
-- (a year for every size but MINUTE, a month around DST changes for MINUTE).
SELECT size, tz, count(*) AS windows,
	bool_and(window_start < window_end) AS nonempty,
	min(window_start) = s AND max(window_end) = e AS covers,
	bool_and(next_start IS NULL OR next_start = window_end) AS contiguous
FROM unnest(enum_range(NULL::meter.window_size)) size,
	unnest(ARRAY['UTC', 'America/New_York', 'Asia/Kolkata', 'Asia/Kathmandu', 'Australia/Lord_Howe', 'Europe/London']) tz,
	LATERAL (SELECT CASE WHEN size = 'MINUTE' THEN '2024-03-20 13:17:42Z' ELSE '2023-12-30 13:17:42Z' END::timestamptz AS s,
		CASE WHEN size = 'MINUTE' THEN '2024-04-08 01:02:03Z' ELSE '2025-01-02 01:02:03Z' END::timestamptz AS e) r,
	LATERAL (SELECT w.*, lead(w.window_start) OVER (ORDER BY w.window_start) AS next_start
		FROM meter.windows(r.s, r.e, size, tz, '2023-03-31 23:30Z') w) w
GROUP BY size, tz, s, e ORDER BY size, tz;
-- Far from today the zone's rules still apply (2200, extrapolated DST).
SELECT * FROM pg_temp.w('2200-03-29 00:00Z', '2200-03-31 00:00Z', 'DAY', 'Europe/Berlin');
-- A NULL or empty timezone means UTC (FlexPrice's default); the zone name is
-- case-insensitive.
SELECT * FROM meter.windows('2024-01-01Z', '2024-01-03Z', 'DAY', NULL);
SELECT * FROM meter.windows('2024-01-01Z', '2024-01-03Z', 'DAY', '');
SELECT * FROM meter.windows('2024-01-01Z', '2024-01-03Z', 'DAY', 'asia/kolkata');
-- Immutable and parallel safe.
SELECT provolatile, proparallel, proisstrict FROM pg_proc WHERE oid = 'meter.windows'::regproc;

-- Errors.
SELECT pg_temp.err($$SELECT * FROM meter.windows('2024-01-02', '2024-01-01', 'DAY')$$);
SELECT pg_temp.err($$SELECT * FROM meter.windows('2024-01-01', '2024-01-01', 'DAY')$$);
SELECT pg_temp.err($$SELECT * FROM meter.windows('2024-01-01', '2024-01-02', 'DAY', 'Mars/Olympus')$$);
SELECT pg_temp.err($$SELECT * FROM meter.windows('2024-01-01', '2024-01-02', 'DAY', ' ')$$);
SELECT pg_temp.err($$SELECT * FROM meter.windows('2024-01-01', '2024-01-02', 'DAY', repeat('x', 1000000))$$);
SELECT pg_temp.err($$SELECT * FROM meter.windows('2024-01-01', '2024-01-02', 'DAY', 'Europe/Zürich')$$);
SELECT pg_temp.err($$SELECT * FROM meter.windows('2024-01-01', '2024-01-02', 'DAY', 'right/UTC')$$);
SELECT pg_temp.err($$SELECT * FROM meter.windows('2000-01-01', '2024-01-01', 'MINUTE')$$);
SELECT pg_temp.err($$SELECT * FROM meter.windows('-infinity', '2024-01-01', 'DAY')$$);
SELECT pg_temp.err($$SELECT * FROM meter.windows('2024-01-01', 'infinity')$$);
SELECT pg_temp.err($$SELECT * FROM meter.windows(NULL, '2024-01-01', 'DAY')$$);
SELECT pg_temp.err($$SELECT * FROM meter.windows('2024-01-01', '2024-02-01', 'MONTH', 'UTC', 'infinity')$$);
SELECT pg_temp.err($$SELECT * FROM meter.windows('2024-01-01', '2024-02-01', 'YEAR')$$);
-- Extreme but valid ranges work.
SELECT count(*) FROM meter.windows('4714-11-24 00:00:00Z BC', '4000-01-01 BC', 'MONTH', 'America/New_York');
-- Around 1 AD (1 BC is a leap year), anchored on the 31st.
SELECT * FROM meter.windows('0002-11-15 BC', '0001-03-01', 'MONTH', 'UTC', '2024-01-31');
SELECT count(*) FROM meter.windows('294000-01-01', '294276-12-31 23:59:59Z', 'WEEK', 'Europe/Berlin');
SELECT * FROM meter.windows('294276-12-31 20:00Z', '294276-12-31 23:59:59.999999Z', 'MONTH', 'Pacific/Kiritimati', '2024-01-31');
-- The session still works.
SELECT 1 AS alive;
