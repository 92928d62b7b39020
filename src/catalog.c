/*
 * catalog.c — the meter catalog (SPEC §4): the trigger that guards meter.meters.
 *
 * Every insert, update and delete of a meter goes through meter.validate_meter(), a
 * BEFORE ROW trigger. On insert and update it stores event_name and name trimmed (as
 * FlexPrice's strings.TrimSpace), checks the row as a whole (required columns present,
 * id / event_name / name not blank and not absurdly long), keeps the
 * columns that record a meter's creation immutable, and stamps updated_at / updated_by
 * (created_by on insert). The aggregation and filters columns are values of their own
 * validating types, so they are valid whenever they are not NULL.
 *
 * On every change, deletes included, it registers a relcache invalidation of
 * meter.meters. PostgreSQL sends it to every backend when the transaction commits (and
 * applies it in this backend at the next command; a rollback discards it): the compiled
 * meter cache listens for it, so no backend ever matches events against a stale meter.
 *
 * On a Citus cluster meter.meters is a reference table and the trigger fires on its
 * placement on every node (never on the table itself), in that node's part of the
 * distributed transaction. Each validates and trims (the same everywhere) and invalidates
 * its own node's meter.meters, so every node's caches see the change once it commits
 * (COMMIT PREPARED sends the invalidations). It stamps nothing there: each node has its
 * own clock and no meter.user_id, so the statement carries the stamps instead (the
 * repository functions set them; Citus evaluates them once, on the coordinator).
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

#include "catalog.h"
#include "placement.h"
#include "scope.h"

/* The columns of meter.meters the trigger reads or writes. */
typedef enum MeterColumn
{
	COL_ID,
	COL_TENANT_ID,
	COL_ENVIRONMENT_ID,
	COL_EVENT_NAME,
	COL_NAME,
	COL_AGGREGATION,
	COL_FILTERS,
	COL_RESET_USAGE,
	COL_STATUS,
	COL_CREATED_AT,
	COL_UPDATED_AT,
	COL_CREATED_BY,
	COL_UPDATED_BY,
	NUM_COLUMNS
} MeterColumn;

static const char *const column_names[NUM_COLUMNS] = {
	"id", "tenant_id", "environment_id", "event_name", "name", "aggregation", "filters",
	"reset_usage", "status", "created_at", "updated_at", "created_by", "updated_by"
};

/* What to write instead of NULL, per column that may not be NULL. */
static const char *const null_hints[NUM_COLUMNS] = {
	[COL_ID] = "Give the meter a non-blank id, or none (NULL in meter.create_meter, or omit the column) to get a generated one.",
	[COL_TENANT_ID] = "Run SET meter.tenant_id = '<your tenant id>' and omit the column, or give a non-blank tenant_id.",
	[COL_ENVIRONMENT_ID] = "Use '' for the default environment, or omit the column to take meter.environment_id.",
	[COL_EVENT_NAME] = "Set event_name to the name of the events the meter counts, e.g. 'api_call'.",
	[COL_NAME] = "Give the meter a display name, e.g. 'API calls'.",
	[COL_AGGREGATION] = "Write an aggregation such as '{\"type\":\"COUNT\"}' or '{\"type\":\"SUM\",\"field\":\"tokens\"}'.",
	[COL_FILTERS] = "Use '[]' for a meter that counts every event of its event name.",
	[COL_RESET_USAGE] = "Use 'BILLING_PERIOD' or 'NEVER', or omit the column for 'BILLING_PERIOD'.",
	[COL_STATUS] = "Use 'published', 'archived' or 'deleted', or omit the column for 'published'.",
	[COL_CREATED_AT] = "Omit the column to get now().",
	[COL_UPDATED_AT] = "Omit the column to get now().",
};

/* What to do instead of changing a column that records the meter's creation. */
static const char *const immutable_hints[NUM_COLUMNS] = {
	[COL_ID] = "Create a new meter with the new id and archive this one with meter.disable_meter().",
	[COL_TENANT_ID] = "Meters never move between tenants: create the meter in the other tenant instead.",
	[COL_ENVIRONMENT_ID] = "Meters never move between environments: create the meter in the other environment instead.",
	[COL_CREATED_AT] = "created_at and created_by record the meter's creation; updated_at and updated_by are stamped on every update.",
	[COL_CREATED_BY] = "created_at and created_by record the meter's creation; updated_at and updated_by are stamped on every update.",
};

Oid
catalog_meters_relid(void)
{
	Oid			nsp = get_namespace_oid("meter", true);

	if (!OidIsValid(nsp))
		return InvalidOid;
	return get_relname_relid("meters", nsp);
}

