/*
 * dims.h — the dimensions of an event for a meter: its values of the meter's filter keys
 * (the values on which charges apply), kept in the rollup key so that usage can be broken
 * down by them (usage_by_group, usage_by_filter_groups) without reading raw events.
 *
 * Encoded as one string: for each filter key, in the meter's key order, the value's byte
 * length, ':', its kind ('s' string, 'n' number, 'b' boolean) and its text — a string's
 * text, a number's canonical form, true/false; a key the event lacks (or holds null, an
 * object or an array for) is "-". The kind keeps SPEC §3's rules applicable to it
 * (strings compare by text, numbers by value). A meter without filters has "".
 */
#ifndef METER_DIMS_H
#define METER_DIMS_H

#include "utils/jsonb.h"

#include "filters.h"

/* The encoded dimensions of an event for a meter with these filters; palloc'd. */
extern char *dims_of_event(const Filters *filters, Jsonb *properties);

/* Split encoded dimensions into at most max values (kind char then text; NULL for "-");
 * returns how many. ERROR on a malformed string. */
extern int	dims_split(const char *dims, char **values, int max);

/* The JSON value of a split dimension (kind + text), as jsonb text: "gpt-4o", 1.5, true,
 * or null. palloc'd. */
extern char *dims_json(const char *value);

#endif							/* METER_DIMS_H */
