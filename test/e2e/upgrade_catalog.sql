-- A normalized description of everything the extension meter puts in a database, one
-- line per fact, sorted: used by test/e2e/upgrade.sh to compare a database upgraded with
-- ALTER EXTENSION meter UPDATE against a fresh CREATE EXTENSION meter of the same version.
-- No OIDs, no physical details (attribute numbers are replaced by column order); every
-- definition is printed by the server's own deparsers (pg_get_functiondef, …_viewdef,
-- …_indexdef, …_constraintdef, …_triggerdef, pg_get_expr), so any difference in what an
-- object does shows. Run with psql -At.
WITH ext AS (
	SELECT e.oid, e.extname, e.extversion, e.extrelocatable, e.extnamespace, e.extowner,
		e.extconfig, e.extcondition
	FROM pg_catalog.pg_extension e WHERE e.extname = 'meter'
),
-- Everything that belongs to the extension, by its description.
members AS (
	SELECT d.classid, d.objid, d.objsubid,
		pg_catalog.pg_describe_object(d.classid, d.objid, d.objsubid) AS what
	FROM pg_catalog.pg_depend d, ext
	WHERE d.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass
		AND d.refobjid = ext.oid AND d.deptype = 'e'
),
lines AS (
	-- the extension itself and its config-dump registrations (as a set)
	SELECT 'extension ' || ext.extname || ' version ' || ext.extversion
		|| ' relocatable ' || ext.extrelocatable || ' schema ' || ext.extnamespace::pg_catalog.regnamespace AS line
	FROM ext
	UNION ALL
	SELECT 'config_dump ' || c.t::pg_catalog.regclass::text || ' condition ' || pg_catalog.quote_literal(c.cond)
	FROM ext, ROWS FROM (pg_catalog.unnest(ext.extconfig), pg_catalog.unnest(ext.extcondition)) AS c(t, cond)
	UNION ALL
	SELECT 'member ' || m.what FROM members m
	UNION ALL
	-- schema
	SELECT 'schema ' || n.nspname || ' acl ' || COALESCE((SELECT pg_catalog.string_agg(a::text, ',' ORDER BY a::text)
			FROM pg_catalog.unnest(n.nspacl) a), 'default')
		|| ' comment ' || COALESCE(pg_catalog.quote_literal(pg_catalog.obj_description(n.oid, 'pg_namespace')), 'none')
	FROM pg_catalog.pg_namespace n WHERE n.nspname = 'meter'
	UNION ALL
	-- functions, procedures and aggregates in schema meter or members of the extension
	-- (every line of a definition starts with the function's signature, so that a diff
	-- line says which function it is)
	SELECT 'function ' || p.oid::pg_catalog.regprocedure::text || ' | ' || pg_catalog.replace(
		CASE WHEN p.prokind = 'a' THEN
			(SELECT 'aggregate sfunc ' || a.aggtransfn::pg_catalog.regprocedure::text
				|| ' stype ' || a.aggtranstype::pg_catalog.regtype::text
				|| ' finalfunc ' || COALESCE(NULLIF(a.aggfinalfn, 0)::pg_catalog.regprocedure::text, '-')
				|| ' combinefunc ' || COALESCE(NULLIF(a.aggcombinefn, 0)::pg_catalog.regprocedure::text, '-')
				|| ' serialfunc ' || COALESCE(NULLIF(a.aggserialfn, 0)::pg_catalog.regprocedure::text, '-')
				|| ' deserialfunc ' || COALESCE(NULLIF(a.aggdeserialfn, 0)::pg_catalog.regprocedure::text, '-')
				|| ' initcond ' || COALESCE(a.agginitval, '-') || ' kind ' || a.aggkind::text
				|| ' finalmodify ' || a.aggfinalmodify::text || ' parallel ' || p.proparallel::text
				|| ' result ' || p.prorettype::pg_catalog.regtype::text
			 FROM pg_catalog.pg_aggregate a WHERE a.aggfnoid = p.oid)
		ELSE pg_catalog.pg_get_functiondef(p.oid) END
		|| E'\n  owner ' || p.proowner::pg_catalog.regrole::text
		|| E'\n  acl ' || COALESCE((SELECT pg_catalog.string_agg(a::text, ',' ORDER BY a::text)
			FROM pg_catalog.unnest(p.proacl) a), 'default')
		|| E'\n  comment ' || COALESCE(pg_catalog.quote_literal(pg_catalog.obj_description(p.oid, 'pg_proc')), 'none'),
		E'\n', E'\nfunction ' || p.oid::pg_catalog.regprocedure::text || ' | ')
	FROM pg_catalog.pg_proc p
	WHERE p.pronamespace = 'meter'::pg_catalog.regnamespace
		OR p.oid IN (SELECT m.objid FROM members m WHERE m.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass)
	UNION ALL
	-- types (base, enum, composite, domain) in schema meter; array types and table row
	-- types follow their element or table
	SELECT 'type ' || t.oid::pg_catalog.regtype::text || ' kind ' || t.typtype::text
		|| ' len ' || t.typlen || ' byval ' || t.typbyval || ' align ' || t.typalign::text
		|| ' storage ' || t.typstorage::text || ' category ' || t.typcategory::text || ' preferred ' || t.typispreferred
		|| ' collatable ' || (t.typcollation <> 0)
		|| ' in ' || t.typinput::text || ' out ' || t.typoutput::text
		|| ' recv ' || t.typreceive::text || ' send ' || t.typsend::text
		|| ' modin ' || t.typmodin::text || ' modout ' || t.typmodout::text || ' analyze ' || t.typanalyze::text
		|| ' subscript ' || t.typsubscript::text
		|| ' array ' || COALESCE(NULLIF(t.typarray, 0)::pg_catalog.regtype::text, '-')
		|| ' default ' || COALESCE(t.typdefault, '-')
		|| ' owner ' || t.typowner::pg_catalog.regrole::text
		|| ' acl ' || COALESCE((SELECT pg_catalog.string_agg(a::text, ',' ORDER BY a::text)
			FROM pg_catalog.unnest(t.typacl) a), 'default')
		|| CASE WHEN t.typtype = 'e' THEN ' labels ' || (SELECT pg_catalog.string_agg(pg_catalog.quote_literal(e.enumlabel), ',' ORDER BY e.enumsortorder)
			FROM pg_catalog.pg_enum e WHERE e.enumtypid = t.oid) ELSE '' END
		|| CASE WHEN t.typtype = 'c' THEN ' attributes ' || (SELECT pg_catalog.string_agg(pg_catalog.quote_ident(a.attname) || ' '
				|| pg_catalog.format_type(a.atttypid, a.atttypmod)
				|| COALESCE(' collate ' || NULLIF(a.attcollation, 0)::pg_catalog.regcollation::text, ''), ', ' ORDER BY a.attnum)
			FROM pg_catalog.pg_attribute a WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped)
			ELSE '' END
		|| CASE WHEN t.typtype = 'd' THEN ' base ' || pg_catalog.format_type(t.typbasetype, t.typtypmod)
			|| ' notnull ' || t.typnotnull ELSE '' END
		|| ' comment ' || COALESCE(pg_catalog.quote_literal(pg_catalog.obj_description(t.oid, 'pg_type')), 'none')
	FROM pg_catalog.pg_type t
	WHERE t.typnamespace = 'meter'::pg_catalog.regnamespace
		AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_type el WHERE el.typarray = t.oid)
		AND (t.typrelid = 0 OR (SELECT r.relkind FROM pg_catalog.pg_class r WHERE r.oid = t.typrelid) = 'c')
	UNION ALL
	-- relations in schema meter: tables, views, indexes, sequences
	SELECT 'relation ' || c.oid::pg_catalog.regclass::text || ' kind ' || c.relkind::text
		|| ' persistence ' || c.relpersistence::text || ' rls ' || c.relrowsecurity || ' force_rls ' || c.relforcerowsecurity
		|| ' replident ' || c.relreplident::text || ' partitioned ' || c.relispartition
		|| ' options ' || COALESCE(c.reloptions::text, '-')
		|| ' owner ' || c.relowner::pg_catalog.regrole::text
		|| ' acl ' || COALESCE((SELECT pg_catalog.string_agg(a::text, ',' ORDER BY a::text)
			FROM pg_catalog.unnest(c.relacl) a), 'default')
		|| ' comment ' || COALESCE(pg_catalog.quote_literal(pg_catalog.obj_description(c.oid, 'pg_class')), 'none')
		|| CASE WHEN c.relkind = 'v' THEN E'\n  view ' || pg_catalog.replace(pg_catalog.pg_get_viewdef(c.oid),
			E'\n', E'\n  view ' || c.oid::pg_catalog.regclass::text || ' | ') ELSE '' END
		|| CASE WHEN c.relkind = 'i' THEN E'\n  index ' || pg_catalog.pg_get_indexdef(c.oid)
			|| ' (valid ' || (SELECT i.indisvalid || ' clustered ' || i.indisclustered || ' replident ' || i.indisreplident
				FROM pg_catalog.pg_index i WHERE i.indexrelid = c.oid) || ')' ELSE '' END
	FROM pg_catalog.pg_class c
	WHERE c.relnamespace = 'meter'::pg_catalog.regnamespace AND c.relkind <> 't'
	UNION ALL
	-- columns, by position among the live ones
	SELECT 'column ' || c.oid::pg_catalog.regclass::text || ' #'
		|| pg_catalog.row_number() OVER (PARTITION BY c.oid ORDER BY a.attnum) || ' '
		|| pg_catalog.quote_ident(a.attname) || ' ' || pg_catalog.format_type(a.atttypid, a.atttypmod)
		|| ' notnull ' || a.attnotnull
		|| ' collate ' || COALESCE(NULLIF(a.attcollation, 0)::pg_catalog.regcollation::text, '-')
		|| ' storage ' || a.attstorage::text || ' compression ' || COALESCE(NULLIF(a.attcompression, '')::text, '-')
		|| ' identity ' || COALESCE(NULLIF(a.attidentity, '')::text, '-')
		|| ' generated ' || COALESCE(NULLIF(a.attgenerated, '')::text, '-')
		|| ' stattarget ' || a.attstattarget
		|| ' options ' || COALESCE(a.attoptions::text, '-')
		|| ' acl ' || COALESCE((SELECT pg_catalog.string_agg(x::text, ',' ORDER BY x::text)
			FROM pg_catalog.unnest(a.attacl) x), 'default')
		|| ' default ' || COALESCE((SELECT pg_catalog.pg_get_expr(d.adbin, d.adrelid) FROM pg_catalog.pg_attrdef d
			WHERE d.adrelid = a.attrelid AND d.adnum = a.attnum), '-')
		|| ' comment ' || COALESCE(pg_catalog.quote_literal(pg_catalog.col_description(c.oid, a.attnum)), 'none')
	FROM pg_catalog.pg_class c
	JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
	WHERE c.relnamespace = 'meter'::pg_catalog.regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'c')
	UNION ALL
	-- constraints on tables of schema meter (and on its domains)
	SELECT 'constraint ' || co.conname || ' on ' || COALESCE(NULLIF(co.conrelid, 0)::pg_catalog.regclass::text,
			co.contypid::pg_catalog.regtype::text)
		|| ' ' || pg_catalog.pg_get_constraintdef(co.oid)
		|| ' deferrable ' || co.condeferrable || ' validated ' || co.convalidated
		|| ' comment ' || COALESCE(pg_catalog.quote_literal(pg_catalog.obj_description(co.oid, 'pg_constraint')), 'none')
	FROM pg_catalog.pg_constraint co
	WHERE co.connamespace = 'meter'::pg_catalog.regnamespace
	UNION ALL
	-- row-level security policies
	SELECT 'policy ' || po.polname || ' on ' || po.polrelid::pg_catalog.regclass::text
		|| ' cmd ' || po.polcmd::text || ' permissive ' || po.polpermissive
		|| ' roles ' || (SELECT pg_catalog.string_agg(CASE WHEN r = 0 THEN 'public' ELSE r::pg_catalog.regrole::text END, ',' ORDER BY 1)
			FROM pg_catalog.unnest(po.polroles) r)
		|| ' using ' || COALESCE(pg_catalog.pg_get_expr(po.polqual, po.polrelid), '-')
		|| ' check ' || COALESCE(pg_catalog.pg_get_expr(po.polwithcheck, po.polrelid), '-')
		|| ' comment ' || COALESCE(pg_catalog.quote_literal(pg_catalog.obj_description(po.oid, 'pg_policy')), 'none')
	FROM pg_catalog.pg_policy po
	JOIN pg_catalog.pg_class c ON c.oid = po.polrelid
	WHERE c.relnamespace = 'meter'::pg_catalog.regnamespace
	UNION ALL
	-- triggers on the extension's tables
	SELECT 'trigger ' || pg_catalog.pg_get_triggerdef(tg.oid) || ' enabled ' || tg.tgenabled::text
		|| ' comment ' || COALESCE(pg_catalog.quote_literal(pg_catalog.obj_description(tg.oid, 'pg_trigger')), 'none')
	FROM pg_catalog.pg_trigger tg
	JOIN pg_catalog.pg_class c ON c.oid = tg.tgrelid
	WHERE c.relnamespace = 'meter'::pg_catalog.regnamespace AND NOT tg.tgisinternal
	UNION ALL
	-- rules (views' _RETURN rules are in their view definitions)
	SELECT 'rule ' || pg_catalog.pg_get_ruledef(ru.oid)
	FROM pg_catalog.pg_rewrite ru
	JOIN pg_catalog.pg_class c ON c.oid = ru.ev_class
	WHERE c.relnamespace = 'meter'::pg_catalog.regnamespace AND ru.rulename <> '_RETURN'
	UNION ALL
	-- event triggers that call the extension's functions
	SELECT 'event_trigger ' || et.evtname || ' on ' || et.evtevent || ' function ' || et.evtfoid::pg_catalog.regprocedure::text
		|| ' enabled ' || et.evtenabled::text || ' tags ' || COALESCE(et.evttags::text, '-')
		|| ' owner ' || et.evtowner::pg_catalog.regrole::text
		|| ' comment ' || COALESCE(pg_catalog.quote_literal(pg_catalog.obj_description(et.oid, 'pg_event_trigger')), 'none')
	FROM pg_catalog.pg_event_trigger et
	WHERE et.evtfoid IN (SELECT p.oid FROM pg_catalog.pg_proc p WHERE p.pronamespace = 'meter'::pg_catalog.regnamespace)
		OR et.oid IN (SELECT m.objid FROM members m WHERE m.classid = 'pg_catalog.pg_event_trigger'::pg_catalog.regclass)
	UNION ALL
	-- operators on the extension's types (wherever they live)
	SELECT 'operator ' || o.oid::pg_catalog.regoperator::text || ' function ' || o.oprcode::text
		|| ' commutator ' || COALESCE(NULLIF(o.oprcom, 0)::pg_catalog.regoperator::text, '-')
		|| ' negator ' || COALESCE(NULLIF(o.oprnegate, 0)::pg_catalog.regoperator::text, '-')
		|| ' restrict ' || o.oprrest::text || ' join ' || o.oprjoin::text
		|| ' hashes ' || o.oprcanhash || ' merges ' || o.oprcanmerge
		|| ' comment ' || COALESCE(pg_catalog.quote_literal(pg_catalog.obj_description(o.oid, 'pg_operator')), 'none')
	FROM pg_catalog.pg_operator o
	WHERE o.oprnamespace = 'meter'::pg_catalog.regnamespace
		OR o.oid IN (SELECT m.objid FROM members m WHERE m.classid = 'pg_catalog.pg_operator'::pg_catalog.regclass)
	UNION ALL
	-- operator classes and families with their members
	SELECT 'opclass ' || oc.opcname || ' using ' || am.amname || ' for ' || oc.opcintype::pg_catalog.regtype::text
		|| ' default ' || oc.opcdefault || ' family ' || opf.opfname
		|| ' comment ' || COALESCE(pg_catalog.quote_literal(pg_catalog.obj_description(oc.oid, 'pg_opclass')), 'none')
	FROM pg_catalog.pg_opclass oc
	JOIN pg_catalog.pg_am am ON am.oid = oc.opcmethod
	JOIN pg_catalog.pg_opfamily opf ON opf.oid = oc.opcfamily
	WHERE oc.opcnamespace = 'meter'::pg_catalog.regnamespace
	UNION ALL
	SELECT 'opfamily ' || opf.opfname || ' using ' || am.amname
		|| ' comment ' || COALESCE(pg_catalog.quote_literal(pg_catalog.obj_description(opf.oid, 'pg_opfamily')), 'none')
		|| ' operators ' || COALESCE((SELECT pg_catalog.string_agg(ao.amopstrategy || ':' || ao.amopopr::pg_catalog.regoperator::text
			|| ':' || ao.amoppurpose::text, ',' ORDER BY ao.amopstrategy, ao.amopopr::pg_catalog.regoperator::text)
			FROM pg_catalog.pg_amop ao WHERE ao.amopfamily = opf.oid), '-')
		|| ' functions ' || COALESCE((SELECT pg_catalog.string_agg(ap.amprocnum || ':' || ap.amproc::pg_catalog.regprocedure::text,
			',' ORDER BY ap.amprocnum, ap.amproc::pg_catalog.regprocedure::text)
			FROM pg_catalog.pg_amproc ap WHERE ap.amprocfamily = opf.oid), '-')
	FROM pg_catalog.pg_opfamily opf
	JOIN pg_catalog.pg_am am ON am.oid = opf.opfmethod
	WHERE opf.opfnamespace = 'meter'::pg_catalog.regnamespace
	UNION ALL
	-- casts from or to the extension's types
	SELECT 'cast ' || ca.castsource::pg_catalog.regtype::text || ' -> ' || ca.casttarget::pg_catalog.regtype::text
		|| ' function ' || COALESCE(NULLIF(ca.castfunc, 0)::pg_catalog.regprocedure::text, '-')
		|| ' context ' || ca.castcontext::text || ' method ' || ca.castmethod::text
		|| ' comment ' || COALESCE(pg_catalog.quote_literal(pg_catalog.obj_description(ca.oid, 'pg_cast')), 'none')
	FROM pg_catalog.pg_cast ca
	WHERE ca.oid IN (SELECT m.objid FROM members m WHERE m.classid = 'pg_catalog.pg_cast'::pg_catalog.regclass)
	UNION ALL
	-- the privileges pg_dump takes as the extension's own (it dumps only changes to them)
	SELECT 'init_privs ' || pg_catalog.pg_describe_object(ip.classoid, ip.objoid, ip.objsubid) || ' type ' || ip.privtype::text
		|| ' acl ' || COALESCE((SELECT pg_catalog.string_agg(a::text, ',' ORDER BY a::text)
			FROM pg_catalog.unnest(ip.initprivs) a), '-')
	FROM pg_catalog.pg_init_privs ip
	WHERE ip.privtype = 'e'
)
SELECT line FROM lines ORDER BY line COLLATE "C";
