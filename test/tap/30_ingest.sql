-- meter.ingest(jsonb) (SPEC §7): rules, errors, dedup, atomicity, scope, defaults.
BEGIN;
SET client_min_messages = warning;
SELECT plan(125);

-- Runs a statement; returns 'SQLSTATE: message | detail | hint' or 'ok'.
CREATE FUNCTION pg_temp.err(stmt text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	st text; msg text; det text; hnt text;
BEGIN
	EXECUTE stmt;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT,
		det = PG_EXCEPTION_DETAIL, hnt = PG_EXCEPTION_HINT;
	RETURN st || ': ' || msg || ' | ' || det || ' | ' || hnt;
END $$;

-- The events of the current scope, as the tests see them.
CREATE FUNCTION pg_temp.n() RETURNS bigint LANGUAGE sql AS $$
	SELECT count(*) FROM meter.events
	WHERE tenant_id = current_setting('meter.tenant_id')
	  AND environment_id = current_setting('meter.environment_id') $$;

-- ── The function ───────────────────────────────────────────────────────────────────
SELECT has_function('meter', 'ingest', ARRAY['jsonb'], 'meter.ingest(jsonb) exists');
SELECT function_returns('meter', 'ingest', ARRAY['jsonb'], 'setof record', 'returns a table');
SELECT volatility_is('meter', 'ingest', ARRAY['jsonb'], 'volatile', 'ingest is VOLATILE');
SELECT isnt_strict('meter', 'ingest', ARRAY['jsonb'], 'ingest is not STRICT (NULL is an error)');
SELECT is((SELECT proargnames FROM pg_proc WHERE oid = 'meter.ingest(jsonb)'::regprocedure),
	ARRAY['events', 'accepted', 'duplicates'], 'argument and result columns are named events, accepted, duplicates');

-- ── Scope ─────────────────────────────────────────────────────────────────────────
SET LOCAL meter.tenant_id = '';
SELECT throws_ok($$SELECT * FROM meter.ingest('{"event_name":"a","customer_id":"c"}')$$,
	'55000', 'no tenant is set', 'no tenant: 55000');
SELECT throws_ok($$SELECT * FROM meter.ingest('[]')$$,
	'55000', 'no tenant is set', 'no tenant: 55000 even for an empty batch');
SELECT matches(pg_temp.err($$SELECT * FROM meter.ingest('[]')$$),
	'SET meter.tenant_id', 'the 55000 error hints at SET meter.tenant_id');

SET LOCAL meter.tenant_id = 't30';
SET LOCAL meter.environment_id = '';

-- ── Shapes of the input ───────────────────────────────────────────────────────────
SELECT results_eq($$SELECT * FROM meter.ingest('[]')$$, $$VALUES (0, 0)$$, '[] gives 0, 0');
SELECT results_eq($$SELECT accepted, duplicates FROM meter.ingest('{"event_name":"api_call","external_customer_id":"cus_1","id":"one"}')$$,
	$$VALUES (1, 0)$$, 'one object gives 1, 0');
SELECT results_eq($$SELECT (meter.ingest('[{"event_name":"api_call","external_customer_id":"cus_1","id":"sel"}]')).*$$,
	$$VALUES (1, 0)$$, 'callable in the select list');
SELECT throws_ok($$SELECT * FROM meter.ingest('"x"')$$, '22023',
	'events must be a JSON object or an array of objects', 'a JSON string is refused');
SELECT throws_ok($$SELECT * FROM meter.ingest('42')$$, '22023',
	'events must be a JSON object or an array of objects', 'a JSON number is refused');
SELECT throws_ok($$SELECT * FROM meter.ingest('null')$$, '22023',
	'events must be a JSON object or an array of objects', 'JSON null is refused');
SELECT throws_ok($$SELECT * FROM meter.ingest(NULL)$$, '22023',
	'events must be a JSON object or an array of objects', 'SQL NULL is refused');
SELECT matches(pg_temp.err($$SELECT * FROM meter.ingest('true')$$), 'Got a boolean\.',
	'the detail names the JSON type given');
SELECT throws_ok($$SELECT * FROM meter.ingest('[{"event_name":"a","customer_id":"c"}, "x"]')$$, '22023',
	'event 1: not a JSON object', 'an array element that is a string');
SELECT throws_ok($$SELECT * FROM meter.ingest('[[{"event_name":"a","customer_id":"c"}]]')$$, '22023',
	'event 0: not a JSON object', 'a nested array element');
SELECT throws_ok($$SELECT * FROM meter.ingest('[null]')$$, '22023',
	'event 0: not a JSON object', 'a null element');
SELECT matches(pg_temp.err($$SELECT * FROM meter.ingest('[{"event_name":"a","customer_id":"c"}, 7]')$$),
	'^22023: event 1: not a JSON object \| Event 1 \(counting from 0\) is a number\. \| ',
	'the detail says the index counts from 0');

-- ── Stored row and defaults ───────────────────────────────────────────────────────
-- Key columns are COLLATE "C"; compared with plain text values under the default collation.
SELECT results_eq($$SELECT tenant_id COLLATE "default", environment_id COLLATE "default", event_name COLLATE "default",
		customer_id COLLATE "default", external_customer_id COLLATE "default", source, properties
	FROM meter.events WHERE tenant_id = 't30' AND id = 'one'$$,
	$$VALUES ('t30'::text, ''::text, 'api_call'::text, NULL::text, 'cus_1'::text, NULL::text, '{}'::jsonb)$$,
	'the stored row: scope, name, customer, no source, empty properties');
SELECT is((SELECT "timestamp" FROM meter.events WHERE tenant_id = 't30' AND id = 'one'), now(),
	'timestamp defaults to now()');
SELECT is((SELECT ingested_at FROM meter.events WHERE tenant_id = 't30' AND id = 'one'), now(),
	'ingested_at is now()');
SELECT lives_ok($$SELECT * FROM meter.ingest('{"event_name":"gen","customer_id":"c"}')$$, 'no id given');
SELECT matches((SELECT id FROM meter.events WHERE tenant_id = 't30' AND event_name = 'gen'),
	'^event_[0-9A-HJKMNP-TV-Z]{26}$', 'the default id is event_ + a ULID');
SELECT is((SELECT count(DISTINCT id)::int FROM meter.events WHERE tenant_id = 't30' AND event_name = 'gen2'), 0, 'fixture');
SELECT results_eq($$SELECT * FROM meter.ingest((SELECT jsonb_agg(jsonb_build_object('event_name', 'gen2', 'customer_id', 'c')) FROM generate_series(1, 500)))$$,
	$$VALUES (500, 0)$$, '500 events without ids are all accepted');
SELECT is((SELECT count(DISTINCT id)::int FROM meter.events WHERE tenant_id = 't30' AND event_name = 'gen2'), 500,
	'generated ids are distinct');

-- ── Duplicates ────────────────────────────────────────────────────────────────────
SELECT results_eq($$SELECT * FROM meter.ingest('[
	{"id":"d1","event_name":"dup","customer_id":"c","properties":{"v":1}},
	{"id":"d2","event_name":"dup","customer_id":"c"},
	{"id":"d1","event_name":"dup","customer_id":"c","properties":{"v":2}},
	{"id":"d1","event_name":"dup","customer_id":"c","properties":{"v":3}}]')$$,
	$$VALUES (2, 2)$$, 'an id repeated inside one call is a duplicate');
SELECT is((SELECT properties FROM meter.events WHERE tenant_id = 't30' AND id = 'd1'), '{"v":1}'::jsonb,
	'inside a call, the first occurrence wins');
SELECT results_eq($$SELECT * FROM meter.ingest('[
	{"id":"d1","event_name":"dup","customer_id":"c","properties":{"v":9}},
	{"id":"d3","event_name":"dup","customer_id":"c"}]')$$,
	$$VALUES (1, 1)$$, 'an id stored before is a duplicate');
SELECT is((SELECT properties FROM meter.events WHERE tenant_id = 't30' AND id = 'd1'), '{"v":1}'::jsonb,
	'a re-sent event does not overwrite the stored one');
SELECT results_eq($$SELECT * FROM meter.ingest('[{"event_id":"d2","event_name":"dup","customer_id":"c"}]')$$,
	$$VALUES (0, 1)$$, 'event_id is the same key as id');
SELECT is((SELECT count(*)::int FROM meter.events WHERE tenant_id = 't30' AND event_name = 'dup'), 3,
	'three distinct events stored');
INSERT INTO meter.events (id, event_name, customer_id) VALUES ('by_insert', 'dup', 'c');
SELECT results_eq($$SELECT * FROM meter.ingest('{"id":"by_insert","event_name":"dup","customer_id":"c"}')$$,
	$$VALUES (0, 1)$$, 'an id stored by a plain INSERT is a duplicate too');

-- ── id / event_id ─────────────────────────────────────────────────────────────────
SELECT lives_ok($$SELECT * FROM meter.ingest('{"event_id":"fp_1","event_name":"x","customer_id":"c"}')$$, 'event_id alone');
SELECT is((SELECT count(*)::int FROM meter.events WHERE tenant_id = 't30' AND id = 'fp_1'), 1, 'event_id is stored as id');
SELECT results_eq($$SELECT * FROM meter.ingest('{"id":"same","event_id":"same","event_name":"x","customer_id":"c"}')$$,
	$$VALUES (1, 0)$$, 'id and event_id equal: fine');
SELECT throws_ok($$SELECT * FROM meter.ingest('{"id":"a","event_id":"b","event_name":"x","customer_id":"c"}')$$,
	'22023', 'event 0: "id" and "event_id" differ', 'id and event_id different');
SELECT throws_ok($$SELECT * FROM meter.ingest('{"id":"","event_name":"x","customer_id":"c"}')$$,
	'22023', 'event 0: "id" cannot be empty', 'an empty id');
SELECT throws_ok($$SELECT * FROM meter.ingest('{"event_id":"","event_name":"x","customer_id":"c"}')$$,
	'22023', 'event 0: "event_id" cannot be empty', 'an empty event_id');
SELECT throws_ok($$SELECT * FROM meter.ingest('{"id":17,"event_name":"x","customer_id":"c"}')$$,
	'22023', 'event 0: "id" must be a string', 'a numeric id');
SELECT throws_ok($$SELECT * FROM meter.ingest('{"event_id":{},"event_name":"x","customer_id":"c"}')$$,
	'22023', 'event 0: "event_id" must be a string', 'an object event_id');
SELECT lives_ok($$SELECT * FROM meter.ingest('{"id":null,"event_name":"nullid","customer_id":"c"}')$$, 'a null id');
SELECT matches((SELECT id FROM meter.events WHERE tenant_id = 't30' AND event_name = 'nullid'), '^event_',
	'a null id counts as absent: one is generated');
SELECT lives_ok(format($$SELECT * FROM meter.ingest('{"id":"%s","event_name":"x","customer_id":"c"}')$$, repeat('i', 512)),
	'an id of 512 bytes');
SELECT throws_ok(format($$SELECT * FROM meter.ingest('{"id":"%s","event_name":"x","customer_id":"c"}')$$, repeat('i', 513)),
	'22023', 'event 0: "id" is too long', 'an id of 513 bytes');

-- ── event_name ────────────────────────────────────────────────────────────────────
SELECT throws_ok($$SELECT * FROM meter.ingest('{"customer_id":"c"}')$$,
	'22023', 'event 0: "event_name" is required', 'no event_name');
SELECT throws_ok($$SELECT * FROM meter.ingest('[{"event_name":"a","customer_id":"c"},{"event_name":"a","customer_id":"c"},{"event_name":"a","customer_id":"c"},{"customer_id":"c"}]')$$,
	'22023', 'event 3: "event_name" is required', 'the error names the element''s index');
SELECT throws_ok($$SELECT * FROM meter.ingest('{"event_name":null,"customer_id":"c"}')$$,
	'22023', 'event 0: "event_name" is required', 'a null event_name');
SELECT throws_ok($$SELECT * FROM meter.ingest('{"event_name":"","customer_id":"c"}')$$,
	'22023', 'event 0: "event_name" cannot be empty', 'an empty event_name');
SELECT throws_ok($$SELECT * FROM meter.ingest('{"event_name":" \t ","customer_id":"c"}')$$,
	'22023', 'event 0: "event_name" cannot be empty', 'a blank event_name');
SELECT throws_ok($$SELECT * FROM meter.ingest('{"event_name":5,"customer_id":"c"}')$$,
	'22023', 'event 0: "event_name" must be a string', 'a numeric event_name');
SELECT throws_ok($$SELECT * FROM meter.ingest('{"event_name":["a"],"customer_id":"c"}')$$,
	'22023', 'event 0: "event_name" must be a string', 'an array event_name');
SELECT matches(pg_temp.err($$SELECT * FROM meter.ingest('{"customer_id":"c"}')$$),
	'\| Add "event_name"', 'the hint says what to add');
SELECT lives_ok($$SELECT * FROM meter.ingest('{"id":"trim","event_name":"  padded ","customer_id":"c"}')$$, 'a padded event_name');
SELECT is((SELECT event_name FROM meter.events WHERE tenant_id = 't30' AND id = 'trim'), 'padded',
	'event_name is trimmed, as FlexPrice does');
SELECT throws_ok(format($$SELECT * FROM meter.ingest('{"event_name":"%s","customer_id":"c"}')$$, repeat('n', 600)),
	'22023', 'event 0: "event_name" is too long', 'an event_name of 600 bytes');

-- ── Customers ─────────────────────────────────────────────────────────────────────
SELECT throws_ok($$SELECT * FROM meter.ingest('{"event_name":"x"}')$$,
	'22023', 'event 0: "customer_id" or "external_customer_id" is required', 'no customer');
SELECT throws_ok($$SELECT * FROM meter.ingest('{"event_name":"x","customer_id":"","external_customer_id":""}')$$,
	'22023', 'event 0: "customer_id" or "external_customer_id" is required', 'both customers empty');
SELECT throws_ok($$SELECT * FROM meter.ingest('{"event_name":"x","customer_id":null,"external_customer_id":null}')$$,
	'22023', 'event 0: "customer_id" or "external_customer_id" is required', 'both customers null');
SELECT throws_ok($$SELECT * FROM meter.ingest('{"event_name":"x","customer_id":12}')$$,
	'22023', 'event 0: "customer_id" must be a string', 'a numeric customer_id');
SELECT throws_ok($$SELECT * FROM meter.ingest('{"event_name":"x","customer_id":"c","external_customer_id":true}')$$,
	'22023', 'event 0: "external_customer_id" must be a string', 'a boolean external_customer_id');
SELECT lives_ok($$SELECT * FROM meter.ingest('{"id":"cust_only","event_name":"x","customer_id":"c7","external_customer_id":""}')$$,
	'customer_id alone (external empty, as FlexPrice''s JSON has it)');
SELECT results_eq($$SELECT customer_id COLLATE "default", external_customer_id COLLATE "default" FROM meter.events WHERE tenant_id = 't30' AND id = 'cust_only'$$,
	$$VALUES ('c7'::text, NULL::text)$$, 'an empty customer id is stored as NULL');
SELECT lives_ok($$SELECT * FROM meter.ingest('{"id":"both","event_name":"x","customer_id":"c8","external_customer_id":"ext8"}')$$, 'both customers');
SELECT results_eq($$SELECT customer_id COLLATE "default", external_customer_id COLLATE "default" FROM meter.events WHERE tenant_id = 't30' AND id = 'both'$$,
	$$VALUES ('c8'::text, 'ext8'::text)$$, 'both customer ids stored');

-- ── timestamp ─────────────────────────────────────────────────────────────────────
SELECT lives_ok($$SELECT * FROM meter.ingest('[
	{"id":"ts1","event_name":"t","customer_id":"c","timestamp":"2024-03-10T20:00:00Z"},
	{"id":"ts2","event_name":"t","customer_id":"c","timestamp":"2024-03-10T20:00:00.123+05:30"},
	{"id":"ts3","event_name":"t","customer_id":"c","timestamp":"2024-03-10t20:00:00z"},
	{"id":"ts4","event_name":"t","customer_id":"c","timestamp":"2024-03-10 20:00:00-08:00"},
	{"id":"ts5","event_name":"t","customer_id":"c","timestamp":"2024-02-29T23:59:59.9999999Z"},
	{"id":"ts6","event_name":"t","customer_id":"c","timestamp":"2024-03-10T20:00:00.000001Z"},
	{"id":"ts7","event_name":"t","customer_id":"c","timestamp":"0001-01-01T00:00:00Z"},
	{"id":"ts8","event_name":"t","customer_id":"c","timestamp":null}]')$$, 'RFC 3339 timestamps');
SELECT results_eq($$SELECT id COLLATE "default", "timestamp" FROM meter.events WHERE tenant_id = 't30' AND event_name = 't' ORDER BY id$$,
	$$VALUES ('ts1'::text, '2024-03-10 20:00:00+00'::timestamptz), ('ts2', '2024-03-10 14:30:00.123+00'),
		('ts3', '2024-03-10 20:00:00+00'), ('ts4', '2024-03-11 04:00:00+00'), ('ts5', '2024-03-01 00:00:00+00'),
		('ts6', '2024-03-10 20:00:00.000001+00'), ('ts7', now()), ('ts8', now())$$,
	'timestamps stored as instants (zones applied, fractions rounded; Go''s zero time and null mean now)');
SELECT throws_ok($$SELECT * FROM meter.ingest('{"event_name":"t","customer_id":"c","timestamp":"2024-03-10T20:00:00"}')$$,
	'22023', 'event 0: "timestamp" is not a valid RFC 3339 timestamp', 'a timestamp without a zone');
SELECT matches(pg_temp.err($$SELECT * FROM meter.ingest('{"event_name":"t","customer_id":"c","timestamp":"2024-03-10T20:00:00"}')$$),
	'time zone is missing.*2024-03-10T20:00:00Z', 'the error says the zone is missing and shows the format');
SELECT throws_ok($$SELECT * FROM meter.ingest('{"event_name":"t","customer_id":"c","timestamp":"yesterday"}')$$,
	'22023', 'event 0: "timestamp" is not a valid RFC 3339 timestamp', 'garbage');
SELECT throws_ok($$SELECT * FROM meter.ingest('{"event_name":"t","customer_id":"c","timestamp":"now"}')$$,
	'22023', 'event 0: "timestamp" is not a valid RFC 3339 timestamp', '"now" is not RFC 3339');
SELECT throws_ok($$SELECT * FROM meter.ingest('{"event_name":"t","customer_id":"c","timestamp":""}')$$,
	'22023', 'event 0: "timestamp" is not a valid RFC 3339 timestamp', 'an empty timestamp');
SELECT throws_ok($$SELECT * FROM meter.ingest('{"event_name":"t","customer_id":"c","timestamp":"2024-03-10"}')$$,
	'22023', 'event 0: "timestamp" is not a valid RFC 3339 timestamp', 'a date alone');
SELECT throws_ok($$SELECT * FROM meter.ingest('{"event_name":"t","customer_id":"c","timestamp":"2024-03-10T20:00Z"}')$$,
	'22023', 'event 0: "timestamp" is not a valid RFC 3339 timestamp', 'no seconds');
SELECT throws_ok($$SELECT * FROM meter.ingest('{"event_name":"t","customer_id":"c","timestamp":"2024-03-10T20:00:00+0530"}')$$,
	'22023', 'event 0: "timestamp" is not a valid RFC 3339 timestamp', 'an offset without a colon');
SELECT throws_ok($$SELECT * FROM meter.ingest('{"event_name":"t","customer_id":"c","timestamp":"2024-03-10T20:00:00. Z"}')$$,
	'22023', 'event 0: "timestamp" is not a valid RFC 3339 timestamp', 'a decimal point without digits');
SELECT throws_ok($$SELECT * FROM meter.ingest('{"event_name":"t","customer_id":"c","timestamp":"2024-13-01T00:00:00Z"}')$$,
	'22023', 'event 0: "timestamp" is not a valid RFC 3339 timestamp', 'month 13');
SELECT throws_ok($$SELECT * FROM meter.ingest('{"event_name":"t","customer_id":"c","timestamp":"2023-02-29T00:00:00Z"}')$$,
	'22023', 'event 0: "timestamp" is not a valid RFC 3339 timestamp', '29 February of a common year');
SELECT throws_ok($$SELECT * FROM meter.ingest('{"event_name":"t","customer_id":"c","timestamp":"2024-03-10T24:00:00Z"}')$$,
	'22023', 'event 0: "timestamp" is not a valid RFC 3339 timestamp', 'hour 24');
SELECT throws_ok($$SELECT * FROM meter.ingest('{"event_name":"t","customer_id":"c","timestamp":"2024-03-10T20:00:00Z junk"}')$$,
	'22023', 'event 0: "timestamp" is not a valid RFC 3339 timestamp', 'trailing text');
SELECT throws_ok($$SELECT * FROM meter.ingest('{"event_name":"t","customer_id":"c","timestamp":1710100800}')$$,
	'22023', 'event 0: "timestamp" must be an RFC 3339 string', 'a Unix time number');

-- ── properties, source ────────────────────────────────────────────────────────────
SELECT throws_ok($$SELECT * FROM meter.ingest('{"event_name":"p","customer_id":"c","properties":[1,2]}')$$,
	'22023', 'event 0: "properties" must be a JSON object', 'array properties');
SELECT throws_ok($$SELECT * FROM meter.ingest('{"event_name":"p","customer_id":"c","properties":"{}"}')$$,
	'22023', 'event 0: "properties" must be a JSON object', 'string properties');
SELECT lives_ok($$SELECT * FROM meter.ingest('[
	{"id":"p1","event_name":"p","customer_id":"c","properties":null},
	{"id":"p2","event_name":"p","customer_id":"c","properties":{"model":"gpt-4o","tokens":120,"deep":{"a":[1,{"b":null}]},"ü":"✓"}},
	{"id":"p3","event_name":"p","customer_id":"c","source":"api"},
	{"id":"p4","event_name":"p","customer_id":"c","source":""}]')$$, 'properties and sources');
SELECT results_eq($$SELECT id COLLATE "default", properties, source FROM meter.events WHERE tenant_id = 't30' AND event_name = 'p' ORDER BY id$$,
	$$VALUES ('p1'::text, '{}'::jsonb, NULL::text),
		('p2', '{"model":"gpt-4o","tokens":120,"deep":{"a":[1,{"b":null}]},"ü":"✓"}', NULL),
		('p3', '{}', 'api'), ('p4', '{}', NULL)$$,
	'properties stored as given (null → {}), source stored ("" → NULL)');
SELECT throws_ok($$SELECT * FROM meter.ingest('{"event_name":"p","customer_id":"c","source":1}')$$,
	'22023', 'event 0: "source" must be a string', 'a numeric source');

-- ── tenant_id, environment_id, other keys ─────────────────────────────────────────
SELECT lives_ok($$SELECT * FROM meter.ingest('{"id":"own","event_name":"s","customer_id":"c","tenant_id":"t30","environment_id":""}')$$,
	'tenant_id and environment_id naming the current scope');
SELECT lives_ok($$SELECT * FROM meter.ingest('{"id":"empty_tenant","event_name":"s","customer_id":"c","tenant_id":""}')$$,
	'an empty tenant_id (Go''s zero value) counts as absent');
SELECT throws_ok($$SELECT * FROM meter.ingest('{"event_name":"s","customer_id":"c","tenant_id":"someone_else"}')$$,
	'22023', 'event 0: "tenant_id" does not match the current tenant', 'another tenant is refused');
SELECT throws_ok($$SELECT * FROM meter.ingest('{"event_name":"s","customer_id":"c","environment_id":"prod"}')$$,
	'22023', 'event 0: "environment_id" does not match the current environment', 'another environment is refused');
SELECT throws_ok($$SELECT * FROM meter.ingest('{"event_name":"s","customer_id":"c","tenant_id":7}')$$,
	'22023', 'event 0: "tenant_id" must be a string', 'a numeric tenant_id');
SELECT throws_ok($$SELECT * FROM meter.ingest('{"event_name":"s","customer_id":"c","colour":"red"}')$$,
	'22023', 'event 0: unknown key "colour"', 'an unknown key is named');
SELECT matches(pg_temp.err($$SELECT * FROM meter.ingest('{"event_name":"s","customer_id":"c","tokens":5}')$$),
	'Put your own data under "properties"', 'the unknown-key hint points at properties');
SELECT lives_ok($$SELECT * FROM meter.ingest('{"id":"ing","event_name":"s","customer_id":"c","ingested_at":"1999-01-01T00:00:00Z"}')$$,
	'ingested_at is accepted (FlexPrice''s Event carries it)');
SELECT is((SELECT ingested_at FROM meter.events WHERE tenant_id = 't30' AND id = 'ing'), now(),
	'ingested_at from the client is ignored: the server sets it');
SELECT throws_ok($$SELECT * FROM meter.ingest('{"event_name":"s","customer_id":"c","ingested_at":5}')$$,
	'22023', 'event 0: "ingested_at" must be a string', 'a numeric ingested_at');

-- ── Atomicity ─────────────────────────────────────────────────────────────────────
CREATE TEMP TABLE t30_before AS SELECT pg_temp.n() AS n;
SELECT cmp_ok(pg_temp.n(), '>', 500::bigint, 'events stored so far');
SELECT throws_ok($$SELECT * FROM meter.ingest((SELECT jsonb_agg(jsonb_build_object('id', 'atom' || i, 'event_name', 'atom', 'customer_id', 'c')) || '[{"event_name":"atom"}]'
	FROM generate_series(1, 1000) i))$$,
	'22023', 'event 1000: "customer_id" or "external_customer_id" is required', 'a bad element at the end');
SELECT is(pg_temp.n(), (SELECT n FROM t30_before), 'nothing of the rejected call was stored');
SELECT throws_ok($$SELECT * FROM meter.ingest('[{"id":"d9","event_name":"dup","customer_id":"c"},{"id":"d1","event_name":"dup","customer_id":"c"},{"event_name":"dup","customer_id":"c","timestamp":"bad"}]')$$,
	'22023', 'event 2: "timestamp" is not a valid RFC 3339 timestamp', 'a bad element after new and duplicate ones');
SELECT is(pg_temp.n(), (SELECT n FROM t30_before), 'still nothing stored');
SELECT results_eq($$SELECT * FROM meter.ingest('[{"id":"after","event_name":"x","customer_id":"c"}]')$$,
	$$VALUES (1, 0)$$, 'the session works after the errors');

-- ── Environments and tenants are separate ─────────────────────────────────────────
SET LOCAL meter.environment_id = 'prod';
SELECT results_eq($$SELECT * FROM meter.ingest('[{"id":"d1","event_name":"dup","customer_id":"c","environment_id":"prod"}]')$$,
	$$VALUES (1, 0)$$, 'the same id in another environment is a new event');
SELECT is((SELECT environment_id FROM meter.events WHERE tenant_id = 't30' AND id = 'd1' AND environment_id <> ''), 'prod',
	'stored in the current environment');
SET LOCAL meter.environment_id = '';
SET LOCAL meter.tenant_id = 't30_other';
SELECT results_eq($$SELECT * FROM meter.ingest('[{"id":"d1","event_name":"dup","customer_id":"c"}]')$$,
	$$VALUES (1, 0)$$, 'the same id in another tenant is a new event');
SELECT is((SELECT count(*)::int FROM meter.events WHERE id = 'd1' AND tenant_id LIKE 't30%'), 3, 'three events with id d1 in three scopes');
SET LOCAL meter.tenant_id = 't30';

-- ── Size and odd input ────────────────────────────────────────────────────────────
SELECT results_eq($$SELECT * FROM meter.ingest((SELECT jsonb_agg(jsonb_build_object('id', 'bulk' || (i % 15000), 'event_name', 'bulk',
		'external_customer_id', 'cus_' || (i % 7), 'timestamp', '2024-03-10T20:00:00Z', 'properties', jsonb_build_object('n', i)))
	FROM generate_series(1, 20000) i))$$,
	$$VALUES (15000, 5000)$$, '20000 events, 5000 of them repeated ids, in one call');
SELECT is((SELECT sum((properties->>'n')::int)::bigint FROM meter.events WHERE tenant_id = 't30' AND event_name = 'bulk'),
	(SELECT sum(i)::bigint FROM generate_series(1, 15000) i),
	'the first occurrence of each id was stored');
SELECT results_eq($$SELECT * FROM meter.ingest(jsonb_build_object('id', 'big', 'event_name', 'big', 'customer_id', 'c',
		'properties', jsonb_build_object('blob', repeat('x', 1000000))))$$,
	$$VALUES (1, 0)$$, '1 MB of properties');
SELECT is((SELECT length(properties->>'blob') FROM meter.events WHERE tenant_id = 't30' AND id = 'big'), 1000000,
	'1 MB property stored intact');
SELECT throws_ok(format($$SELECT * FROM meter.ingest('{"event_name":"x","customer_id":"%s"}')$$, repeat('c', 1000000)),
	'22023', 'event 0: "customer_id" is too long', '1 MB customer id');
SELECT throws_ok(format($$SELECT * FROM meter.ingest('{"event_name":"x","customer_id":"c","%s":1}')$$, repeat('k', 1000000)),
	'22023', format('event 0: unknown key "%s..."', repeat('k', 64)), 'a 1 MB unknown key is clipped in the message');
SELECT lives_ok($$SELECT * FROM meter.ingest(jsonb_build_object('id', 'deep', 'event_name', 'x', 'customer_id', 'c',
		'properties', jsonb_build_object('d', (SELECT repeat('[', 5000) || repeat(']', 5000))::jsonb)))$$,
	'deeply nested properties');
SELECT lives_ok($$SELECT * FROM meter.ingest('{"id":"événement-1","event_name":"appel_api","customer_id":"client-ü","source":"日本"}')$$,
	'non-ASCII ids and names');
SELECT results_eq($$SELECT event_name COLLATE "default", customer_id COLLATE "default", source FROM meter.events WHERE tenant_id = 't30' AND id = 'événement-1'$$,
	$$VALUES ('appel_api'::text, 'client-ü'::text, '日本'::text)$$, 'non-ASCII stored intact');

-- ── Feeding the tracking trigger ──────────────────────────────────────────────────
CREATE TEMP TABLE t30_meters AS
	SELECT 'count' AS kind, id FROM meter.create_meter(event_name => 'tracked', name => 'tracked calls')
	UNION ALL
	SELECT 'sum', id FROM meter.create_meter(event_name => 'tracked', name => 'tracked tokens',
		aggregation => '{"type":"SUM","field":"tokens"}');
SELECT results_eq($$SELECT * FROM meter.ingest('[
	{"id":"tr1","event_name":"tracked","customer_id":"c1","timestamp":"2024-03-10T20:01:00Z","properties":{"tokens":10}},
	{"id":"tr2","event_name":"tracked","customer_id":"c1","timestamp":"2024-03-10T20:20:00Z","properties":{"tokens":"2.5"}},
	{"id":"tr1","event_name":"tracked","customer_id":"c1","timestamp":"2024-03-10T20:01:00Z","properties":{"tokens":1000}},
	{"id":"tr3","event_name":"tracked","external_customer_id":"x1","timestamp":"2024-03-10T20:02:00Z","properties":{"tokens":"many"}},
	{"id":"tr4","event_name":"tracked","customer_id":"c1","timestamp":"2024-03-10T20:03:00Z"}]')$$,
	$$VALUES (4, 1)$$, 'events for two meters');
-- What the trigger stored (meter.stored_slots: compacted and pending partial states).
SELECT is((SELECT sum(s.events)::int FROM t30_meters m, meter.stored_slots(m.id) s WHERE m.kind = 'count'), 4,
	'the COUNT meter counted the 4 stored events (not the duplicate)');
SELECT is((SELECT sum(s.sum) FROM t30_meters m, meter.stored_slots(m.id) s WHERE m.kind = 'sum'), 12.5,
	'the SUM meter summed the first copy of tr1 and the numeric string');
SELECT results_eq($$SELECT * FROM meter.ingest('[{"id":"tr2","event_name":"tracked","customer_id":"c1","properties":{"tokens":99}}]')$$,
	$$VALUES (0, 1)$$, 're-sent event');
SELECT is((SELECT sum(s.sum) FROM t30_meters m, meter.stored_slots(m.id) s WHERE m.kind = 'sum'), 12.5,
	'a re-sent event changes no stored usage');
SELECT is_empty($$SELECT * FROM meter.verify()$$, 'meter.verify() is empty after ingesting');

-- ── Roles and search_path ─────────────────────────────────────────────────────────
CREATE ROLE meter_test30_client;
GRANT USAGE ON SCHEMA meter TO meter_test30_client;
GRANT SELECT, INSERT ON meter.events TO meter_test30_client;
SET LOCAL ROLE meter_test30_client;
SELECT results_eq($$SELECT * FROM meter.ingest('[{"id":"role1","event_name":"x","customer_id":"c"},{"id":"one","event_name":"x","customer_id":"c"}]')$$,
	$$VALUES (1, 1)$$, 'a plain role ingests under row-level security, dedup included');
RESET ROLE;
CREATE SCHEMA t30_evil;
CREATE FUNCTION t30_evil.unnest(anyarray) RETURNS SETOF anyelement LANGUAGE sql AS 'SELECT NULL WHERE false';
SET LOCAL search_path = t30_evil, pg_catalog, public;
SELECT results_eq($$SELECT * FROM meter.ingest('{"id":"evil","event_name":"x","customer_id":"c"}')$$,
	$$VALUES (1, 0)$$, 'a hostile search_path changes nothing');
RESET search_path;

SELECT * FROM finish();
ROLLBACK;
