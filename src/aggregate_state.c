/*
 * aggregate_state.c — meter.aggregate_state: the transition state of meter.aggregate.
 *
 * In memory the state is an expanded object (utils/expandeddatum.h) that lives in a
 * context under the aggregate's context (see state_home): the transition function
 * updates it in place and nodeAgg keeps it without copying. It is flattened only when
 * it leaves the aggregate (a parallel worker's partial result, a stored value).
 *
 * This file: the expanded object, what a state of each aggregation may hold, and the
 * flat/binary form — a version byte, then fields in network byte order; the flat
 * varlena holds exactly the bytes that send/receive exchange. The text form is in
 * aggregate_state_text.c. Every input path validates: a bad state is an error, never a
 * crash.
 */
#include "postgres.h"

#include "common/hashfn.h"
#include "libpq/pqformat.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/fmgrprotos.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"

#include "aggregate.h"
#include "aggregate_state.h"
#include "number.h"

#define SH_PREFIX stateunique
#define SH_ELEMENT_TYPE StateUniqueEntry
#define SH_KEY_TYPE char *
#define SH_KEY key
#define SH_HASH_KEY(tb, k) hash_bytes((const unsigned char *) (k), strlen(k))
#define SH_EQUAL(tb, a, b) (strcmp((a), (b)) == 0)
#define SH_STORE_HASH
#define SH_GET_HASH(tb, a) ((a)->hash)
#define SH_SCOPE extern
#define SH_DEFINE
#include "lib/simplehash.h"

#define SH_PREFIX bucketset
#define SH_ELEMENT_TYPE BucketEntry
#define SH_KEY_TYPE TimestampTz
#define SH_KEY key
#define SH_HASH_KEY(tb, k) murmurhash32((uint32) ((uint64) (k) ^ ((uint64) (k) >> 32)))
#define SH_EQUAL(tb, a, b) ((a) == (b))
#define SH_SCOPE extern
#define SH_DEFINE
#include "lib/simplehash.h"

static Size state_get_flat_size(ExpandedObjectHeader *eohptr);
static void state_flatten_into(ExpandedObjectHeader *eohptr, void *result, Size allocated_size);

static const ExpandedObjectMethods state_methods = {
	state_get_flat_size,
	state_flatten_into
};

/* ── Construction ────────────────────────────────────────────────────────────────── */

/*
 * Where the states of an aggregate live: one context under the aggregate's context,
 * shared by all its groups. A context per group would be simpler, but nodeAgg measures a
 * hash aggregate's memory by walking every child context after each new group, which
 * is quadratic in the number of groups. nodeAgg adopts an expanded state only when its
 * context is a child of the aggregate context, which this one is; it never deletes one,
 * because the transition and combine functions always return their first argument
 * once it is a state of this home.
 */
static const char state_home_name[] = "meter aggregate states";

MemoryContext
state_home(MemoryContext aggcontext)
{
	for (MemoryContext c = aggcontext->firstchild; c != NULL; c = c->nextchild)
		if (c->name == state_home_name)
			return c;
	return AllocSetContextCreateInternal(aggcontext, state_home_name, ALLOCSET_DEFAULT_SIZES);
}

AggregateState *
state_writable(Datum d, MemoryContext aggcontext)
{
	ExpandedObjectHeader *eoh;

	if (!VARATT_IS_EXTERNAL_EXPANDED_RW(DatumGetPointer(d)))
		return NULL;
	eoh = DatumGetEOHP(d);
	if (eoh->eoh_methods != &state_methods ||
		MemoryContextGetParent(eoh->eoh_context) != aggcontext ||
		eoh->eoh_context->name != state_home_name)
		return NULL;
	return (AggregateState *) eoh;
}

/* An empty state (no aggregation yet), allocated in home. */
AggregateState *
state_new_empty(MemoryContext home)
{
	AggregateState *st;

	st = MemoryContextAllocZero(home, sizeof(AggregateState));
	EOH_init_header(&st->hdr, &state_methods, home);
	st->bucket_size = WINDOW_NONE;
	return st;
}

