-- meter.aggregation (SPEC §2): valid forms, canonical output, every error, casts, accessors.
-- try(): the canonical text of an input, or SQLSTATE: message | detail.
CREATE FUNCTION pg_temp.agg(input text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE d text;
BEGIN
	RETURN input::meter.aggregation::text;
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL;
	RETURN SQLSTATE || ': ' || SQLERRM || coalesce(' | ' || nullif(d, ''), '');
END $$;

-- Valid forms and their canonical text (keys type, field, multiplier, bucket_size; no spaces)
SELECT input, pg_temp.agg(input) AS canonical FROM (VALUES
	('{"type":"COUNT"}'),
	('{ "type" : "COUNT" , "field" : "" }'),
	('{"type":"COUNT","field":null}'),
	('{"type":"COUNT","field":"request_id"}'),
	('{"type":"SUM","field":"tokens"}'),
	('{"field":"tokens","type":"SUM"}'),
	('{"type":"AVG","field":"latency_ms"}'),
	('{"type":"COUNT_UNIQUE","field":"user"}'),
	('{"type":"MAX","field":"gb"}'),
	('{"type":"MIN","field":"gb"}'),
	('{"type":"LATEST","field":"seats"}'),
	('{"type":"WEIGHTED_SUM","field":"gb"}'),
	('{"type":"SUM_WITH_MULTIPLIER","field":"tokens","multiplier":1.5}'),
	('{"type":"SUM_WITH_MULTIPLIER","field":"tokens","multiplier":"1.5"}'),
	('{"multiplier":1.50,"field":"tokens","type":"SUM_WITH_MULTIPLIER"}'),
	('{"type":"SUM_WITH_MULTIPLIER","field":"tokens","multiplier":0.1}'),
	('{"type":"SUM_WITH_MULTIPLIER","field":"tokens","multiplier":1e2}'),
	('{"type":"SUM_WITH_MULTIPLIER","field":"tokens","multiplier":"2.0E-3"}'),
	('{"type":"SUM_WITH_MULTIPLIER","field":"tokens","multiplier":0.000000000000000000000000000001}'),
	('{"type":"SUM_WITH_MULTIPLIER","field":"tokens","multiplier":123456789012345678901234567890.123456789}'),
	('{"type":"SUM_WITH_MULTIPLIER","field":"tokens","multiplier":1,"bucket_size":null}'),
	('{"type":"SUM","field":"tokens","multiplier":null}'),
	('{"type":"MAX","field":"gb","bucket_size":"HOUR"}'),
	('{"type":"SUM","field":"gb","bucket_size":"15MIN"}'),
	('{"bucket_size":"MONTH","type":"MAX","field":"gb"}'),
	('{"type":"MAX","field":"gb","bucket_size":""}'),
	('{"type":"MAX","field":"gb","bucket_size":null}'),
	('{"type":"SUM","field":"a \"quoted\" field\\with\/slash"}'),
	('{"type":"SUM","field":"tökens_数量"}'),
	('{"type":"SUM","field":"\u00e9t\u00e9"}'),
	('{"type":"SUM","field":" "}')
) v(input);

-- Every rule, with its SQLSTATE, message and detail
SELECT input, pg_temp.agg(input) AS error FROM (VALUES
	-- not JSON at all: 22P02
	(''),
	('nope'),
	('{"type":"SUM"'),
	('{"type":"SUM",}'),
	('{type:"SUM"}'),
	('{"type":''SUM''}'),
	('{"type":"COUNT"} x'),
	-- not an object
	('[]'),
	('"COUNT"'),
	('null'),
	('42'),
	-- type
	('{}'),
	('{"field":"tokens"}'),
	('{"type":"sum","field":"tokens"}'),
	('{"type":"Sum","field":"tokens"}'),
	('{"type":"SUM ","field":"tokens"}'),
	('{"type":"","field":"tokens"}'),
	('{"type":null}'),
	('{"type":1}'),
	('{"type":["SUM"]}'),
	('{"type":{"name":"SUM"}}'),
	('{"type":true}'),
	('{"type":"DISTINCT","field":"x"}'),
	-- duplicate keys
	('{"type":"COUNT","type":"SUM"}'),
	('{"type":"SUM","field":"a","field":"b"}'),
	-- field
	('{"type":"SUM"}'),
	('{"type":"SUM","field":""}'),
	('{"type":"SUM","field":null}'),
	('{"type":"AVG"}'),
	('{"type":"COUNT_UNIQUE"}'),
	('{"type":"MAX"}'),
	('{"type":"MIN"}'),
	('{"type":"LATEST"}'),
	('{"type":"WEIGHTED_SUM"}'),
	('{"type":"SUM_WITH_MULTIPLIER","multiplier":2}'),
	('{"type":"SUM","field":1}'),
	('{"type":"SUM","field":["a"]}'),
	('{"type":"SUM","field":{"a":1}}'),
	('{"type":"SUM","field":false}'),
	-- multiplier
	('{"type":"SUM_WITH_MULTIPLIER","field":"tokens"}'),
	('{"type":"SUM_WITH_MULTIPLIER","field":"tokens","multiplier":null}'),
	('{"type":"SUM_WITH_MULTIPLIER","field":"tokens","multiplier":0}'),
	('{"type":"SUM_WITH_MULTIPLIER","field":"tokens","multiplier":0.0}'),
	('{"type":"SUM_WITH_MULTIPLIER","field":"tokens","multiplier":-0}'),
	('{"type":"SUM_WITH_MULTIPLIER","field":"tokens","multiplier":-1.5}'),
	('{"type":"SUM_WITH_MULTIPLIER","field":"tokens","multiplier":"-1"}'),
	('{"type":"SUM_WITH_MULTIPLIER","field":"tokens","multiplier":"abc"}'),
	('{"type":"SUM_WITH_MULTIPLIER","field":"tokens","multiplier":""}'),
	('{"type":"SUM_WITH_MULTIPLIER","field":"tokens","multiplier":" 1.5"}'),
	('{"type":"SUM_WITH_MULTIPLIER","field":"tokens","multiplier":"1.5 "}'),
	('{"type":"SUM_WITH_MULTIPLIER","field":"tokens","multiplier":"NaN"}'),
	('{"type":"SUM_WITH_MULTIPLIER","field":"tokens","multiplier":"Infinity"}'),
	('{"type":"SUM_WITH_MULTIPLIER","field":"tokens","multiplier":"+1"}'),
	('{"type":"SUM_WITH_MULTIPLIER","field":"tokens","multiplier":"1e5000"}'),
	('{"type":"SUM_WITH_MULTIPLIER","field":"tokens","multiplier":1e5000}'),
	('{"type":"SUM_WITH_MULTIPLIER","field":"tokens","multiplier":true}'),
	('{"type":"SUM_WITH_MULTIPLIER","field":"tokens","multiplier":[1]}'),
	('{"type":"SUM_WITH_MULTIPLIER","field":"tokens","multiplier":{"v":1}}'),
	('{"type":"SUM","field":"tokens","multiplier":2}'),
	('{"type":"COUNT","multiplier":2}'),
	('{"type":"MAX","field":"gb","multiplier":"abc"}'),
	-- bucket_size
	('{"type":"MAX","field":"gb","bucket_size":"hour"}'),
	('{"type":"MAX","field":"gb","bucket_size":"2HOUR"}'),
	('{"type":"MAX","field":"gb","bucket_size":60}'),
	('{"type":"MAX","field":"gb","bucket_size":1e5000}'),
	('{"type":"MAX","field":"gb","bucket_size":["HOUR"]}'),
	('{"type":"MIN","field":"gb","bucket_size":"HOUR"}'),
	('{"type":"COUNT","bucket_size":"HOUR"}'),
	('{"type":"AVG","field":"gb","bucket_size":"DAY"}'),
	('{"type":"SUM_WITH_MULTIPLIER","field":"gb","multiplier":2,"bucket_size":"DAY"}'),
	-- unknown keys
	('{"type":"COUNT","extra":1}'),
	('{"type":"COUNT","Type":"SUM"}'),
	('{"type":"SUM","field":"tokens","fields":"x"}'),
	('{"type":"COUNT","":1}'),
	('{"type":"COUNT","x":1e5000}'),
	-- \u0000 cannot be stored in text
	('{"type":"SUM","field":"a\u0000b"}')
) v(input);

-- Errors raised directly, then the session still works
\set VERBOSITY sqlstate
SELECT 'nope'::meter.aggregation;
SELECT '{"type":"SUM"}'::meter.aggregation;
SELECT '{"type":"SUM_WITH_MULTIPLIER","field":"x"}'::meter.aggregation;
SELECT '{"type":"SUM_WITH_MULTIPLIER","field":"x","multiplier":0}'::meter.aggregation;
SELECT '{"type":"sum"}'::meter.aggregation;
SELECT '{"type":"COUNT","extra":true}'::meter.aggregation;
\set VERBOSITY default
SELECT '{"type":"COUNT"}'::meter.aggregation AS still_works;

-- Equality of differently written equal values, inequality, hashing
SELECT '{"type":"SUM","field":"tokens"}'::meter.aggregation = '{ "field": "tokens", "type": "SUM" }' AS same_keys_reordered,
	'{"type":"SUM_WITH_MULTIPLIER","field":"t","multiplier":1.5}'::meter.aggregation
		= '{"type":"SUM_WITH_MULTIPLIER","field":"t","multiplier":"1.500"}' AS same_multiplier,
	'{"type":"SUM_WITH_MULTIPLIER","field":"t","multiplier":100}'::meter.aggregation
		= '{"type":"SUM_WITH_MULTIPLIER","field":"t","multiplier":1E+2}' AS exponent_multiplier,
	'{"type":"COUNT"}'::meter.aggregation = '{"type":"COUNT","field":""}' AS empty_field_absent,
	'{"type":"SUM","field":"a"}'::meter.aggregation <> '{"type":"SUM","field":"b"}' AS different_field,
	'{"type":"SUM","field":"a"}'::meter.aggregation <> '{"type":"MAX","field":"a"}' AS different_type,
	'{"type":"SUM","field":"a"}'::meter.aggregation <> '{"type":"SUM","field":"a","bucket_size":"DAY"}' AS different_bucket,
	'{"type":"SUM","field":"a"}'::meter.aggregation OPERATOR(meter.=) '{"field":"a","type":"SUM"}' AS meter_schema_operator;
SELECT count(DISTINCT a) AS distinct_aggregations FROM (VALUES
	('{"type":"SUM","field":"tokens"}'::meter.aggregation), ('{"field":"tokens","type":"SUM"}'),
	('{"type":"COUNT"}'), ('{"type":"COUNT","field":null}'), ('{"type":"MAX","field":"tokens"}')) v(a);
SELECT a, count(*) FROM (VALUES
	('{"type":"SUM","field":"tokens"}'::meter.aggregation), ('{"field":"tokens","type":"SUM"}'),
	('{"type":"COUNT"}')) v(a) GROUP BY a ORDER BY a::text;
-- Ordering (btree): by type in enum order, then field, multiplier, bucket_size (absent first)
SELECT a FROM (VALUES ('{"type":"SUM","field":"b"}'::meter.aggregation), ('{"type":"COUNT","field":"x"}'), ('{"type":"COUNT"}'),
	('{"type":"SUM","field":"a","bucket_size":"DAY"}'), ('{"type":"SUM","field":"a","bucket_size":"HOUR"}'), ('{"type":"SUM","field":"a"}'),
	('{"type":"SUM_WITH_MULTIPLIER","field":"a","multiplier":10}'), ('{"type":"SUM_WITH_MULTIPLIER","field":"a","multiplier":9.5}'),
	('{"type":"WEIGHTED_SUM","field":"a"}'), ('{"type":"AVG","field":"a"}')) v(a) ORDER BY a;
SELECT '{"type":"COUNT"}'::meter.aggregation OPERATOR(meter.<) '{"type":"SUM","field":"a"}' AS lt,
	'{"type":"SUM","field":"a"}'::meter.aggregation OPERATOR(meter.<=) '{"field":"a","type":"SUM"}' AS le,
	'{"type":"MAX","field":"a"}'::meter.aggregation OPERATOR(meter.>) '{"type":"SUM","field":"z"}' AS gt,
	'{"type":"SUM","field":"a"}'::meter.aggregation OPERATOR(meter.>=) '{"type":"SUM","field":"b"}' AS ge,
	meter.aggregation_cmp('{"type":"SUM_WITH_MULTIPLIER","field":"a","multiplier":2}', '{"type":"SUM_WITH_MULTIPLIER","field":"a","multiplier":"2.000"}') AS cmp_equal;
SELECT meter.aggregation_hash('{"type":"SUM","field":"t"}') = meter.aggregation_hash('{"field":"t","type":"SUM"}') AS equal_hashes;

-- jsonb casts both ways (explicit), validating
SELECT '{"type":"SUM_WITH_MULTIPLIER","field":"t","multiplier":"2.50"}'::meter.aggregation::jsonb AS to_jsonb;
SELECT '{"type":"MAX","field":"gb","bucket_size":"DAY"}'::jsonb::meter.aggregation AS from_jsonb;
SELECT a::jsonb::meter.aggregation = a AS jsonb_round_trip, a::text::meter.aggregation = a AS text_round_trip
FROM (VALUES ('{"type":"SUM_WITH_MULTIPLIER","field":"t","multiplier":0.001}'::meter.aggregation),
	('{"type":"COUNT"}'), ('{"type":"SUM","field":"é \"x\""}'), ('{"type":"MAX","field":"gb","bucket_size":"12HOUR"}')) v(a);
\set VERBOSITY sqlstate
SELECT '{"type":"nope"}'::jsonb::meter.aggregation;
SELECT '[1]'::jsonb::meter.aggregation;
\set VERBOSITY default
SELECT castcontext FROM pg_cast WHERE castsource = 'meter.aggregation'::regtype AND casttarget = 'jsonb'::regtype;
SELECT castcontext FROM pg_cast WHERE castsource = 'jsonb'::regtype AND casttarget = 'meter.aggregation'::regtype;

-- binary send/receive: a version byte then the canonical JSON; receive validates.
-- COPY BINARY through a file in the test cluster's own data directory.
SELECT meter.aggregation_send('{"field":"t","type":"SUM"}') AS send;
CREATE TEMP TABLE agg_binary (a meter.aggregation);
INSERT INTO agg_binary VALUES ('{"type":"COUNT"}'), ('{"type":"SUM_WITH_MULTIPLIER","field":"tøkens","multiplier":"0.25"}'),
	('{"type":"SUM","field":"x","bucket_size":"WEEK"}');
DO $$ BEGIN EXECUTE format('COPY agg_binary TO %L (FORMAT binary)', current_setting('data_directory') || '/meter_regress_aggregation.bin'); END $$;
CREATE TEMP TABLE agg_binary2 (a meter.aggregation);
DO $$ BEGIN EXECUTE format('COPY agg_binary2 FROM %L (FORMAT binary)', current_setting('data_directory') || '/meter_regress_aggregation.bin'); END $$;
SELECT a FROM agg_binary2 ORDER BY a::text;
SELECT (SELECT array_agg(a::text ORDER BY a::text) FROM agg_binary) = (SELECT array_agg(a::text ORDER BY a::text) FROM agg_binary2) AS binary_round_trip;
-- receive validates: a text column's binary form is its raw bytes, so it can fake ours
CREATE FUNCTION pg_temp.recv_aggregation(payload text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE d text;
BEGIN
	EXECUTE format('COPY (SELECT %L::text) TO %L (FORMAT binary)', payload, current_setting('data_directory') || '/meter_regress_aggregation_bad.bin');
	EXECUTE format('COPY agg_binary2 FROM %L (FORMAT binary)', current_setting('data_directory') || '/meter_regress_aggregation_bad.bin');
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL;
	RETURN SQLSTATE || ': ' || SQLERRM || coalesce(' | ' || nullif(d, ''), '');
END $$;
SELECT pg_temp.recv_aggregation(chr(1) || '{"type":"sum"}') AS bad_value,
	pg_temp.recv_aggregation(chr(2) || '{"type":"sum"}') AS bad_version,
	pg_temp.recv_aggregation(chr(1) || 'not json') AS not_json,
	pg_temp.recv_aggregation('') AS empty;

-- Accessors
SELECT a, meter.type_of(a), meter.field_of(a), meter.multiplier_of(a), meter.bucket_size_of(a)
FROM (VALUES ('{"type":"COUNT"}'::meter.aggregation), ('{"type":"SUM","field":"tokens"}'),
	('{"type":"SUM_WITH_MULTIPLIER","field":"tokens","multiplier":"1.50"}'),
	('{"type":"MAX","field":"gb","bucket_size":"3HOUR"}'), ('{"type":"WEIGHTED_SUM","field":"gb"}')) v(a);
SELECT pg_typeof(meter.type_of('{"type":"COUNT"}')) AS type_of_type,
	pg_typeof(meter.bucket_size_of('{"type":"SUM","field":"x","bucket_size":"DAY"}')) AS bucket_size_of_type,
	meter.type_of('{"type":"LATEST","field":"x"}') = 'LATEST'::meter.aggregation_type AS enum_compares,
	meter.multiplier_of('{"type":"SUM_WITH_MULTIPLIER","field":"t","multiplier":0.1}') = 0.1 AS exact_multiplier;
SELECT meter.type_of(NULL), meter.field_of(NULL) IS NULL AS strict;

-- Stored in a table column (toastable); a long field name
CREATE TEMP TABLE agg_store (a meter.aggregation);
INSERT INTO agg_store SELECT ('{"type":"SUM","field":"' || repeat('f', 100000) || '"}')::meter.aggregation;
SELECT length(meter.field_of(a)) AS long_field, length(a::text) FROM agg_store;
