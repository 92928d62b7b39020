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
	int			last_cell;		/* cell_of's last answer */
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
	/* COUNT_UNIQUE: may cells take stored counts; per group, the cells a pending entry
	 * adds to (which cannot) */
	bool		counts_apply;
	bool	  **tainted;
	int			tainted_cap;
	MemoryContext cxt;
};

/* Compute: fills u->cells for every group met. */
extern void usage_compute(Usage *u, const UsageRequest *req);

/* Events counted in group g's cells (all windows, the hidden one of NEVER included). */
extern int64 usage_group_events(const Usage *u, int g);

/*
 * Events of each customer before the first cell (the range's start), for listing the
 * customers that have any before the end: from the stored rows' customer headers and the
 * pending rows (or, from_events, the raw events). visit is called per customer.
 */
typedef void (*UsageHistoryVisitor) (const char *customer, const char *external_customer,
									 int64 events, void *arg);
extern void usage_history(Usage *u, UsageHistoryVisitor visit, void *arg);

/* Arguments shared by the usage functions (usage_functions.c). */
extern const char *usage_text_arg(FunctionCallInfo fcinfo, int n);
extern void usage_window_args(FunctionCallInfo fcinfo, UsageRequest *r, int start_arg,
							  int size_arg, int tz_arg, int anchor_arg);
extern Oid	usage_source_arg(FunctionCallInfo fcinfo, int n);

/* The values of group g, one per reported window (NEVER: running values), palloc'd;
 * the windows are u->ws[u->first_window + i], u->we[…]. */
extern void usage_values(Usage *u, int g, Numeric **values, bool **nulls);

/* Number of reported windows. */
#define usage_nwindows(u) ((u)->nwindows - (u)->first_window)

/* The time zone argument: NULL or '' means UTC; unknown is 22023. */
extern pg_tz *usage_timezone(FunctionCallInfo fcinfo, int argno);

#endif							/* METER_USAGE_H */
