/*
 * slotset.c — sets of per-slot partial states in memory, and their stored form.
 *
 * Stored form (version 1), integers as LEB128 varints (signed ones zigzag-encoded),
 * strings and numerics as a varint length and bytes (a numeric's bytes are its on-disk
 * form without the varlena header):
 *   version 1, flags (reserved, 0)
 *   tags:              count, zigzag numbers (the writer's own)
 *   base slot number (zigzag; slot number = slot start / 15 minutes)
 *   dimension keys:    count, names
 *   dimension values:  count, encoded values
 *   strings:           count, COUNT_UNIQUE identities and group_by values
 *   customers:         count, each (customer, external customer, entry count, the events
 *                      its entries count (Σ events), day-total count and their bytes
 *                      (length-prefixed), then its entries (length-prefixed)), so a
 *                      reader looking for one customer skips the others' entries unread,
 *                      and one whose window holds the whole day reads only the totals
 *   day total:  [dims index when more than one], then as an entry's flags onwards
 *   entry:  slot number - base, [dims index when more than one], flags, events, [n when
 *       it differs from events], [Σv], [Σv·t], [scales: count, (scale, count)…], [best,
 *       LATEST: its time - slot start], [uniques: count, (string, refs)…], [maxima: count,
 *       (bucket - slot start, group string + 1 or 0 for none, max)…]
 * The decoder checks every length and index against the value it reads: a damaged value
 * is an error, never a read outside it.
 */
#include "postgres.h"

#include "common/hashfn.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "buckets.h"
#include "slotset.h"

#define SLOTSET_VERSION 1

#define E_MARK		0x01
#define E_N			0x02
#define E_SUM		0x04
#define E_SUM_VT	0x08
#define E_SCALES	0x10
#define E_BEST		0x20
#define E_UNIQUES	0x40
#define E_MAXIMA	0x80

/* ── The set in memory ───────────────────────────────────────────────────────────── */

/* An interned string (or customer pair: customer \0 external). */
typedef struct InternKey
{
	const char *data;
	Size		len;
} InternKey;

typedef struct Interned
{
	InternKey	key;
	int32		id;
	const char *a;				/* the customer, or the dims string */
	const char *b;				/* the external customer */
} Interned;

typedef struct InternElem
{
	InternKey	key;
	Interned   *value;
	uint32		hash;
	char		status;
} InternElem;

#define SH_PREFIX interntab
#define SH_ELEMENT_TYPE InternElem
#define SH_KEY_TYPE InternKey
#define SH_KEY key
#define SH_HASH_KEY(tb, k) hash_bytes((const unsigned char *) (k).data, (int) (k).len)
#define SH_EQUAL(tb, x, y) ((x).len == (y).len && memcmp((x).data, (y).data, (x).len) == 0)
#define SH_STORE_HASH
#define SH_GET_HASH(tb, a) ((a)->hash)
#define SH_SCOPE static inline
#define SH_DECLARE
#define SH_DEFINE
#include "lib/simplehash.h"

typedef struct EntryElem
{
	SlotHashKey key;
	SlotEntry  *entry;
	char		status;
} EntryElem;

static inline uint32
entry_key_hash(SlotHashKey k)
{
	return hash_combine(murmurhash32((uint32) k.customer ^ ((uint32) k.dims << 16)),
						murmurhash32((uint32) ((uint64) k.slot ^ ((uint64) k.slot >> 32))));
}

#define SH_PREFIX entrytab
#define SH_ELEMENT_TYPE EntryElem
#define SH_KEY_TYPE SlotHashKey
#define SH_KEY key
#define SH_HASH_KEY(tb, k) entry_key_hash(k)
#define SH_EQUAL(tb, x, y) ((x).customer == (y).customer && (x).dims == (y).dims && (x).slot == (y).slot)
#define SH_SCOPE static inline
#define SH_DECLARE
#define SH_DEFINE
#include "lib/simplehash.h"

