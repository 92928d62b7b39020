/*
 * usage.h — usage of a meter over windows (SPEC §8), from the stored partial states or
 * from the raw events, for one customer, all customers, or per group (customer,
 * dimension values, filter group). The engine of every meter.usage* function.
 */
#ifndef METER_USAGE_H
#define METER_USAGE_H

#include "pgtime.h"
#include "utils/hsearch.h"

#include "meter_def.h"
#include "partial.h"

typedef struct Usage Usage;

/*
 * The group of an event or stored entry (customer ids "" when none; dims as dims.h):
 * a number >= 0, or -1 to leave it out. Groups are numbered by the caller, densely.
 */
typedef int (*UsageGroupFn) (Usage *u, const char *customer, const char *external_customer,
							 const char *dims);

typedef struct UsageRequest
{
	MeterDef   *meter;
	TimestampTz start;
	TimestampTz end;
	const char *customer;		/* only this customer id; NULL: any */
	const char *external_customer;	/* only this external id; NULL: any */
	WindowSize	window_size;	/* WINDOW_NONE: one window */
	pg_tz	   *tz;
	bool		has_anchor;
	TimestampTz anchor;
	bool		from_events;	/* the raw events only (the *_from_events functions) */
	Oid			source;			/* from_events: one table; InvalidOid: the tracked ones */
	bool		by_customer;	/* groups need customer rows even without a customer filter */
	UsageGroupFn group_of;		/* NULL: one group */
	void	   *group_arg;
} UsageRequest;

struct Usage
{
	UsageRequest req;
	/* the windows, and their cells (bucket_size buckets of a bucketed MAX) */
	int			nwindows;
	TimestampTz *ws;
	TimestampTz *we;
	int			ncells;
	TimestampTz *cell_start;	/* ncells + 1: the last is end */
	int		   *cell_window;
	int			first_window;	/* 1 when window 0 is the hidden [t0, start) of reset NEVER */
	/* slots whose stored partial states cannot serve (cut by a cell boundary, or marked
	 * for recomputation): read from the raw events instead; sorted */
	int			nraw;
	TimestampTz *raw_slots;
	/* per group: a partial state per cell, allocated when first touched */
	int			ngroups;
	int			groups_cap;
	Partial  ***cells;
	MemoryContext cxt;
};

/* Compute: fills u->cells (and prior) for every group met. */
extern void usage_compute(Usage *u, const UsageRequest *req);

/* The values of group g, one per reported window (NEVER: running values), palloc'd;
 * the windows are u->ws[u->first_window + i], u->we[…]. */
extern void usage_values(Usage *u, int g, Numeric **values, bool **nulls);

/* Number of reported windows. */
#define usage_nwindows(u) ((u)->nwindows - (u)->first_window)

/* The time zone argument: NULL or '' means UTC; unknown is 22023. */
extern pg_tz *usage_timezone(FunctionCallInfo fcinfo, int argno);

#endif							/* METER_USAGE_H */
