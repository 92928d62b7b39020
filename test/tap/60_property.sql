-- Property test: random workloads against meters of every aggregation type, drawn from
-- every SQL write form (INSERT batches and single rows, ON CONFLICT DO NOTHING and DO
-- UPDATE, MERGE with all branches, UPDATE of the timestamp, customers, event name, tenant
-- and properties, DELETE, writable CTEs re-inserting deleted ids, COPY, TRUNCATE,
-- rolled-back subtransactions), meter changes, meter.compact() at random moments and
-- meter.compaction_threshold toggled between 1 and its default (and meter.compaction_batch_kb
-- between 1 kB and 32 MB: compactions in several batches). After every step the
-- stored usage must equal a recomputation from the raw events (meter.verify() empty),
-- random usage queries must equal usage_from_events, and COUNT, SUM and MAX per UTC day
-- must equal plain SQL aggregates over the raw rows (an oracle that shares no code with
-- the extension). A failing step is reported and the scope rebuilt, so that the next
-- steps are checked on their own.
-- Size: 60 steps × meter_test.scale (PGOPTIONS='-c meter_test.scale=10' for a long run);
-- the seed: meter_test.seed (default 0.4242).
BEGIN;
SET client_min_messages = warning;
SET meter.tenant_id = 'prop';
SELECT setseed(COALESCE(NULLIF(current_setting('meter_test.seed', true), '')::float8, 0.4242));
CREATE TEMP TABLE knobs AS
	SELECT 60 * COALESCE(NULLIF(current_setting('meter_test.scale', true), '')::int, 1) AS steps;
SELECT plan((SELECT steps FROM knobs) + 5);
SELECT meter.matches('[]', '{}');  -- loads the library, which defines meter.compaction_threshold
-- The write forms and compactions the steps ran (checked at the end: the draw covered them).
CREATE TEMP TABLE ran (op text);

-- A user's own event table tracked statement-wise (with the primary key of meter.events),
-- and one without any key tracked by a row-level trigger.
CREATE TABLE public.prop_events (LIKE meter.events INCLUDING ALL);
SELECT meter.track('public.prop_events');
CREATE TABLE public.prop_row_events (LIKE meter.events INCLUDING DEFAULTS);
CREATE TRIGGER track AFTER INSERT OR UPDATE OR DELETE ON public.prop_row_events
	FOR EACH ROW EXECUTE FUNCTION meter.track_usage();
-- TRUNCATE fires no row trigger: by hand, its statement trigger must be attached too.
CREATE TRIGGER track_truncate BEFORE TRUNCATE ON public.prop_row_events
	FOR EACH STATEMENT EXECUTE FUNCTION meter.track_usage();
INSERT INTO meter.tracked_tables (relid) VALUES ('public.prop_row_events');

-- Meters of every type, some filtered, on two event names.
SELECT count(*) FROM (
	SELECT meter.create_meter(en, en || ' ' || a::text, a::meter.aggregation, f::meter.filters,
		id => 'pm_' || en || '_' || row_number() OVER ())
	FROM unnest(ARRAY['a', 'b']) en,
	unnest(ARRAY[
		'{"type":"COUNT"}', '{"type":"SUM","field":"v"}', '{"type":"AVG","field":"v"}',
		'{"type":"COUNT_UNIQUE","field":"u"}', '{"type":"MAX","field":"v"}',
		'{"type":"MIN","field":"v"}', '{"type":"LATEST","field":"v"}',
		'{"type":"SUM_WITH_MULTIPLIER","field":"v","multiplier":"1.5"}',
		'{"type":"WEIGHTED_SUM","field":"v"}', '{"type":"MAX","field":"v","bucket_size":"HOUR"}'
	]) a,
	unnest(ARRAY['[]', '[{"key":"k","values":["x","y"]}]']) f
) s;
-- Meters the oracle checks (never changed by the workload), and a second tenant events
-- move to and from.
SELECT meter.create_meter('a', 'oracle count', '{"type":"COUNT"}', id => 'po_count');
SELECT meter.create_meter('a', 'oracle sum xy', '{"type":"SUM","field":"v"}', '[{"key":"k","values":["x","y"]}]', id => 'po_sum');
SELECT meter.create_meter('a', 'oracle max', '{"type":"MAX","field":"v"}', id => 'po_max');
SET meter.tenant_id = 'prop2';
SELECT meter.create_meter('a', 'count', '{"type":"COUNT"}', id => 'p2_count');
SELECT meter.create_meter('a', 'max', '{"type":"MAX","field":"v"}', id => 'p2_max');
SELECT meter.create_meter('b', 'unique', '{"type":"COUNT_UNIQUE","field":"u"}', id => 'p2_uniq');
SET meter.tenant_id = 'prop';

