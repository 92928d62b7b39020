/*
 * accumulate.h — events folded into per-slot partial states, one slot set per meter, and
 * written as pending rows (one per meter): what the tracking trigger does with a
 * statement's rows, and what recomputation does with raw events.
 */
#ifndef METER_ACCUMULATE_H
#define METER_ACCUMULATE_H

#include "event_table.h"
#include "meter_cache.h"

/* Memory an accumulator may hold before it is written out early. */
#define ACCUMULATE_MEMORY (16 * 1024 * 1024)

typedef struct Accumulator Accumulator;

extern Accumulator *accumulator_create(void);

/*
 * Count an event for a meter it matched (sign +1), or take it out (sign -1). A meter
 * that cannot take an event out (MAX, MIN, LATEST) marks the slot for recomputation.
 * The meter's definition is copied on first use: the cache may change meanwhile.
 */
extern void accumulator_add(Accumulator *acc, const CompiledMeter *meter, const EventRow *row,
							int sign);

/* The same for a meter read with meter_def.h (recomputation). */
struct MeterDef;
extern void accumulator_add_def(Accumulator *acc, const struct MeterDef *meter,
								const EventRow *row, int sign);

/* Entries of a slot set (partial states read back from stored rows) into a meter's
 * pending entries, as they are. */
struct SlotSet;
extern void accumulator_put(Accumulator *acc, const struct MeterDef *meter, struct SlotSet *set);

/* An event of sealed time that a meter matched: stored, not counted, tallied as a
 * sealed skip (meter.skipped). */
extern void accumulator_add_late(Accumulator *acc, const CompiledMeter *meter, const EventRow *row);

/* True when the accumulator holds more than ACCUMULATE_MEMORY. */
extern bool accumulator_full(Accumulator *acc);

/* Write what is held as pending rows and start empty (the meters stay known). */
extern void accumulator_flush(Accumulator *acc);

extern void accumulator_destroy(Accumulator *acc);

#endif							/* METER_ACCUMULATE_H */
