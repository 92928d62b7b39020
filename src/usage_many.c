/*
 * usage_many.c — usage for many at once (SPEC §8), from the stored partial states, each
 * with a _from_events twin that computes the same from the raw events:
 *   meter.usage_by_customer       the invoice run: every customer with an event before
 *                                 end_time, every window
 *   meter.usage_by_group          per combination of the events' values of some of the
 *                                 meter's filter keys (the rollup key carries them)
 *   meter.usage_by_filter_groups  per price filter group, each event in the first group
 *                                 whose filters it matches; every group appears
 * All go through the engine of usage.c; a group is a number its grouping function gives
 * each (customer, dimensions) it meets.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#include "dims.h"
#include "filters.h"
#include "forward.h"
#include "usage.h"

/* ── Groups named by a string ────────────────────────────────────────────────────── */

/* A string → group number table (strings copied), with per-group data. */
typedef struct GroupElem
{
	const char *key;
	int			group;
	uint32		hash;
	char		status;
} GroupElem;

#define SH_PREFIX grouptab
#define SH_ELEMENT_TYPE GroupElem
#define SH_KEY_TYPE const char *
#define SH_KEY key
#define SH_HASH_KEY(tb, k) hash_bytes((const unsigned char *) (k), (int) strlen(k))
#define SH_EQUAL(tb, a, b) (strcmp((a), (b)) == 0)
#define SH_STORE_HASH
#define SH_GET_HASH(tb, a) ((a)->hash)
#define SH_SCOPE static inline
#define SH_DECLARE
#define SH_DEFINE
#include "lib/simplehash.h"

typedef struct Groups
{
	MemoryContext cxt;			/* where the groups live: grouping runs per raw event, in
								 * a context reset after each */
	struct grouptab_hash *index;
	int			n;
	int			cap;
	char	  **names;			/* per group: its name (the key) */
	void	  **data;			/* per group: the caller's */
	int64	   *history;		/* per group: events before the range (usage_by_customer) */
	struct pairtab_hash *pairs; /* usage_by_customer: (customer, external) → group */
} Groups;

static void
groups_init(Groups *g)
{
	memset(g, 0, sizeof(Groups));
	g->cxt = CurrentMemoryContext;
	g->index = grouptab_create(g->cxt, 64, NULL);
}

/* The group of key, created when new (found tells). */
static int
groups_get(Groups *g, const char *key, bool create, bool *found)
{
	GroupElem  *e;
	bool		f;
	MemoryContext old;

	if (!create)
	{
		e = grouptab_lookup(g->index, key);
		*found = (e != NULL);
		return e ? e->group : -1;
	}
	old = MemoryContextSwitchTo(g->cxt);
	e = grouptab_insert(g->index, key, &f);
	*found = f;
	if (!f)
	{
		if (g->n == g->cap)
		{
			g->cap = Max(16, 2 * g->cap);
			g->names = g->names ? repalloc(g->names, sizeof(char *) * g->cap) : palloc(sizeof(char *) * g->cap);
			g->data = g->data ? repalloc(g->data, sizeof(void *) * g->cap) : palloc(sizeof(void *) * g->cap);
			g->history = g->history ? repalloc(g->history, sizeof(int64) * g->cap) : palloc(sizeof(int64) * g->cap);
		}
		g->names[g->n] = pstrdup(key);
		g->data[g->n] = NULL;
		g->history[g->n] = 0;
		e->key = g->names[g->n];
		e->group = g->n++;
	}
	MemoryContextSwitchTo(old);
	return e->group;
}

/* Emit rows (leading columns given per group by lead()) for the groups in order. */
typedef void (*LeadColumns) (Groups *g, int group, Datum *values, bool *nulls, void *arg);

