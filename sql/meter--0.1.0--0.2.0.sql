\echo Use "ALTER EXTENSION meter UPDATE" to load this file. \quit
-- meter 0.1.0 → 0.2.0: brings a 0.1.0 database to exactly the schema of a fresh 0.2.0
-- (the same objects, definitions, comments, privileges, policies, triggers, event
-- triggers and pg_dump registrations; test/e2e/upgrade.sh compares both), and moves the
-- stored usage to 0.2.0's engine so that every meter, event and usage value stays as it
-- was (CHANGELOG.md, README "Upgrading"):
--   1. 0.1.0's rollup tables step aside under legacy names; its SQL engine goes.
--   2. 0.2.0's objects are created, or replaced where 0.1.0 had them (statements taken
--      from sql/install/ as 0.2.0 has them).
--   3. Data: padded meter names are stored trimmed (0.2.0's rule; updated_at and
--      updated_by stay); tracked tables get 0.2.0's triggers (BEFORE TRUNCATE); the
--      frozen usage of archived and deleted meters is converted from 0.1.0's rollups into
--      0.2.0 partial states; every published meter is recomputed from its raw events.
--   4. Roles granted access under 0.1.0 get the same access to the new tables and
--      functions; the legacy tables go; the event triggers come last.
-- Runs in one transaction (ALTER EXTENSION): on any error nothing has changed.

-- ── 1. 0.1.0's stored usage steps aside ─────────────────────────────────────────────
-- Kept, with their data and privileges, until step 3 has read them.
ALTER VIEW meter.skipped RENAME TO legacy_skipped;
ALTER TABLE meter.rollups RENAME TO legacy_rollups;
ALTER INDEX meter.rollups_pkey RENAME TO legacy_rollups_pkey;
ALTER INDEX meter.rollups_customer_idx RENAME TO legacy_rollups_customer_idx;
ALTER TABLE meter.rollup_values RENAME TO legacy_rollup_values;
ALTER INDEX meter.rollup_values_pkey RENAME TO legacy_rollup_values_pkey;
ALTER INDEX meter.rollup_values_customer_idx RENAME TO legacy_rollup_values_customer_idx;

-- 0.1.0's engine in SQL: 0.2.0 does all of it in C.
DROP FUNCTION meter.refresh_rollups(text[], text[], text[], timestamptz[]);
DROP FUNCTION meter.rollups_from_events(text, timestamptz, timestamptz, regclass);
DROP FUNCTION meter.rollup_values_from_events(text, timestamptz, timestamptz, regclass);
DROP FUNCTION meter.usage_compute(meter.meters, timestamptz, timestamptz, text, text,
	meter.window_size, text, timestamptz, boolean, regclass);
DROP FUNCTION meter.usage_value(meter.aggregation, timestamptz, timestamptz, numeric,
	numeric, numeric, numeric, numeric, numeric, numeric, numeric, numeric, numeric, numeric);
DROP FUNCTION meter.events_query(regclass[]);
DROP FUNCTION meter.event_tables(regclass);
DROP FUNCTION meter.bucket_sql(text);

-- ── 2. 0.2.0's objects ──────────────────────────────────────────────────────────────
-- (From here on the library serves the 0.2.0 engine: meter.pending exists; see src/legacy.c.)

-- meter.aggregation (sql/install/21_aggregation.sql): expression and group_by
COMMENT ON FUNCTION meter.aggregation_out(meter.aggregation) IS
	'Text output of meter.aggregation: canonical JSON (keys type, field, expression, multiplier, bucket_size, group_by)';
COMMENT ON TYPE meter.aggregation IS
	'How a meter aggregates: {"type":"SUM","field":"tokens"} (type, field, expression, multiplier, bucket_size, group_by)';
COMMENT ON FUNCTION meter.aggregation_cmp(meter.aggregation, meter.aggregation) IS
	'Order of two values of meter.aggregation: -1, 0 or 1 (by type (enum order), then field, expression, multiplier, bucket_size, group_by)';
CREATE FUNCTION meter.expression_of(meter.aggregation) RETURNS text
	AS 'MODULE_PATHNAME', 'meter_aggregation_expression_of' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION meter.expression_of(meter.aggregation) IS
	'The expression that computes each event''s value (as written, trimmed); NULL when none';
CREATE FUNCTION meter.group_by_of(meter.aggregation) RETURNS text
	AS 'MODULE_PATHNAME', 'meter_aggregation_group_by_of' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION meter.group_by_of(meter.aggregation) IS
	'The property a bucketed MAX aggregation groups by (per-group maxima summed); NULL when none';

-- Property values (sql/install/23_values.sql)
CREATE FUNCTION meter.quantity(aggregation meter.aggregation, properties jsonb) RETURNS numeric
	AS 'MODULE_PATHNAME', 'meter_quantity' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION meter.quantity(meter.aggregation, jsonb) IS
	'What one event contributes to the aggregation, before the multiplier or time weight: 1 for COUNT, '
	'NULL for COUNT_UNIQUE, else the field''s usable number or the expression''s value; NULL when the event is skipped';

-- Repository (sql/install/40_repository.sql): disable_meter and update_meter set the
-- stamps in their statements.
CREATE OR REPLACE FUNCTION meter.disable_meter(id text)
RETURNS meter.meters
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	tenant text := meter.current_tenant();
	environment text := meter.current_environment();
	changed meter.meters;
BEGIN
	IF disable_meter.id IS NULL THEN
		RAISE EXCEPTION 'id is required'
			USING ERRCODE = 'invalid_parameter_value',
				DETAIL = 'The meter id is NULL.',
				HINT = 'Pass the id of a meter; meter.list_meters() shows the meters of the current scope.';
	END IF;
	-- The stamps are set here as well as by the catalog trigger: on a Citus cluster the
	-- statement carries them, evaluated once, on the coordinator (README "Scaling out").
	UPDATE meter.meters AS m SET status = 'archived', updated_at = pg_catalog.now(),
		updated_by = meter.current_user_id()
	WHERE m.id = disable_meter.id AND m.tenant_id = tenant AND m.environment_id = environment
		AND m.status = 'published'
	RETURNING m.* INTO changed;
	IF FOUND THEN
		RETURN changed;
	END IF;
	-- Already archived: nothing to do (idempotent; updated_at stays).
	SELECT m.* INTO changed
	FROM meter.meters AS m
	WHERE m.id = disable_meter.id AND m.tenant_id = tenant AND m.environment_id = environment
		AND m.status = 'archived';
	IF NOT FOUND THEN
		RAISE EXCEPTION 'meter "%" not found', disable_meter.id
			USING ERRCODE = 'no_data_found',
				DETAIL = format('No meter with this id exists in tenant %s, environment %s (deleted meters count as not found).',
					pg_catalog.to_json(tenant), pg_catalog.to_json(environment)),
				HINT = 'Check the id and the settings meter.tenant_id and meter.environment_id; meter.list_meters() shows the meters of the current scope.';
	END IF;
	RETURN changed;
END
$$;
COMMENT ON FUNCTION meter.disable_meter(text) IS
	'DisableMeter: status archived (stops counting; usage history stays); idempotent. Errors: 55000 no tenant, P0002 unknown or deleted';
CREATE OR REPLACE FUNCTION meter.update_meter(id text, filters meter.filters)
RETURNS meter.meters
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	tenant text := meter.current_tenant();
	environment text := meter.current_environment();
	changed meter.meters;
BEGIN
	IF update_meter.id IS NULL THEN
		RAISE EXCEPTION 'id is required'
			USING ERRCODE = 'invalid_parameter_value',
				DETAIL = 'The meter id is NULL.',
				HINT = 'Pass the id of a meter; meter.list_meters() shows the meters of the current scope.';
	END IF;
	IF update_meter.filters IS NULL THEN
		RAISE EXCEPTION 'filters cannot be null'
			USING ERRCODE = 'invalid_parameter_value',
				DETAIL = 'update_meter replaces the meter''s filters with the ones given.',
				HINT = 'Use ''[]'' for a meter that counts every event of its event name.';
	END IF;
	UPDATE meter.meters AS m SET filters = update_meter.filters, updated_at = pg_catalog.now(),
		updated_by = meter.current_user_id()
	WHERE m.id = update_meter.id AND m.tenant_id = tenant AND m.environment_id = environment
		AND m.status <> 'deleted'
	RETURNING m.* INTO changed;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'meter "%" not found', update_meter.id
			USING ERRCODE = 'no_data_found',
				DETAIL = format('No meter with this id exists in tenant %s, environment %s (deleted meters count as not found).',
					pg_catalog.to_json(tenant), pg_catalog.to_json(environment)),
				HINT = 'Check the id and the settings meter.tenant_id and meter.environment_id; meter.list_meters() shows the meters of the current scope.';
	END IF;
	RETURN changed;
