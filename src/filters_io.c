/*
 * filters_io.c — the meter.filters type (SPEC §2): input validation, canonical form,
 * text and binary I/O, equality, jsonb casts and accessors. Matching is filter_match.c.
 *
 * Text form: FlexPrice's [{"key":"model","values":["gpt-4o","o1-mini"]}]. The canonical
 * form sorts the keys and each key's values (byte order) and drops repeated values, so
 * equal filter sets are equal bytes.
 *
 * Stored form (version 1), laid out for filters_unpack to point into it without copying
 * any string (all fields int32, the datum int-aligned once detoasted):
 *   FiltersData header: vl_len_, version, 3 spare bytes, nkeys, nvalues, nnumbers;
 *   FilterKeyEntry[nkeys]; FilterValueEntry[nvalues] (all keys' values, key by key);
 *   int32[nnumbers] (each key's distinct canonical numbers, sorted);
 *   then the NUL-terminated strings the entries point at (offsets from the string area).
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "libpq/pqformat.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"

#include "filters.h"
#include "json_input.h"
#include "number.h"

#define FILTERS_VERSION 1

typedef struct FiltersData
{
	int32		vl_len_;		/* varlena header (do not touch directly) */
	uint8		version;
	uint8		spare[3];
	int32		nkeys;
	int32		nvalues;
	int32		nnumbers;
} FiltersData;

typedef struct FilterKeyEntry
{
	int32		key_off;
	int32		key_len;
	int32		first_value;
	int32		nvalues;
	int32		first_number;
	int32		nnumbers;
} FilterKeyEntry;

typedef struct FilterValueEntry
{
	int32		text_off;
	int32		number_off;		/* -1 when not in number syntax */
} FilterValueEntry;

#define FILTERS_EXAMPLE "[{\"key\":\"model\",\"values\":[\"gpt-4o\",\"o1-mini\"]}]"

/* One filter while parsing: its key and values (NUL-terminated copies). */
typedef struct ParsedFilter
{
	char	   *key;
	int			nvalues;
	char	  **values;
	char	  **numbers;		/* number_canonical of each value, or NULL */
} ParsedFilter;

static int
compare_cstring_ptrs(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

static int
compare_filters(const void *a, const void *b)
{
	return strcmp(((const ParsedFilter *) a)->key, ((const ParsedFilter *) b)->key);
}

/* A number literal numeric cannot hold: filters hold strings only. */
static void
filters_bad_number(const char *top_key, const char *literal)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("filter values must be strings"),
			 errdetail("The filters contain the number %s.", literal),
			 errhint("Write each filter as {\"key\":\"<property>\",\"values\":[\"<value>\", …]}, values quoted.")));
}

