/*
 * usage.c — the engine of the usage functions (see usage.h).
 *
 * The windows of the request are cut into cells (the bucket_size buckets of a bucketed
 * MAX, else the windows themselves). A stored partial state covers one 15-minute slot:
 * it serves its cell when the slot lies inside the cell; the slots a cell boundary cuts
 * (an unaligned start, end or billing anchor, MINUTE windows, a zone offset off the
 * quarter hour) and the slots marked for recomputation are read from the raw events
 * instead, in the same snapshot. Compacted rows and pending rows are read together, so
 * usage is exact at commit whatever has not been folded yet; the cost grows with the
 * windows and the customer-days they span, not with the events.
 */
#include "postgres.h"

#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "buckets.h"
#include "dims.h"
#include "event_value.h"
#include "raw.h"
#include "slotset.h"
#include "store.h"
#include "usage.h"
#include "windows.h"

/* ── Windows and cells ───────────────────────────────────────────────────────────── */

typedef struct Bounds
{
	int			n;
	int			cap;
	TimestampTz *start;
	TimestampTz *end;
} Bounds;

static void
bounds_add(Bounds *b, TimestampTz s, TimestampTz e)
{
	if (b->n == b->cap)
	{
		b->cap = Max(16, b->cap * 2);
		b->start = b->start ? repalloc(b->start, sizeof(TimestampTz) * b->cap) : palloc(sizeof(TimestampTz) * b->cap);
		b->end = b->end ? repalloc(b->end, sizeof(TimestampTz) * b->cap) : palloc(sizeof(TimestampTz) * b->cap);
	}
	b->start[b->n] = s;
	b->end[b->n++] = e;
}

static void
windows_of(Bounds *b, TimestampTz s, TimestampTz e, WindowSize size, const UsageRequest *r)
{
	WindowIter	it;
	TimestampTz ws,
				we;

	windows_begin(&it, s, e, size, r->tz, r->has_anchor, r->anchor);
	while (windows_next(&it, &ws, &we))
		bounds_add(b, ws, we);
}

/* The earliest slot a reset-NEVER usage must start from: the meter's first day with
 * stored usage, or its first raw event. */
static TimestampTz
history_start(const UsageRequest *r)
{
	MeterDef   *m = r->meter;
	TimestampTz t0 = r->start;

	if (!r->from_events)
	{
		Datum		args[3];

		args[0] = CStringGetTextDatum(m->tenant);
		args[1] = CStringGetTextDatum(m->environment);
		args[2] = CStringGetTextDatum(m->id);
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		if (store_exec(STORE_FIRST_DAY, args, NULL, NULL, true, 1) == SPI_OK_SELECT && SPI_processed == 1)
		{
			bool		isnull;
			Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

			if (!isnull && !DATE_NOT_FINITE(DatumGetDateADT(d)))
				t0 = Min(t0, (TimestampTz) DatumGetDateADT(d) * USECS_PER_DAY);
		}
		SPI_finish();
	}
	else
	{
		RawScan		scan = {0};
		TimestampTz first;

		scan.tenant = m->tenant;
		scan.environment = m->environment;
		scan.event_name = m->event_name;
		scan.source = r->source;
		first = raw_first_before(&scan, r->start);
		if (first != DT_NOEND)
			t0 = Min(t0, slot_start(first));
	}
	return t0;
}

