/*
 * ulid.h — k-sortable identifiers: a ULID (48-bit millisecond time + 80 random bits,
 * Crockford base32, 26 characters) behind a prefix, e.g. meter_01JD…
 */
#ifndef METER_ULID_H
#define METER_ULID_H

#define ULID_LEN 26

/* Write a new ULID (ULID_LEN characters and a NUL) into out. */
extern void ulid_generate(char *out);

/* palloc'd "prefix_ULID", or the bare ULID when prefix is empty. */
extern char *ulid_with_prefix(const char *prefix);

#endif							/* METER_ULID_H */
