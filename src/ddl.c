/*
 * ddl.c — DDL on tracked tables never corrupts usage (SPEC §7), through two event
 * triggers:
 *   ddl_command_end  ALTER TABLE that drops, renames away or retypes an event column of a
 *                    tracked table (or of a partition of one) is refused; a partition
 *                    attached to a tracked table gets the tracking triggers and its rows
 *                    count, a detached one loses both; a table created as a partition of
 *                    a tracked table gets the triggers.
 *   sql_drop         a dropped tracked table leaves the registry, and usage is recomputed
 *                    without the events it held (likewise for a dropped partition).
 * On a Citus cluster both act on the coordinator only (handles_ddl).
 */
#include "postgres.h"

#include "access/relation.h"
#include "catalog/namespace.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_type.h"
#include "commands/event_trigger.h"
#include "executor/spi.h"
#include "nodes/parsenodes.h"
#include "catalog/partition.h"
#include "catalog/pg_class.h"
#include "tcop/deparse_utility.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "event_table.h"
#include "placement.h"
#include "store.h"
#include "track.h"

static char *
qualified_name(Oid relid)
{
	return quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
									  get_rel_name(relid));
}

/* Run a statement on a table (its OID as $1). */
static void
run_on(const char *sql, Oid relid, int expect)
{
	Oid			types[1] = {OIDOID};
	Datum		args[1] = {ObjectIdGetDatum(relid)};

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args(sql, 1, types, args, NULL, false, 0) != expect)
		elog(ERROR, "meter: \"%s\" failed", sql);
	SPI_finish();
}

/* Run a registry statement on a table (its OID as $1); true when it returned a row. */
static bool
registry(StoreStatement st, Oid relid, bool read_only, int expect)
{
	Datum		args[1] = {ObjectIdGetDatum(relid)};
	bool		result;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (store_exec(st, args, NULL, NULL, read_only, read_only ? 1 : 0) != expect)
		elog(ERROR, "meter: reading or writing the tracked-tables registry failed");
	result = SPI_processed > 0;
	SPI_finish();
	return result;
}

/*
 * On a Citus cluster DDL on distributed tables is issued on the coordinator, which keeps
 * the registry and has usage recomputed where it lives; the workers replay the DDL on
 * their shells and shards (and drop shards that move away): nothing to do there.
 */
static bool
handles_ddl(void)
{
	return !placement_distributed() || placement_on_coordinator();
}

/* Is the table tracked, itself or as a partition of a tracked table? */
static bool
is_tracked(Oid relid)
{
	return OidIsValid(relid) && registry(STORE_REGISTERED, relid, true, SPI_OK_SELECT);
}

static bool
is_registered(Oid relid)
{
	return registry(STORE_REGISTERED_EXACTLY, relid, true, SPI_OK_SELECT);
}

/* A tracked table's event columns must stay as they are. */
static void
check_columns(Oid relid)
{
	Relation	rel = relation_open(relid, AccessShareLock);
	bool		retyped;
	int			c = event_columns_broken(RelationGetDescr(rel), &retyped);
	char	   *name = qualified_name(relid);

	relation_close(rel, AccessShareLock);
	if (c < 0)
		return;
	ereport(ERROR,
			(errcode(retyped ? ERRCODE_DATATYPE_MISMATCH : ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
			 retyped ? errmsg("cannot change the type of column \"%s\" of tracked table %s",
							  event_column_name(c), name)
			 : errmsg("cannot drop or rename column \"%s\" of tracked table %s",
					  event_column_name(c), name),
			 errdetail("meter.track_usage() reads the event columns of meter.events from every tracked table."),
			 errhint("Run SELECT meter.untrack('%s') first.", name)));
}

/* The tracking triggers on a table and on every partition below it. */
static void
attach_triggers(Oid relid)
{
	run_on("SELECT meter.attach_triggers(t.relid) FROM meter.table_tree($1) t"
		   " WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger g"
		   "  WHERE g.tgrelid OPERATOR(pg_catalog.=) t.relid AND g.tgname OPERATOR(pg_catalog.=) 'meter_track_insert')",
		   relid, SPI_OK_SELECT);
}

static void
detach_triggers(Oid relid)
{
	run_on("SELECT meter.detach_triggers(t.relid) FROM meter.table_tree($1) t",
		   relid, SPI_OK_SELECT);
}

static void
partition_attached(Oid parent, Oid partition)
{
	if (!is_tracked(parent))
	{
		/* Rows written through the parent would fire only the parent's statement triggers. */
		if (is_registered(partition))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("cannot attach tracked table %s to %s, which is not tracked",
							qualified_name(partition), qualified_name(parent)),
					 errdetail("Rows inserted through %s would not be counted.", qualified_name(parent)),
					 errhint("Run SELECT meter.track('%s') first, or meter.untrack('%s').",
							 qualified_name(parent), qualified_name(partition))));
		return;
	}
	attach_triggers(partition);
	if (is_registered(partition))
	{
		/* Tracked on its own until now: its events already count; now through the parent. */
		(void) registry(STORE_UNREGISTER, partition, false, SPI_OK_DELETE);
		return;
	}
	track_table_rows(partition, 1);
}

