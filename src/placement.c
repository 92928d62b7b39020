/*
 * placement.c — the relations the engine's statements name (see placement.h).
 *
 * Per-backend caches, all dropped together when one of the relations they were built
 * from gets a relcache invalidation (or every relation does) and no placement is in use:
 * whether the engine is distributed, what a trigger's relation is (a shard of which group,
 * or a distributed table), which group holds each tenant (the shard of meter.events whose
 * hash range holds it, when this node has a placement of it), and the placements
 * themselves with their prepared statements. Citus's catalogs are read through SPI as
 * the extension's owner.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/regproc.h"
#include "utils/syscache.h"

#include "placement.h"

static const char *const table_names[ENGINE_NTABLES] = {
	"meters", "seals", "tracked_tables", "events", "pending", "rollups", "sealed_skips"
};

/* What a relation is, for the triggers that fire on it. */
typedef struct RelationInfo
{
	Oid			relid;			/* hash key */
	Oid			logical;		/* the table it is a shard of (or relid itself) */
	bool		distributed;	/* a Citus table itself: its shards do the work */
	int64		events_shard;	/* meter.events' shard of its group; 0: none */
} RelationInfo;

typedef struct TenantInfo
{
	char		tenant[NAMEDATALEN * 4];	/* hash key */
	int64		events_shard;	/* 0: held by another node */
} TenantInfo;

static Placement default_placement;
static MemoryContext placement_cxt = NULL;
static HTAB *relations = NULL;
static HTAB *tenants = NULL;
static HTAB *watched = NULL;	/* OIDs whose invalidation drops the caches */
static List *placements = NIL;
static bool stale = false;
static int	distributed_state = -1; /* -1 unknown */
static int	coordinator_state = -1;
static Oid	events_relid = InvalidOid;

static Placement *current = NULL;
static int	depth = 0;

/* ── Invalidation ────────────────────────────────────────────────────────────────── */

static void
relation_changed(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == events_relid)
	{
		/* distributed or not, and where each tenant's shards are (Citus invalidates the
		 * distributed table when its shards move) */
		distributed_state = -1;
		coordinator_state = -1;
		stale = true;
	}
	if (relid == InvalidOid ||
		(watched != NULL && hash_search(watched, &relid, HASH_FIND, NULL) != NULL))
		stale = true;
}

static void
transaction_ended(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT)
	{
		current = NULL;
		depth = 0;
	}
}

void
placement_register(void)
{
	CacheRegisterRelcacheCallback(relation_changed, (Datum) 0);
	RegisterXactCallback(transaction_ended, NULL);
}

static void
watch(Oid relid)
{
	if (OidIsValid(relid))
		(void) hash_search(watched, &relid, HASH_ENTER, NULL);
}

