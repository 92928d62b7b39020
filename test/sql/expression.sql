-- The "expression" and "group_by" keys of meter.aggregation (SPEC §2) and meter.quantity:
-- validation (SQLSTATE, message, detail with the position, hint), canonical form, round
-- trips, accessors, and the value of many expressions on sample events, hand-computed.

-- err(): the canonical text of an input, or SQLSTATE | message | detail | hint.
CREATE FUNCTION pg_temp.err(input text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE d text; h text;
BEGIN
	RETURN input::meter.aggregation::text;
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL, h = PG_EXCEPTION_HINT;
	RETURN SQLSTATE || ' | ' || SQLERRM || ' | ' || coalesce(nullif(d, ''), '-') || ' | ' || coalesce(nullif(h, ''), '-');
END $$;
-- expr(): the same for an expression of a SUM aggregation
CREATE FUNCTION pg_temp.expr(expression text) RETURNS text LANGUAGE sql AS $$
	SELECT pg_temp.err(jsonb_build_object('type', 'SUM', 'expression', expression)::text)
$$;

-- ── Valid aggregations and their canonical text ────────────────────────────────────
-- keys in the order type, field, expression, multiplier, bucket_size, group_by; the
-- expression trimmed, otherwise as written
SELECT input, pg_temp.err(input) AS canonical FROM (VALUES
	('{"type":"SUM","expression":"input_tokens + output_tokens * 4"}'),
	('{"expression":"  a+b  ","type":"AVG"}'),
	('{"type":"MAX","expression":"\tmax(a, b)\n"}'),
	('{"type":"MIN","expression":"a"}'),
	('{"type":"LATEST","expression":"seats * 1.5"}'),
	('{"type":"SUM","expression":"tokens","bucket_size":"HOUR"}'),
	('{"group_by":"volume_id","bucket_size":"HOUR","field":"gb","type":"MAX"}'),
	('{"type":"MAX","expression":"used_gb","bucket_size":"DAY","group_by":"volume_id"}'),
	('{"type":"MAX","field":"gb","bucket_size":"HOUR","group_by":"vol ume"}'),
	('{"type":"MAX","field":"gb","bucket_size":"HOUR","group_by":"ключ"}'),
	('{"type":"SUM","field":"tokens","expression":""}'),
	('{"type":"SUM","field":"tokens","expression":"   "}'),
	('{"type":"SUM","field":"tokens","expression":null}'),
	('{"type":"SUM","field":"tokens","group_by":""}'),
	('{"type":"SUM","field":"tokens","group_by":null}'),
	('{"type":"COUNT","expression":""}'),
	('{"type":"SUM","field":"","expression":"a"}'),
	('{"type":"SUM","field":null,"expression":"a"}'),
	('{"type":"SUM","expression":"a \u002b b"}'),
	('{"type":"SUM","expression":"b != 0 ? a / b : 0"}')
) v(input);

-- ── Every rule of the keys: SQLSTATE | message | detail | hint ─────────────────────
\pset format unaligned
SELECT input, pg_temp.err(input) AS error FROM (VALUES
	('{"type":"SUM"}'),
	('{"type":"SUM","expression":""}'),
	('{"type":"AVG","expression":" \t\n"}'),
	('{"type":"MAX","field":"","expression":null}'),
	('{"type":"SUM","field":"a","expression":"b"}'),
	('{"type":"LATEST","expression":"b","field":"a"}'),
	('{"type":"COUNT","expression":"a"}'),
	('{"type":"COUNT_UNIQUE","expression":"a"}'),
	('{"type":"COUNT_UNIQUE","field":"a","expression":"b"}'),
	('{"type":"SUM_WITH_MULTIPLIER","expression":"a","multiplier":2}'),
	('{"type":"WEIGHTED_SUM","expression":"a"}'),
	('{"type":"SUM","expression":1}'),
	('{"type":"SUM","expression":true}'),
	('{"type":"SUM","expression":["a"]}'),
	('{"type":"SUM","expression":{"a":1}}'),
	('{"type":"SUM","expression":1e5000}'),
	('{"type":"MAX","field":"gb","bucket_size":"HOUR","group_by":1}'),
	('{"type":"MAX","field":"gb","bucket_size":"HOUR","group_by":["v"]}'),
	('{"type":"MAX","field":"gb","bucket_size":"HOUR","group_by":1e5000}'),
	('{"type":"MAX","field":"gb","group_by":"volume_id"}'),
	('{"type":"MAX","field":"gb","bucket_size":"","group_by":"volume_id"}'),
	('{"type":"SUM","field":"gb","bucket_size":"HOUR","group_by":"volume_id"}'),
	('{"type":"MIN","field":"gb","group_by":"volume_id"}'),
	('{"type":"COUNT","group_by":"volume_id"}'),
	('{"type":"SUM","expression":"a","expression":"b"}'),
	('{"type":"SUM","expression":"a","Expression":"b"}'),
	('{"type":"SUM","expression":"a +"}')
) v(input);

-- ── Every kind of invalid expression: SQLSTATE | message | detail (position) | hint ─
SELECT to_jsonb(expression) AS expression, pg_temp.expr(expression) AS error FROM (VALUES
	-- syntax
	('a +'),
	('+'),
	('* a'),
	('a b'),
	('a 2'),
	('(a + b'),
	('a + b)'),
	('()'),
	('a + ()'),
	('a,b'),
	('a ? b'),
	('a > 0 ? b'),
	('a > 0 ? b :'),
	('a > 0 ? b > 0 ? 1 : 2 : 3'),
	('min(a b)'),
	('min(a,'),
	('min(a, b'),
	('   a +'),
	-- characters
	('a % b'),
	('a = b'),
	('a & b'),
	('a | b'),
	('a ^ 2'),
	('''x'' + a'),
	('"x" + a'),
	('a.b'),
	('a.size()'),
	('a[0]'),
	('{a}'),
	('a + é'),
	('é + a'),
	('a' || chr(160) || '+ b'),
	('a' || chr(1)),
	('a + #'),
	('a @ b'),
	('$a'),
	-- numbers
	('a * 1.'),
	('a * 1.e3'),
	('a * 1e'),
	('a * 1e+'),
	('a * 0x1F'),
	('a * 1u'),
	('a * 2abc'),
	('a * 1.2.3'),
	('a * 1e1001'),
	('a * 1e-1001'),
	-- words
	('in + a'),
	('a * if'),
	('while'),
	('let + 1'),
	('a + null'),
	('null'),
	('foo(a)'),
	('Min(a, b)'),
	('double(a)'),
	('int(a) / 2'),
	('size(a)'),
	('min(a)'),
	('min(a, b, c)'),
	('max()'),
	('sqrt(a, 2)'),
	('pow(a)'),
	('abs()'),
	-- types
	('1 + 2'),
	('2'),
	('-1.5'),
	('a > b'),
	('true'),
	('a == b'),
	('!a'),
	('-(a > b)'),
	('(a > b) + 1'),
	('a + (b > c)'),
	('a * true'),
	('a && b'),
	('a > 0 && b'),
	('a || b > 0'),
	('a ? 1 : 2'),
	('a > 0 ? 1 : b > 0'),
	('a > 0 ? b > 0 : 1'),
	('a < b < c'),
	('(a > b) < c'),
	('a == (b > c)'),
	('(a > b) != c'),
	('min(a > b, c)'),
	('max(a, true)'),
	('sqrt(a > 0)'),
	('a > 0 ? true : false')
) v(expression);

-- limits: 10,000 characters, 100 levels of nesting (54000 beyond), and the same in
-- a valid form just within them
SELECT pg_temp.expr('a' || repeat(' ', 9999)) AS length_10000,
	pg_temp.expr('a' || repeat(' ', 10000)) AS length_10001;
SELECT length(pg_temp.expr(repeat('(', 99) || 'a' || repeat(')', 99))) AS depth_100_length,
	pg_temp.expr(repeat('(', 100) || 'a' || repeat(')', 100)) AS depth_101;
SELECT length(pg_temp.expr(repeat('-', 99) || 'a')) AS unary_100_length,
	pg_temp.expr(repeat('-', 100) || 'a') AS unary_101,
	pg_temp.expr(repeat('!', 100) || '(a > 0) ? 1 : 0') AS not_101;
SELECT pg_temp.expr(repeat('min(', 100) || 'a' || repeat(', 1)', 100)) AS functions_101,
	pg_temp.expr('a > 0 ? 1 : ' || repeat('a > 0 ? 1 : ', 100) || '0') AS ternaries_101;
SELECT length(pg_temp.expr(repeat('a - ', 2499) || 'a')) AS long_chain_is_not_deep,
	meter.quantity(pg_temp.expr(repeat('a - ', 2499) || 'a')::meter.aggregation, '{"a":1}') AS its_value;

\pset format aligned
-- errors raised directly, then the session still works
SELECT '{"type":"SUM","expression":"a + * b"}'::meter.aggregation;
SELECT '{"type":"AVG","field":"a","expression":"b"}'::meter.aggregation;
SELECT '{"type":"MAX","field":"gb","group_by":"v"}'::meter.aggregation;
SELECT ('{"type":"SUM","expression":"' || repeat('(', 200) || 'a' || repeat(')', 200) || '"}')::meter.aggregation;
SELECT '{"type":"SUM","expression":"a"}'::meter.aggregation AS still_works;

-- ── Equality, ordering, hashing, round trips ───────────────────────────────────────
SELECT '{"type":"SUM","expression":" a + b "}'::meter.aggregation = '{"expression":"a + b","type":"SUM"}' AS trimmed_equal,
	'{"type":"SUM","expression":"a + b"}'::meter.aggregation <> '{"type":"SUM","expression":"a+b"}' AS spacing_differs,
	'{"type":"SUM","expression":"a"}'::meter.aggregation <> '{"type":"SUM","field":"a"}' AS expression_is_not_field,
	'{"type":"MAX","field":"g","bucket_size":"HOUR","group_by":"v"}'::meter.aggregation
		<> '{"type":"MAX","field":"g","bucket_size":"HOUR"}' AS group_by_differs,
	'{"type":"SUM","field":"a","expression":""}'::meter.aggregation = '{"type":"SUM","field":"a"}' AS blank_expression_absent,
	meter.aggregation_hash('{"type":"SUM","expression":" a * 2"}') = meter.aggregation_hash('{"expression":"a * 2 ","type":"SUM"}') AS equal_hashes,
	meter.aggregation_cmp('{"type":"SUM","expression":"a"}', '{"type":"SUM","expression":" a "}') AS cmp_equal;
SELECT a FROM (VALUES ('{"type":"SUM","expression":"b"}'::meter.aggregation), ('{"type":"SUM","expression":"a"}'),
	('{"type":"SUM","field":"a"}'), ('{"type":"SUM","field":"a","bucket_size":"DAY"}'),
	('{"type":"MAX","field":"a","bucket_size":"HOUR","group_by":"z"}'), ('{"type":"MAX","field":"a","bucket_size":"HOUR","group_by":"y"}'),
	('{"type":"MAX","field":"a","bucket_size":"HOUR"}'), ('{"type":"MAX","expression":"a","bucket_size":"HOUR"}'),
	('{"type":"COUNT"}')) v(a) ORDER BY a;
SELECT count(DISTINCT a) AS distinct_aggregations FROM (VALUES
	('{"type":"SUM","expression":"a + b"}'::meter.aggregation), ('{"expression":"a + b ","type":"SUM"}'),
	('{"type":"SUM","expression":"a+b"}'), ('{"type":"MAX","field":"g","bucket_size":"HOUR","group_by":"v"}'),
	('{"group_by":"v","type":"MAX","field":"g","bucket_size":"HOUR"}')) v(a);
SELECT a::text::meter.aggregation = a AS text_round_trip, a::jsonb::meter.aggregation = a AS jsonb_round_trip,
	a::jsonb AS as_jsonb
FROM (VALUES ('{"type":"SUM","expression":"input_tokens + output_tokens * 4"}'::meter.aggregation),
	('{"type":"MAX","expression":"gb / 1024","bucket_size":"HOUR","group_by":"volume \"id\""}'),
	('{"type":"MAX","field":"gb","bucket_size":"HOUR","group_by":"é"}'),
	('{"type":"AVG","expression":"a\n+ b"}')) v(a);
SELECT '{"type":"SUM","expression":"a * 2"}'::jsonb::meter.aggregation AS from_jsonb;
\set VERBOSITY sqlstate
SELECT '{"type":"SUM","expression":"a * "}'::jsonb::meter.aggregation;
\set VERBOSITY default
-- binary send/receive, through COPY BINARY in the test cluster's data directory
SELECT meter.aggregation_send('{"type":"SUM","expression":"a+b"}') AS send;
CREATE TEMP TABLE expr_binary (a meter.aggregation);
INSERT INTO expr_binary VALUES ('{"type":"SUM","expression":"a + b * 2"}'),
	('{"type":"MAX","expression":"max(a, b)","bucket_size":"DAY","group_by":"vol"}'), ('{"type":"SUM","field":"a"}');
DO $$ BEGIN EXECUTE format('COPY expr_binary TO %L (FORMAT binary)', current_setting('data_directory') || '/meter_regress_expression.bin'); END $$;
CREATE TEMP TABLE expr_binary2 (a meter.aggregation);
DO $$ BEGIN EXECUTE format('COPY expr_binary2 FROM %L (FORMAT binary)', current_setting('data_directory') || '/meter_regress_expression.bin'); END $$;
SELECT a, a IN (SELECT b.a FROM expr_binary b) AS equal_to_sent FROM expr_binary2 ORDER BY a::text;
-- receive validates the expression like text input (a text column's binary form is its
-- raw bytes, so it can fake ours)
DO $$
DECLARE d text; h text;
BEGIN
	EXECUTE format('COPY (SELECT %L::text) TO %L (FORMAT binary)', chr(1) || '{"type":"SUM","expression":"a +"}',
		current_setting('data_directory') || '/meter_regress_expression_bad.bin');
	EXECUTE format('COPY expr_binary2 FROM %L (FORMAT binary)', current_setting('data_directory') || '/meter_regress_expression_bad.bin');
	RAISE NOTICE 'received';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL, h = PG_EXCEPTION_HINT;
	RAISE NOTICE 'receive: % | % | % | %', SQLSTATE, SQLERRM, d, h;
END $$;
-- the stored form (a binary-coercible cast shows and makes raw bytes; little-endian):
-- without expression and group_by it is 0.1.0's version 1, byte for byte, and 0.1.0's
-- bytes read back; with either it is version 2; bad lengths are data corruption
BEGIN;
CREATE CAST (meter.aggregation AS bytea) WITHOUT FUNCTION;
CREATE CAST (bytea AS meter.aggregation) WITHOUT FUNCTION;
SELECT '{"type":"SUM","field":"tokens"}'::meter.aggregation::bytea AS version_1,
	'{"type":"SUM","field":"tokens"}'::meter.aggregation::bytea = '\x0101ff0106000000746f6b656e7300'::bytea AS as_0_1_0_wrote_it,
	'{"type":"SUM","expression":"a"}'::meter.aggregation::bytea AS version_2;
SELECT '\x0101ff0106000000746f6b656e7300'::bytea::meter.aggregation AS read_0_1_0,
	'\x0107ff03020000006778000028000000808001008813'::bytea::meter.aggregation AS read_0_1_0_multiplier,
	'\x0201ff0400000000010000000000000000610000'::bytea::meter.aggregation AS read_version_2,
	'\x0204030c0000000005000000040000000061202a2032007620696400'::bytea::meter.aggregation AS read_version_2_group_by,
	meter.quantity('\x0204030c0000000005000000040000000061202a2032007620696400'::bytea::meter.aggregation, '{"a":4}') AS version_2_evaluates;
SELECT '\x0201ff04000000000a0000000000000000610000'::bytea::meter.aggregation;
ROLLBACK;
BEGIN;
CREATE CAST (bytea AS meter.aggregation) WITHOUT FUNCTION;
SELECT '\x0301ff0000000000'::bytea::meter.aggregation;
ROLLBACK;
BEGIN;
CREATE CAST (bytea AS meter.aggregation) WITHOUT FUNCTION;
SELECT '\x0101ff01'::bytea::meter.aggregation;
ROLLBACK;
BEGIN;
CREATE CAST (bytea AS meter.aggregation) WITHOUT FUNCTION;
SELECT '\x0107ff0302000000677800'::bytea::meter.aggregation;
ROLLBACK;
-- stored in a table (toastable): a long expression reads back compiled
CREATE TEMP TABLE expr_store (a meter.aggregation);
INSERT INTO expr_store SELECT ('{"type":"SUM","expression":"' || string_agg('p' || g, ' + ') || '"}')::meter.aggregation
	FROM generate_series(1, 1200) g;
SELECT length(meter.expression_of(a)) AS expression_length,
	meter.quantity(a, (SELECT jsonb_object_agg('p' || g, g) FROM generate_series(1, 1200) g)) AS sum_1_to_1200,
	meter.quantity(a, '{"p7":7,"p1200":"1e3"}') AS two_present
FROM expr_store;

-- ── Accessors ──────────────────────────────────────────────────────────────────────
SELECT a, meter.field_of(a), meter.expression_of(a), meter.bucket_size_of(a), meter.group_by_of(a)
FROM (VALUES ('{"type":"COUNT"}'::meter.aggregation), ('{"type":"SUM","field":"tokens"}'),
	('{"type":"SUM","expression":"  a + b "}'), ('{"type":"MAX","field":"gb","bucket_size":"HOUR","group_by":"volume_id"}'),
	('{"type":"MAX","expression":"gb * 2","bucket_size":"HOUR","group_by":""}')) v(a);
SELECT meter.expression_of(NULL) IS NULL AS strict_expression, meter.group_by_of(NULL) IS NULL AS strict_group_by,
	meter.quantity(NULL, '{}') IS NULL AS strict_quantity_1, meter.quantity('{"type":"COUNT"}', NULL) IS NULL AS strict_quantity_2;
SELECT p.proname, p.provolatile, p.proisstrict, p.proparallel, obj_description(p.oid, 'pg_proc') IS NOT NULL AS has_comment
FROM pg_proc p WHERE p.pronamespace = 'meter'::regnamespace AND p.proname IN ('expression_of', 'group_by_of', 'quantity')
ORDER BY p.proname;

-- ── meter.quantity: each case with its hand-computed exact answer ──────────────────
-- (NULL: the event is skipped). ok compares the text, so scales count too.
SELECT expression, properties, q AS quantity, expected, q::text IS NOT DISTINCT FROM expected AS ok
FROM (VALUES
	-- precedence and associativity
	('a + b * c', '{"a":1,"b":2,"c":3}', '7'),
	('(a + b) * c', '{"a":1,"b":2,"c":3}', '9'),
	('a - b - c', '{"a":1,"b":2,"c":3}', '-4'),
	('a - (b - c)', '{"a":1,"b":2,"c":3}', '2'),
	('a * b + c * a', '{"a":2,"b":3,"c":4}', '14'),
	('a / b / c', '{"a":12,"b":2,"c":3}', '2.0000000000000000'),
	('a / b * c', '{"a":7,"b":2,"c":2}', '7.0000000000000000'),
	('input_tokens + output_tokens * 4', '{"input_tokens":10,"output_tokens":"2.5"}', '20.0'),
	-- unary minus
	('-a', '{"a":5}', '-5'),
	('--a', '{"a":5}', '5'),
	('- -a', '{"a":-5}', '-5'),
	('-a * b', '{"a":2,"b":3}', '-6'),
	('a - -b', '{"a":2,"b":3}', '5'),
	('-(a + b)', '{"a":2,"b":3}', '-5'),
	('-a', '{}', '0'),
	-- decimals and exponents
	('a * 1.5', '{"a":2}', '3.0'),
	('a * 1e3', '{"a":2}', '2000'),
	('a * 2.5e-1', '{"a":4}', '1.00'),
	('a * 1E+2', '{"a":2}', '200'),
	('.5 * a', '{"a":4}', '2.0'),
	('007 + a', '{"a":1}', '8'),
	('a + 0.1', '{"a":0.2}', '0.3'),
	('a + b', '{"a":0.1,"b":0.2}', '0.3'),
	('a + b', '{"a":"0.1","b":"0.2"}', '0.3'),
	('a * 3', '{"a":0.1}', '0.3'),
	('a * 1e-20', '{"a":3}', '0.00000000000000000003'),
	-- functions
	('min(a, b)', '{"a":3,"b":2.0}', '2.0'),
	('max(a, b)', '{"a":3,"b":2.0}', '3'),
	('min(a, b)', '{"a":-1,"b":-1.5}', '-1.5'),
	('max(a, -a)', '{"a":-4}', '4'),
	('abs(a)', '{"a":-2.5}', '2.5'),
	('abs(a)', '{"a":2.5}', '2.5'),
	('ceil(a)', '{"a":1.2}', '2'),
	('ceil(a)', '{"a":-1.2}', '-1'),
	('ceil(a)', '{"a":2.0}', '2'),
	('floor(a)', '{"a":1.8}', '1'),
	('floor(a)', '{"a":-1.2}', '-2'),
	('floor(a)', '{"a":-3}', '-3'),
	('round(a)', '{"a":2.5}', '3'),
	('round(a)', '{"a":-2.5}', '-3'),
	('round(a)', '{"a":0.5}', '1'),
	('round(a)', '{"a":-0.5}', '-1'),
	('round(a)', '{"a":2.4999}', '2'),
	('round(a)', '{"a":-2.4999}', '-2'),
	('round(a)', '{"a":1.5}', '2'),
	('round(a)', '{"a":-1.5}', '-2'),
	('round(a)', '{"a":7}', '7'),
	('sqrt(a)', '{"a":16}', '4.000000000000000'),
	('sqrt(a)', '{"a":2}', '1.414213562373095'),
	('sqrt(a)', '{"a":0}', '0.000000000000000'),
	('pow(a, 10)', '{"a":2}', '1024.0000000000000000'),
	('pow(a, 0.5)', '{"a":2}', '1.4142135623730950'),
	('pow(a, 0.5)', '{"a":4}', '2.0000000000000000'),
	('pow(a, 3)', '{"a":-2}', '-8.0000000000000000'),
	('pow(a, 2)', '{"a":-2}', '4.0000000000000000'),
	('pow(a, -2)', '{"a":2}', '0.2500000000000000'),
	('pow(a, 0)', '{"a":0}', '1.0000000000000000'),
	('pow(a, 2)', '{"a":0}', '0.0000000000000000'),
	('pow(a, 2)', '{"a":1.5}', '2.2500000000000000'),
	('log(a)', '{"a":1}', '0.0000000000000000'),
	('log(a)', '{"a":10}', '2.3025850929940457'),
	('log(a)', '{"a":0.5}', '-0.6931471805599453'),
	('min + max', '{"min":1,"max":2}', '3'),
	('log * 2', '{"log":3}', '6'),
	('max (a, b)', '{"a":1,"b":2}', '2'),
	-- comparisons, conditions, ?: and short circuits
	('a > 0 ? a : 0', '{"a":-5}', '0'),
	('a > 0 ? a : 0', '{"a":5}', '5'),
	('a == b ? 1 : 0', '{"a":1,"b":1.0}', '1'),
	('a == b ? 1 : 0', '{"a":1,"b":"1e0"}', '1'),
	('a != b ? 1 : 0', '{"a":1,"b":2}', '1'),
	('a <= b ? 1 : 0', '{"a":2,"b":2}', '1'),
	('a < b ? 1 : 0', '{"a":2,"b":2}', '0'),
	('a >= b ? 1 : 0', '{"a":2,"b":2.00}', '1'),
	('(a > b) == (b > c) ? 1 : 0', '{"a":3,"b":2,"c":1}', '1'),
	('(a > b) != (b > c) ? 1 : 0', '{"a":3,"b":2,"c":1}', '0'),
	('!(a > b) ? 1 : 0', '{"a":1,"b":2}', '1'),
	('!!(a > b) ? 1 : 0', '{"a":1,"b":2}', '0'),
	('true ? a : 0', '{"a":4}', '4'),
	('false || a > 0 ? a : 0', '{"a":4}', '4'),
	('a > 0 && b > 0 ? a * b : 0', '{"a":2,"b":3}', '6'),
	('a > 0 && b > 0 ? a * b : 0', '{"a":2,"b":-3}', '0'),
	('a > 0 || b > 0 ? 1 : 0', '{"a":-2,"b":3}', '1'),
	('a > 1 ? 10 : a > 0 ? 5 : 0', '{"a":0.5}', '5'),
	('a > 1 ? 10 : a > 0 ? 5 : 0', '{"a":-1}', '0'),
	('(a > 1 ? b > 0 : false) ? 1 : 2', '{"a":2,"b":1}', '1'),
	('b != 0 ? a / b : 0', '{"a":1}', '0'),
	('b != 0 ? a / b : 0', '{"a":1,"b":0}', '0'),
	('b != 0 ? a / b : 0', '{"a":1,"b":4}', '0.25000000000000000000'),
	('b != 0 && a / b > 1 ? 1 : 0', '{"a":1,"b":0}', '0'),
	('b == 0 || a / b > 1 ? 1 : 0', '{"a":1,"b":0}', '1'),
	('a > 0 ? a : x', '{"a":1,"x":"abc"}', '1'),
	('a > 0 ? a : x', '{"a":-1,"x":"abc"}', NULL),
	('a > 0 ? 1 : 2', '{"a":1}', '1'),
	-- missing properties are 0; null and non-numbers skip; number strings count
	('a + b', '{"a":10}', '10'),
	('a', '{}', '0'),
	('a * b', '{"a":10}', '0'),
	('a + 1', '[1,2]', '1'),
	('a + 1', '"scalar"', '1'),
	('a + b', '{"a":1,"b":null}', NULL),
	('a + b', '{"a":1,"b":"abc"}', NULL),
	('a + b', '{"a":1,"b":""}', NULL),
	('a + b', '{"a":1,"b":" 2"}', NULL),
	('a + b', '{"a":1,"b":"NaN"}', NULL),
	('a + b', '{"a":1,"b":"Infinity"}', NULL),
	('a + b', '{"a":1,"b":true}', NULL),
	('a + b', '{"a":1,"b":[2]}', NULL),
	('a + b', '{"a":1,"b":{"v":2}}', NULL),
	('a + b', '{"a":1,"b":"2"}', '3'),
	('a + b', '{"a":1,"b":"-2.50"}', '-1.50'),
	('a + b', '{"a":1,"b":"1e2"}', '101'),
	('a + b', '{"a":1,"b":"01"}', NULL),
	('a * a + a', '{"a":3}', '12'),
	('A + a', '{"A":1,"a":2}', '3'),
	('_x1 + x_2', '{"_x1":1,"x_2":2}', '3'),
	-- division by zero, domains, range
	('a / b', '{"a":1,"b":0}', NULL),
	('a / b', '{"a":1}', NULL),
	('a / 0', '{"a":0}', NULL),
	('a / (b - b)', '{"a":1,"b":5}', NULL),
	('a / b', '{"a":1,"b":3}', '0.33333333333333333333'),
	('sqrt(a)', '{"a":-1}', NULL),
	('sqrt(-a)', '{"a":1}', NULL),
	('log(a)', '{"a":0}', NULL),
	('log(a)', '{"a":-1}', NULL),
	('log(a)', '{}', NULL),
	('pow(a, -1)', '{"a":0}', NULL),
	('pow(a, 0.5)', '{"a":-8}', NULL),
	('pow(a, 1000000)', '{"a":2}', NULL),
	('pow(a, -1000000)', '{"a":0.5}', NULL),
	('pow(a, 100000.5)', '{"a":2}', NULL),
	('pow(a, 1e10)', '{"a":2}', NULL),
	('pow(a, -1000000)', '{"a":2}', '0.0000000000000000'),
	('a * a', '{"a":1e10}', '100000000000000000000'),
	('a > 0 ? 1 : 0 + a', '{"a":2}', '1'),
	('a > 0 ? 1 : 0 + a', '{"a":-2}', '-2')
) v(expression, properties, expected),
LATERAL (SELECT meter.quantity(jsonb_build_object('type', 'SUM', 'expression', expression)::text::meter.aggregation,
	properties::jsonb) AS q) r;

-- huge values within numeric's range, and beyond it
SELECT length(meter.quantity('{"type":"SUM","expression":"pow(a, 300)"}', '{"a":10}')::text) AS pow_10_300_length,
	length(meter.quantity('{"type":"SUM","expression":"a * a"}', jsonb_build_object('a', ('1' || repeat('0', 60000))::numeric))::text) AS digits_120001,
	meter.quantity('{"type":"SUM","expression":"a * a * a"}', jsonb_build_object('a', ('1' || repeat('0', 60000))::numeric)) IS NULL AS digits_180001_skip,
	meter.quantity('{"type":"SUM","expression":"a + a"}', jsonb_build_object('a', ('9' || repeat('9', 131071))::numeric)) IS NULL AS add_overflow_skip,
	length(meter.quantity('{"type":"SUM","expression":"a + a - a"}', jsonb_build_object('a', ('4' || repeat('9', 131071))::numeric))::text) AS add_within_range,
	meter.quantity('{"type":"SUM","expression":"ceil(a)"}', jsonb_build_object('a', (repeat('9', 131072) || '.5')::numeric)) IS NULL AS ceil_overflow_skip,
	meter.quantity('{"type":"SUM","expression":"floor(a)"}', jsonb_build_object('a', ('-' || repeat('9', 131072) || '.5')::numeric)) IS NULL AS floor_overflow_skip,
	meter.quantity('{"type":"SUM","expression":"round(a)"}', jsonb_build_object('a', (repeat('9', 131072) || '.5')::numeric)) IS NULL AS round_overflow_skip,
	length(meter.quantity('{"type":"SUM","expression":"round(a)"}', jsonb_build_object('a', (repeat('9', 131072) || '.4')::numeric))::text) AS round_within_range,
	meter.quantity('{"type":"SUM","expression":"a / b"}', jsonb_build_object('a', ('1' || repeat('0', 131071))::numeric, 'b', 0.001)) IS NULL AS div_overflow_skip,
	length(meter.quantity('{"type":"SUM","expression":"a / b"}', jsonb_build_object('a', ('1' || repeat('0', 131071))::numeric, 'b', 10))::text) AS div_within_range;

-- each aggregation type: COUNT 1, COUNT_UNIQUE NULL, the others the field's or expression's value
SELECT a, meter.quantity(a::meter.aggregation, '{"t":"2.50","u":"x"}') AS quantity
FROM (VALUES ('{"type":"COUNT"}'), ('{"type":"COUNT","field":"t"}'), ('{"type":"COUNT_UNIQUE","field":"u"}'),
	('{"type":"SUM","field":"t"}'), ('{"type":"SUM","field":"u"}'), ('{"type":"SUM","field":"missing"}'),
	('{"type":"AVG","expression":"t * 2"}'), ('{"type":"MAX","field":"t","bucket_size":"HOUR","group_by":"u"}'),
	('{"type":"MIN","expression":"-t"}'), ('{"type":"LATEST","expression":"t + missing"}'),
	('{"type":"SUM_WITH_MULTIPLIER","field":"t","multiplier":10}'), ('{"type":"WEIGHTED_SUM","field":"t"}')) v(a);
-- one aggregation over many events: the compiled program is reused (and reset per event)
SELECT sum(meter.quantity('{"type":"SUM","expression":"a > 0 ? a * b : c"}', p)) AS total,
	count(meter.quantity('{"type":"SUM","expression":"a > 0 ? a * b : c"}', p)) AS counted
FROM (VALUES ('{"a":1,"b":2}'::jsonb), ('{"a":-1,"c":"x"}'), ('{"a":-1,"c":5}'), ('{"a":2,"b":"x","c":7}'), ('{}'), ('{"a":3,"b":3}')) v(p);
-- many aggregations over one event, alternating
SELECT a, meter.quantity(a, '{"x":4,"y":"0"}') FROM (VALUES
	('{"type":"SUM","expression":"x / y"}'::meter.aggregation), ('{"type":"SUM","expression":"sqrt(x)"}'),
	('{"type":"SUM","expression":"x / y"}'), ('{"type":"SUM","field":"x"}'), ('{"type":"SUM","expression":"sqrt(x)"}')) v(a);

-- ── explain_match names why an expression skips an event ───────────────────────────
BEGIN;
SET LOCAL meter.tenant_id = 'expression_test';
SELECT id FROM meter.create_meter('llm', 'tokens', '{"type":"SUM","expression":"input_tokens + output_tokens * 4"}', id => 'expr_tokens');
SELECT id FROM meter.create_meter('llm', 'ratio', '{"type":"AVG","expression":"a / b + sqrt(c) + log(d) + pow(e, f)"}', id => 'expr_ratio');
SELECT id FROM meter.create_meter('llm', 'peak', '{"type":"MAX","field":"gb","bucket_size":"HOUR","group_by":"volume"}', id => 'expr_peak');
SELECT meter_id, properties, meter.explain_match(meter_id, 'llm', properties::jsonb) AS explanation FROM (VALUES
	('expr_tokens', '{"input_tokens":1,"output_tokens":2}'),
	('expr_tokens', '{}'),
	('expr_tokens', '{"input_tokens":1,"output_tokens":"many"}'),
	('expr_tokens', '{"input_tokens":null,"output_tokens":2}'),
	('expr_ratio', '{"a":1,"b":1,"c":1,"d":1}'),
	('expr_ratio', '{"a":1,"b":0}'),
	('expr_ratio', '{"a":1,"b":1,"c":-1}'),
	('expr_ratio', '{"a":1,"b":1,"c":1,"d":0}'),
	('expr_ratio', '{"a":1,"b":1,"c":1,"d":1,"e":0,"f":-1}'),
	('expr_ratio', '{"a":1,"b":1,"c":1,"d":1,"e":-1,"f":0.5}'),
	('expr_ratio', '{"a":1,"b":1,"c":1,"d":1,"e":10,"f":200000}'),
	('expr_ratio', '{"a":1,"b":1,"c":1,"d":1,"e":"x"}'),
	('expr_peak', '{"gb":1}'),
	('expr_peak', '{"gb":"x","volume":"v1"}')
) v(meter_id, properties);
SELECT meter.expression_of(aggregation), meter.group_by_of(aggregation) FROM meter.meters
WHERE tenant_id = 'expression_test' ORDER BY id;
ROLLBACK;
