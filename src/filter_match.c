/*
 * filter_match.c — filter matching (SPEC §3) and its explanation.
 *
 * For every filter key, properties must have that top-level key with a value equal to
 * one of the key's values: a JSON string by its text, a JSON number by value against the
 * values in number syntax (1, 1.0 and 1e0 all match "1"), true/false against "true" and
 * "false". Null, objects, arrays and missing keys never match; no filters match all.
 *
 * It is on the hot path of every tracked insert, so it parses no JSON text: the key is
 * found by binary search in the jsonb object (getKeyJsonValueFromContainer), a string by
 * binary search in the key's sorted values, without allocating; only a JSON number costs
 * one canonical-text conversion. meter.matches() also keeps the unpacked filters across
 * calls (fn_extra) while the filters argument stays the same.
 */
#include "postgres.h"

#include "fmgr.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/numeric.h"

#include "filters.h"
#include "number.h"

/* Compare a NUL-terminated value with s[0..len) (no NUL inside) in byte order. */
static inline int
compare_text(const char *value, const char *s, int len)
{
	int			c = strncmp(value, s, len);

	if (c != 0)
		return c;
	return value[len] == '\0' ? 0 : 1;
}

/* Is s[0..len) one of the key's values (sorted by text)? */
static bool
key_has_text(const FilterKey *key, const char *s, int len)
{
	int			lo = 0,
				hi = key->nvalues;

	while (lo < hi)
	{
		int			mid = lo + (hi - lo) / 2;
		int			c = compare_text(key->values[mid].text, s, len);

		if (c == 0)
			return true;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

/* Is the canonical number one of the key's values in number syntax (canonical, sorted)? */
static bool
key_has_number(const FilterKey *key, const char *canonical)
{
	int			lo = 0,
				hi = key->nnumbers;

	while (lo < hi)
	{
		int			mid = lo + (hi - lo) / 2;
		int			c = strcmp(key->numbers[mid], canonical);

		if (c == 0)
			return true;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

FilterIdentity
filters_value_identity(const JsonbValue *v, bool numbers, const char **s, int *len)
{
	switch (v->type)
	{
		case jbvString:
			*s = v->val.string.val;
			*len = v->val.string.len;
			return IDENTITY_TEXT;
		case jbvBool:
			*s = v->val.boolean ? "true" : "false";
			*len = v->val.boolean ? 4 : 5;
			return IDENTITY_TEXT;
		case jbvNumeric:
			if (!numbers)
				return IDENTITY_NONE;
			*s = number_canonical(v->val.numeric);
			*len = (int) strlen(*s);
			return IDENTITY_NUMBER;
		default:
			return IDENTITY_NONE;	/* null, object, array */
	}
}

/* Does the property value v match one of the key's values? */
static bool
value_matches(const FilterKey *key, const JsonbValue *v)
{
	const char *s;
	int			len;
	bool		found;

	switch (filters_value_identity(v, key->nnumbers > 0, &s, &len))
	{
		case IDENTITY_TEXT:
			return key_has_text(key, s, len);
		case IDENTITY_NUMBER:
			found = key_has_number(key, s);
			pfree((char *) s);
			return found;
		default:
			return false;
	}
}

bool
filters_match(const Filters *filters, Jsonb *properties)
{
	JsonbValue	v;

	if (filters->nkeys == 0)
		return true;
	if (!JB_ROOT_IS_OBJECT(properties))
		return false;
	for (int k = 0; k < filters->nkeys; k++)
	{
		const FilterKey *key = &filters->keys[k];

		if (getKeyJsonValueFromContainer(&properties->root, key->key, key->keylen, &v) == NULL)
			return false;
		if (!value_matches(key, &v))
			return false;
	}
	return true;
}

/* Values listed in an explanation before the list is cut short, and bytes shown of a
 * long value (cut at a character boundary). */
#define EXPLAIN_MAX_VALUES 20
#define EXPLAIN_MAX_BYTES 100

/* s[0..len), cut to EXPLAIN_MAX_BYTES with "…" when longer. palloc'd. */
static char *
shortened(const char *s, int len)
{
	int			keep;
	char	   *result;

	if (len <= EXPLAIN_MAX_BYTES)
		return pnstrdup(s, len);
	keep = pg_mbcliplen(s, len, EXPLAIN_MAX_BYTES);
	result = palloc(keep + sizeof("…"));
	memcpy(result, s, keep);
	strcpy(result + keep, "…");
	return result;
}

char *
filters_explain(const Filters *filters, Jsonb *properties)
{
	for (int k = 0; k < filters->nkeys; k++)
	{
		const FilterKey *key = &filters->keys[k];
		JsonbValue	v;
		StringInfoData buf;

		if (!jsonb_get_field(properties, key->key, key->keylen, &v))
		{
			initStringInfo(&buf);
			appendStringInfoString(&buf, "filter ");
			escape_json(&buf, key->key);
			appendStringInfoString(&buf, ": key missing");
			return buf.data;
		}
		if (value_matches(key, &v))
			continue;

		initStringInfo(&buf);
		appendStringInfoString(&buf, "filter ");
		escape_json(&buf, key->key);
		appendStringInfoString(&buf, ": ");
		switch (v.type)
		{
			case jbvNull:
				appendStringInfoString(&buf, "value is null");
				return buf.data;
			case jbvBinary:
				appendStringInfoString(&buf, JsonContainerIsArray(v.val.binary.data) ?
									   "value is an array" : "value is an object");
				return buf.data;
			case jbvString:
				{
					char	   *s = shortened(v.val.string.val, v.val.string.len);

					appendStringInfoString(&buf, "value ");
					escape_json(&buf, s);
					break;
				}
			case jbvNumeric:
				appendStringInfo(&buf, "value %s",
								 DatumGetCString(DirectFunctionCall1(numeric_out,
																	 NumericGetDatum(v.val.numeric))));
				break;
			case jbvBool:
				appendStringInfo(&buf, "value %s", v.val.boolean ? "true" : "false");
				break;
			default:
				appendStringInfoString(&buf, "value");
				break;
		}
		appendStringInfoString(&buf, " not in [");
		for (int i = 0; i < key->nvalues && i < EXPLAIN_MAX_VALUES; i++)
		{
			if (i > 0)
				appendStringInfoString(&buf, ", ");
			appendStringInfoString(&buf, shortened(key->values[i].text,
												   strlen(key->values[i].text)));
		}
		if (key->nvalues > EXPLAIN_MAX_VALUES)
			appendStringInfo(&buf, ", … %d more", key->nvalues - EXPLAIN_MAX_VALUES);
		appendStringInfoChar(&buf, ']');
		return buf.data;
	}
	return NULL;
}

/*
 * The unpacked filters of the last call, kept in fn_mcxt: meter.matches is usually called
 * with the same filters (a constant, or one meter's column) for many rows in a row.
 */
typedef struct MatchCache
{
	MemoryContext cxt;			/* holds the two below; reset when the filters change */
	Size		len;			/* of the data bytes below */
	char	   *data;			/* the filters datum's bytes (without header) */
	Filters    *filters;		/* unpacked */
} MatchCache;

static const Filters *
cached_filters(FunctionCallInfo fcinfo, int argno)
{
	struct varlena *arg = PG_DETOAST_DATUM_PACKED(PG_GETARG_DATUM(argno));
	Size		len = VARSIZE_ANY_EXHDR(arg);
	MatchCache *cache = (MatchCache *) fcinfo->flinfo->fn_extra;
	MemoryContext old;

	if (cache != NULL && cache->len == len && memcmp(cache->data, VARDATA_ANY(arg), len) == 0)
		return cache->filters;

	if (cache == NULL)
	{
		cache = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(MatchCache));
		cache->cxt = AllocSetContextCreate(fcinfo->flinfo->fn_mcxt, "meter.matches filters",
										   ALLOCSET_SMALL_SIZES);
		fcinfo->flinfo->fn_extra = cache;
	}
	else
		MemoryContextReset(cache->cxt);
	cache->filters = NULL;
	cache->len = 0;
	old = MemoryContextSwitchTo(cache->cxt);
	cache->data = palloc(len);
	memcpy(cache->data, VARDATA_ANY(arg), len);
	cache->filters = filters_unpack(arg);
	MemoryContextSwitchTo(old);
	cache->len = len;
	return cache->filters;
}

/*
 * meter.matches(filters meter.filters, properties jsonb) → boolean: SPEC §3. IMMUTABLE
 * STRICT PARALLEL SAFE; the C matcher behind meter.matching_meters and the trigger.
 */
PG_FUNCTION_INFO_V1(meter_matches);
Datum
meter_matches(PG_FUNCTION_ARGS)
{
	const Filters *filters = cached_filters(fcinfo, 0);
	Jsonb	   *properties = PG_GETARG_JSONB_P(1);

	PG_RETURN_BOOL(filters_match(filters, properties));
}

/*
 * meter.explain_filters(filters meter.filters, properties jsonb) → text: why properties
 * do not match the filters (e.g. filter "model": value "gpt-5" not in [gpt-4o]), NULL
 * when they match.
 */
PG_FUNCTION_INFO_V1(meter_explain_filters);
Datum
meter_explain_filters(PG_FUNCTION_ARGS)
{
	Filters    *filters = PG_GETARG_FILTERS(0);
	char	   *why = filters_explain(filters, PG_GETARG_JSONB_P(1));

	if (why == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(why));
}
