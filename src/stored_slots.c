/*
 * stored_slots.c — what the engine has stored, as rows: per (customer, slot, dimensions)
 * the combined partial state of the compacted and pending rows of a meter. meter.verify()
 * compares these with a recomputation from the raw events written in SQL alone, which
 * shares none of the engine's code; meter.skipped shows the events each meter could not
 * use.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#include "executor/spi.h"

#include "buckets.h"
#include "forward.h"
#include "meter_def.h"
#include "scope.h"
#include "slotset.h"
#include "store.h"

typedef struct Collect
{
	SlotSet    *set;
	const Aggregation *agg;
	bool		totals;
} Collect;

static void
collect_target(const SlotKey *key, bool mark, void *arg, Partial **into)
{
	Collect    *c = arg;
	SlotKey		k = *key;
	SlotEntry  *e;

	if (c->totals)
	{
		k.customer = SLOT_ALL_CUSTOMERS;
		k.external_customer = SLOT_ALL_CUSTOMERS;
	}
	e = slotset_entry(c->set, &k);
	if (mark)
		e->mark = true;
	into[0] = &e->partial;
}

static void
collect_visit(const StoredRow *row, void *arg)
{
	Collect    *c = arg;

	slotset_decode(row->data, c->agg, NULL, NULL, collect_target, NULL, c);
}

/* Every compacted row of a meter: the customer shards, or the all-customers rows. */
static void
read_rows(const MeterScope *scope, bool totals, Collect *c)
{
	int16		shards[STORE_SHARDS];
	int			n = 1;

	if (totals)
		shards[0] = STORE_ALL_CUSTOMERS;
	else
		n = store_shards_for(NULL, NULL, shards);
	store_read(scope, shards, n, DATEVAL_NOBEGIN, DATEVAL_NOEND, false, collect_visit, c);
}

static Datum
text_or_null(const char *s, bool *isnull)
{
	*isnull = (s == NULL);
	return s ? CStringGetTextDatum(s) : (Datum) 0;
}

static Datum
uniques_json(const Partial *p, bool *isnull)
{
	StringInfoData buf;
	int			n;
	UniqueEntry **u = partial_uniques_sorted(p, &n);

	*isnull = (n == 0);
	if (n == 0)
		return (Datum) 0;
	initStringInfo(&buf);
	appendStringInfoChar(&buf, '{');
	for (int i = 0; i < n; i++)
	{
		if (i > 0)
			appendStringInfoChar(&buf, ',');
		escape_json(&buf, u[i]->key);
		appendStringInfo(&buf, ":" INT64_FORMAT, u[i]->refs);
	}
	appendStringInfoChar(&buf, '}');
	return DirectFunctionCall1(jsonb_in, CStringGetDatum(buf.data));
}

/* Bucketed MAX: [[seconds from the slot's start to the bucket's, group, maximum], …]
 * (the bucket is the slot itself but for MINUTE buckets). */
static Datum
maxima_json(const Partial *p, TimestampTz slot, bool *isnull)
{
	StringInfoData buf;
	int			n;
	MaxEntry  **m = partial_maxima_sorted(p, &n);

	*isnull = (n == 0);
	if (n == 0)
		return (Datum) 0;
	initStringInfo(&buf);
	appendStringInfoChar(&buf, '[');
	for (int i = 0; i < n; i++)
	{
		if (i > 0)
			appendStringInfoChar(&buf, ',');
		appendStringInfo(&buf, "[" INT64_FORMAT ",", (m[i]->key.bucket - slot) / USECS_PER_SEC);
		if (m[i]->key.group == NULL)
			appendStringInfoString(&buf, "null");
		else
			escape_json(&buf, m[i]->key.group);
		appendStringInfo(&buf, ",%s]", DatumGetCString(DirectFunctionCall1(numeric_out,
																		   NumericGetDatum(m[i]->value.num))));
	}
	appendStringInfoChar(&buf, ']');
	return DirectFunctionCall1(jsonb_in, CStringGetDatum(buf.data));
}

/* meter.stored_slots, run where the tenant's rows are (forward.h). */
static Datum
stored_slots_here(FunctionCallInfo fcinfo)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	MeterDef   *m = meter_def_get(PG_ARGISNULL(0) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(0)));
	bool		totals = !PG_ARGISNULL(1) && PG_GETARG_BOOL(1);
	MeterScope	scope = {m->tenant, m->environment, m->id};
	Collect		c;
	SlotEntry **entries;
	int			n;

	InitMaterializedSRF(fcinfo, 0);
	c.set = slotset_create(CurrentMemoryContext);
	c.agg = m->agg;
	c.totals = totals;
	read_rows(&scope, totals, &c);
	store_read_pending(&scope, DATEVAL_NOBEGIN, DATEVAL_NOEND, totals, collect_visit, &c);
	entries = slotset_sorted(c.set, &n);
	for (int i = 0; i < n; i++)
	{
		const SlotEntry *e = entries[i];
		const Partial *p = &e->partial;
		Datum		v[13];
		bool		isnull[13] = {0};
		Numeric		sum = p->sum.num ? partial_sum(p) : NULL;

		v[0] = text_or_null(totals ? NULL : e->key.customer, &isnull[0]);
		v[1] = text_or_null(totals ? NULL : e->key.external_customer, &isnull[1]);
		v[2] = TimestampTzGetDatum(e->key.slot);
		v[3] = CStringGetTextDatum(e->key.dims);
		v[4] = BoolGetDatum(e->mark);
		v[5] = Int64GetDatum(p->events);
		v[6] = Int64GetDatum(p->n);
		v[7] = sum ? NumericGetDatum(sum) : (Datum) 0;
		isnull[7] = (sum == NULL);
		v[8] = p->sum_vt.num ? NumericGetDatum(p->sum_vt.num) : (Datum) 0;
		isnull[8] = (p->sum_vt.num == NULL);
		v[9] = p->best.num ? NumericGetDatum(p->best.num) : (Datum) 0;
		isnull[9] = (p->best.num == NULL);
		v[10] = TimestampTzGetDatum(p->best_ts);
		isnull[10] = (p->best.num == NULL || m->agg->type != AGG_LATEST);
		v[11] = uniques_json(p, &isnull[11]);
		v[12] = maxima_json(p, e->key.slot, &isnull[12]);
		if (partial_is_empty(p) && !e->mark)
			continue;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, v, isnull);
	}
	return (Datum) 0;
}

