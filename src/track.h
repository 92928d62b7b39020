/*
 * track.h — meter.track_usage(), the trigger that turns event rows into rollups (SPEC §7).
 */
#ifndef METER_TRACK_H
#define METER_TRACK_H

/* Bytes a statement's accumulators may hold before they are written out early. */
#define TRACK_BATCH_MEMORY (16 * 1024 * 1024)

#endif							/* METER_TRACK_H */
