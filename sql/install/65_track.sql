
-- ── Tracking: events → rollups (SPEC §7) ────────────────────────────────────────────
-- SECURITY DEFINER: whoever may insert, update or delete events (row-level security on
-- the event table decides which) gets the rollups of exactly those rows maintained,
-- without needing write access to the rollup tables themselves.
CREATE FUNCTION meter.track_usage() RETURNS trigger
	AS 'MODULE_PATHNAME', 'meter_track_usage' LANGUAGE C
	SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION meter.track_usage() IS
	'Trigger keeping meter.rollups exact: AFTER … FOR EACH ROW, or statement-level with transition tables';

CREATE FUNCTION meter.lock_tenant(tenant text) RETURNS void
	AS 'MODULE_PATHNAME', 'meter_lock_tenant' LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION meter.lock_tenant(text) IS
	'Exclusive per-tenant lock until commit: waits for in-flight tracking of the tenant''s events';

CREATE FUNCTION meter.rebuild_all() RETURNS bigint
	AS 'MODULE_PATHNAME', 'meter_rebuild_all' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION meter.rebuild_all() IS
	'meter.rebuild() in every tenant and environment with published meters the caller can see';

-- Recompute the given rollup keys of the current scope from the raw events. The trigger
-- calls it for buckets whose events were updated or deleted. Rows are written one key at
-- a time through the primary key: the inputs are small, and a join against the rollup
-- tables could be planned as a scan of every rollup of the tenant whenever the
-- statistics of these fast-growing tables are stale.
CREATE FUNCTION meter.refresh_rollups(meter_ids text[], customer_ids text[],
	external_customer_ids text[], buckets timestamptz[]) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	t text := meter.current_tenant();
	e text := meter.current_environment();
	run_meters text[];
	run_lo timestamptz[];
	run_hi timestamptz[];
	f record;
