/*
 * aggregation.c — the meter.aggregation type (SPEC §2).
 *
 * Text form: FlexPrice's JSON {type, field, expression, multiplier, bucket_size,
 * group_by}. Input validates every rule of §2 (an expression is compiled by expression.c,
 * which reports its errors); output is canonical (keys in that order, no spaces, the
 * expression as written but trimmed, the multiplier as an exact JSON number without
 * trailing zeros), so equal aggregations are equal bytes.
 *
 * Stored form, a varlena read by aggregation_unpack without copying:
 *   version 1 (0.1.0): int32 vl_len_; uint8 version; uint8 type; int8 bucket_size (-1:
 *     none); uint8 flags; int32 field_len; field bytes + NUL; then, at an int-aligned
 *     offset, the multiplier (a numeric varlena) when flags has AGG_FLAG_MULTIPLIER.
 *   version 2: the same header, then int32 expression_len; int32 group_by_len; field,
 *     expression and group_by bytes, each + NUL; then the multiplier as in version 1.
 * An aggregation without expression and group_by is always stored as version 1, one
 * with either as version 2: every value has exactly one stored form (equality and
 * hashing compare bytes), and the aggregations of a 0.1.0 database keep theirs.
 */
#include "postgres.h"

#include "common/hashfn.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "libpq/pqformat.h"
#include "parser/scansup.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"

#include "aggregation.h"
#include "expression.h"
#include "json_input.h"
#include "number.h"

#define AGGREGATION_VERSION_1 1
#define AGGREGATION_VERSION_2 2
#define AGG_FLAG_FIELD		0x01
#define AGG_FLAG_MULTIPLIER 0x02
#define AGG_FLAG_EXPRESSION 0x04
#define AGG_FLAG_GROUP_BY	0x08

typedef struct AggregationData
{
	int32		vl_len_;		/* varlena header (do not touch directly) */
	uint8		version;
	uint8		type;
	int8		bucket_size;
	uint8		flags;
	int32		field_len;
	char		data[FLEXIBLE_ARRAY_MEMBER];	/* version 1: field + NUL, multiplier */
} AggregationData;

typedef struct AggregationDataV2
{
	int32		vl_len_;
	uint8		version;
	uint8		type;
	int8		bucket_size;
	uint8		flags;
	int32		field_len;
	int32		expression_len;
	int32		group_by_len;
	char		data[FLEXIBLE_ARRAY_MEMBER];	/* field, expression, group_by (each +
												 * NUL), multiplier */
} AggregationDataV2;

#define AGG_EXAMPLE "{\"type\":\"SUM\",\"field\":\"tokens\"}"

static const char *
type_list(void)
{
	return "COUNT, SUM, AVG, COUNT_UNIQUE, MAX, MIN, LATEST, SUM_WITH_MULTIPLIER, WEIGHTED_SUM";
}

static const char *
window_list(void)
{
	return "MINUTE, 15MIN, 30MIN, HOUR, 3HOUR, 6HOUR, 12HOUR, DAY, WEEK, MONTH";
}

static void error_invalid_type(const char *detail_fmt, const char *arg) pg_attribute_noreturn();

static void
error_invalid_type(const char *detail_fmt, const char *arg)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid aggregation type"),
			 errdetail(detail_fmt, arg),
			 errhint("Set \"type\" to one of %s (upper case).", type_list())));
}

static void error_invalid_multiplier(const char *detail_fmt, const char *arg) pg_attribute_noreturn();

static void
error_invalid_multiplier(const char *detail_fmt, const char *arg)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid multiplier value"),
			 errdetail(detail_fmt, arg),
			 errhint("Write a number greater than zero, e.g. \"multiplier\":1.5 or \"multiplier\":\"1.5\".")));
}

static void error_invalid_bucket(const char *detail_fmt, const char *arg) pg_attribute_noreturn();

static void
error_invalid_bucket(const char *detail_fmt, const char *arg)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid bucket size"),
			 errdetail(detail_fmt, arg),
			 errhint("Set \"bucket_size\" to one of %s.", window_list())));
}

static void error_not_string(const char *key, const char *kind) pg_attribute_noreturn();