/* Validate one element of the filters array (a jsonb object) into *f. */
static void
parse_filter(JsonbValue *elem, int index, ParsedFilter *f)
{
	JsonbIterator *it;
	JsonbIteratorToken tok;
	JsonbValue	v;
	JsonbValue	values_v;
	bool		has_values = false;
	int			n;

	if (elem->type != jbvBinary || !JsonContainerIsObject(elem->val.binary.data))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("filter must be a JSON object"),
				 errdetail("Element %d of the filters array is %s.", index, json_value_kind(elem)),
				 errhint("Write each filter as {\"key\":\"<property>\",\"values\":[\"<value>\", …]}.")));

	f->key = NULL;
	memset(&values_v, 0, sizeof(values_v));
	it = JsonbIteratorInit(elem->val.binary.data);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		char	   *name;

		if (tok != WJB_KEY)
			continue;
		name = pnstrdup(v.val.string.val, v.val.string.len);
		tok = JsonbIteratorNext(&it, &v, true);
		Assert(tok == WJB_VALUE);
		if (strcmp(name, "key") == 0)
		{
			if (v.type != jbvString && v.type != jbvNull)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("filter key must be a string"),
						 errdetail("\"key\" of filter %d is %s.", index, json_value_kind(&v)),
						 errhint("Name the property as a JSON string, e.g. \"key\":\"model\".")));
			if (v.type == jbvString)
				f->key = pnstrdup(v.val.string.val, v.val.string.len);
		}
		else if (strcmp(name, "values") == 0)
		{
			values_v = v;
			has_values = true;
		}
		else
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unknown filter field \"%s\"", name),
					 errdetail("A filter has the fields key and values only (filter %d).", index),
					 errhint("Remove \"%s\" or correct its spelling.", name)));
		pfree(name);
	}

	if (f->key == NULL || f->key[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("filter key cannot be empty"),
				 errdetail("Filter %d has %s \"key\".", index, f->key ? "an empty" : "no"),
				 errhint("Name the event property to filter on, e.g. \"key\":\"model\".")));

	if (has_values && values_v.type != jbvNull &&
		(values_v.type != jbvBinary || !JsonContainerIsArray(values_v.val.binary.data)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("filter values must be an array of strings"),
				 errdetail("\"values\" of filter \"%s\" is %s.", f->key, json_value_kind(&values_v)),
				 errhint("Write \"values\":[\"<value>\", …].")));
	n = (has_values && values_v.type == jbvBinary) ?
		JsonContainerSize(values_v.val.binary.data) : 0;
	if (n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("filter values cannot be empty"),
				 errdetail("Filter \"%s\" has no values; it could never match.", f->key),
				 errhint("List at least one value, e.g. \"values\":[\"gpt-4o\"], or remove the filter.")));

	f->values = palloc(n * sizeof(char *));
	f->nvalues = 0;
	it = JsonbIteratorInit(values_v.val.binary.data);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok != WJB_ELEM)
			continue;
		if (v.type != jbvString)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("filter values must be an array of strings"),
					 errdetail("Value %d of filter \"%s\" is %s.", f->nvalues, f->key, json_value_kind(&v)),
					 errhint("Quote every value, e.g. \"values\":[\"1\",\"true\"]; numbers and booleans in events still match their text.")));
		f->values[f->nvalues++] = pnstrdup(v.val.string.val, v.val.string.len);
	}

	/* canonical: sorted, unique */
	qsort(f->values, f->nvalues, sizeof(char *), compare_cstring_ptrs);
	n = 0;
	for (int i = 0; i < f->nvalues; i++)
		if (n == 0 || strcmp(f->values[n - 1], f->values[i]) != 0)
			f->values[n++] = f->values[i];
	f->nvalues = n;

	f->numbers = palloc(n * sizeof(char *));
	for (int i = 0; i < n; i++)
	{
		JsonbValue	sv;
		Numeric		num;

		sv.type = jbvString;
		sv.val.string.val = f->values[i];
		sv.val.string.len = strlen(f->values[i]);
		num = jsonb_value_numeric(&sv);
		f->numbers[i] = num ? number_canonical(num) : NULL;
	}
}

/* Append a NUL-terminated string to the string area; its offset. */
static int32
add_string(StringInfo strings, const char *s)
{
	int32		off = strings->len;

	appendBinaryStringInfo(strings, s, strlen(s) + 1);
	return off;
}

