/*
 * meter_cache.c — compiled meters per (tenant, environment, event name).
 *
 * An event must not scan every meter: the meters of the event's name are found in a hash
 * table, and their filters through an index built when the set is loaded (below, "The
 * filter index"): one property lookup per distinct filter key, not one test per meter.
 * Entries are loaded on first use
 * with the newest committed meters (GetLatestSnapshot, so an old transaction snapshot
 * never resurrects a changed definition) and dropped wholesale when meter.meters gets a
 * relcache invalidation. The invalidation callback only marks the cache stale; the next
 * lookup rebuilds it, so no caller ever holds a pointer into freed memory mid-row.
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "common/hashfn.h"
#include "access/htup_details.h"
#include "executor/spi.h"
#include "port/pg_bitutils.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "meter_cache.h"
#include "store.h"

/* A cache that grows past this many keys (event names × scopes) starts over. */
#define MAX_CACHED_KEYS 10000

typedef struct CacheKey
{
	const char *data;			/* tenant \0 environment \0 event name */
	Size		len;
} CacheKey;

typedef struct CacheEntry
{
	CacheKey	key;
	MeterSet	set;
} CacheEntry;

static MemoryContext cache_context = NULL;
static HTAB *cache = NULL;
static TupleDesc cache_tupdesc = NULL;
static Oid	meters_relid = InvalidOid;
static bool cache_valid = false;

static uint32
cache_key_hash(const void *key, Size keysize)
{
	const CacheKey *k = key;

	return hash_bytes((const unsigned char *) k->data, (int) k->len);
}

static int
cache_key_match(const void *key1, const void *key2, Size keysize)
{
	const CacheKey *a = key1;
	const CacheKey *b = key2;

	return (a->len == b->len && memcmp(a->data, b->data, a->len) == 0) ? 0 : 1;
}

static void
meters_changed(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == meters_relid)
		cache_valid = false;
}

void
meter_cache_register(void)
{
	CacheRegisterRelcacheCallback(meters_changed, (Datum) 0);
}

static void
cache_reset(void)
{
	HASHCTL		ctl;
	Oid			nsp;

	if (cache_context == NULL)
		cache_context = AllocSetContextCreate(CacheMemoryContext, "meter cache",
											  ALLOCSET_DEFAULT_SIZES);
	MemoryContextReset(cache_context);
	cache_tupdesc = NULL;

	ctl.keysize = sizeof(CacheKey);
	ctl.entrysize = sizeof(CacheEntry);
	ctl.hash = cache_key_hash;
	ctl.match = cache_key_match;
	ctl.hcxt = cache_context;
	cache = hash_create("meter cache", 64, &ctl,
						HASH_ELEM | HASH_FUNCTION | HASH_COMPARE | HASH_CONTEXT);

	nsp = get_namespace_oid("meter", true);
	meters_relid = OidIsValid(nsp) ? get_relname_relid("meters", nsp) : InvalidOid;
	if (!OidIsValid(meters_relid))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("table meter.meters does not exist"),
				 errhint("Run CREATE EXTENSION meter.")));
	cache_valid = true;
}

static void
compile_meter(CompiledMeter *m, HeapTuple row, TupleDesc desc)
{
	bool		isnull;
	Datum		d;

	m->row = heap_copytuple(row);
	m->id = TextDatumGetCString(SPI_getbinval(row, desc, SPI_fnumber(desc, "id"), &isnull));
	d = SPI_getbinval(row, desc, SPI_fnumber(desc, "aggregation"), &isnull);
	m->aggregation = aggregation_unpack((struct varlena *) DatumGetPointer(d));
	d = SPI_getbinval(row, desc, SPI_fnumber(desc, "filters"), &isnull);
	m->filters = filters_unpack((struct varlena *) DatumGetPointer(d));
}

/*
 * The filter index (SPEC §3).
 *
 * Bit i of a bitset stands for meter i of the set (id order). For every distinct filter
 * key of the set, `without` holds the meters that do not filter on the key; every
 * (key, value identity) maps to the meters that accept it. A meter matches when, for
 * every key, it either does not filter on the key or accepts the event's value of it:
 * the AND over the keys of (without | accepting). Value identity is SPEC §3's equality,
 * filters_value_identity (filter_match.c): text for strings and true/false, canonical
 * form for JSON numbers against the filter values in number syntax — two separate
 * spaces, so that the string "1.0" never matches "1" while the number 1.0 does. Null,
 * objects, arrays and missing keys accept nothing.
 */