/* "field", "expression" or "group_by" is not a JSON string. */
static void
error_not_string(const char *key, const char *kind)
{
	const char *example = strcmp(key, "field") == 0 ? "\"field\":\"tokens\"" :
		strcmp(key, "expression") == 0 ? "\"expression\":\"input_tokens + output_tokens\"" :
		"\"group_by\":\"volume_id\"";

	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("aggregation %s must be a string", key),
			 errdetail("\"%s\" is %s.", key, kind),
			 errhint("Write it as a JSON string, e.g. %s.", example)));
}

static void error_unknown_key(const char *key) pg_attribute_noreturn();

static void
error_unknown_key(const char *key)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unknown aggregation key \"%s\"", key),
			 errdetail("An aggregation has the keys type, field, expression, multiplier, bucket_size and group_by only."),
			 errhint("Remove \"%s\" or correct its spelling.", key)));
}

/* A number literal numeric cannot hold: the error of the key it belongs to. */
static void
aggregation_bad_number(const char *top_key, const char *literal)
{
	if (top_key == NULL)
		return;
	if (strcmp(top_key, "multiplier") == 0)
		error_invalid_multiplier("The multiplier %s is out of range for numeric.", literal);
	if (strcmp(top_key, "type") == 0)
		error_invalid_type("\"type\" is a number (%s), not a string.", literal);
	if (strcmp(top_key, "bucket_size") == 0)
		error_invalid_bucket("\"bucket_size\" is a number (%s), not a string.", literal);
	if (strcmp(top_key, "field") == 0 || strcmp(top_key, "expression") == 0 ||
		strcmp(top_key, "group_by") == 0)
		error_not_string(top_key, "a number");
	error_unknown_key(top_key);
}

/*
 * A string key ("field", "expression", "group_by"): NULL when absent, null or "" (or,
 * with trim, only white space); else its text, trimmed of white space when trim.
 */
static char *
string_key(const char *key, bool present, const JsonbValue *v, bool trim)
{
	const char *s;
	int			len;

	if (!present || v->type == jbvNull)
		return NULL;
	if (v->type != jbvString)
		error_not_string(key, json_value_kind(v));
	s = v->val.string.val;
	len = v->val.string.len;
	if (trim)
	{
		while (len > 0 && scanner_isspace(s[0]))
			s++, len--;
		while (len > 0 && scanner_isspace(s[len - 1]))
			len--;
	}
	return len > 0 ? pnstrdup(s, len) : NULL;
}

/*
 * Validate a jsonb value as an aggregation (every rule of SPEC §2) and build the stored
 * form.
 */