static void
emit(FunctionCallInfo fcinfo, Usage *u, Groups *g, const int *order, int norder, int nlead,
	 LeadColumns lead, void *arg)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	for (int i = 0; i < norder; i++)
	{
		int			grp = order[i];
		Numeric    *values;
		bool	   *nulls;

		usage_values(u, grp, &values, &nulls);
		for (int w = 0; w < usage_nwindows(u); w++)
		{
			Datum		row[6];
			bool		rownulls[6] = {0};

			lead(g, grp, row, rownulls, arg);
			row[nlead] = TimestampTzGetDatum(u->ws[u->first_window + w]);
			row[nlead + 1] = TimestampTzGetDatum(u->we[u->first_window + w]);
			row[nlead + 2] = nulls[w] ? (Datum) 0 : NumericGetDatum(values[w]);
			rownulls[nlead + 2] = nulls[w];
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, row, rownulls);
		}
	}
}

static MeterDef *
meter_arg(FunctionCallInfo fcinfo)
{
	return meter_def_get(usage_text_arg(fcinfo, 0));
}

/* ── usage_by_customer ───────────────────────────────────────────────────────────── */

/* A customer's group name: the customer id's length, ':', the customer id, the external
 * id (unambiguous whatever the ids hold); in buf when it fits. */
static char *
customer_key(const char *customer, const char *external, char *buf, Size size)
{
	size_t		lc = strlen(customer),
				le = strlen(external);
	int			n;

	if (lc + le + 24 > size)
		return psprintf("%zu:%s%s", lc, customer, external);
	n = snprintf(buf, size, "%zu:", lc);
	memcpy(buf + n, customer, lc);
	memcpy(buf + n + lc, external, le + 1);
	return buf;
}

typedef struct CustomerIds
{
	char	   *customer;
	char	   *external;
} CustomerIds;

/* (customer, external customer) → group, looked up without building a key string: a
 * read meets every customer once per stored row. */
typedef struct PairElem
{
	CustomerIds *key;
	int			group;
	uint32		hash;
	char		status;
} PairElem;

static inline uint32
pair_hash(const CustomerIds *k)
{
	return hash_combine(hash_bytes((const unsigned char *) k->customer, (int) strlen(k->customer)),
						hash_bytes((const unsigned char *) k->external, (int) strlen(k->external)));
}

#define SH_PREFIX pairtab
#define SH_ELEMENT_TYPE PairElem
#define SH_KEY_TYPE CustomerIds *
#define SH_KEY key
#define SH_HASH_KEY(tb, k) pair_hash(k)
#define SH_EQUAL(tb, a, b) (strcmp((a)->customer, (b)->customer) == 0 && strcmp((a)->external, (b)->external) == 0)
#define SH_STORE_HASH
#define SH_GET_HASH(tb, a) ((a)->hash)
#define SH_SCOPE static inline
#define SH_DECLARE
#define SH_DEFINE
#include "lib/simplehash.h"

static int
customer_group(Groups *g, const char *customer, const char *external)
{
	CustomerIds probe = {(char *) customer, (char *) external};
	uint32		hash = pair_hash(&probe);
	PairElem   *e;
	bool		found;
	char		buf[256];
	int			grp;

	if (g->pairs == NULL)
		g->pairs = pairtab_create(g->cxt, 256, NULL);
	e = pairtab_lookup_hash(g->pairs, &probe, hash);
	if (e != NULL)
		return e->group;
	grp = groups_get(g, customer_key(customer, external, buf, sizeof(buf)), true, &found);
	if (!found)
	{
		CustomerIds *ids = MemoryContextAlloc(g->cxt, sizeof(CustomerIds));

		ids->customer = MemoryContextStrdup(g->cxt, customer);
		ids->external = MemoryContextStrdup(g->cxt, external);
		g->data[grp] = ids;
	}
	e = pairtab_insert_hash(g->pairs, g->data[grp], hash, &found);
	e->group = grp;
	return grp;
}

/* The group of the customer met last, kept (copies): a decode meets each customer's
 * entries in a run. */
static char *last_customer;
static char *last_external;
static int	last_group;

