
-- ── Tracking: events → pending partial states (SPEC §7) ─────────────────────────────
-- SECURITY DEFINER: whoever may insert, update or delete events (row-level security on
-- the event table decides which) gets the usage of exactly those rows kept, without
-- needing write access to the engine's tables themselves.
CREATE FUNCTION meter.track_usage() RETURNS trigger
	AS 'MODULE_PATHNAME', 'meter_track_usage' LANGUAGE C
	SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION meter.track_usage() IS
	'Trigger keeping usage exact: AFTER … FOR EACH ROW, statement-level with transition tables, or BEFORE TRUNCATE';

CREATE FUNCTION meter.check_event_table(tbl regclass) RETURNS void
	AS 'MODULE_PATHNAME', 'meter_check_event_table' LANGUAGE C STABLE STRICT;
COMMENT ON FUNCTION meter.check_event_table(regclass) IS
	'Error unless a table has the event columns of meter.events with their types (42703 missing, 42804 other type)';

CREATE FUNCTION meter.lock_tenant(tenant text) RETURNS void
	AS 'MODULE_PATHNAME', 'meter_lock_tenant' LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION meter.lock_tenant(text) IS
	'Exclusive per-tenant lock until commit: waits for in-flight tracking of the tenant''s events';

CREATE FUNCTION meter.rebuild_all() RETURNS bigint
	AS 'MODULE_PATHNAME', 'meter_rebuild_all' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION meter.rebuild_all() IS
	'Recompute every published meter of every tenant and environment the caller can see; returns how many';

CREATE TRIGGER meter_track_insert AFTER INSERT ON meter.events
	REFERENCING NEW TABLE AS meter_new FOR EACH STATEMENT EXECUTE FUNCTION meter.track_usage();
CREATE TRIGGER meter_track_update AFTER UPDATE ON meter.events
	REFERENCING OLD TABLE AS meter_old NEW TABLE AS meter_new
	FOR EACH STATEMENT EXECUTE FUNCTION meter.track_usage();
CREATE TRIGGER meter_track_delete AFTER DELETE ON meter.events
	REFERENCING OLD TABLE AS meter_old FOR EACH STATEMENT EXECUTE FUNCTION meter.track_usage();
CREATE TRIGGER meter_track_truncate BEFORE TRUNCATE ON meter.events
	FOR EACH STATEMENT EXECUTE FUNCTION meter.track_usage();

-- ── Meter changes keep usage in line (SPEC §6) ──────────────────────────────────────
-- SECURITY DEFINER for the same reason: a role that may define a meter gets its usage
-- recomputed without write access to the engine's tables.
CREATE FUNCTION meter.on_meter_change() RETURNS trigger
	AS 'MODULE_PATHNAME', 'meter_on_meter_change' LANGUAGE C
	SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION meter.on_meter_change() IS
	'Recomputes a created, redefined or re-published meter from the raw events; forgets a deleted meter''s usage';
CREATE TRIGGER meters_rollups AFTER INSERT OR UPDATE OR DELETE ON meter.meters
	FOR EACH ROW EXECUTE FUNCTION meter.on_meter_change();

-- ── rebuild and verify (SPEC §8) ────────────────────────────────────────────────────
CREATE TYPE meter.rebuilt AS (meter_id text, events bigint, rollups bigint);
COMMENT ON TYPE meter.rebuilt IS
	'A meter meter.rebuild() recomputed: the events it counted and the compacted rows it holds';
CREATE TYPE meter.difference AS (meter_id text, customer_id text, external_customer_id text,
	bucket timestamptz, what text, stored text, expected text);
COMMENT ON TYPE meter.difference IS
	'A stored partial state meter.verify() found different from the raw events: where (customer ids NULL: '
	'all customers together), what, stored and expected';

CREATE FUNCTION meter.rebuild(meter_id text DEFAULT NULL) RETURNS SETOF meter.rebuilt
	AS 'MODULE_PATHNAME', 'meter_rebuild' LANGUAGE C VOLATILE
	SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION meter.rebuild(text) IS
	'Recompute one published meter (or all of the current scope) from the raw events of every tracked table';

CREATE FUNCTION meter.verify(meter_id text DEFAULT NULL)
RETURNS SETOF meter.difference
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET enable_nestloop = off SET jit = off AS $$
DECLARE
	t text := meter.current_tenant();
	e text := meter.current_environment();
	sealed timestamptz := meter.sealed_before();
	m record;
	lvl boolean;