static struct varlena *
aggregation_from_jsonb(Jsonb *jb)
{
	JsonbIterator *it;
	JsonbIteratorToken tok;
	JsonbValue	v;
	JsonbValue	type_v,
				field_v,
				expr_v,
				mult_v,
				bucket_v,
				group_v;
	bool		has_type = false,
				has_field = false,
				has_expr = false,
				has_mult = false,
				has_bucket = false,
				has_group = false;
	Aggregation agg;
	int			t;

	memset(&type_v, 0, sizeof(type_v));
	memset(&field_v, 0, sizeof(field_v));
	memset(&expr_v, 0, sizeof(expr_v));
	memset(&mult_v, 0, sizeof(mult_v));
	memset(&bucket_v, 0, sizeof(bucket_v));
	memset(&group_v, 0, sizeof(group_v));
	memset(&agg, 0, sizeof(agg));

	if (!JB_ROOT_IS_OBJECT(jb))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("aggregation must be a JSON object"),
				 errdetail("The value is a JSON %s.",
						   JB_ROOT_IS_SCALAR(jb) ? "scalar" : "array"),
				 errhint("Write a JSON object such as %s.", AGG_EXAMPLE)));

	it = JsonbIteratorInit(&jb->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		char	   *key;

		if (tok != WJB_KEY)
			continue;
		key = pnstrdup(v.val.string.val, v.val.string.len);
		tok = JsonbIteratorNext(&it, &v, true);
		Assert(tok == WJB_VALUE);
		if (strcmp(key, "type") == 0)
			type_v = v, has_type = true;
		else if (strcmp(key, "field") == 0)
			field_v = v, has_field = true;
		else if (strcmp(key, "expression") == 0)
			expr_v = v, has_expr = true;
		else if (strcmp(key, "multiplier") == 0)
			mult_v = v, has_mult = true;
		else if (strcmp(key, "bucket_size") == 0)
			bucket_v = v, has_bucket = true;
		else if (strcmp(key, "group_by") == 0)
			group_v = v, has_group = true;
		else
			error_unknown_key(key);
		pfree(key);
	}

	/* type: required, one of the enum's labels, case-sensitive */
	if (!has_type)
		error_invalid_type("The key \"type\" is missing%s.", "");
	if (type_v.type != jbvString)
		error_invalid_type("\"type\" is %s, not a string.", json_value_kind(&type_v));
	{
		char	   *name = pnstrdup(type_v.val.string.val, type_v.val.string.len);

		t = agg_type_from_name(name);
		if (t < 0)
			error_invalid_type("\"%s\" is not an aggregation type.", name);
		pfree(name);
	}
	agg.type = (AggType) t;

	/*
	 * field and expression: strings; null, "" (and a blank expression) count as absent;
	 * one of them is required but for COUNT, never both; an expression only where the
	 * aggregation takes a number per event.
	 */
	agg.field = string_key("field", has_field, &field_v, false);
	agg.expression = string_key("expression", has_expr, &expr_v, true);
	agg.group_by = string_key("group_by", has_group, &group_v, false);
	if (agg.field == NULL && agg.expression == NULL && agg.type != AGG_COUNT)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("field or expression is required for aggregation type"),
				 errdetail("Aggregation type %s reads a value of each event; only COUNT needs none.",
						   agg_type_names[agg.type]),
				 errhint("Add \"field\":\"<property name>\" or \"expression\":\"<formula of properties>\", e.g. %s.",
						 AGG_EXAMPLE)));
	if (agg.expression != NULL)
	{
		if (agg.type != AGG_SUM && agg.type != AGG_AVG && agg.type != AGG_MAX &&
			agg.type != AGG_MIN && agg.type != AGG_LATEST)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("aggregation type does not support expression"),
					 errdetail("Aggregation type %s does not take a number computed from each event.",
							   agg_type_names[agg.type]),
					 errhint("Use \"type\" SUM, AVG, MAX, MIN or LATEST with an expression, or name one property with \"field\".")));
		if (agg.field != NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("field and expression are mutually exclusive"),
					 errdetail("The aggregation has both \"field\" and \"expression\"."),
					 errhint("Remove one: \"field\" reads one property, \"expression\" computes the value from several.")));
		/* its errors name positions in the value as written (before trimming) */
		agg.compiled = expression_compile(expr_v.val.string.val, expr_v.val.string.len);
	}

	/* multiplier: SUM_WITH_MULTIPLIER only, a number > 0 (JSON number or numeric string) */
	agg.multiplier = NULL;
	if (has_mult && mult_v.type == jbvNull)
		has_mult = false;
	if (has_mult && agg.type != AGG_SUM_WITH_MULTIPLIER)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("multiplier is only allowed for SUM_WITH_MULTIPLIER"),
				 errdetail("Aggregation type %s takes no multiplier.", agg_type_names[agg.type]),
				 errhint("Remove \"multiplier\", or use \"type\":\"SUM_WITH_MULTIPLIER\".")));
	if (agg.type == AGG_SUM_WITH_MULTIPLIER)
	{
		Numeric		n;
		char	   *canonical;

		if (!has_mult)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("multiplier is required for SUM_WITH_MULTIPLIER"),
					 errdetail("SUM_WITH_MULTIPLIER multiplies the sum by \"multiplier\", which is missing."),
					 errhint("Add \"multiplier\":<number greater than zero>, e.g. \"multiplier\":1.5.")));
		n = jsonb_value_numeric(&mult_v);
		if (n == NULL)
		{
			if (mult_v.type == jbvString)
				error_invalid_multiplier("\"%s\" is not a number.",
										 pnstrdup(mult_v.val.string.val, mult_v.val.string.len));
			error_invalid_multiplier("\"multiplier\" is %s, not a number.", json_value_kind(&mult_v));
		}
		canonical = number_canonical(n);
		if (canonical[0] == '-' || strcmp(canonical, "0") == 0)
			error_invalid_multiplier("The multiplier must be greater than zero, not %s.", canonical);
		agg.multiplier = DatumGetNumeric(DirectFunctionCall3(numeric_in,
															 CStringGetDatum(canonical),
															 ObjectIdGetDatum(InvalidOid),
															 Int32GetDatum(-1)));
	}

	/* bucket_size: MAX or SUM only, a window size; null and "" count as absent */
	agg.bucket_size = WINDOW_NONE;
	if (has_bucket && (bucket_v.type == jbvNull ||
					   (bucket_v.type == jbvString && bucket_v.val.string.len == 0)))
		has_bucket = false;
	if (has_bucket)
	{
		int			w;
		char	   *name;

		if (agg.type != AGG_MAX && agg.type != AGG_SUM)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("bucket_size is only allowed for MAX and SUM"),
					 errdetail("Aggregation type %s takes no bucket_size.", agg_type_names[agg.type]),
					 errhint("Remove \"bucket_size\", or use \"type\":\"MAX\" or \"type\":\"SUM\".")));
		if (bucket_v.type != jbvString)
			error_invalid_bucket("\"bucket_size\" is %s, not a string.", json_value_kind(&bucket_v));
		name = pnstrdup(bucket_v.val.string.val, bucket_v.val.string.len);
		w = window_size_from_name(name);
		if (w < 0)
			error_invalid_bucket("\"%s\" is not a window size.", name);
		agg.bucket_size = (WindowSize) w;
	}

	/* group_by: MAX with a bucket_size only */
	if (agg.group_by != NULL && (agg.type != AGG_MAX || agg.bucket_size == WINDOW_NONE))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("group_by can only be used with MAX aggregation that has bucket_size"),
				 agg.type != AGG_MAX ?
				 errdetail("Aggregation type %s takes no group_by.", agg_type_names[agg.type]) :
				 errdetail("This MAX aggregation has no bucket_size."),
				 errhint("Use \"type\":\"MAX\" with a \"bucket_size\", e.g. {\"type\":\"MAX\",\"field\":\"gb\",\"bucket_size\":\"HOUR\",\"group_by\":\"volume_id\"}, or remove \"group_by\".")));

	return aggregation_pack(&agg);
}

