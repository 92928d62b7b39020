/*
 * aggregate.c — meter.aggregate(aggregation, properties, "timestamp" [, period_start,
 * period_end]) → numeric (SPEC §8): a meter's aggregation as an SQL aggregate, usable in
 * any GROUP BY, parallel safe through a combine function.
 *
 * Exact numeric throughout. The state (aggregate_state.c) is an expanded object updated
 * in place; per row the transition function compares the aggregation's bytes with the
 * ones it saw last, reads the field with jsonb_get_field (no allocation for JSON numbers)
 * and adds with numeric_add into a buffer the state reuses. Every choice between equal
 * candidates (LATEST ties, 2 vs 2.0) is made by a total order, so that the answer never
 * depends on row order, parallel workers or the order partial states are combined in.
 */
#include "postgres.h"

#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/fmgrprotos.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"

#include "aggregate.h"
#include "aggregate_state.h"
#include "aggregation.h"
#include "number.h"

/* ── Time ────────────────────────────────────────────────────────────────────────── */

static int64
floor_div(int64 a, int64 b)
{
	int64		q = a / b;

	if (a % b != 0 && ((a < 0) != (b < 0)))
		q--;
	return q;
}

TimestampTz
aggregate_bucket_start(TimestampTz ts, WindowSize size)
{
	int64		width = 0;
	int64		origin = 0;
	TimestampTz start;

	if (TIMESTAMP_NOT_FINITE(ts))
		return ts;
	switch (size)
	{
		case WINDOW_MINUTE:
			width = USECS_PER_MINUTE;
			break;
		case WINDOW_15MIN:
			width = 15 * USECS_PER_MINUTE;
			break;
		case WINDOW_30MIN:
			width = 30 * USECS_PER_MINUTE;
			break;
		case WINDOW_HOUR:
			width = USECS_PER_HOUR;
			break;
		case WINDOW_3HOUR:
			width = 3 * USECS_PER_HOUR;
			break;
		case WINDOW_6HOUR:
			width = 6 * USECS_PER_HOUR;
			break;
		case WINDOW_12HOUR:
			width = 12 * USECS_PER_HOUR;
			break;
		case WINDOW_DAY:
			width = USECS_PER_DAY;
			break;
		case WINDOW_WEEK:
			/* The PostgreSQL epoch 2000-01-01 is a Saturday; 2000-01-03 a Monday. */
			width = 7 * USECS_PER_DAY;
			origin = 2 * USECS_PER_DAY;
			break;
		case WINDOW_MONTH:
			{
				int			y,
							m,
							d;

				j2date((int) floor_div(ts, USECS_PER_DAY) + POSTGRES_EPOCH_JDATE, &y, &m, &d);
				start = (int64) (date2j(y, m, 1) - POSTGRES_EPOCH_JDATE) * USECS_PER_DAY;
				return Max(start, MIN_TIMESTAMP);
			}
		case WINDOW_NONE:
			return ts;
	}
	start = origin + floor_div(ts - origin, width) * width;
	return Max(start, MIN_TIMESTAMP);
}

/* Epoch seconds as numeric with 6 decimals: exactly extract(epoch from ts). */
static Numeric
epoch_numeric(TimestampTz ts)
{
	Timestamp	epoch = SetEpochTimestamp();

	if (ts < PG_INT64_MAX + epoch)
		return int64_div_fast_to_numeric(ts - epoch, 6);
	return DatumGetNumeric(DirectFunctionCall2(extract_timestamptz,
											   PointerGetDatum(cstring_to_text("epoch")),
											   TimestampTzGetDatum(ts)));
}

static char *
timestamp_text(TimestampTz ts)
{
	return DatumGetCString(DirectFunctionCall1(timestamptz_out, TimestampTzGetDatum(ts)));
}

/* ── Numbers ─────────────────────────────────────────────────────────────────────── */

static Numeric
num_copy(Numeric n)
{
	Numeric		c = palloc(VARSIZE(n));

	memcpy(c, n, VARSIZE(n));
	return c;
}

static int
num_cmp(Numeric a, Numeric b)
{
	return DatumGetInt32(DirectFunctionCall2(numeric_cmp, NumericGetDatum(a), NumericGetDatum(b)));
}

static int32
num_scale(Numeric n)
{
	return DatumGetInt32(DirectFunctionCall1(numeric_scale, NumericGetDatum(n)));
}

/*
 * Does v replace cur as the greatest (want_max) or smallest value? Numerically equal
 * values written differently (2 and 2.0) are ordered by their decimal places, the one
 * with more winning either way, so the kept text never depends on row order.
 */
