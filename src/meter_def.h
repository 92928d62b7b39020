/*
 * meter_def.h — one meter's definition read from meter.meters, for the engine's
 * maintenance and read paths (compaction, recomputation, usage, verify).
 */
#ifndef METER_METER_DEF_H
#define METER_METER_DEF_H

#include "access/htup.h"
#include "access/tupdesc.h"
#include "utils/snapshot.h"

#include "aggregation.h"
#include "filters.h"

typedef struct MeterDef
{
	char	   *id;
	char	   *tenant;
	char	   *environment;
	char	   *event_name;
	Aggregation *agg;
	Filters    *filters;
	struct varlena *agg_stored; /* the stored forms, for accumulate.c */
	struct varlena *filters_stored;
	char	   *status;			/* published, archived, deleted */
	bool		reset_never;	/* reset_usage = NEVER */
} MeterDef;

/* The meter with this id in (tenant, environment), read in snap (NULL: current), or
 * NULL when there is none (deleted ones included). */
extern MeterDef *meter_def_find(const char *id, const char *tenant, const char *environment,
								Snapshot snap);

/* The meter in a meter.meters row (a trigger's tuple). */
extern MeterDef *meter_def_from_row(HeapTuple row, TupleDesc desc);

/* The meter of the current scope (SPEC §5): ERROR 55000 without a tenant, P0002
 * `meter "…" not found` when unknown or deleted. */
extern MeterDef *meter_def_get(const char *id);

/* The filter keys of a meter, in order (the dimensions of its rollups). */
extern const char **meter_def_dim_keys(const MeterDef *m);

#endif							/* METER_METER_DEF_H */
