-- Filter matching (SPEC §3): meter.matches(filters, properties) and meter.explain_filters.
CREATE TEMP TABLE cases (filters meter.filters, properties jsonb);

-- The value table of §3: strings by text, numbers by value, booleans as "true"/"false"
SELECT v AS property, meter.matches('[{"key":"k","values":["1"]}]', jsonb_build_object('k', v)) AS matches_1,
	meter.matches('[{"key":"k","values":["1.0"]}]', jsonb_build_object('k', v)) AS matches_1_0,
	meter.matches('[{"key":"k","values":["true"]}]', jsonb_build_object('k', v)) AS matches_true,
	meter.matches('[{"key":"k","values":["x"]}]', jsonb_build_object('k', v)) AS matches_x
FROM (VALUES ('1'::jsonb), ('1.0'), ('1.000'), ('1e0'), ('10e-1'), ('0.1e1'), ('"1"'), ('"1.0"'), ('"01"'), ('" 1"'),
	('2'), ('-1'), ('true'), ('false'), ('"true"'), ('"TRUE"'), ('"x"'), ('"X"'), ('null'), ('"null"'),
	('[]'), ('["1"]'), ('{}'), ('{"k":"1"}'), ('""')) t(v);

-- Filter values that are numbers in other spellings; values that only look like numbers
SELECT f AS filter_value, v AS property,
	meter.matches(jsonb_build_array(jsonb_build_object('key', 'n', 'values', jsonb_build_array(f)))::meter.filters,
		jsonb_build_object('n', v)) AS matches
FROM (VALUES ('100', '1e2'::jsonb), ('1e2', '100'), ('1E+2', '100.00'), ('-0', '0'), ('0', '-0.0'), ('0.5', '5e-1'),
	('-2.50', '-2.5'), ('01', '1'), ('1.', '1'), ('.5', '0.5'), ('+1', '1'), ('1e2', '"100"'), ('100', '"1e2"'),
	('1e2', '"1e2"'), ('NaN', '"NaN"'), ('Infinity', '"Infinity"'),
	('123456789012345678901234567890.5', '123456789012345678901234567890.50'),
	('0.000000000000000000000000000001', '1e-30')) t(f, v);

-- Missing keys, null, objects, arrays never match; empty filters match everything
SELECT p AS properties, meter.matches('[{"key":"model","values":["gpt-4o"]}]', p) AS one_filter,
	meter.matches('[]', p) AS no_filters
FROM (VALUES ('{}'::jsonb), ('{"model":"gpt-4o"}'), ('{"Model":"gpt-4o"}'), ('{"model":null}'),
	('{"model":["gpt-4o"]}'), ('{"model":{"name":"gpt-4o"}}'), ('{"nested":{"model":"gpt-4o"}}'),
	('[]'), ('["model"]'), ('[{"model":"gpt-4o"}]'), ('"gpt-4o"'), ('null'), ('42')) t(p);

-- Several keys: every key must match (AND), any value within a key (OR)
SELECT p AS properties, meter.matches('[{"key":"model","values":["gpt-4o","o1-mini"]},{"key":"region","values":["us","eu"]},{"key":"tier","values":["1","pro"]}]', p)
FROM (VALUES ('{"model":"gpt-4o","region":"us","tier":1}'::jsonb), ('{"model":"o1-mini","region":"eu","tier":"pro","extra":[1,2]}'),
	('{"model":"gpt-4o","region":"us"}'), ('{"model":"gpt-4o","region":"ap","tier":1}'), ('{"model":"gpt-5","region":"us","tier":1}'),
	('{"model":"gpt-4o","region":"us","tier":1.0}'), ('{"model":"gpt-4o","region":"us","tier":"1.0"}'),
	('{"model":"gpt-4o","region":"us","tier":"PRO"}')) t(p);

-- Non-ASCII keys and values, empty-string values, long and many values
SELECT meter.matches('[{"key":"模型","values":["深度求索","🚀"]}]', '{"模型":"🚀"}') AS cjk_emoji,
	meter.matches('[{"key":"é","values":["ü"]}]', '{"é":"ü"}') AS accented,
	meter.matches('[{"key":"é","values":["ü"]}]', '{"é":"u"}') AS accent_differs,
	meter.matches('[{"key":"k","values":[""]}]', '{"k":""}') AS empty_value,
	meter.matches('[{"key":"k","values":[""]}]', '{"k":null}') AS empty_is_not_null,
	meter.matches('[{"key":"a \"b\"","values":["c\\d"]}]', '{"a \"b\"":"c\\d"}') AS escapes;
SELECT count(*) FILTER (WHERE meter.matches(f, jsonb_build_object('k', 'v' || i))) AS matched
FROM (SELECT ('[{"key":"k","values":[' || string_agg(format('"v%s"', j), ',') || ']}]')::meter.filters AS f
	FROM generate_series(1, 5000, 2) j) s, generate_series(1, 5000) i;
SELECT meter.matches('[{"key":"k","values":["a","b"]}]', jsonb_build_object('k', repeat('a', 1024 * 1024))) AS long_property;

-- The per-call cache: different filters in one query (same expression) never get mixed up
INSERT INTO cases VALUES ('[{"key":"a","values":["1"]}]', '{"a":1}'), ('[{"key":"a","values":["2"]}]', '{"a":1}'),
	('[{"key":"a","values":["1"]}]', '{"a":"1"}'), ('[]', '{"a":1}'), ('[{"key":"b","values":["1"]}]', '{"a":1}'),
	('[{"key":"a","values":["1"]}]', '{"a":2}');
SELECT filters, properties, meter.matches(filters, properties), meter.explain_filters(filters, properties) FROM cases;

