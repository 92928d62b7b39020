-- Sealed periods (README "Partitioning and retention", SPEC §7 as written there): once a
-- scope is sealed before a time, its usage before then is frozen — served from the
-- compacted rows even after the raw events (a partition) are gone; events written into
-- sealed time are stored but not counted and show in meter.skipped ('sealed period');
-- verify, rebuild and meter changes leave sealed time alone.
BEGIN;
SET client_min_messages = warning;
SET LOCAL TimeZone = 'UTC';
SELECT plan(65);

CREATE ROLE meter_tap_swriter NOLOGIN NOSUPERUSER NOBYPASSRLS;
CREATE ROLE meter_tap_sreader NOLOGIN NOSUPERUSER NOBYPASSRLS;
CREATE ROLE meter_tap_sadmin NOLOGIN NOSUPERUSER NOBYPASSRLS;
SELECT meter.grant_writer('meter_tap_swriter');
SELECT meter.grant_reader('meter_tap_sreader');
SELECT meter.grant_admin('meter_tap_sadmin');

-- meter.events by month, as retention wants it.
SELECT meter.partition_events();
CREATE TABLE meter.events_2024_04 PARTITION OF meter.events FOR VALUES FROM ('2024-04-01') TO ('2024-05-01');
CREATE TABLE meter.events_2024_05 PARTITION OF meter.events FOR VALUES FROM ('2024-05-01') TO ('2024-06-01');
CREATE TABLE meter.events_2024_06 PARTITION OF meter.events FOR VALUES FROM ('2024-06-01') TO ('2024-07-01');

SET LOCAL meter.tenant_id = 'acme';
SET LOCAL meter.user_id = 'billing-bot';
SELECT meter.create_meter('api', 'calls', id => 'sl_count');
SELECT meter.create_meter('api', 'tokens', '{"type":"SUM","field":"n"}', id => 'sl_sum');
SELECT meter.create_meter('api', 'peak', '{"type":"MAX","field":"n"}', id => 'sl_max');
SELECT meter.create_meter('api', 'users', '{"type":"COUNT_UNIQUE","field":"user"}', id => 'sl_unique');
SELECT meter.create_meter('api', 'last', '{"type":"LATEST","field":"n"}', id => 'sl_latest');
SELECT meter.create_meter('api', 'eu', '{"type":"SUM","field":"n"}', '[{"key":"region","values":["eu"]}]', id => 'sl_eu');
-- April 1 to June 30, every 3 hours; customers c1..c3; regions eu/us.
INSERT INTO meter.events (id, event_name, customer_id, "timestamp", properties)
SELECT 'a' || i, 'api', 'c' || (i % 3 + 1), timestamptz '2024-04-01' + i * interval '3 hours',
	jsonb_build_object('n', i % 50, 'user', 'u' || (i % 11), 'region', CASE WHEN i % 2 = 0 THEN 'eu' ELSE 'us' END)
FROM generate_series(0, 727) i;
SET LOCAL meter.tenant_id = 'globex';
SELECT meter.create_meter('api', 'calls', id => 'sl_g_count');
INSERT INTO meter.events (id, event_name, customer_id, "timestamp")
SELECT 'g' || i, 'api', 'c1', timestamptz '2024-04-01' + i * interval '1 day' FROM generate_series(0, 89) i;
SET LOCAL meter.tenant_id = 'acme';

-- Usage of every meter, per month and customer (and all customers), to compare with.
CREATE FUNCTION pg_temp.usage_rows(lo timestamptz, hi timestamptz) RETURNS TABLE (meter_id text, customer text, w timestamptz, v numeric)
LANGUAGE sql AS $$
	SELECT m.id, c.c, u.window_start, u.value
	FROM meter.meters m
	CROSS JOIN (VALUES (NULL::text), ('c1'), ('c2'), ('c3')) c(c)
	CROSS JOIN LATERAL meter.usage(m.id, lo, hi, customer_id => c.c, window_size => 'MONTH') u
	WHERE m.tenant_id = meter.current_tenant() AND m.status = 'published'