void
state_numbuf_set(AggregateState *st, NumBuf *b, Numeric src)
{
	Size		len = VARSIZE(src);

	if (b->num == src)
		return;
	if (b->num == NULL || b->cap < len)
	{
		if (b->num != NULL)
			pfree(b->num);
		b->cap = MAXALIGN(len + 8);
		b->num = MemoryContextAlloc(st->hdr.eoh_context, b->cap);
	}
	memcpy(b->num, src, len);
}

/* Zero, the starting value of every sum. */
static void
numbuf_zero(AggregateState *st, NumBuf *b)
{
	state_numbuf_set(st, b, int64_to_numeric(0));
}

AggregateState *
state_create(MemoryContext home, const Aggregation *agg)
{
	AggregateState *st = state_new_empty(home);
	MemoryContext ctx = st->hdr.eoh_context;

	st->type = agg->type;
	st->bucket_size = agg->bucket_size;
	if (agg->field != NULL)
	{
		st->field = MemoryContextStrdup(ctx, agg->field);
		st->fieldlen = strlen(agg->field);
	}
	if (agg->multiplier != NULL)
	{
		st->multiplier = MemoryContextAlloc(ctx, VARSIZE(agg->multiplier));
		memcpy(st->multiplier, agg->multiplier, VARSIZE(agg->multiplier));
	}
	if (STATE_HAS_SUM(st->type))
		numbuf_zero(st, &st->sum);
	if (st->type == AGG_WEIGHTED_SUM)
		numbuf_zero(st, &st->sum_vt);
	return st;
}

void
state_unique_add(AggregateState *st, const char *text)
{
	bool		found;
	StateUniqueEntry *e;

	if (st->uniques == NULL)
		st->uniques = stateunique_create(st->hdr.eoh_context, 16, NULL);
	e = stateunique_insert(st->uniques, (char *) text, &found);
	if (!found)
		e->key = MemoryContextStrdup(st->hdr.eoh_context, text);
}

BucketEntry *
state_bucket(AggregateState *st, TimestampTz key)
{
	bool		found;
	BucketEntry *e;

	if (st->buckets == NULL)
		st->buckets = bucketset_create(st->hdr.eoh_context, 16, NULL);
	e = bucketset_insert(st->buckets, key, &found);
	if (!found)
	{
		e->value.num = NULL;
		e->value.cap = 0;
	}
	return e;
}

static int
cmp_bucket_ptr(const void *a, const void *b)
{
	TimestampTz ka = (*(BucketEntry *const *) a)->key;
	TimestampTz kb = (*(BucketEntry *const *) b)->key;

	return ka < kb ? -1 : ka > kb ? 1 : 0;
}

BucketEntry **
state_buckets_sorted(const AggregateState *st, int *n)
{
	BucketEntry **out;
	bucketset_iterator it;
	BucketEntry *e;
	int			i = 0;

	*n = st->buckets ? (int) st->buckets->members : 0;
	out = palloc(sizeof(BucketEntry *) * (*n + 1));
	if (st->buckets == NULL)
		return out;
	bucketset_start_iterate(st->buckets, &it);
	while ((e = bucketset_iterate(st->buckets, &it)) != NULL)
		out[i++] = e;
	qsort(out, i, sizeof(BucketEntry *), cmp_bucket_ptr);
	return out;
}