BEGIN
	-- Lock each key's row first (creating an empty one if needed): a concurrent insert
	-- into these buckets has then either committed, and the next statement sees it, or
	-- waits for this transaction.
	INSERT INTO meter.rollups AS r (tenant_id, environment_id, meter_id, customer_id,
		external_customer_id, bucket, events, n)
	SELECT t, e, k.m, k.c, k.x, k.b, 0, 0
	FROM unnest(meter_ids, customer_ids, external_customer_ids, buckets) AS k(m, c, x, b)
	ON CONFLICT (tenant_id, environment_id, meter_id, customer_id, external_customer_id, bucket)
	DO UPDATE SET events = r.events;

	-- Recompute per meter over runs of nearby buckets (one range scan each), not per bucket.
	SELECT array_agg(z.meter_id), array_agg(z.lo), array_agg(z.hi) INTO run_meters, run_lo, run_hi
	FROM (SELECT y.meter_id, min(y.bucket) AS lo, max(y.bucket) + interval '15 minutes' AS hi
	FROM (SELECT x.meter_id, x.bucket, sum(x.brk) OVER (PARTITION BY x.meter_id ORDER BY x.bucket) AS grp
		FROM (SELECT b.meter_id, b.bucket,
				CASE WHEN b.bucket - lag(b.bucket) OVER (PARTITION BY b.meter_id ORDER BY b.bucket)
					<= interval '6 hours' THEN 0 ELSE 1 END AS brk
			FROM (SELECT DISTINCT k.m AS meter_id, k.b AS bucket
				FROM unnest(meter_ids, buckets) AS k(m, b)) b) x) y
	GROUP BY y.meter_id, y.grp) z;

	FOR f IN
		WITH fresh AS MATERIALIZED (
			SELECT x.* FROM unnest(run_meters, run_lo, run_hi) AS r(meter_id, lo, hi)
			CROSS JOIN LATERAL meter.rollups_from_events(r.meter_id, r.lo, r.hi) x)
		SELECT k.m, k.c, k.x, k.b, fr.events, fr.n, fr.sum, fr.sum_vt, fr.min, fr.max,
			fr.latest_at, fr.latest_value
		FROM unnest(meter_ids, customer_ids, external_customer_ids, buckets) AS k(m, c, x, b)
		LEFT JOIN fresh fr ON fr.meter_id = k.m AND fr.customer_id = k.c
			AND fr.external_customer_id = k.x AND fr.bucket = k.b
	LOOP
		IF f.events IS NULL THEN
			DELETE FROM meter.rollups r WHERE r.tenant_id = t AND r.environment_id = e
				AND r.meter_id = f.m AND r.external_customer_id = f.x AND r.customer_id = f.c
				AND r.bucket = f.b;
		ELSE
			UPDATE meter.rollups r SET events = f.events, n = f.n, sum = f.sum,
				sum_vt = f.sum_vt, min = f.min, max = f.max, latest_at = f.latest_at,
				latest_value = f.latest_value
			WHERE r.tenant_id = t AND r.environment_id = e AND r.meter_id = f.m
				AND r.external_customer_id = f.x AND r.customer_id = f.c AND r.bucket = f.b;
		END IF;
		-- Distinct values (COUNT_UNIQUE): the row lock above also guards these.
		DELETE FROM meter.rollup_values v WHERE v.tenant_id = t AND v.environment_id = e
			AND v.meter_id = f.m AND v.external_customer_id = f.x AND v.customer_id = f.c
			AND v.bucket = f.b;
	END LOOP;

	INSERT INTO meter.rollup_values
	SELECT x.* FROM unnest(run_meters, run_lo, run_hi) AS r(meter_id, lo, hi)
	CROSS JOIN LATERAL meter.rollup_values_from_events(r.meter_id, r.lo, r.hi) x
	WHERE EXISTS (SELECT 1 FROM unnest(meter_ids, customer_ids, external_customer_ids, buckets)
		AS k(m, c, x, b) WHERE x.meter_id = k.m AND x.customer_id = k.c
		AND x.external_customer_id = k.x AND x.bucket = k.b);
END $$;
COMMENT ON FUNCTION meter.refresh_rollups(text[], text[], text[], timestamptz[]) IS
	'Recompute the given rollups of the current scope from the raw events (used by the trigger)';

CREATE TRIGGER meter_track_insert AFTER INSERT ON meter.events
	REFERENCING NEW TABLE AS meter_new FOR EACH STATEMENT EXECUTE FUNCTION meter.track_usage();
CREATE TRIGGER meter_track_update AFTER UPDATE ON meter.events
	REFERENCING OLD TABLE AS meter_old NEW TABLE AS meter_new
	FOR EACH STATEMENT EXECUTE FUNCTION meter.track_usage();
CREATE TRIGGER meter_track_delete AFTER DELETE ON meter.events
	REFERENCING OLD TABLE AS meter_old FOR EACH STATEMENT EXECUTE FUNCTION meter.track_usage();
CREATE TRIGGER meter_track_truncate AFTER TRUNCATE ON meter.events
	FOR EACH STATEMENT EXECUTE FUNCTION meter.track_usage();

-- ── Meter changes keep rollups in line (SPEC §6) ────────────────────────────────────
-- SECURITY DEFINER for the same reason: a role that may define a meter gets its rollups
-- rebuilt without write access to the rollup tables.
CREATE FUNCTION meter.on_meter_change() RETURNS trigger
	AS 'MODULE_PATHNAME', 'meter_on_meter_change' LANGUAGE C
	SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION meter.on_meter_change() IS
	'Rebuilds a created, redefined or re-published meter from the raw events; drops a deleted meter''s rollups';
CREATE TRIGGER meters_rollups AFTER INSERT OR UPDATE OR DELETE ON meter.meters
	FOR EACH ROW EXECUTE FUNCTION meter.on_meter_change();