CREATE FUNCTION pg_temp.random_properties() RETURNS jsonb LANGUAGE sql AS $$
	SELECT jsonb_strip_nulls(jsonb_build_object(
		'k', (ARRAY['x', 'y', 'z', NULL])[1 + floor(random() * 4)::int],
		'v', (ARRAY[to_jsonb(floor(random() * 100)::int), to_jsonb(round((random() * 10)::numeric, 2)),
			to_jsonb((floor(random() * 50) - 20)::text), '"abc"'::jsonb, 'null'::jsonb, NULL,
			to_jsonb(floor(random() * 5)::int)])[1 + floor(random() * 7)::int],
		'u', (ARRAY['2', '2.0', '"2"', '"u1"', '"u2"', 'true', '3', NULL])[1 + floor(random() * 8)::int]::jsonb))
$$;

CREATE FUNCTION pg_temp.random_table() RETURNS text LANGUAGE sql AS $$
	SELECT (ARRAY['meter.events', 'public.prop_events', 'public.prop_row_events'])[1 + floor(random() * 3)::int]
$$;
-- A table with a primary key (ON CONFLICT … DO UPDATE needs one).
CREATE FUNCTION pg_temp.random_keyed_table() RETURNS text LANGUAGE sql AS $$
	SELECT (ARRAY['meter.events', 'public.prop_events'])[1 + floor(random() * 2)::int]
$$;
CREATE FUNCTION pg_temp.random_ts() RETURNS timestamptz LANGUAGE sql AS $$
	SELECT '2024-03-09 22:00+00'::timestamptz + floor(random() * 3 * 24 * 60) * interval '1 minute'
		+ floor(random() * 60) * interval '1 second'
$$;

-- Insert n random events into tbl with one statement.
CREATE FUNCTION pg_temp.insert_batch(tbl text, n int) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE format($q$INSERT INTO %s (id, event_name, customer_id, external_customer_id, "timestamp", properties)
		SELECT 'ev' || floor(random() * 100000)::int || '_' || g, (ARRAY['a', 'b', 'c'])[1 + floor(random() * 3)::int],
			(ARRAY['c1', 'c2', 'c3', NULL])[1 + floor(random() * 4)::int],
			(ARRAY['x1', 'x2', NULL])[1 + floor(random() * 3)::int],
			'2024-03-09 22:00+00'::timestamptz + floor(random() * 3 * 24 * 60) * interval '1 minute'
				+ floor(random() * 60) * interval '1 second',
			pg_temp.random_properties()
		FROM generate_series(1, %s) g ON CONFLICT DO NOTHING$q$, tbl, n);
END $$;

-- One operation of step i: the first 22 steps take every operation once (so that each
-- run covers them all), later ones draw at random; returns what it did.
CREATE FUNCTION pg_temp.step(i int) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	op int := CASE WHEN i <= 22 THEN i - 1 ELSE floor(random() * 22)::int END;
	tbl text := pg_temp.random_table();
	ktbl text := pg_temp.random_keyed_table();
	m text;
	n bigint;
	f text;
