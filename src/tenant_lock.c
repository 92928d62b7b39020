/*
 * tenant_lock.c — a transaction-scoped heavyweight lock per tenant (see tenant_lock.h).
 *
 * It is an advisory lock tag of its own kind (field4 = METER_LOCK_KIND), so it shows in
 * pg_locks as an advisory lock with objsubid 77 and never collides with the ones users
 * take through pg_advisory_lock (objsubid 1 or 2). Keyed by a 64-bit hash of the tenant
 * id: two tenants may share a lock (harmless: they only wait for each other).
 */
#include "postgres.h"

#include "common/hashfn.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "utils/inval.h"

#include "tenant_lock.h"

#define METER_LOCK_KIND 77

static void
tenant_lock(const char *tenant, LOCKMODE mode)
{
	LOCKTAG		tag;
	uint64		h = hash_bytes_extended((const unsigned char *) tenant,
										(int) strlen(tenant), 0x6d65746572);

	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, (uint32) (h >> 32), (uint32) h,
						 METER_LOCK_KIND);
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
