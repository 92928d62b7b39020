/*
 * store.h — the engine's tables and every statement that reads or writes them:
 *   meter.pending   partial states appended by the tracking trigger, one row per
 *                   statement and meter (never updated: writers never wait), with
 *                   its entries also summed over customers (what all-customers reads
 *                   and the all-customers rows take)
 *   meter.rollups   compacted: one row per meter, UTC day and customer shard (the
 *                   customers whose external id — or customer id when there is no
 *                   external one — hashes to it), and shard -1 for all customers together
 * Rows hold a stored slot set (slotset.h). A few customers' days per row keep the rows
 * few (one index entry serves many customers) and a customer's usage a read of one
 * shard per day. Reads run in the caller's snapshot; the compactor passes its own.
 * ("Shard" here is a customer shard of a meter's rows; a Citus shard is a placement's
 * relation: placement.h.) Every statement names its tables through the current placement:
 * the tables themselves on one server, a tenant's shards on a Citus worker.
 */
#ifndef METER_STORE_H
#define METER_STORE_H

#include "executor/spi.h"
#include "storage/itemptr.h"
#include "utils/date.h"
#include "utils/snapshot.h"

/*
 * Every statement on the engine's tables (store.c holds their SQL, written once with the
 * tables as tokens, and prepares them per placement: placement.h). Most are run by the
 * functions below; the others by the module that reads their rows, through store_exec.
 */
typedef enum StoreStatement
{
	/* the tracking trigger and compaction (the functions below) */
	STORE_APPEND_PENDING,
	STORE_SEALED_SKIP,
	STORE_LIST_PENDING,
	STORE_TAKE_PENDING,
	STORE_FETCH,
	STORE_INSERT,
	STORE_UPDATE,
	STORE_DELETE,
	STORE_FORGET,
	STORE_READ,
	STORE_READ_PENDING,
	STORE_READ_PENDING_TOTALS,
	/* $1 tenant, $2 environment, $3 meter id: the first day with stored usage */
	STORE_FIRST_DAY,
	/* $1 tenant, $2 environment: meter ids with pending rows, in order */
	STORE_PENDING_METERS,
	/* $1 tenant, $2 environment, $3 meter id: count(*) of compacted rows */
	STORE_COUNT_ROLLUPS,
	/* $1 tenant, $2 environment: (meter_id, customer_id, external_customer_id, slot,
	 * events, 'sealed period') of the sealed skips */
	STORE_SEALED_SKIPS,
	/* the catalog: $1 tenant, $2 environment, $3 event name: the published meters (rows
	 * of meter.meters) by id */
	STORE_LOAD_METERS,
	/* $1 tenant, $2 environment, $3 id: (id, tenant_id, environment_id, event_name,
	 * aggregation, filters, status, reset_usage = NEVER) */
	STORE_FIND_METER,
	/* $1 tenant, $2 environment: ids of the meters not deleted, in order */
	STORE_SCOPE_METERS,
	/* $1 tenant, $2 environment, $3 id or NULL: ids of the published meters, in order */
	STORE_PUBLISHED_METERS,
	/* (tenant_id, environment_id) of every scope with a published meter */
	STORE_PUBLISHED_SCOPES,
	/* $1 tenant, $2 environment: max(sealed_before) */
	STORE_SEAL_OF,
	/* $1 tenant, $2 environment, $3 sealed_before, $4 sealed_by */
	STORE_INSERT_SEAL,
	/* the registry: $1 relation: tracked itself or as a partition of a tracked table */
	STORE_REGISTERED,
	/* $1 relation: tracked itself */
	STORE_REGISTERED_EXACTLY,
	/* the tracked tables' OIDs, in order */
	STORE_TRACKED_TABLES,
	/* $1 relation: leaves the registry */
	STORE_UNREGISTER,
	/* tracked tables that no longer exist leave the registry */
	STORE_UNREGISTER_DROPPED,
	STORE_NSTATEMENTS
} StoreStatement;

/* Run a statement in the current placement (SPI connected by the caller; rows in
 * SPI_tuptable): in snap when given, else in the current snapshot. Returns SPI's code. */
extern int	store_exec(StoreStatement st, Datum *args, const char *nulls, Snapshot snap,
					   bool read_only, long count);

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
	bytea	   *data;			/* per (customer, slot, dimensions) */
	bytea	   *totals;			/* per (slot, dimensions): all customers together */
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
	bytea	   *data;			/* NULL when read lazily: store_row_data */
	struct varlena *raw;		/* the value as read (maybe TOASTed), for the row's visit */
	bytea	   *totals;			/* a pending row taken by store_take_pending: its totals */
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

/* Delete and return a batch of a meter's pending rows (oldest days first): at least one,
 * then more while they hold under max_bytes and under max_entries; returns how many (0:
 * none left). Runs in snap. */
extern int	store_take_pending(const MeterScope *m, Snapshot snap, Size max_bytes,
							   int64 max_entries, StoredRowVisitor visit, void *arg);

/* The compacted rows of these (shard, day) keys, in snap; marks the keys it finds. */
extern void store_fetch(const MeterScope *m, StoredRow *keys, int n, Snapshot snap,
						StoredRowVisitor visit, void *arg);

/* Write rows: update or delete (data NULL) the ones fetched, insert the new ones. */
extern void store_put(const MeterScope *m, StoredRow *rows, int n, Snapshot snap);

/* Delete a meter's stored rows (pending and compacted) of days >= from_day. */
extern void store_forget(const MeterScope *m, DateADT from_day, Snapshot snap);

/* Usage reads, in the active snapshot: a meter's compacted rows of the given shards and
 * days in [day_lo, day_hi], and its pending rows overlapping those days (their customer
 * entries, or with totals their all-customers entries, as data). */
extern void store_read(const MeterScope *m, const int16 *shards, int nshards,
					   DateADT day_lo, DateADT day_hi, bool lazy, StoredRowVisitor visit,
					   void *arg);
extern void store_read_pending(const MeterScope *m, DateADT day_lo, DateADT day_hi,
							   bool totals, StoredRowVisitor visit, void *arg);

/* A row read lazily (store_read): its value, or the prefix of it that holds the stored
 * set's directory (slotset.h), fetching only that much of a TOASTed value. */
extern bytea *store_row_data(const StoredRow *row);
extern bytea *store_row_head(const StoredRow *row);

#endif							/* METER_STORE_H */
