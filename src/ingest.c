/*
 * ingest.c — meter.ingest(jsonb): FlexPrice events in, rows of meter.events out (SPEC §7).
 *
 * The whole input is validated first, element by element, into one array per column;
 * the first bad element raises an error naming its index and field, so nothing is
 * half-written. Then ONE statement — a plan prepared once per backend and kept — inserts
 * every row with ON CONFLICT DO NOTHING, so that the statement-level tracking trigger
 * sees the whole batch at once (on a Citus cluster: each shard's rows at once, on the
 * shard) and a re-sent id (in the same call or stored before) is a duplicate. Rows are inserted in id order (the first occurrence of an id wins):
 * sessions that ingest overlapping ids then take their row locks in the same order and
 * cannot deadlock on one another.
 *
 * A partitioned meter.events (meter.partition_events()) has no unique index on the id for
 * ON CONFLICT to name: its dedup is meter.event_ids. Then the statement inserts the first
 * occurrence of each id that meter.event_ids does not hold; a session storing one of
 * those ids at the same moment makes the statement fail with 23505 at its end, and the
 * call tries again (in a subtransaction) — the id is then a duplicate, as ON CONFLICT DO
 * NOTHING would have counted it.
 */
#include "postgres.h"

#include <ctype.h>

#include "access/xact.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "catalog.h"
#include "ingest.h"
#include "json_input.h"
#include "partitioning.h"
#include "placement.h"
#include "scope.h"
#include "ulid.h"

/* Identifiers (id, event_name, customer ids) longer than this are refused: they end up
 * in btree keys (events, rollups), which hold at most about a third of a page. */
#define INGEST_MAX_KEY_BYTES 512
/* Values quoted back in error details are clipped to this many bytes. */
#define INGEST_EXCERPT_BYTES 64

#define TIMESTAMP_HINT \
	"Write the time with its zone, e.g. \"2024-03-10T20:00:00Z\" or \"2024-03-10T20:00:00.123+05:30\", or leave \"timestamp\" out for the current time."

/* The keys an event object may have: FlexPrice's IngestEventRequest and Event. */
typedef enum EventKey
{
	KEY_ID,
	KEY_EVENT_ID,
	KEY_EVENT_NAME,
	KEY_CUSTOMER_ID,
	KEY_EXTERNAL_CUSTOMER_ID,
	KEY_TIMESTAMP,
	KEY_PROPERTIES,
	KEY_SOURCE,
	KEY_TENANT_ID,
	KEY_ENVIRONMENT_ID,
	KEY_INGESTED_AT,
	NUM_EVENT_KEYS
} EventKey;

static const char *const event_key_names[NUM_EVENT_KEYS] = {
	"id", "event_id", "event_name", "customer_id", "external_customer_id", "timestamp",
	"properties", "source", "tenant_id", "environment_id", "ingested_at"
};

/* One array per inserted column, filled element by element. */
typedef struct EventBatch
{
	int			n;
	Datum	   *id;
	Datum	   *event_name;
	Datum	   *customer_id;
	bool	   *customer_id_null;
	Datum	   *external_customer_id;
	bool	   *external_customer_id_null;
	Datum	   *source;
	bool	   *source_null;
	Datum	   *timestamp;
	Datum	   *properties;
	/* shared by every event without properties */
	Datum		empty_properties;
	/* the default timestamp: now(), the transaction's start */
	TimestampTz now;
	const char *tenant;
	const char *environment;
} EventBatch;

/* The values of one event object, by key; absent and JSON null are both "not present". */
typedef struct EventFields
{
	JsonbValue	value[NUM_EVENT_KEYS];
	bool		present[NUM_EVENT_KEYS];
} EventFields;

static SPIPlanPtr insert_plan_partitioned = NULL;

/* How often a call on a partitioned meter.events tries again after a concurrent insert
 * of one of its ids. */
#define INGEST_ATTEMPTS 10

/* ── Errors ─────────────────────────────────────────────────────────────────────────── */

/* A palloc'd copy of s clipped to INGEST_EXCERPT_BYTES on a character boundary. */
static char *
excerpt(const char *s, int len)
{
	int			cut;

	if (len <= INGEST_EXCERPT_BYTES)
		return pnstrdup(s, len);
	cut = pg_mbcliplen(s, len, INGEST_EXCERPT_BYTES);
	return psprintf("%.*s...", cut, s);
}

