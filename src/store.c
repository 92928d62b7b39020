/*
 * store.c — the engine's tables and the statements on them (see store.h). Every
 * statement is prepared once per backend and placement (placement.h) and kept; keys are
 * passed as arrays, so a compaction is a handful of statements whatever its size. Rows
 * found by a fetch are updated or deleted by their ctid (no join the planner could turn
 * into a scan): in a placement of a Citus cluster the statements name the tenant's own
 * shards, so a ctid is always a row of the one relation the statement reads.
 */
#include "postgres.h"

#include "access/detoast.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "placement.h"
#include "slotset.h"
#include "store.h"

/*
 * Every statement on the engine's tables, written once with the tables as tokens
 * (@pending@, …) that name them in the placement the statement runs in (placement.h):
 * the tables themselves on one server, the tenant's shards and the local placements of
 * the reference tables on a Citus worker. Prepared once per placement and kept.
 */
typedef struct StoreSql
{
	const char *sql;
	int			nargs;
	Oid			types[8];
} StoreSql;

#define SCOPE_WHERE "tenant_id OPERATOR(pg_catalog.=) $1 AND environment_id OPERATOR(pg_catalog.=) $2" \
	" AND meter_id OPERATOR(pg_catalog.=) $3"
#define METER_SCOPE_WHERE "tenant_id OPERATOR(pg_catalog.=) $1 AND environment_id OPERATOR(pg_catalog.=) $2"

static const char *const table_tokens[ENGINE_NTABLES] = {
	[ENGINE_METERS] = "@meters@",
	[ENGINE_SEALS] = "@seals@",
	[ENGINE_TRACKED_TABLES] = "@tracked_tables@",
	[ENGINE_EVENTS] = "@events@",
	[ENGINE_PENDING] = "@pending@",
	[ENGINE_ROLLUPS] = "@rollups@",
	[ENGINE_SEALED_SKIPS] = "@sealed_skips@",
};

