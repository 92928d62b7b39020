/*
 * store.c — the engine's tables and the statements on them (see store.h). Every
 * statement is prepared once per backend and kept; keys are passed as arrays, so a
 * compaction is a handful of statements whatever its size. Rows found by a fetch are
 * updated or deleted by their ctid (no join the planner could turn into a scan).
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "store.h"

typedef struct StorePlan
{
	const char *sql;
	int			nargs;
	Oid			types[8];
	SPIPlanPtr	plan;
} StorePlan;

#define SCOPE_WHERE "tenant_id OPERATOR(pg_catalog.=) $1 AND environment_id OPERATOR(pg_catalog.=) $2" \
	" AND meter_id OPERATOR(pg_catalog.=) $3"

static StorePlan append_pending_plan = {
	"INSERT INTO meter.pending (tenant_id, environment_id, meter_id, first_day, last_day, entries, data)"
	" SELECT * FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2), pg_catalog.unnest($3), pg_catalog.unnest($4), pg_catalog.unnest($5), pg_catalog.unnest($6), pg_catalog.unnest($7))",
	7, {TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID, DATEARRAYOID, DATEARRAYOID, INT4ARRAYOID, BYTEAARRAYOID}
};

static StorePlan list_pending_plan = {
	"SELECT ctid, pg_catalog.octet_length(data) FROM meter.pending WHERE " SCOPE_WHERE
	" ORDER BY first_day, last_day",
	3, {TEXTOID, TEXTOID, TEXTOID}
};

static StorePlan take_pending_plan = {
	"DELETE FROM meter.pending WHERE ctid OPERATOR(pg_catalog.=) ANY ($1) RETURNING data",
	1, {TIDARRAYOID}
};

static StorePlan fetch_rollups_plan = {
	"SELECT r.ctid, r.external_customer_id, r.customer_id, r.day, r.data"
	" FROM ROWS FROM (pg_catalog.unnest($4), pg_catalog.unnest($5), pg_catalog.unnest($6)) AS k(x, c, d)"
	" CROSS JOIN LATERAL (SELECT r.ctid, r.* FROM meter.rollups r WHERE r." SCOPE_WHERE
	"  AND r.external_customer_id OPERATOR(pg_catalog.=) k.x AND r.customer_id OPERATOR(pg_catalog.=) k.c"
	"  AND r.day OPERATOR(pg_catalog.=) k.d) AS r",
	6, {TEXTOID, TEXTOID, TEXTOID, TEXTARRAYOID, TEXTARRAYOID, DATEARRAYOID}
};

static StorePlan fetch_totals_plan = {
	"SELECT r.ctid, NULL::text, NULL::text, r.day, r.data"
	" FROM pg_catalog.unnest($4) AS k(d)"
	" CROSS JOIN LATERAL (SELECT r.ctid, r.* FROM meter.rollup_totals r WHERE r." SCOPE_WHERE
	"  AND r.day OPERATOR(pg_catalog.=) k.d) AS r",
	4, {TEXTOID, TEXTOID, TEXTOID, DATEARRAYOID}
};

static StorePlan insert_rollups_plan = {
	"INSERT INTO meter.rollups (tenant_id, environment_id, meter_id, external_customer_id, customer_id, day, data)"
	" SELECT $1, $2, $3, k.x, k.c, k.d, k.data FROM ROWS FROM (pg_catalog.unnest($4), pg_catalog.unnest($5), pg_catalog.unnest($6), pg_catalog.unnest($7)) AS k(x, c, d, data)",
	7, {TEXTOID, TEXTOID, TEXTOID, TEXTARRAYOID, TEXTARRAYOID, DATEARRAYOID, BYTEAARRAYOID}
};

static StorePlan insert_totals_plan = {
	"INSERT INTO meter.rollup_totals (tenant_id, environment_id, meter_id, day, data)"
	" SELECT $1, $2, $3, k.d, k.data FROM ROWS FROM (pg_catalog.unnest($4), pg_catalog.unnest($5)) AS k(d, data)",
	5, {TEXTOID, TEXTOID, TEXTOID, DATEARRAYOID, BYTEAARRAYOID}
};

static StorePlan update_rollups_plan = {
	"UPDATE meter.rollups r SET data = k.data FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2)) AS k(t, data)"
	" WHERE r.ctid OPERATOR(pg_catalog.=) k.t",
	2, {TIDARRAYOID, BYTEAARRAYOID}
};

static StorePlan update_totals_plan = {
	"UPDATE meter.rollup_totals r SET data = k.data FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2)) AS k(t, data)"
	" WHERE r.ctid OPERATOR(pg_catalog.=) k.t",
	2, {TIDARRAYOID, BYTEAARRAYOID}
};

static StorePlan delete_rollups_plan = {
	"DELETE FROM meter.rollups WHERE ctid OPERATOR(pg_catalog.=) ANY ($1)",
	1, {TIDARRAYOID}
};

static StorePlan delete_totals_plan = {
	"DELETE FROM meter.rollup_totals WHERE ctid OPERATOR(pg_catalog.=) ANY ($1)",
	1, {TIDARRAYOID}
};

static StorePlan forget_plan = {
	"WITH p AS (DELETE FROM meter.pending WHERE " SCOPE_WHERE " AND last_day OPERATOR(pg_catalog.>=) $4),"
	" r AS (DELETE FROM meter.rollups WHERE " SCOPE_WHERE " AND day OPERATOR(pg_catalog.>=) $4)"
	" DELETE FROM meter.rollup_totals WHERE " SCOPE_WHERE " AND day OPERATOR(pg_catalog.>=) $4",
	4, {TEXTOID, TEXTOID, TEXTOID, DATEOID}
};

#define READ_SQL(extra) \
	"SELECT external_customer_id, customer_id, day, data FROM meter.rollups WHERE " SCOPE_WHERE \
	" AND day OPERATOR(pg_catalog.>=) $4 AND day OPERATOR(pg_catalog.<=) $5" extra

static StorePlan read_all_plan = {READ_SQL(""), 5, {TEXTOID, TEXTOID, TEXTOID, DATEOID, DATEOID}};
static StorePlan read_external_plan = {
	READ_SQL(" AND external_customer_id OPERATOR(pg_catalog.=) $6"),
	6, {TEXTOID, TEXTOID, TEXTOID, DATEOID, DATEOID, TEXTOID}
};
static StorePlan read_customer_plan = {
	READ_SQL(" AND customer_id OPERATOR(pg_catalog.=) $6 AND customer_id OPERATOR(pg_catalog.<>) ''"),
	6, {TEXTOID, TEXTOID, TEXTOID, DATEOID, DATEOID, TEXTOID}
};
static StorePlan read_empty_customer_plan = {
	READ_SQL(" AND customer_id OPERATOR(pg_catalog.=) ''"),
	5, {TEXTOID, TEXTOID, TEXTOID, DATEOID, DATEOID}
};
static StorePlan read_both_plan = {
	READ_SQL(" AND external_customer_id OPERATOR(pg_catalog.=) $6 AND customer_id OPERATOR(pg_catalog.=) $7"),
	7, {TEXTOID, TEXTOID, TEXTOID, DATEOID, DATEOID, TEXTOID, TEXTOID}
};
static StorePlan read_totals_plan = {
	"SELECT NULL::text, NULL::text, day, data FROM meter.rollup_totals WHERE " SCOPE_WHERE
	" AND day OPERATOR(pg_catalog.>=) $4 AND day OPERATOR(pg_catalog.<=) $5",
	5, {TEXTOID, TEXTOID, TEXTOID, DATEOID, DATEOID}
};
static StorePlan read_pending_plan = {
	"SELECT NULL::text, NULL::text, first_day, data FROM meter.pending WHERE " SCOPE_WHERE
	" AND last_day OPERATOR(pg_catalog.>=) $4 AND first_day OPERATOR(pg_catalog.<=) $5",
	5, {TEXTOID, TEXTOID, TEXTOID, DATEOID, DATEOID}
};

/* ── Running statements ──────────────────────────────────────────────────────────── */