/*
 * Reject the whole call because of event `index`: message "event N: <problem>",
 * detail "Event N (counting from 0) <what>", and a hint.
 */
static void
pg_attribute_noreturn()
event_error(int index, const char *problem, const char *what, const char *hint)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("event %d: %s", index, problem),
			 errdetail("Event %d (counting from 0) %s", index, what),
			 errhint("%s", hint)));
}

static void
pg_attribute_noreturn()
wrong_type_error(int index, EventKey key, const JsonbValue *v, const char *expected,
				 const char *hint)
{
	const char *name = event_key_names[key];

	event_error(index,
				psprintf("\"%s\" must be %s", name, expected),
				psprintf("has %s for \"%s\".", json_value_kind(v), name),
				hint);
}

/* ── RFC 3339 ───────────────────────────────────────────────────────────────────────── */

/* n decimal digits at s into *out. */
static bool
read_digits(const char *s, int n, int *out)
{
	int			v = 0;

	for (int i = 0; i < n; i++)
	{
		if (!isdigit((unsigned char) s[i]))
			return false;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return true;
}

/*
 * The syntax is checked here, strictly (PostgreSQL's timestamptz input also takes
 * 'now', 'epoch', dates without a zone, …); the arithmetic is PostgreSQL's tm2timestamp.
 */
const char *
rfc3339_parse(const char *s, int len, TimestampTz *result)
{
	struct pg_tm tm;
	int			year,
				mon,
				day,
				hour,
				min,
				sec,
				tzh = 0,
				tzm = 0,
				tz;
	fsec_t		fsec = 0;
	int			pos;
	Timestamp	ts;

	if (len < 10 || !read_digits(s, 4, &year) || s[4] != '-' || !read_digits(s + 5, 2, &mon)
		|| s[7] != '-' || !read_digits(s + 8, 2, &day))
		return "it does not start with a date in the form YYYY-MM-DD.";
	if (len == 10)
		return "the time of day and the time zone are missing.";
	if (s[10] != 'T' && s[10] != 't' && s[10] != ' ')
		return "the date and the time of day must be separated by \"T\".";
	if (len < 19 || !read_digits(s + 11, 2, &hour) || s[13] != ':'
		|| !read_digits(s + 14, 2, &min) || s[16] != ':' || !read_digits(s + 17, 2, &sec))
		return "the time of day is not in the form HH:MM:SS.";
	pos = 19;
	if (pos < len && s[pos] == '.')
	{
		int			ndigits = 0;
		int			usec = 0;
		bool		round_up = false;

		for (pos++; pos < len && isdigit((unsigned char) s[pos]); pos++, ndigits++)
		{
			if (ndigits < 6)
				usec = usec * 10 + (s[pos] - '0');
			else if (ndigits == 6)
				round_up = s[pos] >= '5';
		}
		if (ndigits == 0)
			return "the decimal point must be followed by digits.";
		for (int i = ndigits; i < 6; i++)
			usec *= 10;
		fsec = usec + (round_up ? 1 : 0);
	}
	if (pos == len)
		return "the time zone is missing (write \"Z\" for UTC or an offset such as \"+05:30\").";
	if (s[pos] == 'Z' || s[pos] == 'z')
		pos++;
	else if ((s[pos] == '+' || s[pos] == '-') && len - pos >= 6
			 && read_digits(s + pos + 1, 2, &tzh) && s[pos + 3] == ':'
			 && read_digits(s + pos + 4, 2, &tzm))
	{
		if (tzh > 23 || tzm > 59)
			return "the time zone offset is out of range.";
		if (s[pos] == '-')
		{
			tzh = -tzh;
			tzm = -tzm;
		}
		pos += 6;
	}
	else
		return "the time zone must be \"Z\" or an offset such as \"+05:30\".";
	if (pos != len)
		return "unexpected characters follow the time zone.";

	if (year < 1)
		return "year 0000 does not exist.";
	if (mon < 1 || mon > 12)
		return "the month is out of range.";
	if (day < 1 || day > day_tab[isleap(year) ? 1 : 0][mon - 1])
		return "that day does not exist in that month.";
	if (hour > 23 || min > 59 || sec > 60)
		return "the time of day is out of range.";

	memset(&tm, 0, sizeof(tm));
	tm.tm_year = year;
	tm.tm_mon = mon;
	tm.tm_mday = day;
	tm.tm_hour = hour;
	tm.tm_min = min;
	tm.tm_sec = sec;
	/* PostgreSQL counts zone offsets in seconds west of UTC. */
	tz = -(tzh * SECS_PER_HOUR + tzm * SECS_PER_MINUTE);
	if (tm2timestamp(&tm, fsec, &tz, &ts) != 0 || !IS_VALID_TIMESTAMP(ts))
		return "it is out of range.";
	*result = ts;
	return NULL;
}

/* 0001-01-01T00:00:00Z: Go's zero time.Time, which FlexPrice reads as "not given". */
static TimestampTz
go_zero_time(void)
{
	static bool done = false;
	static TimestampTz zero;

	if (!done)
	{
		if (rfc3339_parse("0001-01-01T00:00:00Z", 20, &zero) != NULL)
			elog(ERROR, "could not compute the zero time");
		done = true;
	}
	return zero;
}

/* ── One event ──────────────────────────────────────────────────────────────────────── */

static int
lookup_event_key(const char *key, int len)
{
	for (int k = 0; k < NUM_EVENT_KEYS; k++)
	{
		if ((int) strlen(event_key_names[k]) == len && memcmp(event_key_names[k], key, len) == 0)
			return k;
	}
	return -1;
}

/* Gather the object's keys; an unknown key is an error. */
static void
read_event_fields(JsonbContainer *obj, int index, EventFields *f)
{
	JsonbIterator *it = JsonbIteratorInit(obj);
	JsonbIteratorToken tok;
	JsonbValue	v;
	int			key = -1;

	memset(f->present, 0, sizeof(f->present));
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
		{
			key = lookup_event_key(v.val.string.val, v.val.string.len);
			if (key < 0)
				event_error(index,
							psprintf("unknown key \"%s\"",
									 excerpt(v.val.string.val, v.val.string.len)),
							"has a key that is not a field of an event.",
							"Known keys: id (or event_id), event_name, customer_id, external_customer_id, timestamp, properties, source, tenant_id, environment_id, ingested_at. Put your own data under \"properties\".");
		}
		else if (tok == WJB_VALUE && v.type != jbvNull)
		{
			f->value[key] = v;
			f->present[key] = true;
		}
	}
}

