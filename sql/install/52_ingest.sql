
-- ── Ingestion (SPEC §7) ─────────────────────────────────────────────────────────────
-- FlexPrice's ingest API as a function: one event object or an array of them, validated
-- as a whole, written by one INSERT … ON CONFLICT DO NOTHING (a re-sent id is a duplicate).
-- Not STRICT: NULL is an error, not an empty result a client could mistake for success.
CREATE FUNCTION meter.ingest(events jsonb)
	RETURNS TABLE (accepted integer, duplicates integer)
	AS 'MODULE_PATHNAME', 'meter_ingest'
	LANGUAGE C VOLATILE PARALLEL UNSAFE
	SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION meter.ingest(jsonb) IS
	'Store FlexPrice events (an object or an array) in meter.events for the current tenant; returns rows accepted and duplicates skipped';