BEGIN
	-- Now and then the compaction threshold changes: 1 (every statement compacts), a few,
	-- or the default.
	IF i % 7 = 0 OR random() < 0.1 THEN
		PERFORM set_config('meter.compaction_threshold', (ARRAY['1', '3', '50', '20000'])[
			1 + CASE WHEN i % 7 = 0 THEN (i / 7) % 4 ELSE floor(random() * 4)::int END], false);
		INSERT INTO ran VALUES ('threshold ' || current_setting('meter.compaction_threshold'));
		-- … and so does the batch size: 1 kB makes every compaction fold in several batches.
		PERFORM set_config('meter.compaction_batch_kb', (ARRAY['1', '4', '32768'])[1 + (i / 7) % 3], false);
		INSERT INTO ran VALUES ('batch ' || current_setting('meter.compaction_batch_kb'));
	END IF;
	CASE
	WHEN op <= 2 THEN
		PERFORM pg_temp.insert_batch(tbl, 1 + floor(random() * 60)::int);
		INSERT INTO ran VALUES ('insert');
		RETURN 'batch insert into ' || tbl;
	WHEN op = 3 THEN
		FOR i IN 1..5 LOOP PERFORM pg_temp.insert_batch(tbl, 1); END LOOP;
		INSERT INTO ran VALUES ('insert');
		RETURN 'row-by-row inserts into ' || tbl;
	WHEN op = 4 THEN
		EXECUTE format('INSERT INTO %s SELECT * FROM %s WHERE tenant_id = ''prop'' ORDER BY random() LIMIT 5 ON CONFLICT DO NOTHING', tbl, tbl);
		INSERT INTO ran VALUES ('on conflict do nothing');
		RETURN 'duplicate re-sends into ' || tbl;
	WHEN op = 5 THEN
		EXECUTE format($q$UPDATE %s SET properties = pg_temp.random_properties(),
			"timestamp" = "timestamp" + (floor(random() * 40) - 20) * interval '1 minute',
			customer_id = (ARRAY['c1', 'c2', NULL])[1 + floor(random() * 3)::int]
			WHERE tenant_id = 'prop' AND random() < 0.15$q$, tbl);
		INSERT INTO ran VALUES ('update');
		RETURN 'update of events in ' || tbl;
	WHEN op = 6 THEN
		EXECUTE format('DELETE FROM %s WHERE tenant_id = ''prop'' AND random() < 0.1', tbl);
		INSERT INTO ran VALUES ('delete');
		RETURN 'delete of events in ' || tbl;
	WHEN op = 7 THEN
		BEGIN
			PERFORM pg_temp.insert_batch(tbl, 20);
			EXECUTE format('DELETE FROM %s WHERE tenant_id = ''prop'' AND random() < 0.2', tbl);
			IF random() < 0.5 THEN PERFORM meter.compact(); END IF;
			RAISE EXCEPTION 'roll back';
		EXCEPTION WHEN raise_exception THEN NULL;
		END;
		INSERT INTO ran VALUES ('rolled back');
		RETURN 'rolled-back insert, delete (and maybe compaction) in ' || tbl;
	WHEN op = 8 THEN
		SELECT id INTO m FROM meter.meters WHERE tenant_id = 'prop' AND id NOT LIKE 'po\_%' ORDER BY random() LIMIT 1;
		PERFORM meter.update_meter(m, (ARRAY['[]', '[{"key":"k","values":["x"]}]',
			'[{"key":"k","values":["y","z"]}]', '[{"key":"u","values":["2"]}]'])[1 + floor(random() * 4)::int]::meter.filters);
		RETURN 'filters of ' || m || ' changed';
	WHEN op = 9 THEN
		SELECT id INTO m FROM meter.meters WHERE tenant_id = 'prop' AND id NOT LIKE 'po\_%' ORDER BY random() LIMIT 1;
		PERFORM meter.disable_meter(m);
		RETURN m || ' disabled';
	WHEN op = 10 THEN
		UPDATE meter.meters SET status = 'published' WHERE tenant_id = 'prop' AND status = 'archived'
			AND random() < 0.5;
		RETURN 'archived meters published again';
	WHEN op = 11 THEN
		-- re-sent ids (new content) and new ids, stored ones updated
		EXECUTE format($q$INSERT INTO %s (id, event_name, customer_id, "timestamp", properties)
			SELECT id, event_name, (ARRAY['c1', 'c3', NULL])[1 + floor(random() * 3)::int], pg_temp.random_ts(), pg_temp.random_properties()
			FROM (SELECT id, event_name FROM %s WHERE tenant_id = 'prop' ORDER BY random() LIMIT 8) old
			UNION ALL
			SELECT 'up' || floor(random() * 1000000)::int || '_' || g, 'a', 'c1', pg_temp.random_ts(), pg_temp.random_properties()
			FROM generate_series(1, 1 + floor(random() * 4)::int) g
			ON CONFLICT (tenant_id, environment_id, id) DO UPDATE SET properties = excluded.properties,
				"timestamp" = excluded."timestamp", customer_id = excluded.customer_id$q$, ktbl, ktbl);
		INSERT INTO ran VALUES ('on conflict do update');
		RETURN 'INSERT … ON CONFLICT DO UPDATE into ' || ktbl;
	WHEN op = 12 THEN
		EXECUTE format($q$MERGE INTO %s e
			USING (SELECT id, floor(random() * 3)::int AS what FROM %s WHERE tenant_id = 'prop' ORDER BY random() LIMIT 10) s
			ON e.tenant_id = 'prop' AND e.environment_id = '' AND e.id = s.id
			WHEN MATCHED AND s.what = 0 THEN DELETE
			WHEN MATCHED THEN UPDATE SET properties = pg_temp.random_properties(),
				"timestamp" = e."timestamp" + (floor(random() * 60) - 30) * interval '1 minute'
			WHEN NOT MATCHED THEN INSERT (id, event_name, customer_id, "timestamp", properties)
				VALUES (s.id, 'a', 'c1', pg_temp.random_ts(), pg_temp.random_properties())$q$, ktbl, ktbl);
		-- and a MERGE whose source also holds ids that are not stored (NOT MATCHED INSERT)
		EXECUTE format($q$MERGE INTO %s e
			USING (SELECT 'mg' || floor(random() * 200)::int AS id FROM generate_series(1, 6)
				UNION SELECT id FROM %s WHERE tenant_id = 'prop' ORDER BY 1 LIMIT 3) s
			ON e.tenant_id = 'prop' AND e.environment_id = '' AND e.id = s.id
			WHEN MATCHED AND random() < 0.3 THEN DELETE
			WHEN MATCHED THEN UPDATE SET customer_id = 'c2', event_name = (ARRAY['a', 'b'])[1 + floor(random() * 2)::int]
			WHEN NOT MATCHED THEN INSERT (id, event_name, customer_id, "timestamp", properties)
				VALUES (s.id, 'a', 'c3', pg_temp.random_ts(), pg_temp.random_properties())$q$, ktbl, ktbl);
		INSERT INTO ran VALUES ('merge');
		RETURN 'MERGE (delete, update and insert branches) into ' || ktbl;
	WHEN op = 13 THEN
		EXECUTE format($q$UPDATE %s SET event_name = (ARRAY['a', 'b', 'c'])[1 + floor(random() * 3)::int],
			external_customer_id = (ARRAY['x1', 'x2', NULL])[1 + floor(random() * 3)::int]
			WHERE tenant_id = 'prop' AND random() < 0.1$q$, tbl);
		INSERT INTO ran VALUES ('update');
		RETURN 'update of event names and external customers in ' || tbl;
	WHEN op = 14 THEN
		-- events move to the other tenant and back (ids free there only)
		EXECUTE format($q$UPDATE %1$s e SET tenant_id = CASE e.tenant_id WHEN 'prop' THEN 'prop2' ELSE 'prop' END
			WHERE e.tenant_id IN ('prop', 'prop2') AND random() < 0.1
			AND NOT EXISTS (SELECT 1 FROM %1$s o WHERE o.tenant_id IN ('prop', 'prop2') AND o.tenant_id <> e.tenant_id AND o.id = e.id)$q$, tbl);
		INSERT INTO ran VALUES ('update tenant');
		RETURN 'update of tenant_id in ' || tbl;
	WHEN op = 15 THEN
		-- a writable CTE: delete ids and insert them again (new content) in one statement
		EXECUTE format($q$WITH d AS (DELETE FROM %1$s WHERE tenant_id = 'prop' AND random() < 0.08 RETURNING *)
			INSERT INTO %1$s (id, tenant_id, environment_id, event_name, customer_id, external_customer_id, "timestamp", properties)
			SELECT id, tenant_id, environment_id, event_name, customer_id, external_customer_id,
				"timestamp" + (floor(random() * 120) - 60) * interval '1 minute', pg_temp.random_properties() FROM d$q$, tbl);
		INSERT INTO ran VALUES ('writable cte');
		RETURN 'writable CTE deleting and re-inserting ids in ' || tbl;
	WHEN op = 16 THEN
		-- a writable CTE moving events from one table into another
		IF tbl = ktbl THEN RETURN 'nothing (same table)'; END IF;
		EXECUTE format($q$WITH d AS (DELETE FROM %1$s WHERE tenant_id = 'prop' AND random() < 0.1 RETURNING *)
			INSERT INTO %2$s (id, tenant_id, environment_id, event_name, customer_id, external_customer_id, "timestamp", properties)
			SELECT 'mv' || floor(random() * 1000000)::int || id, tenant_id, environment_id, event_name, customer_id,
				external_customer_id, "timestamp", properties FROM d$q$, tbl, ktbl);
		INSERT INTO ran VALUES ('writable cte');
		RETURN 'writable CTE moving events from ' || tbl || ' into ' || ktbl;
	WHEN op = 17 THEN
		-- COPY (server-side, through a file the server writes)
		f := '/tmp/meter_prop_' || pg_backend_pid() || '.copy';
		EXECUTE format($q$COPY (SELECT 'cp' || floor(random() * 1000000)::int || '_' || g, 'prop', '', (ARRAY['a', 'b'])[1 + g %% 2],
			'c' || (1 + g %% 3), NULL, 'copy', pg_temp.random_ts(), now(), pg_temp.random_properties()
			FROM generate_series(1, 1 + floor(random() * 40)::int) g) TO %L$q$, f);
		EXECUTE format('COPY %s FROM %L', tbl, f);
		GET DIAGNOSTICS n = ROW_COUNT;
		INSERT INTO ran VALUES ('copy');
		RETURN format('COPY of %s events into %s', n, tbl);
	WHEN op = 18 THEN
		IF random() < 0.3 THEN
			EXECUTE format('TRUNCATE %s', tbl);
			INSERT INTO ran VALUES ('truncate');
			RETURN 'TRUNCATE ' || tbl;
		END IF;
		BEGIN
			EXECUTE format('TRUNCATE %s', tbl);
			RAISE EXCEPTION 'roll back';
		EXCEPTION WHEN raise_exception THEN NULL;
		END;
		INSERT INTO ran VALUES ('rolled back');
		RETURN 'rolled-back TRUNCATE ' || tbl;
	WHEN op = 19 THEN
		SELECT id INTO m FROM meter.meters WHERE tenant_id = 'prop' ORDER BY random() LIMIT 1;
		n := meter.compact(CASE WHEN random() < 0.5 THEN m END);
		INSERT INTO ran VALUES ('compact');
		RETURN format('compaction (%s rows folded)', n);
	ELSE
		-- several forms in one statement: a delete, an update and an insert
		EXECUTE format($q$WITH d AS (DELETE FROM %1$s WHERE tenant_id = 'prop' AND random() < 0.03 RETURNING id),
			u AS (UPDATE %1$s SET "timestamp" = "timestamp" + interval '15 minutes'
				WHERE tenant_id = 'prop' AND random() < 0.05 AND id NOT IN (SELECT id FROM d) RETURNING id)
			INSERT INTO %1$s (id, event_name, customer_id, "timestamp", properties)
			SELECT 'mix' || floor(random() * 1000000)::int || '_' || g, 'a', 'c2', pg_temp.random_ts(), pg_temp.random_properties()
			FROM generate_series(1, 3) g$q$, ktbl);
		INSERT INTO ran VALUES ('writable cte');
		RETURN 'writable CTE with DELETE, UPDATE and INSERT in ' || ktbl;
	END CASE;
