/*
 * partial.c — the aggregation maths on partial states (see partial.h).
 *
 * Every choice between equal candidates is made by a total order (LATEST ties go to the
 * greater value; numerically equal values written differently, 2 and 2.0, go to the one
 * with more decimal places), so that no answer depends on row order, on the order
 * partial states are combined in, or on which of them were compacted first.
 */
#include "postgres.h"

#include "common/hashfn.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/memutils.h"

#include "buckets.h"
#include "partial.h"

#define SH_PREFIX uniqueset
#define SH_ELEMENT_TYPE UniqueEntry
#define SH_KEY_TYPE char *
#define SH_KEY key
#define SH_HASH_KEY(tb, k) partial_unique_hash(k)
#define SH_EQUAL(tb, a, b) (strcmp((a), (b)) == 0)
#define SH_STORE_HASH
#define SH_GET_HASH(tb, a) ((a)->hash)
#define SH_SCOPE extern
#define SH_DEFINE
#include "lib/simplehash.h"

static inline uint32
max_key_hash(MaxKey k)
{
	uint32		h = murmurhash32((uint32) ((uint64) k.bucket ^ ((uint64) k.bucket >> 32)));

	if (k.group != NULL)
		h = hash_combine(h, hash_bytes((const unsigned char *) k.group, strlen(k.group)));
	return h;
}

static inline bool
max_key_equal(MaxKey a, MaxKey b)
{
	if (a.bucket != b.bucket)
		return false;
	if (a.group == NULL || b.group == NULL)
		return a.group == b.group;
	return strcmp(a.group, b.group) == 0;
}

#define SH_PREFIX maxset
#define SH_ELEMENT_TYPE MaxEntry
#define SH_KEY_TYPE MaxKey
#define SH_KEY key
#define SH_HASH_KEY(tb, k) max_key_hash(k)
#define SH_EQUAL(tb, a, b) max_key_equal((a), (b))
#define SH_STORE_HASH
#define SH_GET_HASH(tb, a) ((a)->hash)
#define SH_SCOPE extern
#define SH_DEFINE
#include "lib/simplehash.h"

/* ── Numbers ─────────────────────────────────────────────────────────────────────── */

int
num_cmp(Numeric a, Numeric b)
{
	return DatumGetInt32(DirectFunctionCall2(numeric_cmp, NumericGetDatum(a), NumericGetDatum(b)));
}

int32
num_scale(Numeric n)
{
	return DatumGetInt32(DirectFunctionCall1(numeric_scale, NumericGetDatum(n)));
}

Numeric
num_copy(Numeric n)
{
	Numeric		c = palloc(VARSIZE(n));

	memcpy(c, n, VARSIZE(n));
	return c;
}

void
numbuf_set(MemoryContext cxt, NumBuf *b, Numeric src)
{
	Size		len = VARSIZE(src);

	if (b->num == src)
		return;
	if (b->num == NULL || b->cap < len)
	{
		if (b->num != NULL)
			pfree(b->num);
		b->cap = MAXALIGN(len + 8);
		b->num = MemoryContextAlloc(cxt, b->cap);
	}
	memcpy(b->num, src, len);
}

static void
numbuf_add(MemoryContext cxt, NumBuf *b, Numeric v, int sign)
{
	Numeric		t;

	if (b->num == NULL)
		t = sign > 0 ? v : DatumGetNumeric(DirectFunctionCall1(numeric_uminus, NumericGetDatum(v)));
	else if (sign > 0)
		t = numeric_add_opt_error(b->num, v, NULL);
	else
		t = numeric_sub_opt_error(b->num, v, NULL);
	numbuf_set(cxt, b, t);
	/* Sums run over many entries: give the temporary back rather than let memory grow. */
	if (t != v)
		pfree(t);
}

/*
 * Does v replace cur as the greatest (want_max) or smallest value? Numerically equal
 * values are ordered by their decimal places, more winning either way.
 */
static bool
replaces(Numeric v, Numeric cur, bool want_max)
{
	int			c = num_cmp(v, cur);

	if (c != 0)
		return want_max ? c > 0 : c < 0;
	return num_scale(v) > num_scale(cur);
}