/* Drop every cache (not while a placement is in use). */
static void
drop_caches(void)
{
	ListCell   *lc;
	HASHCTL		ctl;

	foreach(lc, placements)
	{
		Placement  *p = lfirst(lc);

		for (int i = 0; i < PLACEMENT_MAX_PLANS; i++)
			if (p->plans[i] != NULL)
				SPI_freeplan(p->plans[i]);
	}
	placements = NIL;
	if (placement_cxt == NULL)
		placement_cxt = AllocSetContextCreate(CacheMemoryContext, "meter placements",
											  ALLOCSET_SMALL_SIZES);
	MemoryContextReset(placement_cxt);
	ctl.keysize = sizeof(Oid);
	ctl.entrysize = sizeof(RelationInfo);
	ctl.hcxt = placement_cxt;
	relations = hash_create("meter relations", 32, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	ctl.entrysize = sizeof(Oid);
	watched = hash_create("meter watched relations", 64, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	ctl.keysize = sizeof(((TenantInfo *) NULL)->tenant);
	ctl.entrysize = sizeof(TenantInfo);
	tenants = hash_create("meter tenants", 64, &ctl, HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	stale = false;
}

static void
refresh(void)
{
	if (relations == NULL || (stale && depth == 0))
		drop_caches();
}

/* ── Is the engine distributed? ──────────────────────────────────────────────────── */

static Oid
engine_relid(EngineTable t)
{
	Oid			nsp = get_namespace_oid("meter", true);

	return OidIsValid(nsp) ? get_relname_relid(table_names[t], nsp) : InvalidOid;
}

/*
 * Citus's catalogs are read as the extension's owner: shard_name() needs USAGE on the
 * schemas of every co-located table, which the role calling a usage
 * function (or writing events) need not have. Restored at the end, or by the abort.
 */
typedef struct AsOwner
{
	Oid			userid;
	int			sec_context;
} AsOwner;

static void
as_owner(AsOwner *saved)
{
	HeapTuple	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(engine_relid(ENGINE_METERS)));
	Oid			owner;

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "meter: table meter.meters is missing");
	owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	ReleaseSysCache(tup);
	GetUserIdAndSecContext(&saved->userid, &saved->sec_context);
	SetUserIdAndSecContext(owner, saved->sec_context | SECURITY_LOCAL_USERID_CHANGE);
}

static void
as_before(const AsOwner *saved)
{
	SetUserIdAndSecContext(saved->userid, saved->sec_context);
}

/*
 * The relation of a shard (or placement) of table, named by Citus's shard_name(): in the
 * table's schema, which shard_name() leaves out for a table in public. InvalidOid when
 * this node has no such relation.
 */
static Oid
shard_relid(Oid table, const char *name)
{
	List	   *names = stringToQualifiedNameList(name);
	Oid			nsp = list_length(names) > 1 ?
		get_namespace_oid(strVal(linitial(names)), true) : get_rel_namespace(table);

	return OidIsValid(nsp) ? get_relname_relid(strVal(llast(names)), nsp) : InvalidOid;
}

/* One value of a query on Citus's catalogs (NULL when no row). */
static Datum
catalog_value(const char *sql, int nargs, Oid *types, Datum *args, bool *found)
{
	Datum		result = (Datum) 0;
	bool		isnull = true;
	AsOwner		saved;

	as_owner(&saved);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args(sql, nargs, types, args, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "meter: reading the Citus metadata failed");
	if (SPI_processed > 0)
		result = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	SPI_finish();
	as_before(&saved);
	*found = !isnull;
	return result;				/* only by-value results */
}

bool
placement_distributed(void)
{
	if (distributed_state < 0)
	{
		bool		found = false;

		events_relid = engine_relid(ENGINE_EVENTS);
		if (OidIsValid(events_relid) && OidIsValid(get_extension_oid("citus", true)))
		{
			Oid			types[1] = {OIDOID};
			Datum		args[1] = {ObjectIdGetDatum(events_relid)};

			(void) catalog_value("SELECT true FROM pg_catalog.pg_dist_partition"
								 " WHERE logicalrelid OPERATOR(pg_catalog.=) $1",
								 1, types, args, &found);
		}
		distributed_state = found ? 1 : 0;
	}
	return distributed_state == 1;
}

bool
placement_on_coordinator(void)
{
	if (coordinator_state < 0)
	{
		bool		found = false;
		Datum		group = (Datum) 0;

		if (OidIsValid(get_extension_oid("citus", true)))
			group = catalog_value("SELECT groupid FROM pg_catalog.pg_dist_local_group",
								  0, NULL, NULL, &found);
		coordinator_state = (!found || DatumGetInt32(group) == 0) ? 1 : 0;
	}
	return coordinator_state == 1;
}

/* ── Placements ──────────────────────────────────────────────────────────────────── */

static Placement *
default_placement_get(void)
{
	if (default_placement.name[0] == NULL)
		for (int t = 0; t < ENGINE_NTABLES; t++)
			default_placement.name[t] = MemoryContextStrdup(TopMemoryContext,
															psprintf("meter.%s", table_names[t]));
	return &default_placement;
}

static char *
qualified_name(Oid relid)
{
	char	   *nsp = get_namespace_name(get_rel_namespace(relid));
	char	   *rel = get_rel_name(relid);

	if (nsp == NULL || rel == NULL)
		elog(ERROR, "meter: relation %u vanished", relid);
	return quote_qualified_identifier(nsp, rel);
}

/*
 * The placement of the group of meter.events' shard shardid: its co-located shards and
 * the local placements of the reference tables, all on this node.
 */
static Placement *
placement_build(int64 shardid)
{
	static const char sql[] =
		"SELECT o.logicalrelid::pg_catalog.oid,"
		" pg_catalog.shard_name(o.logicalrelid, o.shardid)"
		" FROM pg_catalog.pg_dist_shard me"
		" JOIN pg_catalog.pg_dist_partition pm ON pm.logicalrelid OPERATOR(pg_catalog.=) me.logicalrelid"
		" JOIN pg_catalog.pg_dist_partition po ON po.colocationid OPERATOR(pg_catalog.=) pm.colocationid"
		" JOIN pg_catalog.pg_dist_shard o ON o.logicalrelid OPERATOR(pg_catalog.=) po.logicalrelid"
		"  AND o.shardminvalue OPERATOR(pg_catalog.=) me.shardminvalue"
		" WHERE me.shardid OPERATOR(pg_catalog.=) $1"
		" UNION ALL"
		" SELECT s.logicalrelid::pg_catalog.oid, pg_catalog.shard_name(s.logicalrelid, s.shardid)"
		" FROM pg_catalog.pg_dist_shard s"
		" JOIN pg_catalog.pg_dist_placement pl ON pl.shardid OPERATOR(pg_catalog.=) s.shardid"
		" WHERE s.logicalrelid OPERATOR(pg_catalog.=) ANY ($2)"
		"  AND pl.groupid OPERATOR(pg_catalog.=) (SELECT groupid FROM pg_catalog.pg_dist_local_group)";
	Oid			types[2] = {INT8OID, OIDARRAYOID};
	Datum		args[2];
	Datum		refs[3];
	Oid			logical[ENGINE_NTABLES];
	Placement  *p;
	MemoryContext old;
	AsOwner		saved;

	for (int t = 0; t < ENGINE_NTABLES; t++)
		logical[t] = engine_relid((EngineTable) t);
	refs[0] = ObjectIdGetDatum(logical[ENGINE_METERS]);
	refs[1] = ObjectIdGetDatum(logical[ENGINE_SEALS]);
	refs[2] = ObjectIdGetDatum(logical[ENGINE_TRACKED_TABLES]);
	args[0] = Int64GetDatum(shardid);
	args[1] = PointerGetDatum(construct_array(refs, 3, OIDOID, sizeof(Oid), true, TYPALIGN_INT));

	p = MemoryContextAllocZero(placement_cxt, sizeof(Placement));
	p->shardid = shardid;
	as_owner(&saved);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args(sql, 2, types, args, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "meter: reading the Citus metadata failed");
	old = MemoryContextSwitchTo(placement_cxt);
	p->logical = palloc(sizeof(Oid) * (SPI_processed + 1));
	p->local = palloc(sizeof(Oid) * (SPI_processed + 1));
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		Oid			table = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
		Oid			local = shard_relid(table, SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2));

		for (int t = 0; t < ENGINE_NTABLES; t++)
			if (logical[t] == table)
				p->rel[t] = local;
		p->logical[p->ncolocated] = table;
		p->local[p->ncolocated++] = local;
		watch(table);
		watch(local);
	}
	MemoryContextSwitchTo(old);
	SPI_finish();
	as_before(&saved);
	for (int t = 0; t < ENGINE_NTABLES; t++)
	{
		if (!OidIsValid(p->rel[t]))
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("meter.%s has no placement for shard group " INT64_FORMAT " on this node",
							table_names[t], shardid),
					 errdetail("The engine's tables must be distributed together: meter.meters, meter.seals and "
							   "meter.tracked_tables as reference tables, the others co-located with meter.events."),
					 errhint("Run SELECT meter.distribute() on the coordinator.")));
		p->name[t] = MemoryContextStrdup(placement_cxt, qualified_name(p->rel[t]));
	}
	placements = lappend(placements, p);
	return p;
}

