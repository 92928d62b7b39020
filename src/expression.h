/*
 * expression.h — the expression language of an aggregation's "expression" key (SPEC §2):
 * a CEL subset over the top-level properties of an event, compiled once per meter
 * definition into a flat postfix program and evaluated in exact numeric.
 */
#ifndef METER_EXPRESSION_H
#define METER_EXPRESSION_H

#include "utils/jsonb.h"
#include "utils/numeric.h"

/* Limits of an expression's text (54000 beyond them). */
#define EXPRESSION_MAX_LENGTH	10000	/* characters */
#define EXPRESSION_MAX_DEPTH	100		/* nested (, function arguments, ?:, unary - and ! */

typedef struct Expression Expression;

/* What evaluating an expression on one event gave. Everything but EXPRESSION_VALUE
 * makes the meter skip the event. */
typedef enum ExpressionOutcome
{
	EXPRESSION_VALUE = 0,		/* *result is the value */
	EXPRESSION_NOT_A_NUMBER,	/* a property is present but not a usable number (JSON null
								 * included); *property names it */
	EXPRESSION_DIVISION_BY_ZERO,
	EXPRESSION_SQRT_NEGATIVE,	/* sqrt of a negative number */
	EXPRESSION_LOG_NOT_POSITIVE,	/* log of zero or of a negative number */
	EXPRESSION_POW_ZERO_NEGATIVE,	/* pow(0, negative) */
	EXPRESSION_POW_NEGATIVE_FRACTION,	/* pow(negative, non-integer) */
	EXPRESSION_OUT_OF_RANGE		/* a value beyond numeric's range */
} ExpressionOutcome;

/*
 * Parse, type-check and compile text[0..len) (in the server encoding). Any error is an
 * ERROR: 22023 "invalid expression" with the 1-based character position and what is
 * wrong in DETAIL and what to write instead in HINT; 54000 beyond the limits above.
 * The program lives in CurrentMemoryContext.
 */
extern Expression *expression_compile(const char *text, int len);

/*
 * Evaluate on an event's properties (a jsonb object; NULL or anything else has no
 * properties).
 * Never raises an error for any properties: a skip is an outcome. On EXPRESSION_VALUE,
 * *result is the value; it may point into properties (an expression that is one
 * property), else it is palloc'd in CurrentMemoryContext; never pfree or change it.
 * On EXPRESSION_NOT_A_NUMBER, *property is the property's name (owned by the program).
 * Properties are looked up lazily, once per distinct name and event: a property in a
 * branch that is not taken is never read. Not re-entrant for one program (its scratch
 * space is part of it).
 */
extern ExpressionOutcome expression_evaluate(const Expression *expr, Jsonb *properties,
											 Numeric *result, const char **property);

#endif							/* METER_EXPRESSION_H */
