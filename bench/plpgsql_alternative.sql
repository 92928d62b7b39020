-- The PL/pgSQL alternative to meter.track_usage() (SPEC §9, issue 5): what a competent user
-- would write without the extension's C trigger. A row-level AFTER INSERT trigger looks up
-- the published meters of the event's name whose filters match (through the catalog's
-- partial index on (tenant_id, environment_id, event_name) and meter.matches), and upserts
-- one row per meter into its own rollup tables, with the same columns and the same
-- contents as meter.rollups / meter.rollup_values (bench.py checks that they agree).
-- It reuses the extension's value helpers (meter.numeric_value / meter.unique_value), so
-- the comparison is about the trigger, not about JSON number parsing.

CREATE TABLE bench.pl_events (LIKE meter.events INCLUDING ALL);
CREATE TABLE bench.pl_rollups (LIKE meter.rollups INCLUDING ALL);
CREATE TABLE bench.pl_rollup_values (LIKE meter.rollup_values INCLUDING ALL);

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