struct varlena *
aggregation_pack(const Aggregation *agg)
{
	int32		field_len = agg->field ? strlen(agg->field) : 0;
	int32		expression_len = agg->expression ? strlen(agg->expression) : 0;
	int32		group_by_len = agg->group_by ? strlen(agg->group_by) : 0;
	bool		v2 = agg->expression != NULL || agg->group_by != NULL;
	Size		size;
	Size		mult_off = 0;
	char	   *p;
	AggregationData *d;

	if (v2)
		size = offsetof(AggregationDataV2, data) + field_len + 1 + expression_len + 1 + group_by_len + 1;
	else
		size = offsetof(AggregationData, data) + field_len + 1;
	if (agg->multiplier != NULL)
	{
		mult_off = INTALIGN(size);
		size = mult_off + VARSIZE(agg->multiplier);
	}
	d = palloc0(size);
	SET_VARSIZE(d, size);
	d->version = v2 ? AGGREGATION_VERSION_2 : AGGREGATION_VERSION_1;
	d->type = (uint8) agg->type;
	d->bucket_size = (int8) agg->bucket_size;
	d->flags = (agg->field ? AGG_FLAG_FIELD : 0) |
		(agg->multiplier ? AGG_FLAG_MULTIPLIER : 0) |
		(agg->expression ? AGG_FLAG_EXPRESSION : 0) |
		(agg->group_by ? AGG_FLAG_GROUP_BY : 0);
	d->field_len = field_len;
	if (v2)
	{
		AggregationDataV2 *d2 = (AggregationDataV2 *) d;

		d2->expression_len = expression_len;
		d2->group_by_len = group_by_len;
		p = d2->data;
	}
	else
		p = d->data;
	memcpy(p, agg->field ? agg->field : "", field_len + 1);
	if (v2)
	{
		p += field_len + 1;
		memcpy(p, agg->expression ? agg->expression : "", expression_len + 1);
		p += expression_len + 1;
		memcpy(p, agg->group_by ? agg->group_by : "", group_by_len + 1);
	}
	if (agg->multiplier != NULL)
		memcpy((char *) d + mult_off, agg->multiplier, VARSIZE(agg->multiplier));
	return (struct varlena *) d;
}

static void corrupted(int version, bool lengths) pg_attribute_noreturn();

/* A stored value this code cannot read: another version, or lengths beyond its size. */
static void
corrupted(int version, bool lengths)
{
	if (lengths)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("corrupted meter.aggregation value"),
				 errdetail("The value is shorter than its header and string lengths say.")));
	ereport(ERROR,
			(errcode(ERRCODE_DATA_CORRUPTED),
			 errmsg("unsupported meter.aggregation format version %d", version)));
}

