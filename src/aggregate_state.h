/*
 * aggregate_state.h — meter.aggregate_state, the transition state of meter.aggregate
 * (SPEC §8). It holds the group's aggregation, the WEIGHTED_SUM period and a partial
 * state of the engine (partial.h), where all the maths happens. In memory it is an
 * expanded object that the transition function updates in place; flat (on disk, between
 * parallel workers) and binary forms are one versioned byte layout; the text form is
 * versioned JSON, for Citus to ship partial states.
 */
#ifndef METER_AGGREGATE_STATE_H
#define METER_AGGREGATE_STATE_H

#include "fmgr.h"
#include "lib/stringinfo.h"
#include "utils/expandeddatum.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"

#include "aggregation.h"
#include "partial.h"

typedef struct AggregateState
{
	ExpandedObjectHeader hdr;

	/*
	 * The aggregation of the group (every row must have the same one): its stored form,
	 * which is canonical (equal aggregations are equal bytes), and the same unpacked, its
	 * expression compiled, once per state. Both in the state's context; NULL only while
	 * a state is being read.
	 */
	struct varlena *agg_bytes;
	Aggregation *agg;

	/* WEIGHTED_SUM: the period [period_start, period_end). */
	bool		has_period;
	TimestampTz period_start;
	TimestampTz period_end;

	/*
	 * The events of the group: rows are its events, and values (as the state's forms
	 * call them) its n, the rows that gave a usable value or a COUNT_UNIQUE identity
	 * (always 0 in the forms for COUNT, which reads no value).
	 */
	Partial		partial;

	/* The flat form, computed by get_flat_size for flatten_into; NULL when stale. */
	char	   *flat;
	Size		flatlen;
} AggregateState;

/*
 * Versions of the forms. Text: 1 (new keys carry expression and group_by). Binary: 1
 * (0.1.0), and 2 for states whose aggregation has an expression or a group_by (version 1
 * has no room for them); every state has exactly one binary form.
 */
#define STATE_VERSION 1
#define STATE_BINARY_VERSION_2 2
#define STATE_EXAMPLE "{\"version\":1,\"aggregation\":{\"type\":\"SUM\",\"field\":\"tokens\"},\"rows\":3,\"values\":2,\"sum\":12.5}"

/* The "values" count of the state's forms. */
static inline int64
state_values(const AggregateState *st)
{
	return st->agg->type == AGG_COUNT ? 0 : st->partial.n;
}

/*
 * Memory: inside an aggregate, states live in state_home(aggcontext); elsewhere
 * (I/O, direct calls, temporary copies) in CurrentMemoryContext. The expanded object's
 * context is that home, shared: never DeleteExpandedObject a state.
 */
extern MemoryContext state_home(MemoryContext aggcontext);

/* The state behind d when d is a read-write state of this aggregate's home, else NULL. */
extern AggregateState *state_writable(Datum d, MemoryContext aggcontext);

/* An empty state with no aggregation yet (for the input functions), allocated in home. */
extern AggregateState *state_new_empty(MemoryContext home);

/* A new empty state for the aggregation stored as agg_bytes, allocated in home. */
extern AggregateState *state_create(MemoryContext home, const struct varlena *agg_bytes);

/* Give a state its aggregation: a copy of the stored form, unpacked, in its context. */
extern void state_set_aggregation(AggregateState *st, const struct varlena *agg_bytes);

/* Is the aggregation stored as agg_bytes the state's? (Bytes first, then meaning.) */
extern bool state_same_aggregation(const AggregateState *st, const struct varlena *agg_bytes);

/* The state behind a datum: the expanded object itself when it is one (do not modify it
 * unless state_writable says so), else a new expanded copy of the flat value in home. */
extern AggregateState *state_from_datum(Datum d, MemoryContext home);

/* A deep copy in home. */
extern AggregateState *state_copy(AggregateState *src, MemoryContext home);

/* The flat varlena form, palloc'd in CurrentMemoryContext. */
extern struct varlena *state_flatten(AggregateState *st);

/* The state changes: forget a cached flat form. */
static inline void
state_touch(AggregateState *st)
{
	if (st->flat != NULL)
	{
		pfree(st->flat);
		st->flat = NULL;
	}
}

/*
 * Reading a state from outside (text or binary input), raising errcode code on anything
 * wrong: the input functions set the aggregation (state_read_aggregation), rows and
 * values (state_read_counts), then the parts, and finish with state_read_done, which
 * checks that the parts fit the aggregation and the counts.
 */
extern void state_invalid(int code, const char *detail) pg_attribute_noreturn();

/* The aggregation from its JSON text, validated by meter.aggregation's own rules. */
extern void state_read_aggregation(AggregateState *st, const char *json, int code);
extern void state_read_counts(AggregateState *st, int64 rows, int64 values, int code);
extern void state_read_period(AggregateState *st, TimestampTz start, TimestampTz end);
extern void state_read_sum(AggregateState *st, Numeric sum, Numeric sum_vt, int code);
extern void state_read_best(AggregateState *st, Numeric value, TimestampTz ts, int code);
extern void state_read_unique(AggregateState *st, const char *value, int code);
extern void state_read_bucket(AggregateState *st, TimestampTz start, const char *group,
							  Numeric value, int code);
extern void state_read_done(AggregateState *st, int code);

/* A numeric read from outside: finite numbers only. */
extern Numeric state_check_number(Numeric n, int code);

#endif							/* METER_AGGREGATE_STATE_H */
