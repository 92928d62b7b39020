
-- ── Scaling out on Citus (SPEC §9, README "Scaling out on Citus") ──────────────────
-- meter.distribute() turns a single-node install into the distributed layout: the
-- catalog, the seals and the tracked-tables registry become reference tables, the events,
-- the stored usage and every tracked table are distributed by tenant_id in one
-- co-location group. The tracking trigger then fires on the shards, on the node holding
-- them, and works on that tenant's co-located shards there (src/placement.h); functions of
-- a tenant's scope run on that node too, through their meter.<name>_at twins below
-- (src/forward.h). On one server none of this is used.

CREATE FUNCTION meter.distributed() RETURNS boolean
	AS 'MODULE_PATHNAME', 'meter_distributed' LANGUAGE C STABLE;
COMMENT ON FUNCTION meter.distributed() IS
	'Are the extension''s tables distributed by Citus (meter.distribute() ran)?';

CREATE FUNCTION meter.tenant_elsewhere() RETURNS boolean
	AS 'MODULE_PATHNAME', 'meter_tenant_elsewhere' LANGUAGE C STABLE;
COMMENT ON FUNCTION meter.tenant_elsewhere() IS
	'Internal: are the current tenant''s rows on another node of the Citus cluster (so its functions run there)?';

-- SET LOCAL of the scope, which Citus replays on the workers of the transaction (with
-- citus.propagate_set_commands = 'local'; it propagates SET LOCAL statements run inside a
-- function, as here, or in a transaction block): row-level security on the shards then
-- sees the scope. meter.ingest calls it on a Citus cluster. No SET clause: the settings
-- stay for the caller (whose own SET clause, if any, undoes them when it returns).
CREATE FUNCTION meter.propagate_scope(tenant text, environment text) RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
	PERFORM pg_catalog.set_config('citus.propagate_set_commands', 'local', true);
	EXECUTE pg_catalog.format('SET LOCAL meter.tenant_id = %L', tenant);
	EXECUTE pg_catalog.format('SET LOCAL meter.environment_id = %L', environment);
END $$;
COMMENT ON FUNCTION meter.propagate_scope(text, text) IS
	'Internal (meter.ingest on Citus): SET LOCAL the scope, which Citus replays on the workers of the transaction';

-- The twins: meter.<name>_at(<the arguments of meter.<name>>, tenant, environment) calls
-- meter.<name> inside that scope. meter.distribute() makes each a distributed function
-- (distribution argument tenant, co-located with meter.events, force_delegation), so that
-- Citus runs it on the node that holds the tenant's shards; meter.<name> forwards to it
-- when called anywhere else. Not STRICT: the functions' own arguments may be NULL.
CREATE FUNCTION meter.usage_at(meter_id text, start_time timestamptz, end_time timestamptz,
	customer_id text, external_customer_id text, window_size meter.window_size, timezone text,
	billing_anchor timestamptz, tenant text, environment text)
RETURNS TABLE (window_start timestamptz, window_end timestamptz, value numeric)
	AS 'MODULE_PATHNAME', 'meter_at' LANGUAGE C STABLE SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION meter.usage_at(text, timestamptz, timestamptz, text, text, meter.window_size,
	text, timestamptz, text, text) IS
	'Internal: meter.usage in the scope (tenant, environment), run where the tenant''s rows are';

CREATE FUNCTION meter.usage_from_events_at(meter_id text, start_time timestamptz,
	end_time timestamptz, customer_id text, external_customer_id text,
	window_size meter.window_size, timezone text, billing_anchor timestamptz, source regclass,
	tenant text, environment text)
RETURNS TABLE (window_start timestamptz, window_end timestamptz, value numeric)
	AS 'MODULE_PATHNAME', 'meter_at' LANGUAGE C STABLE SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION meter.usage_from_events_at(text, timestamptz, timestamptz, text, text,
	meter.window_size, text, timestamptz, regclass, text, text) IS
	'Internal: meter.usage_from_events in the scope (tenant, environment), run where the tenant''s rows are';

CREATE FUNCTION meter.usage_by_customer_at(meter_id text, start_time timestamptz,
	end_time timestamptz, window_size meter.window_size, timezone text,
	billing_anchor timestamptz, tenant text, environment text)
