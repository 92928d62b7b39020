/*
 * json_input.c — strict JSON text input for meter.aggregation and meter.filters.
 *
 * jsonb_in silently keeps the last of two equal keys; SPEC §2 makes that an error. So the
 * text is first run through PostgreSQL's own JSON parser with semantic actions that
 * collect each object's keys and refuse duplicates, and that check every number literal
 * against numeric's limits (so that jsonb_in cannot fail on one with a numeric error).
 * Only then is it converted with jsonb_in, which the types' validators walk.
 */
#include "postgres.h"

#include "common/hashfn.h"
#include "fmgr.h"
#include "libpq/pqformat.h"

#include "common/jsonapi.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

#include "compat.h"
#include "json_input.h"
#include "number.h"

/* The keys of one object being parsed. */
typedef struct KeyFrame
{
	int			nkeys;
	int			capacity;
	char	  **keys;
	struct KeyFrame *outer;
} KeyFrame;

typedef struct InputState
{
	int			depth;
	KeyFrame   *frame;			/* innermost open object, or NULL */
	char	   *top_key;		/* last key of the top-level object */
	json_input_number_hook number_hook;
} InputState;

static int
compare_cstrings(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

static METER_JSON_ACTION
input_object_start(void *state)
{
	InputState *st = (InputState *) state;
	KeyFrame   *frame = palloc(sizeof(KeyFrame));

	frame->nkeys = 0;
	frame->capacity = 8;
	frame->keys = palloc(frame->capacity * sizeof(char *));
	frame->outer = st->frame;
	st->frame = frame;
	st->depth++;
	METER_JSON_ACTION_DONE;
}

static METER_JSON_ACTION
input_object_end(void *state)
{
	InputState *st = (InputState *) state;
	KeyFrame   *frame = st->frame;
	int			i;

	/* Sorting makes equal keys neighbours: O(n log n) even for huge objects. */
	qsort(frame->keys, frame->nkeys, sizeof(char *), compare_cstrings);
	for (i = 1; i < frame->nkeys; i++)
		if (strcmp(frame->keys[i - 1], frame->keys[i]) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("duplicate key \"%s\" in JSON object", frame->keys[i]),
					 errdetail("A JSON object must not have the same key twice."),
					 errhint("Write each key once.")));
	st->frame = frame->outer;
	pfree(frame->keys);
	pfree(frame);
	st->depth--;
	METER_JSON_ACTION_DONE;
}

static METER_JSON_ACTION
input_array_start(void *state)
{
	((InputState *) state)->depth++;
	METER_JSON_ACTION_DONE;
}

static METER_JSON_ACTION
input_array_end(void *state)
{
	((InputState *) state)->depth--;
	METER_JSON_ACTION_DONE;
}

static METER_JSON_ACTION
input_field_start(void *state, char *fname, bool isnull)
{
	InputState *st = (InputState *) state;
	KeyFrame   *frame = st->frame;

	if (frame->nkeys == frame->capacity)
	{
		frame->capacity *= 2;
		frame->keys = repalloc(frame->keys, frame->capacity * sizeof(char *));
	}
	frame->keys[frame->nkeys++] = fname;
	if (st->depth == 1)
		st->top_key = fname;
	METER_JSON_ACTION_DONE;
}

static METER_JSON_ACTION
input_scalar(void *state, char *token, JsonTokenType tokentype)
{
	InputState *st = (InputState *) state;

	if (tokentype == JSON_TOKEN_NUMBER && !number_syntax_ok(token, strlen(token)))
	{
		if (st->number_hook)
			st->number_hook(st->depth >= 1 ? st->top_key : NULL, token);
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("number out of range"),
				 errdetail("The number %s is beyond what numeric holds (exponent within ±1000).",
						   token)));
	}
	METER_JSON_ACTION_DONE;
}

Jsonb *
json_input_parse(char *str, const char *typname, const char *example,
				 json_input_number_hook number_hook)
{
	JsonLexContext *lex = meter_json_lex_cstring(str, strlen(str));
	JsonSemAction sem;
	InputState	st;
	JsonParseErrorType result;

	memset(&st, 0, sizeof(st));
	st.number_hook = number_hook;
	memset(&sem, 0, sizeof(sem));
	sem.semstate = &st;
	sem.object_start = input_object_start;
	sem.object_end = input_object_end;
	sem.array_start = input_array_start;
	sem.array_end = input_array_end;
	sem.object_field_start = input_field_start;
	sem.scalar = input_scalar;

	result = pg_parse_json(lex, &sem);
	if (result == JSON_UNICODE_CODE_POINT_ZERO || result == JSON_UNICODE_HIGH_ESCAPE)
		ereport(ERROR,
				(errcode(ERRCODE_UNTRANSLATABLE_CHARACTER),
				 errmsg("unsupported Unicode escape sequence"),
				 errdetail_internal("%s", json_errdetail(result, lex)),
				 errhint("Text values of %s cannot contain \\u0000 or code points the database encoding lacks.",
						 typname)));
	if (result != JSON_SUCCESS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("invalid input syntax for type %s", typname),
				 errdetail_internal("%s", json_errdetail(result, lex)),
				 errhint("Write JSON such as %s.", example)));

	return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(str)));
}

const char *
json_value_kind(const JsonbValue *v)
{
	switch (v->type)
	{
		case jbvNull:
			return "null";
		case jbvString:
			return "a string";
		case jbvNumeric:
			return "a number";
		case jbvBool:
			return "a boolean";
		case jbvBinary:
			return JsonContainerIsArray(v->val.binary.data) ? "an array" : "an object";
		case jbvArray:
			return "an array";
		case jbvObject:
			return "an object";
		default:
			return "a JSON value";
	}
}

char *
json_input_recv_text(StringInfo buf, const char *typname)
{
	int			version = pq_getmsgint(buf, 1);
	int			nbytes;

	if (version != 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("unsupported %s binary format version %d", typname, version),
				 errhint("Version 1 is a version byte followed by the JSON text.")));
	return pq_getmsgtext(buf, buf->len - buf->cursor, &nbytes);
}

bytea *
json_input_send_text(const char *canonical)
{
	StringInfoData buf;

	pq_begintypsend(&buf);
	pq_sendint8(&buf, 1);
	pq_sendtext(&buf, canonical, strlen(canonical));
	return pq_endtypsend(&buf);
}

bool
canonical_equal(Datum a, Datum b)
{
	struct varlena *x = PG_DETOAST_DATUM_PACKED(a);
	struct varlena *y = PG_DETOAST_DATUM_PACKED(b);

	return VARSIZE_ANY_EXHDR(x) == VARSIZE_ANY_EXHDR(y) &&
		memcmp(VARDATA_ANY(x), VARDATA_ANY(y), VARSIZE_ANY_EXHDR(x)) == 0;
}

Datum
canonical_hash(Datum a)
{
	struct varlena *x = PG_DETOAST_DATUM_PACKED(a);

	return hash_any((unsigned char *) VARDATA_ANY(x), VARSIZE_ANY_EXHDR(x));
}