END
$$;
COMMENT ON FUNCTION meter.update_meter(text, meter.filters) IS
	'UpdateMeter: replaces the filters (''[]'' allowed) of a published or archived meter. Errors: 55000 no tenant, 22023 NULL filters, P0002 unknown or deleted';

-- The registry's test for dropped tables (sql/install/55_tracked.sql)
CREATE FUNCTION meter.table_exists(relid oid) RETURNS boolean
	AS 'MODULE_PATHNAME', 'meter_table_exists' LANGUAGE C IMMUTABLE STRICT;
COMMENT ON FUNCTION meter.table_exists(oid) IS
	'Internal: does this node have a relation with this OID (the registry''s test for dropped tables)';

-- sql/install/57_partitioning.sql, whole but for its event triggers (created last, below):
-- meter.events stays a plain table; meter.event_ids stays empty until partition_events().
-- ── Partitioned meter.events (SPEC §7; README "Partitioning and retention") ──────────
-- meter.partition_events() turns meter.events, once, into a table partitioned by RANGE
-- ("timestamp"); its partitions are the user's (by hand or with pg_partman). A partitioned
-- table's unique indexes must contain the partition key, but the dedup is by id alone,
-- whatever the timestamp, forever. So the partitioned table's primary key is
-- (tenant_id, environment_id, id, "timestamp") and the dedup moves to meter.event_ids:
-- exactly the (tenant_id, environment_id, id) of the rows meter.events holds, kept in step
-- by statement-level triggers on meter.events and on each of its partitions (transition
-- tables, one set-based statement per statement) and by event triggers for partitions
-- created, attached, detached and dropped. Its primary key is the global unique index:
-- a re-sent id fails with 23505 (constraint event_ids_pkey) at the end of the statement.
-- While meter.events is a plain table, meter.event_ids stays empty and costs nothing.
CREATE TABLE meter.event_ids (
	tenant_id text COLLATE "C" NOT NULL,
	environment_id text COLLATE "C" NOT NULL,
	id text COLLATE "C" NOT NULL,
	PRIMARY KEY (tenant_id, environment_id, id)
);
COMMENT ON TABLE meter.event_ids IS
	'The ids of the events a partitioned meter.events holds (one row each): its primary key is the dedup across partitions';
ALTER TABLE meter.event_ids ENABLE ROW LEVEL SECURITY;
CREATE POLICY event_ids_scope ON meter.event_ids
	USING (tenant_id OPERATOR(pg_catalog.=) pg_catalog.current_setting('meter.tenant_id', true)
		AND environment_id OPERATOR(pg_catalog.=) COALESCE(pg_catalog.current_setting('meter.environment_id', true), ''));
SELECT pg_catalog.pg_extension_config_dump('meter.event_ids', '');

-- The trigger keeping meter.event_ids in step, for one statement on meter.events or one
-- of its partitions. UPDATE: the keys that left go, the keys that came are added
-- (EXCEPT ALL: an id given to two rows is a duplicate). The statements that join the
-- transition table to meter.event_ids run through EXECUTE, planned for each statement with
-- its real number of rows (a cached plan made for a big statement would read all of
-- meter.event_ids for every small one). SECURITY DEFINER: writers of events need no write
-- access to meter.event_ids.
CREATE FUNCTION meter.event_ids_sync() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF TG_OP OPERATOR(pg_catalog.=) 'INSERT' THEN
		INSERT INTO meter.event_ids (tenant_id, environment_id, id)
		SELECT n.tenant_id, n.environment_id, n.id FROM meter_new n;
	ELSIF TG_OP OPERATOR(pg_catalog.=) 'DELETE' THEN
		EXECUTE 'DELETE FROM meter.event_ids i USING meter_old o'
			' WHERE i.tenant_id OPERATOR(pg_catalog.=) o.tenant_id'
			' AND i.environment_id OPERATOR(pg_catalog.=) o.environment_id AND i.id OPERATOR(pg_catalog.=) o.id';
	ELSIF TG_OP OPERATOR(pg_catalog.=) 'UPDATE' THEN
		EXECUTE 'DELETE FROM meter.event_ids i'
			' USING (SELECT o.tenant_id, o.environment_id, o.id FROM meter_old o'
			' EXCEPT SELECT n.tenant_id, n.environment_id, n.id FROM meter_new n) g'
			' WHERE i.tenant_id OPERATOR(pg_catalog.=) g.tenant_id'
			' AND i.environment_id OPERATOR(pg_catalog.=) g.environment_id AND i.id OPERATOR(pg_catalog.=) g.id';
		INSERT INTO meter.event_ids (tenant_id, environment_id, id)
		SELECT n.tenant_id, n.environment_id, n.id FROM meter_new n
		EXCEPT ALL SELECT o.tenant_id, o.environment_id, o.id FROM meter_old o;
	ELSE
		-- BEFORE TRUNCATE: each truncated table (the parent and every partition fire) lets
		-- go of its own rows' ids.
		EXECUTE pg_catalog.format('DELETE FROM meter.event_ids i USING ONLY %s e'
			' WHERE i.tenant_id OPERATOR(pg_catalog.=) e.tenant_id'
			' AND i.environment_id OPERATOR(pg_catalog.=) e.environment_id AND i.id OPERATOR(pg_catalog.=) e.id',
			TG_RELID::pg_catalog.regclass);
	END IF;
	RETURN NULL;
END $$;
COMMENT ON FUNCTION meter.event_ids_sync() IS
	'Internal: statement trigger keeping meter.event_ids equal to the ids a partitioned meter.events holds';

-- The row-level security policies of one table created on another (those it lacks).
CREATE FUNCTION meter.copy_policies(src regclass, dst regclass) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	p record;
BEGIN
	FOR p IN SELECT q.polname, q.polpermissive, q.polcmd, q.polroles,
			pg_get_expr(q.polqual, q.polrelid) AS qual, pg_get_expr(q.polwithcheck, q.polrelid) AS with_check
		FROM pg_policy q WHERE q.polrelid = src
			AND NOT EXISTS (SELECT 1 FROM pg_policy x WHERE x.polrelid = dst AND x.polname = q.polname)
		ORDER BY q.polname
	LOOP
		EXECUTE format('CREATE POLICY %I ON %s AS %s FOR %s TO %s%s%s', p.polname, dst,
			CASE WHEN p.polpermissive THEN 'PERMISSIVE' ELSE 'RESTRICTIVE' END,
			CASE p.polcmd WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT' WHEN 'w' THEN 'UPDATE'
				WHEN 'd' THEN 'DELETE' ELSE 'ALL' END,
			(SELECT string_agg(CASE WHEN r = 0 THEN 'PUBLIC' ELSE r::regrole::text END, ', ') FROM unnest(p.polroles) r),
			CASE WHEN p.qual IS NOT NULL THEN format(' USING (%s)', p.qual) ELSE '' END,
			CASE WHEN p.with_check IS NOT NULL THEN format(' WITH CHECK (%s)', p.with_check) ELSE '' END);
	END LOOP;
END $$;
COMMENT ON FUNCTION meter.copy_policies(regclass, regclass) IS
	'Internal: create on one table the row-level security policies of another that it lacks';

-- A partition joining the partitioned meter.events (created as a partition, attached, or
-- the partitions of meter.partition_events): the id triggers and the row-level security
-- of meter.events on it and every table below it; with claim, its rows' ids (a duplicate
-- fails with 23505, refusing the ATTACH).
CREATE FUNCTION meter.event_partition_joined(tbl regclass, claim boolean) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	t regclass;
BEGIN
	FOR t IN SELECT x.relid FROM meter.table_tree(tbl) x LOOP
		IF NOT EXISTS (SELECT 1 FROM pg_trigger g WHERE g.tgrelid = t AND g.tgname = 'meter_ids_insert') THEN
			EXECUTE format('CREATE TRIGGER meter_ids_insert AFTER INSERT ON %s REFERENCING NEW TABLE AS meter_new FOR EACH STATEMENT EXECUTE FUNCTION meter.event_ids_sync()', t);
			EXECUTE format('CREATE TRIGGER meter_ids_update AFTER UPDATE ON %s REFERENCING OLD TABLE AS meter_old NEW TABLE AS meter_new FOR EACH STATEMENT EXECUTE FUNCTION meter.event_ids_sync()', t);
			EXECUTE format('CREATE TRIGGER meter_ids_delete AFTER DELETE ON %s REFERENCING OLD TABLE AS meter_old FOR EACH STATEMENT EXECUTE FUNCTION meter.event_ids_sync()', t);
			EXECUTE format('CREATE TRIGGER meter_ids_truncate BEFORE TRUNCATE ON %s FOR EACH STATEMENT EXECUTE FUNCTION meter.event_ids_sync()', t);
		END IF;
		IF t <> 'meter.events'::regclass THEN
			-- Whoever is granted a partition itself reads it under meter.events' policies.
			EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', t);
			PERFORM meter.copy_policies('meter.events', t);
		END IF;
	END LOOP;
	IF claim THEN
		EXECUTE format('INSERT INTO meter.event_ids (tenant_id, environment_id, id) SELECT e.tenant_id, e.environment_id, e.id FROM %s e', tbl);
	END IF;