RETURNS TABLE (customer_id text, external_customer_id text, window_start timestamptz,
	window_end timestamptz, value numeric)
	AS 'MODULE_PATHNAME', 'meter_at' LANGUAGE C STABLE SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION meter.usage_by_customer_at(text, timestamptz, timestamptz, meter.window_size,
	text, timestamptz, text, text) IS
	'Internal: meter.usage_by_customer in the scope (tenant, environment), run where the tenant''s rows are';

CREATE FUNCTION meter.usage_by_customer_from_events_at(meter_id text, start_time timestamptz,
	end_time timestamptz, window_size meter.window_size, timezone text,
	billing_anchor timestamptz, source regclass, tenant text, environment text)
RETURNS TABLE (customer_id text, external_customer_id text, window_start timestamptz,
	window_end timestamptz, value numeric)
	AS 'MODULE_PATHNAME', 'meter_at' LANGUAGE C STABLE SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION meter.usage_by_customer_from_events_at(text, timestamptz, timestamptz,
	meter.window_size, text, timestamptz, regclass, text, text) IS
	'Internal: meter.usage_by_customer_from_events in the scope (tenant, environment), run where the tenant''s rows are';

CREATE FUNCTION meter.usage_by_group_at(meter_id text, group_by text[], start_time timestamptz,
	end_time timestamptz, customer_id text, external_customer_id text,
	window_size meter.window_size, timezone text, billing_anchor timestamptz,
	tenant text, environment text)
RETURNS TABLE (group_values jsonb, window_start timestamptz, window_end timestamptz, value numeric)
	AS 'MODULE_PATHNAME', 'meter_at' LANGUAGE C STABLE SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION meter.usage_by_group_at(text, text[], timestamptz, timestamptz, text, text,
	meter.window_size, text, timestamptz, text, text) IS
	'Internal: meter.usage_by_group in the scope (tenant, environment), run where the tenant''s rows are';

CREATE FUNCTION meter.usage_by_group_from_events_at(meter_id text, group_by text[],
	start_time timestamptz, end_time timestamptz, customer_id text, external_customer_id text,
	window_size meter.window_size, timezone text, billing_anchor timestamptz, source regclass,
	tenant text, environment text)
RETURNS TABLE (group_values jsonb, window_start timestamptz, window_end timestamptz, value numeric)
	AS 'MODULE_PATHNAME', 'meter_at' LANGUAGE C STABLE SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION meter.usage_by_group_from_events_at(text, text[], timestamptz, timestamptz,
	text, text, meter.window_size, text, timestamptz, regclass, text, text) IS
	'Internal: meter.usage_by_group_from_events in the scope (tenant, environment), run where the tenant''s rows are';

CREATE FUNCTION meter.usage_by_filter_groups_at(meter_id text, groups jsonb,
	start_time timestamptz, end_time timestamptz, customer_id text, external_customer_id text,
	window_size meter.window_size, timezone text, billing_anchor timestamptz,
	tenant text, environment text)
RETURNS TABLE (group_id text, window_start timestamptz, window_end timestamptz, value numeric)
	AS 'MODULE_PATHNAME', 'meter_at' LANGUAGE C STABLE SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION meter.usage_by_filter_groups_at(text, jsonb, timestamptz, timestamptz, text,
	text, meter.window_size, text, timestamptz, text, text) IS
	'Internal: meter.usage_by_filter_groups in the scope (tenant, environment), run where the tenant''s rows are';

CREATE FUNCTION meter.usage_by_filter_groups_from_events_at(meter_id text, groups jsonb,
	start_time timestamptz, end_time timestamptz, customer_id text, external_customer_id text,
	window_size meter.window_size, timezone text, billing_anchor timestamptz, source regclass,
	tenant text, environment text)
RETURNS TABLE (group_id text, window_start timestamptz, window_end timestamptz, value numeric)
	AS 'MODULE_PATHNAME', 'meter_at' LANGUAGE C STABLE SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION meter.usage_by_filter_groups_from_events_at(text, jsonb, timestamptz,
	timestamptz, text, text, meter.window_size, text, timestamptz, regclass, text, text) IS
	'Internal: meter.usage_by_filter_groups_from_events in the scope (tenant, environment), run where the tenant''s rows are';

