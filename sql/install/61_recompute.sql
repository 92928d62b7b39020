
-- ── The ground truth in SQL alone (SPEC §8 meter.verify) ────────────────────────────
-- The partial states the engine should hold, recomputed from the raw events of every
-- tracked table by plain SQL that shares none of the engine's C code: matching, usable
-- values, identities, slots and dimensions are all written again here, independently.
-- (Meters with an expression take their per-event value from meter.quantity(), the
-- expression evaluator, which its own tests check against hand-computed values.)

-- A JSON number literal: the usable strings (SPEC §8), and the canonical text of a
-- number (trailing fractional zeros dropped) without the engine's number code.
CREATE FUNCTION meter.oracle_number(v jsonb) RETURNS numeric
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
	SELECT CASE pg_catalog.jsonb_typeof(v)
		WHEN 'number' THEN (v OPERATOR(pg_catalog.#>>) '{}')::numeric
		WHEN 'string' THEN CASE WHEN (v OPERATOR(pg_catalog.#>>) '{}') OPERATOR(pg_catalog.~)
				'^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]{1,4})?$'
			AND COALESCE(pg_catalog.abs(pg_catalog.substring(v OPERATOR(pg_catalog.#>>) '{}',
				'[eE]([+-]?[0-9]+)$')::integer), 0) OPERATOR(pg_catalog.<=) 1000
			THEN (v OPERATOR(pg_catalog.#>>) '{}')::numeric END
	END
$$;
COMMENT ON FUNCTION meter.oracle_number(jsonb) IS
	'Internal (verify): the usable number of a JSON value, in SQL alone';

CREATE FUNCTION meter.oracle_identity(v jsonb, canonical_strings boolean) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
	SELECT CASE pg_catalog.jsonb_typeof(v)
		WHEN 'null' THEN NULL
		WHEN 'boolean' THEN v OPERATOR(pg_catalog.#>>) '{}'
		WHEN 'number' THEN pg_catalog.trim_scale((v OPERATOR(pg_catalog.#>>) '{}')::numeric)::text
		WHEN 'string' THEN CASE WHEN canonical_strings AND meter.oracle_number(v) IS NOT NULL
			THEN pg_catalog.trim_scale(meter.oracle_number(v))::text ELSE v OPERATOR(pg_catalog.#>>) '{}' END
		ELSE v::text
	END
$$;
COMMENT ON FUNCTION meter.oracle_identity(jsonb, boolean) IS
	'Internal (verify): a JSON value''s identity text (numbers canonical; number-like strings too when asked)';

-- A property as a dimension of the rollup key: its kind (s, n, b) and text.
CREATE FUNCTION meter.oracle_dimension(v jsonb) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
	SELECT CASE pg_catalog.jsonb_typeof(v)
		WHEN 'string' THEN 's' OPERATOR(pg_catalog.||) (v OPERATOR(pg_catalog.#>>) '{}')
		WHEN 'number' THEN 'n' OPERATOR(pg_catalog.||) meter.oracle_identity(v, false)
		WHEN 'boolean' THEN 'b' OPERATOR(pg_catalog.||) (v OPERATOR(pg_catalog.#>>) '{}')
	END
$$;
COMMENT ON FUNCTION meter.oracle_dimension(jsonb) IS
	'Internal (verify): a JSON value as a dimension of the rollup key (kind and text), in SQL alone';

-- Does a property match one filter (SPEC §3), in SQL alone?
CREATE FUNCTION meter.oracle_matches_value(v jsonb, vals text[]) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
	SELECT CASE pg_catalog.jsonb_typeof(v)
		WHEN 'string' THEN (v OPERATOR(pg_catalog.#>>) '{}') OPERATOR(pg_catalog.=) ANY (vals)
		WHEN 'boolean' THEN (v OPERATOR(pg_catalog.#>>) '{}') OPERATOR(pg_catalog.=) ANY (vals)
		WHEN 'number' THEN EXISTS (SELECT 1 FROM pg_catalog.unnest(vals) f
			WHERE meter.oracle_number(pg_catalog.to_jsonb(f)) OPERATOR(pg_catalog.=) (v OPERATOR(pg_catalog.#>>) '{}')::numeric)
		ELSE false
	END
$$;
COMMENT ON FUNCTION meter.oracle_matches_value(jsonb, text[]) IS
	'Internal (verify): does a JSON value match a filter''s values, in SQL alone';

-- The relations that hold the current scope's raw events: every tracked table that exists
-- (on a Citus worker, each one's shard of the tenant's group).
CREATE FUNCTION meter.event_sources() RETURNS SETOF regclass
	AS 'MODULE_PATHNAME', 'meter_event_sources' LANGUAGE C STABLE;
COMMENT ON FUNCTION meter.event_sources() IS
	'Internal (verify): the relations holding the current scope''s raw events (every tracked table, or its shard on a Citus worker)';

CREATE FUNCTION meter.expected_slots(meter_id text, totals boolean DEFAULT false)
RETURNS TABLE (customer_id text, external_customer_id text, slot timestamptz, dims text,
	events bigint, n bigint, sum numeric, sum_vt numeric, best numeric, best_at timestamptz,
	uniques jsonb, maxima jsonb)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
-- Hash joins over the slots; disabling nested loops inflates the plan's cost past
-- jit_above_cost, and compiling each query would cost more than running it.
SET enable_nestloop = off SET jit = off
AS $fn$
DECLARE
	m meter.meters := meter.get_meter(expected_slots.meter_id);
	kind meter.aggregation_type := meter.type_of(m.aggregation);
	fld text := meter.field_of(m.aggregation);
	bucketed boolean := kind = 'MAX' AND meter.bucket_size_of(m.aggregation) IS NOT NULL;
	keys text[] := meter.filter_keys(m.filters);
	events_q text;
	match_q text := 'true';
	dims_q text := '''''';
	value_q text;
	k text;
BEGIN
	SELECT COALESCE(string_agg(format(
		'SELECT COALESCE(e.customer_id::text, '''') AS c, COALESCE(e.external_customer_id::text, '''') AS x, '
		'e."timestamp" AS ts, COALESCE(e.properties, ''{}'') AS p FROM %s AS e '
		'WHERE e.tenant_id = $1 AND e.environment_id = $2 AND e.event_name = $3', t.relid), ' UNION ALL '),
		'SELECT NULL::text, NULL::text, NULL::timestamptz, NULL::jsonb WHERE false')
	INTO events_q FROM meter.event_sources() t(relid);
	FOREACH k IN ARRAY keys LOOP
		match_q := match_q || format(' AND meter.oracle_matches_value(r.p -> %L, %L::text[])',
			k, meter.filter_values(m.filters, k));
		dims_q := dims_q || format(' || COALESCE(octet_length(meter.oracle_dimension(r.p -> %1$L))::text'
			' || '':'' || meter.oracle_dimension(r.p -> %1$L), ''-'')', k);
	END LOOP;
	value_q := CASE
		WHEN kind IN ('COUNT', 'COUNT_UNIQUE') THEN 'NULL::numeric'
		WHEN fld IS NOT NULL THEN format('meter.oracle_number(r.p -> %L)', fld)
		ELSE 'meter.quantity($4, r.p)' END;
	RETURN QUERY EXECUTE format($q$
		WITH r AS (SELECT * FROM (%1$s) r WHERE %2$s),
		v AS (SELECT CASE WHEN $5 THEN '' ELSE r.c END AS c, CASE WHEN $5 THEN '' ELSE r.x END AS x,
				r.ts - (mod(mod(extract(epoch FROM r.ts) * 1000000, 900000000) + 900000000, 900000000)::bigint
					* interval '1 microsecond') AS slot, %3$s AS dims, r.ts,
				%4$s AS v, %5$s AS u, %6$s AS g
			FROM r),
		base AS (SELECT v.c, v.x, v.slot, v.dims, count(*) AS events,
				CASE WHEN $6 = 'COUNT' THEN count(*) WHEN $6 = 'COUNT_UNIQUE' THEN count(v.u) ELSE count(v.v) END AS n,
				CASE WHEN $6 IN ('SUM', 'AVG', 'SUM_WITH_MULTIPLIER', 'WEIGHTED_SUM') THEN sum(v.v) END AS sum,
				CASE WHEN $6 = 'WEIGHTED_SUM' THEN sum(v.v * extract(epoch FROM v.ts)) END AS sum_vt,
				CASE WHEN $7 THEN NULL WHEN $6 IN ('MAX') THEN max(v.v) WHEN $6 = 'MIN' THEN min(v.v)
					WHEN $6 = 'LATEST' THEN (array_agg(v.v ORDER BY v.ts DESC, v.v DESC) FILTER (WHERE v.v IS NOT NULL))[1] END AS best,
				CASE WHEN $6 = 'LATEST' THEN max(v.ts) FILTER (WHERE v.v IS NOT NULL) END AS best_at
			FROM v GROUP BY 1, 2, 3, 4),
		uq AS (SELECT w.c, w.x, w.slot, w.dims, jsonb_object_agg(w.u, w.refs ORDER BY w.u COLLATE "C") AS uniques
			FROM (SELECT v.c, v.x, v.slot, v.dims, v.u, count(*) AS refs FROM v WHERE v.u IS NOT NULL
				GROUP BY 1, 2, 3, 4, 5) w GROUP BY 1, 2, 3, 4),
		mx AS (SELECT w.c, w.x, w.slot, w.dims,
				jsonb_agg(jsonb_build_array(w.off, w.g, w.mv) ORDER BY w.off, w.g COLLATE "C" NULLS FIRST) AS maxima
			FROM (SELECT v.c, v.x, v.slot, v.dims, v.g,
					CASE WHEN $8 THEN floor(extract(epoch FROM v.ts - v.slot) / 60)::bigint * 60 ELSE 0 END AS off,
					max(v.v) AS mv FROM v WHERE $7 AND v.v IS NOT NULL
				GROUP BY 1, 2, 3, 4, 5, 6) w GROUP BY 1, 2, 3, 4)
		SELECT CASE WHEN $5 THEN NULL ELSE b.c END, CASE WHEN $5 THEN NULL ELSE b.x END, b.slot, b.dims,
			b.events, b.n, b.sum, b.sum_vt, b.best, b.best_at, uq.uniques, mx.maxima
		FROM base b
		LEFT JOIN uq ON uq.c = b.c AND uq.x = b.x AND uq.slot = b.slot AND uq.dims = b.dims
		LEFT JOIN mx ON mx.c = b.c AND mx.x = b.x AND mx.slot = b.slot AND mx.dims = b.dims$q$,
		events_q, match_q, dims_q, value_q,
		CASE WHEN kind = 'COUNT_UNIQUE' THEN format('meter.oracle_identity(r.p -> %L, true)', fld) ELSE 'NULL::text' END,
		CASE WHEN bucketed AND meter.group_by_of(m.aggregation) IS NOT NULL
			THEN format('meter.oracle_identity(r.p -> %L, true)', meter.group_by_of(m.aggregation)) ELSE 'NULL::text' END)
	USING m.tenant_id, m.environment_id, m.event_name, m.aggregation, totals, kind::text, bucketed,
		bucketed AND meter.bucket_size_of(m.aggregation) = 'MINUTE';
END
$fn$;
COMMENT ON FUNCTION meter.expected_slots(text, boolean) IS
	'Internal (verify): the partial states meter.stored_slots should show, recomputed from the raw events in SQL alone';
