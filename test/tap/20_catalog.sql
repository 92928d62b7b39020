-- The catalog table meter.meters and its C trigger (SPEC §4): columns, defaults,
-- validation of every insert and update, immutable columns, stamps, dump registration.
BEGIN;
SET client_min_messages = warning;
SELECT plan(118);

-- 'sqlstate: message' of a statement, or 'ok'; the hint too with err_hint.
CREATE FUNCTION pg_temp.err(statement text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE st text; msg text;
BEGIN
	EXECUTE statement;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
	RETURN st || ': ' || msg;
END $$;
CREATE FUNCTION pg_temp.err_hint(statement text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE st text; msg text; hint text;
BEGIN
	EXECUTE statement;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, hint = PG_EXCEPTION_HINT;
	RETURN st || ': ' || msg || ' | ' || hint;
END $$;

-- ── Shape ───────────────────────────────────────────────────────────────────────────
SELECT has_table('meter', 'meters', 'meter.meters exists');
SELECT columns_are('meter', 'meters', ARRAY['id', 'tenant_id', 'environment_id', 'event_name',
	'name', 'aggregation', 'filters', 'reset_usage', 'status', 'created_at', 'updated_at',
	'created_by', 'updated_by'], 'exactly the columns of SPEC §4');
SELECT is(
	(SELECT array_agg(attname::text ORDER BY attnum) FROM pg_attribute
	 WHERE attrelid = 'meter.meters'::regclass AND attnum > 0 AND NOT attisdropped),
	ARRAY['id', 'tenant_id', 'environment_id', 'event_name', 'name', 'aggregation', 'filters',
	'reset_usage', 'status', 'created_at', 'updated_at', 'created_by', 'updated_by'],
	'columns in FlexPrice order');
SELECT col_type_is('meter', 'meters', 'id', 'text', 'id is text');
SELECT col_type_is('meter', 'meters', 'aggregation', 'meter', 'aggregation', 'aggregation is meter.aggregation');
SELECT col_type_is('meter', 'meters', 'filters', 'meter', 'filters', 'filters is meter.filters');
SELECT col_type_is('meter', 'meters', 'reset_usage', 'meter', 'reset_usage', 'reset_usage is meter.reset_usage');
SELECT col_type_is('meter', 'meters', 'status', 'meter', 'status', 'status is meter.status');
SELECT col_type_is('meter', 'meters', 'created_at', 'timestamp with time zone', 'created_at is timestamptz');
SELECT col_type_is('meter', 'meters', 'updated_at', 'timestamp with time zone', 'updated_at is timestamptz');
SELECT col_is_pk('meter', 'meters', 'id', 'id is the primary key');
SELECT col_not_null('meter', 'meters', c, c || ' is NOT NULL')
FROM unnest(ARRAY['tenant_id', 'environment_id', 'event_name', 'name', 'aggregation', 'filters',
	'reset_usage', 'status', 'created_at', 'updated_at']) AS c;
SELECT col_is_null('meter', 'meters', 'created_by', 'created_by may be NULL');
SELECT col_is_null('meter', 'meters', 'updated_by', 'updated_by may be NULL');
SELECT has_index('meter', 'meters', 'meters_published_event_idx',
	ARRAY['tenant_id', 'environment_id', 'event_name'], 'published meters by (tenant, environment, event_name)');
SELECT ok((SELECT pg_get_expr(indpred, indrelid) FROM pg_index
	WHERE indexrelid = 'meter.meters_published_event_idx'::regclass) LIKE '%published%',
	'that index holds published meters only');
SELECT has_index('meter', 'meters', 'meters_scope_created_idx',
	ARRAY['tenant_id', 'environment_id', 'created_at', 'id'], 'meters of a scope by creation');
SELECT ok((SELECT relrowsecurity FROM pg_class WHERE oid = 'meter.meters'::regclass), 'row-level security enabled');
SELECT policies_are('meter', 'meters', ARRAY['meters_scope'], 'one scope policy');
SELECT ok((SELECT 'meter.meters'::regclass = ANY (extconfig) FROM pg_extension WHERE extname = 'meter'),
	'meter.meters is dumped by pg_dump (pg_extension_config_dump)');
SELECT has_trigger('meter', 'meters', 'meters_validate', 'validation trigger exists');
SELECT trigger_is('meter', 'meters', 'meters_validate', 'meter', 'validate_meter', 'it runs meter.validate_meter()');
SELECT is((SELECT tgtype & (2 | 1 | 4 | 8 | 16) FROM pg_trigger
	WHERE tgrelid = 'meter.meters'::regclass AND tgname = 'meters_validate')::int,
	2 | 1 | 4 | 8 | 16, 'BEFORE INSERT OR UPDATE OR DELETE FOR EACH ROW');
SELECT is((SELECT l.lanname FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
	WHERE p.oid = 'meter.validate_meter()'::regprocedure), 'c', 'the trigger is written in C');
SELECT ok(obj_description('meter.meters'::regclass, 'pg_class') IS NOT NULL, 'table has a comment');
SELECT ok(obj_description('meter.validate_meter()'::regprocedure, 'pg_proc') IS NOT NULL, 'trigger function has a comment');

-- ── Defaults ────────────────────────────────────────────────────────────────────────
SET meter.tenant_id = 'acme';
RESET meter.environment_id;
RESET meter.user_id;
INSERT INTO meter.meters (event_name, name, aggregation) VALUES ('api_call', 'API calls', '{"type":"COUNT"}');
SELECT matches((SELECT id FROM meter.meters WHERE name = 'API calls'), '^meter_[0-9A-HJKMNP-TV-Z]{26}$',
	'id defaults to meter_ + a ULID');
SELECT is((SELECT tenant_id FROM meter.meters WHERE name = 'API calls'), 'acme', 'tenant_id defaults to meter.tenant_id');
SELECT is((SELECT environment_id FROM meter.meters WHERE name = 'API calls'), '', 'environment_id defaults to the default environment ''''');
SELECT is((SELECT filters::jsonb FROM meter.meters WHERE name = 'API calls'), '[]'::jsonb, 'filters default to []');
SELECT is((SELECT reset_usage FROM meter.meters WHERE name = 'API calls'), 'BILLING_PERIOD', 'reset_usage defaults to BILLING_PERIOD');
SELECT is((SELECT status FROM meter.meters WHERE name = 'API calls'), 'published', 'status defaults to published');
SELECT is((SELECT created_at FROM meter.meters WHERE name = 'API calls'), now(), 'created_at defaults to now()');
SELECT is((SELECT updated_at FROM meter.meters WHERE name = 'API calls'), now(), 'updated_at defaults to now()');
SELECT ok((SELECT created_by IS NULL AND updated_by IS NULL FROM meter.meters WHERE name = 'API calls'),
	'created_by/updated_by NULL without meter.user_id');

SET meter.environment_id = 'prod';
SET meter.user_id = 'alice';
INSERT INTO meter.meters (event_name, name, aggregation) VALUES ('api_call', 'Prod calls', '{"type":"COUNT"}');
SELECT is((SELECT environment_id FROM meter.meters WHERE name = 'Prod calls'), 'prod', 'environment_id defaults to meter.environment_id');
SELECT is((SELECT ARRAY[created_by, updated_by] FROM meter.meters WHERE name = 'Prod calls'),
	ARRAY['alice', 'alice'], 'created_by/updated_by default to meter.user_id');
INSERT INTO meter.meters (event_name, name, aggregation, created_by, updated_by)
	VALUES ('api_call', 'Null users', '{"type":"COUNT"}', NULL, NULL);
SELECT is((SELECT ARRAY[created_by, updated_by] FROM meter.meters WHERE name = 'Null users'),
	ARRAY['alice', 'alice'], 'explicit NULL created_by/updated_by filled from meter.user_id on insert');
INSERT INTO meter.meters (id, event_name, name, aggregation, created_at, updated_at, created_by, updated_by)
	VALUES ('imported', 'api_call', 'Imported', '{"type":"COUNT"}', '2024-01-01Z', '2024-02-01Z', 'bob', 'carol');
SELECT is((SELECT ARRAY[created_at, updated_at]::text[] FROM meter.meters WHERE id = 'imported'),
	ARRAY['2024-01-01 00:00:00+00', '2024-02-01 00:00:00+00']::timestamptz[]::text[],
	'explicit created_at/updated_at kept on insert (imports, restores)');
SELECT is((SELECT ARRAY[created_by, updated_by] FROM meter.meters WHERE id = 'imported'),
	ARRAY['bob', 'carol'], 'explicit created_by/updated_by kept on insert');

-- No tenant: the column default fails with 55000.
RESET meter.tenant_id;
SELECT throws_ok($$INSERT INTO meter.meters (event_name, name, aggregation) VALUES ('e', 'n', '{"type":"COUNT"}')$$,
	'55000', 'no tenant is set', 'insert without a tenant: 55000');
SET meter.tenant_id = '';
SELECT throws_ok($$INSERT INTO meter.meters (event_name, name, aggregation) VALUES ('e', 'n', '{"type":"COUNT"}')$$,
	'55000', 'no tenant is set', 'empty tenant counts as unset');
SET meter.tenant_id = 'acme';
RESET meter.environment_id;

-- ── Insert validation ───────────────────────────────────────────────────────────────
CREATE TEMP TABLE bad (label text, sql text, expect text);
INSERT INTO bad VALUES
	('NULL id', $$INSERT INTO meter.meters (id, event_name, name, aggregation) VALUES (NULL, 'e', 'n', '{"type":"COUNT"}')$$,
		'22023: id is required'),
	('empty id', $$INSERT INTO meter.meters (id, event_name, name, aggregation) VALUES ('', 'e', 'n', '{"type":"COUNT"}')$$,
		'22023: id is required'),
	('blank id', $$INSERT INTO meter.meters (id, event_name, name, aggregation) VALUES (E' \t\n', 'e', 'n', '{"type":"COUNT"}')$$,
		'22023: id is required'),
	('NULL event_name', $$INSERT INTO meter.meters (event_name, name, aggregation) VALUES (NULL, 'n', '{"type":"COUNT"}')$$,
		'22023: event_name is required'),
	('empty event_name', $$INSERT INTO meter.meters (event_name, name, aggregation) VALUES ('', 'n', '{"type":"COUNT"}')$$,
		'22023: event_name is required'),
	('spaces event_name', $$INSERT INTO meter.meters (event_name, name, aggregation) VALUES ('   ', 'n', '{"type":"COUNT"}')$$,
		'22023: event_name is required'),
	('NULL name', $$INSERT INTO meter.meters (event_name, name, aggregation) VALUES ('e', NULL, '{"type":"COUNT"}')$$,
		'22023: name is required'),
	('empty name', $$INSERT INTO meter.meters (event_name, name, aggregation) VALUES ('e', '', '{"type":"COUNT"}')$$,
		'22023: name is required'),
	('tab/newline name', $$INSERT INTO meter.meters (event_name, name, aggregation) VALUES ('e', E'\t\r\n ', '{"type":"COUNT"}')$$,
		'22023: name is required'),
	('Unicode-space name', $$INSERT INTO meter.meters (event_name, name, aggregation) VALUES ('e', E'\u00A0\u2003\u3000\u200B', '{"type":"COUNT"}')$$,
		'22023: name is required'),
	('256-character name', $$INSERT INTO meter.meters (event_name, name, aggregation) VALUES ('e', repeat('n', 256), '{"type":"COUNT"}')$$,
		'22023: name is too long'),
	('1 MB name', $$INSERT INTO meter.meters (event_name, name, aggregation) VALUES ('e', repeat('n', 1048576), '{"type":"COUNT"}')$$,
		'22023: name is too long'),
	('1 MB random event_name', $$INSERT INTO meter.meters (event_name, name, aggregation)
		SELECT string_agg(md5(i::text), ''), 'n', '{"type":"COUNT"}' FROM generate_series(1, 32768) i$$,
		'22023: event_name is too long'),
	('256-character id', $$INSERT INTO meter.meters (id, event_name, name, aggregation) VALUES (repeat('i', 256), 'e', 'n', '{"type":"COUNT"}')$$,
		'22023: id is too long'),
	('empty tenant_id', $$INSERT INTO meter.meters (tenant_id, event_name, name, aggregation) VALUES ('', 'e', 'n', '{"type":"COUNT"}')$$,
		'22023: tenant_id is required'),
	('NULL tenant_id', $$INSERT INTO meter.meters (tenant_id, event_name, name, aggregation) VALUES (NULL, 'e', 'n', '{"type":"COUNT"}')$$,
		'22023: tenant_id is required'),
	('NULL environment_id', $$INSERT INTO meter.meters (environment_id, event_name, name, aggregation) VALUES (NULL, 'e', 'n', '{"type":"COUNT"}')$$,
		'22023: environment_id cannot be null'),
	('NULL aggregation', $$INSERT INTO meter.meters (event_name, name, aggregation) VALUES ('e', 'n', NULL)$$,
		'22023: aggregation cannot be null'),
	('missing aggregation', $$INSERT INTO meter.meters (event_name, name) VALUES ('e', 'n')$$,
		'22023: aggregation cannot be null'),
	('NULL filters', $$INSERT INTO meter.meters (event_name, name, aggregation, filters) VALUES ('e', 'n', '{"type":"COUNT"}', NULL)$$,
		'22023: filters cannot be null'),
	('NULL reset_usage', $$INSERT INTO meter.meters (event_name, name, aggregation, reset_usage) VALUES ('e', 'n', '{"type":"COUNT"}', NULL)$$,
		'22023: reset_usage cannot be null'),
	('NULL status', $$INSERT INTO meter.meters (event_name, name, aggregation, status) VALUES ('e', 'n', '{"type":"COUNT"}', NULL)$$,
		'22023: status cannot be null'),
	('NULL created_at', $$INSERT INTO meter.meters (event_name, name, aggregation, created_at) VALUES ('e', 'n', '{"type":"COUNT"}', NULL)$$,
		'22023: created_at cannot be null'),
	('NULL updated_at', $$INSERT INTO meter.meters (event_name, name, aggregation, updated_at) VALUES ('e', 'n', '{"type":"COUNT"}', NULL)$$,
		'22023: updated_at cannot be null'),
	('bad status', $$INSERT INTO meter.meters (event_name, name, aggregation, status) VALUES ('e', 'n', '{"type":"COUNT"}', 'gone')$$,
		'22P02: invalid input value for enum meter.status: "gone"');
SELECT is(pg_temp.err(sql), expect, label || ' → ' || expect) FROM bad ORDER BY label;

SELECT is(pg_temp.err_hint($$INSERT INTO meter.meters (event_name, name, aggregation) VALUES ('e', ' ', '{"type":"COUNT"}')$$),
	'22023: name is required | Give the meter a display name, e.g. ''API calls''.', 'blank name: message and hint');
SELECT is(pg_temp.err_hint($$INSERT INTO meter.meters (event_name, name, aggregation, filters) VALUES ('e', 'n', '{"type":"COUNT"}', NULL)$$),
	'22023: filters cannot be null | Use ''[]'' for a meter that counts every event of its event name.', 'NULL filters: message and hint');
SELECT ok(pg_temp.err_hint($$INSERT INTO meter.meters (event_name, name, aggregation) VALUES ('e', repeat('é', 300), '{"type":"COUNT"}')$$)
	LIKE '22023: name is too long | %', 'length counted in characters: 300 × é is too long');
SELECT is(pg_temp.err('SELECT 1'), 'ok', 'session still works after the errors');

-- Accepted edge cases.
INSERT INTO meter.meters (id, event_name, name, aggregation)
	VALUES ('m_255', repeat('e', 255), repeat('é', 255), '{"type":"COUNT"}');
SELECT is((SELECT length(name) FROM meter.meters WHERE id = 'm_255'), 255, '255 characters (multi-byte) are allowed');
INSERT INTO meter.meters (id, event_name, name, aggregation)
	VALUES ('m_uni', 'appel_api_日本', '  Zählerstand 🚀 ', '{"type":"COUNT"}');
SELECT is((SELECT name FROM meter.meters WHERE id = 'm_uni'), 'Zählerstand 🚀', 'non-ASCII names stored trimmed, otherwise as given');
SELECT is((SELECT event_name FROM meter.meters WHERE id = 'm_uni'), 'appel_api_日本', 'non-ASCII event names stored as given');
SELECT throws_ok($$INSERT INTO meter.meters (id, event_name, name, aggregation) VALUES ('m_uni', 'e', 'n', '{"type":"COUNT"}')$$,
	'23505', NULL, 'duplicate id refused by the primary key');

-- ── Trimmed names (SPEC §4): event_name and name as FlexPrice's strings.TrimSpace ──────
SELECT meter.create_meter('  trim_evt  ', E'\t Trim me \u3000', id => 'm_trim');
SELECT is((SELECT ARRAY[event_name, name] FROM meter.meters WHERE id = 'm_trim'), ARRAY['trim_evt', 'Trim me'],
	'create_meter stores event_name and name trimmed');
SELECT is((SELECT string_agg(id, ',') FROM meter.matching_meters('trim_evt', '{}')), 'm_trim',
	'a meter created with a padded event name matches the trimmed name');
SELECT meter.ingest(jsonb_build_array(
	jsonb_build_object('id', 't1', 'event_name', E'  trim_evt\u00A0', 'customer_id', 'c', 'timestamp', '2024-01-01T00:00:00Z'),
	jsonb_build_object('id', 't2', 'event_name', E'\u3000trim_evt\n', 'customer_id', 'c', 'timestamp', '2024-01-01T00:00:00Z')));
SELECT is((SELECT string_agg(DISTINCT event_name, ',') FROM meter.events WHERE id IN ('t1', 't2')), 'trim_evt',
	'ingest trims event names by the same rule (Unicode white space too)');
SELECT is((SELECT value FROM meter.usage('m_trim', '2024-01-01Z', '2024-01-02Z')), 2::numeric,
	'... so the padded meter counts the padded events');
SELECT is((meter.create_meter('{"event_name":" json_evt ","name":" JSON ","id":"m_trim_json"}'::jsonb)).event_name,
	'json_evt', 'create_meter(jsonb) trims too');
INSERT INTO meter.meters (id, event_name, name, aggregation)
	VALUES ('m_trim_u', E'\u00A0\u1680\u2000\u200A\u2028\u2029\u202F\u205F\u3000\u0085 x \t\n\u000B\f\r', E' a  b ', '{"type":"COUNT"}');
SELECT is((SELECT ARRAY[event_name, name] FROM meter.meters WHERE id = 'm_trim_u'), ARRAY['x', 'a  b'],
	'every Unicode white space is trimmed from both ends; inner spaces stay');
INSERT INTO meter.meters (id, event_name, name, aggregation)
	VALUES ('m_trim_zw', E'\u200Bzw\uFEFF', E'\u200B n', '{"type":"COUNT"}');
SELECT is((SELECT ARRAY[event_name, name] FROM meter.meters WHERE id = 'm_trim_zw'), ARRAY[E'\u200Bzw\uFEFF', E'\u200B n'],
	'the zero-width space and the BOM are not white space (as in Go)');
UPDATE meter.meters SET event_name = E'\u2003trim_evt2 ', name = ' Renamed ' WHERE id = 'm_trim';
SELECT is((SELECT ARRAY[event_name, name] FROM meter.meters WHERE id = 'm_trim'), ARRAY['trim_evt2', 'Renamed'],
	'updates are trimmed too');
INSERT INTO meter.meters (id, event_name, name, aggregation)
	VALUES ('m_trim_255', '  ' || repeat('e', 255) || '  ', repeat('é', 255) || E'\u3000', '{"type":"COUNT"}');
SELECT is((SELECT length(event_name) + length(name) FROM meter.meters WHERE id = 'm_trim_255'), 510,
	'the length limit applies to the trimmed text');
INSERT INTO meter.meters (id, event_name, name, aggregation) VALUES (' m_id ', 'e', 'n', '{"type":"COUNT"}');
SELECT is((SELECT count(*) FROM meter.meters WHERE id = ' m_id '), 1::bigint, 'ids are kept as given (not trimmed)');

-- ── Update: immutable columns, re-validation, stamps ─────────────────────────────────
SET meter.user_id = 'dave';
UPDATE meter.meters SET name = 'Imported, renamed' WHERE id = 'imported';
SELECT is((SELECT updated_at FROM meter.meters WHERE id = 'imported'), now(), 'update stamps updated_at = now()');
SELECT is((SELECT updated_by FROM meter.meters WHERE id = 'imported'), 'dave', 'update stamps updated_by = meter.user_id');
SELECT is((SELECT ARRAY[created_at::text, created_by] FROM meter.meters WHERE id = 'imported'),
	ARRAY['2024-01-01Z'::timestamptz::text, 'bob'], 'update keeps created_at/created_by');
UPDATE meter.meters SET updated_at = '2000-01-01Z', updated_by = 'mallory' WHERE id = 'imported';
SELECT is((SELECT ARRAY[updated_at::text, updated_by] FROM meter.meters WHERE id = 'imported'),
	ARRAY[now()::text, 'dave'], 'explicit updated_at/updated_by are overwritten by the stamps');
RESET meter.user_id;
UPDATE meter.meters SET status = 'archived' WHERE id = 'imported';
SELECT is((SELECT updated_by FROM meter.meters WHERE id = 'imported'), NULL, 'updated_by NULL when meter.user_id is unset');

DELETE FROM bad;
INSERT INTO bad VALUES
	('change id', $$UPDATE meter.meters SET id = 'other' WHERE id = 'imported'$$, '22023: id cannot be changed'),
	('change tenant_id', $$UPDATE meter.meters SET tenant_id = 'evil' WHERE id = 'imported'$$, '22023: tenant_id cannot be changed'),
	('change environment_id', $$UPDATE meter.meters SET environment_id = 'staging' WHERE id = 'imported'$$, '22023: environment_id cannot be changed'),
	('change created_at', $$UPDATE meter.meters SET created_at = now() WHERE id = 'imported'$$, '22023: created_at cannot be changed'),
	('change created_by', $$UPDATE meter.meters SET created_by = 'eve' WHERE id = 'imported'$$, '22023: created_by cannot be changed'),
	('update to blank name', $$UPDATE meter.meters SET name = ' ' WHERE id = 'imported'$$, '22023: name is required'),
	('update to NULL event_name', $$UPDATE meter.meters SET event_name = NULL WHERE id = 'imported'$$, '22023: event_name is required'),
	('update to NULL aggregation', $$UPDATE meter.meters SET aggregation = NULL WHERE id = 'imported'$$, '22023: aggregation cannot be null'),
	('update to NULL filters', $$UPDATE meter.meters SET filters = NULL WHERE id = 'imported'$$, '22023: filters cannot be null'),
	('update to long event_name', $$UPDATE meter.meters SET event_name = repeat('x', 300) WHERE id = 'imported'$$, '22023: event_name is too long');
SELECT is(pg_temp.err(sql), expect, label || ' → ' || expect) FROM bad ORDER BY label;
SELECT is(pg_temp.err_hint($$UPDATE meter.meters SET tenant_id = 'evil' WHERE id = 'imported'$$),
	'22023: tenant_id cannot be changed | Meters never move between tenants: create the meter in the other tenant instead.',
	'changing tenant_id: message and hint');
UPDATE meter.meters SET id = 'imported', tenant_id = 'acme', environment_id = 'prod', created_at = '2024-01-01Z' WHERE id = 'imported';
SELECT is((SELECT name FROM meter.meters WHERE id = 'imported'), 'Imported, renamed', 'setting immutable columns to their own values is fine');
-- The whole row is re-validated: an unrelated change of a row that was made invalid
-- behind the trigger's back (triggers disabled) is refused.
SET LOCAL session_replication_role = replica;
UPDATE meter.meters SET name = repeat('z', 300) WHERE id = 'imported';
SET LOCAL session_replication_role = origin;
SELECT is(pg_temp.err($$UPDATE meter.meters SET status = 'published' WHERE id = 'imported'$$),
	'22023: name is too long', 'an update re-validates the whole row, not only the changed columns');
SELECT throws_ok($$UPDATE meter.meters SET name = '' WHERE id = 'imported'$$, '22023', 'name is required',
	'blank name refused on update');

-- ── Delete, and the trigger's own guards ────────────────────────────────────────────
DELETE FROM meter.meters WHERE id = 'm_uni';
SELECT is((SELECT count(*) FROM meter.meters WHERE id = 'm_uni'), 0::bigint, 'delete goes through the trigger');
CREATE TEMP TABLE not_meters (id text);
CREATE TRIGGER wrong BEFORE INSERT ON not_meters FOR EACH ROW EXECUTE FUNCTION meter.validate_meter();
SELECT throws_ok($$INSERT INTO not_meters VALUES ('x')$$, '39P01', 'meter.validate_meter() guards table meter.meters only',
	'the trigger refuses other tables');
SELECT throws_ok($$SELECT meter.validate_meter()$$, '39P01', 'meter.validate_meter() must be called as a trigger', 'the trigger function cannot be called directly');
CREATE TRIGGER wrong_when AFTER UPDATE ON meter.meters FOR EACH ROW EXECUTE FUNCTION meter.validate_meter();
SELECT throws_ok($$UPDATE meter.meters SET name = 'x' WHERE id = 'm_255'$$, '39P01',
	'meter.validate_meter() must be fired BEFORE ... FOR EACH ROW', 'the trigger refuses AFTER');
DROP TRIGGER wrong_when ON meter.meters;
SELECT is(pg_temp.err('SELECT count(*) FROM meter.meters'), 'ok', 'session still works');

SELECT * FROM finish();
ROLLBACK;
