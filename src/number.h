/*
 * number.h — what counts as a number (SPEC §3, §8), shared by matching, the trigger and
 * the aggregate. A usable value is a JSON number, or a string in JSON number syntax
 * (no spaces; NaN, Infinity, "" and booleans are not numbers). Exact numeric throughout.
 */
#ifndef METER_NUMBER_H
#define METER_NUMBER_H

#include "utils/jsonb.h"
#include "utils/numeric.h"

/* True when s[0..len) is a JSON number literal: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
 * with an exponent small enough for numeric (|exponent| <= 1000). */
extern bool number_syntax_ok(const char *s, int len);

/* The numeric of a usable value (jbvNumeric, or jbvString in number syntax), else NULL. */
extern Numeric jsonb_value_numeric(const JsonbValue *v);

/* Canonical text of a number: no trailing fractional zeros ("2.50" → "2.5", "2.0" → "2",
 * "1e2" → "100"). Equal values give equal text. palloc'd. */
extern char *number_canonical(Numeric n);

/* Look up a top-level key of a jsonb object without allocating; false when absent or
 * when the container is not an object. */
extern bool jsonb_get_field(Jsonb *obj, const char *key, int keylen, JsonbValue *out);

/* The usable numeric of properties->field, or NULL (missing, null, not a number, or
 * field NULL). */
extern Numeric properties_numeric(Jsonb *properties, const char *field);

/* The COUNT_UNIQUE identity of properties->field: numbers (and number-syntax strings) in
 * canonical form, other strings as they are, true/false, objects and arrays as their
 * jsonb text; NULL when missing or JSON null (or field NULL). palloc'd. */
extern char *properties_unique_text(Jsonb *properties, const char *field);

#endif							/* METER_NUMBER_H */