/*
 * meter.stored_slots(meter_id text, totals boolean) → TABLE(customer_id, external_customer_id,
 * slot, dims, marked, events, n, sum, sum_vt, best, best_at, uniques, maxima): the meter's
 * stored partial states (compacted + pending) per customer (or, totals, for all
 * customers: customer ids NULL), slot and dimensions. marked: a pending change asked for
 * the slot to be recomputed from the raw events (usage reads those raw events meanwhile).
 */
PG_FUNCTION_INFO_V1(meter_stored_slots);
Datum
meter_stored_slots(PG_FUNCTION_ARGS)
{
	return forward_run(fcinfo, stored_slots_here);
}

/* The meters of the current scope that are not deleted, by id. */
static char **
scope_meters(int *n)
{
	MemoryContext caller = CurrentMemoryContext;
	Datum		args[2];
	char	  **ids;

	args[0] = CStringGetTextDatum(scope_tenant());
	args[1] = CStringGetTextDatum(scope_environment());
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (store_exec(STORE_SCOPE_METERS, args, NULL, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "meter: listing meters failed");
	ids = MemoryContextAlloc(caller, sizeof(char *) * (SPI_processed + 1));
	for (uint64 i = 0; i < SPI_processed; i++)
		ids[i] = MemoryContextStrdup(caller, SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1));
	*n = (int) SPI_processed;
	SPI_finish();
	return ids;
}

/* Events written into sealed time, per meter, customer and slot, of the current scope. */
static void
sealed_skips(ReturnSetInfo *rsinfo)
{
	Datum		args[2];

	args[0] = CStringGetTextDatum(scope_tenant());
	args[1] = CStringGetTextDatum(scope_environment());
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (store_exec(STORE_SEALED_SKIPS, args, NULL, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "meter: reading the sealed skips failed");
	for (uint64 i = 0; i < SPI_processed; i++)
		tuplestore_puttuple(rsinfo->setResult, SPI_tuptable->vals[i]);
	SPI_finish();
}

/* meter.skips, run where the tenant's rows are (forward.h). */
static Datum
skips_here(FunctionCallInfo fcinfo)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int			nmeters;
	char	  **ids;

	InitMaterializedSRF(fcinfo, 0);
	ids = scope_meters(&nmeters);
	for (int mi = 0; mi < nmeters; mi++)
	{
		MeterDef   *m = meter_def_get(ids[mi]);
		MeterScope	scope = {m->tenant, m->environment, m->id};
		Collect		c;
		SlotEntry **entries;
		int			n;

		c.set = slotset_create(CurrentMemoryContext);
		c.agg = m->agg;
		c.totals = false;
		read_rows(&scope, false, &c);
		store_read_pending(&scope, DATEVAL_NOBEGIN, DATEVAL_NOEND, false, collect_visit, &c);
		entries = slotset_sorted(c.set, &n);
		for (int i = 0; i < n;)
		{
			const SlotKey *k = &entries[i]->key;
			int64		skipped = 0;
			Datum		v[6];
			bool		isnull[6] = {0};

			/* every dimension of one customer's slot together */
			for (; i < n && entries[i]->key.slot == k->slot &&
				 strcmp(entries[i]->key.customer, k->customer) == 0 &&
				 strcmp(entries[i]->key.external_customer, k->external_customer) == 0; i++)
				skipped += entries[i]->partial.events - entries[i]->partial.n;
			if (skipped == 0)
				continue;
			v[0] = CStringGetTextDatum(m->id);
			v[1] = CStringGetTextDatum(k->customer);
			v[2] = CStringGetTextDatum(k->external_customer);
			v[3] = TimestampTzGetDatum(k->slot);
			v[4] = Int64GetDatum(skipped);
			v[5] = CStringGetTextDatum("no usable value");
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, v, isnull);
		}
	}
	sealed_skips(rsinfo);
	return (Datum) 0;
}

/*
 * meter.skips() → TABLE(meter_id, customer_id, external_customer_id, bucket, skipped,
 * reason): per meter of the current scope, customer and 15-minute slot, the events the
 * meter matched but could not use (no usable value for its field or expression). The
 * view meter.skipped shows it.
 */
PG_FUNCTION_INFO_V1(meter_skips);
Datum
meter_skips(PG_FUNCTION_ARGS)
{
	return forward_run(fcinfo, skips_here);
}
