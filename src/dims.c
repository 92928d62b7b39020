/*
 * dims.c — the dimensions of an event for a meter (see dims.h).
 */
#include "postgres.h"

#include "lib/stringinfo.h"
#include "utils/json.h"

#include "dims.h"
#include "number.h"

/* A JSON property as a dimension (kind + text), NULL when it can have none. */
static char *
dims_value(const JsonbValue *v)
{
	switch (v->type)
	{
		case jbvString:
			return psprintf("s%.*s", v->val.string.len, v->val.string.val);
		case jbvNumeric:
			return psprintf("n%s", number_canonical(v->val.numeric));
		case jbvBool:
			return pstrdup(v->val.boolean ? "btrue" : "bfalse");
		default:
			return NULL;
	}
}

char *
dims_json(const char *value)
{
	StringInfoData buf;

	if (value == NULL)
		return pstrdup("null");
	if (value[0] != 's')
		return pstrdup(value + 1);
	initStringInfo(&buf);
	escape_json(&buf, value + 1);
	return buf.data;
}

char *
dims_of_event(const Filters *filters, Jsonb *properties)
{
	StringInfoData buf;

	if (filters->nkeys == 0)
		return "";
	initStringInfo(&buf);
	for (int i = 0; i < filters->nkeys; i++)
	{
		const FilterKey *k = &filters->keys[i];
		JsonbValue	v;
		char	   *s = NULL;

		if (properties != NULL && jsonb_get_field(properties, k->key, k->keylen, &v))
			s = dims_value(&v);
		if (s == NULL)
			appendStringInfoChar(&buf, '-');
		else
			appendStringInfo(&buf, "%zu:%s", strlen(s), s);
	}
	return buf.data;
}

int
dims_split(const char *dims, char **values, int max)
{
	const char *p = dims;
	int			n = 0;

	while (*p != '\0')
	{
		char	   *end;
		unsigned long len;

		if (n >= max)
			elog(ERROR, "meter: more dimensions than filter keys in \"%s\"", dims);
		if (*p == '-')
		{
			values[n++] = NULL;
			p++;
			continue;
		}
		len = strtoul(p, &end, 10);
		if (end == p || *end != ':' || strlen(end + 1) < len)
			elog(ERROR, "meter: malformed dimensions \"%s\"", dims);
		values[n++] = pnstrdup(end + 1, len);
		p = end + 1 + len;
	}
	return n;
}
