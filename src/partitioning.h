/*
 * partitioning.h — a partitioned meter.events (SPEC §7, README "Partitioning and
 * retention"): meter.partition_events() (SQL, sql/install/57_partitioning.sql) swaps the
 * plain table for one partitioned by RANGE ("timestamp"); meter.event_ids, whose primary
 * key is the dedup across partitions, holds exactly the ids of the rows it holds. The C
 * side: the event triggers that keep meter.event_ids exact when partitions are created,
 * attached, detached or dropped, and meter.run_as_member() for the swap itself.
 */
#ifndef METER_PARTITIONING_H
#define METER_PARTITIONING_H

/* meter.events when it is a partitioned table, else InvalidOid. */
extern Oid	partitioned_events(void);

#endif							/* METER_PARTITIONING_H */
