/*
 * track.h — the tracking trigger meter.track_usage() (SPEC §7), and counting a whole
 * table's rows in or out of usage with the same machinery.
 */
#ifndef METER_TRACK_H
#define METER_TRACK_H

/* Every row of a table (partitions included) counted in (sign +1) or out (-1): a
 * partition attached to or detached from a tracked table. */
extern void track_table_rows(Oid relid, int sign);

#endif							/* METER_TRACK_H */
