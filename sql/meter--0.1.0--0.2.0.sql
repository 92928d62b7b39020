\echo Use "ALTER EXTENSION meter UPDATE" to load this file. \quit
-- meter 0.1.0 → 0.2.0: brings a 0.1.0 database to exactly the schema of a fresh 0.2.0
-- (the same objects, definitions, comments, privileges, policies, triggers, event
-- triggers and pg_dump registrations; test/e2e/upgrade.sh compares both), and moves the
-- stored usage to 0.2.0's engine so that every meter, event and usage value stays as it
-- was (CHANGELOG.md, README "Upgrading"):
--   1. 0.1.0's rollup tables step aside under legacy names; its SQL engine goes.
--   2. 0.2.0's objects are created, or replaced where 0.1.0 had them (statements taken
--      from sql/install/ as 0.2.0 has them).
--   3. Data: padded meter names are stored trimmed (0.2.0's rule; updated_at and
--      updated_by stay); tracked tables get 0.2.0's triggers (BEFORE TRUNCATE); the
--      frozen usage of archived and deleted meters is converted from 0.1.0's rollups into
--      0.2.0 partial states; every published meter is recomputed from its raw events.
--   4. Roles granted access under 0.1.0 get the same access to the new tables and
--      functions; the legacy tables go; the event triggers come last.
-- Runs in one transaction (ALTER EXTENSION): on any error nothing has changed.

-- ── 1. 0.1.0's stored usage steps aside ─────────────────────────────────────────────
-- Kept, with their data and privileges, until step 3 has read them.
ALTER VIEW meter.skipped RENAME TO legacy_skipped;
ALTER TABLE meter.rollups RENAME TO legacy_rollups;
ALTER INDEX meter.rollups_pkey RENAME TO legacy_rollups_pkey;
ALTER INDEX meter.rollups_customer_idx RENAME TO legacy_rollups_customer_idx;
ALTER TABLE meter.rollup_values RENAME TO legacy_rollup_values;
ALTER INDEX meter.rollup_values_pkey RENAME TO legacy_rollup_values_pkey;
ALTER INDEX meter.rollup_values_customer_idx RENAME TO legacy_rollup_values_customer_idx;

-- 0.1.0's engine in SQL: 0.2.0 does all of it in C.
DROP FUNCTION meter.refresh_rollups(text[], text[], text[], timestamptz[]);
DROP FUNCTION meter.rollups_from_events(text, timestamptz, timestamptz, regclass);
DROP FUNCTION meter.rollup_values_from_events(text, timestamptz, timestamptz, regclass);
DROP FUNCTION meter.usage_compute(meter.meters, timestamptz, timestamptz, text, text,
	meter.window_size, text, timestamptz, boolean, regclass);
DROP FUNCTION meter.usage_value(meter.aggregation, timestamptz, timestamptz, numeric,
	numeric, numeric, numeric, numeric, numeric, numeric, numeric, numeric, numeric, numeric);
DROP FUNCTION meter.events_query(regclass[]);
DROP FUNCTION meter.event_tables(regclass);
DROP FUNCTION meter.bucket_sql(text);

-- ── 2. 0.2.0's objects ──────────────────────────────────────────────────────────────
-- (From here on the library serves the 0.2.0 engine: meter.pending exists; see src/legacy.c.)

-- meter.aggregation (sql/install/21_aggregation.sql): expression and group_by
COMMENT ON FUNCTION meter.aggregation_out(meter.aggregation) IS
	'Text output of meter.aggregation: canonical JSON (keys type, field, expression, multiplier, bucket_size, group_by)';
COMMENT ON TYPE meter.aggregation IS
	'How a meter aggregates: {"type":"SUM","field":"tokens"} (type, field, expression, multiplier, bucket_size, group_by)';
COMMENT ON FUNCTION meter.aggregation_cmp(meter.aggregation, meter.aggregation) IS
	'Order of two values of meter.aggregation: -1, 0 or 1 (by type (enum order), then field, expression, multiplier, bucket_size, group_by)';
CREATE FUNCTION meter.expression_of(meter.aggregation) RETURNS text
	AS 'MODULE_PATHNAME', 'meter_aggregation_expression_of' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION meter.expression_of(meter.aggregation) IS
	'The expression that computes each event''s value (as written, trimmed); NULL when none';
CREATE FUNCTION meter.group_by_of(meter.aggregation) RETURNS text
	AS 'MODULE_PATHNAME', 'meter_aggregation_group_by_of' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION meter.group_by_of(meter.aggregation) IS
	'The property a bucketed MAX aggregation groups by (per-group maxima summed); NULL when none';

-- Property values (sql/install/23_values.sql)
CREATE FUNCTION meter.quantity(aggregation meter.aggregation, properties jsonb) RETURNS numeric
	AS 'MODULE_PATHNAME', 'meter_quantity' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION meter.quantity(meter.aggregation, jsonb) IS
	'What one event contributes to the aggregation, before the multiplier or time weight: 1 for COUNT, '
	'NULL for COUNT_UNIQUE, else the field''s usable number or the expression''s value; NULL when the event is skipped';

