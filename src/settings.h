/*
 * settings.h — the engine's settings (meter.* GUCs other than the scope of scope.h).
 */
#ifndef METER_SETTINGS_H
#define METER_SETTINGS_H

/* meter.compaction_threshold: pending entries per meter and backend before compacting. */
extern int	meter_compaction_threshold;

/* meter.restoring: a restore is loading data that already holds its usage; the
 * triggers neither count events nor rebuild meters (superuser only). */
extern bool meter_restoring;

/* meter.compaction_batch_kb: pending kilobytes one compaction batch folds (a developer
 * setting, superuser only: tests make batches small to exercise several). */
extern int	meter_compaction_batch_kb;

extern void settings_define(void);

#endif							/* METER_SETTINGS_H */