$$;
CREATE TEMP TABLE april AS SELECT * FROM pg_temp.usage_rows('2024-04-01', '2024-05-01');
CREATE TEMP TABLE may AS SELECT * FROM pg_temp.usage_rows('2024-05-01', '2024-06-01');
SELECT is((SELECT count(*) FROM april WHERE v IS NOT NULL AND v <> 0), 24::bigint, 'April: 6 meters x 4 customer views, all non-empty');

-- Errors.
SELECT throws_ok($$SELECT meter.seal('2024-05-01 00:07+00')$$, '22023', 'seal time must fall on a 15-minute boundary',
	'a seal off a 15-minute boundary: 22023');
SELECT throws_ok($$SELECT meter.seal(NULL)$$, '22023', 'seal time must be a finite time', 'NULL: 22023');
SELECT throws_ok($$SELECT meter.seal('infinity')$$, '22023', 'seal time must be a finite time', 'infinity: 22023');
SELECT set_config('meter.tenant_id', '', true);
SELECT throws_ok($$SELECT meter.seal('2024-05-01')$$, '55000', NULL, 'no tenant: 55000');
SELECT set_config('meter.tenant_id', 'acme', true);
SELECT is((SELECT count(*) FROM meter.seals), 0::bigint, 'no seal recorded by the failed calls');
SELECT is(meter.sealed_before(), '-infinity'::timestamptz, 'sealed_before() is -infinity before any seal');

-- Privileges: the owner and admins seal; writers and readers may not.
CREATE FUNCTION pg_temp.as_role(r text, q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE res text;
BEGIN
	EXECUTE format('SET LOCAL ROLE %I', r);
	BEGIN
		EXECUTE q INTO res;
		res := COALESCE(res, 'ok');
	EXCEPTION WHEN OTHERS THEN
		res := SQLSTATE;
	END;
	RESET ROLE;
	RETURN res;
END $$;
SELECT is(pg_temp.as_role('meter_tap_swriter', $$SELECT meter.seal('2024-05-01')$$), '42501', 'a writer may not seal (42501)');
SELECT is(pg_temp.as_role('meter_tap_sreader', $$SELECT meter.seal('2024-05-01')$$), '42501', 'a reader may not seal (42501)');
SELECT is(pg_temp.as_role('meter_tap_sreader', $$SELECT meter.sealed_before()::text$$), '-infinity', 'a reader reads sealed_before()');

-- The issue's case: seal April, drop its partition.
SELECT is(pg_temp.as_role('meter_tap_sadmin', $$SELECT meter.seal('2024-05-01')::text$$), '2024-05-01 00:00:00+00',
	'an admin seals April (the seal is returned)');
SELECT is(meter.sealed_before(), '2024-05-01 00:00+00'::timestamptz, 'sealed_before() says so');
SELECT is((SELECT string_agg(format('%s|%s|%s|%s', tenant_id, environment_id, sealed_before, sealed_by), ', ') FROM meter.seals),
	'acme||2024-05-01 00:00:00+00|billing-bot', 'meter.seals lists the seal and who made it');
SELECT lives_ok($$SELECT meter.seal('2024-05-01')$$, 'sealing at the same time again is allowed (a retried job)');
SELECT is((SELECT count(*) FROM meter.seals), 1::bigint, '... and records nothing more');
SELECT throws_ok($$SELECT meter.seal('2024-04-30 23:45')$$, '22023', 'seal cannot move back', 'a seal cannot move back: 22023');
SELECT is((SELECT count(*) FROM meter.pending WHERE tenant_id = 'acme'), 0::bigint, 'sealing folded everything pending');

DROP TABLE meter.events_2024_04;
SELECT is((SELECT count(*) FROM meter.events WHERE "timestamp" < '2024-05-01'), 0::bigint, 'April''s events are gone');
SELECT set_eq($$SELECT * FROM pg_temp.usage_rows('2024-04-01', '2024-05-01')$$, $$SELECT * FROM april$$,
	'usage for April unchanged, every meter and customer');
SELECT set_eq($$SELECT * FROM pg_temp.usage_rows('2024-05-01', '2024-06-01')$$, $$SELECT * FROM may$$, 'May unchanged too');
SELECT is((SELECT count(*) FROM meter.verify()), 0::bigint, 'verify() empty');
SELECT is((SELECT value FROM meter.usage_from_events('sl_count', '2024-04-01', '2024-05-01')), 0::numeric,
	'(the raw events of April are gone: usage_from_events says 0)');
SELECT is((SELECT value FROM meter.usage('sl_count', '2024-04-01', '2024-07-01')),
	(SELECT v FROM april WHERE meter_id = 'sl_count' AND customer IS NULL)
	+ (SELECT value FROM meter.usage_from_events('sl_count', '2024-05-01', '2024-07-01')), 'a range across the seal: April frozen + May–June raw');

-- A late event into April (it lands in the default partition): stored, not counted, skipped.
SELECT results_eq($$SELECT accepted, duplicates FROM meter.ingest('[{"id": "late1", "event_name": "api", "customer_id": "c2",
	"timestamp": "2024-04-15T10:05:00Z", "properties": {"n": 1000, "user": "new", "region": "eu"}}]')$$,
	$$VALUES (1, 0)$$, 'a late event into sealed April is accepted');
