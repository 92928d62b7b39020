-- Usage windows (SPEC §8): meter.windows partitions [start, end), aligned in a time zone.
-- Exact listings are in the pg_regress test sql/windows.sql; these are its properties.
BEGIN;
SET client_min_messages = warning;
SELECT plan(34);
SET LOCAL timezone = 'UTC';

CREATE FUNCTION pg_temp.starts(s timestamptz, e timestamptz, size meter.window_size,
	tz text DEFAULT 'UTC', anchor timestamptz DEFAULT NULL) RETURNS timestamptz[]
LANGUAGE sql AS $$ SELECT array_agg(window_start ORDER BY window_start) FROM meter.windows(s, e, size, tz, anchor) $$;

SELECT has_function('meter', 'windows', ARRAY['timestamp with time zone', 'timestamp with time zone',
	'meter.window_size', 'text', 'timestamp with time zone'], 'windows(start, end, size, zone, anchor)');
SELECT is((SELECT provolatile::text || proparallel::text FROM pg_proc WHERE oid = 'meter.windows'::regproc), 'is',
	'IMMUTABLE and PARALLEL SAFE');

-- DST: a local day of 23 and of 25 hours.
SELECT is((SELECT window_end - window_start FROM meter.windows('2024-03-01', '2024-04-01', 'DAY', 'America/New_York')
	WHERE window_start = '2024-03-10 05:00Z'), interval '23 hours', 'America/New_York 2024-03-10 lasts 23 hours');
SELECT is((SELECT window_end - window_start FROM meter.windows('2024-11-01', '2024-12-01', 'DAY', 'America/New_York')
	WHERE window_start = '2024-11-03 04:00Z'), interval '25 hours', 'America/New_York 2024-11-03 lasts 25 hours');
SELECT is((SELECT count(*) FROM meter.windows('2024-11-03 04:00Z', '2024-11-04 05:00Z', 'HOUR', 'America/New_York')),
	25::bigint, 'a 25-hour day has 25 HOUR windows');
SELECT is((SELECT count(*) FROM meter.windows('2024-03-10 05:00Z', '2024-03-11 04:00Z', 'HOUR', 'America/New_York')),
	23::bigint, 'a 23-hour day has 23 HOUR windows');
SELECT is((SELECT bool_and(window_start AT TIME ZONE 'America/New_York' = date_trunc('day', window_start AT TIME ZONE 'America/New_York'))
	FROM meter.windows('2024-01-01 05:00Z', '2025-01-01 05:00Z', 'DAY', 'America/New_York')), true,
	'every New York DAY window starts at local midnight');
SELECT is((SELECT count(*) FROM meter.windows('2024-01-01 05:00Z', '2025-01-01 05:00Z', 'DAY', 'America/New_York')),
	366::bigint, '2024 has 366 local days');
-- Zones off the hour.
SELECT is((SELECT window_start FROM meter.windows('2024-03-01', '2024-04-01', 'DAY', 'Asia/Kolkata')
	WHERE '2024-03-10 20:00Z' >= window_start AND '2024-03-10 20:00Z' < window_end), '2024-03-10 18:30Z'::timestamptz,
	'Asia/Kolkata: 2024-03-10T20:00Z is in the DAY window starting 18:30Z');
SELECT is(pg_temp.starts('2024-03-10 17:00Z', '2024-03-10 20:00Z', 'HOUR', 'Asia/Kathmandu'),
	ARRAY['2024-03-10 17:00Z', '2024-03-10 17:15Z', '2024-03-10 18:15Z', '2024-03-10 19:15Z']::timestamptz[],
	'Asia/Kathmandu (+05:45): HOUR windows at :15 UTC');
-- WEEK starts on Monday.
SELECT is((SELECT bool_and(extract(isodow FROM window_start AT TIME ZONE 'Europe/Paris') = 1
		AND (window_start AT TIME ZONE 'Europe/Paris')::time = '00:00')
	FROM meter.windows('2024-01-01 00:00+01', '2025-01-06 00:00+01', 'WEEK', 'Europe/Paris')), true,
	'WEEK windows start Monday 00:00 local');
