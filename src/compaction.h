/*
 * compaction.h — folding pending partial states into compacted rows (SPEC §7).
 *
 * Pending work stays bounded without a scheduler: each backend counts the entries its
 * own writes append per meter and, at the end of a statement that wrote to a meter,
 * compacts it once they pass meter.compaction_threshold; meter.compact() folds everything now. Compaction of a
 * meter holds a transaction-level lock of its own: a writer that finds the meter being
 * compacted by another transaction skips it (it never waits), and the next writer past
 * the threshold folds what is left.
 */
#ifndef METER_COMPACTION_H
#define METER_COMPACTION_H

#include "postgres.h"

/* Backend-local tally of entries appended per meter (the trigger's flushes). */
extern void compaction_note(const char *tenant, const char *environment,
							const char *meter_id, int64 entries);

/*
 * At the end of a statement (statement_end.c): compact the meters it wrote whose tally
 * passed the threshold, skipping busy ones.
 */
extern void compaction_run_due(void);

/*
 * Fold every pending row of one meter into its compacted rows, recomputing marked slots
 * from the raw events. wait: wait for a transaction compacting it instead of skipping.
 * Returns the pending rows folded, or -1 when skipped.
 */
extern int64 compaction_run(const char *tenant, const char *environment,
							const char *meter_id, bool wait);

/* Fold every meter of a scope that has pending rows (waiting for busy ones); returns the
 * pending rows folded. */
extern int64 compaction_run_scope(const char *tenant, const char *environment);

#endif							/* METER_COMPACTION_H */
