
-- ── Enums (SPEC §2) ─────────────────────────────────────────────────────────────────
-- The C code relies on the label order of aggregation_type and window_size (src/*.h).
CREATE TYPE meter.aggregation_type AS ENUM (
	'COUNT', 'SUM', 'AVG', 'COUNT_UNIQUE', 'MAX', 'MIN', 'LATEST',
	'SUM_WITH_MULTIPLIER', 'WEIGHTED_SUM');
COMMENT ON TYPE meter.aggregation_type IS 'How a meter aggregates the events it counts';

CREATE TYPE meter.reset_usage AS ENUM ('BILLING_PERIOD', 'NEVER');
COMMENT ON TYPE meter.reset_usage IS
	'BILLING_PERIOD: usage per period; NEVER: a running total from the beginning of time';

CREATE TYPE meter.status AS ENUM ('published', 'archived', 'deleted');
COMMENT ON TYPE meter.status IS 'Lifecycle of a meter: only published meters count events';

CREATE TYPE meter.window_size AS ENUM (
	'MINUTE', '15MIN', '30MIN', 'HOUR', '3HOUR', '6HOUR', '12HOUR', 'DAY', 'WEEK', 'MONTH');
COMMENT ON TYPE meter.window_size IS 'Width of a usage window or of an aggregation bucket';
