
-- ── Privileges: least privilege (SPEC §5, §9) ───────────────────────────────────────
-- CREATE EXTENSION grants nothing on schema meter: only its owner (and superusers) can
-- use the extension until roles are granted access. Three kinds of access, each granted
-- by a function below (roles are cluster-wide, so the extension creates none):
--   reader  meter.grant_reader(role)  read meters, events and usage (usage, usage_from_events,
--                                     verify, matching_meters, explain_match, list/get meters)
--   writer  meter.grant_writer(role)  write events (INSERT/UPDATE/DELETE on meter.events,
--                                     meter.ingest); no meters, no usage
--   admin   meter.grant_admin(role)   define meters (create/update/disable), rebuild, and
--                                     everything a reader may
-- Row-level security keeps every one of them inside the current scope (meter.tenant_id,
-- meter.environment_id). Nobody but the extension owner writes rollups: the tracking and
-- meter-change triggers and meter.rebuild run as the owner (SECURITY DEFINER, pinned
-- search_path). Maintenance functions are the owner's only.

-- Internal or maintenance functions: not for PUBLIC. Trigger functions fire whatever
-- their EXECUTE privilege; revoking it stops others attaching them (a SECURITY DEFINER
-- trigger on a table without row-level security could write any tenant's rollups).
REVOKE EXECUTE ON FUNCTION meter.track_usage() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION meter.on_meter_change() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION meter.validate_meter() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION meter.lock_tenant(text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION meter.rebuild_all() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION meter.compact(text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION meter.seal(timestamptz) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION meter.attach_triggers(regclass) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION meter.detach_triggers(regclass) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION meter.on_ddl_end() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION meter.on_sql_drop() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION meter.track(regclass) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION meter.untrack(regclass) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION meter.rebuild(text) FROM PUBLIC;
-- meter.ingest (when present) stays executable by PUBLIC: it runs as the caller, so
-- only roles that may INSERT into meter.events (writers) can store anything with it.

-- SECURITY DEFINER: rebuilding recomputes the scope's rollups from the raw events, the
-- same rows the triggers write as the owner; so an admin may rebuild without any write
-- privilege on the rollup tables (which would let it forge usage). It acts in the
-- current scope only (every query filters on meter.current_tenant()/environment).
ALTER FUNCTION meter.rebuild(text) SECURITY DEFINER;
-- Compacting folds the scope's own pending rows into its compacted rows (never changes
-- usage): SECURITY DEFINER for the same reason.
ALTER FUNCTION meter.compact(text) SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION meter.grant_reader(role regrole) RETURNS void
LANGUAGE plpgsql VOLATILE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	EXECUTE pg_catalog.format('GRANT USAGE ON SCHEMA meter TO %s', role);
	EXECUTE pg_catalog.format('GRANT SELECT ON meter.meters, meter.events, meter.rollups, '
		'meter.pending, meter.seals, meter.sealed_skips, meter.skipped, meter.tracked_tables TO %s', role);
END
$$;
COMMENT ON FUNCTION meter.grant_reader(regrole) IS
	'Let a role read meters, events and usage of the current scope (schema USAGE, SELECT on the extension''s tables); owner only';

CREATE FUNCTION meter.grant_writer(role regrole) RETURNS void
LANGUAGE plpgsql VOLATILE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	EXECUTE pg_catalog.format('GRANT USAGE ON SCHEMA meter TO %s', role);
	-- SELECT: UPDATE and DELETE … WHERE read the rows they change (of the current scope only)
	EXECUTE pg_catalog.format('GRANT SELECT, INSERT, UPDATE, DELETE ON meter.events TO %s', role);
	-- meter.ingest reads the stored ids of a partitioned meter.events (its dedup)
	EXECUTE pg_catalog.format('GRANT SELECT ON meter.event_ids TO %s', role);
	IF pg_catalog.to_regprocedure('meter.ingest(jsonb)') IS NOT NULL THEN
		EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION meter.ingest(jsonb) TO %s', role);
	END IF;
END
$$;
COMMENT ON FUNCTION meter.grant_writer(regrole) IS
	'Let a role write events of the current scope (INSERT/UPDATE/DELETE on meter.events, meter.ingest); owner only';

CREATE FUNCTION meter.grant_admin(role regrole) RETURNS void
LANGUAGE plpgsql VOLATILE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM meter.grant_reader(role);
	-- No DELETE: meters are disabled (archived) or marked deleted, their history kept.
	EXECUTE pg_catalog.format('GRANT INSERT, UPDATE ON meter.meters TO %s', role);
	EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION meter.rebuild(text) TO %s', role);
	EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION meter.compact(text) TO %s', role);
	EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION meter.seal(timestamptz) TO %s', role);
END
$$;
COMMENT ON FUNCTION meter.grant_admin(regrole) IS
	'Let a role define meters of the current scope (create/update/disable, rebuild) and read everything a reader may; owner only';

CREATE FUNCTION meter.revoke_access(role regrole) RETURNS void
LANGUAGE plpgsql VOLATILE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	EXECUTE pg_catalog.format('REVOKE ALL ON meter.meters, meter.events, meter.rollups, '
		'meter.pending, meter.seals, meter.sealed_skips, meter.skipped, meter.tracked_tables, meter.event_ids FROM %s', role);
	EXECUTE pg_catalog.format('REVOKE EXECUTE ON FUNCTION meter.rebuild(text) FROM %s', role);
	EXECUTE pg_catalog.format('REVOKE EXECUTE ON FUNCTION meter.compact(text) FROM %s', role);
	EXECUTE pg_catalog.format('REVOKE EXECUTE ON FUNCTION meter.seal(timestamptz) FROM %s', role);
	IF pg_catalog.to_regprocedure('meter.ingest(jsonb)') IS NOT NULL THEN
		EXECUTE pg_catalog.format('REVOKE EXECUTE ON FUNCTION meter.ingest(jsonb) FROM %s', role);
	END IF;
	EXECUTE pg_catalog.format('REVOKE USAGE ON SCHEMA meter FROM %s', role);
END
$$;
COMMENT ON FUNCTION meter.revoke_access(regrole) IS
	'Undo meter.grant_reader/grant_writer/grant_admin for a role; owner only';

REVOKE EXECUTE ON FUNCTION meter.grant_reader(regrole) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION meter.grant_writer(regrole) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION meter.grant_admin(regrole) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION meter.revoke_access(regrole) FROM PUBLIC;