static int
by_customer_group(Usage *u, const char *customer, const char *external, const char *dims)
{
	Groups	   *g = u->req.group_arg;

	if (last_customer == NULL || strcmp(customer, last_customer) != 0 ||
		strcmp(external, last_external) != 0)
	{
		last_group = customer_group(g, customer, external);
		last_customer = g->names[last_group] ? ((CustomerIds *) g->data[last_group])->customer : NULL;
		last_external = ((CustomerIds *) g->data[last_group])->external;
	}
	return last_group;
}

static void
customer_history(const char *customer, const char *external, int64 events, void *arg)
{
	Groups	   *g = arg;
	int			grp = customer_group(g, customer, external);	/* may move g->history */

	g->history[grp] += events;
}

static Groups *sort_groups;

static int
customer_order(const void *a, const void *b)
{
	const CustomerIds *x = sort_groups->data[*(const int *) a];
	const CustomerIds *y = sort_groups->data[*(const int *) b];
	int			c = strcmp(x->customer, y->customer);

	return c != 0 ? c : strcmp(x->external, y->external);
}

static void
customer_lead(Groups *g, int grp, Datum *values, bool *nulls, void *arg)
{
	const CustomerIds *ids = g->data[grp];

	values[0] = CStringGetTextDatum(ids->customer);
	values[1] = CStringGetTextDatum(ids->external);
}

static Datum
usage_by_customer(FunctionCallInfo fcinfo, bool from_events)
{
	UsageRequest r = {0};
	Usage		u;
	Groups		g;
	int		   *order;
	int			n = 0;

	groups_init(&g);
	last_customer = last_external = NULL;
	r.meter = meter_arg(fcinfo);
	usage_window_args(fcinfo, &r, 1, 3, 4, 5);
	r.by_customer = true;
	r.group_of = by_customer_group;
	r.group_arg = &g;
	r.from_events = from_events;
	if (from_events)
		r.source = usage_source_arg(fcinfo, 6);
	InitMaterializedSRF(fcinfo, 0);
	usage_compute(&u, &r);
	if (u.first_window == 0)
		usage_history(&u, customer_history, &g);
	/* Every customer with a matched event before end_time. */
	order = palloc(sizeof(int) * (g.n + 1));
	for (int i = 0; i < g.n; i++)
		if (g.history[i] + usage_group_events(&u, i) > 0)
			order[n++] = i;
	sort_groups = &g;
	qsort(order, n, sizeof(int), customer_order);
	emit(fcinfo, &u, &g, order, n, 2, customer_lead, NULL);
	return (Datum) 0;
}

/* meter.usage_by_customer, run where the tenant's rows are (forward.h). */
static Datum
usage_by_customer_here(FunctionCallInfo fcinfo)
{
	return usage_by_customer(fcinfo, false);
}

/*
 * meter.usage_by_customer(meter_id, start_time, end_time, window_size, timezone,
 * billing_anchor) → TABLE(customer_id, external_customer_id, window_start, window_end,
 * value): the invoice run — one row per window for every customer ('' for an absent id)
 * with at least one matched event before end_time, ordered by customer then window;
 * every window appears.
 */
PG_FUNCTION_INFO_V1(meter_usage_by_customer);
Datum
meter_usage_by_customer(PG_FUNCTION_ARGS)
{
	return forward_run(fcinfo, usage_by_customer_here);
}

/* meter.usage_by_customer_from_events, run where the tenant's rows are (forward.h). */
static Datum
usage_by_customer_from_events_here(FunctionCallInfo fcinfo)
{
	return usage_by_customer(fcinfo, true);
}

/* meter.usage_by_customer_from_events(…the same…, source regclass): from the raw events. */
PG_FUNCTION_INFO_V1(meter_usage_by_customer_from_events);
Datum
meter_usage_by_customer_from_events(PG_FUNCTION_ARGS)
{
	return forward_run(fcinfo, usage_by_customer_from_events_here);
}