static int
cmp_string_ptr(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

char	  **
state_uniques_sorted(const AggregateState *st, int *n)
{
	char	  **out;
	stateunique_iterator it;
	StateUniqueEntry *e;
	int			i = 0;

	*n = st->uniques ? (int) st->uniques->members : 0;
	out = palloc(sizeof(char *) * (*n + 1));
	if (st->uniques == NULL)
		return out;
	stateunique_start_iterate(st->uniques, &it);
	while ((e = stateunique_iterate(st->uniques, &it)) != NULL)
		out[i++] = e->key;
	qsort(out, i, sizeof(char *), cmp_string_ptr);
	return out;
}

/* ── Consistency: what a state of each aggregation may hold ────────────────────────── */

/* Report a bad state read from outside (text or binary input). */
void
state_invalid(int code, const char *detail)
{
	ereport(ERROR,
			(errcode(code),
			 errmsg("invalid aggregate state"),
			 errdetail("%s", detail),
			 errhint("Pass a value produced by meter.aggregate_state's own output, e.g. %s.",
					 STATE_EXAMPLE)));
}

/* The aggregation part must follow meter.aggregation's rules (SPEC §2). */
void
state_check_aggregation(const AggregateState *st, int code)
{
	if (st->type != AGG_COUNT && st->field == NULL)
		state_invalid(code, "Every aggregation type but COUNT needs a field.");
	if (st->field != NULL && st->fieldlen == 0)
		state_invalid(code, "The field must not be empty.");
	if ((st->type == AGG_SUM_WITH_MULTIPLIER) != (st->multiplier != NULL))
		state_invalid(code, "A multiplier goes with SUM_WITH_MULTIPLIER, and only with it.");
	if (st->multiplier != NULL &&
		DatumGetInt32(DirectFunctionCall2(numeric_cmp, NumericGetDatum(st->multiplier),
										  NumericGetDatum(int64_to_numeric(0)))) <= 0)
		state_invalid(code, "The multiplier must be greater than 0.");
	if (st->bucket_size != WINDOW_NONE && st->type != AGG_MAX && st->type != AGG_SUM)
		state_invalid(code, "A bucket_size goes with MAX or SUM only.");
}

/* The tallies must fit the aggregation. */
void
state_check_tallies(const AggregateState *st, int code)
{
	if (st->rows < 0 || st->values < 0 || st->values > st->rows)
		state_invalid(code, "The counts must satisfy 0 <= values <= rows.");
	if ((st->type == AGG_WEIGHTED_SUM) != st->has_period)
		state_invalid(code, "A period goes with WEIGHTED_SUM, and only with it.");
	if (st->has_period &&
		(TIMESTAMP_NOT_FINITE(st->period_start) || TIMESTAMP_NOT_FINITE(st->period_end) ||
		 st->period_end <= st->period_start))
		state_invalid(code, "The period must be finite with its end after its start.");
	if (st->has_period && (!IS_VALID_TIMESTAMP(st->period_start) || !IS_VALID_TIMESTAMP(st->period_end)))
		state_invalid(code, "The period is out of the range of timestamptz.");
	if (st->type == AGG_LATEST && st->best.num != NULL &&
		!TIMESTAMP_NOT_FINITE(st->best_ts) && !IS_VALID_TIMESTAMP(st->best_ts))
		state_invalid(code, "The timestamp is out of the range of timestamptz.");
	if (STATE_HAS_BEST(st) && (st->best.num != NULL) != (st->values > 0))
		state_invalid(code, "A value is present exactly when values > 0.");
	if (STATE_BUCKETED(st) && st->buckets != NULL && st->buckets->members > 0 && st->values == 0)
		state_invalid(code, "Buckets are present only when values > 0.");
	if (STATE_BUCKETED(st) && st->values > 0 && (st->buckets == NULL || st->buckets->members == 0))
		state_invalid(code, "A state with values > 0 has at least one bucket.");
	if (st->type == AGG_COUNT_UNIQUE && st->uniques != NULL &&
		(int64) st->uniques->members > st->values)
		state_invalid(code, "There cannot be more unique values than values.");
}

/* A numeric read from outside: finite numbers only. */
Numeric
state_check_number(Numeric n, int code)
{
	if (numeric_is_nan(n) || numeric_is_inf(n))
		state_invalid(code, "Numbers in a state are finite.");
	return n;
}

void
state_check_bucket_key(TimestampTz key, WindowSize size, int code)
{
	if (!TIMESTAMP_NOT_FINITE(key) &&
		(!IS_VALID_TIMESTAMP(key) || aggregate_bucket_start(key, size) != key))
		state_invalid(code, "A bucket key must be the start of a bucket of the aggregation's bucket_size.");
}

/* ── Flat and binary form ────────────────────────────────────────────────────────── */

static void
send_numeric(StringInfo buf, Numeric n)
{
	bytea	   *b = DatumGetByteaPP(DirectFunctionCall1(numeric_send, NumericGetDatum(n)));

	pq_sendbytes(buf, VARDATA_ANY(b), VARSIZE_ANY_EXHDR(b));
	pfree(b);
}

static Numeric
recv_numeric(StringInfo buf)
{
	Numeric		n = DatumGetNumeric(DirectFunctionCall3(numeric_recv, PointerGetDatum(buf),
														ObjectIdGetDatum(InvalidOid),
														Int32GetDatum(-1)));

	return state_check_number(n, ERRCODE_INVALID_BINARY_REPRESENTATION);
}

/* A multiplier as meter.aggregation stores it: canonical, 1.50 is 1.5. */
Numeric
state_canonical_multiplier(Numeric m)
{
	return DatumGetNumeric(DirectFunctionCall3(numeric_in, CStringGetDatum(number_canonical(m)),
											   ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1)));
}

