-- meter.partition_events() (SPEC §7, README "Partitioning and retention"): meter.events
-- becomes partitioned by RANGE ("timestamp") keeping its columns, defaults, constraints,
-- indexes, row-level security, privileges, tracking, registry entry, extension membership
-- (pg_dump) and rows; the dedup by id stays exact across partitions through
-- meter.event_ids, however rows come and go (INSERT, UPDATE, DELETE, MERGE, writable CTEs,
-- TRUNCATE, ATTACH, DETACH, DROP), and meter.ingest keeps exact duplicate counts.
BEGIN;
SET client_min_messages = warning;
SET LOCAL TimeZone = 'UTC';
SELECT plan(88);

CREATE ROLE meter_tap_pwriter NOLOGIN NOSUPERUSER NOBYPASSRLS;
SELECT meter.grant_writer('meter_tap_pwriter');

-- Two meters in tenant acme; events of acme (two environments) and of globex.
SET LOCAL meter.tenant_id = 'acme';
SELECT meter.create_meter('api', 'calls', id => 'pe_count');
SELECT meter.create_meter('api', 'tokens', '{"type":"SUM","field":"tokens"}', id => 'pe_sum');
SELECT * FROM meter.ingest((SELECT jsonb_agg(jsonb_build_object('id', 'old' || g, 'event_name', 'api',
	'customer_id', 'c' || (g % 3), 'timestamp', to_char(timestamptz '2024-04-20' + g * interval '7 hours', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
	'properties', jsonb_build_object('tokens', g))) FROM generate_series(1, 200) g));
SET LOCAL meter.environment_id = 'test';
SELECT * FROM meter.ingest('{"id": "old1", "event_name": "api", "customer_id": "c1", "timestamp": "2024-05-02T00:00:00Z"}');
SET LOCAL meter.environment_id = '';
SET LOCAL meter.tenant_id = 'globex';
SELECT * FROM meter.ingest('{"id": "old1", "event_name": "api", "customer_id": "c1", "timestamp": "2024-05-02T00:00:00Z"}');
SET LOCAL meter.tenant_id = 'acme';

-- What the plain table is, to compare with.
CREATE TEMP TABLE before_cols AS
	SELECT a.attnum, a.attname, format_type(a.atttypid, a.atttypmod) AS type, a.attcollation, a.attnotnull,
		pg_get_expr(d.adbin, d.adrelid) AS def
	FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
	WHERE a.attrelid = 'meter.events'::regclass AND a.attnum > 0 AND NOT a.attisdropped;
CREATE TEMP TABLE before_checks AS
	SELECT conname, pg_get_constraintdef(oid) AS def FROM pg_constraint
	WHERE conrelid = 'meter.events'::regclass AND contype = 'c';
CREATE TEMP TABLE before_acl AS
	SELECT x.grantee, x.privilege_type FROM pg_class c, aclexplode(c.relacl) x WHERE c.oid = 'meter.events'::regclass;
CREATE TEMP TABLE before_policy AS
	SELECT polname, polcmd, polroles, pg_get_expr(polqual, polrelid) AS qual FROM pg_policy
	WHERE polrelid = 'meter.events'::regclass;
CREATE TEMP TABLE before_rows AS SELECT e::text AS r FROM meter.events e;
CREATE TEMP TABLE before_usage AS
	SELECT m, u.value FROM unnest(ARRAY['pe_count', 'pe_sum']) m,
		meter.usage(m, '2024-01-01', '2025-01-01', window_size => 'DAY') u;
CREATE TEMP TABLE before_oid AS SELECT 'meter.events'::regclass::oid AS oid;
SELECT is((SELECT count(*) FROM meter.event_ids), 0::bigint, 'meter.event_ids is empty while meter.events is plain');

-- Refusals, before anything changes.
SELECT throws_ok($$SELECT meter.partition_events(default_partition => false)$$, '55000',
	'meter.events holds events: they need a partition', 'without the default partition, a table with rows is refused (55000)');
CREATE UNIQUE INDEX pe_own_unique ON meter.events (tenant_id, environment_id, id, ingested_at);
SELECT throws_ok($$SELECT meter.partition_events()$$, '55000', NULL,
	'a unique index of its own without "timestamp" is refused (55000)');
DROP INDEX meter.pe_own_unique;
CREATE FUNCTION pg_temp.noop() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$;
CREATE TRIGGER pe_own AFTER INSERT ON meter.events FOR EACH STATEMENT EXECUTE FUNCTION pg_temp.noop();
SELECT throws_ok($$SELECT meter.partition_events()$$, '55000', 'meter.events has triggers of its own',
	'a trigger of its own is refused (55000)');
DROP TRIGGER pe_own ON meter.events;
SET LOCAL ROLE meter_tap_pwriter;
SELECT throws_ok($$SELECT meter.partition_events()$$, '42501', NULL, 'a writer may not partition meter.events (42501)');
RESET ROLE;
SELECT is((SELECT relkind::text FROM pg_class WHERE oid = 'meter.events'::regclass), 'r', '... and it stays a plain table');

-- The user's own non-unique index comes along.
CREATE INDEX pe_own_idx ON meter.events (customer_id, "timestamp");

SELECT is(meter.partition_events()::text, 'meter.events', 'partition_events() returns meter.events');
SELECT is((SELECT relkind::text FROM pg_class WHERE oid = 'meter.events'::regclass), 'p', 'meter.events is partitioned');
SELECT is(pg_get_partkeydef('meter.events'::regclass), 'RANGE ("timestamp")', 'by RANGE ("timestamp")');
SELECT is((SELECT pg_get_expr(c.relpartbound, c.oid) FROM pg_class c WHERE c.oid = 'meter.events_default'::regclass),
	'DEFAULT', 'meter.events_default is its default partition');
SELECT is((SELECT count(*) FROM pg_inherits WHERE inhparent = 'meter.events'::regclass), 1::bigint, 'and its only partition');
SELECT isnt((SELECT oid FROM before_oid), 'meter.events'::regclass::oid, 'a new table');
SELECT is((SELECT count(*) FROM pg_class WHERE relname = 'events_before_partitioning'), 0::bigint, 'the plain table is gone');

SELECT set_eq($$SELECT a.attnum, a.attname, format_type(a.atttypid, a.atttypmod), a.attcollation, a.attnotnull,
		pg_get_expr(d.adbin, d.adrelid)
	FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
	WHERE a.attrelid = 'meter.events'::regclass AND a.attnum > 0 AND NOT a.attisdropped$$,
	$$SELECT * FROM before_cols$$, 'same columns, types, collations, NOT NULL and defaults');
SELECT set_eq($$SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'meter.events'::regclass AND contype = 'c'$$,
	$$SELECT * FROM before_checks$$, 'same CHECK constraints');
SELECT is((SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'meter.events'::regclass AND contype = 'p'),
	'PRIMARY KEY (tenant_id, environment_id, id, "timestamp")', 'primary key (tenant_id, environment_id, id, "timestamp")');
SELECT set_eq($$SELECT c.relname::text FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = 'meter.events'::regclass$$,
	ARRAY['events_pkey', 'events_name_time_idx', 'pe_own_idx'], 'its indexes, the user''s own included');
SELECT is((SELECT pg_get_indexdef('meter.pe_own_idx'::regclass)),
	'CREATE INDEX pe_own_idx ON ONLY meter.events USING btree (customer_id, "timestamp")', '... with the same definition');
SELECT ok((SELECT relrowsecurity FROM pg_class WHERE oid = 'meter.events'::regclass), 'row-level security on');
SELECT set_eq($$SELECT polname, polcmd, polroles, pg_get_expr(polqual, polrelid) FROM pg_policy WHERE polrelid = 'meter.events'::regclass$$,
	$$SELECT * FROM before_policy$$, 'the same policy');
SELECT set_eq($$SELECT x.grantee, x.privilege_type FROM pg_class c, aclexplode(c.relacl) x WHERE c.oid = 'meter.events'::regclass$$,
	$$SELECT * FROM before_acl$$, 'the same privileges (the writer''s included)');
SELECT is(obj_description('meter.events'::regclass, 'pg_class'),
	'Raw usage events (FlexPrice''s Event); tracked by meter.track_usage()', 'the same comment');
SELECT ok((SELECT relrowsecurity FROM pg_class WHERE oid = 'meter.events_default'::regclass)
	AND EXISTS (SELECT 1 FROM pg_policy WHERE polrelid = 'meter.events_default'::regclass AND polname = 'events_scope'),
	'the partition has row-level security and the policy too');
SELECT is((SELECT count(*) FROM pg_depend WHERE classid = 'pg_class'::regclass AND objid = 'meter.events'::regclass
	AND refclassid = 'pg_extension'::regclass AND deptype = 'e'), 1::bigint, 'meter.events is a member of the extension');
SELECT is((SELECT count(*) FROM pg_depend WHERE classid = 'pg_class'::regclass AND objid = 'meter.events_default'::regclass
	AND deptype = 'e'), 0::bigint, 'its partitions are not (pg_dump dumps them with their rows)');
SELECT ok((SELECT 'meter.events'::regclass::oid = ANY (extconfig) AND NOT (SELECT oid FROM before_oid) = ANY (extconfig)
	FROM pg_extension WHERE extname = 'meter'), 'pg_extension_config_dump names the new table, not the old');
SELECT is((SELECT array_agg(relid::text) FROM meter.tracked_tables), ARRAY['meter.events'], 'the registry names the new table');
SELECT is((SELECT tracked_by FROM meter.tracked_tables WHERE relid = 'meter.events'::regclass), 'extension', '... tracked by the extension');
SELECT set_eq($$SELECT tgrelid::regclass::text || ' ' || tgname FROM pg_trigger WHERE NOT tgisinternal
		AND tgrelid IN ('meter.events'::regclass, 'meter.events_default'::regclass)$$,
	$$SELECT t || ' ' || g FROM unnest(ARRAY['meter.events', 'meter.events_default']) t,
		unnest(ARRAY['meter_track_insert', 'meter_track_update', 'meter_track_delete', 'meter_track_truncate',
			'meter_ids_insert', 'meter_ids_update', 'meter_ids_delete', 'meter_ids_truncate']) g$$,
	'tracking and id triggers on the table and its partition');
SELECT set_eq($$SELECT e::text FROM meter.events e$$, $$SELECT r FROM before_rows$$, 'every row kept, unchanged');
SELECT set_eq($$SELECT m, u.value FROM unnest(ARRAY['pe_count', 'pe_sum']) m,
		meter.usage(m, '2024-01-01', '2025-01-01', window_size => 'DAY') u$$,
	$$SELECT * FROM before_usage$$, 'usage unchanged, day by day');
SELECT is((SELECT count(*) FROM meter.verify()), 0::bigint, 'verify() empty');

-- meter.event_ids holds exactly the ids of the stored rows (all tenants: as the owner).
CREATE FUNCTION pg_temp.ids_exact() RETURNS boolean LANGUAGE sql AS $$
	SELECT NOT EXISTS (
		(SELECT tenant_id, environment_id, id FROM meter.events EXCEPT ALL SELECT tenant_id, environment_id, id FROM meter.event_ids)
		UNION ALL
		(SELECT tenant_id, environment_id, id FROM meter.event_ids EXCEPT ALL SELECT tenant_id, environment_id, id FROM meter.events))
$$;
CREATE FUNCTION pg_temp.all_rows(q text) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE n bigint; BEGIN
	-- count over every tenant, bypassing row-level security as the owner does
	EXECUTE q INTO n; RETURN n;
END $$;
SELECT is((SELECT count(*) FROM meter.event_ids), 202::bigint, 'meter.event_ids has one row per stored event (202)');
SELECT ok(pg_temp.ids_exact(), 'meter.event_ids = the ids of the stored rows');

-- Usage equals an oracle in plain SQL over the rows of the scope (the owner sees them all).
CREATE FUNCTION pg_temp.exact() RETURNS boolean LANGUAGE sql AS $$
	SELECT (SELECT value FROM meter.usage('pe_count', '2000-01-01', '2100-01-01'))
			= (SELECT count(*) FROM meter.events WHERE tenant_id = 'acme' AND environment_id = '' AND event_name = 'api')
		AND (SELECT value FROM meter.usage('pe_sum', '2000-01-01', '2100-01-01'))
			= (SELECT COALESCE(sum((properties ->> 'tokens')::numeric), 0) FROM meter.events
				WHERE tenant_id = 'acme' AND environment_id = '' AND event_name = 'api')
		AND NOT EXISTS (SELECT 1 FROM meter.verify())
		AND pg_temp.ids_exact()
$$;
SELECT ok(pg_temp.exact(), 'usage = the rows (COUNT, SUM), verify() empty, ids exact');

SELECT is(meter.partition_events(), 'meter.events'::regclass, 'partition_events() again: nothing to do');

-- Partitions of the user's: created later (by month), with the triggers.
CREATE TABLE meter.events_2025_01 PARTITION OF meter.events FOR VALUES FROM ('2025-01-01') TO ('2025-02-01');
CREATE TABLE meter.events_2025_02 PARTITION OF meter.events FOR VALUES FROM ('2025-02-01') TO ('2025-03-01');
SELECT is((SELECT count(*) FROM pg_trigger WHERE tgrelid = 'meter.events_2025_01'::regclass AND NOT tgisinternal),
	8::bigint, 'a partition created later gets the tracking and id triggers');
SELECT ok((SELECT relrowsecurity FROM pg_class WHERE oid = 'meter.events_2025_01'::regclass), '... and row-level security');

-- Dedup across partitions.
SELECT throws_ok($$INSERT INTO meter.events (id, event_name, customer_id, "timestamp") VALUES ('old1', 'api', 'c1', '2025-01-15')$$,
	'23505', NULL, 'a plain INSERT of a stored id into another partition fails with 23505');
SELECT throws_like($$INSERT INTO meter.events (id, event_name, customer_id, "timestamp") VALUES ('old2', 'api', 'c1', '2025-02-15')$$,
	'%event_ids_pkey%', '... naming the constraint event_ids_pkey');
SELECT throws_ok($$INSERT INTO meter.events (id, event_name, customer_id, "timestamp")
	VALUES ('twice', 'api', 'c1', '2025-01-15'), ('twice', 'api', 'c1', '2025-02-15')$$,
	'23505', NULL, 'one id twice in one statement, in two partitions: 23505');
SELECT throws_ok($$INSERT INTO meter.events (id, event_name, customer_id, "timestamp") VALUES ('old3', 'api', 'c1', '2025-01-15')
	ON CONFLICT DO NOTHING$$, '23505', NULL, 'ON CONFLICT DO NOTHING does not hide it (the dedup is not an arbiter index)');
SELECT throws_ok($$INSERT INTO meter.events (id, event_name, customer_id, "timestamp") VALUES ('x', 'api', 'c1', '2025-01-15')
	ON CONFLICT (tenant_id, environment_id, id) DO NOTHING$$, '42P10', NULL,
	'ON CONFLICT (tenant_id, environment_id, id) has no index to name (42P10)');
SELECT lives_ok($$INSERT INTO meter.events (id, event_name, customer_id, "timestamp") VALUES ('new1', 'api', 'c1', '2025-01-15')
	ON CONFLICT (tenant_id, environment_id, id, "timestamp") DO NOTHING$$, 'ON CONFLICT on the primary key (with "timestamp") works');
SELECT lives_ok($$INSERT INTO meter.events (id, event_name, customer_id, "timestamp", properties)
	SELECT v.id, 'api', 'c1', v.ts, '{"tokens": 5}' FROM (VALUES ('old1', timestamptz '2025-01-15'), ('new2', '2025-01-16'), ('new3', '2025-02-16')) v(id, ts)
	WHERE NOT EXISTS (SELECT 1 FROM meter.event_ids i WHERE i.tenant_id = meter.current_tenant()
		AND i.environment_id = meter.current_environment() AND i.id = v.id)$$,
	'INSERT … WHERE NOT EXISTS (meter.event_ids) skips stored ids');
SELECT is((SELECT count(*) FROM meter.events WHERE id IN ('new1', 'new2', 'new3')), 3::bigint, '... and stores the others');
SET LOCAL meter.tenant_id = 'other';
SELECT lives_ok($$INSERT INTO meter.events (id, event_name, customer_id, "timestamp") VALUES ('old1', 'api', 'c1', '2025-01-15')$$,
	'another tenant may use the same id');
SET LOCAL meter.tenant_id = 'acme';
SELECT ok(pg_temp.exact(), 'usage exact, verify() empty, ids exact');

-- meter.ingest: exact duplicate counts within one call and against stored ids in any partition.
SELECT results_eq($$SELECT accepted, duplicates FROM meter.ingest('[
	{"id": "old5", "event_name": "api", "customer_id": "c1", "timestamp": "2025-02-01T00:00:00Z", "properties": {"tokens": 1}},
	{"id": "new1", "event_name": "api", "customer_id": "c1", "timestamp": "2025-02-01T00:00:00Z", "properties": {"tokens": 1}},
	{"id": "in1", "event_name": "api", "customer_id": "c1", "timestamp": "2025-01-31T23:59:59.999999Z", "properties": {"tokens": 7}},
	{"id": "in1", "event_name": "api", "customer_id": "c1", "timestamp": "2025-02-01T00:00:00Z", "properties": {"tokens": 8}},
	{"id": "in2", "event_name": "api", "customer_id": "c2", "timestamp": "2025-02-01T00:00:00Z", "properties": {"tokens": 9}},
	{"id": "in3", "event_name": "api", "customer_id": "c2", "timestamp": "2023-02-01T00:00:00Z", "properties": {"tokens": 10}}]')$$,
	$$VALUES (3, 3)$$, 'ingest: 3 accepted, 3 duplicates (one in the call, two stored in other partitions)');
SELECT results_eq($$SELECT tableoid::regclass::text, (properties ->> 'tokens') FROM meter.events WHERE id IN ('in1', 'in2', 'in3') ORDER BY id$$,
	$$VALUES ('meter.events_2025_01', '7'), ('meter.events_2025_02', '9'), ('meter.events_default', '10')$$,
	'the first occurrence won; rows went to their partitions (the default one included)');
SELECT ok(pg_temp.exact(), 'usage exact, verify() empty, ids exact');
SET LOCAL ROLE meter_tap_pwriter;
SELECT results_eq($$SELECT accepted, duplicates FROM meter.ingest('[
	{"id": "in1", "event_name": "api", "customer_id": "c1", "timestamp": "2025-01-02T00:00:00Z"},
	{"id": "w1", "event_name": "api", "customer_id": "c1", "timestamp": "2025-01-02T00:00:00Z", "properties": {"tokens": 2}}]')$$,
	$$VALUES (1, 1)$$, 'a writer ingests into the partitioned table with exact counts');
SELECT throws_ok($$INSERT INTO meter.events (id, event_name, customer_id, "timestamp") VALUES ('w1', 'api', 'c1', '2025-02-03')$$,
	'23505', NULL, 'a writer''s plain INSERT of a stored id fails with 23505');
SELECT is((SELECT count(*) FROM meter.event_ids), (SELECT count(*) FROM meter.events), 'a writer sees the ids of its own scope only');
RESET ROLE;

-- UPDATE: ids changed, swapped, duplicated; rows moved across partitions.
SELECT throws_ok($$UPDATE meter.events SET id = 'old7' WHERE id = 'old8'$$, '23505', NULL, 'UPDATE to a stored id: 23505');
SELECT throws_ok($$UPDATE meter.events SET id = 'same' WHERE id IN ('old9', 'old10')$$, '23505', NULL,
	'UPDATE giving two rows one id: 23505');
SELECT lives_ok($$UPDATE meter.events SET id = CASE id WHEN 'old11' THEN 'old12' ELSE 'old11' END WHERE id IN ('old11', 'old12')$$,
	'UPDATE swapping two ids works');
SELECT lives_ok($$UPDATE meter.events SET id = 'renamed13' WHERE id = 'old13'$$, 'UPDATE to a new id works');
SELECT lives_ok($$INSERT INTO meter.events (id, event_name, customer_id, "timestamp") VALUES ('old13', 'api', 'c1', '2025-01-20')$$,
	'... and frees the old id');
SELECT lives_ok($$UPDATE meter.events SET "timestamp" = '2025-02-10', properties = '{"tokens": 100}' WHERE id = 'in1'$$,
	'UPDATE moving a row to another partition through the parent');
SELECT is((SELECT tableoid::regclass::text FROM meter.events WHERE id = 'in1'), 'meter.events_2025_02', '... it moved');
SELECT lives_ok($$UPDATE meter.events_2025_02 SET properties = '{"tokens": 3}' WHERE id = 'in2'$$, 'UPDATE of a partition itself');
SELECT ok(pg_temp.exact(), 'usage exact, verify() empty, ids exact');

-- DELETE frees the id, through the parent or the partition.
DELETE FROM meter.events WHERE id = 'old20';
DELETE FROM meter.events_2025_02 WHERE id = 'in2';
SELECT lives_ok($$INSERT INTO meter.events (id, event_name, customer_id, "timestamp") VALUES ('old20', 'api', 'c1', '2025-02-20'), ('in2', 'api', 'c1', '2025-01-20')$$,
	'deleted ids may be stored again');
SELECT ok(pg_temp.exact(), 'usage exact, verify() empty, ids exact');

-- MERGE with insert, update and delete branches; a writable CTE moving rows between
-- partitions (what pg_partman's partition_data does).
SELECT lives_ok($$MERGE INTO meter.events t USING (VALUES ('old30', 'del'), ('old31', 'upd'), ('m1', 'ins'), ('old32', 'ins')) s(id, what)
	ON t.tenant_id = 'acme' AND t.environment_id = '' AND t.id = s.id
	WHEN MATCHED AND s.what = 'del' THEN DELETE
	WHEN MATCHED THEN UPDATE SET "timestamp" = '2025-02-05'
	WHEN NOT MATCHED THEN INSERT (id, event_name, customer_id, "timestamp") VALUES (s.id, 'api', 'c9', '2025-01-05')$$,
	'MERGE with delete, update (moving a row) and insert branches');
SELECT throws_ok($$MERGE INTO meter.events t USING (VALUES ('old40')) s(id) ON false
	WHEN NOT MATCHED THEN INSERT (id, event_name, customer_id, "timestamp") VALUES (s.id, 'api', 'c9', '2025-01-05')$$,
	'23505', NULL, 'MERGE inserting a stored id: 23505');
SELECT lives_ok($$WITH moved AS (DELETE FROM meter.events_2025_01 WHERE id IN ('new1', 'new2') RETURNING *)
	INSERT INTO meter.events_2025_02 SELECT id, tenant_id, environment_id, event_name, customer_id, external_customer_id,
		source, "timestamp" + interval '20 days', ingested_at, properties FROM moved$$,
	'a writable CTE moving rows from one partition to another');
SELECT ok(pg_temp.exact(), 'usage exact, verify() empty, ids exact');

-- TRUNCATE of a partition frees its ids and counts its rows out.
TRUNCATE meter.events_2025_01;
SELECT ok(pg_temp.exact(), 'TRUNCATE of a partition: usage exact, ids exact');
SELECT lives_ok($$INSERT INTO meter.events (id, event_name, customer_id, "timestamp") VALUES ('w1', 'api', 'c1', '2025-01-21')$$,
	'... its ids may be stored again');

-- DETACH frees the ids and counts the rows out; ATTACH claims them back; an ATTACH of a
-- table holding a stored id is refused.
ALTER TABLE meter.events DETACH PARTITION meter.events_2025_02;
SELECT ok(NOT EXISTS (SELECT 1 FROM meter.event_ids i JOIN meter.events_2025_02 e USING (tenant_id, environment_id, id)),
	'DETACH: the detached rows'' ids are gone');
SELECT is((SELECT count(*) FROM pg_trigger WHERE tgrelid = 'meter.events_2025_02'::regclass AND NOT tgisinternal), 0::bigint,
	'... and so are its triggers');
SELECT ok(pg_temp.exact(), 'DETACH: usage exact (its rows counted out), ids exact');
SELECT lives_ok($$INSERT INTO meter.events (id, event_name, customer_id, "timestamp") VALUES ('in1', 'api', 'c1', '2025-01-22')$$,
	'an id of a detached row may be stored again');
SELECT throws_ok($$ALTER TABLE meter.events ATTACH PARTITION meter.events_2025_02 FOR VALUES FROM ('2025-02-01') TO ('2025-03-01')$$,
	'23505', NULL, 'ATTACH of a table holding a stored id is refused (23505)');
SELECT is((SELECT count(*) FROM pg_inherits WHERE inhrelid = 'meter.events_2025_02'::regclass), 0::bigint, '... it stays detached');
DELETE FROM meter.events WHERE id = 'in1' AND "timestamp" = '2025-01-22';
SELECT lives_ok($$ALTER TABLE meter.events ATTACH PARTITION meter.events_2025_02 FOR VALUES FROM ('2025-02-01') TO ('2025-03-01')$$,
	'ATTACH of a table with rows');
SELECT ok(pg_temp.exact(), 'ATTACH: usage exact (its rows counted in), ids exact');
SELECT is((SELECT count(*) FROM pg_trigger WHERE tgrelid = 'meter.events_2025_02'::regclass AND NOT tgisinternal),
	8::bigint, '... with the triggers back');
CREATE TABLE meter.events_2025_03 (LIKE meter.events INCLUDING ALL);
INSERT INTO meter.events_2025_03 (id, tenant_id, environment_id, event_name, customer_id, "timestamp", properties)
	VALUES ('m3a', 'acme', '', 'api', 'c4', '2025-03-03', '{"tokens": 40}'), ('m3b', 'acme', '', 'api', 'c4', '2025-03-04', '{"tokens": 2}');
SELECT lives_ok($$ALTER TABLE meter.events ATTACH PARTITION meter.events_2025_03 FOR VALUES FROM ('2025-03-01') TO ('2025-04-01')$$,
	'ATTACH of a table made apart (pg_partman''s way)');
SELECT ok(pg_temp.exact(), '... usage exact, ids exact');

-- DROP of a partition takes its ids along (and its events out of usage).
DROP TABLE meter.events_2025_03;
SELECT ok(pg_temp.exact(), 'DROP TABLE of a partition: usage exact, ids exact');
SELECT lives_ok($$INSERT INTO meter.events (id, event_name, customer_id, "timestamp") VALUES ('m3a', 'api', 'c1', '2025-01-23')$$,
	'... its ids may be stored again');
CREATE SCHEMA pe_elsewhere;
CREATE TABLE pe_elsewhere.events_2025_04 PARTITION OF meter.events FOR VALUES FROM ('2025-04-01') TO ('2025-05-01');
INSERT INTO meter.events (id, event_name, customer_id, "timestamp") VALUES ('april', 'api', 'c1', '2025-04-02');
DROP SCHEMA pe_elsewhere CASCADE;
SELECT ok(pg_temp.exact(), 'DROP SCHEMA … CASCADE holding a partition: usage exact, ids exact');

-- TRUNCATE of the whole table.
TRUNCATE meter.events;
SELECT is(pg_temp.all_rows('SELECT count(*) FROM meter.event_ids'), 0::bigint, 'TRUNCATE meter.events: no id left');
SELECT ok(pg_temp.exact(), '... usage exact');
SELECT results_eq($$SELECT accepted, duplicates FROM meter.ingest('[{"id": "old1", "event_name": "api", "customer_id": "c1"}]')$$,
	$$VALUES (1, 0)$$, 'and ingestion goes on');

SELECT * FROM finish();
ROLLBACK;
