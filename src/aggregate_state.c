/*
 * aggregate_state.c — meter.aggregate_state: the transition state of meter.aggregate.
 *
 * In memory the state is an expanded object (utils/expandeddatum.h) that lives in a
 * context under the aggregate's context (see state_home): the transition function
 * updates it in place and nodeAgg keeps it without copying. It is flattened only when
 * it leaves the aggregate (a parallel worker's partial result, a stored value).
 *
 * Forms, each versioned and exact (numbers are numeric, timestamps microseconds):
 * - flat/binary: a version byte, then fields in network byte order; the flat varlena
 *   holds exactly the bytes that send/receive exchange;
 * - text: JSON, e.g. {"version":1,"aggregation":{"type":"SUM","field":"tokens"},
 *   "rows":3,"values":2,"sum":12.5}; Citus ships partial states in this form.
 * Every input path validates: a bad state is an error, never a crash.
 */
#include "postgres.h"

#include "common/hashfn.h"
#include "libpq/pqformat.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/fmgrprotos.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"

#include "aggregate.h"
#include "aggregate_state.h"
#include "json_input.h"
#include "number.h"

#define STATE_VERSION 1
#define STATE_EXAMPLE "{\"version\":1,\"aggregation\":{\"type\":\"SUM\",\"field\":\"tokens\"},\"rows\":3,\"values\":2,\"sum\":12.5}"

#define SH_PREFIX uniqueset
#define SH_ELEMENT_TYPE UniqueEntry
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
static AggregateState *
state_new(MemoryContext home)
{
	AggregateState *st;

	st = MemoryContextAllocZero(home, sizeof(AggregateState));
	EOH_init_header(&st->hdr, &state_methods, home);
	st->bucket_size = WINDOW_NONE;
	return st;
}

void
numbuf_set(AggregateState *st, NumBuf *b, Numeric src)
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
	numbuf_set(st, b, int64_to_numeric(0));
}

AggregateState *
state_create(MemoryContext home, const Aggregation *agg)
{
	AggregateState *st = state_new(home);
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
	UniqueEntry *e;

	if (st->uniques == NULL)
		st->uniques = uniqueset_create(st->hdr.eoh_context, 16, NULL);
	e = uniqueset_insert(st->uniques, (char *) text, &found);
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
	uniqueset_iterator it;
	UniqueEntry *e;
	int			i = 0;

	*n = st->uniques ? (int) st->uniques->members : 0;
	out = palloc(sizeof(char *) * (*n + 1));
	if (st->uniques == NULL)
		return out;
	uniqueset_start_iterate(st->uniques, &it);
	while ((e = uniqueset_iterate(st->uniques, &it)) != NULL)
		out[i++] = e->key;
	qsort(out, i, sizeof(char *), cmp_string_ptr);
	return out;
}

/* ── Consistency: what a state of each aggregation may hold ────────────────────────── */

/* Report a bad state read from outside (text or binary input). */
static void pg_attribute_noreturn()
bad_state(int code, const char *detail)
{
	ereport(ERROR,
			(errcode(code),
			 errmsg("invalid aggregate state"),
			 errdetail("%s", detail),
			 errhint("Pass a value produced by meter.aggregate_state's own output, e.g. %s.",
					 STATE_EXAMPLE)));
}

/* The aggregation part must follow meter.aggregation's rules (SPEC §2). */
static void
check_aggregation(const AggregateState *st, int code)
{
	if (st->type != AGG_COUNT && st->field == NULL)
		bad_state(code, "Every aggregation type but COUNT needs a field.");
	if (st->field != NULL && st->fieldlen == 0)
		bad_state(code, "The field must not be empty.");
	if ((st->type == AGG_SUM_WITH_MULTIPLIER) != (st->multiplier != NULL))
		bad_state(code, "A multiplier goes with SUM_WITH_MULTIPLIER, and only with it.");
	if (st->multiplier != NULL &&
		DatumGetInt32(DirectFunctionCall2(numeric_cmp, NumericGetDatum(st->multiplier),
										  NumericGetDatum(int64_to_numeric(0)))) <= 0)
		bad_state(code, "The multiplier must be greater than 0.");
	if (st->bucket_size != WINDOW_NONE && st->type != AGG_MAX && st->type != AGG_SUM)
		bad_state(code, "A bucket_size goes with MAX or SUM only.");
}

