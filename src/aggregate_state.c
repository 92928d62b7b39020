/*
 * aggregate_state.c — meter.aggregate_state: the transition state of meter.aggregate.
 *
 * In memory the state is an expanded object (utils/expandeddatum.h) that lives in a
 * context under the aggregate's context (see state_home): the transition function
 * updates it in place and nodeAgg keeps it without copying. It is flattened only when
 * it leaves the aggregate (a parallel worker's partial result, a stored value). The
 * maths is the engine's (partial.h); this file only holds, checks and writes states.
 *
 * This file: the expanded object, reading a state from outside (what a state of each
 * aggregation may hold), and the flat/binary form — a version byte, then fields in
 * network byte order; the flat varlena holds exactly the bytes that send/receive
 * exchange. The text form is in aggregate_state_text.c. Every input path validates: a
 * bad state is an error, never a crash.
 */
#include "postgres.h"

#include "libpq/pqformat.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/memutils.h"

#include "aggregate_state.h"
#include "buckets.h"
#include "json_input.h"

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

AggregateState *
state_new_empty(MemoryContext home)
{
	AggregateState *st;

	st = MemoryContextAllocZero(home, sizeof(AggregateState));
	EOH_init_header(&st->hdr, &state_methods, home);
	partial_init_additive(&st->partial, home);
	return st;
}

void
state_set_aggregation(AggregateState *st, const struct varlena *agg_bytes)
{
	MemoryContext old = MemoryContextSwitchTo(st->hdr.eoh_context);
	struct varlena *copy = palloc(VARSIZE_ANY(agg_bytes));

	memcpy(copy, agg_bytes, VARSIZE_ANY(agg_bytes));
	st->agg_bytes = copy;
	st->agg = aggregation_unpack(copy);
	MemoryContextSwitchTo(old);
}

AggregateState *
state_create(MemoryContext home, const struct varlena *agg_bytes)
{
	AggregateState *st = state_new_empty(home);

	state_set_aggregation(st, agg_bytes);
	return st;
}

bool
state_same_aggregation(const AggregateState *st, const struct varlena *agg_bytes)
{
	/* meter.aggregation's stored form is canonical: its = compares bytes (the same
	 * bytes with the same header, the usual case, are checked first: once per row) */
	return (VARSIZE_ANY(st->agg_bytes) == VARSIZE_ANY(agg_bytes) &&
			memcmp(st->agg_bytes, agg_bytes, VARSIZE_ANY(agg_bytes)) == 0) ||
		canonical_equal(PointerGetDatum(st->agg_bytes), PointerGetDatum(agg_bytes));
}

/* ── Reading a state from outside: what a state of each aggregation may hold ───────── */

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

Numeric
state_check_number(Numeric n, int code)
{
	if (numeric_is_nan(n) || numeric_is_inf(n))
		state_invalid(code, "Numbers in a state are finite.");
	return n;
}

/* meter.aggregation's text input (aggregation.c): the one place its rules are checked. */
extern Datum meter_aggregation_in(PG_FUNCTION_ARGS);

/*
 * The last aggregations validated, by their JSON text, and their stored forms: a
 * parallel aggregate's leader reads one state per group and worker, all of one
 * aggregation; a text round trip reads it from the binary and the text form in turn.
 */
#define VALIDATED_KEPT 4
typedef struct ValidatedAggregation
{
	char	   *json;			/* NULL: empty */
	struct varlena *bytes;
} ValidatedAggregation;

static MemoryContext validated_context = NULL;
static ValidatedAggregation validated[VALIDATED_KEPT];
static int	validated_next = 0;

