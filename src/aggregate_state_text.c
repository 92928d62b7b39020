/*
 * aggregate_state_text.c — the text form of meter.aggregate_state: versioned JSON, e.g.
 * {"version":1,"aggregation":{"type":"SUM","field":"tokens"},"rows":3,"values":2,
 * "sum":12.5}. Citus ships partial aggregate states between nodes in this form, so it
 * is exact (numbers as numeric literals, timestamps in UTC to the microsecond), the same
 * text for equal states (unique values and buckets sorted) whatever the session's
 * settings, and validated on input: text that is not JSON is 22P02, JSON that is not a
 * valid state 22023.
 */
#include "postgres.h"

#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/fmgrprotos.h"
#include "utils/json.h"
#include "utils/jsonb.h"

#include "aggregate_state.h"
#include "json_input.h"

static void
append_numeric(StringInfo buf, Numeric n)
{
	appendStringInfoString(buf, DatumGetCString(DirectFunctionCall1(numeric_out,
																	NumericGetDatum(n))));
}

/* ISO 8601 in UTC, e.g. 2024-01-16 00:00:00+00; "infinity" / "-infinity". */
static void
format_timestamp(TimestampTz ts, char *out)
{
	struct pg_tm tm;
	fsec_t		fsec;

	if (TIMESTAMP_NOT_FINITE(ts))
		EncodeSpecialTimestamp(ts, out);
	else if (timestamp2tm(ts, NULL, &tm, &fsec, NULL, NULL) == 0)
	{
		tm.tm_isdst = 0;		/* UTC: print the +00 */
		EncodeDateTime(&tm, fsec, true, 0, NULL, USE_ISO_DATES, out);
	}
	else
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("timestamp out of range")));
}

static void
append_timestamp(StringInfo buf, TimestampTz ts)
{
	char		s[MAXDATELEN + 1];

	format_timestamp(ts, s);
	escape_json(buf, s);
}

static char *
state_to_text(AggregateState *st)
{
	const Aggregation *agg = st->agg;
	const Partial *p = &st->partial;
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfo(&buf, "{\"version\":%d,\"aggregation\":%s", STATE_VERSION,
					 aggregation_to_cstring(agg));
	if (st->has_period)
	{
		appendStringInfoString(&buf, ",\"period\":[");
		append_timestamp(&buf, st->period_start);
		appendStringInfoChar(&buf, ',');
		append_timestamp(&buf, st->period_end);
		appendStringInfoChar(&buf, ']');
	}
	appendStringInfo(&buf, ",\"rows\":" INT64_FORMAT ",\"values\":" INT64_FORMAT,
					 p->events, state_values(st));
	if (AGG_HAS_SUM(agg->type))
	{
		appendStringInfoString(&buf, ",\"sum\":");
		append_numeric(&buf, p->sum.num ? p->sum.num : int64_to_numeric(0));
	}
	if (agg->type == AGG_WEIGHTED_SUM)
	{
		appendStringInfoString(&buf, ",\"sum_vt\":");
		append_numeric(&buf, p->sum_vt.num ? p->sum_vt.num : int64_to_numeric(0));
	}
	if (p->best.num != NULL)
	{
		appendStringInfoString(&buf, ",\"value\":");
		append_numeric(&buf, p->best.num);
		if (agg->type == AGG_LATEST)
		{
			appendStringInfoString(&buf, ",\"timestamp\":");
			append_timestamp(&buf, p->best_ts);
		}
	}
	if (agg->type == AGG_COUNT_UNIQUE)
	{
		int			n;
		UniqueEntry **u = partial_uniques_sorted(p, &n);

		appendStringInfoString(&buf, ",\"unique\":[");
		for (int i = 0; i < n; i++)
		{
			if (i > 0)
				appendStringInfoChar(&buf, ',');
			escape_json(&buf, u[i]->key);
		}
		appendStringInfoChar(&buf, ']');
	}
	if (AGG_BUCKETED(agg))
	{
		int			n;
		MaxEntry  **m = partial_maxima_sorted(p, &n);

		/* [start, value], and the group when there is one: [start, value, group] */
		appendStringInfoString(&buf, ",\"buckets\":[");
		for (int i = 0; i < n; i++)
		{
			if (i > 0)
				appendStringInfoChar(&buf, ',');
			appendStringInfoChar(&buf, '[');
			append_timestamp(&buf, m[i]->key.bucket);
			appendStringInfoChar(&buf, ',');
			append_numeric(&buf, m[i]->value.num);
			if (m[i]->key.group != NULL)
			{
				appendStringInfoChar(&buf, ',');
				escape_json(&buf, m[i]->key.group);
			}
			appendStringInfoChar(&buf, ']');
		}
		appendStringInfoChar(&buf, ']');
	}
	appendStringInfoChar(&buf, '}');
	return buf.data;
}