-- sql/install/60_rollups.sql, 61_recompute.sql and 62_seals.sql, whole: 0.2.0's stored
-- usage, its SQL oracle and sealed periods are new (meter.rollups and meter.skipped too:
-- 0.1.0's stepped aside above).

-- ── Stored usage: partial states (SPEC §7, §8) ──────────────────────────────────────
-- The tracking trigger appends what each statement did as one pending row per meter;
-- compaction folds pending rows into compacted rows laid out for reading. A row holds a
-- set of 15-minute partial states (count, usable count, exact Σ value and Σ value × time,
-- min/max/latest, distinct values with reference counts, bucket maxima) per customer,
-- slot and the event's values of the meter's filter keys, in a versioned binary form.
-- Usage reads compacted + pending rows in one snapshot: exact at commit.
CREATE TABLE meter.pending (
	tenant_id text COLLATE "C" NOT NULL,
	environment_id text COLLATE "C" NOT NULL,
	meter_id text COLLATE "C" NOT NULL,
	first_day date NOT NULL,              -- the UTC days its entries span
	last_day date NOT NULL,
	entries integer NOT NULL,             -- partial states held
	data bytea NOT NULL
);
COMMENT ON TABLE meter.pending IS
	'Partial states appended by meter.track_usage() (one row per statement and meter), not yet compacted';
CREATE INDEX pending_meter_idx ON meter.pending (tenant_id, environment_id, meter_id, first_day);
-- A statement's row is written once and read once by compaction: keep it uncompressed
-- (inline up to 8 kB).
ALTER TABLE meter.pending SET (toast_tuple_target = 8160);
ALTER TABLE meter.pending ALTER COLUMN data SET STORAGE EXTERNAL;

CREATE TABLE meter.rollups (
	tenant_id text COLLATE "C" NOT NULL,
	environment_id text COLLATE "C" NOT NULL,
	meter_id text COLLATE "C" NOT NULL,
	shard smallint NOT NULL,              -- customer shard 0..31; -1: all customers together
	day date NOT NULL,                    -- UTC day: up to 96 slots per customer
	data bytea NOT NULL,
	PRIMARY KEY (tenant_id, environment_id, meter_id, shard, day)
);
COMMENT ON TABLE meter.rollups IS
	'Compacted partial states per meter, UTC day and customer shard (a shard holds the customers '
	'whose external id, or customer id without one, hashes to it; shard -1 all customers together)';
-- Rows are read far more often than written: keep them uncompressed (inline up to 8 kB,
-- larger ones out of line) so reads never pay for decompression.
ALTER TABLE meter.rollups SET (toast_tuple_target = 8160);
ALTER TABLE meter.rollups ALTER COLUMN data SET STORAGE EXTERNAL;

ALTER TABLE meter.pending ENABLE ROW LEVEL SECURITY;
ALTER TABLE meter.rollups ENABLE ROW LEVEL SECURITY;
CREATE POLICY pending_scope ON meter.pending
	USING (tenant_id OPERATOR(pg_catalog.=) pg_catalog.current_setting('meter.tenant_id', true)
		AND environment_id OPERATOR(pg_catalog.=) COALESCE(pg_catalog.current_setting('meter.environment_id', true), ''));
CREATE POLICY rollups_scope ON meter.rollups
	USING (tenant_id OPERATOR(pg_catalog.=) pg_catalog.current_setting('meter.tenant_id', true)
		AND environment_id OPERATOR(pg_catalog.=) COALESCE(pg_catalog.current_setting('meter.environment_id', true), ''));
SELECT pg_catalog.pg_extension_config_dump('meter.pending', '');
SELECT pg_catalog.pg_extension_config_dump('meter.rollups', '');

-- ── What is stored, as rows (for meter.verify and meter.skipped) ────────────────────
CREATE FUNCTION meter.stored_slots(meter_id text, totals boolean DEFAULT false)
	RETURNS TABLE (customer_id text, external_customer_id text, slot timestamptz, dims text,
		marked boolean, events bigint, n bigint, sum numeric, sum_vt numeric, best numeric,
		best_at timestamptz, uniques jsonb, maxima jsonb)
	AS 'MODULE_PATHNAME', 'meter_stored_slots' LANGUAGE C STABLE;
COMMENT ON FUNCTION meter.stored_slots(text, boolean) IS
	'The stored partial states (compacted + pending) of a meter of the current scope, per customer '
	'(or all customers: totals), 15-minute slot and dimensions; marked: to be recomputed from the raw events';

CREATE FUNCTION meter.skips()
	RETURNS TABLE (meter_id text, customer_id text, external_customer_id text, bucket timestamptz,
		skipped bigint, reason text)
	AS 'MODULE_PATHNAME', 'meter_skips' LANGUAGE C STABLE;
COMMENT ON FUNCTION meter.skips() IS
	'Events each meter of the current scope matched but could not use, per customer and 15-minute slot';

-- SPEC §7's visible skip count. Acts in the current scope (like the policies).
CREATE VIEW meter.skipped AS
	SELECT pg_catalog.current_setting('meter.tenant_id', true) AS tenant_id,
		COALESCE(pg_catalog.current_setting('meter.environment_id', true), '') AS environment_id,
		s.meter_id, s.customer_id, s.external_customer_id, s.bucket, s.skipped, s.reason
	FROM meter.skips() s;
COMMENT ON VIEW meter.skipped IS
	'Events a meter matched but skipped (no usable value), per customer and 15-minute slot, in the current scope';

-- ── Compaction (SPEC §7) ────────────────────────────────────────────────────────────
CREATE FUNCTION meter.compact(meter_id text DEFAULT NULL) RETURNS bigint
	AS 'MODULE_PATHNAME', 'meter_compact' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION meter.compact(text) IS
	'Fold everything pending of one meter of the current scope (or all) into the compacted rows now; '
	'returns how many pending rows it folded';

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

CREATE FUNCTION meter.expected_slots(meter_id text, totals boolean DEFAULT false)
RETURNS TABLE (customer_id text, external_customer_id text, slot timestamptz, dims text,
	events bigint, n bigint, sum numeric, sum_vt numeric, best numeric, best_at timestamptz,
	uniques jsonb, maxima jsonb)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
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
	INTO events_q FROM meter.tracked_tables t WHERE to_regclass(t.relid::text) IS NOT NULL;
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
				CASE WHEN r.ts >= '2000-01-01 00:00:00+00' THEN date_bin('15 minutes', r.ts, '2000-01-01 00:00:00+00')
					ELSE to_timestamp(floor(extract(epoch FROM r.ts) / 900) * 900) END AS slot, %3$s AS dims, r.ts,
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
		mx AS (SELECT w.c, w.x, w.slot, w.dims, jsonb_agg(jsonb_build_array(w.g, w.mv) ORDER BY w.g COLLATE "C" NULLS FIRST) AS maxima
			FROM (SELECT v.c, v.x, v.slot, v.dims, v.g, max(v.v) AS mv FROM v WHERE $7 AND v.v IS NOT NULL
				GROUP BY 1, 2, 3, 4, 5) w GROUP BY 1, 2, 3, 4)
		SELECT CASE WHEN $5 THEN NULL ELSE b.c END, CASE WHEN $5 THEN NULL ELSE b.x END, b.slot, b.dims,
			b.events, b.n, b.sum, b.sum_vt, b.best, b.best_at, uq.uniques, mx.maxima
		FROM base b
		LEFT JOIN uq ON uq.c = b.c AND uq.x = b.x AND uq.slot = b.slot AND uq.dims = b.dims
		LEFT JOIN mx ON mx.c = b.c AND mx.x = b.x AND mx.slot = b.slot AND mx.dims = b.dims$q$,
		events_q, match_q, dims_q, value_q,
		CASE WHEN kind = 'COUNT_UNIQUE' THEN format('meter.oracle_identity(r.p -> %L, true)', fld) ELSE 'NULL::text' END,
		CASE WHEN bucketed AND meter.group_by_of(m.aggregation) IS NOT NULL
			THEN format('meter.oracle_identity(r.p -> %L, true)', meter.group_by_of(m.aggregation)) ELSE 'NULL::text' END)
	USING m.tenant_id, m.environment_id, m.event_name, m.aggregation, totals, kind::text, bucketed;