/* ── Construction ────────────────────────────────────────────────────────────────── */

bool
partial_invertible(const Aggregation *agg)
{
	return !(agg->type == AGG_MAX || agg->type == AGG_MIN || agg->type == AGG_LATEST);
}

void
partial_init(Partial *p, MemoryContext cxt)
{
	memset(p, 0, sizeof(Partial));
	p->cxt = cxt;
	p->entries_hint = 1;
}

void
partial_init_additive(Partial *p, MemoryContext cxt)
{
	partial_init(p, cxt);
	p->additive = true;
}

static bool
numbuf_is_zero(const NumBuf *b)
{
	static Numeric zero = NULL;

	if (b->num == NULL)
		return true;
	if (zero == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		zero = int64_to_numeric(0);
		MemoryContextSwitchTo(old);
	}
	return DatumGetInt32(DirectFunctionCall2(numeric_cmp, NumericGetDatum(b->num),
											 NumericGetDatum(zero))) == 0;
}

/*
 * Everything must be empty, sums and scale counts included: a compaction that folds in
 * batches meets contributions without their counterparts (an update of a value, -5 and
 * +7, holds events 0 and Σ +2 until the batch with the insert comes).
 */
bool
partial_is_empty(const Partial *p)
{
	return p->events == 0 && p->n == 0 && p->counted == 0 && p->nscales == 0 &&
		numbuf_is_zero(&p->sum) && numbuf_is_zero(&p->sum_vt) &&
		(p->uniques == NULL || p->uniques->members == 0) &&
		(p->maxima == NULL || p->maxima->members == 0) && p->best.num == NULL;
}

void
partial_set_scale(Partial *p, int32 scale, int64 count)
{
	int			i;

	if (p->additive)
		return;
	for (i = 0; i < p->nscales; i++)
		if (p->scales[i].scale == scale)
			break;
	if (i == p->nscales)
	{
		if (count == 0)
			return;
		p->scales = p->scales == NULL
			? MemoryContextAlloc(p->cxt, sizeof(ScaleCount) * 4)
			: (p->nscales % 4 == 0
			   ? repalloc(p->scales, sizeof(ScaleCount) * (p->nscales + 4))
			   : p->scales);
		p->scales[p->nscales].scale = scale;
		p->scales[p->nscales].count = 0;
		p->nscales++;
	}
	p->scales[i].count += count;
	if (p->scales[i].count == 0)
		p->scales[i] = p->scales[--p->nscales];
}

uint32
partial_unique_hash(const char *key)
{
	return partial_unique_hash_len(key, strlen(key));
}

uint32
partial_unique_hash_len(const char *key, size_t len)
{
	return hash_bytes((const unsigned char *) key, (int) len);
}

void
partial_unique_add(Partial *p, const char *key, int64 refs)
{
	partial_unique_add_hashed(p, key, partial_unique_hash(key), refs);
}

/* Room for more distinct values without rehashing on the way: decoders know how many
 * values an entry holds, and growing a set one doubling at a time rehashes it at each.
 * A new set is sized for entries_hint such entries (up to 4096 values more). */
void
partial_unique_reserve(Partial *p, uint64 more)
{
	uint64		want;

	if (p->uniques == NULL)
	{
		want = more + Min(more * (Max(p->entries_hint, 1) - 1), 4096);
		p->uniques = uniqueset_create(p->cxt, (uint32) Min(Max(want, 4), PG_UINT32_MAX / 4), NULL);
		return;
	}
	want = p->uniques->members + more;
	if (want > p->uniques->grow_threshold && want < PG_UINT32_MAX / 4)
		uniqueset_grow(p->uniques, (uint64) (want / 0.9) + 1);	/* simplehash's fill factor */
}