/* Text input: what each key of the JSON must be. */
#define TEXT_CODE ERRCODE_INVALID_PARAMETER_VALUE

static void
expect_type(const JsonbValue *v, enum jbvType type, bool is_array, const char *what)
{
	const char *want;

	if (type == jbvBinary)
	{
		if (v->type == jbvBinary &&
			(is_array ? JsonContainerIsArray(v->val.binary.data) :
			 JsonContainerIsObject(v->val.binary.data)))
			return;
		want = is_array ? "an array" : "an object";
	}
	else
	{
		if (v->type == type)
			return;
		want = type == jbvString ? "a string" : "a number";
	}
	state_invalid(TEXT_CODE, psprintf("%s must be %s, not %s.", what, want, json_value_kind(v)));
}

static char *
json_string(const JsonbValue *v, const char *what)
{
	expect_type(v, jbvString, false, what);
	return pnstrdup(v->val.string.val, v->val.string.len);
}

/* A count: a non-negative integer that fits bigint (as in the binary form). */
static int64
json_count(const JsonbValue *v, const char *what)
{
	char	   *s;

	expect_type(v, jbvNumeric, false, what);
	s = DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(v->val.numeric)));
	if (strspn(s, "0123456789") != strlen(s) || strlen(s) > 19 ||
		(strlen(s) == 19 && strcmp(s, "9223372036854775807") > 0))
		state_invalid(TEXT_CODE, psprintf("%s must be an integer from 0 to 9223372036854775807, not %s.",
									  what, s));
	return strtoi64(s, NULL, 10);
}

static Numeric
json_number(const JsonbValue *v, const char *what)
{
	expect_type(v, jbvNumeric, false, what);
	return v->val.numeric;
}

/* A timestamp in the exact form the output writes. */
static TimestampTz
json_timestamp(const JsonbValue *v, const char *what)
{
	char	   *s = json_string(v, what);
	char		again[MAXDATELEN + 1];
	MemoryContext cxt = CurrentMemoryContext;
	TimestampTz ts = 0;

	/* Refuse the special words timestamptz_in knows (now, today, epoch …) up front. */
	if (!isdigit((unsigned char) s[0]) && strcmp(s, "infinity") != 0 && strcmp(s, "-infinity") != 0)
		state_invalid(TEXT_CODE, psprintf("%s must be a timestamp like \"2024-01-16 00:00:00+00\", not \"%s\".",
									  what, s));
	/* timestamptz_in's own errors (22007, 22008) become this type's 22023. */
	PG_TRY();
	{
		ts = DatumGetTimestampTz(DirectFunctionCall3(timestamptz_in, CStringGetDatum(s),
													 ObjectIdGetDatum(InvalidOid),
													 Int32GetDatum(-1)));
	}
	PG_CATCH();
	{
		ErrorData  *e;

		MemoryContextSwitchTo(cxt);
		e = CopyErrorData();
		FlushErrorState();
		state_invalid(TEXT_CODE, psprintf("%s \"%s\" is not a timestamp: %s.", what, s, e->message));
	}
	PG_END_TRY();
	format_timestamp(ts, again);
	if (strcmp(s, again) != 0)
		state_invalid(TEXT_CODE, psprintf("%s must be written in UTC as \"%s\", not \"%s\".",
									  what, again, s));
	return ts;
}

