-- A tracked partitioned table of the user's (SPEC §7, README "Partitioning and retention")
-- counts rows however they arrive and leave: through the parent, straight into a
-- partition, into partitions created or attached later, sub-partitioned trees, UPDATEs
-- moving rows across partitions; DETACH counts a partition's rows out, ATTACH in; TRUNCATE
-- and DROP take rows out. After each step usage equals an oracle in plain SQL over the
-- table's rows, usage equals usage_from_events day by day, and verify() is empty, for
-- meters of five aggregation types.
BEGIN;
SET client_min_messages = warning;
SET LOCAL TimeZone = 'UTC';
SELECT plan(56);

SET LOCAL meter.tenant_id = 'acme';
SELECT meter.create_meter('api', 'calls', id => 'tp_count');
SELECT meter.create_meter('api', 'n', '{"type":"SUM","field":"n"}', id => 'tp_sum');
SELECT meter.create_meter('api', 'peak', '{"type":"MAX","field":"n"}', id => 'tp_max');
SELECT meter.create_meter('api', 'users', '{"type":"COUNT_UNIQUE","field":"user"}', id => 'tp_unique');
SELECT meter.create_meter('api', 'last', '{"type":"LATEST","field":"n"}', id => 'tp_latest');

CREATE TABLE public.tp (
	id text NOT NULL DEFAULT meter.new_id('tp'),
	tenant_id text NOT NULL DEFAULT meter.current_tenant(),
	environment_id text NOT NULL DEFAULT meter.current_environment(),
	event_name text NOT NULL,
	customer_id text,
	external_customer_id text,
	"timestamp" timestamptz NOT NULL,
	properties jsonb NOT NULL DEFAULT '{}',
	PRIMARY KEY (id, "timestamp")
) PARTITION BY RANGE ("timestamp");
CREATE TABLE public.tp_2024_05 PARTITION OF public.tp FOR VALUES FROM ('2024-05-01') TO ('2024-06-01');
CREATE TABLE public.tp_2024_06 PARTITION OF public.tp FOR VALUES FROM ('2024-06-01') TO ('2024-07-01');
SELECT meter.track('public.tp');