END
$fn$;
COMMENT ON FUNCTION meter.expected_slots(text, boolean) IS
	'Internal (verify): the partial states meter.stored_slots should show, recomputed from the raw events in SQL alone';

-- ── Sealed periods: retention without losing billed usage (README "Partitioning and retention")
-- Once a scope is sealed before a time, its usage before then is frozen in the compacted
-- rows: events written with an earlier timestamp are stored but not counted (they show in
-- meter.skipped as 'sealed period'), removing earlier events changes nothing, and verify,
-- rebuild and recomputation leave sealed time alone. So the raw events (partitions) of
-- sealed periods may be dropped.
CREATE TABLE meter.seals (
	tenant_id text COLLATE "C" NOT NULL,
	environment_id text COLLATE "C" NOT NULL,
	sealed_before timestamptz NOT NULL,
	sealed_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	sealed_by text,
	PRIMARY KEY (tenant_id, environment_id, sealed_before)
);
COMMENT ON TABLE meter.seals IS
	'Seals of each tenant and environment: usage before the newest sealed_before is frozen';

-- Events of sealed time that a meter matched: one row per statement, meter, customer and slot.
CREATE TABLE meter.sealed_skips (
	tenant_id text COLLATE "C" NOT NULL,
	environment_id text COLLATE "C" NOT NULL,
	meter_id text COLLATE "C" NOT NULL,
	customer_id text COLLATE "C" NOT NULL,
	external_customer_id text COLLATE "C" NOT NULL,
	slot timestamptz NOT NULL,
	events bigint NOT NULL
);
COMMENT ON TABLE meter.sealed_skips IS
	'Events written into sealed time that a meter matched but did not count';
CREATE INDEX sealed_skips_meter_idx ON meter.sealed_skips (tenant_id, environment_id, meter_id);

ALTER TABLE meter.seals ENABLE ROW LEVEL SECURITY;
ALTER TABLE meter.sealed_skips ENABLE ROW LEVEL SECURITY;
CREATE POLICY seals_scope ON meter.seals
	USING (tenant_id OPERATOR(pg_catalog.=) pg_catalog.current_setting('meter.tenant_id', true)
		AND environment_id OPERATOR(pg_catalog.=) COALESCE(pg_catalog.current_setting('meter.environment_id', true), ''));
CREATE POLICY sealed_skips_scope ON meter.sealed_skips
	USING (tenant_id OPERATOR(pg_catalog.=) pg_catalog.current_setting('meter.tenant_id', true)
		AND environment_id OPERATOR(pg_catalog.=) COALESCE(pg_catalog.current_setting('meter.environment_id', true), ''));
SELECT pg_catalog.pg_extension_config_dump('meter.seals', '');
SELECT pg_catalog.pg_extension_config_dump('meter.sealed_skips', '');

CREATE FUNCTION meter.seal("before" timestamptz) RETURNS timestamptz
	AS 'MODULE_PATHNAME', 'meter_seal' LANGUAGE C VOLATILE
	SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION meter.seal(timestamptz) IS
	'Freeze the current scope''s usage before a 15-minute boundary (folding everything pending first); '
	'later events before it are stored but not counted. Errors: 55000 no tenant, 22023 unaligned, '
	'infinite or earlier than the current seal';

-- The seal of the current scope (-infinity when none), for verify and users.
CREATE FUNCTION meter.sealed_before() RETURNS timestamptz
LANGUAGE sql STABLE AS $$
	SELECT COALESCE(pg_catalog.max(s.sealed_before), '-infinity')
	FROM meter.seals s
	WHERE s.tenant_id OPERATOR(pg_catalog.=) meter.current_tenant()
		AND s.environment_id OPERATOR(pg_catalog.=) meter.current_environment()
$$;
COMMENT ON FUNCTION meter.sealed_before() IS
	'The time before which the current scope''s usage is sealed (-infinity when never sealed)';

-- ── Tracking, rebuild and verify (sql/install/65_track.sql) ─────────────────────────
COMMENT ON FUNCTION meter.track_usage() IS
	'Trigger keeping usage exact: AFTER … FOR EACH ROW, statement-level with transition tables, or BEFORE TRUNCATE';
CREATE FUNCTION meter.check_event_table(tbl regclass) RETURNS void
	AS 'MODULE_PATHNAME', 'meter_check_event_table' LANGUAGE C STABLE STRICT;
COMMENT ON FUNCTION meter.check_event_table(regclass) IS
	'Error unless a table has the event columns of meter.events with their types (42703 missing, 42804 other type)';
