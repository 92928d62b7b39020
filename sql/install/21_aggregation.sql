
-- ── meter.aggregation (SPEC §2) ─────────────────────────────────────────────────────
-- A C base type: {type, field, expression, multiplier, bucket_size, group_by} as canonical JSON.
CREATE TYPE meter.aggregation;

CREATE FUNCTION meter.aggregation_in(cstring) RETURNS meter.aggregation
	AS 'MODULE_PATHNAME', 'meter_aggregation_in' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION meter.aggregation_in(cstring) IS
	'Text input of meter.aggregation: JSON validated by the rules of SPEC §2';

CREATE FUNCTION meter.aggregation_out(meter.aggregation) RETURNS cstring
	AS 'MODULE_PATHNAME', 'meter_aggregation_out' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION meter.aggregation_out(meter.aggregation) IS
	'Text output of meter.aggregation: canonical JSON (keys type, field, expression, multiplier, bucket_size, group_by)';

CREATE FUNCTION meter.aggregation_recv(internal) RETURNS meter.aggregation
	AS 'MODULE_PATHNAME', 'meter_aggregation_recv' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION meter.aggregation_recv(internal) IS
	'Binary input of meter.aggregation: version byte 1, then the JSON text (validated)';

CREATE FUNCTION meter.aggregation_send(meter.aggregation) RETURNS bytea
	AS 'MODULE_PATHNAME', 'meter_aggregation_send' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION meter.aggregation_send(meter.aggregation) IS
	'Binary output of meter.aggregation: version byte 1, then the canonical JSON text';

CREATE TYPE meter.aggregation (
	INPUT = meter.aggregation_in,
	OUTPUT = meter.aggregation_out,
	RECEIVE = meter.aggregation_recv,
	SEND = meter.aggregation_send,
	INTERNALLENGTH = VARIABLE,
	ALIGNMENT = int4,
	STORAGE = extended
);
COMMENT ON TYPE meter.aggregation IS
	'How a meter aggregates: {"type":"SUM","field":"tokens"} (type, field, expression, multiplier, bucket_size, group_by)';

CREATE FUNCTION meter.aggregation_eq(meter.aggregation, meter.aggregation) RETURNS boolean
	AS 'MODULE_PATHNAME', 'meter_aggregation_eq' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION meter.aggregation_eq(meter.aggregation, meter.aggregation) IS
	'Equality of aggregations (canonical forms compared)';

CREATE FUNCTION meter.aggregation_ne(meter.aggregation, meter.aggregation) RETURNS boolean
	AS 'MODULE_PATHNAME', 'meter_aggregation_ne' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION meter.aggregation_ne(meter.aggregation, meter.aggregation) IS
	'Inequality of aggregations';

CREATE FUNCTION meter.aggregation_hash(meter.aggregation) RETURNS integer
	AS 'MODULE_PATHNAME', 'meter_aggregation_hash' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION meter.aggregation_hash(meter.aggregation) IS
	'Hash of an aggregation, consistent with =';

-- = and <> exist twice: in pg_catalog, so that `a = b` works under any search_path (as
-- for built-in types; the planner hashes with it), and in meter, for OPERATOR(meter.=).
CREATE OPERATOR pg_catalog.= (
	LEFTARG = meter.aggregation, RIGHTARG = meter.aggregation,
	FUNCTION = meter.aggregation_eq,
	COMMUTATOR = OPERATOR(pg_catalog.=), NEGATOR = OPERATOR(pg_catalog.<>),
	RESTRICT = pg_catalog.eqsel, JOIN = pg_catalog.eqjoinsel,
	HASHES, MERGES
);
COMMENT ON OPERATOR pg_catalog.= (meter.aggregation, meter.aggregation) IS 'equal aggregations';

CREATE OPERATOR pg_catalog.<> (
	LEFTARG = meter.aggregation, RIGHTARG = meter.aggregation,
	FUNCTION = meter.aggregation_ne,
	COMMUTATOR = OPERATOR(pg_catalog.<>), NEGATOR = OPERATOR(pg_catalog.=),
	RESTRICT = pg_catalog.neqsel, JOIN = pg_catalog.neqjoinsel
);
COMMENT ON OPERATOR pg_catalog.<> (meter.aggregation, meter.aggregation) IS 'different aggregations';

CREATE OPERATOR meter.= (
	LEFTARG = meter.aggregation, RIGHTARG = meter.aggregation,
	FUNCTION = meter.aggregation_eq,
	COMMUTATOR = OPERATOR(meter.=), NEGATOR = OPERATOR(meter.<>),
	RESTRICT = pg_catalog.eqsel, JOIN = pg_catalog.eqjoinsel
);
COMMENT ON OPERATOR meter.= (meter.aggregation, meter.aggregation) IS 'equal aggregations';

