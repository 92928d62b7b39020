
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
	data bytea NOT NULL,                  -- per (customer, slot, dimensions)
	totals bytea NOT NULL                 -- per (slot, dimensions), all customers together
);
COMMENT ON TABLE meter.pending IS
	'Partial states appended by meter.track_usage() (one row per statement and meter), not yet compacted';
CREATE INDEX pending_meter_idx ON meter.pending (tenant_id, environment_id, meter_id, first_day);
-- A statement's row is written once and read once by compaction: keep it uncompressed
-- (inline up to 8 kB).
ALTER TABLE meter.pending SET (toast_tuple_target = 8160);
ALTER TABLE meter.pending ALTER COLUMN data SET STORAGE EXTERNAL;
ALTER TABLE meter.pending ALTER COLUMN totals SET STORAGE EXTERNAL;

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
