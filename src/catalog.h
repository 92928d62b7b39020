/*
 * catalog.h — the meter catalog, table meter.meters (SPEC §4): row validation, stamps,
 * and the relcache invalidation that tells every backend's meter cache a meter changed.
 */
#ifndef METER_CATALOG_H
#define METER_CATALOG_H

/* Longest id, event_name and name, in characters (FlexPrice stores varchar(255)). */
#define METER_TEXT_MAX 255

/* OID of table meter.meters, or InvalidOid when the extension's schema or table is
 * missing (e.g. during CREATE/DROP EXTENSION). Looked up each time: cheap (syscache) and
 * never stale across DROP/CREATE EXTENSION. */
extern Oid	catalog_meters_relid(void);

/* True when s[0..len) is empty or only whitespace (ASCII, and Unicode White_Space plus
 * the zero-width space and BOM when the database encoding is UTF-8). */
extern bool catalog_text_is_blank(const char *s, int len);

#endif							/* METER_CATALOG_H */