Aggregation *
aggregation_unpack(struct varlena *stored)
{
	AggregationData *d = (AggregationData *) pg_detoast_datum(stored);
	Aggregation *agg;
	char	   *p;
	Size		header,
				end;
	int32		expression_len = 0,
				group_by_len = 0;

	/* Everything in CurrentMemoryContext, as callers that cache the result expect:
	 * copy a datum that was not detoasted (it may live in a disk buffer). */
	if ((struct varlena *) d == stored)
	{
		agg = palloc(MAXALIGN(sizeof(Aggregation)) + VARSIZE(d));
		d = (AggregationData *) memcpy((char *) agg + MAXALIGN(sizeof(Aggregation)), d, VARSIZE(d));
	}
	else
		agg = palloc(sizeof(Aggregation));

	if (VARSIZE(d) < offsetof(AggregationData, data))
		corrupted(0, true);
	if ((d->version != AGGREGATION_VERSION_1 && d->version != AGGREGATION_VERSION_2) ||
		(d->version == AGGREGATION_VERSION_1 && (d->flags & (AGG_FLAG_EXPRESSION | AGG_FLAG_GROUP_BY))) ||
		d->type >= AGG_TYPE_COUNT ||
		d->bucket_size < WINDOW_NONE || d->bucket_size >= WINDOW_SIZE_COUNT)
		corrupted(d->version, false);
	if (d->version == AGGREGATION_VERSION_1)
		header = offsetof(AggregationData, data);
	else
	{
		AggregationDataV2 *d2 = (AggregationDataV2 *) d;

		header = offsetof(AggregationDataV2, data);
		if (VARSIZE(d) < header)
			corrupted(d->version, true);
		expression_len = d2->expression_len;
		group_by_len = d2->group_by_len;
	}
	end = header + (Size) d->field_len + 1;
	if (d->version == AGGREGATION_VERSION_2)
		end += (Size) expression_len + 1 + (Size) group_by_len + 1;
	if (d->field_len < 0 || expression_len < 0 || group_by_len < 0 || end > VARSIZE(d) ||
		((d->flags & AGG_FLAG_MULTIPLIER) && INTALIGN(end) + VARHDRSZ > VARSIZE(d)))
		corrupted(d->version, true);

	p = (char *) d + header;
	agg->type = (AggType) d->type;
	agg->bucket_size = (WindowSize) d->bucket_size;
	agg->field = (d->flags & AGG_FLAG_FIELD) ? p : NULL;
	agg->expression = NULL;
	agg->compiled = NULL;
	if (d->flags & AGG_FLAG_EXPRESSION)
	{
		agg->expression = p + d->field_len + 1;
		agg->compiled = expression_compile(agg->expression, expression_len);
	}
	agg->group_by = (d->flags & AGG_FLAG_GROUP_BY) ? p + d->field_len + 1 + expression_len + 1 : NULL;
	agg->multiplier = (d->flags & AGG_FLAG_MULTIPLIER) ? (Numeric) ((char *) d + INTALIGN(end)) : NULL;
	return agg;
}

char *
aggregation_to_cstring(const Aggregation *agg)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfo(&buf, "{\"type\":\"%s\"", agg_type_names[agg->type]);
	if (agg->field != NULL)
	{
		appendStringInfoString(&buf, ",\"field\":");
		escape_json(&buf, agg->field);
	}
	if (agg->expression != NULL)
	{
		appendStringInfoString(&buf, ",\"expression\":");
		escape_json(&buf, agg->expression);
	}
	if (agg->multiplier != NULL)
		appendStringInfo(&buf, ",\"multiplier\":%s", number_canonical(agg->multiplier));
	if (agg->bucket_size != WINDOW_NONE)
		appendStringInfo(&buf, ",\"bucket_size\":\"%s\"", window_size_names[agg->bucket_size]);
	if (agg->group_by != NULL)
	{
		appendStringInfoString(&buf, ",\"group_by\":");
		escape_json(&buf, agg->group_by);
	}
	appendStringInfoChar(&buf, '}');
	return buf.data;
}

static struct varlena *
aggregation_from_cstring(char *str)
{
	Jsonb	   *jb = json_input_parse(str, "meter.aggregation", AGG_EXAMPLE,
									  aggregation_bad_number);

	return aggregation_from_jsonb(jb);
}

/*
 * meter.aggregation_in(cstring): the text input of meter.aggregation. 22P02 for text
 * that is not JSON, 22023 for JSON that breaks a rule of SPEC §2.
 */
