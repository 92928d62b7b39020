/*
 * event_value.c — what an event gives an aggregation (see event_value.h).
 */
#include "postgres.h"

#include "event_value.h"
#include "number.h"

Numeric
event_value_numeric(const Aggregation *agg, Jsonb *properties)
{
	if (agg->field == NULL)
		return NULL;
	return properties_numeric(properties, agg->field);
}

char *
event_value_explain(const Aggregation *agg, Jsonb *properties)
{
	JsonbValue	v;

	if (agg->type == AGG_COUNT)
		return NULL;
	if (agg->type == AGG_COUNT_UNIQUE)
		return properties_unique_text(properties, agg->field) ? NULL :
			psprintf("property \"%s\" is missing or null, so %s skips the event",
					 agg->field, agg_type_names[agg->type]);
	if (properties_numeric(properties, agg->field) != NULL)
		return NULL;
	if (!jsonb_get_field(properties, agg->field, (int) strlen(agg->field), &v))
		return psprintf("property \"%s\" is missing, so %s skips the event",
						agg->field, agg_type_names[agg->type]);
	return psprintf("property \"%s\" is not a number, so %s skips the event",
					agg->field, agg_type_names[agg->type]);
}

char *
event_value_unique(const Aggregation *agg, Jsonb *properties)
{
	return properties_unique_text(properties, agg->field);
}

char *
event_value_group(const Aggregation *agg, Jsonb *properties)
{
	return NULL;
}

void
event_value_fill(const Aggregation *agg, Jsonb *properties, TimestampTz ts,
				 TimestampTz bucket, EventValue *out)
{
	out->value = NULL;
	out->unique = NULL;
	out->group = NULL;
	out->ts = ts;
	out->bucket = bucket;
	if (properties == NULL || agg->type == AGG_COUNT)
		return;
	if (agg->type == AGG_COUNT_UNIQUE)
		out->unique = event_value_unique(agg, properties);
	else
	{
		out->value = event_value_numeric(agg, properties);
		if (out->value != NULL && AGG_BUCKETED(agg))
			out->group = event_value_group(agg, properties);
	}
}
