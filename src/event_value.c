/*
 * event_value.c — what one event gives an aggregation (SPEC §2, §8).
 *
 * A field is read with number.c's rules (a usable value or a skip); an expression is
 * evaluated by expression.c (missing properties are 0, anything else that is not a
 * usable number, and every arithmetic failure, is a skip). COUNT takes no value,
 * COUNT_UNIQUE and group_by take an identity. meter.quantity shows it in SQL.
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/numeric.h"

#include "aggregation.h"
#include "event_value.h"
#include "expression.h"
#include "number.h"
#include "partial.h"

Numeric
event_value_numeric(const Aggregation *agg, Jsonb *properties)
{
	Numeric		value;
	const char *property;

	if (agg->type == AGG_COUNT || agg->type == AGG_COUNT_UNIQUE)
		return NULL;
	if (agg->compiled != NULL)
		return expression_evaluate(agg->compiled, properties, &value, &property) == EXPRESSION_VALUE ?
			value : NULL;
	if (agg->field == NULL || properties == NULL)
		return NULL;
	return properties_numeric(properties, agg->field);
}

/* Why an expression skips the event, or NULL. */
static char *
explain_expression(const Aggregation *agg, Jsonb *properties)
{
	Numeric		value;
	const char *property = NULL;

	switch (expression_evaluate(agg->compiled, properties, &value, &property))
	{
		case EXPRESSION_VALUE:
			return NULL;
		case EXPRESSION_NOT_A_NUMBER:
			return psprintf("property \"%s\" is not a number, so the expression skips the event",
							property);
		case EXPRESSION_DIVISION_BY_ZERO:
			return pstrdup("the expression divides by zero, so it skips the event");
		case EXPRESSION_SQRT_NEGATIVE:
			return pstrdup("the expression takes the square root of a negative number, so it skips the event");
		case EXPRESSION_LOG_NOT_POSITIVE:
			return pstrdup("the expression takes the logarithm of zero or of a negative number, so it skips the event");
		case EXPRESSION_POW_ZERO_NEGATIVE:
			return pstrdup("the expression raises zero to a negative power, so it skips the event");
		case EXPRESSION_POW_NEGATIVE_FRACTION:
			return pstrdup("the expression raises a negative number to a non-integer power, so it skips the event");
		case EXPRESSION_OUT_OF_RANGE:
			return pstrdup("the expression's value is out of numeric's range, so it skips the event");
	}
	return NULL;				/* keep compiler quiet */
}

char *
event_value_explain(const Aggregation *agg, Jsonb *properties)
{
	JsonbValue	v;

	if (agg->type == AGG_COUNT)
		return NULL;
	if (agg->type == AGG_COUNT_UNIQUE)
		return event_value_unique(agg, properties) ? NULL :
			psprintf("property \"%s\" is missing or null, so %s skips the event",
					 agg->field, agg_type_names[agg->type]);
	if (agg->compiled != NULL)
		return explain_expression(agg, properties);
	if (event_value_numeric(agg, properties) != NULL)
		return NULL;
	if (properties == NULL || !jsonb_get_field(properties, agg->field, (int) strlen(agg->field), &v))
		return psprintf("property \"%s\" is missing, so %s skips the event",
						agg->field, agg_type_names[agg->type]);
	return psprintf("property \"%s\" is not a number, so %s skips the event",
					agg->field, agg_type_names[agg->type]);
}

char *
event_value_unique(const Aggregation *agg, Jsonb *properties)
{
	if (agg->field == NULL || properties == NULL)
		return NULL;
	return properties_unique_text(properties, agg->field);
}

char *
event_value_group(const Aggregation *agg, Jsonb *properties)
{
	if (agg->group_by == NULL || properties == NULL)
		return NULL;
	return properties_unique_text(properties, agg->group_by);
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
	if (agg->type == AGG_COUNT)
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

/*
 * The aggregation of argument 0, unpacked (and its expression compiled) once per query
 * while the argument's bytes stay the same: kept in fn_extra, in a context of its own
 * that is reset when the aggregation changes.
 */
typedef struct CachedAggregation
{
	MemoryContext context;
	struct varlena *bytes;		/* a copy; NULL until valid */
	Aggregation *agg;
} CachedAggregation;

static Aggregation *
cached_aggregation(FunctionCallInfo fcinfo)
{
	struct varlena *bytes = PG_DETOAST_DATUM_PACKED(PG_GETARG_DATUM(0));
	CachedAggregation *cache = (CachedAggregation *) fcinfo->flinfo->fn_extra;
	MemoryContext old;
	Aggregation *agg;
	struct varlena *copy;

	if (cache == NULL)
	{
		cache = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(CachedAggregation));
		cache->context = AllocSetContextCreate(fcinfo->flinfo->fn_mcxt, "meter.quantity aggregation",
											   ALLOCSET_SMALL_SIZES);
		fcinfo->flinfo->fn_extra = cache;
	}
	else if (cache->bytes != NULL && VARSIZE_ANY(cache->bytes) == VARSIZE_ANY(bytes) &&
			 memcmp(cache->bytes, bytes, VARSIZE_ANY(bytes)) == 0)
		return cache->agg;

	cache->bytes = NULL;
	MemoryContextReset(cache->context);
	old = MemoryContextSwitchTo(cache->context);
	agg = aggregation_unpack(bytes);
	copy = palloc(VARSIZE_ANY(bytes));
	memcpy(copy, bytes, VARSIZE_ANY(bytes));
	MemoryContextSwitchTo(old);
	cache->agg = agg;
	cache->bytes = copy;
	return agg;
}

/*
 * meter.quantity(aggregation, properties jsonb) → numeric: what one event contributes to
 * the aggregation before the multiplier or the time weight: 1 for COUNT, NULL for
 * COUNT_UNIQUE (its value is an identity, not a number), else the field's usable value or
 * the expression's result, NULL when the event is skipped. The SQL face of
 * event_value_numeric, for checking an expression on sample events.
 */
PG_FUNCTION_INFO_V1(meter_quantity);
Datum
meter_quantity(PG_FUNCTION_ARGS)
{
	Aggregation *agg = cached_aggregation(fcinfo);
	Numeric		value;

	if (agg->type == AGG_COUNT)
		PG_RETURN_NUMERIC(int64_to_numeric(1));
	value = event_value_numeric(agg, PG_GETARG_JSONB_P(1));
	if (value == NULL)
		PG_RETURN_NULL();
	PG_RETURN_NUMERIC(value);
}