static Placement *
placement_by_shard(int64 shardid)
{
	ListCell   *lc;
	MemoryContext old;

	foreach(lc, placements)
	{
		Placement  *p = lfirst(lc);

		if (p->shardid == shardid)
			return p;
	}
	old = MemoryContextSwitchTo(placement_cxt);
	PG_TRY();
	{
		(void) placement_build(shardid);
	}
	PG_FINALLY();
	{
		MemoryContextSwitchTo(old);
	}
	PG_END_TRY();
	return llast(placements);
}

/* What relid is: a shard (of which table, in which group), a Citus table, or neither. */
static RelationInfo *
relation_info(Oid relid)
{
	static const char sql[] =
		"SELECT s.logicalrelid::pg_catalog.oid, e.shardid, pg_catalog.shard_name(s.logicalrelid, s.shardid)"
		" FROM pg_catalog.pg_dist_shard s"
		" JOIN pg_catalog.pg_dist_partition p ON p.logicalrelid OPERATOR(pg_catalog.=) s.logicalrelid"
		" LEFT JOIN (pg_catalog.pg_dist_shard e"
		"  JOIN pg_catalog.pg_dist_partition pe ON pe.logicalrelid OPERATOR(pg_catalog.=) e.logicalrelid)"
		"  ON e.logicalrelid OPERATOR(pg_catalog.=) $2 AND pe.colocationid OPERATOR(pg_catalog.=) p.colocationid"
		"  AND e.shardminvalue OPERATOR(pg_catalog.=) s.shardminvalue"
		" WHERE s.shardid OPERATOR(pg_catalog.=) $1";
	RelationInfo *r;
	bool		found;
	char	   *name;
	char	   *digits;
	char	   *end;

	refresh();
	r = hash_search(relations, &relid, HASH_FIND, &found);
	if (found)
		return r;
	r = hash_search(relations, &relid, HASH_ENTER, &found);
	r->logical = relid;
	r->distributed = false;
	r->events_shard = 0;
	watch(relid);

	/* A Citus table itself? */
	{
		Oid			types[1] = {OIDOID};
		Datum		args[1] = {ObjectIdGetDatum(relid)};

		(void) catalog_value("SELECT true FROM pg_catalog.pg_dist_partition"
							 " WHERE logicalrelid OPERATOR(pg_catalog.=) $1", 1, types, args, &found);
		if (found)
		{
			r->distributed = true;
			return r;
		}
	}
	/* A shard is named <table>_<shard id>: the shard id is the digits after the last _. */
	name = get_rel_name(relid);
	digits = name ? strrchr(name, '_') : NULL;
	if (digits != NULL && digits[1] != '\0')
	{
		int64		shardid = strtoi64(digits + 1, &end, 10);

		if (*end == '\0' && shardid > 0)
		{
			Oid			types[2] = {INT8OID, OIDOID};
			Datum		args[2] = {Int64GetDatum(shardid), ObjectIdGetDatum(engine_relid(ENGINE_EVENTS))};
			AsOwner		saved;

			as_owner(&saved);
			if (SPI_connect() != SPI_OK_CONNECT)
				elog(ERROR, "SPI_connect failed");
			if (SPI_execute_with_args(sql, 2, types, args, NULL, true, 1) != SPI_OK_SELECT)
				elog(ERROR, "meter: reading the Citus metadata failed");
			if (SPI_processed == 1)
			{
				HeapTuple	t = SPI_tuptable->vals[0];
				TupleDesc	d = SPI_tuptable->tupdesc;
				bool		isnull;
				Oid			logical = DatumGetObjectId(SPI_getbinval(t, d, 1, &isnull));
				Datum		events_shard = SPI_getbinval(t, d, 2, &isnull);

				/* the shard of that id is this very relation (not a namesake) */
				if (shard_relid(logical, SPI_getvalue(t, d, 3)) == relid)
				{
					r->logical = logical;
					r->events_shard = isnull ? 0 : DatumGetInt64(events_shard);
					watch(r->logical);
				}
			}
			SPI_finish();
			as_before(&saved);
		}
	}
	return r;
}

