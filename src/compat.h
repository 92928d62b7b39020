/*
 * compat.h — every PG_VERSION_NUM difference the extension cares about, in one place.
 * PostgreSQL 15 is the reference server; 13–17 compile where it is cheap.
 */
#ifndef METER_COMPAT_H
#define METER_COMPAT_H

#include "postgres.h"

#if PG_VERSION_NUM < 150000
#define MarkGUCPrefixReserved(prefix) EmitWarningsOnPlaceholders(prefix)
#endif

#if PG_VERSION_NUM >= 170000
#define meter_json_lex_cstring(json, len) \
	makeJsonLexContextCstringLen(NULL, (json), (len), GetDatabaseEncoding(), true)
#else
#define meter_json_lex_cstring(json, len) \
	makeJsonLexContextCstringLen((json), (len), GetDatabaseEncoding(), true)
#endif

/* JSON semantic-action callbacks return an error code from PostgreSQL 16 on. */
#if PG_VERSION_NUM >= 160000
#define METER_JSON_ACTION JsonParseErrorType
#define METER_JSON_ACTION_DONE return JSON_SUCCESS
#else
#define METER_JSON_ACTION void
#define METER_JSON_ACTION_DONE return
#endif

/* Ownership checks name the catalog from PostgreSQL 16 on. */
#if PG_VERSION_NUM >= 160000
#define meter_extension_ownercheck(ext, role) object_ownercheck(ExtensionRelationId, (ext), (role))
#else
#define meter_extension_ownercheck(ext, role) pg_extension_ownercheck((ext), (role))
#endif

#endif							/* METER_COMPAT_H */
