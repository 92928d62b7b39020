
-- ── meter.filters (SPEC §2) and matching (SPEC §3) ──────────────────────────────────
-- A C base type: [{"key":…,"values":[…]}, …], canonical (keys and values sorted, unique).
CREATE TYPE meter.filters;

CREATE FUNCTION meter.filters_in(cstring) RETURNS meter.filters
	AS 'MODULE_PATHNAME', 'meter_filters_in' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION meter.filters_in(cstring) IS
	'Text input of meter.filters: JSON validated by the rules of SPEC §2, made canonical';

CREATE FUNCTION meter.filters_out(meter.filters) RETURNS cstring
	AS 'MODULE_PATHNAME', 'meter_filters_out' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION meter.filters_out(meter.filters) IS
	'Text output of meter.filters: canonical JSON (keys and values sorted, unique)';

CREATE FUNCTION meter.filters_recv(internal) RETURNS meter.filters
	AS 'MODULE_PATHNAME', 'meter_filters_recv' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION meter.filters_recv(internal) IS
	'Binary input of meter.filters: version byte 1, then the JSON text (validated)';

CREATE FUNCTION meter.filters_send(meter.filters) RETURNS bytea
	AS 'MODULE_PATHNAME', 'meter_filters_send' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION meter.filters_send(meter.filters) IS
	'Binary output of meter.filters: version byte 1, then the canonical JSON text';

CREATE TYPE meter.filters (
	INPUT = meter.filters_in,
	OUTPUT = meter.filters_out,
	RECEIVE = meter.filters_recv,
	SEND = meter.filters_send,
	INTERNALLENGTH = VARIABLE,
	ALIGNMENT = int4,
	STORAGE = extended
);
COMMENT ON TYPE meter.filters IS
	'Which events a meter counts: [{"key":"model","values":["gpt-4o","o1-mini"]}]; [] counts all';

CREATE FUNCTION meter.filters_eq(meter.filters, meter.filters) RETURNS boolean
	AS 'MODULE_PATHNAME', 'meter_filters_eq' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION meter.filters_eq(meter.filters, meter.filters) IS
	'Equality of filter sets (canonical forms compared)';

CREATE FUNCTION meter.filters_ne(meter.filters, meter.filters) RETURNS boolean
	AS 'MODULE_PATHNAME', 'meter_filters_ne' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION meter.filters_ne(meter.filters, meter.filters) IS
	'Inequality of filter sets';

CREATE FUNCTION meter.filters_hash(meter.filters) RETURNS integer
	AS 'MODULE_PATHNAME', 'meter_filters_hash' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION meter.filters_hash(meter.filters) IS
	'Hash of a filter set, consistent with =';

-- = and <> exist twice: in pg_catalog, so that `a = b` works under any search_path (as
-- for built-in types; the planner hashes with it), and in meter, for OPERATOR(meter.=).
CREATE OPERATOR pg_catalog.= (
	LEFTARG = meter.filters, RIGHTARG = meter.filters,
	FUNCTION = meter.filters_eq,
	COMMUTATOR = OPERATOR(pg_catalog.=), NEGATOR = OPERATOR(pg_catalog.<>),
	RESTRICT = pg_catalog.eqsel, JOIN = pg_catalog.eqjoinsel,
	HASHES, MERGES
);
COMMENT ON OPERATOR pg_catalog.= (meter.filters, meter.filters) IS 'equal filter sets';

CREATE OPERATOR pg_catalog.<> (
	LEFTARG = meter.filters, RIGHTARG = meter.filters,
	FUNCTION = meter.filters_ne,
	COMMUTATOR = OPERATOR(pg_catalog.<>), NEGATOR = OPERATOR(pg_catalog.=),
	RESTRICT = pg_catalog.neqsel, JOIN = pg_catalog.neqjoinsel
);
COMMENT ON OPERATOR pg_catalog.<> (meter.filters, meter.filters) IS 'different filter sets';

