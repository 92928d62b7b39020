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

/*
 * s[0..len) without leading and trailing white space, as FlexPrice's strings.TrimSpace
 * (Go's unicode.IsSpace: ASCII white space, and in a UTF-8 database also U+0085, U+00A0
 * and Unicode White_Space): returns where the trimmed text starts, its length in
 * *trimmed_len. The one rule for meter names and event names (SPEC §4, §7).
 */
extern const char *catalog_trim_space(const char *s, int len, int *trimmed_len);

/* True when s[0..len) is empty or only white space (as above), the zero-width space
 * and the BOM (invisible, so a name made of them looks blank). */
extern bool catalog_text_is_blank(const char *s, int len);

#endif							/* METER_CATALOG_H */