static bool
replaces(Numeric v, Numeric cur, bool want_max)
{
	int			c = num_cmp(v, cur);

	if (c != 0)
		return want_max ? c > 0 : c < 0;
	return num_scale(v) > num_scale(cur);
}

static void
add_to(AggregateState *st, NumBuf *b, Numeric v)
{
	state_numbuf_set(st, b, numeric_add_opt_error(b->num, v, NULL));
}

/* MAX, MIN, LATEST (unbucketed): offer a candidate. */
static void
offer_best(AggregateState *st, Numeric v, TimestampTz ts)
{
	bool		take;

	if (st->best.num == NULL)
		take = true;
	else if (st->type == AGG_LATEST)
		take = ts > st->best_ts || (ts == st->best_ts && replaces(v, st->best.num, true));
	else
		take = replaces(v, st->best.num, st->type == AGG_MAX);
	if (take)
	{
		state_numbuf_set(st, &st->best, v);
		st->best_ts = ts;
	}
}

/* Bucketed MAX: offer a candidate for the bucket starting at key. */
static void
offer_bucket(AggregateState *st, TimestampTz key, Numeric v)
{
	BucketEntry *e = state_bucket(st, key);

	if (e->value.num == NULL || replaces(v, e->value.num, true))
		state_numbuf_set(st, &e->value, v);
}

/* ── The aggregation of a group ──────────────────────────────────────────────────── */

static bool
same_aggregation(const AggregateState *st, AggType type, const char *field,
				 Numeric multiplier, WindowSize bucket_size)
{
	if (st->type != type || st->bucket_size != bucket_size)
		return false;
	if ((st->field == NULL) != (field == NULL) ||
		(field != NULL && strcmp(st->field, field) != 0))
		return false;
	if ((st->multiplier == NULL) != (multiplier == NULL) ||
		(multiplier != NULL && num_cmp(st->multiplier, multiplier) != 0))
		return false;
	return true;
}

static void pg_attribute_noreturn()
different_aggregations(const AggregateState *st, AggType type, const char *field,
					   Numeric multiplier, WindowSize bucket_size)
{
	StringInfoData a,
				b;

	initStringInfo(&a);
	initStringInfo(&b);
	aggregation_append_json(&a, st->type, st->field, st->multiplier, st->bucket_size);
	aggregation_append_json(&b, type, field, multiplier, bucket_size);
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("aggregation must be the same for every row of a group"),
			 errdetail("The group aggregates %s, but a row has %s.", a.data, b.data),
			 errhint("Group by the meter (or its aggregation) so that each group has one aggregation.")));
}

static bool
same_bytes(const struct varlena *a, const struct varlena *b)
{
	return VARSIZE_ANY_EXHDR(a) == VARSIZE_ANY_EXHDR(b) &&
		memcmp(VARDATA_ANY(a), VARDATA_ANY(b), VARSIZE_ANY_EXHDR(a)) == 0;
}

static void
remember_aggregation(AggregateState *st, const struct varlena *bytes)
{
	if (st->agg_seen != NULL)
		pfree(st->agg_seen);
	st->agg_seen = MemoryContextAlloc(st->hdr.eoh_context, VARSIZE_ANY(bytes));
	memcpy(st->agg_seen, bytes, VARSIZE_ANY(bytes));
}

/* A row's aggregation differs in bytes from the last one seen: compare by meaning. */
static void
check_row_aggregation(AggregateState *st, struct varlena *bytes)
{
	Aggregation *agg = aggregation_unpack(bytes);

	if (!same_aggregation(st, agg->type, agg->field, agg->multiplier, agg->bucket_size))
		different_aggregations(st, agg->type, agg->field, agg->multiplier, agg->bucket_size);
	remember_aggregation(st, bytes);
}

static void pg_attribute_noreturn()
weighted_sum_needs_period(void)
{
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("WEIGHTED_SUM needs a period"),
			 errdetail("A time-weighted sum weighs each value by (period_end - timestamp) / (period_end - period_start)."),
			 errhint("Use meter.aggregate(aggregation, properties, \"timestamp\", period_start, period_end).")));
}

