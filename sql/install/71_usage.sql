
-- ── Usage queries (SPEC §8) ─────────────────────────────────────────────────────────
-- C functions over one engine (src/usage.c): meter.usage serves whole 15-minute slots
-- from the stored partial states (compacted and pending, one snapshot) and reads the raw
-- events only of slots a boundary cuts or a pending change marked; usage_from_events
-- reads the raw events only. Not STRICT: the optional arguments default to NULL.
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
	AS 'MODULE_PATHNAME', 'meter_usage' LANGUAGE C STABLE
	SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION meter.usage(text, timestamptz, timestamptz, text, text, meter.window_size,
	text, timestamptz) IS
	'Usage of a meter per window over [start_time, end_time), served from the stored partial states '
	'(raw events only for 15-minute slots a window edge cuts). Errors: 55000 no tenant, '
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
	AS 'MODULE_PATHNAME', 'meter_usage_from_events' LANGUAGE C STABLE
	SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION meter.usage_from_events(text, timestamptz, timestamptz, text, text,
	meter.window_size, text, timestamptz, regclass) IS
	'meter.usage computed from the raw events only (the ground truth; the path for untracked '
	'tables): every tracked table, or source. Errors as meter.usage, and 22023 for a source '
	'without the event columns';