/*
 * White space as FlexPrice's strings.TrimSpace sees it (Go's unicode.IsSpace): ASCII
 * \t \n \v \f \r and space, U+0085, U+00A0, and Unicode White_Space (U+1680,
 * U+2000..U+200A, U+2028, U+2029, U+202F, U+205F, U+3000).
 */
static bool
is_white_space(pg_wchar c)
{
	return c == ' ' || (c >= '\t' && c <= '\r') || c == 0x85 || c == 0xA0 || c == 0x1680 ||
		(c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
		c == 0x205F || c == 0x3000;
}

/* Invisible, but not white space: the zero-width space and the BOM. */
static bool
is_invisible(pg_wchar c)
{
	return c == 0x200B || c == 0xFEFF;
}

/*
 * The character at p (before end): its code point in *c (only meaningful for ASCII and,
 * in a UTF-8 database, for every character), and its length in bytes. Other encodings
 * report non-ASCII bytes as code point 0xFFFD, which is neither blank nor invisible.
 */
static int
char_at(const unsigned char *p, const unsigned char *end, bool utf8, pg_wchar *c)
{
	int			n;

	if (*p < 0x80)
	{
		*c = *p;
		return 1;
	}
	n = utf8 ? pg_utf_mblen(p) : 1;
	*c = (utf8 && n <= end - p) ? utf8_to_unicode(p) : 0xFFFD;
	return Max(Min(n, (int) (end - p)), 1);
}

const char *
catalog_trim_space(const char *s, int len, int *trimmed_len)
{
	const unsigned char *p = (const unsigned char *) s;
	const unsigned char *end = p + len;
	bool		utf8 = GetDatabaseEncoding() == PG_UTF8;
	pg_wchar	c;

	while (p < end)
	{
		int			n = char_at(p, end, utf8, &c);

		if (!is_white_space(c))
			break;
		p += n;
	}
	while (end > p)
	{
		const unsigned char *q = end - 1;

		/* Back to the first byte of the last character (UTF-8 continuation bytes are
		 * 10xxxxxx; in other server encodings only ASCII bytes can be white space). */
		if (utf8)
			while (q > p && (*q & 0xC0) == 0x80)
				q--;
		(void) char_at(q, end, utf8, &c);
		if (!is_white_space(c))
			break;
		end = q;
	}
	*trimmed_len = (int) (end - p);
	return (const char *) p;
}

bool
catalog_text_is_blank(const char *s, int len)
{
	const unsigned char *p = (const unsigned char *) s;
	const unsigned char *end = p + len;
	bool		utf8 = GetDatabaseEncoding() == PG_UTF8;

	while (p < end)
	{
		pg_wchar	c;
		int			n = char_at(p, end, utf8, &c);

		if (!is_white_space(c) && !is_invisible(c))
			return false;
		p += n;
	}
	return true;
}

/* Attribute numbers of the columns, by name; errors if one is missing. */
static void
find_columns(Relation rel, int *attnums)
{
	TupleDesc	desc = RelationGetDescr(rel);

	for (int i = 0; i < NUM_COLUMNS; i++)
	{
		attnums[i] = SPI_fnumber(desc, column_names[i]);
		if (attnums[i] <= 0)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("table meter.meters has no column \"%s\"", column_names[i]),
					 errdetail("The meter trigger needs every column the extension created."),
					 errhint("Recreate the extension, or restore the column.")));
	}
}

/* NULL is refused with a message naming the column. */
static void
check_not_null(HeapTuple tuple, TupleDesc desc, const int *attnums, MeterColumn col)
{
	bool		isnull;

	(void) heap_getattr(tuple, attnums[col], desc, &isnull);
	if (isnull)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s cannot be null", column_names[col]),
				 errdetail("The meter's %s is NULL.", column_names[col]),
				 errhint("%s", null_hints[col])));
}

/*
 * A required text column: not NULL, not blank (empty or only whitespace), and at most
 * max_chars characters when max_chars > 0.
 */
