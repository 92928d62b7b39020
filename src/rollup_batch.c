/*
 * rollup_batch.c — fold a statement's events into rollup accumulators, then write them.
 *
 * Inserted events are added to in-memory accumulators keyed like meter.rollups; the
 * flush writes each touched rollup once, with one INSERT … ON CONFLICT DO UPDATE over
 * arrays (one SPI call per table, however large the batch). Updated and deleted events
 * mark their buckets instead: meter.refresh_rollups() recomputes those from the raw
 * events, which keeps min, max and latest exact when the extreme event goes away.
 * Keys are written in one fixed order, so concurrent statements lock rows in the same
 * order and cannot deadlock on each other.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"
#include "utils/datum.h"
#include "utils/lsyscache.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/numeric.h"

#include "number.h"
#include "rollup_batch.h"
#include "scope.h"

/* A key: tenant \0 environment \0 meter \0 customer \0 external \0 bucket[8] [value \0] */
typedef struct BatchKey
{
	const char *data;
	Size		len;
} BatchKey;

typedef struct RollupEntry
{
	BatchKey	key;
	const char *tenant;
	const char *environment;
	const char *meter_id;
	const char *customer;
	const char *external_customer;
	TimestampTz bucket;
	bool		recompute;
	int64		events;
	int64		n;
	Numeric		sum;
	Numeric		sum_vt;
	Numeric		min;
	Numeric		max;
	TimestampTz latest_at;
	Numeric		latest_value;	/* NULL: no usable value yet */
} RollupEntry;

typedef struct ValueEntry
{
	BatchKey	key;
	RollupEntry *rollup;
	const char *value;
	int64		refs;
} ValueEntry;

struct RollupBatch
{
	MemoryContext context;
	HTAB	   *rollups;
	HTAB	   *values;
};

static SPIPlanPtr upsert_rollups_plan = NULL;
static SPIPlanPtr upsert_values_plan = NULL;
static SPIPlanPtr refresh_plan = NULL;

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

static const char *const upsert_rollups_sql =
"INSERT INTO meter.rollups AS r (tenant_id, environment_id, meter_id, customer_id,"
"   external_customer_id, bucket, events, n, sum, sum_vt, min, max, latest_at, latest_value)"
" SELECT * FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2), pg_catalog.unnest($3),"
"   pg_catalog.unnest($4), pg_catalog.unnest($5), pg_catalog.unnest($6), pg_catalog.unnest($7),"
"   pg_catalog.unnest($8), pg_catalog.unnest($9), pg_catalog.unnest($10), pg_catalog.unnest($11),"
"   pg_catalog.unnest($12), pg_catalog.unnest($13), pg_catalog.unnest($14))"
" ON CONFLICT (tenant_id, environment_id, meter_id, customer_id, external_customer_id, bucket)"
" DO UPDATE SET"
"  events = r.events OPERATOR(pg_catalog.+) excluded.events,"
"  n = r.n OPERATOR(pg_catalog.+) excluded.n,"
"  sum = CASE WHEN r.sum IS NULL THEN excluded.sum WHEN excluded.sum IS NULL THEN r.sum"
"        ELSE r.sum OPERATOR(pg_catalog.+) excluded.sum END,"
"  sum_vt = CASE WHEN r.sum_vt IS NULL THEN excluded.sum_vt WHEN excluded.sum_vt IS NULL"
"        THEN r.sum_vt ELSE r.sum_vt OPERATOR(pg_catalog.+) excluded.sum_vt END,"
"  min = LEAST(r.min, excluded.min),"
"  max = GREATEST(r.max, excluded.max),"
"  latest_at = CASE WHEN excluded.latest_value IS NOT NULL AND (r.latest_value IS NULL"
"        OR excluded.latest_at OPERATOR(pg_catalog.>) r.latest_at"
"        OR (excluded.latest_at OPERATOR(pg_catalog.=) r.latest_at"
"            AND excluded.latest_value OPERATOR(pg_catalog.>) r.latest_value))"
"        THEN excluded.latest_at ELSE r.latest_at END,"
"  latest_value = CASE WHEN excluded.latest_value IS NOT NULL AND (r.latest_value IS NULL"
"        OR excluded.latest_at OPERATOR(pg_catalog.>) r.latest_at"
"        OR (excluded.latest_at OPERATOR(pg_catalog.=) r.latest_at"
"            AND excluded.latest_value OPERATOR(pg_catalog.>) r.latest_value))"
"        THEN excluded.latest_value ELSE r.latest_value END";

