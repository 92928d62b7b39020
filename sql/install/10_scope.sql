
-- ── Scope (SPEC §5) and ids ─────────────────────────────────────────────────────────
CREATE FUNCTION meter.current_tenant() RETURNS text
	AS 'MODULE_PATHNAME', 'meter_current_tenant' LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION meter.current_tenant() IS
	'The tenant of the current scope (setting meter.tenant_id); error 55000 when unset';

CREATE FUNCTION meter.current_environment() RETURNS text
	AS 'MODULE_PATHNAME', 'meter_current_environment' LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION meter.current_environment() IS
	'The environment of the current scope (setting meter.environment_id); '''' is the default environment';

CREATE FUNCTION meter.current_user_id() RETURNS text
	AS 'MODULE_PATHNAME', 'meter_current_user_id' LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION meter.current_user_id() IS
	'The user of the current scope (setting meter.user_id), NULL when unset';

CREATE FUNCTION meter.new_id(prefix text) RETURNS text
	AS 'MODULE_PATHNAME', 'meter_new_id' LANGUAGE C VOLATILE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION meter.new_id(text) IS
	'prefix || ''_'' || a new ULID (26 Crockford base32 characters, time-ordered)';