-- ── rebuild and verify (SPEC §8) ────────────────────────────────────────────────────
-- Row types, so that the argument meter_id and the result column meter_id can coexist.
CREATE TYPE meter.rebuilt AS (meter_id text, rollups bigint, unique_values bigint);
COMMENT ON TYPE meter.rebuilt IS 'A meter meter.rebuild() recomputed, and how many rows it wrote';
CREATE TYPE meter.difference AS (meter_id text, customer_id text, external_customer_id text,
	bucket timestamptz, what text, stored text, expected text);
COMMENT ON TYPE meter.difference IS
	'A rollup value meter.verify() found different from the raw events: where, what, stored and expected';

CREATE FUNCTION meter.rebuild(meter_id text DEFAULT NULL)
RETURNS SETOF meter.rebuilt
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	t text := meter.current_tenant();
	e text := meter.current_environment();
	m record;
	n_rollups bigint;
	n_values bigint;
	result meter.rebuilt;
BEGIN
	IF rebuild.meter_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM meter.meters x
		WHERE x.id = rebuild.meter_id AND x.tenant_id = t AND x.environment_id = e
		AND x.status <> 'deleted') THEN
		RAISE EXCEPTION 'meter "%" not found', rebuild.meter_id USING ERRCODE = 'P0002',
			HINT = 'meter.list_meters() lists the meters of the current tenant and environment.';
	END IF;
	PERFORM meter.lock_tenant(t);
	FOR m IN SELECT x.id FROM meter.meters x WHERE x.tenant_id = t AND x.environment_id = e
		AND x.status = 'published' AND (rebuild.meter_id IS NULL OR x.id = rebuild.meter_id)
		ORDER BY x.id
	LOOP
		DELETE FROM meter.rollups r WHERE r.tenant_id = t AND r.environment_id = e AND r.meter_id = m.id;
		DELETE FROM meter.rollup_values v WHERE v.tenant_id = t AND v.environment_id = e AND v.meter_id = m.id;
		INSERT INTO meter.rollups SELECT * FROM meter.rollups_from_events(m.id, '-infinity', 'infinity');
		GET DIAGNOSTICS n_rollups = ROW_COUNT;
		INSERT INTO meter.rollup_values SELECT * FROM meter.rollup_values_from_events(m.id, '-infinity', 'infinity');
		GET DIAGNOSTICS n_values = ROW_COUNT;
		result := ROW(m.id, n_rollups, n_values);
		RETURN NEXT result;
	END LOOP;
END $$;
COMMENT ON FUNCTION meter.rebuild(text) IS
	'Recompute the rollups of one published meter (or all of the current scope) from the raw events of every tracked table';

CREATE FUNCTION meter.verify(meter_id text DEFAULT NULL)
RETURNS SETOF meter.difference
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	t text := meter.current_tenant();
	e text := meter.current_environment();
	m record;