SELECT is((SELECT tableoid::regclass::text FROM meter.events WHERE id = 'late1'), 'meter.events_default', '... stored (default partition)');
SELECT set_eq($$SELECT * FROM pg_temp.usage_rows('2024-04-01', '2024-05-01')$$, $$SELECT * FROM april$$, '... and changes no usage');
SELECT set_eq($$SELECT meter_id, customer_id, bucket, skipped, reason FROM meter.skipped WHERE reason = 'sealed period'$$,
	$$SELECT m AS meter_id, 'c2' AS customer_id, '2024-04-15 10:00+00'::timestamptz AS bucket, 1::bigint AS skipped,
		'sealed period' AS reason FROM unnest(ARRAY['sl_count', 'sl_sum', 'sl_max', 'sl_unique', 'sl_latest', 'sl_eu']) m$$,
	'... it shows in meter.skipped for every meter that matched, reason ''sealed period''');
SELECT is((SELECT count(*) FROM meter.verify()), 0::bigint, 'verify() empty');
SELECT results_eq($$SELECT accepted, duplicates FROM meter.ingest('[{"id": "a5", "event_name": "api", "customer_id": "c3", "timestamp": "2024-04-01T15:00:00Z"}]')$$,
	$$VALUES (1, 0)$$, 're-sent event of the dropped partition: its id went with it, stored as a late event');
SELECT set_eq($$SELECT * FROM pg_temp.usage_rows('2024-04-01', '2024-05-01')$$, $$SELECT * FROM april$$, '... not counted');
DELETE FROM meter.events WHERE id IN ('late1', 'a5');
SELECT set_eq($$SELECT * FROM pg_temp.usage_rows('2024-04-01', '2024-05-01')$$, $$SELECT * FROM april$$,
	'deleting late events of sealed time changes nothing');

-- Writes into sealed time through UPDATE: the old side is frozen, the new side counts.
SELECT lives_ok($$UPDATE meter.events SET "timestamp" = '2024-04-20' WHERE id = 'a300'$$,
	'an UPDATE moving a May event into sealed April');
SELECT set_eq($$SELECT * FROM pg_temp.usage_rows('2024-04-01', '2024-05-01')$$, $$SELECT * FROM april$$, '... April unchanged');
SELECT is((SELECT value FROM meter.usage('sl_count', '2024-05-01', '2024-06-01')),
	(SELECT v FROM may WHERE meter_id = 'sl_count' AND customer IS NULL) - 1, '... May lost it');
SELECT is((SELECT count(*) FROM meter.verify()), 0::bigint, 'verify() empty');

SELECT lives_ok($$INSERT INTO meter.events (id, event_name, customer_id, "timestamp", properties)
	VALUES ('late2', 'api', 'c1', '2024-04-25', '{"n": 7, "user": "u1", "region": "us"}')$$, 'another late event into April');
UPDATE meter.events SET "timestamp" = '2024-05-25' WHERE id = 'late2';
SELECT is((SELECT value FROM meter.usage('sl_count', '2024-05-01', '2024-06-01')),
	(SELECT v FROM may WHERE meter_id = 'sl_count' AND customer IS NULL), 'an UPDATE moving it out of sealed time counts it where it lands (May: -1 +1)');
SELECT set_eq($$SELECT * FROM pg_temp.usage_rows('2024-04-01', '2024-05-01')$$, $$SELECT * FROM april$$, '... April unchanged');