-- NULL in, NULL out (STRICT)
SELECT meter.matches(NULL, '{}') IS NULL AS null_filters, meter.matches('[]', NULL) IS NULL AS null_properties;

-- Explanations: the first failing filter, numbers shown as written
SELECT p AS properties, meter.explain_filters('[{"key":"model","values":["gpt-4o"]},{"key":"region","values":["eu","us"]},{"key":"tier","values":["1","pro"]}]', p) AS why
FROM (VALUES ('{"model":"gpt-4o","region":"us","tier":1}'::jsonb), ('{"model":"gpt-5","region":"us","tier":1}'),
	('{"model":"gpt-4o","tier":1}'), ('{"model":"gpt-4o","region":null,"tier":1}'), ('{"model":"gpt-4o","region":{"x":1},"tier":1}'),
	('{"model":"gpt-4o","region":["us"],"tier":1}'), ('{"model":"gpt-4o","region":"us","tier":2.50}'),
	('{"model":"gpt-4o","region":"us","tier":1e3}'), ('{"model":"gpt-4o","region":"us","tier":true}'),
	('{"model":"gpt-4o","region":"us","tier":"Pro \"x\""}'), ('[]'), ('"str"')) t(p);
SELECT meter.explain_filters(('[{"key":"k","values":[' || string_agg(format('"v%s"', lpad(j::text, 2, '0')), ',') || ']}]')::meter.filters,
	'{"k":"nope"}') AS long_list FROM generate_series(1, 25) j;
SELECT meter.explain_filters(('[{"key":"k","values":["' || repeat('é', 60) || '"]}]')::meter.filters,
	jsonb_build_object('k', repeat('ü', 1024 * 1024))) AS long_values_cut;

-- In a WHERE clause next to the hand-written predicate it replaces: same rows
CREATE TEMP TABLE ev AS SELECT i, jsonb_build_object('model', (ARRAY['gpt-4o','o1-mini','gpt-5'])[1 + i % 3],
	'region', (ARRAY['us','eu'])[1 + i % 2], 'tokens', i) AS properties FROM generate_series(1, 3000) i;
SELECT count(*) AS c_matcher FROM ev
WHERE meter.matches('[{"key":"model","values":["gpt-4o","o1-mini"]},{"key":"region","values":["us"]}]', properties);
SELECT count(*) AS hand_written FROM ev
WHERE properties->>'model' IN ('gpt-4o', 'o1-mini') AND properties->>'region' = 'us';

-- Numbers and identities as the aggregate reads them (meter.numeric_value, meter.unique_value)
SELECT v AS property, meter.numeric_value(jsonb_build_object('f', v), 'f') AS numeric_value,
	meter.unique_value(jsonb_build_object('f', v), 'f') AS unique_value
FROM (VALUES ('2'::jsonb), ('2.0'), ('2.50'), ('"2"'), ('"2.0"'), ('"2.50"'), ('1e2'), ('"1E2"'), ('-0'), ('"-0.0"'),
	('-3.25'), ('"abc"'), ('""'), ('" 2"'), ('"2 "'), ('"+2"'), ('"02"'), ('"2."'), ('".5"'), ('"NaN"'), ('"Infinity"'),
	('"-Infinity"'), ('"1e1001"'), ('"1e-1001"'), ('true'), ('false'), ('"true"'), ('null'), ('"null"'),
	('{"b":1,"a":[1,2]}'), ('[1,"x"]'), ('{}'), ('[]')) t(v);
SELECT meter.numeric_value('{"f":1}', 'g') IS NULL AS missing_numeric, meter.unique_value('{"f":1}', 'g') IS NULL AS missing_unique,
	meter.numeric_value('[1]', 'f') IS NULL AS array_props, meter.unique_value('"x"', 'f') IS NULL AS scalar_props,
	meter.numeric_value('{"f":1}', NULL) IS NULL AS strict;
SELECT count(DISTINCT meter.unique_value(p, 'u')) AS distinct_values
FROM (VALUES ('{"u":2}'::jsonb), ('{"u":2.0}'), ('{"u":"2"}'), ('{"u":"2.00"}'), ('{"u":20e-1}'), ('{"u":"x"}'), ('{"u":null}'), ('{}')) t(p);
-- number-syntax strings near numeric's limits never raise an error
SELECT length(meter.numeric_value(jsonb_build_object('f', '1e1000'), 'f')::text) AS e1000,
	meter.numeric_value(jsonb_build_object('f', '1e-1000'), 'f') > 0 AS e_minus_1000,
	meter.numeric_value(jsonb_build_object('f', '0.' || repeat('0', 16382) || '1'), 'f') > 0 AS scale_16383,
	meter.numeric_value(jsonb_build_object('f', '0.' || repeat('0', 16383) || '1'), 'f') IS NULL AS scale_16384,
	meter.numeric_value(jsonb_build_object('f', '1' || repeat('0', 131071)), 'f') > 0 AS digits_131072,
	meter.numeric_value(jsonb_build_object('f', '1' || repeat('0', 131072)), 'f') IS NULL AS digits_131073,
	meter.numeric_value(jsonb_build_object('f', '1' || repeat('0', 130071) || 'e1000'), 'f') > 0 AS digits_with_exponent,
	meter.numeric_value(jsonb_build_object('f', '1' || repeat('0', 130072) || 'e1000'), 'f') IS NULL AS too_many_with_exponent,
	meter.numeric_value(jsonb_build_object('f', '0.' || repeat('0', 15382) || '1e-1000'), 'f') > 0 AS scale_with_exponent,
	meter.numeric_value(jsonb_build_object('f', '0.' || repeat('0', 15383) || '1e-1000'), 'f') IS NULL AS too_precise_with_exponent,
	meter.numeric_value(jsonb_build_object('f', '1e00000000000000000000000000001'), 'f') AS long_exponent;
