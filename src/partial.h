/*
 * partial.h — the partial state of an aggregation over a set of events, and the maths on
 * it (SPEC §8): adding or removing one event, combining two partial states, the value of
 * a window. The one place the aggregation maths lives: the tracking trigger, compaction,
 * recomputation, usage and meter.aggregate all go through it.
 *
 * A partial state keeps what every aggregation type needs, for the parts its type uses:
 *   events, n    events counted, and of those the ones with a usable value
 *   sum, sum_vt  Σv and Σ v·t (t in epoch seconds: WEIGHTED_SUM), with how many values of
 *                each display scale are in Σv (so that a sum after removals prints like
 *                a sum of the values that remain)
 *   best         MAX, MIN, LATEST (with its timestamp)
 *   uniques      COUNT_UNIQUE: distinct value identities with reference counts
 *   maxima       MAX with bucket_size: the maximum per (bucket key, group_by value)
 * Removals are negative contributions where the aggregation is invertible (COUNT, SUM,
 * AVG, SUM_WITH_MULTIPLIER, WEIGHTED_SUM, COUNT_UNIQUE); for MAX, MIN and LATEST the
 * caller recomputes instead (see partial_invertible).
 */
#ifndef METER_PARTIAL_H
#define METER_PARTIAL_H

#include "datatype/timestamp.h"
#include "utils/numeric.h"

#include "aggregation.h"

/* A numeric in a buffer of its own, reused while the value fits. */
typedef struct NumBuf
{
	Numeric		num;			/* NULL when unset */
	Size		cap;
} NumBuf;

typedef struct ScaleCount
{
	int32		scale;
	int64		count;
} ScaleCount;

/* COUNT_UNIQUE: a value identity and how many events carry it. */
typedef struct UniqueEntry
{
	char	   *key;
	int64		refs;
	uint32		hash;
	char		status;
	bool		lasting;		/* key not copied: it outlives the state */
} UniqueEntry;

/* Bucketed MAX: the maximum of one (bucket key, group) — group NULL: missing or null. */
typedef struct MaxKey
{
	TimestampTz bucket;
	const char *group;
} MaxKey;

typedef struct MaxEntry
{
	MaxKey		key;
	NumBuf		value;
	uint32		hash;
	char		status;
} MaxEntry;

#define SH_PREFIX uniqueset
#define SH_ELEMENT_TYPE UniqueEntry
#define SH_KEY_TYPE char *
#define SH_SCOPE extern
#define SH_DECLARE
#include "lib/simplehash.h"

#define SH_PREFIX maxset
#define SH_ELEMENT_TYPE MaxEntry
#define SH_KEY_TYPE MaxKey
#define SH_SCOPE extern
#define SH_DECLARE
#include "lib/simplehash.h"

typedef struct Partial
{
	MemoryContext cxt;			/* where its buffers and tables live */
	int64		events;
	int64		n;
	NumBuf		sum;
	NumBuf		sum_vt;
	int			nscales;
	ScaleCount *scales;
	NumBuf		best;
	TimestampTz best_ts;
	struct uniqueset_hash *uniques;
	struct maxset_hash *maxima;
	int64		counted;		/* COUNT_UNIQUE: distinct values of events it holds only as a
								 * number (a stored count); never combined */
	bool		additive;		/* partial_init_additive: no removals, no scale counts */
	int			entries_hint;	/* how many stored entries it usually takes (a window's
								 * slots): sizes its distinct-value set when first made */
} Partial;

/* What the parts of a partial state are used for, by aggregation. */
#define AGG_HAS_SUM(t) ((t) == AGG_SUM || (t) == AGG_AVG || \
						(t) == AGG_SUM_WITH_MULTIPLIER || (t) == AGG_WEIGHTED_SUM)
#define AGG_BUCKETED(a) ((a)->type == AGG_MAX && (a)->bucket_size != WINDOW_NONE)
#define AGG_HAS_BEST(a) (((a)->type == AGG_MAX && (a)->bucket_size == WINDOW_NONE) || \
						 (a)->type == AGG_MIN || (a)->type == AGG_LATEST)

/* Can an event be taken out of a partial state by a negative contribution? */
extern bool partial_invertible(const Aggregation *agg);

extern void partial_init(Partial *p, MemoryContext cxt);

