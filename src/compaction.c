/*
 * compaction.c — folding pending partial states into compacted rows (see compaction.h).
 *
 * A compaction of one meter runs in one snapshot, taken after its lock: the newest
 * committed state plus the transaction's own writes. It deletes a batch of pending rows,
 * adds their entries to the compacted rows they belong to (a row per customer and UTC
 * day, and a row per day for all customers), recomputes the slots marked for it from the
 * raw events read in that same snapshot (replacing whatever the rows and the batch held
 * for them), drops entries left empty, and writes the rows back; then the next batch.
 * Rows of pending transactions are invisible to that snapshot and stay pending, as do
 * their events for the recomputation, so every event is counted exactly once. Across
 * batches: a slot recomputed by an earlier batch already counts what later batches'
 * pending rows carry for it (they skip it), and an entry is dropped only when every part
 * of it is empty (a batch may hold an update's +2 without the insert it applies to).
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "miscadmin.h"
#include "utils/hsearch.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "buckets.h"
#include "compaction.h"
#include "dims.h"
#include "event_value.h"
#include "forward.h"
#include "locks.h"
#include "meter_def.h"
#include "placement.h"
#include "raw.h"
#include "scope.h"
#include "settings.h"
#include "slotset.h"
#include "store.h"

/* ── The tally of appended entries ───────────────────────────────────────────────── */

typedef struct TallyKey
{
	const char *data;			/* tenant \0 environment \0 meter id */
	Size		len;
} TallyKey;

typedef struct Tally
{
	TallyKey	key;
	int64		entries;
	bool		written;		/* on the written list */
} Tally;

static HTAB *tallies = NULL;

/* The tallies the current statement added to: a statement folds what it wrote, only. */
static Tally **written = NULL;
static int	nwritten = 0;
static int	written_cap = 0;

/*
 * Who folds: the role the tracking trigger ran as (it is SECURITY DEFINER: the extension's
 * owner). The fold runs at the end of the writer's statement, outside the trigger, as that
 * role again, with the trigger's pinned search_path — never with the writer's privileges.
 */
static Oid	fold_user = InvalidOid;

static uint32
tally_hash(const void *key, Size keysize)
{
	const TallyKey *k = key;

	return hash_bytes((const unsigned char *) k->data, (int) k->len);
}

static int
tally_match(const void *a, const void *b, Size keysize)
{
	const TallyKey *x = a;
	const TallyKey *y = b;

	return !(x->len == y->len && memcmp(x->data, y->data, x->len) == 0);
}

void
compaction_note(const char *tenant, const char *environment, const char *meter_id,
				int64 entries)
{
	Size		lt = strlen(tenant) + 1,
				le = strlen(environment) + 1,
				lm = strlen(meter_id) + 1;
	char	   *buf = palloc(lt + le + lm);
	TallyKey	key;
	Tally	   *t;
	bool		found;

	if (tallies == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(TallyKey);
		ctl.entrysize = sizeof(Tally);
		ctl.hash = tally_hash;
		ctl.match = tally_match;
		ctl.hcxt = TopMemoryContext;
		tallies = hash_create("meter compaction tallies", 64, &ctl,
							  HASH_ELEM | HASH_FUNCTION | HASH_COMPARE | HASH_CONTEXT);
	}
	memcpy(buf, tenant, lt);
	memcpy(buf + lt, environment, le);
	memcpy(buf + lt + le, meter_id, lm);
	key.data = buf;
	key.len = lt + le + lm;
	t = hash_search(tallies, &key, HASH_ENTER, &found);
	if (!found)
	{
		t->key.data = MemoryContextAlloc(TopMemoryContext, key.len);
		memcpy((char *) t->key.data, buf, key.len);
		t->entries = 0;
		t->written = false;
	}
	t->entries += entries;
	fold_user = GetUserId();
	if (!t->written)
	{
		if (nwritten == written_cap)
		{
			written_cap = Max(16, written_cap * 2);
			written = written ? repalloc(written, sizeof(Tally *) * written_cap)
				: MemoryContextAlloc(TopMemoryContext, sizeof(Tally *) * written_cap);
		}
		written[nwritten++] = t;
		t->written = true;
	}
	pfree(buf);
}

static void
compact_due(Placement *p, const char *tenant, const char *environment, const char *meter_id)
{
	Placement  *previous = placement_enter(p);

	PG_TRY();
	{
		(void) compaction_run(tenant, environment, meter_id, false);
	}
	PG_FINALLY();
	{
		placement_leave(previous);
	}
	PG_END_TRY();
}

