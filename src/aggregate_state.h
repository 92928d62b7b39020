/*
 * aggregate_state.h — meter.aggregate_state, the transition state of meter.aggregate
 * (SPEC §8). In memory it is an expanded object that the transition function updates in
 * place; flat (on disk, between parallel workers) and binary forms are one versioned
 * byte layout; the text form is versioned JSON, for Citus to ship partial states.
 */
#ifndef METER_AGGREGATE_STATE_H
#define METER_AGGREGATE_STATE_H

#include "fmgr.h"
#include "lib/stringinfo.h"
#include "utils/expandeddatum.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"

#include "aggregation.h"

/* A numeric held in a buffer of its own that is reused while the value fits. */
typedef struct NumBuf
{
	Numeric		num;			/* NULL when unset */
	Size		cap;
} NumBuf;

/* COUNT_UNIQUE: a set of identity texts. */
typedef struct StateUniqueEntry
{
	char	   *key;
	uint32		hash;
	char		status;
} StateUniqueEntry;

/* MAX with bucket_size: bucket start → the bucket's maximum. */
typedef struct BucketEntry
{
	TimestampTz key;
	NumBuf		value;
	char		status;
} BucketEntry;

#define SH_PREFIX stateunique
#define SH_ELEMENT_TYPE StateUniqueEntry
#define SH_KEY_TYPE char *
#define SH_SCOPE extern
#define SH_DECLARE
#include "lib/simplehash.h"

#define SH_PREFIX bucketset
#define SH_ELEMENT_TYPE BucketEntry
#define SH_KEY_TYPE TimestampTz
#define SH_SCOPE extern
#define SH_DECLARE
#include "lib/simplehash.h"

typedef struct AggregateState
{
	ExpandedObjectHeader hdr;

	/* The aggregation of the group (every row must have the same one). */
	AggType		type;
	WindowSize	bucket_size;	/* WINDOW_NONE, or the bucket of a bucketed MAX */
	char	   *field;			/* NULL for COUNT */
	int			fieldlen;
	Numeric		multiplier;		/* SUM_WITH_MULTIPLIER only */
	struct varlena *agg_seen;	/* stored bytes of the aggregation last checked, or NULL */

	/* WEIGHTED_SUM: the period [period_start, period_end). */
	bool		has_period;
	TimestampTz period_start;
	TimestampTz period_end;

	int64		rows;			/* rows seen */
	int64		values;			/* rows that had a usable value */
	NumBuf		sum;			/* Σv: SUM, AVG, SUM_WITH_MULTIPLIER, WEIGHTED_SUM */
	NumBuf		sum_vt;			/* Σ v·t (t in epoch seconds): WEIGHTED_SUM */
	NumBuf		best;			/* MAX, MIN, LATEST (unbucketed) */
	TimestampTz best_ts;		/* LATEST: timestamp of best */
	struct stateunique_hash *uniques; /* COUNT_UNIQUE */
	struct bucketset_hash *buckets; /* bucketed MAX */

	/* The flat form, computed by get_flat_size for flatten_into; NULL when stale. */
	char	   *flat;
	Size		flatlen;
} AggregateState;

#define STATE_VERSION 1
#define STATE_EXAMPLE "{\"version\":1,\"aggregation\":{\"type\":\"SUM\",\"field\":\"tokens\"},\"rows\":3,\"values\":2,\"sum\":12.5}"

/* Which parts of the state an aggregation uses. SUM with bucket_size keeps no buckets:
 * its bucket sums add up to the plain sum exactly. */
#define STATE_HAS_SUM(t) ((t) == AGG_SUM || (t) == AGG_AVG || \
						  (t) == AGG_SUM_WITH_MULTIPLIER || (t) == AGG_WEIGHTED_SUM)
#define STATE_HAS_BEST(st) (((st)->type == AGG_MAX && (st)->bucket_size == WINDOW_NONE) || \
							(st)->type == AGG_MIN || (st)->type == AGG_LATEST)
#define STATE_BUCKETED(st) ((st)->type == AGG_MAX && (st)->bucket_size != WINDOW_NONE)

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

/* A new empty state for an aggregation, allocated in home. */
extern AggregateState *state_create(MemoryContext home, const Aggregation *agg);

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

/* Append an aggregation as JSON: {"type":…,"field":…,"multiplier":…,"bucket_size":…}. */
extern void aggregation_append_json(StringInfo buf, AggType type, const char *field,
									Numeric multiplier, WindowSize bucket_size);

/* Store a copy of src in b (allocating in the state's context). */
extern void state_numbuf_set(AggregateState *st, NumBuf *b, Numeric src);

/* COUNT_UNIQUE: add a copy of text to the set. */
extern void state_unique_add(AggregateState *st, const char *text);

/* Bucketed MAX: the entry of a bucket, created empty (value.num NULL) when new. */
extern BucketEntry *state_bucket(AggregateState *st, TimestampTz key);

/* The bucket entries sorted by start, palloc'd; *n gets their number. */
extern BucketEntry **state_buckets_sorted(const AggregateState *st, int *n);

/* The unique texts sorted (byte order), palloc'd; *n gets their number. */
extern char **state_uniques_sorted(const AggregateState *st, int *n);

/* Validation of states read from outside (text or binary input), raising errcode code:
 * the aggregation follows meter.aggregation's rules; the counts, period, value, unique
 * values and buckets fit it; numbers are finite; bucket keys start buckets. */
extern void state_invalid(int code, const char *detail) pg_attribute_noreturn();
extern void state_check_aggregation(const AggregateState *st, int code);
extern void state_check_tallies(const AggregateState *st, int code);
extern Numeric state_check_number(Numeric n, int code);
extern void state_check_bucket_key(TimestampTz key, WindowSize size, int code);

/* A multiplier as meter.aggregation stores it: canonical, 1.50 is 1.5. */
extern Numeric state_canonical_multiplier(Numeric m);

#endif							/* METER_AGGREGATE_STATE_H */