static const StoreSql statements[STORE_NSTATEMENTS] = {
	[STORE_APPEND_PENDING] = {
		"INSERT INTO @pending@ (tenant_id, environment_id, meter_id, first_day, last_day, entries, data, totals)"
		" SELECT * FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2), pg_catalog.unnest($3), pg_catalog.unnest($4), pg_catalog.unnest($5), pg_catalog.unnest($6), pg_catalog.unnest($7), pg_catalog.unnest($8))",
		8, {TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID, DATEARRAYOID, DATEARRAYOID, INT4ARRAYOID, BYTEAARRAYOID, BYTEAARRAYOID}
	},
	[STORE_SEALED_SKIP] = {
		"INSERT INTO @sealed_skips@ (tenant_id, environment_id, meter_id, customer_id,"
		" external_customer_id, slot, events) VALUES ($1, $2, $3, $4, $5, $6, $7)",
		7, {TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TIMESTAMPTZOID, INT8OID}
	},
	[STORE_LIST_PENDING] = {
		"SELECT ctid, pg_catalog.octet_length(data), entries"
		" FROM @pending@ WHERE " SCOPE_WHERE
		" ORDER BY first_day, last_day",
		3, {TEXTOID, TEXTOID, TEXTOID}
	},
	[STORE_TAKE_PENDING] = {
		"DELETE FROM @pending@ WHERE ctid OPERATOR(pg_catalog.=) ANY ($1) RETURNING data, totals",
		1, {TIDARRAYOID}
	},
	[STORE_FETCH] = {
		"SELECT r.ctid, r.shard, r.day, r.data"
		" FROM ROWS FROM (pg_catalog.unnest($4), pg_catalog.unnest($5)) AS k(s, d)"
		" CROSS JOIN LATERAL (SELECT r.ctid, r.* FROM @rollups@ r WHERE r." SCOPE_WHERE
		"  AND r.shard OPERATOR(pg_catalog.=) k.s AND r.day OPERATOR(pg_catalog.=) k.d) AS r",
		5, {TEXTOID, TEXTOID, TEXTOID, INT2ARRAYOID, DATEARRAYOID}
	},
	[STORE_INSERT] = {
		"INSERT INTO @rollups@ (tenant_id, environment_id, meter_id, shard, day, data)"
		" SELECT $1, $2, $3, k.s, k.d, k.data"
		" FROM ROWS FROM (pg_catalog.unnest($4), pg_catalog.unnest($5), pg_catalog.unnest($6)) AS k(s, d, data)",
		6, {TEXTOID, TEXTOID, TEXTOID, INT2ARRAYOID, DATEARRAYOID, BYTEAARRAYOID}
	},
	[STORE_UPDATE] = {
		"UPDATE @rollups@ r SET data = k.data"
		" FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2)) AS k(t, data)"
		" WHERE r.ctid OPERATOR(pg_catalog.=) k.t",
		2, {TIDARRAYOID, BYTEAARRAYOID}
	},
	[STORE_DELETE] = {
		"DELETE FROM @rollups@ WHERE ctid OPERATOR(pg_catalog.=) ANY ($1)",
		1, {TIDARRAYOID}
	},
	[STORE_FORGET] = {
		"WITH p AS (DELETE FROM @pending@ WHERE " SCOPE_WHERE " AND last_day OPERATOR(pg_catalog.>=) $4)"
		" DELETE FROM @rollups@ WHERE " SCOPE_WHERE " AND day OPERATOR(pg_catalog.>=) $4",
		4, {TEXTOID, TEXTOID, TEXTOID, DATEOID}
	},
	[STORE_READ] = {
		"SELECT shard, day, data FROM @rollups@ WHERE " SCOPE_WHERE
		" AND shard OPERATOR(pg_catalog.=) ANY ($4)"
		" AND day OPERATOR(pg_catalog.>=) $5 AND day OPERATOR(pg_catalog.<=) $6",
		6, {TEXTOID, TEXTOID, TEXTOID, INT2ARRAYOID, DATEOID, DATEOID}
	},
	[STORE_READ_PENDING] = {
		"SELECT NULL::pg_catalog.int2, first_day, data FROM @pending@ WHERE " SCOPE_WHERE
		" AND last_day OPERATOR(pg_catalog.>=) $4 AND first_day OPERATOR(pg_catalog.<=) $5",
		5, {TEXTOID, TEXTOID, TEXTOID, DATEOID, DATEOID}
	},
	[STORE_READ_PENDING_TOTALS] = {
		"SELECT NULL::pg_catalog.int2, first_day, totals FROM @pending@ WHERE " SCOPE_WHERE
		" AND last_day OPERATOR(pg_catalog.>=) $4 AND first_day OPERATOR(pg_catalog.<=) $5",
		5, {TEXTOID, TEXTOID, TEXTOID, DATEOID, DATEOID}
	},
	[STORE_FIRST_DAY] = {
		"SELECT LEAST((SELECT pg_catalog.min(day) FROM @rollups@ WHERE " SCOPE_WHERE
		"  AND shard OPERATOR(pg_catalog.=) (-1)::pg_catalog.int2),"
		" (SELECT pg_catalog.min(first_day) FROM @pending@ WHERE " SCOPE_WHERE "))",
		3, {TEXTOID, TEXTOID, TEXTOID}
	},
	[STORE_PENDING_METERS] = {
		"SELECT DISTINCT meter_id FROM @pending@ WHERE " METER_SCOPE_WHERE " ORDER BY 1",
		2, {TEXTOID, TEXTOID}
	},
	[STORE_COUNT_ROLLUPS] = {
		"SELECT pg_catalog.count(*) FROM @rollups@ WHERE " SCOPE_WHERE,
		3, {TEXTOID, TEXTOID, TEXTOID}
	},
	[STORE_SEALED_SKIPS] = {
		"SELECT meter_id, customer_id, external_customer_id, slot,"
		" pg_catalog.sum(events)::pg_catalog.int8, 'sealed period'"
		" FROM @sealed_skips@ WHERE " METER_SCOPE_WHERE " GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4",
		2, {TEXTOID, TEXTOID}
	},
	[STORE_LOAD_METERS] = {
		"SELECT * FROM @meters@ WHERE " METER_SCOPE_WHERE
		" AND event_name OPERATOR(pg_catalog.=) $3"
		" AND status OPERATOR(pg_catalog.=) 'published'::meter.status"
		" ORDER BY id COLLATE \"C\"",
		3, {TEXTOID, TEXTOID, TEXTOID}
	},
	[STORE_FIND_METER] = {
		"SELECT id, tenant_id, environment_id, event_name, aggregation, filters, status::pg_catalog.text,"
		" reset_usage OPERATOR(pg_catalog.=) 'NEVER'::meter.reset_usage"
		" FROM @meters@ WHERE id OPERATOR(pg_catalog.=) $3 AND " METER_SCOPE_WHERE,
		3, {TEXTOID, TEXTOID, TEXTOID}
	},
	[STORE_SCOPE_METERS] = {
		"SELECT id FROM @meters@ WHERE " METER_SCOPE_WHERE
		" AND status OPERATOR(pg_catalog.<>) 'deleted'::meter.status ORDER BY id COLLATE \"C\"",
		2, {TEXTOID, TEXTOID}
	},
	[STORE_PUBLISHED_METERS] = {
		"SELECT id FROM @meters@ WHERE " METER_SCOPE_WHERE
		" AND status OPERATOR(pg_catalog.=) 'published'::meter.status"
		" AND ($3 IS NULL OR id OPERATOR(pg_catalog.=) $3) ORDER BY id COLLATE \"C\"",
		3, {TEXTOID, TEXTOID, TEXTOID}
	},
	[STORE_PUBLISHED_SCOPES] = {
		"SELECT DISTINCT tenant_id, environment_id FROM @meters@"
		" WHERE status OPERATOR(pg_catalog.=) 'published'::meter.status ORDER BY 1, 2",
		0, {0}
	},
	[STORE_SEAL_OF] = {
		"SELECT pg_catalog.max(sealed_before) FROM @seals@ WHERE " METER_SCOPE_WHERE,
		2, {TEXTOID, TEXTOID}
	},
	[STORE_INSERT_SEAL] = {
		"INSERT INTO @seals@ (tenant_id, environment_id, sealed_before, sealed_by) VALUES ($1, $2, $3, $4)"
		" ON CONFLICT DO NOTHING",
		4, {TEXTOID, TEXTOID, TIMESTAMPTZOID, TEXTOID}
	},
	[STORE_REGISTERED] = {
		/* a partition of a tracked table is tracked with it */
		"SELECT 1 FROM @tracked_tables@ WHERE relid::pg_catalog.oid OPERATOR(pg_catalog.=) ANY"
		" (ARRAY[$1, pg_catalog.pg_partition_root($1)::pg_catalog.oid])",
		1, {OIDOID}
	},
	[STORE_REGISTERED_EXACTLY] = {
		"SELECT 1 FROM @tracked_tables@ WHERE relid::pg_catalog.oid OPERATOR(pg_catalog.=) $1",
		1, {OIDOID}
	},
	[STORE_TRACKED_TABLES] = {
		"SELECT relid::pg_catalog.oid FROM @tracked_tables@ ORDER BY 1",
		0, {0}
	},
	[STORE_UNREGISTER] = {
		"DELETE FROM @tracked_tables@ WHERE relid::pg_catalog.oid OPERATOR(pg_catalog.=) $1",
		1, {OIDOID}
	},
	[STORE_UNREGISTER_DROPPED] = {
		"DELETE FROM @tracked_tables@ t WHERE NOT meter.table_exists(t.relid::pg_catalog.oid)",
		0, {0}
	},
};