CREATE OPERATOR meter.= (
	LEFTARG = meter.filters, RIGHTARG = meter.filters,
	FUNCTION = meter.filters_eq,
	COMMUTATOR = OPERATOR(meter.=), NEGATOR = OPERATOR(meter.<>),
	RESTRICT = pg_catalog.eqsel, JOIN = pg_catalog.eqjoinsel
);
COMMENT ON OPERATOR meter.= (meter.filters, meter.filters) IS 'equal filter sets';

CREATE OPERATOR meter.<> (
	LEFTARG = meter.filters, RIGHTARG = meter.filters,
	FUNCTION = meter.filters_ne,
	COMMUTATOR = OPERATOR(meter.<>), NEGATOR = OPERATOR(meter.=),
	RESTRICT = pg_catalog.neqsel, JOIN = pg_catalog.neqjoinsel
);
COMMENT ON OPERATOR meter.<> (meter.filters, meter.filters) IS 'different filter sets';

-- Ordering (key by key, values in order (byte order)): for ORDER BY, count(DISTINCT …) and merge joins.
CREATE FUNCTION meter.filters_cmp(meter.filters, meter.filters) RETURNS integer
	AS 'MODULE_PATHNAME', 'meter_filters_cmp' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION meter.filters_cmp(meter.filters, meter.filters) IS
	'Order of two values of meter.filters: -1, 0 or 1 (key by key, values in order (byte order))';

CREATE FUNCTION meter.filters_lt(meter.filters, meter.filters) RETURNS boolean
	AS 'MODULE_PATHNAME', 'meter_filters_lt' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION meter.filters_lt(meter.filters, meter.filters) IS 'less than (the < operator)';
CREATE OPERATOR meter.< (
	LEFTARG = meter.filters, RIGHTARG = meter.filters, FUNCTION = meter.filters_lt,
	COMMUTATOR = OPERATOR(meter.>), NEGATOR = OPERATOR(meter.>=),
	RESTRICT = pg_catalog.scalarltsel, JOIN = pg_catalog.scalarltjoinsel
);
COMMENT ON OPERATOR meter.< (meter.filters, meter.filters) IS 'filter set less than';

CREATE FUNCTION meter.filters_le(meter.filters, meter.filters) RETURNS boolean
	AS 'MODULE_PATHNAME', 'meter_filters_le' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION meter.filters_le(meter.filters, meter.filters) IS 'less than or equal (the <= operator)';
CREATE OPERATOR meter.<= (
	LEFTARG = meter.filters, RIGHTARG = meter.filters, FUNCTION = meter.filters_le,
	COMMUTATOR = OPERATOR(meter.>=), NEGATOR = OPERATOR(meter.>),
	RESTRICT = pg_catalog.scalarlesel, JOIN = pg_catalog.scalarlejoinsel
);
COMMENT ON OPERATOR meter.<= (meter.filters, meter.filters) IS 'filter set less than or equal';

CREATE FUNCTION meter.filters_gt(meter.filters, meter.filters) RETURNS boolean
	AS 'MODULE_PATHNAME', 'meter_filters_gt' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION meter.filters_gt(meter.filters, meter.filters) IS 'greater than (the > operator)';
CREATE OPERATOR meter.> (
	LEFTARG = meter.filters, RIGHTARG = meter.filters, FUNCTION = meter.filters_gt,
	COMMUTATOR = OPERATOR(meter.<), NEGATOR = OPERATOR(meter.<=),
	RESTRICT = pg_catalog.scalargtsel, JOIN = pg_catalog.scalargtjoinsel
);
COMMENT ON OPERATOR meter.> (meter.filters, meter.filters) IS 'filter set greater than';

CREATE FUNCTION meter.filters_ge(meter.filters, meter.filters) RETURNS boolean
	AS 'MODULE_PATHNAME', 'meter_filters_ge' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION meter.filters_ge(meter.filters, meter.filters) IS 'greater than or equal (the >= operator)';
CREATE OPERATOR meter.>= (
	LEFTARG = meter.filters, RIGHTARG = meter.filters, FUNCTION = meter.filters_ge,
	COMMUTATOR = OPERATOR(meter.<=), NEGATOR = OPERATOR(meter.<),
	RESTRICT = pg_catalog.scalargesel, JOIN = pg_catalog.scalargejoinsel
);
COMMENT ON OPERATOR meter.>= (meter.filters, meter.filters) IS 'filter set greater than or equal';

