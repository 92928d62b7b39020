/*
 * enums.c — the labels of meter.aggregation_type and meter.window_size, and the mapping
 * between enum datums (pg_enum OIDs) and the C enums of aggregation.h. The C enums follow
 * the label order of sql/install/20_enums.sql.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_enum.h"
#include "catalog/pg_type.h"
#include "utils/syscache.h"

#include "aggregation.h"

const char *const agg_type_names[AGG_TYPE_COUNT] = {
	"COUNT", "SUM", "AVG", "COUNT_UNIQUE", "MAX", "MIN", "LATEST",
	"SUM_WITH_MULTIPLIER", "WEIGHTED_SUM"
};

const char *const window_size_names[WINDOW_SIZE_COUNT] = {
	"MINUTE", "15MIN", "30MIN", "HOUR", "3HOUR", "6HOUR", "12HOUR", "DAY", "WEEK", "MONTH"
};

static int
name_index(const char *const *names, int count, const char *name)
{
	int			i;

	for (i = 0; i < count; i++)
		if (strcmp(names[i], name) == 0)
			return i;
	return -1;
}

int
agg_type_from_name(const char *name)
{
	return name_index(agg_type_names, AGG_TYPE_COUNT, name);
}

int
window_size_from_name(const char *name)
{
	return name_index(window_size_names, WINDOW_SIZE_COUNT, name);
}

/* The label of an enum datum, looked up in the syscache (no catalog scan). */
static int
enum_index(Oid value, const char *const *names, int count)
{
	HeapTuple	tup = SearchSysCache1(ENUMOID, ObjectIdGetDatum(value));
	int			result;

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for enum value %u", value);
	result = name_index(names, count, NameStr(((Form_pg_enum) GETSTRUCT(tup))->enumlabel));
	ReleaseSysCache(tup);
	return result;
}

int
agg_type_from_enum(Oid value)
{
	return enum_index(value, agg_type_names, AGG_TYPE_COUNT);
}

int
window_size_from_enum(Oid value)
{
	return enum_index(value, window_size_names, WINDOW_SIZE_COUNT);
}

/* The enum datum meter.<typname>.<label>. Two syscache probes: cheap, and always
 * current (a cached OID would go stale if the extension were dropped and re-created). */
static Oid
enum_value(const char *typname, const char *label)
{
	Oid			nsp = get_namespace_oid("meter", false);
	Oid			typoid;
	Oid			value;

	typoid = GetSysCacheOid2(TYPENAMENSP, Anum_pg_type_oid,
							 CStringGetDatum(typname), ObjectIdGetDatum(nsp));
	if (!OidIsValid(typoid))
		elog(ERROR, "type meter.%s does not exist", typname);
	value = GetSysCacheOid2(ENUMTYPOIDNAME, Anum_pg_enum_oid,
							ObjectIdGetDatum(typoid), CStringGetDatum(label));
	if (!OidIsValid(value))
		elog(ERROR, "meter.%s has no label \"%s\"", typname, label);
	return value;
}

Oid
agg_type_enum(AggType type)
{
	if ((int) type < 0 || (int) type >= AGG_TYPE_COUNT)
		elog(ERROR, "invalid aggregation type %d", (int) type);
	return enum_value("aggregation_type", agg_type_names[type]);
}

Oid
window_size_enum(WindowSize size)
{
	if ((int) size < 0 || (int) size >= WINDOW_SIZE_COUNT)
		elog(ERROR, "invalid window size %d", (int) size);
	return enum_value("window_size", window_size_names[size]);
}