/* The string at key, or NULL when absent (or null); other JSON types are an error. */
static const JsonbValue *
string_field(const EventFields *f, EventKey key, int index, const char *hint)
{
	if (!f->present[key])
		return NULL;
	if (f->value[key].type != jbvString)
		wrong_type_error(index, key, &f->value[key], "a string", hint);
	return &f->value[key];
}

static void
check_key_length(const JsonbValue *v, EventKey key, int index)
{
	if (v->val.string.len > INGEST_MAX_KEY_BYTES)
		event_error(index,
					psprintf("\"%s\" is too long", event_key_names[key]),
					psprintf("has a \"%s\" of %d bytes; the limit is %d bytes.",
							 event_key_names[key], v->val.string.len, INGEST_MAX_KEY_BYTES),
					"Use a shorter identifier.");
}

static Datum
text_datum(const JsonbValue *v)
{
	return PointerGetDatum(cstring_to_text_with_len(v->val.string.val, v->val.string.len));
}

/* Validate event `index` and store its column values at position index of the batch. */
static void
parse_event(JsonbContainer *obj, int index, EventBatch *b)
{
	EventFields f;
	const JsonbValue *v;
	const JsonbValue *id;
	const JsonbValue *event_id;
	const char *name;
	int			name_len;
	bool		has_customer = false;

	read_event_fields(obj, index, &f);

	/* event_name: required; trimmed as FlexPrice does, by the catalog's rule for names. */
	v = string_field(&f, KEY_EVENT_NAME, index, "Write \"event_name\": \"<name>\", the name meters match on.");
	if (v == NULL)
		event_error(index, "\"event_name\" is required", "has no \"event_name\".",
					"Add \"event_name\": \"<name>\", the name meters match on.");
	name = catalog_trim_space(v->val.string.val, v->val.string.len, &name_len);
	if (name_len == 0)
		event_error(index, "\"event_name\" cannot be empty", "has an empty \"event_name\".",
					"Add \"event_name\": \"<name>\", the name meters match on.");
	if (name_len > INGEST_MAX_KEY_BYTES)
		check_key_length(v, KEY_EVENT_NAME, index);
	b->event_name[index] = PointerGetDatum(cstring_to_text_with_len(name, name_len));

	/* customer_id / external_customer_id: at least one; "" counts as absent. */
	v = string_field(&f, KEY_CUSTOMER_ID, index, "Write \"customer_id\": \"<id>\" or leave it out.");
	b->customer_id_null[index] = (v == NULL || v->val.string.len == 0);
	if (!b->customer_id_null[index])
	{
		check_key_length(v, KEY_CUSTOMER_ID, index);
		b->customer_id[index] = text_datum(v);
		has_customer = true;
	}
	v = string_field(&f, KEY_EXTERNAL_CUSTOMER_ID, index,
					 "Write \"external_customer_id\": \"<id>\" or leave it out.");
	b->external_customer_id_null[index] = (v == NULL || v->val.string.len == 0);
	if (!b->external_customer_id_null[index])
	{
		check_key_length(v, KEY_EXTERNAL_CUSTOMER_ID, index);
		b->external_customer_id[index] = text_datum(v);
		has_customer = true;
	}
	if (!has_customer)
		event_error(index, "\"customer_id\" or \"external_customer_id\" is required",
					"names no customer.",
					"Add \"external_customer_id\": \"<your customer id>\" (or \"customer_id\").");

	/* id, or FlexPrice's event_id: the dedup key; generated when absent. */
	id = string_field(&f, KEY_ID, index, "Write \"id\": \"<unique id>\" or leave it out to have one generated.");
	event_id = string_field(&f, KEY_EVENT_ID, index, "Write \"event_id\": \"<unique id>\" or leave it out to have one generated.");
	if (id != NULL && event_id != NULL
		&& (id->val.string.len != event_id->val.string.len
			|| memcmp(id->val.string.val, event_id->val.string.val, id->val.string.len) != 0))
		event_error(index, "\"id\" and \"event_id\" differ",
					psprintf("has \"id\" \"%s\" and \"event_id\" \"%s\".",
							 excerpt(id->val.string.val, id->val.string.len),
							 excerpt(event_id->val.string.val, event_id->val.string.len)),
					"Send the id once, as \"id\" or as \"event_id\" (they are the same field).");
	if (id == NULL)
		id = event_id;
	if (id != NULL)
	{
		EventKey	key = f.present[KEY_ID] ? KEY_ID : KEY_EVENT_ID;

		if (id->val.string.len == 0)
			event_error(index, psprintf("\"%s\" cannot be empty", event_key_names[key]),
						psprintf("has an empty \"%s\".", event_key_names[key]),
						"Send a unique id so that a retried event counts once, or leave it out to have one generated.");
		check_key_length(id, key, index);
		b->id[index] = text_datum(id);
	}
	else
		b->id[index] = CStringGetTextDatum(ulid_with_prefix("event"));

	/* timestamp: RFC 3339 with a zone; now() when absent (or Go's zero time). */
	b->timestamp[index] = TimestampTzGetDatum(b->now);
	if (f.present[KEY_TIMESTAMP])
	{
		TimestampTz ts;
		const char *problem;

		v = &f.value[KEY_TIMESTAMP];
		if (v->type != jbvString)
			wrong_type_error(index, KEY_TIMESTAMP, v, "an RFC 3339 string", TIMESTAMP_HINT);
		problem = rfc3339_parse(v->val.string.val, v->val.string.len, &ts);
		if (problem != NULL)
			event_error(index, "\"timestamp\" is not a valid RFC 3339 timestamp",
						psprintf("has \"timestamp\" \"%s\": %s",
								 excerpt(v->val.string.val, v->val.string.len), problem),
						TIMESTAMP_HINT);
		if (ts != go_zero_time())
			b->timestamp[index] = TimestampTzGetDatum(ts);
	}

	/* properties: an object; {} when absent. */
	b->properties[index] = b->empty_properties;
	if (f.present[KEY_PROPERTIES])
	{
		v = &f.value[KEY_PROPERTIES];
		if (v->type != jbvBinary || !JsonContainerIsObject(v->val.binary.data))
			wrong_type_error(index, KEY_PROPERTIES, v, "a JSON object",
							 "Write \"properties\": {\"<key>\": <value>, ...} or leave it out.");
		b->properties[index] = JsonbPGetDatum(JsonbValueToJsonb(unconstify(JsonbValue *, v)));
	}

	/* source: optional; "" counts as absent. */
	v = string_field(&f, KEY_SOURCE, index, "Write \"source\": \"<where the event comes from>\" or leave it out.");
	b->source_null[index] = (v == NULL || v->val.string.len == 0);
	if (!b->source_null[index])
		b->source[index] = text_datum(v);

	/* tenant_id / environment_id: allowed only when they name the current scope. */
	v = string_field(&f, KEY_TENANT_ID, index, "Leave \"tenant_id\" out: events go to the current tenant.");
	if (v != NULL && v->val.string.len > 0
		&& (v->val.string.len != (int) strlen(b->tenant)
			|| memcmp(v->val.string.val, b->tenant, v->val.string.len) != 0))
		event_error(index, "\"tenant_id\" does not match the current tenant",
					psprintf("is for tenant \"%s\", but the current tenant is \"%s\".",
							 excerpt(v->val.string.val, v->val.string.len), b->tenant),
					"Events go to the current tenant only: leave \"tenant_id\" out, or SET meter.tenant_id to that tenant first.");
	v = string_field(&f, KEY_ENVIRONMENT_ID, index, "Leave \"environment_id\" out: events go to the current environment.");
	if (v != NULL
		&& (v->val.string.len != (int) strlen(b->environment)
			|| memcmp(v->val.string.val, b->environment, v->val.string.len) != 0))
		event_error(index, "\"environment_id\" does not match the current environment",
					psprintf("is for environment \"%s\", but the current environment is \"%s\"%s.",
							 excerpt(v->val.string.val, v->val.string.len), b->environment,
							 b->environment[0] == '\0' ? " (the default)" : ""),
					"Events go to the current environment only: leave \"environment_id\" out, or SET meter.environment_id to that environment first.");

	/* ingested_at: FlexPrice's Event carries it; the server sets it, the value is ignored. */
	(void) string_field(&f, KEY_INGESTED_AT, index, "Leave \"ingested_at\" out: it is set when the event is stored.");
}

