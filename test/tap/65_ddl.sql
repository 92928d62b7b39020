-- DDL on tracked tables (SPEC §7, issue 9): ALTER TABLE that drops, renames away or
-- retypes an event column of a tracked table is refused (42804/2BP01, naming the column,
-- hinting at meter.untrack); other DDL is accepted and tracking goes on; DROP TABLE of a
-- tracked table untracks it (its events stop counting; nothing else breaks); partitions
-- dropped or detached take their rows out of usage; a trigger attached by hand to a table
-- whose event columns have other types is refused with 42804, never misreads a datum; and
-- the server stays up throughout (0.1.0 died with signal 11 on the retyped column).
BEGIN;
SET client_min_messages = warning;
SELECT plan(37);
SET LOCAL timezone = 'UTC';
CREATE TEMP TABLE started AS SELECT pg_postmaster_start_time() AS t;

-- Runs a DDL statement and always undoes it: 'accepted' when it ran, else
-- 'SQLSTATE: message | hint'.
CREATE FUNCTION pg_temp.try(stmt text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	st text; msg text; hnt text;
BEGIN
	BEGIN
		EXECUTE stmt;
		RAISE EXCEPTION 'accepted' USING ERRCODE = 'P0099';
	EXCEPTION WHEN OTHERS THEN
		GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, hnt = PG_EXCEPTION_HINT;
		IF st = 'P0099' THEN
			RETURN 'accepted';
		END IF;
		RETURN st || ': ' || msg || ' | ' || hnt;
	END;
END $$;
-- Usage exact: verify() empty and usage = usage_from_events for the scope's meters.
CREATE FUNCTION pg_temp.exact() RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	bad record;
BEGIN
	SELECT * INTO bad FROM meter.verify() LIMIT 1;
	IF FOUND THEN
		RETURN 'verify: ' || row_to_json(bad);
	END IF;
	SELECT m.id, u.value AS usage, f.value AS from_events INTO bad
	FROM meter.meters m
	CROSS JOIN LATERAL meter.usage(m.id, '2024-01-01', '2024-02-01') u
	CROSS JOIN LATERAL meter.usage_from_events(m.id, '2024-01-01', '2024-02-01') f
	WHERE m.tenant_id = meter.current_tenant() AND m.status = 'published' AND u.value IS DISTINCT FROM f.value
	LIMIT 1;
	IF FOUND THEN
		RETURN 'usage: ' || row_to_json(bad);
	END IF;
	RETURN 'ok';
END $$;
CREATE FUNCTION pg_temp.sum() RETURNS numeric LANGUAGE sql AS $$
	SELECT value FROM meter.usage('ddl_sum', '2024-01-01', '2024-02-01') $$;

SET LOCAL meter.tenant_id = 'ddl';
SELECT meter.create_meter('e', 'count', id => 'ddl_count');
SELECT meter.create_meter('e', 'sum', '{"type":"SUM","field":"v"}', id => 'ddl_sum');
CREATE TABLE public.ddl_events (LIKE meter.events INCLUDING DEFAULTS, note text);
ALTER TABLE public.ddl_events ADD PRIMARY KEY (tenant_id, environment_id, id);
SELECT meter.track('public.ddl_events');
INSERT INTO public.ddl_events (id, event_name, customer_id, "timestamp", properties)
SELECT 'd' || g, 'e', 'c' || (g % 2), '2024-01-10 10:00Z'::timestamptz + g * interval '1 hour', jsonb_build_object('v', g)
FROM generate_series(1, 10) g;
INSERT INTO meter.events (id, event_name, customer_id, "timestamp", properties)
VALUES ('m1', 'e', 'c1', '2024-01-10 10:00Z', '{"v": 100}');
SELECT is(pg_temp.sum(), 155::numeric, 'the tracked table and meter.events count: 55 + 100');

-- ── Changes that break an event column are refused ──────────────────────────────────
SELECT matches(pg_temp.try('ALTER TABLE public.ddl_events ALTER COLUMN properties TYPE text'),
	'^42804: cannot change the type of column "properties" of tracked table public\.ddl_events \| .*meter\.untrack\(''public\.ddl_events''\)',
	'retyping properties (jsonb → text): 42804, naming the column, hint meter.untrack');
SELECT matches(pg_temp.try('ALTER TABLE public.ddl_events ALTER COLUMN "timestamp" TYPE timestamp'),
	'^42804: .*"timestamp"', 'retyping "timestamp" (timestamptz → timestamp): 42804');
SELECT matches(pg_temp.try('ALTER TABLE public.ddl_events ALTER COLUMN tenant_id TYPE integer USING 0'),
	'^42804: .*"tenant_id"', 'retyping tenant_id (text → integer): 42804');
SELECT matches(pg_temp.try('ALTER TABLE public.ddl_events DROP COLUMN "timestamp"'),
	'^(2BP01|42804): .*"timestamp".*meter\.untrack', 'dropping "timestamp": refused, naming the column');
SELECT matches(pg_temp.try('ALTER TABLE public.ddl_events DROP COLUMN properties CASCADE'),
	'^(2BP01|42804): .*"properties"', 'dropping properties with CASCADE: refused');
SELECT matches(pg_temp.try('ALTER TABLE public.ddl_events RENAME COLUMN customer_id TO cust'),
	'^(2BP01|42804): .*"customer_id".*meter\.untrack', 'renaming customer_id away: refused, naming the column');
SELECT matches(pg_temp.try('ALTER TABLE public.ddl_events RENAME COLUMN event_name TO name'),
	'^(2BP01|42804): .*"event_name"', 'renaming event_name away: refused');
SELECT matches(pg_temp.try('ALTER TABLE meter.events RENAME COLUMN external_customer_id TO ext'),
	'^(2BP01|42804|42501): ', 'renaming a column of meter.events: refused');
SELECT is(pg_temp.exact(), 'ok', 'usage exact after the refused changes');

-- ── Other DDL is accepted, and tracking goes on ─────────────────────────────────────
SELECT lives_ok('ALTER TABLE public.ddl_events ADD COLUMN extra integer DEFAULT 7', 'adding a column');
SELECT lives_ok('ALTER TABLE public.ddl_events ALTER COLUMN note TYPE varchar(100)', 'retyping a column that is not an event column');
SELECT lives_ok('ALTER TABLE public.ddl_events RENAME COLUMN note TO remark', 'renaming a column that is not an event column');
SELECT lives_ok('ALTER TABLE public.ddl_events DROP COLUMN extra', 'dropping a column that is not an event column');
SELECT lives_ok('CREATE INDEX ON public.ddl_events ("timestamp")', 'an index');
SELECT lives_ok('ALTER TABLE public.ddl_events RENAME TO ddl_events2', 'renaming the table');
INSERT INTO public.ddl_events2 (id, event_name, customer_id, "timestamp", properties, remark)
VALUES ('d11', 'e', 'c1', '2024-01-11 10:00Z', '{"v": 1000}', 'after the DDL');
UPDATE public.ddl_events2 SET properties = '{"v": 2}' WHERE id = 'd1';
SELECT is(pg_temp.sum(), 1156::numeric, 'the renamed table still counts: an insert and an update after the DDL');
SELECT is(pg_temp.exact(), 'ok', 'usage exact after the accepted DDL');

-- ── After untrack, the table is the user's again ────────────────────────────────────
SELECT lives_ok($$SELECT meter.untrack('public.ddl_events2')$$, 'untrack');
SELECT is(pg_temp.sum(), 100::numeric, 'its events no longer count');
SELECT lives_ok('ALTER TABLE public.ddl_events2 RENAME COLUMN customer_id TO cust', 'an untracked table''s event column can be renamed');
SELECT lives_ok('ALTER TABLE public.ddl_events2 ALTER COLUMN properties TYPE text', '… and retyped');
SELECT is(pg_temp.exact(), 'ok', 'usage exact');
SELECT matches(pg_temp.try($$SELECT meter.track('public.ddl_events2')$$), '^(42703|42804): ',
	'tracking it again is refused while its columns do not fit');

-- ── DROP TABLE of a tracked table ───────────────────────────────────────────────────
CREATE TABLE public.ddl_gone (LIKE meter.events INCLUDING DEFAULTS);
SELECT meter.track('public.ddl_gone');
INSERT INTO public.ddl_gone (id, event_name, customer_id, "timestamp", properties)
VALUES ('g1', 'e', 'c1', '2024-01-12 10:00Z', '{"v": 5000}');
SELECT is(pg_temp.sum(), 5100::numeric, 'a second tracked table counts');
DROP TABLE public.ddl_gone;
SELECT ok(NOT EXISTS (SELECT 1 FROM meter.tracked_tables WHERE relid::text LIKE '%ddl_gone%' OR relid::oid NOT IN (SELECT oid FROM pg_class)),
	'DROP TABLE untracked it (no dangling registry row)');
SELECT is(pg_temp.sum(), 100::numeric, 'its events stopped counting');
SELECT lives_ok($$DELETE FROM meter.events WHERE tenant_id = 'ddl' AND id = 'm1'$$, 'deleting from meter.events still works');
SELECT lives_ok($$INSERT INTO meter.events (id, event_name, customer_id, "timestamp", properties)
	VALUES ('m2', 'e', 'c1', '2024-01-10 10:07Z', '{"v": 1}')$$, 'inserting into meter.events still works');
SELECT is(pg_temp.exact(), 'ok', 'usage, usage_from_events and verify() work and agree after the DROP');

-- ── Partitions of a tracked partitioned table dropped or detached ───────────────────
CREATE TABLE public.ddl_part (LIKE meter.events INCLUDING DEFAULTS) PARTITION BY RANGE ("timestamp");
CREATE TABLE public.ddl_part_1 PARTITION OF public.ddl_part FOR VALUES FROM (MINVALUE) TO ('2024-01-15');
CREATE TABLE public.ddl_part_2 PARTITION OF public.ddl_part FOR VALUES FROM ('2024-01-15') TO ('2024-01-20');
CREATE TABLE public.ddl_part_3 PARTITION OF public.ddl_part FOR VALUES FROM ('2024-01-20') TO (MAXVALUE);
SELECT meter.track('public.ddl_part');
INSERT INTO public.ddl_part (id, event_name, customer_id, "timestamp", properties)
VALUES ('p1', 'e', 'c1', '2024-01-10 10:00Z', '{"v": 10000}'), ('p2', 'e', 'c1', '2024-01-16 10:00Z', '{"v": 20000}'),
	('p3', 'e', 'c1', '2024-01-21 10:00Z', '{"v": 40000}');
SELECT is(pg_temp.sum(), 70001::numeric, 'a tracked partitioned table counts');
ALTER TABLE public.ddl_part DETACH PARTITION public.ddl_part_2;
SELECT is(pg_temp.sum(), 50001::numeric, 'a detached partition''s rows leave usage');
INSERT INTO public.ddl_part_2 (id, tenant_id, event_name, customer_id, "timestamp", properties)
VALUES ('p4', 'ddl', 'e', 'c1', '2024-01-17 10:00Z', '{"v": 3}');
SELECT is(pg_temp.sum(), 50001::numeric, '… and rows written into it after the detach do not count');
DROP TABLE public.ddl_part_3;
SELECT is(pg_temp.sum(), 10001::numeric, 'a dropped partition''s rows leave usage');
SELECT is(pg_temp.exact(), 'ok', 'usage exact after the partition DDL');

-- ── A trigger attached by hand to a table whose event columns have other types ──────
CREATE TABLE public.ddl_wrong (LIKE meter.events INCLUDING DEFAULTS);
ALTER TABLE public.ddl_wrong ALTER COLUMN properties TYPE text;
INSERT INTO meter.tracked_tables (relid) VALUES ('public.ddl_wrong');
CREATE TRIGGER by_hand AFTER INSERT ON public.ddl_wrong FOR EACH ROW EXECUTE FUNCTION meter.track_usage();
SELECT throws_ok($$INSERT INTO public.ddl_wrong (id, tenant_id, event_name, customer_id, "timestamp", properties)
	VALUES ('w1', 'ddl', 'e', 'c1', '2024-01-10 10:00Z', '{"v": 1}')$$, '42804',
	'column "properties" of table "public.ddl_wrong" is text, not jsonb',
	'the trigger refuses a table whose properties column is text (42804), never misreading it');

SELECT is(pg_postmaster_start_time(), (SELECT t FROM started), 'the server stayed up throughout');
SELECT * FROM finish();
ROLLBACK;