/* The tallies must fit the aggregation. */
static void
check_tallies(const AggregateState *st, int code)
{
	if (st->rows < 0 || st->values < 0 || st->values > st->rows)
		bad_state(code, "The counts must satisfy 0 <= values <= rows.");
	if ((st->type == AGG_WEIGHTED_SUM) != st->has_period)
		bad_state(code, "A period goes with WEIGHTED_SUM, and only with it.");
	if (st->has_period &&
		(TIMESTAMP_NOT_FINITE(st->period_start) || TIMESTAMP_NOT_FINITE(st->period_end) ||
		 st->period_end <= st->period_start))
		bad_state(code, "The period must be finite with its end after its start.");
	if (st->has_period && (!IS_VALID_TIMESTAMP(st->period_start) || !IS_VALID_TIMESTAMP(st->period_end)))
		bad_state(code, "The period is out of the range of timestamptz.");
	if (st->type == AGG_LATEST && st->best.num != NULL &&
		!TIMESTAMP_NOT_FINITE(st->best_ts) && !IS_VALID_TIMESTAMP(st->best_ts))
		bad_state(code, "The timestamp is out of the range of timestamptz.");
	if (STATE_HAS_BEST(st) && (st->best.num != NULL) != (st->values > 0))
		bad_state(code, "A value is present exactly when values > 0.");
	if (STATE_BUCKETED(st) && st->buckets != NULL && st->buckets->members > 0 && st->values == 0)
		bad_state(code, "Buckets are present only when values > 0.");
	if (STATE_BUCKETED(st) && st->values > 0 && (st->buckets == NULL || st->buckets->members == 0))
		bad_state(code, "A state with values > 0 has at least one bucket.");
	if (st->type == AGG_COUNT_UNIQUE && st->uniques != NULL &&
		(int64) st->uniques->members > st->values)
		bad_state(code, "There cannot be more unique values than values.");
}

/* A numeric read from outside: finite numbers only. */
static Numeric
check_number(Numeric n, int code)
{
	if (numeric_is_nan(n) || numeric_is_inf(n))
		bad_state(code, "Numbers in a state are finite.");
	return n;
}

static void
check_bucket_key(TimestampTz key, WindowSize size, int code)
{
	if (!TIMESTAMP_NOT_FINITE(key) &&
		(!IS_VALID_TIMESTAMP(key) || aggregate_bucket_start(key, size) != key))
		bad_state(code, "A bucket key must be the start of a bucket of the aggregation's bucket_size.");
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

	return check_number(n, ERRCODE_INVALID_BINARY_REPRESENTATION);
}