CREATE OPERATOR CLASS meter.filters_btree_ops
	DEFAULT FOR TYPE meter.filters USING btree AS
	OPERATOR 1 meter.< (meter.filters, meter.filters),
	OPERATOR 2 meter.<= (meter.filters, meter.filters),
	OPERATOR 3 pg_catalog.= (meter.filters, meter.filters),
	OPERATOR 4 meter.>= (meter.filters, meter.filters),
	OPERATOR 5 meter.> (meter.filters, meter.filters),
	FUNCTION 1 meter.filters_cmp(meter.filters, meter.filters);
COMMENT ON OPERATOR CLASS meter.filters_btree_ops USING btree IS
	'Ordering of meter.filters (ORDER BY, DISTINCT, unique indexes)';
COMMENT ON OPERATOR FAMILY meter.filters_btree_ops USING btree IS
	'Ordering of meter.filters (ORDER BY, DISTINCT, unique indexes)';

CREATE OPERATOR CLASS meter.filters_hash_ops
	DEFAULT FOR TYPE meter.filters USING hash AS
	OPERATOR 1 pg_catalog.= (meter.filters, meter.filters),
	FUNCTION 1 meter.filters_hash(meter.filters);
COMMENT ON OPERATOR CLASS meter.filters_hash_ops USING hash IS
	'Hashing of meter.filters (GROUP BY, DISTINCT, hash joins)';
COMMENT ON OPERATOR FAMILY meter.filters_hash_ops USING hash IS
	'Hashing of meter.filters (GROUP BY, DISTINCT, hash joins)';

CREATE FUNCTION meter.filters_to_jsonb(meter.filters) RETURNS jsonb
	AS 'MODULE_PATHNAME', 'meter_filters_to_jsonb' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION meter.filters_to_jsonb(meter.filters) IS
	'The filters as jsonb (their canonical JSON)';

CREATE FUNCTION meter.filters_from_jsonb(jsonb) RETURNS meter.filters
	AS 'MODULE_PATHNAME', 'meter_filters_from_jsonb' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION meter.filters_from_jsonb(jsonb) IS
	'A jsonb value as filters, validated like text input';

CREATE CAST (meter.filters AS jsonb) WITH FUNCTION meter.filters_to_jsonb(meter.filters);
COMMENT ON CAST (meter.filters AS jsonb) IS 'The filters as canonical JSON';
CREATE CAST (jsonb AS meter.filters) WITH FUNCTION meter.filters_from_jsonb(jsonb);
COMMENT ON CAST (jsonb AS meter.filters) IS 'Validated filters from JSON';

CREATE FUNCTION meter.filter_keys(meter.filters) RETURNS text[]
	AS 'MODULE_PATHNAME', 'meter_filter_keys' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION meter.filter_keys(meter.filters) IS
	'The filter keys, sorted; {} for no filters';

CREATE FUNCTION meter.filter_values(meter.filters, key text) RETURNS text[]
	AS 'MODULE_PATHNAME', 'meter_filter_values' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION meter.filter_values(meter.filters, text) IS
	'The values of one filter key, sorted and unique; NULL when there is no such key';

CREATE FUNCTION meter.matches(filters meter.filters, properties jsonb) RETURNS boolean
	AS 'MODULE_PATHNAME', 'meter_matches' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION meter.matches(meter.filters, jsonb) IS
	'SPEC §3: every filter key present in properties with a value equal to one of its values '
	'(strings by text, numbers by value, booleans as "true"/"false"); [] matches everything';

CREATE FUNCTION meter.explain_filters(filters meter.filters, properties jsonb) RETURNS text
	AS 'MODULE_PATHNAME', 'meter_explain_filters' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION meter.explain_filters(meter.filters, jsonb) IS
	'Why properties do not match the filters (filter "model": value "gpt-5" not in [gpt-4o]); NULL when they match';
