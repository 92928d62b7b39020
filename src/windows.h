/*
 * windows.h — usage windows (SPEC §8): the partition of [start, end) into windows of a
 * window size, aligned to the wall clock of an IANA time zone (DST-correct), with MONTH
 * windows starting at a billing anchor's local day of month and time of day.
 */
#ifndef METER_WINDOWS_H
#define METER_WINDOWS_H

#include "datatype/timestamp.h"
#include "pgtime.h"

#include "aggregation.h"

/* More windows than this in one call is an error (SQLSTATE 54000). */
#define WINDOWS_MAX 1000000

/* Iterator over the windows of one call; fill it with windows_begin. */
typedef struct WindowIter
{
	TimestampTz start;			/* the range [start, end) */
	TimestampTz end;
	WindowSize	size;			/* WINDOW_NONE: one window */
	pg_tz	   *tz;
	int			anchor_mday;	/* MONTH: local day of month of the anchor (1..31) */
	int64		anchor_time;	/* MONTH: its local time of day, microseconds */
	TimestampTz cur;			/* start of the next window to return */
	Timestamp	label;			/* DAY/WEEK: next local boundary (wall clock) */
	int			year;			/* MONTH: the month of the next boundary */
	int			month;
	int64		count;			/* windows returned so far */
} WindowIter;

/* The zone of an IANA name (or any name pg_tzset accepts); NULL or "" is UTC (SPEC §8,
 * FlexPrice's backward-compatible default); ERROR 22023 when unknown. */
extern pg_tz *windows_timezone(const char *name);

/* Validate the arguments and position it before the first window. ERROR 22023 when
 * end <= start or either is infinite, 54000 when there would be too many windows. */
extern void windows_begin(WindowIter *it, TimestampTz start, TimestampTz end,
						  WindowSize size, pg_tz *tz, bool has_anchor, TimestampTz anchor);

/* The next window [*ws, *we); false after the last one. */
extern bool windows_next(WindowIter *it, TimestampTz *ws, TimestampTz *we);

#endif							/* METER_WINDOWS_H */
