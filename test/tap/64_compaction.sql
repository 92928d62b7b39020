-- Compaction and the engine's settings (SPEC §7, §9; issue 9): meter.compact() folds what
-- is pending and changes no usage; pending work stays bounded by
-- meter.compaction_threshold without any scheduler; a writer of one tenant folds only its
-- own tenant's rows (SPEC §9: the trigger keeps no cross-tenant state and touches only its
-- tenant's rows); compaction rolls back with its subtransaction; meter.restoring (the
-- restore switch) makes the triggers count and rebuild nothing; verify()'s recomputation
-- agrees with the engine at the ends of the timestamp range.
BEGIN;
SET client_min_messages = warning;
SELECT plan(59);

-- fn(args) against its _from_events twin (the oracle): as sets for meter.usage, in order
-- for the functions over many customers (ordered by customer, then window).
CREATE FUNCTION pg_temp.same_as_events(fn text, args text, description text) RETURNS text
LANGUAGE sql AS $f$
	SELECT CASE WHEN fn = 'usage'
		THEN set_eq(format('SELECT * FROM meter.%s(%s)', fn, args), format('SELECT * FROM meter.%s_from_events(%s)', fn, args), description)
		ELSE results_eq(format('SELECT * FROM meter.%s(%s)', fn, args), format('SELECT * FROM meter.%s_from_events(%s)', fn, args), description)
	END
$f$;

SET LOCAL timezone = 'UTC';

