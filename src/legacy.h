/*
 * legacy.h — the 0.1.0 engine's write path, for a database whose installed schema is
 * still 0.1.0 while this library is loaded (see legacy.c for why and until when).
 */
#ifndef METER_LEGACY_H
#define METER_LEGACY_H

#include "fmgr.h"

/* True when the installed schema is 0.1.0's (schema meter has no table meter.pending). */
extern bool legacy_schema(void);

/* The 0.1.0 behaviour of the entry points of the same names (their callers dispatch). */
extern Datum legacy_track_usage(FunctionCallInfo fcinfo);
extern Datum legacy_on_meter_change(FunctionCallInfo fcinfo);
extern Datum legacy_rebuild_all(FunctionCallInfo fcinfo);

#endif							/* METER_LEGACY_H */
