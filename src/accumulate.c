/*
 * accumulate.c — events into per-slot partial states, written as pending rows (see
 * accumulate.h). A statement of any size becomes one pending row per meter (more only
 * when it outgrows the memory bound), holding one entry per (customer, 15-minute slot,
 * dimensions) it touched, and one per (slot, dimensions) for all its customers together.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"

#include "accumulate.h"
#include "buckets.h"
#include "compaction.h"
#include "dims.h"
#include "event_value.h"
#include "meter_def.h"
#include "slotset.h"
#include "store.h"

#define METER_ID_MAX 256

/* One meter's definition, as first seen, and its entries. */
typedef struct MeterAcc
{
	char		id[METER_ID_MAX];	/* hash key */
	char	   *tenant;
	char	   *environment;
	Aggregation *agg;
	Filters    *filters;
	const char **dim_keys;
	SlotSet    *set;
	SlotSet    *late;			/* sealed skips: events per (customer, slot) */
} MeterAcc;

struct Accumulator
{
	MemoryContext meters_cxt;	/* definitions: live as long as the accumulator */
	MemoryContext entries_cxt;	/* entries: reset at every flush */
	HTAB	   *meters;
	Size		bytes;			/* entries' memory, as last measured */
	uint32		checks;
};

Accumulator *
accumulator_create(void)
{
	Accumulator *acc = palloc0(sizeof(Accumulator));
	HASHCTL		ctl;

	acc->meters_cxt = AllocSetContextCreate(CurrentMemoryContext, "meter accumulator",
											ALLOCSET_DEFAULT_SIZES);
	acc->entries_cxt = AllocSetContextCreate(acc->meters_cxt, "meter accumulator entries",
											 ALLOCSET_DEFAULT_SIZES);
	ctl.keysize = METER_ID_MAX;
	ctl.entrysize = sizeof(MeterAcc);
	ctl.hcxt = acc->meters_cxt;
	acc->meters = hash_create("meter accumulator meters", 32, &ctl,
							  HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	return acc;
}

void
accumulator_destroy(Accumulator *acc)
{
	MemoryContextDelete(acc->meters_cxt);
	pfree(acc);
}

/* The accumulator of a meter; new ones take a copy of the definition from copy(). */
typedef void (*DefinitionCopier) (const void *meter, MeterAcc *into);

static void
copy_compiled(const void *meter, MeterAcc *into)
{
	into->agg = meter_cache_copy_aggregation(meter);
	into->filters = meter_cache_copy_filters(meter);
}

static void
copy_def(const void *meter, MeterAcc *into)
{
	const MeterDef *m = meter;

	into->agg = aggregation_unpack(m->agg_stored);
	into->filters = filters_unpack(m->filters_stored);
}

static MeterAcc *
meter_acc(Accumulator *acc, const char *id, const void *meter, DefinitionCopier copy,
		  const EventRow *row)
{
	bool		found;
	MeterAcc   *m;
	MemoryContext old;

	if (strlen(id) >= METER_ID_MAX)
		elog(ERROR, "meter: meter id too long");
	m = hash_search(acc->meters, id, HASH_ENTER, &found);
	if (found)
	{
		if (m->set == NULL)
			m->set = slotset_create(acc->entries_cxt);
		if (m->late == NULL)
			m->late = slotset_create(acc->entries_cxt);
		return m;
	}
	old = MemoryContextSwitchTo(acc->meters_cxt);
	m->tenant = pstrdup(row->tenant);
	m->environment = pstrdup(row->environment);
	copy(meter, m);
	m->dim_keys = palloc(sizeof(char *) * (m->filters->nkeys + 1));
	for (int i = 0; i < m->filters->nkeys; i++)
		m->dim_keys[i] = m->filters->keys[i].key;
	MemoryContextSwitchTo(old);
	m->set = slotset_create(acc->entries_cxt);
	m->late = slotset_create(acc->entries_cxt);
	return m;
}

static void add_event(Accumulator *acc, MeterAcc *m, const EventRow *row, int sign);

static int
cmp_int64(const void *a, const void *b)
{
	int64		x = *(const int64 *) a;
	int64		y = *(const int64 *) b;

	return x < y ? -1 : x > y;
}

void
accumulator_add(Accumulator *acc, const CompiledMeter *meter, const EventRow *row, int sign)
{
	add_event(acc, meter_acc(acc, meter->id, meter, copy_compiled, row), row, sign);
}

void
accumulator_add_def(Accumulator *acc, const MeterDef *meter, const EventRow *row, int sign)
{
	add_event(acc, meter_acc(acc, meter->id, meter, copy_def, row), row, sign);
}

void
accumulator_put(Accumulator *acc, const MeterDef *meter, SlotSet *set)
{
	int			n;
	SlotEntry **entries = slotset_sorted(set, &n);
	EventRow	row = {0};
	MeterAcc   *m;
	MemoryContext old;

	if (n == 0)
		return;
	row.tenant = meter->tenant;
	row.environment = meter->environment;
	m = meter_acc(acc, meter->id, meter, copy_def, &row);
	old = MemoryContextSwitchTo(acc->entries_cxt);
	for (int i = 0; i < n; i++)
		partial_combine(&slotset_entry(m->set, &entries[i]->key)->partial, &entries[i]->partial,
						m->agg, 1, NULL, NULL);
	MemoryContextSwitchTo(old);
}

void
accumulator_add_late(Accumulator *acc, const CompiledMeter *meter, const EventRow *row)
{
	MeterAcc   *m = meter_acc(acc, meter->id, meter, copy_compiled, row);
	SlotKey		key;

	key.customer = row->customer;
	key.external_customer = row->external_customer;
	key.slot = slot_start(row->timestamp);
	key.dims = "";
	slotset_entry(m->late, &key)->partial.events++;
}

static void
add_event(Accumulator *acc, MeterAcc *m, const EventRow *row, int sign)
{
	SlotKey		key;
	SlotEntry  *entry;
	EventValue	ev;
	MemoryContext old;

	key.customer = row->customer;
	key.external_customer = row->external_customer;
	key.slot = slot_start(row->timestamp);
	key.dims = dims_of_event(m->filters, row->properties);
	entry = slotset_entry(m->set, &key);
	if (sign < 0 && !partial_invertible(m->agg))
	{
		entry->mark = true;
		return;
	}
	event_value_fill(m->agg, row->properties, row->timestamp,
					 bucket_key_in_slot(row->timestamp, m->agg->bucket_size), &ev);
	old = MemoryContextSwitchTo(acc->entries_cxt);
	partial_add_event(&entry->partial, m->agg, sign, &ev);
	MemoryContextSwitchTo(old);
}

bool
accumulator_full(Accumulator *acc)
{
	/* Checked per row: the sets' own tally, not a walk over the memory contexts. */
	if (++acc->checks % 1024 == 0)
		acc->bytes = MemoryContextMemAllocated(acc->entries_cxt, true);
	return acc->bytes > ACCUMULATE_MEMORY;
}

/* The (shard, day) rows sorted entries fold into, as store tags; palloc'd. */
static int64 *
row_tags(SlotEntry **entries, int n, int *ntags)
{
	int64	   *tags = palloc(sizeof(int64) * (n + 1));
	int			k = 0;
	int16		shard = 0;

	for (int i = 0; i < n; i++)
	{
		const SlotKey *key = &entries[i]->key;

		/* Entries come grouped by customer: one shard per group. */
		if (i == 0 || key->customer != entries[i - 1]->key.customer ||
			key->external_customer != entries[i - 1]->key.external_customer)
			shard = store_shard(key->customer, key->external_customer);
		tags[k++] = store_row_tag(shard, slot_day(key->slot));
	}
	qsort(tags, k, sizeof(int64), cmp_int64);
	*ntags = 0;
	for (int i = 0; i < k; i++)
		if (*ntags == 0 || tags[*ntags - 1] != tags[i])
			tags[(*ntags)++] = tags[i];
	return tags;
}

/* The entries summed over customers (key customer ""), marks kept: what all-customers
 * reads and the all-customers compacted rows take from a pending row. */
static bytea *
encode_totals(MeterAcc *m, SlotEntry **entries, int n)
{
	SlotSet    *totals = slotset_create(CurrentMemoryContext);
	SlotEntry **sorted;
	int			ntotals;

	for (int i = 0; i < n; i++)
	{
		SlotKey		k = entries[i]->key;
		SlotEntry  *t;

		k.customer = SLOT_ALL_CUSTOMERS;
		k.external_customer = SLOT_ALL_CUSTOMERS;
		t = slotset_entry(totals, &k);
		t->mark |= entries[i]->mark;
		partial_combine(&t->partial, &entries[i]->partial, m->agg, 1, NULL, NULL);
	}
	sorted = slotset_sorted(totals, &ntotals);
	return slotset_encode(sorted, ntotals, m->agg, m->filters->nkeys, m->dim_keys, NULL, 0, false);
}

void
accumulator_flush(Accumulator *acc)
{
	HASH_SEQ_STATUS seq;
	MeterAcc   *m;
	PendingRow *rows = palloc(sizeof(PendingRow) * (hash_get_num_entries(acc->meters) + 1));
	int			nrows = 0;
	MemoryContext old = MemoryContextSwitchTo(acc->entries_cxt);

	hash_seq_init(&seq, acc->meters);
	while ((m = hash_seq_search(&seq)) != NULL)
	{
		int			n;
		int			ntags;
		int64	   *tags;
		SlotEntry **entries;
		TimestampTz lo = PG_INT64_MAX,
					hi = PG_INT64_MIN;
		PendingRow *r;

		if (m->set == NULL || slotset_count(m->set) == 0)
			continue;
		entries = slotset_sorted(m->set, &n);
		for (int i = 0; i < n; i++)
		{
			lo = Min(lo, entries[i]->key.slot);
			hi = Max(hi, entries[i]->key.slot);
		}
		tags = row_tags(entries, n, &ntags);
		r = &rows[nrows++];
		r->tenant = m->tenant;
		r->environment = m->environment;
		r->meter_id = m->id;
		r->first_day = slot_day(lo);
		r->last_day = slot_day(hi);
		r->entries = n;
		r->data = slotset_encode(entries, n, m->agg, m->filters->nkeys, m->dim_keys, tags, ntags, false);
		r->totals = encode_totals(m, entries, n);
	}
	MemoryContextSwitchTo(old);
	store_append_pending(rows, nrows);
	for (int i = 0; i < nrows; i++)
		compaction_note(rows[i].tenant, rows[i].environment, rows[i].meter_id, rows[i].entries);

	/* Sealed skips (rare): one row per meter, customer and slot. */
	hash_seq_init(&seq, acc->meters);
	while ((m = hash_seq_search(&seq)) != NULL)
		if (m->late != NULL && slotset_count(m->late) > 0)
		{
			int			n;
			SlotEntry **late = slotset_sorted(m->late, &n);

			for (int i = 0; i < n; i++)
				store_append_sealed_skip(m->tenant, m->environment, m->id, &late[i]->key,
										 late[i]->partial.events);
		}

	/* Start empty: the entries go, the definitions stay. */
	hash_seq_init(&seq, acc->meters);
	while ((m = hash_seq_search(&seq)) != NULL)
	{
		m->set = NULL;
		m->late = NULL;
	}
	MemoryContextReset(acc->entries_cxt);
	acc->bytes = 0;
}