CREATE FUNCTION meter.stored_slots_at(meter_id text, totals boolean, tenant text, environment text)
RETURNS TABLE (customer_id text, external_customer_id text, slot timestamptz, dims text,
	marked boolean, events bigint, n bigint, sum numeric, sum_vt numeric, best numeric,
	best_at timestamptz, uniques jsonb, maxima jsonb)
	AS 'MODULE_PATHNAME', 'meter_at' LANGUAGE C STABLE;
COMMENT ON FUNCTION meter.stored_slots_at(text, boolean, text, text) IS
	'Internal: meter.stored_slots in the scope (tenant, environment), run where the tenant''s rows are';

CREATE FUNCTION meter.skips_at(tenant text, environment text)
RETURNS TABLE (meter_id text, customer_id text, external_customer_id text, bucket timestamptz,
	skipped bigint, reason text)
	AS 'MODULE_PATHNAME', 'meter_at' LANGUAGE C STABLE;
COMMENT ON FUNCTION meter.skips_at(text, text) IS
	'Internal: meter.skips in the scope (tenant, environment), run where the tenant''s rows are';

CREATE FUNCTION meter.verify_at(meter_id text, tenant text, environment text)
RETURNS SETOF meter.difference
	AS 'MODULE_PATHNAME', 'meter_at' LANGUAGE C VOLATILE SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION meter.verify_at(text, text, text) IS
	'Internal: meter.verify in the scope (tenant, environment), run where the tenant''s rows are';

CREATE FUNCTION meter.compact_at(meter_id text, tenant text, environment text) RETURNS bigint
	AS 'MODULE_PATHNAME', 'meter_at' LANGUAGE C VOLATILE SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION meter.compact_at(text, text, text) IS
	'Internal: meter.compact in the scope (tenant, environment), run where the tenant''s rows are';

CREATE FUNCTION meter.rebuild_at(meter_id text, tenant text, environment text)
RETURNS SETOF meter.rebuilt
	AS 'MODULE_PATHNAME', 'meter_at' LANGUAGE C VOLATILE SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION meter.rebuild_at(text, text, text) IS
	'Internal: meter.rebuild in the scope (tenant, environment), run where the tenant''s rows are';

CREATE FUNCTION meter.seal_fold_at("before" timestamptz, tenant text, environment text)
RETURNS void
	AS 'MODULE_PATHNAME', 'meter_at' LANGUAGE C VOLATILE SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION meter.seal_fold_at(timestamptz, text, text) IS
	'Internal: meter.seal_fold in the scope (tenant, environment), run where the tenant''s rows are';