END $$;

-- usage (rollups) against usage_from_events (raw events) for a random query; '' when equal.
CREATE FUNCTION pg_temp.usage_mismatch() RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	m text;
	lo timestamptz := '2024-03-09 20:00+00'::timestamptz + floor(random() * 40) * interval '1 hour'
		+ floor(random() * 4) * interval '15 minutes' + (ARRAY[0, 7])[1 + floor(random() * 2)::int] * interval '1 minute';
	hi timestamptz := lo + (1 + floor(random() * 60)) * interval '1 hour' + floor(random() * 60) * interval '1 minute';
	w meter.window_size := (ARRAY[NULL, 'MINUTE', '15MIN', 'HOUR', '3HOUR', 'DAY', 'WEEK', 'MONTH'])[1 + floor(random() * 8)::int];
	tz text := (ARRAY['UTC', 'America/New_York', 'Asia/Kolkata', 'Asia/Kathmandu'])[1 + floor(random() * 4)::int];
	c text := (ARRAY[NULL, 'c1', 'c2', ''])[1 + floor(random() * 4)::int];
	x text := (ARRAY[NULL, 'x1', 'x2'])[1 + floor(random() * 3)::int];
	anchor timestamptz := (ARRAY[NULL, '2024-01-31 10:07+00'])[1 + floor(random() * 2)::int]::timestamptz;
	bad record;
