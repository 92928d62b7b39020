-- meter.aggregation and meter.filters (SPEC §2), matching (SPEC §3): the SPEC's exact
-- error messages and SQLSTATEs, and how the functions are declared.
BEGIN;
SET client_min_messages = warning;
SELECT plan(39);

-- The exact messages of SPEC §2
SELECT throws_ok($$SELECT '{"type":"sum","field":"x"}'::meter.aggregation$$, '22023', 'invalid aggregation type',
	'type is case-sensitive');
SELECT throws_ok($$SELECT '{"field":"x"}'::meter.aggregation$$, '22023', 'invalid aggregation type', 'type is required');
SELECT throws_ok($$SELECT '{"type":"AVG"}'::meter.aggregation$$, '22023', 'field or expression is required for aggregation type',
	'every type but COUNT needs field');
SELECT throws_ok($$SELECT '{"type":"SUM","field":""}'::meter.aggregation$$, '22023', 'field or expression is required for aggregation type',
	'"field": "" counts as absent');
SELECT throws_ok($$SELECT '{"type":"SUM_WITH_MULTIPLIER","field":"x"}'::meter.aggregation$$, '22023',
	'multiplier is required for SUM_WITH_MULTIPLIER', 'SUM_WITH_MULTIPLIER needs a multiplier');
SELECT throws_ok($$SELECT '{"type":"SUM_WITH_MULTIPLIER","field":"x","multiplier":0}'::meter.aggregation$$, '22023',
	'invalid multiplier value', 'multiplier must be > 0');
SELECT throws_ok($$SELECT '{"type":"SUM_WITH_MULTIPLIER","field":"x","multiplier":"ten"}'::meter.aggregation$$, '22023',
	'invalid multiplier value', 'multiplier must be a number');
SELECT throws_ok($$SELECT '{"type":"SUM","field":"x","multiplier":2}'::meter.aggregation$$, '22023', NULL,
	'multiplier on another type is an error');
SELECT throws_ok($$SELECT '{"type":"MIN","field":"x","bucket_size":"HOUR"}'::meter.aggregation$$, '22023', NULL,
	'bucket_size only with MAX or SUM');
SELECT throws_ok($$SELECT '{"type":"MAX","field":"x","bucket_size":"FORTNIGHT"}'::meter.aggregation$$, '22023', NULL,
	'bucket_size must be a window size');
SELECT throws_like($$SELECT '{"type":"COUNT","colour":"red"}'::meter.aggregation$$, '%colour%',
	'an unknown key is named');
SELECT throws_like($$SELECT '{"type":"COUNT","type":"COUNT"}'::meter.aggregation$$, '%"type"%',
	'the same key twice is an error naming the key');
SELECT throws_ok($$SELECT '{"type":"COUNT"'::meter.aggregation$$, '22P02', NULL, 'text that is not JSON is 22P02');
SELECT throws_ok($$SELECT '[{"key":"","values":["x"]}]'::meter.filters$$, '22023', 'filter key cannot be empty',
	'filter key non-empty');
SELECT throws_ok($$SELECT '[{"key":"m","values":[]}]'::meter.filters$$, '22023', 'filter values cannot be empty',
	'filter values non-empty');
SELECT throws_ok($$SELECT '[{"key":"m","values":[1]}]'::meter.filters$$, '22023', NULL, 'filter values are strings');
SELECT throws_like($$SELECT '[{"key":"model","values":["a"]},{"key":"model","values":["b"]}]'::meter.filters$$,
	'%model%', 'the same filter key twice is an error naming the key');
SELECT throws_ok($$SELECT 'model = gpt-4o'::meter.filters$$, '22P02', NULL, 'filters text that is not JSON is 22P02');

-- Canonical forms and equality
SELECT is('{"field":"tokens","type":"SUM"}'::meter.aggregation::text, '{"type":"SUM","field":"tokens"}', 'aggregation canonical text');
SELECT is('[{"key":"model","values":["o1-mini","gpt-4o","o1-mini"]}]'::meter.filters::text,
	'[{"key":"model","values":["gpt-4o","o1-mini"]}]', 'filters canonical text');
SELECT ok('[{"key":"b","values":["2","1"]},{"key":"a","values":["x"]}]'::meter.filters
	= '[{"key":"a","values":["x"]},{"key":"b","values":["1","2","2"]}]'::meter.filters, 'equal filter sets are equal');
SELECT is(meter.multiplier_of('{"type":"SUM_WITH_MULTIPLIER","field":"t","multiplier":"0.1"}'), 0.1::numeric,
	'multiplier is exact numeric');