/* ── Running statements ──────────────────────────────────────────────────────────── */

/* The statement's SQL with the placement's relations in place of the tokens. */
static char *
expand(const char *sql, const Placement *p)
{
	StringInfoData out;
	const char *s = sql;

	initStringInfo(&out);
	while (*s)
	{
		const char *at = strchr(s, '@');
		int			t;

		if (at == NULL)
		{
			appendStringInfoString(&out, s);
			break;
		}
		appendBinaryStringInfo(&out, s, (int) (at - s));
		for (t = 0; t < ENGINE_NTABLES; t++)
			if (strncmp(at, table_tokens[t], strlen(table_tokens[t])) == 0)
				break;
		if (t == ENGINE_NTABLES)
			elog(ERROR, "meter: unknown table token in \"%s\"", sql);
		appendStringInfoString(&out, p->name[t]);
		s = at + strlen(table_tokens[t]);
	}
	return out.data;
}

/* The statement prepared for the current placement (SPI connected). */
static SPIPlanPtr
prepared(StoreStatement st)
{
	Placement  *p = placement_current();

	StaticAssertStmt(STORE_NSTATEMENTS <= PLACEMENT_MAX_PLANS, "room for every statement");
	if (p->plans[st] == NULL)
	{
		char	   *sql = expand(statements[st].sql, p);
		SPIPlanPtr	plan = SPI_prepare(sql, statements[st].nargs, (Oid *) statements[st].types);

		if (plan == NULL)
			elog(ERROR, "meter: preparing \"%s\" failed: %s", sql,
				 SPI_result_code_string(SPI_result));
		SPI_keepplan(plan);
		p->plans[st] = plan;
	}
	return p->plans[st];
}

