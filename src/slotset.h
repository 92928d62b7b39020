/*
 * slotset.h — a set of per-slot partial states and its stored form.
 *
 * An entry is the partial state (partial.h) of one meter for one (customer, 15-minute
 * slot, dimensions) — dimensions being the event's values of the meter's filter keys, so
 * that usage can be broken down by them — or a mark saying the slot of that customer must
 * be recomputed from the raw events (a removed event of a MAX, MIN or LATEST meter).
 * The tracking trigger appends sets as pending rows (one per statement and meter);
 * compaction folds them into compacted rows (one per meter, customer and UTC day, and one
 * per meter and day for all customers). Both are stored in the same versioned binary form.
 */
#ifndef METER_SLOTSET_H
#define METER_SLOTSET_H


#include "aggregation.h"
#include "partial.h"

typedef struct SlotKey
{
	const char *customer;		/* "" when the event had none */
	const char *external_customer;	/* "" when the event had none */
	TimestampTz slot;			/* start of the 15-minute UTC slot */
	const char *dims;			/* the meter's filter-key values, encoded (dims.h) */
} SlotKey;

/* The customer (and external customer) of entries summed over all customers: pending
 * totals and the all-customers rows. A constant, so that keys may point at it whatever
 * the lifetime of the value they were decoded from. */
extern const char SLOT_ALL_CUSTOMERS[];

/* Entries are hashed and ordered by interned numbers, not by their strings. */
typedef struct SlotHashKey
{
	int32		customer;		/* the (customer, external customer) pair's number */
	int32		dims;
	TimestampTz slot;
} SlotHashKey;

typedef struct SlotEntry
{
	SlotHashKey hkey;
	SlotKey		key;			/* its strings are the set's interned copies */
	bool		mark;			/* recompute this customer's slot from the raw events */
	Partial		partial;
} SlotEntry;

typedef struct SlotSet
{
	MemoryContext cxt;
	struct entrytab_hash *entries;
	struct interntab_hash *customers;	/* interned (customer, external customer) pairs */
	struct interntab_hash *dims;	/* interned dimension strings */
	struct Interned *last_customer; /* the pair met last (a decode meets it in runs) */
	struct Interned *last_dims;
	Size		bytes;			/* about how much memory the set holds */
} SlotSet;

extern SlotSet *slotset_create(MemoryContext cxt);
extern long slotset_count(const SlotSet *set);

/* The entry of a key, created empty when new. */
extern SlotEntry *slotset_entry(SlotSet *set, const SlotKey *key);

/* The entry of a key, or NULL. */
extern SlotEntry *slotset_find(SlotSet *set, const SlotKey *key);

/* The entries grouped by customer (in the order customers were first met), then by
 * slot and dimensions; palloc'd. */
extern SlotEntry **slotset_sorted(SlotSet *set, int *n);

/* The stored form of sorted entries of one aggregation. dim_keys name the dimensions;
 * tags are numbers of the writer's own, read back without decoding the entries. With
 * day_summaries (entries of one UTC day), a customer with several entries of one
 * dimension value also gets its day's total per dimension value, which a reader whose
 * window holds the whole day takes instead of the slots (not for a bucketed MAX). */
extern bytea *slotset_encode(SlotEntry **entries, int n, const Aggregation *agg,
							 int ndim_keys, const char *const *dim_keys,
							 const int64 *tags, int ntags, bool day_summaries);

/* The customers of a stored set and how many events their entries count, without
 * decoding the entries. */
typedef void (*SlotCustomerVisitor) (const char *customer, const char *external_customer,
									 int64 events, void *arg);
extern void slotset_customers(bytea *stored, SlotCustomerVisitor visit, void *arg);

/* The tags a stored set was written with; palloc'd. */
extern int64 *slotset_tags(bytea *stored, int *n);

/*
 * Read a stored set. Entries of other customers than customer / external_customer (when
 * not NULL) are skipped without being decoded. For each other entry, target(key, mark,
 * arg, into) writes the partial states to add the entry's partial state to into into[0]
 * and into[1] (NULL: none); the key's strings live as long as the decode's memory
 * (CurrentMemoryContext). remap as in partial_combine. A damaged value is an error
 * (XX001), never a crash.
 */
typedef void (*SlotTarget) (const SlotKey *key, bool mark, void *arg, Partial **into);
extern void slotset_decode(bytea *stored, const Aggregation *agg, const char *customer,
						   const char *external_customer, SlotTarget target,
						   BucketRemap remap, void *arg);

/* The same, reading each customer's day totals where it has them (the caller's window
 * holds the whole day): their key's slot is the day's first slot. */
extern void slotset_decode_days(bytea *stored, const Aggregation *agg, const char *customer,
								const char *external_customer, SlotTarget target, void *arg);

/*
 * The same, offering first each customer's stored counts (COUNT_UNIQUE, compacted rows):
 * counts(key, end, events, n, distinct, arg) for each UTC hour [key->slot, end) it has
 * entries in and for its whole day, key->dims being any of its dimension values; when
 * it returns true the number serves the period and the entries in it are not offered to
 * target. days: read day totals as slotset_decode_days does when no count was taken.
 * lasting (or NULL): a memory context that outlives the targets' states; the value's
 * distinct values are copied there once and go into the states without a copy each.
 */
typedef bool (*SlotCountTarget) (const SlotKey *key, TimestampTz end, int64 events, int64 n,
								 int64 distinct, void *arg);
extern void slotset_decode_counted(bytea *stored, const Aggregation *agg,
								   const char *customer, const char *external_customer,
								   SlotTarget target, SlotCountTarget counts,
								   BucketRemap remap, void *arg, bool days,
								   MemoryContext lasting);

/*
 * Counts alone, from the directory of a stored set: head is the value or a prefix of it
 * holding slotset_directory_size(head) bytes (the version, flags and that size need the
 * first 6; a slice of 2 kB usually holds it all). slotset_counts_cover tells whether
 * accepts (which must not change anything) takes counts covering every entry of every
 * matching customer; if so, slotset_decode_counts offers them to counts for real, with
 * the same answers.
 */
extern Size slotset_directory_size(bytea *head);
extern bool slotset_counts_cover(bytea *head, const Aggregation *agg, const char *customer,
								 const char *external_customer, SlotCountTarget accepts,
								 void *arg);
extern void slotset_decode_counts(bytea *head, const Aggregation *agg, const char *customer,
								  const char *external_customer, SlotCountTarget counts,
								  void *arg);

/* The dimension keys a stored set was written with; palloc'd. */
extern char **slotset_dim_keys(bytea *stored, int *n);

#endif							/* METER_SLOTSET_H */
