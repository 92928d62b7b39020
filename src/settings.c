/*
 * settings.c — the engine's settings (see settings.h).
 */
#include "postgres.h"

#include <limits.h>

#include "utils/guc.h"

#include "settings.h"

int			meter_compaction_threshold = 20000;
bool		meter_restoring = false;
int			meter_compaction_batch_kb = 32 * 1024;

void
settings_define(void)
{
	DefineCustomIntVariable("meter.compaction_threshold",
							"Pending entries per meter after which a writer compacts the meter.",
							"Each backend counts the entries its own writes append per meter; past "
							"this many it folds the meter's pending rows into the compacted rows.",
							&meter_compaction_threshold, 20000, 1, INT_MAX,
							PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomBoolVariable("meter.restoring",
							 "Loading a dump whose rollups already count its events.",
							 "While on, meter.track_usage() does not count rows and meter changes do "
							 "not rebuild usage: set it for pg_restore (PGOPTIONS='-c meter.restoring=on').",
							 &meter_restoring, false, PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("meter.compaction_batch_kb",
							"Pending kilobytes one compaction batch folds (developer setting).",
							"Bounds a compaction's memory; smaller batches rewrite the compacted rows "
							"they touch more often. Tests lower it to fold in several batches.",
							&meter_compaction_batch_kb, 32 * 1024, 1, 1024 * 1024,
							PGC_SUSET, GUC_UNIT_KB | GUC_NOT_IN_SAMPLE, NULL, NULL, NULL);
}
