/*
 * rollup_batch.h — the write side of tracking: a statement's events folded into one
 * accumulator per (tenant, environment, meter, customer, bucket), then written with one
 * upsert per table, rows in key order (so concurrent writers never deadlock).
 */
#ifndef METER_ROLLUP_BATCH_H
#define METER_ROLLUP_BATCH_H

#include "datatype/timestamp.h"
#include "utils/jsonb.h"

#include "meter_cache.h"

/* Rollup buckets are 15 minutes, aligned to UTC (every zone offset is a multiple). */
#define ROLLUP_BUCKET_USECS (15 * USECS_PER_MINUTE)

typedef struct RollupBatch RollupBatch;

/* Identity of the event as the rollups key it (customer ids: '' when NULL). */
typedef struct EventKey
{
	const char *tenant;
	const char *environment;
	const char *customer;
	const char *external_customer;
	TimestampTz timestamp;
} EventKey;

extern RollupBatch *rollup_batch_create(void);

/* Count one event for a meter it matched (inserted events). */
extern void rollup_batch_add(RollupBatch *batch, const CompiledMeter *meter,
							 const EventKey *event, Jsonb *properties);

/* Mark the event's bucket of a meter for recomputation from the raw events (updates,
 * deletes: the bucket's min, max or latest may be the event that went away). */
extern void rollup_batch_mark(RollupBatch *batch, const CompiledMeter *meter,
							  const EventKey *event);

/* Entries held; the trigger flushes early past a bound to keep memory flat. */
extern long rollup_batch_size(RollupBatch *batch);

/* Write everything held and start empty again. */
extern void rollup_batch_flush(RollupBatch *batch);

extern void rollup_batch_destroy(RollupBatch *batch);

extern TimestampTz rollup_bucket_of(TimestampTz ts);

#endif							/* METER_ROLLUP_BATCH_H */
