
-- ── Rollups (SPEC §7, §8) ───────────────────────────────────────────────────────────
-- One row per (meter, customer, 15-minute bucket): everything every aggregation type needs,
-- so that usage over any window in any time zone (offsets are multiples of 15 minutes) is
-- a sum over whole buckets. Kept exact by meter.track_usage() in the event's transaction.
CREATE TABLE meter.rollups (
	tenant_id text COLLATE "C" NOT NULL,
	environment_id text COLLATE "C" NOT NULL,
	meter_id text COLLATE "C" NOT NULL,
	customer_id text COLLATE "C" NOT NULL,            -- '' when the event had none
	external_customer_id text COLLATE "C" NOT NULL,   -- '' when the event had none
	bucket timestamptz NOT NULL,          -- start of the UTC-aligned 15-minute bucket
	events bigint NOT NULL,               -- events the meter counted (matched)
	n bigint NOT NULL,                    -- of those, events with a usable value
	sum numeric,                          -- Σ value
	sum_vt numeric,                       -- Σ value × epoch seconds of the event (WEIGHTED_SUM)
	min numeric,
	max numeric,
	latest_at timestamptz,                -- greatest timestamp with a usable value
	latest_value numeric,                 -- its value (ties: the greatest)
	PRIMARY KEY (tenant_id, environment_id, meter_id, external_customer_id, customer_id, bucket)
);
COMMENT ON TABLE meter.rollups IS
	'Per-meter usage per customer and 15-minute bucket, maintained by meter.track_usage()';
-- The primary key serves queries by external customer id (FlexPrice's events carry it);
-- queries by customer_id use this index, which holds only rows that have one, so
-- events sent with an external id alone cost one index write per rollup, not two.
CREATE INDEX rollups_customer_idx
	ON meter.rollups (tenant_id, environment_id, meter_id, customer_id, bucket)
	WHERE customer_id OPERATOR(pg_catalog.<>) '';

-- COUNT_UNIQUE: the distinct values seen per (meter, customer, bucket), with how many
-- events carried each, so deletes stay exact.
CREATE TABLE meter.rollup_values (
	tenant_id text COLLATE "C" NOT NULL,
	environment_id text COLLATE "C" NOT NULL,
	meter_id text COLLATE "C" NOT NULL,
	customer_id text COLLATE "C" NOT NULL,
	external_customer_id text COLLATE "C" NOT NULL,
	bucket timestamptz NOT NULL,
	value text COLLATE "C" NOT NULL,                  -- number_canonical() for numbers, else the text
	refs bigint NOT NULL,
	PRIMARY KEY (tenant_id, environment_id, meter_id, external_customer_id, customer_id, bucket, value)
);
CREATE INDEX rollup_values_customer_idx
	ON meter.rollup_values (tenant_id, environment_id, meter_id, customer_id, bucket)
	WHERE customer_id OPERATOR(pg_catalog.<>) '';
COMMENT ON TABLE meter.rollup_values IS
	'Distinct values per meter, customer and bucket for COUNT_UNIQUE meters';

ALTER TABLE meter.rollups ENABLE ROW LEVEL SECURITY;
ALTER TABLE meter.rollup_values ENABLE ROW LEVEL SECURITY;
CREATE POLICY rollups_scope ON meter.rollups
	USING (tenant_id OPERATOR(pg_catalog.=) pg_catalog.current_setting('meter.tenant_id', true)
		AND environment_id OPERATOR(pg_catalog.=) COALESCE(pg_catalog.current_setting('meter.environment_id', true), ''));
CREATE POLICY rollup_values_scope ON meter.rollup_values
	USING (tenant_id OPERATOR(pg_catalog.=) pg_catalog.current_setting('meter.tenant_id', true)
		AND environment_id OPERATOR(pg_catalog.=) COALESCE(pg_catalog.current_setting('meter.environment_id', true), ''));
SELECT pg_catalog.pg_extension_config_dump('meter.rollups', '');
SELECT pg_catalog.pg_extension_config_dump('meter.rollup_values', '');

-- Events a meter matched but could not use (no usable value for its field): SPEC §7's
-- visible skip count, derived from the rollups (for COUNT meters n = events).
-- A view reads its tables with its owner's rights, and the owner bypasses row-level
-- security: the view applies the scope itself (like the policy), so that no role sees
-- another tenant's skips through it.
CREATE VIEW meter.skipped WITH (security_barrier) AS
	SELECT tenant_id, environment_id, meter_id, customer_id, external_customer_id, bucket,
		events OPERATOR(pg_catalog.-) n AS skipped
	FROM meter.rollups
	WHERE events OPERATOR(pg_catalog.<>) n
		AND tenant_id OPERATOR(pg_catalog.=) pg_catalog.current_setting('meter.tenant_id', true)
		AND environment_id OPERATOR(pg_catalog.=) COALESCE(pg_catalog.current_setting('meter.environment_id', true), '');
COMMENT ON VIEW meter.skipped IS
	'Events a meter matched but skipped for want of a usable value, per customer and bucket, in the current scope';