static void
unique_add(Partial *p, const char *key, uint32 hash, int64 refs, bool copy)
{
	bool		found;
	UniqueEntry *e;

	if (refs == 0)
		return;
	if (p->uniques == NULL)
		p->uniques = uniqueset_create(p->cxt, 4, NULL);
	e = uniqueset_insert_hash(p->uniques, (char *) key, hash, &found);
	if (!found)
	{
		e->key = copy ? MemoryContextStrdup(p->cxt, key) : (char *) key;
		e->lasting = !copy;
		e->refs = 0;
	}
	e->refs += refs;
	if (e->refs == 0)
	{
		char	   *k = e->key;
		bool		owned = !e->lasting;

		uniqueset_delete_item(p->uniques, e);
		if (owned)
			pfree(k);
	}
}

void
partial_unique_add_hashed(Partial *p, const char *key, uint32 hash, int64 refs)
{
	unique_add(p, key, hash, refs, true);
}

void
partial_unique_add_lasting(Partial *p, const char *key, uint32 hash, int64 refs)
{
	unique_add(p, key, hash, refs, false);
}

void
partial_add_counted(Partial *p, int64 events, int64 n, int64 distinct)
{
	if (!partial_is_empty(p))
		elog(ERROR, "meter: a stored count goes only into an empty partial state");
	p->events = events;
	p->n = n;
	p->counted = distinct;
}

void
partial_max_offer(Partial *p, TimestampTz bucket, const char *group, Numeric v)
{
	MaxKey		key = {bucket, group};
	bool		found;
	MaxEntry   *e;

	if (p->maxima == NULL)
		p->maxima = maxset_create(p->cxt, 4, NULL);
	e = maxset_insert(p->maxima, key, &found);
	if (!found)
	{
		e->key.group = group ? MemoryContextStrdup(p->cxt, group) : NULL;
		e->value.num = NULL;
		e->value.cap = 0;
	}
	if (e->value.num == NULL || replaces(v, e->value.num, true))
		numbuf_set(p->cxt, &e->value, v);
}

void
partial_best_offer(Partial *p, const Aggregation *agg, Numeric v, TimestampTz ts)
{
	bool		take;

	if (p->best.num == NULL)
		take = true;
	else if (agg->type == AGG_LATEST)
		take = ts > p->best_ts || (ts == p->best_ts && replaces(v, p->best.num, true));
	else
		take = replaces(v, p->best.num, agg->type == AGG_MAX);
	if (take)
	{
		numbuf_set(p->cxt, &p->best, v);
		p->best_ts = ts;
	}
}

void
partial_add_sums(Partial *p, Numeric sum, Numeric sum_vt, int sign)
{
	if (sum != NULL)
		numbuf_add(p->cxt, &p->sum, sum, sign);
	if (sum_vt != NULL)
		numbuf_add(p->cxt, &p->sum_vt, sum_vt, sign);
}

/* ── Events ──────────────────────────────────────────────────────────────────────── */

void
partial_add_event(Partial *p, const Aggregation *agg, int sign, const EventValue *ev)
{
	if (sign < 0 && (!partial_invertible(agg) || p->additive))
		elog(ERROR, "meter: %s cannot take an event out of a partial state",
			 agg_type_names[agg->type]);
	p->events += sign;
	if (agg->type == AGG_COUNT)
	{
		p->n += sign;
		return;
	}
	if (agg->type == AGG_COUNT_UNIQUE)
	{
		if (ev->unique != NULL)
		{
			p->n += sign;
			partial_unique_add(p, ev->unique, sign);
		}
		return;
	}
	if (ev->value == NULL)
		return;
	p->n += sign;
	if (AGG_HAS_SUM(agg->type))
	{
		numbuf_add(p->cxt, &p->sum, ev->value, sign);
		if (!p->additive)
			partial_set_scale(p, num_scale(ev->value), sign);
		if (agg->type == AGG_WEIGHTED_SUM)
			numbuf_add(p->cxt, &p->sum_vt,
					   numeric_mul_opt_error(ev->value, epoch_numeric(ev->ts), NULL), sign);
	}
	else if (AGG_BUCKETED(agg))
		partial_max_offer(p, ev->bucket, ev->group, ev->value);
	else
		partial_best_offer(p, agg, ev->value, ev->ts);
}