/* WEIGHTED_SUM: the period of the row (five-argument form) must be the group's. */
static void
check_period(FunctionCallInfo fcinfo, AggregateState *st, bool with_period)
{
	TimestampTz s,
				e;

	if (!with_period)
	{
		if (!st->has_period)
			weighted_sum_needs_period();
		return;
	}
	if (PG_ARGISNULL(3 + 1) || PG_ARGISNULL(3 + 2))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("WEIGHTED_SUM needs a period"),
				 errdetail("period_start or period_end is NULL."),
				 errhint("Pass the start and end of the billing period or usage window.")));
	s = PG_GETARG_TIMESTAMPTZ(4);
	e = PG_GETARG_TIMESTAMPTZ(5);
	if (!st->has_period)
	{
		if (TIMESTAMP_NOT_FINITE(s) || TIMESTAMP_NOT_FINITE(e) || e <= s)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid period"),
					 errdetail("The period [%s, %s) must be finite and end after it starts.",
							   timestamp_text(s), timestamp_text(e)),
					 errhint("Pass period_start < period_end.")));
		st->has_period = true;
		st->period_start = s;
		st->period_end = e;
	}
	else if (s != st->period_start || e != st->period_end)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("period must be the same for every row of a group"),
				 errdetail("The group weighs over [%s, %s), but a row has [%s, %s).",
						   timestamp_text(st->period_start), timestamp_text(st->period_end),
						   timestamp_text(s), timestamp_text(e)),
				 errhint("Group by the period so that each group has one period.")));
}

/* ── Transition ──────────────────────────────────────────────────────────────────── */

/* The usable value of the row's field, or NULL. */
static Numeric
row_value(FunctionCallInfo fcinfo, AggregateState *st)
{
	JsonbValue	v;

	if (PG_ARGISNULL(2))
		return NULL;
	if (!jsonb_get_field(PG_GETARG_JSONB_P(2), st->field, st->fieldlen, &v))
		return NULL;
	return jsonb_value_numeric(&v);
}

/* Take a usable value v of a row at ts. */
static void
take_value(AggregateState *st, Numeric v, TimestampTz ts)
{
	switch (st->type)
	{
		case AGG_SUM:
		case AGG_AVG:
		case AGG_SUM_WITH_MULTIPLIER:
			add_to(st, &st->sum, v);
			break;
		case AGG_WEIGHTED_SUM:
			if (TIMESTAMP_NOT_FINITE(ts))
				ereport(ERROR,
						(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
						 errmsg("timestamp out of range"),
						 errdetail("WEIGHTED_SUM weighs each value by its place in the period; %s has none.",
								   timestamp_text(ts)),
						 errhint("Aggregate only events inside the period.")));
			add_to(st, &st->sum, v);
			add_to(st, &st->sum_vt, numeric_mul_opt_error(v, epoch_numeric(ts), NULL));
			break;
		case AGG_MAX:
			if (STATE_BUCKETED(st))
				offer_bucket(st, aggregate_bucket_start(ts, st->bucket_size), v);
			else
				offer_best(st, v, ts);
			break;
		case AGG_MIN:
		case AGG_LATEST:
			offer_best(st, v, ts);
			break;
		case AGG_COUNT:
		case AGG_COUNT_UNIQUE:
			break;
	}
}

/* A new state for the group's first row. */
static AggregateState *
start_state(MemoryContext home, struct varlena *aggbytes, bool with_period)
{
	Aggregation *agg = aggregation_unpack(aggbytes);
	AggregateState *st;

	if (agg->type == AGG_WEIGHTED_SUM && !with_period)
		weighted_sum_needs_period();
	st = state_create(home, agg);
	remember_aggregation(st, aggbytes);
	return st;
}