COMMENT ON FUNCTION meter.rebuild_all() IS
	'Recompute every published meter of every tenant and environment the caller can see; returns how many';

-- TRUNCATE is counted before it runs now (0.2.0's trigger refuses AFTER TRUNCATE).
DROP TRIGGER meter_track_truncate ON meter.events;
CREATE TRIGGER meter_track_truncate BEFORE TRUNCATE ON meter.events
	FOR EACH STATEMENT EXECUTE FUNCTION meter.track_usage();
COMMENT ON FUNCTION meter.on_meter_change() IS
	'Recomputes a created, redefined or re-published meter from the raw events; forgets a deleted meter''s usage';

-- meter.rebuilt was (meter_id, rollups, unique_values): renamed in place, so that
-- meter.rebuild(text) keeps its identity (and every role's EXECUTE privilege).
ALTER TYPE meter.rebuilt RENAME ATTRIBUTE rollups TO events;
ALTER TYPE meter.rebuilt RENAME ATTRIBUTE unique_values TO rollups;
COMMENT ON TYPE meter.rebuilt IS
	'A meter meter.rebuild() recomputed: the events it counted and the compacted rows it holds';
COMMENT ON TYPE meter.difference IS
	'A stored partial state meter.verify() found different from the raw events: where (customer ids NULL: '
	'all customers together), what, stored and expected';
CREATE OR REPLACE FUNCTION meter.rebuild(meter_id text DEFAULT NULL) RETURNS SETOF meter.rebuilt
	AS 'MODULE_PATHNAME', 'meter_rebuild' LANGUAGE C VOLATILE
	SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION meter.rebuild(text) IS
	'Recompute one published meter (or all of the current scope) from the raw events of every tracked table';
CREATE OR REPLACE FUNCTION meter.verify(meter_id text DEFAULT NULL)
RETURNS SETOF meter.difference
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	t text := meter.current_tenant();
	e text := meter.current_environment();
	sealed timestamptz := meter.sealed_before();
	m record;
	lvl boolean;
BEGIN
	IF verify.meter_id IS NOT NULL THEN
		PERFORM meter.get_meter(verify.meter_id);
	END IF;
	FOR m IN SELECT x.id FROM meter.meters x WHERE x.tenant_id = t AND x.environment_id = e
		AND x.status = 'published' AND (verify.meter_id IS NULL OR x.id = verify.meter_id)
		ORDER BY x.id
	LOOP
		FOREACH lvl IN ARRAY ARRAY[false, true] LOOP
			RETURN QUERY
			WITH s AS (SELECT x.*, COALESCE(x.customer_id, '') AS c, COALESCE(x.external_customer_id, '') AS xc
					FROM meter.stored_slots(m.id, lvl) x),
				f AS (SELECT x.*, COALESCE(x.customer_id, '') AS c, COALESCE(x.external_customer_id, '') AS xc
					FROM meter.expected_slots(m.id, lvl) x),
				marked AS (SELECT DISTINCT s.customer_id, s.external_customer_id, s.slot FROM s WHERE s.marked)
			SELECT m.id, COALESCE(s.customer_id, f.customer_id), COALESCE(s.external_customer_id, f.external_customer_id),
				COALESCE(s.slot, f.slot),
				d.what || CASE WHEN COALESCE(s.dims, f.dims) <> '' THEN ' [' || COALESCE(s.dims, f.dims) || ']' ELSE '' END,
				d.stored, d.expected
			FROM s FULL JOIN f ON s.c = f.c AND s.xc = f.xc AND s.slot = f.slot AND s.dims = f.dims
			CROSS JOIN LATERAL (VALUES
				('events', s.events::text, f.events::text, s.events IS DISTINCT FROM f.events),
				('n', s.n::text, f.n::text, s.n IS DISTINCT FROM f.n),
				('sum', s.sum::text, f.sum::text, COALESCE(s.sum, 0) IS DISTINCT FROM COALESCE(f.sum, 0)),
				('sum_vt', s.sum_vt::text, f.sum_vt::text, COALESCE(s.sum_vt, 0) IS DISTINCT FROM COALESCE(f.sum_vt, 0)),
				('best', s.best::text, f.best::text, s.best IS DISTINCT FROM f.best),
				('best_at', s.best_at::text, f.best_at::text, s.best_at IS DISTINCT FROM f.best_at),
				('uniques', s.uniques::text, f.uniques::text, s.uniques IS DISTINCT FROM f.uniques),
				('maxima', s.maxima::text, f.maxima::text, s.maxima IS DISTINCT FROM f.maxima)
			) AS d(what, stored, expected, differs)
			WHERE d.differs AND COALESCE(s.slot, f.slot) >= sealed AND NOT EXISTS (SELECT 1 FROM marked k
				WHERE k.slot = COALESCE(s.slot, f.slot)
					AND (lvl OR (k.customer_id = COALESCE(s.customer_id, f.customer_id)
						AND k.external_customer_id = COALESCE(s.external_customer_id, f.external_customer_id))))
			ORDER BY 2, 3, 4, 5;
		END LOOP;
	END LOOP;
END $$;
COMMENT ON FUNCTION meter.verify(text) IS
	'Every stored partial state of the published meters of the current scope that differs from a '
	'recomputation from the raw events (in SQL alone), sealed time left alone; empty when all is well';
CREATE FUNCTION meter.attach_triggers(tbl regclass) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	EXECUTE format('CREATE TRIGGER meter_track_insert AFTER INSERT ON %s REFERENCING NEW TABLE AS meter_new FOR EACH STATEMENT EXECUTE FUNCTION meter.track_usage()', tbl);
	EXECUTE format('CREATE TRIGGER meter_track_update AFTER UPDATE ON %s REFERENCING OLD TABLE AS meter_old NEW TABLE AS meter_new FOR EACH STATEMENT EXECUTE FUNCTION meter.track_usage()', tbl);
	EXECUTE format('CREATE TRIGGER meter_track_delete AFTER DELETE ON %s REFERENCING OLD TABLE AS meter_old FOR EACH STATEMENT EXECUTE FUNCTION meter.track_usage()', tbl);
	EXECUTE format('CREATE TRIGGER meter_track_truncate BEFORE TRUNCATE ON %s FOR EACH STATEMENT EXECUTE FUNCTION meter.track_usage()', tbl);
END $$;
COMMENT ON FUNCTION meter.attach_triggers(regclass) IS
	'Internal: create the four tracking triggers on one table';
CREATE FUNCTION meter.detach_triggers(tbl regclass) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	EXECUTE format('DROP TRIGGER IF EXISTS meter_track_insert ON %s', tbl);
	EXECUTE format('DROP TRIGGER IF EXISTS meter_track_update ON %s', tbl);
	EXECUTE format('DROP TRIGGER IF EXISTS meter_track_delete ON %s', tbl);
	EXECUTE format('DROP TRIGGER IF EXISTS meter_track_truncate ON %s', tbl);
END $$;
COMMENT ON FUNCTION meter.detach_triggers(regclass) IS
	'Internal: drop the four tracking triggers from one table';
CREATE FUNCTION meter.table_tree(tbl regclass) RETURNS TABLE (relid regclass)
LANGUAGE sql STABLE STRICT AS $$
	SELECT tbl UNION SELECT t.relid FROM pg_catalog.pg_partition_tree(tbl) t
$$;
COMMENT ON FUNCTION meter.table_tree(regclass) IS
	'Internal: a table and every partition below it';
CREATE OR REPLACE FUNCTION meter.track(tbl regclass) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF (SELECT relkind FROM pg_class WHERE oid = tbl) NOT IN ('r', 'p') THEN
		RAISE EXCEPTION '% is not a table', tbl USING ERRCODE = '42809',
			HINT = 'Track the table the events are inserted into.';
	END IF;
	PERFORM meter.check_event_table(tbl);
	IF EXISTS (SELECT 1 FROM meter.tracked_tables WHERE relid = tbl) THEN
		RAISE NOTICE 'table % is already tracked', tbl;
		RETURN;
	END IF;
	IF pg_partition_root(tbl) <> tbl AND EXISTS (SELECT 1 FROM meter.tracked_tables
		WHERE relid = pg_partition_root(tbl)) THEN
		RAISE NOTICE 'table % is tracked as a partition of %', tbl, pg_partition_root(tbl);
		RETURN;
	END IF;
	PERFORM meter.attach_triggers(t.relid) FROM meter.table_tree(tbl) t;
	INSERT INTO meter.tracked_tables (relid) VALUES (tbl);
	-- The table's existing events now count: bring every meter in line.
	PERFORM meter.rebuild_all();
END $$;
COMMENT ON FUNCTION meter.track(regclass) IS
	'Check a table''s event columns, attach meter.track_usage() (to its partitions too) and count its events in every meter''s usage';
CREATE OR REPLACE FUNCTION meter.untrack(tbl regclass) RETURNS void
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
	PERFORM meter.detach_triggers(t.relid) FROM meter.table_tree(tbl) t;
	DELETE FROM meter.tracked_tables WHERE relid = tbl;
	PERFORM meter.rebuild_all();
END $$;
COMMENT ON FUNCTION meter.untrack(regclass) IS
	'Detach meter.track_usage() from a table (and its partitions) and take its events out of every meter''s usage';
CREATE FUNCTION meter.on_ddl_end() RETURNS event_trigger
	AS 'MODULE_PATHNAME', 'meter_on_ddl_end' LANGUAGE C SECURITY DEFINER;
COMMENT ON FUNCTION meter.on_ddl_end() IS
	'Event trigger: keeps tracked tables'' event columns, and their partitions'' tracking, intact';
CREATE FUNCTION meter.on_sql_drop() RETURNS event_trigger
	AS 'MODULE_PATHNAME', 'meter_on_sql_drop' LANGUAGE C
	SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION meter.on_sql_drop() IS
	'Event trigger: a dropped tracked table (or partition) leaves the registry and usage';

-- ── Usage (sql/install/71_usage.sql) ────────────────────────────────────────────────
CREATE OR REPLACE FUNCTION meter.usage(
	meter_id text,
	start_time timestamptz,
	end_time timestamptz,
	customer_id text DEFAULT NULL,
	external_customer_id text DEFAULT NULL,
	window_size meter.window_size DEFAULT NULL,
	timezone text DEFAULT 'UTC',
	billing_anchor timestamptz DEFAULT NULL)
RETURNS TABLE (window_start timestamptz, window_end timestamptz, value numeric)
	AS 'MODULE_PATHNAME', 'meter_usage' LANGUAGE C STABLE
	SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION meter.usage(text, timestamptz, timestamptz, text, text, meter.window_size,
	text, timestamptz) IS
	'Usage of a meter per window over [start_time, end_time), served from the stored partial states '
	'(raw events only for 15-minute slots a window edge cuts). Errors: 55000 no tenant, '
	'P0002 unknown or deleted meter, 22023 bad range or time zone, 54000 too many windows';
CREATE OR REPLACE FUNCTION meter.usage_from_events(
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
	AS 'MODULE_PATHNAME', 'meter_usage_from_events' LANGUAGE C STABLE
	SET search_path = pg_catalog, pg_temp;
CREATE FUNCTION meter.usage_by_customer(
	meter_id text,
	start_time timestamptz,
	end_time timestamptz,
	window_size meter.window_size DEFAULT NULL,
	timezone text DEFAULT 'UTC',
	billing_anchor timestamptz DEFAULT NULL)
RETURNS TABLE (customer_id text, external_customer_id text, window_start timestamptz,
	window_end timestamptz, value numeric)
	AS 'MODULE_PATHNAME', 'meter_usage_by_customer' LANGUAGE C STABLE
	SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION meter.usage_by_customer(text, timestamptz, timestamptz, meter.window_size,
	text, timestamptz) IS
	'The invoice run: usage per window for every customer (customer_id, external_customer_id; '
	''''' when absent) with a matched event before end_time, ordered by customer then window';
CREATE FUNCTION meter.usage_by_customer_from_events(
	meter_id text,
	start_time timestamptz,
	end_time timestamptz,
	window_size meter.window_size DEFAULT NULL,
	timezone text DEFAULT 'UTC',
	billing_anchor timestamptz DEFAULT NULL,
	source regclass DEFAULT NULL)
RETURNS TABLE (customer_id text, external_customer_id text, window_start timestamptz,
	window_end timestamptz, value numeric)
	AS 'MODULE_PATHNAME', 'meter_usage_by_customer_from_events' LANGUAGE C STABLE
	SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION meter.usage_by_customer_from_events(text, timestamptz, timestamptz,
	meter.window_size, text, timestamptz, regclass) IS
	'meter.usage_by_customer computed from the raw events (every tracked table, or source)';
CREATE FUNCTION meter.usage_by_group(
	meter_id text,
	group_by text[],
	start_time timestamptz,
	end_time timestamptz,
	customer_id text DEFAULT NULL,
	external_customer_id text DEFAULT NULL,
	window_size meter.window_size DEFAULT NULL,
	timezone text DEFAULT 'UTC',
	billing_anchor timestamptz DEFAULT NULL)
RETURNS TABLE (group_values jsonb, window_start timestamptz, window_end timestamptz, value numeric)
	AS 'MODULE_PATHNAME', 'meter_usage_by_group' LANGUAGE C STABLE
	SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION meter.usage_by_group(text, text[], timestamptz, timestamptz, text, text,
	meter.window_size, text, timestamptz) IS
	'Usage per window and per combination of the events'' values of group_by (filter keys of '
	'the meter) that occurs, e.g. {"model":"gpt-4o","region":"eu"}; 22023 for another key';
CREATE FUNCTION meter.usage_by_group_from_events(
	meter_id text,
	group_by text[],
	start_time timestamptz,
	end_time timestamptz,
	customer_id text DEFAULT NULL,
	external_customer_id text DEFAULT NULL,
	window_size meter.window_size DEFAULT NULL,
	timezone text DEFAULT 'UTC',
	billing_anchor timestamptz DEFAULT NULL,
	source regclass DEFAULT NULL)
RETURNS TABLE (group_values jsonb, window_start timestamptz, window_end timestamptz, value numeric)
	AS 'MODULE_PATHNAME', 'meter_usage_by_group_from_events' LANGUAGE C STABLE
	SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION meter.usage_by_group_from_events(text, text[], timestamptz, timestamptz,
	text, text, meter.window_size, text, timestamptz, regclass) IS
	'meter.usage_by_group computed from the raw events (every tracked table, or source)';
CREATE FUNCTION meter.usage_by_filter_groups(
	meter_id text,
	groups jsonb,
	start_time timestamptz,
	end_time timestamptz,
	customer_id text DEFAULT NULL,
	external_customer_id text DEFAULT NULL,
	window_size meter.window_size DEFAULT NULL,
	timezone text DEFAULT 'UTC',
	billing_anchor timestamptz DEFAULT NULL)
RETURNS TABLE (group_id text, window_start timestamptz, window_end timestamptz, value numeric)
	AS 'MODULE_PATHNAME', 'meter_usage_by_filter_groups' LANGUAGE C STABLE
	SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION meter.usage_by_filter_groups(text, jsonb, timestamptz, timestamptz, text,
	text, meter.window_size, text, timestamptz) IS
	'FlexPrice''s price filter groups: [{"id":…,"filters":{"model":["gpt-4o"]}}, …]; each event '
	'counts in the first group whose filters it matches; every group appears';
CREATE FUNCTION meter.usage_by_filter_groups_from_events(
	meter_id text,
	groups jsonb,
	start_time timestamptz,
	end_time timestamptz,
	customer_id text DEFAULT NULL,
	external_customer_id text DEFAULT NULL,
	window_size meter.window_size DEFAULT NULL,
	timezone text DEFAULT 'UTC',
	billing_anchor timestamptz DEFAULT NULL,
	source regclass DEFAULT NULL)
RETURNS TABLE (group_id text, window_start timestamptz, window_end timestamptz, value numeric)
	AS 'MODULE_PATHNAME', 'meter_usage_by_filter_groups_from_events' LANGUAGE C STABLE
	SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION meter.usage_by_filter_groups_from_events(text, jsonb, timestamptz,
	timestamptz, text, text, meter.window_size, text, timestamptz, regclass) IS
	'meter.usage_by_filter_groups computed from the raw events (every tracked table, or source)';

-- ── Privileges (sql/install/90_privileges.sql) ──────────────────────────────────────
REVOKE EXECUTE ON FUNCTION meter.compact(text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION meter.seal(timestamptz) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION meter.attach_triggers(regclass) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION meter.detach_triggers(regclass) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION meter.on_ddl_end() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION meter.on_sql_drop() FROM PUBLIC;
-- CREATE OR REPLACE made meter.rebuild SECURITY INVOKER again.
ALTER FUNCTION meter.rebuild(text) SECURITY DEFINER;
ALTER FUNCTION meter.compact(text) SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
CREATE OR REPLACE FUNCTION meter.grant_reader(role regrole) RETURNS void
LANGUAGE plpgsql VOLATILE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	EXECUTE pg_catalog.format('GRANT USAGE ON SCHEMA meter TO %s', role);
	EXECUTE pg_catalog.format('GRANT SELECT ON meter.meters, meter.events, meter.rollups, '
		'meter.pending, meter.seals, meter.sealed_skips, meter.skipped, meter.tracked_tables TO %s', role);
END
$$;
CREATE OR REPLACE FUNCTION meter.grant_admin(role regrole) RETURNS void
LANGUAGE plpgsql VOLATILE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM meter.grant_reader(role);
	-- No DELETE: meters are disabled (archived) or marked deleted, their history kept.
	EXECUTE pg_catalog.format('GRANT INSERT, UPDATE ON meter.meters TO %s', role);
	EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION meter.rebuild(text) TO %s', role);
	EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION meter.compact(text) TO %s', role);
	EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION meter.seal(timestamptz) TO %s', role);
END
$$;
CREATE OR REPLACE FUNCTION meter.revoke_access(role regrole) RETURNS void
LANGUAGE plpgsql VOLATILE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	EXECUTE pg_catalog.format('REVOKE ALL ON meter.meters, meter.events, meter.rollups, '
		'meter.pending, meter.seals, meter.sealed_skips, meter.skipped, meter.tracked_tables FROM %s', role);
	EXECUTE pg_catalog.format('REVOKE EXECUTE ON FUNCTION meter.rebuild(text) FROM %s', role);
	EXECUTE pg_catalog.format('REVOKE EXECUTE ON FUNCTION meter.compact(text) FROM %s', role);
	EXECUTE pg_catalog.format('REVOKE EXECUTE ON FUNCTION meter.seal(timestamptz) FROM %s', role);
	IF pg_catalog.to_regprocedure('meter.ingest(jsonb)') IS NOT NULL THEN
		EXECUTE pg_catalog.format('REVOKE EXECUTE ON FUNCTION meter.ingest(jsonb) FROM %s', role);
	END IF;
	EXECUTE pg_catalog.format('REVOKE USAGE ON SCHEMA meter FROM %s', role);
END
$$;

-- ── 3. Data ─────────────────────────────────────────────────────────────────────────
-- Meter names: 0.2.0 stores event_name and name trimmed (SPEC §4). Every meter is saved
-- again through its validation trigger, which trims; the stamps it sets are put back
-- (nobody changed the meters), and no meter is recomputed here (all are, below).
DO $$
DECLARE
	ids text[];
	stamped_at timestamptz[];
	stamped_by text[];
BEGIN
	SELECT pg_catalog.array_agg(m.id), pg_catalog.array_agg(m.updated_at), pg_catalog.array_agg(m.updated_by)
	INTO ids, stamped_at, stamped_by
	FROM meter.meters m;
	ALTER TABLE meter.meters DISABLE TRIGGER meters_rollups;
	UPDATE meter.meters m SET event_name = m.event_name, name = m.name;
	ALTER TABLE meter.meters DISABLE TRIGGER meters_validate;
	UPDATE meter.meters m SET updated_at = s.updated_at, updated_by = s.updated_by
	FROM ROWS FROM (pg_catalog.unnest(ids), pg_catalog.unnest(stamped_at), pg_catalog.unnest(stamped_by))
		AS s(id, updated_at, updated_by)
	WHERE m.id OPERATOR(pg_catalog.=) s.id;
	ALTER TABLE meter.meters ENABLE TRIGGER meters_validate;
	ALTER TABLE meter.meters ENABLE TRIGGER meters_rollups;
END
$$;

-- Tracked tables: 0.2.0's four triggers (BEFORE TRUNCATE), on their partitions too. A
-- table dropped under 0.1.0 leaves the registry, as 0.2.0's meter_sql_drop does.
DELETE FROM meter.tracked_tables t WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_class c
	WHERE c.oid OPERATOR(pg_catalog.=) t.relid::pg_catalog.oid);
DO $$
DECLARE
	tbl regclass;
BEGIN
	FOR tbl IN SELECT x.relid FROM meter.tracked_tables t CROSS JOIN LATERAL meter.table_tree(t.relid) x
		WHERE t.relid OPERATOR(pg_catalog.<>) 'meter.events'::pg_catalog.regclass
		ORDER BY t.relid::pg_catalog.oid, x.relid::pg_catalog.oid
	LOOP
		PERFORM meter.detach_triggers(tbl);
		PERFORM meter.attach_triggers(tbl);
	END LOOP;
END
$$;

-- Archived and deleted meters: their usage is frozen history (events that arrived after
-- archiving never counted), so it is converted from 0.1.0's rollups, not recomputed:
-- every rollup becomes the 15-minute partial state of its customer and slot (count,
-- usable count, Σv, Σ v·t, min/max/latest, distinct values with their reference counts,
-- the slot's maximum for a bucketed MAX), then compacted. 0.1.0 kept no dimensions (the
-- events' values of the filter keys), so usage_by_group and usage_by_filter_groups see
-- these states' filter-key values as missing.
CREATE FUNCTION meter.legacy_import(meter_id text, tenant text, environment text,
		rollups regclass, rollup_values regclass) RETURNS bigint
	AS 'MODULE_PATHNAME', 'meter_legacy_import' LANGUAGE C VOLATILE STRICT;
SELECT meter.legacy_import(m.id, m.tenant_id, m.environment_id, 'meter.legacy_rollups',
		'meter.legacy_rollup_values')
FROM meter.meters m
WHERE m.status OPERATOR(pg_catalog.<>) 'published'::meter.status
ORDER BY m.id;
DROP FUNCTION meter.legacy_import(text, text, text, regclass, regclass);

-- Published meters: recomputed from the raw events of every tracked table by the 0.2.0
-- engine (this is what takes time: one pass over each meter's events).
SELECT meter.rebuild_all();

-- ── 4. Privileges, the legacy tables, event triggers ────────────────────────────────
-- Roles granted access under 0.1.0 (meter.grant_reader/grant_admin, or by hand) keep it:
-- what they held on 0.1.0's rollup tables they get on every table of 0.2.0's stored
-- usage, what they held on meter.skipped on the new view, and EXECUTE on meter.rebuild
-- brings EXECUTE on meter.compact and meter.seal (as meter.grant_admin gives them).
-- GRANTs run inside ALTER EXTENSION are recorded as the extension's initial privileges,
-- which pg_dump leaves out of a dump: the objects' initial privileges are put back to
-- what a fresh 0.2.0 has, so that a dump keeps these grants.
DO $$
DECLARE
	g record;
	targets text[];				-- the objects granted on, as 'classoid:objoid'
	initial jsonb;				-- their initial privileges before
BEGIN
	SELECT pg_catalog.array_agg(k.key) INTO targets
	FROM (SELECT 'pg_catalog.pg_class'::pg_catalog.regclass::pg_catalog.oid::pg_catalog.text || ':'
			|| x::pg_catalog.regclass::pg_catalog.oid::pg_catalog.text AS key
		FROM pg_catalog.unnest(ARRAY['meter.rollups', 'meter.pending', 'meter.seals', 'meter.sealed_skips',
			'meter.skipped']) x
		UNION ALL
		SELECT 'pg_catalog.pg_proc'::pg_catalog.regclass::pg_catalog.oid::pg_catalog.text || ':'
			|| x::pg_catalog.regprocedure::pg_catalog.oid::pg_catalog.text
		FROM pg_catalog.unnest(ARRAY['meter.compact(text)', 'meter.seal(timestamptz)']) x) k;
	SELECT COALESCE(pg_catalog.jsonb_object_agg(ip.classoid::pg_catalog.text || ':' || ip.objoid::pg_catalog.text,
		ip.initprivs::pg_catalog.text), '{}') INTO initial
	FROM pg_catalog.pg_init_privs ip
	WHERE ip.privtype OPERATOR(pg_catalog.=) 'e' AND ip.objsubid OPERATOR(pg_catalog.=) 0
		AND ip.classoid::pg_catalog.text || ':' || ip.objoid::pg_catalog.text OPERATOR(pg_catalog.=) ANY (targets);
	FOR g IN
		SELECT DISTINCT t.target, a.privilege_type, a.is_grantable,
			CASE WHEN a.grantee OPERATOR(pg_catalog.=) 0 THEN 'PUBLIC'
				ELSE a.grantee::pg_catalog.regrole::pg_catalog.text END AS grantee
		FROM (VALUES ('meter.legacy_rollups', 'TABLE meter.rollups'),
				('meter.legacy_rollups', 'TABLE meter.pending'),
				('meter.legacy_rollups', 'TABLE meter.seals'),
				('meter.legacy_rollups', 'TABLE meter.sealed_skips'),
				('meter.legacy_rollup_values', 'TABLE meter.rollups'),
				('meter.legacy_rollup_values', 'TABLE meter.pending'),
				('meter.legacy_rollup_values', 'TABLE meter.seals'),
				('meter.legacy_rollup_values', 'TABLE meter.sealed_skips'),
				('meter.legacy_skipped', 'TABLE meter.skipped')) AS t(source, target)
		JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) t.source::pg_catalog.regclass
		CROSS JOIN LATERAL pg_catalog.aclexplode(c.relacl) a
		WHERE a.grantee OPERATOR(pg_catalog.<>) c.relowner
		UNION
		SELECT DISTINCT t.target, a.privilege_type, a.is_grantable,
			CASE WHEN a.grantee OPERATOR(pg_catalog.=) 0 THEN 'PUBLIC'
				ELSE a.grantee::pg_catalog.regrole::pg_catalog.text END
		FROM (VALUES ('FUNCTION meter.compact(text)'), ('FUNCTION meter.seal(timestamptz)')) AS t(target)
		JOIN pg_catalog.pg_proc p ON p.oid OPERATOR(pg_catalog.=) 'meter.rebuild(text)'::pg_catalog.regprocedure
		CROSS JOIN LATERAL pg_catalog.aclexplode(p.proacl) a
		WHERE a.grantee OPERATOR(pg_catalog.<>) p.proowner
		ORDER BY 1, 4, 2
	LOOP
		EXECUTE pg_catalog.format('GRANT %s ON %s TO %s%s', g.privilege_type, g.target, g.grantee,
			CASE WHEN g.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
	END LOOP;
	-- Their initial privileges: as they were before the GRANTs.
	DELETE FROM pg_catalog.pg_init_privs ip
	WHERE ip.privtype OPERATOR(pg_catalog.=) 'e' AND ip.objsubid OPERATOR(pg_catalog.=) 0
		AND ip.classoid::pg_catalog.text || ':' || ip.objoid::pg_catalog.text OPERATOR(pg_catalog.=) ANY (targets)
		AND NOT initial OPERATOR(pg_catalog.?) (ip.classoid::pg_catalog.text || ':' || ip.objoid::pg_catalog.text);
	UPDATE pg_catalog.pg_init_privs ip
	SET initprivs = (initial OPERATOR(pg_catalog.->>) (ip.classoid::pg_catalog.text || ':'
		|| ip.objoid::pg_catalog.text))::pg_catalog.aclitem[]
	WHERE ip.privtype OPERATOR(pg_catalog.=) 'e' AND ip.objsubid OPERATOR(pg_catalog.=) 0
		AND initial OPERATOR(pg_catalog.?) (ip.classoid::pg_catalog.text || ':' || ip.objoid::pg_catalog.text);
END
$$;

-- ALTER EXTENSION … DROP first: it also takes the tables out of the pg_dump registrations
-- (pg_extension_config_dump), which DROP TABLE alone would leave behind.
ALTER EXTENSION meter DROP TABLE meter.legacy_rollups;
ALTER EXTENSION meter DROP TABLE meter.legacy_rollup_values;
DROP VIEW meter.legacy_skipped;
DROP TABLE meter.legacy_rollups;
DROP TABLE meter.legacy_rollup_values;

-- DDL on tracked tables (sql/install/65_track.sql), last: nothing above fires them.
CREATE EVENT TRIGGER meter_ddl_end ON ddl_command_end WHEN TAG IN ('ALTER TABLE', 'CREATE TABLE')
	EXECUTE FUNCTION meter.on_ddl_end();
CREATE EVENT TRIGGER meter_sql_drop ON sql_drop EXECUTE FUNCTION meter.on_sql_drop();
