-- Least privilege (SPEC §5, §9): readers read, writers write events, admins define
-- meters (and may compact); nobody but the extension owner writes stored usage
-- (meter.pending, meter.rollups) or runs maintenance; every role
-- stays inside its tenant through every function and table.
BEGIN;
SET client_min_messages = warning;
SELECT plan(101);

CREATE ROLE meter_tap_reader NOLOGIN NOSUPERUSER NOBYPASSRLS;
CREATE ROLE meter_tap_writer NOLOGIN NOSUPERUSER NOBYPASSRLS;
CREATE ROLE meter_tap_admin NOLOGIN NOSUPERUSER NOBYPASSRLS;
CREATE ROLE meter_tap_nobody NOLOGIN NOSUPERUSER NOBYPASSRLS;
SELECT meter.grant_reader('meter_tap_reader');
SELECT meter.grant_writer('meter_tap_writer');
SELECT meter.grant_admin('meter_tap_admin');

-- Run q as role r in tenant t: its first column as text ('ok' when none), or the SQLSTATE.
CREATE FUNCTION pg_temp.as_role(r text, t text, q text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
	res text;
BEGIN
	PERFORM set_config('meter.tenant_id', t, true);
	EXECUTE format('SET LOCAL ROLE %I', r);
	BEGIN
		IF q ~* '^\s*(SELECT|WITH)' THEN
			EXECUTE q INTO res;
		ELSE
			EXECUTE q;
		END IF;
		res := COALESCE(res, 'ok');
	EXCEPTION WHEN OTHERS THEN
		res := SQLSTATE;
	END;
	RESET ROLE;
	RETURN res;
END $$;

-- Two tenants with a meter and events each (as the owner).
SET LOCAL meter.tenant_id = 'tA';
SELECT meter.create_meter('api', 'A calls', '{"type":"SUM","field":"n"}', id => 'priv_a');
INSERT INTO meter.events (id, event_name, customer_id, "timestamp", properties)
VALUES ('a1', 'api', 'c', '2024-01-01 10:00+00', '{"n":2}'),
       ('a2', 'api', 'c', '2024-01-01 10:05+00', '{"n":"x"}');
SET LOCAL meter.tenant_id = 'tB';
SELECT meter.create_meter('api', 'B calls', '{"type":"SUM","field":"n"}', id => 'priv_b');
INSERT INTO meter.events (id, event_name, customer_id, "timestamp", properties)
VALUES ('b1', 'api', 'c', '2024-01-01 10:00+00', '{"n":5}'),
       ('b2', 'api', 'c', '2024-01-01 10:05+00', '{"n":"y"}');
-- Both tenants' rows folded (as the owner), then one pending row each: every stored-usage
-- table holds rows of both tenants.
SELECT meter.compact();
SET LOCAL meter.tenant_id = 'tA';
SELECT meter.compact();
INSERT INTO meter.events (id, event_name, customer_id, "timestamp", properties)
VALUES ('a0', 'api', 'c', '2024-01-01 09:00+00', '{"n":0}');
SET LOCAL meter.tenant_id = 'tB';
INSERT INTO meter.events (id, event_name, customer_id, "timestamp", properties)
VALUES ('b0', 'api', 'c', '2024-01-01 09:00+00', '{"n":0}');
CREATE TEMP TABLE b_before AS
	SELECT (SELECT count(*) FROM meter.events WHERE tenant_id = 'tB') AS events,
		(SELECT string_agg(id || properties::text, ',' ORDER BY id) FROM meter.events WHERE tenant_id = 'tB') AS props,
		(SELECT string_agg(id || filters::text || status::text, ',' ORDER BY id) FROM meter.meters WHERE tenant_id = 'tB') AS meters,
		(SELECT string_agg(concat_ws(' ', customer_id, slot, events, n, sum), ',' ORDER BY slot, customer_id)
			FROM meter.stored_slots('priv_b')) AS stored;
GRANT SELECT ON b_before TO PUBLIC;

-- ── Functions that are not public ───────────────────────────────────────────────────
SELECT ok(NOT has_function_privilege('meter_tap_nobody', p, 'EXECUTE'), p || ' is not executable by PUBLIC')
FROM unnest(ARRAY['meter.track_usage()', 'meter.on_meter_change()', 'meter.validate_meter()',
	'meter.lock_tenant(text)', 'meter.rebuild_all()',
	'meter.compact(text)', 'meter.track(regclass)',
	'meter.untrack(regclass)', 'meter.rebuild(text)', 'meter.grant_reader(regrole)',
	'meter.grant_writer(regrole)', 'meter.grant_admin(regrole)', 'meter.revoke_access(regrole)']) p;

-- ── SECURITY DEFINER audit: pinned search_path, a comment ───────────────────────────
SELECT is(
	(SELECT string_agg(p.oid::regprocedure::text, ', ' ORDER BY p.oid::regprocedure::text) FROM pg_proc p
	 JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
	 JOIN pg_extension x ON x.oid = d.refobjid AND x.extname = 'meter'
	 WHERE p.prosecdef),
	'meter.compact(text), meter.event_ids_sync(), meter.on_ddl_end(), meter.on_meter_change(), meter.on_partition_ddl(), '
	'meter.on_sql_drop(), meter.rebuild(text), meter.seal(timestamp with time zone), meter.track_usage()',
	'the SECURITY DEFINER functions are the triggers (tracking, event ids, meter changes, DDL), rebuild, compact and seal');
SELECT is(
	(SELECT count(*)::int FROM pg_proc p
	 JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
	 JOIN pg_extension x ON x.oid = d.refobjid AND x.extname = 'meter'
	 WHERE p.prosecdef AND ((p.proconfig IS NULL OR NOT 'search_path=pg_catalog, pg_temp' = ANY (p.proconfig))
		-- meter.on_partition_ddl resolves the table names of the DDL statement (also at
		-- ddl_command_start, before PostgreSQL has resolved them) with the caller's
		-- search_path, as the statement does; every query it runs is schema-qualified
		AND p.oid <> 'meter.on_partition_ddl()'::regprocedure
		OR obj_description(p.oid, 'pg_proc') IS NULL)),
	0, 'every SECURITY DEFINER function (but the partition DDL trigger, which resolves the statement''s names) pins search_path = pg_catalog, pg_temp and has a comment');

-- ── A role without grants cannot use the extension ──────────────────────────────────
SELECT is(pg_temp.as_role('meter_tap_nobody', 'tA', 'SELECT count(*) FROM meter.meters'), '42501',
	'nobody: no access to meter.meters');
SELECT is(pg_temp.as_role('meter_tap_nobody', 'tA', 'SELECT count(*) FROM meter.list_meters()'), '42501',
	'nobody: no access to the functions (schema usage)');
SELECT is(pg_temp.as_role('meter_tap_nobody', 'tA',
	$$INSERT INTO meter.events (event_name, customer_id) VALUES ('api', 'c')$$), '42501',
	'nobody: cannot insert events');

-- ── Reader ──────────────────────────────────────────────────────────────────────────
SELECT is(pg_temp.as_role('meter_tap_reader', 'tA', 'SELECT string_agg(id, '','') FROM meter.meters'), 'priv_a',
	'reader: sees the meters of its tenant only');
SELECT is(pg_temp.as_role('meter_tap_reader', 'tA', 'SELECT string_agg(id, '','' ORDER BY id) FROM meter.events'), 'a0,a1,a2',
	'reader: sees the events of its tenant only');
SELECT is(pg_temp.as_role('meter_tap_reader', 'tA', 'SELECT string_agg(DISTINCT tenant_id, '','') FROM meter.rollups'), 'tA',
	'reader: sees the compacted rollups of its tenant only');
SELECT is(pg_temp.as_role('meter_tap_reader', 'tA', 'SELECT string_agg(DISTINCT tenant_id, '','') FROM meter.pending'), 'tA',
	'reader: sees the pending rows of its tenant only');
SELECT is(pg_temp.as_role('meter_tap_reader', 'tA', $$SELECT sum(events)::text FROM meter.stored_slots('priv_a')$$), '3',
	'reader: meter.stored_slots of its meter');
SELECT is(pg_temp.as_role('meter_tap_reader', 'tA', 'SELECT string_agg(meter_id || '':'' || skipped, '','') FROM meter.skipped'), 'priv_a:1',
	'reader: meter.skipped shows its tenant''s skips only');
SELECT is(pg_temp.as_role('meter_tap_reader', 'tA', 'SELECT count(*) FROM meter.tracked_tables'),
	(SELECT count(*)::text FROM meter.tracked_tables), 'reader: reads the tracked-tables registry');
SELECT is(pg_temp.as_role('meter_tap_reader', 'tA', $$SELECT value FROM meter.usage('priv_a', '2024-01-01', '2024-01-02')$$), '2',
	'reader: meter.usage of its meter');
SELECT is(pg_temp.as_role('meter_tap_reader', 'tA', $$SELECT value FROM meter.usage_from_events('priv_a', '2024-01-01', '2024-01-02')$$), '2',
	'reader: meter.usage_from_events of its meter');
SELECT is(pg_temp.as_role('meter_tap_reader', 'tA', $$SELECT value FROM meter.usage('priv_b', '2024-01-01', '2024-01-02')$$), 'P0002',
	'reader: another tenant''s meter is not found by usage');
SELECT is(pg_temp.as_role('meter_tap_reader', 'tA', $$SELECT value FROM meter.usage_from_events('priv_b', '2024-01-01', '2024-01-02')$$), 'P0002',
	'reader: another tenant''s meter is not found by usage_from_events');
SELECT is(pg_temp.as_role('meter_tap_reader', 'tA', 'SELECT count(*) FROM meter.verify()'), '0',
	'reader: meter.verify() runs (empty)');
SELECT is(pg_temp.as_role('meter_tap_reader', 'tA', $$SELECT count(*) FROM meter.verify('priv_b')$$), 'P0002',
	'reader: verify of another tenant''s meter: not found');
SELECT is(pg_temp.as_role('meter_tap_reader', 'tA', $$SELECT string_agg(id, ',') FROM meter.matching_meters('api', '{"n":1}')$$), 'priv_a',
	'reader: matching_meters lists its tenant''s meters only');
SELECT is(pg_temp.as_role('meter_tap_reader', 'tA', $$SELECT meter.explain_match('priv_b', 'api', '{"n":1}')$$), 'P0002',
	'reader: explain_match of another tenant''s meter: not found');
SELECT is(pg_temp.as_role('meter_tap_reader', 'tA', $$SELECT id FROM meter.get_meter('priv_b')$$), 'P0002',
	'reader: get_meter of another tenant''s meter: not found');
SELECT is(pg_temp.as_role('meter_tap_reader', 'tA', $$SELECT count(*) FROM meter.stored_slots('priv_b')$$), 'P0002',
	'reader: stored_slots of another tenant''s meter: not found');
SELECT is(pg_temp.as_role('meter_tap_reader', 'tA', $$SELECT count(*) FROM meter.stored_slots('priv_b', true)$$), 'P0002',
	'reader: stored_slots (all customers) of another tenant''s meter: not found');
SELECT is(pg_temp.as_role('meter_tap_reader', 'tA',
	$$INSERT INTO meter.events (event_name, customer_id) VALUES ('api', 'c')$$), '42501',
	'reader: cannot insert events');
SELECT is(pg_temp.as_role('meter_tap_reader', 'tA', $$SELECT id FROM meter.create_meter('api', 'x')$$), '42501',
	'reader: cannot define meters');
SELECT is(pg_temp.as_role('meter_tap_reader', 'tA', $$SELECT id FROM meter.update_meter('priv_a', '[]')$$), '42501',
	'reader: cannot update meters');
SELECT is(pg_temp.as_role('meter_tap_reader', 'tA', $$SELECT id FROM meter.disable_meter('priv_a')$$), '42501',
	'reader: cannot disable meters');
SELECT is(pg_temp.as_role('meter_tap_reader', 'tA', 'DELETE FROM meter.rollups'), '42501',
	'reader: cannot change rollups');
SELECT is(pg_temp.as_role('meter_tap_reader', 'tA', 'DELETE FROM meter.seals'), '42501',
	'reader: cannot change seals');
SELECT is(pg_temp.as_role('meter_tap_reader', 'tA', 'DELETE FROM meter.pending'), '42501',
	'reader: cannot change pending rows');
SELECT is(pg_temp.as_role('meter_tap_reader', 'tA', 'SELECT count(*) FROM meter.rebuild()'), '42501',
	'reader: cannot rebuild');
SELECT is(pg_temp.as_role('meter_tap_reader', 'tA', $$SELECT meter.lock_tenant('tB')$$), '42501',
	'reader: cannot take a tenant lock');
SELECT is(pg_temp.as_role('meter_tap_reader', 'tA', 'SELECT meter.rebuild_all()'), '42501',
	'reader: cannot rebuild_all');
SELECT is(pg_temp.as_role('meter_tap_reader', 'tA', 'SELECT meter.compact()'), '42501',
	'reader: cannot compact');
SELECT is(pg_temp.as_role('meter_tap_reader', 'tA', $$SELECT meter.track('b_before')$$), '42501',
	'reader: cannot track tables');
SELECT is(pg_temp.as_role('meter_tap_reader', 'tA', $$SELECT meter.untrack('meter.events')$$), '42501',
	'reader: cannot untrack tables');
SELECT is(pg_temp.as_role('meter_tap_reader', 'tA', 'DELETE FROM meter.tracked_tables'), '42501',
	'reader: cannot change the tracked-tables registry');
SELECT is(pg_temp.as_role('meter_tap_reader', 'tA', $$SELECT meter.grant_admin('meter_tap_reader')$$), '42501',
	'reader: cannot grant itself more');

-- ── Writer ──────────────────────────────────────────────────────────────────────────
SELECT is(pg_temp.as_role('meter_tap_writer', 'tA',
	$$INSERT INTO meter.events (id, event_name, customer_id, "timestamp", properties)
	  VALUES ('a3', 'api', 'c', '2024-01-01 10:10+00', '{"n":10}')$$), 'ok',
	'writer: inserts an event in its tenant');
SELECT is((SELECT value FROM meter.usage('priv_a', '2024-01-01', '2024-01-02')), 12::numeric,
	'the writer''s event counts at once (the trigger runs as the owner)');
SELECT is(pg_temp.as_role('meter_tap_writer', 'tA',
	$$UPDATE meter.events SET properties = '{"n":20}' WHERE id = 'a3'$$), 'ok',
	'writer: updates its event');
SELECT is(pg_temp.as_role('meter_tap_writer', 'tA', $$DELETE FROM meter.events WHERE id = 'a1'$$), 'ok',
	'writer: deletes its event');
SELECT is((SELECT value FROM meter.usage('priv_a', '2024-01-01', '2024-01-02')), 20::numeric,
	'updates and deletes by the writer are tracked');
SELECT is(pg_temp.as_role('meter_tap_writer', 'tA',
	$$INSERT INTO meter.events (tenant_id, event_name, customer_id) VALUES ('tB', 'api', 'c')$$), '42501',
	'writer: cannot insert an event into another tenant');
SELECT is(pg_temp.as_role('meter_tap_writer', 'tA',
	$$WITH u AS (UPDATE meter.events SET properties = '{"n":999}' WHERE id LIKE 'b%' RETURNING 1) SELECT count(*) FROM u$$), '0',
	'writer: cannot update another tenant''s events (they are invisible)');
SELECT is(pg_temp.as_role('meter_tap_writer', 'tA',
	$$WITH d AS (DELETE FROM meter.events WHERE tenant_id = 'tB' RETURNING 1) SELECT count(*) FROM d$$), '0',
	'writer: cannot delete another tenant''s events');
SELECT is(pg_temp.as_role('meter_tap_writer', 'tA',
	$$UPDATE meter.events SET tenant_id = 'tB' WHERE id = 'a3'$$), '42501',
	'writer: cannot move an event into another tenant');
SELECT is(pg_temp.as_role('meter_tap_writer', 'tA', $$SELECT id FROM meter.create_meter('api', 'x')$$), '42501',
	'writer: cannot define meters');
SELECT is(pg_temp.as_role('meter_tap_writer', 'tA', 'SELECT count(*) FROM meter.rollups'), '42501',
	'writer: cannot read rollups');
SELECT is(pg_temp.as_role('meter_tap_writer', 'tA', 'SELECT count(*) FROM meter.pending'), '42501',
	'writer: cannot read pending rows');
SELECT is(pg_temp.as_role('meter_tap_writer', 'tA', 'INSERT INTO meter.pending SELECT * FROM meter.pending'), '42501',
	'writer: cannot write pending rows');
SELECT is(pg_temp.as_role('meter_tap_writer', 'tA', 'SELECT meter.compact()'), '42501',
	'writer: cannot compact');
SELECT is(pg_temp.as_role('meter_tap_writer', 'tA', $$SELECT value FROM meter.usage('priv_a', '2024-01-01', '2024-01-02')$$), '42501',
	'writer: cannot read usage');
SELECT is(pg_temp.as_role('meter_tap_writer', 'tA', 'SELECT count(*) FROM meter.meters'), '42501',
	'writer: cannot read meters');
SELECT is(pg_temp.as_role('meter_tap_writer', 'tA', 'TRUNCATE meter.events'), '42501',
	'writer: cannot truncate events');
SELECT CASE WHEN to_regprocedure('meter.ingest(jsonb)') IS NULL THEN skip('meter.ingest does not exist', 2)
	ELSE collect_tap(
		is(pg_temp.as_role('meter_tap_writer', 'tA',
			$$SELECT accepted FROM meter.ingest('{"id":"a9","event_name":"api","customer_id":"c","timestamp":"2024-01-01T10:20:00Z","properties":{"n":1}}')$$),
			'1', 'writer: meter.ingest into its tenant'),
		is(pg_temp.as_role('meter_tap_reader', 'tA',
			$$SELECT accepted FROM meter.ingest('{"id":"a8","event_name":"api","customer_id":"c"}')$$),
			'42501', 'reader: cannot ingest'))
	END;

-- ── Admin ───────────────────────────────────────────────────────────────────────────
SELECT is(pg_temp.as_role('meter_tap_admin', 'tA',
	$$SELECT id FROM meter.create_meter('api', 'A count', id => 'priv_a2')$$), 'priv_a2',
	'admin: defines a meter in its tenant');
SELECT is((SELECT value FROM meter.usage('priv_a2', '2024-01-01', '2024-01-02')),
	CASE WHEN to_regprocedure('meter.ingest(jsonb)') IS NULL THEN 3::numeric ELSE 4::numeric END,
	'the admin''s new meter is built from the existing events');
SELECT is(pg_temp.as_role('meter_tap_admin', 'tA',
	$$SELECT meter.filter_keys(filters)::text FROM meter.update_meter('priv_a2', '[{"key":"k","values":["v"]}]')$$), '{k}',
	'admin: updates its meter');
SELECT is(pg_temp.as_role('meter_tap_admin', 'tA',
	$$SELECT id FROM meter.create_meter('{"event_name":"api","name":"x","tenant_id":"tB"}'::jsonb)$$), '22023',
	'admin: cannot define a meter in another tenant (create_meter)');
SELECT is(pg_temp.as_role('meter_tap_admin', 'tA',
	$$INSERT INTO meter.meters (tenant_id, event_name, name, aggregation) VALUES ('tB', 'api', 'x', '{"type":"COUNT"}')$$), '42501',
	'admin: cannot define a meter in another tenant (INSERT)');
SELECT is(pg_temp.as_role('meter_tap_admin', 'tA', $$SELECT id FROM meter.update_meter('priv_b', '[]')$$), 'P0002',
	'admin: cannot update another tenant''s meter');
SELECT is(pg_temp.as_role('meter_tap_admin', 'tA', $$SELECT id FROM meter.disable_meter('priv_b')$$), 'P0002',
	'admin: cannot disable another tenant''s meter');
SELECT is(pg_temp.as_role('meter_tap_admin', 'tA',
	$$WITH u AS (UPDATE meter.meters SET name = 'hijacked' WHERE id = 'priv_b' RETURNING 1) SELECT count(*) FROM u$$), '0',
	'admin: cannot update another tenant''s meter directly');
SELECT is(pg_temp.as_role('meter_tap_admin', 'tA', $$DELETE FROM meter.meters WHERE id = 'priv_a2'$$), '42501',
	'admin: cannot hard-delete meters (disable them)');
SELECT is(pg_temp.as_role('meter_tap_admin', 'tA', 'SELECT string_agg(meter_id, '','' ORDER BY meter_id) FROM meter.rebuild()'), 'priv_a,priv_a2',
	'admin: rebuilds the meters of its tenant');
SELECT is(pg_temp.as_role('meter_tap_admin', 'tA', $$SELECT count(*) FROM meter.rebuild('priv_b')$$), 'P0002',
	'admin: cannot rebuild another tenant''s meter');
SELECT is(pg_temp.as_role('meter_tap_admin', 'tA',
	'INSERT INTO meter.rollups SELECT * FROM meter.rollups'), '42501',
	'admin: cannot write rollups');
SELECT is(pg_temp.as_role('meter_tap_admin', 'tA', 'INSERT INTO meter.pending SELECT * FROM meter.pending'), '42501',
	'admin: cannot write pending rows (forge usage)');
SELECT is(pg_temp.as_role('meter_tap_admin', 'tA', 'UPDATE meter.rollups SET data = data'), '42501',
	'admin: cannot change compacted rows');
INSERT INTO meter.events (id, event_name, customer_id, "timestamp", properties)
VALUES ('a5', 'api', 'c', '2024-01-01 10:40+00', '{"n":1}');  -- pending in tenant A (as the owner)
SELECT is(pg_temp.as_role('meter_tap_admin', 'tA', 'SELECT meter.compact()::text'),
	(SELECT count(*)::text FROM meter.pending WHERE tenant_id = 'tA'),
	'admin: compacts its tenant (all its pending rows)');
SELECT is((SELECT string_agg(DISTINCT tenant_id, ',') FROM meter.pending), 'tB',
	'admin: compacting tenant A left tenant B''s pending rows alone');
SELECT is(pg_temp.as_role('meter_tap_admin', 'tA', $$SELECT meter.compact('priv_b')::text$$), 'P0002',
	'admin: cannot compact another tenant''s meter');
SELECT is(pg_temp.as_role('meter_tap_admin', 'tA', $$SELECT meter.lock_tenant('tB')$$), '42501',
	'admin: cannot take tenant locks directly');
SELECT is(pg_temp.as_role('meter_tap_admin', 'tA', $$INSERT INTO meter.events (event_name, customer_id) VALUES ('api', 'c')$$), '42501',
	'admin: is not a writer');
SELECT is(pg_temp.as_role('meter_tap_admin', 'tA', $$SELECT id FROM meter.disable_meter('priv_a2')$$), 'priv_a2',
	'admin: disables its meter');

-- ── Compaction at the end of a writer's statement ───────────────────────────────────
-- Writers fold past meter.compaction_threshold at the end of their outermost statement:
-- the writer's own top-level INSERT (not wrapped in a function of the owner's), psql
-- noting whether it failed instead of stopping.
INSERT INTO meter.events (id, event_name, customer_id, "timestamp", properties)
VALUES ('a6', 'api', 'c', '2024-01-01 10:45+00', '{"n":1}');  -- pending in tenant A (as the owner)
SAVEPOINT writer_compacts;
SET LOCAL meter.tenant_id = 'tA';
SET LOCAL meter.compaction_threshold = 1;
SET LOCAL ROLE meter_tap_writer;
\set ON_ERROR_STOP 0
INSERT INTO meter.events (id, event_name, customer_id, "timestamp", properties)
VALUES ('a4', 'api', 'c', '2024-01-01 10:30+00', '{"n":100}');
\set ON_ERROR_STOP 1
\set writer_insert_failed :ERROR
\set writer_insert_error :LAST_ERROR_MESSAGE
\if :writer_insert_failed
ROLLBACK TO SAVEPOINT writer_compacts;
\endif
RESET ROLE;
SELECT is(:'writer_insert_failed' || ' ' || :'writer_insert_error', 'false ',
	'writer: a top-level insert past the compaction threshold succeeds (the compaction runs as the owner)');