/* Intern a string (b NULL) or a customer pair. */
static Interned *
intern(SlotSet *set, struct interntab_hash *table, const char *a, const char *b)
{
	Size		la = strlen(a) + 1,
				lb = b ? strlen(b) + 1 : 0;
	char		stackbuf[256];
	char	   *buf = la + lb <= sizeof(stackbuf) ? stackbuf : palloc(la + lb);
	InternKey	key;
	InternElem *e;
	bool		found;

	memcpy(buf, a, la);
	if (b)
		memcpy(buf + la, b, lb);
	key.data = buf;
	key.len = la + lb;
	e = interntab_insert(table, key, &found);
	if (!found)
	{
		Interned   *v = MemoryContextAlloc(set->cxt, sizeof(Interned) + key.len);
		char	   *copy = (char *) (v + 1);

		memcpy(copy, buf, key.len);
		v->key.data = copy;
		v->key.len = key.len;
		v->id = (int32) table->members - 1;
		v->a = copy;
		v->b = b ? copy + la : NULL;
		e->key = v->key;
		e->value = v;
		set->bytes += key.len + sizeof(Interned);
	}
	if (buf != stackbuf)
		pfree(buf);
	return e->value;
}

static Interned *
intern_customer(SlotSet *set, const char *customer, const char *external)
{
	Interned   *last = set->last_customer;

	if (last != NULL && (last->a == customer || strcmp(last->a, customer) == 0) &&
		(last->b == external || strcmp(last->b, external) == 0))
		return last;
	set->last_customer = intern(set, set->customers, customer, external);
	return set->last_customer;
}

static Interned *
intern_dims(SlotSet *set, const char *dims)
{
	Interned   *last = set->last_dims;

	if (last != NULL && (last->a == dims || strcmp(last->a, dims) == 0))
		return last;
	set->last_dims = intern(set, set->dims, dims, NULL);
	return set->last_dims;
}

SlotSet *
slotset_create(MemoryContext cxt)
{
	SlotSet    *set = MemoryContextAllocZero(cxt, sizeof(SlotSet));

	set->cxt = cxt;
	set->entries = entrytab_create(cxt, 64, NULL);
	set->customers = interntab_create(cxt, 16, NULL);
	set->dims = interntab_create(cxt, 4, NULL);
	return set;
}

long
slotset_count(const SlotSet *set)
{
	return (long) set->entries->members;
}

static void
hash_key_of(SlotSet *set, const SlotKey *key, SlotHashKey *hk, Interned **c, Interned **d)
{
	*c = intern_customer(set, key->customer, key->external_customer);
	*d = intern_dims(set, key->dims);
	memset(hk, 0, sizeof(SlotHashKey));
	hk->customer = (*c)->id;
	hk->dims = (*d)->id;
	hk->slot = key->slot;
}

SlotEntry *
slotset_entry(SlotSet *set, const SlotKey *key)
{
	SlotHashKey hk;
	Interned   *c,
			   *d;
	bool		found;
	EntryElem  *el;

	hash_key_of(set, key, &hk, &c, &d);
	el = entrytab_insert(set->entries, hk, &found);
	if (!found)
	{
		SlotEntry  *e = MemoryContextAlloc(set->cxt, sizeof(SlotEntry));

		e->hkey = hk;
		e->key.customer = c->a;
		e->key.external_customer = c->b;
		e->key.dims = d->a;
		e->key.slot = key->slot;
		e->mark = false;
		partial_init(&e->partial, set->cxt);
		el->entry = e;
		set->bytes += sizeof(SlotEntry) + 32;
	}
	return el->entry;
}

SlotEntry *
slotset_find(SlotSet *set, const SlotKey *key)
{
	SlotHashKey hk;
	Interned   *c,
			   *d;
	EntryElem  *el;

	hash_key_of(set, key, &hk, &c, &d);
	el = entrytab_lookup(set->entries, hk);
	return el ? el->entry : NULL;
}

static int
entry_order(const void *a, const void *b)
{
	const SlotHashKey *x = &(*(SlotEntry *const *) a)->hkey;
	const SlotHashKey *y = &(*(SlotEntry *const *) b)->hkey;

	if (x->customer != y->customer)
		return x->customer < y->customer ? -1 : 1;
	if (x->slot != y->slot)
		return x->slot < y->slot ? -1 : 1;
	return (x->dims > y->dims) - (x->dims < y->dims);
}