/* ── The batch ──────────────────────────────────────────────────────────────────────── */

static void
batch_init(EventBatch *b, int n, const char *tenant, const char *environment)
{
	b->n = n;
	b->id = palloc(sizeof(Datum) * n);
	b->event_name = palloc(sizeof(Datum) * n);
	b->customer_id = palloc(sizeof(Datum) * n);
	b->customer_id_null = palloc(sizeof(bool) * n);
	b->external_customer_id = palloc(sizeof(Datum) * n);
	b->external_customer_id_null = palloc(sizeof(bool) * n);
	b->source = palloc(sizeof(Datum) * n);
	b->source_null = palloc(sizeof(bool) * n);
	b->timestamp = palloc(sizeof(Datum) * n);
	b->properties = palloc(sizeof(Datum) * n);
	b->empty_properties = DirectFunctionCall1(jsonb_in, CStringGetDatum("{}"));
	b->now = GetCurrentTransactionStartTimestamp();
	b->tenant = tenant;
	b->environment = environment;
}

/* Validate the input: one event object or an array of them. */
static void
collect_events(Jsonb *events, EventBatch *b, const char *tenant, const char *environment)
{
	if (JB_ROOT_IS_SCALAR(events))
	{
		JsonbValue	scalar;

		JsonbExtractScalar(&events->root, &scalar);
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("events must be a JSON object or an array of objects"),
				 errdetail("Got %s.", json_value_kind(&scalar)),
				 errhint("Pass one event such as {\"event_name\": \"api_call\", \"external_customer_id\": \"cus_1\"}, or an array of them.")));
	}
	if (JB_ROOT_IS_OBJECT(events))
	{
		batch_init(b, 1, tenant, environment);
		parse_event(&events->root, 0, b);
	}
	else
	{
		JsonbIterator *it = JsonbIteratorInit(&events->root);
		JsonbIteratorToken tok;
		JsonbValue	v;
		int			index = 0;

		batch_init(b, JB_ROOT_COUNT(events), tenant, environment);
		while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
		{
			if (tok != WJB_ELEM)
				continue;
			CHECK_FOR_INTERRUPTS();
			if (v.type != jbvBinary || !JsonContainerIsObject(v.val.binary.data))
				event_error(index, "not a JSON object",
							psprintf("is %s.", json_value_kind(&v)),
							"Each event is an object such as {\"event_name\": \"api_call\", \"external_customer_id\": \"cus_1\"}.");
			parse_event(v.val.binary.data, index, b);
			index++;
		}
		Assert(index == b->n);
	}
}