static void
build_cells(Usage *u)
{
	const UsageRequest *r = &u->req;
	Bounds		w = {0};
	Bounds		c = {0};
	bool		bucketed = AGG_BUCKETED(r->meter->agg);

	u->first_window = 0;
	if (r->meter->reset_never)
	{
		TimestampTz t0 = history_start(r);

		if (t0 < r->start)
		{
			bounds_add(&w, t0, r->start);
			u->first_window = 1;
		}
	}
	windows_of(&w, r->start, r->end, r->window_size, r);
	u->nwindows = w.n;
	u->ws = w.start;
	u->we = w.end;
	u->cell_window = palloc(sizeof(int) * Max(w.n, 16));
	if (!bucketed)
	{
		c = w;
		for (int i = 0; i < w.n; i++)
			u->cell_window[i] = i;
	}
	else
		for (int i = 0; i < w.n; i++)
		{
			int			before = c.n;

			windows_of(&c, w.start[i], w.end[i], r->meter->agg->bucket_size, r);
			u->cell_window = repalloc(u->cell_window, sizeof(int) * Max(c.cap, 16));
			for (int j = before; j < c.n; j++)
				u->cell_window[j] = i;
		}
	u->ncells = c.n;
	u->cell_start = palloc(sizeof(TimestampTz) * (c.n + 1));
	memcpy(u->cell_start, c.start, sizeof(TimestampTz) * c.n);
	u->cell_start[c.n] = r->end;
}

/* The cell holding t, or -1 outside [first cell, end). Entries come in time order
 * mostly: the last answer is tried first. */
static int
cell_of(Usage *u, TimestampTz t)
{
	int			lo = 0,
				hi = u->ncells - 1;

	if (u->ncells == 0 || t < u->cell_start[0] || t >= u->cell_start[u->ncells])
		return -1;
	if (u->last_cell < u->ncells && u->cell_start[u->last_cell] <= t &&
		t < u->cell_start[u->last_cell + 1])
		return u->last_cell;
	while (lo < hi)
	{
		int			mid = (lo + hi + 1) / 2;

		if (u->cell_start[mid] <= t)
			lo = mid;
		else
			hi = mid - 1;
	}
	u->last_cell = lo;
	return lo;
}

static TimestampTz
remap_to_cell(TimestampTz key, void *arg)
{
	Usage	   *u = arg;
	int			c = cell_of(u, key);

	return c < 0 ? key : u->cell_start[c];
}

/* ── Groups and their cells ──────────────────────────────────────────────────────── */

/* How many stored entries a cell's state will likely take, to size its distinct-value
 * set once: a window within a day takes its slots' entries (several of them from
 * pending rows; 4 at most, the values of a day's slots overlap), a longer one about a
 * day's worth per day. */
static int
cell_entries_hint(const Usage *u, int cell)
{
	TimestampTz span = u->cell_start[cell + 1] - u->cell_start[cell];

	if (span >= USECS_PER_DAY)
		return (int) Min(span / USECS_PER_DAY, 31);
	return (int) Min(span / SLOT_USECS, 4);
}

static Partial *
cell_partial(Usage *u, int g, int cell)
{
	if (g >= u->groups_cap)
	{
		int			cap = Max(g + 1, u->groups_cap * 2);

		u->cells = u->cells ? repalloc(u->cells, sizeof(Partial **) * cap) : palloc(sizeof(Partial **) * cap);
		for (int i = u->groups_cap; i < cap; i++)
			u->cells[i] = NULL;
		u->groups_cap = cap;
	}
	if (g >= u->ngroups)
		u->ngroups = g + 1;
	if (u->cells[g] == NULL)
		u->cells[g] = MemoryContextAllocZero(u->cxt, sizeof(Partial *) * Max(u->ncells, 1));
	if (u->cells[g][cell] == NULL)
	{
		u->cells[g][cell] = MemoryContextAlloc(u->cxt, sizeof(Partial));
		partial_init(u->cells[g][cell], u->cxt);
		u->cells[g][cell]->entries_hint = cell_entries_hint(u, cell);
	}
	return u->cells[g][cell];
}

static int
group_of(Usage *u, const char *customer, const char *external, const char *dims)
{
	if (u->req.customer != NULL && strcmp(customer, u->req.customer) != 0)
		return -1;
	if (u->req.external_customer != NULL && strcmp(external, u->req.external_customer) != 0)
		return -1;
	return u->req.group_of ? u->req.group_of(u, customer, external, dims) : 0;
}

/* ── Raw slots ───────────────────────────────────────────────────────────────────── */

