/*
 * event_value.h — what one event gives an aggregation (SPEC §2, §8): its number (a
 * field's usable value or the expression's result), why it gives none, its COUNT_UNIQUE
 * identity and its group_by group. The one place that says so: the tracking engine,
 * meter.aggregate, the usage functions and explain_match all ask here. properties may be
 * NULL (an event without properties: every property is missing).
 */
#ifndef METER_EVENT_VALUE_H
#define METER_EVENT_VALUE_H

#include "datatype/timestamp.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"

#include "aggregation.h"

/*
 * The number the event gives a SUM, AVG, MAX, MIN, LATEST, SUM_WITH_MULTIPLIER or
 * WEIGHTED_SUM aggregation (before the multiplier or the time weight): the field's
 * usable value, or the expression's result. NULL when the event is skipped, and for
 * COUNT and COUNT_UNIQUE (which take no number). Never raises an error for any
 * properties. The result may point into properties; do not pfree or change it.
 */
extern Numeric event_value_numeric(const Aggregation *agg, Jsonb *properties);

/*
 * Why the event gives the aggregation nothing, as explain_match says it (e.g. "property
 * \"tokens\" is not a number, so SUM skips the event"), or NULL when it gives a value
 * (always for COUNT). palloc'd.
 */
extern char *event_value_explain(const Aggregation *agg, Jsonb *properties);

/* The COUNT_UNIQUE identity of the event (number.h's properties_unique_text of the
 * field), NULL when the field is missing or JSON null. palloc'd. */
extern char *event_value_unique(const Aggregation *agg, Jsonb *properties);

/*
 * The group of the event under group_by, compared like COUNT_UNIQUE (1, 1.0 and "1" are
 * one group, true and "true" one, "" a group of its own); NULL when the aggregation has
 * no group_by, or the property is missing or JSON null (those events form one group).
 * palloc'd.
 */
extern char *event_value_group(const Aggregation *agg, Jsonb *properties);

/*
 * Everything an event contributes to a partial state of agg (partial.h): its number,
 * COUNT_UNIQUE identity and group, its timestamp and, for a bucketed MAX, the bucket key
 * the caller chose for it. properties may be NULL.
 */
struct EventValue;
extern void event_value_fill(const Aggregation *agg, Jsonb *properties, TimestampTz ts,
							 TimestampTz bucket, struct EventValue *out);

#endif							/* METER_EVENT_VALUE_H */