static SPIPlanPtr
prepared(StorePlan *p)
{
	if (p->plan == NULL)
	{
		SPIPlanPtr	plan = SPI_prepare(p->sql, p->nargs, p->types);

		if (plan == NULL)
			elog(ERROR, "meter: preparing \"%s\" failed: %s", p->sql,
				 SPI_result_code_string(SPI_result));
		SPI_keepplan(plan);
		p->plan = plan;
	}
	return p->plan;
}

/* Run a prepared statement (SPI connected), in snap when given, else in the current
 * snapshot (read_only: the caller's snapshot as it is). */
static void
run(StorePlan *p, Datum *args, const char *nulls, Snapshot snap, bool read_only, int expect)
{
	int			rc;

	if (snap != NULL)
		rc = SPI_execute_snapshot(prepared(p), args, nulls, snap, InvalidSnapshot,
								  read_only, false, 0);
	else
		rc = SPI_execute_plan(prepared(p), args, nulls, read_only, 0);
	if (rc != expect)
		elog(ERROR, "meter: \"%s\" failed: %s", p->sql, SPI_result_code_string(rc));
}

static void
connect(void)
{
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
}

static Datum
array_of(Datum *items, bool *nulls, int n, Oid elemtype)
{
	int16		typlen;
	bool		byval;
	char		align;
	int			dims[1] = {n};
	int			lbs[1] = {1};

	get_typlenbyvalalign(elemtype, &typlen, &byval, &align);
	return PointerGetDatum(construct_md_array(items, nulls, 1, dims, lbs, elemtype, typlen,
											  byval, align));
}

