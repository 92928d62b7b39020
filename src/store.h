/*
 * store.h — the engine's tables and every statement that reads or writes them:
 *   meter.pending   partial states appended by the tracking trigger, one row per
 *                   statement and meter (never updated: writers never wait)
 *   meter.rollups   compacted: one row per meter, UTC day and customer shard (the
 *                   customers whose external id — or customer id when there is no
 *                   external one — hashes to it), and shard -1 for all customers together
 * Rows hold a stored slot set (slotset.h). A few customers' days per row keep the rows
 * few (one index entry serves many customers) and a customer's usage a read of one
 * shard per day. Reads run in the caller's snapshot; the compactor passes its own.
 */
#ifndef METER_STORE_H
#define METER_STORE_H

#include "storage/itemptr.h"
#include "utils/date.h"
#include "utils/snapshot.h"

/* Customer shards per meter and day; -1 is the all-customers row. Part of the stored
 * layout: changing it needs a rebuild. */
#define STORE_SHARDS 32
#define STORE_ALL_CUSTOMERS (-1)

/* The shard of a customer (its external id, or its customer id without one). */
extern int16 store_shard(const char *customer, const char *external_customer);

/* The shards that can hold a customer filter's rows (customer ids NULL: any); returns
 * how many, written to shards (room for STORE_SHARDS). */
extern int	store_shards_for(const char *customer, const char *external_customer, int16 *shards);

/* A (shard, day) row as one number: a pending row's tags name the customer rows its
 * entries fold into, so compaction fetches them before decoding the entries. */
static inline int64
store_row_tag(int16 shard, DateADT day)
{
	return (int64) day * 64 + shard + 1;
}

static inline void
store_row_of_tag(int64 tag, int16 *shard, DateADT *day)
{
	int64		d = tag >= 0 ? tag / 64 : -((-tag + 63) / 64);

	*day = (DateADT) d;
	*shard = (int16) (tag - d * 64 - 1);
}

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

/* Append a sealed skip: events of sealed time a meter matched but did not count. */
struct SlotKey;
extern void store_append_sealed_skip(const char *tenant, const char *environment,
									 const char *meter_id, const struct SlotKey *key,
									 int64 events);

/* Append pending rows (one INSERT). */
extern void store_append_pending(PendingRow *rows, int n);

/* A stored row: data NULL in store_put means delete it. */
typedef struct StoredRow
{
	int16		shard;
	DateADT		day;
	bytea	   *data;
	bool		exists;			/* store_fetch found it, at ctid */
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

/* The compacted rows of these (shard, day) keys, in snap; marks the keys it finds. */
extern void store_fetch(const MeterScope *m, StoredRow *keys, int n, Snapshot snap,
						StoredRowVisitor visit, void *arg);

/* Write rows: update or delete (data NULL) the ones fetched, insert the new ones. */
extern void store_put(const MeterScope *m, StoredRow *rows, int n, Snapshot snap);

/* Delete a meter's stored rows (pending and compacted) of days >= from_day. */
extern void store_forget(const MeterScope *m, DateADT from_day, Snapshot snap);

/* Usage reads, in the active snapshot: a meter's compacted rows of the given shards and
 * days in [day_lo, day_hi], and its pending rows overlapping those days. */
extern void store_read(const MeterScope *m, const int16 *shards, int nshards,
					   DateADT day_lo, DateADT day_hi, StoredRowVisitor visit, void *arg);
extern void store_read_pending(const MeterScope *m, DateADT day_lo, DateADT day_hi,
							   StoredRowVisitor visit, void *arg);

#endif							/* METER_STORE_H */