BEGIN
	IF w = 'MINUTE' THEN hi := lo + interval '3 hours'; END IF;
	-- Archived meters are frozen: only published ones must agree with the raw events.
	SELECT id INTO m FROM meter.meters WHERE tenant_id = 'prop' AND status = 'published' ORDER BY random() LIMIT 1;
	PERFORM set_config('meter.tenant_id', 'prop', true);
	IF m IS NULL THEN RETURN ''; END IF;
	SELECT * INTO bad FROM (
		SELECT * FROM meter.usage(m, lo, hi, c, x, w, tz, anchor)) u
		FULL JOIN (SELECT * FROM meter.usage_from_events(m, lo, hi, c, x, w, tz, anchor)) f
		USING (window_start, window_end)
	WHERE u.value IS DISTINCT FROM f.value LIMIT 1;
	IF FOUND THEN
		RETURN format('usage(%L, %L, %L, %L, %L, %L, %L, %L): %s', m, lo, hi, c, x, w, tz, anchor, row_to_json(bad));
	END IF;
	RETURN '';
END $$;

-- The oracle: COUNT (po_count), SUM of v where k is x or y (po_sum) and MAX of v (po_max)
-- per UTC day, with plain SQL aggregates over the raw rows of every tracked table; a
-- usable value is a JSON number or a string in number syntax. '' when usage agrees.
CREATE FUNCTION pg_temp.oracle_mismatch() RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	bad record;
BEGIN
	WITH raw AS (
		SELECT "timestamp" AS ts, properties AS p FROM meter.events
			WHERE tenant_id = 'prop' AND environment_id = '' AND event_name = 'a'
		UNION ALL SELECT "timestamp", properties FROM public.prop_events
			WHERE tenant_id = 'prop' AND environment_id = '' AND event_name = 'a'
		UNION ALL SELECT "timestamp", properties FROM public.prop_row_events
			WHERE tenant_id = 'prop' AND environment_id = '' AND event_name = 'a'),
	ev AS (
		SELECT ts, jsonb_typeof(p -> 'k') = 'string' AND p ->> 'k' IN ('x', 'y') AS xy,
			CASE WHEN jsonb_typeof(p -> 'v') = 'number' THEN (p ->> 'v')::numeric
				WHEN jsonb_typeof(p -> 'v') = 'string' AND p ->> 'v' ~ '^-?(0|[1-9][0-9]*)(\.[0-9]+)?$'
				THEN (p ->> 'v')::numeric END AS v
		FROM raw),
	want AS (
		SELECT d.day, count(ev.ts) AS n, coalesce(sum(ev.v) FILTER (WHERE ev.xy), 0) AS s, max(ev.v) AS mx
		FROM generate_series('2024-03-08 00:00+00'::timestamptz, '2024-03-13 00:00+00', '1 day') d(day)
		LEFT JOIN ev ON ev.ts >= d.day AND ev.ts < d.day + interval '1 day'
		GROUP BY d.day),
	got AS (
		SELECT c.window_start AS day, c.value AS n, s.value AS s, x.value AS mx
		FROM meter.usage('po_count', '2024-03-08 00:00+00', '2024-03-14 00:00+00', window_size => 'DAY') c
		JOIN meter.usage('po_sum', '2024-03-08 00:00+00', '2024-03-14 00:00+00', window_size => 'DAY') s USING (window_start)
		JOIN meter.usage('po_max', '2024-03-08 00:00+00', '2024-03-14 00:00+00', window_size => 'DAY') x USING (window_start))
	SELECT want.day, want.n AS count_sql, got.n AS count_usage, want.s AS sum_sql, got.s AS sum_usage,
		want.mx AS max_sql, got.mx AS max_usage INTO bad
	FROM want FULL JOIN got USING (day)
	WHERE want.n IS DISTINCT FROM got.n OR want.s IS DISTINCT FROM got.s OR want.mx IS DISTINCT FROM got.mx
	LIMIT 1;
	IF FOUND THEN
		RETURN 'usage differs from plain SQL over the raw rows: ' || row_to_json(bad);
	END IF;
	RETURN '';