static Datum
array_datum(Datum *values, bool *nulls, int n, Oid elemtype)
{
	int16		typlen;
	bool		typbyval;
	char		typalign;
	int			dims[1] = {n};
	int			lbs[1] = {1};

	get_typlenbyvalalign(elemtype, &typlen, &typbyval, &typalign);
	return PointerGetDatum(construct_md_array(values, nulls, 1, dims, lbs,
											  elemtype, typlen, typbyval, typalign));
}

/*
 * meter.events partitioned: dedup through meter.event_ids (see the file header). The
 * stored-id test is a subquery per event, one probe of event_ids' primary key each: as
 * NOT EXISTS, the kept generic plan (made while event_ids was small) would be an anti
 * join reading all of the tenant's ids on every call.
 */
static const char insert_partitioned_sql[] =
	"INSERT INTO meter.events (id, tenant_id, environment_id, event_name, customer_id,"
	" external_customer_id, source, \"timestamp\", properties)"
	" SELECT u.id, $1, $2, u.event_name, u.customer_id, u.external_customer_id,"
	" u.source, u.ts, u.properties"
	" FROM (SELECT DISTINCT ON (r.id COLLATE pg_catalog.\"C\") r.*"
	"  FROM ROWS FROM (pg_catalog.unnest($3), pg_catalog.unnest($4), pg_catalog.unnest($5),"
	"  pg_catalog.unnest($6), pg_catalog.unnest($7), pg_catalog.unnest($8),"
	"  pg_catalog.unnest($9)) WITH ORDINALITY"
	"  AS r(id, event_name, customer_id, external_customer_id, source, ts, properties, ord)"
	"  ORDER BY r.id COLLATE pg_catalog.\"C\", r.ord) u"
	" WHERE (SELECT true FROM meter.event_ids i WHERE i.tenant_id OPERATOR(pg_catalog.=) $1"
	"  AND i.environment_id OPERATOR(pg_catalog.=) $2 AND i.id OPERATOR(pg_catalog.=) u.id) IS NULL"
	" ORDER BY u.id COLLATE pg_catalog.\"C\"";

