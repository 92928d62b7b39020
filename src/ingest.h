/*
 * ingest.h — meter.ingest(jsonb): FlexPrice events in, one INSERT into meter.events out
 * (SPEC §7). Also the strict RFC 3339 reader it uses for event timestamps.
 */
#ifndef METER_INGEST_H
#define METER_INGEST_H

#include "datatype/timestamp.h"

/*
 * Read an RFC 3339 date-time ("2024-03-10T20:00:00Z", "2024-03-10T20:00:00.123+05:30";
 * 'T', 't' or a space between date and time; the zone is required). On success stores
 * the instant and returns NULL; otherwise returns a sentence saying what is wrong.
 */
extern const char *rfc3339_parse(const char *text, int len, TimestampTz *result);

#endif							/* METER_INGEST_H */
