/*
 * meter.c — module entry point: registers the settings and the caches' invalidation hooks.
 */
#include "postgres.h"

#include "fmgr.h"

#include "meter_cache.h"
#include "placement.h"
#include "scope.h"
#include "seal.h"
#include "settings.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

void
_PG_init(void)
{
	settings_define();
	scope_define_settings();
	meter_cache_register();
	seal_register();
	placement_register();
}
