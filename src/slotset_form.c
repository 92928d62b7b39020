/*
 * slotset_form.c — the stored form of slot sets (see slotset.h).
 *
 * Stored form (version 2), integers as LEB128 varints (signed ones zigzag-encoded),
 * strings and numerics as a varint length and bytes (a numeric's bytes are its on-disk
 * form without the varlena header). A directory, then a tail: a reader that takes only
 * counts reads the directory alone (slotset_directory_size: a slice of a TOASTed value),
 * never the distinct values that make up most of a COUNT_UNIQUE row.
 *   version 2, flags (reserved, 0), the directory's end (4 bytes, little-endian: offset
 *                      of the tail from the version byte)
 *   tags:              count, zigzag numbers (the writer's own)
 *   base slot number (zigzag; slot number = slot start / 15 minutes)
 *   dimension keys:    count, names
 *   dimension values:  count, encoded values
 *   customers:         count, each (customer, external customer — NUL-terminated, read
 *                      in place — entry count, the events
 *                      its entries count (Σ events), day-total count, its counts
 *                      (length-prefixed), the byte lengths of its day totals and of its
 *                      entries in the tail)
 * tail:
 *   strings:           count, then the entries' bytes (length-prefixed): each string
 *                      length-prefixed and NUL-terminated (readers use it in place);
 *                      COUNT_UNIQUE identities and group_by values
 *   per customer, in the directory's order: its day totals, then its entries — so a
 *   reader looking for one customer skips the others' entries unread, one whose window
 *   holds the whole day reads only the totals, and one whose cell is one UTC hour or day
 *   of a COUNT_UNIQUE meter reads only the counts
 *   day total:  [dims index when more than one], then as an entry's flags onwards
 *   counts (COUNT_UNIQUE, compacted rows):  count, each (period: UTC hour 0 … 23 or 24
 *       for the day, events, n, distinct values), every hour with entries and the day
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

#define SLOTSET_VERSION 2

#define E_MARK		0x01
#define E_N			0x02
#define E_SUM		0x04
#define E_SUM_VT	0x08
#define E_SCALES	0x10
#define E_BEST		0x20
#define E_UNIQUES	0x40
#define E_MAXIMA	0x80

/* Count periods: the UTC hours 0 … 23, and the whole day. */
#define COUNT_DAY	24
#define ALL_HOURS	((uint32) 0xFFFFFF)

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