/* A multiplier as meter.aggregation stores it: canonical, 1.50 is 1.5. */
static Numeric
canonical_multiplier(Numeric m)
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
	AggregateState *st = state_new(home);
	MemoryContext ctx = st->hdr.eoh_context;
	int			version,
				type,
				bucket,
				flags,
				fieldlen;

	version = pq_getmsgbyte(buf);
	if (version != STATE_VERSION)
		bad_state(code, psprintf("Version %d is not supported; this is version %d.",
								 version, STATE_VERSION));
	type = pq_getmsgbyte(buf);
	bucket = pq_getmsgbyte(buf) - 1;
	flags = pq_getmsgbyte(buf);
	if (type >= AGG_TYPE_COUNT || bucket >= WINDOW_SIZE_COUNT || (flags & ~(FLAG_PERIOD | FLAG_BEST)))
		bad_state(code, "Unknown aggregation type, bucket size or flags.");
	st->type = (AggType) type;
	st->bucket_size = (WindowSize) bucket;
	fieldlen = pq_getmsgint(buf, 4);
	if (fieldlen < -1 || fieldlen > buf->len - buf->cursor)
		bad_state(code, "Bad field length.");
	if (fieldlen >= 0)
	{
		const char *f = pq_getmsgbytes(buf, fieldlen);

		if (memchr(f, '\0', fieldlen) != NULL)
			bad_state(code, "The field contains a NUL byte.");
		st->field = MemoryContextAlloc(ctx, fieldlen + 1);
		memcpy(st->field, f, fieldlen);
		st->field[fieldlen] = '\0';
		pg_verifymbstr(st->field, fieldlen, false);
		st->fieldlen = fieldlen;
	}
	if (st->type == AGG_SUM_WITH_MULTIPLIER)
	{
		Numeric		m = canonical_multiplier(recv_numeric(buf));

		st->multiplier = MemoryContextAlloc(ctx, VARSIZE(m));
		memcpy(st->multiplier, m, VARSIZE(m));
	}
	check_aggregation(st, code);
	st->rows = pq_getmsgint64(buf);
	st->values = pq_getmsgint64(buf);
	if (flags & FLAG_PERIOD)
	{
		st->has_period = true;
		st->period_start = pq_getmsgint64(buf);
		st->period_end = pq_getmsgint64(buf);
	}
	if (STATE_HAS_SUM(st->type))
		numbuf_set(st, &st->sum, recv_numeric(buf));
	if (st->type == AGG_WEIGHTED_SUM)
		numbuf_set(st, &st->sum_vt, recv_numeric(buf));
	if (flags & FLAG_BEST)
	{
		if (!STATE_HAS_BEST(st))
			bad_state(code, "Only MAX, MIN and LATEST hold a value.");
		numbuf_set(st, &st->best, recv_numeric(buf));
		if (st->type == AGG_LATEST)
			st->best_ts = pq_getmsgint64(buf);
	}
	if (st->type == AGG_COUNT_UNIQUE)
	{
		int			n = pq_getmsgint(buf, 4);

		if (n < 0 || n > buf->len - buf->cursor)
			bad_state(code, "Bad number of unique values.");
		for (int i = 0; i < n; i++)
		{
			int			len = pq_getmsgint(buf, 4);
			char	   *s;

			CHECK_FOR_INTERRUPTS();
			if (len < 0 || len > buf->len - buf->cursor)
				bad_state(code, "Bad length of a unique value.");
			s = pnstrdup(pq_getmsgbytes(buf, len), len);
			if ((int) strlen(s) != len)
				bad_state(code, "A unique value contains a NUL byte.");
			pg_verifymbstr(s, len, false);
			if (st->uniques && uniqueset_lookup(st->uniques, s) != NULL)
				bad_state(code, "A unique value is listed twice.");
			state_unique_add(st, s);
			pfree(s);
		}
	}
	if (STATE_BUCKETED(st))
	{
		int			n = pq_getmsgint(buf, 4);

		if (n < 0 || n > buf->len - buf->cursor)
			bad_state(code, "Bad number of buckets.");
		for (int i = 0; i < n; i++)
		{
			TimestampTz key = pq_getmsgint64(buf);
			BucketEntry *e;

			CHECK_FOR_INTERRUPTS();
			check_bucket_key(key, st->bucket_size, code);
			if (st->buckets && bucketset_lookup(st->buckets, key) != NULL)
				bad_state(code, "A bucket is listed twice.");
			e = state_bucket(st, key);
			numbuf_set(st, &e->value, recv_numeric(buf));
		}
	}
	if (buf->cursor != buf->len)
		bad_state(code, "Extra bytes after the state.");
	check_tallies(st, code);
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

/* ── Text form ───────────────────────────────────────────────────────────────────── */

static void
append_numeric(StringInfo buf, Numeric n)
{
	appendStringInfoString(buf, DatumGetCString(DirectFunctionCall1(numeric_out,
																	NumericGetDatum(n))));
}

/* ISO 8601 in UTC, e.g. 2024-01-16 00:00:00+00; "infinity" / "-infinity". */
static void
format_timestamp(TimestampTz ts, char *out)
{
	struct pg_tm tm;
	fsec_t		fsec;

	if (TIMESTAMP_NOT_FINITE(ts))
		EncodeSpecialTimestamp(ts, out);
	else if (timestamp2tm(ts, NULL, &tm, &fsec, NULL, NULL) == 0)
	{
		tm.tm_isdst = 0;		/* UTC: print the +00 */
		EncodeDateTime(&tm, fsec, true, 0, NULL, USE_ISO_DATES, out);
	}
	else
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("timestamp out of range")));
}

