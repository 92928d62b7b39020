/*
 * dims.h — the dimensions of an event for a meter: its values of the meter's filter keys
 * (the values on which charges apply), kept in the rollup key so that usage can be broken
 * down by them (usage_by_group, usage_by_filter_groups) without reading raw events.
 *
 * Encoded as one string: for each filter key, in the meter's key order, the value's byte
 * length, ':' and the value; a string value is its text, a number its canonical form,
 * true/false their text; a key the event lacks (or holds null, an object or an array
 * for) is "-". A meter without filters has the empty string.
 */
#ifndef METER_DIMS_H
#define METER_DIMS_H

#include "utils/jsonb.h"

#include "filters.h"

/* The encoded dimensions of an event for a meter with these filters; palloc'd. */
extern char *dims_of_event(const Filters *filters, Jsonb *properties);

/* The value of a JSON property as a dimension: NULL when it has none. palloc'd. */
extern char *dims_value(const JsonbValue *v);

/* Split encoded dimensions into at most max values (NULL for "-"); returns how many.
 * ERROR on a malformed string. */
extern int	dims_split(const char *dims, char **values, int max);

#endif							/* METER_DIMS_H */
