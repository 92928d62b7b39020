-- meter.aggregate (SPEC §8): declarations, parallel plans through the combine function,
-- states that round-trip through text and binary, GROUP BY and merge behaviour.
BEGIN;
SET client_min_messages = warning;
SELECT plan(59);

-- ── Declarations ────────────────────────────────────────────────────────────────────
SELECT has_type('meter', 'aggregate_state', 'meter.aggregate_state exists');
SELECT is((SELECT a.aggtranstype FROM pg_aggregate a
	WHERE a.aggfnoid = 'meter.aggregate(meter.aggregation, jsonb, timestamptz)'::regprocedure)::regtype,
	'meter.aggregate_state'::regtype, 'the 3-argument aggregate''s state is meter.aggregate_state (not internal)');
SELECT is((SELECT a.aggtranstype FROM pg_aggregate a
	WHERE a.aggfnoid = 'meter.aggregate(meter.aggregation, jsonb, timestamptz, timestamptz, timestamptz)'::regprocedure)::regtype,
	'meter.aggregate_state'::regtype, 'the 5-argument aggregate''s state is meter.aggregate_state');
SELECT is((SELECT count(*)::int FROM pg_aggregate a JOIN pg_proc p ON p.oid = a.aggfnoid
	JOIN pg_namespace n ON n.oid = p.pronamespace
	WHERE n.nspname = 'meter' AND a.aggcombinefn <> 0 AND p.proparallel = 's'), 5,
	'all five aggregates have a combine function and are PARALLEL SAFE');
SELECT is((SELECT count(*)::int FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
	WHERE n.nspname = 'meter' AND (p.proname LIKE 'aggregate%')
	AND (p.proparallel <> 's' OR obj_description(p.oid, 'pg_proc') IS NULL)), 0,
	'every aggregate function is PARALLEL SAFE and commented');
SELECT isnt(obj_description('meter.aggregate_state'::regtype, 'pg_type'), NULL, 'the state type is commented');
SELECT ok((SELECT typsend <> 0 AND typreceive <> 0 FROM pg_type WHERE oid = 'meter.aggregate_state'::regtype),
	'the state type has binary send/receive');

-- ── Data: 60k events with LATEST ties spread over the table ───────────────────────
CREATE TABLE public.agg_events (id int, grp int, properties jsonb, ts timestamptz);
INSERT INTO public.agg_events
SELECT g, g % 10,
	CASE WHEN g % 97 = 0 THEN '{"v":"abc"}'::jsonb
		WHEN g % 89 = 0 THEN '{}'::jsonb
		WHEN g % 7 = 0 THEN jsonb_build_object('v', ((g % 1000) / 8.0)::text)
		ELSE jsonb_build_object('v', (g % 1000) - 300, 'u', 'user' || (g % 3001)) END,
	timestamptz '2024-01-01 00:00+00' + (g % 25000) * interval '73 seconds'
FROM generate_series(1, 60000) g;
-- The greatest timestamp on rows far apart, with values tied up to their scale.
UPDATE public.agg_events SET ts = '2024-03-01 00:00+00',
	properties = jsonb_build_object('v', CASE id WHEN 5 THEN '900' WHEN 40000 THEN '900.00' ELSE '899' END)
WHERE id IN (5, 20000, 40000, 59999);
ANALYZE public.agg_events;

CREATE TEMP TABLE agg_types (t text, agg meter.aggregation);
INSERT INTO agg_types VALUES
	('COUNT', '{"type":"COUNT"}'), ('SUM', '{"type":"SUM","field":"v"}'),
	('AVG', '{"type":"AVG","field":"v"}'), ('COUNT_UNIQUE', '{"type":"COUNT_UNIQUE","field":"v"}'),
	('MAX', '{"type":"MAX","field":"v"}'), ('MIN', '{"type":"MIN","field":"v"}'),
	('LATEST', '{"type":"LATEST","field":"v"}'),
	('SUM_WITH_MULTIPLIER', '{"type":"SUM_WITH_MULTIPLIER","field":"v","multiplier":2.5}'),
	('MAX_HOUR', '{"type":"MAX","field":"v","bucket_size":"HOUR"}'),
	('MAX_WEEK', '{"type":"MAX","field":"v","bucket_size":"WEEK"}'),
	('SUM_DAY', '{"type":"SUM","field":"v","bucket_size":"DAY"}'),
	('COUNT_UNIQUE_U', '{"type":"COUNT_UNIQUE","field":"u"}'),
	('SUM_EXPRESSION', '{"type":"SUM","expression":"v * 2 + 1"}'),
	('MAX_DAY_GROUP_BY', '{"type":"MAX","field":"v","bucket_size":"DAY","group_by":"u"}');