END $$;
COMMENT ON FUNCTION meter.event_partition_joined(regclass, boolean) IS
	'Internal: a partition joined the partitioned meter.events: id triggers and row-level security on it, and (claim) its rows'' ids';

-- A partition leaving the partitioned meter.events (detached, or about to be dropped): its
-- rows' ids go; detached, it loses the id triggers too.
CREATE FUNCTION meter.event_partition_left(tbl regclass, detached boolean) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	t regclass;
BEGIN
	EXECUTE format('DELETE FROM meter.event_ids i USING %s e WHERE i.tenant_id = e.tenant_id'
		' AND i.environment_id = e.environment_id AND i.id = e.id', tbl);
	IF detached THEN
		FOR t IN SELECT x.relid FROM meter.table_tree(tbl) x LOOP
			EXECUTE format('DROP TRIGGER IF EXISTS meter_ids_insert ON %s', t);
			EXECUTE format('DROP TRIGGER IF EXISTS meter_ids_update ON %s', t);
			EXECUTE format('DROP TRIGGER IF EXISTS meter_ids_delete ON %s', t);
			EXECUTE format('DROP TRIGGER IF EXISTS meter_ids_truncate ON %s', t);
		END LOOP;
	END IF;
END $$;
COMMENT ON FUNCTION meter.event_partition_left(regclass, boolean) IS
	'Internal: a partition left the partitioned meter.events (detached, or dropped): its rows'' ids go';

-- Partitions of meter.events created, attached, detached or dropped keep meter.event_ids
-- exact (C, src/partitioning.c): DROP TABLE is seen before it runs (the rows are still
-- there), the others after; other drops (DROP SCHEMA … CASCADE) at sql_drop. SECURITY DEFINER: whoever may run the DDL gets the extension
-- owner's triggers on the partition. The caller's search_path resolves the statement's
-- table names as the statement did (the queries it runs are schema-qualified).
CREATE FUNCTION meter.on_partition_ddl() RETURNS event_trigger
	AS 'MODULE_PATHNAME', 'meter_on_partition_ddl' LANGUAGE C SECURITY DEFINER;
COMMENT ON FUNCTION meter.on_partition_ddl() IS
	'Event trigger: partitions of a partitioned meter.events created, attached, detached or dropped keep meter.event_ids exact';

-- The index of the partitioned meter.events that a partition's index is attached to in a
-- restore, created ON ONLY meter.events after the partition's (a primary key as a primary
-- key); valid once every partition's index is attached.
CREATE FUNCTION meter.restore_events_index(parent_name text, child regclass) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	i pg_index;
	def text;
	head text;
BEGIN
	SELECT * INTO i FROM pg_index WHERE indexrelid = child;
	IF i.indisprimary THEN
		EXECUTE format('ALTER TABLE ONLY meter.events ADD CONSTRAINT %I %s', parent_name,
			(SELECT pg_get_constraintdef(c.oid) FROM pg_constraint c WHERE c.conindid = child AND c.contype = 'p'));
		RETURN;
	END IF;
	def := pg_get_indexdef(child);
	head := format('CREATE %sINDEX %s ON %s ', CASE WHEN i.indisunique THEN 'UNIQUE ' ELSE '' END,
		quote_ident((SELECT relname FROM pg_class WHERE oid = child)), i.indrelid::regclass);
	IF left(def, length(head)) <> head THEN
		RAISE EXCEPTION 'unexpected index definition: %', def USING ERRCODE = 'XX000';
	END IF;
	EXECUTE format('CREATE %sINDEX %I ON ONLY meter.events %s', CASE WHEN i.indisunique THEN 'UNIQUE ' ELSE '' END,
		parent_name, substr(def, length(head) + 1));
END $$;
COMMENT ON FUNCTION meter.restore_events_index(text, regclass) IS
	'Internal (restore): create the index of the partitioned meter.events that a partition''s index is attached to';

-- Run one statement as part of the extension (objects it creates become members, and
-- pg_extension_config_dump may be called), for partition_events. Extension owner only.
CREATE FUNCTION meter.run_as_member(statement text) RETURNS void
	AS 'MODULE_PATHNAME', 'meter_run_as_member' LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION meter.run_as_member(text) IS
	'Internal: run one statement as if from the extension''s script (its objects become members); extension owner only';

-- The swap behind meter.partition_events(default_partition). Runs as the caller, who must
-- own the extension (the swap of an extension table): checked by run_as_member first.
-- with_indexes false: the partitioned table gets no index of its own (a restore brings
-- them: see on_partition_ddl).
CREATE FUNCTION meter.convert_events(default_partition boolean, with_indexes boolean) RETURNS regclass
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	old_name CONSTANT text := 'events_before_partitioning';
	old regclass := 'meter.events';
	new regclass;
	idx record;
	defs text[] := '{}';
	d text;
	a record;
	c record;
	n bigint;