/*
 * Run the insert into a partitioned meter.events; a unique violation (another session
 * stored one of the ids since the statement's snapshot) rolls the attempt back and tries
 * again with a fresh snapshot, where that id is a duplicate. Under REPEATABLE READ or
 * SERIALIZABLE the snapshot cannot move: 40001, as ON CONFLICT DO NOTHING would raise.
 */
static uint64
execute_partitioned(SPIPlanPtr plan, Datum *values)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	volatile int attempt = 0;

	for (;;)
	{
		volatile uint64 inserted = 0;
		ErrorData  *volatile edata = NULL;

		BeginInternalSubTransaction(NULL);
		MemoryContextSwitchTo(cxt);
		PG_TRY();
		{
			int			rc = SPI_execute_plan(plan, values, NULL, false, 0);

			if (rc != SPI_OK_INSERT)
				elog(ERROR, "meter.ingest: insert failed: %s", SPI_result_code_string(rc));
			inserted = SPI_processed;
			ReleaseCurrentSubTransaction();
		}
		PG_CATCH();
		{
			MemoryContextSwitchTo(cxt);
			edata = CopyErrorData();
			FlushErrorState();
			RollbackAndReleaseCurrentSubTransaction();
		}
		PG_END_TRY();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
		if (edata == NULL)
			return inserted;
		if (edata->sqlerrcode != ERRCODE_UNIQUE_VIOLATION || ++attempt >= INGEST_ATTEMPTS)
			ReThrowError(edata);
		if (IsolationUsesXactSnapshot())
			ereport(ERROR,
					(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
					 errmsg("could not serialize access due to concurrent ingestion of the same event id"),
					 errdetail("%s", edata->detail ? edata->detail : edata->message),
					 errhint("Retry the transaction: the event will then count as a duplicate.")));
		FreeErrorData(edata);
	}
}

