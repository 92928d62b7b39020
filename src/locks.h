/*
 * locks.h — the engine's heavyweight locks, all transaction-scoped.
 *
 * Tenant lock: tracking an event takes its tenant's lock in share mode; changing or
 * rebuilding a meter takes it in exclusive mode. So a meter change waits for in-flight
 * ingestion of its tenant to commit, and ingestion that starts meanwhile waits for the
 * change, then sees the new definition: rollups never mix an old definition with a
 * rebuild.
 *
 * Compaction lock: one per meter, held by the transaction that folds the meter's pending
 * rows, so that no two transactions ever fold the same rows.
 *
 * Both are local to a server. On a Citus cluster that is enough: they are taken on the node
 * that holds the tenant's shards, where every party runs — the tracking trigger of every
 * write of the tenant's events, compaction, and the recomputation of a changed meter
 * (the catalog trigger on that node's placement, and the functions forwarded there:
 * forward.h).
 */
#ifndef METER_LOCKS_H
#define METER_LOCKS_H

/* The share mode also pulls in pending meter-cache invalidations. */
extern void tenant_lock_share(const char *tenant);
extern void tenant_lock_exclusive(const char *tenant);

/* True when taken; with wait false, false at once when another transaction holds it. */
extern bool compaction_lock(const char *tenant, const char *environment,
							const char *meter_id, bool wait);

#endif							/* METER_LOCKS_H */