BEGIN
	IF verify.meter_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM meter.meters x
		WHERE x.id = verify.meter_id AND x.tenant_id = t AND x.environment_id = e
		AND x.status <> 'deleted') THEN
		RAISE EXCEPTION 'meter "%" not found', verify.meter_id USING ERRCODE = 'P0002',
			HINT = 'meter.list_meters() lists the meters of the current tenant and environment.';
	END IF;
	FOR m IN SELECT x.id FROM meter.meters x WHERE x.tenant_id = t AND x.environment_id = e
		AND x.status = 'published' AND (verify.meter_id IS NULL OR x.id = verify.meter_id)
		ORDER BY x.id
	LOOP
		RETURN QUERY
		WITH s AS (SELECT * FROM meter.rollups r WHERE r.tenant_id = t
				AND r.environment_id = e AND r.meter_id = m.id),
			f AS (SELECT * FROM meter.rollups_from_events(m.id, '-infinity', 'infinity'))
		SELECT m.id, COALESCE(s.customer_id, f.customer_id),
			COALESCE(s.external_customer_id, f.external_customer_id), COALESCE(s.bucket, f.bucket),
			d.what, d.stored, d.expected
		FROM s FULL JOIN f ON s.customer_id = f.customer_id
			AND s.external_customer_id = f.external_customer_id AND s.bucket = f.bucket
		CROSS JOIN LATERAL (VALUES
			('events', s.events::text, f.events::text, s.events IS DISTINCT FROM f.events),
			('n', s.n::text, f.n::text, s.n IS DISTINCT FROM f.n),
			('sum', s.sum::text, f.sum::text, s.sum IS DISTINCT FROM f.sum),
			('sum_vt', s.sum_vt::text, f.sum_vt::text, s.sum_vt IS DISTINCT FROM f.sum_vt),
			('min', s.min::text, f.min::text, s.min IS DISTINCT FROM f.min),
			('max', s.max::text, f.max::text, s.max IS DISTINCT FROM f.max),
			('latest_at', s.latest_at::text, f.latest_at::text, s.latest_at IS DISTINCT FROM f.latest_at),
			('latest_value', s.latest_value::text, f.latest_value::text,
				s.latest_value IS DISTINCT FROM f.latest_value)
		) AS d(what, stored, expected, differs)
		WHERE d.differs
		ORDER BY 2, 3, 4, 5;

		RETURN QUERY
		WITH s AS (SELECT * FROM meter.rollup_values v WHERE v.tenant_id = t
				AND v.environment_id = e AND v.meter_id = m.id),
			f AS (SELECT * FROM meter.rollup_values_from_events(m.id, '-infinity', 'infinity'))
		SELECT m.id, COALESCE(s.customer_id, f.customer_id),
			COALESCE(s.external_customer_id, f.external_customer_id), COALESCE(s.bucket, f.bucket),
			'refs of value ' || quote_literal(COALESCE(s.value, f.value)), s.refs::text, f.refs::text
		FROM s FULL JOIN f ON s.customer_id = f.customer_id
			AND s.external_customer_id = f.external_customer_id AND s.bucket = f.bucket
			AND s.value = f.value
		WHERE s.refs IS DISTINCT FROM f.refs
		ORDER BY 2, 3, 4, 5;
	END LOOP;
END $$;
COMMENT ON FUNCTION meter.verify(text) IS
	'Every rollup of the published meters of the current scope that differs from a recomputation from the raw events; empty when all is well';

-- ── Tracking users' own event tables (SPEC §7) ──────────────────────────────────────
CREATE FUNCTION meter.track(tbl regclass) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	c record;
	found_type text;