PG_FUNCTION_INFO_V1(meter_aggregation_in);
Datum
meter_aggregation_in(PG_FUNCTION_ARGS)
{
	PG_RETURN_POINTER(aggregation_from_cstring(PG_GETARG_CSTRING(0)));
}

/* meter.aggregation_out(meter.aggregation): canonical JSON text. */
PG_FUNCTION_INFO_V1(meter_aggregation_out);
Datum
meter_aggregation_out(PG_FUNCTION_ARGS)
{
	PG_RETURN_CSTRING(aggregation_to_cstring(PG_GETARG_AGGREGATION(0)));
}

/*
 * meter.aggregation_recv(internal): binary input — a version byte (1) then the JSON
 * text, validated exactly like text input.
 */
PG_FUNCTION_INFO_V1(meter_aggregation_recv);
Datum
meter_aggregation_recv(PG_FUNCTION_ARGS)
{
	StringInfo	buf = (StringInfo) PG_GETARG_POINTER(0);

	PG_RETURN_POINTER(aggregation_from_cstring(json_input_recv_text(buf, "meter.aggregation")));
}

/* meter.aggregation_send(meter.aggregation): a version byte (1) then the canonical JSON. */
PG_FUNCTION_INFO_V1(meter_aggregation_send);
Datum
meter_aggregation_send(PG_FUNCTION_ARGS)
{
	PG_RETURN_BYTEA_P(json_input_send_text(aggregation_to_cstring(PG_GETARG_AGGREGATION(0))));
}

/* meter.aggregation_eq(a, b): the = operator (canonical forms are equal). */
PG_FUNCTION_INFO_V1(meter_aggregation_eq);
Datum
meter_aggregation_eq(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(canonical_equal(PG_GETARG_DATUM(0), PG_GETARG_DATUM(1)));
}

/* meter.aggregation_ne(a, b): the <> operator. */
PG_FUNCTION_INFO_V1(meter_aggregation_ne);
Datum
meter_aggregation_ne(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(!canonical_equal(PG_GETARG_DATUM(0), PG_GETARG_DATUM(1)));
}

/* meter.aggregation_hash(a): hash of the canonical stored form, for the hash opclass. */
PG_FUNCTION_INFO_V1(meter_aggregation_hash);
Datum
meter_aggregation_hash(PG_FUNCTION_ARGS)
{
	return canonical_hash(PG_GETARG_DATUM(0));
}

/* meter.aggregation_to_jsonb(a): the canonical JSON as jsonb (cast meter.aggregation → jsonb). */
PG_FUNCTION_INFO_V1(meter_aggregation_to_jsonb);
Datum
meter_aggregation_to_jsonb(PG_FUNCTION_ARGS)
{
	char	   *str = aggregation_to_cstring(PG_GETARG_AGGREGATION(0));

	return DirectFunctionCall1(jsonb_in, CStringGetDatum(str));
}

/* meter.aggregation_from_jsonb(j): cast jsonb → meter.aggregation, validated like input. */
PG_FUNCTION_INFO_V1(meter_aggregation_from_jsonb);
Datum
meter_aggregation_from_jsonb(PG_FUNCTION_ARGS)
{
	PG_RETURN_POINTER(aggregation_from_jsonb(PG_GETARG_JSONB_P(0)));
}

/* meter.type_of(meter.aggregation) → meter.aggregation_type. */
PG_FUNCTION_INFO_V1(meter_aggregation_type_of);
Datum
meter_aggregation_type_of(PG_FUNCTION_ARGS)
{
	PG_RETURN_OID(agg_type_enum(PG_GETARG_AGGREGATION(0)->type));
}

/* A text result, or NULL for an absent key. */
static Datum
text_or_null(FunctionCallInfo fcinfo, const char *s)
{
	if (s == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(s));
}

/* meter.field_of(meter.aggregation) → text: the property read, NULL when none. */
PG_FUNCTION_INFO_V1(meter_aggregation_field_of);
Datum
meter_aggregation_field_of(PG_FUNCTION_ARGS)
{
	return text_or_null(fcinfo, PG_GETARG_AGGREGATION(0)->field);
}