/* The stored form of an aggregation's JSON text; its errors become the state's. */
static struct varlena *
validated_aggregation(const char *json, int code)
{
	MemoryContext cxt = CurrentMemoryContext;
	struct varlena *volatile bytes = NULL;
	ValidatedAggregation *v;

	for (int i = 0; i < VALIDATED_KEPT; i++)
		if (validated[i].json != NULL && strcmp(validated[i].json, json) == 0)
			return validated[i].bytes;
	PG_TRY();
	{
		bytes = (struct varlena *) DatumGetPointer(DirectFunctionCall1(meter_aggregation_in,
																	   CStringGetDatum(pstrdup(json))));
	}
	PG_CATCH();
	{
		ErrorData  *e;

		MemoryContextSwitchTo(cxt);
		e = CopyErrorData();
		/* only meter.aggregation's verdicts on the value; anything else goes on */
		if (ERRCODE_TO_CATEGORY(e->sqlerrcode) != ERRCODE_DATA_EXCEPTION)
			PG_RE_THROW();
		FlushErrorState();
		state_invalid(code, psprintf("The aggregation is not valid: %s.%s%s", e->message,
									 e->detail ? " " : "", e->detail ? e->detail : ""));
	}
	PG_END_TRY();

	if (validated_context == NULL)
		validated_context = AllocSetContextCreate(TopMemoryContext,
												  "meter aggregate state: aggregations validated",
												  ALLOCSET_SMALL_SIZES);
	v = &validated[validated_next];
	validated_next = (validated_next + 1) % VALIDATED_KEPT;
	if (v->json != NULL)
	{
		pfree(v->json);
		pfree(v->bytes);
		v->json = NULL;
	}
	v->bytes = MemoryContextAlloc(validated_context, VARSIZE_ANY(bytes));
	memcpy(v->bytes, bytes, VARSIZE_ANY(bytes));
	v->json = MemoryContextStrdup(validated_context, json);
	return v->bytes;
}

void
state_read_aggregation(AggregateState *st, const char *json, int code)
{
	state_set_aggregation(st, validated_aggregation(json, code));
}

void
state_read_counts(AggregateState *st, int64 rows, int64 values, int code)
{
	if (rows < 0 || values < 0 || values > rows)
		state_invalid(code, "The counts must satisfy 0 <= values <= rows.");
	if (st->agg->type == AGG_COUNT && values != 0)
		state_invalid(code, "A COUNT state has values 0: COUNT reads no value.");
	st->partial.events = rows;
	st->partial.n = st->agg->type == AGG_COUNT ? rows : values;
}

void
state_read_period(AggregateState *st, TimestampTz start, TimestampTz end)
{
	st->has_period = true;
	st->period_start = start;
	st->period_end = end;
}

void
state_read_sum(AggregateState *st, Numeric sum, Numeric sum_vt, int code)
{
	if (sum != NULL)
		state_check_number(sum, code);
	if (sum_vt != NULL)
		state_check_number(sum_vt, code);
	partial_add_sums(&st->partial, sum, sum_vt, 1);
}

void
state_read_best(AggregateState *st, Numeric value, TimestampTz ts, int code)
{
	if (!AGG_HAS_BEST(st->agg))
		state_invalid(code, "Only MAX, MIN and LATEST hold a value.");
	partial_best_offer(&st->partial, st->agg, state_check_number(value, code), ts);
}

void
state_read_unique(AggregateState *st, const char *value, int code)
{
	if (st->partial.uniques != NULL && uniqueset_lookup(st->partial.uniques, (char *) value) != NULL)
		state_invalid(code, psprintf("The unique value \"%s\" is listed twice.", value));
	partial_unique_add(&st->partial, value, 1);
}

void
state_read_bucket(AggregateState *st, TimestampTz start, const char *group, Numeric value,
				  int code)
{
	MaxKey		key = {start, group};

	if (!TIMESTAMP_NOT_FINITE(start) &&
		(!IS_VALID_TIMESTAMP(start) || bucket_start_utc(start, st->agg->bucket_size) != start))
		state_invalid(code, "A bucket key must be the start of a bucket of the aggregation's bucket_size.");
	if (group != NULL && st->agg->group_by == NULL)
		state_invalid(code, "Only an aggregation with group_by has groups in its buckets.");
	if (st->partial.maxima != NULL && maxset_lookup(st->partial.maxima, key) != NULL)
		state_invalid(code, "A bucket is listed twice.");
	partial_max_offer(&st->partial, start, group, state_check_number(value, code));
}

