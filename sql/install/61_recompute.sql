
-- ── Rollups recomputed from the raw events (SPEC §7, §8) ────────────────────────────
-- The ground truth the tracking trigger must equal: meter.rebuild, meter.verify and the
-- trigger's recomputation of buckets whose events were updated or deleted call these.
-- (After 60_rollups.sql: they return its row types.)

-- The event tables a meter's usage covers: every tracked table, or the one given.
CREATE FUNCTION meter.event_tables(source regclass DEFAULT NULL)
RETURNS regclass[]
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	missing text[];
BEGIN
	IF source IS NULL THEN
		RETURN ARRAY(SELECT t.relid FROM meter.tracked_tables t ORDER BY t.relid::oid);
	END IF;
	SELECT array_agg(format('%I %s', c.name, c.type) ORDER BY c.ord) INTO missing
	FROM (VALUES (1, 'tenant_id', NULL), (2, 'environment_id', NULL), (3, 'event_name', NULL),
			(4, 'customer_id', NULL), (5, 'external_customer_id', NULL),
			(6, 'timestamp', 'timestamptz'::regtype), (7, 'properties', 'jsonb'::regtype))
		AS c(ord, name, type)
	WHERE NOT EXISTS (SELECT 1 FROM pg_attribute a
		WHERE a.attrelid = source AND a.attname = c.name AND a.attnum > 0
			AND NOT a.attisdropped AND (c.type IS NULL OR a.atttypid = c.type));
	IF missing IS NOT NULL THEN
		RAISE EXCEPTION 'source table % lacks event columns', source
			USING ERRCODE = 'invalid_parameter_value',
				DETAIL = format('Missing or of another type: %s.', array_to_string(missing, ', ')),
				HINT = 'An event table has the columns of meter.events: tenant_id, environment_id, event_name, customer_id, external_customer_id, "timestamp" timestamptz, properties jsonb.';
	END IF;
	RETURN ARRAY[source];
END
$$;
COMMENT ON FUNCTION meter.event_tables(regclass) IS
	'The event tables usage reads: every tracked table (source NULL), or source after checking its columns';

-- The SQL expression of the 15-minute UTC bucket of a timestamptz expression: the bucket
-- of the rollup contract, to_timestamp(floor(extract(epoch FROM ts) / 900) * 900), computed
-- with integer arithmetic (date_bin) where that is known to agree (from 2000 on).
CREATE FUNCTION meter.bucket_sql(ts text)
RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$
	SELECT pg_catalog.format('CASE WHEN %1$s >= ''2000-01-01 00:00:00+00''::timestamptz '
		'THEN date_bin(''15 minutes'', %1$s, ''2000-01-01 00:00:00+00''::timestamptz) '
		'ELSE to_timestamp(floor(extract(epoch FROM %1$s) / 900) * 900) END', ts)
$$;
COMMENT ON FUNCTION meter.bucket_sql(text) IS
	'Internal: SQL text of the 15-minute UTC bucket of a timestamptz expression (for EXECUTE)';

-- One SELECT per event table of the events of a meter in [lo, hi), as text for EXECUTE:
-- the columns customer_id and external_customer_id ('' for NULL), t and properties.
-- Parameters: $1 tenant, $2 environment, $3 event name, $4 filters, $5 lo, $6 hi.
-- Each part is one range scan of (tenant_id, environment_id, event_name, "timestamp").
-- Table names come from regclass output (quoted, schema-qualified unless visible), so
-- callers run the text under their own fixed search_path; STABLE for that reason.
CREATE FUNCTION meter.events_query(tables regclass[])
RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
	SELECT COALESCE(pg_catalog.string_agg(pg_catalog.format(
		'SELECT COALESCE(e.customer_id::text, '''') AS customer_id, '
		'COALESCE(e.external_customer_id::text, '''') AS external_customer_id, '
		'e."timestamp" AS t, e.properties '
		'FROM %s AS e WHERE e.tenant_id = $1 AND e.environment_id = $2 AND e.event_name = $3 '
		'AND e."timestamp" >= $5 AND e."timestamp" < $6 AND meter.matches($4, e.properties)',
		tbl), ' UNION ALL ' ORDER BY ord),
		'SELECT NULL::text AS customer_id, NULL::text AS external_customer_id, '
		'NULL::timestamptz AS t, NULL::jsonb AS properties WHERE false')
	FROM pg_catalog.unnest(tables) WITH ORDINALITY AS x(tbl, ord)
