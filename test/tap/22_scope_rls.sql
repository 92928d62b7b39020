-- Scope (SPEC §5) enforced for ordinary roles: two non-superuser roles, two tenants.
-- Tenant A can neither see, change nor delete tenant B's meters — through the functions
-- or through the table directly — and cannot create a meter for tenant B. Environments
-- inside a tenant are isolated the same way.
BEGIN;
SET client_min_messages = warning;
SELECT plan(44);

CREATE FUNCTION pg_temp.err(statement text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE st text; msg text;
BEGIN
	EXECUTE statement;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
	RETURN st || ': ' || msg;
END $$;
-- Rows a statement affected.
CREATE FUNCTION pg_temp.affected(statement text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE n bigint;
BEGIN
	EXECUTE statement;
	GET DIAGNOSTICS n = ROW_COUNT;
	RETURN n::text;
END $$;

CREATE ROLE meter_tap_a NOLOGIN NOSUPERUSER NOBYPASSRLS;
CREATE ROLE meter_tap_b NOLOGIN NOSUPERUSER NOBYPASSRLS;
CREATE ROLE meter_tap_c NOLOGIN NOSUPERUSER NOBYPASSRLS;
GRANT USAGE ON SCHEMA meter TO meter_tap_a, meter_tap_b, meter_tap_c;
GRANT SELECT, INSERT, UPDATE, DELETE ON meter.meters TO meter_tap_a, meter_tap_b;
-- What the roles see is collected here, then checked as the superuser (pgTAP's own
-- temporary tables belong to the superuser).
CREATE TEMP TABLE seen (k text PRIMARY KEY, v text);
GRANT ALL ON seen TO PUBLIC;

-- Seed: tenant B's meters, made by role B.
SET ROLE meter_tap_b;
SET meter.tenant_id = 'tenant_b';
RESET meter.environment_id;
INSERT INTO seen VALUES ('b.create1', (meter.create_meter('api', 'B one', id => 'b1')).id);
INSERT INTO seen VALUES ('b.create2', (meter.create_meter('api', 'B two', id => 'b2')).id);
SET meter.environment_id = 'prod';
INSERT INTO seen VALUES ('b.create_prod', (meter.create_meter('api', 'B prod', id => 'b_prod')).id);
RESET meter.environment_id;
INSERT INTO seen SELECT 'b.table', string_agg(id, ',' ORDER BY id) FROM meter.meters;

-- Tenant A.
SET ROLE meter_tap_a;
SET meter.tenant_id = 'tenant_a';
INSERT INTO seen VALUES ('a.create', (meter.create_meter('api', 'A one', id => 'a1')).tenant_id);
INSERT INTO seen VALUES ('a.create_json', (meter.create_meter('{"id":"a2","event_name":"api","name":"A two"}'::jsonb)).tenant_id);
INSERT INTO seen VALUES ('a.insert_own', pg_temp.affected(
	$$INSERT INTO meter.meters (id, event_name, name, aggregation) VALUES ('a3', 'api', 'A three', '{"type":"COUNT"}')$$));
INSERT INTO seen SELECT 'a.table', string_agg(id, ',' ORDER BY id) FROM meter.meters;
INSERT INTO seen SELECT 'a.list', string_agg(id, ',' ORDER BY id) FROM meter.list_all_meters();
INSERT INTO seen SELECT 'a.list_deleted', count(*)::text FROM meter.list_meters(status => 'deleted');
INSERT INTO seen VALUES ('a.count', meter.count_meters()::text);
INSERT INTO seen VALUES ('a.get_own', (meter.get_meter('a1')).name);
INSERT INTO seen VALUES ('a.get_b', pg_temp.err($$SELECT meter.get_meter('b1')$$));
INSERT INTO seen VALUES ('a.list_ids_b', (SELECT count(*)::text FROM meter.list_meters(meter_ids => ARRAY['b1', 'b2'])));
INSERT INTO seen VALUES ('a.update_b', pg_temp.err($$SELECT meter.update_meter('b1', '[]')$$));
INSERT INTO seen VALUES ('a.disable_b', pg_temp.err($$SELECT meter.disable_meter('b1')$$));
INSERT INTO seen VALUES ('a.select_b', (SELECT count(*)::text FROM meter.meters WHERE id IN ('b1', 'b2', 'b_prod')));
INSERT INTO seen VALUES ('a.table_update_b', pg_temp.affected($$UPDATE meter.meters SET name = 'hacked' WHERE id = 'b1'$$));
INSERT INTO seen VALUES ('a.table_status_b', pg_temp.affected($$UPDATE meter.meters SET status = 'deleted' WHERE tenant_id = 'tenant_b'$$));
INSERT INTO seen VALUES ('a.table_delete_b', pg_temp.affected($$DELETE FROM meter.meters WHERE id = 'b2'$$));
INSERT INTO seen VALUES ('a.table_delete_all', pg_temp.affected($$DELETE FROM meter.meters WHERE name = 'nothing of A'$$));
INSERT INTO seen VALUES ('a.insert_b', pg_temp.err(
	$$INSERT INTO meter.meters (tenant_id, event_name, name, aggregation) VALUES ('tenant_b', 'api', 'planted', '{"type":"COUNT"}')$$));
INSERT INTO seen VALUES ('a.insert_other_env', pg_temp.err(
	$$INSERT INTO meter.meters (environment_id, event_name, name, aggregation) VALUES ('prod', 'api', 'planted', '{"type":"COUNT"}')$$));
INSERT INTO seen VALUES ('a.json_b', pg_temp.err(
	$$SELECT meter.create_meter('{"event_name":"api","name":"planted","tenant_id":"tenant_b"}'::jsonb)$$));
INSERT INTO seen VALUES ('a.move_to_b', pg_temp.err($$UPDATE meter.meters SET tenant_id = 'tenant_b' WHERE id = 'a1'$$));
INSERT INTO seen VALUES ('a.steal_id_b', pg_temp.err($$SELECT meter.create_meter('api', 'copy', id => 'b1')$$));
INSERT INTO seen VALUES ('a.update_all', pg_temp.affected($$UPDATE meter.meters SET name = name || '!'$$));
INSERT INTO seen VALUES ('a.update_own', (meter.update_meter('a1', '[{"key":"k","values":["v"]}]')).id);
INSERT INTO seen VALUES ('a.disable_own', (meter.disable_meter('a2')).status::text);
-- Environment prod of tenant A: its own, separate catalog.
SET meter.environment_id = 'prod';
INSERT INTO seen VALUES ('a.prod_create', (meter.create_meter('api', 'A prod', id => 'a_prod')).environment_id);
INSERT INTO seen SELECT 'a.prod_table', string_agg(id, ',' ORDER BY id) FROM meter.meters;
INSERT INTO seen VALUES ('a.prod_get_default', pg_temp.err($$SELECT meter.get_meter('a1')$$));
INSERT INTO seen VALUES ('a.prod_update_default', pg_temp.affected($$UPDATE meter.meters SET name = 'x' WHERE id = 'a1'$$));
RESET meter.environment_id;
INSERT INTO seen SELECT 'a.default_table', string_agg(id, ',' ORDER BY id) FROM meter.meters;
-- No tenant: the table shows nothing, the functions refuse.
RESET meter.tenant_id;
INSERT INTO seen SELECT 'a.no_tenant_table', count(*)::text FROM meter.meters;
INSERT INTO seen VALUES ('a.no_tenant_list', pg_temp.err($$SELECT * FROM meter.list_meters()$$));
INSERT INTO seen VALUES ('a.no_tenant_insert', pg_temp.err(
	$$INSERT INTO meter.meters (event_name, name, aggregation) VALUES ('api', 'x', '{"type":"COUNT"}')$$));

-- A role with no privileges on the table cannot use the functions (SECURITY INVOKER).
SET ROLE meter_tap_c;
SET meter.tenant_id = 'tenant_a';
INSERT INTO seen VALUES ('c.create', pg_temp.err($$SELECT meter.create_meter('api', 'x')$$));
INSERT INTO seen VALUES ('c.list', pg_temp.err($$SELECT * FROM meter.list_meters()$$));

-- Tenant B again: everything of B intact, nothing of A visible.
SET ROLE meter_tap_b;
SET meter.tenant_id = 'tenant_b';
INSERT INTO seen SELECT 'b.after', string_agg(id || ':' || name || ':' || status, ',' ORDER BY id) FROM meter.meters;
INSERT INTO seen VALUES ('b.get_a', pg_temp.err($$SELECT meter.get_meter('a1')$$));
RESET ROLE;

SELECT is((SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = 'meter_tap_a'), false, 'role A is an ordinary role');
SELECT is((SELECT v FROM seen WHERE k = 'b.table'), 'b1,b2', 'B sees its default-environment meters');
SELECT is((SELECT v FROM seen WHERE k = 'a.create'), 'tenant_a', 'A creates meters in tenant A');
SELECT is((SELECT v FROM seen WHERE k = 'a.create_json'), 'tenant_a', 'A creates meters from JSON');
SELECT is((SELECT v FROM seen WHERE k = 'a.insert_own'), '1', 'A inserts into the table directly (defaults fill the scope)');
SELECT is((SELECT v FROM seen WHERE k = 'a.table'), 'a1,a2,a3', 'A''s table: only A''s meters');
SELECT is((SELECT v FROM seen WHERE k = 'a.list'), 'a1,a2,a3', 'A''s list_all_meters: only A''s meters');
SELECT is((SELECT v FROM seen WHERE k = 'a.list_deleted'), '0', 'A''s deleted list is empty');
SELECT is((SELECT v FROM seen WHERE k = 'a.count'), '3', 'A''s count: 3');
SELECT is((SELECT v FROM seen WHERE k = 'a.get_own'), 'A one', 'A gets its own meter');
SELECT is((SELECT v FROM seen WHERE k = 'a.get_b'), 'P0002: meter "b1" not found', 'A cannot get B''s meter');
SELECT is((SELECT v FROM seen WHERE k = 'a.list_ids_b'), '0', 'A cannot list B''s meters by id');
SELECT is((SELECT v FROM seen WHERE k = 'a.update_b'), 'P0002: meter "b1" not found', 'A cannot update B''s meter');
SELECT is((SELECT v FROM seen WHERE k = 'a.disable_b'), 'P0002: meter "b1" not found', 'A cannot disable B''s meter');
SELECT is((SELECT v FROM seen WHERE k = 'a.select_b'), '0', 'A cannot select B''s rows');
SELECT is((SELECT v FROM seen WHERE k = 'a.table_update_b'), '0', 'A''s UPDATE of B''s row touches nothing');
SELECT is((SELECT v FROM seen WHERE k = 'a.table_status_b'), '0', 'A''s UPDATE by tenant_id touches nothing');
SELECT is((SELECT v FROM seen WHERE k = 'a.table_delete_b'), '0', 'A''s DELETE of B''s row deletes nothing');
SELECT is((SELECT v FROM seen WHERE k = 'a.table_delete_all'), '0', 'nothing of A matched either');
SELECT is((SELECT v FROM seen WHERE k = 'a.insert_b'), '42501: new row violates row-level security policy for table "meters"',
	'A cannot insert a meter for tenant B');
SELECT is((SELECT v FROM seen WHERE k = 'a.insert_other_env'), '42501: new row violates row-level security policy for table "meters"',
	'A cannot insert a meter into another environment than its scope');
SELECT is((SELECT v FROM seen WHERE k = 'a.json_b'), '22023: tenant_id does not match the current tenant',
	'A cannot create a meter for tenant B from JSON');
SELECT is((SELECT v FROM seen WHERE k = 'a.move_to_b'), '22023: tenant_id cannot be changed', 'A cannot move its meter to B');
SELECT is((SELECT v FROM seen WHERE k = 'a.steal_id_b'), '23505: meter "b1" already exists',
	'ids are unique across tenants: B''s id cannot be reused (and B''s meter is not revealed)');
SELECT is((SELECT v FROM seen WHERE k = 'a.update_all'), '3', 'A''s unqualified UPDATE touches A''s 3 meters only');
SELECT is((SELECT v FROM seen WHERE k = 'a.update_own'), 'a1', 'A updates its own meter');
SELECT is((SELECT v FROM seen WHERE k = 'a.disable_own'), 'archived', 'A disables its own meter');
SELECT is((SELECT v FROM seen WHERE k = 'a.prod_create'), 'prod', 'A creates a meter in environment prod');
SELECT is((SELECT v FROM seen WHERE k = 'a.prod_table'), 'a_prod', 'environment prod sees only its meter');
SELECT is((SELECT v FROM seen WHERE k = 'a.prod_get_default'), 'P0002: meter "a1" not found', 'prod cannot get a default-environment meter');
SELECT is((SELECT v FROM seen WHERE k = 'a.prod_update_default'), '0', 'prod cannot update a default-environment row');
SELECT is((SELECT v FROM seen WHERE k = 'a.default_table'), 'a1,a2,a3', 'the default environment does not see prod');
SELECT is((SELECT v FROM seen WHERE k = 'a.no_tenant_table'), '0', 'no tenant: the table shows nothing');
SELECT is((SELECT v FROM seen WHERE k = 'a.no_tenant_list'), '55000: no tenant is set', 'no tenant: functions refuse');
SELECT is((SELECT v FROM seen WHERE k = 'a.no_tenant_insert'), '55000: no tenant is set', 'no tenant: inserts refuse');
SELECT is((SELECT v FROM seen WHERE k = 'c.create'), '42501: permission denied for table meters',
	'functions run with the caller''s privileges (create)');
SELECT is((SELECT v FROM seen WHERE k = 'c.list'), '42501: permission denied for table meters',
	'functions run with the caller''s privileges (list)');
SELECT is((SELECT v FROM seen WHERE k = 'b.after'), 'b1:B one:published,b2:B two:published', 'B''s meters untouched by A');
SELECT is((SELECT v FROM seen WHERE k = 'b.get_a'), 'P0002: meter "a1" not found', 'B cannot get A''s meter');

-- As the superuser (RLS bypassed): the whole picture.
SELECT is((SELECT string_agg(tenant_id || '/' || environment_id || '/' || id, ',' ORDER BY id) FROM meter.meters
	WHERE tenant_id IN ('tenant_a', 'tenant_b')),
	'tenant_a//a1,tenant_a//a2,tenant_a//a3,tenant_a/prod/a_prod,tenant_b//b1,tenant_b//b2,tenant_b/prod/b_prod',
	'every meter in its own scope; nothing planted in B');
SELECT is((SELECT name FROM meter.meters WHERE id = 'a1'), 'A one!', 'A''s own update applied');
SELECT is((SELECT name FROM meter.meters WHERE id = 'b1'), 'B one', 'B''s meter not renamed');
-- The policy is the one of SPEC §5.
SELECT ok((SELECT pg_get_expr(polqual, polrelid) FROM pg_policy WHERE polname = 'meters_scope'
	AND polrelid = 'meter.meters'::regclass) LIKE '%current_setting(''meter.tenant_id''::text, true)%',
	'policy reads meter.tenant_id');
SELECT ok((SELECT pg_get_expr(polqual, polrelid) FROM pg_policy WHERE polname = 'meters_scope'
	AND polrelid = 'meter.meters'::regclass) LIKE '%COALESCE(current_setting(''meter.environment_id''::text, true), ''''::text)%',
	'policy reads meter.environment_id, default environment ''''');

SELECT * FROM finish();
ROLLBACK;