static Datum
text_datum(const char *s)
{
	return CStringGetTextDatum(s);
}

static void
scope_args(const MeterScope *m, Datum *args)
{
	args[0] = text_datum(m->tenant);
	args[1] = text_datum(m->environment);
	args[2] = text_datum(m->meter_id);
}

/* Hand SPI's result rows (ctid?, ext, customer, day, data) to visit, in the caller's
 * memory context. */
static void
visit_rows(MemoryContext caller, bool with_ctid, StoredRowVisitor visit, void *arg)
{
	TupleDesc	desc = SPI_tuptable->tupdesc;
	int			off = with_ctid ? 1 : 0;
	MemoryContext spi = MemoryContextSwitchTo(caller);

	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	t = SPI_tuptable->vals[i];
		StoredRow	row;
		bool		isnull;
		Datum		d;

		memset(&row, 0, sizeof(row));
		if (with_ctid)
		{
			row.ctid = *(ItemPointer) DatumGetPointer(SPI_getbinval(t, desc, 1, &isnull));
			row.exists = true;
		}
		d = SPI_getbinval(t, desc, off + 1, &isnull);
		row.external_customer = isnull ? NULL : TextDatumGetCString(d);
		d = SPI_getbinval(t, desc, off + 2, &isnull);
		row.customer = isnull ? NULL : TextDatumGetCString(d);
		row.day = DatumGetDateADT(SPI_getbinval(t, desc, off + 3, &isnull));
		row.data = DatumGetByteaPP(SPI_getbinval(t, desc, off + 4, &isnull));
		visit(&row, arg);
	}
	MemoryContextSwitchTo(spi);
}

/* ── Pending rows ────────────────────────────────────────────────────────────────── */

void
store_append_pending(PendingRow *rows, int n)
{
	Datum		cols[7][1];
	Datum	   *items[7];
	Datum		args[7];
	static const Oid elem[7] = {TEXTOID, TEXTOID, TEXTOID, DATEOID, DATEOID, INT4OID, BYTEAOID};

	if (n == 0)
		return;
	connect();
	for (int c = 0; c < 7; c++)
		items[c] = palloc(sizeof(Datum) * n);
	for (int i = 0; i < n; i++)
	{
		items[0][i] = text_datum(rows[i].tenant);
		items[1][i] = text_datum(rows[i].environment);
		items[2][i] = text_datum(rows[i].meter_id);
		items[3][i] = DateADTGetDatum(rows[i].first_day);
		items[4][i] = DateADTGetDatum(rows[i].last_day);
		items[5][i] = Int32GetDatum(rows[i].entries);
		items[6][i] = PointerGetDatum(rows[i].data);
	}
	for (int c = 0; c < 7; c++)
		args[c] = array_of(items[c], NULL, n, elem[c]);
	(void) cols;
	run(&append_pending_plan, args, NULL, NULL, false, SPI_OK_INSERT);
	SPI_finish();
}