-- Meter changes after the seal leave sealed usage frozen.
SELECT meter.update_meter('sl_eu', '[{"key":"region","values":["us"]}]');
SELECT is((SELECT value FROM meter.usage('sl_eu', '2024-04-01', '2024-05-01')),
	(SELECT v FROM april WHERE meter_id = 'sl_eu' AND customer IS NULL), 'new filters: sealed April keeps the old definition''s usage');
SELECT is((SELECT value FROM meter.usage('sl_eu', '2024-05-01', '2024-07-01')),
	(SELECT COALESCE(sum((properties ->> 'n')::numeric), 0) FROM meter.events WHERE tenant_id = 'acme'
		AND "timestamp" >= '2024-05-01' AND properties ->> 'region' = 'us'),
	'... and unsealed time is recomputed under the new filters');
SELECT meter.disable_meter('sl_max');
UPDATE meter.meters SET status = 'published' WHERE id = 'sl_max';
SELECT is((SELECT value FROM meter.usage('sl_max', '2024-04-01', '2024-05-01')),
	(SELECT v FROM april WHERE meter_id = 'sl_max' AND customer IS NULL), 'disabled and re-published: April frozen');
SELECT meter.create_meter('api', 'late meter', id => 'sl_new');
SELECT is((SELECT value FROM meter.usage('sl_new', '2024-04-01', '2024-05-01')), 0::numeric,
	'a meter created after the seal has no usage in sealed time');
SELECT is((SELECT value FROM meter.usage('sl_new', '2024-05-01', '2024-07-01')),
	(SELECT count(*)::numeric FROM meter.events WHERE tenant_id = 'acme' AND "timestamp" >= '2024-05-01'), '... and all of it after');
SELECT is((SELECT count(*) FROM meter.rebuild()), 7::bigint, 'rebuild() after the seal');
SELECT set_eq($$SELECT * FROM pg_temp.usage_rows('2024-04-01', '2024-05-01') WHERE meter_id <> 'sl_new'$$,
	$$SELECT * FROM april$$, '... April unchanged (the redefined meter''s too)');
SELECT is((SELECT count(*) FROM meter.verify()), 0::bigint, 'verify() empty');

-- Delete instead of drop: seal May, delete its events.
SELECT meter.seal('2024-06-01');
CREATE TEMP TABLE may_sealed AS SELECT * FROM pg_temp.usage_rows('2024-05-01', '2024-06-01');
DELETE FROM meter.events WHERE tenant_id = 'acme' AND "timestamp" < '2024-06-01';
UPDATE meter.events_2024_05 SET properties = '{"n": 1}' WHERE tenant_id = 'acme';
SELECT set_eq($$SELECT * FROM pg_temp.usage_rows('2024-05-01', '2024-06-01')$$, $$SELECT * FROM may_sealed$$,
	'seal May, delete its events: usage for May unchanged');
SELECT is((SELECT count(*) FROM meter.verify()), 0::bigint, 'verify() empty');
SELECT ok((SELECT count(*) FROM meter.events_2024_05 WHERE tenant_id = 'acme') = 0, '(May has no event of acme left)');

