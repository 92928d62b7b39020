/*
 * store.h — the engine's tables and every statement that reads or writes them:
 *   meter.pending        partial states appended by the tracking trigger, one row per
 *                        statement and meter (never updated: writers never wait)
 *   meter.rollups        compacted: one row per meter, customer and UTC day
 *   meter.rollup_totals  compacted: one row per meter and UTC day, all customers
 * Rows hold a stored slot set (slotset.h). Reads run in the caller's snapshot; the
 * compactor passes its own (see compaction.c).
 */
#ifndef METER_STORE_H
#define METER_STORE_H

#include "storage/itemptr.h"
#include "utils/date.h"
#include "utils/snapshot.h"

typedef struct PendingRow
{
	const char *tenant;
	const char *environment;
	const char *meter_id;
	DateADT		first_day;
	DateADT		last_day;
	int32		entries;
	bytea	   *data;
} PendingRow;

/* Append pending rows (one INSERT). */
extern void store_append_pending(PendingRow *rows, int n);

/* A stored row handed to a callback: customer ids NULL for totals rows; data NULL in
 * store_put_* means delete the row. */
typedef struct StoredRow
{
	const char *external_customer;
	const char *customer;
	DateADT		day;
	bytea	   *data;
	bool		exists;			/* store_fetch: the row is stored, at ctid */
	ItemPointerData ctid;
} StoredRow;

typedef void (*StoredRowVisitor) (const StoredRow *row, void *arg);

/* The scope of a meter's stored rows. */
typedef struct MeterScope
{
	const char *tenant;
	const char *environment;
	const char *meter_id;
} MeterScope;

/* Delete and return a batch of a meter's pending rows (oldest days first), about
 * max_bytes of them and at least one; returns how many (0: none left). Runs in snap. */
extern int	store_take_pending(const MeterScope *m, Snapshot snap, Size max_bytes,
							   StoredRowVisitor visit, void *arg);

/* The compacted rows of these keys (customer rows, or totals rows when customers is
 * NULL), in snap. */
extern void store_fetch(const MeterScope *m, bool totals, StoredRow *keys, int n,
						Snapshot snap, StoredRowVisitor visit, void *arg);

/* Write compacted rows fetched by store_fetch (or new ones: exists false): update,
 * insert, or delete (data NULL), in snap. */
extern void store_put(const MeterScope *m, bool totals, StoredRow *rows, int n, Snapshot snap);

/* Delete a meter's stored rows (pending, compacted, totals) of days >= from_day. */
extern void store_forget(const MeterScope *m, DateADT from_day);

/*
 * Usage reads, in the active snapshot: a meter's compacted rows of days in
 * [day_lo, day_hi] (customer rows filtered by customer and/or external customer when
 * not NULL, all customers' rows when both are NULL and totals is false; totals rows when
 * totals is true), and its pending rows overlapping those days.
 */
extern void store_read(const MeterScope *m, bool totals, const char *customer,
					   const char *external_customer, DateADT day_lo, DateADT day_hi,
					   StoredRowVisitor visit, void *arg);
extern void store_read_pending(const MeterScope *m, DateADT day_lo, DateADT day_hi,
							   StoredRowVisitor visit, void *arg);

#endif							/* METER_STORE_H */