void
partial_combine(Partial *dst, const Partial *src, const Aggregation *agg, int sign,
				BucketRemap remap, void *arg)
{
	if (sign < 0 && (!partial_invertible(agg) || dst->additive))
		elog(ERROR, "meter: %s cannot take events out of a partial state",
			 agg_type_names[agg->type]);
	if (src->counted != 0 || (dst->counted != 0 && !partial_is_empty(src)))
		elog(ERROR, "meter: a counted partial state cannot be combined");
	dst->events += sign * src->events;
	dst->n += sign * src->n;
	partial_add_sums(dst, src->sum.num, src->sum_vt.num, sign);
	for (int i = 0; i < src->nscales; i++)
		partial_set_scale(dst, src->scales[i].scale, sign * src->scales[i].count);
	if (src->best.num != NULL)
		partial_best_offer(dst, agg, src->best.num, src->best_ts);
	if (src->uniques != NULL)
	{
		uniqueset_iterator it;
		UniqueEntry *e;

		uniqueset_start_iterate(src->uniques, &it);
		while ((e = uniqueset_iterate(src->uniques, &it)) != NULL)
			partial_unique_add_hashed(dst, e->key, e->hash, sign * e->refs);
	}
	if (src->maxima != NULL)
	{
		maxset_iterator it;
		MaxEntry   *e;

		maxset_start_iterate(src->maxima, &it);
		while ((e = maxset_iterate(src->maxima, &it)) != NULL)
			partial_max_offer(dst, remap ? remap(e->key.bucket, arg) : e->key.bucket,
							  e->key.group, e->value.num);
	}
}

/* ── Final ───────────────────────────────────────────────────────────────────────── */

Numeric
partial_sum(const Partial *p)
{
	int32		scale = -1;

	if (p->sum.num == NULL)
		return int64_to_numeric(0);
	for (int i = 0; i < p->nscales; i++)
		if (p->scales[i].count > 0 && p->scales[i].scale > scale)
			scale = p->scales[i].scale;
	if (scale < 0 || scale >= num_scale(p->sum.num))
		return num_copy(p->sum.num);
	/* The values left are multiples of 10^-scale: rounding is exact. */
	return DatumGetNumeric(DirectFunctionCall2(numeric_round, NumericGetDatum(p->sum.num),
											   Int32GetDatum(scale)));
}

/* Σ v·t at the scale of the values left (their scale + the 6 decimals of epoch seconds). */
static Numeric
partial_sum_vt(const Partial *p)
{
	int32		scale = -1;

	if (p->sum_vt.num == NULL)
		return int64_to_numeric(0);
	for (int i = 0; i < p->nscales; i++)
		if (p->scales[i].count > 0 && p->scales[i].scale > scale)
			scale = p->scales[i].scale;
	if (scale < 0 || scale + 6 >= num_scale(p->sum_vt.num))
		return num_copy(p->sum_vt.num);
	return DatumGetNumeric(DirectFunctionCall2(numeric_round, NumericGetDatum(p->sum_vt.num),
											   Int32GetDatum(scale + 6)));
}