#define INSERT_EVENTS \
	"INSERT INTO meter.events (id, tenant_id, environment_id, event_name, customer_id," \
	" external_customer_id, source, \"timestamp\", properties)" \
	" SELECT u.id, $1, $2, u.event_name, u.customer_id, u.external_customer_id," \
	" u.source, u.ts, u.properties" \
	" FROM ROWS FROM (pg_catalog.unnest($3), pg_catalog.unnest($4), pg_catalog.unnest($5)," \
	" pg_catalog.unnest($6), pg_catalog.unnest($7), pg_catalog.unnest($8)," \
	" pg_catalog.unnest($9)) WITH ORDINALITY" \
	" AS u(id, event_name, customer_id, external_customer_id, source, ts, properties, ord)" \
	" ORDER BY u.id COLLATE pg_catalog.\"C\", u.ord" \
	" ON CONFLICT (tenant_id, environment_id, id) DO NOTHING"

/*
 * The insert, prepared once per backend: on one server with a generic plan (a custom plan
 * would copy the possibly huge arrays into it) and the rows counted by SPI. On a Citus
 * cluster Citus can distribute this INSERT … SELECT only with its parameters bound (custom
 * plans), and counts the rows it sends to the shards, not the rows they insert: there the
 * inserted rows are counted by the statement itself.
 */
static SPIPlanPtr
insert_plan(bool distributed)
{
	static SPIPlanPtr plans[2] = {NULL, NULL};
	static const char *const sql[2] = {
		INSERT_EVENTS,
		"WITH ins AS (" INSERT_EVENTS " RETURNING 1) SELECT pg_catalog.count(*) FROM ins"
	};
	Oid			argtypes[9] = {TEXTOID, TEXTOID, TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID,
	TEXTARRAYOID, TEXTARRAYOID, TIMESTAMPTZARRAYOID, JSONBARRAYOID};

	if (plans[distributed] == NULL)
	{
		SPIPlanPtr	plan = SPI_prepare_cursor(sql[distributed], 9, argtypes,
											  distributed ? 0 : CURSOR_OPT_GENERIC_PLAN);

		if (plan == NULL)
			elog(ERROR, "SPI_prepare failed for meter.ingest: %s", SPI_result_code_string(SPI_result));
		if (SPI_keepplan(plan) != 0)
			elog(ERROR, "SPI_keepplan failed");
		plans[distributed] = plan;
	}
	return plans[distributed];
}

/*
 * On a Citus cluster the rows are checked against row-level security on the shards, on
 * the workers, where the session's settings are unknown: the scope goes along as SET LOCAL,
 * which Citus replays on the workers of the transaction (meter.propagate_scope). Undone
 * here when the function returns (its SET clause); on the workers at the end of the
 * transaction.
 */
static void
propagate_scope(const char *tenant, const char *environment)
{
	Oid			types[2] = {TEXTOID, TEXTOID};
	Datum		args[2] = {CStringGetTextDatum(tenant), CStringGetTextDatum(environment)};

	if (SPI_execute_with_args("SELECT meter.propagate_scope($1, $2)", 2, types, args, NULL,
							  false, 0) != SPI_OK_SELECT)
		elog(ERROR, "meter.ingest: setting the scope on the workers failed");
}

