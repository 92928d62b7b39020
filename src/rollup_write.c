/*
 * rollup_write.c — write a batch's accumulators into meter.rollups and
 * meter.rollup_values.
 *
 * Each table gets one INSERT … ON CONFLICT DO UPDATE over arrays (one SPI call however
 * large the batch), rows in the caller's key order so that concurrent statements lock
 * rows in the same order. Marked buckets go to meter.refresh_rollups(), one call per
 * tenant and environment, inside that scope.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"

#include "rollup_entries.h"
#include "scope.h"

static SPIPlanPtr upsert_rollups_plan = NULL;
static SPIPlanPtr upsert_values_plan = NULL;
static SPIPlanPtr refresh_plan = NULL;

static const char *const upsert_rollups_sql =
"INSERT INTO meter.rollups AS r (tenant_id, environment_id, meter_id, customer_id,"
"   external_customer_id, bucket, events, n, sum, sum_vt, min, max, latest_at, latest_value)"
" SELECT * FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2), pg_catalog.unnest($3),"
"   pg_catalog.unnest($4), pg_catalog.unnest($5), pg_catalog.unnest($6), pg_catalog.unnest($7),"
"   pg_catalog.unnest($8), pg_catalog.unnest($9), pg_catalog.unnest($10), pg_catalog.unnest($11),"
"   pg_catalog.unnest($12), pg_catalog.unnest($13), pg_catalog.unnest($14))"
" ON CONFLICT (tenant_id, environment_id, meter_id, customer_id, external_customer_id, bucket)"
" DO UPDATE SET"
"  events = r.events OPERATOR(pg_catalog.+) excluded.events,"
"  n = r.n OPERATOR(pg_catalog.+) excluded.n,"
"  sum = CASE WHEN r.sum IS NULL THEN excluded.sum WHEN excluded.sum IS NULL THEN r.sum"
"        ELSE r.sum OPERATOR(pg_catalog.+) excluded.sum END,"
"  sum_vt = CASE WHEN r.sum_vt IS NULL THEN excluded.sum_vt WHEN excluded.sum_vt IS NULL"
"        THEN r.sum_vt ELSE r.sum_vt OPERATOR(pg_catalog.+) excluded.sum_vt END,"
"  min = LEAST(r.min, excluded.min),"
"  max = GREATEST(r.max, excluded.max),"
"  latest_at = CASE WHEN excluded.latest_value IS NOT NULL AND (r.latest_value IS NULL"
"        OR excluded.latest_at OPERATOR(pg_catalog.>) r.latest_at"
"        OR (excluded.latest_at OPERATOR(pg_catalog.=) r.latest_at"
"            AND excluded.latest_value OPERATOR(pg_catalog.>) r.latest_value))"
"        THEN excluded.latest_at ELSE r.latest_at END,"
"  latest_value = CASE WHEN excluded.latest_value IS NOT NULL AND (r.latest_value IS NULL"
"        OR excluded.latest_at OPERATOR(pg_catalog.>) r.latest_at"
"        OR (excluded.latest_at OPERATOR(pg_catalog.=) r.latest_at"
"            AND excluded.latest_value OPERATOR(pg_catalog.>) r.latest_value))"
"        THEN excluded.latest_value ELSE r.latest_value END";

static const char *const upsert_values_sql =
"INSERT INTO meter.rollup_values AS v (tenant_id, environment_id, meter_id, customer_id,"
"   external_customer_id, bucket, value, refs)"
" SELECT * FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2), pg_catalog.unnest($3),"
"   pg_catalog.unnest($4), pg_catalog.unnest($5), pg_catalog.unnest($6), pg_catalog.unnest($7),"
"   pg_catalog.unnest($8))"
" ON CONFLICT (tenant_id, environment_id, meter_id, customer_id, external_customer_id, bucket, value)"
" DO UPDATE SET refs = v.refs OPERATOR(pg_catalog.+) excluded.refs";

static const char *const refresh_sql =
"SELECT meter.refresh_rollups($1, $2, $3, $4)";

/* Columns of a batch being written: one C array per SQL array parameter. */
typedef struct Columns
{
	int			ncols;
	int			nrows;
	Datum	  **values;
	bool	  **nulls;
	const Oid  *types;
} Columns;

static void
columns_init(Columns *c, int ncols, const Oid *types, int nrows)
{
	c->ncols = ncols;
	c->nrows = 0;
	c->types = types;
	c->values = palloc(sizeof(Datum *) * ncols);
	c->nulls = palloc(sizeof(bool *) * ncols);
	for (int i = 0; i < ncols; i++)
	{
		c->values[i] = palloc(sizeof(Datum) * Max(nrows, 1));
		c->nulls[i] = palloc0(sizeof(bool) * Max(nrows, 1));
	}
}

static void
columns_set(Columns *c, int col, Datum value, bool isnull)
{
	c->values[col][c->nrows] = value;
	c->nulls[col][c->nrows] = isnull;
}

static void
columns_set_numeric(Columns *c, int col, Numeric v)
{
	columns_set(c, col, v ? NumericGetDatum(v) : (Datum) 0, v == NULL);
}

