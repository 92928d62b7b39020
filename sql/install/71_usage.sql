
-- ── Usage queries (SPEC §8) ─────────────────────────────────────────────────────────
-- meter.usage serves whole 15-minute buckets from meter.rollups and reads the raw events
-- only of buckets that a boundary (a window or bucket_size edge, start_time, end_time)
-- cuts; meter.usage_from_events reads the raw events only. Both run the same query
-- (meter.usage_compute) and finish each row with the same function (meter.usage_value),
-- so they agree exactly.

-- The value of one usage row from the aggregated parts of its events (the one place
-- where the aggregation types differ). For reset_usage NEVER the caller passes running
-- totals (everything before window_end) and prior_sum, the Σ value of the events before
-- window_start; own_sum and own_sum_vt are always the row's own window's.
-- Inlined into the caller's query: operators are schema-qualified instead of SET search_path
-- (EXTRACT is syntax for pg_catalog.extract), and it is STABLE like extract(epoch FROM
-- timestamptz) (an IMMUTABLE function calling a STABLE one is not inlined).
CREATE FUNCTION meter.usage_value(
	aggregation meter.aggregation,
	window_start timestamptz,
	window_end timestamptz,
	events numeric,
	n numeric,
	sum numeric,
	min numeric,
	max numeric,
	latest_value numeric,
	uniques numeric,
	bucketed numeric,
	own_sum numeric,
	own_sum_vt numeric,
	prior_sum numeric)
RETURNS numeric
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
	SELECT CASE
		WHEN meter.type_of(aggregation) OPERATOR(pg_catalog.=) 'COUNT' THEN COALESCE(events, 0)
		WHEN meter.type_of(aggregation) OPERATOR(pg_catalog.=) 'SUM' THEN COALESCE(sum, 0)
		-- like avg(numeric): numeric_div of the sum by the number of values
		WHEN meter.type_of(aggregation) OPERATOR(pg_catalog.=) 'AVG' THEN
			CASE WHEN n OPERATOR(pg_catalog.>) 0 THEN sum OPERATOR(pg_catalog./) n END
		WHEN meter.type_of(aggregation) OPERATOR(pg_catalog.=) 'COUNT_UNIQUE' THEN COALESCE(uniques, 0)
		WHEN meter.type_of(aggregation) OPERATOR(pg_catalog.=) 'MAX' THEN
			CASE WHEN meter.bucket_size_of(aggregation) IS NULL THEN max ELSE bucketed END
		WHEN meter.type_of(aggregation) OPERATOR(pg_catalog.=) 'MIN' THEN min
		WHEN meter.type_of(aggregation) OPERATOR(pg_catalog.=) 'LATEST' THEN latest_value
		WHEN meter.type_of(aggregation) OPERATOR(pg_catalog.=) 'SUM_WITH_MULTIPLIER' THEN
			COALESCE(sum OPERATOR(pg_catalog.*) meter.multiplier_of(aggregation), 0)
		-- Σ v·(E − t)/(E − S) = (E·Σv − Σ v·t)/(E − S) in epoch seconds; events before S
		-- (reset NEVER) count with t = S, i.e. fully
		WHEN meter.type_of(aggregation) OPERATOR(pg_catalog.=) 'WEIGHTED_SUM' THEN
			CASE WHEN own_sum IS NULL AND prior_sum IS NULL THEN 0
			-- (OPERATOR() gives every operator the same precedence: parenthesize all)
			ELSE ((EXTRACT(epoch FROM window_end) OPERATOR(pg_catalog.*)
					(COALESCE(own_sum, 0) OPERATOR(pg_catalog.+) COALESCE(prior_sum, 0)))
				OPERATOR(pg_catalog.-) (COALESCE(own_sum_vt, 0) OPERATOR(pg_catalog.+)
					(COALESCE(prior_sum, 0) OPERATOR(pg_catalog.*) EXTRACT(epoch FROM window_start))))
				OPERATOR(pg_catalog./) (EXTRACT(epoch FROM window_end)
					OPERATOR(pg_catalog.-) EXTRACT(epoch FROM window_start))
			END
	END
