-- Property test of usage for many at once (SPEC §8): random meters (every aggregation
-- type, expressions, bucket sizes, filters on one or two keys, reset NEVER), random events
-- written through several write forms into two tracked tables, compaction at random
-- moments and thresholds. After every step, for random ranges, window sizes, zones and
-- anchors: usage_by_customer, usage_by_group and usage_by_filter_groups equal their
-- _from_events twins row for row (order included), and for additive meters the customers'
-- and the groups' values add up to meter.usage.
-- Size: 100 steps × meter_test.scale (PGOPTIONS='-c meter_test.scale=10' for a long run).
BEGIN;
SET client_min_messages = warning;
SET LOCAL timezone = 'UTC';
SET LOCAL meter.tenant_id = 'prop_many';
SELECT setseed(0.6161);
CREATE TEMP TABLE knobs AS
	SELECT 100 * COALESCE(NULLIF(current_setting('meter_test.scale', true), '')::int, 1) AS steps;
SELECT plan((SELECT steps FROM knobs) + 8);

-- A user's own event table, tracked, next to meter.events.
CREATE TABLE public.prop_many_events (LIKE meter.events INCLUDING DEFAULTS INCLUDING INDEXES);
SELECT 1 FROM meter.track('public.prop_many_events');

-- Meters: every aggregation type (and expressions, bucket sizes, group_by), each with
-- random filters on k1 and maybe k2, some with reset NEVER.
CREATE TEMP TABLE pm (id text PRIMARY KEY, additive boolean);
INSERT INTO pm
SELECT (meter.create_meter('pe', 'prop many ' || i, a::meter.aggregation,
	(SELECT jsonb_agg(f) FROM (
		SELECT jsonb_build_object('key', 'k1', 'values', (SELECT jsonb_agg(v) FROM unnest(ARRAY['a', 'b', 'c', '1']) v
			WHERE random() < 0.6 OR v = 'a' OR m.i < 0)) AS f
		UNION ALL
		SELECT jsonb_build_object('key', 'k2', 'values', (SELECT jsonb_agg(v) FROM unnest(ARRAY['x', 'y', 'true']) v
			WHERE random() < 0.6 OR v = 'x' OR m.i < 0)) WHERE random() < 0.6 OR m.i < 0) fs)::meter.filters,
	CASE WHEN random() < 0.25 THEN 'NEVER' ELSE 'BILLING_PERIOD' END::meter.reset_usage,
	id => 'pmm_' || i)).id, add
FROM (VALUES
	(1, '{"type":"COUNT"}', true), (2, '{"type":"SUM","field":"v"}', true), (3, '{"type":"AVG","field":"v"}', false),
	(4, '{"type":"COUNT_UNIQUE","field":"u"}', false), (5, '{"type":"MAX","field":"v"}', false),
	(6, '{"type":"MIN","field":"v"}', false), (7, '{"type":"LATEST","field":"v"}', false),
	(8, '{"type":"SUM_WITH_MULTIPLIER","field":"v","multiplier":"1.5"}', true),
	(9, '{"type":"WEIGHTED_SUM","field":"v"}', false),
	(10, '{"type":"MAX","field":"v","bucket_size":"HOUR","group_by":"g"}', false),
	(11, '{"type":"SUM","field":"v","bucket_size":"15MIN"}', true),
	(12, '{"type":"SUM","expression":"a + b * 2"}', true),
	(13, '{"type":"MAX","expression":"a > b ? a : b"}', false),
	(14, '{"type":"AVG","expression":"a / (b + 1)"}', false),
	(15, '{"type":"LATEST","expression":"abs(a - b)"}', false),
	(16, '{"type":"COUNT"}', true)) m(i, a, add);

CREATE FUNCTION pg_temp.pick(a anyarray) RETURNS anyelement LANGUAGE sql AS $$
	SELECT a[1 + floor(random() * array_length(a, 1))::int]