END $$;

CREATE FUNCTION pg_temp.checked_step(i int) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	did text := pg_temp.step(i);
	diff record;
	res text := '';
	t text;
BEGIN
	FOREACH t IN ARRAY ARRAY['prop', 'prop2'] LOOP
		PERFORM set_config('meter.tenant_id', t, true);
		SELECT * INTO diff FROM meter.verify() LIMIT 1;
		IF FOUND THEN
			res := format('tenant %s: %s', t, row_to_json(diff));
			EXIT;
		END IF;
	END LOOP;
	PERFORM set_config('meter.tenant_id', 'prop', true);
	IF res = '' THEN
		FOR j IN 1..3 LOOP
			res := pg_temp.usage_mismatch();
			EXIT WHEN res <> '';
		END LOOP;
	END IF;
	IF res = '' THEN
		res := pg_temp.oracle_mismatch();
	END IF;
	IF res = '' THEN
		RETURN 'ok';
	END IF;
	-- Report, then start the next step from exact stored usage.
	FOREACH t IN ARRAY ARRAY['prop', 'prop2'] LOOP
		PERFORM set_config('meter.tenant_id', t, true);
		PERFORM meter.rebuild();
	END LOOP;
	PERFORM set_config('meter.tenant_id', 'prop', true);
	RETURN format('step %s (%s; compaction_threshold %s): %s', i, did,
		current_setting('meter.compaction_threshold'), res);