static bool
get_key(JsonbContainer *c, const char *key, JsonbValue *out)
{
	return getKeyJsonValueFromContainer(c, key, strlen(key), out) != NULL;
}

/* Every key of an object must be one of the allowed (NULL-terminated list). */
static void
check_keys(JsonbContainer *c, const char *const *allowed, const char *where)
{
	JsonbIterator *it = JsonbIteratorInit(c);
	JsonbValue	v;
	JsonbIteratorToken tok;

	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		bool		ok = false;

		if (tok != WJB_KEY)
			continue;
		for (const char *const *a = allowed; *a; a++)
			if ((int) strlen(*a) == v.val.string.len &&
				memcmp(*a, v.val.string.val, v.val.string.len) == 0)
				ok = true;
		if (!ok)
			state_invalid(TEXT_CODE, psprintf("Unknown key \"%s\" in %s.",
										  pnstrdup(v.val.string.val, v.val.string.len), where));
	}
}

/* Read an array value: the container, after checking it is an array. */
static JsonbContainer *
json_array(const JsonbValue *v, const char *what)
{
	expect_type(v, jbvBinary, true, what);
	return v->val.binary.data;
}

/* A number literal numeric cannot hold: a state never has one. */
static void
state_bad_number(const char *top_key, const char *literal)
{
	state_invalid(TEXT_CODE, psprintf("The number %s%s%s%s is beyond what numeric holds.", literal,
								  top_key ? " in \"" : "", top_key ? top_key : "", top_key ? "\"" : ""));
}

