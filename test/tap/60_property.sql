-- Property test: random workloads against meters of every aggregation type; after every
-- step the rollups must equal a recomputation from the raw events (meter.verify() empty).
-- Size: 40 steps × meter_test.scale (PGOPTIONS='-c meter_test.scale=10' for a long run).
BEGIN;
SET client_min_messages = warning;
SET meter.tenant_id = 'prop';
SELECT setseed(0.4242);
CREATE TEMP TABLE knobs AS
	SELECT 40 * COALESCE(NULLIF(current_setting('meter_test.scale', true), '')::int, 1) AS steps;
SELECT plan((SELECT steps FROM knobs) + 3);

-- A user's own event table tracked statement-wise, and one tracked by a row-level trigger.
CREATE TABLE public.prop_events (LIKE meter.events INCLUDING DEFAULTS);
SELECT meter.track('public.prop_events');
CREATE TABLE public.prop_row_events (LIKE meter.events INCLUDING DEFAULTS);
CREATE TRIGGER track AFTER INSERT OR UPDATE OR DELETE ON public.prop_row_events
	FOR EACH ROW EXECUTE FUNCTION meter.track_usage();
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

-- One random operation; returns what it did.
CREATE FUNCTION pg_temp.step() RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	op int := floor(random() * 11)::int;
	tbl text := pg_temp.random_table();
	m text;
BEGIN
	CASE
	WHEN op <= 2 THEN
		PERFORM pg_temp.insert_batch(tbl, 1 + floor(random() * 60)::int);
		RETURN 'batch insert into ' || tbl;
	WHEN op = 3 THEN
		FOR i IN 1..5 LOOP PERFORM pg_temp.insert_batch(tbl, 1); END LOOP;
		RETURN 'row-by-row inserts into ' || tbl;
	WHEN op = 4 THEN
		EXECUTE format('INSERT INTO %s SELECT * FROM %s ORDER BY random() LIMIT 5 ON CONFLICT DO NOTHING', tbl, tbl);
		RETURN 'duplicate re-sends into ' || tbl;
	WHEN op = 5 THEN
		EXECUTE format($q$UPDATE %s SET properties = pg_temp.random_properties(),
			"timestamp" = "timestamp" + (floor(random() * 40) - 20) * interval '1 minute',
			customer_id = (ARRAY['c1', 'c2', NULL])[1 + floor(random() * 3)::int]
			WHERE random() < 0.15$q$, tbl);
		RETURN 'update of events in ' || tbl;
	WHEN op = 6 THEN
		EXECUTE format('DELETE FROM %s WHERE random() < 0.1', tbl);
		RETURN 'delete of events in ' || tbl;
	WHEN op = 7 THEN
		BEGIN
			PERFORM pg_temp.insert_batch(tbl, 20);
			EXECUTE format('DELETE FROM %s WHERE random() < 0.2', tbl);
			RAISE EXCEPTION 'roll back';
		EXCEPTION WHEN raise_exception THEN NULL;
		END;
		RETURN 'rolled-back insert and delete in ' || tbl;
	WHEN op = 8 THEN
		SELECT id INTO m FROM meter.meters WHERE tenant_id = 'prop' ORDER BY random() LIMIT 1;
		PERFORM meter.update_meter(m, (ARRAY['[]', '[{"key":"k","values":["x"]}]',
			'[{"key":"k","values":["y","z"]}]', '[{"key":"u","values":["2"]}]'])[1 + floor(random() * 4)::int]::meter.filters);
		RETURN 'filters of ' || m || ' changed';
	WHEN op = 9 THEN
		SELECT id INTO m FROM meter.meters WHERE tenant_id = 'prop' ORDER BY random() LIMIT 1;
		PERFORM meter.disable_meter(m);
		RETURN m || ' disabled';
	ELSE
		UPDATE meter.meters SET status = 'published' WHERE tenant_id = 'prop' AND status = 'archived'
			AND random() < 0.5;
		RETURN 'archived meters published again';
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

CREATE FUNCTION pg_temp.checked_step(i int) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	did text := pg_temp.step();
	diff record;
	usage_diff text;
BEGIN
	SELECT * INTO diff FROM meter.verify() LIMIT 1;
	IF FOUND THEN
		RETURN format('step %s (%s): %s', i, did, row_to_json(diff));
	END IF;
	FOR j IN 1..3 LOOP
		usage_diff := pg_temp.usage_mismatch();
		IF usage_diff <> '' THEN
			RETURN format('step %s (%s): %s', i, did, usage_diff);
		END IF;
	END LOOP;
	RETURN 'ok';
END $$;

SELECT is(pg_temp.checked_step(i), 'ok', 'rollups exact and usage = usage_from_events after step ' || i)
FROM generate_series(1, (SELECT steps FROM knobs)) i;

SELECT cmp_ok((SELECT count(*) FROM meter.events) + (SELECT count(*) FROM public.prop_events)
	+ (SELECT count(*) FROM public.prop_row_events), '>', 0::bigint, 'the workload stored events');
SELECT cmp_ok((SELECT count(*) FROM meter.rollups WHERE tenant_id = 'prop'), '>', 0::bigint,
	'the workload produced rollups');
SELECT is((SELECT count(*) FROM meter.rebuild()), (SELECT count(*) FROM meter.meters
	WHERE tenant_id = 'prop' AND status = 'published'), 'rebuild recomputes every published meter');
SELECT * FROM finish();
ROLLBACK;