static void
partition_detached(Oid parent, Oid partition)
{
	if (!is_tracked(parent) || !OidIsValid(partition))
		return;
	track_table_rows(partition, -1);
	detach_triggers(partition);
}

/* Does a table carry the tracking triggers? */
static bool
has_triggers(Oid relid)
{
	Oid			types[1] = {OIDOID};
	Datum		args[1] = {ObjectIdGetDatum(relid)};
	bool		found;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args("SELECT 1 FROM pg_catalog.pg_trigger WHERE tgrelid OPERATOR(pg_catalog.=) $1"
							  " AND tgname OPERATOR(pg_catalog.=) 'meter_track_insert'",
							  1, types, args, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "meter: reading triggers failed");
	found = SPI_processed > 0;
	SPI_finish();
	return found;
}

/*
 * The commands PostgreSQL collects for ATTACH and DETACH PARTITION do not name the
 * partition (and looking its name up again would depend on the search_path): a partition
 * just attached is a child of the table without the triggers (or one tracked on its own
 * until now); one just detached carries the triggers but belongs to no tracked table.
 */
static void
attached_partitions(Oid parent)
{
	List	   *children = find_inheritance_children(parent, NoLock);
	ListCell   *lc;

	foreach(lc, children)
	{
		Oid			child = lfirst_oid(lc);

		if (!has_triggers(child) || is_registered(child))
			partition_attached(parent, child);
	}
}

static void
detached_partitions(Oid parent)
{
	MemoryContext caller = CurrentMemoryContext;
	Oid		   *orphans;
	int			n;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute("SELECT DISTINCT tgrelid FROM pg_catalog.pg_trigger"
					" WHERE tgname OPERATOR(pg_catalog.=) 'meter_track_insert'", false, 0) != SPI_OK_SELECT)
		elog(ERROR, "meter: reading triggers failed");
	n = (int) SPI_processed;
	orphans = MemoryContextAlloc(caller, sizeof(Oid) * (n + 1));
	for (int i = 0; i < n; i++)
	{
		bool		isnull;

		orphans[i] = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
	}
	SPI_finish();
	for (int i = 0; i < n; i++)
		if (!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(orphans[i])) || is_tracked(orphans[i]))
			orphans[i] = InvalidOid;
	/* the top of each detached tree: its rows include those of its own partitions */
	for (int i = 0; i < n; i++)
	{
		Oid			up = OidIsValid(orphans[i]) && get_rel_relispartition(orphans[i])
			? get_partition_parent(orphans[i], true) : InvalidOid;
		bool		top = true;

		for (int j = 0; j < n && OidIsValid(up); j++)
			if (orphans[j] == up)
				top = false;
		if (OidIsValid(orphans[i]) && top)
			partition_detached(parent, orphans[i]);
	}
}

/*
 * One ALTER TABLE of the statement: its table's event columns, and the partitions its
 * subcommands attached or detached — named by the OIDs PostgreSQL collected, so nothing
 * is looked up by name (the function runs with a pinned search_path).
 */
static void
alter_table_end(CollectedCommand *cmd)
{
	Oid			relid = cmd->d.alterTable.objectId;
	ListCell   *lc;

	if (cmd->d.alterTable.classId != RelationRelationId || get_rel_name(relid) == NULL ||
		get_rel_relkind(relid) == RELKIND_INDEX)
		return;
	if (is_tracked(relid))
		check_columns(relid);
	foreach(lc, cmd->d.alterTable.subcmds)
	{
		CollectedATSubcmd *sub = lfirst(lc);
		AlterTableCmd *at = (AlterTableCmd *) sub->parsetree;

		if (at == NULL || !IsA(at, AlterTableCmd))
			continue;
		if (at->subtype == AT_AttachPartition)
			attached_partitions(relid);
		else if (at->subtype == AT_DetachPartition || at->subtype == AT_DetachPartitionFinalize)
			detached_partitions(relid);
	}
}