-- A seal at a non-midnight boundary (customer c9's events around it).
INSERT INTO meter.events (id, event_name, customer_id, "timestamp", properties) VALUES
	('d1', 'api', 'c9', '2024-06-10 13:29:59', '{"n": 1, "user": "x"}'),
	('d2', 'api', 'c9', '2024-06-10 13:30:00', '{"n": 10, "user": "x"}'),
	('d3', 'api', 'c9', '2024-06-10 13:44:59', '{"n": 100, "user": "y"}'),
	('d4', 'api', 'c9', '2024-06-10 13:45:00', '{"n": 1000, "user": "z"}'),
	('d5', 'api', 'c9', '2024-06-10 20:00:00', '{"n": 10000, "user": "z"}');
CREATE FUNCTION pg_temp.day_rows() RETURNS TABLE (m text, w timestamptz, v numeric) LANGUAGE sql AS $$
	SELECT m, u.window_start, u.value FROM unnest(ARRAY['sl_count', 'sl_sum', 'sl_max', 'sl_unique', 'sl_latest']) m,
		meter.usage(m, '2024-06-10', '2024-06-10 13:45', customer_id => 'c9', window_size => '15MIN') u
$$;
CREATE TEMP TABLE day_before AS SELECT * FROM pg_temp.day_rows();
SELECT is(meter.seal('2024-06-10 13:45'), '2024-06-10 13:45+00'::timestamptz, 'seal at 13:45');
DELETE FROM meter.events WHERE id IN ('d1', 'd2', 'd3', 'd4');
SELECT set_eq($$SELECT * FROM pg_temp.day_rows()$$, $$SELECT * FROM day_before$$,
	'deleting the events before 13:45 leaves the sealed slots of that day as they were');
SELECT is((SELECT value FROM meter.usage('sl_sum', '2024-06-10 13:45', '2024-06-11', customer_id => 'c9')), 10000::numeric,
	'the event at 13:45 went (unsealed), 20:00 counts');
INSERT INTO meter.events (id, event_name, customer_id, "timestamp", properties) VALUES
	('d6', 'api', 'c9', '2024-06-10 13:40:00', '{"n": 5}'), ('d7', 'api', 'c9', '2024-06-10 13:45:00', '{"n": 7}');
SELECT is((SELECT value FROM meter.usage('sl_sum', '2024-06-10', '2024-06-11', customer_id => 'c9')), 111 + 10007::numeric,
	'a late event at 13:40 does not count, one at 13:45 does');
SELECT is((SELECT skipped FROM meter.skipped WHERE meter_id = 'sl_sum' AND customer_id = 'c9' AND bucket = '2024-06-10 13:30+00'),
	1::bigint, '... the late one is skipped in its slot');
SELECT meter.rebuild();
SELECT meter.update_meter('sl_eu', '[]');
SELECT set_eq($$SELECT * FROM pg_temp.day_rows()$$, $$SELECT * FROM day_before$$,
	'rebuild() and a meter change keep the sealed part of the day');
SELECT is((SELECT value FROM meter.usage('sl_sum', '2024-06-10 13:45', '2024-06-11', customer_id => 'c9')), 10007::numeric,
	'... and the rest is recomputed');
SELECT is((SELECT count(*) FROM meter.verify()), 0::bigint, 'verify() empty');

-- DETACH and ATTACH of sealed partitions.
CREATE TEMP TABLE june_sealed AS SELECT * FROM pg_temp.usage_rows('2024-06-01', '2024-06-10 13:45');
SELECT meter.seal('2024-07-01');
CREATE TEMP TABLE june AS SELECT * FROM pg_temp.usage_rows('2024-06-01', '2024-07-01');
ALTER TABLE meter.events DETACH PARTITION meter.events_2024_06;
SELECT set_eq($$SELECT * FROM pg_temp.usage_rows('2024-06-01', '2024-07-01')$$, $$SELECT * FROM june$$,
	'DETACH of a sealed partition: usage unchanged');
ALTER TABLE meter.events ATTACH PARTITION meter.events_2024_06 FOR VALUES FROM ('2024-06-01') TO ('2024-07-01');
SELECT set_eq($$SELECT * FROM pg_temp.usage_rows('2024-06-01', '2024-07-01')$$, $$SELECT * FROM june$$,
	'ATTACH of it again: usage unchanged (its rows are late now)');
SELECT cmp_ok((SELECT sum(skipped) FROM meter.skipped WHERE meter_id = 'sl_count' AND bucket >= '2024-06-01'), '>', 0::numeric,
	'... and show as skipped');
SELECT is((SELECT count(*) FROM meter.verify()), 0::bigint, 'verify() empty');

-- Another tenant is not sealed.
SET LOCAL meter.tenant_id = 'globex';
SELECT is(meter.sealed_before(), '-infinity'::timestamptz, 'another tenant has no seal');
SELECT is((SELECT value FROM meter.usage('sl_g_count', '2024-04-01', '2024-07-01')), 60::numeric,
	'its April events went with the dropped partition (its usage was not sealed)');
DELETE FROM meter.events WHERE id = 'g40';
SELECT is((SELECT value FROM meter.usage('sl_g_count', '2024-04-01', '2024-07-01')), 59::numeric, '... and deletes count');
SELECT is((SELECT count(*) FROM meter.verify()), 0::bigint, 'verify() empty');

SELECT * FROM finish();
ROLLBACK;