$$;
CREATE FUNCTION pg_temp.random_properties() RETURNS jsonb LANGUAGE sql AS $$
	SELECT jsonb_strip_nulls(jsonb_build_object(
		'k1', pg_temp.pick(ARRAY['"a"', '"b"', '"c"', '"d"', '1', '1.0', '"1"', NULL])::jsonb,
		'k2', pg_temp.pick(ARRAY['"x"', '"y"', '"z"', 'true', '"true"', NULL])::jsonb,
		'v', pg_temp.pick(ARRAY[to_jsonb(floor(random() * 100)::int), to_jsonb(round((random() * 10)::numeric, 2)),
			to_jsonb((floor(random() * 50) - 20)::text), '"abc"'::jsonb, 'null'::jsonb, NULL]),
		'u', pg_temp.pick(ARRAY['2', '2.0', '"2"', '"u1"', '"u2"', 'true', NULL])::jsonb,
		'g', pg_temp.pick(ARRAY['"g1"', '"g2"', '1', NULL])::jsonb,
		'a', pg_temp.pick(ARRAY[to_jsonb(floor(random() * 20)::int), to_jsonb(round((random() * 5)::numeric, 1)), '"z"'::jsonb, NULL]),
		'b', pg_temp.pick(ARRAY[to_jsonb(floor(random() * 5)::int - 1), NULL])))
$$;
CREATE FUNCTION pg_temp.random_table() RETURNS text LANGUAGE sql AS $$
	SELECT pg_temp.pick(ARRAY['meter.events', 'public.prop_many_events'])
$$;
-- n random events into tbl in one statement, around 2024-03-08 … 03-13 (the New York DST
-- change is on the 10th), or much earlier (history).
CREATE FUNCTION pg_temp.insert_batch(tbl text, n int, early boolean DEFAULT false) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE format($q$INSERT INTO %s (id, event_name, customer_id, external_customer_id, "timestamp", properties)
		SELECT 'ev' || floor(random() * 1000000)::int || '_' || g, pg_temp.pick(ARRAY['pe', 'pe', 'pe', 'other']),
			pg_temp.pick(ARRAY['c1', 'c2', 'c3', 'c4', NULL]), pg_temp.pick(ARRAY['x1', 'x2', NULL]),
			%L::timestamptz + floor(random() * %s * 24 * 60) * interval '1 minute' + floor(random() * 60) * interval '1 second',
			pg_temp.random_properties()
		FROM generate_series(1, %s) g ON CONFLICT DO NOTHING$q$, tbl,
		CASE WHEN early THEN '2024-02-01' ELSE '2024-03-08' END, CASE WHEN early THEN 20 ELSE 5 END, n);
END $$;

-- One random operation; returns what it did.
CREATE FUNCTION pg_temp.step() RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	op int := floor(random() * 13)::int;
	tbl text := pg_temp.random_table();
	m text;
	n bigint;
BEGIN
	CASE
	WHEN op <= 2 THEN
		PERFORM pg_temp.insert_batch(tbl, 1 + floor(random() * 40)::int);
		RETURN 'batch insert into ' || tbl;
	WHEN op = 3 THEN
		FOR i IN 1..5 LOOP PERFORM pg_temp.insert_batch(tbl, 1); END LOOP;
		RETURN 'row-by-row inserts into ' || tbl;
	WHEN op = 4 THEN
		EXECUTE format('UPDATE %s SET properties = pg_temp.random_properties() WHERE random() < 0.1', tbl);
		RETURN 'update of properties in ' || tbl;
	WHEN op = 5 THEN
		EXECUTE format($q$UPDATE %s SET "timestamp" = "timestamp" + (floor(random() * 240) - 120) * interval '1 minute',
			customer_id = pg_temp.pick(ARRAY['c1', 'c2', 'c5', NULL]),
			external_customer_id = CASE WHEN random() < 0.5 THEN external_customer_id ELSE pg_temp.pick(ARRAY['x1', NULL]) END
			WHERE random() < 0.1$q$, tbl);
		RETURN 'update of time and customer in ' || tbl;
	WHEN op = 6 THEN
		EXECUTE format('DELETE FROM %s WHERE random() < 0.08', tbl);
		RETURN 'delete in ' || tbl;
	WHEN op = 7 THEN
		EXECUTE format($q$INSERT INTO %1$s (id, event_name, customer_id, external_customer_id, "timestamp", properties)
			SELECT id, event_name, pg_temp.pick(ARRAY[customer_id, 'c3']), external_customer_id,
				"timestamp" + floor(random() * 30) * interval '1 minute', pg_temp.random_properties()
			FROM (SELECT * FROM %1$s ORDER BY random() LIMIT 10) s
			UNION ALL
			SELECT 'up' || floor(random() * 1000000)::int, 'pe', 'c1', NULL, '2024-03-10 06:59:59Z', pg_temp.random_properties()
			ON CONFLICT (tenant_id, environment_id, id) DO UPDATE SET properties = excluded.properties,
				customer_id = excluded.customer_id, "timestamp" = excluded."timestamp"$q$, tbl);
		RETURN 'insert … on conflict do update into ' || tbl;
	WHEN op = 8 THEN
		IF random() < 0.5 THEN
			n := meter.compact();
			RETURN 'compact: ' || n;
		END IF;
		SELECT id INTO m FROM pm ORDER BY random() LIMIT 1;
		n := meter.compact(m);
		RETURN 'compact ' || m || ': ' || n;
	WHEN op = 9 THEN
		PERFORM set_config('meter.compaction_threshold', pg_temp.pick(ARRAY['1', '5', '30', '20000']), true);
		RETURN 'compaction_threshold ' || current_setting('meter.compaction_threshold');
	WHEN op = 10 THEN
		PERFORM pg_temp.insert_batch(tbl, 1 + floor(random() * 10)::int, true);
		RETURN 'early events into ' || tbl;
	WHEN op = 11 THEN
		-- new filters: the stored dimensions are recomputed
		SELECT id INTO m FROM pm ORDER BY random() LIMIT 1;
		PERFORM meter.update_meter(m, pg_temp.pick(ARRAY['[{"key":"k1","values":["a","1"]}]',
			'[{"key":"k2","values":["x","true"]}]', '[{"key":"k1","values":["b","c"]},{"key":"k2","values":["y"]}]',
			'[{"key":"k2","values":["x","y","z"]},{"key":"k1","values":["a","b","c","d","1"]}]'])::meter.filters);
		RETURN 'filters of ' || m || ' changed';
	ELSE
		BEGIN
			PERFORM pg_temp.insert_batch(tbl, 20);
			EXECUTE format('DELETE FROM %s WHERE random() < 0.2', tbl);
			RAISE EXCEPTION 'roll back';
		EXCEPTION WHEN raise_exception THEN NULL;
		END;
		RETURN 'rolled-back insert and delete in ' || tbl;
	END CASE;