-- Matching by value (SPEC §3)
SELECT ok(meter.matches('[{"key":"n","values":["1"]}]', '{"n":1.0}'), 'number 1.0 matches "1"');
SELECT ok(meter.matches('[{"key":"n","values":["1"]}]', '{"n":"1"}'), 'string "1" matches "1"');
SELECT ok(NOT meter.matches('[{"key":"n","values":["1"]}]', '{"n":"1.0"}'), 'string "1.0" does not match "1"');
SELECT ok(meter.matches('[{"key":"b","values":["true"]}]', '{"b":true}'), 'true matches "true"');
SELECT ok(NOT meter.matches('[{"key":"b","values":["null"]}]', '{"b":null}'), 'null never matches');
SELECT ok(meter.matches('[]', '{}'), 'empty filters match everything');
SELECT is(meter.explain_filters('[{"key":"model","values":["gpt-4o"]}]', '{"model":"gpt-5"}'),
	'filter "model": value "gpt-5" not in [gpt-4o]', 'explanation of a mismatch');

-- Declarations: volatility, strictness, parallel safety
SELECT is((SELECT format('%s %s %s', provolatile, proisstrict, proparallel) FROM pg_proc
	WHERE oid = 'meter.matches(meter.filters, jsonb)'::regprocedure), 'i t s', 'matches is IMMUTABLE STRICT PARALLEL SAFE');
SELECT is((SELECT count(*)::int FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid AND d.classid = 'pg_proc'::regclass
	JOIN pg_extension e ON d.refobjid = e.oid AND e.extname = 'meter'
	WHERE p.prosrc LIKE 'meter\_%' AND (p.prosrc ~ '(aggregation|filter|matches|numeric_value|unique_value)')
		AND p.prosrc !~ '^meter_usage'  -- usage_by_filter_groups: a usage query (STABLE, optional arguments)
		AND (p.provolatile <> 'i' OR NOT p.proisstrict OR p.proparallel <> 's')), 0,
	'every type and matching function is IMMUTABLE STRICT PARALLEL SAFE');
SELECT is((SELECT count(*)::int FROM pg_depend d JOIN pg_extension e ON d.refobjid = e.oid AND e.extname = 'meter'
	WHERE d.deptype = 'e' AND obj_description(d.objid, d.classid::regclass::text) IS NULL
		AND d.classid IN ('pg_proc'::regclass, 'pg_type'::regclass, 'pg_operator'::regclass, 'pg_opclass'::regclass, 'pg_opfamily'::regclass, 'pg_cast'::regclass)
		AND NOT (d.classid = 'pg_type'::regclass AND EXISTS (SELECT 1 FROM pg_type t WHERE t.oid = d.objid AND t.typelem <> 0 AND t.typname LIKE '\_%'))),
	0, 'every function, type, operator, operator class and family, and cast has a comment');
SELECT ok(EXISTS (SELECT 1 FROM pg_cast WHERE castsource = 'meter.aggregation'::regtype AND casttarget = 'pg_catalog.jsonb'::regtype
	AND castcontext = 'e'), 'cast aggregation → jsonb (explicit)');
SELECT ok(EXISTS (SELECT 1 FROM pg_cast WHERE castsource = 'pg_catalog.jsonb'::regtype AND casttarget = 'meter.aggregation'::regtype
	AND castcontext = 'e'), 'cast jsonb → aggregation (explicit)');
SELECT ok(EXISTS (SELECT 1 FROM pg_cast WHERE castsource = 'meter.filters'::regtype AND casttarget = 'pg_catalog.jsonb'::regtype
	AND castcontext = 'e'), 'cast filters → jsonb (explicit)');
SELECT ok(EXISTS (SELECT 1 FROM pg_cast WHERE castsource = 'pg_catalog.jsonb'::regtype AND casttarget = 'meter.filters'::regtype
	AND castcontext = 'e'), 'cast jsonb → filters (explicit)');
SELECT function_returns('meter', 'type_of', ARRAY['meter.aggregation'], 'meter.aggregation_type', 'type_of returns the enum');
SELECT function_returns('meter', 'bucket_size_of', ARRAY['meter.aggregation'], 'meter.window_size', 'bucket_size_of returns the enum');
SELECT function_returns('meter', 'filter_values', ARRAY['meter.filters', 'text'], 'text[]', 'filter_values returns text[]');

SELECT * FROM finish();
ROLLBACK;
