-- The PL/pgSQL alternative to meter.track_usage() (SPEC §9, issue 5): what a competent user
-- would write without the extension's C trigger. A row-level AFTER INSERT trigger looks up
-- the published meters of the event's name whose filters match (through the catalog's
-- partial index on (tenant_id, environment_id, event_name) and meter.matches), and upserts
-- one row per meter, customer and 15-minute bucket into its own rollup tables (the layout
-- of meter 0.1.0: counters, sums, min/max/latest, and the distinct values with their event
-- counts). bench.pl_usage() reads a meter's usage from them; bench.py checks that it equals
-- meter.usage for every meter.
-- It reuses the extension's value helpers (meter.numeric_value / meter.unique_value), so
-- the comparison is about the trigger, not about JSON number parsing.

CREATE TABLE bench.pl_events (LIKE meter.events INCLUDING ALL);
CREATE TABLE bench.pl_rollups (
	tenant_id text COLLATE "C" NOT NULL,
	environment_id text COLLATE "C" NOT NULL,
	meter_id text COLLATE "C" NOT NULL,
	customer_id text COLLATE "C" NOT NULL,
	external_customer_id text COLLATE "C" NOT NULL,
	bucket timestamptz NOT NULL,
	events bigint NOT NULL,
	n bigint NOT NULL,
	sum numeric,
	sum_vt numeric,
	min numeric,
	max numeric,
	latest_at timestamptz,
	latest_value numeric,
	PRIMARY KEY (tenant_id, environment_id, meter_id, customer_id, external_customer_id, bucket)
);
CREATE TABLE bench.pl_rollup_values (
	tenant_id text COLLATE "C" NOT NULL,
	environment_id text COLLATE "C" NOT NULL,
	meter_id text COLLATE "C" NOT NULL,
	customer_id text COLLATE "C" NOT NULL,
	external_customer_id text COLLATE "C" NOT NULL,
	bucket timestamptz NOT NULL,
	value text COLLATE "C" NOT NULL,
	refs bigint NOT NULL,
	PRIMARY KEY (tenant_id, environment_id, meter_id, customer_id, external_customer_id, bucket, value)
);

CREATE FUNCTION bench.pl_track() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
	m record;
	kind meter.aggregation_type;
	v numeric;
	u text;
	b timestamptz := date_bin('15 minutes', NEW."timestamp", timestamptz '2000-01-01 00:00:00+00');
	cust text := coalesce(NEW.customer_id, '');
	ext text := coalesce(NEW.external_customer_id, '');
BEGIN
	FOR m IN SELECT x.id, x.aggregation FROM meter.meters x
		WHERE x.tenant_id = NEW.tenant_id AND x.environment_id = NEW.environment_id
			AND x.event_name = NEW.event_name AND x.status = 'published'
			AND meter.matches(x.filters, NEW.properties)
	LOOP
		kind := meter.type_of(m.aggregation);
		v := NULL;
		u := NULL;
		IF kind = 'COUNT_UNIQUE' THEN
			u := meter.unique_value(NEW.properties, meter.field_of(m.aggregation));
		ELSIF kind <> 'COUNT' THEN
			v := meter.numeric_value(NEW.properties, meter.field_of(m.aggregation));
		END IF;

		INSERT INTO bench.pl_rollups AS r VALUES (NEW.tenant_id, NEW.environment_id, m.id, cust, ext, b,
			1, CASE WHEN kind = 'COUNT' OR v IS NOT NULL OR u IS NOT NULL THEN 1 ELSE 0 END,
			v, v * extract(epoch FROM NEW."timestamp"), v, v,
			CASE WHEN v IS NOT NULL THEN NEW."timestamp" END, v)
		ON CONFLICT (tenant_id, environment_id, meter_id, customer_id, external_customer_id, bucket)
		DO UPDATE SET
			events = r.events + 1,
			n = r.n + excluded.n,
			sum = CASE WHEN excluded.sum IS NULL THEN r.sum ELSE coalesce(r.sum, 0) + excluded.sum END,
			sum_vt = CASE WHEN excluded.sum_vt IS NULL THEN r.sum_vt ELSE coalesce(r.sum_vt, 0) + excluded.sum_vt END,
			min = least(r.min, excluded.min),
			max = greatest(r.max, excluded.max),
			latest_at = CASE WHEN excluded.latest_at IS NOT NULL AND (r.latest_at IS NULL
					OR excluded.latest_at > r.latest_at
					OR (excluded.latest_at = r.latest_at AND excluded.latest_value > r.latest_value))
				THEN excluded.latest_at ELSE r.latest_at END,
			latest_value = CASE WHEN excluded.latest_at IS NOT NULL AND (r.latest_at IS NULL
					OR excluded.latest_at > r.latest_at
					OR (excluded.latest_at = r.latest_at AND excluded.latest_value > r.latest_value))
				THEN excluded.latest_value ELSE r.latest_value END;

		IF u IS NOT NULL THEN
			INSERT INTO bench.pl_rollup_values AS x VALUES (NEW.tenant_id, NEW.environment_id, m.id,
				cust, ext, b, u, 1)
			ON CONFLICT (tenant_id, environment_id, meter_id, customer_id, external_customer_id, bucket, value)
			DO UPDATE SET refs = x.refs + 1;
		END IF;
	END LOOP;
	RETURN NULL;
END $$;

CREATE TRIGGER pl_track AFTER INSERT ON bench.pl_events
	FOR EACH ROW EXECUTE FUNCTION bench.pl_track();

-- A meter's usage over [start_time, end_time) (one window, all customers) from the
-- contender's rollups: the figure bench.py compares with meter.usage. Whole buckets only
-- (the benchmark's period is aligned); the types the benchmark's meters use.
CREATE FUNCTION bench.pl_usage(mid text, start_time timestamptz, end_time timestamptz) RETURNS numeric
LANGUAGE sql STABLE AS $$
	WITH m AS (SELECT * FROM meter.meters WHERE id = mid),
	r AS (SELECT r.* FROM bench.pl_rollups r, m WHERE r.tenant_id = m.tenant_id
		AND r.environment_id = m.environment_id AND r.meter_id = m.id
		AND r.bucket >= start_time AND r.bucket < end_time)
	SELECT CASE meter.type_of(m.aggregation)
		WHEN 'COUNT' THEN (SELECT coalesce(sum(events), 0) FROM r)
		WHEN 'SUM' THEN (SELECT coalesce(sum(sum), 0) FROM r)
		WHEN 'SUM_WITH_MULTIPLIER' THEN (SELECT coalesce(sum(sum), 0) * meter.multiplier_of(m.aggregation) FROM r)
		WHEN 'AVG' THEN (SELECT sum(sum) / nullif(sum(n), 0) FROM r)
		WHEN 'MAX' THEN (SELECT max(max) FROM r)
		WHEN 'MIN' THEN (SELECT min(min) FROM r)
		WHEN 'LATEST' THEN (SELECT latest_value FROM r WHERE latest_at IS NOT NULL
			ORDER BY latest_at DESC, latest_value DESC LIMIT 1)
		WHEN 'COUNT_UNIQUE' THEN (SELECT count(DISTINCT v.value) FROM bench.pl_rollup_values v
			WHERE v.tenant_id = m.tenant_id AND v.environment_id = m.environment_id AND v.meter_id = m.id
				AND v.bucket >= start_time AND v.bucket < end_time AND v.refs > 0)
	END
	FROM m
$$;