SlotEntry **
slotset_sorted(SlotSet *set, int *n)
{
	entrytab_iterator it;
	EntryElem  *el;
	SlotEntry **all = palloc(sizeof(SlotEntry *) * (set->entries->members + 1));
	int			i = 0;

	entrytab_start_iterate(set->entries, &it);
	while ((el = entrytab_iterate(set->entries, &it)) != NULL)
		all[i++] = el->entry;
	qsort(all, i, sizeof(SlotEntry *), entry_order);
	*n = i;
	return all;
}

/* ── Writing ─────────────────────────────────────────────────────────────────────── */

static void
put_varint(StringInfo buf, uint64 v)
{
	while (v >= 0x80)
	{
		appendStringInfoCharMacro(buf, (char) ((v & 0x7F) | 0x80));
		v >>= 7;
	}
	appendStringInfoCharMacro(buf, (char) v);
}

static void
put_signed(StringInfo buf, int64 v)
{
	put_varint(buf, ((uint64) v << 1) ^ (uint64) (v >> 63));
}

static void
put_bytes(StringInfo buf, const char *data, Size len)
{
	put_varint(buf, len);
	appendBinaryStringInfo(buf, data, (int) len);
}

static void
put_string(StringInfo buf, const char *s)
{
	put_bytes(buf, s, strlen(s));
}

static void
put_numeric(StringInfo buf, Numeric n)
{
	put_bytes(buf, VARDATA_ANY(n), VARSIZE_ANY_EXHDR(n));
}

/* Strings numbered in order of first use. */
typedef struct DictElem
{
	const char *key;
	int			index;
	uint32		hash;
	char		status;
} DictElem;

#define SH_PREFIX dicttab
#define SH_ELEMENT_TYPE DictElem
#define SH_KEY_TYPE const char *
#define SH_KEY key
#define SH_HASH_KEY(tb, k) hash_bytes((const unsigned char *) (k), (int) strlen(k))
#define SH_EQUAL(tb, x, y) (strcmp((x), (y)) == 0)
#define SH_STORE_HASH
#define SH_GET_HASH(tb, a) ((a)->hash)
#define SH_SCOPE static inline
#define SH_DECLARE
#define SH_DEFINE
#include "lib/simplehash.h"

typedef struct StringDict
{
	struct dicttab_hash *index;
	int			count;
	const char **items;
	int			cap;
	const char *last;			/* the string met last, and its number */
	int			last_index;
} StringDict;

static void
dict_init(StringDict *d)
{
	d->index = dicttab_create(CurrentMemoryContext, 8, NULL);
	d->count = 0;
	d->cap = 8;
	d->items = palloc(sizeof(char *) * d->cap);
	d->last = NULL;
}

static int
dict_add(StringDict *d, const char *s)
{
	bool		found;
	DictElem   *e;

	if (d->last == s)
		return d->last_index;
	e = dicttab_insert(d->index, s, &found);
	if (!found)
	{
		if (d->count == d->cap)
		{
			d->cap *= 2;
			d->items = repalloc(d->items, sizeof(char *) * d->cap);
		}
		e->index = d->count;
		d->items[d->count++] = s;
	}
	d->last = s;
	d->last_index = e->index;
	return e->index;
}

static int
dict_find(StringDict *d, const char *s)
{
	return dict_add(d, s);
}

static void
put_dict(StringInfo buf, const StringDict *d)
{
	put_varint(buf, d->count);
	for (int i = 0; i < d->count; i++)
		put_string(buf, d->items[i]);
}

static int64
slot_number(TimestampTz slot)
{
	return floor_div64(slot, SLOT_USECS);
}

