/*
 * statement_end.h — where a writer folds what it left pending (SPEC §7: bounded pending
 * work without a scheduler).
 *
 * The tracking trigger only appends pending rows and counts them (compaction_note); the
 * fold of the meters past meter.compaction_threshold runs when the outermost statement
 * that wrote them has ended, every trigger of it fired.
 */
#ifndef METER_STATEMENT_END_H
#define METER_STATEMENT_END_H

/* Install the executor and utility hooks (from _PG_init). */
extern void statement_end_register(void);

#endif							/* METER_STATEMENT_END_H */
