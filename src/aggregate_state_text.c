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
#include "number.h"

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

void
aggregation_append_json(StringInfo buf, AggType type, const char *field,
						Numeric multiplier, WindowSize bucket_size)
{
	Aggregation agg = {0};		/* the keys not set here are absent */

	agg.type = type;
	agg.field = (char *) field;
	agg.multiplier = multiplier;
	agg.bucket_size = bucket_size;
	appendStringInfoString(buf, aggregation_to_cstring(&agg));
}

static char *
state_to_text(AggregateState *st)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfo(&buf, "{\"version\":%d,\"aggregation\":", STATE_VERSION);
	aggregation_append_json(&buf, st->type, st->field, st->multiplier, st->bucket_size);
	if (st->has_period)
	{
		appendStringInfoString(&buf, ",\"period\":[");
		append_timestamp(&buf, st->period_start);
		appendStringInfoChar(&buf, ',');
		append_timestamp(&buf, st->period_end);
		appendStringInfoChar(&buf, ']');
	}
	appendStringInfo(&buf, ",\"rows\":" INT64_FORMAT ",\"values\":" INT64_FORMAT,
					 st->rows, st->values);
	if (STATE_HAS_SUM(st->type))
	{
		appendStringInfoString(&buf, ",\"sum\":");
		append_numeric(&buf, st->sum.num);
	}
	if (st->type == AGG_WEIGHTED_SUM)
	{
		appendStringInfoString(&buf, ",\"sum_vt\":");
		append_numeric(&buf, st->sum_vt.num);
	}
	if (st->best.num != NULL)
	{
		appendStringInfoString(&buf, ",\"value\":");
		append_numeric(&buf, st->best.num);
		if (st->type == AGG_LATEST)
		{
			appendStringInfoString(&buf, ",\"timestamp\":");
			append_timestamp(&buf, st->best_ts);
		}
	}
	if (st->type == AGG_COUNT_UNIQUE)
	{
		int			n;
		char	  **keys = state_uniques_sorted(st, &n);

		appendStringInfoString(&buf, ",\"unique\":[");
		for (int i = 0; i < n; i++)
		{
			if (i > 0)
				appendStringInfoChar(&buf, ',');
			escape_json(&buf, keys[i]);
		}
		appendStringInfoChar(&buf, ']');
	}
	if (STATE_BUCKETED(st))
	{
		int			n;
		BucketEntry **b = state_buckets_sorted(st, &n);

		appendStringInfoString(&buf, ",\"buckets\":[");
		for (int i = 0; i < n; i++)
		{
			if (i > 0)
				appendStringInfoChar(&buf, ',');
			appendStringInfoChar(&buf, '[');
			append_timestamp(&buf, b[i]->key);
			appendStringInfoChar(&buf, ',');
			append_numeric(&buf, b[i]->value.num);
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

/* Read the "aggregation" object into st. */
static void
read_aggregation(AggregateState *st, JsonbContainer *c)
{
	static const char *const keys[] = {"type", "field", "multiplier", "bucket_size", NULL};
	MemoryContext ctx = st->hdr.eoh_context;
	JsonbValue	v;
	char	   *s;
	int			i;

	check_keys(c, keys, "the aggregation");
	if (!get_key(c, "type", &v))
		state_invalid(TEXT_CODE, "The aggregation has no type.");
	s = json_string(&v, "The aggregation type");
	if ((i = agg_type_from_name(s)) < 0)
		state_invalid(TEXT_CODE, psprintf("Unknown aggregation type \"%s\".", s));
	st->type = (AggType) i;
	if (get_key(c, "field", &v))
	{
		s = json_string(&v, "The field");
		st->field = MemoryContextStrdup(ctx, s);
		st->fieldlen = strlen(s);
	}
	if (get_key(c, "multiplier", &v))
	{
		Numeric		m = state_check_number(json_number(&v, "The multiplier"), TEXT_CODE);

		m = state_canonical_multiplier(m);

		st->multiplier = MemoryContextAlloc(ctx, VARSIZE(m));
		memcpy(st->multiplier, m, VARSIZE(m));
	}
	if (get_key(c, "bucket_size", &v))
	{
		s = json_string(&v, "The bucket_size");
		if ((i = window_size_from_name(s)) < 0)
			state_invalid(TEXT_CODE, psprintf("Unknown bucket_size \"%s\".", s));
		st->bucket_size = (WindowSize) i;
	}
	state_check_aggregation(st, TEXT_CODE);
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
	JsonbValue	v;
	int64		version;

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
	read_aggregation(st, v.val.binary.data);

	/* Only the keys this aggregation's state holds. */
#define REQUIRE(key, cond) \
	do { \
		bool has_ = get_key(c, key, &v); \
		if (has_ && !(cond)) \
			state_invalid(TEXT_CODE, psprintf("A %s state has no \"%s\".", agg_type_names[st->type], key)); \
		if (!has_ && (cond)) \
			state_invalid(TEXT_CODE, psprintf("A %s state needs \"%s\".", agg_type_names[st->type], key)); \
	} while (0)

	REQUIRE("rows", true);
	st->rows = json_count(&v, "The \"rows\" count");
	REQUIRE("values", true);
	st->values = json_count(&v, "The \"values\" count");
	REQUIRE("period", st->type == AGG_WEIGHTED_SUM);
	if (st->type == AGG_WEIGHTED_SUM)
	{
		JsonbContainer *a = json_array(&v, "The period");

		if (JsonContainerSize(a) != 2)
			state_invalid(TEXT_CODE, "The period is [start, end].");
		st->has_period = true;
		st->period_start = json_timestamp(getIthJsonbValueFromContainer(a, 0), "The period start");
		st->period_end = json_timestamp(getIthJsonbValueFromContainer(a, 1), "The period end");
	}
	REQUIRE("sum", STATE_HAS_SUM(st->type));
	if (STATE_HAS_SUM(st->type))
		state_numbuf_set(st, &st->sum, state_check_number(json_number(&v, "The sum"), TEXT_CODE));
	REQUIRE("sum_vt", st->type == AGG_WEIGHTED_SUM);
	if (st->type == AGG_WEIGHTED_SUM)
		state_numbuf_set(st, &st->sum_vt, state_check_number(json_number(&v, "The \"sum_vt\""), TEXT_CODE));
	REQUIRE("value", STATE_HAS_BEST(st) && st->values > 0);
	if (STATE_HAS_BEST(st) && st->values > 0)
		state_numbuf_set(st, &st->best, state_check_number(json_number(&v, "The value"), TEXT_CODE));
	REQUIRE("timestamp", st->type == AGG_LATEST && st->values > 0);
	if (st->type == AGG_LATEST && st->values > 0)
		st->best_ts = json_timestamp(&v, "The timestamp");
	REQUIRE("unique", st->type == AGG_COUNT_UNIQUE);
	if (st->type == AGG_COUNT_UNIQUE)
	{
		JsonbContainer *a = json_array(&v, "The \"unique\" list");
		uint32		n = JsonContainerSize(a);

		for (uint32 i = 0; i < n; i++)
		{
			char	   *s = json_string(getIthJsonbValueFromContainer(a, i), "A unique value");

			CHECK_FOR_INTERRUPTS();
			if (st->uniques && stateunique_lookup(st->uniques, s) != NULL)
				state_invalid(TEXT_CODE, psprintf("The unique value \"%s\" is listed twice.", s));
			state_unique_add(st, s);
		}
	}
	REQUIRE("buckets", STATE_BUCKETED(st));
	if (STATE_BUCKETED(st))
	{
		JsonbContainer *a = json_array(&v, "The \"buckets\" list");
		uint32		n = JsonContainerSize(a);

		for (uint32 i = 0; i < n; i++)
		{
			JsonbContainer *pair = json_array(getIthJsonbValueFromContainer(a, i), "A bucket");
			TimestampTz key;
			BucketEntry *e;

			CHECK_FOR_INTERRUPTS();
			if (JsonContainerSize(pair) != 2)
				state_invalid(TEXT_CODE, "A bucket is [start, value].");
			key = json_timestamp(getIthJsonbValueFromContainer(pair, 0), "A bucket start");
			state_check_bucket_key(key, st->bucket_size, TEXT_CODE);
			if (st->buckets && bucketset_lookup(st->buckets, key) != NULL)
				state_invalid(TEXT_CODE, "A bucket is listed twice.");
			e = state_bucket(st, key);
			state_numbuf_set(st, &e->value,
					   state_check_number(json_number(getIthJsonbValueFromContainer(pair, 1), "A bucket value"),
									TEXT_CODE));
		}
	}
#undef REQUIRE
	state_check_tallies(st, TEXT_CODE);
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