static void
put_partial(StringInfo buf, const Partial *p, const Aggregation *agg, TimestampTz slot,
			bool mark, StringDict *strings)
{
	uint8		flags = mark ? E_MARK : 0;
	UniqueEntry **u = NULL;
	MaxEntry  **m = NULL;
	int			nu = 0,
				nm = 0;

	if (p->n != p->events)
		flags |= E_N;
	if (p->sum.num != NULL)
		flags |= E_SUM;
	if (p->sum_vt.num != NULL)
		flags |= E_SUM_VT;
	if (p->nscales > 0)
		flags |= E_SCALES;
	if (p->best.num != NULL)
		flags |= E_BEST;
	if (p->uniques != NULL && p->uniques->members > 0)
	{
		flags |= E_UNIQUES;
		u = partial_uniques_sorted(p, &nu);
	}
	if (p->maxima != NULL && p->maxima->members > 0)
	{
		flags |= E_MAXIMA;
		m = partial_maxima_sorted(p, &nm);
	}
	appendStringInfoCharMacro(buf, (char) flags);
	put_signed(buf, p->events);
	if (flags & E_N)
		put_signed(buf, p->n);
	if (flags & E_SUM)
		put_numeric(buf, p->sum.num);
	if (flags & E_SUM_VT)
		put_numeric(buf, p->sum_vt.num);
	if (flags & E_SCALES)
	{
		put_varint(buf, p->nscales);
		for (int i = 0; i < p->nscales; i++)
		{
			put_varint(buf, (uint64) p->scales[i].scale);
			put_signed(buf, p->scales[i].count);
		}
	}
	if (flags & E_BEST)
	{
		put_numeric(buf, p->best.num);
		if (agg->type == AGG_LATEST)
			put_signed(buf, p->best_ts - slot);
	}
	if (flags & E_UNIQUES)
	{
		put_varint(buf, nu);
		for (int i = 0; i < nu; i++)
		{
			put_varint(buf, dict_find(strings, u[i]->key));
			put_signed(buf, u[i]->refs);
		}
	}
	if (flags & E_MAXIMA)
	{
		put_varint(buf, nm);
		for (int i = 0; i < nm; i++)
		{
			put_signed(buf, m[i]->key.bucket - slot);
			put_varint(buf, m[i]->key.group ? dict_find(strings, m[i]->key.group) + 1 : 0);
			put_numeric(buf, m[i]->value.num);
		}
	}
}

static void
collect_strings(const Partial *p, StringDict *strings)
{
	if (p->uniques != NULL)
	{
		int			n;
		UniqueEntry **u = partial_uniques_sorted(p, &n);

		for (int i = 0; i < n; i++)
			dict_add(strings, u[i]->key);
		pfree(u);
	}
	if (p->maxima != NULL)
	{
		int			n;
		MaxEntry  **m = partial_maxima_sorted(p, &n);

		for (int i = 0; i < n; i++)
			if (m[i]->key.group != NULL)
				dict_add(strings, m[i]->key.group);
		pfree(m);
	}
}

/* Entries of one set share interned strings: equal customers, equal pointers. */
static inline bool
same_customer(const SlotKey *a, const SlotKey *b)
{
	return (a->customer == b->customer && a->external_customer == b->external_customer) ||
		(strcmp(a->customer, b->customer) == 0 && strcmp(a->external_customer, b->external_customer) == 0);
}

/* The day totals of one customer's entries (one day): one partial state per dimension
 * value, in the order met. Written only when there are fewer of them than entries. */
static void
put_day_totals(StringInfo out, SlotEntry **entries, int n, const Aggregation *agg,
			   StringDict *dims, StringDict *strings, int *ntotals)
{
	const char **seen = palloc(sizeof(char *) * n);
	Partial    *totals = palloc(sizeof(Partial) * n);
	int			k = 0;
	TimestampTz day = (TimestampTz) slot_day(entries[0]->key.slot) * USECS_PER_DAY;

	for (int i = 0; i < n; i++)
	{
		int			j;

		for (j = 0; j < k; j++)
			if (seen[j] == entries[i]->key.dims || strcmp(seen[j], entries[i]->key.dims) == 0)
				break;
		if (j == k)
		{
			seen[k] = entries[i]->key.dims;
			partial_init(&totals[k++], CurrentMemoryContext);
		}
		partial_combine(&totals[j], &entries[i]->partial, agg, 1, NULL, NULL);
	}
	*ntotals = 0;
	if (k == n)
		return;
	for (int j = 0; j < k; j++)
	{
		if (dims->count > 1)
			put_varint(out, dict_find(dims, seen[j]));
		put_partial(out, &totals[j], agg, day, false, strings);
	}
	*ntotals = k;
}