/* Build the stored form of validated, canonical filters. */
static struct varlena *
filters_pack(ParsedFilter *fs, int nkeys)
{
	int			nvalues = 0,
				nnumbers = 0;
	FilterKeyEntry *keys;
	FilterValueEntry *values;
	int32	   *numbers;
	StringInfoData strings;
	Size		head,
				size;
	FiltersData *d;
	int			vi = 0,
				ni = 0;

	for (int k = 0; k < nkeys; k++)
	{
		nvalues += fs[k].nvalues;
		for (int i = 0; i < fs[k].nvalues; i++)
			nnumbers += fs[k].numbers[i] != NULL;
	}
	keys = palloc0(Max(nkeys, 1) * sizeof(FilterKeyEntry));
	values = palloc0(Max(nvalues, 1) * sizeof(FilterValueEntry));
	numbers = palloc0(Max(nnumbers, 1) * sizeof(int32));
	initStringInfo(&strings);

	for (int k = 0; k < nkeys; k++)
	{
		ParsedFilter *f = &fs[k];
		char	  **distinct = palloc(Max(f->nvalues, 1) * sizeof(char *));
		int32	   *distinct_off = palloc(Max(f->nvalues, 1) * sizeof(int32));
		int			nd = 0;

		keys[k].key_len = strlen(f->key);
		keys[k].key_off = add_string(&strings, f->key);
		keys[k].first_value = vi;
		keys[k].nvalues = f->nvalues;
		for (int i = 0; i < f->nvalues; i++)
		{
			values[vi + i].text_off = add_string(&strings, f->values[i]);
			values[vi + i].number_off = -1;
			if (f->numbers[i] != NULL)
				distinct[nd++] = f->numbers[i];
		}
		/* each distinct canonical number once, sorted; values point at their copy */
		qsort(distinct, nd, sizeof(char *), compare_cstring_ptrs);
		{
			int			m = 0;

			for (int i = 0; i < nd; i++)
				if (m == 0 || strcmp(distinct[m - 1], distinct[i]) != 0)
					distinct[m++] = distinct[i];
			nd = m;
		}
		keys[k].first_number = ni;
		keys[k].nnumbers = nd;
		for (int i = 0; i < nd; i++)
		{
			distinct_off[i] = add_string(&strings, distinct[i]);
			numbers[ni + i] = distinct_off[i];
		}
		for (int i = 0; i < f->nvalues; i++)
			if (f->numbers[i] != NULL)
			{
				char	  **hit = bsearch(&f->numbers[i], distinct, nd, sizeof(char *),
										  compare_cstring_ptrs);

				if (hit == NULL)
					elog(ERROR, "canonical number of a filter value not found");
				values[vi + i].number_off = distinct_off[hit - distinct];
			}
		vi += f->nvalues;
		ni += nd;
		pfree(distinct);
		pfree(distinct_off);
	}

	head = sizeof(FiltersData) + nkeys * sizeof(FilterKeyEntry) +
		nvalues * sizeof(FilterValueEntry) + ni * sizeof(int32);
	size = head + strings.len;
	d = palloc0(size);
	SET_VARSIZE(d, size);
	d->version = FILTERS_VERSION;
	d->nkeys = nkeys;
	d->nvalues = nvalues;
	d->nnumbers = ni;
	{
		char	   *p = (char *) d + sizeof(FiltersData);

		memcpy(p, keys, nkeys * sizeof(FilterKeyEntry));
		p += nkeys * sizeof(FilterKeyEntry);
		memcpy(p, values, nvalues * sizeof(FilterValueEntry));
		p += nvalues * sizeof(FilterValueEntry);
		memcpy(p, numbers, ni * sizeof(int32));
		p += ni * sizeof(int32);
		memcpy(p, strings.data, strings.len);
	}
	return (struct varlena *) d;
}

/* Validate a jsonb value as filters (SPEC §2) and build the canonical stored form. */
static struct varlena *
filters_from_jsonb(Jsonb *jb)
{
	JsonbIterator *it;
	JsonbIteratorToken tok;
	JsonbValue	v;
	ParsedFilter *fs;
	int			n = 0;

	if (JB_ROOT_IS_SCALAR(jb) || !JB_ROOT_IS_ARRAY(jb))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("filters must be a JSON array"),
				 errdetail("The value is a JSON %s.", JB_ROOT_IS_OBJECT(jb) ? "object" : "scalar"),
				 errhint("Write a JSON array such as %s, or [] for no filters.", FILTERS_EXAMPLE)));

	fs = palloc(Max(JB_ROOT_COUNT(jb), 1) * sizeof(ParsedFilter));
	it = JsonbIteratorInit(&jb->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok != WJB_ELEM)
			continue;
		parse_filter(&v, n, &fs[n]);
		n++;
	}

	qsort(fs, n, sizeof(ParsedFilter), compare_filters);
	for (int i = 1; i < n; i++)
		if (strcmp(fs[i - 1].key, fs[i].key) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("duplicate filter key \"%s\"", fs[i].key),
					 errdetail("Two filters name the key \"%s\"; it is ambiguous which one applies.",
							   fs[i].key),
					 errhint("Merge them into one filter whose values list all accepted values.")));

	return filters_pack(fs, n);
}

