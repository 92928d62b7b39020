/*
 * partitioning.c — a partitioned meter.events (see partitioning.h).
 *
 * meter.event_ids must hold exactly the (tenant_id, environment_id, id) of the rows the
 * partitioned meter.events holds. Statement triggers on the table and each partition
 * follow INSERT, UPDATE, DELETE and TRUNCATE (meter.event_ids_sync()); the event trigger
 * here follows the DDL that moves rows in or out without firing them:
 *   CREATE TABLE … PARTITION OF   the new partition gets the id triggers (and the
 *                                 table's row-level security)
 *   ALTER TABLE … ATTACH PARTITION  the same, and its rows' ids are claimed: an id that
 *                                 meter.events holds already fails with 23505 and the
 *                                 ATTACH is refused
 *   ALTER TABLE … DETACH PARTITION  its rows' ids go, and so do its id triggers
 *   DROP TABLE (of a partition)   seen at ddl_command_start, while its rows are still
 *                                 there: their ids go
 *   other drops (DROP SCHEMA … CASCADE, DROP OWNED)  at sql_drop: ids no longer held by
 *                                 any row go (one anti-join)
 * A partitioned meter.events is what triggers this; while it is plain, nothing happens.
 * Restoring a dump of a partitioned meter.events needs two steps of its own (restore_step).
 */
#include "postgres.h"

#include "catalog/index.h"
#include "catalog/namespace.h"
#include "catalog/partition.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "commands/event_trigger.h"
#include "commands/extension.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "compat.h"
#include "partitioning.h"

Oid
partitioned_events(void)
{
	Oid			nsp = get_namespace_oid("meter", true);
	Oid			relid;

	if (!OidIsValid(nsp))
		return InvalidOid;
	relid = get_relname_relid("events", nsp);
	if (!OidIsValid(relid) || get_rel_relkind(relid) != RELKIND_PARTITIONED_TABLE)
		return InvalidOid;
	return relid;
}

/* Is the table meter.events itself (in_tree: or a partition of it, at any depth)? */
static bool
in_events_tree(Oid relid, Oid events)
{
	List	   *ancestors;
	bool		found;

	if (!OidIsValid(relid))
		return false;
	if (relid == events)
		return true;
	if (!get_rel_relispartition(relid))
		return false;
	ancestors = get_partition_ancestors(relid);
	found = list_member_oid(ancestors, events);
	list_free(ancestors);
	return found;
}

/* SELECT fn($1, $2) for a table and a flag. */
static void
call_on(const char *sql, Oid relid, bool flag)
{
	Oid			types[2] = {REGCLASSOID, BOOLOID};
	Datum		args[2] = {ObjectIdGetDatum(relid), BoolGetDatum(flag)};

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args(sql, 2, types, args, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "meter: \"%s\" failed", sql);
	SPI_finish();
}

static void
partition_joined(Oid relid, bool claim)
{
	call_on("SELECT meter.event_partition_joined($1, $2)", relid, claim);
}

static void
partition_left(Oid relid, bool detached)
{
	call_on("SELECT meter.event_partition_left($1, $2)", relid, detached);
}

static void
alter_table_end(AlterTableStmt *stmt, Oid events)
{
	Oid			relid = RangeVarGetRelid(stmt->relation, NoLock, true);
	ListCell   *lc;

	if (!in_events_tree(relid, events))
		return;
	foreach(lc, stmt->cmds)
	{
		AlterTableCmd *cmd = lfirst_node(AlterTableCmd, lc);
		PartitionCmd *pc;
		Oid			partition;

		if (cmd->subtype != AT_AttachPartition && cmd->subtype != AT_DetachPartition)
			continue;
		pc = (PartitionCmd *) cmd->def;
		partition = RangeVarGetRelid(pc->name, NoLock, true);
		if (!OidIsValid(partition))
			continue;
		if (cmd->subtype == AT_AttachPartition)
			partition_joined(partition, true);
		else
			partition_left(partition, true);
	}
}

static void
create_table_end(CreateStmt *stmt, Oid events)
{
	Oid			parent;

	if (stmt->partbound == NULL || stmt->inhRelations == NIL)
		return;
	parent = RangeVarGetRelid(linitial_node(RangeVar, stmt->inhRelations), NoLock, true);
	if (in_events_tree(parent, events))
		partition_joined(RangeVarGetRelid(stmt->relation, NoLock, false), false);
}