static void compaction_run_due_as_owner(void);

void
compaction_run_due(void)
{
	Oid			save_user;
	int			save_sec;
	int			nest;

	if (nwritten == 0)
		return;
	GetUserIdAndSecContext(&save_user, &save_sec);
	nest = NewGUCNestLevel();
	PG_TRY();
	{
		if (OidIsValid(fold_user))
			SetUserIdAndSecContext(fold_user, save_sec | SECURITY_LOCAL_USERID_CHANGE);
		(void) set_config_option("search_path", "pg_catalog, pg_temp", PGC_USERSET,
								 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
		compaction_run_due_as_owner();
	}
	PG_FINALLY();
	{
		AtEOXact_GUC(false, nest);
		SetUserIdAndSecContext(save_user, save_sec);
	}
	PG_END_TRY();
}

static void
compaction_run_due_as_owner(void)
{
	int			n = 0;
	char	  **due;

	due = palloc(sizeof(char *) * nwritten);
	for (int i = 0; i < nwritten; i++)
	{
		Tally	   *t = written[i];

		t->written = false;
		if (t->entries >= meter_compaction_threshold)
		{
			t->entries = 0;
			due[n] = palloc(t->key.len);	/* three strings */
			memcpy(due[n++], t->key.data, t->key.len);
		}
	}
	nwritten = 0;
	for (int i = 0; i < n; i++)
	{
		const char *tenant = due[i];
		const char *environment = tenant + strlen(tenant) + 1;
		const char *meter_id = environment + strlen(environment) + 1;
		/* This backend may have written several tenants' shards (a Citus worker): each
		 * meter is folded in its own tenant's placement, when that is still here. */
		Placement  *p = placement_of_tenant(tenant);

		if (p != NULL)
			compact_due(p, tenant, environment, meter_id);
	}
}

/* ── Folding one batch ───────────────────────────────────────────────────────────── */

typedef struct Fold
{
	MeterDef   *meter;
	MeterScope	scope;
	Snapshot	snap;
	const char **dim_keys;
	int			npending;		/* the batch's pending rows */
	bytea	  **pending;
	bytea	  **pending_totals;	/* and their all-customers entries */
	StoredRow  *keys;			/* the rows the batch touches, sorted by (shard, day) */
	SlotSet   **sets;			/* per row: its entries (stored + the batch) */
	int			nkeys;
	SlotSet    *marks;			/* (customer, slot) marked for recomputation (dims "") */
	/* What earlier batches of this run recomputed from the raw events of the run's
	 * snapshot: (customer, slot) and, customer "", the slots of the totals. Those raw
	 * events include what every later batch's pending rows carry (written in the same
	 * transactions), so a later batch must not add those entries again. */
	SlotSet    *recomputed;		/* (customer, slot), dims "" */
	SlotSet    *recomputed_totals;	/* (slot), customer and dims "" */
	/* lookups the decode repeats, cached */
	MemoryContext cxt;			/* the batch's */
	char	   *last_customer;
	char	   *last_external;
	int16		last_shard;
	int			last_row;
} Fold;


static void
take_visit(const StoredRow *row, void *arg)
{
	Fold	   *f = arg;

	f->pending = f->pending ? repalloc(f->pending, sizeof(bytea *) * (f->npending + 1))
		: palloc(sizeof(bytea *));
	f->pending_totals = f->pending_totals ? repalloc(f->pending_totals, sizeof(bytea *) * (f->npending + 1))
		: palloc(sizeof(bytea *));
	f->pending[f->npending] = (bytea *) PG_DETOAST_DATUM_COPY(PointerGetDatum(row->data));
	f->pending_totals[f->npending++] = (bytea *) PG_DETOAST_DATUM_COPY(PointerGetDatum(row->totals));
}

static int
row_key_compare(const StoredRow *a, const StoredRow *b)
{
	if (a->shard != b->shard)
		return a->shard < b->shard ? -1 : 1;
	if (a->day != b->day)
		return a->day < b->day ? -1 : 1;
	return 0;
}

static int
row_key_order(const void *a, const void *b)
{
	return row_key_compare(a, b);
}

/* The slot set of row (shard, day), which the batch must have fetched. */
static SlotSet *
row_set(Fold *f, int16 shard, DateADT day)
{
	StoredRow	probe = {0};
	StoredRow  *r;
	int			i;

	if (f->last_row >= 0 && f->keys[f->last_row].shard == shard && f->keys[f->last_row].day == day)
		i = f->last_row;
	else
	{
		probe.shard = shard;
		probe.day = day;
		r = bsearch(&probe, f->keys, f->nkeys, sizeof(StoredRow), row_key_order);
		if (r == NULL)
			elog(ERROR, "meter: compaction met an entry outside the rows it fetched");
		i = (int) (r - f->keys);
		f->last_row = i;
	}
	if (f->sets[i] == NULL)
		f->sets[i] = slotset_create(CurrentMemoryContext);
	return f->sets[i];
}

/* The shard of a customer, cached: a decode meets each customer in a run. */
static int16
customer_shard(Fold *f, const char *customer, const char *external)
{
	if (f->last_customer == NULL || strcmp(f->last_customer, customer) != 0 ||
		strcmp(f->last_external, external) != 0)
	{
		/* copies: a decode's strings are read in place and go with the value */
		if (f->last_customer != NULL)
		{
			pfree(f->last_customer);
			pfree(f->last_external);
		}
		f->last_customer = MemoryContextStrdup(f->cxt, customer);
		f->last_external = MemoryContextStrdup(f->cxt, external);
		f->last_shard = store_shard(customer, external);
	}
	return f->last_shard;
}

static SlotEntry *
customer_entry(Fold *f, const SlotKey *key)
{
	return slotset_entry(row_set(f, customer_shard(f, key->customer, key->external_customer),
								 slot_day(key->slot)), key);
}

static SlotEntry *
totals_entry(Fold *f, const SlotKey *key)
{
	SlotKey		k = *key;

	k.customer = SLOT_ALL_CUSTOMERS;
	k.external_customer = SLOT_ALL_CUSTOMERS;
	return slotset_entry(row_set(f, STORE_ALL_CUSTOMERS, slot_day(key->slot)), &k);
}

/* An entry of a pending row: into its customer's partial state (the all-customers rows
 * take the pending row's totals: pending_totals_target). */
static void
pending_target(const SlotKey *key, bool mark, void *arg, Partial **into)
{
	Fold	   *f = arg;
	SlotKey		k = *key;

	k.dims = "";
	if (slotset_count(f->recomputed) > 0 && slotset_find(f->recomputed, &k) != NULL)
		return;					/* recomputed: nothing left to add or mark */
	into[0] = &customer_entry(f, key)->partial;
	if (mark)
		(void) slotset_entry(f->marks, &k);
}

/* An entry of a pending row's totals: into the all-customers partial state. (Marks come
 * with the customer entries: a marked customer slot has its totals slot recomputed.) */
static void
pending_totals_target(const SlotKey *key, bool mark, void *arg, Partial **into)
{
	Fold	   *f = arg;
	SlotKey		k = *key;

	k.customer = SLOT_ALL_CUSTOMERS;
	k.external_customer = SLOT_ALL_CUSTOMERS;
	k.dims = "";
	if (slotset_count(f->recomputed_totals) > 0 && slotset_find(f->recomputed_totals, &k) != NULL)
		return;
	into[0] = &totals_entry(f, key)->partial;
}

/* An entry of a stored all-customers row, into that row's set (arg). */
static void
stored_all_target(const SlotKey *key, bool mark, void *arg, Partial **into)
{
	into[0] = &slotset_entry((SlotSet *) arg, key)->partial;
}

static void
stored_target(const SlotKey *key, bool mark, void *arg, Partial **into)
{
	Fold	   *f = arg;

	into[0] = &customer_entry(f, key)->partial;
}

static void
fetched_row(const StoredRow *row, void *arg)
{
	Fold	   *f = arg;
	StoredRow	probe = *row;
	StoredRow  *k = bsearch(&probe, f->keys, f->nkeys, sizeof(StoredRow), row_key_order);

	if (k == NULL)
		elog(ERROR, "meter: compaction fetched a row it did not ask for");
	k->exists = true;
	k->ctid = row->ctid;
	if (row->shard == STORE_ALL_CUSTOMERS)
	{
		/* Its entries' customer is "": pointed at SLOT_ALL_CUSTOMERS for stored_target. */
		SlotSet    *set = row_set(f, row->shard, row->day);

		slotset_decode(row->data, f->meter->agg, NULL, NULL, stored_all_target, NULL, set);
	}
	else
		slotset_decode(row->data, f->meter->agg, NULL, NULL, stored_target, NULL, f);
}

/* The rows the batch touches, from its pending rows' tags: their customer rows, and the
 * all-customers row of each of their days. */
static void
collect_keys(Fold *f)
{
	StoredRow  *keys = NULL;
	int			nkeys = 0,
				cap = 0;

	for (int p = 0; p < f->npending; p++)
	{
		int			ntags;
		int64	   *tags = slotset_tags(f->pending[p], &ntags);

		if (nkeys + 2 * ntags >= cap)
		{
			cap = 2 * (nkeys + 2 * ntags) + 16;
			keys = keys ? repalloc(keys, sizeof(StoredRow) * cap) : palloc(sizeof(StoredRow) * cap);
		}
		for (int i = 0; i < ntags; i++)
		{
			memset(&keys[nkeys], 0, 2 * sizeof(StoredRow));
			store_row_of_tag(tags[i], &keys[nkeys].shard, &keys[nkeys].day);
			keys[nkeys + 1].shard = STORE_ALL_CUSTOMERS;
			keys[nkeys + 1].day = keys[nkeys].day;
			nkeys += 2;
		}
	}
	if (nkeys > 0)
		qsort(keys, nkeys, sizeof(StoredRow), row_key_order);
	f->nkeys = 0;
	for (int i = 0; i < nkeys; i++)
		if (f->nkeys == 0 || row_key_compare(&keys[f->nkeys - 1], &keys[i]) != 0)
			keys[f->nkeys++] = keys[i];
	f->keys = keys;
	f->sets = palloc0(sizeof(SlotSet *) * (f->nkeys + 1));
	f->last_row = -1;
	f->cxt = CurrentMemoryContext;
	f->last_customer = NULL;
	f->last_external = NULL;
}

/* ── Marked slots: recomputed from the raw events ────────────────────────────────── */

typedef struct Recompute
{
	Fold	   *fold;
	SlotSet    *customers;		/* recomputed customer entries of marked slots */
	SlotSet    *totals;			/* recomputed totals entries of marked slots */
} Recompute;

static void
recompute_event(const EventRow *row, void *arg)
{
	Recompute  *r = arg;
	MeterDef   *m = r->fold->meter;
	SlotKey		key;
	EventValue	ev;
	MemoryContext old;

	if (m->filters->nkeys > 0 &&
		(row->properties == NULL || !filters_match(m->filters, row->properties)))
		return;
	key.customer = row->customer;
	key.external_customer = row->external_customer;
	key.slot = slot_start(row->timestamp);
	key.dims = dims_of_event(m->filters, row->properties);
	event_value_fill(m->agg, row->properties, row->timestamp,
					 bucket_key_in_slot(row->timestamp, m->agg->bucket_size), &ev);
	old = MemoryContextSwitchTo(r->customers->cxt);
	partial_add_event(&slotset_entry(r->customers, &key)->partial, m->agg, 1, &ev);
	key.customer = SLOT_ALL_CUSTOMERS;
	key.external_customer = SLOT_ALL_CUSTOMERS;
	partial_add_event(&slotset_entry(r->totals, &key)->partial, m->agg, 1, &ev);
	MemoryContextSwitchTo(old);
}

static int
cmp_ts(const void *a, const void *b)
{
	TimestampTz x = *(const TimestampTz *) a;
	TimestampTz y = *(const TimestampTz *) b;

	return x < y ? -1 : x > y;
}

static bool
slot_in(TimestampTz slot, const TimestampTz *slots, int n)
{
	return bsearch(&slot, slots, n, sizeof(TimestampTz), cmp_ts) != NULL;
}

/* Is (customer, slot) marked? The marks are a slot set keyed without dimensions. */
static bool
customer_slot_marked(const SlotKey *k, SlotSet *marks)
{
	SlotKey		probe = *k;

	probe.dims = "";
	return slotset_find(marks, &probe) != NULL;
}

/* Empty what the rows hold for the marked (customer, slot)s (totals: for the marked
 * slots), then add the recomputed entries. */
static void
replace_slots(Fold *f, SlotSet *fresh, bool totals, const TimestampTz *slots, int nslots)
{
	int			n;
	SlotEntry **add;

	for (int r = 0; r < f->nkeys; r++)
	{
		SlotEntry **all;

		if (f->sets[r] == NULL || (f->keys[r].shard == STORE_ALL_CUSTOMERS) != totals)
			continue;
		all = slotset_sorted(f->sets[r], &n);
		for (int i = 0; i < n; i++)
		{
			const SlotKey *k = &all[i]->key;

			if (totals ? slot_in(k->slot, slots, nslots) : customer_slot_marked(k, f->marks))
				partial_init(&all[i]->partial, f->sets[r]->cxt);	/* dropped when written */
		}
	}
	add = slotset_sorted(fresh, &n);
	for (int i = 0; i < n; i++)
	{
		const SlotKey *k = &add[i]->key;

		if (totals ? slot_in(k->slot, slots, nslots) : customer_slot_marked(k, f->marks))
			partial_combine(totals ? &totals_entry(f, k)->partial : &customer_entry(f, k)->partial,
							&add[i]->partial, f->meter->agg, 1, NULL, NULL);
	}
}

static void
recompute_marked(Fold *f)
{
	int			nmarked;
	SlotEntry **marked = slotset_sorted(f->marks, &nmarked);
	TimestampTz *slots;
	TimestampTz *lo,
			   *hi;
	int			nslots = 0,
				nranges = 0;
	Recompute	r;
	RawScan		scan = {0};

	if (nmarked == 0)
		return;
	slots = palloc(sizeof(TimestampTz) * nmarked);
	for (int i = 0; i < nmarked; i++)
		slots[i] = marked[i]->key.slot;
	qsort(slots, nmarked, sizeof(TimestampTz), cmp_ts);
	for (int i = 0; i < nmarked; i++)
		if (nslots == 0 || slots[nslots - 1] != slots[i])
			slots[nslots++] = slots[i];
	lo = palloc(sizeof(TimestampTz) * nslots);
	hi = palloc(sizeof(TimestampTz) * nslots);
	/* Adjacent slots read as one range. */
	for (int i = 0; i < nslots; i++)
	{
		if (nranges > 0 && hi[nranges - 1] == slots[i])
			hi[nranges - 1] = slots[i] + SLOT_USECS;
		else
		{
			lo[nranges] = slots[i];
			hi[nranges++] = slots[i] + SLOT_USECS;
		}
	}
	r.fold = f;
	r.customers = slotset_create(CurrentMemoryContext);
	r.totals = slotset_create(CurrentMemoryContext);
	scan.tenant = f->meter->tenant;
	scan.environment = f->meter->environment;
	scan.event_name = f->meter->event_name;
	scan.source = InvalidOid;
	raw_scan(&scan, lo, hi, nranges, f->snap, recompute_event, &r);
	replace_slots(f, r.customers, false, slots, nslots);
	replace_slots(f, r.totals, true, slots, nslots);
	for (int i = 0; i < nmarked; i++)
	{
		SlotKey		k = marked[i]->key;

		(void) slotset_entry(f->recomputed, &k);
		k.customer = SLOT_ALL_CUSTOMERS;
		k.external_customer = SLOT_ALL_CUSTOMERS;
		(void) slotset_entry(f->recomputed_totals, &k);
	}
}

/* ── Writing the rows back ───────────────────────────────────────────────────────── */

/* Encode each row's non-empty entries (data NULL when none is left: delete it). */
static void
encode_rows(Fold *f)
{
	for (int r = 0; r < f->nkeys; r++)
	{
		int			n,
					nkeep = 0;
		SlotEntry **all;

		f->keys[r].data = NULL;
		if (f->sets[r] == NULL)
			continue;
		all = slotset_sorted(f->sets[r], &n);
		for (int i = 0; i < n; i++)
			if (!partial_is_empty(&all[i]->partial))
				all[nkeep++] = all[i];
		if (nkeep > 0)
			f->keys[r].data = slotset_encode(all, nkeep, f->meter->agg, f->meter->filters->nkeys,
											 f->dim_keys, NULL, 0, true);
	}
}

static void
fold_batch(Fold *f)
{
	collect_keys(f);
	f->marks = slotset_create(CurrentMemoryContext);
	store_fetch(&f->scope, f->keys, f->nkeys, f->snap, fetched_row, f);
	for (int p = 0; p < f->npending; p++)
	{
		slotset_decode(f->pending[p], f->meter->agg, NULL, NULL, pending_target, NULL, f);
		slotset_decode(f->pending_totals[p], f->meter->agg, NULL, NULL, pending_totals_target,
					   NULL, f);
	}
	recompute_marked(f);
	encode_rows(f);
	store_put(&f->scope, f->keys, f->nkeys, f->snap);
}

int64
compaction_run(const char *tenant, const char *environment, const char *meter_id, bool wait)
{
	MemoryContext batch_cxt;
	MemoryContext old;
	Fold		f = {0};
	int64		folded = 0;

	if (!compaction_lock(tenant, environment, meter_id, wait))
		return -1;
	f.snap = RegisterSnapshot(GetLatestSnapshot());
	f.scope.tenant = tenant;
	f.scope.environment = environment;
	f.scope.meter_id = meter_id;
	f.meter = meter_def_find(meter_id, tenant, environment, f.snap);
	if (f.meter == NULL)
	{
		/* The meter row is gone: so is everything it had pending. */
		store_forget(&f.scope, DATEVAL_NOBEGIN, f.snap);
		UnregisterSnapshot(f.snap);
		return 0;
	}
	f.dim_keys = meter_def_dim_keys(f.meter);
	f.recomputed = slotset_create(CurrentMemoryContext);
	f.recomputed_totals = slotset_create(CurrentMemoryContext);
	batch_cxt = AllocSetContextCreate(CurrentMemoryContext, "meter compaction",
									  ALLOCSET_DEFAULT_SIZES);
	for (;;)
	{
		int			taken;

		old = MemoryContextSwitchTo(batch_cxt);
		f.npending = 0;
		f.pending = NULL;
		f.pending_totals = NULL;
		/* A batch: meter.compaction_batch_kb of pending bytes, and as many entries as
		 * that many bytes at 256 each (decoded, an entry takes about 1 kB with its share
		 * of the rows it lands in: ≈ 130 MB per 32 MB batch). Each batch rewrites the
		 * compacted rows it touches (a day's all-customers row of a COUNT_UNIQUE meter
		 * holds its distinct values), so small batches cost time: counting 1 kB per
		 * entry made a 350,000-entry COUNT_UNIQUE fold 20 times slower. */
		taken = store_take_pending(&f.scope, f.snap, (Size) meter_compaction_batch_kb * 1024,
								   (int64) meter_compaction_batch_kb * 4, take_visit, &f);
		if (taken > 0)
			fold_batch(&f);
		MemoryContextSwitchTo(old);
		MemoryContextReset(batch_cxt);
		if (taken == 0)
			break;
		folded += taken;
		CHECK_FOR_INTERRUPTS();
	}
	MemoryContextDelete(batch_cxt);
	UnregisterSnapshot(f.snap);
	return folded;
}

/* The meters of a scope that have pending rows, ordered by id (the lock order). */
static char **
meters_with_pending(const char *tenant, const char *environment, int *n)
{
	MemoryContext caller = CurrentMemoryContext;
	Datum		args[2];
	char	  **ids;

	args[0] = CStringGetTextDatum(tenant);
	args[1] = CStringGetTextDatum(environment);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (store_exec(STORE_PENDING_METERS, args, NULL, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "meter: listing pending meters failed");
	ids = MemoryContextAlloc(caller, sizeof(char *) * (SPI_processed + 1));
	for (uint64 i = 0; i < SPI_processed; i++)
		ids[i] = MemoryContextStrdup(caller, SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1));
	*n = (int) SPI_processed;
	SPI_finish();
	return ids;
}

int64
compaction_run_scope(const char *tenant, const char *environment)
{
	int			n;
	char	  **ids = meters_with_pending(tenant, environment, &n);
	int64		folded = 0;

	for (int i = 0; i < n; i++)
	{
		int64		f = compaction_run(tenant, environment, ids[i], true);

		folded += Max(f, 0);
	}
	return folded;
}

/* meter.compact, run where the tenant's rows are (forward.h). */
static Datum
compact_here(FunctionCallInfo fcinfo)
{
	const char *tenant = scope_tenant();
	const char *environment = scope_environment();
	int64		folded;

	if (!PG_ARGISNULL(0))
	{
		char	   *id = meter_def_get(text_to_cstring(PG_GETARG_TEXT_PP(0)))->id;

		tenant_lock_share(tenant);
		folded = compaction_run(tenant, environment, id, true);
		folded = Max(folded, 0);
	}
	else
	{
		tenant_lock_share(tenant);
		folded = compaction_run_scope(tenant, environment);
	}
	PG_RETURN_INT64(folded);
}

/*
 * meter.compact(meter_id text DEFAULT NULL) → bigint: fold everything pending of one
 * meter of the current scope (or of all of them) now, waiting for a transaction that is
 * compacting it; returns how many pending rows were folded.
 */
PG_FUNCTION_INFO_V1(meter_compact);
Datum
meter_compact(PG_FUNCTION_ARGS)
{
	return forward_run(fcinfo, compact_here);
}