Numeric
partial_final(const Partial *p, const Aggregation *agg, TimestampTz ws, TimestampTz we,
			  bool *isnull)
{
	*isnull = false;
	switch (agg->type)
	{
		case AGG_COUNT:
			return int64_to_numeric(p->events);
		case AGG_COUNT_UNIQUE:
			return int64_to_numeric((p->uniques ? (int64) p->uniques->members : 0) + p->counted);
		case AGG_SUM:
			return p->n > 0 ? partial_sum(p) : int64_to_numeric(0);
		case AGG_SUM_WITH_MULTIPLIER:
			if (p->n <= 0)
				return int64_to_numeric(0);
			return numeric_mul_opt_error(partial_sum(p), agg->multiplier, NULL);
		case AGG_AVG:
			if (p->n <= 0)
				break;
			/* like avg(numeric): Σv / n with numeric_div's scale */
			return numeric_div_opt_error(partial_sum(p), int64_to_numeric(p->n), NULL);
		case AGG_WEIGHTED_SUM:
			{
				Numeric		s,
							e;

				if (p->n <= 0)
					return int64_to_numeric(0);
				s = epoch_numeric(ws);
				e = epoch_numeric(we);
				/* Σ v·(E − t)/(E − S) = (E·Σv − Σ v·t)/(E − S) */
				return numeric_div_opt_error(
											 numeric_sub_opt_error(numeric_mul_opt_error(e, partial_sum(p), NULL),
																   partial_sum_vt(p), NULL),
											 numeric_sub_opt_error(e, s, NULL), NULL);
			}
		case AGG_MAX:
			if (AGG_BUCKETED(agg))
			{
				int			n;
				MaxEntry  **m;
				Numeric		total = int64_to_numeric(0);

				if (p->maxima == NULL || p->maxima->members == 0)
					break;
				m = partial_maxima_sorted(p, &n);
				for (int i = 0; i < n; i++)
					total = numeric_add_opt_error(total, m[i]->value.num, NULL);
				pfree(m);
				return total;
			}
			/* FALLTHROUGH */
		case AGG_MIN:
		case AGG_LATEST:
			if (p->best.num != NULL)
				return num_copy(p->best.num);
			break;
	}
	*isnull = true;
	return NULL;
}

Numeric
partial_final_weighted_never(const Partial *own, Numeric prior, TimestampTz ws, TimestampTz we)
{
	Numeric		zero = int64_to_numeric(0);
	Numeric		sum = own->n > 0 ? partial_sum(own) : zero;
	Numeric		sum_vt = own->n > 0 ? partial_sum_vt(own) : zero;
	Numeric		s = epoch_numeric(ws);
	Numeric		e = epoch_numeric(we);

	if (own->n <= 0 && prior == NULL)
		return zero;
	if (prior == NULL)
		prior = zero;
	return numeric_div_opt_error(
								 numeric_sub_opt_error(numeric_mul_opt_error(e, numeric_add_opt_error(sum, prior, NULL), NULL),
													   numeric_add_opt_error(sum_vt, numeric_mul_opt_error(prior, s, NULL), NULL), NULL),
								 numeric_sub_opt_error(e, s, NULL), NULL);
}

/* ── Sorted views ────────────────────────────────────────────────────────────────── */

static int
cmp_unique(const void *a, const void *b)
{
	return strcmp((*(UniqueEntry *const *) a)->key, (*(UniqueEntry *const *) b)->key);
}

UniqueEntry **
partial_uniques_sorted(const Partial *p, int *n)
{
	UniqueEntry **out;
	uniqueset_iterator it;
	UniqueEntry *e;
	int			i = 0;

	*n = p->uniques ? (int) p->uniques->members : 0;
	out = palloc(sizeof(UniqueEntry *) * (*n + 1));
	if (p->uniques == NULL)
		return out;
	uniqueset_start_iterate(p->uniques, &it);
	while ((e = uniqueset_iterate(p->uniques, &it)) != NULL)
		out[i++] = e;
	qsort(out, i, sizeof(UniqueEntry *), cmp_unique);
	return out;
}

static int
cmp_max(const void *a, const void *b)
{
	const MaxEntry *x = *(MaxEntry *const *) a;
	const MaxEntry *y = *(MaxEntry *const *) b;

	if (x->key.bucket != y->key.bucket)
		return x->key.bucket < y->key.bucket ? -1 : 1;
	if (x->key.group == NULL || y->key.group == NULL)
		return (x->key.group != NULL) - (y->key.group != NULL);
	return strcmp(x->key.group, y->key.group);
}

MaxEntry **
partial_maxima_sorted(const Partial *p, int *n)
{
	MaxEntry  **out;
	maxset_iterator it;
	MaxEntry   *e;
	int			i = 0;

	*n = p->maxima ? (int) p->maxima->members : 0;
	out = palloc(sizeof(MaxEntry *) * (*n + 1));
	if (p->maxima == NULL)
		return out;
	maxset_start_iterate(p->maxima, &it);
	while ((e = maxset_iterate(p->maxima, &it)) != NULL)
		out[i++] = e;
	qsort(out, i, sizeof(MaxEntry *), cmp_max);
	return out;
}