/* ── The meter's filter keys: what groups may refer to ───────────────────────────── */

static int
filter_key_index(const MeterDef *m, const char *key)
{
	for (int i = 0; i < m->filters->nkeys; i++)
		if (strcmp(m->filters->keys[i].key, key) == 0)
			return i;
	return -1;
}

static void pg_attribute_noreturn()
not_a_filter_key(const MeterDef *m, const char *what, const char *key)
{
	StringInfoData keys;

	initStringInfo(&keys);
	for (int i = 0; i < m->filters->nkeys; i++)
		appendStringInfo(&keys, "%s\"%s\"", i ? ", " : "", m->filters->keys[i].key);
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("%s key \"%s\" is not a filter key of meter \"%s\"", what, key, m->id),
			 errdetail("Usage is broken down by the values on which charges apply: the meter's filter keys."),
			 m->filters->nkeys > 0 ? errhint("Use one of %s.", keys.data)
			 : errhint("Meter \"%s\" has no filters: add them with meter.update_meter().", m->id)));
}

/* The dimension values of a dims string, by the meter's filter keys (NULL: missing). */
static char **
split_dims(const MeterDef *m, const char *dims)
{
	char	  **values = palloc0(sizeof(char *) * (m->filters->nkeys + 1));

	(void) dims_split(dims, values, m->filters->nkeys);
	return values;
}

/* ── usage_by_group ──────────────────────────────────────────────────────────────── */

typedef struct ByGroup
{
	Groups		groups;			/* by the group's JSON text */
	struct grouptab_hash *of_dims;	/* dims string → group */
	int			nkeys;
	char	  **keys;			/* the group_by keys, in the order given */
	int		   *index;			/* each key's index among the meter's filter keys */
} ByGroup;

/* {"model":"gpt-4o","region":"eu"}: values as text, numbers canonical, missing → null. */
static char *
group_json(ByGroup *b, const MeterDef *m, const char *dims)
{
	char	  **values = split_dims(m, dims);
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfoChar(&buf, '{');
	for (int i = 0; i < b->nkeys; i++)
	{
		const char *v = values[b->index[i]];

		if (i > 0)
			appendStringInfoChar(&buf, ',');
		escape_json(&buf, b->keys[i]);
		appendStringInfoChar(&buf, ':');
		if (v == NULL)
			appendStringInfoString(&buf, "null");
		else
			escape_json(&buf, v + 1);
	}
	appendStringInfoChar(&buf, '}');
	return buf.data;
}

static int
by_group_group(Usage *u, const char *customer, const char *external, const char *dims)
{
	ByGroup    *b = u->req.group_arg;
	GroupElem  *e;
	bool		found;
	MemoryContext old;

	old = MemoryContextSwitchTo(b->groups.cxt);
	e = grouptab_insert(b->of_dims, dims, &found);
	if (!found)
	{
		e->key = pstrdup(dims);
		e->group = groups_get(&b->groups, group_json(b, u->req.meter, dims), true, &found);
	}
	MemoryContextSwitchTo(old);
	return e->group;
}

static int
name_order(const void *a, const void *b)
{
	return strcmp(sort_groups->names[*(const int *) a], sort_groups->names[*(const int *) b]);
}

static void
group_lead(Groups *g, int grp, Datum *values, bool *nulls, void *arg)
{
	values[0] = DirectFunctionCall1(jsonb_in, CStringGetDatum(g->names[grp]));
}