typedef struct ValueKey
{
	const char *data;
	int			len;
	int			slot;			/* key number * 2 + (1 for IDENTITY_NUMBER) */
} ValueKey;

typedef struct ValueEntry
{
	ValueKey	key;
	uint32		hash;
	char		status;
	uint64	   *meters;			/* bitset: the meters accepting this value of the key */
} ValueEntry;

static inline uint32
value_key_hash(const ValueKey *k)
{
	return hash_combine(hash_bytes((const unsigned char *) k->data, k->len),
						murmurhash32((uint32) k->slot));
}

#define SH_PREFIX valuemap
#define SH_ELEMENT_TYPE ValueEntry
#define SH_KEY_TYPE ValueKey
#define SH_KEY key
#define SH_HASH_KEY(tb, k) value_key_hash(&(k))
#define SH_EQUAL(tb, a, b) ((a).slot == (b).slot && (a).len == (b).len && \
							memcmp((a).data, (b).data, (a).len) == 0)
#define SH_STORE_HASH
#define SH_GET_HASH(tb, a) ((a)->hash)
#define SH_SCOPE static inline
#define SH_DECLARE
#define SH_DEFINE
#include "lib/simplehash.h"

typedef struct IndexKey
{
	const char *key;
	int			keylen;
	bool		has_numbers;	/* some meter accepts a value in number syntax */
	uint64	   *without;		/* bitset: the meters that do not filter on the key */
} IndexKey;

struct MeterIndex
{
	int			nwords;			/* uint64 words per bitset */
	uint64	   *all;			/* every meter of the set */
	uint64	   *unfiltered;		/* the meters without filters */
	int			nkeys;
	IndexKey   *keys;			/* the distinct filter keys, sorted */
	valuemap_hash *values;
};

#define BITSET_SET(b, i) ((b)[(i) / 64] |= UINT64CONST(1) << ((i) % 64))

static int
compare_key_names(const void *a, const void *b)
{
	const FilterKey *ka = *(const FilterKey *const *) a;
	const FilterKey *kb = *(const FilterKey *const *) b;
	int			c = memcmp(ka->key, kb->key, Min(ka->keylen, kb->keylen));

	return c != 0 ? c : (ka->keylen > kb->keylen) - (ka->keylen < kb->keylen);
}

