/*
 * rollup_batch.c — fold a statement's events into rollup accumulators.
 *
 * Inserted events are added to in-memory accumulators keyed like meter.rollups; the
 * flush sorts them and hands them to rollup_write.c, which writes each touched rollup
 * once. Updated and deleted events mark their buckets instead: meter.refresh_rollups()
 * recomputes those from the raw events, which keeps min, max and latest exact when the
 * extreme event goes away. Keys are sorted before writing, so concurrent statements lock
 * rows in the same order and cannot deadlock on each other.
 */
#include "postgres.h"

#include "common/hashfn.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"
#include "utils/datum.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/numeric.h"

#include "number.h"
#include "rollup_batch.h"
#include "rollup_entries.h"

struct RollupBatch
{
	MemoryContext context;
	HTAB	   *rollups;
	HTAB	   *values;
};


static uint32
batch_key_hash(const void *key, Size keysize)
{
	const BatchKey *k = key;

	return hash_bytes((const unsigned char *) k->data, (int) k->len);
}

static int
batch_key_compare(const BatchKey *a, const BatchKey *b)
{
	int			c = memcmp(a->data, b->data, Min(a->len, b->len));

	if (c != 0)
		return c;
	return (a->len > b->len) - (a->len < b->len);
}

static int
batch_key_match(const void *key1, const void *key2, Size keysize)
{
	const BatchKey *a = key1;
	const BatchKey *b = key2;

	return (a->len == b->len && memcmp(a->data, b->data, a->len) == 0) ? 0 : 1;
}

static HTAB *
batch_hash(const char *name, Size entrysize, MemoryContext cxt)
{
	HASHCTL		ctl;

	ctl.keysize = sizeof(BatchKey);
	ctl.entrysize = entrysize;
	ctl.hash = batch_key_hash;
	ctl.match = batch_key_match;
	ctl.hcxt = cxt;
	return hash_create(name, 256, &ctl,
					   HASH_ELEM | HASH_FUNCTION | HASH_COMPARE | HASH_CONTEXT);
}

static void
batch_start(RollupBatch *batch)
{
	batch->rollups = batch_hash("meter rollup batch", sizeof(RollupEntry), batch->context);
	batch->values = batch_hash("meter value batch", sizeof(ValueEntry), batch->context);
}

RollupBatch *
rollup_batch_create(void)
{
	RollupBatch *batch = palloc0(sizeof(RollupBatch));

	batch->context = AllocSetContextCreate(CurrentMemoryContext, "meter rollup batch",
										   ALLOCSET_DEFAULT_SIZES);
	batch_start(batch);
	return batch;
}

void
rollup_batch_destroy(RollupBatch *batch)
{
	MemoryContextDelete(batch->context);
	pfree(batch);
}

long
rollup_batch_size(RollupBatch *batch)
{
	return hash_get_num_entries(batch->rollups) + hash_get_num_entries(batch->values);
}

TimestampTz
rollup_bucket_of(TimestampTz ts)
{
	TimestampTz b = ts - ts % ROLLUP_BUCKET_USECS;

	if (ts < 0 && ts % ROLLUP_BUCKET_USECS != 0)
		b -= ROLLUP_BUCKET_USECS;	/* floor, not truncation, before 2000-01-01 */
	return b;
}

/* Append s and its NUL to buf; return where it starts. */
static const char *
put_string(char *buf, Size *pos, const char *s)
{
	Size		len = strlen(s) + 1;
	const char *start = buf + *pos;

	memcpy(buf + *pos, s, len);
	*pos += len;
	return start;
}

/* Find or create the accumulator of (meter, event's customer and bucket). */
static RollupEntry *
rollup_entry(RollupBatch *batch, const CompiledMeter *meter, const EventKey *event)
{
	TimestampTz bucket = rollup_bucket_of(event->timestamp);
	Size		len = strlen(event->tenant) + strlen(event->environment) + strlen(meter->id)
		+ strlen(event->customer) + strlen(event->external_customer) + 5 + sizeof(bucket);
	char	   *buf = MemoryContextAlloc(batch->context, len);
	Size		pos = 0;
	BatchKey	key;
	RollupEntry *entry;
	bool		found;
	const char *parts[5];

	parts[0] = put_string(buf, &pos, event->tenant);
	parts[1] = put_string(buf, &pos, event->environment);
	parts[2] = put_string(buf, &pos, meter->id);
	parts[3] = put_string(buf, &pos, event->customer);
	parts[4] = put_string(buf, &pos, event->external_customer);
	memcpy(buf + pos, &bucket, sizeof(bucket));
	key.data = buf;
	key.len = len;

	entry = hash_search(batch->rollups, &key, HASH_ENTER, &found);
	if (found)
	{
		pfree(buf);
		return entry;
	}
	memset(entry, 0, sizeof(RollupEntry));
	entry->key = key;
	entry->tenant = parts[0];
	entry->environment = parts[1];
	entry->meter_id = parts[2];
	entry->customer = parts[3];
	entry->external_customer = parts[4];
	entry->bucket = bucket;
	return entry;
}

static int
numeric_compare(Numeric a, Numeric b)
{
	return DatumGetInt32(DirectFunctionCall2(numeric_cmp, NumericGetDatum(a),
											 NumericGetDatum(b)));
}