CREATE FUNCTION pg_temp.err(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE stmt;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ': ' || SQLERRM;
END $$;
-- The stored partial states of a meter, as text (both levels).
CREATE FUNCTION pg_temp.stored(m text) RETURNS text LANGUAGE sql AS $$
	SELECT string_agg(concat_ws(' ', l, s.customer_id, s.external_customer_id, s.slot, s.marked, s.events, s.n,
		s.sum, s.sum_vt, s.best, s.best_at, s.uniques, s.maxima), E'\n' ORDER BY l, s.customer_id, s.external_customer_id, s.slot)
	FROM unnest(ARRAY[false, true]) l, meter.stored_slots(m, l) s $$;
CREATE FUNCTION pg_temp.pending(t text) RETURNS bigint LANGUAGE sql AS $$
	SELECT count(*) FROM meter.pending WHERE tenant_id = t $$;

-- ── meter.compact() ─────────────────────────────────────────────────────────────────
SET LOCAL meter.tenant_id = 'k1';
SELECT meter.matches('[]', '{}');  -- loads the library, which defines the settings
SELECT is(current_setting('meter.compaction_threshold'), '20000', 'meter.compaction_threshold defaults to 20000');
SELECT is((SELECT context FROM pg_settings WHERE name = 'meter.compaction_threshold'), 'user',
	'meter.compaction_threshold can be set by any role (USERSET)');
INSERT INTO meter.meters (id, event_name, name, aggregation) VALUES
	('k_sum', 'e', 'sum', '{"type":"SUM","field":"v"}'),
	('k_max', 'e', 'max', '{"type":"MAX","field":"v"}'),
	('k_uniq', 'e', 'uniq', '{"type":"COUNT_UNIQUE","field":"u"}');
INSERT INTO meter.events (id, event_name, customer_id, "timestamp", properties)
SELECT 'a' || g, 'e', 'c' || (g % 3), '2024-04-01 00:00Z'::timestamptz + g * interval '7 minutes',
	jsonb_build_object('v', g, 'u', 'u' || (g % 5)) FROM generate_series(1, 300) g;
DELETE FROM meter.events WHERE tenant_id = 'k1' AND id IN ('a5', 'a17');
UPDATE meter.events SET properties = '{"v": 1000, "u": "top"}' WHERE tenant_id = 'k1' AND id = 'a100';
SELECT is(pg_temp.pending('k1'), 9::bigint, 'three statements, three meters: nine pending rows');
CREATE TEMP TABLE k_before AS
	SELECT m, pg_temp.stored(m) AS stored, (SELECT value FROM meter.usage(m, '2024-04-01', '2024-04-03')) AS usage
	FROM unnest('{k_sum,k_max,k_uniq}'::text[]) m;
SELECT is(meter.compact('k_sum'), 3::bigint, 'compact(meter) folds that meter''s pending rows and says how many');
SELECT is(pg_temp.pending('k1'), 6::bigint, '… and leaves the other meters'' pending rows');
SELECT is(meter.compact(), 6::bigint, 'compact() folds the rest of the scope');
SELECT is(meter.compact(), 0::bigint, 'a second compact() has nothing to fold');
SELECT is(pg_temp.pending('k1'), 0::bigint, 'nothing pending');
SELECT is((SELECT count(*) FROM k_before b WHERE b.stored IS DISTINCT FROM pg_temp.stored(b.m)
		AND b.m <> 'k_max'), 0::bigint,
	'compaction changes no stored partial state (invertible meters)');
SELECT is((SELECT count(*) FROM meter.stored_slots('k_max') WHERE marked), 0::bigint,
	'compaction recomputed the slots the UPDATE and DELETEs marked (MAX)');
SELECT is((SELECT count(*) FROM k_before b
		WHERE b.usage IS DISTINCT FROM (SELECT value FROM meter.usage(b.m, '2024-04-01', '2024-04-03'))), 0::bigint,
	'compaction changes no usage');
SELECT is_empty('SELECT * FROM meter.verify()', 'verify() is empty after compacting');
SELECT is(pg_temp.err($$SELECT meter.compact('nope')$$), 'P0002: meter "nope" not found', 'compact of an unknown meter: P0002');
SET LOCAL meter.tenant_id = '';
SELECT matches(pg_temp.err('SELECT meter.compact()'), '^55000', 'compact without a tenant: 55000');
SET LOCAL meter.tenant_id = 'k1';

-- A compaction rolled back with its subtransaction.
INSERT INTO meter.events (id, event_name, customer_id, "timestamp", properties)
VALUES ('b1', 'e', 'c1', '2024-04-01 10:00Z', '{"v": 5, "u": "b"}');
SAVEPOINT k_s;
SELECT meter.compact();
ROLLBACK TO SAVEPOINT k_s;
SELECT is(pg_temp.pending('k1'), 3::bigint, 'a compaction rolled back to a savepoint leaves the rows pending');
SELECT is_empty('SELECT * FROM meter.verify()', '… and verify() empty');
SELECT is(meter.compact(), 3::bigint, 'they fold later');

-- ── Bounded pending work ────────────────────────────────────────────────────────────
SET LOCAL meter.compaction_threshold = 10;
DO $$
BEGIN
	FOR i IN 1 .. 100 LOOP
		INSERT INTO meter.events (id, event_name, customer_id, "timestamp", properties)
		VALUES ('c' || i, 'e', 'c1', '2024-04-02 00:00Z'::timestamptz + i * interval '1 minute', jsonb_build_object('v', i));
	END LOOP;
END $$;
SELECT cmp_ok((SELECT coalesce(sum(entries), 0) FROM meter.pending WHERE tenant_id = 'k1' AND meter_id = 'k_sum'), '<=', 11::bigint,
	'100 statements with compaction_threshold = 10: never more than the threshold (plus one statement) pending');
SELECT is_empty('SELECT * FROM meter.verify()', 'verify() is empty');
SET LOCAL meter.compaction_threshold = 1;
INSERT INTO meter.events (id, event_name, customer_id, "timestamp", properties)
VALUES ('d1', 'e', 'c2', '2024-04-02 05:00Z', '{"v": 1}');
SELECT is(pg_temp.pending('k1'), 0::bigint, 'compaction_threshold = 1: the writer''s statement folded its tenant''s rows');
RESET meter.compaction_threshold;

-- ── A writer compacts its own tenant only ───────────────────────────────────────────
SET LOCAL meter.tenant_id = 'k2';
INSERT INTO meter.meters (id, event_name, name, aggregation) VALUES ('k2_sum', 'e', 'sum', '{"type":"SUM","field":"v"}');
INSERT INTO meter.events (id, event_name, customer_id, "timestamp", properties)
VALUES ('x1', 'e', 'c1', '2024-04-01 10:00Z', '{"v": 1}');
SELECT is(pg_temp.pending('k2'), 1::bigint, 'tenant k2 has a pending row');
SET LOCAL meter.tenant_id = 'k1';
SET LOCAL meter.compaction_threshold = 1;
INSERT INTO meter.events (id, event_name, customer_id, "timestamp", properties)
VALUES ('d2', 'e', 'c2', '2024-04-02 05:00Z', '{"v": 1}');
RESET meter.compaction_threshold;
SELECT is(pg_temp.pending('k2'), 1::bigint,
	'a statement of tenant k1 past the threshold leaves tenant k2''s pending rows alone (same backend)');

-- ── meter.restoring ─────────────────────────────────────────────────────────────────
SELECT is((SELECT context FROM pg_settings WHERE name = 'meter.restoring'), 'superuser',
	'meter.restoring is a superuser setting (SUSET)');
CREATE ROLE meter_tap64_plain NOLOGIN;
SET LOCAL ROLE meter_tap64_plain;
SELECT matches(pg_temp.err('SET LOCAL meter.restoring = on'), '^42501', 'a plain role cannot set meter.restoring');
RESET ROLE;
SET LOCAL meter.tenant_id = 'k3';
INSERT INTO meter.meters (id, event_name, name, aggregation) VALUES ('k3_count', 'e', 'count', '{"type":"COUNT"}');
INSERT INTO meter.events (id, event_name, customer_id, "timestamp") VALUES ('r0', 'e', 'c1', '2024-04-01 10:00Z');
CREATE TEMP TABLE k3_before AS SELECT pg_temp.stored('k3_count') AS stored;
SET LOCAL meter.restoring = on;
INSERT INTO meter.events (id, event_name, customer_id, "timestamp") VALUES ('r1', 'e', 'c1', '2024-04-01 10:00Z');
UPDATE meter.events SET "timestamp" = '2024-04-01 11:00Z' WHERE tenant_id = 'k3' AND id = 'r0';
SELECT is(pg_temp.stored('k3_count'), (SELECT stored FROM k3_before),
	'while restoring, the tracking trigger counts nothing (the dump brings the stored usage)');
INSERT INTO meter.meters (id, event_name, name, aggregation) VALUES ('k3_sum', 'e', 'sum', '{"type":"SUM","field":"v"}');
SELECT is(pg_temp.stored('k3_sum'), NULL, 'while restoring, a new meter is not rebuilt from the events');
CREATE TEMP TABLE k3_before_change AS SELECT pg_temp.stored('k3_count') AS stored;
UPDATE meter.meters SET filters = '[{"key":"x","values":["y"]}]' WHERE id = 'k3_count';
SELECT is(pg_temp.stored('k3_count'), (SELECT stored FROM k3_before_change), 'while restoring, a changed meter is not rebuilt');
RESET meter.restoring;
SELECT is((SELECT count(*) FROM meter.rebuild()), 2::bigint, 'after the restore, rebuild() brings the scope in line');
SELECT is_empty('SELECT * FROM meter.verify()', '… verify() is empty');

-- ── A compaction in several batches ─────────────────────────────────────────────────
-- One compaction folds its pending rows in batches of meter.compaction_batch_kb (32 MB;
-- 64 kB here), oldest (first_day, last_day) first. The order below puts a value's update in an earlier batch
-- than its insert (a SUM entry of events 0 and Σ +2 must survive the first batch), and a
-- deletion of a MAX (which marks its slot for recomputation from the raw events) in an
-- earlier batch than an insert into the same slot (the recomputation already counts it:
-- the later batch must not add it again). 8,000 customers of filler per meter on days 1
-- and 2 fill the first batch; the inserts span days 1 to 3, so they sort after it.
SET LOCAL meter.tenant_id = 'kb';
SET LOCAL meter.compaction_threshold = 2147483647;
SET LOCAL meter.compaction_batch_kb = 64;
INSERT INTO meter.meters (id, event_name, name, aggregation) VALUES
	('kb_sum', 'es', 'sum', '{"type":"SUM","field":"v"}'),
	('kb_max', 'em', 'max', '{"type":"MAX","field":"v"}');
INSERT INTO meter.events (id, event_name, customer_id, "timestamp", properties) VALUES
	('m1', 'em', 'c1', '2024-05-01 10:00Z', '{"v": 5}');
SELECT is(meter.compact('kb_max'), 1::bigint, 'several batches: the MAX meter''s first event is compacted');
INSERT INTO meter.events (id, event_name, customer_id, "timestamp", properties) VALUES   -- (D1, D3)
	('s1', 'es', 'c1', '2024-05-01 10:00Z', '{"v": 5}'), ('s2', 'es', 'x', '2024-05-03 10:00Z', '{"v": 1}');
UPDATE meter.events SET properties = '{"v": 7}' WHERE tenant_id = 'kb' AND id = 's1';      -- (D1, D1)
DELETE FROM meter.events WHERE tenant_id = 'kb' AND id = 'm1';                              -- (D1, D1), marked
INSERT INTO meter.events (id, event_name, customer_id, "timestamp", properties)            -- (D1, D2) each
SELECT e || g, e, 'f' || g, '2024-05-01 12:00Z'::timestamptz + (g % 2) * interval '1 day', '{"v": 1}'
FROM generate_series(1, 8000) g, unnest(ARRAY['es', 'em']) e;
INSERT INTO meter.events (id, event_name, customer_id, "timestamp", properties) VALUES     -- (D1, D3)
	('m2', 'em', 'c2', '2024-05-01 10:05Z', '{"v": 3}'), ('m3', 'em', 'x', '2024-05-03 10:00Z', '{"v": 1}');
SELECT ok((SELECT bool_and(before >= (SELECT setting::bigint * 1024 FROM pg_settings WHERE name = 'meter.compaction_batch_kb'))
	FROM (SELECT last_day, sum(octet_length(data)) OVER (PARTITION BY meter_id
			ORDER BY first_day, last_day RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW EXCLUDE GROUP) AS before
		FROM meter.pending WHERE tenant_id = 'kb') p WHERE last_day = '2024-05-03'),
	'several batches: the premise holds (each meter''s inserts sort after a full batch)');
CREATE TEMP TABLE kb_pending AS SELECT count(*) AS n FROM meter.pending WHERE tenant_id = 'kb';
SELECT is(meter.compact(), (SELECT n FROM kb_pending), 'several batches: compact() folds every pending row');
SELECT is((SELECT value FROM meter.usage('kb_sum', '2024-05-01', '2024-05-04', customer_id => 'c1')), 7::numeric,
	'several batches: an update folded before its insert keeps its +2 (SUM 7)');
SELECT is((SELECT sum(events) FROM meter.stored_slots('kb_max', true) WHERE slot = '2024-05-01 10:00Z'), 1::numeric,
	'several batches: an event of a slot recomputed by an earlier batch is not added again');
SELECT is_empty('SELECT * FROM meter.verify()', 'several batches: verify() is empty');
SELECT is((SELECT array_agg(u.value ORDER BY m.id) FROM meter.meters m,
		meter.usage(m.id, '2024-05-01', '2024-05-04') u WHERE m.tenant_id = 'kb'),
	(SELECT array_agg(u.value ORDER BY m.id) FROM meter.meters m,
		meter.usage_from_events(m.id, '2024-05-01', '2024-05-04') u WHERE m.tenant_id = 'kb'),
	'several batches: usage = usage_from_events');
RESET meter.compaction_threshold;
RESET meter.compaction_batch_kb;

-- ── Pending rows' all-customers totals ──────────────────────────────────────────────
-- Each pending row carries its entries summed over customers: all-customers usage reads
-- them (not the customer entries), compaction folds them into the all-customers rows.
SET LOCAL meter.tenant_id = 'k6';
SET LOCAL meter.compaction_threshold = 2147483647;
INSERT INTO meter.meters (id, event_name, name, aggregation) VALUES
	('k6_sum', 'e', 'sum', '{"type":"SUM","field":"v"}'),
	('k6_max', 'e', 'max', '{"type":"MAX","field":"v"}'),
	('k6_uniq', 'e', 'uniq', '{"type":"COUNT_UNIQUE","field":"u"}'),
	('k6_latest', 'e', 'latest', '{"type":"LATEST","field":"v"}');
INSERT INTO meter.events (id, event_name, customer_id, "timestamp", properties)
SELECT 'k6_' || g, 'e', 'c' || (g % 7), '2024-08-01'::timestamptz + g * interval '7 minutes',
	jsonb_build_object('v', g % 50, 'u', 'u' || (g % 30)) FROM generate_series(1, 400) g;
DELETE FROM meter.events WHERE tenant_id = 'k6' AND id IN ('k6_49', 'k6_99', 'k6_150');
UPDATE meter.events SET properties = '{"v": 1000, "u": "u999"}', customer_id = 'c9'
	WHERE tenant_id = 'k6' AND id IN ('k6_7', 'k6_300');
SELECT ok((SELECT count(*) FROM meter.pending WHERE tenant_id = 'k6') >= 12
	AND (SELECT bool_and(octet_length(totals) > 0) FROM meter.pending WHERE tenant_id = 'k6'),
	'the statements left pending rows, each with its all-customers totals');
SELECT is((SELECT array_agg(u ORDER BY m.id) FROM meter.meters m,
		LATERAL (SELECT array_agg(value ORDER BY window_start) u FROM meter.usage(m.id, '2024-08-01', '2024-08-04', window_size => 'HOUR')) x
		WHERE m.tenant_id = 'k6'),
	(SELECT array_agg(u ORDER BY m.id) FROM meter.meters m,
		LATERAL (SELECT array_agg(value ORDER BY window_start) u FROM meter.usage_from_events(m.id, '2024-08-01', '2024-08-04', window_size => 'HOUR')) x
		WHERE m.tenant_id = 'k6'),
	'all customers, everything pending (inserts, deletes, updates; MAX and LATEST marked): usage = usage_from_events');
SELECT is((SELECT array_agg(u ORDER BY m.id) FROM meter.meters m,
		LATERAL (SELECT array_agg(value ORDER BY window_start) u FROM meter.usage(m.id, '2024-08-01', '2024-08-04', customer_id => 'c9', window_size => 'HOUR')) x
		WHERE m.tenant_id = 'k6'),
	(SELECT array_agg(u ORDER BY m.id) FROM meter.meters m,
		LATERAL (SELECT array_agg(value ORDER BY window_start) u FROM meter.usage_from_events(m.id, '2024-08-01', '2024-08-04', customer_id => 'c9', window_size => 'HOUR')) x
		WHERE m.tenant_id = 'k6'),
	'one customer, everything pending: usage = usage_from_events');
SELECT is_empty($$SELECT * FROM meter.verify() WHERE meter_id LIKE 'k6%'$$,
	'verify() checks the pending totals against the raw events: empty');
SELECT is((SELECT count(*) FROM meter.stored_slots('k6_sum', true)),
	(SELECT count(DISTINCT date_bin('15 minutes', "timestamp", timestamptz '2000-01-01 00:00Z')) FROM meter.events WHERE tenant_id = 'k6'),
	'the pending totals hold one entry per slot (not per customer and slot)');
SELECT ok(meter.compact() > 0, 'meter.compact() folds them');
SELECT is_empty($$SELECT * FROM meter.verify() WHERE meter_id LIKE 'k6%'$$,
	'after compaction the all-customers rows (folded from the totals) agree with the raw events');
RESET meter.compaction_threshold;

-- ── COUNT_UNIQUE counts read from a row's directory alone ───────────────────────────
-- A day's all-customers row of a COUNT_UNIQUE meter holds its distinct values (TOASTed
-- when large) and per-hour counts in its directory: HOUR windows take the counts from
-- the first TOAST chunk, never the values.
SET LOCAL meter.tenant_id = 'k5';
INSERT INTO meter.meters (id, event_name, name, aggregation) VALUES
	('k5_users', 'e', 'users', '{"type":"COUNT_UNIQUE","field":"user"}');