END $$;

-- The differing rows of two queries (with their positions), or NULL.
CREATE FUNCTION pg_temp.diff(a text, b text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE r text;
BEGIN
	EXECUTE format('SELECT string_agg(d, '' / '') FROM (SELECT * FROM (SELECT ''-'' || x::text AS d FROM (%1$s EXCEPT ALL %2$s) x
		UNION ALL SELECT ''+'' || x::text FROM (%2$s EXCEPT ALL %1$s) x) y ORDER BY d LIMIT 4) z', a, b) INTO r;
	RETURN r;
END $$;

-- Random filter groups over the meter's filter keys and values (and one that matches
-- nothing, and sometimes a catch-all last).
CREATE FUNCTION pg_temp.random_groups(mid text) RETURNS jsonb LANGUAGE sql AS $$
	SELECT jsonb_agg(g ORDER BY o) FROM (
		SELECT i AS o, jsonb_build_object('id', 'g' || i, 'filters', coalesce((SELECT jsonb_object_agg(k,
				(SELECT jsonb_agg(v) FROM (SELECT v FROM unnest(meter.filter_values(m.filters, k) || ARRAY['nope']) v
					ORDER BY random() LIMIT 1 + floor(random() * 2)::int) vs))
			FROM unnest(meter.filter_keys(m.filters)) k WHERE random() < 0.6 OR i < 0), '{}')) AS g
		FROM meter.meters m, generate_series(1, 1 + floor(random() * 3)::int) i WHERE m.id = mid
		UNION ALL SELECT 9, '{"id":"all"}' WHERE random() < 0.5) s
$$;

-- One random query on every function and its twin; '' when all agrees.
CREATE FUNCTION pg_temp.mismatch() RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	m pm;
	lo timestamptz := '2024-03-07 20:00Z'::timestamptz + floor(random() * 110) * interval '1 hour'
		+ pg_temp.pick(ARRAY[0, 0, 7, 15, 30, 45]) * interval '1 minute';
	hi timestamptz := lo + (1 + floor(random() * 72)) * interval '1 hour' + pg_temp.pick(ARRAY[0, 0, 15, 31]) * interval '1 minute';
	w meter.window_size := pg_temp.pick(ARRAY[NULL, 'MINUTE', '15MIN', '30MIN', 'HOUR', '3HOUR', '12HOUR', 'DAY', 'WEEK', 'MONTH']::meter.window_size[]);
	tz text := pg_temp.pick(ARRAY['UTC', 'America/New_York', 'Asia/Kolkata', 'Asia/Kathmandu', '', NULL]);
	anchor timestamptz := pg_temp.pick(ARRAY[NULL, '2024-01-31 10:07Z', '2024-02-15 00:00Z']::timestamptz[]);
	c text := pg_temp.pick(ARRAY[NULL, NULL, 'c1', 'c3', '']);
	x text := pg_temp.pick(ARRAY[NULL, NULL, 'x1', '']);
	keys text[];
	groups jsonb;
	q text;
	bad text;
