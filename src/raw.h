/*
 * raw.h — reading the raw events of the tracked tables: the ground truth that
 * recomputation, usage_from_events and the cut slots of usage read.
 */
#ifndef METER_RAW_H
#define METER_RAW_H

#include "utils/snapshot.h"

#include "event_table.h"

typedef struct RawScan
{
	const char *tenant;
	const char *environment;
	const char *event_name;
	const char *customer;		/* only this customer id ("" for none); NULL: any */
	const char *external_customer;	/* likewise */
	Oid			source;			/* one event table (checked); InvalidOid: every tracked one */
	bool		ordered;		/* by timestamp, within each table */
} RawScan;

/* Called per event, in a memory context reset after each call. */
typedef void (*RawEventVisitor) (const EventRow *row, void *arg);

/* Visit the events of the scan in the time ranges [lo[i], hi[i]), in snap (NULL: the
 * current snapshot). Reads in batches: memory does not grow with the events. */
extern void raw_scan(const RawScan *scan, const TimestampTz *lo, const TimestampTz *hi,
					 int nranges, Snapshot snap, RawEventVisitor visit, void *arg);

/* The earliest event of the scan (customers ignored) before `before`; DT_NOEND when
 * there is none. */
extern TimestampTz raw_first_before(const RawScan *scan, TimestampTz before);

/* The tracked tables (meter.tracked_tables), in OID order; palloc'd. */
extern Oid *raw_tracked_tables(int *n, Snapshot snap);

#endif							/* METER_RAW_H */