static Datum
aggregate_transition(FunctionCallInfo fcinfo, bool with_period)
{
	struct varlena *aggbytes;
	AggregateState *st;
	MemoryContext aggcontext = NULL;
	bool		flat_result = false;

	/* A row without an aggregation is ignored (the state stays as it is). */
	if (PG_ARGISNULL(1))
	{
		if (PG_ARGISNULL(0))
			PG_RETURN_NULL();
		PG_RETURN_DATUM(PG_GETARG_DATUM(0));
	}
	aggbytes = (struct varlena *) PG_DETOAST_DATUM_PACKED(PG_GETARG_DATUM(1));

	if (!AggCheckCallContext(fcinfo, &aggcontext))
		flat_result = true;		/* called as a plain function: return the flat form */
	if (flat_result || PG_ARGISNULL(0) ||
		(st = state_writable(PG_GETARG_DATUM(0), aggcontext)) == NULL)
	{
		MemoryContext home = flat_result ? CurrentMemoryContext : state_home(aggcontext);

		if (PG_ARGISNULL(0))
			st = start_state(home, aggbytes, with_period);
		else
		{
			st = state_from_datum(PG_GETARG_DATUM(0), home);
			if (VARATT_IS_EXTERNAL_EXPANDED(DatumGetPointer(PG_GETARG_DATUM(0))))
				st = state_copy(st, home);	/* not ours to modify */
		}
	}
	/* else the usual case: our read-write state, updated in place */

	if (st->agg_seen == NULL || !same_bytes(st->agg_seen, aggbytes))
		check_row_aggregation(st, aggbytes);
	state_touch(st);
	if (st->type == AGG_WEIGHTED_SUM)
		check_period(fcinfo, st, with_period);
	st->rows++;

	if (st->type == AGG_COUNT_UNIQUE)
	{
		if (!PG_ARGISNULL(2))
		{
			char	   *text = properties_unique_text(PG_GETARG_JSONB_P(2), st->field);

			if (text != NULL)
			{
				st->values++;
				state_unique_add(st, text);
			}
		}
	}
	else if (st->type != AGG_COUNT)
	{
		Numeric		v = row_value(fcinfo, st);
		bool		needs_time = st->type == AGG_LATEST || st->type == AGG_WEIGHTED_SUM ||
			STATE_BUCKETED(st);

		/* A value without a timestamp has no place in time: skipped where time matters. */
		if (v != NULL && !(needs_time && PG_ARGISNULL(3)))
		{
			st->values++;
			take_value(st, v, PG_ARGISNULL(3) ? 0 : PG_GETARG_TIMESTAMPTZ(3));
		}
	}

	if (flat_result)
		PG_RETURN_POINTER(state_flatten(st));
	/* The same pointer as the input after the first row: nodeAgg keeps it as it is. */
	PG_RETURN_DATUM(EOHPGetRWDatum(&st->hdr));
}

/*
 * meter.aggregate_transfn(state, aggregation, properties, "timestamp"): the transition
 * function of the three-argument meter.aggregate. Not strict: the first row creates the
 * state, and NULL properties or timestamps still count as rows. WEIGHTED_SUM is refused
 * (0A000): it needs the five-argument form's period.
 */
PG_FUNCTION_INFO_V1(meter_aggregate_transfn);
Datum
meter_aggregate_transfn(PG_FUNCTION_ARGS)
{
	return aggregate_transition(fcinfo, false);
}

/*
 * meter.aggregate_transfn(state, aggregation, properties, "timestamp", period_start,
 * period_end): the transition function of the five-argument meter.aggregate. The period
 * weighs WEIGHTED_SUM and must be the same for every row of a group; other types ignore it.
 */
PG_FUNCTION_INFO_V1(meter_aggregate_period_transfn);
Datum
meter_aggregate_period_transfn(PG_FUNCTION_ARGS)
{
	return aggregate_transition(fcinfo, true);
}

/* ── Combine and final ───────────────────────────────────────────────────────────── */

/* Fold src into dst. */
static void
merge_states(AggregateState *dst, AggregateState *src)
{
	if (!same_aggregation(dst, src->type, src->field, src->multiplier, src->bucket_size))
		different_aggregations(dst, src->type, src->field, src->multiplier, src->bucket_size);
	if (dst->has_period != src->has_period ||
		(dst->has_period && (dst->period_start != src->period_start ||
							 dst->period_end != src->period_end)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("period must be the same for every row of a group"),
				 errdetail("Two partial states of one group weigh over different periods."),
				 errhint("Group by the period so that each group has one period.")));
	state_touch(dst);
	dst->rows += src->rows;
	dst->values += src->values;
	if (STATE_HAS_SUM(dst->type))
		add_to(dst, &dst->sum, src->sum.num);
	if (dst->type == AGG_WEIGHTED_SUM)
		add_to(dst, &dst->sum_vt, src->sum_vt.num);
	if (src->best.num != NULL)
		offer_best(dst, src->best.num, src->best_ts);
	if (dst->type == AGG_COUNT_UNIQUE)
	{
		int			n;
		char	  **keys = state_uniques_sorted(src, &n);

		for (int i = 0; i < n; i++)
			state_unique_add(dst, keys[i]);
	}
	if (STATE_BUCKETED(dst))
	{
		int			n;
		BucketEntry **b = state_buckets_sorted(src, &n);

		for (int i = 0; i < n; i++)
			offer_bucket(dst, b[i]->key, b[i]->value.num);
	}
}

/*
 * meter.aggregate_combine(state, state): merges two partial states of one group
 * (parallel workers, Citus nodes). Not strict: either side may be the empty (NULL) state.
 * Both must come from the same aggregation and period.
 */