/* DROP TABLE, before it runs: the ids of the partitions it drops (their rows still there). */
static void
drop_table_start(DropStmt *stmt, Oid events)
{
	ListCell   *lc;

	if (stmt->removeType != OBJECT_TABLE)
		return;
	foreach(lc, stmt->objects)
	{
		Oid			relid = RangeVarGetRelid(makeRangeVarFromNameList((List *) lfirst(lc)), NoLock, true);

		if (relid != events && in_events_tree(relid, events))
			partition_left(relid, false);
	}
}

/*
 * Any other command that dropped a table carrying the id triggers (DROP SCHEMA …
 * CASCADE, DROP OWNED): the ids that no row holds any more go.
 */
static void
other_drop(void)
{
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute("SELECT 1 FROM pg_catalog.pg_event_trigger_dropped_objects() t,"
					" pg_catalog.pg_event_trigger_dropped_objects() d"
					" WHERE t.object_type OPERATOR(pg_catalog.=) 'trigger'"
					" AND d.object_type OPERATOR(pg_catalog.=) 'table'"
					" AND t.object_identity OPERATOR(pg_catalog.=) ('meter_ids_insert on ' OPERATOR(pg_catalog.||) d.object_identity)",
					true, 1) != SPI_OK_SELECT)
		elog(ERROR, "meter: reading the dropped objects failed");
	if (SPI_processed > 0 &&
		SPI_execute("DELETE FROM meter.event_ids i WHERE NOT EXISTS (SELECT 1 FROM meter.events e"
					" WHERE e.tenant_id OPERATOR(pg_catalog.=) i.tenant_id"
					" AND e.environment_id OPERATOR(pg_catalog.=) i.environment_id"
					" AND e.id OPERATOR(pg_catalog.=) i.id)", false, 0) != SPI_OK_DELETE)
		elog(ERROR, "meter: cleaning meter.event_ids after a drop failed");
	SPI_finish();
}

/*
 * Restoring a dump of a partitioned meter.events, with session_replication_role =
 * replica (the README's way), seen at ddl_command_start before the statement looks its
 * names up:
 *   ALTER TABLE meter.events ATTACH PARTITION …  CREATE EXTENSION made the plain table:
 *       it is partitioned first (meter.convert_events: no default partition, no indexes —
 *       the dump creates the partitions' indexes and attaches them to the table's)
 *   ALTER INDEX meter.<index> ATTACH PARTITION <a partition's index>  the table's index
 *       is missing (the table is the extension's: pg_dump does not dump its indexes): it
 *       is created ON ONLY meter.events, like the partition's
 * Both statements would fail otherwise; nothing else is touched.
 */
static void
restore_step(AlterTableStmt *stmt)
{
	Oid			nsp = get_namespace_oid("meter", true);
	Oid			events;
	ListCell   *lc;

	if (SessionReplicationRole != SESSION_REPLICATION_ROLE_REPLICA || !OidIsValid(nsp) ||
		stmt->relation == NULL)
		return;
	events = get_relname_relid("events", nsp);
	foreach(lc, stmt->cmds)
	{
		AlterTableCmd *cmd = lfirst_node(AlterTableCmd, lc);
		PartitionCmd *pc = (PartitionCmd *) cmd->def;

		if (cmd->subtype != AT_AttachPartition)
			continue;
		if (stmt->objtype == OBJECT_TABLE && OidIsValid(events) &&
			get_rel_relkind(events) == RELKIND_RELATION &&
			RangeVarGetRelid(stmt->relation, NoLock, true) == events)
		{
			if (SPI_connect() != SPI_OK_CONNECT)
				elog(ERROR, "SPI_connect failed");
			if (SPI_execute("SELECT meter.convert_events(false, false)", false, 0) != SPI_OK_SELECT)
				elog(ERROR, "meter: partitioning meter.events failed");
			SPI_finish();
		}
		else if (stmt->objtype == OBJECT_INDEX && OidIsValid(events) &&
				 get_rel_relkind(events) == RELKIND_PARTITIONED_TABLE &&
				 !OidIsValid(RangeVarGetRelid(stmt->relation, NoLock, true)) &&
				 (stmt->relation->schemaname == NULL || strcmp(stmt->relation->schemaname, "meter") == 0))
		{
			Oid			child = RangeVarGetRelid(pc->name, NoLock, true);
			Oid			types[2] = {TEXTOID, REGCLASSOID};
			Datum		args[2];

			if (!OidIsValid(child) || get_rel_relkind(child) != RELKIND_INDEX ||
				!in_events_tree(IndexGetRelation(child, false), events))
				continue;
			args[0] = CStringGetTextDatum(stmt->relation->relname);
			args[1] = ObjectIdGetDatum(child);
			if (SPI_connect() != SPI_OK_CONNECT)
				elog(ERROR, "SPI_connect failed");
			if (SPI_execute_with_args("SELECT meter.restore_events_index($1, $2)", 2, types, args,
									  NULL, false, 0) != SPI_OK_SELECT)
				elog(ERROR, "meter: creating an index of meter.events failed");
			SPI_finish();
		}
	}
}

