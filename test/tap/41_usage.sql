-- Usage queries (SPEC §8): meter.usage (stored partial states, compacted and pending) and
-- meter.usage_from_events (raw events), hand-computed reference cases, an independent
-- naive reference, and the stored partial states themselves (meter.stored_slots) against
-- hand-computed ones.
BEGIN;
SET client_min_messages = warning;
SELECT plan(92);
SET LOCAL timezone = 'UTC';
SET LOCAL meter.tenant_id = 'tap_usage';
SET LOCAL meter.environment_id = '';

CREATE FUNCTION pg_temp.err(statement text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE st text; msg text;
BEGIN
	EXECUTE statement;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
	RETURN st || ': ' || msg;
END $$;

-- What the tracking trigger appended, folded into compacted rows: the checks after a
-- refill read compacted rows; the random cases below are checked before (pending) and
-- after it.
CREATE FUNCTION pg_temp.refill() RETURNS void LANGUAGE sql AS $$ SELECT meter.compact() $$;

-- The single value of a one-window usage call, from the rollups (r) or the events (e).
CREATE FUNCTION pg_temp.r(mid text, s timestamptz, e timestamptz) RETURNS numeric
LANGUAGE sql AS $$ SELECT value FROM meter.usage(mid, s, e) $$;
CREATE FUNCTION pg_temp.e(mid text, s timestamptz, e timestamptz) RETURNS numeric
LANGUAGE sql AS $$ SELECT value FROM meter.usage_from_events(mid, s, e) $$;

-- ── Signatures ──────────────────────────────────────────────────────────────────────
SELECT has_function('meter', 'usage', ARRAY['text', 'timestamp with time zone', 'timestamp with time zone',
	'text', 'text', 'meter.window_size', 'text', 'timestamp with time zone'], 'usage(…)');
SELECT has_function('meter', 'usage_from_events', ARRAY['text', 'timestamp with time zone',
	'timestamp with time zone', 'text', 'text', 'meter.window_size', 'text', 'timestamp with time zone',
	'regclass'], 'usage_from_events(…, source)');
SELECT function_returns('meter', 'stored_slots', ARRAY['text', 'boolean'], 'setof record',
	'stored_slots(meter_id, totals) returns a table');
SELECT function_returns('meter', 'compact', ARRAY['text'], 'bigint', 'compact(meter_id) returns bigint');
SELECT is((SELECT count(*) FROM pg_proc p WHERE p.pronamespace = 'meter'::regnamespace
	AND p.proname IN ('usage', 'usage_from_events', 'stored_slots', 'expected_slots', 'compact', 'verify',
		'rebuild', 'skips', 'windows')
	AND obj_description(p.oid, 'pg_proc') IS NULL), 0::bigint, 'every usage function has a comment');
SELECT is((SELECT count(*) FROM pg_proc p WHERE p.pronamespace = 'meter'::regnamespace
	AND p.proname IN ('usage', 'usage_from_events')
	AND (p.prosecdef OR p.proconfig IS NULL OR p.provolatile <> 's')), 0::bigint,
	'usage functions: STABLE, SECURITY INVOKER, fixed search_path');

-- ── Hand-computed references ────────────────────────────────────────────────────────
-- Three API calls in the last two hours.
INSERT INTO meter.meters (id, event_name, name, aggregation, filters) VALUES
	('u_calls', 'api_call', 'calls', '{"type":"COUNT"}', '[]'),
	('u_ok_ms', 'api_call', 'ok ms', '{"type":"SUM","field":"duration_ms"}',
		'[{"key":"status","values":["success"]}]'),
	('u_east_ms', 'api_call', 'east ms', '{"type":"SUM","field":"duration_ms"}',
		'[{"key":"status","values":["success","error"]},{"key":"region","values":["us-east-1"]}]'),
	('u_west', 'api_call', 'west calls', '{"type":"COUNT"}', '[{"key":"region","values":["us-west-2"]}]');
INSERT INTO meter.events (id, event_name, customer_id, "timestamp", properties) VALUES
	('h1', 'api_call', 'cust_1', now() - interval '100 minutes',
		'{"duration_ms": 100, "status": "success", "region": "us-east-1"}'),
	('h2', 'api_call', 'cust_1', now() - interval '50 minutes',
		'{"duration_ms": 150, "status": "error", "region": "us-east-1"}'),
	('h3', 'api_call', 'cust_1', now() - interval '10 minutes',
		'{"duration_ms": 200, "status": "success", "region": "us-west-2"}');

-- The reference cases of the issue, in their own time ranges.
INSERT INTO meter.meters (id, event_name, name, aggregation) VALUES
	('u_max', 'ref_max', 'max', '{"type":"MAX","field":"v"}'),
	('u_latest', 'ref_latest', 'latest', '{"type":"LATEST","field":"v"}'),
	('u_avg', 'ref_avg', 'avg', '{"type":"AVG","field":"v"}'),
	('u_avg2', 'ref_avg2', 'avg with a missing value', '{"type":"AVG","field":"v"}'),
	('u_tokens', 'ref_tokens', 'tokens', '{"type":"SUM_WITH_MULTIPLIER","field":"tokens","multiplier":"1.5"}'),
	('u_exact', 'ref_exact', 'exact', '{"type":"SUM_WITH_MULTIPLIER","field":"v","multiplier":1}'),
	('u_ws_mid', 'ref_ws_mid', 'weighted, mid period', '{"type":"WEIGHTED_SUM","field":"v"}'),
	('u_ws_start', 'ref_ws_start', 'weighted, at start', '{"type":"WEIGHTED_SUM","field":"v"}'),
	('u_uniq', 'ref_uniq', 'unique users', '{"type":"COUNT_UNIQUE","field":"user"}'),
	('u_min', 'ref_max', 'min', '{"type":"MIN","field":"v"}'),
	('u_max_hourly', 'ref_hourly', 'max per hour', '{"type":"MAX","field":"v","bucket_size":"HOUR"}'),
	('u_sum_hourly', 'ref_hourly', 'sum per hour', '{"type":"SUM","field":"v","bucket_size":"HOUR"}'),
	('u_kolkata', 'ref_kolkata', 'kolkata', '{"type":"COUNT"}');
INSERT INTO meter.events (event_name, customer_id, "timestamp", properties) VALUES
	('ref_max', 'c', '2024-01-02', '{"v": 10}'),
	('ref_max', 'c', '2024-01-03', '{"v": 50}'),
	('ref_max', 'c', '2024-01-04', '{"v": 20}'),
	('ref_latest', 'c', '2024-01-05', '{"v": 10}'),
	('ref_latest', 'c', '2024-01-12', '{"v": 77}'),
	('ref_latest', 'c', '2024-01-08', '{"v": 22}'),
	('ref_avg', 'c', '2024-01-02', '{"v": 10}'),
	('ref_avg', 'c', '2024-01-03', '{"v": 20}'),
	('ref_avg', 'c', '2024-01-04', '{"v": 30}'),
	('ref_avg', 'c', '2024-01-05', '{"v": 40}'),
	('ref_avg2', 'c', '2024-01-02', '{"v": 10}'),
	('ref_avg2', 'c', '2024-01-03', '{"v": 20}'),
	('ref_avg2', 'c', '2024-01-04', '{"other": 30}'),
	('ref_tokens', 'c', '2024-01-02', '{"tokens": 100}'),
	('ref_exact', 'c', '2024-01-02', '{"v": 0.1}'),
	('ref_exact', 'c', '2024-01-03', '{"v": "0.2"}'),
	('ref_ws_mid', 'c', '2024-01-16', '{"v": 300}'),
	('ref_ws_start', 'c', '2024-01-01', '{"v": 300}'),
	('ref_uniq', 'c', '2024-01-02', '{"user": "a"}'),
	('ref_uniq', 'c', '2024-01-02', '{"user": "b"}'),
	('ref_uniq', 'c', '2024-01-03', '{"user": "a"}'),
	('ref_uniq', 'c', '2024-01-03', '{"user": 2}'),
	('ref_uniq', 'c', '2024-01-04', '{"user": 2.0}'),
	('ref_uniq', 'c', '2024-01-04', '{"user": "2"}'),
	('ref_uniq', 'c', '2024-01-04', '{"user": null}'),
	('ref_hourly', 'c', '2024-01-02 10:05', '{"v": 10}'),
	('ref_hourly', 'c', '2024-01-02 10:50', '{"v": 30}'),
	('ref_hourly', 'c', '2024-01-02 11:20', '{"v": 20}'),
	('ref_kolkata', 'c', '2024-03-10 20:00Z', '{}');
SELECT pg_temp.refill();

SELECT is(pg_temp.r('u_calls', now() - interval '2 hours', now()), 3::numeric, 'COUNT of the three calls = 3');
SELECT is(pg_temp.r('u_ok_ms', now() - interval '2 hours', now()), 300::numeric, 'SUM duration_ms where status = success = 300');
SELECT is(pg_temp.r('u_east_ms', now() - interval '2 hours', now()), 250::numeric,
	'SUM duration_ms where status in (success, error) and region = us-east-1 = 250');
SELECT is(pg_temp.r('u_west', now() - interval '2 hours', now()), 1::numeric, 'COUNT where region = us-west-2 = 1');
SELECT is(pg_temp.e('u_calls', now() - interval '2 hours', now()), 3::numeric, 'from events: COUNT = 3');
SELECT is(pg_temp.e('u_ok_ms', now() - interval '2 hours', now()), 300::numeric, 'from events: SUM success = 300');
SELECT is(pg_temp.e('u_east_ms', now() - interval '2 hours', now()), 250::numeric, 'from events: SUM east = 250');
SELECT is(pg_temp.e('u_west', now() - interval '2 hours', now()), 1::numeric, 'from events: COUNT west = 1');
SELECT is(pg_temp.r('u_calls', now() - interval '60 minutes', now()), 2::numeric, 'half-open range: the last hour has 2 calls');
SELECT is(pg_temp.r('u_calls', now() - interval '100 minutes', now() - interval '10 minutes'), 2::numeric,
	'[start, end): the event at start counts, the one at end does not');

SELECT is(pg_temp.r('u_max', '2024-01-01', '2024-02-01'), 50::numeric, 'MAX over 10, 50, 20 = 50');
SELECT is(pg_temp.r('u_min', '2024-01-01', '2024-02-01'), 10::numeric, 'MIN over 10, 50, 20 = 10');
SELECT is(pg_temp.r('u_latest', '2024-01-01', '2024-02-01'), 77::numeric, 'LATEST over 10@Jan 5, 77@Jan 12, 22@Jan 8 = 77');
SELECT is(pg_temp.r('u_latest', '2024-01-01', '2024-01-10'), 22::numeric, 'LATEST before Jan 10 = 22');
SELECT is(pg_temp.r('u_avg', '2024-01-01', '2024-02-01'), 25::numeric, 'AVG over 10, 20, 30, 40 = 25');
SELECT is(pg_temp.r('u_avg2', '2024-01-01', '2024-02-01'), 15::numeric, 'AVG over 10, 20 and an event without the field = 15');
SELECT is(pg_temp.r('u_avg', '2024-01-01', '2024-02-01'),
	(SELECT avg(x) FROM unnest(ARRAY[10, 20, 30, 40]::numeric[]) x), 'AVG divides like avg(numeric)');
SELECT is(pg_temp.r('u_tokens', '2024-01-01', '2024-02-01'), 150::numeric, 'SUM_WITH_MULTIPLIER 100 tokens × 1.5 = 150');
SELECT is(pg_temp.r('u_exact', '2024-01-01', '2024-02-01')::text, '0.3', '0.1 + 0.2 = exactly 0.3');
SELECT is(pg_temp.r('u_ws_mid', '2024-01-01', '2024-01-31'), 150::numeric,
	'WEIGHTED_SUM over Jan 1 – Jan 31 of 300 at Jan 16 = 150');
SELECT is(pg_temp.r('u_ws_start', '2024-01-01', '2024-01-31'), 300::numeric,
	'WEIGHTED_SUM over Jan 1 – Jan 31 of 300 at Jan 1 = 300');
SELECT is(pg_temp.e('u_ws_mid', '2024-01-01', '2024-01-31'), 150::numeric, 'from events: WEIGHTED_SUM = 150');
SELECT is(pg_temp.r('u_uniq', '2024-01-01', '2024-02-01'), 3::numeric,
	'COUNT_UNIQUE of a, b, a, 2, 2.0, "2", null = 3');
SELECT is((SELECT array_agg(value ORDER BY window_start) FROM meter.usage('u_uniq', '2024-01-01', '2024-01-05', window_size => 'DAY')),
	ARRAY[0, 2, 2, 1]::numeric[], 'COUNT_UNIQUE per DAY: distinct values of each window (not a sum of buckets)');
SELECT is((SELECT array_agg(value ORDER BY window_start) FROM meter.usage('u_uniq', '2024-01-02 00:00', '2024-01-02 00:20', window_size => 'MINUTE')),
	(SELECT array_agg(CASE WHEN g = 0 THEN 2 ELSE 0 END::numeric ORDER BY g) FROM generate_series(0, 19) g),
	'COUNT_UNIQUE per MINUTE (served from the raw events)');
SELECT is(pg_temp.r('u_max_hourly', '2024-01-02', '2024-01-03'), 50::numeric,
	'MAX with bucket_size HOUR: max per hour, summed (30 + 20)');
SELECT is(pg_temp.r('u_sum_hourly', '2024-01-02', '2024-01-03'), 60::numeric, 'SUM with bucket_size HOUR = SUM');
SELECT is((SELECT array_agg(value ORDER BY window_start) FROM meter.usage('u_max_hourly', '2024-01-02 10:30', '2024-01-02 12:00', window_size => 'HOUR')),
	ARRAY[30, 20]::numeric[], 'MAX bucket_size: buckets clipped to the row''s window');
SELECT is((SELECT window_start FROM meter.usage('u_kolkata', '2024-03-01', '2024-04-01', window_size => 'DAY', timezone => 'Asia/Kolkata')
	WHERE value = 1), '2024-03-10 18:30Z'::timestamptz, 'Asia/Kolkata: 2024-03-10T20:00Z is in the DAY starting 18:30Z');

-- Empty windows give the empty-input result.
SELECT is((SELECT array_agg(value::text ORDER BY id) FROM (
	SELECT m.id, (SELECT value FROM meter.usage(m.id, '2030-01-01', '2030-01-02')) FROM meter.meters m
	WHERE m.id IN ('u_calls', 'u_ok_ms', 'u_uniq', 'u_tokens', 'u_ws_mid', 'u_avg', 'u_max', 'u_min', 'u_latest', 'u_max_hourly')) x),
	ARRAY[NULL, '0', NULL, NULL, NULL, NULL, '0', '0', '0', '0'],
	'empty: 0 for COUNT, SUM, COUNT_UNIQUE, SUM_WITH_MULTIPLIER, WEIGHTED_SUM; NULL for AVG, MAX, MIN, LATEST');
SELECT is((SELECT count(*) FROM meter.usage('u_calls', '2024-01-01', '2024-02-01', window_size => 'DAY')), 31::bigint,
	'every window appears, empty ones included');

-- ── Customers ───────────────────────────────────────────────────────────────────────
INSERT INTO meter.meters (id, event_name, name, aggregation) VALUES ('u_cust', 'cust_ev', 'per customer', '{"type":"COUNT"}');
INSERT INTO meter.events (event_name, customer_id, external_customer_id, "timestamp") VALUES
	('cust_ev', 'c1', 'x1', '2024-01-02'), ('cust_ev', 'c1', 'x1', '2024-01-03'),
	('cust_ev', 'c2', 'x2', '2024-01-02'), ('cust_ev', NULL, 'x3', '2024-01-02'),
	('cust_ev', 'c4', NULL, '2024-01-02');
SELECT pg_temp.refill();
SELECT is((SELECT value FROM meter.usage('u_cust', '2024-01-01', '2024-02-01')), 5::numeric, 'no customer: every customer');
SELECT is((SELECT value FROM meter.usage('u_cust', '2024-01-01', '2024-02-01', customer_id => 'c1')), 2::numeric, 'customer_id = c1');
SELECT is((SELECT value FROM meter.usage('u_cust', '2024-01-01', '2024-02-01', external_customer_id => 'x2')), 1::numeric, 'external_customer_id = x2');
SELECT is((SELECT value FROM meter.usage('u_cust', '2024-01-01', '2024-02-01', 'c1', 'x2')), 0::numeric, 'both must match');
SELECT is((SELECT value FROM meter.usage('u_cust', '2024-01-01', '2024-02-01', 'c9')), 0::numeric, 'unknown customer: 0');
SELECT is((SELECT value FROM meter.usage_from_events('u_cust', '2024-01-01', '2024-02-01', customer_id => 'c1')), 2::numeric, 'from events: customer_id = c1');
SELECT is((SELECT value FROM meter.usage_from_events('u_cust', '2024-01-01', '2024-02-01', external_customer_id => 'x3')), 1::numeric, 'from events: external_customer_id = x3');

-- ── reset_usage NEVER ───────────────────────────────────────────────────────────────
INSERT INTO meter.meters (id, event_name, name, aggregation, reset_usage) VALUES
	('u_never_sum', 'never_ev', 'running sum', '{"type":"SUM","field":"v"}', 'NEVER'),
	('u_never_max', 'never_ev', 'running max', '{"type":"MAX","field":"v"}', 'NEVER'),
	('u_never_uniq', 'never_ev', 'running uniques', '{"type":"COUNT_UNIQUE","field":"u"}', 'NEVER'),
	('u_never_ws', 'never_ev', 'running weighted', '{"type":"WEIGHTED_SUM","field":"v"}', 'NEVER'),
	('u_never_latest', 'never_ev', 'running latest', '{"type":"LATEST","field":"v"}', 'NEVER');
INSERT INTO meter.events (event_name, customer_id, "timestamp", properties) VALUES
	('never_ev', 'c', '2023-12-20', '{"v": 5, "u": "a"}'),
	('never_ev', 'c', '2024-01-01 12:00', '{"v": 3, "u": "a"}'),
	('never_ev', 'c', '2024-01-03 06:00', '{"v": 10, "u": "b"}');
SELECT pg_temp.refill();
SELECT is((SELECT array_agg(value ORDER BY window_start) FROM meter.usage('u_never_sum', '2024-01-01', '2024-01-04', window_size => 'DAY')),
	ARRAY[8, 8, 18]::numeric[], 'NEVER: a running total including everything before start_time');
SELECT is((SELECT array_agg(value ORDER BY window_start) FROM meter.usage('u_never_max', '2024-01-01', '2024-01-04', window_size => 'DAY')),
	ARRAY[5, 5, 10]::numeric[], 'NEVER MAX: the max of everything before window_end');
SELECT is((SELECT array_agg(value ORDER BY window_start) FROM meter.usage('u_never_uniq', '2024-01-01', '2024-01-04', window_size => 'DAY')),
	ARRAY[1, 1, 2]::numeric[], 'NEVER COUNT_UNIQUE: distinct values of everything before window_end');
SELECT is((SELECT array_agg(value ORDER BY window_start) FROM meter.usage('u_never_latest', '2024-01-02', '2024-01-04', window_size => 'DAY')),
	ARRAY[3, 10]::numeric[], 'NEVER LATEST: the latest value before window_end');
SELECT is((SELECT value FROM meter.usage('u_never_ws', '2024-01-01', '2024-01-03')), 5 + 3 * 1.5 / 2,
	'NEVER WEIGHTED_SUM: events before the window count fully (t = window_start)');
SELECT is((SELECT value FROM meter.usage('u_never_sum', '2023-01-01', '2023-02-01')), 0::numeric, 'NEVER before any event: 0');

-- ── Catalog states and errors ───────────────────────────────────────────────────────
UPDATE meter.meters SET status = 'archived' WHERE id = 'u_max';
SELECT is(pg_temp.r('u_max', '2024-01-01', '2024-02-01'), 50::numeric, 'an archived meter''s usage stays queryable');
UPDATE meter.meters SET status = 'deleted' WHERE id = 'u_min';
SELECT is(pg_temp.err($$SELECT * FROM meter.usage('u_min', '2024-01-01', '2024-02-01')$$),
	'P0002: meter "u_min" not found', 'a deleted meter is not found');
SELECT is(pg_temp.err($$SELECT * FROM meter.usage_from_events('nope', '2024-01-01', '2024-02-01')$$),
	'P0002: meter "nope" not found', 'an unknown meter is not found');
SELECT is(pg_temp.err($$SELECT * FROM meter.stored_slots('nope')$$),
	'P0002: meter "nope" not found', 'stored_slots: unknown meter');
SET LOCAL meter.tenant_id = 'someone_else';
SELECT is(pg_temp.err($$SELECT * FROM meter.usage('u_calls', '2024-01-01', '2024-02-01')$$),
	'P0002: meter "u_calls" not found', 'another tenant''s meter is not found');
SET LOCAL meter.environment_id = 'staging';
SET LOCAL meter.tenant_id = 'tap_usage';
SELECT is(pg_temp.err($$SELECT * FROM meter.usage('u_calls', '2024-01-01', '2024-02-01')$$),
	'P0002: meter "u_calls" not found', 'another environment''s meter is not found');
SET LOCAL meter.environment_id = '';
SET LOCAL meter.tenant_id = '';
SELECT is(left(pg_temp.err($$SELECT * FROM meter.usage('u_calls', '2024-01-01', '2024-02-01')$$), 5), '55000', 'no tenant: 55000');
SET LOCAL meter.tenant_id = 'tap_usage';
SELECT is(pg_temp.err($$SELECT * FROM meter.usage('u_calls', '2024-02-01', '2024-01-01')$$),
	'22023: end_time must be after start_time', 'end before start');
SELECT is(pg_temp.err($$SELECT * FROM meter.usage_from_events('u_calls', '2024-01-01', '2024-01-01')$$),
	'22023: end_time must be after start_time', 'empty range');
SELECT is(pg_temp.err($$SELECT * FROM meter.usage('u_calls', '2024-01-01', '2024-02-01', window_size => 'DAY', timezone => 'Nowhere/Atlantis')$$),
	'22023: time zone "Nowhere/Atlantis" not recognized', 'unknown time zone');
SELECT is(pg_temp.err($$SELECT * FROM meter.usage('u_calls', '2000-01-01', '2024-02-01', window_size => 'MINUTE')$$),
	'54000: too many windows', 'too many windows');
SELECT is(pg_temp.err($$SELECT * FROM meter.usage(NULL, '2024-01-01', '2024-02-01')$$),
	'22023: id is required', 'NULL meter id');
SELECT is(pg_temp.err($$SELECT * FROM meter.usage('u_calls', NULL, '2024-02-01')$$),
	'22004: start_time and end_time must not be null', 'NULL start_time');
SELECT is(pg_temp.err($$SELECT * FROM meter.usage('u_calls', '-infinity', '2024-02-01')$$),
	'22023: start_time and end_time must be finite', 'infinite start_time');
SELECT is(pg_temp.err($$SELECT * FROM meter.usage('u_calls', '2024-01-01', '2024-02-01', repeat('é', 100000))$$),
	'ok', 'a 200 kB customer id is just an unknown customer');

-- ── Other event tables ──────────────────────────────────────────────────────────────
CREATE TEMP TABLE my_events (LIKE meter.events INCLUDING DEFAULTS);
INSERT INTO my_events (id, tenant_id, environment_id, event_name, customer_id, "timestamp", properties)
VALUES ('o1', 'tap_usage', '', 'api_call', 'cust_1', '2024-01-02', '{"status":"success","duration_ms":7}'),
	('o2', 'tap_usage', '', 'api_call', 'cust_1', '2024-01-03', '{"status":"success","duration_ms":8}'),
	('o3', 'other_tenant', '', 'api_call', 'cust_1', '2024-01-03', '{"status":"success","duration_ms":9}');
SELECT is((SELECT value FROM meter.usage_from_events('u_ok_ms', '2024-01-01', '2024-02-01', source => 'my_events')),
	15::numeric, 'usage_from_events(source): an untracked table, its own tenant''s events only');
SELECT is((SELECT value FROM meter.usage_from_events('u_ok_ms', '2024-01-01', '2024-02-01')),
	0::numeric, 'source NULL: the tracked tables only (my_events is not tracked)');
SELECT is((SELECT array_agg(value ORDER BY window_start) FROM meter.usage_from_events('u_ok_ms', '2024-01-01', '2024-01-05',
		window_size => 'DAY', source => 'my_events')), ARRAY[0, 7, 8, 0]::numeric[],
	'usage_from_events(source) in DAY windows');
CREATE TEMP TABLE not_events (id int, "timestamp" text);
SELECT is(pg_temp.err($$SELECT * FROM meter.usage_from_events('u_ok_ms', '2024-01-01', '2024-02-01', source => 'not_events')$$),
	'22023: source table not_events lacks event columns', 'a source without the event columns');
CREATE TEMP TABLE "Odd ""name""" (LIKE meter.events INCLUDING DEFAULTS);
INSERT INTO "Odd ""name""" SELECT * FROM my_events;
SELECT is((SELECT value FROM meter.usage_from_events('u_ok_ms', '2024-01-01', '2024-02-01', source => '"Odd ""name"""')),
	15::numeric, 'a source whose name needs quoting');

-- ── stored_slots: the exact contract of the stored partial states ───────────────────
INSERT INTO meter.meters (id, event_name, name, aggregation) VALUES
	('u_rc_sum', 'rc', 'sum', '{"type":"SUM","field":"v"}'),
	('u_rc_count', 'rc', 'count', '{"type":"COUNT"}'),
	('u_rc_uniq', 'rc', 'uniq', '{"type":"COUNT_UNIQUE","field":"v"}'),
	('u_rc_ws', 'rc', 'weighted', '{"type":"WEIGHTED_SUM","field":"v"}'),
	('u_rc_latest', 'rc', 'latest', '{"type":"LATEST","field":"v"}');
INSERT INTO meter.events (event_name, customer_id, external_customer_id, "timestamp", properties) VALUES
	('rc', 'c', NULL, '2024-01-01 10:00:00Z', '{"v": 2}'),
	('rc', 'c', NULL, '2024-01-01 10:14:59.999999Z', '{"v": "3.50"}'),
	('rc', 'c', NULL, '2024-01-01 10:14:59.999999Z', '{"v": 1}'),
	('rc', 'c', NULL, '2024-01-01 10:15:00Z', '{"v": "x"}'),
	('rc', NULL, 'x', '2024-01-01 10:20:00.5Z', '{"v": 2.0}'),
	('rc', 'c', NULL, '2024-01-01 10:05:00Z', '{}');
-- Pending (not compacted yet): one row per customer and 15-minute slot.
SELECT results_eq(
	$$SELECT customer_id, external_customer_id, slot, marked, events, n, sum, sum_vt, best, best_at
	FROM meter.stored_slots('u_rc_sum') ORDER BY customer_id, external_customer_id, slot$$,
	$$VALUES (''::text, 'x'::text, '2024-01-01 10:15Z'::timestamptz, false, 1::bigint, 1::bigint, 2::numeric,
			NULL::numeric, NULL::numeric, NULL::timestamptz),
		('c', '', '2024-01-01 10:00Z', false, 4, 3, 6.50, NULL, NULL, NULL),
		('c', '', '2024-01-01 10:15Z', false, 1, 0, NULL, NULL, NULL, NULL)$$,
	'stored_slots: one row per customer and 15-minute slot, the SUM contract (events, usable values, Σv)');
SELECT results_eq(
	$$SELECT customer_id, external_customer_id, slot, events, n, sum FROM meter.stored_slots('u_rc_count')
	ORDER BY customer_id, external_customer_id, slot$$,
	$$VALUES (''::text, 'x'::text, '2024-01-01 10:15Z'::timestamptz, 1::bigint, 1::bigint, NULL::numeric),
		('c', '', '2024-01-01 10:00Z', 4, 4, NULL), ('c', '', '2024-01-01 10:15Z', 1, 1, NULL)$$,
	'the COUNT contract: n = events, no values');
SELECT results_eq(
	$$SELECT customer_id, slot, events, n, uniques FROM meter.stored_slots('u_rc_uniq') ORDER BY customer_id, slot$$,
	$$VALUES (''::text, '2024-01-01 10:15Z'::timestamptz, 1::bigint, 1::bigint, '{"2": 1}'::jsonb),
		('c', '2024-01-01 10:00Z', 4, 3, '{"1": 1, "2": 1, "3.5": 1}'),
		('c', '2024-01-01 10:15Z', 1, 1, '{"x": 1}')$$,
	'the COUNT_UNIQUE contract: n = events with a value, distinct values (numbers canonical) with their event counts');
SELECT results_eq(
	$$SELECT customer_id, slot, sum, sum_vt FROM meter.stored_slots('u_rc_ws') WHERE n > 0 ORDER BY customer_id, slot$$,
	$$VALUES (''::text, '2024-01-01 10:15Z'::timestamptz, 2::numeric, 2 * 1704104400.5),
		('c', '2024-01-01 10:00Z', 6.50, 2 * 1704103200::numeric + 4.5 * 1704104099.999999)$$,
	'the WEIGHTED_SUM contract: Σv and Σ v·t (t in epoch seconds)');
SELECT results_eq(
	$$SELECT customer_id, slot, best::text, best_at FROM meter.stored_slots('u_rc_latest') WHERE n > 0 ORDER BY customer_id, slot$$,
	$$VALUES (''::text, '2024-01-01 10:15Z'::timestamptz, '2.0'::text, '2024-01-01 10:20:00.5Z'::timestamptz),
		('c', '2024-01-01 10:00Z', '3.50', '2024-01-01 10:14:59.999999Z')$$,
	'the LATEST contract: the value at the greatest timestamp, ties to the greatest value (3.50 over 1)');
SELECT results_eq(
	$$SELECT customer_id, external_customer_id, slot, events, n, uniques FROM meter.stored_slots('u_rc_uniq', true) ORDER BY slot$$,
	$$VALUES (NULL::text, NULL::text, '2024-01-01 10:00Z'::timestamptz, 4::bigint, 3::bigint, '{"1": 1, "2": 1, "3.5": 1}'::jsonb),
		(NULL, NULL, '2024-01-01 10:15Z', 2, 2, '{"2": 1, "x": 1}')$$,
	'stored_slots(totals): all customers together, customer ids NULL');
CREATE TEMP TABLE rc_pending AS
	SELECT m, s.* FROM unnest('{u_rc_sum,u_rc_count,u_rc_uniq,u_rc_ws,u_rc_latest}'::text[]) m, meter.stored_slots(m) s;
SELECT pg_temp.refill();
SELECT is((SELECT count(*) FROM (
		(SELECT * FROM rc_pending EXCEPT ALL
		 SELECT m, s.* FROM unnest('{u_rc_sum,u_rc_count,u_rc_uniq,u_rc_ws,u_rc_latest}'::text[]) m, meter.stored_slots(m) s)
		UNION ALL
		(SELECT m, s.* FROM unnest('{u_rc_sum,u_rc_count,u_rc_uniq,u_rc_ws,u_rc_latest}'::text[]) m, meter.stored_slots(m) s
		 EXCEPT ALL SELECT * FROM rc_pending)) d), 0::bigint,
	'compaction changes no stored partial state');

-- ── Partial buckets: window edges off the 15-minute grid read the raw events ────────
INSERT INTO meter.meters (id, event_name, name, aggregation) VALUES ('u_edge', 'edge', 'edge', '{"type":"SUM","field":"v"}');
INSERT INTO meter.events (event_name, customer_id, "timestamp", properties) VALUES
	('edge', 'c', '2024-01-31 10:05Z', '{"v": 1}'), ('edge', 'c', '2024-01-31 10:07Z', '{"v": 10}'),
	('edge', 'c', '2024-01-31 10:10Z', '{"v": 100}'), ('edge', 'c', '2024-02-29 10:06:59.999999Z', '{"v": 1000}'),
	('edge', 'c', '2024-02-29 10:07Z', '{"v": 10000}');
SELECT pg_temp.refill();
SELECT is((SELECT array_agg(value ORDER BY window_start) FROM meter.usage('u_edge', '2024-01-15', '2024-03-15',
		window_size => 'MONTH', billing_anchor => '2023-12-31 10:07Z')),
	ARRAY[1, 1110, 10000]::numeric[], 'MONTH windows anchored at 10:07 on the 31st split buckets exactly');
SELECT is((SELECT array_agg(value ORDER BY window_start) FROM meter.usage('u_edge', '2024-01-31 10:06Z', '2024-01-31 10:11Z', window_size => 'MINUTE')),
	ARRAY[0, 10, 0, 0, 100]::numeric[], 'MINUTE windows');
SELECT is((SELECT value FROM meter.usage('u_edge', '2024-01-31 10:07Z', '2024-02-29 10:07Z')), 1110::numeric,
	'clipped start and end inside buckets');

-- ── Random events: rollups = raw events = a naive reference ─────────────────────────
SELECT setseed(0.25);
INSERT INTO meter.meters (id, event_name, name, aggregation, filters, reset_usage)
SELECT 'rnd_' || t || '_' || r, 'rnd', t,
	(CASE t WHEN 'count' THEN '{"type":"COUNT"}'
		WHEN 'swm' THEN '{"type":"SUM_WITH_MULTIPLIER","field":"v","multiplier":"0.25"}'
		WHEN 'maxh' THEN '{"type":"MAX","field":"v","bucket_size":"HOUR"}'
		WHEN 'max15' THEN '{"type":"MAX","field":"v","bucket_size":"15MIN"}'
		WHEN 'maxd' THEN '{"type":"MAX","field":"v","bucket_size":"DAY"}'
		WHEN 'uniq' THEN '{"type":"COUNT_UNIQUE","field":"u"}'
		WHEN 'ws' THEN '{"type":"WEIGHTED_SUM","field":"v"}'
		ELSE format('{"type":"%s","field":"v"}', upper(t)) END)::meter.aggregation,
	'[{"key":"k","values":["a","b"]}]', r::meter.reset_usage
FROM unnest(ARRAY['count', 'sum', 'avg', 'uniq', 'max', 'min', 'latest', 'swm', 'ws', 'maxh', 'max15', 'maxd']) t,
	unnest(ARRAY['BILLING_PERIOD', 'NEVER']) r;
INSERT INTO meter.events (event_name, customer_id, external_customer_id, "timestamp", properties)
SELECT 'rnd', CASE WHEN random() < 0.15 THEN NULL ELSE 'c' || floor(random() * 3) END,
	CASE WHEN random() < 0.5 THEN 'x1' END,
	'2024-02-25'::timestamptz + random() * interval '20 days',
	jsonb_build_object('k', (ARRAY['a', 'b', 'c'])[1 + floor(random() * 3)::int])
	|| CASE WHEN random() < 0.85 THEN jsonb_build_object('v', round((random() * 2000 - 500)::numeric, floor(random() * 4)::int))
		WHEN random() < 0.5 THEN '{"v": "not a number"}' ELSE '{}' END
	|| CASE WHEN random() < 0.8 THEN jsonb_build_object('u', (ARRAY['p', 'q', 'r', '1', '1.0'])[1 + floor(random() * 5)::int]) ELSE '{}' END
FROM generate_series(1, 1500);
-- events on bucket edges
INSERT INTO meter.events (event_name, customer_id, "timestamp", properties)
SELECT 'rnd', 'c1', '2024-03-09 22:00Z'::timestamptz + g * interval '15 minutes', jsonb_build_object('k', 'a', 'v', g % 7, 'u', g % 3)
FROM generate_series(0, 40) g;

CREATE FUNCTION pg_temp.reference(mid text, s timestamptz, e timestamptz, cust text, ext text,
	ws meter.window_size, tz text, anchor timestamptz)
RETURNS TABLE (window_start timestamptz, window_end timestamptz, value numeric) LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
	m meter.meters;
	bsize meter.window_size;
BEGIN
	SELECT * INTO m FROM meter.meters x WHERE x.id = mid;
	IF meter.type_of(m.aggregation) = 'MAX' THEN
		bsize := meter.bucket_size_of(m.aggregation);
	END IF;
	CREATE TEMP TABLE ref_ev ON COMMIT DROP AS
	SELECT x."timestamp" AS t, meter.numeric_value(x.properties, meter.field_of(m.aggregation)) AS v,
		meter.unique_value(x.properties, meter.field_of(m.aggregation)) AS u
	FROM meter.events x
	WHERE x.tenant_id = m.tenant_id AND x.environment_id = m.environment_id AND x.event_name = m.event_name
		AND meter.matches(m.filters, x.properties)
		AND (cust IS NULL OR coalesce(x.customer_id, '') = cust)
		AND (ext IS NULL OR coalesce(x.external_customer_id, '') = ext);
	CREATE INDEX ON ref_ev (t);
	ANALYZE ref_ev;
	IF bsize IS NULL THEN
		-- every window on its own: the plain SQL aggregate over its events
		RETURN QUERY
		SELECT w.window_start, w.window_end, (SELECT CASE meter.type_of(m.aggregation)
			WHEN 'COUNT' THEN count(*)
			WHEN 'SUM' THEN coalesce(sum(ev.v), 0)
			WHEN 'AVG' THEN avg(ev.v)
			WHEN 'COUNT_UNIQUE' THEN count(DISTINCT ev.u)
			WHEN 'MAX' THEN max(ev.v)
			WHEN 'MIN' THEN min(ev.v)
			WHEN 'LATEST' THEN (array_agg(ev.v ORDER BY ev.t DESC, ev.v DESC) FILTER (WHERE ev.v IS NOT NULL))[1]
			WHEN 'SUM_WITH_MULTIPLIER' THEN coalesce(sum(ev.v) * meter.multiplier_of(m.aggregation), 0)
			WHEN 'WEIGHTED_SUM' THEN coalesce(sum(ev.v * (extract(epoch FROM w.window_end)
					- greatest(extract(epoch FROM ev.t), extract(epoch FROM w.window_start)))
				/ (extract(epoch FROM w.window_end) - extract(epoch FROM w.window_start))), 0)
			END
			FROM ref_ev ev WHERE ev.t < w.window_end AND (m.reset_usage = 'NEVER' OR ev.t >= w.window_start))
		FROM meter.windows(s, e, ws, tz, anchor) w;
	ELSE
		-- MAX per bucket_size bucket (in the zone, cut at window edges), summed
		RETURN QUERY
		WITH w AS (SELECT * FROM meter.windows(s, e, ws, tz, anchor)),
		cells AS (
			SELECT c.window_start AS cs, c.window_end AS ce
			FROM meter.windows(CASE WHEN s > '2024-02-24' THEN '2024-02-24' ELSE s - interval '1 minute' END,
				s, bsize, tz, anchor) c
			WHERE m.reset_usage = 'NEVER'
			UNION ALL
			SELECT c.window_start, c.window_end FROM w, meter.windows(w.window_start, w.window_end, bsize, tz, anchor) c),
		cellmax AS MATERIALIZED (
			SELECT cells.cs, cells.ce, (SELECT max(ev.v) FROM ref_ev ev WHERE ev.t >= cells.cs AND ev.t < cells.ce) AS mx
			FROM cells)
		SELECT w.window_start, w.window_end, (SELECT sum(cm.mx) FROM cellmax cm
			WHERE cm.ce <= w.window_end AND (m.reset_usage = 'NEVER' OR cm.cs >= w.window_start))
		FROM w;
	END IF;
	DROP TABLE ref_ev;
END $$;
CREATE TEMP TABLE cases (n int, s timestamptz, e timestamptz, ws meter.window_size, tz text, anchor timestamptz, cust text, ext text);
INSERT INTO cases VALUES
	(1, '2024-02-27 00:00Z', '2024-03-14 00:00Z', NULL, 'UTC', NULL, NULL, NULL),
	(2, '2024-02-27 03:07:11Z', '2024-03-02 17:01Z', 'HOUR', 'UTC', NULL, NULL, NULL),
	(3, '2024-02-26 03:07:11Z', '2024-03-14 17:01Z', 'DAY', 'America/New_York', NULL, 'c1', NULL),
	(4, '2024-02-20 00:00Z', '2024-03-16 00:00Z', 'WEEK', 'Asia/Kathmandu', NULL, NULL, 'x1'),
	(5, '2024-01-01 00:00Z', '2024-04-01 00:00Z', 'MONTH', 'Asia/Kolkata', '2023-10-31 10:07Z', NULL, NULL),
	(6, '2024-03-09 22:00Z', '2024-03-10 01:00Z', 'MINUTE', 'UTC', NULL, NULL, NULL),
	(7, '2024-03-09 00:00Z', '2024-03-12 00:00Z', '30MIN', 'America/New_York', NULL, '', NULL),
	(8, '2024-03-01 00:00Z', '2024-03-05 00:00Z', '3HOUR', 'Australia/Lord_Howe', NULL, 'c2', ''),
	(9, '2024-03-01 05:00Z', '2024-03-04 00:00Z', '15MIN', 'Asia/Kathmandu', NULL, NULL, NULL),
	(10, '2024-02-28 00:00Z', '2024-03-14 00:00Z', '12HOUR', 'Europe/London', NULL, 'c0', NULL),
	(11, '2024-03-01 00:00Z', '2024-03-16 00:00Z', 'MONTH', 'UTC', '2024-01-31 00:00Z', NULL, NULL);
-- usage while everything is pending, then after compacting.
CREATE TEMP TABLE outcomes AS
SELECT c.n, m.id, 'pending' AS src, u.* FROM cases c, meter.meters m,
	meter.usage(m.id, c.s, c.e, c.cust, c.ext, c.ws, c.tz, c.anchor) u WHERE m.id LIKE 'rnd\_%';
CREATE TEMP TABLE slots_pending AS
	SELECT m.id, s.* FROM meter.meters m, meter.stored_slots(m.id) s WHERE m.id LIKE 'rnd\_%'
	UNION ALL SELECT m.id, s.* FROM meter.meters m, meter.stored_slots(m.id, true) s WHERE m.id LIKE 'rnd\_%';
SELECT cmp_ok((SELECT count(*) FROM meter.pending WHERE tenant_id = 'tap_usage' AND meter_id LIKE 'rnd\_%'), '>=', 24::bigint,
	'the random events were pending (one row per meter at least) when usage was first asked');
SELECT pg_temp.refill();
INSERT INTO outcomes
SELECT c.n, m.id, 'rollups' AS src, u.* FROM cases c, meter.meters m,
	meter.usage(m.id, c.s, c.e, c.cust, c.ext, c.ws, c.tz, c.anchor) u WHERE m.id LIKE 'rnd\_%'
UNION ALL
SELECT c.n, m.id, 'events', u.* FROM cases c, meter.meters m,
	meter.usage_from_events(m.id, c.s, c.e, c.cust, c.ext, c.ws, c.tz, c.anchor) u WHERE m.id LIKE 'rnd\_%'
UNION ALL
SELECT c.n, m.id, 'reference', u.* FROM cases c, meter.meters m,
	pg_temp.reference(m.id, c.s, c.e, c.cust, c.ext, c.ws, c.tz, c.anchor) u WHERE m.id LIKE 'rnd\_%';
-- WEIGHTED_SUM divides per event in the reference, once per window in usage: compare to 1e-8.
CREATE TEMP VIEW rounded AS
SELECT n, id, src, window_start, window_end,
	CASE WHEN id LIKE 'rnd\_ws\_%' THEN round(value, 8) ELSE value END AS value FROM outcomes;
SELECT is((SELECT count(DISTINCT (n, id)) FROM outcomes), 264::bigint, '24 meters × 11 cases');
SELECT is((SELECT count(*) FROM outcomes WHERE src = 'rollups'), (SELECT count(*) FROM outcomes WHERE src = 'reference'),
	'as many rows from the rollups as windows');
-- How many rows of one source's outcomes the other's lack, both ways.
CREATE FUNCTION pg_temp.differ(a text, b text) RETURNS bigint LANGUAGE sql AS $$
	SELECT count(*) FROM (
		(SELECT n, id, window_start, window_end, value FROM outcomes WHERE src = a
		EXCEPT ALL SELECT n, id, window_start, window_end, value FROM outcomes WHERE src = b)
		UNION ALL
		(SELECT n, id, window_start, window_end, value FROM outcomes WHERE src = b
		EXCEPT ALL SELECT n, id, window_start, window_end, value FROM outcomes WHERE src = a)) d $$;
SELECT is(pg_temp.differ('pending', 'events'), 0::bigint,
	'usage with everything pending (not compacted) = usage_from_events exactly');
SELECT is(pg_temp.differ('rollups', 'events'), 0::bigint,
	'usage = usage_from_events exactly, for every type, window size, zone, anchor, customer filter and reset');
SELECT is((SELECT string_agg(DISTINCT d.n || ':' || d.id, ', ') FROM (
		(SELECT n, id, window_start, window_end, value FROM rounded WHERE src = 'events'
		EXCEPT ALL SELECT n, id, window_start, window_end, value FROM rounded WHERE src = 'reference')
		UNION ALL
		(SELECT n, id, window_start, window_end, value FROM rounded WHERE src = 'reference'
		EXCEPT ALL SELECT n, id, window_start, window_end, value FROM rounded WHERE src = 'events')) d), NULL,
	'usage_from_events = a naive per-window reference (no case differs)');
SELECT cmp_ok((SELECT count(DISTINCT value) FROM outcomes WHERE src = 'rollups'), '>', 1000::bigint,
	'the random cases are not trivial');

-- Compaction of the random data changed no stored partial state (per customer and for all).
SELECT is((SELECT count(*) FROM (
		(SELECT * FROM slots_pending EXCEPT ALL
		 (SELECT m.id, s.* FROM meter.meters m, meter.stored_slots(m.id) s WHERE m.id LIKE 'rnd\_%'
		  UNION ALL SELECT m.id, s.* FROM meter.meters m, meter.stored_slots(m.id, true) s WHERE m.id LIKE 'rnd\_%'))
		UNION ALL
		((SELECT m.id, s.* FROM meter.meters m, meter.stored_slots(m.id) s WHERE m.id LIKE 'rnd\_%'
		  UNION ALL SELECT m.id, s.* FROM meter.meters m, meter.stored_slots(m.id, true) s WHERE m.id LIKE 'rnd\_%')
		 EXCEPT ALL SELECT * FROM slots_pending)) d), 0::bigint,
	'compacting the random data changes no stored partial state, per customer or for all customers');

-- A value the window function of usage cannot confuse: hostile search_path.
CREATE SCHEMA evil;
CREATE FUNCTION evil.plus(numeric, numeric) RETURNS numeric LANGUAGE sql AS 'SELECT 42::numeric';
CREATE OPERATOR evil.+ (LEFTARG = numeric, RIGHTARG = numeric, FUNCTION = evil.plus);
CREATE FUNCTION evil.width_bucket(timestamptz, timestamptz[]) RETURNS integer LANGUAGE sql AS 'SELECT 1';
CREATE FUNCTION evil.coalesce_fail(text) RETURNS text LANGUAGE sql AS 'SELECT 1/0';
INSERT INTO meter.events (event_name, customer_id, "timestamp", properties) VALUES ('edge', 'c', '2024-06-01 10:00Z', '{"v": 5}');
SET LOCAL search_path = evil, pg_catalog, public;
SELECT is((SELECT value FROM meter.usage('u_never_ws', '2024-01-01', '2024-01-03')), 7.25,
	'a hostile search_path changes nothing (usage)');
SELECT is((SELECT value FROM meter.usage_from_events('u_ok_ms', '2024-01-01', '2024-02-01', source => 'my_events')),
	15::numeric, 'a hostile search_path changes nothing (usage_from_events)');
SELECT is(meter.compact('u_edge'), 1::bigint, 'a hostile search_path changes nothing (compact)');
RESET search_path;
SELECT is((SELECT value FROM meter.usage('u_edge', '2024-06-01', '2024-06-02')), 5::numeric, 'the event compacted under it counts');
SET LOCAL search_path = evil, pg_catalog, public;
RESET search_path;

SELECT * FROM finish();
ROLLBACK;