int
store_exec(StoreStatement st, Datum *args, const char *nulls, Snapshot snap, bool read_only,
		   long count)
{
	if (snap != NULL)
		return SPI_execute_snapshot(prepared(st), args, nulls, snap, InvalidSnapshot,
									read_only, false, count);
	return SPI_execute_plan(prepared(st), args, nulls, read_only, count);
}

/* Run a statement (SPI connected), in snap when given, else in the current snapshot
 * (read_only: the caller's snapshot as it is); error unless it returns expect. */
static void
run(StoreStatement st, Datum *args, const char *nulls, Snapshot snap, bool read_only, int expect)
{
	int			rc = store_exec(st, args, nulls, snap, read_only, 0);

	if (rc != expect)
		elog(ERROR, "meter: \"%s\" failed: %s", statements[st].sql, SPI_result_code_string(rc));
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

/* Hand SPI's result rows (ctid?, shard, day, data) to visit, in the caller's memory
 * context. */
static void
visit_rows(MemoryContext caller, bool with_ctid, bool lazy, StoredRowVisitor visit, void *arg)
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
		row.shard = isnull ? STORE_ALL_CUSTOMERS : DatumGetInt16(d);
		row.day = DatumGetDateADT(SPI_getbinval(t, desc, off + 2, &isnull));
		d = SPI_getbinval(t, desc, off + 3, &isnull);
		row.raw = (struct varlena *) DatumGetPointer(d);
		row.data = lazy ? NULL : DatumGetByteaPP(d);
		visit(&row, arg);
	}
	MemoryContextSwitchTo(spi);
}

/* ── Shards ──────────────────────────────────────────────────────────────────────── */

int16
store_shard(const char *customer, const char *external_customer)
{
	const char *who = external_customer[0] != '\0' ? external_customer : customer;

	return (int16) (hash_bytes((const unsigned char *) who, (int) strlen(who)) % STORE_SHARDS);
}

int
store_shards_for(const char *customer, const char *external_customer, int16 *shards)
{
	if (external_customer != NULL && external_customer[0] != '\0')
		shards[0] = store_shard("", external_customer);
	else if (external_customer != NULL && customer != NULL)
		shards[0] = store_shard(customer, "");
	else
	{
		for (int i = 0; i < STORE_SHARDS; i++)
			shards[i] = (int16) i;
		return STORE_SHARDS;
	}
	return 1;
}

