
-- ── Events (SPEC §7) ────────────────────────────────────────────────────────────────
-- FlexPrice's Event. A re-sent event (same tenant, environment and id) is a duplicate and
-- counts once, forever: the primary key is the dedup, with no time window.
CREATE TABLE meter.events (
	id text COLLATE "C" NOT NULL DEFAULT meter.new_id('event'),
	tenant_id text COLLATE "C" NOT NULL DEFAULT meter.current_tenant(),
	environment_id text COLLATE "C" NOT NULL DEFAULT meter.current_environment(),
	event_name text COLLATE "C" NOT NULL,
	customer_id text COLLATE "C",
	external_customer_id text COLLATE "C",
	source text,
	"timestamp" timestamptz NOT NULL DEFAULT pg_catalog.now(),
	ingested_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	properties jsonb NOT NULL DEFAULT '{}',
	PRIMARY KEY (tenant_id, environment_id, id),
	CONSTRAINT events_tenant_not_empty CHECK (tenant_id <> ''),
	CONSTRAINT events_properties_object CHECK (pg_catalog.jsonb_typeof(properties) = 'object')
);
COMMENT ON TABLE meter.events IS
	'Raw usage events (FlexPrice''s Event); tracked by meter.track_usage()';
-- Recomputations and usage_from_events read one event name over a time range.
CREATE INDEX events_name_time_idx ON meter.events (tenant_id, environment_id, event_name, "timestamp");

ALTER TABLE meter.events ENABLE ROW LEVEL SECURITY;
CREATE POLICY events_scope ON meter.events
	USING (tenant_id OPERATOR(pg_catalog.=) pg_catalog.current_setting('meter.tenant_id', true)
		AND environment_id OPERATOR(pg_catalog.=) COALESCE(pg_catalog.current_setting('meter.environment_id', true), ''));
SELECT pg_catalog.pg_extension_config_dump('meter.events', '');