static void
append_timestamp(StringInfo buf, TimestampTz ts)
{
	char		s[MAXDATELEN + 1];

	format_timestamp(ts, s);
	escape_json(buf, s);
}

void
aggregation_append_json(StringInfo buf, AggType type, const char *field,
						Numeric multiplier, WindowSize bucket_size)
{
	Aggregation agg;

	agg.type = type;
	agg.field = (char *) field;
	agg.multiplier = multiplier;
	agg.bucket_size = bucket_size;
	appendStringInfoString(buf, aggregation_to_cstring(&agg));
}

static char *
state_to_text(AggregateState *st)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfo(&buf, "{\"version\":%d,\"aggregation\":", STATE_VERSION);
	aggregation_append_json(&buf, st->type, st->field, st->multiplier, st->bucket_size);
	if (st->has_period)
	{
		appendStringInfoString(&buf, ",\"period\":[");
		append_timestamp(&buf, st->period_start);
		appendStringInfoChar(&buf, ',');
		append_timestamp(&buf, st->period_end);
		appendStringInfoChar(&buf, ']');
	}
	appendStringInfo(&buf, ",\"rows\":" INT64_FORMAT ",\"values\":" INT64_FORMAT,
					 st->rows, st->values);
	if (STATE_HAS_SUM(st->type))
	{
		appendStringInfoString(&buf, ",\"sum\":");
		append_numeric(&buf, st->sum.num);
	}
	if (st->type == AGG_WEIGHTED_SUM)
	{
		appendStringInfoString(&buf, ",\"sum_vt\":");
		append_numeric(&buf, st->sum_vt.num);
	}
	if (st->best.num != NULL)
	{
		appendStringInfoString(&buf, ",\"value\":");
		append_numeric(&buf, st->best.num);
		if (st->type == AGG_LATEST)
		{
			appendStringInfoString(&buf, ",\"timestamp\":");
			append_timestamp(&buf, st->best_ts);
		}
	}
	if (st->type == AGG_COUNT_UNIQUE)
	{
		int			n;
		char	  **keys = state_uniques_sorted(st, &n);

		appendStringInfoString(&buf, ",\"unique\":[");
		for (int i = 0; i < n; i++)
		{
			if (i > 0)
				appendStringInfoChar(&buf, ',');
			escape_json(&buf, keys[i]);
		}
		appendStringInfoChar(&buf, ']');
	}
	if (STATE_BUCKETED(st))
	{
		int			n;
		BucketEntry **b = state_buckets_sorted(st, &n);

		appendStringInfoString(&buf, ",\"buckets\":[");
		for (int i = 0; i < n; i++)
		{
			if (i > 0)
				appendStringInfoChar(&buf, ',');
			appendStringInfoChar(&buf, '[');
			append_timestamp(&buf, b[i]->key);
			appendStringInfoChar(&buf, ',');
			append_numeric(&buf, b[i]->value.num);
			appendStringInfoChar(&buf, ']');
		}
		appendStringInfoChar(&buf, ']');
	}
	appendStringInfoChar(&buf, '}');
	return buf.data;
}

/* Text input: what each key of the JSON must be. */
#define TEXT_CODE ERRCODE_INVALID_PARAMETER_VALUE

static const char *
json_type_name(const JsonbValue *v)
{
	switch (v->type)
	{
		case jbvNull:
			return "null";
		case jbvString:
			return "a string";
		case jbvNumeric:
			return "a number";
		case jbvBool:
			return "a boolean";
		case jbvBinary:
			return JsonContainerIsArray(v->val.binary.data) ? "an array" : "an object";
		default:
			return "a JSON value";
	}
}

static void
expect_type(const JsonbValue *v, enum jbvType type, bool is_array, const char *what)
{
	const char *want;

	if (type == jbvBinary)
	{
		if (v->type == jbvBinary &&
			(is_array ? JsonContainerIsArray(v->val.binary.data) :
			 JsonContainerIsObject(v->val.binary.data)))
			return;
		want = is_array ? "an array" : "an object";
	}
	else
	{
		if (v->type == type)
			return;
		want = type == jbvString ? "a string" : "a number";
	}
	bad_state(TEXT_CODE, psprintf("%s must be %s, not %s.", what, want, json_type_name(v)));
}