void
store_append_sealed_skip(const char *tenant, const char *environment, const char *meter_id,
						 const SlotKey *key, int64 events)
{
	Datum		args[7];

	args[0] = text_datum(tenant);
	args[1] = text_datum(environment);
	args[2] = text_datum(meter_id);
	args[3] = text_datum(key->customer);
	args[4] = text_datum(key->external_customer);
	args[5] = TimestampTzGetDatum(key->slot);
	args[6] = Int64GetDatum(events);
	connect();
	run(STORE_SEALED_SKIP, args, NULL, NULL, false, SPI_OK_INSERT);
	SPI_finish();
}

/* ── Pending rows ────────────────────────────────────────────────────────────────── */

void
store_append_pending(PendingRow *rows, int n)
{
	Datum	   *items[8];
	Datum		args[8];
	static const Oid elem[8] = {TEXTOID, TEXTOID, TEXTOID, DATEOID, DATEOID, INT4OID, BYTEAOID, BYTEAOID};

	if (n == 0)
		return;
	connect();
	for (int c = 0; c < 8; c++)
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
		items[7][i] = PointerGetDatum(rows[i].totals);
	}
	for (int c = 0; c < 8; c++)
		args[c] = array_of(items[c], NULL, n, elem[c]);
	run(STORE_APPEND_PENDING, args, NULL, NULL, false, SPI_OK_INSERT);
	SPI_finish();
}

int
store_take_pending(const MeterScope *m, Snapshot snap, Size max_bytes, int64 max_entries,
				   StoredRowVisitor visit, void *arg)
{
	MemoryContext caller = CurrentMemoryContext;
	Datum		args[3];
	Datum	   *tids;
	Size		bytes = 0;
	int64		entries = 0;
	int			n = 0;

	connect();
	scope_args(m, args);
	run(STORE_LIST_PENDING, args, NULL, snap, false, SPI_OK_SELECT);
	tids = palloc(sizeof(Datum) * (SPI_processed + 1));
	for (uint64 i = 0; i < SPI_processed && (n == 0 || (bytes < max_bytes && entries < max_entries)); i++)
	{
		bool		isnull;

		tids[n++] = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);
		bytes += DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull));
		entries += DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 3, &isnull));
	}
	if (n > 0)
	{
		Datum		darg[1];
		MemoryContext spi;

		darg[0] = array_of(tids, NULL, n, TIDOID);
		run(STORE_TAKE_PENDING, darg, NULL, snap, false, SPI_OK_DELETE_RETURNING);
		spi = MemoryContextSwitchTo(caller);
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			StoredRow	row;
			bool		isnull;

			memset(&row, 0, sizeof(row));
			row.data = DatumGetByteaPP(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
			row.totals = DatumGetByteaPP(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull));
			visit(&row, arg);
		}
		MemoryContextSwitchTo(spi);
	}
	SPI_finish();
	return n;
}

/* ── Compacted rows ──────────────────────────────────────────────────────────────── */

void
store_fetch(const MeterScope *m, StoredRow *keys, int n, Snapshot snap,
			StoredRowVisitor visit, void *arg)
{
	MemoryContext caller = CurrentMemoryContext;
	Datum		args[5];
	Datum	   *sh;
	Datum	   *d;

	if (n == 0)
		return;
	sh = palloc(sizeof(Datum) * n);
	d = palloc(sizeof(Datum) * n);
	for (int i = 0; i < n; i++)
	{
		sh[i] = Int16GetDatum(keys[i].shard);
		d[i] = DateADTGetDatum(keys[i].day);
	}
	connect();
	scope_args(m, args);
	args[3] = array_of(sh, NULL, n, INT2OID);
	args[4] = array_of(d, NULL, n, DATEOID);
	run(STORE_FETCH, args, NULL, snap, false, SPI_OK_SELECT);
	visit_rows(caller, true, false, visit, arg);
	SPI_finish();
}