END $$;

SELECT is(pg_temp.checked_step(i), 'ok', 'stored usage exact, usage = usage_from_events and = plain SQL after step ' || i)
FROM generate_series(1, (SELECT steps FROM knobs)) i;
RESET meter.compaction_threshold;
RESET meter.compaction_batch_kb;

SELECT cmp_ok((SELECT count(*) FROM meter.events) + (SELECT count(*) FROM public.prop_events)
	+ (SELECT count(*) FROM public.prop_row_events), '>', 0::bigint, 'the workload stored events');
SELECT cmp_ok((SELECT count(*) FROM meter.rollups WHERE tenant_id = 'prop'), '>', 0::bigint,
	'the workload produced compacted rows');
SELECT is((SELECT string_agg(f, ', ') FROM unnest(ARRAY['insert', 'on conflict do nothing', 'on conflict do update',
		'merge', 'update', 'update tenant', 'delete', 'writable cte', 'copy', 'rolled back', 'compact',
		'threshold 1', 'threshold 20000', 'batch 1kB', 'batch 32MB']) f WHERE f NOT IN (SELECT op FROM ran)), NULL,
	'the draw covered every write form, compactions, both extreme thresholds and batch sizes');
SELECT is_empty($$SELECT * FROM meter.verify()$$, 'verify() is empty at the end');
SELECT is((SELECT count(*) FROM meter.rebuild()), (SELECT count(*) FROM meter.meters
	WHERE tenant_id = 'prop' AND status = 'published'), 'rebuild recomputes every published meter');
SELECT * FROM finish();
ROLLBACK;
