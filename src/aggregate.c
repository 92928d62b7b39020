/*
 * aggregate.c — meter.aggregate(aggregation, properties, "timestamp" [, period_start,
 * period_end]) → numeric (SPEC §8): a meter's aggregation as an SQL aggregate, usable in
 * any GROUP BY, parallel safe through a combine function.
 *
 * The maths is the engine's (partial.h), as for the tracking trigger and the usage
 * functions: a row is an event (event_value.h says what it gives the aggregation), the
 * transition adds it to the state's partial state, the combine function combines two
 * of them and the final function takes the value of the group's. This file keeps the
 * rules of the SQL aggregate: one aggregation and one period per group, the period of
 * WEIGHTED_SUM, rows without a timestamp. The state (aggregate_state.c) is an expanded
 * object updated in place, its numbers kept in buffers the partial state reuses.
 */
#include "postgres.h"

#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"

#include "aggregate_state.h"
#include "aggregation.h"
#include "buckets.h"
#include "event_value.h"
#include "partial.h"

static char *
timestamp_text(TimestampTz ts)
{
	return DatumGetCString(DirectFunctionCall1(timestamptz_out, TimestampTzGetDatum(ts)));
}

/* ── The aggregation of a group ──────────────────────────────────────────────────── */

static void pg_attribute_noreturn()
different_aggregations(const AggregateState *st, const struct varlena *other)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("aggregation must be the same for every row of a group"),
			 errdetail("The group aggregates %s, but a row has %s.",
					   aggregation_to_cstring(st->agg),
					   aggregation_to_cstring(aggregation_unpack((struct varlena *) other))),
			 errhint("Group by the meter (or its aggregation) so that each group has one aggregation.")));
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

/* Add the row (properties, timestamp: arguments 2 and 3) to the state. */
static void
add_row(FunctionCallInfo fcinfo, AggregateState *st)
{
	const Aggregation *agg = st->agg;
	/* COUNT reads nothing of the event: do not even detoast it */
	Jsonb	   *properties = PG_ARGISNULL(2) || agg->type == AGG_COUNT ? NULL : PG_GETARG_JSONB_P(2);
	bool		timed = !PG_ARGISNULL(3);
	TimestampTz ts = timed ? PG_GETARG_TIMESTAMPTZ(3) : 0;
	EventValue	ev;

	event_value_fill(agg, properties, ts, 0, &ev);
	if (ev.value != NULL &&
		(agg->type == AGG_LATEST || agg->type == AGG_WEIGHTED_SUM || AGG_BUCKETED(agg)))
	{
		/* A value without a timestamp has no place in time: skipped where time matters. */
		if (!timed)
			ev.value = NULL;
		else if (agg->type == AGG_WEIGHTED_SUM && TIMESTAMP_NOT_FINITE(ts))
			ereport(ERROR,
					(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
					 errmsg("timestamp out of range"),
					 errdetail("WEIGHTED_SUM weighs each value by its place in the period; %s has none.",
							   timestamp_text(ts)),
					 errhint("Aggregate only events inside the period.")));
		else if (AGG_BUCKETED(agg))
			ev.bucket = bucket_start_utc(ts, agg->bucket_size);
	}
	partial_add_event(&st->partial, agg, 1, &ev);
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
		{
			/* the group's first row */
			st = state_create(home, aggbytes);
			if (st->agg->type == AGG_WEIGHTED_SUM && !with_period)
				weighted_sum_needs_period();
		}
		else
		{
			st = state_from_datum(PG_GETARG_DATUM(0), home);
			if (VARATT_IS_EXTERNAL_EXPANDED(DatumGetPointer(PG_GETARG_DATUM(0))))
				st = state_copy(st, home);	/* not ours to modify */
		}
	}
	/* else the usual case: our read-write state, updated in place */

	if (!state_same_aggregation(st, aggbytes))
		different_aggregations(st, aggbytes);
	state_touch(st);
	if (st->agg->type == AGG_WEIGHTED_SUM)
		check_period(fcinfo, st, with_period);
	add_row(fcinfo, st);

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
	if (!state_same_aggregation(dst, src->agg_bytes))
		different_aggregations(dst, src->agg_bytes);
	if (dst->has_period != src->has_period ||
		(dst->has_period && (dst->period_start != src->period_start ||
							 dst->period_end != src->period_end)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("period must be the same for every row of a group"),
				 errdetail("Two partial states of one group weigh over different periods."),
				 errhint("Group by the period so that each group has one period.")));
	state_touch(dst);
	partial_combine(&dst->partial, &src->partial, dst->agg, 1, NULL, NULL);
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
 * meter.aggregate_final(state) → numeric: the aggregate's result, the value of the
 * group's partial state (SPEC §8 table; WEIGHTED_SUM over the group's period). With
 * rows but no usable value: COUNT → the count; SUM, SUM_WITH_MULTIPLIER, WEIGHTED_SUM,
 * COUNT_UNIQUE → 0; AVG, MAX, MIN, LATEST → NULL. No rows: NULL, like SQL's sum().
 */
PG_FUNCTION_INFO_V1(meter_aggregate_final);
Datum
meter_aggregate_final(PG_FUNCTION_ARGS)
{
	AggregateState *st = state_from_datum(PG_GETARG_DATUM(0), CurrentMemoryContext);
	Numeric		result;
	bool		isnull;

	if (st->partial.events == 0)
		PG_RETURN_NULL();
	result = partial_final(&st->partial, st->agg, st->period_start, st->period_end, &isnull);
	if (isnull)
		PG_RETURN_NULL();
	PG_RETURN_NUMERIC(result);
}