-- MONTH with an anchor on the 31st, and with a time of day.
SELECT is(pg_temp.starts('2024-01-31', '2024-07-01', 'MONTH', 'UTC', '2022-03-31'),
	ARRAY['2024-01-31', '2024-02-29', '2024-03-31', '2024-04-30', '2024-05-31', '2024-06-30']::timestamptz[],
	'MONTH anchored on the 31st: Jan 31, Feb 29, Mar 31, Apr 30 …');
SELECT is(pg_temp.starts('2024-01-01', '2024-03-01', 'MONTH', 'UTC', '2023-05-15 10:07:00Z'),
	ARRAY['2024-01-01', '2024-01-15 10:07Z', '2024-02-15 10:07Z']::timestamptz[],
	'MONTH anchored at 10:07 on the 15th (first window clipped)');
SELECT is(pg_temp.starts('2024-01-01', '2024-04-01', 'MONTH'),
	ARRAY['2024-01-01', '2024-02-01', '2024-03-01']::timestamptz[], 'MONTH without an anchor: the 1st at 00:00');
SELECT is(pg_temp.starts('2024-01-01', '2024-04-01', 'MONTH', 'Asia/Tokyo', '2024-01-31 00:00+09'),
	ARRAY['2024-01-01', '2024-01-30 15:00Z', '2024-02-28 15:00Z', '2024-03-30 15:00Z']::timestamptz[],
	'the anchor is read on the zone''s wall clock');
-- Partition, for random ranges.
SELECT setseed(0.5);
SELECT is((SELECT count(*) FROM (
	SELECT r.s, r.e, min(w.window_start) = r.s AND max(w.window_end) = r.e
		AND bool_and(w.window_start < w.window_end)
		AND count(*) = count(DISTINCT w.window_start) AND sum(w.window_end - w.window_start) = r.e - r.s AS ok
	FROM (SELECT '2020-01-01'::timestamptz + random() * interval '2000 days' AS s, random() * interval '90 days' + interval '1 second' AS len,
			(enum_range(NULL::meter.window_size))[2 + floor(random() * 9)::int] AS size,
			(ARRAY['UTC', 'America/New_York', 'Asia/Kolkata', 'Australia/Lord_Howe', 'America/Santiago', 'Pacific/Chatham'])[1 + floor(random() * 6)::int] AS tz,
			'2019-01-01'::timestamptz + random() * interval '1000 days' AS anchor
		FROM generate_series(1, 200)) x
	CROSS JOIN LATERAL (SELECT x.s, x.s + x.len AS e) r
	CROSS JOIN LATERAL meter.windows(r.s, r.e, x.size, x.tz, x.anchor) w
	GROUP BY r.s, r.e) t WHERE ok), 200::bigint, '200 random ranges, sizes, zones and anchors: always a partition');
SELECT is((SELECT count(*) FROM meter.windows('2024-01-01 10:00Z', '2024-01-01 10:00:00.000001Z', 'MONTH')), 1::bigint,
	'a one-microsecond range is one window');

-- Errors.
SELECT throws_ok($$SELECT * FROM meter.windows('2024-01-02', '2024-01-01', 'DAY')$$, '22023',
	'end_time must be after start_time', 'end before start: 22023');
SELECT throws_ok($$SELECT * FROM meter.windows('2024-01-01', '2024-01-01')$$, '22023',
	'end_time must be after start_time', 'empty range: 22023');
SELECT throws_ok($$SELECT * FROM meter.windows('2024-01-01', '2024-01-02', 'DAY', 'Mars/Olympus')$$, '22023',
	'time zone "Mars/Olympus" not recognized', 'unknown zone: 22023');
SELECT throws_ok($$SELECT * FROM meter.windows('1990-01-01', '2024-01-01', 'MINUTE')$$, '54000',
	'too many windows', 'too many windows: 54000');