static char *
json_string(const JsonbValue *v, const char *what)
{
	expect_type(v, jbvString, false, what);
	return pnstrdup(v->val.string.val, v->val.string.len);
}

/* A count: a non-negative integer that fits bigint (as in the binary form). */
static int64
json_count(const JsonbValue *v, const char *what)
{
	char	   *s;

	expect_type(v, jbvNumeric, false, what);
	s = DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(v->val.numeric)));
	if (strspn(s, "0123456789") != strlen(s) || strlen(s) > 19 ||
		(strlen(s) == 19 && strcmp(s, "9223372036854775807") > 0))
		bad_state(TEXT_CODE, psprintf("%s must be an integer from 0 to 9223372036854775807, not %s.",
									  what, s));
	return strtoi64(s, NULL, 10);
}

static Numeric
json_number(const JsonbValue *v, const char *what)
{
	expect_type(v, jbvNumeric, false, what);
	return v->val.numeric;
}

/* A timestamp in the exact form the output writes. */
static TimestampTz
json_timestamp(const JsonbValue *v, const char *what)
{
	char	   *s = json_string(v, what);
	char		again[MAXDATELEN + 1];
	MemoryContext cxt = CurrentMemoryContext;
	TimestampTz ts = 0;

	/* Refuse the special words timestamptz_in knows (now, today, epoch …) up front. */
	if (!isdigit((unsigned char) s[0]) && strcmp(s, "infinity") != 0 && strcmp(s, "-infinity") != 0)
		bad_state(TEXT_CODE, psprintf("%s must be a timestamp like \"2024-01-16 00:00:00+00\", not \"%s\".",
									  what, s));
	/* timestamptz_in's own errors (22007, 22008) become this type's 22023. */
	PG_TRY();
	{
		ts = DatumGetTimestampTz(DirectFunctionCall3(timestamptz_in, CStringGetDatum(s),
													 ObjectIdGetDatum(InvalidOid),
													 Int32GetDatum(-1)));
	}
	PG_CATCH();
	{
		ErrorData  *e;

		MemoryContextSwitchTo(cxt);
		e = CopyErrorData();
		FlushErrorState();
		bad_state(TEXT_CODE, psprintf("%s \"%s\" is not a timestamp: %s.", what, s, e->message));
	}
	PG_END_TRY();
	format_timestamp(ts, again);
	if (strcmp(s, again) != 0)
		bad_state(TEXT_CODE, psprintf("%s must be written in UTC as \"%s\", not \"%s\".",
									  what, again, s));
	return ts;
}

static bool
get_key(JsonbContainer *c, const char *key, JsonbValue *out)
{
	return getKeyJsonValueFromContainer(c, key, strlen(key), out) != NULL;
}

/* Every key of an object must be one of the allowed (NULL-terminated list). */
static void
check_keys(JsonbContainer *c, const char *const *allowed, const char *where)
{
	JsonbIterator *it = JsonbIteratorInit(c);
	JsonbValue	v;
	JsonbIteratorToken tok;

	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		bool		ok = false;

		if (tok != WJB_KEY)
			continue;
		for (const char *const *a = allowed; *a; a++)
			if ((int) strlen(*a) == v.val.string.len &&
				memcmp(*a, v.val.string.val, v.val.string.len) == 0)
				ok = true;
		if (!ok)
			bad_state(TEXT_CODE, psprintf("Unknown key \"%s\" in %s.",
										  pnstrdup(v.val.string.val, v.val.string.len), where));
	}
}