static void
read_group_keys(FunctionCallInfo fcinfo, int argno, ByGroup *b, const MeterDef *m)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n = 0;

	b->nkeys = 0;
	if (PG_ARGISNULL(argno))
		return;
	deconstruct_array(PG_GETARG_ARRAYTYPE_P(argno), TEXTOID, -1, false, TYPALIGN_INT,
					  &elems, &nulls, &n);
	b->keys = palloc(sizeof(char *) * (n + 1));
	b->index = palloc(sizeof(int) * (n + 1));
	for (int i = 0; i < n; i++)
	{
		char	   *key;

		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("group_by keys cannot be null"),
					 errhint("Pass filter keys of the meter, e.g. ARRAY['model'].")));
		key = TextDatumGetCString(elems[i]);
		if (filter_key_index(m, key) < 0)
			not_a_filter_key(m, "group_by", key);
		for (int j = 0; j < b->nkeys; j++)
			if (strcmp(b->keys[j], key) == 0)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("group_by key \"%s\" is listed twice", key),
						 errhint("List each key once.")));
		b->keys[b->nkeys] = key;
		b->index[b->nkeys++] = filter_key_index(m, key);
	}
}

static Datum
usage_by_group(FunctionCallInfo fcinfo, bool from_events)
{
	UsageRequest r = {0};
	Usage		u;
	ByGroup		b;
	int		   *order;
	int			n = 0;

	groups_init(&b.groups);
	b.of_dims = grouptab_create(CurrentMemoryContext, 64, NULL);
	r.meter = meter_arg(fcinfo);
	read_group_keys(fcinfo, 1, &b, r.meter);
	usage_window_args(fcinfo, &r, 2, 6, 7, 8);
	r.customer = usage_text_arg(fcinfo, 4);
	r.external_customer = usage_text_arg(fcinfo, 5);
	r.group_of = by_group_group;
	r.group_arg = &b;
	r.from_events = from_events;
	if (from_events)
		r.source = usage_source_arg(fcinfo, 9);
	InitMaterializedSRF(fcinfo, 0);
	usage_compute(&u, &r);
	order = palloc(sizeof(int) * (b.groups.n + 1));
	for (int i = 0; i < b.groups.n; i++)
		if (usage_group_events(&u, i) > 0)
			order[n++] = i;
	sort_groups = &b.groups;
	qsort(order, n, sizeof(int), name_order);
	emit(fcinfo, &u, &b.groups, order, n, 1, group_lead, NULL);
	return (Datum) 0;
}

/* meter.usage_by_group, run where the tenant's rows are (forward.h). */
static Datum
usage_by_group_here(FunctionCallInfo fcinfo)
{
	return usage_by_group(fcinfo, false);
}

/*
 * meter.usage_by_group(meter_id, group_by text[], start_time, end_time, customer_id,
 * external_customer_id, window_size, timezone, billing_anchor) → TABLE(group_values
 * jsonb, window_start, window_end, value): one row per window and per combination of the
 * events' values of the group_by keys (filter keys of the meter) that occurs.
 */
PG_FUNCTION_INFO_V1(meter_usage_by_group);
Datum
meter_usage_by_group(PG_FUNCTION_ARGS)
{
	return forward_run(fcinfo, usage_by_group_here);
}

/* meter.usage_by_group_from_events, run where the tenant's rows are (forward.h). */
static Datum
usage_by_group_from_events_here(FunctionCallInfo fcinfo)
{
	return usage_by_group(fcinfo, true);
}

/* meter.usage_by_group_from_events(…the same…, source regclass): from the raw events. */
PG_FUNCTION_INFO_V1(meter_usage_by_group_from_events);
Datum
meter_usage_by_group_from_events(PG_FUNCTION_ARGS)
{
	return forward_run(fcinfo, usage_by_group_from_events_here);
}

/* ── usage_by_filter_groups ──────────────────────────────────────────────────────── */

typedef struct FilterGroups
{
	Groups		groups;			/* by id, in the order given */
	Filters   **filters;
	struct grouptab_hash *of_dims;	/* dims string → first matching group (-1: none) */
} FilterGroups;

static void pg_attribute_noreturn()
bad_groups(const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid filter groups"),
			 errdetail("%s", detail),
			 errhint("Pass [{\"id\":\"price_gpt4o\",\"filters\":{\"model\":[\"gpt-4o\"]}}, …].")));
}