BEGIN
	IF (SELECT relkind FROM pg_class WHERE oid = old) = 'p' THEN
		RAISE NOTICE 'meter.events is partitioned already';
		RETURN old;
	END IF;
	PERFORM meter.run_as_member('SELECT 1');    -- 42501 unless the caller owns the extension
	LOCK TABLE meter.events IN ACCESS EXCLUSIVE MODE;
	IF EXISTS (SELECT 1 FROM pg_trigger g WHERE g.tgrelid = old AND NOT g.tgisinternal
			AND g.tgname NOT IN ('meter_track_insert', 'meter_track_update', 'meter_track_delete', 'meter_track_truncate')) THEN
		RAISE EXCEPTION 'meter.events has triggers of its own' USING ERRCODE = '55000',
			DETAIL = format('Triggers: %s.', (SELECT string_agg(g.tgname, ', ' ORDER BY g.tgname) FROM pg_trigger g
				WHERE g.tgrelid = old AND NOT g.tgisinternal AND g.tgname NOT LIKE 'meter\_track\_%')),
			HINT = 'Drop them, partition meter.events, and create them again.';
	END IF;
	FOR idx IN SELECT i.indexrelid::regclass AS name, i.indisunique, i.indisprimary
		FROM pg_index i WHERE i.indrelid = old ORDER BY i.indexrelid
	LOOP
		IF idx.indisunique AND NOT idx.indisprimary THEN
			RAISE EXCEPTION 'meter.events has a unique index of its own: %', idx.name USING ERRCODE = '55000',
				DETAIL = 'A unique index of a partitioned table must contain the partition key "timestamp".',
				HINT = 'Drop it (meter.event_ids keeps ids unique), or add "timestamp" to it, then partition meter.events.';
		END IF;
		IF NOT idx.indisprimary THEN
			defs := defs || pg_get_indexdef(idx.name);
		END IF;
	END LOOP;
	IF NOT default_partition AND EXISTS (SELECT 1 FROM meter.events) THEN
		RAISE EXCEPTION 'meter.events holds events: they need a partition' USING ERRCODE = '55000',
			DETAIL = 'Without the default partition the partitioned table would have nowhere to keep them.',
			HINT = 'Call meter.partition_events() (they go to meter.events_default); for pg_partman see the README.';
	END IF;

	-- The plain table steps aside (its indexes too: index names are per schema).
	EXECUTE format('ALTER TABLE meter.events RENAME TO %I', old_name);
	FOR idx IN SELECT i.indexrelid::regclass AS name, c2.relname FROM pg_index i JOIN pg_class c2 ON c2.oid = i.indexrelid
		WHERE i.indrelid = old
	LOOP
		EXECUTE format('ALTER INDEX %s RENAME TO %I', idx.name, left(idx.relname, 40) || '_before_partitioning');
	END LOOP;

	-- The partitioned table, a member of the extension (so pg_dump treats it as the
	-- extension's, and dumps its partitions' rows with the partitions).
	PERFORM meter.run_as_member(format('CREATE TABLE meter.events (LIKE meter.%I INCLUDING DEFAULTS'
		' INCLUDING CONSTRAINTS INCLUDING COMMENTS INCLUDING STORAGE INCLUDING COMPRESSION'
		' INCLUDING STATISTICS INCLUDING GENERATED INCLUDING IDENTITY) PARTITION BY RANGE ("timestamp")', old_name));
	new := 'meter.events'::regclass;
	IF with_indexes THEN
		ALTER TABLE meter.events ADD CONSTRAINT events_pkey PRIMARY KEY (tenant_id, environment_id, id, "timestamp");
		FOREACH d IN ARRAY defs LOOP
			EXECUTE d;
		END LOOP;
	END IF;
	-- Row-level security, policies, privileges, owner and comment as they were.
	SELECT c2.relrowsecurity, c2.relforcerowsecurity, c2.relacl, c2.relowner::regrole AS owner,
		obj_description(old, 'pg_class') AS comment
		INTO c FROM pg_class c2 WHERE c2.oid = old;
	IF c.relrowsecurity THEN
		ALTER TABLE meter.events ENABLE ROW LEVEL SECURITY;
	END IF;
	IF c.relforcerowsecurity THEN
		ALTER TABLE meter.events FORCE ROW LEVEL SECURITY;
	END IF;
	PERFORM meter.copy_policies(old, new);
	EXECUTE format('ALTER TABLE meter.events OWNER TO %s', c.owner);
	FOR a IN SELECT x.grantee, x.privilege_type, x.is_grantable
		FROM aclexplode(c.relacl) x WHERE x.grantee <> c.owner::oid
	LOOP
		EXECUTE format('GRANT %s ON meter.events TO %s%s', a.privilege_type,
			CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END,
			CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
	END LOOP;
	FOR a IN SELECT t.attname, x.grantee, x.privilege_type, x.is_grantable
		FROM pg_attribute t, aclexplode(t.attacl) x WHERE t.attrelid = old AND t.attacl IS NOT NULL
	LOOP
		EXECUTE format('GRANT %s (%I) ON meter.events TO %s%s', a.privilege_type, a.attname,
			CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END,
			CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
	END LOOP;
	EXECUTE format('COMMENT ON TABLE meter.events IS %L', c.comment);

	IF default_partition THEN
		CREATE TABLE meter.events_default PARTITION OF meter.events DEFAULT;
	END IF;

	-- The rows move without being counted again (no trigger on the new table yet), their
	-- ids are claimed, and the registry names the new table: usage stays as it was.
	EXECUTE format('INSERT INTO meter.events SELECT * FROM meter.%I', old_name);
	INSERT INTO meter.event_ids (tenant_id, environment_id, id)
	SELECT e.tenant_id, e.environment_id, e.id FROM meter.events e;
	UPDATE meter.tracked_tables SET relid = new WHERE relid = old;
	PERFORM meter.attach_triggers(t.relid) FROM meter.table_tree(new) t
	WHERE NOT EXISTS (SELECT 1 FROM pg_trigger g WHERE g.tgrelid = t.relid AND g.tgname = 'meter_track_insert');
	PERFORM meter.event_partition_joined(new, false);

	-- The plain table goes (its triggers first: its rows were not removed from usage).
	PERFORM meter.detach_triggers(old);
	EXECUTE format('ALTER EXTENSION meter DROP TABLE meter.%I', old_name);
	EXECUTE format('DROP TABLE meter.%I', old_name);
	PERFORM meter.run_as_member('SELECT pg_catalog.pg_extension_config_dump(''meter.events'', '''')');
	RETURN new;
END $$;
COMMENT ON FUNCTION meter.convert_events(boolean, boolean) IS
	'Internal: meter.partition_events(), and (without indexes) the start of a restore of a partitioned meter.events';

-- See the README: "Partitioning and retention".
CREATE FUNCTION meter.partition_events(default_partition boolean DEFAULT true) RETURNS regclass
LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
	SELECT meter.convert_events(default_partition, true)
$$;
COMMENT ON FUNCTION meter.partition_events(boolean) IS
	'Turn meter.events into a table partitioned by RANGE ("timestamp") (default_partition: with meter.events_default '
	'holding its rows); dedup by id across partitions through meter.event_ids. Extension owner only';

REVOKE EXECUTE ON FUNCTION meter.event_ids_sync() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION meter.copy_policies(regclass, regclass) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION meter.event_partition_joined(regclass, boolean) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION meter.event_partition_left(regclass, boolean) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION meter.on_partition_ddl() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION meter.run_as_member(text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION meter.restore_events_index(text, regclass) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION meter.convert_events(boolean, boolean) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION meter.partition_events(boolean) FROM PUBLIC;

-- sql/install/60_rollups.sql, 61_recompute.sql and 62_seals.sql, whole: 0.2.0's stored
-- usage, its SQL oracle and sealed periods are new (meter.rollups and meter.skipped too:
-- 0.1.0's stepped aside above).

-- ── Stored usage: partial states (SPEC §7, §8) ──────────────────────────────────────
-- The tracking trigger appends what each statement did as one pending row per meter;
-- compaction folds pending rows into compacted rows laid out for reading. A row holds a
-- set of 15-minute partial states (count, usable count, exact Σ value and Σ value × time,
-- min/max/latest, distinct values with reference counts, bucket maxima) per customer,
-- slot and the event's values of the meter's filter keys, in a versioned binary form.
-- Usage reads compacted + pending rows in one snapshot: exact at commit.
CREATE TABLE meter.pending (
	tenant_id text COLLATE "C" NOT NULL,
	environment_id text COLLATE "C" NOT NULL,
	meter_id text COLLATE "C" NOT NULL,
	first_day date NOT NULL,              -- the UTC days its entries span
	last_day date NOT NULL,
	entries integer NOT NULL,             -- partial states held
	data bytea NOT NULL,                  -- per (customer, slot, dimensions)
	totals bytea NOT NULL                 -- per (slot, dimensions), all customers together
);
COMMENT ON TABLE meter.pending IS
	'Partial states appended by meter.track_usage() (one row per statement and meter), not yet compacted';
CREATE INDEX pending_meter_idx ON meter.pending (tenant_id, environment_id, meter_id, first_day);
-- A statement's row is written once and read once by compaction: keep it uncompressed
-- (inline up to 8 kB).
ALTER TABLE meter.pending SET (toast_tuple_target = 8160);
ALTER TABLE meter.pending ALTER COLUMN data SET STORAGE EXTERNAL;
ALTER TABLE meter.pending ALTER COLUMN totals SET STORAGE EXTERNAL;

CREATE TABLE meter.rollups (
	tenant_id text COLLATE "C" NOT NULL,
	environment_id text COLLATE "C" NOT NULL,
	meter_id text COLLATE "C" NOT NULL,
	shard smallint NOT NULL,              -- customer shard 0..31; -1: all customers together
	day date NOT NULL,                    -- UTC day: up to 96 slots per customer
	data bytea NOT NULL,
	PRIMARY KEY (tenant_id, environment_id, meter_id, shard, day)
);
COMMENT ON TABLE meter.rollups IS
	'Compacted partial states per meter, UTC day and customer shard (a shard holds the customers '
	'whose external id, or customer id without one, hashes to it; shard -1 all customers together)';
-- Rows are read far more often than written: keep them uncompressed (inline up to 8 kB,
-- larger ones out of line) so reads never pay for decompression.
ALTER TABLE meter.rollups SET (toast_tuple_target = 8160);
ALTER TABLE meter.rollups ALTER COLUMN data SET STORAGE EXTERNAL;

ALTER TABLE meter.pending ENABLE ROW LEVEL SECURITY;
ALTER TABLE meter.rollups ENABLE ROW LEVEL SECURITY;
CREATE POLICY pending_scope ON meter.pending
	USING (tenant_id OPERATOR(pg_catalog.=) pg_catalog.current_setting('meter.tenant_id', true)
		AND environment_id OPERATOR(pg_catalog.=) COALESCE(pg_catalog.current_setting('meter.environment_id', true), ''));
CREATE POLICY rollups_scope ON meter.rollups
	USING (tenant_id OPERATOR(pg_catalog.=) pg_catalog.current_setting('meter.tenant_id', true)
		AND environment_id OPERATOR(pg_catalog.=) COALESCE(pg_catalog.current_setting('meter.environment_id', true), ''));
SELECT pg_catalog.pg_extension_config_dump('meter.pending', '');
SELECT pg_catalog.pg_extension_config_dump('meter.rollups', '');

-- ── What is stored, as rows (for meter.verify and meter.skipped) ────────────────────
CREATE FUNCTION meter.stored_slots(meter_id text, totals boolean DEFAULT false)
	RETURNS TABLE (customer_id text, external_customer_id text, slot timestamptz, dims text,
		marked boolean, events bigint, n bigint, sum numeric, sum_vt numeric, best numeric,
		best_at timestamptz, uniques jsonb, maxima jsonb)
	AS 'MODULE_PATHNAME', 'meter_stored_slots' LANGUAGE C STABLE;
COMMENT ON FUNCTION meter.stored_slots(text, boolean) IS
	'The stored partial states (compacted + pending) of a meter of the current scope, per customer '
	'(or all customers: totals), 15-minute slot and dimensions; marked: to be recomputed from the raw events';

CREATE FUNCTION meter.skips()
	RETURNS TABLE (meter_id text, customer_id text, external_customer_id text, bucket timestamptz,
		skipped bigint, reason text)
	AS 'MODULE_PATHNAME', 'meter_skips' LANGUAGE C STABLE;
COMMENT ON FUNCTION meter.skips() IS
	'Events each meter of the current scope matched but could not use, per customer and 15-minute slot';

-- SPEC §7's visible skip count. Acts in the current scope (like the policies).
CREATE VIEW meter.skipped AS
	SELECT pg_catalog.current_setting('meter.tenant_id', true) AS tenant_id,
		COALESCE(pg_catalog.current_setting('meter.environment_id', true), '') AS environment_id,
		s.meter_id, s.customer_id, s.external_customer_id, s.bucket, s.skipped, s.reason
	FROM meter.skips() s;
COMMENT ON VIEW meter.skipped IS
	'Events a meter matched but skipped (no usable value), per customer and 15-minute slot, in the current scope';

-- ── Compaction (SPEC §7) ────────────────────────────────────────────────────────────
CREATE FUNCTION meter.compact(meter_id text DEFAULT NULL) RETURNS bigint
	AS 'MODULE_PATHNAME', 'meter_compact' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION meter.compact(text) IS
	'Fold everything pending of one meter of the current scope (or all) into the compacted rows now; '
	'returns how many pending rows it folded';

-- ── The ground truth in SQL alone (SPEC §8 meter.verify) ────────────────────────────
-- The partial states the engine should hold, recomputed from the raw events of every
-- tracked table by plain SQL that shares none of the engine's C code: matching, usable
-- values, identities, slots and dimensions are all written again here, independently.
-- (Meters with an expression take their per-event value from meter.quantity(), the
-- expression evaluator, which its own tests check against hand-computed values.)

-- A JSON number literal: the usable strings (SPEC §8), and the canonical text of a
-- number (trailing fractional zeros dropped) without the engine's number code.
CREATE FUNCTION meter.oracle_number(v jsonb) RETURNS numeric
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
	SELECT CASE pg_catalog.jsonb_typeof(v)
		WHEN 'number' THEN (v OPERATOR(pg_catalog.#>>) '{}')::numeric
		WHEN 'string' THEN CASE WHEN (v OPERATOR(pg_catalog.#>>) '{}') OPERATOR(pg_catalog.~)
				'^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]{1,4})?$'
			AND COALESCE(pg_catalog.abs(pg_catalog.substring(v OPERATOR(pg_catalog.#>>) '{}',
				'[eE]([+-]?[0-9]+)$')::integer), 0) OPERATOR(pg_catalog.<=) 1000
			THEN (v OPERATOR(pg_catalog.#>>) '{}')::numeric END
	END
$$;
COMMENT ON FUNCTION meter.oracle_number(jsonb) IS
	'Internal (verify): the usable number of a JSON value, in SQL alone';

CREATE FUNCTION meter.oracle_identity(v jsonb, canonical_strings boolean) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
	SELECT CASE pg_catalog.jsonb_typeof(v)
		WHEN 'null' THEN NULL
		WHEN 'boolean' THEN v OPERATOR(pg_catalog.#>>) '{}'
		WHEN 'number' THEN pg_catalog.trim_scale((v OPERATOR(pg_catalog.#>>) '{}')::numeric)::text
		WHEN 'string' THEN CASE WHEN canonical_strings AND meter.oracle_number(v) IS NOT NULL
			THEN pg_catalog.trim_scale(meter.oracle_number(v))::text ELSE v OPERATOR(pg_catalog.#>>) '{}' END
		ELSE v::text
	END
$$;
COMMENT ON FUNCTION meter.oracle_identity(jsonb, boolean) IS
	'Internal (verify): a JSON value''s identity text (numbers canonical; number-like strings too when asked)';

-- A property as a dimension of the rollup key: its kind (s, n, b) and text.
CREATE FUNCTION meter.oracle_dimension(v jsonb) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
	SELECT CASE pg_catalog.jsonb_typeof(v)
		WHEN 'string' THEN 's' OPERATOR(pg_catalog.||) (v OPERATOR(pg_catalog.#>>) '{}')
		WHEN 'number' THEN 'n' OPERATOR(pg_catalog.||) meter.oracle_identity(v, false)
		WHEN 'boolean' THEN 'b' OPERATOR(pg_catalog.||) (v OPERATOR(pg_catalog.#>>) '{}')
	END
$$;
COMMENT ON FUNCTION meter.oracle_dimension(jsonb) IS
	'Internal (verify): a JSON value as a dimension of the rollup key (kind and text), in SQL alone';

-- Does a property match one filter (SPEC §3), in SQL alone?
CREATE FUNCTION meter.oracle_matches_value(v jsonb, vals text[]) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
	SELECT CASE pg_catalog.jsonb_typeof(v)
		WHEN 'string' THEN (v OPERATOR(pg_catalog.#>>) '{}') OPERATOR(pg_catalog.=) ANY (vals)
		WHEN 'boolean' THEN (v OPERATOR(pg_catalog.#>>) '{}') OPERATOR(pg_catalog.=) ANY (vals)
		WHEN 'number' THEN EXISTS (SELECT 1 FROM pg_catalog.unnest(vals) f
			WHERE meter.oracle_number(pg_catalog.to_jsonb(f)) OPERATOR(pg_catalog.=) (v OPERATOR(pg_catalog.#>>) '{}')::numeric)
		ELSE false
	END
$$;
COMMENT ON FUNCTION meter.oracle_matches_value(jsonb, text[]) IS
	'Internal (verify): does a JSON value match a filter''s values, in SQL alone';

-- The relations that hold the current scope's raw events: every tracked table that exists
-- (on a Citus worker, each one's shard of the tenant's group).
CREATE FUNCTION meter.event_sources() RETURNS SETOF regclass
	AS 'MODULE_PATHNAME', 'meter_event_sources' LANGUAGE C STABLE;
COMMENT ON FUNCTION meter.event_sources() IS
	'Internal (verify): the relations holding the current scope''s raw events (every tracked table, or its shard on a Citus worker)';

CREATE FUNCTION meter.expected_slots(meter_id text, totals boolean DEFAULT false)
RETURNS TABLE (customer_id text, external_customer_id text, slot timestamptz, dims text,
	events bigint, n bigint, sum numeric, sum_vt numeric, best numeric, best_at timestamptz,
	uniques jsonb, maxima jsonb)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
-- Hash joins over the slots; disabling nested loops inflates the plan's cost past
-- jit_above_cost, and compiling each query would cost more than running it.
SET enable_nestloop = off SET jit = off
AS $fn$
DECLARE
	m meter.meters := meter.get_meter(expected_slots.meter_id);
	kind meter.aggregation_type := meter.type_of(m.aggregation);
	fld text := meter.field_of(m.aggregation);
	bucketed boolean := kind = 'MAX' AND meter.bucket_size_of(m.aggregation) IS NOT NULL;
	keys text[] := meter.filter_keys(m.filters);
	events_q text;
	match_q text := 'true';
	dims_q text := '''''';
	value_q text;
	k text;
BEGIN
	SELECT COALESCE(string_agg(format(
		'SELECT COALESCE(e.customer_id::text, '''') AS c, COALESCE(e.external_customer_id::text, '''') AS x, '
		'e."timestamp" AS ts, COALESCE(e.properties, ''{}'') AS p FROM %s AS e '
		'WHERE e.tenant_id = $1 AND e.environment_id = $2 AND e.event_name = $3', t.relid), ' UNION ALL '),
		'SELECT NULL::text, NULL::text, NULL::timestamptz, NULL::jsonb WHERE false')
	INTO events_q FROM meter.event_sources() t(relid);
	FOREACH k IN ARRAY keys LOOP
		match_q := match_q || format(' AND meter.oracle_matches_value(r.p -> %L, %L::text[])',
			k, meter.filter_values(m.filters, k));
		dims_q := dims_q || format(' || COALESCE(octet_length(meter.oracle_dimension(r.p -> %1$L))::text'
			' || '':'' || meter.oracle_dimension(r.p -> %1$L), ''-'')', k);
	END LOOP;
	value_q := CASE
		WHEN kind IN ('COUNT', 'COUNT_UNIQUE') THEN 'NULL::numeric'
		WHEN fld IS NOT NULL THEN format('meter.oracle_number(r.p -> %L)', fld)
		ELSE 'meter.quantity($4, r.p)' END;
	RETURN QUERY EXECUTE format($q$
		WITH r AS (SELECT * FROM (%1$s) r WHERE %2$s),
		v AS (SELECT CASE WHEN $5 THEN '' ELSE r.c END AS c, CASE WHEN $5 THEN '' ELSE r.x END AS x,
				r.ts - (mod(mod(extract(epoch FROM r.ts) * 1000000, 900000000) + 900000000, 900000000)::bigint
					* interval '1 microsecond') AS slot, %3$s AS dims, r.ts,
				%4$s AS v, %5$s AS u, %6$s AS g
			FROM r),
		base AS (SELECT v.c, v.x, v.slot, v.dims, count(*) AS events,
				CASE WHEN $6 = 'COUNT' THEN count(*) WHEN $6 = 'COUNT_UNIQUE' THEN count(v.u) ELSE count(v.v) END AS n,
				CASE WHEN $6 IN ('SUM', 'AVG', 'SUM_WITH_MULTIPLIER', 'WEIGHTED_SUM') THEN sum(v.v) END AS sum,
				CASE WHEN $6 = 'WEIGHTED_SUM' THEN sum(v.v * extract(epoch FROM v.ts)) END AS sum_vt,
				CASE WHEN $7 THEN NULL WHEN $6 IN ('MAX') THEN max(v.v) WHEN $6 = 'MIN' THEN min(v.v)
					WHEN $6 = 'LATEST' THEN (array_agg(v.v ORDER BY v.ts DESC, v.v DESC) FILTER (WHERE v.v IS NOT NULL))[1] END AS best,
				CASE WHEN $6 = 'LATEST' THEN max(v.ts) FILTER (WHERE v.v IS NOT NULL) END AS best_at
			FROM v GROUP BY 1, 2, 3, 4),
		uq AS (SELECT w.c, w.x, w.slot, w.dims, jsonb_object_agg(w.u, w.refs ORDER BY w.u COLLATE "C") AS uniques
			FROM (SELECT v.c, v.x, v.slot, v.dims, v.u, count(*) AS refs FROM v WHERE v.u IS NOT NULL
				GROUP BY 1, 2, 3, 4, 5) w GROUP BY 1, 2, 3, 4),
		mx AS (SELECT w.c, w.x, w.slot, w.dims,
				jsonb_agg(jsonb_build_array(w.off, w.g, w.mv) ORDER BY w.off, w.g COLLATE "C" NULLS FIRST) AS maxima
			FROM (SELECT v.c, v.x, v.slot, v.dims, v.g,
					CASE WHEN $8 THEN floor(extract(epoch FROM v.ts - v.slot) / 60)::bigint * 60 ELSE 0 END AS off,
					max(v.v) AS mv FROM v WHERE $7 AND v.v IS NOT NULL
				GROUP BY 1, 2, 3, 4, 5, 6) w GROUP BY 1, 2, 3, 4)
		SELECT CASE WHEN $5 THEN NULL ELSE b.c END, CASE WHEN $5 THEN NULL ELSE b.x END, b.slot, b.dims,
			b.events, b.n, b.sum, b.sum_vt, b.best, b.best_at, uq.uniques, mx.maxima
		FROM base b
		LEFT JOIN uq ON uq.c = b.c AND uq.x = b.x AND uq.slot = b.slot AND uq.dims = b.dims
		LEFT JOIN mx ON mx.c = b.c AND mx.x = b.x AND mx.slot = b.slot AND mx.dims = b.dims$q$,
		events_q, match_q, dims_q, value_q,
		CASE WHEN kind = 'COUNT_UNIQUE' THEN format('meter.oracle_identity(r.p -> %L, true)', fld) ELSE 'NULL::text' END,
		CASE WHEN bucketed AND meter.group_by_of(m.aggregation) IS NOT NULL
			THEN format('meter.oracle_identity(r.p -> %L, true)', meter.group_by_of(m.aggregation)) ELSE 'NULL::text' END)
	USING m.tenant_id, m.environment_id, m.event_name, m.aggregation, totals, kind::text, bucketed,
		bucketed AND meter.bucket_size_of(m.aggregation) = 'MINUTE';
END
$fn$;
COMMENT ON FUNCTION meter.expected_slots(text, boolean) IS
	'Internal (verify): the partial states meter.stored_slots should show, recomputed from the raw events in SQL alone';

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

-- ── Tracking, rebuild and verify (sql/install/65_track.sql) ─────────────────────────
COMMENT ON FUNCTION meter.track_usage() IS
	'Trigger keeping usage exact: AFTER … FOR EACH ROW, statement-level with transition tables, or BEFORE TRUNCATE';
CREATE FUNCTION meter.check_event_table(tbl regclass) RETURNS void
	AS 'MODULE_PATHNAME', 'meter_check_event_table' LANGUAGE C STABLE STRICT;
COMMENT ON FUNCTION meter.check_event_table(regclass) IS
	'Error unless a table has the event columns of meter.events with their types (42703 missing, 42804 other type)';
COMMENT ON FUNCTION meter.rebuild_all() IS
	'Recompute every published meter of every tenant and environment the caller can see; returns how many';

-- TRUNCATE is counted before it runs now (0.2.0's trigger refuses AFTER TRUNCATE).
DROP TRIGGER meter_track_truncate ON meter.events;
CREATE TRIGGER meter_track_truncate BEFORE TRUNCATE ON meter.events
	FOR EACH STATEMENT EXECUTE FUNCTION meter.track_usage();
COMMENT ON FUNCTION meter.on_meter_change() IS
	'Recomputes a created, redefined or re-published meter from the raw events; forgets a deleted meter''s usage';

-- meter.rebuilt was (meter_id, rollups, unique_values): renamed in place, so that
-- meter.rebuild(text) keeps its identity (and every role's EXECUTE privilege).
ALTER TYPE meter.rebuilt RENAME ATTRIBUTE rollups TO events;
ALTER TYPE meter.rebuilt RENAME ATTRIBUTE unique_values TO rollups;
COMMENT ON TYPE meter.rebuilt IS
	'A meter meter.rebuild() recomputed: the events it counted and the compacted rows it holds';
COMMENT ON TYPE meter.difference IS
	'A stored partial state meter.verify() found different from the raw events: where (customer ids NULL: '
	'all customers together), what, stored and expected';
CREATE OR REPLACE FUNCTION meter.rebuild(meter_id text DEFAULT NULL) RETURNS SETOF meter.rebuilt
	AS 'MODULE_PATHNAME', 'meter_rebuild' LANGUAGE C VOLATILE
	SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION meter.rebuild(text) IS
	'Recompute one published meter (or all of the current scope) from the raw events of every tracked table';
CREATE OR REPLACE FUNCTION meter.verify(meter_id text DEFAULT NULL)
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
CREATE FUNCTION meter.table_tree(tbl regclass) RETURNS TABLE (relid regclass)
LANGUAGE sql STABLE STRICT AS $$
	SELECT tbl UNION SELECT t.relid FROM pg_catalog.pg_partition_tree(tbl) t
$$;
COMMENT ON FUNCTION meter.table_tree(regclass) IS
	'Internal: a table and every partition below it';
CREATE OR REPLACE FUNCTION meter.track(tbl regclass) RETURNS void
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
CREATE OR REPLACE FUNCTION meter.untrack(tbl regclass) RETURNS void
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
CREATE FUNCTION meter.on_ddl_end() RETURNS event_trigger
	AS 'MODULE_PATHNAME', 'meter_on_ddl_end' LANGUAGE C SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION meter.on_ddl_end() IS
	'Event trigger: keeps tracked tables'' event columns, and their partitions'' tracking, intact';
CREATE FUNCTION meter.on_sql_drop() RETURNS event_trigger
	AS 'MODULE_PATHNAME', 'meter_on_sql_drop' LANGUAGE C
	SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION meter.on_sql_drop() IS
	'Event trigger: a dropped tracked table (or partition) leaves the registry and usage';

-- ── Usage (sql/install/71_usage.sql) ────────────────────────────────────────────────
CREATE OR REPLACE FUNCTION meter.usage(
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
CREATE OR REPLACE FUNCTION meter.usage_from_events(
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
CREATE FUNCTION meter.usage_by_customer(
	meter_id text,
	start_time timestamptz,
	end_time timestamptz,
	window_size meter.window_size DEFAULT NULL,
	timezone text DEFAULT 'UTC',
	billing_anchor timestamptz DEFAULT NULL)
RETURNS TABLE (customer_id text, external_customer_id text, window_start timestamptz,
	window_end timestamptz, value numeric)
	AS 'MODULE_PATHNAME', 'meter_usage_by_customer' LANGUAGE C STABLE
	SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION meter.usage_by_customer(text, timestamptz, timestamptz, meter.window_size,
	text, timestamptz) IS
	'The invoice run: usage per window for every customer (customer_id, external_customer_id; '
	''''' when absent) with a matched event before end_time, ordered by customer then window';
CREATE FUNCTION meter.usage_by_customer_from_events(
	meter_id text,
	start_time timestamptz,
	end_time timestamptz,
	window_size meter.window_size DEFAULT NULL,
	timezone text DEFAULT 'UTC',
	billing_anchor timestamptz DEFAULT NULL,
	source regclass DEFAULT NULL)
RETURNS TABLE (customer_id text, external_customer_id text, window_start timestamptz,
	window_end timestamptz, value numeric)
	AS 'MODULE_PATHNAME', 'meter_usage_by_customer_from_events' LANGUAGE C STABLE
	SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION meter.usage_by_customer_from_events(text, timestamptz, timestamptz,
	meter.window_size, text, timestamptz, regclass) IS
	'meter.usage_by_customer computed from the raw events (every tracked table, or source)';
CREATE FUNCTION meter.usage_by_group(
	meter_id text,
	group_by text[],
	start_time timestamptz,
	end_time timestamptz,
	customer_id text DEFAULT NULL,
	external_customer_id text DEFAULT NULL,
	window_size meter.window_size DEFAULT NULL,
	timezone text DEFAULT 'UTC',
	billing_anchor timestamptz DEFAULT NULL)
RETURNS TABLE (group_values jsonb, window_start timestamptz, window_end timestamptz, value numeric)
	AS 'MODULE_PATHNAME', 'meter_usage_by_group' LANGUAGE C STABLE
	SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION meter.usage_by_group(text, text[], timestamptz, timestamptz, text, text,
	meter.window_size, text, timestamptz) IS
	'Usage per window and per combination of the events'' values of group_by (filter keys of '
	'the meter) that occurs, e.g. {"model":"gpt-4o","region":"eu"}; 22023 for another key';
CREATE FUNCTION meter.usage_by_group_from_events(
	meter_id text,
	group_by text[],
	start_time timestamptz,
	end_time timestamptz,
	customer_id text DEFAULT NULL,
	external_customer_id text DEFAULT NULL,
	window_size meter.window_size DEFAULT NULL,
	timezone text DEFAULT 'UTC',
	billing_anchor timestamptz DEFAULT NULL,
	source regclass DEFAULT NULL)
RETURNS TABLE (group_values jsonb, window_start timestamptz, window_end timestamptz, value numeric)
	AS 'MODULE_PATHNAME', 'meter_usage_by_group_from_events' LANGUAGE C STABLE
	SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION meter.usage_by_group_from_events(text, text[], timestamptz, timestamptz,
	text, text, meter.window_size, text, timestamptz, regclass) IS
	'meter.usage_by_group computed from the raw events (every tracked table, or source)';
CREATE FUNCTION meter.usage_by_filter_groups(
	meter_id text,
	groups jsonb,
	start_time timestamptz,
	end_time timestamptz,
	customer_id text DEFAULT NULL,
	external_customer_id text DEFAULT NULL,
	window_size meter.window_size DEFAULT NULL,
	timezone text DEFAULT 'UTC',
	billing_anchor timestamptz DEFAULT NULL)
RETURNS TABLE (group_id text, window_start timestamptz, window_end timestamptz, value numeric)
	AS 'MODULE_PATHNAME', 'meter_usage_by_filter_groups' LANGUAGE C STABLE
	SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION meter.usage_by_filter_groups(text, jsonb, timestamptz, timestamptz, text,
	text, meter.window_size, text, timestamptz) IS
	'FlexPrice''s price filter groups: [{"id":…,"filters":{"model":["gpt-4o"]}}, …]; each event '
	'counts in the first group whose filters it matches; every group appears';
CREATE FUNCTION meter.usage_by_filter_groups_from_events(
	meter_id text,
	groups jsonb,
	start_time timestamptz,
	end_time timestamptz,
	customer_id text DEFAULT NULL,
	external_customer_id text DEFAULT NULL,
	window_size meter.window_size DEFAULT NULL,
	timezone text DEFAULT 'UTC',
	billing_anchor timestamptz DEFAULT NULL,
	source regclass DEFAULT NULL)
RETURNS TABLE (group_id text, window_start timestamptz, window_end timestamptz, value numeric)
	AS 'MODULE_PATHNAME', 'meter_usage_by_filter_groups_from_events' LANGUAGE C STABLE
	SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION meter.usage_by_filter_groups_from_events(text, jsonb, timestamptz,
	timestamptz, text, text, meter.window_size, text, timestamptz, regclass) IS
	'meter.usage_by_filter_groups computed from the raw events (every tracked table, or source)';

-- ── Privileges (sql/install/90_privileges.sql) ──────────────────────────────────────
REVOKE EXECUTE ON FUNCTION meter.compact(text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION meter.seal(timestamptz) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION meter.attach_triggers(regclass) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION meter.detach_triggers(regclass) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION meter.on_ddl_end() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION meter.on_sql_drop() FROM PUBLIC;
-- CREATE OR REPLACE made meter.rebuild SECURITY INVOKER again.
ALTER FUNCTION meter.rebuild(text) SECURITY DEFINER;
ALTER FUNCTION meter.compact(text) SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
CREATE OR REPLACE FUNCTION meter.grant_reader(role regrole) RETURNS void
LANGUAGE plpgsql VOLATILE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	EXECUTE pg_catalog.format('GRANT USAGE ON SCHEMA meter TO %s', role);
	EXECUTE pg_catalog.format('GRANT SELECT ON meter.meters, meter.events, meter.rollups, '
		'meter.pending, meter.seals, meter.sealed_skips, meter.skipped, meter.tracked_tables TO %s', role);
END
$$;
CREATE OR REPLACE FUNCTION meter.grant_admin(role regrole) RETURNS void
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
CREATE OR REPLACE FUNCTION meter.grant_writer(role regrole) RETURNS void
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
CREATE OR REPLACE FUNCTION meter.revoke_access(role regrole) RETURNS void
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

-- ── Scaling out on Citus (sql/install/95_scale_out.sql, whole) ─────────────────────
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

-- ── 3. Data ─────────────────────────────────────────────────────────────────────────
-- Meter names: 0.2.0 stores event_name and name trimmed (SPEC §4). Every meter is saved
-- again through its validation trigger, which trims; the stamps it sets are put back
-- (nobody changed the meters), and no meter is recomputed here (all are, below).
DO $$
DECLARE
	ids text[];
	stamped_at timestamptz[];
	stamped_by text[];
BEGIN
	SELECT pg_catalog.array_agg(m.id), pg_catalog.array_agg(m.updated_at), pg_catalog.array_agg(m.updated_by)
	INTO ids, stamped_at, stamped_by
	FROM meter.meters m;
	ALTER TABLE meter.meters DISABLE TRIGGER meters_rollups;
	UPDATE meter.meters m SET event_name = m.event_name, name = m.name;
	ALTER TABLE meter.meters DISABLE TRIGGER meters_validate;
	UPDATE meter.meters m SET updated_at = s.updated_at, updated_by = s.updated_by
	FROM ROWS FROM (pg_catalog.unnest(ids), pg_catalog.unnest(stamped_at), pg_catalog.unnest(stamped_by))
		AS s(id, updated_at, updated_by)
	WHERE m.id OPERATOR(pg_catalog.=) s.id;
	ALTER TABLE meter.meters ENABLE TRIGGER meters_validate;
	ALTER TABLE meter.meters ENABLE TRIGGER meters_rollups;
END
$$;

-- Tracked tables: 0.2.0's four triggers (BEFORE TRUNCATE), on their partitions too. A
-- table dropped under 0.1.0 leaves the registry, as 0.2.0's meter_sql_drop does.
DELETE FROM meter.tracked_tables t WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_class c
	WHERE c.oid OPERATOR(pg_catalog.=) t.relid::pg_catalog.oid);
DO $$
DECLARE
	tbl regclass;
BEGIN
	FOR tbl IN SELECT x.relid FROM meter.tracked_tables t CROSS JOIN LATERAL meter.table_tree(t.relid) x
		WHERE t.relid OPERATOR(pg_catalog.<>) 'meter.events'::pg_catalog.regclass
		ORDER BY t.relid::pg_catalog.oid, x.relid::pg_catalog.oid
	LOOP
		PERFORM meter.detach_triggers(tbl);
		PERFORM meter.attach_triggers(tbl);
	END LOOP;
END
$$;

-- Archived and deleted meters: their usage is frozen history (events that arrived after
-- archiving never counted), so it is converted from 0.1.0's rollups, not recomputed:
-- every rollup becomes the 15-minute partial state of its customer and slot (count,
-- usable count, Σv, Σ v·t, min/max/latest, distinct values with their reference counts,
-- the slot's maximum for a bucketed MAX), then compacted. 0.1.0 kept no dimensions (the
-- events' values of the filter keys), so usage_by_group and usage_by_filter_groups see
-- these states' filter-key values as missing.
CREATE FUNCTION meter.legacy_import(meter_id text, tenant text, environment text,
		rollups regclass, rollup_values regclass) RETURNS bigint
	AS 'MODULE_PATHNAME', 'meter_legacy_import' LANGUAGE C VOLATILE STRICT;
SELECT meter.legacy_import(m.id, m.tenant_id, m.environment_id, 'meter.legacy_rollups',
		'meter.legacy_rollup_values')
FROM meter.meters m
WHERE m.status OPERATOR(pg_catalog.<>) 'published'::meter.status
ORDER BY m.id;
DROP FUNCTION meter.legacy_import(text, text, text, regclass, regclass);

-- Published meters: recomputed from the raw events of every tracked table by the 0.2.0
-- engine (this is what takes time: one pass over each meter's events).
SELECT meter.rebuild_all();

-- ── 4. Privileges, the legacy tables, event triggers ────────────────────────────────
-- Roles granted access under 0.1.0 (meter.grant_reader/grant_writer/grant_admin, or by
-- hand) keep it: what they held on 0.1.0's rollup tables they get on every table of
-- 0.2.0's stored usage, what they held on meter.skipped on the new view, INSERT on
-- meter.events brings SELECT on meter.event_ids (meter.ingest's dedup once meter.events is
-- partitioned, as meter.grant_writer gives it), and EXECUTE on meter.rebuild brings
-- EXECUTE on meter.compact and meter.seal (as meter.grant_admin gives them).
-- GRANTs run inside ALTER EXTENSION are recorded as the extension's initial privileges,
-- which pg_dump leaves out of a dump: the objects' initial privileges are put back to
-- what a fresh 0.2.0 has, so that a dump keeps these grants.
DO $$
DECLARE
	g record;
	targets text[];				-- the objects granted on, as 'classoid:objoid'
	initial jsonb;				-- their initial privileges before
BEGIN
	SELECT pg_catalog.array_agg(k.key) INTO targets
	FROM (SELECT 'pg_catalog.pg_class'::pg_catalog.regclass::pg_catalog.oid::pg_catalog.text || ':'
			|| x::pg_catalog.regclass::pg_catalog.oid::pg_catalog.text AS key
		FROM pg_catalog.unnest(ARRAY['meter.rollups', 'meter.pending', 'meter.seals', 'meter.sealed_skips',
			'meter.skipped', 'meter.event_ids']) x
		UNION ALL
		SELECT 'pg_catalog.pg_proc'::pg_catalog.regclass::pg_catalog.oid::pg_catalog.text || ':'
			|| x::pg_catalog.regprocedure::pg_catalog.oid::pg_catalog.text
		FROM pg_catalog.unnest(ARRAY['meter.compact(text)', 'meter.seal(timestamptz)']) x) k;
	SELECT COALESCE(pg_catalog.jsonb_object_agg(ip.classoid::pg_catalog.text || ':' || ip.objoid::pg_catalog.text,
		ip.initprivs::pg_catalog.text), '{}') INTO initial
	FROM pg_catalog.pg_init_privs ip
	WHERE ip.privtype OPERATOR(pg_catalog.=) 'e' AND ip.objsubid OPERATOR(pg_catalog.=) 0
		AND ip.classoid::pg_catalog.text || ':' || ip.objoid::pg_catalog.text OPERATOR(pg_catalog.=) ANY (targets);
	FOR g IN
		SELECT DISTINCT t.target, a.privilege_type, a.is_grantable,
			CASE WHEN a.grantee OPERATOR(pg_catalog.=) 0 THEN 'PUBLIC'
				ELSE a.grantee::pg_catalog.regrole::pg_catalog.text END AS grantee
		FROM (VALUES ('meter.legacy_rollups', 'TABLE meter.rollups'),
				('meter.legacy_rollups', 'TABLE meter.pending'),
				('meter.legacy_rollups', 'TABLE meter.seals'),
				('meter.legacy_rollups', 'TABLE meter.sealed_skips'),
				('meter.legacy_rollup_values', 'TABLE meter.rollups'),
				('meter.legacy_rollup_values', 'TABLE meter.pending'),
				('meter.legacy_rollup_values', 'TABLE meter.seals'),
				('meter.legacy_rollup_values', 'TABLE meter.sealed_skips'),
				('meter.legacy_skipped', 'TABLE meter.skipped')) AS t(source, target)
		JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) t.source::pg_catalog.regclass
		CROSS JOIN LATERAL pg_catalog.aclexplode(c.relacl) a
		WHERE a.grantee OPERATOR(pg_catalog.<>) c.relowner
		UNION
		SELECT DISTINCT 'TABLE meter.event_ids', 'SELECT', a.is_grantable,
			CASE WHEN a.grantee OPERATOR(pg_catalog.=) 0 THEN 'PUBLIC'
				ELSE a.grantee::pg_catalog.regrole::pg_catalog.text END
		FROM pg_catalog.pg_class c
		CROSS JOIN LATERAL pg_catalog.aclexplode(c.relacl) a
		WHERE c.oid OPERATOR(pg_catalog.=) 'meter.events'::pg_catalog.regclass
			AND a.privilege_type OPERATOR(pg_catalog.=) 'INSERT' AND a.grantee OPERATOR(pg_catalog.<>) c.relowner
		UNION
		SELECT DISTINCT t.target, a.privilege_type, a.is_grantable,
			CASE WHEN a.grantee OPERATOR(pg_catalog.=) 0 THEN 'PUBLIC'
				ELSE a.grantee::pg_catalog.regrole::pg_catalog.text END
		FROM (VALUES ('FUNCTION meter.compact(text)'), ('FUNCTION meter.seal(timestamptz)')) AS t(target)
		JOIN pg_catalog.pg_proc p ON p.oid OPERATOR(pg_catalog.=) 'meter.rebuild(text)'::pg_catalog.regprocedure
		CROSS JOIN LATERAL pg_catalog.aclexplode(p.proacl) a
		WHERE a.grantee OPERATOR(pg_catalog.<>) p.proowner
		ORDER BY 1, 4, 2
	LOOP
		EXECUTE pg_catalog.format('GRANT %s ON %s TO %s%s', g.privilege_type, g.target, g.grantee,
			CASE WHEN g.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
	END LOOP;
	-- Their initial privileges: as they were before the GRANTs.
	DELETE FROM pg_catalog.pg_init_privs ip
	WHERE ip.privtype OPERATOR(pg_catalog.=) 'e' AND ip.objsubid OPERATOR(pg_catalog.=) 0
		AND ip.classoid::pg_catalog.text || ':' || ip.objoid::pg_catalog.text OPERATOR(pg_catalog.=) ANY (targets)
		AND NOT initial OPERATOR(pg_catalog.?) (ip.classoid::pg_catalog.text || ':' || ip.objoid::pg_catalog.text);
	UPDATE pg_catalog.pg_init_privs ip
	SET initprivs = (initial OPERATOR(pg_catalog.->>) (ip.classoid::pg_catalog.text || ':'
		|| ip.objoid::pg_catalog.text))::pg_catalog.aclitem[]
	WHERE ip.privtype OPERATOR(pg_catalog.=) 'e' AND ip.objsubid OPERATOR(pg_catalog.=) 0
		AND initial OPERATOR(pg_catalog.?) (ip.classoid::pg_catalog.text || ':' || ip.objoid::pg_catalog.text);
END
$$;

-- ALTER EXTENSION … DROP first: it also takes the tables out of the pg_dump registrations
-- (pg_extension_config_dump), which DROP TABLE alone would leave behind.
ALTER EXTENSION meter DROP TABLE meter.legacy_rollups;
ALTER EXTENSION meter DROP TABLE meter.legacy_rollup_values;
DROP VIEW meter.legacy_skipped;
DROP TABLE meter.legacy_rollups;
DROP TABLE meter.legacy_rollup_values;

-- DDL on tracked tables (sql/install/65_track.sql), last: nothing above fires them.
CREATE EVENT TRIGGER meter_ddl_end ON ddl_command_end WHEN TAG IN ('ALTER TABLE', 'CREATE TABLE')
	EXECUTE FUNCTION meter.on_ddl_end();
CREATE EVENT TRIGGER meter_sql_drop ON sql_drop EXECUTE FUNCTION meter.on_sql_drop();
-- Partitions of meter.events (sql/install/57_partitioning.sql); meter_partition_restore
-- fires in replica mode too (a restore's session_replication_role).
CREATE EVENT TRIGGER meter_partition_ddl_start ON ddl_command_start WHEN TAG IN ('DROP TABLE')
	EXECUTE FUNCTION meter.on_partition_ddl();
-- Restoring a dump of a partitioned meter.events (with session_replication_role = replica,
-- the README's way): the dump attaches partitions to the plain table CREATE EXTENSION made,
-- which is partitioned first; later it attaches the partitions' indexes to the table's,
-- which are created then (the table is the extension's, so its indexes are not dumped).
CREATE EVENT TRIGGER meter_partition_restore ON ddl_command_start WHEN TAG IN ('ALTER TABLE', 'ALTER INDEX')
	EXECUTE FUNCTION meter.on_partition_ddl();
ALTER EVENT TRIGGER meter_partition_restore ENABLE ALWAYS;
CREATE EVENT TRIGGER meter_partition_ddl_end ON ddl_command_end WHEN TAG IN ('ALTER TABLE', 'CREATE TABLE')
	EXECUTE FUNCTION meter.on_partition_ddl();
CREATE EVENT TRIGGER meter_partition_drop ON sql_drop EXECUTE FUNCTION meter.on_partition_ddl();