/* A string readers use in place: length-prefixed and NUL-terminated. */
static void
put_cstring(StringInfo buf, const char *s)
{
	put_string(buf, s);
	appendStringInfoCharMacro(buf, '\0');
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
#define SH_HASH_KEY(tb, k) partial_unique_hash(k)
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

/* The same for a string whose hash (partial_unique_hash) is known. */
static int
dict_add_hashed(StringDict *d, const char *s, uint32 hash)
{
	bool		found;
	DictElem   *e = dicttab_insert_hash(d->index, s, hash, &found);

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
	return dict_add(d, s);
}

static void
put_dict(StringInfo buf, const StringDict *d)
{
	put_varint(buf, d->count);
	for (int i = 0; i < d->count; i++)
		put_string(buf, d->items[i]);
}

/* The strings dictionary: count, then its entries' bytes (length-prefixed, so a reader
 * that needs none of them skips it at once), each string NUL-terminated (read in place). */
static void
put_strings(StringInfo buf, const StringDict *d)
{
	StringInfoData items;

	initStringInfo(&items);
	for (int i = 0; i < d->count; i++)
	{
		put_string(&items, d->items[i]);
		appendStringInfoCharMacro(&items, '\0');
	}
	put_varint(buf, d->count);
	put_bytes(buf, items.data, items.len);
	pfree(items.data);
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
	MaxEntry  **m = NULL;
	int			nm = 0;

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
		flags |= E_UNIQUES;
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
		uniqueset_iterator it;
		UniqueEntry *e;

		/* in the set's own order: readers need no order, and sorting costs */
		put_varint(buf, p->uniques->members);
		uniqueset_start_iterate(p->uniques, &it);
		while ((e = uniqueset_iterate(p->uniques, &it)) != NULL)
		{
			put_varint(buf, dict_add_hashed(strings, e->key, e->hash));
			put_signed(buf, e->refs);
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
		uniqueset_iterator it;
		UniqueEntry *e;

		uniqueset_start_iterate(p->uniques, &it);
		while ((e = uniqueset_iterate(p->uniques, &it)) != NULL)
			dict_add_hashed(strings, e->key, e->hash);
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

/* A set of borrowed strings with their known hashes: counting distinct values. */
typedef struct KeyElem
{
	const char *key;
	uint32		hash;
	char		status;
} KeyElem;

#define SH_PREFIX keyset
#define SH_ELEMENT_TYPE KeyElem
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

static void
keyset_add_uniques(struct keyset_hash *set, const Partial *p)
{
	uniqueset_iterator it;
	UniqueEntry *e;
	bool		found;

	if (p->uniques == NULL)
		return;
	uniqueset_start_iterate(p->uniques, &it);
	while ((e = uniqueset_iterate(p->uniques, &it)) != NULL)
		(void) keyset_insert_hash(set, e->key, e->hash, &found);
}

static void
put_count(StringInfo out, int period, int64 events, int64 n, uint64 distinct)
{
	put_varint(out, period);
	put_signed(out, events);
	put_signed(out, n);
	put_varint(out, distinct);
}

/* COUNT_UNIQUE: how many distinct values one customer's entries (one day, every
 * dimension value) hold per UTC hour and in the day, so that a reader whose cell is
 * exactly that hour or day takes the number instead of the values. */
static void
put_counts(StringInfo out, SlotEntry **entries, int n)
{
	TimestampTz day = (TimestampTz) slot_day(entries[0]->key.slot) * USECS_PER_DAY;
	struct keyset_hash *hour = keyset_create(CurrentMemoryContext, 256, NULL);
	struct keyset_hash *whole = keyset_create(CurrentMemoryContext, 256, NULL);
	int64		day_events = 0,
				day_n = 0;
	StringInfoData list;
	int			k = 0;

	initStringInfo(&list);
	for (int i = 0; i < n;)
	{
		int64		h = (entries[i]->key.slot - day) / USECS_PER_HOUR;
		int64		events = 0,
					vn = 0;

		keyset_reset(hour);
		for (; i < n && (entries[i]->key.slot - day) / USECS_PER_HOUR == h; i++)
		{
			events += entries[i]->partial.events;
			vn += entries[i]->partial.n;
			keyset_add_uniques(hour, &entries[i]->partial);
			keyset_add_uniques(whole, &entries[i]->partial);
		}
		put_count(&list, (int) h, events, vn, hour->members);
		day_events += events;
		day_n += vn;
		k++;
	}
	put_count(&list, COUNT_DAY, day_events, day_n, whole->members);
	put_varint(out, k + 1);
	appendBinaryStringInfo(out, list.data, list.len);
	pfree(list.data);
	keyset_destroy(hour);
	keyset_destroy(whole);
}

bytea *
slotset_encode(SlotEntry **entries, int n, const Aggregation *agg, int ndim_keys,
			   const char *const *dim_keys, const int64 *tags, int ntags, bool day_summaries)
{
	StringInfoData buf;
	StringInfoData block;
	StringInfoData totals;
	StringInfoData counts;
	StringInfoData tail;
	StringDict	dims,
				strings;
	uint32		dir_end;
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
	appendBinaryStringInfo(&buf, "\0\0\0\0", 4);	/* the directory's end, below */
	put_varint(&buf, ntags);
	for (int i = 0; i < ntags; i++)
		put_signed(&buf, tags[i]);
	put_signed(&buf, base);
	put_varint(&buf, ndim_keys);
	for (int i = 0; i < ndim_keys; i++)
		put_string(&buf, dim_keys[i]);
	put_dict(&buf, &dims);
	put_varint(&buf, ncustomers);
	initStringInfo(&tail);
	put_strings(&tail, &strings);
	initStringInfo(&block);
	initStringInfo(&totals);
	initStringInfo(&counts);
	for (int i = 0; i < n;)
	{
		const SlotKey *k = &entries[i]->key;
		int			first = i;
		int64		events = 0;
		int			ntotals = 0;

		resetStringInfo(&block);
		resetStringInfo(&totals);
		resetStringInfo(&counts);
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
		if (day_summaries && agg->type == AGG_COUNT_UNIQUE)
			put_counts(&counts, entries + first, i - first);
		put_cstring(&buf, k->customer);
		put_cstring(&buf, k->external_customer);
		put_varint(&buf, i - first);
		put_signed(&buf, events);
		put_varint(&buf, ntotals);
		put_bytes(&buf, counts.data, counts.len);
		put_varint(&buf, totals.len);
		put_varint(&buf, block.len);
		appendBinaryStringInfo(&tail, totals.data, totals.len);
		appendBinaryStringInfo(&tail, block.data, block.len);
	}
	dir_end = (uint32) (buf.len - VARHDRSZ);
	for (int i = 0; i < 4; i++)
		buf.data[VARHDRSZ + 2 + i] = (char) ((dir_end >> (8 * i)) & 0xFF);
	appendBinaryStringInfo(&buf, tail.data, tail.len);
	pfree(tail.data);
	result = (bytea *) buf.data;
	SET_VARSIZE(result, buf.len);
	return result;
}

/* ── Reading ─────────────────────────────────────────────────────────────────────── */

/* Numerics read are used at once (added into partial states that copy them): a few
 * buffers reused in turn instead of an allocation per number. */
typedef struct Scratch
{
	Numeric		buf[4];
	Size		cap[4];
	int			next;
} Scratch;

typedef struct Reader
{
	const uint8 *data;
	Size		len;
	Size		pos;
	Scratch    *scratch;		/* shared by a value's readers */
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

/* A string written by put_cstring, in place: valid as long as the value read. */
static const char *
get_cstring(Reader *r)
{
	Size		len;
	const uint8 *p = get_bytes(r, &len);

	if (r->pos >= r->len || r->data[r->pos] != '\0' || memchr(p, '\0', len) != NULL)
		damaged("A string is not terminated where its length says.");
	r->pos++;
	return (const char *) p;
}

static Numeric
get_numeric(Reader *r)
{
	Size		len;
	const uint8 *p = get_bytes(r, &len);
	Scratch    *s = r->scratch;
	int			i = s->next++ % 4;
	Numeric		n;

	if (len < sizeof(uint16) || len > 4 * 1024 * 1024)
		damaged("A number has an impossible length.");
	if (s->cap[i] < VARHDRSZ + len)
	{
		if (s->buf[i] != NULL)
			pfree(s->buf[i]);
		s->cap[i] = Max(VARHDRSZ + len, 32);
		s->buf[i] = palloc(s->cap[i]);
	}
	n = s->buf[i];
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

/* Past the version, the flags and the directory's end; returns that end (the bytes a
 * directory-only read needs). The value may be a prefix holding at least them. */
static Size
reader_start(Reader *r, bytea *stored)
{
	uint32		dir_end = 0;

	memset(r, 0, sizeof(Reader));
	r->scratch = palloc0(sizeof(Scratch));
	r->data = (const uint8 *) VARDATA_ANY(stored);
	r->len = VARSIZE_ANY_EXHDR(stored);
	r->pos = 0;
	if (get_byte(r) != SLOTSET_VERSION)
		damaged("Unknown version of the stored form.");
	(void) get_byte(r);
	for (int i = 0; i < 4; i++)
		dir_end |= (uint32) get_byte(r) << (8 * i);
	if (dir_end < r->pos)
		damaged("The directory ends before it starts.");
	return dir_end;
}

/* Past the tags. */
static void
skip_tags(Reader *r)
{
	uint64		n;

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

	(void) reader_start(&r, stored);
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

	(void) reader_start(&r, stored);
	skip_tags(&r);
	(void) get_signed(&r);
	return get_dict(&r, n);
}

Size
slotset_directory_size(bytea *head)
{
	Reader		r;

	return reader_start(&r, head);
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

/*
 * The strings dictionary, resolved lazily: most reads never need it (a customer's
 * entries skipped, counts taken instead of identities), and those that do need only the
 * strings their entries name. Strings are stored NUL-terminated: read in place.
 */
typedef struct Strings
{
	const uint8 *data;			/* the dictionary's entries */
	Size		len;
	int			n;
	const char **str;			/* NULL until resolved */
	uint32	   *hash;
	uint32	   *lens;
	bool	   *hashed;
	MemoryContext lasting;		/* not NULL: copied there, and handed to states as they
								 * are (partial_unique_add_lasting) */
} Strings;

static void
get_strings(Reader *r, Strings *d)
{
	uint64		n = get_varint(r);
	Size		len;

	d->data = get_bytes(r, &len);
	d->len = len;
	if (n > len)
		damaged("A dictionary is longer than the value.");
	d->n = (int) n;
	d->str = NULL;
}

static void
strings_resolve(Strings *d)
{
	Reader		r = {0};

	if (d->lasting != NULL)
		d->data = memcpy(MemoryContextAlloc(d->lasting, Max(d->len, 1)), d->data, d->len);
	r.data = d->data;
	r.len = d->len;
	d->str = palloc(sizeof(char *) * (d->n + 1));
	d->hash = palloc(sizeof(uint32) * (d->n + 1));
	d->lens = palloc(sizeof(uint32) * (d->n + 1));
	d->hashed = palloc0(sizeof(bool) * (d->n + 1));
	for (int i = 0; i < d->n; i++)
	{
		Size		len;
		const uint8 *p = get_bytes(&r, &len);

		if (r.pos >= r.len || r.data[r.pos] != '\0' || memchr(p, '\0', len) != NULL)
			damaged("A dictionary string is not terminated where its length says.");
		r.pos++;
		d->str[i] = (const char *) p;
		d->lens[i] = (uint32) len;
	}
	if (r.pos != r.len)
		damaged("Extra bytes after the dictionary.");
}

static inline const char *
strings_get(Strings *d, uint64 i)
{
	if (d->str == NULL)
		strings_resolve(d);
	return d->str[i];
}

/* A string's hash, computed once per decode (COUNT_UNIQUE values meet many states). */
static inline uint32
strings_hash(Strings *d, uint64 i)
{
	if (d->str == NULL)
		strings_resolve(d);
	if (!d->hashed[i])
	{
		d->hash[i] = partial_unique_hash_len(d->str[i], d->lens[i]);
		d->hashed[i] = true;
	}
	return d->hash[i];
}

/* One decode: the value's header, and what the caller wants of it. */
typedef struct Decode
{
	Reader		r;
	int64		base;
	char	  **dims;
	int			ndims;
	Strings		strings;
	const Aggregation *agg;
	SlotTarget	target;
	SlotCountTarget counts;
	BucketRemap remap;
	void	   *arg;
	bool		directory_only; /* the tail (strings, blocks) is not read */
	Reader		tail;			/* after the directory: strings, then the blocks */
} Decode;

/* Read one entry's partial state and add it to into[0] and into[1] (each may be NULL). */
static void
get_partial(Decode *d, Reader *r, Partial **into, TimestampTz slot, uint8 flags)
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
		if (d->agg->type == AGG_LATEST)
			best_ts = slot + get_signed(r);
		for (int t = 0; t < 2; t++)
			if (into[t] != NULL)
				partial_best_offer(into[t], d->agg, best, best_ts);
	}
	if (flags & E_UNIQUES)
	{
		uint64		k = get_varint(r);

		if (k > (uint64) d->strings.n)
			damaged("An entry holds more distinct values than the dictionary.");
		for (int t = 0; t < 2; t++)
			if (into[t] != NULL)
				partial_unique_reserve(into[t], k);
		for (uint64 i = 0; i < k; i++)
		{
			uint64		s = get_index(r, d->strings.n);
			int64		refs = get_signed(r);

			for (int t = 0; t < 2; t++)
				if (into[t] == NULL)
					continue;
				else if (d->strings.lasting != NULL)
					partial_unique_add_lasting(into[t], strings_get(&d->strings, s),
											   strings_hash(&d->strings, s), refs);
				else
					partial_unique_add_hashed(into[t], strings_get(&d->strings, s),
											  strings_hash(&d->strings, s), refs);
		}
	}
	if (flags & E_MAXIMA)
	{
		uint64		k = get_varint(r);

		for (uint64 i = 0; i < k; i++)
		{
			TimestampTz bucket = slot + get_signed(r);
			uint64		g = get_index(r, (uint64) d->strings.n + 1);
			Numeric		v = get_numeric_for(r, into);

			for (int t = 0; t < 2; t++)
				if (into[t] != NULL)
					partial_max_offer(into[t], d->remap ? d->remap(bucket, d->arg) : bucket,
									  g == 0 ? NULL : strings_get(&d->strings, g - 1), v);
		}
	}
}

/* Past the header: tags, base slot and the dictionaries; returns the customer count.
 * directory_only: stored may be a prefix holding the directory (slotset_directory_size). */
static uint64
decode_start(Decode *d, bytea *stored, bool directory_only)
{
	int			nkeys;
	uint64		n;
	Size		dir_end = reader_start(&d->r, stored);

	if (dir_end > d->r.len)
		damaged("The directory runs past the end of the value.");
	d->directory_only = directory_only;
	d->tail = d->r;
	d->tail.data = d->r.data + dir_end;
	d->tail.len = directory_only ? 0 : d->r.len - dir_end;
	d->tail.pos = 0;
	d->r.len = dir_end;
	skip_tags(&d->r);
	d->base = get_signed(&d->r);
	(void) get_dict(&d->r, &nkeys);
	d->dims = get_dict(&d->r, &d->ndims);
	n = get_varint(&d->r);
	if (n > d->r.len - d->r.pos)
		damaged("The customer list is longer than the value.");
	if (!directory_only)
		get_strings(&d->tail, &d->strings);
	return n;
}

/* The end of a decode: every byte read. */
static void
decode_end(Decode *d)
{
	if (d->r.pos != d->r.len)
		damaged("Extra bytes after the last customer.");
	if (d->tail.pos != d->tail.len)
		damaged("Extra bytes after the last customer's entries.");
}

/* A customer's header: its ids, entry and total counts, and its three blocks. */
typedef struct Block
{
	const char *customer;		/* in place */
	const char *external;
	uint64		nentries;
	int64		events;
	uint64		ntotals;
	Reader		totals;
	Reader		counts;
	Reader		entries;
} Block;

static void
sub_reader(Reader *parent, Reader *sub)
{
	Size		len;

	*sub = *parent;				/* the number buffers, shared */
	sub->data = get_bytes(parent, &len);
	sub->len = len;
	sub->pos = 0;
}

/* The next len bytes of the tail (none in a directory-only decode). */
static void
tail_block(Decode *d, Size len, Reader *sub)
{
	*sub = d->tail;
	sub->pos = 0;
	sub->len = 0;
	if (d->directory_only)
		return;
	if (len > d->tail.len - d->tail.pos)
		damaged("A block runs past the end of the value.");
	sub->data = d->tail.data + d->tail.pos;
	sub->len = len;
	d->tail.pos += len;
}

static void
get_block_header(Decode *d, Block *b)
{
	uint64		totals_len,
				entries_len;

	b->customer = get_cstring(&d->r);
	b->external = get_cstring(&d->r);
	b->nentries = get_varint(&d->r);
	b->events = get_signed(&d->r);
	b->ntotals = get_varint(&d->r);
	sub_reader(&d->r, &b->counts);
	totals_len = get_varint(&d->r);
	entries_len = get_varint(&d->r);
	if (b->nentries > entries_len || b->ntotals > totals_len)
		damaged("A customer has more entries than bytes.");
	tail_block(d, totals_len, &b->totals);
	tail_block(d, entries_len, &b->entries);
}

void
slotset_customers(bytea *stored, SlotCustomerVisitor visit, void *arg)
{
	Decode		d = {0};
	uint64		n = decode_start(&d, stored, true);

	for (uint64 c = 0; c < n; c++)
	{
		Block		b;

		get_block_header(&d, &b);
		visit(b.customer, b.external, b.events, arg);
	}
}

/* The first slot of the UTC day of the value's entries. */
static TimestampTz
decode_day(const Decode *d)
{
	return (TimestampTz) floor_div64(d->base * SLOT_USECS, USECS_PER_DAY) * USECS_PER_DAY;
}

/*
 * Offer a customer's stored counts to the caller: returns the hours (bit h: [h:00,
 * h+1:00) UTC) whose entries the counts taken cover; *present gets the hours that have
 * entries at all.
 */
static uint32
take_counts(Decode *d, Block *b, SlotKey *key, uint32 *present)
{
	Reader	   *r = &b->counts;
	TimestampTz day = decode_day(d);
	uint32		taken = 0;

	*present = 0;
	if (r->len == 0)
		return 0;
	for (uint64 k = get_varint(r); k > 0; k--)
	{
		uint64		period = get_varint(r);
		int64		events = get_signed(r);
		int64		n = get_signed(r);
		int64		distinct = (int64) get_varint(r);
		bool		whole = period == COUNT_DAY;

		if (period > COUNT_DAY)
			damaged("A count names no period of the day.");
		if (!whole)
			*present |= (uint32) 1 << period;
		key->slot = whole ? day : day + (TimestampTz) period * USECS_PER_HOUR;
		key->dims = d->dims[0];
		if (d->counts != NULL &&
			d->counts(key, key->slot + (whole ? USECS_PER_DAY : USECS_PER_HOUR), events, n,
					  distinct, d->arg))
			taken |= whole ? ALL_HOURS : (uint32) 1 << period;
	}
	if (r->pos != r->len)
		damaged("Extra bytes after a customer's counts.");
	return taken;
}

/* Read a customer's entries, or its day totals (key slot: the day's first slot), into
 * the target; entries in the hours taken as counts are read past. */
static void
get_block(Decode *d, Reader *e, uint64 nentries, bool totals, uint32 taken, SlotKey *key)
{
	TimestampTz day = decode_day(d);

	for (uint64 i = 0; i < nentries; i++)
	{
		int64		slotno = totals ? 0 : d->base + (int64) get_varint(e);
		uint64		dim = d->ndims > 1 ? get_index(e, d->ndims) : 0;
		uint8		flags;
		Partial    *into[2] = {NULL, NULL};

		if (d->ndims == 0 || slotno > END_TIMESTAMP / SLOT_USECS ||
			slotno < MIN_TIMESTAMP / SLOT_USECS - 1)
			damaged("An entry points outside the value.");
		key->slot = totals ? day : slotno * SLOT_USECS;
		key->dims = d->dims[dim];
		flags = get_byte(e);
		if (taken == 0 || totals ||
			(taken & ((uint32) 1 << ((key->slot - day) / USECS_PER_HOUR % 24))) == 0)
			d->target(key, (flags & E_MARK) != 0, d->arg, into);
		get_partial(d, e, into, key->slot, flags);
	}
	if (e->pos != e->len)
		damaged("Extra bytes after a customer's entries.");
}

/* What a decode does: read everything; or, reading the directory alone, take every
 * matching customer's counts (they must cover its entries), or only tell whether the
 * counts target accepts counts covering every matching customer's entries. */
typedef enum DecodeMode
{
	DECODE_FULL,
	DECODE_COUNTS,
	DECODE_COVERED
} DecodeMode;

static bool
decode(bytea *stored, const Aggregation *agg, const char *customer,
	   const char *external_customer, SlotTarget target, SlotCountTarget counts,
	   BucketRemap remap, void *arg, bool days, DecodeMode mode, MemoryContext lasting)
{
	Decode		d = {0};
	uint64		ncustomers;

	d.agg = agg;
	d.target = target;
	d.counts = counts;
	d.remap = remap;
	d.arg = arg;
	ncustomers = decode_start(&d, stored, mode != DECODE_FULL);
	d.strings.lasting = lasting;
	for (uint64 c = 0; c < ncustomers; c++)
	{
		Block		b;
		SlotKey		key;
		uint32		taken,
					present;

		get_block_header(&d, &b);
		if ((customer != NULL && strcmp(customer, b.customer) != 0) ||
			(external_customer != NULL && strcmp(external_customer, b.external) != 0))
			continue;
		key.customer = b.customer;
		key.external_customer = b.external;
		taken = take_counts(&d, &b, &key, &present);
		if (taken != 0 && (present & ~taken) == 0)
			continue;			/* the counts served every hour it has entries in */
		if (mode == DECODE_COVERED)
			return false;
		if (mode == DECODE_COUNTS)
			elog(ERROR, "meter: a read of a stored value's counts needs its entries");
		if (days && b.ntotals > 0 && taken == 0)
			get_block(&d, &b.totals, b.ntotals, true, 0, &key);
		else
			get_block(&d, &b.entries, b.nentries, false, taken, &key);
	}
	decode_end(&d);
	return true;
}

void
slotset_decode(bytea *stored, const Aggregation *agg, const char *customer,
			   const char *external_customer, SlotTarget target, BucketRemap remap, void *arg)
{
	(void) decode(stored, agg, customer, external_customer, target, NULL, remap, arg, false,
				  DECODE_FULL, NULL);
}

void
slotset_decode_days(bytea *stored, const Aggregation *agg, const char *customer,
					const char *external_customer, SlotTarget target, void *arg)
{
	(void) decode(stored, agg, customer, external_customer, target, NULL, NULL, arg, true,
				  DECODE_FULL, NULL);
}

void
slotset_decode_counted(bytea *stored, const Aggregation *agg, const char *customer,
					   const char *external_customer, SlotTarget target,
					   SlotCountTarget counts, BucketRemap remap, void *arg, bool days,
					   MemoryContext lasting)
{
	(void) decode(stored, agg, customer, external_customer, target, counts, remap, arg, days,
				  DECODE_FULL, lasting);
}

bool
slotset_counts_cover(bytea *head, const Aggregation *agg, const char *customer,
					 const char *external_customer, SlotCountTarget accepts, void *arg)
{
	return decode(head, agg, customer, external_customer, NULL, accepts, NULL, arg, false,
				  DECODE_COVERED, NULL);
}

void
slotset_decode_counts(bytea *head, const Aggregation *agg, const char *customer,
					  const char *external_customer, SlotCountTarget counts, void *arg)
{
	(void) decode(head, agg, customer, external_customer, NULL, counts, NULL, arg, false,
				  DECODE_COUNTS, NULL);
}