BEGIN
	-- On a Citus cluster: where the tenant's rows are, in one snapshot (src/forward.h).
	IF meter.tenant_elsewhere() THEN
		RETURN QUERY SELECT * FROM meter.verify_at(verify.meter_id, t, e);
		RETURN;
	END IF;
	IF verify.meter_id IS NOT NULL THEN
		PERFORM meter.get_meter(verify.meter_id);
	END IF;
	FOR m IN SELECT x.id FROM meter.meters x WHERE x.tenant_id = t AND x.environment_id = e
		AND x.status = 'published' AND (verify.meter_id IS NULL OR x.id = verify.meter_id)
		ORDER BY x.id
	LOOP
		FOREACH lvl IN ARRAY ARRAY[false, true] LOOP
			RETURN QUERY
			WITH s AS (SELECT x.*, COALESCE(x.customer_id, '') AS c, COALESCE(x.external_customer_id, '') AS xc
					FROM meter.stored_slots(m.id, lvl) x),
				f AS (SELECT x.*, COALESCE(x.customer_id, '') AS c, COALESCE(x.external_customer_id, '') AS xc
					FROM meter.expected_slots(m.id, lvl) x),
				marked AS (SELECT DISTINCT s.customer_id, s.external_customer_id, s.slot FROM s WHERE s.marked)
			SELECT m.id, COALESCE(s.customer_id, f.customer_id), COALESCE(s.external_customer_id, f.external_customer_id),
				COALESCE(s.slot, f.slot),
				d.what || CASE WHEN COALESCE(s.dims, f.dims) <> '' THEN ' [' || COALESCE(s.dims, f.dims) || ']' ELSE '' END,
				d.stored, d.expected
			FROM s FULL JOIN f ON s.c = f.c AND s.xc = f.xc AND s.slot = f.slot AND s.dims = f.dims
			CROSS JOIN LATERAL (VALUES
				('events', s.events::text, f.events::text, s.events IS DISTINCT FROM f.events),
				('n', s.n::text, f.n::text, s.n IS DISTINCT FROM f.n),
				('sum', s.sum::text, f.sum::text, COALESCE(s.sum, 0) IS DISTINCT FROM COALESCE(f.sum, 0)),
				('sum_vt', s.sum_vt::text, f.sum_vt::text, COALESCE(s.sum_vt, 0) IS DISTINCT FROM COALESCE(f.sum_vt, 0)),
				('best', s.best::text, f.best::text, s.best IS DISTINCT FROM f.best),
				('best_at', s.best_at::text, f.best_at::text, s.best_at IS DISTINCT FROM f.best_at),
				('uniques', s.uniques::text, f.uniques::text, s.uniques IS DISTINCT FROM f.uniques),
				('maxima', s.maxima::text, f.maxima::text, s.maxima IS DISTINCT FROM f.maxima)
			) AS d(what, stored, expected, differs)
			WHERE d.differs AND COALESCE(s.slot, f.slot) >= sealed AND NOT EXISTS (SELECT 1 FROM marked k
				WHERE k.slot = COALESCE(s.slot, f.slot)
					AND (lvl OR (k.customer_id = COALESCE(s.customer_id, f.customer_id)
						AND k.external_customer_id = COALESCE(s.external_customer_id, f.external_customer_id))))
			ORDER BY 2, 3, 4, 5;
		END LOOP;
	END LOOP;
END $$;
COMMENT ON FUNCTION meter.verify(text) IS
	'Every stored partial state of the published meters of the current scope that differs from a '
	'recomputation from the raw events (in SQL alone), sealed time left alone; empty when all is well';

