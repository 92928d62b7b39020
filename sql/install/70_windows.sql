
-- ── Usage windows (SPEC §8) ─────────────────────────────────────────────────────────
CREATE FUNCTION meter.windows(
	start_time timestamptz,
	end_time timestamptz,
	window_size meter.window_size DEFAULT NULL,
	timezone text DEFAULT 'UTC',
	billing_anchor timestamptz DEFAULT NULL)
RETURNS TABLE (window_start timestamptz, window_end timestamptz)
	AS 'MODULE_PATHNAME', 'meter_windows'
	LANGUAGE C IMMUTABLE PARALLEL SAFE ROWS 100;
COMMENT ON FUNCTION meter.windows(timestamptz, timestamptz, meter.window_size, text, timestamptz) IS
	'The windows partitioning [start_time, end_time), aligned to the wall clock of an IANA time zone '
	'(DST-correct); WEEK starts Monday, MONTH at the billing anchor''s local day and time of day; '
	'NULL window_size gives one window';
