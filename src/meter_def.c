/*
 * meter_def.c — reading one meter's definition (see meter_def.h).
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "meter_def.h"
#include "scope.h"
#include "store.h"


MeterDef *
meter_def_find(const char *id, const char *tenant, const char *environment, Snapshot snap)
{
	MemoryContext caller = CurrentMemoryContext;
	Datum		args[3];
	MeterDef   *m = NULL;
	int			rc;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	args[0] = CStringGetTextDatum(tenant);
	args[1] = CStringGetTextDatum(environment);
	args[2] = CStringGetTextDatum(id);
	rc = store_exec(STORE_FIND_METER, args, NULL, snap, true, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "meter: reading meter \"%s\" failed", id);
	if (SPI_processed == 1)
	{
		HeapTuple	t = SPI_tuptable->vals[0];
		TupleDesc	d = SPI_tuptable->tupdesc;
		bool		isnull;
		MemoryContext spi = MemoryContextSwitchTo(caller);

		m = palloc0(sizeof(MeterDef));
		m->id = SPI_getvalue(t, d, 1);
		m->tenant = SPI_getvalue(t, d, 2);
		m->environment = SPI_getvalue(t, d, 3);
		m->event_name = SPI_getvalue(t, d, 4);
		m->agg_stored = PG_DETOAST_DATUM_COPY(SPI_getbinval(t, d, 5, &isnull));
		m->filters_stored = PG_DETOAST_DATUM_COPY(SPI_getbinval(t, d, 6, &isnull));
		m->agg = aggregation_unpack(m->agg_stored);
		m->filters = filters_unpack(m->filters_stored);
		m->status = SPI_getvalue(t, d, 7);
		m->reset_never = DatumGetBool(SPI_getbinval(t, d, 8, &isnull));
		MemoryContextSwitchTo(spi);
	}
	SPI_finish();
	return m;
}

MeterDef *
meter_def_from_row(HeapTuple row, TupleDesc desc)
{
	MeterDef   *m = palloc0(sizeof(MeterDef));
	bool		isnull;

	m->id = SPI_getvalue(row, desc, SPI_fnumber(desc, "id"));
	m->tenant = SPI_getvalue(row, desc, SPI_fnumber(desc, "tenant_id"));
	m->environment = SPI_getvalue(row, desc, SPI_fnumber(desc, "environment_id"));
	m->event_name = SPI_getvalue(row, desc, SPI_fnumber(desc, "event_name"));
	m->agg_stored = PG_DETOAST_DATUM_COPY(SPI_getbinval(row, desc, SPI_fnumber(desc, "aggregation"), &isnull));
	m->filters_stored = PG_DETOAST_DATUM_COPY(SPI_getbinval(row, desc, SPI_fnumber(desc, "filters"), &isnull));
	m->agg = aggregation_unpack(m->agg_stored);
	m->filters = filters_unpack(m->filters_stored);
	m->status = SPI_getvalue(row, desc, SPI_fnumber(desc, "status"));
	m->reset_never = strcmp(SPI_getvalue(row, desc, SPI_fnumber(desc, "reset_usage")), "NEVER") == 0;
	return m;
}

MeterDef *
meter_def_get(const char *id)
{
	const char *tenant = scope_tenant();
	const char *environment = scope_environment();
	MeterDef   *m;

	if (id == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("id is required"),
				 errdetail("The meter id is NULL."),
				 errhint("Pass the id of a meter; meter.list_meters() shows the meters of the current scope.")));
	m = meter_def_find(id, tenant, environment, NULL);
	if (m == NULL || strcmp(m->status, "deleted") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("meter \"%s\" not found", id),
				 errdetail("No meter with this id exists in tenant \"%s\", environment \"%s\" (deleted meters count as not found).",
						   tenant, environment),
				 errhint("Check the id and the settings meter.tenant_id and meter.environment_id; meter.list_meters() shows the meters of the current scope.")));
	return m;
}

const char **
meter_def_dim_keys(const MeterDef *m)
{
	const char **keys = palloc(sizeof(char *) * (m->filters->nkeys + 1));

	for (int i = 0; i < m->filters->nkeys; i++)
		keys[i] = m->filters->keys[i].key;
	return keys;
}