int
store_take_pending(const MeterScope *m, Snapshot snap, Size max_bytes,
				   StoredRowVisitor visit, void *arg)
{
	MemoryContext caller = CurrentMemoryContext;
	Datum		args[3];
	Datum	   *tids;
	Size		bytes = 0;
	int			n = 0;

	connect();
	scope_args(m, args);
	run(&list_pending_plan, args, NULL, snap, false, SPI_OK_SELECT);
	tids = palloc(sizeof(Datum) * (SPI_processed + 1));
	for (uint64 i = 0; i < SPI_processed && (n == 0 || bytes < max_bytes); i++)
	{
		bool		isnull;

		tids[n++] = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);
		bytes += DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull));
	}
	if (n > 0)
	{
		Datum		darg[1];
		MemoryContext spi;

		darg[0] = array_of(tids, NULL, n, TIDOID);
		run(&take_pending_plan, darg, NULL, snap, false, SPI_OK_DELETE_RETURNING);
		spi = MemoryContextSwitchTo(caller);
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			StoredRow	row;
			bool		isnull;

			memset(&row, 0, sizeof(row));
			row.data = DatumGetByteaPP(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
			visit(&row, arg);
		}
		MemoryContextSwitchTo(spi);
	}
	SPI_finish();
	return n;
}

/* ── Compacted rows ──────────────────────────────────────────────────────────────── */

void
store_fetch(const MeterScope *m, bool totals, StoredRow *keys, int n, Snapshot snap,
			StoredRowVisitor visit, void *arg)
{
	MemoryContext caller = CurrentMemoryContext;
	Datum		args[6];
	Datum	   *x = palloc(sizeof(Datum) * (n + 1));
	Datum	   *c = palloc(sizeof(Datum) * (n + 1));
	Datum	   *d = palloc(sizeof(Datum) * (n + 1));

	if (n == 0)
		return;
	for (int i = 0; i < n; i++)
	{
		if (!totals)
		{
			x[i] = text_datum(keys[i].external_customer);
			c[i] = text_datum(keys[i].customer);
		}
		d[i] = DateADTGetDatum(keys[i].day);
	}
	connect();
	scope_args(m, args);
	if (totals)
	{
		args[3] = array_of(d, NULL, n, DATEOID);
		run(&fetch_totals_plan, args, NULL, snap, false, SPI_OK_SELECT);
	}
	else
	{
		args[3] = array_of(x, NULL, n, TEXTOID);
		args[4] = array_of(c, NULL, n, TEXTOID);
		args[5] = array_of(d, NULL, n, DATEOID);
		run(&fetch_rollups_plan, args, NULL, snap, false, SPI_OK_SELECT);
	}
	visit_rows(caller, true, visit, arg);
	SPI_finish();
}