/* meter.multiplier_of(meter.aggregation) → numeric: NULL unless SUM_WITH_MULTIPLIER. */
PG_FUNCTION_INFO_V1(meter_aggregation_multiplier_of);
Datum
meter_aggregation_multiplier_of(PG_FUNCTION_ARGS)
{
	Aggregation *agg = PG_GETARG_AGGREGATION(0);

	if (agg->multiplier == NULL)
		PG_RETURN_NULL();
	/* a copy: the unpacked value points into the argument */
	PG_RETURN_NUMERIC(DatumGetNumericCopy(NumericGetDatum(agg->multiplier)));
}

/* meter.bucket_size_of(meter.aggregation) → meter.window_size: NULL when none. */
PG_FUNCTION_INFO_V1(meter_aggregation_bucket_size_of);
Datum
meter_aggregation_bucket_size_of(PG_FUNCTION_ARGS)
{
	Aggregation *agg = PG_GETARG_AGGREGATION(0);

	if (agg->bucket_size == WINDOW_NONE)
		PG_RETURN_NULL();
	PG_RETURN_OID(window_size_enum(agg->bucket_size));
}

/* meter.expression_of(meter.aggregation) → text: the expression as written (trimmed), NULL when none. */
PG_FUNCTION_INFO_V1(meter_aggregation_expression_of);
Datum
meter_aggregation_expression_of(PG_FUNCTION_ARGS)
{
	return text_or_null(fcinfo, PG_GETARG_AGGREGATION(0)->expression);
}

/* meter.group_by_of(meter.aggregation) → text: the group_by property, NULL when none. */
PG_FUNCTION_INFO_V1(meter_aggregation_group_by_of);
Datum
meter_aggregation_group_by_of(PG_FUNCTION_ARGS)
{
	return text_or_null(fcinfo, PG_GETARG_AGGREGATION(0)->group_by);
}

/*
 * Ordering, for the btree operator class (ORDER BY, count(DISTINCT …), merge joins):
 * by type (enum order), then field, expression, multiplier, bucket_size and group_by
 * (absent first), the keys in canonical order. It is
 * 0 exactly when the canonical forms are equal, as btree requires of =.
 */
/* Two optional strings: absent first, then byte order. */
static int
compare_optional(const char *a, const char *b)
{
	int			c;

	if ((a == NULL) != (b == NULL))
		return a == NULL ? -1 : 1;
	if (a == NULL)
		return 0;
	c = strcmp(a, b);
	return c < 0 ? -1 : c > 0 ? 1 : 0;
}

static int
aggregation_compare(Aggregation *a, Aggregation *b)
{
	int			c;

	if (a->type != b->type)
		return a->type < b->type ? -1 : 1;
	if ((c = compare_optional(a->field, b->field)) != 0)
		return c;
	if ((c = compare_optional(a->expression, b->expression)) != 0)
		return c;
	if ((a->multiplier == NULL) != (b->multiplier == NULL))
		return a->multiplier == NULL ? -1 : 1;
	if (a->multiplier != NULL)
	{
		c = DatumGetInt32(DirectFunctionCall2(numeric_cmp,
											  NumericGetDatum(a->multiplier),
											  NumericGetDatum(b->multiplier)));
		if (c != 0)
			return c;
	}
	if (a->bucket_size != b->bucket_size)
		return a->bucket_size < b->bucket_size ? -1 : 1;
	return compare_optional(a->group_by, b->group_by);
}

#define AGG_CMP() aggregation_compare(PG_GETARG_AGGREGATION(0), PG_GETARG_AGGREGATION(1))

/* meter.aggregation_cmp(a, b): btree support function 1 (-1, 0, 1). */
PG_FUNCTION_INFO_V1(meter_aggregation_cmp);
Datum
meter_aggregation_cmp(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT32(AGG_CMP());
}

/* meter.aggregation_lt(a, b): the < operator. */
PG_FUNCTION_INFO_V1(meter_aggregation_lt);
Datum
meter_aggregation_lt(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(AGG_CMP() < 0);
}

/* meter.aggregation_le(a, b): the <= operator. */
PG_FUNCTION_INFO_V1(meter_aggregation_le);
Datum
meter_aggregation_le(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(AGG_CMP() <= 0);
}

/* meter.aggregation_gt(a, b): the > operator. */
PG_FUNCTION_INFO_V1(meter_aggregation_gt);
Datum
meter_aggregation_gt(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(AGG_CMP() > 0);
}

/* meter.aggregation_ge(a, b): the >= operator. */
PG_FUNCTION_INFO_V1(meter_aggregation_ge);
Datum
meter_aggregation_ge(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(AGG_CMP() >= 0);
}
