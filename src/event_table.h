/*
 * event_table.h — the event-table contract (SPEC §7), in one place: the columns
 * meter.track_usage(), recomputation and usage read from a tracked table, their types,
 * and how one row becomes an event.
 */
#ifndef METER_EVENT_TABLE_H
#define METER_EVENT_TABLE_H

#include "access/tupdesc.h"
#include "datatype/timestamp.h"
#include "executor/tuptable.h"
#include "utils/jsonb.h"

typedef enum EventColumn
{
	EV_TENANT,
	EV_ENVIRONMENT,
	EV_EVENT_NAME,
	EV_CUSTOMER,
	EV_EXTERNAL_CUSTOMER,
	EV_TIMESTAMP,
	EV_PROPERTIES,
	EV_NCOLS
} EventColumn;

/* The select list of the contract's columns, in EventColumn order. */
#define EVENT_COLUMNS_SQL \
	"tenant_id, environment_id, event_name, customer_id, external_customer_id, \"timestamp\", properties"

/* Attribute numbers of the event columns in one relation. */
typedef struct EventColumns
{
	AttrNumber	attnum[EV_NCOLS];
} EventColumns;

/* One event row. Customer ids are "" when NULL; environment "" when NULL. */
typedef struct EventRow
{
	const char *tenant;
	const char *environment;
	const char *event_name;
	const char *customer;
	const char *external_customer;
	TimestampTz timestamp;
	Jsonb	   *properties;
} EventRow;

/*
 * Find the event columns in a relation's descriptor. A missing column is ERROR 42703,
 * a column of another type 42804, each naming the column, with the ALTER TABLE to run.
 * Types: text (or varchar) for the five ids, timestamptz, jsonb.
 */
extern void event_columns_find(TupleDesc desc, const char *relname, EventColumns *cols);

/*
 * The first column of the contract a descriptor breaks, or -1: *retyped says whether it
 * is there with another type (else it is missing).
 */
extern int	event_columns_broken(TupleDesc desc, bool *retyped);

/* The name of a column of the contract. */
extern const char *event_column_name(int column);

/*
 * Read the event in a slot. False when no meter can count it (no tenant or no event
 * name); ERROR 22023 when its timestamp is NULL or infinite. The strings are palloc'd
 * (or point into the slot's tuple) in CurrentMemoryContext.
 */
extern bool event_row_read(TupleTableSlot *slot, const EventColumns *cols, EventRow *row);

#endif							/* METER_EVENT_TABLE_H */