#define FLAG_PERIOD 0x01
#define FLAG_BEST	0x02

/* Write the state: version, aggregation, tallies, then the parts its type uses. */
static void
state_write(StringInfo buf, AggregateState *st)
{
	uint8		flags = 0;

	if (st->has_period)
		flags |= FLAG_PERIOD;
	if (st->best.num != NULL)
		flags |= FLAG_BEST;
	pq_sendbyte(buf, STATE_VERSION);
	pq_sendbyte(buf, (uint8) st->type);
	pq_sendbyte(buf, (uint8) (st->bucket_size + 1));	/* 0: none */
	pq_sendbyte(buf, flags);
	pq_sendint32(buf, st->field ? st->fieldlen : -1);
	if (st->field)
		pq_sendbytes(buf, st->field, st->fieldlen);
	if (st->type == AGG_SUM_WITH_MULTIPLIER)
		send_numeric(buf, st->multiplier);
	pq_sendint64(buf, st->rows);
	pq_sendint64(buf, st->values);
	if (st->has_period)
	{
		pq_sendint64(buf, st->period_start);
		pq_sendint64(buf, st->period_end);
	}
	if (STATE_HAS_SUM(st->type))
		send_numeric(buf, st->sum.num);
	if (st->type == AGG_WEIGHTED_SUM)
		send_numeric(buf, st->sum_vt.num);
	if (st->best.num != NULL)
	{
		send_numeric(buf, st->best.num);
		if (st->type == AGG_LATEST)
			pq_sendint64(buf, st->best_ts);
	}
	if (st->type == AGG_COUNT_UNIQUE)
	{
		int			n;
		char	  **keys = state_uniques_sorted(st, &n);

		pq_sendint32(buf, n);
		for (int i = 0; i < n; i++)
		{
			int			len = strlen(keys[i]);

			pq_sendint32(buf, len);
			pq_sendbytes(buf, keys[i], len);
		}
		pfree(keys);
	}
	if (STATE_BUCKETED(st))
	{
		int			n;
		BucketEntry **b = state_buckets_sorted(st, &n);

		pq_sendint32(buf, n);
		for (int i = 0; i < n; i++)
		{
			pq_sendint64(buf, b[i]->key);
			send_numeric(buf, b[i]->value.num);
		}
		pfree(b);
	}
}