/* Position of the key in the index's sorted keys (it is there). */
static int
index_key_number(const MeterIndex *index, const FilterKey *key)
{
	int			lo = 0,
				hi = index->nkeys - 1;

	while (lo < hi)
	{
		int			mid = lo + (hi - lo) / 2;
		const IndexKey *k = &index->keys[mid];
		int			c = memcmp(k->key, key->key, Min(k->keylen, key->keylen));

		if (c == 0)
			c = (k->keylen > key->keylen) - (k->keylen < key->keylen);
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* The slot of a value identity of key number no. */
#define VALUE_SLOT(no, identity) ((no) * 2 + ((identity) == IDENTITY_NUMBER ? 1 : 0))

/* Meter i accepts the value (slot, s) of its key. */
static void
index_accept(MeterIndex *index, int slot, const char *s, int i)
{
	ValueKey	vk;
	ValueEntry *entry;
	bool		found;

	vk.data = s;
	vk.len = (int) strlen(s);
	vk.slot = slot;
	entry = valuemap_insert(index->values, vk, &found);
	if (!found)
		entry->meters = palloc0(sizeof(uint64) * index->nwords);
	BITSET_SET(entry->meters, i);
}

/* Build the index of a loaded set, in CurrentMemoryContext (the cache's). */
static MeterIndex *
build_index(const MeterSet *set)
{
	MeterIndex *index = palloc0(sizeof(MeterIndex));
	int			nw = Max((set->nmeters + 63) / 64, 1);
	int			total = 0,
				nvalues = 0;
	const FilterKey **names;

	index->nwords = nw;
	index->all = palloc0(sizeof(uint64) * nw);
	index->unfiltered = palloc0(sizeof(uint64) * nw);
	for (int i = 0; i < set->nmeters; i++)
	{
		BITSET_SET(index->all, i);
		if (set->meters[i].filters->nkeys == 0)
			BITSET_SET(index->unfiltered, i);
		total += set->meters[i].filters->nkeys;
		for (int k = 0; k < set->meters[i].filters->nkeys; k++)
			nvalues += set->meters[i].filters->keys[k].nvalues + set->meters[i].filters->keys[k].nnumbers;
	}

	/* The distinct keys, sorted. */
	names = palloc(sizeof(FilterKey *) * Max(total, 1));
	total = 0;
	for (int i = 0; i < set->nmeters; i++)
		for (int k = 0; k < set->meters[i].filters->nkeys; k++)
			names[total++] = &set->meters[i].filters->keys[k];
	qsort(names, total, sizeof(FilterKey *), compare_key_names);
	index->keys = palloc0(sizeof(IndexKey) * Max(total, 1));
	for (int n = 0; n < total; n++)
	{
		IndexKey   *k;

		if (n > 0 && compare_key_names(&names[n - 1], &names[n]) == 0)
			continue;
		k = &index->keys[index->nkeys++];
		k->key = names[n]->key;
		k->keylen = names[n]->keylen;
		k->without = palloc(sizeof(uint64) * nw);
		memcpy(k->without, index->all, sizeof(uint64) * nw);
	}
	pfree(names);

	index->values = valuemap_create(CurrentMemoryContext, Max(nvalues, 8), NULL);
	for (int i = 0; i < set->nmeters; i++)
	{
		const Filters *filters = set->meters[i].filters;

		for (int k = 0; k < filters->nkeys; k++)
		{
			const FilterKey *fk = &filters->keys[k];
			int			no = index_key_number(index, fk);
			IndexKey   *ik = &index->keys[no];

			ik->without[i / 64] &= ~(UINT64CONST(1) << (i % 64));
			for (int v = 0; v < fk->nvalues; v++)
				index_accept(index, VALUE_SLOT(no, IDENTITY_TEXT), fk->values[v].text, i);
			for (int v = 0; v < fk->nnumbers; v++)
				index_accept(index, VALUE_SLOT(no, IDENTITY_NUMBER), fk->numbers[v], i);
			if (fk->nnumbers > 0)
				ik->has_numbers = true;
		}
	}
	return index;
}

/* The meters accepting the property value v of key number no, or NULL for none. */
static const uint64 *
index_accepting(const MeterIndex *index, int no, const JsonbValue *v)
{
	FilterIdentity identity;
	ValueKey	vk;
	ValueEntry *entry;

	identity = filters_value_identity(v, index->keys[no].has_numbers, &vk.data, &vk.len);
	if (identity == IDENTITY_NONE)
		return NULL;
	vk.slot = VALUE_SLOT(no, identity);
	entry = valuemap_lookup(index->values, vk);
	if (identity == IDENTITY_NUMBER)
		pfree((char *) vk.data);
	return entry != NULL ? entry->meters : NULL;
}

/* Bitset words kept on the stack by meter_cache_match (sets of up to 1,024 meters). */
#define MATCH_STACK_WORDS 16

int
meter_cache_match(const MeterSet *set, Jsonb *properties, const CompiledMeter **out)
{
	const MeterIndex *index = set->index;
	int			nw = index->nwords;
	uint64		stack[MATCH_STACK_WORDS];
	uint64	   *acc = nw <= MATCH_STACK_WORDS ? stack : palloc(sizeof(uint64) * nw);
	int			n = 0;

	if (index->nkeys == 0)
		memcpy(acc, index->all, sizeof(uint64) * nw);
	else if (properties == NULL || !JB_ROOT_IS_OBJECT(properties))
		memcpy(acc, index->unfiltered, sizeof(uint64) * nw);
	else
	{
		memcpy(acc, index->all, sizeof(uint64) * nw);
		for (int k = 0; k < index->nkeys; k++)
		{
			const IndexKey *key = &index->keys[k];
			JsonbValue	v;
			const uint64 *accepting = NULL;

			if (getKeyJsonValueFromContainer(&properties->root, key->key, key->keylen, &v) != NULL)
				accepting = index_accepting(index, k, &v);
			if (accepting != NULL)
				for (int w = 0; w < nw; w++)
					acc[w] &= key->without[w] | accepting[w];
			else
				for (int w = 0; w < nw; w++)
					acc[w] &= key->without[w];
		}
	}

	for (int w = 0; w < nw; w++)
	{
		uint64		word = acc[w];

		while (word != 0)
		{
			int			bit = pg_rightmost_one_pos64(word);

			out[n++] = &set->meters[w * 64 + bit];
			word &= word - 1;
		}
	}
	if (acc != stack)
		pfree(acc);
	return n;
}

/* Load the published meters of one key, with the newest committed snapshot. */
static void
load_meters(MeterSet *set, const char *tenant, const char *environment,
			const char *event_name)
{
	Datum		args[3];
	MemoryContext old;
	int			rc;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	args[0] = CStringGetTextDatum(tenant);
	args[1] = CStringGetTextDatum(environment);
	args[2] = CStringGetTextDatum(event_name);
	rc = store_exec(STORE_LOAD_METERS, args, NULL, GetLatestSnapshot(), true, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "loading meters failed: %s", SPI_result_code_string(rc));

	old = MemoryContextSwitchTo(cache_context);
	if (cache_tupdesc == NULL)
		cache_tupdesc = CreateTupleDescCopy(SPI_tuptable->tupdesc);
	set->nmeters = (int) SPI_processed;
	set->meters = palloc0(sizeof(CompiledMeter) * Max(set->nmeters, 1));
	for (int i = 0; i < set->nmeters; i++)
		compile_meter(&set->meters[i], SPI_tuptable->vals[i], SPI_tuptable->tupdesc);
	set->index = build_index(set);
	MemoryContextSwitchTo(old);
	SPI_finish();
}

const MeterSet *
meter_cache_lookup(const char *tenant, const char *environment, const char *event_name)
{
	size_t		lt = strlen(tenant),
				le = strlen(environment),
				ln = strlen(event_name);
	char	   *buf = palloc(lt + le + ln + 3);
	CacheKey	key;
	CacheEntry *entry;
	bool		found;

	memcpy(buf, tenant, lt + 1);
	memcpy(buf + lt + 1, environment, le + 1);
	memcpy(buf + lt + le + 2, event_name, ln + 1);
	key.data = buf;
	key.len = lt + le + ln + 3;

	for (;;)
	{
		MeterSet	set;

		if (!cache_valid || hash_get_num_entries(cache) >= MAX_CACHED_KEYS)
			cache_reset();
		entry = hash_search(cache, &key, HASH_FIND, &found);
		if (found)
			break;
		load_meters(&set, tenant, environment, event_name);
		/* Loading may have processed an invalidation: then start over. */
		if (!cache_valid)
			continue;
		entry = hash_search(cache, &key, HASH_ENTER, &found);
		entry->key.data = MemoryContextAlloc(cache_context, key.len);
		memcpy((char *) entry->key.data, buf, key.len);
		entry->set = set;
		break;
	}
	pfree(buf);
	return &entry->set;
}

TupleDesc
meter_cache_tupdesc(void)
{
	return cache_tupdesc;
}

static Datum
row_column(const CompiledMeter *meter, const char *name)
{
	bool		isnull;
	Datum		d = heap_getattr(meter->row, SPI_fnumber(cache_tupdesc, name), cache_tupdesc, &isnull);

	if (isnull)
		elog(ERROR, "meter: meter \"%s\" has a NULL %s", meter->id, name);
	return d;
}

Aggregation *
meter_cache_copy_aggregation(const CompiledMeter *meter)
{
	return aggregation_unpack((struct varlena *) DatumGetPointer(row_column(meter, "aggregation")));
}

Filters *
meter_cache_copy_filters(const CompiledMeter *meter)
{
	return filters_unpack((struct varlena *) DatumGetPointer(row_column(meter, "filters")));
}
