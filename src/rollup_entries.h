/*
 * rollup_entries.h — the accumulators of a rollup batch, shared by rollup_batch.c (which
 * fills them) and rollup_write.c (which writes them). Private to those two files.
 */
#ifndef METER_ROLLUP_ENTRIES_H
#define METER_ROLLUP_ENTRIES_H

#include "datatype/timestamp.h"
#include "utils/numeric.h"

/* A key: tenant \0 environment \0 meter \0 customer \0 external \0 bucket[8] [value \0] */
typedef struct BatchKey
{
	const char *data;
	Size		len;
} BatchKey;

typedef struct RollupEntry
{
	BatchKey	key;
	const char *tenant;
	const char *environment;
	const char *meter_id;
	const char *customer;
	const char *external_customer;
	TimestampTz bucket;
	bool		recompute;
	int64		events;
	int64		n;
	Numeric		sum;
	Numeric		sum_vt;
	Numeric		min;
	Numeric		max;
	TimestampTz latest_at;
	Numeric		latest_value;	/* NULL: no usable value yet */
} RollupEntry;

typedef struct ValueEntry
{
	BatchKey	key;
	RollupEntry *rollup;
	const char *value;
	int64		refs;
} ValueEntry;

/* Write sorted accumulators: increments and distinct values by upsert, marked buckets
 * recomputed from the raw events. The caller is connected to SPI. */
extern void rollup_write(RollupEntry **entries, long count, ValueEntry **values, long nvalues);

#endif							/* METER_ROLLUP_ENTRIES_H */