INSERT INTO meter.events (id, event_name, customer_id, "timestamp", properties)
SELECT 'k5_' || g, 'e', 'c' || (g % 3), '2024-07-01'::timestamptz + (g % 1440) * interval '1 minute',
	jsonb_build_object('user', 'user-' || (g % 5000)) FROM generate_series(1, 20000) g;
SELECT meter.compact();
SELECT ok((SELECT pg_column_size(data) FROM meter.rollups WHERE tenant_id = 'k5' AND shard = -1) > 20000,
	'the all-customers row of the day is large (TOASTed)');
CREATE TEMP TABLE k5_toast AS SELECT reltoastrelid AS t FROM pg_class WHERE oid = 'meter.rollups'::regclass;
CREATE TEMP TABLE k5_before AS SELECT pg_stat_get_xact_blocks_fetched(t) AS n FROM k5_toast;
CREATE TEMP TABLE k5_usage AS
	SELECT * FROM meter.usage('k5_users', '2024-07-01', '2024-07-02', window_size => 'HOUR');
SELECT cmp_ok((SELECT pg_stat_get_xact_blocks_fetched(t) FROM k5_toast) - (SELECT n FROM k5_before), '<=', 2::bigint,
	'HOUR windows of all customers read the counts: one TOAST chunk of the row, not its values');