bytea *
slotset_encode(SlotEntry **entries, int n, const Aggregation *agg, int ndim_keys,
			   const char *const *dim_keys, const int64 *tags, int ntags, bool day_summaries)
{
	StringInfoData buf;
	StringInfoData block;
	StringInfoData totals;
	StringDict	dims,
				strings;
	int			ncustomers = 0;
	int64		base = PG_INT64_MAX;
	bytea	   *result;

	dict_init(&dims);
	dict_init(&strings);
	for (int i = 0; i < n; i++)
	{
		const SlotKey *k = &entries[i]->key;

		if (i == 0 || !same_customer(k, &entries[i - 1]->key))
			ncustomers++;
		base = Min(base, slot_number(k->slot));
		dict_add(&dims, k->dims);
		collect_strings(&entries[i]->partial, &strings);
	}
	if (n == 0)
		base = 0;
	if (AGG_BUCKETED(agg))
		day_summaries = false;

	initStringInfo(&buf);
	appendBinaryStringInfo(&buf, "\0\0\0\0", VARHDRSZ);
	appendStringInfoCharMacro(&buf, SLOTSET_VERSION);
	appendStringInfoCharMacro(&buf, 0);
	put_varint(&buf, ntags);
	for (int i = 0; i < ntags; i++)
		put_signed(&buf, tags[i]);
	put_signed(&buf, base);
	put_varint(&buf, ndim_keys);
	for (int i = 0; i < ndim_keys; i++)
		put_string(&buf, dim_keys[i]);
	put_dict(&buf, &dims);
	put_dict(&buf, &strings);
	put_varint(&buf, ncustomers);
	initStringInfo(&block);
	initStringInfo(&totals);
	for (int i = 0; i < n;)
	{
		const SlotKey *k = &entries[i]->key;
		int			first = i;
		int64		events = 0;
		int			ntotals = 0;

		resetStringInfo(&block);
		resetStringInfo(&totals);
		for (; i < n && same_customer(&entries[i]->key, k); i++)
		{
			const SlotKey *e = &entries[i]->key;

			put_varint(&block, slot_number(e->slot) - base);
			if (dims.count > 1)
				put_varint(&block, dict_find(&dims, e->dims));
			put_partial(&block, &entries[i]->partial, agg, e->slot, entries[i]->mark, &strings);
			events += entries[i]->partial.events;
		}
		if (day_summaries && i - first > 1)
			put_day_totals(&totals, entries + first, i - first, agg, &dims, &strings, &ntotals);
		put_string(&buf, k->customer);
		put_string(&buf, k->external_customer);
		put_varint(&buf, i - first);
		put_signed(&buf, events);
		put_varint(&buf, ntotals);
		put_bytes(&buf, totals.data, totals.len);
		put_bytes(&buf, block.data, block.len);
	}
	result = (bytea *) buf.data;
	SET_VARSIZE(result, buf.len);
	return result;
}

/* ── Reading ─────────────────────────────────────────────────────────────────────── */

typedef struct Reader
{
	const uint8 *data;
	Size		len;
	Size		pos;
	/* numerics read are used at once (added into partial states that copy them): a few
	 * buffers reused in turn instead of an allocation per number */
	Numeric		scratch[4];
	Size		scratch_cap[4];
	int			next_scratch;
} Reader;

static void pg_attribute_noreturn()
damaged(const char *what)
{
	ereport(ERROR,
			(errcode(ERRCODE_DATA_CORRUPTED),
			 errmsg("damaged meter rollup value"),
			 errdetail("%s", what),
			 errhint("Run SELECT meter.rebuild() to recompute usage from the raw events.")));
}

static uint64
get_varint(Reader *r)
{
	uint64		v = 0;
	int			shift = 0;

	for (;;)
	{
		uint8		b;

		if (r->pos >= r->len || shift > 63)
			damaged("A number runs past the end of the value.");
		b = r->data[r->pos++];
		v |= (uint64) (b & 0x7F) << shift;
		if ((b & 0x80) == 0)
			return v;
		shift += 7;
	}
}

