-- pg_partman on the partitioned meter.events (README "Partitioning and retention"): monthly
-- partitions made and kept by create_parent and run_maintenance (premade, default
-- partition, rows moved out of the default by partition_data_time), ingestion across
-- partition boundaries and into the default partition with usage exact and the dedup
-- across partitions; retention: seal a month, run_maintenance drops (or detaches) its
-- partition, its usage unchanged, verify() empty, a late event into it changes nothing and
-- shows as skipped. Months are counted from now (run_maintenance's retention is).
BEGIN;
SET client_min_messages = warning;
SET LOCAL TimeZone = 'UTC';
SELECT plan(39);

CREATE SCHEMA partman;
CREATE EXTENSION pg_partman SCHEMA partman;
SELECT meter.partition_events(default_partition => false);

-- m0 … m3: the first instants of the month three months ago … this month.
CREATE TEMP TABLE mo AS SELECT k, date_trunc('month', now()) - (3 - k) * interval '1 month' AS m FROM generate_series(0, 5) k;
CREATE FUNCTION pg_temp.m(k int) RETURNS timestamptz LANGUAGE sql AS $$ SELECT m FROM mo WHERE mo.k = $1 $$;
CREATE FUNCTION pg_temp.part(k int) RETURNS text LANGUAGE sql AS $$ SELECT 'meter.events_p' || to_char(pg_temp.m(k), 'YYYY_MM') $$;
CREATE FUNCTION pg_temp.z(t timestamptz) RETURNS text LANGUAGE sql AS $$ SELECT to_char(t, 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') $$;

SELECT ok(partman.create_parent('meter.events', 'timestamp', 'native', 'monthly', p_premake := 2,
	p_start_partition := pg_temp.m(0)::text), 'partman.create_parent(''meter.events'', ''timestamp'', ''native'', ''monthly'')');
SELECT set_eq($$SELECT c.oid::regclass::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'meter.events'::regclass$$,
	$$SELECT pg_temp.part(k) FROM generate_series(0, 5) k UNION ALL SELECT 'meter.events_default'$$,
	'monthly partitions from three months ago to two ahead (premake), and the default partition');
SELECT is((SELECT count(*) FROM pg_trigger t JOIN pg_inherits i ON i.inhrelid = t.tgrelid
	WHERE i.inhparent = 'meter.events'::regclass AND NOT t.tgisinternal), 7 * 8::bigint,
	'each has the tracking and id triggers');
SELECT lives_ok($$SELECT partman.run_maintenance()$$, 'run_maintenance()');
SELECT is((SELECT count(*) FROM pg_inherits WHERE inhparent = 'meter.events'::regclass), 7::bigint, '... nothing more to make');

SET LOCAL meter.tenant_id = 'acme';
SELECT meter.create_meter('api', 'calls', id => 'pm_count');
SELECT meter.create_meter('api', 'tokens', '{"type":"SUM","field":"n"}', id => 'pm_sum');
SELECT meter.create_meter('api', 'users', '{"type":"COUNT_UNIQUE","field":"user"}', id => 'pm_unique');
SELECT meter.create_meter('api', 'last', '{"type":"LATEST","field":"n"}', id => 'pm_latest');

-- Usage = an SQL oracle over the scope's rows, by month from m(-1) on, and verify() empty.
CREATE FUNCTION pg_temp.check() RETURNS text LANGUAGE sql AS $$
	WITH w AS (SELECT u.window_start, u.window_end FROM meter.windows(pg_temp.m(0) - interval '2 years', pg_temp.m(5), 'MONTH') u),
	rows AS (SELECT "timestamp" AS ts, (properties ->> 'n')::numeric AS n, properties ->> 'user' AS u
		FROM meter.events WHERE tenant_id = 'acme' AND environment_id = '' AND event_name = 'api'),
	oracle AS (SELECT w.window_start, count(r.ts)::numeric AS c, COALESCE(sum(r.n), 0) AS s,
			count(DISTINCT r.u)::numeric AS uq, (array_agg(r.n ORDER BY r.ts DESC, r.n DESC) FILTER (WHERE r.n IS NOT NULL))[1] AS l
		FROM w LEFT JOIN rows r ON r.ts >= w.window_start AND r.ts < w.window_end GROUP BY 1),
	used AS (SELECT c.window_start, c.value AS c, s.value AS s, q.value AS uq, l.value AS l
		FROM meter.usage('pm_count', pg_temp.m(0) - interval '2 years', pg_temp.m(5), window_size => 'MONTH') c
		JOIN meter.usage('pm_sum', pg_temp.m(0) - interval '2 years', pg_temp.m(5), window_size => 'MONTH') s USING (window_start)
		JOIN meter.usage('pm_unique', pg_temp.m(0) - interval '2 years', pg_temp.m(5), window_size => 'MONTH') q USING (window_start)
		JOIN meter.usage('pm_latest', pg_temp.m(0) - interval '2 years', pg_temp.m(5), window_size => 'MONTH') l USING (window_start))
	SELECT string_agg(x, '; ') FROM (
		SELECT format('%s: usage (%s, %s, %s, %s), rows (%s, %s, %s, %s)', o.window_start, u.c, u.s, u.uq, u.l, o.c, o.s, o.uq, o.l)
		FROM oracle o JOIN used u USING (window_start)
		WHERE (u.c, u.s, u.uq) IS DISTINCT FROM (o.c, o.s, o.uq) OR u.l IS DISTINCT FROM o.l
		UNION ALL SELECT format('verify: %s %s %s', v.meter_id, v.bucket, v.what) FROM meter.verify() v
		UNION ALL SELECT 'ids' WHERE EXISTS (
			(SELECT tenant_id, environment_id, id FROM meter.events EXCEPT ALL SELECT tenant_id, environment_id, id FROM meter.event_ids)
			UNION ALL (SELECT tenant_id, environment_id, id FROM meter.event_ids EXCEPT ALL SELECT tenant_id, environment_id, id FROM meter.events))) d(x)
$$;

-- Ingestion across the partition boundaries and into the default partition.
SELECT results_eq(format($$SELECT accepted, duplicates FROM meter.ingest('[
	{"id": "b1", "event_name": "api", "customer_id": "c1", "timestamp": "%s", "properties": {"n": 1, "user": "a"}},
	{"id": "b2", "event_name": "api", "customer_id": "c1", "timestamp": "%s", "properties": {"n": 2, "user": "b"}},
	{"id": "b3", "event_name": "api", "customer_id": "c2", "timestamp": "%s", "properties": {"n": 3, "user": "a"}},
	{"id": "b4", "event_name": "api", "customer_id": "c2", "timestamp": "%s", "properties": {"n": 4, "user": "c"}},
	{"id": "b5", "event_name": "api", "customer_id": "c3", "timestamp": "%s", "properties": {"n": 5, "user": "d"}},
	{"id": "b1", "event_name": "api", "customer_id": "c3", "timestamp": "%s", "properties": {"n": 6, "user": "d"}}]')$$,
	pg_temp.z(pg_temp.m(1) - interval '1 microsecond'), pg_temp.z(pg_temp.m(1)),
	pg_temp.z(pg_temp.m(2) - interval '1 microsecond'), pg_temp.z(pg_temp.m(2)),
	pg_temp.z(pg_temp.m(0) - interval '1 year'), pg_temp.z(pg_temp.m(3))),
	$$VALUES (5, 1)$$, 'ingest across boundaries: 5 accepted, the re-sent id (another month) a duplicate');
SELECT results_eq($$SELECT id::text COLLATE "default", tableoid::regclass::text FROM meter.events WHERE id LIKE 'b_' ORDER BY id$$,
	$$SELECT * FROM (VALUES ('b1', pg_temp.part(0)), ('b2', pg_temp.part(1)), ('b3', pg_temp.part(1)),
		('b4', pg_temp.part(2)), ('b5', 'meter.events_default')) v(id, p)$$,
	'each event in its month''s partition; a year back in the default partition');
SELECT is(pg_temp.check(), NULL, 'usage by month exact, verify() empty, ids exact');
SELECT results_eq($$SELECT accepted, duplicates FROM meter.ingest((SELECT jsonb_agg(jsonb_build_object('id', 'e' || i,
		'event_name', 'api', 'customer_id', 'c' || (i % 4), 'timestamp', pg_temp.z(pg_temp.m(0) + i * interval '61 minutes'),
		'properties', jsonb_build_object('n', i % 97, 'user', 'u' || (i % 13))))
	FROM generate_series(1, 1500) i))$$, $$VALUES (1500, 0)$$, '1,500 events over three months');
SELECT is(pg_temp.check(), NULL, 'usage by month exact, verify() empty, ids exact');
SELECT throws_ok(format($$INSERT INTO meter.events (id, event_name, customer_id, "timestamp") VALUES ('e7', 'api', 'c1', %L)$$, pg_temp.m(2) + interval '3 days'),
	'23505', NULL, 'a plain INSERT of a stored id into another month: 23505');
SELECT results_eq($$SELECT accepted, duplicates FROM meter.ingest('[{"id": "e8", "event_name": "api", "customer_id": "c1"}, {"id": "e9", "event_name": "api", "customer_id": "c1"}]')$$,
	$$VALUES (0, 2)$$, 're-sent ids with today''s timestamp: duplicates');

-- Rows in the default partition that a new partition should hold: partition_data_time
-- moves them (out of the default, into a partition it makes).
INSERT INTO meter.events (id, event_name, customer_id, "timestamp", properties)
SELECT 'old' || i, 'api', 'c1', pg_temp.m(0) - interval '2 months' + i * interval '1 day', jsonb_build_object('n', 1000 + i, 'user', 'o')
FROM generate_series(0, 9) i;
SELECT is((SELECT count(*) FROM meter.events_default), 11::bigint, 'rows two months before the first partition are in the default');
SELECT is(partman.partition_data_time('meter.events', p_batch_count := 10)::bigint, 11::bigint,
	'partman.partition_data_time moves them (and the one of a year ago)');
SELECT is((SELECT count(*) FROM meter.events_default), 0::bigint, '... out of the default');
SELECT is((SELECT count(*) FROM meter.events e WHERE e.tableoid = to_regclass('meter.events_p' || to_char(pg_temp.m(0) - interval '2 months', 'YYYY_MM'))),
	10::bigint, '... into a new partition');
SELECT is(pg_temp.check(), NULL, 'usage by month exact, verify() empty, ids exact');

-- Retention: seal m0, let pg_partman drop its partition.
CREATE TEMP TABLE m0_usage AS
	SELECT m, c.c, u.value FROM unnest(ARRAY['pm_count', 'pm_sum', 'pm_unique', 'pm_latest']) m,
		(VALUES (NULL::text), ('c0'), ('c1'), ('c2'), ('c3')) c(c),
		meter.usage(m, pg_temp.m(0), pg_temp.m(1), customer_id => c.c) u;
SELECT cmp_ok((SELECT value FROM m0_usage WHERE m = 'pm_count' AND c IS NULL), '>', 600::numeric, '(m0 holds over 600 events)');
SELECT meter.seal(pg_temp.m(1));
UPDATE partman.part_config SET retention = '2 months', retention_keep_table = false WHERE parent_table = 'meter.events';
SELECT lives_ok($$SELECT partman.run_maintenance()$$, 'run_maintenance() with retention = ''2 months''');
SELECT is(to_regclass(pg_temp.part(0)), NULL, 'm0''s partition is dropped');
SELECT isnt(to_regclass(pg_temp.part(1)), NULL, 'm1''s is kept');
SELECT set_eq($$SELECT m, c.c, u.value FROM unnest(ARRAY['pm_count', 'pm_sum', 'pm_unique', 'pm_latest']) m,
		(VALUES (NULL::text), ('c0'), ('c1'), ('c2'), ('c3')) c(c),
		meter.usage(m, pg_temp.m(0), pg_temp.m(1), customer_id => c.c) u$$,
	$$SELECT * FROM m0_usage$$, 'usage for m0 unchanged (every meter, every customer)');
SELECT is((SELECT count(*) FROM meter.verify()), 0::bigint, 'verify() empty');
SELECT is((SELECT value FROM meter.usage_from_events('pm_count', pg_temp.m(0), pg_temp.m(1))), 0::numeric,
	'(m0''s raw events are gone)');
SELECT ok(NOT EXISTS (SELECT 1 FROM meter.event_ids WHERE id IN ('b1', 'e1')), 'their ids went with them');
SELECT results_eq(format($$SELECT accepted, duplicates FROM meter.ingest('[{"id": "late", "event_name": "api", "customer_id": "c1",
	"timestamp": "%s", "properties": {"n": 50, "user": "zz"}}, {"id": "e1", "event_name": "api", "customer_id": "c1",
	"timestamp": "%s", "properties": {"n": 1, "user": "u1"}}]')$$, pg_temp.z(pg_temp.m(0) + interval '5 days'),
	pg_temp.z(pg_temp.m(0) + interval '61 minutes')),
	$$VALUES (2, 0)$$, 'a late event into m0, and a re-sent one, are stored');
SELECT is((SELECT string_agg(DISTINCT tableoid::regclass::text, ',') FROM meter.events WHERE id IN ('late', 'e1')),
	'meter.events_default', '... in the default partition');
SELECT set_eq($$SELECT m, c.c, u.value FROM unnest(ARRAY['pm_count', 'pm_sum', 'pm_unique', 'pm_latest']) m,
		(VALUES (NULL::text), ('c0'), ('c1'), ('c2'), ('c3')) c(c),
		meter.usage(m, pg_temp.m(0), pg_temp.m(1), customer_id => c.c) u$$,
	$$SELECT * FROM m0_usage$$, '... and change nothing');
SELECT is((SELECT sum(skipped) FROM meter.skipped WHERE meter_id = 'pm_count' AND reason = 'sealed period'), 2::numeric,
	'... they show in meter.skipped as ''sealed period''');
SELECT is((SELECT count(*) FROM meter.verify()), 0::bigint, 'verify() empty');
SELECT lives_ok($$SELECT partman.run_maintenance()$$, 'run_maintenance() again (the late events stay in the default)');

-- Retention by DETACH (retention_keep_table): seal m1, its partition is detached and kept.
CREATE TEMP TABLE m1_usage AS
	SELECT m, u.value FROM unnest(ARRAY['pm_count', 'pm_sum', 'pm_unique', 'pm_latest']) m,
		meter.usage(m, pg_temp.m(1), pg_temp.m(2)) u;
SELECT meter.seal(pg_temp.m(2));
UPDATE partman.part_config SET retention = '1 month', retention_keep_table = true WHERE parent_table = 'meter.events';
SELECT lives_ok($$SELECT partman.run_maintenance()$$, 'run_maintenance() with retention = ''1 month'', keeping the table');
SELECT ok(to_regclass(pg_temp.part(1)) IS NOT NULL AND NOT EXISTS (SELECT 1 FROM pg_inherits WHERE inhrelid = to_regclass(pg_temp.part(1))),
	'm1''s partition is detached, not dropped');
SELECT set_eq($$SELECT m, u.value FROM unnest(ARRAY['pm_count', 'pm_sum', 'pm_unique', 'pm_latest']) m,
		meter.usage(m, pg_temp.m(1), pg_temp.m(2)) u$$, $$SELECT * FROM m1_usage$$, 'usage for m1 unchanged');
SELECT is((SELECT count(*) FROM meter.verify()), 0::bigint, 'verify() empty');
CREATE FUNCTION pg_temp.n(q text) RETURNS bigint LANGUAGE plpgsql AS $$ DECLARE r bigint; BEGIN EXECUTE q INTO r; RETURN r; END $$;
SELECT is(pg_temp.n(format('SELECT count(*) FROM meter.event_ids i JOIN %s e USING (tenant_id, environment_id, id)', pg_temp.part(1))),
	0::bigint, 'the detached rows'' ids are gone');
SELECT cmp_ok(pg_temp.n(format('SELECT count(*) FROM %s', pg_temp.part(1))), '>', 0::bigint, '(the detached table keeps its rows)');
SELECT is((SELECT value FROM meter.usage('pm_sum', pg_temp.m(2), pg_temp.m(5))),
	(SELECT sum((properties ->> 'n')::numeric) FROM meter.events WHERE tenant_id = 'acme' AND "timestamp" >= pg_temp.m(2)
		AND "timestamp" < pg_temp.m(5)),
	'usage after the seal = the rows');
SELECT is((SELECT value FROM meter.usage('pm_count', pg_temp.m(2), pg_temp.m(5))),
	(SELECT value FROM meter.usage_from_events('pm_count', pg_temp.m(2), pg_temp.m(5))), '... = usage_from_events');

SELECT * FROM finish();
ROLLBACK;