Filters *
filters_unpack(struct varlena *stored)
{
	FiltersData *d = (FiltersData *) pg_detoast_datum(stored);
	FilterKeyEntry *ke;
	FilterValueEntry *ve;
	int32	   *ne;
	char	   *strings;
	Filters    *f;
	FilterKey  *keys;
	FilterValue *values;
	const char **numbers;
	char	   *mem;

	if (d->version != FILTERS_VERSION)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("unsupported meter.filters format version %d", d->version)));
	/* Everything in CurrentMemoryContext, as callers that cache the result expect:
	 * copy a datum that was not detoasted (it may live in a disk buffer). */
	if ((struct varlena *) d == stored)
		d = (FiltersData *) memcpy(palloc(VARSIZE(d)), d, VARSIZE(d));
	ke = (FilterKeyEntry *) ((char *) d + sizeof(FiltersData));
	ve = (FilterValueEntry *) (ke + d->nkeys);
	ne = (int32 *) (ve + d->nvalues);
	strings = (char *) (ne + d->nnumbers);

	/* one allocation for the whole unpacked value */
	mem = palloc(MAXALIGN(sizeof(Filters)) + MAXALIGN(d->nkeys * sizeof(FilterKey)) +
				 MAXALIGN(d->nvalues * sizeof(FilterValue)) + d->nnumbers * sizeof(char *));
	f = (Filters *) mem;
	keys = (FilterKey *) (mem + MAXALIGN(sizeof(Filters)));
	values = (FilterValue *) ((char *) keys + MAXALIGN(d->nkeys * sizeof(FilterKey)));
	numbers = (const char **) ((char *) values + MAXALIGN(d->nvalues * sizeof(FilterValue)));

	f->nkeys = d->nkeys;
	f->keys = keys;
	for (int i = 0; i < d->nvalues; i++)
	{
		values[i].text = strings + ve[i].text_off;
		values[i].number = ve[i].number_off >= 0 ? strings + ve[i].number_off : NULL;
	}
	for (int i = 0; i < d->nnumbers; i++)
		numbers[i] = strings + ne[i];
	for (int k = 0; k < d->nkeys; k++)
	{
		keys[k].key = strings + ke[k].key_off;
		keys[k].keylen = ke[k].key_len;
		keys[k].nvalues = ke[k].nvalues;
		keys[k].values = values + ke[k].first_value;
		keys[k].nnumbers = ke[k].nnumbers;
		keys[k].numbers = numbers + ke[k].first_number;
	}
	return f;
}