static int64
get_signed(Reader *r)
{
	uint64		v = get_varint(r);

	return (int64) (v >> 1) ^ -(int64) (v & 1);
}

static uint8
get_byte(Reader *r)
{
	if (r->pos >= r->len)
		damaged("The value ends too early.");
	return r->data[r->pos++];
}

static const uint8 *
get_bytes(Reader *r, Size *len)
{
	uint64		n = get_varint(r);
	const uint8 *p;

	if (n > r->len - r->pos)
		damaged("A length runs past the end of the value.");
	p = r->data + r->pos;
	r->pos += n;
	*len = (Size) n;
	return p;
}

static char *
get_string(Reader *r)
{
	Size		len;
	const uint8 *p = get_bytes(r, &len);

	if (memchr(p, '\0', len) != NULL)
		damaged("A string holds a NUL byte.");
	return pnstrdup((const char *) p, len);
}

static Numeric
get_numeric(Reader *r)
{
	Size		len;
	const uint8 *p = get_bytes(r, &len);
	int			i = r->next_scratch++ % 4;
	Numeric		n;

	if (len < sizeof(uint16) || len > 4 * 1024 * 1024)
		damaged("A number has an impossible length.");
	if (r->scratch_cap[i] < VARHDRSZ + len)
	{
		if (r->scratch[i] != NULL)
			pfree(r->scratch[i]);
		r->scratch_cap[i] = Max(VARHDRSZ + len, 32);
		r->scratch[i] = palloc(r->scratch_cap[i]);
	}
	n = r->scratch[i];
	SET_VARSIZE(n, VARHDRSZ + len);
	memcpy(VARDATA(n), p, len);
	return n;
}

static uint64
get_index(Reader *r, uint64 count)
{
	uint64		i = get_varint(r);

	if (i >= count)
		damaged("An index is out of range.");
	return i;
}

static char **
get_dict(Reader *r, int *count)
{
	uint64		n = get_varint(r);
	char	  **items;

	if (n > r->len - r->pos)
		damaged("A dictionary is longer than the value.");
	items = palloc(sizeof(char *) * (n + 1));
	for (uint64 i = 0; i < n; i++)
		items[i] = get_string(r);
	*count = (int) n;
	return items;
}

static void
reader_start(Reader *r, bytea *stored)
{
	memset(r, 0, sizeof(Reader));
	r->data = (const uint8 *) VARDATA_ANY(stored);
	r->len = VARSIZE_ANY_EXHDR(stored);
	r->pos = 0;
	if (get_byte(r) != SLOTSET_VERSION)
		damaged("Unknown version of the stored form.");
}

/* Past the flags and tags. */
static void
skip_tags(Reader *r)
{
	uint64		n;

	(void) get_byte(r);
	n = get_varint(r);
	for (uint64 i = 0; i < n; i++)
		(void) get_signed(r);
}

int64 *
slotset_tags(bytea *stored, int *n)
{
	Reader		r;
	uint64		k;
	int64	   *tags;

	reader_start(&r, stored);
	(void) get_byte(&r);
	k = get_varint(&r);
	if (k > r.len - r.pos)
		damaged("More tags than bytes.");
	tags = palloc(sizeof(int64) * (k + 1));
	for (uint64 i = 0; i < k; i++)
		tags[i] = get_signed(&r);
	*n = (int) k;
	return tags;
}

char	  **
slotset_dim_keys(bytea *stored, int *n)
{
	Reader		r;

	reader_start(&r, stored);
	skip_tags(&r);
	(void) get_signed(&r);
	return get_dict(&r, n);
}

/* A numeric read only to be added to some partial states: NULL when none wants it. */
static Numeric
get_numeric_for(Reader *r, Partial **into)
{
	if (into[0] == NULL && into[1] == NULL)
	{
		Size		len;

		(void) get_bytes(r, &len);
		return NULL;
	}
	return get_numeric(r);
}

/* The hashes of a dictionary's strings, computed once per decode (COUNT_UNIQUE values
 * meet many partial states). */
