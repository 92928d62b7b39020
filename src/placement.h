/*
 * placement.h — which relations the engine's statements name (SPEC §9, STYLE rule 14).
 *
 * On one server, and on a Citus coordinator before meter.distribute(), the engine works
 * on its tables by their own names: meter.pending, meter.rollups, … (the default
 * placement). Once the tables are distributed, the tracking trigger fires on a shard of
 * an event table, on the node that holds the shard, inside a statement Citus sent
 * there; from there the engine may touch only that tenant's co-located shards on this
 * node (meter.pending, meter.rollups, meter.sealed_skips and every tracked table with
 * the same hash range) and the local placements of the reference tables (meter.meters,
 * meter.seals, meter.tracked_tables) — never a distributed table, which Citus would
 * refuse ("cannot execute a distributed query from a query on a shard") or run on
 * another node. A placement is that set of relations, resolved from Citus's metadata
 * (pg_dist_shard, pg_dist_partition, pg_dist_placement: on every node since Citus 11)
 * once per backend and kept until a relcache invalidation of one of them or of the
 * distributed tables (Citus sends those when shards move). No Citus symbol is linked:
 * Citus is detected at run time and only its catalogs are read, through SPI.
 *
 * The statements themselves live in store.c, written once with the tables as tokens and
 * prepared per placement. Work runs "in" a placement between placement_enter and
 * placement_leave; outside, the default placement applies.
 */
#ifndef METER_PLACEMENT_H
#define METER_PLACEMENT_H

#include "executor/spi.h"

/* The engine's tables (SPEC §9's layout: reference tables first). */
typedef enum EngineTable
{
	ENGINE_METERS,				/* reference */
	ENGINE_SEALS,				/* reference */
	ENGINE_TRACKED_TABLES,		/* reference */
	ENGINE_EVENTS,				/* distributed by tenant_id: the co-location group */
	ENGINE_PENDING,				/* co-located with meter.events */
	ENGINE_ROLLUPS,				/* co-located */
	ENGINE_SEALED_SKIPS,		/* co-located */
	ENGINE_NTABLES
} EngineTable;

/* Room for store.c's statements, prepared per placement. */
#define PLACEMENT_MAX_PLANS 32

typedef struct Placement
{
	int64		shardid;		/* meter.events' shard of the group; 0: the default */
	Oid			rel[ENGINE_NTABLES];	/* the relations (InvalidOid in the default) */
	char	   *name[ENGINE_NTABLES];	/* schema-qualified, quoted */
	int			ncolocated;		/* every table co-located with meter.events … */
	Oid		   *logical;		/* … by its own OID … */
	Oid		   *local;			/* … and its shard of this group */
	SPIPlanPtr	plans[PLACEMENT_MAX_PLANS];
} Placement;

/* Are the engine's tables distributed (Citus present, meter.events distributed)? */
extern bool placement_distributed(void);

/* Is this node the coordinator (or a single server)? */
extern bool placement_on_coordinator(void);

/* The placement a trigger on relation relid works in: the default placement on one
 * server; the shard's group on Citus; NULL when relid is a distributed table itself
 * (Citus runs the statement on its shards, whose triggers do the work). ERROR for a
 * table that is neither (a tracked table left undistributed). */
extern Placement *placement_of_relation(Oid relid);

/* The table a shard (or placement) belongs to, or relid itself when it is not one. */
extern Oid	placement_logical_of(Oid relid);

/* The placement of a tenant's rows when this node holds them (the default one when not
 * distributed); NULL when they live on another node. */
extern Placement *placement_of_tenant(const char *tenant);

/* The placement work runs in now (the default one outside placement_enter). */
extern Placement *placement_current(void);

/* Work in p until placement_leave(the returned previous placement). */
extern Placement *placement_enter(Placement *p);
extern void placement_leave(Placement *previous);

/* The relation that holds a (tracked) event table's rows in the placement: the table
 * itself in the default placement, its co-located shard otherwise (ERROR when it has
 * none: the table is not distributed with meter.events). */
extern Oid	placement_local_table(Placement *p, Oid table);

extern void placement_register(void);

#endif							/* METER_PLACEMENT_H */