const FilterKey *
filters_find_key(const Filters *filters, const char *key, int keylen)
{
	int			lo = 0,
				hi = filters->nkeys;

	while (lo < hi)
	{
		int			mid = lo + (hi - lo) / 2;
		const FilterKey *k = &filters->keys[mid];
		int			c = memcmp(k->key, key, Min(k->keylen, keylen));

		if (c == 0)
			c = (k->keylen > keylen) - (k->keylen < keylen);
		if (c == 0)
			return k;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static char *
filters_to_cstring(const Filters *f)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfoChar(&buf, '[');
	for (int k = 0; k < f->nkeys; k++)
	{
		const FilterKey *key = &f->keys[k];

		if (k > 0)
			appendStringInfoChar(&buf, ',');
		appendStringInfoString(&buf, "{\"key\":");
		escape_json(&buf, key->key);
		appendStringInfoString(&buf, ",\"values\":[");
		for (int i = 0; i < key->nvalues; i++)
		{
			if (i > 0)
				appendStringInfoChar(&buf, ',');
			escape_json(&buf, key->values[i].text);
		}
		appendStringInfoString(&buf, "]}");
	}
	appendStringInfoChar(&buf, ']');
	return buf.data;
}

static struct varlena *
filters_from_cstring(char *str)
{
	return filters_from_jsonb(json_input_parse(str, "meter.filters", FILTERS_EXAMPLE,
											   filters_bad_number));
}

/*
 * meter.filters_in(cstring): the text input of meter.filters. 22P02 for text that is
 * not JSON, 22023 for JSON that breaks a rule of SPEC §2; the result is canonical.
 */
PG_FUNCTION_INFO_V1(meter_filters_in);
Datum
meter_filters_in(PG_FUNCTION_ARGS)
{
	PG_RETURN_POINTER(filters_from_cstring(PG_GETARG_CSTRING(0)));
}

/* meter.filters_out(meter.filters): canonical JSON text. */
PG_FUNCTION_INFO_V1(meter_filters_out);
Datum
meter_filters_out(PG_FUNCTION_ARGS)
{
	PG_RETURN_CSTRING(filters_to_cstring(PG_GETARG_FILTERS(0)));
}

/*
 * meter.filters_recv(internal): binary input — a version byte (1) then the JSON text,
 * validated exactly like text input.
 */
PG_FUNCTION_INFO_V1(meter_filters_recv);
Datum
meter_filters_recv(PG_FUNCTION_ARGS)
{
	StringInfo	buf = (StringInfo) PG_GETARG_POINTER(0);

	PG_RETURN_POINTER(filters_from_cstring(json_input_recv_text(buf, "meter.filters")));
}

/* meter.filters_send(meter.filters): a version byte (1) then the canonical JSON text. */
PG_FUNCTION_INFO_V1(meter_filters_send);
Datum
meter_filters_send(PG_FUNCTION_ARGS)
{
	PG_RETURN_BYTEA_P(json_input_send_text(filters_to_cstring(PG_GETARG_FILTERS(0))));
}

/* meter.filters_eq(a, b): the = operator. */
PG_FUNCTION_INFO_V1(meter_filters_eq);
Datum
meter_filters_eq(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(canonical_equal(PG_GETARG_DATUM(0), PG_GETARG_DATUM(1)));
}

/* meter.filters_ne(a, b): the <> operator. */
PG_FUNCTION_INFO_V1(meter_filters_ne);
Datum
meter_filters_ne(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(!canonical_equal(PG_GETARG_DATUM(0), PG_GETARG_DATUM(1)));
}

/* meter.filters_hash(a): hash of the canonical stored form, for the hash opclass. */
PG_FUNCTION_INFO_V1(meter_filters_hash);
Datum
meter_filters_hash(PG_FUNCTION_ARGS)
{
	return canonical_hash(PG_GETARG_DATUM(0));
}

/* meter.filters_to_jsonb(f): cast meter.filters → jsonb (the canonical JSON). */
PG_FUNCTION_INFO_V1(meter_filters_to_jsonb);
Datum
meter_filters_to_jsonb(PG_FUNCTION_ARGS)
{
	char	   *str = filters_to_cstring(PG_GETARG_FILTERS(0));

	return DirectFunctionCall1(jsonb_in, CStringGetDatum(str));
}

/* meter.filters_from_jsonb(j): cast jsonb → meter.filters, validated like input. */
PG_FUNCTION_INFO_V1(meter_filters_from_jsonb);
Datum
meter_filters_from_jsonb(PG_FUNCTION_ARGS)
{
	PG_RETURN_POINTER(filters_from_jsonb(PG_GETARG_JSONB_P(0)));
}

static ArrayType *
cstrings_to_text_array(const char *const *strs, int n, int stride)
{
	Datum	   *elems = palloc(Max(n, 1) * sizeof(Datum));

	for (int i = 0; i < n; i++)
		elems[i] = PointerGetDatum(cstring_to_text(*(const char *const *) ((const char *) strs + i * stride)));
	return construct_array(elems, n, TEXTOID, -1, false, TYPALIGN_INT);
}

/* meter.filter_keys(meter.filters) → text[]: the filter keys, sorted ('{}' when none). */
PG_FUNCTION_INFO_V1(meter_filter_keys);
Datum
meter_filter_keys(PG_FUNCTION_ARGS)
{
	Filters    *f = PG_GETARG_FILTERS(0);

	PG_RETURN_ARRAYTYPE_P(cstrings_to_text_array((const char *const *) &f->keys[0].key,
												 f->nkeys, sizeof(FilterKey)));
}

/* meter.filter_values(meter.filters, key text) → text[]: the key's values, sorted and
 * unique; NULL when the filters have no such key. */
PG_FUNCTION_INFO_V1(meter_filter_values);
Datum
meter_filter_values(PG_FUNCTION_ARGS)
{
	Filters    *f = PG_GETARG_FILTERS(0);
	text	   *key = PG_GETARG_TEXT_PP(1);
	const FilterKey *k = filters_find_key(f, VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key));

	if (k == NULL)
		PG_RETURN_NULL();
	PG_RETURN_ARRAYTYPE_P(cstrings_to_text_array((const char *const *) &k->values[0].text,
												 k->nvalues, sizeof(FilterValue)));
}

