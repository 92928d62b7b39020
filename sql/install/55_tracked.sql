
-- ── Tracked tables (SPEC §7) ────────────────────────────────────────────────────────
-- Event tables whose rows meter.track_usage() turns into rollups. A meter's usage is the
-- sum over all of them; usage_from_events, verify and rebuild read every one.
CREATE TABLE meter.tracked_tables (
	relid regclass PRIMARY KEY,
	tracked_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	tracked_by text DEFAULT meter.current_user_id()
);
COMMENT ON TABLE meter.tracked_tables IS
	'Event tables tracked by meter.track_usage(); meter.events is tracked from the start';
INSERT INTO meter.tracked_tables (relid, tracked_by) VALUES ('meter.events', 'extension');
-- Tables dropped meanwhile leave the registry (meter.on_sql_drop). IMMUTABLE on purpose:
-- see src/ddl.c (on a Citus cluster each node checks its own OIDs).
CREATE FUNCTION meter.table_exists(relid oid) RETURNS boolean
	AS 'MODULE_PATHNAME', 'meter_table_exists' LANGUAGE C IMMUTABLE STRICT;
COMMENT ON FUNCTION meter.table_exists(oid) IS
	'Internal: does this node have a relation with this OID (the registry''s test for dropped tables)';

-- The extension's own row is recreated by CREATE EXTENSION; dump only users' tables.
SELECT pg_catalog.pg_extension_config_dump('meter.tracked_tables',
	'WHERE relid OPERATOR(pg_catalog.<>) ''meter.events''::pg_catalog.regclass');
