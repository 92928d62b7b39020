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
 * their events for the recomputation, so every event is counted exactly once.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "miscadmin.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "buckets.h"
#include "compaction.h"
#include "dims.h"
#include "event_value.h"
#include "locks.h"
#include "meter_def.h"
#include "raw.h"
#include "scope.h"
#include "settings.h"
#include "slotset.h"
#include "store.h"

/* Pending bytes folded per batch: bounds a compaction's memory whatever is pending. */
#define COMPACTION_BATCH_BYTES (32 * 1024 * 1024)

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
} Tally;

static HTAB *tallies = NULL;

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
	}
	t->entries += entries;
	pfree(buf);
}

void
compaction_run_due(void)
{
	HASH_SEQ_STATUS seq;
	Tally	   *t;
	int			n = 0;
	char	  **due;

	if (tallies == NULL)
		return;
	due = palloc(sizeof(char *) * (hash_get_num_entries(tallies) + 1));
	hash_seq_init(&seq, tallies);
	while ((t = hash_seq_search(&seq)) != NULL)
		if (t->entries >= meter_compaction_threshold)
		{
			t->entries = 0;
			due[n] = palloc(t->key.len);	/* three strings */
			memcpy(due[n++], t->key.data, t->key.len);
		}
	for (int i = 0; i < n; i++)
	{
		const char *tenant = due[i];
		const char *environment = tenant + strlen(tenant) + 1;
		const char *meter_id = environment + strlen(environment) + 1;

		(void) compaction_run(tenant, environment, meter_id, false);
	}
}

/* ── Folding one batch ───────────────────────────────────────────────────────────── */

typedef struct Fold
{
	MeterDef   *meter;
	MeterScope	scope;
	Snapshot	snap;
	const char **dim_keys;
	SlotSet    *deltas;			/* the batch's entries, by customer */
	SlotSet    *merged;			/* compacted customer rows + deltas */
	SlotSet    *totals;			/* compacted totals rows + deltas */
	StoredRow  *keys;			/* the customer rows the batch touches, sorted */
	int			nkeys;
	StoredRow  *days;			/* the totals rows it touches, sorted */
	int			ndays;
} Fold;

static const char *const no_customer = "";

static Partial *
delta_target(const SlotKey *key, bool mark, void *arg)
{
	Fold	   *f = arg;
	SlotEntry  *e = slotset_entry(f->deltas, key);

	if (mark)
		e->mark = true;
	return &e->partial;
}

static void
take_visit(const StoredRow *row, void *arg)
{
	Fold	   *f = arg;

	slotset_decode(row->data, f->meter->agg, delta_target, NULL, f);
}

static Partial *
merged_target(const SlotKey *key, bool mark, void *arg)
{
	return &slotset_entry(((Fold *) arg)->merged, key)->partial;
}

static Partial *
totals_target(const SlotKey *key, bool mark, void *arg)
{
	SlotKey		k = *key;

	k.customer = no_customer;
	k.external_customer = no_customer;
	return &slotset_entry(((Fold *) arg)->totals, &k)->partial;
}

static int
row_key_compare(const StoredRow *a, const StoredRow *b)
{
	int			c = 0;

	if (a->external_customer != NULL)
	{
		c = strcmp(a->external_customer, b->external_customer);
		if (c == 0)
			c = strcmp(a->customer, b->customer);
	}
	if (c == 0 && a->day != b->day)
		c = a->day < b->day ? -1 : 1;
	return c;
}

