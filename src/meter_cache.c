/*
 * meter_cache.c — compiled meters per (tenant, environment, event name).
 *
 * An event must not scan every meter: the trigger looks up the meters of the event's
 * name in a hash table and only tests their filters. Entries are loaded on first use
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
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "meter_cache.h"

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
static SPIPlanPtr load_plan = NULL;

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
	if (load_plan == NULL)
	{
		Oid			types[3] = {TEXTOID, TEXTOID, TEXTOID};
		SPIPlanPtr	plan = SPI_prepare(
									   "SELECT * FROM meter.meters"
									   " WHERE tenant_id OPERATOR(pg_catalog.=) $1"
									   " AND environment_id OPERATOR(pg_catalog.=) $2"
									   " AND event_name OPERATOR(pg_catalog.=) $3"
									   " AND status OPERATOR(pg_catalog.=) 'published'::meter.status"
									   " ORDER BY id COLLATE \"C\"", 3, types);

		if (plan == NULL)
			elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
		SPI_keepplan(plan);
		load_plan = plan;
	}
	args[0] = CStringGetTextDatum(tenant);
	args[1] = CStringGetTextDatum(environment);
	args[2] = CStringGetTextDatum(event_name);
	rc = SPI_execute_snapshot(load_plan, args, NULL, GetLatestSnapshot(),
							  InvalidSnapshot, true, false, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "loading meters failed: %s", SPI_result_code_string(rc));

	old = MemoryContextSwitchTo(cache_context);
	if (cache_tupdesc == NULL)
		cache_tupdesc = CreateTupleDescCopy(SPI_tuptable->tupdesc);
	set->nmeters = (int) SPI_processed;
	set->meters = palloc0(sizeof(CompiledMeter) * Max(set->nmeters, 1));
	for (int i = 0; i < set->nmeters; i++)
		compile_meter(&set->meters[i], SPI_tuptable->vals[i], SPI_tuptable->tupdesc);
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

int
meter_cache_match(const MeterSet *set, Jsonb *properties, const CompiledMeter **out)
{
	int			n = 0;

	for (int i = 0; i < set->nmeters; i++)
	{
		const CompiledMeter *m = &set->meters[i];

		if (m->filters->nkeys == 0 || (properties != NULL && filters_match(m->filters, properties)))
			out[n++] = m;
	}
	return n;
}
