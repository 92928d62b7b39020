/*
 * event_value.h — what an event gives an aggregation (SPEC §2, §8): the one place that
 * reads a meter's value out of an event's properties, for the trigger, recomputation,
 * usage, meter.aggregate and explain_match.
 */
#ifndef METER_EVENT_VALUE_H
#define METER_EVENT_VALUE_H

#include "utils/jsonb.h"
#include "utils/numeric.h"

#include "aggregation.h"
#include "partial.h"

/* The usable value (field or expression), or NULL when the event is skipped. */
extern Numeric event_value_numeric(const Aggregation *agg, Jsonb *properties);

/* NULL when the event gives a value (always for COUNT), else why it is skipped. */
extern char *event_value_explain(const Aggregation *agg, Jsonb *properties);

/* The COUNT_UNIQUE identity of the event, or NULL. */
extern char *event_value_unique(const Aggregation *agg, Jsonb *properties);

/* The group_by identity of the event (compared like COUNT_UNIQUE), or NULL. */
extern char *event_value_group(const Aggregation *agg, Jsonb *properties);

/* Everything an event contributes to a partial state of agg (properties may be NULL:
 * an event without properties); bucket is its bucketed-MAX key. */
extern void event_value_fill(const Aggregation *agg, Jsonb *properties, TimestampTz ts,
							 TimestampTz bucket, EventValue *out);

#endif							/* METER_EVENT_VALUE_H */