/* Insert the batch with one statement; returns the number of rows inserted. */
static uint64
insert_events(EventBatch *b)
{
	bool		distributed = placement_distributed();
	Datum		values[9];
	int			rc;
	uint64		inserted;
	bool		partitioned = OidIsValid(partitioned_events());
	Oid			argtypes[9] = {TEXTOID, TEXTOID, TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID,
	TEXTARRAYOID, TEXTARRAYOID, TIMESTAMPTZARRAYOID, JSONBARRAYOID};

	values[0] = CStringGetTextDatum(b->tenant);
	values[1] = CStringGetTextDatum(b->environment);
	values[2] = array_datum(b->id, NULL, b->n, TEXTOID);
	values[3] = array_datum(b->event_name, NULL, b->n, TEXTOID);
	values[4] = array_datum(b->customer_id, b->customer_id_null, b->n, TEXTOID);
	values[5] = array_datum(b->external_customer_id, b->external_customer_id_null, b->n, TEXTOID);
	values[6] = array_datum(b->source, b->source_null, b->n, TEXTOID);
	values[7] = array_datum(b->timestamp, NULL, b->n, TIMESTAMPTZOID);
	values[8] = array_datum(b->properties, NULL, b->n, JSONBOID);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (partitioned)
	{
		if (insert_plan_partitioned == NULL)
		{
			/* Generic plan: a custom plan would copy the (possibly huge) arrays into it. */
			SPIPlanPtr	plan = SPI_prepare_cursor(insert_partitioned_sql, 9, argtypes,
												  CURSOR_OPT_GENERIC_PLAN);

			if (plan == NULL)
				elog(ERROR, "SPI_prepare failed for meter.ingest: %s", SPI_result_code_string(SPI_result));
			if (SPI_keepplan(plan) != 0)
				elog(ERROR, "SPI_keepplan failed");
			insert_plan_partitioned = plan;
		}
		inserted = execute_partitioned(insert_plan_partitioned, values);
		SPI_finish();
		return inserted;
	}
	if (distributed)
		propagate_scope(b->tenant, b->environment);
	rc = SPI_execute_plan(insert_plan(distributed), values, NULL, false, 0);
	if (rc != (distributed ? SPI_OK_SELECT : SPI_OK_INSERT))
		elog(ERROR, "meter.ingest: insert failed: %s", SPI_result_code_string(rc));
	if (distributed)
	{
		bool		isnull;

		inserted = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	}
	else
		inserted = SPI_processed;
	SPI_finish();
	return inserted;
}

/* The one result row (accepted, duplicates), returned in materialize mode. */
static void
return_counts(FunctionCallInfo fcinfo, int32 accepted, int32 duplicates)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	TupleDesc	tupdesc;
	Tuplestorestate *store;
	MemoryContext old;
	Datum		values[2];
	bool		nulls[2] = {false, false};

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "meter.ingest must return a row type");
	old = MemoryContextSwitchTo(rsinfo->econtext->ecxt_per_query_memory);
	tupdesc = CreateTupleDescCopy(tupdesc);
	store = tuplestore_begin_heap((rsinfo->allowedModes & SFRM_Materialize_Random) != 0,
								  false, work_mem);
	values[0] = Int32GetDatum(accepted);
	values[1] = Int32GetDatum(duplicates);
	tuplestore_putvalues(store, tupdesc, values, nulls);
	MemoryContextSwitchTo(old);
	rsinfo->returnMode = SFRM_Materialize;
	rsinfo->setResult = store;
	rsinfo->setDesc = tupdesc;
}

/*
 * meter.ingest(events jsonb) → TABLE(accepted integer, duplicates integer)
 *
 * Stores one FlexPrice event object, or an array of them, in meter.events under the
 * current tenant and environment. Every element is validated before anything is written
 * (a bad one rejects the call with 22023 naming its 0-based index and the field); then
 * one INSERT … ON CONFLICT DO NOTHING writes them all. accepted = rows stored,
 * duplicates = the rest (ids repeated in the call or stored before; the first wins).
 * Not STRICT: NULL is an error rather than an empty result a caller could miss.
 */
PG_FUNCTION_INFO_V1(meter_ingest);
Datum
meter_ingest(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	const char *tenant;
	const char *environment;
	MemoryContext work;
	MemoryContext old;
	EventBatch	batch;
	uint64		inserted = 0;

	if (rsinfo == NULL || !IsA(rsinfo, ReturnSetInfo)
		|| (rsinfo->allowedModes & SFRM_Materialize) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("set-valued function called in context that cannot accept a set")));

	tenant = pstrdup(scope_tenant());
	environment = pstrdup(scope_environment());

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("events must be a JSON object or an array of objects"),
				 errdetail("Got NULL."),
				 errhint("Pass one event such as {\"event_name\": \"api_call\", \"external_customer_id\": \"cus_1\"}, or an array of them.")));

	work = AllocSetContextCreate(CurrentMemoryContext, "meter.ingest", ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(work);
	collect_events(PG_GETARG_JSONB_P(0), &batch, tenant, environment);
	if (batch.n > 0)
		inserted = insert_events(&batch);
	MemoryContextSwitchTo(old);
	MemoryContextDelete(work);

	return_counts(fcinfo, (int32) inserted, (int32) (batch.n - (int64) inserted));
	return (Datum) 0;
}