static int
cmp_ts(const void *a, const void *b)
{
	TimestampTz x = *(const TimestampTz *) a;
	TimestampTz y = *(const TimestampTz *) b;

	return x < y ? -1 : x > y;
}

static bool
slot_is_raw(const Usage *u, TimestampTz slot)
{
	return u->nraw > 0 &&
		bsearch(&slot, u->raw_slots, u->nraw, sizeof(TimestampTz), cmp_ts) != NULL;
}

/* Slots that a cell boundary cuts, plus the given marked ones; sorted, distinct. */
static void
collect_raw_slots(Usage *u, TimestampTz *marked, int nmarked)
{
	TimestampTz *s = palloc(sizeof(TimestampTz) * (u->ncells + 1 + nmarked + 1));
	int			n = 0;

	for (int i = 0; i <= u->ncells; i++)
		if (!slot_aligned(u->cell_start[i]))
			s[n++] = slot_start(u->cell_start[i]);
	for (int i = 0; i < nmarked; i++)
		s[n++] = marked[i];
	qsort(s, n, sizeof(TimestampTz), cmp_ts);
	u->nraw = 0;
	for (int i = 0; i < n; i++)
		if (u->nraw == 0 || s[u->nraw - 1] != s[i])
			s[u->nraw++] = s[i];
	u->raw_slots = s;
}

/* ── Stored partial states ───────────────────────────────────────────────────────── */

typedef struct PendingRead
{
	Usage	   *u;
	SlotSet    *set;
	TimestampTz *marked;
	int			nmarked;
	int			cap;
} PendingRead;

/* Does a stored slot count for the request at all? */
static bool
slot_in_range(const Usage *u, TimestampTz slot)
{
	return u->ncells > 0 && slot + SLOT_USECS > u->cell_start[0] && slot < u->req.end;
}

static void
pending_target(const SlotKey *key, bool mark, void *arg, Partial **into)
{
	PendingRead *p = arg;
	SlotEntry  *e;

	if (!slot_in_range(p->u, key->slot) ||
		group_of(p->u, key->customer, key->external_customer, key->dims) < 0)
		return;
	e = slotset_entry(p->set, key);
	if (mark && !e->mark)
	{
		e->mark = true;
		if (p->nmarked == p->cap)
		{
			p->cap = Max(16, p->cap * 2);
			p->marked = p->marked ? repalloc(p->marked, sizeof(TimestampTz) * p->cap) : palloc(sizeof(TimestampTz) * p->cap);
		}
		p->marked[p->nmarked++] = key->slot;
	}
	into[0] = &e->partial;
}

static void
pending_visit(const StoredRow *row, void *arg)
{
	PendingRead *p = arg;

	slotset_decode(row->data, p->u->req.meter->agg, p->u->req.customer,
				   p->u->req.external_customer, pending_target, NULL, p);
}

static Partial *slot_cell(Usage *u, const SlotKey *key);
static void taint(Usage *u, int g, int cell);

/* A pending entry of an invertible aggregation (never a mark): straight into its cell,
 * which then cannot take stored counts. */
static void
pending_cell_target(const SlotKey *key, bool mark, void *arg, Partial **into)
{
	Usage	   *u = arg;

	if (mark)
		elog(ERROR, "meter: a pending entry of an invertible aggregation is marked");
	into[0] = slot_cell(u, key);
	if (into[0] != NULL && u->counts_apply)
		taint(u, group_of(u, key->customer, key->external_customer, key->dims),
			  cell_of(u, key->slot));
}

static void
pending_cell_visit(const StoredRow *row, void *arg)
{
	Usage	   *u = arg;

	slotset_decode_counted(row->data, u->req.meter->agg, u->req.customer,
						   u->req.external_customer, pending_cell_target, NULL, remap_to_cell,
						   u, false, u->cxt);
}