Placement *
placement_of_relation(Oid relid)
{
	RelationInfo *r;

	if (!placement_distributed())
		return default_placement_get();
	r = relation_info(relid);
	if (r->distributed)
		return NULL;
	if (r->events_shard == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("table %s is not distributed with meter.events",
						quote_qualified_identifier(get_namespace_name(get_rel_namespace(r->logical)),
												   get_rel_name(r->logical))),
				 errdetail("On a Citus cluster the events of every tracked table are counted on the node "
						   "that holds the tenant's shards: the table must be distributed by tenant_id, "
						   "co-located with meter.events."),
				 errhint("Run SELECT meter.distribute() on the coordinator; it distributes every tracked table.")));
	return placement_by_shard(r->events_shard);
}

Oid
placement_logical_of(Oid relid)
{
	if (!placement_distributed())
		return relid;
	return relation_info(relid)->logical;
}

Placement *
placement_of_tenant(const char *tenant)
{
	static const char sql[] =
		"SELECT s.shardid FROM pg_catalog.pg_dist_shard s"
		" JOIN pg_catalog.pg_dist_placement pl ON pl.shardid OPERATOR(pg_catalog.=) s.shardid"
		" WHERE s.logicalrelid OPERATOR(pg_catalog.=) $2"
		"  AND pg_catalog.worker_hash($1) OPERATOR(pg_catalog.>=) s.shardminvalue::pg_catalog.int4"
		"  AND pg_catalog.worker_hash($1) OPERATOR(pg_catalog.<=) s.shardmaxvalue::pg_catalog.int4"
		"  AND pl.groupid OPERATOR(pg_catalog.=) (SELECT groupid FROM pg_catalog.pg_dist_local_group)";
	TenantInfo *t = NULL;
	int64		shardid;
	bool		found;

	if (!placement_distributed())
		return default_placement_get();
	refresh();
	if (strlen(tenant) < sizeof(t->tenant))
	{
		t = hash_search(tenants, tenant, HASH_FIND, &found);
		if (found)
			return t->events_shard != 0 ? placement_by_shard(t->events_shard) : NULL;
	}
	{
		Oid			types[2] = {TEXTOID, OIDOID};
		Datum		args[2] = {CStringGetTextDatum(tenant), ObjectIdGetDatum(events_relid)};
		Datum		d = catalog_value(sql, 2, types, args, &found);

		shardid = found ? DatumGetInt64(d) : 0;
	}
	if (strlen(tenant) < sizeof(t->tenant))
	{
		t = hash_search(tenants, tenant, HASH_ENTER, &found);
		t->events_shard = shardid;
	}
	return shardid != 0 ? placement_by_shard(shardid) : NULL;
}