SELECT is((SELECT count(*)::int FROM meter.pending WHERE tenant_id = 'tA'), 0,
	'the writer''s insert folded tenant A''s pending rows');
RELEASE SAVEPOINT writer_compacts;
RESET meter.compaction_threshold;
SET LOCAL meter.tenant_id = 'tA';
DELETE FROM meter.events WHERE tenant_id = 'tA' AND id IN ('a4', 'a6');

-- ── Tenant B untouched, rollups exact ───────────────────────────────────────────────
SELECT is((SELECT events FROM b_before),
	(SELECT count(*) FROM meter.events WHERE tenant_id = 'tB'), 'tenant B: same events');
SELECT is((SELECT props FROM b_before),
	(SELECT string_agg(id || properties::text, ',' ORDER BY id) FROM meter.events WHERE tenant_id = 'tB'),
	'tenant B: events unchanged');
SELECT is((SELECT meters FROM b_before),
	(SELECT string_agg(id || filters::text || status::text, ',' ORDER BY id) FROM meter.meters WHERE tenant_id = 'tB'),
	'tenant B: meters unchanged');
SET LOCAL meter.tenant_id = 'tB';
SELECT is((SELECT stored FROM b_before),
	(SELECT string_agg(concat_ws(' ', customer_id, slot, events, n, sum), ',' ORDER BY slot, customer_id)
		FROM meter.stored_slots('priv_b')),
	'tenant B: stored usage unchanged');
SELECT is((SELECT count(*)::int FROM meter.meters WHERE tenant_id = 'tB'), 1, 'tenant B: no meter was added');
SET LOCAL meter.tenant_id = 'tA';
SELECT is_empty('SELECT * FROM meter.verify()', 'tenant A: verify() empty');
SET LOCAL meter.tenant_id = 'tB';
SELECT is_empty('SELECT * FROM meter.verify()', 'tenant B: verify() empty');

-- ── revoke_access ───────────────────────────────────────────────────────────────────
SELECT meter.revoke_access('meter_tap_reader');
SELECT is(pg_temp.as_role('meter_tap_reader', 'tA', 'SELECT count(*) FROM meter.meters'), '42501',
	'revoke_access: the reader has no access any more');
SELECT meter.revoke_access('meter_tap_admin');
SELECT is(pg_temp.as_role('meter_tap_admin', 'tA', $$SELECT id FROM meter.create_meter('api', 'x')$$), '42501',
	'revoke_access: the admin has no access any more');

SELECT * FROM finish();
ROLLBACK;