-- n rows of event 'api' into tbl: customers c1..c3, users u0..u6, n = k * 10 + i % 7.
CREATE FUNCTION pg_temp.put(tbl text, k int, n int, start timestamptz, step interval) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE format('INSERT INTO %s (id, event_name, customer_id, "timestamp", properties)
		SELECT %L || i, ''api'', ''c'' || (i %% 3 + 1), $1 + (i - 1) * $2,
			jsonb_build_object(''n'', %s * 10 + i %% 7, ''user'', ''u'' || (i %% 7))
		FROM generate_series(1, %s) i', tbl, 'k' || k || '_', k, n) USING start, step;
END $$;

-- NULL when usage is exact; else what differs. The oracle reads the table's rows with
-- plain SQL (no code of the extension).
CREATE FUNCTION pg_temp.check() RETURNS text LANGUAGE sql AS $$
	WITH rows AS (
		SELECT "timestamp" AS ts, (properties ->> 'n')::numeric AS n, properties ->> 'user' AS u
		FROM public.tp WHERE tenant_id = 'acme' AND environment_id = '' AND event_name = 'api'),
	oracle(meter_id, value) AS (
		SELECT 'tp_count', count(*)::numeric FROM rows
		UNION ALL SELECT 'tp_sum', COALESCE(sum(n), 0) FROM rows
		UNION ALL SELECT 'tp_max', max(n) FROM rows
		UNION ALL SELECT 'tp_unique', count(DISTINCT u)::numeric FROM rows
		UNION ALL SELECT 'tp_latest', (array_agg(n ORDER BY ts DESC, n DESC))[1] FROM rows),
	total AS (
		SELECT o.meter_id, o.value AS expected, u.value AS stored
		FROM oracle o CROSS JOIN LATERAL meter.usage(o.meter_id, '2024-01-01', '2025-01-01') u),
	daily AS (
		SELECT m.id AS meter_id, u.window_start, u.value AS stored, f.value AS raw
		FROM meter.meters m
		CROSS JOIN LATERAL meter.usage(m.id, '2024-04-01', '2024-11-01', window_size => 'DAY') u
		JOIN LATERAL meter.usage_from_events(m.id, '2024-04-01', '2024-11-01', window_size => 'DAY') f
			ON f.window_start = u.window_start
		WHERE m.id LIKE 'tp\_%')
	SELECT string_agg(x, '; ') FROM (
		SELECT format('%s: usage %s, rows say %s', meter_id, stored, expected) FROM total
			WHERE stored IS DISTINCT FROM expected
		UNION ALL SELECT format('%s %s: usage %s, usage_from_events %s', meter_id, window_start, stored, raw) FROM daily
			WHERE stored IS DISTINCT FROM raw
		UNION ALL SELECT format('verify: %s %s %s', v.meter_id, v.bucket, v.what) FROM meter.verify() v) d(x)
$$;

-- NULL when usage equals usage_from_events day by day and verify() is empty (for the
-- known-problem tests below, on other tables).
CREATE FUNCTION pg_temp.check_table(tbl text) RETURNS text LANGUAGE sql AS $$
	SELECT string_agg(x, '; ') FROM (
		SELECT format('%s %s: usage %s, usage_from_events %s', m.id, u.window_start, u.value, f.value)
		FROM meter.meters m
		CROSS JOIN LATERAL meter.usage(m.id, '2024-04-01', '2024-11-01', window_size => 'DAY') u
		JOIN LATERAL meter.usage_from_events(m.id, '2024-04-01', '2024-11-01', window_size => 'DAY') f
			ON f.window_start = u.window_start
		WHERE m.id LIKE 'tp\_%' AND u.value IS DISTINCT FROM f.value
		UNION ALL SELECT format('verify: %s %s %s', v.meter_id, v.bucket, v.what) FROM meter.verify() v) d(x)
$$;

SELECT pg_temp.put('public.tp', 1, 40, '2024-05-30 12:00', '97 minutes');
SELECT is(pg_temp.check(), NULL, 'rows through the parent (across two partitions): usage exact');
SELECT is((SELECT count(*) FROM public.tp_2024_06), 17::bigint, '... 17 of them in June');
SELECT pg_temp.put('public.tp_2024_05', 2, 15, '2024-05-03 01:00', '1 day');
SELECT is(pg_temp.check(), NULL, 'rows straight into a partition: usage exact');
SELECT is((SELECT value FROM meter.usage('tp_count', '2024-01-01', '2025-01-01')), 55::numeric, '... 55 events');

-- A rolled-back subtransaction leaves nothing.
SAVEPOINT sp;
SELECT pg_temp.put('public.tp', 3, 5, '2024-06-10', '1 hour');
SELECT pg_temp.put('public.tp_2024_05', 3, 5, '2024-05-10', '1 hour');
ROLLBACK TO SAVEPOINT sp;
SELECT is(pg_temp.check(), NULL, 'rows of a rolled-back subtransaction do not count');

-- A partition created later.
CREATE TABLE public.tp_2024_07 PARTITION OF public.tp FOR VALUES FROM ('2024-07-01') TO ('2024-08-01');
SELECT is((SELECT count(*) FROM pg_trigger WHERE tgrelid = 'public.tp_2024_07'::regclass AND tgname LIKE 'meter_track_%'),
	4::bigint, 'a partition created later gets the four tracking triggers');
SELECT pg_temp.put('public.tp', 4, 10, '2024-06-30 20:00', '1 hour');
SELECT pg_temp.put('public.tp_2024_07', 5, 10, '2024-07-20', '1 day');
SELECT is(pg_temp.check(), NULL, 'rows into it through the parent and straight: usage exact');

-- ATTACH of a table that holds rows: they count.
CREATE TABLE public.tp_2024_08 (LIKE public.tp INCLUDING ALL);
SELECT pg_temp.put('public.tp_2024_08', 6, 12, '2024-08-01', '2 days');
SELECT is(pg_temp.check(), NULL, 'rows of a table not yet attached do not count');
ALTER TABLE public.tp ATTACH PARTITION public.tp_2024_08 FOR VALUES FROM ('2024-08-01') TO ('2024-09-01');
SELECT is(pg_temp.check(), NULL, 'ATTACH PARTITION: its rows are counted in');
SELECT is((SELECT value FROM meter.usage('tp_count', '2024-08-01', '2024-09-01')), 12::numeric, '... all 12');
SELECT pg_temp.put('public.tp_2024_08', 7, 3, '2024-08-02', '1 hour');
SELECT is(pg_temp.check(), NULL, '... and rows written into it later too');

-- ATTACH of a table tracked on its own until then: its rows count once.
CREATE TABLE public.tp_2024_10 (LIKE public.tp INCLUDING ALL);
SELECT meter.track('public.tp_2024_10');
SELECT pg_temp.put('public.tp_2024_10', 8, 6, '2024-10-05', '1 day');
ALTER TABLE public.tp ATTACH PARTITION public.tp_2024_10 FOR VALUES FROM ('2024-10-01') TO ('2024-11-01');
SELECT is((SELECT count(*) FROM meter.tracked_tables WHERE relid = 'public.tp_2024_10'::regclass), 0::bigint,
	'ATTACH of a tracked table: it leaves the registry (tracked through the parent now)');
SELECT is(pg_temp.check(), NULL, '... and its rows count once');

-- DETACH: its rows are counted out, its triggers dropped; writes into it no longer count.
ALTER TABLE public.tp DETACH PARTITION public.tp_2024_08;
SELECT is(pg_temp.check(), NULL, 'DETACH PARTITION: its rows are counted out');
SELECT is((SELECT value FROM meter.usage('tp_count', '2024-08-01', '2024-09-01')), 0::numeric, '... none left in August');
SELECT is((SELECT count(*) FROM pg_trigger WHERE tgrelid = 'public.tp_2024_08'::regclass AND NOT tgisinternal), 0::bigint,
	'... and its triggers are gone');
SELECT pg_temp.put('public.tp_2024_08', 9, 4, '2024-08-20', '1 hour');
UPDATE public.tp_2024_08 SET properties = properties || '{"n": 1000}';
SELECT is(pg_temp.check(), NULL, 'writes into the detached table do not count');
ALTER TABLE public.tp ATTACH PARTITION public.tp_2024_08 FOR VALUES FROM ('2024-08-01') TO ('2024-09-01');
SELECT is(pg_temp.check(), NULL, 'attached again: its rows (as they are now) count');
SELECT is((SELECT value FROM meter.usage('tp_max', '2024-08-01', '2024-09-01')), 1000::numeric, '... MAX sees the update made meanwhile');

-- UPDATE moving rows across partitions, through the parent.
UPDATE public.tp SET "timestamp" = "timestamp" + interval '45 days' WHERE id IN ('k1_1', 'k1_2', 'k2_3');
SELECT is((SELECT string_agg(tableoid::regclass::text, ',' ORDER BY id) FROM public.tp WHERE id IN ('k1_1', 'k1_2', 'k2_3')),
	'tp_2024_07,tp_2024_07,tp_2024_06', 'UPDATE through the parent moved rows to other partitions');
SELECT is(pg_temp.check(), NULL, '... usage exact');
UPDATE public.tp SET "timestamp" = '2024-10-31 23:59:59', properties = '{"n": 5, "user": "late"}' WHERE id = 'k5_1';
SELECT is(pg_temp.check(), NULL, 'UPDATE moving the latest event (LATEST, COUNT_UNIQUE change): usage exact');
UPDATE public.tp_2024_06 SET properties = properties || '{"n": -3}' WHERE id LIKE 'k1\_%';
DELETE FROM public.tp WHERE id IN ('k1_10', 'k4_1');
DELETE FROM public.tp_2024_05 WHERE id = 'k2_5';
SELECT is(pg_temp.check(), NULL, 'UPDATE of a partition, DELETE through the parent and from a partition: usage exact');

-- Sub-partitioned: September in two halves.
CREATE TABLE public.tp_2024_09 PARTITION OF public.tp FOR VALUES FROM ('2024-09-01') TO ('2024-10-01')
	PARTITION BY RANGE ("timestamp");
CREATE TABLE public.tp_2024_09_c1 PARTITION OF public.tp_2024_09 FOR VALUES FROM ('2024-09-01') TO ('2024-09-16');
CREATE TABLE public.tp_2024_09_rest PARTITION OF public.tp_2024_09 DEFAULT;
SELECT is((SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'meter_track_%'
	AND tgrelid IN ('public.tp_2024_09'::regclass, 'public.tp_2024_09_c1'::regclass, 'public.tp_2024_09_rest'::regclass)),
	12::bigint, 'a sub-partitioned partition and its leaves get the triggers');
SELECT pg_temp.put('public.tp', 10, 9, '2024-09-02', '5 hours');
SELECT pg_temp.put('public.tp_2024_09', 11, 9, '2024-09-12', '15 hours');
SELECT pg_temp.put('public.tp_2024_09_rest', 12, 4, '2024-09-20', '5 hours');
INSERT INTO public.tp_2024_09_c1 (id, event_name, customer_id, "timestamp", properties)
	VALUES ('leaf1', 'api', 'c1', '2024-09-10', '{"n": 77, "user": "leaf"}');
SELECT is(pg_temp.check(), NULL, 'rows into a sub-partitioned tree through the root, the middle and the leaves: usage exact');
UPDATE public.tp SET "timestamp" = '2024-09-20' WHERE id IN ('k10_2', 'k10_3');
UPDATE public.tp_2024_09 SET "timestamp" = '2024-09-25' WHERE id = 'leaf1';
UPDATE public.tp SET "timestamp" = '2024-09-15' WHERE id = 'k2_1';
SELECT is((SELECT string_agg(tableoid::regclass::text, ',' ORDER BY id) FROM public.tp WHERE id IN ('k10_2', 'k2_1', 'leaf1')),
	'tp_2024_09_rest,tp_2024_09_c1,tp_2024_09_rest', 'UPDATEs moved rows between leaves and into the tree');
SELECT is(pg_temp.check(), NULL, '... usage exact');
TRUNCATE public.tp_2024_09_c1;
SELECT is(pg_temp.check(), NULL, 'TRUNCATE of a leaf: usage exact');
ALTER TABLE public.tp DETACH PARTITION public.tp_2024_09;
SELECT is(pg_temp.check(), NULL, 'DETACH of the sub-partitioned partition: its whole tree counted out');
SELECT is((SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'meter_track_%'
	AND tgrelid IN ('public.tp_2024_09'::regclass, 'public.tp_2024_09_c1'::regclass, 'public.tp_2024_09_rest'::regclass)),
	0::bigint, '... its triggers gone from every level');
INSERT INTO public.tp_2024_09 (id, event_name, customer_id, "timestamp", properties)
	VALUES ('while_out', 'api', 'c2', '2024-09-26', '{"n": 1}');
ALTER TABLE public.tp ATTACH PARTITION public.tp_2024_09 FOR VALUES FROM ('2024-09-01') TO ('2024-10-01');
SELECT is(pg_temp.check(), NULL, 'ATTACH of a sub-partitioned table with rows: its whole tree counted in');
SELECT pg_temp.put('public.tp_2024_09_c1', 13, 2, '2024-09-08', '1 hour');
SELECT is(pg_temp.check(), NULL, '... and its leaves count again');
DROP TABLE public.tp_2024_09_rest;
SELECT is(pg_temp.check(), NULL, 'DROP of a leaf: usage exact');

-- TRUNCATE and DROP of partitions, then TRUNCATE of the parent.
TRUNCATE public.tp_2024_06;
SELECT is(pg_temp.check(), NULL, 'TRUNCATE of a partition: usage exact');
DROP TABLE public.tp_2024_07;
SELECT is(pg_temp.check(), NULL, 'DROP TABLE of a partition: usage exact');
SELECT is((SELECT count(*) FROM meter.tracked_tables WHERE relid = 'public.tp'::regclass), 1::bigint, '... the parent stays tracked');
SELECT cmp_ok((SELECT value FROM meter.usage('tp_count', '2024-01-01', '2025-01-01')), '>', 0::numeric, '... with events left');
TRUNCATE public.tp;
SELECT is(pg_temp.check(), NULL, 'TRUNCATE of the parent: usage exact');
SELECT is((SELECT value FROM meter.usage('tp_count', '2024-01-01', '2025-01-01')), 0::numeric, '... nothing left');
SELECT pg_temp.put('public.tp', 14, 10, '2024-05-10', '3 days');
SELECT is(pg_temp.check(), NULL, 'and new rows count');

-- A partition laid out differently: other column order, a dropped column (its rows are
-- read by attribute numbers of its own).
CREATE TABLE public.tp_2024_11 (junk int, properties jsonb NOT NULL DEFAULT '{}', "timestamp" timestamptz NOT NULL,
	external_customer_id text, customer_id text, event_name text NOT NULL,
	environment_id text NOT NULL DEFAULT meter.current_environment(),
	tenant_id text NOT NULL DEFAULT meter.current_tenant(), id text NOT NULL DEFAULT meter.new_id('tp'));
ALTER TABLE public.tp_2024_11 DROP COLUMN junk;
ALTER TABLE public.tp_2024_11 ADD PRIMARY KEY (id, "timestamp");
SELECT pg_temp.put('public.tp_2024_11', 15, 6, '2024-11-02', '1 day');
ALTER TABLE public.tp ATTACH PARTITION public.tp_2024_11 FOR VALUES FROM ('2024-11-01') TO ('2024-12-01');
SELECT is(pg_temp.check(), NULL, 'ATTACH of a table with another column order and a dropped column: usage exact');
SELECT pg_temp.put('public.tp', 16, 4, '2024-11-20', '1 hour');
SELECT pg_temp.put('public.tp_2024_11', 17, 4, '2024-11-21', '1 hour');
UPDATE public.tp SET "timestamp" = '2024-11-25', properties = properties || '{"n": 9}' WHERE id IN ('k14_1', 'k15_2');
UPDATE public.tp_2024_11 SET properties = properties || '{"user": "z"}' WHERE id = 'k17_1';
SELECT is(pg_temp.check(), NULL, '... rows into it through the parent and straight, UPDATEs into and inside it: usage exact');
TRUNCATE public.tp_2024_11;
SELECT is(pg_temp.check(), NULL, '... TRUNCATE of it: usage exact');
SELECT pg_temp.put('public.tp_2024_11', 18, 3, '2024-11-03', '1 day');
ALTER TABLE public.tp DETACH PARTITION public.tp_2024_11;
SELECT is(pg_temp.check(), NULL, '... DETACH of it: usage exact');

-- A partitioned table tracked with partitions and rows already there.
CREATE TABLE public.tq (LIKE public.tp INCLUDING DEFAULTS) PARTITION BY RANGE ("timestamp");
CREATE TABLE public.tq_a PARTITION OF public.tq FOR VALUES FROM ('2024-01-01') TO ('2024-07-01');
CREATE TABLE public.tq_b PARTITION OF public.tq FOR VALUES FROM ('2024-07-01') TO ('2025-01-01');
INSERT INTO public.tq (id, event_name, customer_id, "timestamp", properties)
	SELECT 'q' || i, 'api', 'c9', timestamptz '2024-06-25' + i * interval '1 day', jsonb_build_object('n', i, 'user', 'q')
	FROM generate_series(1, 10) i;
SELECT meter.track('public.tq');
SELECT is((SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'meter_track_%' AND tgrelid IN
	('public.tq'::regclass, 'public.tq_a'::regclass, 'public.tq_b'::regclass)), 12::bigint,
	'meter.track() of a partitioned table: triggers on the table and every partition');
SELECT is((SELECT value FROM meter.usage('tp_count', '2024-01-01', '2025-01-01')),
	(SELECT count(*)::numeric FROM public.tp) + 10, '... its 10 rows count too');
SELECT is((SELECT value FROM meter.usage('tp_count', '2024-01-01', '2025-01-01')),
	(SELECT value FROM meter.usage_from_events('tp_count', '2024-01-01', '2025-01-01')), '... usage = usage_from_events');
INSERT INTO public.tq_b (id, event_name, customer_id, "timestamp") VALUES ('q_direct', 'api', 'c9', '2024-08-01');
SELECT is((SELECT value FROM meter.usage('tp_count', '2024-01-01', '2025-01-01')),
	(SELECT count(*)::numeric FROM public.tp) + 11, '... and rows written into a partition');
SELECT is((SELECT count(*) FROM meter.verify()), 0::bigint, '... verify() empty');
SELECT meter.untrack('public.tq');
SELECT is((SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'meter_track_%' AND tgrelid IN
	('public.tq'::regclass, 'public.tq_a'::regclass, 'public.tq_b'::regclass)), 0::bigint,
	'meter.untrack() drops the triggers of every partition');
SELECT is(pg_temp.check(), NULL, '... and its rows stop counting');
DROP TABLE public.tp;
SELECT is((SELECT count(*) FROM meter.tracked_tables WHERE relid::text LIKE 'public.t%'), 0::bigint,
	'DROP TABLE of the tracked parent: it leaves the registry');
SELECT is((SELECT value FROM meter.usage('tp_count', '2024-01-01', '2025-01-01')), 0::numeric, '... and its events usage');

-- Known problems (README, report): TODO tests, so that a fix shows.
SELECT todo('PostgreSQL 15: a MERGE moving rows to another partition with only an UPDATE action leaves the transition tables empty', 1);
CREATE TABLE public.tm (LIKE public.tq INCLUDING DEFAULTS) PARTITION BY RANGE ("timestamp");
CREATE TABLE public.tm_a PARTITION OF public.tm FOR VALUES FROM ('2024-01-01') TO ('2024-07-01');
CREATE TABLE public.tm_b PARTITION OF public.tm FOR VALUES FROM ('2024-07-01') TO ('2025-01-01');
SELECT meter.track('public.tm');
INSERT INTO public.tm (id, event_name, customer_id, "timestamp", properties) VALUES ('mv', 'api', 'c1', '2024-06-01', '{"n": 4}');
MERGE INTO public.tm t USING (VALUES ('mv')) s(id) ON t.id = s.id WHEN MATCHED THEN UPDATE SET "timestamp" = '2024-08-01';
SELECT is(pg_temp.check_table('public.tm'), NULL, 'MERGE … WHEN MATCHED THEN UPDATE moving a row across partitions: usage exact');
-- A partition is tracked through its root (rows written through the parent fire only
-- the parent's statement triggers): meter.track() of a partition is refused.
CREATE TABLE public.tc (LIKE public.tq INCLUDING DEFAULTS) PARTITION BY RANGE ("timestamp");
CREATE TABLE public.tc_a PARTITION OF public.tc FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
SELECT throws_ok($$SELECT meter.track('public.tc_a')$$, '22023', 'table public.tc_a is a partition of public.tc',
	'meter.track() of a partition whose parent is not tracked: refused, naming the parent');
SELECT lives_ok($$SELECT meter.track('public.tc')$$, 'tracking the parent works');

SELECT * FROM finish();
ROLLBACK;