static const char *const upsert_values_sql =
"INSERT INTO meter.rollup_values AS v (tenant_id, environment_id, meter_id, customer_id,"
"   external_customer_id, bucket, value, refs)"
" SELECT * FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2), pg_catalog.unnest($3),"
"   pg_catalog.unnest($4), pg_catalog.unnest($5), pg_catalog.unnest($6), pg_catalog.unnest($7),"
"   pg_catalog.unnest($8))"
" ON CONFLICT (tenant_id, environment_id, meter_id, customer_id, external_customer_id, bucket, value)"
" DO UPDATE SET refs = v.refs OPERATOR(pg_catalog.+) excluded.refs";

static const char *const refresh_sql =
"SELECT meter.refresh_rollups($1, $2, $3, $4)";

/* Columns of a batch being written: one C array per SQL array parameter. */
typedef struct Columns
{
	int			ncols;
	int			nrows;
	Datum	  **values;
	bool	  **nulls;
	const Oid  *types;
} Columns;

static void
columns_init(Columns *c, int ncols, const Oid *types, int nrows)
{
	c->ncols = ncols;
	c->nrows = 0;
	c->types = types;
	c->values = palloc(sizeof(Datum *) * ncols);
	c->nulls = palloc(sizeof(bool *) * ncols);
	for (int i = 0; i < ncols; i++)
	{
		c->values[i] = palloc(sizeof(Datum) * Max(nrows, 1));
		c->nulls[i] = palloc0(sizeof(bool) * Max(nrows, 1));
	}
}

static void
columns_set(Columns *c, int col, Datum value, bool isnull)
{
	c->values[col][c->nrows] = value;
	c->nulls[col][c->nrows] = isnull;
}

static void
columns_set_numeric(Columns *c, int col, Numeric v)
{
	columns_set(c, col, v ? NumericGetDatum(v) : (Datum) 0, v == NULL);
}

static Datum *
columns_arrays(Columns *c)
{
	Datum	   *args = palloc(sizeof(Datum) * c->ncols);

	for (int i = 0; i < c->ncols; i++)
	{
		int16		typlen;
		bool		byval;
		char		align;
		int			dims[1] = {c->nrows};
		int			lbs[1] = {1};

		get_typlenbyvalalign(c->types[i], &typlen, &byval, &align);
		args[i] = PointerGetDatum(construct_md_array(c->values[i], c->nulls[i], 1, dims, lbs,
													 c->types[i], typlen, byval, align));
	}
	return args;
}

static void
execute(SPIPlanPtr *plan, const char *sql, Columns *c)
{
	Oid		   *argtypes = palloc(sizeof(Oid) * c->ncols);
	int			rc;

	if (*plan == NULL)
	{
		SPIPlanPtr	p;

		for (int i = 0; i < c->ncols; i++)
			argtypes[i] = get_array_type(c->types[i]);
		p = SPI_prepare(sql, c->ncols, argtypes);
		if (p == NULL)
			elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
		SPI_keepplan(p);
		*plan = p;
	}
	rc = SPI_execute_plan(*plan, columns_arrays(c), NULL, false, 0);
	if (rc < 0)
		elog(ERROR, "writing rollups failed: %s", SPI_result_code_string(rc));
}

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

static const Oid rollup_types[14] = {
	TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TIMESTAMPTZOID, INT8OID, INT8OID,
	NUMERICOID, NUMERICOID, NUMERICOID, NUMERICOID, TIMESTAMPTZOID, NUMERICOID
};