/* Read a state written by state_write, validating everything. */
static AggregateState *
state_read(StringInfo buf, MemoryContext home)
{
	const int	code = ERRCODE_INVALID_BINARY_REPRESENTATION;
	AggregateState *st = state_new_empty(home);
	MemoryContext ctx = st->hdr.eoh_context;
	int			version,
				type,
				bucket,
				flags,
				fieldlen;

	version = pq_getmsgbyte(buf);
	if (version != STATE_VERSION)
		state_invalid(code, psprintf("Version %d is not supported; this is version %d.",
								 version, STATE_VERSION));
	type = pq_getmsgbyte(buf);
	bucket = pq_getmsgbyte(buf) - 1;
	flags = pq_getmsgbyte(buf);
	if (type >= AGG_TYPE_COUNT || bucket >= WINDOW_SIZE_COUNT || (flags & ~(FLAG_PERIOD | FLAG_BEST)))
		state_invalid(code, "Unknown aggregation type, bucket size or flags.");
	st->type = (AggType) type;
	st->bucket_size = (WindowSize) bucket;
	fieldlen = pq_getmsgint(buf, 4);
	if (fieldlen < -1 || fieldlen > buf->len - buf->cursor)
		state_invalid(code, "Bad field length.");
	if (fieldlen >= 0)
	{
		const char *f = pq_getmsgbytes(buf, fieldlen);

		if (memchr(f, '\0', fieldlen) != NULL)
			state_invalid(code, "The field contains a NUL byte.");
		st->field = MemoryContextAlloc(ctx, fieldlen + 1);
		memcpy(st->field, f, fieldlen);
		st->field[fieldlen] = '\0';
		pg_verifymbstr(st->field, fieldlen, false);
		st->fieldlen = fieldlen;
	}
	if (st->type == AGG_SUM_WITH_MULTIPLIER)
	{
		Numeric		m = state_canonical_multiplier(recv_numeric(buf));

		st->multiplier = MemoryContextAlloc(ctx, VARSIZE(m));
		memcpy(st->multiplier, m, VARSIZE(m));
	}
	state_check_aggregation(st, code);
	st->rows = pq_getmsgint64(buf);
	st->values = pq_getmsgint64(buf);
	if (flags & FLAG_PERIOD)
	{
		st->has_period = true;
		st->period_start = pq_getmsgint64(buf);
		st->period_end = pq_getmsgint64(buf);
	}
	if (STATE_HAS_SUM(st->type))
		state_numbuf_set(st, &st->sum, recv_numeric(buf));
	if (st->type == AGG_WEIGHTED_SUM)
		state_numbuf_set(st, &st->sum_vt, recv_numeric(buf));
	if (flags & FLAG_BEST)
	{
		if (!STATE_HAS_BEST(st))
			state_invalid(code, "Only MAX, MIN and LATEST hold a value.");
		state_numbuf_set(st, &st->best, recv_numeric(buf));
		if (st->type == AGG_LATEST)
			st->best_ts = pq_getmsgint64(buf);
	}
	if (st->type == AGG_COUNT_UNIQUE)
	{
		int			n = pq_getmsgint(buf, 4);

		if (n < 0 || n > buf->len - buf->cursor)
			state_invalid(code, "Bad number of unique values.");
		for (int i = 0; i < n; i++)
		{
			int			len = pq_getmsgint(buf, 4);
			char	   *s;

			CHECK_FOR_INTERRUPTS();
			if (len < 0 || len > buf->len - buf->cursor)
				state_invalid(code, "Bad length of a unique value.");
			s = pnstrdup(pq_getmsgbytes(buf, len), len);
			if ((int) strlen(s) != len)
				state_invalid(code, "A unique value contains a NUL byte.");
			pg_verifymbstr(s, len, false);
			if (st->uniques && stateunique_lookup(st->uniques, s) != NULL)
				state_invalid(code, "A unique value is listed twice.");
			state_unique_add(st, s);
			pfree(s);
		}
	}
	if (STATE_BUCKETED(st))
	{
		int			n = pq_getmsgint(buf, 4);

		if (n < 0 || n > buf->len - buf->cursor)
			state_invalid(code, "Bad number of buckets.");
		for (int i = 0; i < n; i++)
		{
			TimestampTz key = pq_getmsgint64(buf);
			BucketEntry *e;

			CHECK_FOR_INTERRUPTS();
			state_check_bucket_key(key, st->bucket_size, code);
			if (st->buckets && bucketset_lookup(st->buckets, key) != NULL)
				state_invalid(code, "A bucket is listed twice.");
			e = state_bucket(st, key);
			state_numbuf_set(st, &e->value, recv_numeric(buf));
		}
	}
	if (buf->cursor != buf->len)
		state_invalid(code, "Extra bytes after the state.");
	state_check_tallies(st, code);
	return st;
}