BEGIN
	IF (SELECT relkind FROM pg_class WHERE oid = tbl) NOT IN ('r', 'p') THEN
		RAISE EXCEPTION '% is not a table', tbl USING ERRCODE = '42809',
			HINT = 'Track the table the events are inserted into.';
	END IF;
	FOR c IN SELECT * FROM (VALUES ('tenant_id', 'text'), ('environment_id', 'text'),
		('event_name', 'text'), ('customer_id', 'text'), ('external_customer_id', 'text'),
		('timestamp', 'timestamp with time zone'), ('properties', 'jsonb')) AS v(name, type)
	LOOP
		SELECT format_type(a.atttypid, a.atttypmod) INTO found_type FROM pg_attribute a
		WHERE a.attrelid = tbl AND a.attname = c.name AND a.attnum > 0 AND NOT a.attisdropped;
		IF NOT FOUND THEN
			RAISE EXCEPTION 'table % has no column "%"', tbl, c.name USING ERRCODE = '42703',
				DETAIL = 'A tracked table has the event columns of meter.events.',
				HINT = format('ALTER TABLE %s ADD COLUMN %I %s', tbl, c.name, c.type);
		ELSIF found_type <> c.type THEN
			RAISE EXCEPTION 'column "%" of table % is %, not %', c.name, tbl, found_type, c.type
				USING ERRCODE = '42804',
				HINT = format('ALTER TABLE %s ALTER COLUMN %I TYPE %s', tbl, c.name, c.type);
		END IF;
	END LOOP;
	IF EXISTS (SELECT 1 FROM meter.tracked_tables WHERE relid = tbl) THEN
		RAISE NOTICE 'table % is already tracked', tbl;
		RETURN;
	END IF;
	EXECUTE format('CREATE TRIGGER meter_track_insert AFTER INSERT ON %s REFERENCING NEW TABLE AS meter_new FOR EACH STATEMENT EXECUTE FUNCTION meter.track_usage()', tbl);
	EXECUTE format('CREATE TRIGGER meter_track_update AFTER UPDATE ON %s REFERENCING OLD TABLE AS meter_old NEW TABLE AS meter_new FOR EACH STATEMENT EXECUTE FUNCTION meter.track_usage()', tbl);
	EXECUTE format('CREATE TRIGGER meter_track_delete AFTER DELETE ON %s REFERENCING OLD TABLE AS meter_old FOR EACH STATEMENT EXECUTE FUNCTION meter.track_usage()', tbl);
	EXECUTE format('CREATE TRIGGER meter_track_truncate AFTER TRUNCATE ON %s FOR EACH STATEMENT EXECUTE FUNCTION meter.track_usage()', tbl);
	INSERT INTO meter.tracked_tables (relid) VALUES (tbl);
	-- The table's existing events now count: bring every meter in line.
	PERFORM meter.rebuild_all();
END $$;
COMMENT ON FUNCTION meter.track(regclass) IS
	'Check a table''s event columns, attach meter.track_usage() and count its events in every meter''s usage';

CREATE FUNCTION meter.untrack(tbl regclass) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF tbl = 'meter.events'::regclass THEN
		RAISE EXCEPTION 'meter.events is always tracked' USING ERRCODE = '22023',
			HINT = 'Leave it empty if your events live in a table of your own.';
	END IF;
	IF NOT EXISTS (SELECT 1 FROM meter.tracked_tables WHERE relid = tbl) THEN
		RAISE EXCEPTION 'table % is not tracked', tbl USING ERRCODE = '22023',
			HINT = 'SELECT relid FROM meter.tracked_tables lists the tracked tables.';
	END IF;
	EXECUTE format('DROP TRIGGER IF EXISTS meter_track_insert ON %s', tbl);
	EXECUTE format('DROP TRIGGER IF EXISTS meter_track_update ON %s', tbl);
	EXECUTE format('DROP TRIGGER IF EXISTS meter_track_delete ON %s', tbl);
	EXECUTE format('DROP TRIGGER IF EXISTS meter_track_truncate ON %s', tbl);
	DELETE FROM meter.tracked_tables WHERE relid = tbl;
	PERFORM meter.rebuild_all();
END $$;
COMMENT ON FUNCTION meter.untrack(regclass) IS
	'Detach meter.track_usage() from a table and take its events out of every meter''s usage';

-- ── Matching meters (SPEC §3) ───────────────────────────────────────────────────────
CREATE FUNCTION meter.matching_meters(event_name text, properties jsonb)
	RETURNS SETOF meter.meters
	AS 'MODULE_PATHNAME', 'meter_matching_meters' LANGUAGE C STABLE STRICT;
COMMENT ON FUNCTION meter.matching_meters(text, jsonb) IS
	'The published meters of the current scope that count an event of this name and properties';

CREATE FUNCTION meter.explain_match(meter_id text, event_name text, properties jsonb)
	RETURNS text
	AS 'MODULE_PATHNAME', 'meter_explain_match' LANGUAGE C STABLE STRICT;
COMMENT ON FUNCTION meter.explain_match(text, text, jsonb) IS
	'Why an event does or does not count for a meter, in words';
