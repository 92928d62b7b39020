
-- ── Sealed periods: retention without losing billed usage (README "Partitioning and retention")
-- Once a scope is sealed before a time, its usage before then is frozen in the compacted
-- rows: events written with an earlier timestamp are stored but not counted (they show in
-- meter.skipped as 'sealed period'), removing earlier events changes nothing, and verify,
-- rebuild and recomputation leave sealed time alone. So the raw events (partitions) of
-- sealed periods may be dropped.
CREATE TABLE meter.seals (
	tenant_id text COLLATE "C" NOT NULL,
	environment_id text COLLATE "C" NOT NULL,
	sealed_before timestamptz NOT NULL,
	sealed_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	sealed_by text,
	PRIMARY KEY (tenant_id, environment_id, sealed_before)
);
COMMENT ON TABLE meter.seals IS
	'Seals of each tenant and environment: usage before the newest sealed_before is frozen';

-- Events of sealed time that a meter matched: one row per statement, meter, customer and slot.
CREATE TABLE meter.sealed_skips (
	tenant_id text COLLATE "C" NOT NULL,
	environment_id text COLLATE "C" NOT NULL,
	meter_id text COLLATE "C" NOT NULL,
	customer_id text COLLATE "C" NOT NULL,
	external_customer_id text COLLATE "C" NOT NULL,
	slot timestamptz NOT NULL,
	events bigint NOT NULL
);
COMMENT ON TABLE meter.sealed_skips IS
	'Events written into sealed time that a meter matched but did not count';
CREATE INDEX sealed_skips_meter_idx ON meter.sealed_skips (tenant_id, environment_id, meter_id);

-- Every change of the seals reaches every backend's seal cache (on a Citus cluster: of
-- every node, through the trigger on each placement).
CREATE FUNCTION meter.seals_changed() RETURNS trigger
	AS 'MODULE_PATHNAME', 'meter_seals_changed' LANGUAGE C;
COMMENT ON FUNCTION meter.seals_changed() IS
	'Trigger of meter.seals: invalidates the seal caches of every backend of the node';
CREATE TRIGGER seals_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON meter.seals
	FOR EACH STATEMENT EXECUTE FUNCTION meter.seals_changed();
COMMENT ON TRIGGER seals_changed ON meter.seals IS
	'Every change of the seals reaches every backend''s seal cache';

ALTER TABLE meter.seals ENABLE ROW LEVEL SECURITY;
ALTER TABLE meter.sealed_skips ENABLE ROW LEVEL SECURITY;
CREATE POLICY seals_scope ON meter.seals
	USING (tenant_id OPERATOR(pg_catalog.=) pg_catalog.current_setting('meter.tenant_id', true)
		AND environment_id OPERATOR(pg_catalog.=) COALESCE(pg_catalog.current_setting('meter.environment_id', true), ''));
CREATE POLICY sealed_skips_scope ON meter.sealed_skips
	USING (tenant_id OPERATOR(pg_catalog.=) pg_catalog.current_setting('meter.tenant_id', true)
		AND environment_id OPERATOR(pg_catalog.=) COALESCE(pg_catalog.current_setting('meter.environment_id', true), ''));
SELECT pg_catalog.pg_extension_config_dump('meter.seals', '');
SELECT pg_catalog.pg_extension_config_dump('meter.sealed_skips', '');

CREATE FUNCTION meter.seal_fold("before" timestamptz) RETURNS void
	AS 'MODULE_PATHNAME', 'meter_seal_fold' LANGUAGE C VOLATILE STRICT
	SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION meter.seal_fold(timestamptz) IS
	'Internal (meter.seal): waits for the scope''s in-flight ingestion, checks the seal does not move back, '
	'folds everything pending; where the tenant''s rows are';

CREATE FUNCTION meter.seal("before" timestamptz) RETURNS timestamptz
	AS 'MODULE_PATHNAME', 'meter_seal' LANGUAGE C VOLATILE
	SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION meter.seal(timestamptz) IS
	'Freeze the current scope''s usage before a 15-minute boundary (folding everything pending first); '
	'later events before it are stored but not counted. Errors: 55000 no tenant, 22023 unaligned, '
	'infinite or earlier than the current seal';

-- The seal of the current scope (-infinity when none), for verify and users.
CREATE FUNCTION meter.sealed_before() RETURNS timestamptz
LANGUAGE sql STABLE AS $$
	SELECT COALESCE(pg_catalog.max(s.sealed_before), '-infinity')
	FROM meter.seals s
	WHERE s.tenant_id OPERATOR(pg_catalog.=) meter.current_tenant()
		AND s.environment_id OPERATOR(pg_catalog.=) meter.current_environment()
$$;
COMMENT ON FUNCTION meter.sealed_before() IS
	'The time before which the current scope''s usage is sealed (-infinity when never sealed)';
