/*
 * filters.h — the meter.filters type (SPEC §2) and filter matching (SPEC §3).
 * Canonical form: keys sorted, each key's values de-duplicated and sorted (byte order).
 */
#ifndef METER_FILTERS_H
#define METER_FILTERS_H

#include "fmgr.h"
#include "utils/jsonb.h"

typedef struct FilterValue
{
	char	   *text;			/* the value as written */
	char	   *number;			/* number_canonical() of it when in number syntax, else NULL */
} FilterValue;

typedef struct FilterKey
{
	char	   *key;
	int			keylen;
	int			nvalues;
	FilterValue *values;		/* sorted by text, unique */
	int			nnumbers;
	const char **numbers;		/* the distinct FilterValue.number of this key, sorted */
} FilterKey;

typedef struct Filters
{
	int			nkeys;
	FilterKey  *keys;			/* sorted by key, unique */
} Filters;

/* Decode the stored form (detoasting as needed); palloc'd in CurrentMemoryContext. */
extern Filters *filters_unpack(struct varlena *stored);

#define PG_GETARG_FILTERS(n) filters_unpack(PG_GETARG_RAW_VARLENA_P(n))

/*
 * SPEC §3's identity of a property value, the one rule both matchers use: a JSON string
 * is its text, true/false the text "true"/"false" (compared with a key's values by text);
 * a JSON number its canonical form (compared with the canonical forms of the key's values
 * in number syntax); null, objects and arrays have none, and match nothing.
 */
typedef enum FilterIdentity
{
	IDENTITY_NONE,
	IDENTITY_TEXT,
	IDENTITY_NUMBER
} FilterIdentity;

/* The identity of v in *s / *len: text inside v or static, or, for IDENTITY_NUMBER, a
 * palloc'd canonical number (the caller pfrees it). With numbers false, a JSON number
 * gets IDENTITY_NONE without the conversion (for keys without values in number syntax). */
extern FilterIdentity filters_value_identity(const JsonbValue *v, bool numbers,
											 const char **s, int *len);

/* SPEC §3: every key present with a value equal to one of its values. */
extern bool filters_match(const Filters *filters, Jsonb *properties);

/* NULL when the properties match; otherwise a palloc'd sentence about the first filter
 * that fails, e.g.  filter "model": value "gpt-5" not in [gpt-4o]. */
extern char *filters_explain(const Filters *filters, Jsonb *properties);

/* The type's text input (validating JSON, canonical form), callable from C. */
extern Datum meter_filters_in(PG_FUNCTION_ARGS);

/* Find key (keylen bytes) in filters; NULL when absent. */
extern const FilterKey *filters_find_key(const Filters *filters, const char *key, int keylen);

#endif							/* METER_FILTERS_H */
