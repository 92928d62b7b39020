/*
 * number.c — what counts as a number (SPEC §3, §8).
 *
 * A usable value is a JSON number, or a JSON string whose text is a JSON number literal
 * (no spaces, no sign but a leading '-', no NaN or Infinity). Numbers are exact: they
 * become numeric through numeric_in, never double. number_syntax_ok also rejects the
 * literals numeric_in would refuse (exponent beyond ±1000, more digits than numeric
 * holds), so that converting a value that passed it never raises an error.
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"

#include "number.h"

/* numeric's limits (utils/adt/numeric.c): the exponent numeric_in accepts, the largest
 * display scale, and how many decimal digits may precede the decimal point. */
#define NUMBER_MAX_EXPONENT		1000
#define NUMBER_MAX_SCALE		0x3FFF
#define NUMBER_MAX_INT_DIGITS	131072

bool
number_syntax_ok(const char *s, int len)
{
	int			i = 0;
	int			intdigits = 0;
	int			fracdigits = 0;
	int			exponent = 0;
	bool		leading_zero;

	if (len <= 0)
		return false;
	if (s[i] == '-')
		i++;
	if (i >= len || !isdigit((unsigned char) s[i]))
		return false;
	leading_zero = (s[i] == '0');
	if (leading_zero)
		i++;
	else
		while (i < len && isdigit((unsigned char) s[i]))
		{
			i++;
			intdigits++;
		}
	if (i < len && s[i] == '.')
	{
		i++;
		while (i < len && isdigit((unsigned char) s[i]))
		{
			i++;
			fracdigits++;
		}
		if (fracdigits == 0)
			return false;
	}
	if (i < len && (s[i] == 'e' || s[i] == 'E'))
	{
		bool		negative = false;
		int			expdigits = 0;

		i++;
		if (i < len && (s[i] == '+' || s[i] == '-'))
		{
			negative = (s[i] == '-');
			i++;
		}
		while (i < len && isdigit((unsigned char) s[i]))
		{
			if (exponent <= NUMBER_MAX_EXPONENT)
				exponent = exponent * 10 + (s[i] - '0');
			i++;
			expdigits++;
		}
		if (expdigits == 0 || exponent > NUMBER_MAX_EXPONENT)
			return false;
		if (negative)
			exponent = -exponent;
	}
	if (i != len)
		return false;

	/* What numeric can hold: its display scale and its weight are bounded. */
	if (fracdigits - exponent > NUMBER_MAX_SCALE)
		return false;
	if (intdigits + exponent > NUMBER_MAX_INT_DIGITS)
		return false;
	return true;
}

Numeric
jsonb_value_numeric(const JsonbValue *v)
{
	if (v->type == jbvNumeric)
	{
		Numeric		n = v->val.numeric;

		/* jsonb never holds NaN or Infinity as a number, but be safe. */
		if (numeric_is_nan(n) || numeric_is_inf(n))
			return NULL;
		return n;
	}
	if (v->type == jbvString &&
		number_syntax_ok(v->val.string.val, v->val.string.len))
	{
		char	   *s = pnstrdup(v->val.string.val, v->val.string.len);
		Numeric		n;

		n = DatumGetNumeric(DirectFunctionCall3(numeric_in, CStringGetDatum(s),
												ObjectIdGetDatum(InvalidOid),
												Int32GetDatum(-1)));
		pfree(s);
		return n;
	}
	return NULL;
}

char *
number_canonical(Numeric n)
{
	/* numeric_normalize drops trailing fractional zeros and a trailing point, and
	 * numeric zero is always positive: equal values give equal text. */
	return numeric_normalize(n);
}

bool
jsonb_get_field(Jsonb *obj, const char *key, int keylen, JsonbValue *out)
{
	if (!JB_ROOT_IS_OBJECT(obj))
		return false;
	return getKeyJsonValueFromContainer(&obj->root, key, keylen, out) != NULL;
}

Numeric
properties_numeric(Jsonb *properties, const char *field)
{
	JsonbValue	v;

	if (field == NULL)			/* an aggregation with an expression has no field */
		return NULL;
	if (!jsonb_get_field(properties, field, strlen(field), &v))
		return NULL;
	return jsonb_value_numeric(&v);
}

char *
properties_unique_text(Jsonb *properties, const char *field)
{
	JsonbValue	v;

	if (field == NULL)
		return NULL;
	if (!jsonb_get_field(properties, field, strlen(field), &v))
		return NULL;
	switch (v.type)
	{
		case jbvNull:
			return NULL;
		case jbvBool:
			return pstrdup(v.val.boolean ? "true" : "false");
		case jbvNumeric:
		case jbvString:
			{
				Numeric		n = jsonb_value_numeric(&v);

				if (n != NULL)
					return number_canonical(n);
				return pnstrdup(v.val.string.val, v.val.string.len);
			}
		case jbvBinary:
			return JsonbToCString(NULL, v.val.binary.data, v.val.binary.len);
		default:
			elog(ERROR, "unexpected jsonb value type %d", (int) v.type);
	}
	return NULL;				/* keep compiler quiet */
}

/*
 * meter.numeric_value(properties jsonb, field text) → numeric: the usable number of
 * properties->field (a JSON number or a string in number syntax), else NULL. The SQL
 * twin of what the aggregate and the trigger read, for recomputations in SQL.
 */
PG_FUNCTION_INFO_V1(meter_numeric_value);
Datum
meter_numeric_value(PG_FUNCTION_ARGS)
{
	Jsonb	   *properties = PG_GETARG_JSONB_P(0);
	text	   *field = PG_GETARG_TEXT_PP(1);
	JsonbValue	v;
	Numeric		n;

	if (!jsonb_get_field(properties, VARDATA_ANY(field), VARSIZE_ANY_EXHDR(field), &v))
		PG_RETURN_NULL();
	n = jsonb_value_numeric(&v);
	if (n == NULL)
		PG_RETURN_NULL();
	PG_RETURN_NUMERIC(n);
}

/*
 * meter.unique_value(properties jsonb, field text) → text: the COUNT_UNIQUE identity of
 * properties->field (numbers canonical, so 2, 2.0 and "2" are one value), NULL when the
 * key is missing or JSON null.
 */
PG_FUNCTION_INFO_V1(meter_unique_value);
Datum
meter_unique_value(PG_FUNCTION_ARGS)
{
	Jsonb	   *properties = PG_GETARG_JSONB_P(0);
	char	   *field = text_to_cstring(PG_GETARG_TEXT_PP(1));
	char	   *s = properties_unique_text(properties, field);

	if (s == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(s));
}