BEGIN
	IF w = 'MINUTE' THEN hi := lo + interval '2 hours 3 minutes'; END IF;
	SELECT * INTO m FROM pm ORDER BY random() LIMIT 1;
	SELECT coalesce(array_agg(k ORDER BY random()) FILTER (WHERE random() < 0.7), '{}') INTO keys
		FROM meter.meters mm, unnest(meter.filter_keys(mm.filters)) k WHERE mm.id = m.id;
	groups := pg_temp.random_groups(m.id);
	q := format('%L, %L, %L, %L, %L, %L', m.id, lo, hi, w, tz, anchor);

	bad := pg_temp.diff(format('SELECT * FROM meter.usage_by_customer(%s) WITH ORDINALITY', q),
		format('SELECT * FROM meter.usage_by_customer_from_events(%s) WITH ORDINALITY', q));
	IF bad IS NOT NULL THEN RETURN format('usage_by_customer(%s): %s', q, bad); END IF;

	q := format('%L, %L, %L, %L, %L, %L, %L, %L, %L', m.id, keys, lo, hi, c, x, w, tz, anchor);
	bad := pg_temp.diff(format('SELECT * FROM meter.usage_by_group(%s) WITH ORDINALITY', q),
		format('SELECT * FROM meter.usage_by_group_from_events(%s) WITH ORDINALITY', q));
	IF bad IS NOT NULL THEN RETURN format('usage_by_group(%s): %s', q, bad); END IF;

	q := format('%L, %L, %L, %L, %L, %L, %L, %L, %L', m.id, groups, lo, hi, c, x, w, tz, anchor);
	bad := pg_temp.diff(format('SELECT * FROM meter.usage_by_filter_groups(%s) WITH ORDINALITY', q),
		format('SELECT * FROM meter.usage_by_filter_groups_from_events(%s) WITH ORDINALITY', q));
	IF bad IS NOT NULL THEN RETURN format('usage_by_filter_groups(%s): %s', q, bad); END IF;

	IF m.additive THEN
		-- the customers add up to the usage of all, the groups to the usage of the customer filter
		SELECT format('window %s: usage %s, customers %s', u.window_start, u.value, s.v) INTO bad
		FROM meter.usage(m.id, lo, hi, NULL, NULL, w, tz, anchor) u
		LEFT JOIN (SELECT ws, sum(value) AS v FROM meter.usage_by_customer(m.id, lo, hi, w, tz, anchor) b(c, x, ws) GROUP BY ws) s
			ON s.ws = u.window_start
		WHERE u.value <> coalesce(s.v, 0) LIMIT 1;
		IF bad IS NOT NULL THEN RETURN format('sum over customers %s %s %s %s %s %s: %s', m.id, lo, hi, w, tz, anchor, bad); END IF;
		SELECT format('window %s: usage %s, groups %s', u.window_start, u.value, s.v) INTO bad
		FROM meter.usage(m.id, lo, hi, c, x, w, tz, anchor) u
		LEFT JOIN (SELECT ws, sum(value) AS v FROM meter.usage_by_group(m.id, keys, lo, hi, c, x, w, tz, anchor) b(g, ws) GROUP BY ws) s
			ON s.ws = u.window_start
		WHERE u.value <> coalesce(s.v, 0) LIMIT 1;
		IF bad IS NOT NULL THEN RETURN format('sum over groups %s %s: %s', m.id, keys, bad); END IF;
		SELECT format('window %s: usage %s, filter groups %s', u.window_start, u.value, s.v) INTO bad
		FROM meter.usage(m.id, lo, hi, c, x, w, tz, anchor) u
		LEFT JOIN (SELECT ws, sum(value) AS v FROM meter.usage_by_filter_groups(m.id, groups || '[{"id":"catch-all"}]', lo, hi, c, x, w, tz, anchor) b(g, ws)
			GROUP BY ws) s ON s.ws = u.window_start
		WHERE u.value <> coalesce(s.v, 0) LIMIT 1;
		IF bad IS NOT NULL THEN RETURN format('sum over filter groups %s %s: %s', m.id, groups, bad); END IF;
	END IF;
	RETURN '';