/* Another command on a table (RENAME of a column, CREATE TABLE … PARTITION OF). */
static void
simple_end(CollectedCommand *cmd)
{
	Oid			relid = cmd->d.simple.address.objectId;

	if (cmd->d.simple.address.classId != RelationRelationId || get_rel_name(relid) == NULL)
		return;
	if (IsA(cmd->parsetree, CreateStmt))
	{
		if (get_rel_relispartition(relid) && is_tracked(get_partition_parent(relid, true)))
			attach_triggers(relid);
		return;
	}
	if (is_tracked(relid))
		check_columns(relid);
}

/*
 * meter.on_ddl_end() — ddl_command_end event trigger for ALTER TABLE and CREATE TABLE
 * (see the file header): walks the commands PostgreSQL collected for the statement.
 */
PG_FUNCTION_INFO_V1(meter_on_ddl_end);
Datum
meter_on_ddl_end(PG_FUNCTION_ARGS)
{
	MemoryContext caller = CurrentMemoryContext;
	CollectedCommand **cmds;
	int			n;

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		elog(ERROR, "meter.on_ddl_end() must be called as an event trigger");
	if (get_namespace_oid("meter", true) == InvalidOid || !handles_ddl())
		PG_RETURN_VOID();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute("SELECT command FROM pg_catalog.pg_event_trigger_ddl_commands()", true, 0) != SPI_OK_SELECT)
		elog(ERROR, "meter: reading the statement's commands failed");
	n = (int) SPI_processed;
	cmds = MemoryContextAlloc(caller, sizeof(CollectedCommand *) * (n + 1));
	for (int i = 0; i < n; i++)
	{
		bool		isnull;

		cmds[i] = (CollectedCommand *) DatumGetPointer(SPI_getbinval(SPI_tuptable->vals[i],
																	 SPI_tuptable->tupdesc, 1, &isnull));
	}
	SPI_finish();
	for (int i = 0; i < n; i++)
	{
		if (cmds[i] == NULL)
			continue;
		if (cmds[i]->type == SCT_AlterTable)
			alter_table_end(cmds[i]);
		else if (cmds[i]->type == SCT_Simple)
			simple_end(cmds[i]);
	}
	PG_RETURN_VOID();
}

/*
 * meter.on_sql_drop() — sql_drop event trigger: tracked tables that no longer exist leave
 * the registry, and when one of them (or a partition of one) went, every meter is
 * recomputed without its events.
 */
PG_FUNCTION_INFO_V1(meter_on_sql_drop);
Datum
meter_on_sql_drop(PG_FUNCTION_ARGS)
{
	bool		rebuild;

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		elog(ERROR, "meter.on_sql_drop() must be called as an event trigger");
	/* DROP EXTENSION meter drops the registry itself: nothing to keep. */
	if (get_namespace_oid("meter", true) == InvalidOid ||
		!OidIsValid(get_relname_relid("tracked_tables", get_namespace_oid("meter", true))) ||
		!handles_ddl())
		PG_RETURN_VOID();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (store_exec(STORE_UNREGISTER_DROPPED, NULL, NULL, NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "meter: cleaning the tracked-tables registry failed");
	rebuild = SPI_processed > 0;
	if (!rebuild)
	{
		/* A table carrying the tracking triggers (a partition) went, not just the triggers. */
		if (SPI_execute("SELECT 1 FROM pg_catalog.pg_event_trigger_dropped_objects() t,"
						" pg_catalog.pg_event_trigger_dropped_objects() d"
						" WHERE t.object_type OPERATOR(pg_catalog.=) 'trigger'"
						" AND d.object_type OPERATOR(pg_catalog.=) 'table'"
						" AND t.object_identity OPERATOR(pg_catalog.=) ('meter_track_insert on ' OPERATOR(pg_catalog.||) d.object_identity)",
						true, 1) != SPI_OK_SELECT)
			elog(ERROR, "meter: reading the dropped objects failed");
		rebuild = SPI_processed > 0;
	}
	if (rebuild && SPI_execute("SELECT meter.rebuild_all()", false, 0) != SPI_OK_SELECT)
		elog(ERROR, "meter: recomputing usage after a drop failed");
	SPI_finish();
	PG_RETURN_VOID();
}

/*
 * meter.table_exists(relid oid) → boolean: does this node have a relation with this OID?
 * The registry's test for tables dropped meanwhile. Declared IMMUTABLE, which it is not,
 * so that on a Citus cluster a statement on meter.tracked_tables (a reference table)
 * evaluates it on every node's placement, against that node's own OIDs, where Citus would
 * evaluate a STABLE function once, on the coordinator; its argument is always a column,
 * so nothing ever folds it to a constant.
 */
PG_FUNCTION_INFO_V1(meter_table_exists);
Datum
meter_table_exists(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(SearchSysCacheExists1(RELOID, PG_GETARG_DATUM(0)));
}