SELECT set_eq('SELECT * FROM k5_usage',
	$$SELECT * FROM meter.usage_from_events('k5_users', '2024-07-01', '2024-07-02', window_size => 'HOUR')$$,
	'and equal usage_from_events');
SELECT pg_temp.same_as_events('usage', $$'k5_users', '2024-07-01', '2024-07-02', customer_id => 'c1', window_size => 'HOUR'$$,
	'one customer, HOUR windows: usage = usage_from_events');
SELECT pg_temp.same_as_events('usage', $$'k5_users', '2024-07-01 00:07', '2024-07-02', window_size => 'HOUR'$$,
	'a start off the slot grid (the first hour needs the values): usage = usage_from_events');
SELECT pg_temp.same_as_events('usage', $$'k5_users', '2024-07-01', '2024-07-02', window_size => '15MIN'$$,
	'15-minute windows (no counts): usage = usage_from_events');
SET LOCAL meter.compaction_threshold = 2147483647;
INSERT INTO meter.events (id, event_name, customer_id, "timestamp", properties) VALUES
	('k5_new', 'e', 'c1', '2024-07-01 05:10', '{"user": "someone-new"}'),
	('k5_old', 'e', 'c2', '2024-07-01 06:10', '{"user": "user-1"}');
SELECT pg_temp.same_as_events('usage', $$'k5_users', '2024-07-01', '2024-07-02', window_size => 'HOUR'$$,
	'hours with pending entries take the values: usage = usage_from_events');