$$;
COMMENT ON FUNCTION meter.usage_value(meter.aggregation, timestamptz, timestamptz, numeric,
	numeric, numeric, numeric, numeric, numeric, numeric, numeric, numeric, numeric, numeric) IS
	'Internal: the usage value of one window from its aggregated parts (shared by usage and usage_from_events)';

-- The engine of meter.usage (from_rollups) and meter.usage_from_events (not from_rollups).
--
-- The rows are the windows of meter.windows(); for a MAX meter with bucket_size each
-- window is cut further into bucket_size buckets. Those pieces ("cells") are listed by
-- their lower bounds in `grid`, so width_bucket(t, grid) is the cell of an instant.
-- For reset_usage NEVER a first, hidden window [t0, start_time) holds everything before
-- start_time (t0 = the 15-minute bucket of the meter's earliest event).
--
-- Raw path: every event in [grid[1], end_time) of every event table, one range scan each.
-- Rollup path: a 15-minute bucket that no cell boundary cuts comes from meter.rollups
-- (one range scan of the rollups' primary key or external-customer index); the buckets
-- a boundary cuts (an unaligned start_time or end_time, a billing anchor at 10:07,
-- MINUTE windows or buckets, a time zone off UTC by other than a multiple of 15 minutes)
-- are read from the raw events, merged into as few ranges as possible.
CREATE FUNCTION meter.usage_compute(
	m meter.meters,
	start_time timestamptz,
	end_time timestamptz,
	customer_id text,
	external_customer_id text,
	window_size meter.window_size,
	timezone text,
	billing_anchor timestamptz,
	from_rollups boolean,
	source regclass)
RETURNS TABLE (window_start timestamptz, window_end timestamptz, value numeric)
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_column
DECLARE
	kind meter.aggregation_type := meter.type_of(m.aggregation);
	bsize meter.window_size;
	never boolean := m.reset_usage = 'NEVER';
	tables regclass[] := meter.event_tables(source);
	t0 timestamptz;
	hidden integer := 0;		-- 1 when the first window is the hidden [t0, start_time)
	ws timestamptz[];
	we timestamptz[];
	grid timestamptz[];
	cw integer[];				-- the window of each cell
	raw_lo timestamptz[];
	raw_hi timestamptz[];
	skip timestamptz[];			-- flat [lo, hi, lo, hi, …]: buckets the rollups must not serve
	v_expr text;
	u_expr text;
	vt_expr text;
	latest_expr text;
	who text := '';
	raw_q text;
	roll_q text;
	vals_q text;
	uvals_q text;
	uniq_q text;
BEGIN
	IF kind = 'MAX' THEN
		bsize := meter.bucket_size_of(m.aggregation);
	END IF;

	-- The windows (errors for bad ranges, zones and sizes come from here).
	SELECT array_agg(w.window_start ORDER BY w.window_start),
		array_agg(w.window_end ORDER BY w.window_start)
	INTO ws, we
	FROM meter.windows(start_time, end_time, window_size, timezone, billing_anchor) AS w;

	IF never THEN
		EXECUTE format('SELECT min(x.t) FROM (%s) x',
			COALESCE((SELECT string_agg(format(
				'SELECT min(e."timestamp") AS t FROM %s AS e WHERE e.tenant_id = $1 '
				'AND e.environment_id = $2 AND e.event_name = $3 AND e."timestamp" < $4', tbl),
				' UNION ALL ') FROM unnest(tables) AS tbl), 'SELECT NULL::timestamptz AS t'))
		INTO t0 USING m.tenant_id, m.environment_id, m.event_name, start_time;
		t0 := to_timestamp(floor(extract(epoch FROM t0) / 900) * 900);
		IF t0 < start_time THEN
			ws := t0 || ws;
			we := start_time || we;
			hidden := 1;
		END IF;
	END IF;

	IF bsize IS NULL THEN
		grid := ws || end_time;
		cw := ARRAY(SELECT generate_series(1, cardinality(ws)));
	ELSE
		SELECT array_agg(c.window_start ORDER BY c.window_start), array_agg(w.i ORDER BY c.window_start)
		INTO grid, cw
		FROM unnest(ws, we) WITH ORDINALITY AS w(s, e, i)
		CROSS JOIN LATERAL meter.windows(w.s, w.e, bsize, timezone, billing_anchor) AS c;
		grid := grid || end_time;
	END IF;

	IF from_rollups THEN
		-- Buckets cut by a cell boundary, merged into ranges (gaps and islands).
		WITH cut AS (
			SELECT DISTINCT to_timestamp(floor(extract(epoch FROM g) / 900) * 900) AS b
			FROM unnest(grid) AS g
			WHERE g <> to_timestamp(floor(extract(epoch FROM g) / 900) * 900)),
		island AS (
			SELECT cut.b, cut.b - (row_number() OVER (ORDER BY cut.b)) * interval '15 minutes' AS k
			FROM cut),
		r AS (
			SELECT min(island.b) AS lo, max(island.b) + interval '15 minutes' AS hi
			FROM island GROUP BY island.k)
		SELECT array_agg(greatest(r.lo, grid[1]) ORDER BY r.lo),
			array_agg(least(r.hi, end_time) ORDER BY r.lo),
			(SELECT array_agg(x ORDER BY x) FROM r AS r2, unnest(ARRAY[r2.lo, r2.hi]) AS x)
		INTO raw_lo, raw_hi, skip
		FROM r;
	ELSE
		raw_lo := ARRAY[grid[1]];
		raw_hi := ARRAY[end_time];
	END IF;

	-- What each event contributes, by aggregation type (the same text for both paths).
	v_expr := CASE WHEN kind IN ('COUNT', 'COUNT_UNIQUE') THEN 'NULL::numeric'
		ELSE 'meter.numeric_value(p.properties, $6)' END;
	u_expr := CASE WHEN kind = 'COUNT_UNIQUE' THEN 'meter.unique_value(p.properties, $6)'
		ELSE 'NULL::text' END;
	vt_expr := CASE WHEN kind = 'WEIGHTED_SUM' THEN 'sum(raw.v * extract(epoch FROM raw.t))'
		ELSE 'NULL::numeric' END;
	latest_expr := CASE WHEN kind = 'LATEST'
		THEN 'max(ARRAY[extract(epoch FROM raw.t), raw.v]) FILTER (WHERE raw.v IS NOT NULL)'
		ELSE 'NULL::numeric[]' END;

	IF customer_id IS NOT NULL THEN
		who := who || ' AND COALESCE(x.customer_id::text, '''') = $5';
	END IF;
	IF external_customer_id IS NOT NULL THEN
		who := who || ' AND COALESCE(x.external_customer_id::text, '''') = $7';
	END IF;

	IF raw_lo IS NULL OR cardinality(tables) = 0 THEN
		raw_q := 'SELECT NULL::integer AS cell, NULL::timestamptz AS t, NULL::numeric AS v, NULL::text AS u WHERE false';
	ELSE
		SELECT format('SELECT p.cell, p.t, %s AS v, %s AS u FROM (%s) AS p', v_expr, u_expr,
			string_agg(format(
				'SELECT width_bucket(e.t, $9) AS cell, e.t, e.properties '
				'FROM unnest($10::timestamptz[], $11::timestamptz[]) AS r(lo, hi) '
				'CROSS JOIN LATERAL (SELECT x."timestamp" AS t, x.properties FROM %s AS x '
				'WHERE x.tenant_id = $1 AND x.environment_id = $2 AND x.event_name = $3 '
				'AND x."timestamp" >= r.lo AND x."timestamp" < r.hi%s OFFSET 0) AS e '
				'WHERE meter.matches($4, e.properties)', tbl, who), ' UNION ALL '))
		INTO raw_q
		FROM unnest(tables) AS tbl;
	END IF;

	IF from_rollups THEN
		who := replace(replace(who, 'COALESCE(x.customer_id::text, '''')', 'r.customer_id'),
			'COALESCE(x.external_customer_id::text, '''')', 'r.external_customer_id');
		-- Lets the planner use the partial indexes on customer_id (rows that have one).
		IF customer_id IS NOT NULL AND customer_id <> '' THEN
			who := who || ' AND r.customer_id OPERATOR(pg_catalog.<>) ''''';
		END IF;
		roll_q := format(
			' UNION ALL SELECT width_bucket(r.bucket, $9) AS cell, r.events, r.n, r.sum, r.sum_vt, '
			'r.min, r.max, CASE WHEN r.latest_at IS NOT NULL '
			'THEN ARRAY[extract(epoch FROM r.latest_at), r.latest_value] END '
			'FROM meter.rollups AS r WHERE r.tenant_id = $1 AND r.environment_id = $2 '
			'AND r.meter_id = $12 AND r.bucket >= $19 AND r.bucket < $20%s%s',
			who, CASE WHEN skip IS NOT NULL THEN ' AND width_bucket(r.bucket, $13) % 2 = 0' ELSE '' END);
		vals_q := format(
			' UNION ALL SELECT width_bucket(r.bucket, $9), r.value FROM meter.rollup_values AS r '
			'WHERE r.tenant_id = $1 AND r.environment_id = $2 '
			'AND r.meter_id = $12 AND r.bucket >= $19 AND r.bucket < $20%s%s',
			who, CASE WHEN skip IS NOT NULL THEN ' AND width_bucket(r.bucket, $13) % 2 = 0' ELSE '' END);
	ELSE
		roll_q := '';
		vals_q := '';
	END IF;

	-- COUNT_UNIQUE: the distinct values per window, or (NEVER) the values first seen in
	-- each window. (Only then is raw read twice, which materializes it.)
	IF kind <> 'COUNT_UNIQUE' THEN
		uvals_q := 'SELECT NULL::integer AS cell, NULL::text AS u WHERE false';
		uniq_q := 'SELECT NULL::integer AS w, NULL::numeric AS uniques WHERE false';
	ELSE
		uvals_q := 'SELECT raw.cell, raw.u FROM raw WHERE raw.u IS NOT NULL' || vals_q;
		IF never THEN
			uniq_q := 'SELECT f.w, count(*)::numeric AS uniques FROM (SELECT min(($8::integer[])[uv.cell]) AS w '
				'FROM uvals AS uv GROUP BY uv.u) AS f GROUP BY f.w';
		ELSE
			uniq_q := 'SELECT ($8::integer[])[uv.cell] AS w, count(DISTINCT uv.u)::numeric AS uniques '
				'FROM uvals AS uv GROUP BY 1';
		END IF;
	END IF;

	RETURN QUERY EXECUTE format($q$
		WITH raw AS (%1$s),
		cells AS (
			SELECT c.cell, sum(c.events) AS events, sum(c.n) AS n, sum(c.sum) AS sum,
				sum(c.sum_vt) AS sum_vt, min(c.min) AS min, max(c.max) AS max, max(c.latest) AS latest
			FROM (
				SELECT raw.cell, count(*) AS events, count(raw.v) AS n, sum(raw.v) AS sum,
					%2$s AS sum_vt, min(raw.v) AS min, max(raw.v) AS max, %3$s AS latest
				FROM raw GROUP BY raw.cell
				%4$s
			) AS c
			GROUP BY c.cell),
		uvals AS (%5$s),
		per_window AS (
			SELECT ($8::integer[])[c.cell] AS w, sum(c.events) AS events, sum(c.n) AS n,
				sum(c.sum) AS sum, sum(c.sum_vt) AS sum_vt, min(c.min) AS min, max(c.max) AS max,
				max(c.latest) AS latest, sum(c.max) AS bucketed
			FROM cells AS c GROUP BY 1),
		uniq AS (%6$s),
		running AS (
			SELECT w.s, w.e, w.i, pw.sum AS own_sum, pw.sum_vt AS own_sum_vt,
				pw.events, pw.n, pw.sum, pw.min, pw.max, pw.latest, pw.bucketed, u.uniques,
				sum(pw.events) OVER run AS r_events, sum(pw.n) OVER run AS r_n,
				sum(pw.sum) OVER run AS r_sum, min(pw.min) OVER run AS r_min,
				max(pw.max) OVER run AS r_max, max(pw.latest) OVER run AS r_latest,
				sum(pw.bucketed) OVER run AS r_bucketed, sum(u.uniques) OVER run AS r_uniques,
				sum(pw.sum) OVER (ORDER BY w.i ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS prior_sum
			FROM unnest($14::timestamptz[], $15::timestamptz[]) WITH ORDINALITY AS w(s, e, i)
			LEFT JOIN per_window AS pw ON pw.w = w.i
			LEFT JOIN uniq AS u ON u.w = w.i
			WINDOW run AS (ORDER BY w.i ROWS UNBOUNDED PRECEDING))
		SELECT r.s, r.e, CASE WHEN $18 THEN
				meter.usage_value($17, r.s, r.e, r.r_events, r.r_n, r.r_sum, r.r_min, r.r_max,
					r.r_latest[2], r.r_uniques, r.r_bucketed, r.own_sum, r.own_sum_vt, r.prior_sum)
			ELSE
				meter.usage_value($17, r.s, r.e, r.events, r.n, r.sum, r.min, r.max,
					r.latest[2], r.uniques, r.bucketed, r.own_sum, r.own_sum_vt, NULL)
			END
		FROM running AS r
		WHERE r.i > $16
		ORDER BY r.i$q$,
		raw_q, vt_expr, latest_expr, roll_q, uvals_q, uniq_q)
	USING m.tenant_id, m.environment_id, m.event_name, m.filters, customer_id,
		meter.field_of(m.aggregation), external_customer_id, cw, grid, raw_lo, raw_hi,
		m.id, skip, ws, we, hidden, m.aggregation, never, grid[1], end_time;
END
$fn$;
COMMENT ON FUNCTION meter.usage_compute(meter.meters, timestamptz, timestamptz, text, text,
	meter.window_size, text, timestamptz, boolean, regclass) IS
	'Internal: the engine of meter.usage (from_rollups) and meter.usage_from_events';

CREATE FUNCTION meter.usage(
	meter_id text,
	start_time timestamptz,
	end_time timestamptz,
	customer_id text DEFAULT NULL,
	external_customer_id text DEFAULT NULL,
	window_size meter.window_size DEFAULT NULL,
	timezone text DEFAULT 'UTC',
	billing_anchor timestamptz DEFAULT NULL)
RETURNS TABLE (window_start timestamptz, window_end timestamptz, value numeric)
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	RETURN QUERY SELECT * FROM meter.usage_compute(meter.get_meter(usage.meter_id),
		usage.start_time, usage.end_time, usage.customer_id, usage.external_customer_id,
		usage.window_size, usage.timezone, usage.billing_anchor, true, NULL);
END
$$;
COMMENT ON FUNCTION meter.usage(text, timestamptz, timestamptz, text, text, meter.window_size,
	text, timestamptz) IS
	'Usage of a meter per window over [start_time, end_time), served from the rollups '
	'(raw events only for 15-minute buckets a window edge cuts). Errors: 55000 no tenant, '
	'P0002 unknown or deleted meter, 22023 bad range or time zone, 54000 too many windows';

CREATE FUNCTION meter.usage_from_events(
	meter_id text,
	start_time timestamptz,
	end_time timestamptz,
	customer_id text DEFAULT NULL,
	external_customer_id text DEFAULT NULL,
	window_size meter.window_size DEFAULT NULL,
	timezone text DEFAULT 'UTC',
	billing_anchor timestamptz DEFAULT NULL,
	source regclass DEFAULT NULL)
RETURNS TABLE (window_start timestamptz, window_end timestamptz, value numeric)
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	RETURN QUERY SELECT * FROM meter.usage_compute(meter.get_meter(usage_from_events.meter_id),
		usage_from_events.start_time, usage_from_events.end_time,
		usage_from_events.customer_id, usage_from_events.external_customer_id,
		usage_from_events.window_size, usage_from_events.timezone,
		usage_from_events.billing_anchor, false, usage_from_events.source);
END
$$;
COMMENT ON FUNCTION meter.usage_from_events(text, timestamptz, timestamptz, text, text,
	meter.window_size, text, timestamptz, regclass) IS
	'meter.usage computed from the raw events only (the ground truth; the path for untracked '
	'tables): every tracked table, or source. Errors as meter.usage, and 22023 for a source '
	'without the event columns';