static Numeric
numeric_plus(Numeric a, Numeric b)
{
	if (a == NULL)
		return b;
	return DatumGetNumeric(DirectFunctionCall2(numeric_add, NumericGetDatum(a),
											   NumericGetDatum(b)));
}

/*
 * Seconds since 1970 as an exact numeric, like extract(epoch from ts). Near the end of
 * the timestamp range (and for infinity) ts + the epoch offset overflows int64: those
 * take extract()'s own path.
 */
static Numeric
epoch_seconds(TimestampTz ts)
{
	const int64 offset = (int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY;

	if (ts <= PG_INT64_MAX - offset)
		return int64_div_fast_to_numeric(ts + offset, 6);
	return DatumGetNumeric(DirectFunctionCall2(extract_timestamptz,
											   PointerGetDatum(cstring_to_text("epoch")),
											   TimestampTzGetDatum(ts)));
}

static void
add_value(RollupEntry *entry, Numeric v, TimestampTz ts)
{
	/* v may point into the row's properties, which do not outlive the row. */
	v = DatumGetNumeric(datumCopy(NumericGetDatum(v), false, -1));
	entry->n++;
	entry->sum = numeric_plus(entry->sum, v);
	entry->sum_vt = numeric_plus(entry->sum_vt,
								 DatumGetNumeric(DirectFunctionCall2(numeric_mul,
																	 NumericGetDatum(v),
																	 NumericGetDatum(epoch_seconds(ts)))));
	if (entry->min == NULL || numeric_compare(v, entry->min) < 0)
		entry->min = v;
	if (entry->max == NULL || numeric_compare(v, entry->max) > 0)
		entry->max = v;
	if (entry->latest_value == NULL || ts > entry->latest_at ||
		(ts == entry->latest_at && numeric_compare(v, entry->latest_value) > 0))
	{
		entry->latest_at = ts;
		entry->latest_value = v;
	}
}

static void
add_unique(RollupBatch *batch, RollupEntry *rollup, const char *value)
{
	Size		vlen = strlen(value) + 1;
	char	   *buf = MemoryContextAlloc(batch->context, rollup->key.len + vlen);
	BatchKey	key;
	ValueEntry *entry;
	bool		found;

	memcpy(buf, rollup->key.data, rollup->key.len);
	memcpy(buf + rollup->key.len, value, vlen);
	key.data = buf;
	key.len = rollup->key.len + vlen;
	entry = hash_search(batch->values, &key, HASH_ENTER, &found);
	if (found)
		pfree(buf);
	else
	{
		entry->key = key;
		entry->rollup = rollup;
		entry->value = buf + rollup->key.len;
		entry->refs = 0;
	}
	entry->refs++;
}

void
rollup_batch_add(RollupBatch *batch, const CompiledMeter *meter, const EventKey *event,
				 Jsonb *properties)
{
	MemoryContext old = MemoryContextSwitchTo(batch->context);
	RollupEntry *entry = rollup_entry(batch, meter, event);
	const Aggregation *agg = meter->aggregation;

	entry->events++;
	if (agg->type == AGG_COUNT)
		entry->n++;
	else if (agg->type == AGG_COUNT_UNIQUE)
	{
		char	   *u = properties_unique_text(properties, agg->field);

		if (u != NULL)
		{
			entry->n++;
			add_unique(batch, entry, u);
		}
	}
	else
	{
		Numeric		v = properties_numeric(properties, agg->field);

		if (v != NULL)
			add_value(entry, v, event->timestamp);
	}
	MemoryContextSwitchTo(old);
}

void
rollup_batch_mark(RollupBatch *batch, const CompiledMeter *meter, const EventKey *event)
{
	MemoryContext old = MemoryContextSwitchTo(batch->context);

	rollup_entry(batch, meter, event)->recompute = true;
	MemoryContextSwitchTo(old);
}

/* ── flush ─────────────────────────────────────────────────────────────────────── */

static int
entry_order(const void *a, const void *b)
{
	return batch_key_compare(*(const BatchKey *const *) a, *(const BatchKey *const *) b);
}

/* The entries of a hash table in key order (entries start with their BatchKey). */
static void **
sorted_entries(HTAB *table, long *count)
{
	HASH_SEQ_STATUS seq;
	void	   *e;
	long		n = 0;
	void	  **all = palloc(sizeof(void *) * Max(hash_get_num_entries(table), 1));

	hash_seq_init(&seq, table);
	while ((e = hash_seq_search(&seq)) != NULL)
		all[n++] = e;
	qsort(all, n, sizeof(void *), entry_order);
	*count = n;
	return all;
}

void
rollup_batch_flush(RollupBatch *batch)
{
	MemoryContext old;
	long		count;
	long		nvalues;
	RollupEntry **entries;
	ValueEntry **values;

	if (rollup_batch_size(batch) == 0)
		return;
	old = MemoryContextSwitchTo(batch->context);
	entries = (RollupEntry **) sorted_entries(batch->rollups, &count);
	values = (ValueEntry **) sorted_entries(batch->values, &nvalues);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	rollup_write(entries, count, values, nvalues);
	SPI_finish();
	MemoryContextSwitchTo(old);
	MemoryContextReset(batch->context);
	batch_start(batch);
}