static void
check_required_text(HeapTuple tuple, TupleDesc desc, const int *attnums, MeterColumn col,
					int max_chars)
{
	const char *column = column_names[col];
	bool		isnull;
	Datum		value = heap_getattr(tuple, attnums[col], desc, &isnull);
	text	   *t;
	int			len;

	if (isnull)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s is required", column),
				 errdetail("The meter's %s is NULL.", column),
				 errhint("%s", null_hints[col])));
	t = DatumGetTextPP(value);
	len = VARSIZE_ANY_EXHDR(t);
	if (catalog_text_is_blank(VARDATA_ANY(t), len))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s is required", column),
				 errdetail("The meter's %s is empty or only whitespace.", column),
				 errhint("%s", null_hints[col])));
	/* A character is at least one byte: count characters only when it can matter. */
	if (max_chars > 0 && len > max_chars)
	{
		int			chars = pg_mbstrlen_with_len(VARDATA_ANY(t), len);

		if (chars > max_chars)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s is too long", column),
					 errdetail("The meter's %s has %d characters; at most %d are allowed.",
							   column, chars, max_chars),
					 errhint("Use a shorter %s.", column)));
	}
}

/*
 * event_name and name are stored trimmed (SPEC §4, FlexPrice's strings.TrimSpace), so a
 * meter created as '  api_call  ' matches the events ingested as "api_call". Returns
 * the tuple with them trimmed, or the tuple itself when nothing changes.
 */
static HeapTuple
trim_names(HeapTuple tuple, TupleDesc desc, const int *attnums)
{
	static const MeterColumn trimmed[] = {COL_EVENT_NAME, COL_NAME};
	int			cols[lengthof(trimmed)];
	Datum		values[lengthof(trimmed)];
	bool		nulls[lengthof(trimmed)];
	int			n = 0;

	for (int i = 0; i < (int) lengthof(trimmed); i++)
	{
		bool		isnull;
		Datum		value = heap_getattr(tuple, attnums[trimmed[i]], desc, &isnull);
		text	   *t;
		int			len,
					trimmed_len;
		const char *start;

		if (isnull)
			continue;
		t = DatumGetTextPP(value);
		len = VARSIZE_ANY_EXHDR(t);
		start = catalog_trim_space(VARDATA_ANY(t), len, &trimmed_len);
		if (trimmed_len == len)
			continue;
		cols[n] = attnums[trimmed[i]];
		values[n] = PointerGetDatum(cstring_to_text_with_len(start, trimmed_len));
		nulls[n++] = false;
	}
	return n > 0 ? heap_modify_tuple_by_cols(tuple, desc, n, cols, values, nulls) : tuple;
}

/* The checks every new version of a meter row passes, on insert and on update alike. */
static void
validate_row(HeapTuple tuple, TupleDesc desc, const int *attnums)
{
	check_required_text(tuple, desc, attnums, COL_ID, METER_TEXT_MAX);
	check_required_text(tuple, desc, attnums, COL_TENANT_ID, 0);
	check_not_null(tuple, desc, attnums, COL_ENVIRONMENT_ID);
	check_required_text(tuple, desc, attnums, COL_EVENT_NAME, METER_TEXT_MAX);
	check_required_text(tuple, desc, attnums, COL_NAME, METER_TEXT_MAX);
	check_not_null(tuple, desc, attnums, COL_AGGREGATION);
	check_not_null(tuple, desc, attnums, COL_FILTERS);
	check_not_null(tuple, desc, attnums, COL_RESET_USAGE);
	check_not_null(tuple, desc, attnums, COL_STATUS);
	check_not_null(tuple, desc, attnums, COL_CREATED_AT);
}

/* On update: the columns that record the meter's creation keep their values. */
static void
check_unchanged(HeapTuple oldtuple, HeapTuple newtuple, TupleDesc desc, const int *attnums)
{
	static const MeterColumn fixed[] = {
		COL_ID, COL_TENANT_ID, COL_ENVIRONMENT_ID, COL_CREATED_AT, COL_CREATED_BY
	};

	for (int i = 0; i < (int) lengthof(fixed); i++)
	{
		MeterColumn col = fixed[i];
		Form_pg_attribute att = TupleDescAttr(desc, attnums[col] - 1);
		bool		oldnull,
					newnull;
		Datum		oldvalue = heap_getattr(oldtuple, attnums[col], desc, &oldnull);
		Datum		newvalue = heap_getattr(newtuple, attnums[col], desc, &newnull);
		bool		same;

		if (oldnull || newnull)
			same = oldnull == newnull;
		else
			same = datum_image_eq(oldvalue, newvalue, att->attbyval, att->attlen);
		if (!same)
		{
			bool		idnull;
			Datum		id = heap_getattr(oldtuple, attnums[COL_ID], desc, &idnull);

			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s cannot be changed", column_names[col]),
					 errdetail("Meter \"%s\" keeps the %s it was created with.",
							   idnull ? "" : TextDatumGetCString(id), column_names[col]),
					 errhint("%s", immutable_hints[col])));
		}
	}
}

