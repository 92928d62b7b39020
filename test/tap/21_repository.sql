-- The repository functions (SPEC §6): create (positional and FlexPrice JSON), get, list,
-- list all, count, disable, update — rules, errors, defaults, paging and ordering.
BEGIN;
SET client_min_messages = warning;
SELECT plan(174);

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
-- ids of a list call, in order, comma-separated.
CREATE FUNCTION pg_temp.ids(call text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE result text;
BEGIN
	EXECUTE format('SELECT coalesce(string_agg(r.id, '','' ORDER BY r.ordinality), '''') FROM %s WITH ORDINALITY AS r', call)
		INTO result;
	RETURN result;
END $$;

-- ── Signatures and comments ─────────────────────────────────────────────────────────
SELECT has_function('meter', 'create_meter',
	ARRAY['text', 'text', 'meter.aggregation', 'meter.filters', 'meter.reset_usage', 'text'], 'create_meter(positional)');
SELECT has_function('meter', 'create_meter', ARRAY['jsonb'], 'create_meter(jsonb)');
SELECT has_function('meter', 'get_meter', ARRAY['text'], 'get_meter(id)');
SELECT has_function('meter', 'list_meters',
	ARRAY['text', 'text[]', 'meter.status', 'timestamp with time zone', 'timestamp with time zone',
	'text', 'text', 'integer', 'integer'], 'list_meters(…)');
SELECT has_function('meter', 'list_all_meters',
	ARRAY['text', 'text[]', 'meter.status', 'timestamp with time zone', 'timestamp with time zone',
	'text', 'text'], 'list_all_meters(…)');
SELECT has_function('meter', 'count_meters',
	ARRAY['text', 'text[]', 'meter.status', 'timestamp with time zone', 'timestamp with time zone'], 'count_meters(…)');
SELECT has_function('meter', 'disable_meter', ARRAY['text'], 'disable_meter(id)');
SELECT has_function('meter', 'update_meter', ARRAY['text', 'meter.filters'], 'update_meter(id, filters)');
SELECT is((SELECT count(*) FROM pg_proc p WHERE p.pronamespace = 'meter'::regnamespace
	AND p.proname IN ('create_meter', 'get_meter', 'list_meters', 'list_all_meters', 'count_meters',
		'disable_meter', 'update_meter', 'list_meters_page')
	AND obj_description(p.oid, 'pg_proc') IS NULL), 0::bigint, 'every repository function has a comment');
SELECT is((SELECT count(*) FROM pg_proc p WHERE p.pronamespace = 'meter'::regnamespace
	AND p.proname IN ('create_meter', 'get_meter', 'list_meters', 'list_all_meters', 'count_meters',
		'disable_meter', 'update_meter', 'list_meters_page')
	AND (p.prosecdef OR p.proconfig IS NULL)), 0::bigint, 'all SECURITY INVOKER with a fixed search_path');
SELECT function_returns('meter', 'get_meter', ARRAY['text'], 'meter.meters', 'get_meter returns meter.meters');
SELECT function_returns('meter', 'list_meters', ARRAY['text', 'text[]', 'meter.status', 'timestamp with time zone',
	'timestamp with time zone', 'text', 'text', 'integer', 'integer'], 'setof meter.meters', 'list_meters returns SETOF meter.meters');
SELECT function_returns('meter', 'count_meters', ARRAY['text', 'text[]', 'meter.status', 'timestamp with time zone',
	'timestamp with time zone'], 'bigint', 'count_meters returns bigint');

-- ── No tenant: 55000 with a hint, from every function ─────────────────────────────────
RESET meter.tenant_id;
RESET meter.environment_id;
RESET meter.user_id;
SELECT matches(pg_temp.err_hint(call), '^55000: no tenant is set \| .*SET meter\.tenant_id', call || ' without tenant → 55000 + hint')
FROM unnest(ARRAY[
	$$SELECT meter.create_meter('e', 'n')$$,
	$$SELECT meter.create_meter('{"event_name":"e","name":"n"}'::jsonb)$$,
	$$SELECT meter.get_meter('x')$$,
	$$SELECT * FROM meter.list_meters()$$,
	$$SELECT * FROM meter.list_all_meters()$$,
	$$SELECT meter.count_meters()$$,
	$$SELECT meter.disable_meter('x')$$,
	$$SELECT meter.update_meter('x', '[]')$$]) AS call;
SET meter.tenant_id = '';
SELECT throws_ok($$SELECT meter.get_meter('x')$$, '55000', 'no tenant is set', 'empty tenant counts as unset');
SELECT throws_ok($$SELECT * FROM meter.list_meters("limit" => 0)$$, '55000', 'no tenant is set',
	'the scope is checked before the arguments');

-- ── create_meter (positional) ───────────────────────────────────────────────────────
SET meter.tenant_id = 'acme';
SET meter.user_id = 'alice';
CREATE TEMP TABLE made AS SELECT * FROM meter.create_meter('api_call', 'API calls');
SELECT matches((SELECT id FROM made), '^meter_[0-9A-HJKMNP-TV-Z]{26}$', 'generated id: meter_ + ULID');
SELECT is((SELECT ROW(tenant_id, environment_id, event_name, name, reset_usage::text, status::text, created_by, updated_by)::text FROM made),
	ROW('acme', '', 'api_call', 'API calls', 'BILLING_PERIOD', 'published', 'alice', 'alice')::text,
	'defaults: scope, BILLING_PERIOD, published, user stamps');
SELECT is((SELECT aggregation::jsonb FROM made), '{"type":"COUNT"}'::jsonb, 'aggregation defaults to COUNT');
SELECT is((SELECT filters::jsonb FROM made), '[]'::jsonb, 'filters default to []');
SELECT is((SELECT ARRAY[created_at, updated_at] FROM made), ARRAY[now(), now()], 'created_at = updated_at = now()');
SELECT is((SELECT count(*) FROM meter.meters m JOIN made USING (id)), 1::bigint, 'the meter is stored');

SELECT is((meter.create_meter(event_name => 'llm', name => 'Tokens', id => 'm_tokens',
	aggregation => '{"type":"SUM","field":"tokens"}', reset_usage => 'NEVER',
	filters => '[{"key":"model","values":["gpt-4o"]}]')).id, 'm_tokens', 'all arguments by name; explicit id kept');
SELECT is((SELECT ROW(aggregation::jsonb, filters::jsonb, reset_usage::text)::text FROM meter.meters WHERE id = 'm_tokens'),
	ROW('{"type":"SUM","field":"tokens"}'::jsonb, '[{"key":"model","values":["gpt-4o"]}]'::jsonb, 'NEVER')::text,
	'aggregation, filters and reset_usage stored');
SELECT is((meter.create_meter('llm', 'Null id', id => NULL)).id ~ '^meter_', true, 'NULL id → generated');
SELECT is(pg_temp.err_hint($$SELECT meter.create_meter('llm', 'Again', id => 'm_tokens')$$),
	'23505: meter "m_tokens" already exists | Choose another id, or pass none (NULL) to get a generated one.',
	'duplicate id: 23505 with a hint');
SELECT is(pg_temp.err($$SELECT meter.create_meter(NULL, 'n')$$), '22023: event_name is required', 'NULL event_name');
SELECT is(pg_temp.err($$SELECT meter.create_meter('  ', 'n')$$), '22023: event_name is required', 'blank event_name');
SELECT is(pg_temp.err($$SELECT meter.create_meter('e', NULL)$$), '22023: name is required', 'NULL name');
SELECT is(pg_temp.err($$SELECT meter.create_meter('e', E'\t')$$), '22023: name is required', 'whitespace-only name');
SELECT is(pg_temp.err($$SELECT meter.create_meter('e', '')$$), '22023: name is required', 'empty name');
SELECT is(pg_temp.err($$SELECT meter.create_meter('e', repeat('x', 1048576))$$), '22023: name is too long', '1 MB name');
SELECT is(pg_temp.err($$SELECT meter.create_meter('e', 'n', id => '')$$), '22023: id is required', 'empty id');
SELECT is(pg_temp.err($$SELECT meter.create_meter('e', 'n', aggregation => NULL)$$), '22023: aggregation cannot be null', 'NULL aggregation');
SELECT is(pg_temp.err($$SELECT meter.create_meter('e', 'n', filters => NULL)$$), '22023: filters cannot be null', 'NULL filters');
SELECT is(pg_temp.err($$SELECT meter.create_meter('e', 'n', reset_usage => NULL)$$), '22023: reset_usage cannot be null', 'NULL reset_usage');
SELECT is(pg_temp.err($$SELECT meter.create_meter('e', 'n', '{"type":"SUM"}')$$), '22023: field or expression is required for aggregation type',
	'invalid aggregation refused by its type');
SELECT is((meter.create_meter('appel', 'Zähler 🚀 日本')).name, 'Zähler 🚀 日本', 'non-ASCII name');

-- ── create_meter(jsonb): FlexPrice's meter JSON ─────────────────────────────────────
CREATE TEMP TABLE made_json AS SELECT * FROM meter.create_meter($${
	"id": "m_json", "event_name": "llm", "name": "JSON tokens",
	"aggregation": {"type": "SUM_WITH_MULTIPLIER", "field": "tokens", "multiplier": "0.5"},
	"filters": [{"key": "model", "values": ["o1-mini", "gpt-4o"]}],
	"reset_usage": "NEVER", "status": "published",
	"tenant_id": "acme", "environment_id": "",
	"created_at": "2024-03-20T15:04:05Z", "updated_at": "2024-03-21T15:04:05.123456+02:00",
	"created_by": "bob", "updated_by": "carol"}$$::jsonb);
SELECT is((SELECT ROW(id, tenant_id, environment_id, event_name, name, reset_usage::text, status::text)::text FROM made_json),
	ROW('m_json', 'acme', '', 'llm', 'JSON tokens', 'NEVER', 'published')::text, 'FlexPrice JSON: fields stored');
SELECT is((SELECT aggregation::jsonb -> 'type' FROM made_json), '"SUM_WITH_MULTIPLIER"'::jsonb, 'FlexPrice JSON: aggregation');
SELECT is((SELECT meter.filter_values(filters, 'model') FROM made_json), ARRAY['gpt-4o', 'o1-mini'], 'FlexPrice JSON: filters (canonical)');
SELECT is((SELECT ARRAY[created_at, updated_at] FROM made_json),
	ARRAY['2024-03-20T15:04:05Z', '2024-03-21T15:04:05.123456+02:00']::timestamptz[], 'FlexPrice JSON: timestamps kept (import)');
SELECT is((SELECT ARRAY[created_by, updated_by] FROM made_json), ARRAY['bob', 'carol'], 'FlexPrice JSON: users kept (import)');
CREATE TEMP TABLE made_min AS SELECT * FROM meter.create_meter('{"event_name":"api_call","name":"Minimal"}'::jsonb);
SELECT is((SELECT ROW(aggregation::jsonb, filters::jsonb, reset_usage::text, status::text, created_at, created_by)::text FROM made_min),
	ROW('{"type":"COUNT"}'::jsonb, '[]'::jsonb, 'BILLING_PERIOD', 'published', now(), 'alice')::text,
	'minimal JSON: COUNT, [], BILLING_PERIOD, published, now(), meter.user_id');
SELECT matches((SELECT id FROM made_min), '^meter_[0-9A-Z]{26}$', 'minimal JSON: generated id');
SELECT is((meter.create_meter('{"id":null,"event_name":"e","name":"nulls","aggregation":null,"filters":null,"reset_usage":null,"status":null,"tenant_id":null,"created_at":null}'::jsonb)).status,
	'published', 'JSON null counts as absent');
SELECT is((meter.create_meter('{"event_name":"e","name":"archived import","status":"archived"}'::jsonb)).status,
	'archived', 'status may be given');

CREATE TEMP TABLE bad (label text, sql text, expect text);
INSERT INTO bad VALUES
	('unknown key', $${"event_name":"e","name":"n","colour":"red"}$$, '22023: unknown meter key "colour"'),
	('name a number', $${"event_name":"e","name":3}$$, '22023: meter key "name" must be a JSON string'),
	('event_name an array', $${"event_name":["e"],"name":"n"}$$, '22023: meter key "event_name" must be a JSON string'),
	('aggregation a string', $${"event_name":"e","name":"n","aggregation":"COUNT"}$$, '22023: meter key "aggregation" must be a JSON object'),
	('filters an object', $${"event_name":"e","name":"n","filters":{"key":"a"}}$$, '22023: meter key "filters" must be a JSON array'),
	('id a number', $${"id":7,"event_name":"e","name":"n"}$$, '22023: meter key "id" must be a JSON string'),
	('created_at a number', $${"event_name":"e","name":"n","created_at":1700000000}$$, '22023: meter key "created_at" must be a JSON string'),
	('missing event_name', $${"name":"n"}$$, '22023: event_name is required'),
	('missing name', $${"event_name":"e"}$$, '22023: name is required'),
	('blank name', $${"event_name":"e","name":" \u3000"}$$, '22023: name is required'),
	('empty id', $${"id":"","event_name":"e","name":"n"}$$, '22023: id is required'),
	('other tenant', $${"event_name":"e","name":"n","tenant_id":"globex"}$$, '22023: tenant_id does not match the current tenant'),
	('other environment', $${"event_name":"e","name":"n","environment_id":"prod"}$$, '22023: environment_id does not match the current environment'),
	('bad reset_usage', $${"event_name":"e","name":"n","reset_usage":"monthly"}$$, '22023: invalid reset_usage'),
	('lower-case reset_usage', $${"event_name":"e","name":"n","reset_usage":"never"}$$, '22023: invalid reset_usage'),
	('bad status', $${"event_name":"e","name":"n","status":"active"}$$, '22023: invalid status'),
	('bad created_at', $${"event_name":"e","name":"n","created_at":"yesterday"}$$, '22023: invalid created_at'),
	('impossible updated_at', $${"event_name":"e","name":"n","updated_at":"2024-02-30T00:00:00Z"}$$, '22023: invalid updated_at'),
	('bad aggregation', $${"event_name":"e","name":"n","aggregation":{"type":"MEDIAN"}}$$, '22023: invalid aggregation type'),
	('bad filters', $${"event_name":"e","name":"n","filters":[{"key":"","values":["a"]}]}$$, '22023: filter key cannot be empty'),
	('duplicate id', $${"id":"m_json","event_name":"e","name":"n"}$$, '23505: meter "m_json" already exists'),
	('array', $$[]$$, '22023: meter must be a JSON object'),
	('string', $$"meter"$$, '22023: meter must be a JSON object'),
	('JSON null', $$null$$, '22023: meter must be a JSON object');
SELECT is(pg_temp.err(format('SELECT meter.create_meter(%L::jsonb)', sql)), expect, 'JSON ' || label || ' → ' || expect)
FROM bad ORDER BY label;
DELETE FROM bad;
SELECT is(pg_temp.err('SELECT meter.create_meter(NULL::jsonb)'), '22023: meter must be a JSON object', 'SQL NULL JSON');
SELECT is(pg_temp.err($$SELECT meter.create_meter('{"event_name":')$$), '22P02: invalid input syntax for type json', 'text that is not JSON → 22P02');
SELECT is(pg_temp.err_hint($$SELECT meter.create_meter('{"event_name":"e","name":"n","colour":"red"}'::jsonb)$$),
	'22023: unknown meter key "colour" | Remove "colour" or correct its spelling.', 'unknown key: named, with a hint');
SELECT is(pg_temp.err($$SELECT meter.create_meter('{"event_name":"e","name":"n","environment_id":""}'::jsonb)$$), 'ok',
	'environment_id equal to the current one is accepted');

-- ── get_meter ───────────────────────────────────────────────────────────────────────
SELECT is((meter.get_meter('m_tokens')).name, 'Tokens', 'get_meter finds a meter');
SELECT is((SELECT name FROM meter.get_meter(id => 'm_json')), 'JSON tokens', 'get_meter by name, in FROM');
SELECT is(pg_temp.err_hint($$SELECT meter.get_meter('nope')$$),
	'P0002: meter "nope" not found | Check the id and the settings meter.tenant_id and meter.environment_id; meter.list_meters() shows the meters of the current scope.',
	'unknown id: P0002 with a hint');
SELECT throws_ok($$SELECT meter.get_meter('')$$, 'P0002', 'meter "" not found', 'empty id: not found');
SELECT throws_ok($$SELECT meter.get_meter(NULL)$$, '22023', 'id is required', 'NULL id: 22023');
SELECT throws_ok(format('SELECT meter.get_meter(%L)', repeat('x', 1048576)), 'P0002', NULL, '1 MB id: not found');
UPDATE meter.meters SET status = 'deleted' WHERE id = 'm_json';
SELECT throws_ok($$SELECT meter.get_meter('m_json')$$, 'P0002', 'meter "m_json" not found', 'deleted meter: not found');
UPDATE meter.meters SET status = 'archived' WHERE id = 'm_json';
SELECT is((meter.get_meter('m_json')).status, 'archived', 'archived meter is found');

-- ── disable_meter ───────────────────────────────────────────────────────────────────
INSERT INTO meter.meters (id, event_name, name, aggregation, created_at, updated_at)
	VALUES ('m_old', 'api_call', 'Old', '{"type":"COUNT"}', '2024-01-01Z', '2024-01-01Z');
SET meter.user_id = 'erin';
SELECT is((SELECT ROW(status::text, updated_at, updated_by)::text FROM meter.disable_meter('m_old')),
	ROW('archived', now(), 'erin')::text, 'disable_meter: archived, stamped');
SET LOCAL session_replication_role = replica;  -- age the stamp without the trigger
UPDATE meter.meters SET updated_at = '2024-06-01Z' WHERE id = 'm_old';
SET LOCAL session_replication_role = origin;
SELECT is((SELECT ROW(status::text, updated_at)::text FROM meter.disable_meter(id => 'm_old')),
	ROW('archived', '2024-06-01Z'::timestamptz)::text, 'disabling an archived meter is a no-op (idempotent)');
SELECT throws_ok($$SELECT meter.disable_meter('nope')$$, 'P0002', 'meter "nope" not found', 'disable unknown: not found');
SELECT throws_ok($$SELECT meter.disable_meter(NULL)$$, '22023', 'id is required', 'disable NULL: 22023');
UPDATE meter.meters SET status = 'deleted' WHERE id = 'm_old';
SELECT throws_ok($$SELECT meter.disable_meter('m_old')$$, 'P0002', 'meter "m_old" not found', 'disable deleted: not found');
SELECT is((SELECT status FROM meter.meters WHERE id = 'm_old'), 'deleted', 'a deleted meter stays deleted');

-- ── update_meter ────────────────────────────────────────────────────────────────────
SELECT is((SELECT filters::jsonb FROM meter.update_meter('m_tokens', '[{"key":"region","values":["eu","us"]}]')),
	'[{"key":"region","values":["eu","us"]}]'::jsonb, 'update_meter replaces the filters');
SELECT is((SELECT meter.filter_keys(filters) FROM meter.meters WHERE id = 'm_tokens'), ARRAY['region'], 'old filter keys are gone');
SELECT is((SELECT ROW(updated_at, updated_by)::text FROM meter.meters WHERE id = 'm_tokens'), ROW(now(), 'erin')::text,
	'update_meter stamps updated_at/updated_by');
SELECT is((SELECT filters::jsonb FROM meter.update_meter(id => 'm_tokens', filters => '[]')), '[]'::jsonb, 'update_meter(id, ''[]'') allowed');
SELECT is((meter.update_meter('m_json', '[]')).status, 'archived', 'an archived meter can be updated and stays archived');
SELECT throws_ok($$SELECT meter.update_meter('nope', '[]')$$, 'P0002', 'meter "nope" not found', 'update unknown: not found');
SELECT throws_ok($$SELECT meter.update_meter('m_old', '[]')$$, 'P0002', 'meter "m_old" not found', 'update deleted: not found');
SELECT throws_ok($$SELECT meter.update_meter('m_tokens', NULL)$$, '22023', 'filters cannot be null', 'update with NULL filters: 22023');
SELECT throws_ok($$SELECT meter.update_meter(NULL, '[]')$$, '22023', 'id is required', 'update NULL id: 22023');
SELECT throws_ok($$SELECT meter.update_meter('m_tokens', '[{"key":"a","values":[]}]')$$, '22023', 'filter values cannot be empty',
	'invalid filters refused by their type');

-- ── Environments are isolated ───────────────────────────────────────────────────────
SET meter.environment_id = 'prod';
SELECT is((meter.create_meter('api_call', 'Prod meter', id => 'm_prod')).environment_id, 'prod', 'created in environment prod');
SELECT throws_ok($$SELECT meter.get_meter('m_tokens')$$, 'P0002', 'meter "m_tokens" not found', 'default-environment meter invisible in prod');
SELECT throws_ok($$SELECT meter.disable_meter('m_tokens')$$, 'P0002', NULL, 'cannot disable across environments');
SELECT throws_ok($$SELECT meter.update_meter('m_tokens', '[]')$$, 'P0002', NULL, 'cannot update across environments');
SELECT is(pg_temp.ids('meter.list_meters()'), 'm_prod', 'prod lists only its meter');
SELECT is(meter.count_meters(), 1::bigint, 'prod counts only its meter');
SET meter.environment_id = '';
SELECT throws_ok($$SELECT meter.get_meter('m_prod')$$, 'P0002', NULL, 'prod meter invisible in the default environment');
SELECT is((SELECT count(*) FROM meter.list_all_meters() WHERE id = 'm_prod'), 0::bigint, 'and not listed there');
-- Other tenant, same functions.
SET meter.tenant_id = 'globex';
SELECT throws_ok($$SELECT meter.get_meter('m_tokens')$$, 'P0002', NULL, 'other tenant: get → not found');
SELECT throws_ok($$SELECT meter.disable_meter('m_tokens')$$, 'P0002', NULL, 'other tenant: disable → not found');
SELECT throws_ok($$SELECT meter.update_meter('m_tokens', '[]')$$, 'P0002', NULL, 'other tenant: update → not found');
SELECT is(meter.count_meters(), 0::bigint, 'other tenant: count 0');
SELECT is((SELECT status FROM meter.meters WHERE id = 'm_tokens'), 'published', 'the other tenant''s meter is untouched');

-- ── Listing: a fixed data set in tenant "list" ──────────────────────────────────────
SET meter.tenant_id = 'list';
SELECT meter.create_meter(format('{"id":"%s","event_name":"%s","name":"%s","status":"%s","created_at":"%s","updated_at":"%s"}',
	id, ev, nm, st, ca, ua)::jsonb)
FROM (VALUES
	('m01', 'api',    'charlie', 'published', '2024-01-01T00:00:00Z', '2024-02-04T00:00:00Z'),
	('m02', 'api',    'alpha',   'published', '2024-01-02T00:00:00Z', '2024-02-01T00:00:00Z'),
	('m03', 'tokens', 'bravo',   'published', '2024-01-02T00:00:00Z', '2024-02-03T00:00:00Z'),
	('m04', 'tokens', 'delta',   'archived',  '2024-01-03T00:00:00Z', '2024-02-02T00:00:00Z'),
	('m05', 'api',    'echo',    'deleted',   '2024-01-04T00:00:00Z', '2024-02-05T00:00:00Z'))
	AS v(id, ev, nm, st, ca, ua);
SET meter.environment_id = 'prod';
SELECT meter.create_meter('{"id":"m06","event_name":"api","name":"prod","created_at":"2024-01-02T00:00:00Z"}'::jsonb);
SET meter.environment_id = '';

SELECT is(pg_temp.ids('meter.list_meters()'), 'm04,m03,m02,m01', 'default: created_at desc, ties by id desc, no deleted');
SELECT is(pg_temp.ids($$meter.list_meters("order" => 'asc')$$), 'm01,m02,m03,m04', 'created_at asc, ties by id asc');
SELECT is(pg_temp.ids($$meter.list_meters("order" => 'ASC')$$), 'm01,m02,m03,m04', 'order is case-insensitive');
SELECT is(pg_temp.ids($$meter.list_meters(sort => 'name', "order" => 'asc')$$), 'm02,m03,m01,m04', 'sort by name asc');
SELECT is(pg_temp.ids($$meter.list_meters(sort => 'name')$$), 'm04,m01,m03,m02', 'sort by name desc');
SELECT is(pg_temp.ids($$meter.list_meters(sort => 'event_name', "order" => 'asc')$$), 'm01,m02,m03,m04', 'sort by event_name asc, ties by id asc');
SELECT is(pg_temp.ids($$meter.list_meters(sort => 'event_name', "order" => 'desc')$$), 'm04,m03,m02,m01', 'sort by event_name desc, ties by id desc');
SELECT is(pg_temp.ids($$meter.list_meters(sort => 'updated_at', "order" => 'asc')$$), 'm02,m04,m03,m01', 'sort by updated_at asc');
SELECT is(pg_temp.ids($$meter.list_meters(sort => 'Updated_At')$$), 'm01,m03,m04,m02', 'sort is case-insensitive');
SELECT is(pg_temp.ids($$meter.list_meters(sort => NULL, "order" => NULL, "limit" => NULL, "offset" => NULL)$$), 'm04,m03,m02,m01',
	'NULL sort/order/limit/offset mean the defaults');
SELECT is(pg_temp.ids($$meter.list_meters("limit" => 2)$$), 'm04,m03', 'page 1');
SELECT is(pg_temp.ids($$meter.list_meters("limit" => 2, "offset" => 2)$$), 'm02,m01', 'page 2');
SELECT is(pg_temp.ids($$meter.list_meters("limit" => 2, "offset" => 4)$$), '', 'page 3 is empty');
SELECT is(pg_temp.ids($$meter.list_meters("limit" => 1000)$$), 'm04,m03,m02,m01', 'limit 1000 allowed');
SELECT is(pg_temp.ids($$meter.list_meters("limit" => 1)$$), 'm04', 'limit 1 allowed');
SELECT is(pg_temp.ids($$meter.list_meters(event_name => 'tokens')$$), 'm04,m03', 'filter by event_name');
SELECT is(pg_temp.ids($$meter.list_meters(event_name => 'nothing')$$), '', 'unknown event_name: empty');
SELECT is(pg_temp.ids($$meter.list_meters(meter_ids => ARRAY['m01', 'm05', 'm06', 'zz', NULL])$$), 'm01',
	'filter by ids (deleted, other-environment and unknown ids not listed)');
SELECT is(pg_temp.ids($$meter.list_meters(meter_ids => '{}')$$), '', 'empty id array: no meters');
SELECT is(pg_temp.ids($$meter.list_meters(status => 'published')$$), 'm03,m02,m01', 'status published');
SELECT is(pg_temp.ids($$meter.list_meters(status => 'archived')$$), 'm04', 'status archived');
SELECT is(pg_temp.ids($$meter.list_meters(status => 'deleted')$$), 'm05', 'explicit status deleted lists deleted meters');
SELECT is(pg_temp.ids($$meter.list_meters(start_time => '2024-01-02Z', end_time => '2024-01-03Z')$$), 'm04,m03,m02',
	'time range on created_at, inclusive at both ends');
SELECT is(pg_temp.ids($$meter.list_meters(start_time => '2024-01-02Z', end_time => '2024-01-02Z')$$), 'm03,m02',
	'start = end: that instant');
SELECT is(pg_temp.ids($$meter.list_meters(start_time => '2024-01-02T00:00:00.000001Z')$$), 'm04', 'open-ended start');
SELECT is(pg_temp.ids($$meter.list_meters(end_time => '2024-01-01Z')$$), 'm01', 'open-ended end');
SELECT is(pg_temp.ids($$meter.list_meters(event_name => 'api', status => 'published', start_time => '2024-01-02Z',
	sort => 'name', "order" => 'asc', "limit" => 10, "offset" => 0)$$), 'm02', 'filters combine');
SELECT is(pg_temp.ids($$meter.list_all_meters()$$), 'm04,m03,m02,m01', 'list_all_meters: same order, all rows');
SELECT is(pg_temp.ids($$meter.list_all_meters(sort => 'name', "order" => 'asc', status => 'published')$$), 'm02,m03,m01',
	'list_all_meters: sort and filters');
SELECT is(meter.count_meters(), 4::bigint, 'count: published and archived');
SELECT is(meter.count_meters(event_name => 'api'), 2::bigint, 'count by event_name');
SELECT is(meter.count_meters(status => 'deleted'), 1::bigint, 'count deleted');
SELECT is(meter.count_meters(meter_ids => ARRAY['m01', 'm04', 'm06']), 2::bigint, 'count by ids');
SELECT is(meter.count_meters(start_time => '2024-01-02Z', end_time => '2024-01-03Z'), 3::bigint, 'count in a time range');

-- List validation: 22023 with hints, never an SQL error.
INSERT INTO bad VALUES
	('limit 0', $$SELECT * FROM meter.list_meters("limit" => 0)$$, '22023: limit must be between 1 and 1000'),
	('limit 1001', $$SELECT * FROM meter.list_meters("limit" => 1001)$$, '22023: limit must be between 1 and 1000'),
	('limit -5', $$SELECT * FROM meter.list_meters("limit" => -5)$$, '22023: limit must be between 1 and 1000'),
	('offset -1', $$SELECT * FROM meter.list_meters("offset" => -1)$$, '22023: offset must not be negative'),
	('order up', $$SELECT * FROM meter.list_meters("order" => 'up')$$, '22023: invalid sort order'),
	('order empty', $$SELECT * FROM meter.list_all_meters("order" => '')$$, '22023: invalid sort order'),
	('sort id', $$SELECT * FROM meter.list_meters(sort => 'id')$$, '22023: invalid sort field'),
	('sort injection', $$SELECT * FROM meter.list_meters(sort => 'name; DROP TABLE meter.meters --')$$, '22023: invalid sort field'),
	('sort column number', $$SELECT * FROM meter.list_all_meters(sort => '1')$$, '22023: invalid sort field'),
	('end before start', $$SELECT * FROM meter.list_meters(start_time => '2024-01-02Z', end_time => '2024-01-01Z')$$,
		'22023: end_time must not be before start_time'),
	('end before start (all)', $$SELECT * FROM meter.list_all_meters(start_time => '2024-01-02Z', end_time => '2024-01-01Z')$$,
		'22023: end_time must not be before start_time'),
	('end before start (count)', $$SELECT meter.count_meters(start_time => '2024-01-02Z', end_time => '2024-01-01Z')$$,
		'22023: end_time must not be before start_time');
SELECT is(pg_temp.err(sql), expect, label || ' → ' || expect) FROM bad ORDER BY label;
SELECT is(pg_temp.err_hint($$SELECT * FROM meter.list_meters(sort => 'id')$$),
	'22023: invalid sort field | Sort by created_at, updated_at, name or event_name.', 'bad sort: hint');
SELECT ok(pg_temp.err_hint($$SELECT * FROM meter.list_meters("limit" => 0)$$) LIKE '22023: limit must be between 1 and 1000 | %offset%',
	'bad limit: hint');
SELECT is((SELECT count(*) FROM meter.meters), (SELECT count(*) FROM meter.meters), 'meter.meters still there');

-- Paging is stable: many meters created in one transaction share created_at.
SET meter.tenant_id = 'bulk';
SELECT count(meter.create_meter('api', 'bulk ' || i)) FROM generate_series(1, 120) i;
SELECT is((SELECT count(*) FROM meter.list_meters()), 50::bigint, 'default page size 50');
SELECT is((SELECT count(*) FROM meter.list_all_meters()), 120::bigint, 'list_all_meters has no page size');
SELECT is(meter.count_meters(), 120::bigint, 'count 120');
SELECT is(
	(SELECT string_agg(ids, ',' ORDER BY page) FROM (
		SELECT page, pg_temp.ids(format('meter.list_meters("limit" => 50, "offset" => %s)', page * 50)) AS ids
		FROM generate_series(0, 2) page) p),
	pg_temp.ids('meter.list_all_meters()'), 'pages concatenate to the full list: no duplicates, no gaps');
SELECT is(
	(SELECT string_agg(ids, ',' ORDER BY page) FROM (
		SELECT page, pg_temp.ids(format($$meter.list_meters(sort => 'event_name', "order" => 'asc', "limit" => 7, "offset" => %s)$$, page * 7)) AS ids
		FROM generate_series(0, 17) page) p),
	(SELECT string_agg(id, ',' ORDER BY id) FROM meter.meters WHERE tenant_id = 'bulk'),
	'all-equal sort keys page by id ascending');
SELECT is(pg_temp.ids($$meter.list_meters("limit" => 3)$$), pg_temp.ids($$meter.list_meters("limit" => 3)$$), 'the same page twice is identical');

SELECT * FROM finish();
ROLLBACK;