/* Read the "aggregation" object into st. */
static void
read_aggregation(AggregateState *st, JsonbContainer *c)
{
	static const char *const keys[] = {"type", "field", "multiplier", "bucket_size", NULL};
	MemoryContext ctx = st->hdr.eoh_context;
	JsonbValue	v;
	char	   *s;
	int			i;

	check_keys(c, keys, "the aggregation");
	if (!get_key(c, "type", &v))
		bad_state(TEXT_CODE, "The aggregation has no type.");
	s = json_string(&v, "The aggregation type");
	if ((i = agg_type_from_name(s)) < 0)
		bad_state(TEXT_CODE, psprintf("Unknown aggregation type \"%s\".", s));
	st->type = (AggType) i;
	if (get_key(c, "field", &v))
	{
		s = json_string(&v, "The field");
		st->field = MemoryContextStrdup(ctx, s);
		st->fieldlen = strlen(s);
	}
	if (get_key(c, "multiplier", &v))
	{
		Numeric		m = check_number(json_number(&v, "The multiplier"), TEXT_CODE);

		m = canonical_multiplier(m);

		st->multiplier = MemoryContextAlloc(ctx, VARSIZE(m));
		memcpy(st->multiplier, m, VARSIZE(m));
	}
	if (get_key(c, "bucket_size", &v))
	{
		s = json_string(&v, "The bucket_size");
		if ((i = window_size_from_name(s)) < 0)
			bad_state(TEXT_CODE, psprintf("Unknown bucket_size \"%s\".", s));
		st->bucket_size = (WindowSize) i;
	}
	check_aggregation(st, TEXT_CODE);
}

/* Read an array value: the container, after checking it is an array. */
static JsonbContainer *
json_array(const JsonbValue *v, const char *what)
{
	expect_type(v, jbvBinary, true, what);
	return v->val.binary.data;
}

/* A number literal numeric cannot hold: a state never has one. */
static void
state_bad_number(const char *top_key, const char *literal)
{
	bad_state(TEXT_CODE, psprintf("The number %s%s%s%s is beyond what numeric holds.", literal,
								  top_key ? " in \"" : "", top_key ? top_key : "", top_key ? "\"" : ""));
}