static AggregateState *
state_from_text(char *str, MemoryContext home)
{
	static const char *const keys[] = {"version", "aggregation", "period", "rows", "values",
	"sum", "sum_vt", "value", "timestamp", "unique", "buckets", NULL};
	Jsonb	   *j = json_input_parse(str, "meter.aggregate_state", STATE_EXAMPLE, state_bad_number);
	JsonbContainer *c = &j->root;
	AggregateState *st = state_new_empty(home);
	const Aggregation *agg;
	JsonbValue	v;
	int64		version,
				rows,
				values;
	bool		with_values;

	if (!JB_ROOT_IS_OBJECT(j))
		state_invalid(TEXT_CODE, "A state is a JSON object.");
	check_keys(c, keys, "the state");
	if (!get_key(c, "version", &v))
		state_invalid(TEXT_CODE, "The state has no version.");
	version = json_count(&v, "The version");
	if (version != STATE_VERSION)
		state_invalid(TEXT_CODE, psprintf("Version " INT64_FORMAT " is not supported; this is version %d.",
										  version, STATE_VERSION));
	if (!get_key(c, "aggregation", &v))
		state_invalid(TEXT_CODE, "The state has no aggregation.");
	expect_type(&v, jbvBinary, false, "The aggregation");
	state_read_aggregation(st, JsonbToCString(NULL, v.val.binary.data, v.val.binary.len), TEXT_CODE);
	agg = st->agg;

	/* Only the keys this aggregation's state holds. */
#define REQUIRE(key, cond) \
	do { \
		bool has_ = get_key(c, key, &v); \
		if (has_ && !(cond)) \
			state_invalid(TEXT_CODE, psprintf("A %s state has no \"%s\".", agg_type_names[agg->type], key)); \
		if (!has_ && (cond)) \
			state_invalid(TEXT_CODE, psprintf("A %s state needs \"%s\".", agg_type_names[agg->type], key)); \
	} while (0)

	REQUIRE("rows", true);
	rows = json_count(&v, "The \"rows\" count");
	REQUIRE("values", true);
	values = json_count(&v, "The \"values\" count");
	state_read_counts(st, rows, values, TEXT_CODE);
	with_values = state_values(st) > 0;
	REQUIRE("period", agg->type == AGG_WEIGHTED_SUM);
	if (agg->type == AGG_WEIGHTED_SUM)
	{
		JsonbContainer *a = json_array(&v, "The period");
		TimestampTz start;

		if (JsonContainerSize(a) != 2)
			state_invalid(TEXT_CODE, "The period is [start, end].");
		start = json_timestamp(getIthJsonbValueFromContainer(a, 0), "The period start");
		state_read_period(st, start, json_timestamp(getIthJsonbValueFromContainer(a, 1), "The period end"));
	}
	REQUIRE("sum", AGG_HAS_SUM(agg->type));
	if (AGG_HAS_SUM(agg->type))
	{
		Numeric		sum = json_number(&v, "The sum");

		REQUIRE("sum_vt", agg->type == AGG_WEIGHTED_SUM);
		state_read_sum(st, sum, agg->type == AGG_WEIGHTED_SUM ? json_number(&v, "The \"sum_vt\"") : NULL,
					   TEXT_CODE);
	}
	else
		REQUIRE("sum_vt", false);
	REQUIRE("value", AGG_HAS_BEST(agg) && with_values);
	if (AGG_HAS_BEST(agg) && with_values)
	{
		Numeric		value = json_number(&v, "The value");

		REQUIRE("timestamp", agg->type == AGG_LATEST);
		state_read_best(st, value, agg->type == AGG_LATEST ? json_timestamp(&v, "The timestamp") : 0,
						TEXT_CODE);
	}
	else
		REQUIRE("timestamp", false);
	REQUIRE("unique", agg->type == AGG_COUNT_UNIQUE);
	if (agg->type == AGG_COUNT_UNIQUE)
	{
		JsonbContainer *a = json_array(&v, "The \"unique\" list");
		uint32		n = JsonContainerSize(a);

		for (uint32 i = 0; i < n; i++)
		{
			CHECK_FOR_INTERRUPTS();
			state_read_unique(st, json_string(getIthJsonbValueFromContainer(a, i), "A unique value"),
							  TEXT_CODE);
		}
	}
	REQUIRE("buckets", AGG_BUCKETED(agg));
	if (AGG_BUCKETED(agg))
	{
		JsonbContainer *a = json_array(&v, "The \"buckets\" list");
		uint32		n = JsonContainerSize(a);

		for (uint32 i = 0; i < n; i++)
		{
			JsonbContainer *b = json_array(getIthJsonbValueFromContainer(a, i), "A bucket");
			uint32		size = JsonContainerSize(b);
			TimestampTz start;
			Numeric		value;

			CHECK_FOR_INTERRUPTS();
			if (size != 2 && (size != 3 || agg->group_by == NULL))
				state_invalid(TEXT_CODE, agg->group_by == NULL ? "A bucket is [start, value]." :
							  "A bucket is [start, value] or, for a group, [start, value, group].");
			start = json_timestamp(getIthJsonbValueFromContainer(b, 0), "A bucket start");
			value = json_number(getIthJsonbValueFromContainer(b, 1), "A bucket value");
			state_read_bucket(st, start,
							  size == 3 ? json_string(getIthJsonbValueFromContainer(b, 2), "A bucket's group") : NULL,
							  value, TEXT_CODE);
		}
	}
#undef REQUIRE
	state_read_done(st, TEXT_CODE);
	return st;
}

/* ── SQL-callable I/O ────────────────────────────────────────────────────────────── */

/*
 * meter.aggregate_state text input: the versioned JSON the output function writes.
 * Text that is not JSON is 22P02; JSON that is not a valid state is 22023.
 */
PG_FUNCTION_INFO_V1(meter_aggregate_state_in);
Datum
meter_aggregate_state_in(PG_FUNCTION_ARGS)
{
	AggregateState *st = state_from_text(PG_GETARG_CSTRING(0), CurrentMemoryContext);

	PG_RETURN_POINTER(state_flatten(st));
}

/*
 * meter.aggregate_state text output: versioned JSON, the same text for equal states
 * (unique values and buckets sorted, timestamps in UTC), whatever the session settings.
 */
PG_FUNCTION_INFO_V1(meter_aggregate_state_out);
Datum
meter_aggregate_state_out(PG_FUNCTION_ARGS)
{
	AggregateState *st = state_from_datum(PG_GETARG_DATUM(0), CurrentMemoryContext);

	PG_RETURN_CSTRING(state_to_text(st));
}