static uint32 *
dict_hashes(char **strings, int n)
{
	uint32	   *h = palloc(sizeof(uint32) * (n + 1));

	for (int i = 0; i < n; i++)
		h[i] = partial_unique_hash(strings[i]);
	return h;
}

/* Read one entry's partial state and add it to into[0] and into[1] (each may be NULL). */
static void
get_partial(Reader *r, Partial **into, const Aggregation *agg, TimestampTz slot,
			uint8 flags, char **strings, const uint32 *hashes, int nstrings,
			BucketRemap remap, void *arg)
{
	int64		events = get_signed(r);
	int64		n = (flags & E_N) ? get_signed(r) : events;
	Numeric		sum = NULL,
				sum_vt = NULL,
				best = NULL;
	TimestampTz best_ts = slot;

	if (flags & E_SUM)
		sum = get_numeric_for(r, into);
	if (flags & E_SUM_VT)
		sum_vt = get_numeric_for(r, into);
	for (int t = 0; t < 2; t++)
		if (into[t] != NULL)
		{
			into[t]->events += events;
			into[t]->n += n;
			partial_add_sums(into[t], sum, sum_vt, 1);
		}
	if (flags & E_SCALES)
	{
		uint64		k = get_varint(r);

		for (uint64 i = 0; i < k; i++)
		{
			int32		scale = (int32) get_varint(r);
			int64		count = get_signed(r);

			for (int t = 0; t < 2; t++)
				if (into[t] != NULL)
					partial_set_scale(into[t], scale, count);
		}
	}
	if (flags & E_BEST)
	{
		best = get_numeric_for(r, into);
		if (agg->type == AGG_LATEST)
			best_ts = slot + get_signed(r);
		for (int t = 0; t < 2; t++)
			if (into[t] != NULL)
				partial_best_offer(into[t], agg, best, best_ts);
	}
	if (flags & E_UNIQUES)
	{
		uint64		k = get_varint(r);

		for (uint64 i = 0; i < k; i++)
		{
			int			s = (int) get_index(r, nstrings);
			int64		refs = get_signed(r);

			for (int t = 0; t < 2; t++)
				if (into[t] != NULL)
					partial_unique_add_hashed(into[t], strings[s], hashes[s], refs);
		}
	}
	if (flags & E_MAXIMA)
	{
		uint64		k = get_varint(r);

		for (uint64 i = 0; i < k; i++)
		{
			TimestampTz bucket = slot + get_signed(r);
			uint64		g = get_index(r, (uint64) nstrings + 1);
			Numeric		v = get_numeric_for(r, into);

			for (int t = 0; t < 2; t++)
				if (into[t] != NULL)
					partial_max_offer(into[t], remap ? remap(bucket, arg) : bucket,
									  g == 0 ? NULL : strings[g - 1], v);
		}
	}
}

/* Past the header: tags, base slot and the dictionaries; returns the customer count. */
static uint64
reader_skip_to_customers(Reader *r, int64 *base, char ***dims, int *ndims,
						 char ***strings, int *nstrings)
{
	int			nkeys;
	uint64		n;

	skip_tags(r);
	*base = get_signed(r);
	(void) get_dict(r, &nkeys);
	*dims = get_dict(r, ndims);
	*strings = get_dict(r, nstrings);
	n = get_varint(r);
	if (n > r->len - r->pos)
		damaged("The customer list is longer than the value.");
	return n;
}

void
slotset_customers(bytea *stored, SlotCustomerVisitor visit, void *arg)
{
	Reader		r;
	int64		base;
	char	  **dims,
			  **strings;
	int			ndims,
				nstrings;
	uint64		n;

	reader_start(&r, stored);
	n = reader_skip_to_customers(&r, &base, &dims, &ndims, &strings, &nstrings);
	for (uint64 c = 0; c < n; c++)
	{
		char	   *customer = get_string(&r);
		char	   *external = get_string(&r);
		int64		events;
		Size		nbytes;

		(void) get_varint(&r);
		events = get_signed(&r);
		(void) get_varint(&r);
		(void) get_bytes(&r, &nbytes);
		(void) get_bytes(&r, &nbytes);
		visit(customer, external, events, arg);
	}
}

