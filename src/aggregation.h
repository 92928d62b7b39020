/*
 * aggregation.h — the meter.aggregation type (SPEC §2): {type, field, expression,
 * multiplier, bucket_size, group_by}. Stored as a small versioned varlena; read it with
 * aggregation_unpack. What an event gives an aggregation is event_value.h's concern.
 */
#ifndef METER_AGGREGATION_H
#define METER_AGGREGATION_H

#include "fmgr.h"
#include "utils/numeric.h"

/* Same order as the labels of meter.aggregation_type. */
typedef enum AggType
{
	AGG_COUNT = 0,
	AGG_SUM,
	AGG_AVG,
	AGG_COUNT_UNIQUE,
	AGG_MAX,
	AGG_MIN,
	AGG_LATEST,
	AGG_SUM_WITH_MULTIPLIER,
	AGG_WEIGHTED_SUM
} AggType;
#define AGG_TYPE_COUNT 9

/* Same order as the labels of meter.window_size; WINDOW_NONE when absent. */
typedef enum WindowSize
{
	WINDOW_NONE = -1,
	WINDOW_MINUTE = 0,
	WINDOW_15MIN,
	WINDOW_30MIN,
	WINDOW_HOUR,
	WINDOW_3HOUR,
	WINDOW_6HOUR,
	WINDOW_12HOUR,
	WINDOW_DAY,
	WINDOW_WEEK,
	WINDOW_MONTH
} WindowSize;
#define WINDOW_SIZE_COUNT 10

extern const char *const agg_type_names[AGG_TYPE_COUNT];
extern const char *const window_size_names[WINDOW_SIZE_COUNT];

/* Index of name in the table, or -1. */
extern int	agg_type_from_name(const char *name);
extern int	window_size_from_name(const char *name);

struct Expression;

typedef struct Aggregation
{
	AggType		type;
	char	   *field;			/* NULL when absent ("" counts as absent) */
	char	   *expression;		/* NULL when absent; as written, trimmed */
	struct Expression *compiled;	/* the expression compiled (expression.h), or NULL */
	Numeric		multiplier;		/* NULL unless SUM_WITH_MULTIPLIER */
	WindowSize	bucket_size;	/* WINDOW_NONE unless MAX or SUM with bucket_size */
	char	   *group_by;		/* NULL when absent; MAX with bucket_size only */
} Aggregation;

/* Decode the stored form, version 1 (0.1.0) or 2, detoasting as needed, and compile its
 * expression; everything palloc'd in CurrentMemoryContext. */
extern Aggregation *aggregation_unpack(struct varlena *stored);

#define PG_GETARG_AGGREGATION(n) aggregation_unpack(PG_GETARG_RAW_VARLENA_P(n))

/* Build the stored form of a valid aggregation (multiplier normalised). */
extern struct varlena *aggregation_pack(const Aggregation *agg);

/* Canonical JSON text, e.g. {"type":"SUM","field":"tokens"}. palloc'd. */
extern char *aggregation_to_cstring(const Aggregation *agg);

/* Enum values of meter.aggregation_type and meter.window_size (src/enums.c): the C index
 * of an enum datum (its label looked up), and the enum datum of a C index. */
extern int	agg_type_from_enum(Oid value);
extern int	window_size_from_enum(Oid value);
extern Oid	agg_type_enum(AggType type);
extern Oid	window_size_enum(WindowSize size);

#endif							/* METER_AGGREGATION_H */
