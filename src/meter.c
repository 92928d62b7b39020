/*
 * meter.c — module entry point: registers the settings, the caches' invalidation hooks and
 * the statement-end hooks where writers compact.
 */
#include "postgres.h"

#include "fmgr.h"

#include "meter_cache.h"
#include "placement.h"
#include "scope.h"
#include "seal.h"
#include "settings.h"
#include "statement_end.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

void
_PG_init(void)
{
	settings_define();
	scope_define_settings();
	meter_cache_register();
	seal_register();
	statement_end_register();
	placement_register();
}