/* A group's filters {"key": ["v", …], …} as a meter.filters value. */
static Filters *
group_filters(const MeterDef *m, JsonbContainer *obj, const char *id)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	StringInfoData buf;
	bool		first = true;
	Datum		f;

	initStringInfo(&buf);
	appendStringInfoChar(&buf, '[');
	it = obj ? JsonbIteratorInit(obj) : NULL;
	while (it != NULL && (tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		char	   *key;

		if (tok != WJB_KEY)
			continue;
		key = pnstrdup(v.val.string.val, v.val.string.len);
		if (filter_key_index(m, key) < 0)
			not_a_filter_key(m, "filter group", key);
		tok = JsonbIteratorNext(&it, &v, true);
		if (v.type != jbvBinary || !JsonContainerIsArray(v.val.binary.data))
			bad_groups(psprintf("The filter \"%s\" of group \"%s\" is not an array of values.", key, id));
		appendStringInfoString(&buf, first ? "{\"key\":" : ",{\"key\":");
		escape_json(&buf, key);
		appendStringInfo(&buf, ",\"values\":%s}", JsonbToCString(NULL, v.val.binary.data, -1));
		first = false;
	}
	appendStringInfoChar(&buf, ']');
	/* The type's own rules: non-empty arrays of strings, each key once. */
	f = DirectFunctionCall1(meter_filters_in, CStringGetDatum(buf.data));
	return filters_unpack((struct varlena *) DatumGetPointer(f));
}

static void
read_filter_groups(FunctionCallInfo fcinfo, int argno, FilterGroups *fg, const MeterDef *m)
{
	Jsonb	   *groups;
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	int			cap = 16;

	if (PG_ARGISNULL(argno))
		bad_groups("groups is NULL.");
	groups = PG_GETARG_JSONB_P(argno);
	if (!JB_ROOT_IS_ARRAY(groups) || JB_ROOT_IS_SCALAR(groups))
		bad_groups("groups must be a JSON array of objects.");
	fg->filters = palloc(sizeof(Filters *) * cap);
	it = JsonbIteratorInit(&groups->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		JsonbValue	idv,
					fv;
		char	   *id;
		bool		found;
		bool		has_filters;
		int			grp;

		if (tok != WJB_ELEM)
			continue;
		if (v.type != jbvBinary || !JsonContainerIsObject(v.val.binary.data))
			bad_groups("Every group is a JSON object with \"id\" and \"filters\".");
		if (getKeyJsonValueFromContainer(v.val.binary.data, "id", 2, &idv) == NULL ||
			idv.type != jbvString || idv.val.string.len == 0)
			bad_groups("Every group needs a non-empty string \"id\".");
		id = pnstrdup(idv.val.string.val, idv.val.string.len);
		has_filters = getKeyJsonValueFromContainer(v.val.binary.data, "filters", 7, &fv) != NULL;
		if (JsonContainerSize(v.val.binary.data) != (has_filters ? 2 : 1))
			bad_groups(psprintf("Group \"%s\" has a key other than \"id\" and \"filters\".", id));
		if (has_filters && (fv.type != jbvBinary || !JsonContainerIsObject(fv.val.binary.data)))
			bad_groups(psprintf("The filters of group \"%s\" must be an object of key → values.", id));
		grp = groups_get(&fg->groups, id, true, &found);
		if (found)
			bad_groups(psprintf("Group id \"%s\" appears twice.", id));
		if (grp >= cap)
		{
			cap *= 2;
			fg->filters = repalloc(fg->filters, sizeof(Filters *) * cap);
		}
		fg->filters[grp] = group_filters(m, has_filters ? fv.val.binary.data : NULL, id);
	}
}

