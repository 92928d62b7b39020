
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
CREATE EVENT TRIGGER meter_partition_ddl_start ON ddl_command_start WHEN TAG IN ('DROP TABLE')
	EXECUTE FUNCTION meter.on_partition_ddl();
-- Restoring a dump of a partitioned meter.events (with session_replication_role = replica,
-- the README's way): the dump attaches partitions to the plain table CREATE EXTENSION made,
-- which is partitioned first; later it attaches the partitions' indexes to the table's,
-- which are created then (the table is the extension's, so its indexes are not dumped).
CREATE EVENT TRIGGER meter_partition_restore ON ddl_command_start WHEN TAG IN ('ALTER TABLE', 'ALTER INDEX')
	EXECUTE FUNCTION meter.on_partition_ddl();
ALTER EVENT TRIGGER meter_partition_restore ENABLE ALWAYS;

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
CREATE EVENT TRIGGER meter_partition_ddl_end ON ddl_command_end WHEN TAG IN ('ALTER TABLE', 'CREATE TABLE')
	EXECUTE FUNCTION meter.on_partition_ddl();
CREATE EVENT TRIGGER meter_partition_drop ON sql_drop EXECUTE FUNCTION meter.on_partition_ddl();

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
