/*
 * tenant_lock.h — orders event tracking against meter changes within one tenant.
 *
 * Tracking an event takes the tenant's lock in share mode; changing or rebuilding a
 * meter takes it in exclusive mode. So a meter change waits for in-flight ingestion of
 * its tenant to commit, and ingestion that starts meanwhile waits for the change, then
 * sees the new definition: rollups never mix an old definition with a rebuild.
 */
#ifndef METER_TENANT_LOCK_H
#define METER_TENANT_LOCK_H

/* Transaction-scoped; the share mode also pulls in pending meter-cache invalidations. */
extern void tenant_lock_share(const char *tenant);
extern void tenant_lock_exclusive(const char *tenant);

#endif							/* METER_TENANT_LOCK_H */