void
store_put(const MeterScope *m, bool totals, StoredRow *rows, int n, Snapshot snap)
{
	Datum	   *utid = palloc(sizeof(Datum) * (n + 1));
	Datum	   *udata = palloc(sizeof(Datum) * (n + 1));
	Datum	   *dtid = palloc(sizeof(Datum) * (n + 1));
	Datum	   *ix = palloc(sizeof(Datum) * (n + 1));
	Datum	   *ic = palloc(sizeof(Datum) * (n + 1));
	Datum	   *id = palloc(sizeof(Datum) * (n + 1));
	Datum	   *idata = palloc(sizeof(Datum) * (n + 1));
	int			nu = 0,
				nd = 0,
				ni = 0;

	for (int i = 0; i < n; i++)
	{
		StoredRow  *r = &rows[i];

		if (r->exists && r->data != NULL)
		{
			utid[nu] = PointerGetDatum(&r->ctid);
			udata[nu++] = PointerGetDatum(r->data);
		}
		else if (r->exists)
			dtid[nd++] = PointerGetDatum(&r->ctid);
		else if (r->data != NULL)
		{
			if (!totals)
			{
				ix[ni] = text_datum(r->external_customer);
				ic[ni] = text_datum(r->customer);
			}
			id[ni] = DateADTGetDatum(r->day);
			idata[ni++] = PointerGetDatum(r->data);
		}
	}
	connect();
	if (nu > 0)
	{
		Datum		args[2];

		args[0] = array_of(utid, NULL, nu, TIDOID);
		args[1] = array_of(udata, NULL, nu, BYTEAOID);
		run(totals ? &update_totals_plan : &update_rollups_plan, args, NULL, snap, false, SPI_OK_UPDATE);
	}
	if (nd > 0)
	{
		Datum		args[1];

		args[0] = array_of(dtid, NULL, nd, TIDOID);
		run(totals ? &delete_totals_plan : &delete_rollups_plan, args, NULL, snap, false, SPI_OK_DELETE);
	}
	if (ni > 0)
	{
		Datum		args[7];

		scope_args(m, args);
		if (totals)
		{
			args[3] = array_of(id, NULL, ni, DATEOID);
			args[4] = array_of(idata, NULL, ni, BYTEAOID);
			run(&insert_totals_plan, args, NULL, snap, false, SPI_OK_INSERT);
		}
		else
		{
			args[3] = array_of(ix, NULL, ni, TEXTOID);
			args[4] = array_of(ic, NULL, ni, TEXTOID);
			args[5] = array_of(id, NULL, ni, DATEOID);
			args[6] = array_of(idata, NULL, ni, BYTEAOID);
			run(&insert_rollups_plan, args, NULL, snap, false, SPI_OK_INSERT);
		}
	}
	SPI_finish();
}

void
store_forget(const MeterScope *m, DateADT from_day)
{
	Datum		args[4];

	connect();
	scope_args(m, args);
	args[3] = DateADTGetDatum(from_day);
	run(&forget_plan, args, NULL, NULL, false, SPI_OK_DELETE);
	SPI_finish();
}

/* ── Usage reads ─────────────────────────────────────────────────────────────────── */

void
store_read(const MeterScope *m, bool totals, const char *customer,
		   const char *external_customer, DateADT day_lo, DateADT day_hi,
		   StoredRowVisitor visit, void *arg)
{
	MemoryContext caller = CurrentMemoryContext;
	Datum		args[7];
	StorePlan	   *p;

	connect();
	scope_args(m, args);
	args[3] = DateADTGetDatum(day_lo);
	args[4] = DateADTGetDatum(day_hi);
	if (totals)
		p = &read_totals_plan;
	else if (customer != NULL && external_customer != NULL)
	{
		p = &read_both_plan;
		args[5] = text_datum(external_customer);
		args[6] = text_datum(customer);
	}
	else if (external_customer != NULL)
	{
		p = &read_external_plan;
		args[5] = text_datum(external_customer);
	}
	else if (customer != NULL && customer[0] == '\0')
		p = &read_empty_customer_plan;
	else if (customer != NULL)
	{
		p = &read_customer_plan;
		args[5] = text_datum(customer);
	}
	else
		p = &read_all_plan;
	run(p, args, NULL, NULL, true, SPI_OK_SELECT);
	visit_rows(caller, false, visit, arg);
	SPI_finish();
}

void
store_read_pending(const MeterScope *m, DateADT day_lo, DateADT day_hi,
				   StoredRowVisitor visit, void *arg)
{
	MemoryContext caller = CurrentMemoryContext;
	Datum		args[5];

	connect();
	scope_args(m, args);
	args[3] = DateADTGetDatum(day_lo);
	args[4] = DateADTGetDatum(day_hi);
	run(&read_pending_plan, args, NULL, NULL, true, SPI_OK_SELECT);
	visit_rows(caller, false, visit, arg);
	SPI_finish();
}