static Datum *
columns_arrays(Columns *c)
{
	Datum	   *args = palloc(sizeof(Datum) * c->ncols);

	for (int i = 0; i < c->ncols; i++)
	{
		int16		typlen;
		bool		byval;
		char		align;
		int			dims[1] = {c->nrows};
		int			lbs[1] = {1};

		get_typlenbyvalalign(c->types[i], &typlen, &byval, &align);
		args[i] = PointerGetDatum(construct_md_array(c->values[i], c->nulls[i], 1, dims, lbs,
													 c->types[i], typlen, byval, align));
	}
	return args;
}

static void
execute(SPIPlanPtr *plan, const char *sql, Columns *c)
{
	Oid		   *argtypes = palloc(sizeof(Oid) * c->ncols);
	int			rc;

	if (*plan == NULL)
	{
		SPIPlanPtr	p;

		for (int i = 0; i < c->ncols; i++)
			argtypes[i] = get_array_type(c->types[i]);
		p = SPI_prepare(sql, c->ncols, argtypes);
		if (p == NULL)
			elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
		SPI_keepplan(p);
		*plan = p;
	}
	rc = SPI_execute_plan(*plan, columns_arrays(c), NULL, false, 0);
	if (rc < 0)
		elog(ERROR, "writing rollups failed: %s", SPI_result_code_string(rc));
}

static const Oid rollup_types[14] = {
	TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TIMESTAMPTZOID, INT8OID, INT8OID,
	NUMERICOID, NUMERICOID, NUMERICOID, NUMERICOID, TIMESTAMPTZOID, NUMERICOID
};

static void
set_key_columns(Columns *c, const RollupEntry *e)
{
	columns_set(c, 0, CStringGetTextDatum(e->tenant), false);
	columns_set(c, 1, CStringGetTextDatum(e->environment), false);
	columns_set(c, 2, CStringGetTextDatum(e->meter_id), false);
	columns_set(c, 3, CStringGetTextDatum(e->customer), false);
	columns_set(c, 4, CStringGetTextDatum(e->external_customer), false);
	columns_set(c, 5, TimestampTzGetDatum(e->bucket), false);
}

static void
write_increments(RollupEntry **entries, long count)
{
	Columns		c;

	columns_init(&c, 14, rollup_types, (int) count);
	for (long i = 0; i < count; i++)
	{
		RollupEntry *e = entries[i];

		if (e->recompute)
			continue;
		set_key_columns(&c, e);
		columns_set(&c, 6, Int64GetDatum(e->events), false);
		columns_set(&c, 7, Int64GetDatum(e->n), false);
		columns_set_numeric(&c, 8, e->sum);
		columns_set_numeric(&c, 9, e->sum_vt);
		columns_set_numeric(&c, 10, e->min);
		columns_set_numeric(&c, 11, e->max);
		columns_set(&c, 12, TimestampTzGetDatum(e->latest_at), e->latest_value == NULL);
		columns_set_numeric(&c, 13, e->latest_value);
		c.nrows++;
	}
	if (c.nrows > 0)
		execute(&upsert_rollups_plan, upsert_rollups_sql, &c);
}

static void
write_values(ValueEntry **entries, long count)
{
	static const Oid types[8] = {
		TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TIMESTAMPTZOID, TEXTOID, INT8OID
	};
	Columns		c;

	columns_init(&c, 8, types, (int) count);
	for (long i = 0; i < count; i++)
	{
		ValueEntry *e = entries[i];

		if (e->rollup->recompute)
			continue;
		set_key_columns(&c, e->rollup);
		columns_set(&c, 6, CStringGetTextDatum(e->value), false);
		columns_set(&c, 7, Int64GetDatum(e->refs), false);
		c.nrows++;
	}
	if (c.nrows > 0)
		execute(&upsert_values_plan, upsert_values_sql, &c);
}

/* Recompute marked buckets, one call per (tenant, environment), inside that scope. */
static void
write_recomputed(RollupEntry **entries, long count)
{
	static const Oid types[4] = {TEXTOID, TEXTOID, TEXTOID, TIMESTAMPTZOID};
	long		i = 0;

	while (i < count)
	{
		const char *tenant = NULL;
		const char *environment = NULL;
		Columns		c;
		int			level;

		columns_init(&c, 4, types, (int) (count - i));
		for (; i < count; i++)
		{
			RollupEntry *e = entries[i];

			if (!e->recompute)
				continue;
			if (tenant != NULL && (strcmp(tenant, e->tenant) != 0 ||
								   strcmp(environment, e->environment) != 0))
				break;
			tenant = e->tenant;
			environment = e->environment;
			columns_set(&c, 0, CStringGetTextDatum(e->meter_id), false);
			columns_set(&c, 1, CStringGetTextDatum(e->customer), false);
			columns_set(&c, 2, CStringGetTextDatum(e->external_customer), false);
			columns_set(&c, 3, TimestampTzGetDatum(e->bucket), false);
			c.nrows++;
		}
		if (c.nrows == 0)
			continue;
		level = scope_enter(tenant, environment);
		execute(&refresh_plan, refresh_sql, &c);
		scope_leave(level);
	}
}

void
rollup_write(RollupEntry **entries, long count, ValueEntry **values, long nvalues)
{
	write_increments(entries, count);
	write_values(values, nvalues);
	write_recomputed(entries, count);
}