void
state_read_done(AggregateState *st, int code)
{
	const Aggregation *agg = st->agg;
	const Partial *p = &st->partial;
	int64		values = state_values(st);
	bool		has_maxima = p->maxima != NULL && p->maxima->members > 0;

	if ((agg->type == AGG_WEIGHTED_SUM) != st->has_period)
		state_invalid(code, "A period goes with WEIGHTED_SUM, and only with it.");
	if (st->has_period &&
		(TIMESTAMP_NOT_FINITE(st->period_start) || TIMESTAMP_NOT_FINITE(st->period_end) ||
		 st->period_end <= st->period_start))
		state_invalid(code, "The period must be finite with its end after its start.");
	if (st->has_period && (!IS_VALID_TIMESTAMP(st->period_start) || !IS_VALID_TIMESTAMP(st->period_end)))
		state_invalid(code, "The period is out of the range of timestamptz.");
	if (agg->type == AGG_LATEST && p->best.num != NULL &&
		!TIMESTAMP_NOT_FINITE(p->best_ts) && !IS_VALID_TIMESTAMP(p->best_ts))
		state_invalid(code, "The timestamp is out of the range of timestamptz.");
	if (AGG_HAS_BEST(agg) && (p->best.num != NULL) != (values > 0))
		state_invalid(code, "A value is present exactly when values > 0.");
	if (AGG_BUCKETED(agg) && has_maxima && values == 0)
		state_invalid(code, "Buckets are present only when values > 0.");
	if (AGG_BUCKETED(agg) && values > 0 && !has_maxima)
		state_invalid(code, "A state with values > 0 has at least one bucket.");
	if (agg->type == AGG_COUNT_UNIQUE && p->uniques != NULL && (int64) p->uniques->members > values)
		state_invalid(code, "There cannot be more unique values than values.");
	if (AGG_HAS_SUM(agg->type) && (p->sum.num == NULL || (agg->type == AGG_WEIGHTED_SUM) != (p->sum_vt.num != NULL)))
		elog(ERROR, "meter aggregate state: a sum was not read");
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

/* A string: int32 length (-1: none), then its bytes. */
static void
send_string(StringInfo buf, const char *s)
{
	int			len = s ? (int) strlen(s) : -1;

	pq_sendint32(buf, len);
	if (s != NULL)
		pq_sendbytes(buf, s, len);
}

/* A string written by send_string, NULL for none; what names it in errors ("field"). */
static char *
recv_string(StringInfo buf, const char *what)
{
	const int	code = ERRCODE_INVALID_BINARY_REPRESENTATION;
	int			len = pq_getmsgint(buf, 4);
	char	   *s;

	if (len < -1 || len > buf->len - buf->cursor)
		state_invalid(code, psprintf("Bad length of the %s.", what));
	if (len < 0)
		return NULL;
	s = pnstrdup(pq_getmsgbytes(buf, len), len);
	if ((int) strlen(s) != len)
		state_invalid(code, psprintf("The %s contains a NUL byte.", what));
	pg_verifymbstr(s, len, false);
	return s;
}

#define FLAG_PERIOD 0x01
#define FLAG_BEST	0x02

/* Version 2: the aggregation has an expression or a group_by. */
static bool
binary_version_2(const Aggregation *agg)
{
	return agg->expression != NULL || agg->group_by != NULL;
}

/* Write the state: version, aggregation, tallies, then the parts its type uses. */
static void
state_write(StringInfo buf, AggregateState *st)
{
	const Aggregation *agg = st->agg;
	const Partial *p = &st->partial;
	bool		v2 = binary_version_2(agg);
	uint8		flags = 0;

	if (st->has_period)
		flags |= FLAG_PERIOD;
	if (p->best.num != NULL)
		flags |= FLAG_BEST;
	pq_sendbyte(buf, v2 ? STATE_BINARY_VERSION_2 : STATE_VERSION);
	pq_sendbyte(buf, (uint8) agg->type);
	pq_sendbyte(buf, (uint8) (agg->bucket_size + 1));	/* 0: none */
	pq_sendbyte(buf, flags);
	send_string(buf, agg->field);
	if (v2)
	{
		send_string(buf, agg->expression);
		send_string(buf, agg->group_by);
	}
	if (agg->type == AGG_SUM_WITH_MULTIPLIER)
		send_numeric(buf, agg->multiplier);
	pq_sendint64(buf, p->events);
	pq_sendint64(buf, state_values(st));
	if (st->has_period)
	{
		pq_sendint64(buf, st->period_start);
		pq_sendint64(buf, st->period_end);
	}
	if (AGG_HAS_SUM(agg->type))
		send_numeric(buf, p->sum.num ? p->sum.num : int64_to_numeric(0));
	if (agg->type == AGG_WEIGHTED_SUM)
		send_numeric(buf, p->sum_vt.num ? p->sum_vt.num : int64_to_numeric(0));
	if (p->best.num != NULL)
	{
		send_numeric(buf, p->best.num);
		if (agg->type == AGG_LATEST)
			pq_sendint64(buf, p->best_ts);
	}
	if (agg->type == AGG_COUNT_UNIQUE)
	{
		int			n;
		UniqueEntry **u = partial_uniques_sorted(p, &n);

		pq_sendint32(buf, n);
		for (int i = 0; i < n; i++)
			send_string(buf, u[i]->key);
		pfree(u);
	}
	if (AGG_BUCKETED(agg))
	{
		int			n;
		MaxEntry  **m = partial_maxima_sorted(p, &n);

		pq_sendint32(buf, n);
		for (int i = 0; i < n; i++)
		{
			pq_sendint64(buf, m[i]->key.bucket);
			send_numeric(buf, m[i]->value.num);
			if (agg->group_by != NULL)
				send_string(buf, m[i]->key.group);
		}
		pfree(m);
	}
}

/* Read a state written by state_write, validating everything. */
static AggregateState *
state_read(StringInfo buf, MemoryContext home)
{
	const int	code = ERRCODE_INVALID_BINARY_REPRESENTATION;
	AggregateState *st = state_new_empty(home);
	Aggregation raw = {0};
	int			version,
				type,
				bucket,
				flags;
	int64		rows,
				values;

	version = pq_getmsgbyte(buf);
	if (version != STATE_VERSION && version != STATE_BINARY_VERSION_2)
		state_invalid(code, psprintf("Version %d is not supported; this is version %d or %d.",
									 version, STATE_VERSION, STATE_BINARY_VERSION_2));
	type = pq_getmsgbyte(buf);
	bucket = pq_getmsgbyte(buf) - 1;
	flags = pq_getmsgbyte(buf);
	if (type >= AGG_TYPE_COUNT || bucket >= WINDOW_SIZE_COUNT || (flags & ~(FLAG_PERIOD | FLAG_BEST)))
		state_invalid(code, "Unknown aggregation type, bucket size or flags.");
	raw.type = (AggType) type;
	raw.bucket_size = (WindowSize) bucket;
	raw.field = recv_string(buf, "field");
	if (version == STATE_BINARY_VERSION_2)
	{
		raw.expression = recv_string(buf, "expression");
		raw.group_by = recv_string(buf, "group_by");
	}
	if (raw.type == AGG_SUM_WITH_MULTIPLIER)
		raw.multiplier = recv_numeric(buf);
	state_read_aggregation(st, aggregation_to_cstring(&raw), code);
	if (binary_version_2(st->agg) != (version == STATE_BINARY_VERSION_2))
		state_invalid(code, psprintf("A state of this aggregation is version %d, not %d.",
									 binary_version_2(st->agg) ? STATE_BINARY_VERSION_2 : STATE_VERSION,
									 version));

	rows = pq_getmsgint64(buf);
	values = pq_getmsgint64(buf);
	state_read_counts(st, rows, values, code);
	if (flags & FLAG_PERIOD)
	{
		TimestampTz start = pq_getmsgint64(buf);

		state_read_period(st, start, pq_getmsgint64(buf));
	}
	if (AGG_HAS_SUM(st->agg->type))
	{
		Numeric		sum = recv_numeric(buf);

		state_read_sum(st, sum, st->agg->type == AGG_WEIGHTED_SUM ? recv_numeric(buf) : NULL, code);
	}
	if (flags & FLAG_BEST)
	{
		Numeric		value;

		if (!AGG_HAS_BEST(st->agg))
			state_invalid(code, "Only MAX, MIN and LATEST hold a value.");
		value = recv_numeric(buf);
		state_read_best(st, value, st->agg->type == AGG_LATEST ? pq_getmsgint64(buf) : 0, code);
	}
	if (st->agg->type == AGG_COUNT_UNIQUE)
	{
		int			n = pq_getmsgint(buf, 4);

		if (n < 0 || n > buf->len - buf->cursor)
			state_invalid(code, "Bad number of unique values.");
		for (int i = 0; i < n; i++)
		{
			char	   *s;

			CHECK_FOR_INTERRUPTS();
			s = recv_string(buf, "unique value");
			if (s == NULL)
				state_invalid(code, "Bad length of the unique value.");
			state_read_unique(st, s, code);
			pfree(s);
		}
	}
	if (AGG_BUCKETED(st->agg))
	{
		int			n = pq_getmsgint(buf, 4);

		if (n < 0 || n > buf->len - buf->cursor)
			state_invalid(code, "Bad number of buckets.");
		for (int i = 0; i < n; i++)
		{
			TimestampTz start = pq_getmsgint64(buf);
			Numeric		value;

			CHECK_FOR_INTERRUPTS();
			value = recv_numeric(buf);
			state_read_bucket(st, start,
							  st->agg->group_by != NULL ? recv_string(buf, "bucket's group") : NULL,
							  value, code);
		}
	}
	if (buf->cursor != buf->len)
		state_invalid(code, "Extra bytes after the state.");
	state_read_done(st, code);
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