-- The twins of functions kept from PUBLIC are kept from it too, and granted with them
-- (meter.grant_admin, meter.revoke_access).
REVOKE EXECUTE ON FUNCTION meter.compact_at(text, text, text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION meter.rebuild_at(text, text, text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION meter.seal_fold(timestamptz) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION meter.seal_fold_at(timestamptz, text, text) FROM PUBLIC;

-- One table into the distributed layout, co-located with meter.events. The tracking
-- triggers are off while Citus copies the rows into the shards (they would count the
-- rows again: their usage is stored already and moves along with them).
CREATE FUNCTION meter.distribute_table(tbl regclass, shard_count integer DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	coll text;
	trg text;
	off text[];
BEGIN
	IF EXISTS (SELECT 1 FROM pg_catalog.pg_dist_partition p WHERE p.logicalrelid = tbl) THEN
		IF tbl <> 'meter.events'::regclass AND (SELECT p.colocationid FROM pg_catalog.pg_dist_partition p
				WHERE p.logicalrelid = tbl) IS DISTINCT FROM (SELECT p.colocationid
				FROM pg_catalog.pg_dist_partition p WHERE p.logicalrelid = 'meter.events'::regclass) THEN
			RAISE EXCEPTION 'table % is distributed but not co-located with meter.events', tbl
				USING ERRCODE = '55000',
				DETAIL = 'A tenant''s events must be on the node that counts them: every tracked table is '
					'distributed by tenant_id in meter.events'' co-location group.',
				HINT = format('Run SELECT undistribute_table(%L) and track it again.', tbl);
		END IF;
		RETURN;
	END IF;
	SELECT c.collname INTO coll FROM pg_catalog.pg_attribute a
		JOIN pg_catalog.pg_collation c ON c.oid = a.attcollation
		WHERE a.attrelid = tbl AND a.attname = 'tenant_id' AND NOT a.attisdropped;
	IF coll IS DISTINCT FROM 'C' THEN
		RAISE EXCEPTION 'column tenant_id of % must have collation "C"', tbl
			USING ERRCODE = '42804',
			DETAIL = format('It has collation %s; Citus co-locates tables only when their distribution '
				'columns have the same collation, and meter.events'' tenant_id is COLLATE "C".',
				COALESCE(pg_catalog.quote_ident(coll), 'none')),
			HINT = format('Run ALTER TABLE %s ALTER COLUMN tenant_id TYPE text COLLATE "C" first.', tbl);
	END IF;
	-- (Not the TRUNCATE one: a copy does not fire it, and Citus does not pass ENABLE TRIGGER
	-- on to the shards' TRUNCATE triggers.)
	off := ARRAY(SELECT g.tgname FROM pg_catalog.pg_trigger g WHERE g.tgrelid = tbl
		AND g.tgname IN ('meter_track_insert', 'meter_track_update', 'meter_track_delete')
		AND g.tgenabled <> 'D');
	FOREACH trg IN ARRAY off LOOP
		EXECUTE pg_catalog.format('ALTER TABLE %s DISABLE TRIGGER %I', tbl, trg);
	END LOOP;
	IF tbl = 'meter.events'::regclass THEN
		PERFORM pg_catalog.create_distributed_table(tbl, 'tenant_id', shard_count => shard_count);
	ELSE
		PERFORM pg_catalog.create_distributed_table(tbl, 'tenant_id', colocate_with => 'meter.events');
	END IF;
	-- The rows now live in the shards; drop the coordinator's local copy.
	PERFORM pg_catalog.truncate_local_data_after_distributing_table(tbl);
	FOREACH trg IN ARRAY off LOOP
		EXECUTE pg_catalog.format('ALTER TABLE %s ENABLE TRIGGER %I', tbl, trg);
	END LOOP;
END $$;
COMMENT ON FUNCTION meter.distribute_table(regclass, integer) IS
	'Internal: distribute one table by tenant_id, co-located with meter.events, without counting its rows again';

CREATE FUNCTION meter.distribute(shard_count integer DEFAULT NULL) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	version text := (SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'meter');
	node record;
	tbl regclass;
	trg text;
	off text[];
	saved meter.tracked_tables[];
	r meter.tracked_tables;
	fn regprocedure;
BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'citus') THEN
		RAISE EXCEPTION 'citus is not installed in this database' USING ERRCODE = '55000',
			HINT = 'Set shared_preload_libraries = ''citus'' and citus.enable_unsafe_triggers = on, restart, '
				'run CREATE EXTENSION citus and add the workers (README "Scaling out on Citus").';
	END IF;
	IF (SELECT groupid FROM pg_catalog.pg_dist_local_group) <> 0 THEN
		RAISE EXCEPTION 'meter.distribute() runs on the coordinator' USING ERRCODE = '55000',
			HINT = 'Connect to the coordinator and run it there.';
	END IF;
	IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_node WHERE groupid = 0) THEN
		RAISE EXCEPTION 'the coordinator is not in the Citus metadata' USING ERRCODE = '55000',
			DETAIL = 'Changes of meter.meters are validated and applied by triggers on the placement of '
				'every node, the coordinator''s included.',
			HINT = 'Run SELECT citus_set_coordinator_host(''<host>'', <port>) first.';
	END IF;
	IF pg_catalog.current_setting('citus.enable_unsafe_triggers') <> 'on' THEN
		RAISE EXCEPTION 'citus.enable_unsafe_triggers is off' USING ERRCODE = '55000',
			DETAIL = 'The tracking triggers must fire on the shards of the event tables.',
			HINT = 'Set citus.enable_unsafe_triggers = on in postgresql.conf on every node and reload.';
	END IF;
	FOR node IN SELECT * FROM pg_catalog.run_command_on_workers(
		$q$SELECT COALESCE((SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'meter'), 'none')$q$)
	LOOP
		IF NOT node.success OR node.result IS DISTINCT FROM version THEN
			RAISE EXCEPTION 'meter % is not installed on worker %:%', version, node.nodename, node.nodeport
				USING ERRCODE = '55000',
				DETAIL = format('It has %s.', node.result),
				HINT = 'Install the same build of meter on every node and run CREATE EXTENSION meter there.';
		END IF;
	END LOOP;

	-- Reference tables: the catalog (its triggers off during the copy: they would validate
	-- and recompute on every node), the seals, and the registry. The registry stores
	-- OIDs, which are per node: its rows are written again once it is distributed, so that
	-- every node resolves the table names itself.
	IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_partition WHERE logicalrelid = 'meter.meters'::regclass) THEN
		off := ARRAY(SELECT g.tgname FROM pg_catalog.pg_trigger g
			WHERE g.tgrelid = 'meter.meters'::regclass AND NOT g.tgisinternal AND g.tgenabled <> 'D'
				AND g.tgname IN ('meters_validate', 'meters_rollups'));
		FOREACH trg IN ARRAY off LOOP
			EXECUTE pg_catalog.format('ALTER TABLE meter.meters DISABLE TRIGGER %I', trg);
		END LOOP;
		PERFORM pg_catalog.create_reference_table('meter.meters');
		PERFORM pg_catalog.truncate_local_data_after_distributing_table('meter.meters');
		FOREACH trg IN ARRAY off LOOP
			EXECUTE pg_catalog.format('ALTER TABLE meter.meters ENABLE TRIGGER %I', trg);
		END LOOP;
	END IF;
	IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_partition WHERE logicalrelid = 'meter.seals'::regclass) THEN
		PERFORM pg_catalog.create_reference_table('meter.seals');
		PERFORM pg_catalog.truncate_local_data_after_distributing_table('meter.seals');
	END IF;
	saved := ARRAY(SELECT t FROM meter.tracked_tables t ORDER BY t.relid::pg_catalog.oid);
	IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_partition WHERE logicalrelid = 'meter.tracked_tables'::regclass) THEN
		DELETE FROM meter.tracked_tables;
		PERFORM pg_catalog.create_reference_table('meter.tracked_tables');
		PERFORM pg_catalog.truncate_local_data_after_distributing_table('meter.tracked_tables');
	ELSE
		saved := NULL;
	END IF;

	-- Distributed tables, one co-location group: the events, the stored usage, and every
	-- tracked table of the users'.
	PERFORM meter.distribute_table('meter.events', shard_count);
	FOREACH tbl IN ARRAY ARRAY['meter.pending', 'meter.rollups', 'meter.sealed_skips']::regclass[] LOOP
		PERFORM meter.distribute_table(tbl);
	END LOOP;
	FOR tbl IN SELECT t.relid FROM pg_catalog.unnest(saved) t
		UNION SELECT t.relid FROM meter.tracked_tables t
	LOOP
		PERFORM meter.distribute_table(tbl);
	END LOOP;
	-- Now that every tracked table exists on every node.
	FOREACH r IN ARRAY COALESCE(saved, '{}') LOOP
		INSERT INTO meter.tracked_tables (relid, tracked_at, tracked_by)
			VALUES (r.relid, r.tracked_at, r.tracked_by);
	END LOOP;

	-- Functions of a tenant's scope run on the node holding its shards (src/forward.h).
	FOR fn IN SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p
		WHERE p.pronamespace = 'meter'::regnamespace AND p.prosrc = 'meter_at'
			AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_object o
				WHERE o.classid = 'pg_catalog.pg_proc'::regclass AND o.objid = p.oid
					AND o.distribution_argument_index IS NOT NULL)
		ORDER BY 1
	LOOP
		PERFORM pg_catalog.create_distributed_function(fn, 'tenant',
			colocate_with => 'meter.events', force_delegation => true);
	END LOOP;
	IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_object o
			WHERE o.classid = 'pg_catalog.pg_proc'::regclass
				AND o.objid = 'meter.lock_tenant(text)'::regprocedure
				AND o.distribution_argument_index IS NOT NULL) THEN
		PERFORM pg_catalog.create_distributed_function('meter.lock_tenant(text)', 'tenant',
			colocate_with => 'meter.events', force_delegation => true);
	END IF;
END $$;
COMMENT ON FUNCTION meter.distribute(integer) IS
	'On a Citus coordinator: meters, seals and the tracked-tables registry become reference tables; events, '
	'stored usage and every tracked table are distributed by tenant_id, co-located; the functions of a '
	'tenant''s scope run on its node. Idempotent; owner only';

REVOKE EXECUTE ON FUNCTION meter.distribute_table(regclass, integer) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION meter.distribute(integer) FROM PUBLIC;