END $$;

CREATE TEMP TABLE log (i int, did text);
CREATE TEMP TABLE states (i int, pending bigint, compacted bigint);
CREATE FUNCTION pg_temp.checked(i int) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	bad text;
BEGIN
	INSERT INTO states SELECT i, (SELECT count(*) FROM meter.pending WHERE tenant_id = 'prop_many'),
		(SELECT count(*) FROM meter.rollups WHERE tenant_id = 'prop_many');
	FOR j IN 1..4 LOOP
		bad := pg_temp.mismatch();
		IF bad <> '' THEN
			RETURN format('after step %s (%s, %s pending rows): %s', i, (SELECT did FROM log WHERE log.i = checked.i),
				(SELECT count(*) FROM meter.pending WHERE tenant_id = 'prop_many'), bad);
		END IF;
	END LOOP;
	RETURN 'ok';
END $$;

-- A start: some events everywhere, a few long before.
SELECT count(*) FROM (SELECT pg_temp.insert_batch(t, 150) FROM unnest(ARRAY['meter.events', 'public.prop_many_events']) t
	UNION ALL SELECT pg_temp.insert_batch('meter.events', 20, true)) s;
INSERT INTO log VALUES (0, 'initial inserts');
SELECT is(pg_temp.checked(0), 'ok', 'every function = its twin (and sums add up), all pending');

-- Each step is a statement of its own (a writer compacts at the end of its statement,
-- once it appended meter.compaction_threshold entries), then a statement that checks.
SELECT format($f$DO $d$BEGIN INSERT INTO log VALUES (%1$s, pg_temp.step()); END$d$;
	SELECT is(pg_temp.checked(%1$s), 'ok', 'every function = its twin (and sums add up) after step %1$s')$f$, i)
FROM generate_series(1, (SELECT steps FROM knobs)) i
\gexec

SELECT cmp_ok((SELECT count(*) FROM meter.events WHERE tenant_id = 'prop_many')
	+ (SELECT count(*) FROM public.prop_many_events), '>', 300::bigint, 'the workload stored events');
SELECT cmp_ok((SELECT count(*) FROM meter.rollups WHERE tenant_id = 'prop_many'), '>', 0::bigint,
	'the workload compacted');
SELECT cmp_ok((SELECT count(DISTINCT split_part(did, ' ', 1)) FROM log), '>=', 8::bigint, 'the workload used many operations');
SELECT is((SELECT array_agg(DISTINCT (pending > 0, compacted > 0) ORDER BY (pending > 0, compacted > 0)) FROM states)::text,
	'{"(f,t)","(t,f)","(t,t)"}', 'the checks saw all pending, all compacted, and both');
-- Finally: everything compacted, then every meter once more on a wide range.
SELECT cmp_ok(meter.compact(), '>=', 0::bigint, 'compact everything');
SELECT is((SELECT string_agg(id, ', ') FROM pm WHERE pg_temp.diff(
		format('SELECT * FROM meter.usage_by_customer(%L, ''2024-02-01'', ''2024-03-20'', ''DAY'', ''America/New_York'') WITH ORDINALITY', id),
		format('SELECT * FROM meter.usage_by_customer_from_events(%L, ''2024-02-01'', ''2024-03-20'', ''DAY'', ''America/New_York'') WITH ORDINALITY', id))
		IS NOT NULL), NULL, 'compacted: usage_by_customer = its twin for every meter');
SELECT is((SELECT string_agg(id, ', ') FROM pm WHERE pg_temp.diff(
		format('SELECT * FROM meter.usage_by_group(%L, meter.filter_keys((SELECT filters FROM meter.meters WHERE id = %1$L)), ''2024-03-01'', ''2024-03-20'', window_size => ''HOUR'', timezone => ''Asia/Kolkata'') WITH ORDINALITY', id),
		format('SELECT * FROM meter.usage_by_group_from_events(%L, meter.filter_keys((SELECT filters FROM meter.meters WHERE id = %1$L)), ''2024-03-01'', ''2024-03-20'', window_size => ''HOUR'', timezone => ''Asia/Kolkata'') WITH ORDINALITY', id))
		IS NOT NULL), NULL, 'compacted: usage_by_group by all filter keys = its twin for every meter');
SELECT * FROM finish();
ROLLBACK;
