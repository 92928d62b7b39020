-- meter.matching_meters against the definition of matching (SPEC §3). matching_meters
-- answers from the compiled set's (filter key, value) index; meter.matches tests one
-- meter's filters; a SQL oracle below restates SPEC §3 with jsonb operators and numeric
-- casts and shares no code with either. Many meters × random properties (numbers by
-- value, booleans, strings that look like numbers, null, objects, arrays, missing keys,
-- empty filters), so the index cannot silently disagree with the definition.
BEGIN;
SET client_min_messages = warning;
SELECT plan(24);

SET LOCAL meter.tenant_id = 'match_idx';

-- SPEC §3 in SQL: every filter key present with a value equal to one of its values.
CREATE FUNCTION pg_temp.oracle(f jsonb, p jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
	SELECT jsonb_typeof(p) = 'object' AND NOT EXISTS (
		SELECT 1 FROM jsonb_array_elements(f) AS k
		WHERE NOT CASE jsonb_typeof(p -> (k ->> 'key'))
			WHEN 'string' THEN (p ->> (k ->> 'key')) IN (SELECT jsonb_array_elements_text(k -> 'values'))
			WHEN 'boolean' THEN (p ->> (k ->> 'key')) IN (SELECT jsonb_array_elements_text(k -> 'values'))
			WHEN 'number' THEN EXISTS (
				SELECT 1 FROM jsonb_array_elements_text(k -> 'values') AS v
				WHERE v ~ '^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$'
					AND v::numeric = (p -> (k ->> 'key'))::numeric)
			ELSE false
		END)
	OR jsonb_array_length(f) = 0
$$;

-- A random filter set over keys k1..k4 and a pool of values with look-alikes.
CREATE FUNCTION pg_temp.random_filters() RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
	pool text[] := ARRAY['a', 'b', 'A', '', ' a', '1', '1.0', '01', '2.50', '2.5', '-0', '0', '1e2',
		'100', '+1', '.5', 'true', 'false', 'True', 'null', '[]', '{}', 'gpt-4o', 'eu'];
	parts text[] := '{}';
	vals text[];
BEGIN
	IF random() < 0.2 THEN
		RETURN '[]';
	END IF;
	FOR k IN 1..4 LOOP
		CONTINUE WHEN random() < 0.55;
		vals := '{}';
		FOR v IN 1..1 + floor(random() * 3)::int LOOP
			vals := vals || pool[1 + floor(random() * cardinality(pool))::int];
		END LOOP;
		parts := parts || format('{"key":"k%s","values":%s}', k, to_jsonb(vals));
	END LOOP;
	RETURN '[' || array_to_string(parts, ',') || ']';
END $$;

-- Random properties: each of k1..k4 missing, null, a string, a number, a boolean, an
-- object or an array; sometimes not an object at all.
CREATE FUNCTION pg_temp.random_properties() RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
	scalars jsonb[] := ARRAY['"a"', '"b"', '"A"', '""', '" a"', '"1"', '"1.0"', '"01"', '"2.5"', '"100"',
		'"true"', '"gpt-4o"', '"eu"', '1', '1.0', '1.00', '1e0', '2.5', '2.50', '100', '1e2', '0', '-0',
		'-0.0', '0.5', '1', 'true', 'false', 'null', '{}', '{"k1":"a"}', '[]', '["a"]']::jsonb[];
	p jsonb := '{}';
BEGIN
	IF random() < 0.03 THEN
		RETURN (ARRAY['[]', '"a"', '1', '[{"k1":"a"}]']::jsonb[])[1 + floor(random() * 4)::int];
	END IF;
	FOR k IN 1..4 LOOP
		CONTINUE WHEN random() < 0.2;
		p := p || jsonb_build_object('k' || k, scalars[1 + floor(random() * cardinality(scalars))::int]);
	END LOOP;
	RETURN p || '{"other":1}';
END $$;

SELECT setseed(0.17);
SELECT meter.create_meter('idx.evt', 'meter ' || i, filters => pg_temp.random_filters()::meter.filters,
	id => 'idx_' || lpad(i::text, 4, '0'))
FROM generate_series(1, 150) AS i;
-- Another event name with more meters than the matcher keeps on its stack (1,024).
SELECT meter.create_meter('idx.big', 'big ' || i,
	filters => CASE WHEN i % 7 = 0 THEN '[]' ELSE format('[{"key":"k%s","values":["%s"]}]', 1 + i % 3, i % 11) END::meter.filters,
	id => 'big_' || lpad(i::text, 4, '0'))
FROM generate_series(1, 1100) AS i;
-- Archived meters and meters of other event names never match.
SELECT meter.create_meter('idx.evt', 'archived', id => 'idx_archived');
SELECT meter.disable_meter('idx_archived');
SELECT meter.create_meter('idx.other', 'other', id => 'idx_other');

CREATE TEMP TABLE props AS
	SELECT g, pg_temp.random_properties() AS p FROM generate_series(1, 400) AS g;
INSERT INTO props VALUES (401, '{"k1":"a","k2":"b","k3":"1","k4":"true"}'), (402, '{}'),
	(403, '{"k1":1,"k2":2.5,"k3":100,"k4":true}'), (404, '{"k1":false,"k2":0,"k3":-0.0,"k4":"false"}');

CREATE TEMP TABLE got AS
	SELECT g, m.id FROM props CROSS JOIN LATERAL meter.matching_meters('idx.evt', p) AS m;
CREATE TEMP TABLE want AS
	SELECT g, m.id FROM props JOIN meter.meters AS m ON m.tenant_id = 'match_idx'
		AND m.event_name = 'idx.evt' AND m.status = 'published' AND meter.matches(m.filters, p);
CREATE TEMP TABLE spec AS
	SELECT g, m.id FROM props JOIN meter.meters AS m ON m.tenant_id = 'match_idx'
		AND m.event_name = 'idx.evt' AND m.status = 'published' AND pg_temp.oracle(m.filters::jsonb, p);

SELECT is((SELECT count(*) FROM ((TABLE got EXCEPT ALL TABLE want) UNION ALL (TABLE want EXCEPT ALL TABLE got)) AS d),
	0::bigint, 'matching_meters = meters whose filters meter.matches, for 404 events x 150 meters');
SELECT is((SELECT count(*) FROM ((TABLE spec EXCEPT ALL TABLE want) UNION ALL (TABLE want EXCEPT ALL TABLE spec)) AS d),
	0::bigint, 'meter.matches = the SQL restatement of SPEC §3 on the same pairs');
SELECT cmp_ok((SELECT count(*) FROM got), '>', 1500::bigint, 'the random cases match often enough to mean something');
SELECT cmp_ok((SELECT count(*) FROM got g JOIN meter.meters m USING (id) WHERE m.filters <> '[]'), '>', 300::bigint,
	'... meters with filters included');
SELECT cmp_ok((SELECT count(*) FROM props JOIN meter.meters m ON m.event_name = 'idx.evt' AND m.status = 'published'
	AND m.filters <> '[]' AND NOT meter.matches(m.filters, p)), '>', 20000::bigint, '... and fail often enough');
SELECT is((SELECT count(*) FROM got WHERE id IN ('idx_archived', 'idx_other')), 0::bigint,
	'archived meters and meters of other event names never match');
SELECT ok(NOT EXISTS (
	SELECT 1 FROM props
	WHERE ARRAY(SELECT id FROM meter.matching_meters('idx.evt', p)) <> ARRAY(SELECT id FROM got WHERE got.g = props.g ORDER BY id COLLATE "C")),
	'rows come in meter-id order');

CREATE TEMP TABLE big_got AS
	SELECT g, m.id FROM props CROSS JOIN LATERAL meter.matching_meters('idx.big', p) AS m;
CREATE TEMP TABLE big_want AS
	SELECT g, m.id FROM props JOIN meter.meters AS m ON m.tenant_id = 'match_idx'
		AND m.event_name = 'idx.big' AND m.status = 'published' AND meter.matches(m.filters, p);
SELECT is((SELECT count(*) FROM ((TABLE big_got EXCEPT ALL TABLE big_want) UNION ALL (TABLE big_want EXCEPT ALL TABLE big_got)) AS d),
	0::bigint, 'the same with 1,100 meters on one event name');
SELECT cmp_ok((SELECT count(*) FROM big_got), '>', 50000::bigint, '... which match often');

-- The rules one by one (SPEC §3), on a small set of meters of their own.
SELECT meter.create_meter('rules', r.id, filters => r.f::meter.filters, id => r.id)
FROM (VALUES ('r_one', '[{"key":"n","values":["1"]}]'),
	('r_one_dot', '[{"key":"n","values":["1.0"]}]'),
	('r_true', '[{"key":"b","values":["true"]}]'),
	('r_text', '[{"key":"s","values":["gpt-4o","o1"]}]'),
	('r_all', '[]'),
	('r_two', '[{"key":"n","values":["1"]},{"key":"s","values":["o1"]}]')) AS r(id, f);

CREATE FUNCTION pg_temp.ids(p jsonb) RETURNS text LANGUAGE sql AS $$
	SELECT COALESCE(string_agg(id, ','), '') FROM meter.matching_meters('rules', p)
$$;
SELECT is(pg_temp.ids('{"n":1}'), 'r_all,r_one,r_one_dot', 'number 1 matches "1" and "1.0"');
SELECT is(pg_temp.ids('{"n":1.0}'), 'r_all,r_one,r_one_dot', 'number 1.0 matches "1" and "1.0"');
SELECT is(pg_temp.ids('{"n":1e0}'), 'r_all,r_one,r_one_dot', 'number 1e0 matches by value');
SELECT is(pg_temp.ids('{"n":"1"}'), 'r_all,r_one', 'string "1" matches "1" only (by text)');
SELECT is(pg_temp.ids('{"n":"1.0"}'), 'r_all,r_one_dot', 'string "1.0" does not match "1"');
SELECT is(pg_temp.ids('{"n":2}'), 'r_all', 'another number matches nothing');
SELECT is(pg_temp.ids('{"b":true}'), 'r_all,r_true', 'true matches "true"');
SELECT is(pg_temp.ids('{"b":"true"}'), 'r_all,r_true', 'the string "true" matches "true"');
SELECT is(pg_temp.ids('{"b":false}'), 'r_all', 'false does not match "true"');
SELECT is(pg_temp.ids('{"n":null,"b":null,"s":null}'), 'r_all', 'null never matches');
SELECT is(pg_temp.ids('{"s":["o1"],"n":{"x":1}}'), 'r_all', 'arrays and objects never match');
SELECT is(pg_temp.ids('{"s":"o1","n":1}'), 'r_all,r_one,r_one_dot,r_text,r_two', 'every key of a meter must match');
SELECT is(pg_temp.ids('[1]'), 'r_all', 'properties that are not an object match only empty filters');
SELECT is(pg_temp.ids('{}'), 'r_all', 'missing keys never match; empty filters match every event');
SELECT is((SELECT count(*) FROM meter.matching_meters('no.such.event', '{"n":1}')), 0::bigint,
	'an event name without meters matches nothing');

SELECT * FROM finish();
ROLLBACK;
