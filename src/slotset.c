/*
 * slotset.c — sets of per-slot partial states in memory (see slotset.h): entries on a
 * simplehash keyed by interned numbers, customers and dimension strings interned once.
 * Their stored form is in slotset_form.c.
 */
#include "postgres.h"

#include "common/hashfn.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "buckets.h"
#include "slotset.h"

const char SLOT_ALL_CUSTOMERS[] = "";

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