-- ── Tracking users' own event tables (SPEC §7) ──────────────────────────────────────
-- The four tracking triggers on one table: statement-level with transition tables for
-- INSERT, UPDATE and DELETE, and BEFORE TRUNCATE. A partitioned table gets them on every
-- partition too (writes straight into a partition fire the partition's own statement
-- triggers, not the parent's).
CREATE FUNCTION meter.attach_triggers(tbl regclass) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	hand name;
BEGIN
	-- A trigger attached by hand (what the 55000 error of an unregistered table leads to)
	-- would count every row a second time: these four replace it.
	FOR hand IN SELECT g.tgname FROM pg_trigger g
		WHERE g.tgrelid = tbl AND g.tgfoid = 'meter.track_usage()'::regprocedure AND g.tgparentid = 0
			AND g.tgname NOT IN ('meter_track_insert', 'meter_track_update', 'meter_track_delete', 'meter_track_truncate')
	LOOP
		RAISE NOTICE 'dropping trigger % on %: meter.track() attaches its own', hand, tbl;
		EXECUTE format('DROP TRIGGER %I ON %s', hand, tbl);
	END LOOP;
	EXECUTE format('CREATE TRIGGER meter_track_insert AFTER INSERT ON %s REFERENCING NEW TABLE AS meter_new FOR EACH STATEMENT EXECUTE FUNCTION meter.track_usage()', tbl);
	EXECUTE format('CREATE TRIGGER meter_track_update AFTER UPDATE ON %s REFERENCING OLD TABLE AS meter_old NEW TABLE AS meter_new FOR EACH STATEMENT EXECUTE FUNCTION meter.track_usage()', tbl);
	EXECUTE format('CREATE TRIGGER meter_track_delete AFTER DELETE ON %s REFERENCING OLD TABLE AS meter_old FOR EACH STATEMENT EXECUTE FUNCTION meter.track_usage()', tbl);
	EXECUTE format('CREATE TRIGGER meter_track_truncate BEFORE TRUNCATE ON %s FOR EACH STATEMENT EXECUTE FUNCTION meter.track_usage()', tbl);
END $$;
COMMENT ON FUNCTION meter.attach_triggers(regclass) IS
	'Internal: create the four tracking triggers on one table';

CREATE FUNCTION meter.detach_triggers(tbl regclass) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	EXECUTE format('DROP TRIGGER IF EXISTS meter_track_insert ON %s', tbl);
	EXECUTE format('DROP TRIGGER IF EXISTS meter_track_update ON %s', tbl);
	EXECUTE format('DROP TRIGGER IF EXISTS meter_track_delete ON %s', tbl);
	EXECUTE format('DROP TRIGGER IF EXISTS meter_track_truncate ON %s', tbl);
END $$;
COMMENT ON FUNCTION meter.detach_triggers(regclass) IS
	'Internal: drop the four tracking triggers from one table';

-- A table and every partition below it (pg_partition_tree lists nothing for a table that
-- is not partitioned).
CREATE FUNCTION meter.table_tree(tbl regclass) RETURNS TABLE (relid regclass)
LANGUAGE sql STABLE STRICT AS $$
	SELECT tbl UNION SELECT t.relid FROM pg_catalog.pg_partition_tree(tbl) t
$$;
COMMENT ON FUNCTION meter.table_tree(regclass) IS
	'Internal: a table and every partition below it';

CREATE FUNCTION meter.track(tbl regclass) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF (SELECT relkind FROM pg_class WHERE oid = tbl) NOT IN ('r', 'p') THEN
		RAISE EXCEPTION '% is not a table', tbl USING ERRCODE = '42809',
			HINT = 'Track the table the events are inserted into.';
	END IF;
	PERFORM meter.check_event_table(tbl);
	IF EXISTS (SELECT 1 FROM meter.tracked_tables WHERE relid = tbl) THEN
		RAISE NOTICE 'table % is already tracked', tbl;
		RETURN;
	END IF;
	IF pg_partition_root(tbl) <> tbl AND EXISTS (SELECT 1 FROM meter.tracked_tables
		WHERE relid = pg_partition_root(tbl)) THEN
		RAISE NOTICE 'table % is tracked as a partition of %', tbl, pg_partition_root(tbl);
		RETURN;
	END IF;
	-- Rows written through the parent fire the parent's statement triggers, not the
	-- partition's: a partition is tracked through its root, with every other partition.
	IF pg_partition_root(tbl) <> tbl THEN
		RAISE EXCEPTION 'table % is a partition of %', tbl, pg_partition_root(tbl) USING ERRCODE = '22023',
			DETAIL = 'Rows inserted through the partitioned table would not be counted.',
			HINT = format('Run SELECT meter.track(%L): it tracks every partition.', pg_partition_root(tbl)::text);
	END IF;
	-- Citus creates a table's TRUNCATE triggers on its shards only when they exist before
	-- the table is distributed (and DROP TRIGGER leaves them there): meter.track
	-- distributes the tables it tracks itself, and takes back one it tracked before.
	IF meter.distributed() THEN
		IF EXISTS (SELECT 1 FROM pg_catalog.pg_dist_partition p WHERE p.logicalrelid = tbl)
			AND EXISTS (SELECT 1 FROM pg_catalog.run_command_on_shards(tbl,
				$q$SELECT count(*) FROM pg_catalog.pg_trigger WHERE tgrelid = '%s'::pg_catalog.regclass
					AND tgname LIKE 'meter\_track\_truncate\_%%'$q$) r
				WHERE NOT r.success OR r.result <> '1') THEN
			RAISE EXCEPTION 'table % is distributed already', tbl USING ERRCODE = '55000',
				DETAIL = 'Its shards lack the tracking trigger for TRUNCATE, which Citus creates on the '
					'shards only when the table is distributed.',
				HINT = format('Run SELECT undistribute_table(%L) first: meter.track() distributes it, co-located with meter.events.', tbl);
		END IF;
	END IF;
	-- On a Citus cluster: one connection per node for the whole transaction, so that the
	-- recomputation below, which runs on the workers, sees everything this transaction did
	-- there (the triggers, the shards and rows of the distributed table, the registry).
	IF meter.distributed() THEN
		PERFORM pg_catalog.set_config('citus.multi_shard_modify_mode', 'sequential', true);
	END IF;
	PERFORM meter.attach_triggers(t.relid) FROM meter.table_tree(tbl) t;
	-- On a Citus cluster the table joins meter.events' co-location group (its triggers
	-- then fire on its shards, where the tenant's usage is kept).
	IF meter.distributed() THEN
		PERFORM meter.distribute_table(tbl);
	END IF;
	INSERT INTO meter.tracked_tables (relid) VALUES (tbl);
	-- The table's existing events now count: bring every meter in line.
	PERFORM meter.rebuild_all();
END $$;
COMMENT ON FUNCTION meter.track(regclass) IS
	'Check a table''s event columns, attach meter.track_usage() (to its partitions too) and count its events in every meter''s usage';

CREATE FUNCTION meter.untrack(tbl regclass) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF tbl = 'meter.events'::regclass THEN
		RAISE EXCEPTION 'meter.events is always tracked' USING ERRCODE = '22023',
			HINT = 'Leave it empty if your events live in a table of your own.';
	END IF;
	IF NOT EXISTS (SELECT 1 FROM meter.tracked_tables WHERE relid = tbl) THEN
		RAISE EXCEPTION 'table % is not tracked', tbl USING ERRCODE = '22023',
			HINT = 'SELECT relid FROM meter.tracked_tables lists the tracked tables.';
	END IF;
	IF meter.distributed() THEN
		PERFORM pg_catalog.set_config('citus.multi_shard_modify_mode', 'sequential', true);
	END IF;
	PERFORM meter.detach_triggers(t.relid) FROM meter.table_tree(tbl) t;
	DELETE FROM meter.tracked_tables WHERE relid = tbl;
	PERFORM meter.rebuild_all();
END $$;
COMMENT ON FUNCTION meter.untrack(regclass) IS
	'Detach meter.track_usage() from a table (and its partitions) and take its events out of every meter''s usage';

-- ── DDL on tracked tables (SPEC §7) ─────────────────────────────────────────────────
-- ALTER TABLE that breaks an event column of a tracked table is refused; partitions
-- attached, created or detached follow their parent; a dropped tracked table (or
-- partition) leaves usage. SECURITY DEFINER: a table's owner runs the DDL, the extension
-- owner keeps the registry and the stored usage. on_ddl_end names tables by the OIDs
-- PostgreSQL collected for the statement, never by name: its search_path is pinned.
CREATE FUNCTION meter.on_ddl_end() RETURNS event_trigger
	AS 'MODULE_PATHNAME', 'meter_on_ddl_end' LANGUAGE C SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION meter.on_ddl_end() IS
	'Event trigger: keeps tracked tables'' event columns, and their partitions'' tracking, intact';
CREATE EVENT TRIGGER meter_ddl_end ON ddl_command_end WHEN TAG IN ('ALTER TABLE', 'CREATE TABLE')
	EXECUTE FUNCTION meter.on_ddl_end();

CREATE FUNCTION meter.on_sql_drop() RETURNS event_trigger
	AS 'MODULE_PATHNAME', 'meter_on_sql_drop' LANGUAGE C
	SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION meter.on_sql_drop() IS
	'Event trigger: a dropped tracked table (or partition) leaves the registry and usage';
CREATE EVENT TRIGGER meter_sql_drop ON sql_drop EXECUTE FUNCTION meter.on_sql_drop();

-- ── Matching meters (SPEC §3) ───────────────────────────────────────────────────────
CREATE FUNCTION meter.matching_meters(event_name text, properties jsonb)
	RETURNS SETOF meter.meters
	AS 'MODULE_PATHNAME', 'meter_matching_meters' LANGUAGE C STABLE STRICT;
COMMENT ON FUNCTION meter.matching_meters(text, jsonb) IS
	'The published meters of the current scope that count an event of this name and properties';

CREATE FUNCTION meter.explain_match(meter_id text, event_name text, properties jsonb)
	RETURNS text
	AS 'MODULE_PATHNAME', 'meter_explain_match' LANGUAGE C STABLE STRICT;
COMMENT ON FUNCTION meter.explain_match(text, text, jsonb) IS
	'Why an event does or does not count for a meter, in words';
