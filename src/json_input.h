/*
 * json_input.h — strict JSON text input for the extension's types (SPEC §2): text that is
 * not JSON is 22P02, an object with the same key twice is 22023, then the value as jsonb.
 */
#ifndef METER_JSON_INPUT_H
#define METER_JSON_INPUT_H

#include "lib/stringinfo.h"
#include "utils/jsonb.h"

/*
 * Called for a number literal that numeric cannot hold (exponent beyond ±1000, too many
 * digits), with the top-level object key it sits under (NULL when none). It should raise
 * the type's own error; if it returns, a generic 22023 error is raised.
 */
typedef void (*json_input_number_hook) (const char *top_key, const char *literal);

/* Parse NUL-terminated JSON text for type typname; example goes into the hint of a
 * syntax error ("Write JSON such as <example>."). */
extern Jsonb *json_input_parse(char *str, const char *typname, const char *example,
							   json_input_number_hook number_hook);

/* "null", "a string", "a number", "a boolean", "an array", "an object": for errors. */
extern const char *json_value_kind(const JsonbValue *v);

/* Binary I/O of the JSON-based types: a version byte (1), then the JSON text. recv
 * returns the text to validate like text input; send wraps canonical text. */
extern char *json_input_recv_text(StringInfo buf, const char *typname);
extern bytea *json_input_send_text(const char *canonical);

/* Equality and hash of the JSON-based types: their stored form is canonical, so equal
 * bytes ⇔ equal values. */
extern bool canonical_equal(Datum a, Datum b);
extern Datum canonical_hash(Datum a);

#endif							/* METER_JSON_INPUT_H */
