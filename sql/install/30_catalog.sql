
-- ── The catalog: meter.meters (SPEC §4) ─────────────────────────────────────────────
-- FlexPrice's Meter + BaseModel. Every insert, update and delete goes through the C
-- trigger meter.validate_meter(): it validates the row as a whole, keeps the creation
-- columns immutable, stamps updated_at/updated_by and invalidates every backend's meter
-- cache. The CHECK constraints repeat the essential rules for the case where triggers are
-- disabled (session_replication_role = replica, pg_restore --disable-triggers).
CREATE TABLE meter.meters (
	id text NOT NULL DEFAULT meter.new_id('meter'),
	tenant_id text NOT NULL DEFAULT meter.current_tenant(),
	environment_id text NOT NULL DEFAULT meter.current_environment(),
	event_name text NOT NULL,
	name text NOT NULL,
	aggregation meter.aggregation NOT NULL,
	filters meter.filters NOT NULL DEFAULT '[]',
	reset_usage meter.reset_usage NOT NULL DEFAULT 'BILLING_PERIOD',
	status meter.status NOT NULL DEFAULT 'published',
	created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	updated_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	created_by text DEFAULT meter.current_user_id(),
	updated_by text DEFAULT meter.current_user_id(),
	CONSTRAINT meters_pkey PRIMARY KEY (id),
	CONSTRAINT meters_id_not_blank CHECK (pg_catalog.btrim(id) OPERATOR(pg_catalog.<>) ''),
	CONSTRAINT meters_tenant_not_blank CHECK (pg_catalog.btrim(tenant_id) OPERATOR(pg_catalog.<>) ''),
	CONSTRAINT meters_event_name_not_blank CHECK (pg_catalog.btrim(event_name) OPERATOR(pg_catalog.<>) ''),
	CONSTRAINT meters_name_not_blank CHECK (pg_catalog.btrim(name) OPERATOR(pg_catalog.<>) '')
);
COMMENT ON TABLE meter.meters IS
	'The meter catalog (FlexPrice''s Meter): which events count (event_name + filters) and how they aggregate';
COMMENT ON COLUMN meter.meters.id IS 'meter_ + a ULID by default (k-sortable); unique across all tenants';
COMMENT ON COLUMN meter.meters.tenant_id IS 'Owning tenant; defaults to meter.tenant_id; never changes';
COMMENT ON COLUMN meter.meters.environment_id IS 'Environment inside the tenant ('''' = default); never changes';
COMMENT ON COLUMN meter.meters.event_name IS 'Name of the events the meter counts';
COMMENT ON COLUMN meter.meters.name IS 'Display name';
COMMENT ON COLUMN meter.meters.aggregation IS 'How matching events aggregate, e.g. {"type":"SUM","field":"tokens"}';
COMMENT ON COLUMN meter.meters.filters IS 'Property filters an event must match; [] matches every event of event_name';
COMMENT ON COLUMN meter.meters.reset_usage IS 'BILLING_PERIOD (usage per period) or NEVER (running total)';
COMMENT ON COLUMN meter.meters.status IS 'published meters count events; archived ones keep their history; deleted ones are hidden';
COMMENT ON COLUMN meter.meters.created_at IS 'Creation time; never changes';
COMMENT ON COLUMN meter.meters.updated_at IS 'Time of the last update, stamped by the trigger';
COMMENT ON COLUMN meter.meters.created_by IS 'meter.user_id at creation; never changes';
COMMENT ON COLUMN meter.meters.updated_by IS 'meter.user_id at the last update (NULL when unset), stamped by the trigger';
COMMENT ON CONSTRAINT meters_pkey ON meter.meters IS 'Meter ids are unique across all tenants and environments';
COMMENT ON CONSTRAINT meters_id_not_blank ON meter.meters IS 'Backstop of the trigger''s rule: id not blank';
COMMENT ON CONSTRAINT meters_tenant_not_blank ON meter.meters IS 'Backstop of the trigger''s rule: tenant_id not blank';
COMMENT ON CONSTRAINT meters_event_name_not_blank ON meter.meters IS 'Backstop of the trigger''s rule: event_name not blank';
COMMENT ON CONSTRAINT meters_name_not_blank ON meter.meters IS 'Backstop of the trigger''s rule: name not blank';

-- The compiled-meter cache loads the published meters of one (tenant, environment,
-- event name); the list functions read one scope ordered by creation (and event name).
CREATE INDEX meters_published_event_idx ON meter.meters (tenant_id, environment_id, event_name)
	WHERE status OPERATOR(pg_catalog.=) 'published'::meter.status;
COMMENT ON INDEX meter.meters_published_event_idx IS
	'Published meters of a (tenant, environment, event name): the meter cache''s lookup';
CREATE INDEX meters_scope_created_idx ON meter.meters (tenant_id, environment_id, created_at, id);
COMMENT ON INDEX meter.meters_scope_created_idx IS
	'Meters of a scope in creation order: list_meters'' default sort and time range';
CREATE INDEX meters_scope_event_idx ON meter.meters (tenant_id, environment_id, event_name, created_at);
COMMENT ON INDEX meter.meters_scope_event_idx IS
	'Meters of a scope by event name: list_meters(event_name => …)';

CREATE FUNCTION meter.validate_meter() RETURNS trigger
	AS 'MODULE_PATHNAME', 'meter_validate_meter' LANGUAGE C;
COMMENT ON FUNCTION meter.validate_meter() IS
	'Trigger of meter.meters: validates each meter, keeps id/tenant_id/environment_id/created_at/created_by fixed, stamps updated_at/updated_by, invalidates meter caches';

CREATE TRIGGER meters_validate
	BEFORE INSERT OR UPDATE OR DELETE ON meter.meters
	FOR EACH ROW EXECUTE FUNCTION meter.validate_meter();
COMMENT ON TRIGGER meters_validate ON meter.meters IS
	'Validates and stamps every meter; every change invalidates the meter caches of all backends';

-- Row-level security (SPEC §5): roles that query the table directly see, change and
-- create meters of the current tenant and environment only (the policy's USING clause
-- is also its WITH CHECK clause). The table owner and superusers bypass it.
ALTER TABLE meter.meters ENABLE ROW LEVEL SECURITY;
CREATE POLICY meters_scope ON meter.meters
	USING (tenant_id OPERATOR(pg_catalog.=) pg_catalog.current_setting('meter.tenant_id', true)
		AND environment_id OPERATOR(pg_catalog.=) COALESCE(pg_catalog.current_setting('meter.environment_id', true), ''));
COMMENT ON POLICY meters_scope ON meter.meters IS
	'Rows of the current scope only: meter.tenant_id and meter.environment_id ('''' = default)';

SELECT pg_catalog.pg_extension_config_dump('meter.meters', '');