$$;
COMMENT ON FUNCTION meter.events_query(regclass[]) IS
	'Internal: the SQL text reading a meter''s events in a time range from the given tables';

CREATE FUNCTION meter.rollups_from_events(
	meter_id text,
	start_time timestamptz,
	end_time timestamptz,
	source regclass DEFAULT NULL)
RETURNS SETOF meter.rollups
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	m meter.meters := meter.get_meter(rollups_from_events.meter_id);
	kind meter.aggregation_type := meter.type_of(m.aggregation);
	-- the value of each event (v), and whether it counts in n (c; NULL = no)
	v text := CASE WHEN kind IN ('COUNT', 'COUNT_UNIQUE') THEN 'NULL::numeric'
		ELSE 'meter.numeric_value(e.properties, $7)' END;
	c text := CASE kind WHEN 'COUNT' THEN 'true'
		WHEN 'COUNT_UNIQUE' THEN 'CASE WHEN meter.unique_value(e.properties, $7) IS NOT NULL THEN true END'
		ELSE 'NULL::boolean' END;
	n text := CASE WHEN kind IN ('COUNT', 'COUNT_UNIQUE') THEN 'count(x.c)' ELSE 'count(x.v)' END;
BEGIN
	RETURN QUERY EXECUTE format($q$
		SELECT $1, $2, $8, x.customer_id, x.external_customer_id, x.bucket,
			count(*), %s, sum(x.v), sum(x.v * extract(epoch FROM x.t)), min(x.v), max(x.v),
			max(x.t) FILTER (WHERE x.v IS NOT NULL),
			(max(ARRAY[extract(epoch FROM x.t), x.v]) FILTER (WHERE x.v IS NOT NULL))[2]
		FROM (SELECT e.customer_id, e.external_customer_id, e.t, %s AS v, %s AS c, %s AS bucket
			FROM (%s) e) x
		GROUP BY x.customer_id, x.external_customer_id, x.bucket
		ORDER BY x.customer_id, x.external_customer_id, x.bucket$q$,
		n, v, c, meter.bucket_sql('e.t'), meter.events_query(meter.event_tables(source)))
	USING m.tenant_id, m.environment_id, m.event_name, m.filters,
		COALESCE(start_time, '-infinity'), COALESCE(end_time, 'infinity'),
		meter.field_of(m.aggregation), m.id;
END
$$;
COMMENT ON FUNCTION meter.rollups_from_events(text, timestamptz, timestamptz, regclass) IS
	'The meter.rollups rows of a meter of the current scope recomputed from the raw events in '
	'[start_time, end_time) of every tracked table (or of source); NULL bounds are unbounded. '
	'Pass 15-minute-aligned bounds to get whole buckets. Errors: 55000 no tenant, P0002 unknown meter';

CREATE FUNCTION meter.rollup_values_from_events(
	meter_id text,
	start_time timestamptz,
	end_time timestamptz,
	source regclass DEFAULT NULL)
RETURNS SETOF meter.rollup_values
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	m meter.meters := meter.get_meter(rollup_values_from_events.meter_id);
BEGIN
	IF meter.type_of(m.aggregation) <> 'COUNT_UNIQUE' THEN
		RETURN;
	END IF;
	RETURN QUERY EXECUTE format($q$
		SELECT $1, $2, $8, x.customer_id, x.external_customer_id, x.bucket, x.u, count(*)
		FROM (SELECT e.customer_id, e.external_customer_id,
				%s AS bucket, meter.unique_value(e.properties, $7) AS u
			FROM (%s) e) x
		WHERE x.u IS NOT NULL
		GROUP BY x.customer_id, x.external_customer_id, x.bucket, x.u
		ORDER BY x.customer_id, x.external_customer_id, x.bucket, x.u$q$,
		meter.bucket_sql('e.t'), meter.events_query(meter.event_tables(source)))
	USING m.tenant_id, m.environment_id, m.event_name, m.filters,
		COALESCE(start_time, '-infinity'), COALESCE(end_time, 'infinity'),
		meter.field_of(m.aggregation), m.id;
END
$$;
COMMENT ON FUNCTION meter.rollup_values_from_events(text, timestamptz, timestamptz, regclass) IS
	'The meter.rollup_values rows (COUNT_UNIQUE meters; none for other types) of a meter of the '
	'current scope recomputed from the raw events in [start_time, end_time) of every tracked table '
	'(or of source). Errors: 55000 no tenant, P0002 unknown meter';