CREATE OPERATOR meter.<> (
	LEFTARG = meter.aggregation, RIGHTARG = meter.aggregation,
	FUNCTION = meter.aggregation_ne,
	COMMUTATOR = OPERATOR(meter.<>), NEGATOR = OPERATOR(meter.=),
	RESTRICT = pg_catalog.neqsel, JOIN = pg_catalog.neqjoinsel
);
COMMENT ON OPERATOR meter.<> (meter.aggregation, meter.aggregation) IS 'different aggregations';

-- Ordering (by type (enum order), then field, expression, multiplier, bucket_size, group_by): for ORDER BY, count(DISTINCT …) and merge joins.
CREATE FUNCTION meter.aggregation_cmp(meter.aggregation, meter.aggregation) RETURNS integer
	AS 'MODULE_PATHNAME', 'meter_aggregation_cmp' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION meter.aggregation_cmp(meter.aggregation, meter.aggregation) IS
	'Order of two values of meter.aggregation: -1, 0 or 1 (by type (enum order), then field, expression, multiplier, bucket_size, group_by)';

CREATE FUNCTION meter.aggregation_lt(meter.aggregation, meter.aggregation) RETURNS boolean
	AS 'MODULE_PATHNAME', 'meter_aggregation_lt' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION meter.aggregation_lt(meter.aggregation, meter.aggregation) IS 'less than (the < operator)';
CREATE OPERATOR meter.< (
	LEFTARG = meter.aggregation, RIGHTARG = meter.aggregation, FUNCTION = meter.aggregation_lt,
	COMMUTATOR = OPERATOR(meter.>), NEGATOR = OPERATOR(meter.>=),
	RESTRICT = pg_catalog.scalarltsel, JOIN = pg_catalog.scalarltjoinsel
);
COMMENT ON OPERATOR meter.< (meter.aggregation, meter.aggregation) IS 'aggregation less than';

CREATE FUNCTION meter.aggregation_le(meter.aggregation, meter.aggregation) RETURNS boolean
	AS 'MODULE_PATHNAME', 'meter_aggregation_le' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION meter.aggregation_le(meter.aggregation, meter.aggregation) IS 'less than or equal (the <= operator)';
CREATE OPERATOR meter.<= (
	LEFTARG = meter.aggregation, RIGHTARG = meter.aggregation, FUNCTION = meter.aggregation_le,
	COMMUTATOR = OPERATOR(meter.>=), NEGATOR = OPERATOR(meter.>),
	RESTRICT = pg_catalog.scalarlesel, JOIN = pg_catalog.scalarlejoinsel
);
COMMENT ON OPERATOR meter.<= (meter.aggregation, meter.aggregation) IS 'aggregation less than or equal';

CREATE FUNCTION meter.aggregation_gt(meter.aggregation, meter.aggregation) RETURNS boolean
	AS 'MODULE_PATHNAME', 'meter_aggregation_gt' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION meter.aggregation_gt(meter.aggregation, meter.aggregation) IS 'greater than (the > operator)';
CREATE OPERATOR meter.> (
	LEFTARG = meter.aggregation, RIGHTARG = meter.aggregation, FUNCTION = meter.aggregation_gt,
	COMMUTATOR = OPERATOR(meter.<), NEGATOR = OPERATOR(meter.<=),
	RESTRICT = pg_catalog.scalargtsel, JOIN = pg_catalog.scalargtjoinsel
);
COMMENT ON OPERATOR meter.> (meter.aggregation, meter.aggregation) IS 'aggregation greater than';

CREATE FUNCTION meter.aggregation_ge(meter.aggregation, meter.aggregation) RETURNS boolean
	AS 'MODULE_PATHNAME', 'meter_aggregation_ge' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION meter.aggregation_ge(meter.aggregation, meter.aggregation) IS 'greater than or equal (the >= operator)';
CREATE OPERATOR meter.>= (
	LEFTARG = meter.aggregation, RIGHTARG = meter.aggregation, FUNCTION = meter.aggregation_ge,
	COMMUTATOR = OPERATOR(meter.<=), NEGATOR = OPERATOR(meter.<),
	RESTRICT = pg_catalog.scalargesel, JOIN = pg_catalog.scalargejoinsel
);
COMMENT ON OPERATOR meter.>= (meter.aggregation, meter.aggregation) IS 'aggregation greater than or equal';

