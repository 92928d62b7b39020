/*
 * slotset.c — sets of per-slot partial states in memory, and their stored form.
 *
 * Stored form (version 1), integers as LEB128 varints (signed ones zigzag-encoded),
 * strings and numerics as a varint length and bytes (a numeric's bytes are its on-disk
 * form without the varlena header):
 *   version 1, flags (bit 0: one customer, whose index entries omit)
 *   base slot number (zigzag; slot number = slot start / 15 minutes)
 *   dimension keys:    count, names
 *   customers:         count, (customer, external customer) pairs
 *   dimension values:  count, encoded values
 *   strings:           count, COUNT_UNIQUE identities and group_by values
 *   entries:           count, each
 *       [customer index], slot number - base, [dims index when more than one], flags,
 *       events, [n when it differs from events], [Σv], [Σv·t], [scales: count, (scale,
 *       count)…], [best, LATEST: its time - slot start], [uniques: count, (string, refs)…],
 *       [maxima: count, (bucket - slot start, group string + 1 or 0 for none, max)…]
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
#define SET_ONE_CUSTOMER 0x01

#define E_MARK		0x01
#define E_N			0x02
#define E_SUM		0x04
#define E_SUM_VT	0x08
#define E_SCALES	0x10
#define E_BEST		0x20
#define E_UNIQUES	0x40
#define E_MAXIMA	0x80

/* ── The set in memory ───────────────────────────────────────────────────────────── */

static uint32
slotkey_hash(const void *key, Size keysize)
{
	const SlotKey *k = key;
	uint32		h = hash_bytes((const unsigned char *) k->external_customer, strlen(k->external_customer));

	h = hash_combine(h, hash_bytes((const unsigned char *) k->customer, strlen(k->customer)));
	h = hash_combine(h, murmurhash32((uint32) ((uint64) k->slot ^ ((uint64) k->slot >> 32))));
	return hash_combine(h, hash_bytes((const unsigned char *) k->dims, strlen(k->dims)));
}

int
slotkey_compare(const SlotKey *a, const SlotKey *b)
{
	int			c = strcmp(a->external_customer, b->external_customer);

	if (c == 0)
		c = strcmp(a->customer, b->customer);
	if (c == 0 && a->slot != b->slot)
		c = a->slot < b->slot ? -1 : 1;
	if (c == 0)
		c = strcmp(a->dims, b->dims);
	return c;
}

static int
slotkey_match(const void *a, const void *b, Size keysize)
{
	return slotkey_compare(a, b) != 0;
}

SlotSet *
slotset_create(MemoryContext cxt)
{
	SlotSet    *set = MemoryContextAllocZero(cxt, sizeof(SlotSet));
	HASHCTL		ctl;

	set->cxt = cxt;
	ctl.keysize = sizeof(SlotKey);
	ctl.entrysize = sizeof(SlotEntry);
	ctl.hash = slotkey_hash;
	ctl.match = slotkey_match;
	ctl.hcxt = cxt;
	set->entries = hash_create("meter slot set", 256, &ctl,
							   HASH_ELEM | HASH_FUNCTION | HASH_COMPARE | HASH_CONTEXT);
	return set;
}

long
slotset_count(const SlotSet *set)
{
	return hash_get_num_entries(set->entries);
}

SlotEntry *
slotset_entry(SlotSet *set, const SlotKey *key)
{
	bool		found;
	SlotEntry  *e = hash_search(set->entries, key, HASH_ENTER, &found);

	if (!found)
	{
		e->key.customer = MemoryContextStrdup(set->cxt, key->customer);
		e->key.external_customer = MemoryContextStrdup(set->cxt, key->external_customer);
		e->key.dims = MemoryContextStrdup(set->cxt, key->dims);
		e->key.slot = key->slot;
		e->mark = false;
		partial_init(&e->partial, set->cxt);
		set->bytes += sizeof(SlotEntry) + strlen(key->customer) + strlen(key->external_customer)
			+ strlen(key->dims) + 64;
	}
	return e;
}

static int
entry_order(const void *a, const void *b)
{
	return slotkey_compare(&(*(SlotEntry *const *) a)->key, &(*(SlotEntry *const *) b)->key);
}