/*
 * Ordering, for the btree operator class (ORDER BY, count(DISTINCT …), merge joins):
 * key by key (byte order), each key's values in order, a prefix first. It is 0 exactly
 * when the canonical forms are equal, as btree requires of =.
 */
static int
filters_compare(const Filters *a, const Filters *b)
{
	for (int k = 0; k < a->nkeys && k < b->nkeys; k++)
	{
		const FilterKey *ka = &a->keys[k];
		const FilterKey *kb = &b->keys[k];
		int			c = strcmp(ka->key, kb->key);

		if (c != 0)
			return c < 0 ? -1 : 1;
		for (int i = 0; i < ka->nvalues && i < kb->nvalues; i++)
		{
			c = strcmp(ka->values[i].text, kb->values[i].text);
			if (c != 0)
				return c < 0 ? -1 : 1;
		}
		if (ka->nvalues != kb->nvalues)
			return ka->nvalues < kb->nvalues ? -1 : 1;
	}
	if (a->nkeys != b->nkeys)
		return a->nkeys < b->nkeys ? -1 : 1;
	return 0;
}

#define FILTERS_CMP() filters_compare(PG_GETARG_FILTERS(0), PG_GETARG_FILTERS(1))

/* meter.filters_cmp(a, b): btree support function 1 (-1, 0, 1). */
PG_FUNCTION_INFO_V1(meter_filters_cmp);
Datum
meter_filters_cmp(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT32(FILTERS_CMP());
}

/* meter.filters_lt(a, b): the < operator. */
PG_FUNCTION_INFO_V1(meter_filters_lt);
Datum
meter_filters_lt(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(FILTERS_CMP() < 0);
}

/* meter.filters_le(a, b): the <= operator. */
PG_FUNCTION_INFO_V1(meter_filters_le);
Datum
meter_filters_le(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(FILTERS_CMP() <= 0);
}

/* meter.filters_gt(a, b): the > operator. */
PG_FUNCTION_INFO_V1(meter_filters_gt);
Datum
meter_filters_gt(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(FILTERS_CMP() > 0);
}

/* meter.filters_ge(a, b): the >= operator. */
PG_FUNCTION_INFO_V1(meter_filters_ge);
Datum
meter_filters_ge(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(FILTERS_CMP() >= 0);
}