CREATE OPERATOR CLASS meter.aggregation_btree_ops
	DEFAULT FOR TYPE meter.aggregation USING btree AS
	OPERATOR 1 meter.< (meter.aggregation, meter.aggregation),
	OPERATOR 2 meter.<= (meter.aggregation, meter.aggregation),
	OPERATOR 3 pg_catalog.= (meter.aggregation, meter.aggregation),
	OPERATOR 4 meter.>= (meter.aggregation, meter.aggregation),
	OPERATOR 5 meter.> (meter.aggregation, meter.aggregation),
	FUNCTION 1 meter.aggregation_cmp(meter.aggregation, meter.aggregation);
COMMENT ON OPERATOR CLASS meter.aggregation_btree_ops USING btree IS
	'Ordering of meter.aggregation (ORDER BY, DISTINCT, unique indexes)';
COMMENT ON OPERATOR FAMILY meter.aggregation_btree_ops USING btree IS
	'Ordering of meter.aggregation (ORDER BY, DISTINCT, unique indexes)';

CREATE OPERATOR CLASS meter.aggregation_hash_ops
	DEFAULT FOR TYPE meter.aggregation USING hash AS
	OPERATOR 1 pg_catalog.= (meter.aggregation, meter.aggregation),
	FUNCTION 1 meter.aggregation_hash(meter.aggregation);
COMMENT ON OPERATOR CLASS meter.aggregation_hash_ops USING hash IS
	'Hashing of meter.aggregation (GROUP BY, DISTINCT, hash joins)';
COMMENT ON OPERATOR FAMILY meter.aggregation_hash_ops USING hash IS
	'Hashing of meter.aggregation (GROUP BY, DISTINCT, hash joins)';

CREATE FUNCTION meter.aggregation_to_jsonb(meter.aggregation) RETURNS jsonb
	AS 'MODULE_PATHNAME', 'meter_aggregation_to_jsonb' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION meter.aggregation_to_jsonb(meter.aggregation) IS
	'The aggregation as jsonb (its canonical JSON)';

CREATE FUNCTION meter.aggregation_from_jsonb(jsonb) RETURNS meter.aggregation
	AS 'MODULE_PATHNAME', 'meter_aggregation_from_jsonb' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION meter.aggregation_from_jsonb(jsonb) IS
	'A jsonb value as an aggregation, validated like text input';

CREATE CAST (meter.aggregation AS jsonb) WITH FUNCTION meter.aggregation_to_jsonb(meter.aggregation);
COMMENT ON CAST (meter.aggregation AS jsonb) IS 'The aggregation as canonical JSON';
CREATE CAST (jsonb AS meter.aggregation) WITH FUNCTION meter.aggregation_from_jsonb(jsonb);
COMMENT ON CAST (jsonb AS meter.aggregation) IS 'A validated aggregation from JSON';

-- Accessors. (Not meter.aggregation_type(…): a function named like a type, called with a
-- literal, is read as a cast.)
CREATE FUNCTION meter.type_of(meter.aggregation) RETURNS meter.aggregation_type
	AS 'MODULE_PATHNAME', 'meter_aggregation_type_of' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION meter.type_of(meter.aggregation) IS 'The aggregation type (COUNT, SUM, …)';

CREATE FUNCTION meter.field_of(meter.aggregation) RETURNS text
	AS 'MODULE_PATHNAME', 'meter_aggregation_field_of' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION meter.field_of(meter.aggregation) IS
	'The top-level property the aggregation reads; NULL when none (COUNT)';

CREATE FUNCTION meter.multiplier_of(meter.aggregation) RETURNS numeric
	AS 'MODULE_PATHNAME', 'meter_aggregation_multiplier_of' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION meter.multiplier_of(meter.aggregation) IS
	'The multiplier of SUM_WITH_MULTIPLIER; NULL for other types';

CREATE FUNCTION meter.bucket_size_of(meter.aggregation) RETURNS meter.window_size
	AS 'MODULE_PATHNAME', 'meter_aggregation_bucket_size_of' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION meter.bucket_size_of(meter.aggregation) IS
	'The bucket size of a MAX or SUM aggregation; NULL when none';

CREATE FUNCTION meter.expression_of(meter.aggregation) RETURNS text
	AS 'MODULE_PATHNAME', 'meter_aggregation_expression_of' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION meter.expression_of(meter.aggregation) IS
	'The expression that computes each event''s value (as written, trimmed); NULL when none';

CREATE FUNCTION meter.group_by_of(meter.aggregation) RETURNS text
	AS 'MODULE_PATHNAME', 'meter_aggregation_group_by_of' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION meter.group_by_of(meter.aggregation) IS
	'The property a bucketed MAX aggregation groups by (per-group maxima summed); NULL when none';