/* Read a customer's entries (or day totals: no slot number, the day's first slot) from
 * a block into the target. */
static void
get_block(Reader *e, uint64 nentries, bool totals, TimestampTz day, SlotKey *key,
		  int64 base, char **dims, int ndims, char **strings, int nstrings, uint32 **hashes,
		  const Aggregation *agg, SlotTarget target, BucketRemap remap, void *arg)
{
	for (uint64 i = 0; i < nentries; i++)
	{
		int64		slotno = totals ? 0 : base + (int64) get_varint(e);
		uint64		d = ndims > 1 ? get_index(e, ndims) : 0;
		uint8		flags;
		Partial    *into[2] = {NULL, NULL};

		if (ndims == 0 || slotno > END_TIMESTAMP / SLOT_USECS ||
			slotno < MIN_TIMESTAMP / SLOT_USECS - 1)
			damaged("An entry points outside the value.");
		key->slot = totals ? day : slotno * SLOT_USECS;
		key->dims = dims[d];
		flags = get_byte(e);
		target(key, (flags & E_MARK) != 0, arg, into);
		if (*hashes == NULL && (flags & E_UNIQUES))
			*hashes = dict_hashes(strings, nstrings);
		get_partial(e, into, agg, key->slot, flags, strings, *hashes, nstrings, remap, arg);
	}
	if (e->pos != e->len)
		damaged("Extra bytes after a customer's entries.");
}

static void
decode(bytea *stored, const Aggregation *agg, const char *customer,
	   const char *external_customer, SlotTarget target, BucketRemap remap, void *arg,
	   bool days)
{
	Reader		r;
	int64		base;
	int			ndims,
				nstrings;
	uint64		ncustomers;
	char	  **dims;
	char	  **strings;
	uint32	   *hashes = NULL;

	reader_start(&r, stored);
	ncustomers = reader_skip_to_customers(&r, &base, &dims, &ndims, &strings, &nstrings);
	for (uint64 c = 0; c < ncustomers; c++)
	{
		SlotKey		key;
		uint64		nentries,
					ntotals;
		Size		nbytes,
					ntbytes;
		const uint8 *block,
				   *tblock;
		Reader		e;
		bool		use_totals;

		key.customer = get_string(&r);
		key.external_customer = get_string(&r);
		nentries = get_varint(&r);
		(void) get_signed(&r);
		ntotals = get_varint(&r);
		tblock = get_bytes(&r, &ntbytes);
		block = get_bytes(&r, &nbytes);
		if ((customer != NULL && strcmp(customer, key.customer) != 0) ||
			(external_customer != NULL && strcmp(external_customer, key.external_customer) != 0))
			continue;
		use_totals = days && ntotals > 0;
		if ((use_totals ? ntotals : nentries) > (use_totals ? ntbytes : nbytes))
			damaged("A customer has more entries than bytes.");
		e = r;					/* its number buffers, reused */
		e.data = use_totals ? tblock : block;
		e.len = use_totals ? ntbytes : nbytes;
		e.pos = 0;
		get_block(&e, use_totals ? ntotals : nentries, use_totals,
				  (TimestampTz) floor_div64(base * SLOT_USECS, USECS_PER_DAY) * USECS_PER_DAY,
				  &key, base, dims, ndims, strings, nstrings, &hashes, agg, target, remap, arg);
		memcpy(r.scratch, e.scratch, sizeof(r.scratch));
		memcpy(r.scratch_cap, e.scratch_cap, sizeof(r.scratch_cap));
	}
	if (r.pos != r.len)
		damaged("Extra bytes after the last customer.");
}

void
slotset_decode(bytea *stored, const Aggregation *agg, const char *customer,
			   const char *external_customer, SlotTarget target, BucketRemap remap, void *arg)
{
	decode(stored, agg, customer, external_customer, target, remap, arg, false);
}

void
slotset_decode_days(bytea *stored, const Aggregation *agg, const char *customer,
					const char *external_customer, SlotTarget target, void *arg)
{
	decode(stored, agg, customer, external_customer, target, NULL, arg, true);
}
