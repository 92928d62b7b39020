-- meter.filters (SPEC §2): canonical form, every error, casts, accessors, odd input.
CREATE FUNCTION pg_temp.flt(input text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE d text;
BEGIN
	RETURN input::meter.filters::text;
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL;
	RETURN SQLSTATE || ': ' || SQLERRM || coalesce(' | ' || nullif(d, ''), '');
END $$;

-- Valid forms: keys sorted, values de-duplicated and sorted (byte order), no spaces
SELECT input, pg_temp.flt(input) AS canonical FROM (VALUES
	('[]'),
	(' [ ] '),
	('[{"key":"model","values":["gpt-4o","o1-mini"]}]'),
	('[{"values":["o1-mini","gpt-4o","o1-mini"],"key":"model"}]'),
	('[{"key":"region","values":["us"]},{"key":"model","values":["b","a","b","a"]}]'),
	('[{"key":"n","values":["10","9","1.0","1","-1","1e2"]}]'),
	('[{"key":"flag","values":["true","false","TRUE"]}]'),
	('[{"key":"b","values":["Z","a","_","é","É","0"]}]'),
	('[{"key":"é","values":["x"]},{"key":"e","values":["x"]},{"key":"E","values":["x"]},{"key":"ee","values":["x"]}]'),
	('[{"key":"k","values":[""]}]'),
	('[{"key":"k","values":["a \"quoted\" value","back\\slash","tab\tnew\nline","\u00e9"]}]'),
	('[{"key":" spaced key ","values":["v"]}]'),
	('[{"key":"模型","values":["深度求索","🚀"]}]')
) v(input);

-- Every rule, with its SQLSTATE, message and detail
SELECT input, pg_temp.flt(input) AS error FROM (VALUES
	-- not JSON at all: 22P02
	(''),
	('['),
	('[{"key":"a","values":["x"]},]'),
	('[{"key":"a" "values":["x"]}]'),
	('model=gpt-4o'),
	-- not an array
	('{}'),
	('{"key":"model","values":["gpt-4o"]}'),
	('"model"'),
	('null'),
	('1'),
	-- elements must be objects
	('[1]'),
	('["model"]'),
	('[null]'),
	('[[]]'),
	('[{"key":"a","values":["x"]},true]'),
	-- key
	('[{"values":["x"]}]'),
	('[{"key":"","values":["x"]}]'),
	('[{"key":null,"values":["x"]}]'),
	('[{"key":1,"values":["x"]}]'),
	('[{"key":["a"],"values":["x"]}]'),
	('[{"key":{"a":1},"values":["x"]}]'),
	-- values
	('[{"key":"model"}]'),
	('[{"key":"model","values":[]}]'),
	('[{"key":"model","values":null}]'),
	('[{"key":"model","values":"gpt-4o"}]'),
	('[{"key":"model","values":{"a":"b"}}]'),
	('[{"key":"model","values":[1]}]'),
	('[{"key":"model","values":["a",1.5]}]'),
	('[{"key":"model","values":["a",true]}]'),
	('[{"key":"model","values":["a",null]}]'),
	('[{"key":"model","values":["a",["b"]]}]'),
	('[{"key":"model","values":["a",{"b":"c"}]}]'),
	('[{"key":"model","values":[1e5000]}]'),
	-- the same key twice, the same field twice
	('[{"key":"model","values":["a"]},{"key":"model","values":["b"]}]'),
	('[{"key":"model","values":["a"]},{"key":"region","values":["x"]},{"key":"model","values":["a"]}]'),
	('[{"key":"model","key":"region","values":["a"]}]'),
	('[{"key":"model","values":["a"],"values":["b"]}]'),
	-- unknown fields
	('[{"key":"model","values":["a"],"operator":"in"}]'),
	('[{"Key":"model","values":["a"]}]'),
	('[{"key":"model","value":["a"]}]'),
	-- \u0000 cannot be stored in text
	('[{"key":"model","values":["a\u0000b"]}]'),
	('[{"key":"a\u0000","values":["x"]}]')
) v(input);

-- Errors raised directly, then the session still works
\set VERBOSITY sqlstate
SELECT 'not json'::meter.filters;
SELECT '[{"key":"","values":["x"]}]'::meter.filters;
SELECT '[{"key":"m","values":[]}]'::meter.filters;
SELECT '[{"key":"m","values":["a"]},{"key":"m","values":["b"]}]'::meter.filters;
SELECT '[{"key":"m","values":["a"],"x":1}]'::meter.filters;
\set VERBOSITY default
SELECT '[]'::meter.filters AS still_works;

-- Equality of differently written equal filter sets
SELECT '[{"key":"model","values":["a","b"]},{"key":"region","values":["us"]}]'::meter.filters
		= '[{"key":"region","values":["us","us"]},{"values":["b","a","a"],"key":"model"}]' AS reordered_equal,
	'[{"key":"n","values":["1"]}]'::meter.filters <> '[{"key":"n","values":["1.0"]}]' AS values_compare_by_text,
	'[]'::meter.filters = ' [ ] ' AS empty_equal,
	'[]'::meter.filters <> '[{"key":"a","values":["x"]}]' AS empty_differs,
	'[{"key":"a","values":["x"]}]'::meter.filters OPERATOR(meter.=) '[{"values":["x"],"key":"a"}]' AS meter_schema_operator;
SELECT f, count(*) FROM (VALUES ('[{"key":"a","values":["x","y"]}]'::meter.filters),
	('[{"key":"a","values":["y","x"]}]'), ('[]')) v(f) GROUP BY f ORDER BY f::text;
SELECT count(DISTINCT f) AS distinct_filters FROM (VALUES ('[{"key":"a","values":["x","y"]}]'::meter.filters),
	('[{"key":"a","values":["y","x"]}]'), ('[]'), (' []')) v(f);
-- Ordering (btree): key by key, values in order, a prefix first
SELECT f FROM (VALUES ('[{"key":"b","values":["x"]}]'::meter.filters), ('[]'), ('[{"key":"a","values":["y"]}]'),
	('[{"key":"a","values":["x","y"]}]'), ('[{"key":"a","values":["x"]}]'), ('[{"key":"a","values":["x"]},{"key":"b","values":["x"]}]')) v(f) ORDER BY f;
SELECT '[]'::meter.filters OPERATOR(meter.<) '[{"key":"a","values":["x"]}]' AS lt,
	'[{"key":"a","values":["x"]}]'::meter.filters OPERATOR(meter.>=) '[{"key":"a","values":["x","x"]}]' AS ge,
	meter.filters_cmp('[{"key":"b","values":["1"]}]', '[{"key":"a","values":["2"]}]') AS cmp;
SELECT meter.filters_hash('[{"key":"a","values":["x","y"]}]') = meter.filters_hash('[{"key":"a","values":["y","x","x"]}]') AS equal_hashes;

-- jsonb casts both ways (explicit), validating
SELECT '[{"key":"model","values":["o1-mini","gpt-4o"]}]'::meter.filters::jsonb AS to_jsonb;
SELECT '[{"values":["b","a"],"key":"k"}]'::jsonb::meter.filters AS from_jsonb;
SELECT f::jsonb::meter.filters = f AS jsonb_round_trip, f::text::meter.filters = f AS text_round_trip
FROM (VALUES ('[]'::meter.filters), ('[{"key":"a","values":["x"]},{"key":"b","values":["1","2"]}]'),
	('[{"key":"é \"q\"","values":["\\","\n"]}]')) v(f);
\set VERBOSITY sqlstate
SELECT '{"key":"a"}'::jsonb::meter.filters;
SELECT '[{"key":"a","values":[]}]'::jsonb::meter.filters;
\set VERBOSITY default

-- binary send/receive: a version byte then the canonical JSON; receive validates.
-- COPY BINARY through a file in the test cluster's own data directory.
SELECT meter.filters_send('[{"key":"b","values":["y","x"]}]') AS send;
CREATE TEMP TABLE flt_binary (f meter.filters);
INSERT INTO flt_binary VALUES ('[]'), ('[{"key":"model","values":["gpt-4o","o1-mini"]},{"key":"région","values":["eu"]}]');
DO $$ BEGIN EXECUTE format('COPY flt_binary TO %L (FORMAT binary)', current_setting('data_directory') || '/meter_regress_filters.bin'); END $$;
CREATE TEMP TABLE flt_binary2 (f meter.filters);
DO $$ BEGIN EXECUTE format('COPY flt_binary2 FROM %L (FORMAT binary)', current_setting('data_directory') || '/meter_regress_filters.bin'); END $$;
SELECT f FROM flt_binary2 ORDER BY f::text;
SELECT (SELECT array_agg(f::text ORDER BY f::text) FROM flt_binary) = (SELECT array_agg(f::text ORDER BY f::text) FROM flt_binary2) AS binary_round_trip;
-- receive validates: a text column's binary form is its raw bytes, so it can fake ours
CREATE FUNCTION pg_temp.recv_filters(payload text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE d text;
BEGIN
	EXECUTE format('COPY (SELECT %L::text) TO %L (FORMAT binary)', payload, current_setting('data_directory') || '/meter_regress_filters_bad.bin');
	EXECUTE format('COPY flt_binary2 FROM %L (FORMAT binary)', current_setting('data_directory') || '/meter_regress_filters_bad.bin');
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL;
	RETURN SQLSTATE || ': ' || SQLERRM || coalesce(' | ' || nullif(d, ''), '');
END $$;
SELECT pg_temp.recv_filters(chr(1) || '[{"key":"","values":["x"]}]') AS bad_value,
	pg_temp.recv_filters(chr(2) || '[{"key":"","values":["x"]}]') AS bad_version,
	pg_temp.recv_filters(chr(1) || 'not json') AS not_json,
	pg_temp.recv_filters('') AS empty;

-- Accessors
SELECT meter.filter_keys(f) AS keys, meter.filter_values(f, 'model') AS model, meter.filter_values(f, 'region') AS region,
	meter.filter_values(f, 'nope') IS NULL AS unknown_key_null, meter.filter_values(f, '') IS NULL AS empty_key_null
FROM (VALUES ('[{"key":"region","values":["us","eu"]},{"key":"model","values":["o1-mini","gpt-4o","o1-mini"]}]'::meter.filters)) v(f);
SELECT meter.filter_keys('[]') AS no_keys, cardinality(meter.filter_keys('[]')) AS zero,
	meter.filter_values('[]', 'model') IS NULL AS none;
SELECT meter.filter_keys('[{"key":"模型","values":["🚀"]}]'), meter.filter_values('[{"key":"模型","values":["🚀"]}]', '模型');
SELECT meter.filter_keys(NULL) IS NULL AS strict_keys, meter.filter_values('[]', NULL) IS NULL AS strict_values;

-- Large and odd input: many keys and values, a 1 MB value, deep nesting
SELECT cardinality(meter.filter_keys(f)) AS nkeys, cardinality(meter.filter_values(f, 'k0042')) AS nvalues
FROM (SELECT ('[' || string_agg(format('{"key":"k%s","values":[%s]}', lpad(i::text, 4, '0'),
		(SELECT string_agg(format('"v%s"', j % 50), ',') FROM generate_series(1, 100) j)), ',') || ']')::meter.filters AS f
	FROM generate_series(1, 1000) i) s;
CREATE TEMP TABLE flt_big (f meter.filters);
INSERT INTO flt_big SELECT ('[{"key":"blob","values":["' || repeat('x', 1024 * 1024) || '","small"]}]')::meter.filters;
SELECT length(f::text) AS text_length, (meter.filter_values(f, 'blob'))[1] AS first_value,
	length((meter.filter_values(f, 'blob'))[2]) AS second_value_length FROM flt_big;
SELECT meter.matches(f, jsonb_build_object('blob', repeat('x', 1024 * 1024))) AS big_matches,
	meter.matches(f, jsonb_build_object('blob', repeat('x', 1024 * 1024 - 1))) AS shorter_does_not FROM flt_big;
SELECT pg_temp.flt(repeat('[', 10000) || repeat(']', 10000)) AS deep_array;
SELECT pg_temp.flt('[{"key":"a","values":["x"],"extra":' || repeat('[', 5000) || repeat(']', 5000) || '}]') AS deep_value;
SELECT pg_temp.flt(repeat('[', 1000000) || repeat(']', 1000000)) AS too_deep;
SELECT '[]'::meter.filters AS still_works;