RESET meter.compaction_threshold;

-- ── COUNT_UNIQUE windows built from stored and pending values ───────────────────────
-- A read hands the windows' sets the distinct values of each stored and pending row
-- without copying each one (the row's dictionary is copied once): values added by one
-- row and removed by another (refs down to zero, then up again) must count exactly.
SET LOCAL meter.tenant_id = 'k7';
INSERT INTO meter.meters (id, event_name, name, aggregation) VALUES
	('k7_u', 'e', 'users', '{"type":"COUNT_UNIQUE","field":"u"}');
INSERT INTO meter.events (id, event_name, customer_id, "timestamp", properties)
SELECT 'k7_a' || g, 'e', 'c' || (g % 3), '2024-09-01'::timestamptz + g * interval '11 minutes',
	jsonb_build_object('u', 'v' || (g % 17)) FROM generate_series(1, 300) g;
SELECT meter.compact();
SET LOCAL meter.compaction_threshold = 2147483647;
INSERT INTO meter.events (id, event_name, customer_id, "timestamp", properties)
SELECT 'k7_b' || g, 'e', 'c' || (g % 4), '2024-09-01'::timestamptz + g * interval '13 minutes',
	jsonb_build_object('u', CASE WHEN g % 5 = 0 THEN to_jsonb(g % 2) ELSE to_jsonb('v' || (g % 23)) END) FROM generate_series(1, 200) g;
DELETE FROM meter.events WHERE tenant_id = 'k7' AND (id LIKE 'k7_a%' AND substr(id, 5)::int % 4 = 0
	OR id LIKE 'k7_b%' AND substr(id, 5)::int % 6 = 0);
UPDATE meter.events SET properties = jsonb_build_object('u', 'w' || substr(id, 5)::int % 3)
	WHERE tenant_id = 'k7' AND id LIKE 'k7_b%' AND substr(id, 5)::int % 7 = 0;
INSERT INTO meter.events (id, event_name, customer_id, "timestamp", properties)
SELECT 'k7_c' || g, 'e', 'c' || (g % 3), '2024-09-01'::timestamptz + g * interval '44 minutes',
	jsonb_build_object('u', 'v' || (g % 17)) FROM generate_series(1, 60) g;
SELECT ok((SELECT count(*) FROM meter.pending WHERE tenant_id = 'k7') >= 4, 'k7: several pending rows over a compacted day');
SELECT pg_temp.same_as_events('usage', $$'k7_u', '2024-09-01', '2024-09-04', window_size => 'HOUR'$$,
	'COUNT_UNIQUE, all customers, HOUR windows over stored and pending values: usage = usage_from_events');
SELECT pg_temp.same_as_events('usage', $$'k7_u', '2024-09-01', '2024-09-04', window_size => 'DAY'$$,
	'the same, DAY windows');
SELECT pg_temp.same_as_events('usage', $$'k7_u', '2024-09-01', '2024-10-01', window_size => 'MONTH'$$,
	'the same, one MONTH window');
SELECT pg_temp.same_as_events('usage', $$'k7_u', '2024-09-01 00:05', '2024-09-03 07:00', customer_id => 'c1', window_size => 'HOUR'$$,
	'one customer, HOUR windows, range off the slot grid: usage = usage_from_events');
SELECT pg_temp.same_as_events('usage_by_customer', $$'k7_u', '2024-09-01', '2024-10-01', window_size => 'MONTH'$$,
	'usage_by_customer, one MONTH window: equal to its twin');
SELECT pg_temp.same_as_events('usage_by_customer', $$'k7_u', '2024-09-01', '2024-09-04', window_size => 'DAY'$$,
	'usage_by_customer, DAY windows: equal to its twin');
RESET meter.compaction_threshold;

-- ── verify() at the ends of the timestamp range ─────────────────────────────────────
SET LOCAL meter.tenant_id = 'k4';
INSERT INTO meter.meters (id, event_name, name, aggregation) VALUES ('k4_count', 'e', 'count', '{"type":"COUNT"}');
INSERT INTO meter.events (id, event_name, customer_id, "timestamp") VALUES
	('far1', 'e', 'c1', '294276-12-31 23:50:00Z'), ('far2', 'e', 'c1', '4713-11-24 00:07:00 BC');
SELECT is_empty('SELECT * FROM meter.verify()',
	'verify() agrees with the stored slots of events at the ends of the timestamp range');
SELECT is((SELECT sum(events) FROM meter.stored_slots('k4_count') WHERE slot IN ('294276-12-31 23:45:00Z', '4713-11-24 00:00:00 BC')),
	2::numeric, 'their slots start on 15-minute boundaries');

SELECT * FROM finish();
ROLLBACK;