SlotEntry **
slotset_sorted(SlotSet *set, int *n)
{
	HASH_SEQ_STATUS seq;
	SlotEntry  *e;
	SlotEntry **all = palloc(sizeof(SlotEntry *) * (hash_get_num_entries(set->entries) + 1));
	int			i = 0;

	hash_seq_init(&seq, set->entries);
	while ((e = hash_seq_search(&seq)) != NULL)
		all[i++] = e;
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
typedef struct StringDict
{
	HTAB	   *index;
	int			count;
	const char **items;
	int			cap;
} StringDict;

typedef struct DictEntry
{
	const char *key;
	int			index;
} DictEntry;

static uint32
dict_hash(const void *key, Size keysize)
{
	const char *s = *(const char *const *) key;

	return hash_bytes((const unsigned char *) s, strlen(s));
}

static int
dict_match(const void *a, const void *b, Size keysize)
{
	return strcmp(*(const char *const *) a, *(const char *const *) b);
}

static void
dict_init(StringDict *d)
{
	HASHCTL		ctl;

	ctl.keysize = sizeof(const char *);
	ctl.entrysize = sizeof(DictEntry);
	ctl.hash = dict_hash;
	ctl.match = dict_match;
	ctl.hcxt = CurrentMemoryContext;
	d->index = hash_create("meter slot set strings", 64, &ctl,
						   HASH_ELEM | HASH_FUNCTION | HASH_COMPARE | HASH_CONTEXT);
	d->count = 0;
	d->cap = 16;
	d->items = palloc(sizeof(char *) * d->cap);
}

static int
dict_add(StringDict *d, const char *s)
{
	bool		found;
	DictEntry  *e = hash_search(d->index, &s, HASH_ENTER, &found);

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
	return e->index;
}

static int
dict_find(StringDict *d, const char *s)
{
	DictEntry  *e = hash_search(d->index, &s, HASH_FIND, NULL);

	Assert(e != NULL);
	return e->index;
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

bytea *
slotset_encode(SlotEntry **entries, int n, const Aggregation *agg, int ndim_keys,
			   const char *const *dim_keys)
{
	StringInfoData buf;
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

		if (i == 0 || strcmp(k->customer, entries[i - 1]->key.customer) != 0 ||
			strcmp(k->external_customer, entries[i - 1]->key.external_customer) != 0)
			ncustomers++;
		base = Min(base, slot_number(k->slot));
		dict_add(&dims, k->dims);
		collect_strings(&entries[i]->partial, &strings);
	}
	if (n == 0)
		base = 0;

	initStringInfo(&buf);
	appendBinaryStringInfo(&buf, "\0\0\0\0", VARHDRSZ);
	appendStringInfoCharMacro(&buf, SLOTSET_VERSION);
	appendStringInfoCharMacro(&buf, (char) (ncustomers == 1 ? SET_ONE_CUSTOMER : 0));
	put_signed(&buf, base);
	put_varint(&buf, ndim_keys);
	for (int i = 0; i < ndim_keys; i++)
		put_string(&buf, dim_keys[i]);
	put_varint(&buf, ncustomers);
	for (int i = 0; i < n; i++)
	{
		const SlotKey *k = &entries[i]->key;

		if (i == 0 || strcmp(k->customer, entries[i - 1]->key.customer) != 0 ||
			strcmp(k->external_customer, entries[i - 1]->key.external_customer) != 0)
		{
			put_string(&buf, k->customer);
			put_string(&buf, k->external_customer);
		}
	}
	put_dict(&buf, &dims);
	put_dict(&buf, &strings);
	put_varint(&buf, n);
	ncustomers = -1;
	for (int i = 0; i < n; i++)
	{
		const SlotKey *k = &entries[i]->key;

		if (i == 0 || strcmp(k->customer, entries[i - 1]->key.customer) != 0 ||
			strcmp(k->external_customer, entries[i - 1]->key.external_customer) != 0)
			ncustomers++;
		if (buf.data[VARHDRSZ + 1] != SET_ONE_CUSTOMER)
			put_varint(&buf, ncustomers);
		put_varint(&buf, slot_number(k->slot) - base);
		if (dims.count > 1)
			put_varint(&buf, dict_find(&dims, k->dims));
		put_partial(&buf, &entries[i]->partial, agg, k->slot, entries[i]->mark, &strings);
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
	Numeric		n;

	if (len < sizeof(uint16) || len > 4 * 1024 * 1024)
		damaged("A number has an impossible length.");
	n = palloc(VARHDRSZ + len);
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
	r->data = (const uint8 *) VARDATA_ANY(stored);
	r->len = VARSIZE_ANY_EXHDR(stored);
	r->pos = 0;
	if (get_byte(r) != SLOTSET_VERSION)
		damaged("Unknown version of the stored form.");
}

char	  **
slotset_dim_keys(bytea *stored, int *n)
{
	Reader		r;

	reader_start(&r, stored);
	(void) get_byte(&r);
	(void) get_signed(&r);
	return get_dict(&r, n);
}

/* Read one entry's partial state and add it to target (NULL: skip it). */
static void
get_partial(Reader *r, Partial *target, const Aggregation *agg, TimestampTz slot,
			uint8 flags, char **strings, int nstrings, BucketRemap remap, void *arg)
{
	int64		events = get_signed(r);
	int64		n = (flags & E_N) ? get_signed(r) : events;

	if (target != NULL)
	{
		target->events += events;
		target->n += n;
	}
	if (flags & E_SUM)
	{
		Numeric		v = get_numeric(r);

		if (target != NULL)
			partial_add_sums(target, v, NULL, 1);
	}
	if (flags & E_SUM_VT)
	{
		Numeric		v = get_numeric(r);

		if (target != NULL)
			partial_add_sums(target, NULL, v, 1);
	}
	if (flags & E_SCALES)
	{
		uint64		k = get_varint(r);

		for (uint64 i = 0; i < k; i++)
		{
			int32		scale = (int32) get_varint(r);
			int64		count = get_signed(r);

			if (target != NULL)
				partial_set_scale(target, scale, count);
		}
	}
	if (flags & E_BEST)
	{
		Numeric		v = get_numeric(r);
		TimestampTz ts = agg->type == AGG_LATEST ? slot + get_signed(r) : slot;

		if (target != NULL)
			partial_best_offer(target, agg, v, ts);
	}
	if (flags & E_UNIQUES)
	{
		uint64		k = get_varint(r);

		for (uint64 i = 0; i < k; i++)
		{
			int			s = (int) get_index(r, nstrings);
			int64		refs = get_signed(r);

			if (target != NULL)
				partial_unique_add(target, strings[s], refs);
		}
	}
	if (flags & E_MAXIMA)
	{
		uint64		k = get_varint(r);

		for (uint64 i = 0; i < k; i++)
		{
			TimestampTz bucket = slot + get_signed(r);
			uint64		g = get_index(r, (uint64) nstrings + 1);
			Numeric		v = get_numeric(r);

			if (target != NULL)
				partial_max_offer(target, remap ? remap(bucket, arg) : bucket,
								  g == 0 ? NULL : strings[g - 1], v);
		}
	}
}

void
slotset_decode(bytea *stored, const Aggregation *agg, SlotTarget target, BucketRemap remap,
			   void *arg)
{
	Reader		r;
	uint8		setflags;
	int64		base;
	int			nkeys,
				ndims,
				nstrings;
	uint64		ncustomers,
				nentries;
	char	  **customers;
	char	  **dims;
	char	  **strings;

	reader_start(&r, stored);
	setflags = get_byte(&r);
	base = get_signed(&r);
	(void) get_dict(&r, &nkeys);
	ncustomers = get_varint(&r);
	if (ncustomers > r.len - r.pos)
		damaged("The customer list is longer than the value.");
	customers = palloc(sizeof(char *) * 2 * (ncustomers + 1));
	for (uint64 i = 0; i < ncustomers; i++)
	{
		customers[2 * i] = get_string(&r);
		customers[2 * i + 1] = get_string(&r);
	}
	dims = get_dict(&r, &ndims);
	strings = get_dict(&r, &nstrings);
	nentries = get_varint(&r);
	if (nentries > r.len - r.pos)
		damaged("The entry list is longer than the value.");
	for (uint64 i = 0; i < nentries; i++)
	{
		SlotKey		key;
		uint64		c = (setflags & SET_ONE_CUSTOMER) ? 0 : get_index(&r, ncustomers);
		int64		slotno = base + (int64) get_varint(&r);
		uint64		d = ndims > 1 ? get_index(&r, ndims) : 0;
		uint8		flags;
		Partial    *into;

		if (c >= ncustomers || (ndims == 0) || slotno > END_TIMESTAMP / SLOT_USECS ||
			slotno < MIN_TIMESTAMP / SLOT_USECS - 1)
			damaged("An entry points outside the value.");
		key.customer = customers[2 * c];
		key.external_customer = customers[2 * c + 1];
		key.slot = slotno * SLOT_USECS;
		key.dims = dims[d];
		flags = get_byte(&r);
		into = target(&key, (flags & E_MARK) != 0, arg);
		get_partial(&r, into, agg, key.slot, flags, strings, nstrings, remap, arg);
	}
	if (r.pos != r.len)
		damaged("Extra bytes after the last entry.");
}