static Size
state_get_flat_size(ExpandedObjectHeader *eohptr)
{
	AggregateState *st = (AggregateState *) eohptr;

	if (st->flat == NULL)
	{
		StringInfoData buf;

		initStringInfo(&buf);
		state_write(&buf, st);
		st->flat = MemoryContextAlloc(st->hdr.eoh_context, buf.len);
		memcpy(st->flat, buf.data, buf.len);
		st->flatlen = buf.len;
		pfree(buf.data);
	}
	return VARHDRSZ + st->flatlen;
}

static void
state_flatten_into(ExpandedObjectHeader *eohptr, void *result, Size allocated_size)
{
	AggregateState *st = (AggregateState *) eohptr;

	state_get_flat_size(eohptr);
	if (allocated_size != VARHDRSZ + st->flatlen)
		elog(ERROR, "meter aggregate state: flat size changed");
	SET_VARSIZE(result, allocated_size);
	memcpy(VARDATA(result), st->flat, st->flatlen);
}

struct varlena *
state_flatten(AggregateState *st)
{
	Size		size = EOH_get_flat_size(&st->hdr);
	struct varlena *result = palloc(size);

	EOH_flatten_into(&st->hdr, result, size);
	return result;
}

AggregateState *
state_from_datum(Datum d, MemoryContext home)
{
	struct varlena *p = (struct varlena *) DatumGetPointer(d);
	StringInfoData buf;

	if (VARATT_IS_EXTERNAL_EXPANDED(p))
	{
		ExpandedObjectHeader *eoh = DatumGetEOHP(d);

		if (eoh->eoh_methods != &state_methods)
			elog(ERROR, "expanded object is not a meter aggregate state");
		return (AggregateState *) eoh;
	}
	p = pg_detoast_datum(p);
	buf.data = VARDATA(p);
	buf.len = VARSIZE(p) - VARHDRSZ;
	buf.maxlen = buf.len;
	buf.cursor = 0;
	return state_read(&buf, home);
}

AggregateState *
state_copy(AggregateState *src, MemoryContext home)
{
	struct varlena *flat = state_flatten(src);
	AggregateState *st = state_from_datum(PointerGetDatum(flat), home);

	pfree(flat);
	return st;
}

/* ── SQL-callable I/O ────────────────────────────────────────────────────────────── */

/*
 * meter.aggregate_state binary input: the flat layout (version byte first), validated
 * like text input (errors are 22P03).
 */
PG_FUNCTION_INFO_V1(meter_aggregate_state_recv);
Datum
meter_aggregate_state_recv(PG_FUNCTION_ARGS)
{
	StringInfo	buf = (StringInfo) PG_GETARG_POINTER(0);
	AggregateState *st = state_read(buf, CurrentMemoryContext);

	PG_RETURN_POINTER(state_flatten(st));
}

/*
 * meter.aggregate_state binary output: the flat layout, in network byte order.
 */
PG_FUNCTION_INFO_V1(meter_aggregate_state_send);
Datum
meter_aggregate_state_send(PG_FUNCTION_ARGS)
{
	AggregateState *st = state_from_datum(PG_GETARG_DATUM(0), CurrentMemoryContext);
	StringInfoData buf;

	pq_begintypsend(&buf);
	state_write(&buf, st);
	PG_RETURN_BYTEA_P(pq_endtypsend(&buf));
}