/* Text datum of the current user (meter.user_id), or NULL. */
static Datum
user_datum(bool *isnull)
{
	const char *user = scope_user();

	*isnull = (user == NULL);
	return user ? CStringGetTextDatum(user) : (Datum) 0;
}

/*
 * meter.validate_meter() — BEFORE INSERT OR UPDATE OR DELETE FOR EACH ROW trigger of
 * meter.meters. Trims event_name and name, validates the new row as a whole (see the
 * file comment), refuses changes of id, tenant_id, environment_id, created_at and
 * created_by, stamps updated_at = now() and updated_by = meter.user_id on update
 * (created_by / updated_by when NULL on insert), and invalidates the meter caches of
 * every backend on every change.
 */
PG_FUNCTION_INFO_V1(meter_validate_meter);
Datum
meter_validate_meter(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	Relation	rel;
	TupleDesc	desc;
	int			attnums[NUM_COLUMNS];
	HeapTuple	newtuple;
	int			cols[2];
	Datum		values[2];
	bool		nulls[2];
	int			ncols = 0;
	Oid			meters;
	bool		placement;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("meter.validate_meter() must be called as a trigger")));
	if (!TRIGGER_FIRED_BEFORE(trigdata->tg_event) || !TRIGGER_FIRED_FOR_ROW(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("meter.validate_meter() must be fired BEFORE ... FOR EACH ROW")));
	rel = trigdata->tg_relation;
	meters = catalog_meters_relid();
	/* On a Citus cluster it fires on the placements of meter.meters (a reference table). */
	placement = RelationGetRelid(rel) != meters;
	if (placement && placement_logical_of(RelationGetRelid(rel)) != meters)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("meter.validate_meter() guards table meter.meters only"),
				 errdetail("It was fired for table \"%s\".", RelationGetRelationName(rel))));

	/* Every change of a meter, deletes included, must reach every backend's meter cache:
	 * the caches listen for this node's meter.meters, whatever placement changed. */
	if (OidIsValid(meters))
		CacheInvalidateRelcacheByRelid(meters);
	if (placement)
		CacheInvalidateRelcache(rel);

	if (TRIGGER_FIRED_BY_DELETE(trigdata->tg_event))
		return PointerGetDatum(trigdata->tg_trigtuple);

	desc = RelationGetDescr(rel);
	find_columns(rel, attnums);

	if (TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event))
	{
		newtuple = trim_names(trigdata->tg_newtuple, desc, attnums);
		check_unchanged(trigdata->tg_trigtuple, newtuple, desc, attnums);
		validate_row(newtuple, desc, attnums);

		/*
		 * A placement stamps nothing: it runs on every node, each with its own clock and
		 * without the session's meter.user_id, and the copies would differ. On a Citus
		 * cluster the statement carries the stamps (the repository functions set
		 * updated_at = now() and updated_by, which Citus evaluates once, on the
		 * coordinator).
		 */
		if (placement)
			return PointerGetDatum(newtuple);
		cols[ncols] = attnums[COL_UPDATED_AT];
		values[ncols] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
		nulls[ncols++] = false;
		cols[ncols] = attnums[COL_UPDATED_BY];
		values[ncols] = user_datum(&nulls[ncols]);
		ncols++;
	}
	else
	{
		bool		isnull;

		newtuple = trim_names(trigdata->tg_trigtuple, desc, attnums);
		validate_row(newtuple, desc, attnums);
		check_not_null(newtuple, desc, attnums, COL_UPDATED_AT);
		if (placement)
			return PointerGetDatum(newtuple);	/* the column defaults stamped it, once */

		/* Explicit values are kept (imports, restores); NULL means "the current user". */
		(void) heap_getattr(newtuple, attnums[COL_CREATED_BY], desc, &isnull);
		if (isnull && scope_user() != NULL)
		{
			cols[ncols] = attnums[COL_CREATED_BY];
			values[ncols] = user_datum(&nulls[ncols]);
			ncols++;
		}
		(void) heap_getattr(newtuple, attnums[COL_UPDATED_BY], desc, &isnull);
		if (isnull && scope_user() != NULL)
		{
			cols[ncols] = attnums[COL_UPDATED_BY];
			values[ncols] = user_datum(&nulls[ncols]);
			ncols++;
		}
	}

	if (ncols > 0)
		newtuple = heap_modify_tuple_by_cols(newtuple, desc, ncols, cols, values, nulls);
	return PointerGetDatum(newtuple);
}