void
store_put(const MeterScope *m, StoredRow *rows, int n, Snapshot snap)
{
	Datum	   *utid = palloc(sizeof(Datum) * (n + 1));
	Datum	   *udata = palloc(sizeof(Datum) * (n + 1));
	Datum	   *dtid = palloc(sizeof(Datum) * (n + 1));
	Datum	   *ish = palloc(sizeof(Datum) * (n + 1));
	Datum	   *iday = palloc(sizeof(Datum) * (n + 1));
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
			ish[ni] = Int16GetDatum(r->shard);
			iday[ni] = DateADTGetDatum(r->day);
			idata[ni++] = PointerGetDatum(r->data);
		}
	}
	connect();
	if (nu > 0)
	{
		Datum		args[2];

		args[0] = array_of(utid, NULL, nu, TIDOID);
		args[1] = array_of(udata, NULL, nu, BYTEAOID);
		run(STORE_UPDATE, args, NULL, snap, false, SPI_OK_UPDATE);
	}
	if (nd > 0)
	{
		Datum		args[1];

		args[0] = array_of(dtid, NULL, nd, TIDOID);
		run(STORE_DELETE, args, NULL, snap, false, SPI_OK_DELETE);
	}
	if (ni > 0)
	{
		Datum		args[6];

		scope_args(m, args);
		args[3] = array_of(ish, NULL, ni, INT2OID);
		args[4] = array_of(iday, NULL, ni, DATEOID);
		args[5] = array_of(idata, NULL, ni, BYTEAOID);
		run(STORE_INSERT, args, NULL, snap, false, SPI_OK_INSERT);
	}
	SPI_finish();
}

void
store_forget(const MeterScope *m, DateADT from_day, Snapshot snap)
{
	Datum		args[4];

	connect();
	scope_args(m, args);
	args[3] = DateADTGetDatum(from_day);
	run(STORE_FORGET, args, NULL, snap, false, SPI_OK_DELETE);
	SPI_finish();
}

/* ── Usage reads ─────────────────────────────────────────────────────────────────── */

void
store_read(const MeterScope *m, const int16 *shards, int nshards, DateADT day_lo,
		   DateADT day_hi, bool lazy, StoredRowVisitor visit, void *arg)
{
	MemoryContext caller = CurrentMemoryContext;
	Datum		args[6];
	Datum	   *sh = palloc(sizeof(Datum) * (nshards + 1));

	for (int i = 0; i < nshards; i++)
		sh[i] = Int16GetDatum(shards[i]);
	connect();
	scope_args(m, args);
	args[3] = array_of(sh, NULL, nshards, INT2OID);
	args[4] = DateADTGetDatum(day_lo);
	args[5] = DateADTGetDatum(day_hi);
	run(STORE_READ, args, NULL, NULL, true, SPI_OK_SELECT);
	visit_rows(caller, false, lazy, visit, arg);
	SPI_finish();
}

void
store_read_pending(const MeterScope *m, DateADT day_lo, DateADT day_hi, bool totals,
				   StoredRowVisitor visit, void *arg)
{
	MemoryContext caller = CurrentMemoryContext;
	Datum		args[5];

	connect();
	scope_args(m, args);
	args[3] = DateADTGetDatum(day_lo);
	args[4] = DateADTGetDatum(day_hi);
	run(totals ? STORE_READ_PENDING_TOTALS : STORE_READ_PENDING, args, NULL, NULL, true, SPI_OK_SELECT);
	visit_rows(caller, false, false, visit, arg);
	SPI_finish();
}

/* ── Reading a row's value lazily ────────────────────────────────────────────────── */

bytea *
store_row_data(const StoredRow *row)
{
	return row->data != NULL ? row->data : DatumGetByteaPP(PointerGetDatum(row->raw));
}

/* A TOASTed value's first chunk holds the directory of most rows. */
#define HEAD_SLICE 1996

bytea *
store_row_head(const StoredRow *row)
{
	bytea	   *head;
	Size		need;

	if (row->data != NULL || !VARATT_IS_EXTERNAL_ONDISK(row->raw))
		return store_row_data(row);
	head = (bytea *) detoast_attr_slice(row->raw, 0, HEAD_SLICE);
	need = slotset_directory_size(head);
	if (need > VARSIZE_ANY_EXHDR(head))
		head = (bytea *) detoast_attr_slice(row->raw, 0, (int32) need);
	return head;
}