/* The event's filter-key values as a JSON object, for SPEC §3's matching. */
static Jsonb *
dims_object(const MeterDef *m, const char *dims)
{
	char	  **values = split_dims(m, dims);
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfoChar(&buf, '{');
	for (int i = 0; i < m->filters->nkeys; i++)
	{
		if (i > 0)
			appendStringInfoChar(&buf, ',');
		escape_json(&buf, m->filters->keys[i].key);
		appendStringInfo(&buf, ":%s", dims_json(values[i]));
	}
	appendStringInfoChar(&buf, '}');
	return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(buf.data)));
}

static int
filter_group_of(Usage *u, const char *customer, const char *external, const char *dims)
{
	FilterGroups *fg = u->req.group_arg;
	GroupElem  *e;
	bool		found;
	MemoryContext old = MemoryContextSwitchTo(fg->groups.cxt);

	e = grouptab_insert(fg->of_dims, dims, &found);
	if (!found)
	{
		Jsonb	   *obj = dims_object(u->req.meter, dims);

		e->key = pstrdup(dims);
		e->group = -1;
		for (int i = 0; i < fg->groups.n && e->group < 0; i++)
			if (filters_match(fg->filters[i], obj))
				e->group = i;
	}
	MemoryContextSwitchTo(old);
	return e->group;
}

static void
filter_group_lead(Groups *g, int grp, Datum *values, bool *nulls, void *arg)
{
	values[0] = CStringGetTextDatum(g->names[grp]);
}

static Datum
usage_by_filter_groups(FunctionCallInfo fcinfo, bool from_events)
{
	UsageRequest r = {0};
	Usage		u;
	FilterGroups fg;
	int		   *order;

	groups_init(&fg.groups);
	fg.of_dims = grouptab_create(CurrentMemoryContext, 64, NULL);
	r.meter = meter_arg(fcinfo);
	read_filter_groups(fcinfo, 1, &fg, r.meter);
	usage_window_args(fcinfo, &r, 2, 6, 7, 8);
	r.customer = usage_text_arg(fcinfo, 4);
	r.external_customer = usage_text_arg(fcinfo, 5);
	r.group_of = filter_group_of;
	r.group_arg = &fg;
	r.from_events = from_events;
	if (from_events)
		r.source = usage_source_arg(fcinfo, 9);
	InitMaterializedSRF(fcinfo, 0);
	usage_compute(&u, &r);
	/* Every group appears, in the order given. */
	order = palloc(sizeof(int) * (fg.groups.n + 1));
	for (int i = 0; i < fg.groups.n; i++)
		order[i] = i;
	emit(fcinfo, &u, &fg.groups, order, fg.groups.n, 1, filter_group_lead, NULL);
	return (Datum) 0;
}

/* meter.usage_by_filter_groups, run where the tenant's rows are (forward.h). */
static Datum
usage_by_filter_groups_here(FunctionCallInfo fcinfo)
{
	return usage_by_filter_groups(fcinfo, false);
}

/*
 * meter.usage_by_filter_groups(meter_id, groups jsonb, start_time, end_time, customer_id,
 * external_customer_id, window_size, timezone, billing_anchor) → TABLE(group_id,
 * window_start, window_end, value): FlexPrice's price filter groups — each event counts
 * in the first group (in the order given) whose filters it matches; every group appears.
 */
PG_FUNCTION_INFO_V1(meter_usage_by_filter_groups);
Datum
meter_usage_by_filter_groups(PG_FUNCTION_ARGS)
{
	return forward_run(fcinfo, usage_by_filter_groups_here);
}

/* meter.usage_by_filter_groups_from_events, run where the tenant's rows are (forward.h). */
static Datum
usage_by_filter_groups_from_events_here(FunctionCallInfo fcinfo)
{
	return usage_by_filter_groups(fcinfo, true);
}

/* meter.usage_by_filter_groups_from_events(…the same…, source regclass). */
PG_FUNCTION_INFO_V1(meter_usage_by_filter_groups_from_events);
Datum
meter_usage_by_filter_groups_from_events(PG_FUNCTION_ARGS)
{
	return forward_run(fcinfo, usage_by_filter_groups_from_events_here);
}