/* The cell partial a whole stored slot adds to, or NULL. */
static Partial *
slot_cell(Usage *u, const SlotKey *key)
{
	int			g,
				cell;

	if (!slot_in_range(u, key->slot) || slot_is_raw(u, key->slot))
		return NULL;
	g = group_of(u, key->customer, key->external_customer, key->dims);
	cell = cell_of(u, key->slot);
	if (g < 0 || cell < 0)
		return NULL;
	return cell_partial(u, g, cell);
}

static void
stored_target(const SlotKey *key, bool mark, void *arg, Partial **into)
{
	into[0] = slot_cell((Usage *) arg, key);
}

/* Is any slot in [s, e) read from the raw events? */
static bool
raw_within(const Usage *u, TimestampTz s, TimestampTz e)
{
	int			lo = 0,
				hi = u->nraw;

	/* the first raw slot at or after s must come at or after e */
	while (lo < hi)
	{
		int			mid = (lo + hi) / 2;

		if (u->raw_slots[mid] < s)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < u->nraw && u->raw_slots[lo] < e;
}

/* Does one cell hold the whole UTC day, none of whose slots is read raw? Then the
 * stored day totals serve it. */
static bool
day_is_whole(Usage *u, DateADT day)
{
	TimestampTz s = (TimestampTz) day * USECS_PER_DAY;
	TimestampTz e = s + USECS_PER_DAY;

	if (AGG_BUCKETED(u->req.meter->agg) || u->ncells == 0 ||
		s < u->cell_start[0] || e > u->req.end || cell_of(u, s) != cell_of(u, e - 1))
		return false;
	return !raw_within(u, s, e);
}

/* ── Stored counts (COUNT_UNIQUE) ────────────────────────────────────────────────── */

/*
 * Compacted rows of a COUNT_UNIQUE meter hold, per customer, the number of distinct
 * values of each UTC hour and of the day. A cell that is exactly such a period takes the
 * number instead of the values when nothing else adds to it: none of its slots read raw,
 * no pending entry in it, one stored customer per group in the row, no running total
 * (reset NEVER) and no grouping finer than the customer (counts span every dimension).
 */
static bool
counts_apply(const UsageRequest *r)
{
	return r->meter->agg->type == AGG_COUNT_UNIQUE && !r->meter->reset_never &&
		(r->group_of == NULL || r->by_customer);
}

static void
taint(Usage *u, int g, int cell)
{
	if (g >= u->tainted_cap)
	{
		int			cap = Max(g + 1, u->tainted_cap * 2);

		u->tainted = u->tainted ? repalloc(u->tainted, sizeof(bool *) * cap) : palloc(sizeof(bool *) * cap);
		for (int i = u->tainted_cap; i < cap; i++)
			u->tainted[i] = NULL;
		u->tainted_cap = cap;
	}
	if (u->tainted[g] == NULL)
		u->tainted[g] = palloc0(sizeof(bool) * Max(u->ncells, 1));
	u->tainted[g][cell] = true;
}

static bool
is_tainted(const Usage *u, int g, int cell)
{
	return g < u->tainted_cap && u->tainted[g] != NULL && u->tainted[g][cell];
}

/* Would count_target take the count of [key->slot, end)? Changes nothing; *g and *cell
 * get where it would go. */
static bool
count_fits(Usage *u, const SlotKey *key, TimestampTz end, int *g, int *cell)
{
	*cell = cell_of(u, key->slot);
	if (*cell < 0 || u->cell_start[*cell] != key->slot || u->cell_start[*cell + 1] != end ||
		raw_within(u, key->slot, end))
		return false;
	*g = group_of(u, key->customer, key->external_customer, key->dims);
	if (*g < 0 || is_tainted(u, *g, *cell))
		return false;
	return *g >= u->ngroups || u->cells[*g] == NULL || u->cells[*g][*cell] == NULL ||
		partial_is_empty(u->cells[*g][*cell]);
}

static bool
count_accepts(const SlotKey *key, TimestampTz end, int64 events, int64 n, int64 distinct,
			  void *arg)
{
	int			g,
				cell;

	return count_fits((Usage *) arg, key, end, &g, &cell);
}

static bool
count_target(const SlotKey *key, TimestampTz end, int64 events, int64 n, int64 distinct,
			 void *arg)
{
	Usage	   *u = arg;
	int			g,
				cell;

	if (!count_fits(u, key, end, &g, &cell))
		return false;
	partial_add_counted(cell_partial(u, g, cell), events, n, distinct);
	return true;
}

/* A row whose customers map more than one to a group cannot give counts (two customers'
 * distinct values do not add up). */
typedef struct PairCount
{
	Usage	   *u;
	const char *customer;
	const char *external;
	int			n;
} PairCount;

static void
count_pair(const char *customer, const char *external, int64 events, void *arg)
{
	PairCount  *c = arg;

	if ((c->customer == NULL || strcmp(customer, c->customer) == 0) &&
		(c->external == NULL || strcmp(external, c->external) == 0) &&
		group_of(c->u, customer, external, "") >= 0)
		c->n++;
}

static bool
row_gives_counts(Usage *u, bytea *head, const char *customer, const char *external)
{
	PairCount	c = {u, customer, external, 0};

	if (u->req.by_customer)
		return true;			/* a group per customer */
	slotset_customers(head, count_pair, &c);
	return c.n <= 1;
}

/*
 * A compacted row. When stored counts serve everything the request wants of it, only
 * the row's directory is read (the first TOAST chunk of a large row, not its distinct
 * values: the bulk of a COUNT_UNIQUE row, which grows with the data).
 */
static void
stored_visit(const StoredRow *row, void *arg)
{
	Usage	   *u = arg;
	const Aggregation *agg = u->req.meter->agg;
	bool		totals = row->shard == STORE_ALL_CUSTOMERS;
	const char *customer = totals ? NULL : u->req.customer;
	const char *external = totals ? NULL : u->req.external_customer;
	bool		days = day_is_whole(u, row->day);
	bool		counts = false;

	if (u->counts_apply)
	{
		bytea	   *head = store_row_head(row);

		counts = row_gives_counts(u, head, customer, external);
		if (counts && slotset_counts_cover(head, agg, customer, external, count_accepts, u))
		{
			slotset_decode_counts(head, agg, customer, external, count_target, u);
			return;
		}
	}
	slotset_decode_counted(store_row_data(row), agg, customer, external, stored_target,
						   counts ? count_target : NULL, days ? NULL : remap_to_cell, u, days,
						   u->cxt);
}

static bool
reads_totals(const UsageRequest *r)
{
	return r->customer == NULL && r->external_customer == NULL && !r->by_customer;
}

static void
read_stored(Usage *u)
{
	const UsageRequest *r = &u->req;
	MeterDef   *m = r->meter;
	MeterScope	scope = {m->tenant, m->environment, m->id};
	DateADT		lo = slot_day(u->cell_start[0]);
	DateADT		hi = slot_day(r->end - 1);
	PendingRead p = {u, NULL, NULL, 0, 0};
	SlotEntry **entries = NULL;
	int			n = 0;
	int16		shards[STORE_SHARDS];
	int			nshards;

	/* All customers together: the pending rows' totals, one entry per slot (and
	 * dimensions) each, not their customers' entries. */
	u->counts_apply = counts_apply(r);
	if (partial_invertible(m->agg))
	{
		/* No marks: the raw slots are known before the pending rows are read. */
		collect_raw_slots(u, NULL, 0);
		store_read_pending(&scope, lo, hi, reads_totals(r), pending_cell_visit, u);
	}
	else
	{
		p.set = slotset_create(CurrentMemoryContext);
		store_read_pending(&scope, lo, hi, reads_totals(r), pending_visit, &p);
		collect_raw_slots(u, p.marked, p.nmarked);
		entries = slotset_sorted(p.set, &n);
	}
	for (int i = 0; u->counts_apply && i < n; i++)
	{
		int			g,
					cell;

		if (!slot_in_range(u, entries[i]->key.slot))
			continue;
		g = group_of(u, entries[i]->key.customer, entries[i]->key.external_customer,
					 entries[i]->key.dims);
		cell = cell_of(u, entries[i]->key.slot);
		if (g >= 0 && cell >= 0)
			taint(u, g, cell);
	}
	if (reads_totals(r))
	{
		shards[0] = STORE_ALL_CUSTOMERS;
		nshards = 1;
	}
	else
		nshards = store_shards_for(r->customer, r->external_customer, shards);
	store_read(&scope, shards, nshards, lo, hi, true, stored_visit, u);
	for (int i = 0; i < n; i++)
	{
		Partial    *into = slot_cell(u, &entries[i]->key);

		if (into != NULL)
			partial_combine(into, &entries[i]->partial, m->agg, 1, remap_to_cell, u);
	}
}

/* ── Raw events ──────────────────────────────────────────────────────────────────── */

static void
raw_event(const EventRow *row, void *arg)
{
	Usage	   *u = arg;
	MeterDef   *m = u->req.meter;
	EventValue	ev;
	int			cell,
				g;
	MemoryContext old;

	if (m->filters->nkeys > 0 &&
		(row->properties == NULL || !filters_match(m->filters, row->properties)))
		return;
	cell = cell_of(u, row->timestamp);
	if (cell < 0)
		return;
	g = group_of(u, row->customer, row->external_customer,
				 dims_of_event(m->filters, row->properties));
	if (g < 0)
		return;
	event_value_fill(m->agg, row->properties, row->timestamp, u->cell_start[cell], &ev);
	old = MemoryContextSwitchTo(u->cxt);
	partial_add_event(cell_partial(u, g, cell), m->agg, 1, &ev);
	MemoryContextSwitchTo(old);
}

static void
read_raw(Usage *u)
{
	const UsageRequest *r = &u->req;
	RawScan		scan = {0};
	TimestampTz *lo,
			   *hi;
	int			n = 0;

	if (u->ncells == 0)
		return;
	scan.tenant = r->meter->tenant;
	scan.environment = r->meter->environment;
	scan.event_name = r->meter->event_name;
	scan.customer = r->customer;
	scan.external_customer = r->external_customer;
	scan.source = r->source;
	if (r->from_events)
	{
		lo = &u->cell_start[0];
		hi = (TimestampTz *) &r->end;
		n = 1;
	}
	else
	{
		lo = palloc(sizeof(TimestampTz) * (u->nraw + 1));
		hi = palloc(sizeof(TimestampTz) * (u->nraw + 1));
		for (int i = 0; i < u->nraw; i++)
		{
			TimestampTz s = Max(u->raw_slots[i], u->cell_start[0]);
			TimestampTz e = Min(u->raw_slots[i] + SLOT_USECS, r->end);

			if (s >= e)
				continue;
			if (n > 0 && hi[n - 1] == s)
				hi[n - 1] = e;
			else
			{
				lo[n] = s;
				hi[n++] = e;
			}
		}
	}
	raw_scan(&scan, lo, hi, n, NULL, raw_event, u);
}

void
usage_compute(Usage *u, const UsageRequest *req)
{
	memset(u, 0, sizeof(Usage));
	u->req = *req;
	u->cxt = CurrentMemoryContext;
	build_cells(u);
	if (!req->from_events)
		read_stored(u);
	read_raw(u);
}

int64
usage_group_events(const Usage *u, int g)
{
	int64		events = 0;

	if (g >= u->ngroups || u->cells[g] == NULL)
		return 0;
	for (int c = 0; c < u->ncells; c++)
		if (u->cells[g][c] != NULL)
			events += u->cells[g][c]->events;
	return events;
}

/* ── History: customers with events before the range ─────────────────────────────── */

typedef struct History
{
	Usage	   *u;
	UsageHistoryVisitor visit;
	void	   *arg;
	DateADT		first_day;		/* the day of the first cell: decoded slot by slot */
	SlotSet    *before;			/* slots of that day (and pending ones) before the start */
	/* slots a pending entry marked for recomputation (a MAX, MIN or LATEST event removed):
	 * their stored event counts are stale, so they are read from the raw events; sorted
	 * once the pending rows are read, and their days decoded slot by slot */
	TimestampTz *marked;
	int			nmarked;
	int			cap;
} History;

static void
history_customer(const char *customer, const char *external, int64 events, void *arg)
{
	History    *h = arg;

	h->visit(customer, external, events, h->arg);
}

static void
history_target(const SlotKey *key, bool mark, void *arg, Partial **into)
{
	History    *h = arg;
	SlotKey		k = *key;

	if (key->slot + SLOT_USECS > h->u->cell_start[0])
		return;
	if (mark)
	{
		if (h->nmarked == h->cap)
		{
			h->cap = Max(16, h->cap * 2);
			h->marked = h->marked ? repalloc(h->marked, sizeof(TimestampTz) * h->cap) : palloc(sizeof(TimestampTz) * h->cap);
		}
		h->marked[h->nmarked++] = key->slot;
	}
	k.dims = "";
	into[0] = &slotset_entry(h->before, &k)->partial;
}

static bool
history_marked(const History *h, TimestampTz slot)
{
	return h->nmarked > 0 &&
		bsearch(&slot, h->marked, h->nmarked, sizeof(TimestampTz), cmp_ts) != NULL;
}

/* Does a marked slot fall on this day? */
static bool
history_day_marked(const History *h, DateADT day)
{
	for (int i = 0; i < h->nmarked; i++)
		if (slot_day(h->marked[i]) == day)
			return true;
	return false;
}

static void
history_row(const StoredRow *row, void *arg)
{
	History    *h = arg;

	if (row->shard != STORE_ALL_CUSTOMERS && row->day < h->first_day &&
		!history_day_marked(h, row->day))
		slotset_customers(row->data, history_customer, h);
	else
		slotset_decode(row->data, h->u->req.meter->agg, NULL, NULL, history_target, NULL, h);
}

static void
history_event(const EventRow *row, void *arg)
{
	History    *h = arg;
	MeterDef   *m = h->u->req.meter;

	if (m->filters->nkeys > 0 &&
		(row->properties == NULL || !filters_match(m->filters, row->properties)))
		return;
	h->visit(row->customer, row->external_customer, 1, h->arg);
}

void
usage_history(Usage *u, UsageHistoryVisitor visit, void *arg)
{
	const UsageRequest *r = &u->req;
	History		h = {u, visit, arg, 0, NULL, NULL, 0, 0};
	TimestampTz lo = DT_NOBEGIN;

	if (u->ncells == 0)
		return;
	if (r->from_events)
	{
		RawScan		scan = {0};

		scan.tenant = r->meter->tenant;
		scan.environment = r->meter->environment;
		scan.event_name = r->meter->event_name;
		scan.source = r->source;
		raw_scan(&scan, &lo, &u->cell_start[0], 1, NULL, history_event, &h);
	}
	else
	{
		MeterScope	scope = {r->meter->tenant, r->meter->environment, r->meter->id};
		int16		shards[STORE_SHARDS];
		int			nshards = store_shards_for(NULL, NULL, shards);
		int			n,
					nmarked = 0;
		SlotEntry **before;

		h.first_day = slot_day(u->cell_start[0]);
		h.before = slotset_create(CurrentMemoryContext);
		/* the pending rows first: they tell which slots are marked */
		store_read_pending(&scope, DATEVAL_NOBEGIN, h.first_day, false, history_row, &h);
		qsort(h.marked, h.nmarked, sizeof(TimestampTz), cmp_ts);
		for (int i = 0; i < h.nmarked; i++)
			if (nmarked == 0 || h.marked[nmarked - 1] != h.marked[i])
				h.marked[nmarked++] = h.marked[i];
		h.nmarked = nmarked;
		store_read(&scope, shards, nshards, DATEVAL_NOBEGIN, h.first_day, false, history_row, &h);
		before = slotset_sorted(h.before, &n);
		for (int i = 0; i < n; i++)
			if (!history_marked(&h, before[i]->key.slot))
				visit(before[i]->key.customer, before[i]->key.external_customer,
					  before[i]->partial.events, arg);
		if (h.nmarked > 0)
		{
			/* the marked slots, from the raw events (adjacent ones in one range) */
			RawScan		scan = {0};
			TimestampTz *lo = palloc(sizeof(TimestampTz) * h.nmarked);
			TimestampTz *hi = palloc(sizeof(TimestampTz) * h.nmarked);
			int			nranges = 0;

			for (int i = 0; i < h.nmarked; i++)
			{
				if (nranges > 0 && hi[nranges - 1] == h.marked[i])
					hi[nranges - 1] = h.marked[i] + SLOT_USECS;
				else
				{
					lo[nranges] = h.marked[i];
					hi[nranges++] = h.marked[i] + SLOT_USECS;
				}
			}
			scan.tenant = r->meter->tenant;
			scan.environment = r->meter->environment;
			scan.event_name = r->meter->event_name;
			raw_scan(&scan, lo, hi, nranges, NULL, history_event, &h);
		}
		if (!slot_aligned(u->cell_start[0]))
		{
			/* the start cuts its slot: the events before it in that slot, from raw */
			RawScan		scan = {0};
			TimestampTz cut = slot_start(u->cell_start[0]);

			scan.tenant = r->meter->tenant;
			scan.environment = r->meter->environment;
			scan.event_name = r->meter->event_name;
			raw_scan(&scan, &cut, &u->cell_start[0], 1, NULL, history_event, &h);
		}
	}
}

/* ── Values ──────────────────────────────────────────────────────────────────────── */

void
usage_values(Usage *u, int g, Numeric **values, bool **nulls)
{
	const Aggregation *agg = u->req.meter->agg;
	int			nout = usage_nwindows(u);
	Partial		running;
	Partial		own;
	int			c = 0;

	*values = palloc(sizeof(Numeric) * Max(nout, 1));
	*nulls = palloc(sizeof(bool) * Max(nout, 1));
	partial_init(&running, CurrentMemoryContext);
	for (int w = 0; w < u->nwindows; w++)
	{
		Numeric		prior_sum = partial_sum(&running);
		bool		prior_values = running.n > 0;
		Numeric		v;
		bool		isnull;

		partial_init(&own, CurrentMemoryContext);
		if (c + 1 <= u->ncells && (c + 1 == u->ncells || u->cell_window[c + 1] != w) &&
			u->cell_window[c] == w)
		{
			/* one cell: the window's partial state is the cell's own */
			if (g < u->ngroups && u->cells[g] != NULL && u->cells[g][c] != NULL)
				own = *u->cells[g][c];
			c++;
		}
		else
			for (; c < u->ncells && u->cell_window[c] == w; c++)
				if (g < u->ngroups && u->cells[g] != NULL && u->cells[g][c] != NULL)
					partial_combine(&own, u->cells[g][c], agg, 1, NULL, NULL);
		if (!u->req.meter->reset_never)
			v = partial_final(&own, agg, u->ws[w], u->we[w], &isnull);
		else
		{
			partial_combine(&running, &own, agg, 1, NULL, NULL);
			if (agg->type != AGG_WEIGHTED_SUM)
				v = partial_final(&running, agg, u->ws[w], u->we[w], &isnull);
			else
			{
				/* events before the window count fully, the window's own weighted */
				v = partial_final_weighted_never(&own, prior_values ? prior_sum : NULL,
												 u->ws[w], u->we[w]);
				isnull = false;
			}
		}
		if (w >= u->first_window)
		{
			(*values)[w - u->first_window] = v;
			(*nulls)[w - u->first_window] = isnull;
		}
	}
}

pg_tz *
usage_timezone(FunctionCallInfo fcinfo, int argno)
{
	if (PG_ARGISNULL(argno))
		return windows_timezone("UTC");
	return windows_timezone(text_to_cstring(PG_GETARG_TEXT_PP(argno)));
}