/* ── Working in a placement ──────────────────────────────────────────────────────── */

Placement *
placement_current(void)
{
	return current != NULL ? current : default_placement_get();
}

Placement *
placement_enter(Placement *p)
{
	Placement  *previous = current;

	current = p;
	depth++;
	return previous;
}

void
placement_leave(Placement *previous)
{
	current = previous;
	if (depth > 0)
		depth--;
}

/*
 * Read the group's co-located shards again: a table distributed with meter.events in this
 * very transaction (meter.track on a cluster) sends no invalidation of anything cached.
 */
static void
placement_reread(Placement *p)
{
	Placement  *fresh;
	MemoryContext old = MemoryContextSwitchTo(placement_cxt);

	placements = list_delete_ptr(placements, p);
	PG_TRY();
	{
		fresh = placement_build(p->shardid);
	}
	PG_FINALLY();
	{
		MemoryContextSwitchTo(old);
	}
	PG_END_TRY();
	/* p may be in use: keep it, with the fresh lists and statements' names unchanged */
	placements = list_delete_ptr(placements, fresh);
	placements = lappend(placements, p);
	p->ncolocated = fresh->ncolocated;
	p->logical = fresh->logical;
	p->local = fresh->local;
}

static Oid
colocated_shard(Placement *p, Oid table)
{
	for (int i = 0; i < p->ncolocated; i++)
		if (p->logical[i] == table && OidIsValid(p->local[i]))
			return p->local[i];
	return InvalidOid;
}

Oid
placement_local_table(Placement *p, Oid table)
{
	Oid			local;

	if (p->shardid == 0)
		return table;
	local = colocated_shard(p, table);
	if (!OidIsValid(local))
	{
		placement_reread(p);
		local = colocated_shard(p, table);
	}
	if (OidIsValid(local))
		return local;
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("tracked table %s is not distributed with meter.events",
					quote_qualified_identifier(get_namespace_name(get_rel_namespace(table)),
											   get_rel_name(table))),
			 errdetail("On a Citus cluster every tracked table is distributed by tenant_id, co-located "
					   "with meter.events, so that a tenant's events are on the node that counts them."),
			 errhint("Run SELECT meter.distribute() on the coordinator.")));
	return InvalidOid;			/* not reached */
}