SELECT throws_ok($$SELECT * FROM meter.windows('2024-01-01', 'infinity', 'DAY')$$, '22023',
	'start_time and end_time must be finite', 'infinite end: 22023');
SELECT throws_ok($$SELECT * FROM meter.windows(NULL, '2024-01-01', 'DAY')$$, '22004',
	'start_time and end_time must not be null', 'NULL start: 22004');
SELECT is((SELECT count(*) FROM meter.windows('2024-01-01', '2024-01-03', 'DAY', NULL)), 2::bigint,
	'a NULL zone means UTC');

-- '' or NULL means UTC everywhere a zone is taken (SPEC §8, FlexPrice's default).
SELECT is(pg_temp.starts('2024-01-01', '2024-03-05', 'MONTH', '', '2023-12-15 06:30Z'),
	pg_temp.starts('2024-01-01', '2024-03-05', 'MONTH', 'UTC', '2023-12-15 06:30Z'), 'an empty zone means UTC (MONTH, anchor)');
SELECT is(pg_temp.starts('2024-03-30', '2024-04-01', 'HOUR', ''),
	pg_temp.starts('2024-03-30', '2024-04-01', 'HOUR', 'UTC'), 'an empty zone means UTC (HOUR)');
SELECT is(pg_temp.starts('2024-03-30', '2024-04-01', 'DAY', NULL),
	pg_temp.starts('2024-03-30', '2024-04-01', 'DAY', 'UTC'), 'a NULL zone means UTC (DAY)');
SELECT throws_ok($$SELECT * FROM meter.windows('2024-01-01', '2024-01-02', 'DAY', 'Mars/Olympus')$$, '22023',
	'time zone "Mars/Olympus" not recognized', 'an unknown zone is still 22023');
SELECT throws_ok($$SELECT * FROM meter.windows('2024-01-01', '2024-01-02', 'DAY', ' ')$$, '22023',
	'time zone " " not recognized', 'a blank (not empty) zone is unknown');

SET LOCAL meter.tenant_id = 'tz_default';
SELECT meter.create_meter('tz.evt', 'tz', '{"type":"SUM","field":"n"}', id => 'tz_m');
INSERT INTO meter.events (id, event_name, customer_id, "timestamp", properties)
SELECT 'tz' || i, 'tz.evt', 'c', timestamptz '2024-03-30 20:00Z' + i * interval '97 minutes', jsonb_build_object('n', i)
FROM generate_series(1, 40) AS i;
CREATE TEMP TABLE tz_utc AS
	SELECT * FROM meter.usage('tz_m', '2024-03-30', '2024-04-03', window_size => 'DAY', timezone => 'UTC');
SELECT is((SELECT count(*) FROM tz_utc WHERE value > 0), 4::bigint, 'the UTC usage has 4 non-empty days');
SELECT set_eq($$SELECT * FROM meter.usage('tz_m', '2024-03-30', '2024-04-03', window_size => 'DAY', timezone => '')$$,
	'TABLE tz_utc', 'meter.usage with timezone '''' is the UTC usage');
SELECT set_eq($$SELECT * FROM meter.usage('tz_m', '2024-03-30', '2024-04-03', window_size => 'DAY', timezone => NULL)$$,
	'TABLE tz_utc', 'meter.usage with timezone NULL is the UTC usage');
SELECT set_eq($$SELECT * FROM meter.usage_from_events('tz_m', '2024-03-30', '2024-04-03', window_size => 'DAY', timezone => '')$$,
	'TABLE tz_utc', 'meter.usage_from_events with timezone '''' too');
SELECT throws_ok($$SELECT * FROM meter.usage('tz_m', '2024-03-30', '2024-04-03', window_size => 'DAY', timezone => 'Nowhere/City')$$,
	'22023', NULL, 'meter.usage: an unknown zone is still 22023');

SELECT * FROM finish();
ROLLBACK;