/*
 * A partial state that events are only ever added to (meter.aggregate): it keeps no
 * per-scale counts, which only removals need (Σv then always has the scale of the
 * values in it), and refuses removals.
 */
extern void partial_init_additive(Partial *p, MemoryContext cxt);

/* No event left in it (and nothing else either). */
extern bool partial_is_empty(const Partial *p);

/* What one event contributes: its usable value (NULL: none), its COUNT_UNIQUE identity,
 * its group_by identity, its timestamp and, for a bucketed MAX, its bucket key. */
typedef struct EventValue
{
	Numeric		value;
	const char *unique;
	const char *group;
	TimestampTz ts;
	TimestampTz bucket;
} EventValue;

/* Add (sign +1) or remove (sign -1, invertible aggregations only) one event. */
extern void partial_add_event(Partial *p, const Aggregation *agg, int sign, const EventValue *ev);

/*
 * dst ⊕ sign·src. For a bucketed MAX, remap (when not NULL) gives the key under which
 * each of src's maxima goes into dst (usage folds slot keys into its bucket_size cells).
 */
typedef TimestampTz (*BucketRemap) (TimestampTz key, void *arg);
extern void partial_combine(Partial *dst, const Partial *src, const Aggregation *agg,
							int sign, BucketRemap remap, void *arg);

/*
 * The value of a window [ws, we) whose events are in p (SPEC §8): the empty-input
 * result when there are none (0 for COUNT, SUM, COUNT_UNIQUE, SUM_WITH_MULTIPLIER,
 * WEIGHTED_SUM; NULL for AVG, MAX, MIN, LATEST). WEIGHTED_SUM weighs within [ws, we).
 */
extern Numeric partial_final(const Partial *p, const Aggregation *agg, TimestampTz ws,
							 TimestampTz we, bool *isnull);

/*
 * WEIGHTED_SUM of a reset-NEVER window [ws, we): its own events (own) weighed, the events
 * before it (their Σv prior; NULL when none) counted fully, in one division —
 * (E·(Σv + prior) − (Σ v·t + prior·S)) / (E − S) — so that the result has the digits
 * 0.1.0 gave (adding prior to the window's own weighted sum rounds differently).
 */
extern Numeric partial_final_weighted_never(const Partial *own, Numeric prior, TimestampTz ws,
											TimestampTz we);

/* Σv with the display scale of the values it holds (0 when none). */
extern Numeric partial_sum(const Partial *p);

/* Sorted views, palloc'd in CurrentMemoryContext; *n gets the count. */
extern UniqueEntry **partial_uniques_sorted(const Partial *p, int *n);
extern MaxEntry **partial_maxima_sorted(const Partial *p, int *n);

/* Building blocks for decoders (codec, state input): set parts directly. */
extern void numbuf_set(MemoryContext cxt, NumBuf *b, Numeric src);
extern void partial_add_sums(Partial *p, Numeric sum, Numeric sum_vt, int sign);
extern void partial_set_scale(Partial *p, int32 scale, int64 count);
extern void partial_unique_add(Partial *p, const char *key, int64 refs);
/* The same with the key's hash (partial_unique_hash) known: decoders hash each string once. */
extern uint32 partial_unique_hash(const char *key);
extern uint32 partial_unique_hash_len(const char *key, size_t len);
extern void partial_unique_add_hashed(Partial *p, const char *key, uint32 hash, int64 refs);
/* The same for a key that lives as long as the state: kept as it is, not copied. */
extern void partial_unique_add_lasting(Partial *p, const char *key, uint32 hash, int64 refs);
extern void partial_unique_reserve(Partial *p, uint64 more);
extern void partial_max_offer(Partial *p, TimestampTz bucket, const char *group, Numeric v);
extern void partial_best_offer(Partial *p, const Aggregation *agg, Numeric v, TimestampTz ts);
/* COUNT_UNIQUE: take a period's stored count of events and distinct values, into a
 * partial state that holds nothing else (usage cells). */
extern void partial_add_counted(Partial *p, int64 events, int64 n, int64 distinct);

/* Numeric helpers shared by the engine. */
extern int	num_cmp(Numeric a, Numeric b);
extern int32 num_scale(Numeric n);
extern Numeric num_copy(Numeric n);

#endif							/* METER_PARTIAL_H */