static AggregateState *
state_from_text(char *str, MemoryContext home)
{
	static const char *const keys[] = {"version", "aggregation", "period", "rows", "values",
	"sum", "sum_vt", "value", "timestamp", "unique", "buckets", NULL};
	Jsonb	   *j = json_input_parse(str, "meter.aggregate_state", STATE_EXAMPLE, state_bad_number);
	JsonbContainer *c = &j->root;
	AggregateState *st = state_new(home);
	JsonbValue	v;
	int64		version;

	if (!JB_ROOT_IS_OBJECT(j))
		bad_state(TEXT_CODE, "A state is a JSON object.");
	check_keys(c, keys, "the state");
	if (!get_key(c, "version", &v))
		bad_state(TEXT_CODE, "The state has no version.");
	version = json_count(&v, "The version");
	if (version != STATE_VERSION)
		bad_state(TEXT_CODE, psprintf("Version " INT64_FORMAT " is not supported; this is version %d.",
									  version, STATE_VERSION));
	if (!get_key(c, "aggregation", &v))
		bad_state(TEXT_CODE, "The state has no aggregation.");
	expect_type(&v, jbvBinary, false, "The aggregation");
	read_aggregation(st, v.val.binary.data);

	/* Only the keys this aggregation's state holds. */
#define REQUIRE(key, cond) \
	do { \
		bool has_ = get_key(c, key, &v); \
		if (has_ && !(cond)) \
			bad_state(TEXT_CODE, psprintf("A %s state has no \"%s\".", agg_type_names[st->type], key)); \
		if (!has_ && (cond)) \
			bad_state(TEXT_CODE, psprintf("A %s state needs \"%s\".", agg_type_names[st->type], key)); \
	} while (0)

	REQUIRE("rows", true);
	st->rows = json_count(&v, "The \"rows\" count");
	REQUIRE("values", true);
	st->values = json_count(&v, "The \"values\" count");
	REQUIRE("period", st->type == AGG_WEIGHTED_SUM);
	if (st->type == AGG_WEIGHTED_SUM)
	{
		JsonbContainer *a = json_array(&v, "The period");

		if (JsonContainerSize(a) != 2)
			bad_state(TEXT_CODE, "The period is [start, end].");
		st->has_period = true;
		st->period_start = json_timestamp(getIthJsonbValueFromContainer(a, 0), "The period start");
		st->period_end = json_timestamp(getIthJsonbValueFromContainer(a, 1), "The period end");
	}
	REQUIRE("sum", STATE_HAS_SUM(st->type));
	if (STATE_HAS_SUM(st->type))
		numbuf_set(st, &st->sum, check_number(json_number(&v, "The sum"), TEXT_CODE));
	REQUIRE("sum_vt", st->type == AGG_WEIGHTED_SUM);
	if (st->type == AGG_WEIGHTED_SUM)
		numbuf_set(st, &st->sum_vt, check_number(json_number(&v, "The \"sum_vt\""), TEXT_CODE));
	REQUIRE("value", STATE_HAS_BEST(st) && st->values > 0);
	if (STATE_HAS_BEST(st) && st->values > 0)
		numbuf_set(st, &st->best, check_number(json_number(&v, "The value"), TEXT_CODE));
	REQUIRE("timestamp", st->type == AGG_LATEST && st->values > 0);
	if (st->type == AGG_LATEST && st->values > 0)
		st->best_ts = json_timestamp(&v, "The timestamp");
	REQUIRE("unique", st->type == AGG_COUNT_UNIQUE);
	if (st->type == AGG_COUNT_UNIQUE)
	{
		JsonbContainer *a = json_array(&v, "The \"unique\" list");
		uint32		n = JsonContainerSize(a);

		for (uint32 i = 0; i < n; i++)
		{
			char	   *s = json_string(getIthJsonbValueFromContainer(a, i), "A unique value");

			CHECK_FOR_INTERRUPTS();
			if (st->uniques && uniqueset_lookup(st->uniques, s) != NULL)
				bad_state(TEXT_CODE, psprintf("The unique value \"%s\" is listed twice.", s));
			state_unique_add(st, s);
		}
	}
	REQUIRE("buckets", STATE_BUCKETED(st));
	if (STATE_BUCKETED(st))
	{
		JsonbContainer *a = json_array(&v, "The \"buckets\" list");
		uint32		n = JsonContainerSize(a);

		for (uint32 i = 0; i < n; i++)
		{
			JsonbContainer *pair = json_array(getIthJsonbValueFromContainer(a, i), "A bucket");
			TimestampTz key;
			BucketEntry *e;

			CHECK_FOR_INTERRUPTS();
			if (JsonContainerSize(pair) != 2)
				bad_state(TEXT_CODE, "A bucket is [start, value].");
			key = json_timestamp(getIthJsonbValueFromContainer(pair, 0), "A bucket start");
			check_bucket_key(key, st->bucket_size, TEXT_CODE);
			if (st->buckets && bucketset_lookup(st->buckets, key) != NULL)
				bad_state(TEXT_CODE, "A bucket is listed twice.");
			e = state_bucket(st, key);
			numbuf_set(st, &e->value,
					   check_number(json_number(getIthJsonbValueFromContainer(pair, 1), "A bucket value"),
									TEXT_CODE));
		}
	}
#undef REQUIRE
	check_tallies(st, TEXT_CODE);
	return st;
}

/* ── SQL-callable I/O ────────────────────────────────────────────────────────────── */

/*
 * meter.aggregate_state text input: the versioned JSON the output function writes.
 * Text that is not JSON is 22P02; JSON that is not a valid state is 22023.
 */
PG_FUNCTION_INFO_V1(meter_aggregate_state_in);
Datum
meter_aggregate_state_in(PG_FUNCTION_ARGS)
{
	AggregateState *st = state_from_text(PG_GETARG_CSTRING(0), CurrentMemoryContext);
	PG_RETURN_POINTER(state_flatten(st));
}

/*
 * meter.aggregate_state text output: versioned JSON, the same text for equal states
 * (unique values and buckets sorted, timestamps in UTC), whatever the session settings.
 */
PG_FUNCTION_INFO_V1(meter_aggregate_state_out);
Datum
meter_aggregate_state_out(PG_FUNCTION_ARGS)
{
	AggregateState *st = state_from_datum(PG_GETARG_DATUM(0), CurrentMemoryContext);

	PG_RETURN_CSTRING(state_to_text(st));
}

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