static StoredRow *
find_row(StoredRow *rows, int n, const StoredRow *key)
{
	int			lo = 0,
				hi = n - 1;

	while (lo <= hi)
	{
		int			mid = (lo + hi) / 2;
		int			c = row_key_compare(&rows[mid], key);

		if (c == 0)
			return &rows[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return NULL;
}

static void
fetched_customer_row(const StoredRow *row, void *arg)
{
	Fold	   *f = arg;
	StoredRow  *k = find_row(f->keys, f->nkeys, row);

	if (k == NULL)
		elog(ERROR, "meter: compaction fetched a row it did not ask for");
	k->exists = true;
	k->ctid = row->ctid;
	slotset_decode(row->data, f->meter->agg, merged_target, NULL, f);
}

static void
fetched_totals_row(const StoredRow *row, void *arg)
{
	Fold	   *f = arg;
	StoredRow  probe = {0};
	StoredRow  *k;

	probe.day = row->day;
	k = find_row(f->days, f->ndays, &probe);
	if (k == NULL)
		elog(ERROR, "meter: compaction fetched a totals row it did not ask for");
	k->exists = true;
	k->ctid = row->ctid;
	slotset_decode(row->data, f->meter->agg, totals_target, NULL, f);
}

/* The distinct customer rows and days of sorted entries. */
static void
collect_keys(Fold *f, SlotEntry **entries, int n)
{
	DateADT    *days = palloc(sizeof(DateADT) * (n + 1));
	int			ndays = 0;

	f->keys = palloc0(sizeof(StoredRow) * (n + 1));
	f->nkeys = 0;
	for (int i = 0; i < n; i++)
	{
		const SlotKey *k = &entries[i]->key;
		DateADT		day = slot_day(k->slot);
		StoredRow  *last = f->nkeys > 0 ? &f->keys[f->nkeys - 1] : NULL;

		if (last == NULL || last->day != day || strcmp(last->customer, k->customer) != 0 ||
			strcmp(last->external_customer, k->external_customer) != 0)
		{
			StoredRow  *r = &f->keys[f->nkeys++];

			r->external_customer = k->external_customer;
			r->customer = k->customer;
			r->day = day;
		}
		days[ndays++] = day;
	}
	/* Distinct days, sorted. */
	for (int i = 1; i < ndays; i++)
		for (int j = i; j > 0 && days[j - 1] > days[j]; j--)
		{
			DateADT		t = days[j];

			days[j] = days[j - 1];
			days[j - 1] = t;
		}
	f->days = palloc0(sizeof(StoredRow) * (ndays + 1));
	f->ndays = 0;
	for (int i = 0; i < ndays; i++)
		if (f->ndays == 0 || f->days[f->ndays - 1].day != days[i])
			f->days[f->ndays++].day = days[i];
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
	key.customer = no_customer;
	key.external_customer = no_customer;
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
	return hash_search(marks->entries, &probe, HASH_FIND, NULL) != NULL;
}

/* Replace what set holds for the chosen slots by the recomputed entries. */
static void
replace_slots(SlotSet *set, SlotSet *fresh, const Aggregation *agg, bool totals,
			  SlotSet *marks, const TimestampTz *slots, int nslots)
{
	int			n;
	SlotEntry **all = slotset_sorted(set, &n);
	SlotEntry **add;

	for (int i = 0; i < n; i++)
	{
		const SlotKey *k = &all[i]->key;

		if (totals ? slot_in(k->slot, slots, nslots) : customer_slot_marked(k, marks))
			partial_init(&all[i]->partial, set->cxt);	/* emptied: dropped when written */
	}
	add = slotset_sorted(fresh, &n);
	for (int i = 0; i < n; i++)
	{
		const SlotKey *k = &add[i]->key;

		if (totals ? slot_in(k->slot, slots, nslots) : customer_slot_marked(k, marks))
			partial_combine(&slotset_entry(set, k)->partial, &add[i]->partial, agg, 1, NULL, NULL);
	}
}

static void
recompute_marked(Fold *f, SlotEntry **entries, int n)
{
	SlotSet    *marks = slotset_create(CurrentMemoryContext);
	TimestampTz *slots = palloc(sizeof(TimestampTz) * (n + 1));
	TimestampTz *lo,
			   *hi;
	int			nmarked = 0,
				nslots = 0,
				nranges = 0;
	Recompute	r;
	RawScan		scan = {0};

	for (int i = 0; i < n; i++)
		if (entries[i]->mark)
		{
			SlotKey		k = entries[i]->key;

			k.dims = "";
			(void) slotset_entry(marks, &k);
			nmarked++;
			slots[nslots++] = entries[i]->key.slot;
		}
	if (nmarked == 0)
		return;
	qsort(slots, nslots, sizeof(TimestampTz), cmp_ts);
	lo = palloc(sizeof(TimestampTz) * nslots);
	hi = palloc(sizeof(TimestampTz) * nslots);
	{
		int			k = 0;

		for (int i = 0; i < nslots; i++)
			if (k == 0 || slots[k - 1] != slots[i])
				slots[k++] = slots[i];
		nslots = k;
	}
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
	replace_slots(f->merged, r.customers, f->meter->agg, false, marks, slots, nslots);
	replace_slots(f->totals, r.totals, f->meter->agg, true, marks, slots, nslots);
}

/* ── Writing the rows back ───────────────────────────────────────────────────────── */

/* Encode each row's non-empty entries (data NULL when none is left). */
static void
encode_rows(Fold *f, SlotSet *set, StoredRow *rows, int nrows, bool totals)
{
	int			n;
	SlotEntry **all = slotset_sorted(set, &n);
	SlotEntry **keep = palloc(sizeof(SlotEntry *) * (n + 1));
	int			i = 0;

	for (int r = 0; r < nrows; r++)
	{
		StoredRow  *row = &rows[r];
		int			nkeep = 0;

		/* Entries are sorted like rows: skip to this row's, take them. */
		for (; i < n; i++)
		{
			StoredRow	probe = {0};
			int			c;

			probe.external_customer = totals ? NULL : all[i]->key.external_customer;
			probe.customer = all[i]->key.customer;
			probe.day = slot_day(all[i]->key.slot);
			c = row_key_compare(&probe, row);
			if (c < 0)
				continue;
			if (c > 0)
				break;
			if (!partial_is_empty(&all[i]->partial))
				keep[nkeep++] = all[i];
		}
		row->data = nkeep > 0 ? slotset_encode(keep, nkeep, f->meter->agg,
											   f->meter->filters->nkeys, f->dim_keys) : NULL;
	}
}

static void
fold_batch(Fold *f)
{
	int			n;
	SlotEntry **entries = slotset_sorted(f->deltas, &n);

	collect_keys(f, entries, n);
	f->merged = slotset_create(CurrentMemoryContext);
	f->totals = slotset_create(CurrentMemoryContext);
	store_fetch(&f->scope, false, f->keys, f->nkeys, f->snap, fetched_customer_row, f);
	store_fetch(&f->scope, true, f->days, f->ndays, f->snap, fetched_totals_row, f);
	for (int i = 0; i < n; i++)
	{
		SlotKey		t = entries[i]->key;

		partial_combine(&slotset_entry(f->merged, &entries[i]->key)->partial,
						&entries[i]->partial, f->meter->agg, 1, NULL, NULL);
		t.customer = no_customer;
		t.external_customer = no_customer;
		partial_combine(&slotset_entry(f->totals, &t)->partial,
						&entries[i]->partial, f->meter->agg, 1, NULL, NULL);
	}
	recompute_marked(f, entries, n);
	encode_rows(f, f->merged, f->keys, f->nkeys, false);
	encode_rows(f, f->totals, f->days, f->ndays, true);
	store_put(&f->scope, false, f->keys, f->nkeys, f->snap);
	store_put(&f->scope, true, f->days, f->ndays, f->snap);
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
		store_forget(&f.scope, DATEVAL_NOBEGIN);
		UnregisterSnapshot(f.snap);
		return 0;
	}
	f.dim_keys = meter_def_dim_keys(f.meter);
	batch_cxt = AllocSetContextCreate(CurrentMemoryContext, "meter compaction",
									  ALLOCSET_DEFAULT_SIZES);
	for (;;)
	{
		int			taken;

		old = MemoryContextSwitchTo(batch_cxt);
		f.deltas = slotset_create(batch_cxt);
		taken = store_take_pending(&f.scope, f.snap, COMPACTION_BATCH_BYTES, take_visit, &f);
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
	Oid			types[2] = {TEXTOID, TEXTOID};
	Datum		args[2];
	char	  **ids;

	args[0] = CStringGetTextDatum(tenant);
	args[1] = CStringGetTextDatum(environment);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args("SELECT DISTINCT meter_id FROM meter.pending"
							  " WHERE tenant_id OPERATOR(pg_catalog.=) $1 AND environment_id OPERATOR(pg_catalog.=) $2"
							  " ORDER BY 1", 2, types, args, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "meter: listing pending meters failed");
	ids = MemoryContextAlloc(caller, sizeof(char *) * (SPI_processed + 1));
	for (uint64 i = 0; i < SPI_processed; i++)
		ids[i] = MemoryContextStrdup(caller, SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1));
	*n = (int) SPI_processed;
	SPI_finish();
	return ids;
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
	const char *tenant = scope_tenant();
	const char *environment = scope_environment();
	int64		folded = 0;
	char	  **ids;
	int			n = 1;

	if (!PG_ARGISNULL(0))
	{
		ids = palloc(sizeof(char *));
		ids[0] = meter_def_get(text_to_cstring(PG_GETARG_TEXT_PP(0)))->id;
	}
	else
		ids = meters_with_pending(tenant, environment, &n);
	tenant_lock_share(tenant);
	for (int i = 0; i < n; i++)
	{
		int64		f = compaction_run(tenant, environment, ids[i], true);

		folded += Max(f, 0);
	}
	PG_RETURN_INT64(folded);
}
