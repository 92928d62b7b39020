/*
 * event_table.c — the event-table contract (see event_table.h). meter.track() checks a
 * table with meter.check_event_table(), the trigger checks the relation it fires on
 * before reading a row (a trigger attached by hand to the wrong table is an error, never
 * a misread datum), and usage_from_events checks its source the same way.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/relation.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

#include "event_table.h"

static const char *const column_names[EV_NCOLS] = {
	"tenant_id", "environment_id", "event_name", "customer_id", "external_customer_id",
	"timestamp", "properties"
};

static Oid
column_type(EventColumn c)
{
	if (c == EV_TIMESTAMP)
		return TIMESTAMPTZOID;
	if (c == EV_PROPERTIES)
		return JSONBOID;
	return TEXTOID;
}

static bool
type_fits(EventColumn c, Oid type)
{
	return type == column_type(c) || (column_type(c) == TEXTOID && type == VARCHAROID);
}

/* The column of the contract named name in desc, or NULL. */
static Form_pg_attribute
find_column(TupleDesc desc, const char *name)
{
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (!att->attisdropped && strcmp(NameStr(att->attname), name) == 0)
			return att;
	}
	return NULL;
}

int
event_columns_broken(TupleDesc desc, bool *retyped)
{
	for (int c = 0; c < EV_NCOLS; c++)
	{
		Form_pg_attribute att = find_column(desc, column_names[c]);

		if (att == NULL || !type_fits((EventColumn) c, att->atttypid))
		{
			*retyped = (att != NULL);
			return c;
		}
	}
	return -1;
}

const char *
event_column_name(int column)
{
	return column_names[column];
}

void
event_columns_find(TupleDesc desc, const char *relname, EventColumns *cols)
{
	for (int c = 0; c < EV_NCOLS; c++)
	{
		Form_pg_attribute found = find_column(desc, column_names[c]);

		if (found == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("table \"%s\" has no column \"%s\"", relname, column_names[c]),
					 errdetail("An event table has the columns of meter.events: tenant_id, environment_id, event_name, customer_id, external_customer_id, \"timestamp\" timestamptz, properties jsonb."),
					 errhint("ALTER TABLE %s ADD COLUMN %s %s", relname,
							 quote_identifier(column_names[c]), format_type_be(column_type(c)))));
		if (!type_fits((EventColumn) c, found->atttypid))
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("column \"%s\" of table \"%s\" is %s, not %s", column_names[c], relname,
							format_type_be(found->atttypid), format_type_be(column_type(c))),
					 errdetail("meter reads the event columns with the types of meter.events."),
					 errhint("ALTER TABLE %s ALTER COLUMN %s TYPE %s", relname,
							 quote_identifier(column_names[c]), format_type_be(column_type(c)))));
		cols->attnum[c] = found->attnum;
	}
}

static const char *
text_or(TupleTableSlot *slot, AttrNumber attnum, const char *if_null)
{
	bool		isnull;
	Datum		d = slot_getattr(slot, attnum, &isnull);

	return isnull ? if_null : TextDatumGetCString(d);
}

bool
event_row_read(TupleTableSlot *slot, const EventColumns *cols, EventRow *row)
{
	const AttrNumber *att = cols->attnum;
	bool		isnull;
	Datum		d;

	row->tenant = text_or(slot, att[EV_TENANT], NULL);
	row->event_name = text_or(slot, att[EV_EVENT_NAME], NULL);
	if (row->tenant == NULL || row->event_name == NULL)
		return false;
	row->environment = text_or(slot, att[EV_ENVIRONMENT], "");
	row->customer = text_or(slot, att[EV_CUSTOMER], "");
	row->external_customer = text_or(slot, att[EV_EXTERNAL_CUSTOMER], "");
	d = slot_getattr(slot, att[EV_TIMESTAMP], &isnull);
	if (isnull || TIMESTAMP_NOT_FINITE(DatumGetTimestampTz(d)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("event timestamp must be a finite time"),
				 errdetail("Event \"%s\" of tenant \"%s\" has timestamp %s.", row->event_name,
						   row->tenant, isnull ? "NULL" : "infinity"),
				 errhint("Give every event the time it happened.")));
	row->timestamp = DatumGetTimestampTz(d);
	d = slot_getattr(slot, att[EV_PROPERTIES], &isnull);
	row->properties = isnull ? NULL : DatumGetJsonbP(d);
	return true;
}

/*
 * meter.check_event_table(tbl regclass) → void: ERROR unless tbl has the event columns
 * with their types (42703 missing, 42804 other type, with the ALTER TABLE to run).
 */
PG_FUNCTION_INFO_V1(meter_check_event_table);
Datum
meter_check_event_table(PG_FUNCTION_ARGS)
{
	Oid			relid = PG_GETARG_OID(0);
	Relation	rel = relation_open(relid, AccessShareLock);
	EventColumns cols;
	char	   *name = quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)),
												  RelationGetRelationName(rel));

	event_columns_find(RelationGetDescr(rel), name, &cols);
	relation_close(rel, AccessShareLock);
	PG_RETURN_VOID();
}
