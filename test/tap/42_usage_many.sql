-- Usage for many at once (SPEC §8): meter.usage_by_customer, meter.usage_by_group,
-- meter.usage_by_filter_groups and their _from_events twins. Hand-checked values on a
-- small fixture (meters of several aggregation types), every validation error, windows,
-- zones and anchors equal to meter.usage per customer and per group (an equivalent meter
-- filtered to the group's value), pending = compacted = the twins, tenants and roles,
-- and a hostile search_path.
BEGIN;
SET client_min_messages = warning;
SELECT plan(262);
SET LOCAL timezone = 'UTC';
SET LOCAL meter.tenant_id = 'tap_many';
SET LOCAL meter.environment_id = '';

-- 'ok', or 'SQLSTATE: message' with ' | DETAIL' and ' | HINT: …' when there are.
CREATE FUNCTION pg_temp.err(statement text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE st text; msg text; det text; hint text;
BEGIN
	EXECUTE statement;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL,
		hint = PG_EXCEPTION_HINT;
	RETURN st || ': ' || msg || COALESCE(' | DETAIL: ' || NULLIF(det, ''), '')
		|| COALESCE(' | HINT: ' || NULLIF(hint, ''), '');
END $$;
-- Only SQLSTATE and message.
CREATE FUNCTION pg_temp.err1(statement text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE st text; msg text;
BEGIN
	EXECUTE statement;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
	RETURN st || ': ' || msg;
END $$;

-- ── Signatures ──────────────────────────────────────────────────────────────────────
SELECT has_function('meter', f, a, f || '(…)') FROM (VALUES
	('usage_by_customer', ARRAY['text', 'timestamp with time zone', 'timestamp with time zone', 'meter.window_size',
		'text', 'timestamp with time zone']),
	('usage_by_customer_from_events', ARRAY['text', 'timestamp with time zone', 'timestamp with time zone',
		'meter.window_size', 'text', 'timestamp with time zone', 'regclass']),
	('usage_by_group', ARRAY['text', 'text[]', 'timestamp with time zone', 'timestamp with time zone', 'text', 'text',
		'meter.window_size', 'text', 'timestamp with time zone']),
	('usage_by_group_from_events', ARRAY['text', 'text[]', 'timestamp with time zone', 'timestamp with time zone',
		'text', 'text', 'meter.window_size', 'text', 'timestamp with time zone', 'regclass']),
	('usage_by_filter_groups', ARRAY['text', 'jsonb', 'timestamp with time zone', 'timestamp with time zone', 'text',
		'text', 'meter.window_size', 'text', 'timestamp with time zone']),
	('usage_by_filter_groups_from_events', ARRAY['text', 'jsonb', 'timestamp with time zone',
		'timestamp with time zone', 'text', 'text', 'meter.window_size', 'text', 'timestamp with time zone',
		'regclass'])) v(f, a);
SELECT is((SELECT count(*) FROM pg_proc p WHERE p.pronamespace = 'meter'::regnamespace
	AND p.proname ~ '^usage_by_(customer|group|filter_groups)(_from_events)?$'
	AND p.provolatile = 's' AND NOT p.prosecdef AND NOT p.proisstrict
	AND p.proconfig = '{"search_path=pg_catalog, pg_temp"}' AND obj_description(p.oid, 'pg_proc') IS NOT NULL),
	6::bigint, 'all six: STABLE, SECURITY INVOKER, not STRICT, fixed search_path, commented');
SELECT is((SELECT string_agg(pg_get_function_result(p.oid), ' / ' ORDER BY p.proname) FROM pg_proc p
	WHERE p.pronamespace = 'meter'::regnamespace AND p.proname IN ('usage_by_customer', 'usage_by_group', 'usage_by_filter_groups')),
	'TABLE(customer_id text, external_customer_id text, window_start timestamp with time zone, window_end timestamp with time zone, value numeric) / '
	'TABLE(group_id text, window_start timestamp with time zone, window_end timestamp with time zone, value numeric) / '
	'TABLE(group_values jsonb, window_start timestamp with time zone, window_end timestamp with time zone, value numeric)',
	'result columns');

-- ── Fixture ─────────────────────────────────────────────────────────────────────────
-- Meters of several types on one event name, with the same two filter keys; for every
-- value of "model" an equivalent meter filtered to it (the oracle of usage_by_group).
CREATE TEMP TABLE kinds (kind text PRIMARY KEY, agg text, reset text);
INSERT INTO kinds VALUES
	('count', '{"type":"COUNT"}', 'BILLING_PERIOD'),
	('sum', '{"type":"SUM","field":"tokens"}', 'BILLING_PERIOD'),
	('uniq', '{"type":"COUNT_UNIQUE","field":"user"}', 'BILLING_PERIOD'),
	('maxb', '{"type":"MAX","field":"gb","bucket_size":"HOUR","group_by":"volume"}', 'BILLING_PERIOD'),
	('latest', '{"type":"LATEST","field":"v"}', 'BILLING_PERIOD'),
	('avg', '{"type":"AVG","field":"v"}', 'BILLING_PERIOD'),
	('expr', '{"type":"SUM","expression":"input + output * 4"}', 'BILLING_PERIOD'),
	('never', '{"type":"SUM","field":"tokens"}', 'NEVER'),
	('nevermax', '{"type":"MAX","field":"v"}', 'NEVER');
CREATE TEMP TABLE models (model text PRIMARY KEY);
INSERT INTO models VALUES ('gpt-4o'), ('o1'), ('1'), ('true');
SELECT count(*) FROM (
	SELECT meter.create_meter('llm', 'many ' || kind, agg::meter.aggregation,
		'[{"key":"model","values":["gpt-4o","o1","1","true"]},{"key":"region","values":["eu","us"]}]',
		reset::meter.reset_usage, id => 'mc_' || kind)
	FROM kinds
	UNION ALL
	SELECT meter.create_meter('llm', 'many ' || kind || ' ' || model, agg::meter.aggregation,
		format('[{"key":"model","values":["%s"]},{"key":"region","values":["eu","us"]}]', model)::meter.filters,
		reset::meter.reset_usage, id => 'mc_' || kind || '__' || model)
	FROM kinds, models) s;
SELECT count(*) FROM (SELECT meter.create_meter('llm', 'many archived', '{"type":"COUNT"}',
	'[{"key":"model","values":["gpt-4o","o1","1","true"]}]', id => 'mc_arch')
	UNION ALL SELECT meter.create_meter('llm', 'many unfiltered', id => 'mc_nof')) s;

-- January 2024: hand-checked.
INSERT INTO meter.events (id, event_name, customer_id, external_customer_id, "timestamp", properties) VALUES
	('e1', 'llm', 'c1', NULL, '2024-01-02 10:00Z',
		'{"model":"gpt-4o","region":"eu","tokens":100,"user":"u1","gb":5,"volume":"vA","v":10,"input":1,"output":2}'),
	('e2', 'llm', 'c1', NULL, '2024-01-02 10:20Z',
		'{"model":"gpt-4o","region":"us","tokens":50,"user":"u2","gb":7,"volume":"vB","v":20,"input":3,"output":0}'),
	('e3', 'llm', 'c1', NULL, '2024-01-03 12:00Z',
		'{"model":"o1","region":"eu","tokens":30,"user":"u1","gb":4,"volume":"vA","v":5,"input":0,"output":1}'),
	('e4', 'llm', 'c2', 'x2', '2024-01-02 10:30Z', '{"model":1,"region":"eu","tokens":7,"user":2,"gb":3,"volume":"vA","v":1}'),
	('e5', 'llm', 'c2', 'x2', '2024-01-10 00:00Z', '{"model":"1","region":"eu","tokens":3,"user":2.0,"gb":9,"v":8}'),
	('e6', 'llm', NULL, 'x3', '2024-01-15 23:30Z', '{"model":1.0,"region":"us","tokens":11,"user":"u3","v":"abc"}'),
	('e7', 'llm', 'c4', NULL, '2023-12-20 00:00Z', '{"model":"gpt-4o","region":"eu","tokens":1000,"v":100}'),
	('e8', 'llm', 'c5', NULL, '2024-02-05 00:00Z', '{"model":"o1","region":"eu","tokens":500,"v":50}'),
	('e9', 'llm', 'c6', NULL, '2024-01-05 00:00Z', '{"model":"claude","region":"eu","tokens":9,"v":9}'),
	('e10', 'llm', 'c8', NULL, '2024-01-20 00:00Z',
		'{"model":true,"region":"us","tokens":2,"user":"u9","gb":1,"volume":"vC","v":3,"input":2,"output":1}');
SELECT status FROM meter.disable_meter('mc_arch');
-- Not counted by the archived meter (frozen), counted by the others.
INSERT INTO meter.events (id, event_name, customer_id, "timestamp", properties) VALUES
	('e11', 'llm', 'c1', '2024-01-25 00:00Z', '{"model":"o1","region":"us","tokens":1,"v":1,"user":"u1"}');

-- The rows of a call as text, in the order the function returns them: one entry per
-- customer or group, 'key=value' (one window) or 'key=[v1,v2,…]' (several).
CREATE FUNCTION pg_temp.show(keys text[], vals numeric[]) RETURNS text LANGUAGE sql AS $$
	SELECT string_agg(k || '=' || v, ', ' ORDER BY o) FROM (
		SELECT k, min(o) AS o, CASE WHEN count(*) = 1 THEN coalesce(min(v::text), 'NULL')
			ELSE '[' || string_agg(coalesce(v::text, 'NULL'), ',' ORDER BY o) || ']' END AS v
		FROM unnest(keys, vals) WITH ORDINALITY x(k, v, o) GROUP BY k) g
$$;
CREATE FUNCTION pg_temp.bc(mid text, s timestamptz, e timestamptz, ws meter.window_size DEFAULT NULL,
	tz text DEFAULT 'UTC', anchor timestamptz DEFAULT NULL) RETURNS text LANGUAGE sql AS $$
	SELECT pg_temp.show(array_agg(u.customer_id || '/' || u.external_customer_id ORDER BY o), array_agg(u.value ORDER BY o))
	FROM meter.usage_by_customer(mid, s, e, ws, tz, anchor) WITH ORDINALITY u(customer_id, external_customer_id, ws, we, value, o)
$$;
CREATE FUNCTION pg_temp.bg(mid text, keys text[], s timestamptz, e timestamptz, c text DEFAULT NULL, x text DEFAULT NULL,
	ws meter.window_size DEFAULT NULL) RETURNS text LANGUAGE sql AS $$
	SELECT pg_temp.show(array_agg(u.g::text ORDER BY o), array_agg(u.value ORDER BY o))
	FROM meter.usage_by_group(mid, keys, s, e, c, x, ws) WITH ORDINALITY u(g, ws, we, value, o)
$$;
CREATE FUNCTION pg_temp.bf(mid text, groups jsonb, s timestamptz, e timestamptz, c text DEFAULT NULL, x text DEFAULT NULL,
	ws meter.window_size DEFAULT NULL) RETURNS text LANGUAGE sql AS $$
	SELECT pg_temp.show(array_agg(u.g ORDER BY o), array_agg(u.value ORDER BY o))
	FROM meter.usage_by_filter_groups(mid, groups, s, e, c, x, ws) WITH ORDINALITY u(g, ws, we, value, o)
$$;


-- Another tenant with a meter of the same event name and filters, customers of the same
-- ids: never seen from tenant tap_many.
SET LOCAL meter.tenant_id = 'tap_many_b';
SELECT id FROM meter.create_meter('llm', 'B calls', '{"type":"COUNT"}',
	'[{"key":"model","values":["gpt-4o","o1","1","true"]},{"key":"region","values":["eu","us"]}]', id => 'mb_count');
INSERT INTO meter.events (id, event_name, customer_id, "timestamp", properties) VALUES
	('e1', 'llm', 'c1', '2024-01-02 10:00Z', '{"model":"gpt-4o","region":"eu"}'),
	('b2', 'llm', 'c1', '2024-01-07 10:00Z', '{"model":"o1","region":"eu"}'),
	('b3', 'llm', 'cb', '2023-12-07 10:00Z', '{"model":"o1","region":"us"}'),
	('b4', 'llm', 'c9', '2024-01-08 10:00Z', '{"model":"gpt-4o","region":"eu"}');
SET LOCAL meter.tenant_id = 'tap_many';

-- ── Hand-checked (everything pending: nothing compacted yet) ────────────────────────
SELECT is((SELECT count(*) FROM meter.pending WHERE tenant_id = 'tap_many') > 0
	AND (SELECT count(*) FROM meter.rollups WHERE tenant_id = 'tap_many') = 0, true, 'the fixture is pending, not compacted');
-- January: c1 e1 e2 e3 e11; c2/x2 e4 e5; /x3 e6; c4 only before (e7); c5 only after (e8);
-- c6 only an event no filter matches (e9); c8 e10 (model true).
SELECT is(pg_temp.bc('mc_' || k, '2024-01-01', '2024-02-01'), v, 'usage_by_customer, ' || k || ': ' || v)
FROM (VALUES
	('count', '/x3=1, c1/=4, c2/x2=2, c4/=0, c8/=1'),
	('sum', '/x3=11, c1/=181, c2/x2=10, c4/=0, c8/=2'),
	('uniq', '/x3=1, c1/=2, c2/x2=1, c4/=0, c8/=1'),
	('maxb', '/x3=NULL, c1/=16, c2/x2=12, c4/=NULL, c8/=1'),
	('latest', '/x3=NULL, c1/=1, c2/x2=8, c4/=NULL, c8/=3'),
	('avg', '/x3=NULL, c1/=9.0000000000000000, c2/x2=4.5000000000000000, c4/=NULL, c8/=3.0000000000000000'),
	('expr', '/x3=0, c1/=16, c2/x2=0, c4/=0, c8/=6'),
	('never', '/x3=11, c1/=181, c2/x2=10, c4/=1000, c8/=2'),
	('nevermax', '/x3=NULL, c1/=20, c2/x2=8, c4/=100, c8/=3')) t(k, v);
SELECT is(pg_temp.bc('mc_' || k, '2024-01-01', '2024-01-04', 'DAY'), v, 'usage_by_customer per DAY, ' || k || ': ' || v)
FROM (VALUES
	('count', 'c1/=[0,2,1], c2/x2=[0,1,0], c4/=[0,0,0]'),
	('sum', 'c1/=[0,150,30], c2/x2=[0,7,0], c4/=[0,0,0]'),
	('uniq', 'c1/=[0,2,1], c2/x2=[0,1,0], c4/=[0,0,0]'),
	('maxb', 'c1/=[NULL,12,4], c2/x2=[NULL,3,NULL], c4/=[NULL,NULL,NULL]'),
	('latest', 'c1/=[NULL,20,5], c2/x2=[NULL,1,NULL], c4/=[NULL,NULL,NULL]'),
	('avg', 'c1/=[NULL,15.0000000000000000,5.0000000000000000], c2/x2=[NULL,1.00000000000000000000,NULL], c4/=[NULL,NULL,NULL]'),
	('expr', 'c1/=[0,12,4], c2/x2=[0,0,0], c4/=[0,0,0]'),
	('never', 'c1/=[0,150,180], c2/x2=[0,7,7], c4/=[1000,1000,1000]'),
	('nevermax', 'c1/=[NULL,20,20], c2/x2=[NULL,1,1], c4/=[100,100,100]')) t(k, v);
SELECT is(pg_temp.bc('mc_arch', '2024-01-01', '2024-02-01'), '/x3=1, c1/=3, c2/x2=2, c4/=0, c8/=1',
	'an archived meter: its frozen usage (e11 came after it was archived)');
SELECT is(pg_temp.bc('mc_nof', '2024-01-01', '2024-02-01'), '/x3=1, c1/=4, c2/x2=2, c4/=0, c6/=1, c8/=1',
	'a meter without filters counts c6 too');
SELECT is(pg_temp.bc('mc_count', '2024-01-02 10:31Z', '2024-01-02 10:40Z'), 'c1/=0, c2/x2=0, c4/=0',
	'a start inside a 15-minute slot: c2''s only earlier event is in that slot, before the start');
SELECT is(pg_temp.bc('mc_count', '2024-01-02 10:20Z', '2024-01-02 10:30Z'), 'c1/=1, c4/=0',
	'an end inside nothing: c2''s event at the end does not count, and c2 is left out');
SELECT is(pg_temp.bc('mc_count', '2023-12-01', '2023-12-31'), 'c4/=1', 'December: c4 only');
SELECT is(pg_temp.bc('mc_count', '2023-01-01', '2023-02-01'), NULL, 'no customer before the end: no rows');
SELECT is((SELECT string_agg(customer_id || '/' || external_customer_id, ',' ORDER BY o)
	FROM meter.usage_by_customer('mc_count', '2024-01-01', '2024-01-03', 'DAY') WITH ORDINALITY u(customer_id, external_customer_id, ws, we, v, o)),
	'c1/,c1/,c2/x2,c2/x2,c4/,c4/', 'ordered by customer, then window');
SELECT is((SELECT string_agg(ws::text, ',' ORDER BY o)
	FROM meter.usage_by_customer('mc_count', '2024-01-01', '2024-01-03', 'DAY') WITH ORDINALITY u(customer_id, external_customer_id, ws, we, v, o)),
	'2024-01-01 00:00:00+00,2024-01-02 00:00:00+00,2024-01-01 00:00:00+00,2024-01-02 00:00:00+00,2024-01-01 00:00:00+00,2024-01-02 00:00:00+00',
	'… every window of every customer');

SELECT is(pg_temp.bg('mc_' || k, '{model}', '2024-01-01', '2024-02-01'), v, 'usage_by_group by model, ' || k || ': ' || v)
FROM (VALUES
	('count', '{"model": "1"}=3, {"model": "gpt-4o"}=2, {"model": "o1"}=2, {"model": "true"}=1'),
	('sum', '{"model": "1"}=21, {"model": "gpt-4o"}=150, {"model": "o1"}=31, {"model": "true"}=2'),
	('uniq', '{"model": "1"}=2, {"model": "gpt-4o"}=2, {"model": "o1"}=1, {"model": "true"}=1'),
	('maxb', '{"model": "1"}=12, {"model": "gpt-4o"}=12, {"model": "o1"}=4, {"model": "true"}=1'),
	('latest', '{"model": "1"}=8, {"model": "gpt-4o"}=20, {"model": "o1"}=1, {"model": "true"}=3'),
	('avg', '{"model": "1"}=4.5000000000000000, {"model": "gpt-4o"}=15.0000000000000000, {"model": "o1"}=3.0000000000000000, {"model": "true"}=3.0000000000000000'),
	('expr', '{"model": "1"}=0, {"model": "gpt-4o"}=12, {"model": "o1"}=4, {"model": "true"}=6'),
	('never', '{"model": "1"}=21, {"model": "gpt-4o"}=1150, {"model": "o1"}=31, {"model": "true"}=2'),
	('nevermax', '{"model": "1"}=8, {"model": "gpt-4o"}=100, {"model": "o1"}=5, {"model": "true"}=3')) t(k, v);
SELECT is(pg_temp.bg('mc_count', '{region,model}', '2024-01-01', '2024-02-01'),
	'{"model": "1", "region": "eu"}=2, {"model": "gpt-4o", "region": "eu"}=1, {"model": "o1", "region": "eu"}=1, '
	'{"model": "1", "region": "us"}=1, {"model": "gpt-4o", "region": "us"}=1, {"model": "o1", "region": "us"}=1, '
	'{"model": "true", "region": "us"}=1', 'two keys: every combination that occurs, ordered by the keys as given');
SELECT is((SELECT array_agg(DISTINCT jsonb_typeof(g -> 'model')) FROM meter.usage_by_group('mc_count', '{model}', '2024-01-01', '2024-02-01') u(g)),
	ARRAY['string'], 'values as text: the number 1, 1.0, the string "1" are one group "1"; true is "true"');
SELECT is(pg_temp.bg('mc_sum', '{model}', '2024-01-01', '2024-02-01', 'c2'), '{"model": "1"}=10', 'customer_id');
SELECT is(pg_temp.bg('mc_sum', '{model}', '2024-01-01', '2024-02-01', NULL, 'x3'), '{"model": "1"}=11', 'external_customer_id');
SELECT is(pg_temp.bg('mc_sum', '{model}', '2024-01-01', '2024-02-01', '', 'x3'), '{"model": "1"}=11', 'customer_id '''' is an absent id');
SELECT is(pg_temp.bg('mc_sum', '{model}', '2024-01-01', '2024-02-01', 'c1', 'x2'), NULL, 'both ids must match: no group');
SELECT is(pg_temp.bg('mc_sum', '{}', '2024-01-01', '2024-02-01'), '{}=204', 'no keys: one group, the usage');
SELECT is(pg_temp.bg('mc_sum', NULL, '2024-01-01', '2024-02-01'), '{}=204', 'group_by NULL: the same');
SELECT is(pg_temp.bg('mc_count', '{model}', '2024-01-01', '2024-01-04', ws => 'DAY'),
	'{"model": "1"}=[0,1,0], {"model": "gpt-4o"}=[0,2,0], {"model": "o1"}=[0,0,1]',
	'per DAY: the groups that occur in the range, every window');
SELECT is(pg_temp.bg('mc_never', '{model}', '2024-01-01', '2024-01-04', ws => 'DAY'),
	'{"model": "1"}=[0,7,7], {"model": "gpt-4o"}=[1000,1150,1150], {"model": "o1"}=[0,0,30]',
	'reset NEVER: groups with events before the end, running totals');
SELECT is(pg_temp.bg('mc_count', '{model}', '2023-12-01', '2023-12-02'), NULL, 'no events in the range: no groups');
-- (A missing key cannot occur: group_by keys are filter keys, which every matched event has.)

CREATE TEMP TABLE fg (name text PRIMARY KEY, groups jsonb);
INSERT INTO fg VALUES
	('overlap', '[{"id":"gpt","filters":{"model":["gpt-4o"]}},{"id":"eu","filters":{"region":["eu"]}},
		{"id":"num","filters":{"model":["1"],"region":["us"]}},{"id":"rest"},{"id":"never","filters":{"model":["o1"]}}]'),
	('models', '[{"id":"gpt-4o","filters":{"model":["gpt-4o"]}},{"id":"o1","filters":{"model":["o1"]}},
		{"id":"1","filters":{"model":["1"]}},{"id":"true","filters":{"model":["true"]}},
		{"id":"none","filters":{"model":["gpt-4o"],"region":["eu"]}}]'),
	('partial', '[{"id":"o1","filters":{"model":["o1"]}},{"id":"gpt-us","filters":{"region":["us"],"model":["gpt-4o","x"]}}]');
SELECT is(pg_temp.bf('mc_' || k, (SELECT groups FROM fg WHERE name = 'overlap'), '2024-01-01', '2024-02-01'), v,
	'usage_by_filter_groups, ' || k || ': ' || v)
FROM (VALUES
	('count', 'gpt=2, eu=3, num=1, rest=2, never=0'),
	('sum', 'gpt=150, eu=40, num=11, rest=3, never=0'),
	('uniq', 'gpt=2, eu=2, num=1, rest=2, never=0'),
	('maxb', 'gpt=12, eu=16, num=NULL, rest=1, never=NULL'),
	('latest', 'gpt=20, eu=8, num=NULL, rest=1, never=NULL'),
	('avg', 'gpt=15.0000000000000000, eu=4.6666666666666667, num=NULL, rest=2.0000000000000000, never=NULL'),
	('expr', 'gpt=12, eu=4, num=0, rest=6, never=0'),
	('never', 'gpt=1150, eu=40, num=11, rest=3, never=0'),
	('nevermax', 'gpt=100, eu=8, num=NULL, rest=3, never=NULL')) t(k, v);
SELECT is(pg_temp.bf('mc_count', (SELECT groups FROM fg WHERE name = 'partial'), '2024-01-01', '2024-02-01'),
	'o1=2, gpt-us=1', 'events matching no group count nowhere');
SELECT is(pg_temp.bf('mc_count', '[{"id":"eu","filters":{"region":["eu"]}},{"id":"gpt","filters":{"model":["gpt-4o"]}}]',
	'2024-01-01', '2024-02-01'), 'eu=4, gpt=1', 'the first matching group wins: e1 (gpt-4o, eu) counts in eu only');
SELECT is(pg_temp.bf('mc_count', '[{"id":"gpt","filters":{"model":["gpt-4o"]}},{"id":"eu","filters":{"region":["eu"]}}]',
	'2024-01-01', '2024-02-01'), 'gpt=2, eu=3', '… and in gpt only when gpt comes first');
SELECT is(pg_temp.bf('mc_count', '[{"id":"one","filters":{"model":["1"]}}]', '2024-01-01', '2024-02-01'), 'one=3',
	'a group value "1" matches 1, 1.0 and "1"');
SELECT is(pg_temp.bf('mc_count', '[{"id":"t","filters":{"model":["true"]}},{"id":"all","filters":{}}]', '2024-01-01', '2024-02-01'),
	't=1, all=7', 'a group value "true" matches true; empty filters match everything');
SELECT is(pg_temp.bf('mc_' || k, (SELECT groups FROM fg WHERE name = 'overlap'), '2024-01-01', '2024-02-01', 'c2'), v,
	'customer c2, ' || k || ': ' || v)
FROM (VALUES ('count', 'gpt=0, eu=2, num=0, rest=0, never=0'), ('latest', 'gpt=NULL, eu=8, num=NULL, rest=NULL, never=NULL')) t(k, v);
SELECT is(pg_temp.bf('mc_count', (SELECT groups FROM fg WHERE name = 'overlap'), '2024-01-01', '2024-01-04', ws => 'DAY'),
	'gpt=[0,2,0], eu=[0,1,1], num=[0,0,0], rest=[0,0,0], never=[0,0,0]', 'per DAY: every group, every window');
SELECT is(pg_temp.bf('mc_latest', (SELECT groups FROM fg WHERE name = 'overlap'), '2030-01-01', '2030-01-02'),
	'gpt=NULL, eu=NULL, num=NULL, rest=NULL, never=NULL', 'no events: every group, with the empty value (LATEST: NULL)');
SELECT is(pg_temp.bf('mc_count', (SELECT groups FROM fg WHERE name = 'overlap'), '2030-01-01', '2030-01-02'),
	'gpt=0, eu=0, num=0, rest=0, never=0', 'no events: every group, with the empty value (COUNT: 0)');
SELECT is(pg_temp.bf('mc_count', '[]', '2024-01-01', '2024-02-01'), NULL, 'no groups: no rows');

-- ── Errors, for each of the six functions ───────────────────────────────────────────
-- A call of function f (a base name and '' or '_from_events') with named arguments.
CREATE TEMP TABLE fns (base text, extra text);
INSERT INTO fns VALUES ('usage_by_customer', ''), ('usage_by_group', ', group_by => ''{model}'''),
	('usage_by_filter_groups', ', groups => ''[{"id":"a"}]''');
CREATE FUNCTION pg_temp.call(base text, twin text, extra text, args text) RETURNS text LANGUAGE sql AS $$
	SELECT format('SELECT count(*) FROM meter.%s%s(%s%s)', base, twin, args, extra)
$$;
CREATE TEMP VIEW six AS SELECT base, twin, extra, base || twin AS f FROM fns, unnest(ARRAY['', '_from_events']) twin;
SELECT is(pg_temp.err(pg_temp.call(base, twin, extra, $$meter_id => 'nope', start_time => '2024-01-01', end_time => '2024-02-01'$$)),
	'P0002: meter "nope" not found | DETAIL: No meter with this id exists in tenant "tap_many", environment "" (deleted meters count as not found).'
	' | HINT: Check the id and the settings meter.tenant_id and meter.environment_id; meter.list_meters() shows the meters of the current scope.',
	f || ': unknown meter') FROM six;
SELECT is(pg_temp.err1(pg_temp.call(base, twin, extra, $$meter_id => 'mb_count', start_time => '2024-01-01', end_time => '2024-02-01'$$)),
	'P0002: meter "mb_count" not found', f || ': another tenant''s meter is not found') FROM six WHERE twin = '';
SELECT is(pg_temp.err1(pg_temp.call(base, twin, extra, $$meter_id => NULL, start_time => '2024-01-01', end_time => '2024-02-01'$$)),
	'22023: id is required', f || ': NULL meter id') FROM six WHERE twin = '';
SELECT is(pg_temp.err(format($$SELECT set_config('meter.tenant_id', '', true); %s$$,
		pg_temp.call(base, twin, extra, $$meter_id => 'mc_count', start_time => '2024-01-01', end_time => '2024-02-01'$$))),
	'55000: no tenant is set | DETAIL: Every meter function acts inside one tenant, taken from the setting meter.tenant_id.'
	' | HINT: Run SET meter.tenant_id = ''<your tenant id>'' (or set_config(''meter.tenant_id'', …, true) for one transaction).',
	f || ': no tenant') FROM six;
SELECT is(current_setting('meter.tenant_id'), 'tap_many', '(the failed calls left the tenant as it was)');
SELECT is(pg_temp.err(pg_temp.call(base, twin, extra, $$meter_id => 'mc_count', start_time => '2024-02-01', end_time => '2024-01-01'$$)),
	'22023: end_time must be after start_time | DETAIL: The range [start_time, end_time) is empty. | HINT: Swap the arguments, or widen the range.',
	f || ': end before start') FROM six;
SELECT is(pg_temp.err1(pg_temp.call(base, twin, extra, $$meter_id => 'mc_count', start_time => '2024-02-01', end_time => '2024-02-01'$$)),
	'22023: end_time must be after start_time', f || ': empty range') FROM six WHERE twin = '';
SELECT is(pg_temp.err(pg_temp.call(base, twin, extra, $$meter_id => 'mc_count', start_time => '2024-01-01', end_time => '2024-02-01',
		window_size => 'DAY', timezone => 'Mars/Olympus'$$)),
	'22023: time zone "Mars/Olympus" not recognized | DETAIL: Windows are aligned to the wall clock of an IANA time zone.'
	' | HINT: Use an IANA time zone name such as ''UTC'', ''Europe/Berlin'' or ''America/New_York''.',
	f || ': unknown time zone') FROM six;
SELECT is(pg_temp.err1(pg_temp.call(base, twin, extra, $$meter_id => 'mc_count', start_time => '-infinity', end_time => '2024-02-01'$$)),
	'22023: start_time and end_time must be finite', f || ': infinite start') FROM six WHERE twin = '';
SELECT is(pg_temp.err1(pg_temp.call(base, twin, extra, $$meter_id => 'mc_count', start_time => NULL, end_time => '2024-02-01'$$)),
	'22004: start_time and end_time must not be null', f || ': NULL start') FROM six WHERE twin = '';
SELECT is(pg_temp.err1(pg_temp.call(base, twin, extra, $$meter_id => 'mc_count', start_time => '2024-01-01', end_time => '2024-02-01',
		window_size => 'MONTH', billing_anchor => 'infinity'$$)),
	'22023: billing_anchor must be finite', f || ': infinite billing anchor') FROM six WHERE twin = '';
SELECT is(pg_temp.err1(pg_temp.call(base, twin, extra, $$meter_id => 'mc_count', start_time => '2020-01-01', end_time => '2024-02-01',
		window_size => 'MINUTE'$$)),
	'54000: too many windows', f || ': too many windows') FROM six;
SELECT is(pg_temp.err(pg_temp.call(base, '_from_events', extra, $$meter_id => 'mc_count', start_time => '2024-01-01',
		end_time => '2024-02-01', source => 'pg_class'$$)),
	'22023: source table pg_class lacks event columns | DETAIL: table "pg_class" has no column "tenant_id". | HINT: An event table has the columns of meter.events: tenant_id, environment_id, event_name, customer_id, external_customer_id, "timestamp" timestamptz, properties jsonb.',
	base || '_from_events: a source without event columns') FROM fns;

-- group_by keys.
SELECT is(pg_temp.err($$SELECT * FROM meter.usage_by_group('mc_sum', '{model,tokens}', '2024-01-01', '2024-02-01')$$),
	'22023: group_by key "tokens" is not a filter key of meter "mc_sum"'
	' | DETAIL: Usage is broken down by the values on which charges apply: the meter''s filter keys.'
	' | HINT: Use one of "model", "region".', 'group_by: a key that is not a filter key, named');
SELECT is(pg_temp.err($$SELECT * FROM meter.usage_by_group_from_events('mc_sum', '{Model}', '2024-01-01', '2024-02-01')$$),
	'22023: group_by key "Model" is not a filter key of meter "mc_sum"'
	' | DETAIL: Usage is broken down by the values on which charges apply: the meter''s filter keys.'
	' | HINT: Use one of "model", "region".', 'group_by (_from_events): keys are case-sensitive');
SELECT is(pg_temp.err($$SELECT * FROM meter.usage_by_group('mc_nof', '{model}', '2024-01-01', '2024-02-01')$$),
	'22023: group_by key "model" is not a filter key of meter "mc_nof"'
	' | DETAIL: Usage is broken down by the values on which charges apply: the meter''s filter keys.'
	' | HINT: Meter "mc_nof" has no filters: add them with meter.update_meter().', 'group_by on a meter without filters');
SELECT is(pg_temp.err1($$SELECT * FROM meter.usage_by_group('mc_sum', '{""}', '2024-01-01', '2024-02-01')$$),
	'22023: group_by key "" is not a filter key of meter "mc_sum"', 'group_by: an empty key');
SELECT is(pg_temp.err($$SELECT * FROM meter.usage_by_group('mc_sum', '{model,region,model}', '2024-01-01', '2024-02-01')$$),
	'22023: group_by key "model" is listed twice | HINT: List each key once.', 'group_by: a key twice');
SELECT is(pg_temp.err($$SELECT * FROM meter.usage_by_group_from_events('mc_sum', ARRAY['model', NULL], '2024-01-01', '2024-02-01')$$),
	'22023: group_by keys cannot be null | HINT: Pass filter keys of the meter, e.g. ARRAY[''model''].', 'group_by: a NULL key');

-- Filter groups.
CREATE FUNCTION pg_temp.fg_err(groups text, twin text DEFAULT '') RETURNS text LANGUAGE sql AS $$
	SELECT pg_temp.err(format('SELECT * FROM meter.usage_by_filter_groups%s(''mc_sum'', %L, ''2024-01-01'', ''2024-02-01'')',
		twin, groups))
$$;
SELECT is(pg_temp.fg_err(g, twin), v, 'filter groups' || CASE WHEN twin = '' THEN '' ELSE ' (_from_events)' END || ': ' || d)
FROM (VALUES
	(NULL, '22023: invalid filter groups | DETAIL: groups is NULL. | HINT: Pass [{"id":"price_gpt4o","filters":{"model":["gpt-4o"]}}, …].', 'NULL'),
	('{"id":"a"}', '22023: invalid filter groups | DETAIL: groups must be a JSON array of objects. | HINT: Pass [{"id":"price_gpt4o","filters":{"model":["gpt-4o"]}}, …].', 'an object, not an array'),
	('"a"', '22023: invalid filter groups | DETAIL: groups must be a JSON array of objects. | HINT: Pass [{"id":"price_gpt4o","filters":{"model":["gpt-4o"]}}, …].', 'a scalar'),
	('["a"]', '22023: invalid filter groups | DETAIL: Every group is a JSON object with "id" and "filters". | HINT: Pass [{"id":"price_gpt4o","filters":{"model":["gpt-4o"]}}, …].', 'an element that is not an object'),
	('[{"filters":{}}]', '22023: invalid filter groups | DETAIL: Every group needs a non-empty string "id". | HINT: Pass [{"id":"price_gpt4o","filters":{"model":["gpt-4o"]}}, …].', 'no id'),
	('[{"id":""}]', '22023: invalid filter groups | DETAIL: Every group needs a non-empty string "id". | HINT: Pass [{"id":"price_gpt4o","filters":{"model":["gpt-4o"]}}, …].', 'an empty id'),
	('[{"id":7}]', '22023: invalid filter groups | DETAIL: Every group needs a non-empty string "id". | HINT: Pass [{"id":"price_gpt4o","filters":{"model":["gpt-4o"]}}, …].', 'a number as id'),
	('[{"id":"a","filter":{}}]', '22023: invalid filter groups | DETAIL: Group "a" has a key other than "id" and "filters". | HINT: Pass [{"id":"price_gpt4o","filters":{"model":["gpt-4o"]}}, …].', 'an unknown key'),
	('[{"id":"a","filters":[]}]', '22023: invalid filter groups | DETAIL: The filters of group "a" must be an object of key → values. | HINT: Pass [{"id":"price_gpt4o","filters":{"model":["gpt-4o"]}}, …].', 'filters not an object'),
	('[{"id":"a","filters":null}]', '22023: invalid filter groups | DETAIL: The filters of group "a" must be an object of key → values. | HINT: Pass [{"id":"price_gpt4o","filters":{"model":["gpt-4o"]}}, …].', 'filters null'),
	('[{"id":"a","filters":{"model":"gpt-4o"}}]', '22023: invalid filter groups | DETAIL: The filter "model" of group "a" is not an array of values. | HINT: Pass [{"id":"price_gpt4o","filters":{"model":["gpt-4o"]}}, …].', 'values not an array'),
	('[{"id":"a"},{"id":"b"},{"id":"a","filters":{"model":["o1"]}}]', '22023: invalid filter groups | DETAIL: Group id "a" appears twice. | HINT: Pass [{"id":"price_gpt4o","filters":{"model":["gpt-4o"]}}, …].', 'duplicate group ids'),
	('[{"id":"a","filters":{"tokens":["1"]}}]', '22023: filter group key "tokens" is not a filter key of meter "mc_sum"'
		' | DETAIL: Usage is broken down by the values on which charges apply: the meter''s filter keys.'
		' | HINT: Use one of "model", "region".', 'a key that is not a filter key of the meter'),
	('[{"id":"a","filters":{"model":[]}}]', '22023: filter values cannot be empty | DETAIL: Filter "model" has no values; it could never match.'
		' | HINT: List at least one value, e.g. "values":["gpt-4o"], or remove the filter.', 'no values'),
	('[{"id":"a","filters":{"model":[1]}}]', '22023: filter values must be an array of strings | DETAIL: Value 0 of filter "model" is a number.'
		' | HINT: Quote every value, e.g. "values":["1","true"]; numbers and booleans in events still match their text.', 'a number as value'),
	('not json', '22P02: invalid input syntax for type json | DETAIL: Token "not" is invalid.', 'not JSON')
	) t(g, v, d), unnest(ARRAY['', '_from_events']) twin
WHERE twin = '' OR d IN ('NULL', 'duplicate group ids', 'a key that is not a filter key of the meter');
SELECT is(pg_temp.err1($$SELECT * FROM meter.usage_by_filter_groups('mc_sum', '[{"id":"a","filters":{"model":["o1"]}}]',
	'2024-01-01', '2024-02-01', window_size => 'DAY', timezone => 'Nowhere/Land')$$),
	'22023: time zone "Nowhere/Land" not recognized', 'valid groups, then the time zone is checked');
SELECT is(pg_temp.err($$SELECT * FROM meter.usage_by_filter_groups('mc_nof', '[{"id":"a","filters":{"model":["o1"]}}]',
	'2024-01-01', '2024-02-01')$$),
	'22023: filter group key "model" is not a filter key of meter "mc_nof"'
	' | DETAIL: Usage is broken down by the values on which charges apply: the meter''s filter keys.'
	' | HINT: Meter "mc_nof" has no filters: add them with meter.update_meter().', 'filter groups on a meter without filters');
SELECT is(pg_temp.bf('mc_nof', '[{"id":"all"},{"id":"also","filters":{}}]', '2024-01-01', '2024-02-01'), 'all=9, also=0',
	'… which may still have groups without filters');

-- ── Windows, zones and anchors: per customer = meter.usage, per group = an equivalent meter ──
-- Six weeks of events around the New York DST change (2024-03-10), off the 15-minute grid.
INSERT INTO meter.events (id, event_name, customer_id, external_customer_id, "timestamp", properties)
SELECT 'g' || g, 'llm', (ARRAY['c1', 'c2', NULL, 'c7'])[1 + g % 4], (ARRAY[NULL, 'x2', 'x3', NULL])[1 + g % 4],
	'2024-02-20 00:00Z'::timestamptz + g * interval '97 minutes' + (g % 5) * interval '7 minutes 3 seconds',
	jsonb_build_object('model', (ARRAY['"gpt-4o"', '"o1"', '1', '1.0', '"1"', '"claude"', 'true'])[1 + (g / 4) % 7]::jsonb,
		'region', (ARRAY['eu', 'us'])[1 + (g / 3) % 2], 'tokens', g % 13,
		'user', (ARRAY['"u1"', '"u2"', '2', '2.0', '"u3"'])[1 + (g / 2) % 5]::jsonb, 'gb', (g * 7) % 11,
		'v', CASE WHEN g % 19 = 0 THEN '"x"'::jsonb ELSE to_jsonb(g % 17) END, 'input', g % 5, 'output', g % 3)
	|| CASE WHEN g % 3 = 0 THEN '{}' ELSE jsonb_build_object('volume', (ARRAY['vA', 'vB'])[1 + g % 2]) END
FROM generate_series(1, 600) g;

CREATE TEMP TABLE cases (n int PRIMARY KEY, s timestamptz, e timestamptz, ws meter.window_size, tz text,
	anchor timestamptz, c text, x text);
INSERT INTO cases VALUES
	(1, '2024-02-01', '2024-04-01', NULL, 'UTC', NULL, NULL, NULL),
	(2, '2024-03-09 05:00Z', '2024-03-12 04:00Z', 'DAY', 'America/New_York', NULL, 'c1', NULL),
	(3, '2024-03-10 00:00Z', '2024-03-11 12:00Z', 'HOUR', 'America/New_York', NULL, NULL, 'x3'),
	(4, '2024-02-25 18:30Z', '2024-03-05 18:30Z', 'DAY', 'Asia/Kolkata', NULL, NULL, NULL),
	(5, '2024-02-25 03:07Z', '2024-03-20 11:11Z', 'WEEK', '', NULL, '', 'x3'),
	(6, '2024-02-01', '2024-04-01', 'MONTH', NULL, '2024-01-31 10:07Z', 'c2', 'x2'),
	(7, '2024-01-01', '2024-04-01', 'MONTH', 'Asia/Kolkata', '2023-11-15 00:00+05:30', NULL, NULL),
	(8, '2024-03-01 10:00Z', '2024-03-01 13:00Z', 'MINUTE', 'UTC', NULL, NULL, NULL),
	(9, '2024-03-02 07:45Z', '2024-03-06 00:10Z', '3HOUR', 'Asia/Kathmandu', NULL, 'c7', ''),
	(10, '2024-03-10 01:00Z', '2024-03-10 10:00Z', '30MIN', 'America/New_York', NULL, NULL, NULL),
	(11, '2024-01-01', '2024-01-04', 'DAY', 'UTC', NULL, NULL, NULL),
	(12, '2024-01-02 10:31Z', '2024-01-02 10:40Z', NULL, 'UTC', NULL, NULL, NULL),
	(13, '2024-03-10 07:07Z', '2024-03-10 07:52Z', '15MIN', 'Asia/Kolkata', NULL, NULL, NULL),
	(14, '2024-02-20 00:00Z', '2024-03-20 00:00Z', '12HOUR', 'Europe/London', NULL, 'c1', '');

-- The customers with a matched event before the end, from the raw events in plain SQL.
CREATE FUNCTION pg_temp.expected_customers(mid text, e timestamptz) RETURNS TABLE (c text, x text) LANGUAGE sql AS $$
	SELECT DISTINCT coalesce(ev.customer_id, ''), coalesce(ev.external_customer_id, '')
	FROM meter.events ev, meter.meters m
	WHERE m.id = mid AND ev.tenant_id = m.tenant_id AND ev.environment_id = m.environment_id
		AND ev.event_name = m.event_name AND meter.matches(m.filters, ev.properties) AND ev."timestamp" < e
$$;
-- usage_by_customer against meter.usage per customer: '' when all agrees, else the first difference.
CREATE FUNCTION pg_temp.check_customers(mid text, k cases) RETURNS text LANGUAGE plpgsql AS $$
DECLARE bad text;
BEGIN
	CREATE TEMP TABLE bc ON COMMIT DROP AS
	SELECT u.* FROM meter.usage_by_customer(mid, k.s, k.e, k.ws, k.tz, k.anchor) WITH ORDINALITY u(c, x, ws, we, value, o);
	SELECT string_agg(format('%s/%s', coalesce(a.c, '-'), coalesce(a.x, '-')) || ' vs ' || format('%s/%s', coalesce(b.c, '-'), coalesce(b.x, '-')), ', ')
		INTO bad FROM (SELECT DISTINCT c, x FROM bc) a FULL JOIN pg_temp.expected_customers(mid, k.e) b USING (c, x)
	WHERE a.c IS NULL OR b.c IS NULL;
	IF bad IS NOT NULL THEN DROP TABLE bc; RETURN format('case %s %s: customers %s', k.n, mid, bad); END IF;
	SELECT format('row %s', o) INTO bad FROM (
		SELECT o, row_number() OVER (ORDER BY c COLLATE "C", x COLLATE "C", ws) AS want FROM bc) t WHERE o <> want LIMIT 1;
	IF bad IS NOT NULL THEN DROP TABLE bc; RETURN format('case %s %s: order, %s', k.n, mid, bad); END IF;
	SELECT format('%s/%s %s: %s vs %s', cx.c, cx.x, coalesce(d.hws, d.wws), d.hv, d.wv) INTO bad
	FROM (SELECT DISTINCT c, x FROM bc) cx
	CROSS JOIN LATERAL (
		SELECT have.ws AS hws, have.value AS hv, want.window_start AS wws, want.value AS wv FROM (SELECT ws, we, value FROM bc WHERE bc.c = cx.c AND bc.x = cx.x) have
		FULL JOIN meter.usage(mid, k.s, k.e, cx.c, cx.x, k.ws, k.tz, k.anchor) want
			ON have.ws = want.window_start AND have.we = want.window_end
		WHERE have.value IS DISTINCT FROM want.value OR have.ws IS NULL OR want.window_start IS NULL) d
	LIMIT 1;
	DROP TABLE bc;
	RETURN CASE WHEN bad IS NULL THEN '' ELSE format('case %s %s: %s', k.n, mid, bad) END;
END $$;

-- The canonical "model" of an event, in plain SQL (numbers by value, as text).
CREATE FUNCTION pg_temp.model_of(p jsonb) RETURNS text LANGUAGE sql IMMUTABLE AS $$
	SELECT CASE jsonb_typeof(p -> 'model') WHEN 'number' THEN trim_scale((p ->> 'model')::numeric)::text ELSE p ->> 'model' END
$$;
-- usage_by_group by model and usage_by_filter_groups with one group per model against the
-- equivalent meters mc_<kind>__<model>; the groups that occur against the raw events.
CREATE FUNCTION pg_temp.check_groups(kind text, k cases) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	mid text := 'mc_' || kind;
	never boolean := kind LIKE 'never%';
	bad text;
BEGIN
	SELECT string_agg(coalesce(a.model, '-') || ' vs ' || coalesce(b.model, '-'), ', ') INTO bad
	FROM (SELECT DISTINCT g ->> 'model' AS model FROM meter.usage_by_group(mid, '{model}', k.s, k.e, k.c, k.x, k.ws, k.tz, k.anchor) u(g)) a
	FULL JOIN (SELECT DISTINCT pg_temp.model_of(ev.properties) AS model FROM meter.events ev, meter.meters m
		WHERE m.id = mid AND ev.tenant_id = m.tenant_id AND ev.event_name = m.event_name
			AND meter.matches(m.filters, ev.properties) AND ev."timestamp" < k.e AND (never OR ev."timestamp" >= k.s)
			AND (k.c IS NULL OR coalesce(ev.customer_id, '') = k.c) AND (k.x IS NULL OR coalesce(ev.external_customer_id, '') = k.x)) b
		USING (model)
	WHERE a.model IS NULL OR b.model IS NULL;
	IF bad IS NOT NULL THEN RETURN format('case %s %s: groups %s', k.n, mid, bad); END IF;
	SELECT format('group %s %s: %s vs %s', gs.g, coalesce(d.hws, d.wws), d.hv, d.wv) INTO bad
	FROM (SELECT DISTINCT g FROM meter.usage_by_group(mid, '{model}', k.s, k.e, k.c, k.x, k.ws, k.tz, k.anchor) u(g)) gs
	CROSS JOIN LATERAL (
		SELECT have.ws AS hws, have.value AS hv, want.window_start AS wws, want.value AS wv FROM (SELECT u.ws, u.we, u.value FROM meter.usage_by_group(mid, '{model}', k.s, k.e, k.c, k.x, k.ws, k.tz, k.anchor) u(g, ws, we, value)
			WHERE u.g = gs.g) have
		FULL JOIN meter.usage(mid || '__' || (gs.g ->> 'model'), k.s, k.e, k.c, k.x, k.ws, k.tz, k.anchor) want
			ON have.ws = want.window_start AND have.we = want.window_end
		WHERE have.value IS DISTINCT FROM want.value OR have.ws IS NULL OR want.window_start IS NULL) d
	LIMIT 1;
	IF bad IS NOT NULL THEN RETURN format('case %s %s: %s', k.n, mid, bad); END IF;
	SELECT format('filter group %s %s: %s vs %s', u.g, u.ws, u.value, want.value) INTO bad
	FROM meter.usage_by_filter_groups(mid, (SELECT groups FROM fg WHERE name = 'models'), k.s, k.e, k.c, k.x, k.ws, k.tz, k.anchor) u(g, ws, we, value)
	LEFT JOIN LATERAL (SELECT w.value FROM meter.usage(mid || '__' || CASE WHEN u.g = 'none' THEN 'o1' ELSE u.g END,
			k.s, k.e, k.c, k.x, k.ws, k.tz, k.anchor) w
		WHERE w.window_start = u.ws AND w.window_end = u.we) want ON true
	WHERE u.value IS DISTINCT FROM CASE WHEN u.g <> 'none' THEN want.value
		WHEN kind NOT IN ('maxb', 'latest', 'avg', 'nevermax') THEN 0 END
	LIMIT 1;
	IF bad IS NOT NULL THEN RETURN format('case %s %s: %s', k.n, mid, bad); END IF;
	-- every group, every window
	IF (SELECT count(*) FROM meter.usage_by_filter_groups(mid, (SELECT groups FROM fg WHERE name = 'models'), k.s, k.e, k.c, k.x, k.ws, k.tz, k.anchor))
		<> 5 * (SELECT count(*) FROM meter.windows(k.s, k.e, k.ws, k.tz, k.anchor)) THEN
		RETURN format('case %s %s: not every filter group and window', k.n, mid);
	END IF;
	RETURN '';
END $$;

SELECT is((SELECT string_agg(r, '; ') FROM (SELECT pg_temp.check_customers('mc_' || kind, k) AS r FROM cases k) t WHERE r <> ''), NULL,
	'usage_by_customer = meter.usage per customer, for every case (' || kind || ')') FROM kinds;
SELECT is((SELECT string_agg(r, '; ') FROM (SELECT pg_temp.check_customers(m, k) AS r FROM cases k) t WHERE r <> ''), NULL,
	'usage_by_customer = meter.usage per customer, for every case (' || m || ')') FROM unnest(ARRAY['mc_nof']) m;
SELECT is((SELECT string_agg(r, '; ') FROM (SELECT pg_temp.check_groups(kind, k) AS r FROM cases k) t WHERE r <> ''), NULL,
	'usage_by_group and usage_by_filter_groups = the equivalent meters, for every case (' || kind || ')') FROM kinds;

-- Additive meters: the customers' and the groups' values add up to meter.usage.
CREATE FUNCTION pg_temp.check_sums(mid text, k cases) RETURNS text LANGUAGE sql AS $$
	SELECT string_agg(format('case %s %s %s %s: usage %s, customers %s, by model %s, by region and model %s, filter groups %s',
		k.n, mid, u.window_start, k.c, u.value, bc.v, bm.v, brm.v, bf.v), '; ')
	FROM meter.usage(mid, k.s, k.e, k.c, k.x, k.ws, k.tz, k.anchor) u
	LEFT JOIN (SELECT ws, sum(value) AS v FROM meter.usage_by_customer(mid, k.s, k.e, k.ws, k.tz, k.anchor) x(c, xx, ws)
		WHERE (k.c IS NULL OR x.c = k.c) AND (k.x IS NULL OR x.xx = k.x) GROUP BY ws) bc ON bc.ws = u.window_start
	LEFT JOIN (SELECT ws, sum(value) AS v FROM meter.usage_by_group(mid, '{model}', k.s, k.e, k.c, k.x, k.ws, k.tz, k.anchor) x(g, ws)
		GROUP BY ws) bm ON bm.ws = u.window_start
	LEFT JOIN (SELECT ws, sum(value) AS v FROM meter.usage_by_group(mid, '{region,model}', k.s, k.e, k.c, k.x, k.ws, k.tz, k.anchor) x(g, ws)
		GROUP BY ws) brm ON brm.ws = u.window_start
	LEFT JOIN (SELECT ws, sum(value) AS v FROM meter.usage_by_filter_groups(mid, (SELECT groups FROM fg WHERE name = 'overlap'),
		k.s, k.e, k.c, k.x, k.ws, k.tz, k.anchor) x(g, ws) GROUP BY ws) bf ON bf.ws = u.window_start
	WHERE u.value IS DISTINCT FROM coalesce(bc.v, 0) OR u.value IS DISTINCT FROM coalesce(bm.v, 0)
		OR u.value IS DISTINCT FROM coalesce(brm.v, 0) OR u.value IS DISTINCT FROM coalesce(bf.v, 0)
$$;
SELECT is((SELECT string_agg(r, '; ') FROM cases k, pg_temp.check_sums('mc_' || kind, k) r), NULL,
	'sum over customers = sum over groups = sum over filter groups (one catching all) = usage (' || kind || ')')
FROM unnest(ARRAY['count', 'sum', 'expr', 'never']) kind;

-- Overlapping filter groups against plain SQL: each matched event in the first group
-- (in the array's order) whose filters it matches, by meter.matches; COUNT and SUM.
CREATE FUNCTION pg_temp.first_group(groups jsonb, p jsonb) RETURNS text LANGUAGE sql AS $$
	SELECT g ->> 'id' FROM jsonb_array_elements(groups) WITH ORDINALITY a(g, o)
	WHERE meter.matches(coalesce((SELECT jsonb_agg(jsonb_build_object('key', f.key, 'values', f.value))
		FROM jsonb_each(g -> 'filters') f), '[]')::meter.filters, p)
	ORDER BY o LIMIT 1
$$;
CREATE FUNCTION pg_temp.check_filter_groups(kind text, groups jsonb, k cases) RETURNS text LANGUAGE sql AS $$
	WITH ev AS MATERIALIZED (
		SELECT ev."timestamp" AS t, pg_temp.first_group(groups, ev.properties) AS g,
			CASE kind WHEN 'count' THEN 1 ELSE meter.numeric_value(ev.properties, 'tokens') END AS v
		FROM meter.events ev, meter.meters m
		WHERE m.id = 'mc_' || kind AND ev.tenant_id = m.tenant_id AND ev.event_name = m.event_name
			AND meter.matches(m.filters, ev.properties)
			AND (k.c IS NULL OR coalesce(ev.customer_id, '') = k.c) AND (k.x IS NULL OR coalesce(ev.external_customer_id, '') = k.x)),
	want AS (
		SELECT gr ->> 'id' AS g, w.window_start AS ws, w.window_end AS we,
			(SELECT coalesce(sum(ev.v), 0) FROM ev WHERE ev.g = gr ->> 'id' AND ev.t >= w.window_start AND ev.t < w.window_end) AS v
		FROM jsonb_array_elements(groups) gr, meter.windows(k.s, k.e, k.ws, k.tz, k.anchor) w)
	SELECT string_agg(format('case %s %s %s: %s vs %s', k.n, coalesce(have.g, want.g), coalesce(have.ws, want.ws), have.v, want.v), '; ')
	FROM meter.usage_by_filter_groups('mc_' || kind, groups, k.s, k.e, k.c, k.x, k.ws, k.tz, k.anchor) have(g, ws, we, v)
	FULL JOIN want USING (g, ws, we)
	WHERE have.v IS DISTINCT FROM want.v
$$;
SELECT is((SELECT string_agg(r, '; ') FROM cases k, pg_temp.check_filter_groups(kind, fg.groups, k) r), NULL,
	'usage_by_filter_groups = first matching group in plain SQL (' || kind || ', ' || fg.name || ')')
FROM unnest(ARRAY['count', 'sum']) kind, fg;

-- '' and NULL zones mean UTC; the same results as 'UTC'.
SELECT is(pg_temp.bc('mc_sum', '2024-03-01', '2024-03-05', 'DAY', z), pg_temp.bc('mc_sum', '2024-03-01', '2024-03-05', 'DAY', 'UTC'),
	'usage_by_customer: timezone ' || coalesce(quote_literal(z), 'NULL') || ' means UTC') FROM unnest(ARRAY['', NULL]) z;
SELECT is((SELECT array_agg(u::text ORDER BY u::text) FROM meter.usage_by_group('mc_sum', '{model}', '2024-03-01', '2024-03-05', window_size => 'DAY', timezone => z) u),
	(SELECT array_agg(u::text ORDER BY u::text) FROM meter.usage_by_group('mc_sum', '{model}', '2024-03-01', '2024-03-05', window_size => 'DAY') u),
	'usage_by_group: timezone ' || coalesce(quote_literal(z), 'NULL') || ' means UTC') FROM unnest(ARRAY['', NULL]) z;
SELECT is((SELECT array_agg(u::text ORDER BY u::text) FROM meter.usage_by_filter_groups_from_events('mc_sum', (SELECT groups FROM fg WHERE name = 'overlap'),
		'2024-03-01', '2024-03-05', window_size => 'DAY', timezone => z) u),
	(SELECT array_agg(u::text ORDER BY u::text) FROM meter.usage_by_filter_groups('mc_sum', (SELECT groups FROM fg WHERE name = 'overlap'),
		'2024-03-01', '2024-03-05', window_size => 'DAY', timezone => 'UTC') u),
	'usage_by_filter_groups_from_events: timezone ' || coalesce(quote_literal(z), 'NULL') || ' means UTC') FROM unnest(ARRAY['', NULL]) z;
-- The DST day: 23 hours in New York, and its windows in the results.
SELECT is((SELECT array_agg(DISTINCT we - ws) FROM meter.usage_by_customer('mc_count', '2024-03-10 05:00Z', '2024-03-11 04:00Z', 'DAY',
	'America/New_York') u(c, x, ws, we)), ARRAY[interval '23 hours'], 'America/New_York 2024-03-10: one DAY window of 23 hours');
SELECT is((SELECT count(*) FROM meter.usage_by_group('mc_count', '{}', '2024-03-10 05:00Z', '2024-03-11 04:00Z', window_size => 'HOUR',
	timezone => 'America/New_York')), 23::bigint, '… 23 HOUR windows');
SELECT is((SELECT array_agg(DISTINCT ws) FROM meter.usage_by_filter_groups('mc_count', '[{"id":"a"},{"id":"b"}]', '2024-03-01',
	'2024-03-05', window_size => 'DAY', timezone => 'Asia/Kolkata') u(g, ws)),
	ARRAY['2024-03-01 00:00Z', '2024-03-01 18:30Z', '2024-03-02 18:30Z', '2024-03-03 18:30Z', '2024-03-04 18:30Z']::timestamptz[],
	'Asia/Kolkata: DAY windows start at 18:30Z (the first clipped to the start)');
SELECT is((SELECT array_agg(DISTINCT ws) FROM meter.usage_by_customer('mc_count', '2024-01-01', '2024-04-01', 'MONTH', 'UTC',
	'2023-10-31 10:07Z') u(c, x, ws)),
	ARRAY['2024-01-01 00:00Z', '2024-01-31 10:07Z', '2024-02-29 10:07Z', '2024-03-31 10:07Z']::timestamptz[],
	'MONTH windows at the billing anchor''s day and time, clamped to the month''s end');

-- ── Pending = compacted = mixed = the _from_events twins ────────────────────────────
-- Every function for every meter and case, as text rows (with the row's position).
CREATE FUNCTION pg_temp.battery(twin text, meters text[] DEFAULT NULL) RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
	mid text;
	k cases;
BEGIN
	FOR mid IN SELECT 'mc_' || kind FROM kinds UNION ALL SELECT 'mc_arch' UNION ALL SELECT 'mc_nof' LOOP
		CONTINUE WHEN meters IS NOT NULL AND NOT mid = ANY (meters);
		FOR k IN SELECT * FROM cases ORDER BY n LOOP
			RETURN QUERY EXECUTE format($q$SELECT concat_ws('|', 'C', $1, $2, o, c, x, ws, we, coalesce(v::text, 'NULL'))
				FROM meter.usage_by_customer%s($2, $3, $4, $5, $6, $7) WITH ORDINALITY u(c, x, ws, we, v, o)$q$, twin)
				USING k.n, mid, k.s, k.e, k.ws, k.tz, k.anchor;
			IF mid <> 'mc_nof' THEN
				RETURN QUERY EXECUTE format($q$SELECT concat_ws('|', 'G', $1, $2, keys, o, g, ws, we, coalesce(v::text, 'NULL'))
					FROM unnest(CASE WHEN $2 = 'mc_arch' THEN ARRAY['{model}'] ELSE ARRAY['{model}', '{region,model}'] END) keys,
					meter.usage_by_group%s($2, keys::text[], $3, $4, $5, $6, $7, $8, $9) WITH ORDINALITY u(g, ws, we, v, o)$q$, twin)
					USING k.n, mid, k.s, k.e, k.c, k.x, k.ws, k.tz, k.anchor;
			END IF;
			RETURN QUERY EXECUTE format($q$SELECT concat_ws('|', 'F', $1, $2, fg.name, o, g, ws, we, coalesce(v::text, 'NULL'))
				FROM fg, meter.usage_by_filter_groups%s($2, CASE $2 WHEN 'mc_nof' THEN '[{"id":"all"},{"id":"none"}]'
					WHEN 'mc_arch' THEN '[{"id":"o1","filters":{"model":["o1"]}},{"id":"rest"}]' ELSE fg.groups END,
					$3, $4, $5, $6, $7, $8, $9) WITH ORDINALITY u(g, ws, we, v, o)$q$, twin)
				USING k.n, mid, k.s, k.e, k.c, k.x, k.ws, k.tz, k.anchor;
		END LOOP;
	END LOOP;
END $$;
CREATE FUNCTION pg_temp.differ(a text, b text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE r text;
BEGIN
	EXECUTE format('SELECT string_agg(d, E''\n'') FROM (SELECT ''-'' || s::text AS d FROM (SELECT * FROM %1$s EXCEPT ALL SELECT * FROM %2$s) s
		UNION ALL SELECT ''+'' || s::text FROM (SELECT * FROM %2$s EXCEPT ALL SELECT * FROM %1$s) s ORDER BY 1 LIMIT 10) t', a, b) INTO r;
	RETURN r;
END $$;
CREATE TEMP TABLE pending_rows AS SELECT pg_temp.battery('') AS r;
CREATE TEMP TABLE twin_rows AS SELECT pg_temp.battery('_from_events') AS r;
SELECT cmp_ok((SELECT count(*) FROM pending_rows), '>', 10000::bigint, 'the battery is not trivial');
SELECT is(pg_temp.differ('pending_rows', 'twin_rows'),
	-- the archived meter is frozen: its stored usage leaves out e11, the raw events have it
	pg_temp.differ('(SELECT * FROM pending_rows WHERE r LIKE ''%|mc_arch|%'') a', '(SELECT * FROM twin_rows WHERE r LIKE ''%|mc_arch|%'') b'),
	'all pending: every function = its _from_events twin (but for the frozen archived meter)');
SELECT is((SELECT count(*) FROM (SELECT r FROM pending_rows WHERE r LIKE '%|mc_arch|%' EXCEPT ALL
	SELECT r FROM twin_rows WHERE r LIKE '%|mc_arch|%') d) > 0, true, '(the archived meter''s twin does count e11)');
SELECT cmp_ok(meter.compact(), '>', 0::bigint, 'compact everything');
SELECT is((SELECT count(*) FROM meter.pending WHERE tenant_id = 'tap_many'), 0::bigint, 'nothing pending');
CREATE TEMP TABLE compacted_rows AS SELECT pg_temp.battery('') AS r;
SELECT is(pg_temp.differ('pending_rows', 'compacted_rows'), NULL, 'compacted = pending, for every function, meter and case');
SELECT is(pg_temp.bc('mc_' || k, '2024-01-01', '2024-02-01'), v, 'compacted: usage_by_customer, ' || k || ': ' || v)
FROM (VALUES
	('count', '/x3=1, c1/=4, c2/x2=2, c4/=0, c8/=1'),
	('uniq', '/x3=1, c1/=2, c2/x2=1, c4/=0, c8/=1'),
	('never', '/x3=11, c1/=181, c2/x2=10, c4/=1000, c8/=2')) t(k, v);
SELECT is(pg_temp.bc('mc_count', '2024-01-02 10:31Z', '2024-01-02 10:40Z'), 'c1/=0, c2/x2=0, c4/=0',
	'compacted: a customer whose only earlier event is in the start''s slot');

-- Changes on top of the compacted rows (pending again): updates of the customer, the
-- time, the group's value, deletes, re-sent events, late events, ON CONFLICT DO UPDATE.
UPDATE meter.events SET properties = properties || '{"model":"o1"}' WHERE tenant_id = 'tap_many' AND id IN ('e1', 'g10', 'g11', 'g12');
UPDATE meter.events SET customer_id = 'c9', external_customer_id = NULL WHERE tenant_id = 'tap_many' AND id IN ('e4', 'g20', 'g21');
UPDATE meter.events SET "timestamp" = "timestamp" + interval '3 days 7 minutes' WHERE tenant_id = 'tap_many' AND id IN ('e3', 'g30', 'g31');
DELETE FROM meter.events WHERE tenant_id = 'tap_many' AND (id IN ('e7', 'e2') OR id LIKE 'g_5');
INSERT INTO meter.events (id, event_name, customer_id, "timestamp", properties) VALUES
	('e12', 'llm', 'c10', '2023-11-30 23:59Z', '{"model":"o1","region":"us","tokens":4,"v":4,"user":"u4","gb":2}'),
	('g40', 'llm', 'c10', '2024-03-10 06:59Z', '{"model":"o1","region":"us","tokens":5,"v":5,"user":"u5","gb":3}')
ON CONFLICT (tenant_id, environment_id, id) DO UPDATE SET properties = excluded.properties, customer_id = excluded.customer_id,
	"timestamp" = excluded."timestamp";
INSERT INTO meter.events (id, event_name, customer_id, "timestamp", properties)
SELECT 'late' || g, 'llm', 'c' || (g % 20), '2024-01-01'::timestamptz + g * interval '3 hours 1 minute',
	jsonb_build_object('model', (ARRAY['o1', 'gpt-4o', '1'])[1 + g % 3], 'region', 'eu', 'tokens', g, 'v', g, 'user', 'u' || g % 4,
		'gb', g % 6, 'volume', 'v' || g % 2)
FROM generate_series(1, 60) g;
SELECT is((SELECT count(*) FROM meter.pending WHERE tenant_id = 'tap_many') > 0, true, 'pending rows on top of compacted ones');
CREATE TEMP TABLE mixed_rows AS SELECT pg_temp.battery('') AS r;
CREATE TEMP TABLE mixed_twin_rows AS SELECT pg_temp.battery('_from_events') AS r;
SELECT is(pg_temp.differ('(SELECT * FROM mixed_rows WHERE r NOT LIKE ''%|mc_arch|%'') a', '(SELECT * FROM mixed_twin_rows WHERE r NOT LIKE ''%|mc_arch|%'') b'),
	NULL, 'compacted + pending: every function = its _from_events twin');
-- (Cases whose window edges fall on 15-minute slot boundaries: a cut slot is read from the
-- raw events, which an archived meter's frozen usage cannot follow; see the TODO below.)
CREATE TEMP VIEW aligned_arch AS SELECT r FROM mixed_rows WHERE r ~ '^.\|(1|2|3|4|7|10|11|14)\|mc_arch\|';
SELECT is(pg_temp.differ('aligned_arch', '(SELECT * FROM compacted_rows WHERE r ~ ''^.\|(1|2|3|4|7|10|11|14)\|mc_arch\|'') b'),
	NULL, 'the archived meter stays frozen (windows on slot boundaries)');
SELECT todo('an archived meter reads the raw events of the 15-minute slots a window edge cuts: not frozen there', 2);
SELECT is((SELECT sum(value) FROM meter.usage_by_customer('mc_arch', '2024-01-25 00:00Z', '2024-01-25 00:15Z', 'MINUTE')), 0::numeric,
	'the archived meter, MINUTE windows: e11 (after archiving) does not count');
SELECT is(pg_temp.differ('(SELECT * FROM mixed_rows WHERE r LIKE ''%|mc_arch|%'') a', '(SELECT * FROM compacted_rows WHERE r LIKE ''%|mc_arch|%'') b'),
	NULL, 'the archived meter stays frozen (every case)');
SELECT is((SELECT string_agg(r, '; ') FROM (SELECT pg_temp.check_customers('mc_' || kind, k) AS r FROM kinds, cases k) t WHERE r <> ''), NULL,
	'compacted + pending: usage_by_customer = meter.usage per customer');
SELECT is((SELECT string_agg(r, '; ') FROM (SELECT pg_temp.check_groups(kind, k) AS r FROM kinds, cases k) t WHERE r <> ''), NULL,
	'compacted + pending: by group and filter groups = the equivalent meters');
SELECT cmp_ok(meter.compact(), '>', 0::bigint, 'compact again');
CREATE TEMP TABLE recompacted_rows AS SELECT pg_temp.battery('') AS r;
SELECT is(pg_temp.differ('mixed_rows', 'recompacted_rows'), NULL, 'compacted again = compacted + pending');

-- Removing a MAX, MIN or LATEST event marks its slot for recomputation (its stored event
-- count is stale until the next compaction): a customer whose only events before the
-- start were removed or moved away is no longer listed.
INSERT INTO meter.events (id, event_name, customer_id, "timestamp", properties) VALUES
	('gone1', 'llm', 'gone', '2023-10-01 10:05Z', '{"model":"o1","region":"eu","tokens":1,"v":1,"gb":1,"user":"u"}'),
	('moved1', 'llm', 'moved', '2023-10-01 10:05Z', '{"model":"o1","region":"eu","tokens":1,"v":2,"gb":2,"user":"u"}'),
	('moved2', 'llm', 'moved', '2023-10-02 10:05Z', '{"model":"o1","region":"eu","tokens":1,"v":2,"gb":2,"user":"u"}');
SELECT cmp_ok(meter.compact(), '>', 0::bigint, 'compact the events of gone and moved');
DELETE FROM meter.events WHERE tenant_id = 'tap_many' AND id = 'gone1';
UPDATE meter.events SET customer_id = 'arrived' WHERE tenant_id = 'tap_many' AND id IN ('moved1', 'moved2');
SELECT is((SELECT string_agg(customer_id, ',' ORDER BY customer_id) FROM meter.usage_by_customer('mc_' || k, '2023-10-10', '2023-10-20')),
	'arrived', 'pending removals on compacted rows: only customer arrived is listed (' || k || ')')
FROM unnest(ARRAY['latest', 'maxb', 'nevermax', 'count', 'uniq']) k;
SELECT is((SELECT string_agg(DISTINCT customer_id, ',') FROM meter.usage_by_customer('mc_latest', '2023-10-01 10:10Z', '2023-10-20', 'WEEK')),
	'arrived', '… also from a start in the middle of a day with a marked slot');

-- Many customers met only before the start (the groups' arrays grow while the history is read).
INSERT INTO meter.events (id, event_name, customer_id, "timestamp", properties)
SELECT 'h' || g, 'llm', 'hist' || g, '2023-06-01'::timestamptz + g * interval '1 hour', '{"model":"o1","region":"eu","tokens":1}'
FROM generate_series(1, 40) g;
SELECT is((SELECT count(*) FROM meter.usage_by_customer(m, '2023-09-01', '2023-10-01') WHERE customer_id LIKE 'hist%' AND value = 0),
	40::bigint, m || ': 40 customers with events only before the start, each with 0')
FROM unnest(ARRAY['mc_count', 'mc_uniq']) m;
SELECT is((SELECT count(*) FROM meter.usage_by_customer_from_events('mc_count', '2023-09-01', '2023-10-01') WHERE customer_id LIKE 'hist%'),
	40::bigint, '… and from the events');
SELECT cmp_ok(meter.compact(), '>', 0::bigint, 'compact');
SELECT is((SELECT count(*) FROM meter.usage_by_customer('mc_sum', '2023-09-01 00:07Z', '2023-10-01') WHERE customer_id LIKE 'hist%'),
	40::bigint, '… compacted, from an unaligned start');

-- The twins with a source table (not tracked): the same answers from a copy of the events.
CREATE TABLE public.many_copy AS SELECT * FROM meter.events WHERE tenant_id IN ('tap_many', 'tap_many_b');
SELECT is(pg_temp.differ(
	format('(SELECT * FROM meter.usage_by_customer_from_events(%L, %L, %L, %L, %L, %L, %L) WITH ORDINALITY) a', m, s, e, w, z, NULL, 'public.many_copy'),
	format('(SELECT * FROM meter.usage_by_customer_from_events(%L, %L, %L, %L, %L) WITH ORDINALITY) b', m, s, e, w, z)), NULL,
	format('usage_by_customer_from_events(%s, …, source) = from the tracked tables', m))
FROM (VALUES ('mc_never', '2024-01-02 10:31Z'::timestamptz, '2024-03-20'::timestamptz, 'WEEK'::meter.window_size, 'Asia/Kolkata'),
	('mc_latest', '2024-01-02 10:31Z', '2024-03-20', 'DAY', 'UTC')) v(m, s, e, w, z);
SELECT is(pg_temp.differ(
	$$(SELECT * FROM meter.usage_by_group_from_events('mc_maxb', '{model}', '2024-01-01', '2024-04-01', NULL, NULL, 'DAY', 'UTC', NULL, 'public.many_copy') WITH ORDINALITY) a$$,
	$$(SELECT * FROM meter.usage_by_group_from_events('mc_maxb', '{model}', '2024-01-01', '2024-04-01', NULL, NULL, 'DAY', 'UTC', NULL) WITH ORDINALITY) b$$), NULL,
	'usage_by_group_from_events(…, source) = from the tracked tables');
SELECT is(pg_temp.differ(
	$$(SELECT * FROM meter.usage_by_filter_groups_from_events('mc_sum', '[{"id":"o1","filters":{"model":["o1"]}},{"id":"rest"}]', '2024-01-01', '2024-04-01',
		'c1', NULL, 'MONTH', 'UTC', '2024-01-15', 'public.many_copy') WITH ORDINALITY) a$$,
	$$(SELECT * FROM meter.usage_by_filter_groups_from_events('mc_sum', '[{"id":"o1","filters":{"model":["o1"]}},{"id":"rest"}]', '2024-01-01', '2024-04-01',
		'c1', NULL, 'MONTH', 'UTC', '2024-01-15') WITH ORDINALITY) b$$), NULL,
	'usage_by_filter_groups_from_events(…, source) = from the tracked tables');
DELETE FROM public.many_copy WHERE customer_id = 'c4' OR "timestamp" < '2024-01-01';
SELECT is((SELECT string_agg(DISTINCT customer_id, ',') FROM meter.usage_by_customer_from_events('mc_count', '2024-01-01', '2024-01-03',
	source => 'public.many_copy')),
	(SELECT string_agg(DISTINCT customer_id, ',') FROM public.many_copy WHERE tenant_id = 'tap_many' AND event_name = 'llm'
		AND "timestamp" < '2024-01-03' AND meter.matches((SELECT filters FROM meter.meters WHERE id = 'mc_count'), properties)),
	'the source alone: what it holds, nothing of the tracked tables');
SELECT is((SELECT count(*) FROM meter.usage_by_customer_from_events('mc_count', '2024-01-01', '2024-01-03') WHERE customer_id = 'c4'),
	1::bigint, '(c4, not in the source, is in the tracked table)');

-- Odd ids and values: ids that concatenate alike, a long id, quotes and non-ASCII in
-- values, keys and group ids.
SELECT id FROM meter.create_meter('odd', 'odd', '{"type":"SUM","field":"n"}',
	'[{"key":"k \"q\"","values":["a\"b","ü","\\","1e2"]}]', id => 'mc_odd');
INSERT INTO meter.events (event_name, customer_id, external_customer_id, "timestamp", properties) VALUES
	('odd', 'ab', 'c', '2024-01-05', '{"k \"q\"":"a\"b","n":1}'),
	('odd', 'a', 'bc', '2024-01-05', '{"k \"q\"":"ü","n":2}'),
	('odd', '1:a', '', '2024-01-05', '{"k \"q\"":"\\","n":4}'),
	('odd', '1', ':a', '2024-01-05', '{"k \"q\"":100,"n":8}'),
	('odd', repeat('long', 100), repeat('x', 300), '2024-01-05', '{"k \"q\"":1e2,"n":16}'),
	('odd', repeat('long', 100), repeat('x', 299), '2024-01-05', '{"k \"q\"":"1e2","n":32}');
SELECT is((SELECT string_agg(format('%s/%s=%s', left(customer_id, 8), left(external_customer_id, 3) || length(external_customer_id), value), ', ')
	FROM meter.usage_by_customer('mc_odd', '2024-01-01', '2024-02-01')),
	'1/:a2=8, 1:a/0=4, a/bc2=2, ab/c1=1, longlong/xxx299=32, longlong/xxx300=16',
	'customer pairs that concatenate alike stay apart; long ids');
SELECT is((SELECT string_agg(format('%s/%s=%s', left(customer_id, 8), left(external_customer_id, 3) || length(external_customer_id), value), ', ')
	FROM meter.usage_by_customer_from_events('mc_odd', '2024-01-01', '2024-02-01')),
	'1/:a2=8, 1:a/0=4, a/bc2=2, ab/c1=1, longlong/xxx299=32, longlong/xxx300=16', '… the same from the events');
SELECT is((SELECT string_agg(format('%s=%s', g, value), ', ' ORDER BY g::text) FROM meter.usage_by_group('mc_odd', ARRAY['k "q"'],
	'2024-01-01', '2024-02-01') u(g)),
	'{"k \"q\"": "100"}=24, {"k \"q\"": "1e2"}=32, {"k \"q\"": "\\"}=4, {"k \"q\"": "a\"b"}=1, {"k \"q\"": "ü"}=2',
	'group values with quotes, backslashes and non-ASCII; the numbers 100 and 1e2 are "100", the string "1e2" stays');
SELECT is((SELECT string_agg(format('%s=%s', g, value), ', ') FROM meter.usage_by_filter_groups_from_events('mc_odd',
	'[{"id":"prix \"ü\"","filters":{"k \"q\"":["ü","a\"b"]}},{"id":"hundred","filters":{"k \"q\"":["100"]}},{"id":"ε"}]',
	'2024-01-01', '2024-02-01') u(g)), 'prix "ü"=3, hundred=24, ε=36', 'filter groups with such keys, values and ids');

-- ── Tenants and roles ───────────────────────────────────────────────────────────────
CREATE ROLE meter_tap_many_reader NOLOGIN NOSUPERUSER NOBYPASSRLS;
CREATE ROLE meter_tap_many_writer NOLOGIN NOSUPERUSER NOBYPASSRLS;
CREATE ROLE meter_tap_many_nobody NOLOGIN NOSUPERUSER NOBYPASSRLS;
SELECT meter.grant_reader('meter_tap_many_reader');
SELECT meter.grant_writer('meter_tap_many_writer');
-- Run q as role r in tenant t: its first column as text, or 'SQLSTATE: message'.
CREATE FUNCTION pg_temp.as_role(r text, t text, q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE res text; prev text := current_setting('meter.tenant_id');
BEGIN
	PERFORM set_config('meter.tenant_id', t, true);
	EXECUTE format('SET LOCAL ROLE %I', r);
	BEGIN
		EXECUTE q INTO res;
	EXCEPTION WHEN OTHERS THEN
		res := SQLSTATE || ': ' || SQLERRM;
	END;
	RESET ROLE;
	PERFORM set_config('meter.tenant_id', prev, true);
	RETURN res;
END $$;
CREATE TEMP VIEW owner_view AS SELECT pg_temp.bc('mc_count', '2024-01-01', '2024-02-01') AS v;
SELECT is(pg_temp.as_role('meter_tap_many_reader', 'tap_many', $$SELECT pg_temp.bc('mc_count', '2024-01-01', '2024-02-01')$$),
	(SELECT v FROM owner_view), 'a reader of tenant tap_many: its customers (as the owner sees them)');
SELECT is(pg_temp.as_role('meter_tap_many_reader', 'tap_many', $$SELECT pg_temp.bc('mc_count', '2024-01-01', '2024-02-01')$$) ~ 'cb/',
	false, '… none of tenant tap_many_b''s customers (cb)');
SELECT is(pg_temp.as_role('meter_tap_many_reader', 'tap_many_b', $$SELECT pg_temp.bc('mb_count', '2024-01-01', '2024-02-01')$$),
	'c1/=2, c9/=1, cb/=0', 'a reader of tenant tap_many_b: only its customers (c1 with its own events)');
SELECT is(pg_temp.as_role('meter_tap_many_reader', 'tap_many_b',
	$$SELECT string_agg(customer_id || '=' || value, ',' ORDER BY customer_id) FROM meter.usage_by_customer_from_events('mb_count', '2024-01-01', '2024-02-01')$$),
	'c1=2,c9=1,cb=0', '… the same from the events');
SELECT is(pg_temp.as_role('meter_tap_many_reader', 'tap_many_b',
	$$SELECT string_agg(g::text || '=' || value, ',' ORDER BY g::text) FROM meter.usage_by_group('mb_count', '{model}', '2024-01-01', '2024-02-01') u(g)$$),
	'{"model": "gpt-4o"}=2,{"model": "o1"}=1', '… usage_by_group');
SELECT is(pg_temp.as_role('meter_tap_many_reader', 'tap_many_b',
	$$SELECT string_agg(g || '=' || value, ',') FROM meter.usage_by_filter_groups_from_events('mb_count', '[{"id":"eu","filters":{"region":["eu"]}},{"id":"other"}]', '2024-01-01', '2024-02-01') u(g)$$),
	'eu=3,other=0', '… usage_by_filter_groups_from_events');
SELECT is(pg_temp.as_role('meter_tap_many_reader', 'tap_many_b', $$SELECT count(*) FROM meter.usage_by_customer('mc_count', '2024-01-01', '2024-02-01')$$),
	'P0002: meter "mc_count" not found', 'a reader of tenant tap_many_b cannot use tenant tap_many''s meter');
SELECT is(pg_temp.as_role('meter_tap_many_reader', 'tap_many', $$SELECT count(*)::text FROM meter.usage_by_group_from_events('mc_count', '{model}',
	'2024-01-01', '2024-02-01', source => 'meter.events')$$), '4', 'a reader: _from_events with a source');
SELECT is(pg_temp.as_role('meter_tap_many_writer', 'tap_many', $$SELECT count(*) FROM meter.usage_by_customer('mc_count', '2024-01-01', '2024-02-01')$$),
	'42501: permission denied for table meters', 'a writer cannot read usage');
SELECT is(pg_temp.as_role('meter_tap_many_nobody', 'tap_many', $$SELECT count(*) FROM meter.usage_by_filter_groups('mc_count', '[]', '2024-01-01', '2024-02-01')$$),
	'42501: permission denied for schema meter', 'a role without grants cannot either');
SELECT is(pg_temp.as_role('meter_tap_many_reader', 'tap_many', $$SELECT count(*) FROM meter.usage_by_customer('mc_count', '2024-01-01', '2024-02-01')$$
	|| $$ WHERE customer_id = 'cb'$$), '0', 'the reader''s usage_by_customer never shows another tenant''s customer');
-- Another environment of the same tenant: separate meters and usage.
SELECT is(pg_temp.err1($$SELECT set_config('meter.environment_id', 'prod', true); SELECT count(*) FROM meter.usage_by_customer('mc_count', '2024-01-01', '2024-02-01')$$),
	'P0002: meter "mc_count" not found', 'another environment does not see the meter');
SELECT is(current_setting('meter.environment_id'), '', '(environment restored)');

-- ── A hostile search_path changes nothing ───────────────────────────────────────────
-- Look-alikes of what the functions might call (as in 71_search_path.sql), in public,
-- searched first; each counts its calls and raises.
CREATE SEQUENCE public.meter_many_hijack_calls;
CREATE FUNCTION public.meter_many_hijack() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	PERFORM pg_catalog.nextval('public.meter_many_hijack_calls');
	RAISE EXCEPTION 'hijacked';
END $$;
DO $$
DECLARE
	f record;
BEGIN
	FOR f IN SELECT * FROM (VALUES
		('now', '', 'timestamptz'), ('lower', 'text', 'text'), ('upper', 'text', 'text'), ('btrim', 'text', 'text'),
		('length', 'text', 'integer'), ('jsonb_typeof', 'jsonb', 'text'), ('jsonb_each', 'jsonb', 'SETOF record'),
		('jsonb_array_elements', 'jsonb', 'SETOF jsonb'), ('unnest', 'anyarray', 'SETOF anyelement'),
		('array_length', 'anyarray, integer', 'integer'), ('current_setting', 'text', 'text'),
		('current_setting', 'text, boolean', 'text'), ('set_config', 'text, text, boolean', 'text'),
		('format', 'text', 'text'), ('format', 'text, text', 'text'), ('quote_literal', 'text', 'text'),
		('date_bin', 'interval, timestamptz, timestamptz', 'timestamptz'), ('floor', 'numeric', 'numeric'),
		('coalesce', 'text, text', 'text'), ('least', 'date, date', 'date'), ('min', 'date', 'date'),
		('generate_series', 'timestamptz, timestamptz, interval', 'SETOF timestamptz'), ('hashtext', 'text', 'integer'),
		('count', 'text', 'bigint'), ('string_to_array', 'text, text', 'text[]'), ('array_to_string', 'anyarray, text', 'text'),
		('to_char', 'timestamptz, text', 'text'), ('timezone', 'text, timestamptz', 'timestamp'),
		('date_trunc', 'text, timestamptz, text', 'timestamptz'), ('pg_advisory_xact_lock', 'bigint', 'void'),
		('pg_advisory_xact_lock_shared', 'bigint', 'void'), ('regclass', 'text', 'regclass')) AS v(name, args, result)
	LOOP
		EXECUTE pg_catalog.format('CREATE FUNCTION public.%I(%s) RETURNS %s LANGUAGE plpgsql AS %L',
			f.name, f.args, f.result, 'BEGIN PERFORM public.meter_many_hijack(); END');
	END LOOP;
	FOR f IN SELECT v.*, row_number() OVER () AS i FROM (VALUES
		('=', 'text', 'text', 'boolean'), ('<>', 'text', 'text', 'boolean'), ('<', 'text', 'text', 'boolean'),
		('=', 'bigint', 'bigint', 'boolean'), ('=', 'integer', 'integer', 'boolean'), ('<', 'integer', 'integer', 'boolean'),
		('+', 'bigint', 'bigint', 'bigint'), ('+', 'integer', 'integer', 'integer'), ('+', 'numeric', 'numeric', 'numeric'),
		('-', 'numeric', 'numeric', 'numeric'), ('*', 'numeric', 'numeric', 'numeric'), ('/', 'numeric', 'numeric', 'numeric'),
		('<', 'numeric', 'numeric', 'boolean'), ('>', 'numeric', 'numeric', 'boolean'), ('=', 'numeric', 'numeric', 'boolean'),
		('=', 'timestamptz', 'timestamptz', 'boolean'), ('<', 'timestamptz', 'timestamptz', 'boolean'),
		('<=', 'timestamptz', 'timestamptz', 'boolean'), ('>=', 'timestamptz', 'timestamptz', 'boolean'),
		('>', 'timestamptz', 'timestamptz', 'boolean'), ('+', 'timestamptz', 'interval', 'timestamptz'),
		('-', 'timestamptz', 'interval', 'timestamptz'), ('=', 'date', 'date', 'boolean'), ('<=', 'date', 'date', 'boolean'),
		('>=', 'date', 'date', 'boolean'), ('<', 'date', 'date', 'boolean'), ('=', 'smallint', 'smallint', 'boolean'),
		('->>', 'jsonb', 'text', 'text'), ('->', 'jsonb', 'text', 'jsonb'), ('=', 'jsonb', 'jsonb', 'boolean'),
		('||', 'text', 'text', 'text'), ('~', 'text', 'text', 'boolean'), ('=', 'regclass', 'regclass', 'boolean'),
		('=', 'oid', 'oid', 'boolean'), ('=', 'anyenum', 'anyenum', 'boolean'), ('<>', 'anyenum', 'anyenum', 'boolean'),
		('=', 'anyarray', 'anyarray', 'boolean'), ('@>', 'anyarray', 'anyarray', 'boolean')) AS v(op, l, r, result)
	LOOP
		EXECUTE pg_catalog.format('CREATE FUNCTION public.meter_many_hijack_op%s(%s, %s) RETURNS %s LANGUAGE plpgsql AS %L',
			f.i, f.l, f.r, f.result, 'BEGIN PERFORM public.meter_many_hijack(); END');
		EXECUTE pg_catalog.format('CREATE OPERATOR public.%s (LEFTARG = %s, RIGHTARG = %s, FUNCTION = public.meter_many_hijack_op%s)',
			f.op, f.l, f.r, f.i);
	END LOOP;
END $$;
CREATE FUNCTION public.meter_many_hijack_sfunc(numeric, numeric) RETURNS numeric
	LANGUAGE plpgsql AS 'BEGIN PERFORM public.meter_many_hijack(); END';
CREATE AGGREGATE public.sum(numeric) (SFUNC = public.meter_many_hijack_sfunc, STYPE = numeric);
CREATE AGGREGATE public.max(numeric) (SFUNC = public.meter_many_hijack_sfunc, STYPE = numeric);
CREATE AGGREGATE public.min(numeric) (SFUNC = public.meter_many_hijack_sfunc, STYPE = numeric);

CREATE TEMP TABLE hostile_calls (n int, q text);
INSERT INTO hostile_calls VALUES
	(1, $$meter.usage_by_customer('mc_count', '2024-01-01', '2024-04-01', 'DAY', 'Asia/Kolkata')$$),
	(2, $$meter.usage_by_customer('mc_never', '2024-01-02 10:31Z', '2024-03-10 12:00Z', 'MONTH', 'America/New_York', '2023-12-31 10:07Z')$$),
	(3, $$meter.usage_by_customer('mc_uniq', '2024-01-01', '2024-04-01', 'WEEK', '')$$),
	(4, $$meter.usage_by_customer_from_events('mc_maxb', '2024-01-01', '2024-04-01', 'DAY', NULL, NULL, 'meter.events')$$),
	(5, $$meter.usage_by_group('mc_sum', '{region,model}', '2024-01-01 00:07Z', '2024-04-01', NULL, NULL, 'DAY', 'Europe/Berlin')$$),
	(6, $$meter.usage_by_group('mc_maxb', '{model}', '2024-01-01', '2024-04-01', 'c1', '', 'HOUR')$$),
	(7, $$meter.usage_by_group_from_events('mc_latest', '{model}', '2024-01-01', '2024-04-01', NULL, 'x3', 'WEEK')$$),
	(8, $$meter.usage_by_filter_groups('mc_expr', '[{"id":"gpt","filters":{"model":["gpt-4o"]}},{"id":"eu","filters":{"region":["eu"]}},{"id":"rest"}]',
		'2024-01-01', '2024-04-01', NULL, NULL, 'DAY', 'America/New_York')$$),
	(9, $$meter.usage_by_filter_groups_from_events('mc_avg', '[{"id":"1","filters":{"model":["1"]}},{"id":"rest"}]',
		'2024-01-01', '2024-04-01', 'c2', 'x2', 'MONTH', 'UTC', '2024-01-31')$$),
	(10, $$meter.usage_by_customer('mc_sum', '2024-03-01 10:00Z', '2024-03-01 11:00Z', 'MINUTE')$$);
CREATE TEMP TABLE hostile_out (n int, r text);
CREATE TEMP TABLE normal_out AS SELECT n, NULL::text AS r FROM hostile_calls WHERE false;
CREATE FUNCTION pg_temp.hostile(q text) RETURNS text
LANGUAGE plpgsql SET search_path = public, meter, pg_catalog AS $$
BEGIN
	EXECUTE q;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	RETURN pg_catalog.concat(SQLSTATE, ': ', SQLERRM);
END $$;
SELECT is(pg_temp.hostile('SELECT public.lower(''A'')'), 'P0001: hijacked', 'the look-alikes bite a caller''s own query');
DO $$ BEGIN PERFORM setval('public.meter_many_hijack_calls', 1, false); END $$;
DO $$
DECLARE c record;
BEGIN
	FOR c IN SELECT * FROM hostile_calls LOOP
		EXECUTE format('INSERT INTO normal_out SELECT %s, u::text FROM %s WITH ORDINALITY u', c.n, c.q);
	END LOOP;
END $$;
SELECT is(pg_temp.hostile(format('INSERT INTO pg_temp.hostile_out SELECT %s, u::text FROM %s WITH ORDINALITY u', n, q)), 'ok',
	'under a hostile search_path: call ' || n) FROM hostile_calls ORDER BY n;
SELECT is((SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM public.meter_many_hijack_calls), 0::bigint,
	'no look-alike was ever called');
SELECT is(pg_temp.differ('normal_out', 'hostile_out'), NULL, 'the same rows as under the normal search_path');
SELECT cmp_ok((SELECT count(DISTINCT n) FROM normal_out), '=', 10::bigint, 'every call returned rows');
SELECT * FROM finish();
ROLLBACK;