static void
set_key_columns(Columns *c, const RollupEntry *e)
{
	columns_set(c, 0, CStringGetTextDatum(e->tenant), false);
	columns_set(c, 1, CStringGetTextDatum(e->environment), false);
	columns_set(c, 2, CStringGetTextDatum(e->meter_id), false);
	columns_set(c, 3, CStringGetTextDatum(e->customer), false);
	columns_set(c, 4, CStringGetTextDatum(e->external_customer), false);
	columns_set(c, 5, TimestampTzGetDatum(e->bucket), false);
}

static void
write_increments(RollupEntry **entries, long count)
{
	Columns		c;

	columns_init(&c, 14, rollup_types, (int) count);
	for (long i = 0; i < count; i++)
	{
		RollupEntry *e = entries[i];

		if (e->recompute)
			continue;
		set_key_columns(&c, e);
		columns_set(&c, 6, Int64GetDatum(e->events), false);
		columns_set(&c, 7, Int64GetDatum(e->n), false);
		columns_set_numeric(&c, 8, e->sum);
		columns_set_numeric(&c, 9, e->sum_vt);
		columns_set_numeric(&c, 10, e->min);
		columns_set_numeric(&c, 11, e->max);
		columns_set(&c, 12, TimestampTzGetDatum(e->latest_at), e->latest_value == NULL);
		columns_set_numeric(&c, 13, e->latest_value);
		c.nrows++;
	}
	if (c.nrows > 0)
		execute(&upsert_rollups_plan, upsert_rollups_sql, &c);
}

static void
write_values(HTAB *values)
{
	static const Oid types[8] = {
		TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TIMESTAMPTZOID, TEXTOID, INT8OID
	};
	long		count;
	ValueEntry **entries = (ValueEntry **) sorted_entries(values, &count);
	Columns		c;

	columns_init(&c, 8, types, (int) count);
	for (long i = 0; i < count; i++)
	{
		ValueEntry *e = entries[i];

		if (e->rollup->recompute)
			continue;
		set_key_columns(&c, e->rollup);
		columns_set(&c, 6, CStringGetTextDatum(e->value), false);
		columns_set(&c, 7, Int64GetDatum(e->refs), false);
		c.nrows++;
	}
	if (c.nrows > 0)
		execute(&upsert_values_plan, upsert_values_sql, &c);
}

/* Recompute marked buckets, one call per (tenant, environment), inside that scope. */
static void
write_recomputed(RollupEntry **entries, long count)
{
	static const Oid types[4] = {TEXTOID, TEXTOID, TEXTOID, TIMESTAMPTZOID};
	long		i = 0;

	while (i < count)
	{
		const char *tenant = NULL;
		const char *environment = NULL;
		Columns		c;
		int			level;

		columns_init(&c, 4, types, (int) (count - i));
		for (; i < count; i++)
		{
			RollupEntry *e = entries[i];

			if (!e->recompute)
				continue;
			if (tenant != NULL && (strcmp(tenant, e->tenant) != 0 ||
								   strcmp(environment, e->environment) != 0))
				break;
			tenant = e->tenant;
			environment = e->environment;
			columns_set(&c, 0, CStringGetTextDatum(e->meter_id), false);
			columns_set(&c, 1, CStringGetTextDatum(e->customer), false);
			columns_set(&c, 2, CStringGetTextDatum(e->external_customer), false);
			columns_set(&c, 3, TimestampTzGetDatum(e->bucket), false);
			c.nrows++;
		}
		if (c.nrows == 0)
			continue;
		level = scope_enter(tenant, environment);
		execute(&refresh_plan, refresh_sql, &c);
		scope_leave(level);
	}
}

void
rollup_batch_flush(RollupBatch *batch)
{
	MemoryContext old;
	long		count;
	RollupEntry **entries;

	if (rollup_batch_size(batch) == 0)
		return;
	old = MemoryContextSwitchTo(batch->context);
	entries = (RollupEntry **) sorted_entries(batch->rollups, &count);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	write_increments(entries, count);
	write_values(batch->values);
	write_recomputed(entries, count);
	SPI_finish();
	MemoryContextSwitchTo(old);
	MemoryContextReset(batch->context);
	batch_start(batch);
}