PG_FUNCTION_INFO_V1(meter_aggregate_combine);
Datum
meter_aggregate_combine(PG_FUNCTION_ARGS)
{
	MemoryContext aggcontext = NULL;
	MemoryContext home;
	AggregateState *dst;
	AggregateState *src;
	bool		flat_result = false;

	if (PG_ARGISNULL(1))
	{
		if (PG_ARGISNULL(0))
			PG_RETURN_NULL();
		PG_RETURN_DATUM(PG_GETARG_DATUM(0));
	}
	if (AggCheckCallContext(fcinfo, &aggcontext))
		home = state_home(aggcontext);
	else
	{
		home = CurrentMemoryContext;
		flat_result = true;
	}

	src = state_from_datum(PG_GETARG_DATUM(1), CurrentMemoryContext);
	if (PG_ARGISNULL(0))
	{
		/* The group's first partial state: adopt a copy of it. */
		if (VARATT_IS_EXTERNAL_EXPANDED(DatumGetPointer(PG_GETARG_DATUM(1))))
			dst = state_copy(src, home);
		else
			dst = state_from_datum(PG_GETARG_DATUM(1), home);
	}
	else
	{
		if (flat_result || (dst = state_writable(PG_GETARG_DATUM(0), aggcontext)) == NULL)
		{
			dst = state_from_datum(PG_GETARG_DATUM(0), home);
			if (VARATT_IS_EXTERNAL_EXPANDED(DatumGetPointer(PG_GETARG_DATUM(0))))
				dst = state_copy(dst, home);
		}
		merge_states(dst, src);
	}
	if (flat_result)
		PG_RETURN_POINTER(state_flatten(dst));
	PG_RETURN_DATUM(EOHPGetRWDatum(&dst->hdr));
}

/*
 * meter.aggregate_final(state) → numeric: the aggregate's result (SPEC §8 table). With
 * rows but no usable value: COUNT → the count; SUM, SUM_WITH_MULTIPLIER, WEIGHTED_SUM,
 * COUNT_UNIQUE → 0; AVG, MAX, MIN, LATEST → NULL. AVG divides like avg(numeric).
 */
PG_FUNCTION_INFO_V1(meter_aggregate_final);
Datum
meter_aggregate_final(PG_FUNCTION_ARGS)
{
	AggregateState *st = state_from_datum(PG_GETARG_DATUM(0), CurrentMemoryContext);

	if (st->rows == 0)
		PG_RETURN_NULL();
	switch (st->type)
	{
		case AGG_COUNT:
			PG_RETURN_NUMERIC(int64_to_numeric(st->rows));
		case AGG_COUNT_UNIQUE:
			PG_RETURN_NUMERIC(int64_to_numeric(st->uniques ? (int64) st->uniques->members : 0));
		case AGG_SUM:
			if (st->values == 0)
				PG_RETURN_NUMERIC(int64_to_numeric(0));
			PG_RETURN_NUMERIC(num_copy(st->sum.num));
		case AGG_AVG:
			if (st->values == 0)
				PG_RETURN_NULL();
			PG_RETURN_NUMERIC(numeric_div_opt_error(st->sum.num, int64_to_numeric(st->values), NULL));
		case AGG_SUM_WITH_MULTIPLIER:
			if (st->values == 0)
				PG_RETURN_NUMERIC(int64_to_numeric(0));
			PG_RETURN_NUMERIC(numeric_mul_opt_error(st->sum.num, st->multiplier, NULL));
		case AGG_WEIGHTED_SUM:
			{
				Numeric		s,
							e;

				if (st->values == 0)
					PG_RETURN_NUMERIC(int64_to_numeric(0));
				s = epoch_numeric(st->period_start);
				e = epoch_numeric(st->period_end);
				/* (E·Σv − Σ v·t) / (E − S) */
				PG_RETURN_NUMERIC(numeric_div_opt_error(
														numeric_sub_opt_error(numeric_mul_opt_error(e, st->sum.num, NULL),
																			  st->sum_vt.num, NULL),
														numeric_sub_opt_error(e, s, NULL), NULL));
			}
		case AGG_MAX:
			if (STATE_BUCKETED(st))
			{
				int			n;
				BucketEntry **b = state_buckets_sorted(st, &n);
				Numeric		total = int64_to_numeric(0);

				if (st->values == 0)
					PG_RETURN_NULL();
				for (int i = 0; i < n; i++)
					total = numeric_add_opt_error(total, b[i]->value.num, NULL);
				PG_RETURN_NUMERIC(total);
			}
			/* FALLTHROUGH */
		case AGG_MIN:
		case AGG_LATEST:
			if (st->best.num == NULL)
				PG_RETURN_NULL();
			PG_RETURN_NUMERIC(num_copy(st->best.num));
	}
	PG_RETURN_NULL();
}