/*
 * meter.on_partition_ddl() — event trigger on ddl_command_start (DROP TABLE; ALTER TABLE
 * and ALTER INDEX in a restore, enabled ALWAYS to fire with session_replication_role =
 * replica),
 * ddl_command_end (CREATE TABLE, ALTER TABLE) and sql_drop: partitions of a partitioned
 * meter.events keep meter.event_ids exact (see the file header).
 */
PG_FUNCTION_INFO_V1(meter_on_partition_ddl);
Datum
meter_on_partition_ddl(PG_FUNCTION_ARGS)
{
	EventTriggerData *trig;
	Oid			events;

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		elog(ERROR, "meter.on_partition_ddl() must be called as an event trigger");
	trig = (EventTriggerData *) fcinfo->context;
	if (strcmp(trig->event, "ddl_command_start") == 0 && IsA(trig->parsetree, AlterTableStmt))
	{
		restore_step((AlterTableStmt *) trig->parsetree);
		PG_RETURN_VOID();
	}
	events = partitioned_events();
	if (!OidIsValid(events))
		PG_RETURN_VOID();
	if (strcmp(trig->event, "sql_drop") == 0)
	{
		if (trig->tag != CMDTAG_DROP_TABLE)
			other_drop();
	}
	else if (IsA(trig->parsetree, DropStmt))
		drop_table_start((DropStmt *) trig->parsetree, events);
	else if (IsA(trig->parsetree, AlterTableStmt))
		alter_table_end((AlterTableStmt *) trig->parsetree, events);
	else if (IsA(trig->parsetree, CreateStmt))
		create_table_end((CreateStmt *) trig->parsetree, events);
	PG_RETURN_VOID();
}

/*
 * meter.run_as_member(statement text) — run one statement as the extension's own script
 * would: the objects it creates become members of the extension, and
 * pg_extension_config_dump() accepts them. meter.partition_events() creates the
 * partitioned meter.events with it, so that pg_dump keeps treating meter.events as the
 * extension's table. Only the extension's owner (or a superuser) may.
 */
PG_FUNCTION_INFO_V1(meter_run_as_member);
Datum
meter_run_as_member(PG_FUNCTION_ARGS)
{
	char	   *sql = text_to_cstring(PG_GETARG_TEXT_PP(0));
	Oid			extension = get_extension_oid("meter", false);
	bool		saved_creating = creating_extension;
	Oid			saved_extension = CurrentExtensionObject;

	if (!meter_extension_ownercheck(extension, GetUserId()))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("must be owner of extension meter"),
				 errdetail("Partitioning meter.events replaces a table of the extension."),
				 errhint("Run it as the role that ran CREATE EXTENSION meter, or as a superuser.")));
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	PG_TRY();
	{
		creating_extension = true;
		CurrentExtensionObject = extension;
		if (SPI_execute(sql, false, 0) < 0)
			elog(ERROR, "meter: \"%s\" failed", sql);
	}
	PG_FINALLY();
	{
		creating_extension = saved_creating;
		CurrentExtensionObject = saved_extension;
	}
	PG_END_TRY();
	SPI_finish();
	PG_RETURN_VOID();
}