-- One query per type (a constant aggregation, as a usage query has), run serially.
CREATE FUNCTION pg_temp.results() RETURNS TABLE (t text, value text) LANGUAGE plpgsql AS $$
DECLARE r record;
BEGIN
	FOR r IN SELECT * FROM agg_types ORDER BY 1 LOOP
		t := r.t;
		EXECUTE format('SELECT meter.aggregate(%L::meter.aggregation, properties, ts)::text FROM public.agg_events', r.agg)
			INTO value;
		RETURN NEXT;
	END LOOP;
	t := 'WEIGHTED_SUM';
	SELECT meter.aggregate('{"type":"WEIGHTED_SUM","field":"v"}', properties, ts,
		'2024-01-01 00:00+00', '2024-02-01 00:00+00')::text INTO value FROM public.agg_events;
	RETURN NEXT;
END $$;
CREATE FUNCTION pg_temp.plan_of(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE line text; result text := '';
BEGIN
	FOR line IN EXECUTE 'EXPLAIN ' || CASE WHEN q LIKE '(%' THEN replace(q, '(ANALYZE', '(ANALYZE, COSTS OFF') ELSE '(COSTS OFF) ' || q END LOOP result := result || line || E'\n'; END LOOP;
	RETURN result;
END $$;

SET LOCAL max_parallel_workers_per_gather = 0;
CREATE TEMP TABLE serial AS SELECT * FROM pg_temp.results();
-- Expected values, computed with built-in aggregates.
SELECT is((SELECT value FROM serial WHERE t = 'SUM'),
	(SELECT sum((properties->>'v')::numeric)::text FROM public.agg_events WHERE properties->>'v' ~ '^-?[0-9]+(\.[0-9]+)?$'),
	'SUM equals sum() of the usable values');
SELECT is((SELECT value FROM serial WHERE t = 'AVG'),
	(SELECT avg((properties->>'v')::numeric)::text FROM public.agg_events WHERE properties->>'v' ~ '^-?[0-9]+(\.[0-9]+)?$'),
	'AVG equals avg() to the digit');
SELECT is((SELECT value FROM serial WHERE t = 'COUNT'), '60000', 'COUNT counts every row');
SELECT is((SELECT value FROM serial WHERE t = 'COUNT_UNIQUE'),
	(SELECT count(DISTINCT CASE WHEN properties->>'v' ~ '^-?[0-9]' THEN ((properties->>'v')::numeric)::float8::text ELSE properties->>'v' END)::text
	 FROM public.agg_events), 'COUNT_UNIQUE compares numbers by value');
SELECT is((SELECT value FROM serial WHERE t = 'LATEST'), '900.00', 'LATEST: greatest timestamp, then greatest value, then most decimals');
SELECT is((SELECT value FROM serial WHERE t = 'MAX_HOUR'),
	(SELECT sum(m)::text FROM (SELECT max((properties->>'v')::numeric) m FROM public.agg_events
		WHERE properties->>'v' ~ '^-?[0-9]+(\.[0-9]+)?$' GROUP BY date_trunc('hour', ts, 'UTC')) q),
	'bucketed MAX is the sum of the hourly maxima');
SELECT is((SELECT value FROM serial WHERE t = 'SUM_DAY'), (SELECT value FROM serial WHERE t = 'SUM'),
	'bucketed SUM equals SUM');
-- An expression: v * 2 + 1 of every usable v, 1 where v is missing (a missing property
-- is 0), nothing where v is present but not a number.
SELECT is((SELECT value FROM serial WHERE t = 'SUM_EXPRESSION'),
	(SELECT sum(CASE WHEN properties->>'v' ~ '^-?[0-9]+(\.[0-9]+)?$' THEN (properties->>'v')::numeric * 2 + 1
		WHEN NOT properties ? 'v' THEN 1 END)::text FROM public.agg_events),
	'an expression replaces the field''s value');
-- group_by: per UTC day, the sum of the maxima per u (rows without u form one group).
SELECT is((SELECT value FROM serial WHERE t = 'MAX_DAY_GROUP_BY'),
	(SELECT sum(m)::text FROM (SELECT max((properties->>'v')::numeric) m FROM public.agg_events
		WHERE properties->>'v' ~ '^-?[0-9]+(\.[0-9]+)?$' GROUP BY date_trunc('day', ts, 'UTC'), properties->>'u') q),
	'bucketed MAX with group_by is the sum of the per-group daily maxima');
SELECT is((SELECT value FROM serial WHERE t = 'WEIGHTED_SUM'),
	(SELECT ((extract(epoch FROM timestamptz '2024-02-01 00:00+00') * sum((properties->>'v')::numeric)
		- sum((properties->>'v')::numeric * extract(epoch FROM ts)))
		/ (extract(epoch FROM timestamptz '2024-02-01 00:00+00') - extract(epoch FROM timestamptz '2024-01-01 00:00+00')))::text
	 FROM public.agg_events WHERE properties->>'v' ~ '^-?[0-9]+(\.[0-9]+)?$'),
	'WEIGHTED_SUM equals the formula in SQL to the digit');

-- ── Parallel: Partial Aggregate in workers, Finalize through the combine function ─────
SET LOCAL parallel_setup_cost = 0;
SET LOCAL parallel_tuple_cost = 0;
SET LOCAL min_parallel_table_scan_size = 0;
SET LOCAL max_parallel_workers_per_gather = 2;
SET LOCAL parallel_leader_participation = off;
SELECT matches(pg_temp.plan_of($$SELECT meter.aggregate('{"type":"SUM","field":"v"}', properties, ts) FROM public.agg_events$$),
	'Finalize Aggregate.*Gather.*Partial Aggregate.*Parallel Seq Scan', 'the plan is parallel with partial aggregates');
SELECT matches(pg_temp.plan_of($$SELECT meter.aggregate('{"type":"WEIGHTED_SUM","field":"v"}', properties, ts, '2024-01-01', '2024-02-01') FROM public.agg_events$$),
	'Finalize Aggregate.*Gather.*Partial Aggregate', 'the 5-argument form is parallel too');
SELECT matches(pg_temp.plan_of($$(ANALYZE, TIMING OFF) SELECT meter.aggregate('{"type":"LATEST","field":"v"}', properties, ts) FROM public.agg_events$$),
	'Workers Launched: [12]', 'parallel workers run the partial aggregates');
SELECT matches(pg_temp.plan_of($$(ANALYZE, TIMING OFF) SELECT meter.aggregate('{"type":"MAX","expression":"v * 2","bucket_size":"DAY","group_by":"u"}', properties, ts) FROM public.agg_events$$),
	'Finalize Aggregate.*Workers Launched: [12].*Partial Aggregate', 'expression and group_by states go through parallel workers too');
CREATE TEMP TABLE parallel AS SELECT * FROM pg_temp.results();
SELECT is((SELECT value FROM parallel p WHERE p.t = s.t), s.value, 'parallel = serial: ' || s.t)
FROM serial s ORDER BY s.t;
-- GROUP BY in parallel
SELECT matches(pg_temp.plan_of($$SELECT grp, meter.aggregate('{"type":"COUNT_UNIQUE","field":"v"}', properties, ts) FROM public.agg_events GROUP BY 1$$),
	'Finalize .*Gather.*Partial .*Aggregate', 'grouped plan is parallel');
CREATE TEMP TABLE grouped_parallel AS
SELECT grp, meter.aggregate('{"type":"COUNT_UNIQUE","field":"v"}', properties, ts)::text AS cu,
	meter.aggregate('{"type":"LATEST","field":"v"}', properties, ts)::text AS latest,
	meter.aggregate('{"type":"MAX","field":"v","bucket_size":"DAY"}', properties, ts)::text AS bmax,
	meter.aggregate('{"type":"MAX","expression":"v * 2","bucket_size":"DAY","group_by":"u"}', properties, ts)::text AS gmax
FROM public.agg_events GROUP BY 1;
SET LOCAL max_parallel_workers_per_gather = 0;
SELECT set_eq($$SELECT * FROM grouped_parallel$$,
	$$SELECT grp, meter.aggregate('{"type":"COUNT_UNIQUE","field":"v"}', properties, ts)::text AS cu,
		meter.aggregate('{"type":"LATEST","field":"v"}', properties, ts)::text AS latest,
		meter.aggregate('{"type":"MAX","field":"v","bucket_size":"DAY"}', properties, ts)::text AS bmax,
		meter.aggregate('{"type":"MAX","expression":"v * 2","bucket_size":"DAY","group_by":"u"}', properties, ts)::text AS gmax
	  FROM public.agg_events GROUP BY 1$$, 'grouped parallel = grouped serial');
-- hash and sort grouping agree
SET LOCAL enable_hashagg = off;
SELECT set_eq($$SELECT * FROM grouped_parallel$$,
	$$SELECT grp, meter.aggregate('{"type":"COUNT_UNIQUE","field":"v"}', properties, ts)::text AS cu,
		meter.aggregate('{"type":"LATEST","field":"v"}', properties, ts)::text AS latest,
		meter.aggregate('{"type":"MAX","field":"v","bucket_size":"DAY"}', properties, ts)::text AS bmax,
		meter.aggregate('{"type":"MAX","expression":"v * 2","bucket_size":"DAY","group_by":"u"}', properties, ts)::text AS gmax
	  FROM public.agg_events GROUP BY 1$$, 'sorted grouping = hashed grouping');
RESET enable_hashagg;

-- Partitionwise aggregation: partial states combined in the same backend.
CREATE TEMP TABLE pev (grp int, properties jsonb, ts timestamptz) PARTITION BY LIST (grp);
CREATE TEMP TABLE pev_a PARTITION OF pev FOR VALUES IN (0, 1, 2, 3, 4);
CREATE TEMP TABLE pev_b PARTITION OF pev FOR VALUES IN (5, 6, 7, 8, 9);
INSERT INTO pev SELECT grp, properties, ts FROM public.agg_events;
ANALYZE pev;
SET LOCAL enable_partitionwise_aggregate = on;
SELECT matches(pg_temp.plan_of($$SELECT (grp % 2), meter.aggregate('{"type":"LATEST","field":"v"}', properties, ts) FROM pev GROUP BY 1$$),
	'Finalize .*Partial .*Partial ', 'partitionwise plan has partial aggregates per partition');
CREATE TEMP TABLE pw AS
SELECT grp % 2 AS g, meter.aggregate('{"type":"COUNT_UNIQUE","field":"v"}', properties, ts)::text AS cu,
	meter.aggregate('{"type":"LATEST","field":"v"}', properties, ts)::text AS latest,
	meter.aggregate('{"type":"MAX","field":"v","bucket_size":"DAY"}', properties, ts)::text AS bmax
FROM pev GROUP BY 1;
SET LOCAL enable_partitionwise_aggregate = off;
SELECT set_eq($$SELECT * FROM pw$$,
	$$SELECT grp % 2, meter.aggregate('{"type":"COUNT_UNIQUE","field":"v"}', properties, ts)::text AS cu,
		meter.aggregate('{"type":"LATEST","field":"v"}', properties, ts)::text AS latest,
		meter.aggregate('{"type":"MAX","field":"v","bucket_size":"DAY"}', properties, ts)::text AS bmax
	  FROM pev GROUP BY 1$$, 'partitionwise = plain');

-- ── States: merge in any split and any order, round trips ─────────────────────────
-- Partial states per arbitrary slice, merged, equal the whole (every type; a third of
-- the events, sliced 13 and 7 ways).
SELECT is((SELECT count(*)::int FROM agg_types ty WHERE
	(SELECT meter.aggregate_final(meter.aggregate_merge(s ORDER BY random()))::text FROM
		(SELECT meter.aggregate_partial(ty.agg, properties, ts) s FROM public.agg_events WHERE id % 3 = 0 GROUP BY id % 13) q)
	IS DISTINCT FROM
	(SELECT meter.aggregate(ty.agg, properties, ts)::text FROM public.agg_events WHERE id % 3 = 0)), 0,
	'merging partial states of any slicing, in any order, gives the same result');
SELECT is((SELECT count(*)::int FROM agg_types ty WHERE
	(SELECT meter.aggregate_merge(s ORDER BY random())::text FROM
		(SELECT meter.aggregate_partial(ty.agg, properties, ts) s FROM public.agg_events WHERE id % 3 = 0 GROUP BY id % 7) q)
	IS DISTINCT FROM
	(SELECT meter.aggregate_partial(ty.agg, properties, ts)::text FROM public.agg_events WHERE id % 3 = 0)), 0,
	'a merged state is the same state (same text) as the whole');

-- Text round trip for a state of every type.
CREATE TEMP TABLE states AS
SELECT t, meter.aggregate_partial(agg, properties, ts) AS s FROM public.agg_events, agg_types
WHERE id % 100 = 0 OR id IN (5, 40000) GROUP BY t
UNION ALL
SELECT 'WEIGHTED_SUM', meter.aggregate_partial('{"type":"WEIGHTED_SUM","field":"v"}', properties, ts, '2024-01-01', '2024-02-01')
FROM public.agg_events WHERE id % 100 = 0;
SELECT is((SELECT count(*)::int FROM states WHERE s::text = s::text::meter.aggregate_state::text), 15,
	'state::text::meter.aggregate_state gives the same text, for every type');
SELECT is((SELECT count(*)::int FROM states WHERE meter.aggregate_state_send(s) = meter.aggregate_state_send(s::text::meter.aggregate_state)), 15,
	'the binary form is the same after a text round trip');

-- Binary round trip through COPY (FORMAT binary): send, then receive.
CREATE TEMP TABLE states_back (t text, s meter.aggregate_state);
DO $$
DECLARE f text := '/tmp/meter_aggregate_states_' || pg_backend_pid() || '.bin';
BEGIN
	EXECUTE format('COPY states TO %L (FORMAT binary)', f);
	EXECUTE format('COPY states_back FROM %L (FORMAT binary)', f);
	EXECUTE format('COPY (SELECT 1 WHERE false) TO %L', f);
END $$;
SELECT is((SELECT count(*)::int FROM states a JOIN states_back b USING (t) WHERE a.s::text = b.s::text), 15,
	'every state survives COPY BINARY out and in');
SELECT is((SELECT count(*)::int FROM states a JOIN states_back b USING (t)
	WHERE meter.aggregate_final(a.s) IS NOT DISTINCT FROM meter.aggregate_final(b.s)), 15,
	'and gives the same result');
-- Binary payloads written by hand, received through COPY (a bytea's binary form is its
-- bytes): 0.1.0's version 1 (a SUM of 5 and 3 over "gb"; an hourly MAX of 5 and 3) still
-- reads, and version 2 is only for aggregations with an expression or a group_by.
CREATE TEMP TABLE payloads (b bytea);
CREATE TEMP TABLE received (s meter.aggregate_state);
CREATE FUNCTION pg_temp.receive(payload bytea) RETURNS SETOF meter.aggregate_state LANGUAGE plpgsql AS $$
DECLARE f text := '/tmp/meter_aggregate_payload_' || pg_backend_pid() || '.bin';
BEGIN
	DELETE FROM payloads; DELETE FROM received;
	INSERT INTO payloads VALUES (payload);
	EXECUTE format('COPY payloads TO %L (FORMAT binary)', f);
	BEGIN
		EXECUTE format('COPY received FROM %L (FORMAT binary)', f);
	EXCEPTION WHEN OTHERS THEN
		EXECUTE format('COPY (SELECT 1 WHERE false) TO %L', f);
		RAISE;
	END;
	EXECUTE format('COPY (SELECT 1 WHERE false) TO %L', f);
	RETURN QUERY SELECT * FROM received;
END $$;
SELECT is(ARRAY[(SELECT s::text FROM pg_temp.receive('\x010100000000000267620000000000000002000000000000000200010000000000000008') r(s)),
		(SELECT s::text FROM pg_temp.receive('\x01040400000000017600000000000000020000000000000002000000020002b0d5d4e94000000100000000000000050002b0d6ab7ce40000010000000000000003') r(s))],
	ARRAY['{"version":1,"aggregation":{"type":"SUM","field":"gb"},"rows":2,"values":2,"sum":8}',
		'{"version":1,"aggregation":{"type":"MAX","field":"v","bucket_size":"HOUR"},"rows":2,"values":2,"buckets":[["2024-01-01 00:00:00+00",5],["2024-01-01 01:00:00+00",3]]}'],
	'version 1 binary states of 0.1.0 still read');
SELECT throws_ok($$SELECT pg_temp.receive('\x02010000000000026762ffffffffffffffff0000000000000002000000000000000200010000000000000008')$$,
	'22P03', 'invalid aggregate state', 'a version 2 binary state of an aggregation without expression or group_by is refused');
SELECT throws_ok($$SELECT pg_temp.receive('\x020404000000000176ffffffff000000016700000000000000010000000000000001000000010002b0d5d4e940000001000000000000000500000001')$$,
	'22P03', 'invalid aggregate state', 'a version 2 bucket whose group length runs past the end is refused');

-- Stored in a table column (flattened, maybe compressed) and read back.
CREATE TEMP TABLE big_state AS
SELECT meter.aggregate_partial('{"type":"COUNT_UNIQUE","field":"u"}', jsonb_build_object('u', repeat('x', 50) || g), now()) AS s
FROM generate_series(1, 20000) g;
SELECT is((SELECT meter.aggregate_final(s) FROM big_state), 20000::numeric, 'a large state stored in a table still works');
SELECT is((SELECT meter.aggregate_final(s::text::meter.aggregate_state) FROM big_state), 20000::numeric,
	'and round-trips through its text');

-- Combine with itself and with the empty state
SELECT is((SELECT meter.aggregate_final(meter.aggregate_combine(s, s)) FROM states WHERE t = 'SUM'),
	(SELECT 2 * meter.aggregate_final(s) FROM states WHERE t = 'SUM'), 'combining a state with itself doubles a SUM');
SELECT is((SELECT meter.aggregate_combine(NULL, s)::text FROM states WHERE t = 'LATEST'),
	(SELECT s::text FROM states WHERE t = 'LATEST'), 'combining with the empty state changes nothing');

-- Errors keep the session usable
SELECT throws_ok($$SELECT meter.aggregate('{"type":"WEIGHTED_SUM","field":"v"}', properties, ts) FROM public.agg_events$$,
	'0A000', 'WEIGHTED_SUM needs a period', 'the 3-argument form refuses WEIGHTED_SUM');
SELECT throws_ok($$SELECT meter.aggregate(agg, properties, ts) FROM public.agg_events, agg_types$$,
	'22023', 'aggregation must be the same for every row of a group', 'different aggregations in one group');
SELECT throws_ok($$SELECT 'garbage'::meter.aggregate_state$$, '22P02', NULL, 'state text that is not JSON');
SELECT throws_ok($$SELECT '{"version":9}'::meter.aggregate_state$$, '22023', 'invalid aggregate state', 'a wrong version');
SELECT is((SELECT meter.aggregate('{"type":"COUNT"}', properties, ts) FROM public.agg_events), 60000::numeric,
	'the session still works');

DROP TABLE public.agg_events;
SELECT * FROM finish();
ROLLBACK;
