/*
 * locks.c — the engine's transaction-scoped locks (see locks.h).
 *
 * They are advisory lock tags of their own kinds (field4 = 77 for tenants, 78 for
 * compaction), so they show in pg_locks as advisory locks with objsubid 77 or 78 and
 * never collide with the ones users take through pg_advisory_lock (objsubid 1 or 2).
 * Keyed by 64-bit hashes: two tenants (or meters) may share a lock, which is harmless
 * (they only wait for, or skip, each other).
 */
#include "postgres.h"

#include "common/hashfn.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "utils/inval.h"

#include "locks.h"

#define TENANT_LOCK_KIND 77
#define COMPACTION_LOCK_KIND 78

static void
tenant_lock(const char *tenant, LOCKMODE mode)
{
	LOCKTAG		tag;
	uint64		h = hash_bytes_extended((const unsigned char *) tenant,
										(int) strlen(tenant), 0x6d65746572);

	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, (uint32) (h >> 32), (uint32) h,
						 TENANT_LOCK_KIND);
	(void) LockAcquire(&tag, mode, false, false);
}

void
tenant_lock_share(const char *tenant)
{
	tenant_lock(tenant, ShareLock);
	/* A meter change we just waited for has committed: see it before matching. */
	AcceptInvalidationMessages();
}

void
tenant_lock_exclusive(const char *tenant)
{
	tenant_lock(tenant, ExclusiveLock);
}

bool
compaction_lock(const char *tenant, const char *environment, const char *meter_id, bool wait)
{
	LOCKTAG		tag;
	uint64		h = hash_bytes_extended((const unsigned char *) tenant, (int) strlen(tenant), 0x6d65746572);

	h = hash_bytes_extended((const unsigned char *) environment, (int) strlen(environment), h);
	h = hash_bytes_extended((const unsigned char *) meter_id, (int) strlen(meter_id), h);
	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, (uint32) (h >> 32), (uint32) h, COMPACTION_LOCK_KIND);
	return LockAcquire(&tag, ExclusiveLock, false, !wait) != LOCKACQUIRE_NOT_AVAIL;
}
