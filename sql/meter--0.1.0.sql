\echo Use "CREATE EXTENSION meter" to load this file. \quit
-- meter: usage metering inside PostgreSQL. Assembled from sql/install/*.sql in name order.

-- ── Scope (SPEC §5) and ids ─────────────────────────────────────────────────────────
CREATE FUNCTION meter.current_tenant() RETURNS text
	AS 'MODULE_PATHNAME', 'meter_current_tenant' LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION meter.current_tenant() IS
	'The tenant of the current scope (setting meter.tenant_id); error 55000 when unset';

CREATE FUNCTION meter.current_environment() RETURNS text
	AS 'MODULE_PATHNAME', 'meter_current_environment' LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION meter.current_environment() IS
	'The environment of the current scope (setting meter.environment_id); '''' is the default environment';

CREATE FUNCTION meter.current_user_id() RETURNS text
	AS 'MODULE_PATHNAME', 'meter_current_user_id' LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION meter.current_user_id() IS
	'The user of the current scope (setting meter.user_id), NULL when unset';

CREATE FUNCTION meter.new_id(prefix text) RETURNS text
	AS 'MODULE_PATHNAME', 'meter_new_id' LANGUAGE C VOLATILE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION meter.new_id(text) IS
	'prefix || ''_'' || a new ULID (26 Crockford base32 characters, time-ordered)';

-- ── Enums (SPEC §2) ─────────────────────────────────────────────────────────────────
-- The C code relies on the label order of aggregation_type and window_size (src/*.h).
CREATE TYPE meter.aggregation_type AS ENUM (
	'COUNT', 'SUM', 'AVG', 'COUNT_UNIQUE', 'MAX', 'MIN', 'LATEST',
	'SUM_WITH_MULTIPLIER', 'WEIGHTED_SUM');
COMMENT ON TYPE meter.aggregation_type IS 'How a meter aggregates the events it counts';

CREATE TYPE meter.reset_usage AS ENUM ('BILLING_PERIOD', 'NEVER');
COMMENT ON TYPE meter.reset_usage IS
	'BILLING_PERIOD: usage per period; NEVER: a running total from the beginning of time';

CREATE TYPE meter.status AS ENUM ('published', 'archived', 'deleted');
COMMENT ON TYPE meter.status IS 'Lifecycle of a meter: only published meters count events';

CREATE TYPE meter.window_size AS ENUM (
	'MINUTE', '15MIN', '30MIN', 'HOUR', '3HOUR', '6HOUR', '12HOUR', 'DAY', 'WEEK', 'MONTH');
COMMENT ON TYPE meter.window_size IS 'Width of a usage window or of an aggregation bucket';

-- ── meter.aggregation (SPEC §2) ─────────────────────────────────────────────────────
-- A C base type: {type, field, multiplier, bucket_size} as canonical JSON.
CREATE TYPE meter.aggregation;

CREATE FUNCTION meter.aggregation_in(cstring) RETURNS meter.aggregation
	AS 'MODULE_PATHNAME', 'meter_aggregation_in' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION meter.aggregation_in(cstring) IS
	'Text input of meter.aggregation: JSON validated by the rules of SPEC §2';

CREATE FUNCTION meter.aggregation_out(meter.aggregation) RETURNS cstring
	AS 'MODULE_PATHNAME', 'meter_aggregation_out' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION meter.aggregation_out(meter.aggregation) IS
	'Text output of meter.aggregation: canonical JSON (keys type, field, multiplier, bucket_size)';

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
	'How a meter aggregates: {"type":"SUM","field":"tokens"} (type, field, multiplier, bucket_size)';

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

-- Ordering (by type (enum order), then field, multiplier, bucket_size): for ORDER BY, count(DISTINCT …) and merge joins.
CREATE FUNCTION meter.aggregation_cmp(meter.aggregation, meter.aggregation) RETURNS integer
	AS 'MODULE_PATHNAME', 'meter_aggregation_cmp' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION meter.aggregation_cmp(meter.aggregation, meter.aggregation) IS
	'Order of two values of meter.aggregation: -1, 0 or 1 (by type (enum order), then field, multiplier, bucket_size)';

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

-- ── Property values as the aggregate reads them (SPEC §8) ───────────────────────────
-- For recomputations in SQL: the same rules as the C aggregate and trigger.
CREATE FUNCTION meter.numeric_value(properties jsonb, field text) RETURNS numeric
	AS 'MODULE_PATHNAME', 'meter_numeric_value' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION meter.numeric_value(jsonb, text) IS
	'The usable number of properties->field (a JSON number or a string in JSON number syntax), else NULL';

CREATE FUNCTION meter.unique_value(properties jsonb, field text) RETURNS text
	AS 'MODULE_PATHNAME', 'meter_unique_value' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION meter.unique_value(jsonb, text) IS
	'The COUNT_UNIQUE identity of properties->field: numbers canonical (2, 2.0, "2" are one value), '
	'other values as text; NULL when missing or JSON null';

-- ── The catalog: meter.meters (SPEC §4) ─────────────────────────────────────────────
-- FlexPrice's Meter + BaseModel. Every insert, update and delete goes through the C
-- trigger meter.validate_meter(): it validates the row as a whole, keeps the creation
-- columns immutable, stamps updated_at/updated_by and invalidates every backend's meter
-- cache. The CHECK constraints repeat the essential rules for the case where triggers are
-- disabled (session_replication_role = replica, pg_restore --disable-triggers).
CREATE TABLE meter.meters (
	id text NOT NULL DEFAULT meter.new_id('meter'),
	tenant_id text NOT NULL DEFAULT meter.current_tenant(),
	environment_id text NOT NULL DEFAULT meter.current_environment(),
	event_name text NOT NULL,
	name text NOT NULL,
	aggregation meter.aggregation NOT NULL,
	filters meter.filters NOT NULL DEFAULT '[]',
	reset_usage meter.reset_usage NOT NULL DEFAULT 'BILLING_PERIOD',
	status meter.status NOT NULL DEFAULT 'published',
	created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	updated_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	created_by text DEFAULT meter.current_user_id(),
	updated_by text DEFAULT meter.current_user_id(),
	CONSTRAINT meters_pkey PRIMARY KEY (id),
	CONSTRAINT meters_id_not_blank CHECK (pg_catalog.btrim(id) OPERATOR(pg_catalog.<>) ''),
	CONSTRAINT meters_tenant_not_blank CHECK (pg_catalog.btrim(tenant_id) OPERATOR(pg_catalog.<>) ''),
	CONSTRAINT meters_event_name_not_blank CHECK (pg_catalog.btrim(event_name) OPERATOR(pg_catalog.<>) ''),
	CONSTRAINT meters_name_not_blank CHECK (pg_catalog.btrim(name) OPERATOR(pg_catalog.<>) '')
);
COMMENT ON TABLE meter.meters IS
	'The meter catalog (FlexPrice''s Meter): which events count (event_name + filters) and how they aggregate';
COMMENT ON COLUMN meter.meters.id IS 'meter_ + a ULID by default (k-sortable); unique across all tenants';
COMMENT ON COLUMN meter.meters.tenant_id IS 'Owning tenant; defaults to meter.tenant_id; never changes';
COMMENT ON COLUMN meter.meters.environment_id IS 'Environment inside the tenant ('''' = default); never changes';
COMMENT ON COLUMN meter.meters.event_name IS 'Name of the events the meter counts';
COMMENT ON COLUMN meter.meters.name IS 'Display name';
COMMENT ON COLUMN meter.meters.aggregation IS 'How matching events aggregate, e.g. {"type":"SUM","field":"tokens"}';
COMMENT ON COLUMN meter.meters.filters IS 'Property filters an event must match; [] matches every event of event_name';
COMMENT ON COLUMN meter.meters.reset_usage IS 'BILLING_PERIOD (usage per period) or NEVER (running total)';
COMMENT ON COLUMN meter.meters.status IS 'published meters count events; archived ones keep their history; deleted ones are hidden';
COMMENT ON COLUMN meter.meters.created_at IS 'Creation time; never changes';
COMMENT ON COLUMN meter.meters.updated_at IS 'Time of the last update, stamped by the trigger';
COMMENT ON COLUMN meter.meters.created_by IS 'meter.user_id at creation; never changes';
COMMENT ON COLUMN meter.meters.updated_by IS 'meter.user_id at the last update (NULL when unset), stamped by the trigger';
COMMENT ON CONSTRAINT meters_pkey ON meter.meters IS 'Meter ids are unique across all tenants and environments';
COMMENT ON CONSTRAINT meters_id_not_blank ON meter.meters IS 'Backstop of the trigger''s rule: id not blank';
COMMENT ON CONSTRAINT meters_tenant_not_blank ON meter.meters IS 'Backstop of the trigger''s rule: tenant_id not blank';
COMMENT ON CONSTRAINT meters_event_name_not_blank ON meter.meters IS 'Backstop of the trigger''s rule: event_name not blank';
COMMENT ON CONSTRAINT meters_name_not_blank ON meter.meters IS 'Backstop of the trigger''s rule: name not blank';

-- The compiled-meter cache loads the published meters of one (tenant, environment,
-- event name); the list functions read one scope ordered by creation (and event name).
CREATE INDEX meters_published_event_idx ON meter.meters (tenant_id, environment_id, event_name)
	WHERE status OPERATOR(pg_catalog.=) 'published'::meter.status;
COMMENT ON INDEX meter.meters_published_event_idx IS
	'Published meters of a (tenant, environment, event name): the meter cache''s lookup';
CREATE INDEX meters_scope_created_idx ON meter.meters (tenant_id, environment_id, created_at, id);
COMMENT ON INDEX meter.meters_scope_created_idx IS
	'Meters of a scope in creation order: list_meters'' default sort and time range';
CREATE INDEX meters_scope_event_idx ON meter.meters (tenant_id, environment_id, event_name, created_at);
COMMENT ON INDEX meter.meters_scope_event_idx IS
	'Meters of a scope by event name: list_meters(event_name => …)';

CREATE FUNCTION meter.validate_meter() RETURNS trigger
	AS 'MODULE_PATHNAME', 'meter_validate_meter' LANGUAGE C;
COMMENT ON FUNCTION meter.validate_meter() IS
	'Trigger of meter.meters: validates each meter, keeps id/tenant_id/environment_id/created_at/created_by fixed, stamps updated_at/updated_by, invalidates meter caches';

CREATE TRIGGER meters_validate
	BEFORE INSERT OR UPDATE OR DELETE ON meter.meters
	FOR EACH ROW EXECUTE FUNCTION meter.validate_meter();
COMMENT ON TRIGGER meters_validate ON meter.meters IS
	'Validates and stamps every meter; every change invalidates the meter caches of all backends';

-- Row-level security (SPEC §5): roles that query the table directly see, change and
-- create meters of the current tenant and environment only (the policy's USING clause
-- is also its WITH CHECK clause). The table owner and superusers bypass it.
ALTER TABLE meter.meters ENABLE ROW LEVEL SECURITY;
CREATE POLICY meters_scope ON meter.meters
	USING (tenant_id OPERATOR(pg_catalog.=) pg_catalog.current_setting('meter.tenant_id', true)
		AND environment_id OPERATOR(pg_catalog.=) COALESCE(pg_catalog.current_setting('meter.environment_id', true), ''));
COMMENT ON POLICY meters_scope ON meter.meters IS
	'Rows of the current scope only: meter.tenant_id and meter.environment_id ('''' = default)';

SELECT pg_catalog.pg_extension_config_dump('meter.meters', '');

-- ── Repository functions (SPEC §6): FlexPrice's meter Repository in SQL ──────────────
-- Each acts inside the current scope only: the tenant from meter.current_tenant() (error
-- 55000 when unset, checked before anything else) and the environment from
-- meter.current_environment(). SECURITY INVOKER: callers need privileges on
-- meter.meters, and row-level security applies to them as to any direct query.
-- Parameters are referred to as function.parameter and columns as m.column, so that
-- names shared by both (id, name, status, …) can never be confused.

CREATE FUNCTION meter.create_meter(
	event_name text,
	name text,
	aggregation meter.aggregation DEFAULT '{"type":"COUNT"}',
	filters meter.filters DEFAULT '[]',
	reset_usage meter.reset_usage DEFAULT 'BILLING_PERIOD',
	id text DEFAULT NULL)
RETURNS meter.meters
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	tenant text := meter.current_tenant();
	environment text := meter.current_environment();
	new_id text := COALESCE(create_meter.id, meter.new_id('meter'));
	created meter.meters;
BEGIN
	INSERT INTO meter.meters AS m (id, tenant_id, environment_id, event_name, name,
		aggregation, filters, reset_usage)
	VALUES (new_id, tenant, environment, create_meter.event_name, create_meter.name,
		create_meter.aggregation, create_meter.filters, create_meter.reset_usage)
	RETURNING m.* INTO created;
	RETURN created;
EXCEPTION WHEN unique_violation THEN
	RAISE EXCEPTION 'meter "%" already exists', new_id
		USING ERRCODE = 'unique_violation',
			DETAIL = 'Meter ids are unique across all tenants and environments.',
			HINT = 'Choose another id, or pass none (NULL) to get a generated one.';
END
$$;
COMMENT ON FUNCTION meter.create_meter(text, text, meter.aggregation, meter.filters, meter.reset_usage, text) IS
	'CreateMeter: a new published meter in the current scope; NULL id → meter_ + a ULID. Errors: 55000 no tenant, 22023 invalid meter, 23505 id taken';

CREATE FUNCTION meter.create_meter(meter jsonb)
RETURNS meter.meters
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	tenant text := meter.current_tenant();
	environment text := meter.current_environment();
	j jsonb := $1;
	key text;
	value jsonb;
	expected text;
	given text;
	new_id text;
	agg meter.aggregation;
	flt meter.filters;
	reset_value meter.reset_usage := 'BILLING_PERIOD';
	status_value meter.status := 'published';
	created_time timestamptz;
	updated_time timestamptz;
	created meter.meters;
BEGIN
	IF j IS NULL OR pg_catalog.jsonb_typeof(j) <> 'object' THEN
		RAISE EXCEPTION 'meter must be a JSON object'
			USING ERRCODE = 'invalid_parameter_value',
				DETAIL = format('Got %s.', COALESCE('a JSON ' || pg_catalog.jsonb_typeof(j), 'NULL')),
				HINT = 'Pass an object such as {"event_name":"api_call","name":"API calls","aggregation":{"type":"COUNT"}}.';
	END IF;

	-- Every key known and of the right JSON type; null counts as absent.
	FOR key, value IN SELECT e.key, e.value FROM pg_catalog.jsonb_each(j) AS e LOOP
		expected := CASE key
			WHEN 'aggregation' THEN 'object'
			WHEN 'filters' THEN 'array'
			WHEN 'id' THEN 'string' WHEN 'event_name' THEN 'string' WHEN 'name' THEN 'string'
			WHEN 'reset_usage' THEN 'string' WHEN 'status' THEN 'string'
			WHEN 'tenant_id' THEN 'string' WHEN 'environment_id' THEN 'string'
			WHEN 'created_at' THEN 'string' WHEN 'updated_at' THEN 'string'
			WHEN 'created_by' THEN 'string' WHEN 'updated_by' THEN 'string'
		END;
		IF expected IS NULL THEN
			RAISE EXCEPTION 'unknown meter key %', pg_catalog.to_json(key)
				USING ERRCODE = 'invalid_parameter_value',
					DETAIL = 'A meter has the keys id, event_name, name, aggregation, filters, reset_usage, status, '
						'tenant_id, environment_id, created_at, updated_at, created_by and updated_by only.',
					HINT = format('Remove %s or correct its spelling.', pg_catalog.to_json(key));
		END IF;
		IF pg_catalog.jsonb_typeof(value) NOT IN (expected, 'null') THEN
			RAISE EXCEPTION 'meter key "%" must be a JSON %', key, expected
				USING ERRCODE = 'invalid_parameter_value',
					DETAIL = format('Got a JSON %s.', pg_catalog.jsonb_typeof(value)),
					HINT = CASE expected
						WHEN 'object' THEN 'Write the aggregation as an object, e.g. {"type":"SUM","field":"tokens"}.'
						WHEN 'array' THEN 'Write the filters as an array, e.g. [{"key":"model","values":["gpt-4o"]}].'
						ELSE format('Write "%s" as a JSON string, or leave it out.', key) END;
		END IF;
	END LOOP;

	-- The scope comes from the settings; the JSON may repeat it, not contradict it.
	given := j->>'tenant_id';
	IF given IS NOT NULL AND given <> tenant THEN
		RAISE EXCEPTION 'tenant_id does not match the current tenant'
			USING ERRCODE = 'invalid_parameter_value',
				DETAIL = format('The meter names tenant %s; the current tenant (meter.tenant_id) is %s.',
					pg_catalog.to_json(given), pg_catalog.to_json(tenant)),
				HINT = 'Leave tenant_id out of the JSON, or SET meter.tenant_id to that tenant first.';
	END IF;
	given := j->>'environment_id';
	IF given IS NOT NULL AND given <> environment THEN
		RAISE EXCEPTION 'environment_id does not match the current environment'
			USING ERRCODE = 'invalid_parameter_value',
				DETAIL = format('The meter names environment %s; the current environment (meter.environment_id) is %s.',
					pg_catalog.to_json(given), pg_catalog.to_json(environment)),
				HINT = 'Leave environment_id out of the JSON, or SET meter.environment_id to that environment first.';
	END IF;

	given := j->>'reset_usage';
	IF given IS NOT NULL THEN
		IF NOT given = ANY (pg_catalog.enum_range(NULL::meter.reset_usage)::text[]) THEN
			RAISE EXCEPTION 'invalid reset_usage'
				USING ERRCODE = 'invalid_parameter_value',
					DETAIL = format('Got %s.', pg_catalog.to_json(given)),
					HINT = 'Use "BILLING_PERIOD" or "NEVER" (upper case), or leave it out for "BILLING_PERIOD".';
		END IF;
		reset_value := given::meter.reset_usage;
	END IF;
	given := j->>'status';
	IF given IS NOT NULL THEN
		IF NOT given = ANY (pg_catalog.enum_range(NULL::meter.status)::text[]) THEN
			RAISE EXCEPTION 'invalid status'
				USING ERRCODE = 'invalid_parameter_value',
					DETAIL = format('Got %s.', pg_catalog.to_json(given)),
					HINT = 'Use "published", "archived" or "deleted" (lower case), or leave it out for "published".';
		END IF;
		status_value := given::meter.status;
	END IF;

	-- Timestamps (FlexPrice's BaseModel) are kept when given, so meters can be imported.
	FOREACH key IN ARRAY ARRAY['created_at', 'updated_at'] LOOP
		given := j->>key;
		CONTINUE WHEN given IS NULL;
		IF given !~ '^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$' THEN
			RAISE EXCEPTION 'invalid %', key
				USING ERRCODE = 'invalid_parameter_value',
					DETAIL = format('Got %s, which is not an RFC 3339 timestamp.', pg_catalog.to_json(given)),
					HINT = format('Write %s like "2024-03-20T15:04:05Z", or leave it out for now().', key);
		END IF;
		BEGIN
			IF key = 'created_at' THEN
				created_time := given::timestamptz;
			ELSE
				updated_time := given::timestamptz;
			END IF;
		EXCEPTION WHEN datetime_field_overflow OR invalid_datetime_format THEN
			RAISE EXCEPTION 'invalid %', key
				USING ERRCODE = 'invalid_parameter_value',
					DETAIL = format('Got %s, which is not a valid date and time.', pg_catalog.to_json(given)),
					HINT = format('Write %s like "2024-03-20T15:04:05Z", or leave it out for now().', key);
		END;
	END LOOP;

	-- The types validate their own JSON (22023 with their own messages).
	IF j->'aggregation' IS NULL OR j->'aggregation' = 'null' THEN
		agg := '{"type":"COUNT"}';
	ELSE
		agg := (j->'aggregation')::meter.aggregation;
	END IF;
	IF j->'filters' IS NULL OR j->'filters' = 'null' THEN
		flt := '[]';
	ELSE
		flt := (j->'filters')::meter.filters;
	END IF;

	new_id := COALESCE(j->>'id', meter.new_id('meter'));
	BEGIN
		INSERT INTO meter.meters AS m (id, tenant_id, environment_id, event_name, name,
			aggregation, filters, reset_usage, status, created_at, updated_at, created_by, updated_by)
		VALUES (new_id, tenant, environment, j->>'event_name', j->>'name', agg, flt, reset_value, status_value,
			COALESCE(created_time, pg_catalog.now()),
			COALESCE(updated_time, pg_catalog.now()),
			COALESCE(j->>'created_by', meter.current_user_id()),
			COALESCE(j->>'updated_by', meter.current_user_id()))
		RETURNING m.* INTO created;
	EXCEPTION WHEN unique_violation THEN
		RAISE EXCEPTION 'meter "%" already exists', new_id
			USING ERRCODE = 'unique_violation',
				DETAIL = 'Meter ids are unique across all tenants and environments.',
				HINT = 'Choose another id, or leave "id" out to get a generated one.';
	END;
	RETURN created;
END
$$;
COMMENT ON FUNCTION meter.create_meter(jsonb) IS
	'CreateMeter from FlexPrice''s meter JSON {id?, event_name, name, aggregation?, filters?, reset_usage?, status?, BaseModel keys?}. Errors: 55000, 22023 (unknown key, wrong JSON type, other scope, invalid value), 23505';

CREATE FUNCTION meter.get_meter(id text)
RETURNS meter.meters
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	tenant text := meter.current_tenant();
	environment text := meter.current_environment();
	found_meter meter.meters;
BEGIN
	IF get_meter.id IS NULL THEN
		RAISE EXCEPTION 'id is required'
			USING ERRCODE = 'invalid_parameter_value',
				DETAIL = 'The meter id is NULL.',
				HINT = 'Pass the id of a meter; meter.list_meters() shows the meters of the current scope.';
	END IF;
	SELECT m.* INTO found_meter
	FROM meter.meters AS m
	WHERE m.id = get_meter.id AND m.tenant_id = tenant AND m.environment_id = environment
		AND m.status <> 'deleted';
	IF NOT FOUND THEN
		RAISE EXCEPTION 'meter "%" not found', get_meter.id
			USING ERRCODE = 'no_data_found',
				DETAIL = format('No meter with this id exists in tenant %s, environment %s (deleted meters count as not found).',
					pg_catalog.to_json(tenant), pg_catalog.to_json(environment)),
				HINT = 'Check the id and the settings meter.tenant_id and meter.environment_id; meter.list_meters() shows the meters of the current scope.';
	END IF;
	RETURN found_meter;
END
$$;
COMMENT ON FUNCTION meter.get_meter(text) IS
	'GetMeter: the meter with this id in the current scope. Errors: 55000 no tenant, P0002 unknown or deleted';

-- The listing engine behind list_meters and list_all_meters ("limit" NULL = no limit).
-- The sort column is chosen by CASE expressions, never by building SQL from the argument.
CREATE FUNCTION meter.list_meters_page(
	event_name text, meter_ids text[], status meter.status,
	start_time timestamptz, end_time timestamptz, sort text, "order" text,
	"limit" integer, "offset" integer)
RETURNS SETOF meter.meters
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	tenant text := meter.current_tenant();
	environment text := meter.current_environment();
	sort_by text := pg_catalog.lower(COALESCE(list_meters_page.sort, 'created_at'));
	direction text := pg_catalog.lower(COALESCE(list_meters_page."order", 'desc'));
	up boolean;
BEGIN
	IF sort_by NOT IN ('created_at', 'updated_at', 'name', 'event_name') THEN
		RAISE EXCEPTION 'invalid sort field'
			USING ERRCODE = 'invalid_parameter_value',
				DETAIL = format('Got sort => %s.', pg_catalog.to_json(list_meters_page.sort)),
				HINT = 'Sort by created_at, updated_at, name or event_name.';
	END IF;
	IF direction NOT IN ('asc', 'desc') THEN
		RAISE EXCEPTION 'invalid sort order'
			USING ERRCODE = 'invalid_parameter_value',
				DETAIL = format('Got "order" => %s.', pg_catalog.to_json(list_meters_page."order")),
				HINT = 'Use "order" => ''asc'' or ''desc''.';
	END IF;
	up := direction = 'asc';
	IF list_meters_page.end_time < list_meters_page.start_time THEN
		RAISE EXCEPTION 'end_time must not be before start_time'
			USING ERRCODE = 'invalid_parameter_value',
				DETAIL = format('Got start_time %s and end_time %s.', pg_catalog.to_json(list_meters_page.start_time), pg_catalog.to_json(list_meters_page.end_time)),
				HINT = 'Swap the two, or leave either out for an open-ended range (the range is inclusive on created_at).';
	END IF;

	RETURN QUERY
	SELECT m.*
	FROM meter.meters AS m
	WHERE m.tenant_id = tenant AND m.environment_id = environment
		AND (list_meters_page.event_name IS NULL OR m.event_name = list_meters_page.event_name)
		AND (list_meters_page.meter_ids IS NULL OR m.id = ANY (list_meters_page.meter_ids))
		AND CASE WHEN list_meters_page.status IS NULL THEN m.status <> 'deleted'
			ELSE m.status = list_meters_page.status END
		AND (list_meters_page.start_time IS NULL OR m.created_at >= list_meters_page.start_time)
		AND (list_meters_page.end_time IS NULL OR m.created_at <= list_meters_page.end_time)
	ORDER BY
		CASE WHEN sort_by = 'created_at' AND up THEN m.created_at END ASC,
		CASE WHEN sort_by = 'created_at' AND NOT up THEN m.created_at END DESC,
		CASE WHEN sort_by = 'updated_at' AND up THEN m.updated_at END ASC,
		CASE WHEN sort_by = 'updated_at' AND NOT up THEN m.updated_at END DESC,
		CASE WHEN sort_by = 'name' AND up THEN m.name END ASC,
		CASE WHEN sort_by = 'name' AND NOT up THEN m.name END DESC,
		CASE WHEN sort_by = 'event_name' AND up THEN m.event_name END ASC,
		CASE WHEN sort_by = 'event_name' AND NOT up THEN m.event_name END DESC,
		CASE WHEN up THEN m.id END ASC,
		CASE WHEN NOT up THEN m.id END DESC
	LIMIT list_meters_page."limit" OFFSET COALESCE(list_meters_page."offset", 0);
END
$$;
COMMENT ON FUNCTION meter.list_meters_page(text, text[], meter.status, timestamptz, timestamptz, text, text, integer, integer) IS
	'Internal: the listing behind meter.list_meters and meter.list_all_meters (limit NULL = all); call those instead';

CREATE FUNCTION meter.list_meters(
	event_name text DEFAULT NULL,
	meter_ids text[] DEFAULT NULL,
	status meter.status DEFAULT NULL,
	start_time timestamptz DEFAULT NULL,
	end_time timestamptz DEFAULT NULL,
	sort text DEFAULT 'created_at',
	"order" text DEFAULT 'desc',
	"limit" integer DEFAULT 50,
	"offset" integer DEFAULT 0)
RETURNS SETOF meter.meters
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	tenant text := meter.current_tenant();
	page_size integer := COALESCE(list_meters."limit", 50);
	skip integer := COALESCE(list_meters."offset", 0);
BEGIN
	IF page_size < 1 OR page_size > 1000 THEN
		RAISE EXCEPTION 'limit must be between 1 and 1000'
			USING ERRCODE = 'invalid_parameter_value',
				DETAIL = format('Got "limit" => %s.', page_size),
				HINT = 'Page through longer lists with "offset", or use meter.list_all_meters().';
	END IF;
	IF skip < 0 THEN
		RAISE EXCEPTION 'offset must not be negative'
			USING ERRCODE = 'invalid_parameter_value',
				DETAIL = format('Got "offset" => %s.', skip),
				HINT = 'Use "offset" => 0 for the first page.';
	END IF;
	RETURN QUERY
	SELECT * FROM meter.list_meters_page(list_meters.event_name, list_meters.meter_ids,
		list_meters.status, list_meters.start_time, list_meters.end_time,
		list_meters.sort, list_meters."order", page_size, skip);
END
$$;
COMMENT ON FUNCTION meter.list_meters(text, text[], meter.status, timestamptz, timestamptz, text, text, integer, integer) IS
	'List: one page of the meters of the current scope (no status → published and archived; created_at range inclusive; ties by id). Errors: 55000, 22023 bad limit/offset/sort/order/range';

CREATE FUNCTION meter.list_all_meters(
	event_name text DEFAULT NULL,
	meter_ids text[] DEFAULT NULL,
	status meter.status DEFAULT NULL,
	start_time timestamptz DEFAULT NULL,
	end_time timestamptz DEFAULT NULL,
	sort text DEFAULT 'created_at',
	"order" text DEFAULT 'desc')
RETURNS SETOF meter.meters
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	tenant text := meter.current_tenant();
BEGIN
	RETURN QUERY
	SELECT * FROM meter.list_meters_page(list_all_meters.event_name, list_all_meters.meter_ids,
		list_all_meters.status, list_all_meters.start_time, list_all_meters.end_time,
		list_all_meters.sort, list_all_meters."order", NULL, 0);
END
$$;
COMMENT ON FUNCTION meter.list_all_meters(text, text[], meter.status, timestamptz, timestamptz, text, text) IS
	'ListAll: every meter of the current scope that list_meters would page through. Errors: 55000, 22023 bad sort/order/range';

CREATE FUNCTION meter.count_meters(
	event_name text DEFAULT NULL,
	meter_ids text[] DEFAULT NULL,
	status meter.status DEFAULT NULL,
	start_time timestamptz DEFAULT NULL,
	end_time timestamptz DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	tenant text := meter.current_tenant();
	environment text := meter.current_environment();
	total bigint;
BEGIN
	IF count_meters.end_time < count_meters.start_time THEN
		RAISE EXCEPTION 'end_time must not be before start_time'
			USING ERRCODE = 'invalid_parameter_value',
				DETAIL = format('Got start_time %s and end_time %s.', pg_catalog.to_json(count_meters.start_time), pg_catalog.to_json(count_meters.end_time)),
				HINT = 'Swap the two, or leave either out for an open-ended range (the range is inclusive on created_at).';
	END IF;
	SELECT pg_catalog.count(*) INTO total
	FROM meter.meters AS m
	WHERE m.tenant_id = tenant AND m.environment_id = environment
		AND (count_meters.event_name IS NULL OR m.event_name = count_meters.event_name)
		AND (count_meters.meter_ids IS NULL OR m.id = ANY (count_meters.meter_ids))
		AND CASE WHEN count_meters.status IS NULL THEN m.status <> 'deleted'
			ELSE m.status = count_meters.status END
		AND (count_meters.start_time IS NULL OR m.created_at >= count_meters.start_time)
		AND (count_meters.end_time IS NULL OR m.created_at <= count_meters.end_time);
	RETURN total;
END
$$;
COMMENT ON FUNCTION meter.count_meters(text, text[], meter.status, timestamptz, timestamptz) IS
	'Count: how many meters list_all_meters would return for the same filters. Errors: 55000, 22023 bad range';

CREATE FUNCTION meter.disable_meter(id text)
RETURNS meter.meters
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	tenant text := meter.current_tenant();
	environment text := meter.current_environment();
	changed meter.meters;
BEGIN
	IF disable_meter.id IS NULL THEN
		RAISE EXCEPTION 'id is required'
			USING ERRCODE = 'invalid_parameter_value',
				DETAIL = 'The meter id is NULL.',
				HINT = 'Pass the id of a meter; meter.list_meters() shows the meters of the current scope.';
	END IF;
	UPDATE meter.meters AS m SET status = 'archived'
	WHERE m.id = disable_meter.id AND m.tenant_id = tenant AND m.environment_id = environment
		AND m.status = 'published'
	RETURNING m.* INTO changed;
	IF FOUND THEN
		RETURN changed;
	END IF;
	-- Already archived: nothing to do (idempotent; updated_at stays).
	SELECT m.* INTO changed
	FROM meter.meters AS m
	WHERE m.id = disable_meter.id AND m.tenant_id = tenant AND m.environment_id = environment
		AND m.status = 'archived';
	IF NOT FOUND THEN
		RAISE EXCEPTION 'meter "%" not found', disable_meter.id
			USING ERRCODE = 'no_data_found',
				DETAIL = format('No meter with this id exists in tenant %s, environment %s (deleted meters count as not found).',
					pg_catalog.to_json(tenant), pg_catalog.to_json(environment)),
				HINT = 'Check the id and the settings meter.tenant_id and meter.environment_id; meter.list_meters() shows the meters of the current scope.';
	END IF;
	RETURN changed;
END
$$;
COMMENT ON FUNCTION meter.disable_meter(text) IS
	'DisableMeter: status archived (stops counting; usage history stays); idempotent. Errors: 55000 no tenant, P0002 unknown or deleted';

CREATE FUNCTION meter.update_meter(id text, filters meter.filters)
RETURNS meter.meters
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	tenant text := meter.current_tenant();
	environment text := meter.current_environment();
	changed meter.meters;
BEGIN
	IF update_meter.id IS NULL THEN
		RAISE EXCEPTION 'id is required'
			USING ERRCODE = 'invalid_parameter_value',
				DETAIL = 'The meter id is NULL.',
				HINT = 'Pass the id of a meter; meter.list_meters() shows the meters of the current scope.';
	END IF;
	IF update_meter.filters IS NULL THEN
		RAISE EXCEPTION 'filters cannot be null'
			USING ERRCODE = 'invalid_parameter_value',
				DETAIL = 'update_meter replaces the meter''s filters with the ones given.',
				HINT = 'Use ''[]'' for a meter that counts every event of its event name.';
	END IF;
	UPDATE meter.meters AS m SET filters = update_meter.filters
	WHERE m.id = update_meter.id AND m.tenant_id = tenant AND m.environment_id = environment
		AND m.status <> 'deleted'
	RETURNING m.* INTO changed;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'meter "%" not found', update_meter.id
			USING ERRCODE = 'no_data_found',
				DETAIL = format('No meter with this id exists in tenant %s, environment %s (deleted meters count as not found).',
					pg_catalog.to_json(tenant), pg_catalog.to_json(environment)),
				HINT = 'Check the id and the settings meter.tenant_id and meter.environment_id; meter.list_meters() shows the meters of the current scope.';
	END IF;
	RETURN changed;
END
$$;
COMMENT ON FUNCTION meter.update_meter(text, meter.filters) IS
	'UpdateMeter: replaces the filters (''[]'' allowed) of a published or archived meter. Errors: 55000 no tenant, 22023 NULL filters, P0002 unknown or deleted';

-- ── Events (SPEC §7) ────────────────────────────────────────────────────────────────
-- FlexPrice's Event. A re-sent event (same tenant, environment and id) is a duplicate and
-- counts once, forever: the primary key is the dedup, with no time window.
CREATE TABLE meter.events (
	id text COLLATE "C" NOT NULL DEFAULT meter.new_id('event'),
	tenant_id text COLLATE "C" NOT NULL DEFAULT meter.current_tenant(),
	environment_id text COLLATE "C" NOT NULL DEFAULT meter.current_environment(),
	event_name text COLLATE "C" NOT NULL,
	customer_id text COLLATE "C",
	external_customer_id text COLLATE "C",
	source text,
	"timestamp" timestamptz NOT NULL DEFAULT pg_catalog.now(),
	ingested_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	properties jsonb NOT NULL DEFAULT '{}',
	PRIMARY KEY (tenant_id, environment_id, id),
	CONSTRAINT events_tenant_not_empty CHECK (tenant_id <> ''),
	CONSTRAINT events_properties_object CHECK (pg_catalog.jsonb_typeof(properties) = 'object')
);
COMMENT ON TABLE meter.events IS
	'Raw usage events (FlexPrice''s Event); tracked by meter.track_usage()';
-- Recomputations and usage_from_events read one event name over a time range.
CREATE INDEX events_name_time_idx ON meter.events (tenant_id, environment_id, event_name, "timestamp");

ALTER TABLE meter.events ENABLE ROW LEVEL SECURITY;
CREATE POLICY events_scope ON meter.events
	USING (tenant_id OPERATOR(pg_catalog.=) pg_catalog.current_setting('meter.tenant_id', true)
		AND environment_id OPERATOR(pg_catalog.=) COALESCE(pg_catalog.current_setting('meter.environment_id', true), ''));
SELECT pg_catalog.pg_extension_config_dump('meter.events', '');

-- ── Ingestion (SPEC §7) ─────────────────────────────────────────────────────────────
-- FlexPrice's ingest API as a function: one event object or an array of them, validated
-- as a whole, written by one INSERT … ON CONFLICT DO NOTHING (a re-sent id is a duplicate).
-- Not STRICT: NULL is an error, not an empty result a client could mistake for success.
CREATE FUNCTION meter.ingest(events jsonb)
	RETURNS TABLE (accepted integer, duplicates integer)
	AS 'MODULE_PATHNAME', 'meter_ingest'
	LANGUAGE C VOLATILE PARALLEL UNSAFE
	SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION meter.ingest(jsonb) IS
	'Store FlexPrice events (an object or an array) in meter.events for the current tenant; returns rows accepted and duplicates skipped';

-- ── Tracked tables (SPEC §7) ────────────────────────────────────────────────────────
-- Event tables whose rows meter.track_usage() turns into rollups. A meter's usage is the
-- sum over all of them; usage_from_events, verify and rebuild read every one.
CREATE TABLE meter.tracked_tables (
	relid regclass PRIMARY KEY,
	tracked_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	tracked_by text DEFAULT meter.current_user_id()
);
COMMENT ON TABLE meter.tracked_tables IS
	'Event tables tracked by meter.track_usage(); meter.events is tracked from the start';
INSERT INTO meter.tracked_tables (relid, tracked_by) VALUES ('meter.events', 'extension');
-- The extension's own row is recreated by CREATE EXTENSION; dump only users' tables.
SELECT pg_catalog.pg_extension_config_dump('meter.tracked_tables',
	'WHERE relid OPERATOR(pg_catalog.<>) ''meter.events''::pg_catalog.regclass');

-- ── Rollups (SPEC §7, §8) ───────────────────────────────────────────────────────────
-- One row per (meter, customer, 15-minute bucket): everything every aggregation type needs,
-- so that usage over any window in any time zone (offsets are multiples of 15 minutes) is
-- a sum over whole buckets. Kept exact by meter.track_usage() in the event's transaction.
CREATE TABLE meter.rollups (
	tenant_id text COLLATE "C" NOT NULL,
	environment_id text COLLATE "C" NOT NULL,
	meter_id text COLLATE "C" NOT NULL,
	customer_id text COLLATE "C" NOT NULL,            -- '' when the event had none
	external_customer_id text COLLATE "C" NOT NULL,   -- '' when the event had none
	bucket timestamptz NOT NULL,          -- start of the UTC-aligned 15-minute bucket
	events bigint NOT NULL,               -- events the meter counted (matched)
	n bigint NOT NULL,                    -- of those, events with a usable value
	sum numeric,                          -- Σ value
	sum_vt numeric,                       -- Σ value × epoch seconds of the event (WEIGHTED_SUM)
	min numeric,
	max numeric,
	latest_at timestamptz,                -- greatest timestamp with a usable value
	latest_value numeric,                 -- its value (ties: the greatest)
	PRIMARY KEY (tenant_id, environment_id, meter_id, external_customer_id, customer_id, bucket)
);
COMMENT ON TABLE meter.rollups IS
	'Per-meter usage per customer and 15-minute bucket, maintained by meter.track_usage()';
-- The primary key serves queries by external customer id (FlexPrice's events carry it);
-- queries by customer_id use this index, which holds only rows that have one, so
-- events sent with an external id alone cost one index write per rollup, not two.
CREATE INDEX rollups_customer_idx
	ON meter.rollups (tenant_id, environment_id, meter_id, customer_id, bucket)
	WHERE customer_id OPERATOR(pg_catalog.<>) '';

-- COUNT_UNIQUE: the distinct values seen per (meter, customer, bucket), with how many
-- events carried each, so deletes stay exact.
CREATE TABLE meter.rollup_values (
	tenant_id text COLLATE "C" NOT NULL,
	environment_id text COLLATE "C" NOT NULL,
	meter_id text COLLATE "C" NOT NULL,
	customer_id text COLLATE "C" NOT NULL,
	external_customer_id text COLLATE "C" NOT NULL,
	bucket timestamptz NOT NULL,
	value text COLLATE "C" NOT NULL,                  -- number_canonical() for numbers, else the text
	refs bigint NOT NULL,
	PRIMARY KEY (tenant_id, environment_id, meter_id, external_customer_id, customer_id, bucket, value)
);
CREATE INDEX rollup_values_customer_idx
	ON meter.rollup_values (tenant_id, environment_id, meter_id, customer_id, bucket)
	WHERE customer_id OPERATOR(pg_catalog.<>) '';
COMMENT ON TABLE meter.rollup_values IS
	'Distinct values per meter, customer and bucket for COUNT_UNIQUE meters';

ALTER TABLE meter.rollups ENABLE ROW LEVEL SECURITY;
ALTER TABLE meter.rollup_values ENABLE ROW LEVEL SECURITY;
CREATE POLICY rollups_scope ON meter.rollups
	USING (tenant_id OPERATOR(pg_catalog.=) pg_catalog.current_setting('meter.tenant_id', true)
		AND environment_id OPERATOR(pg_catalog.=) COALESCE(pg_catalog.current_setting('meter.environment_id', true), ''));
CREATE POLICY rollup_values_scope ON meter.rollup_values
	USING (tenant_id OPERATOR(pg_catalog.=) pg_catalog.current_setting('meter.tenant_id', true)
		AND environment_id OPERATOR(pg_catalog.=) COALESCE(pg_catalog.current_setting('meter.environment_id', true), ''));
SELECT pg_catalog.pg_extension_config_dump('meter.rollups', '');
SELECT pg_catalog.pg_extension_config_dump('meter.rollup_values', '');

-- Events a meter matched but could not use (no usable value for its field): SPEC §7's
-- visible skip count, derived from the rollups (for COUNT meters n = events).
-- A view reads its tables with its owner's rights, and the owner bypasses row-level
-- security: the view applies the scope itself (like the policy), so that no role sees
-- another tenant's skips through it.
CREATE VIEW meter.skipped WITH (security_barrier) AS
	SELECT tenant_id, environment_id, meter_id, customer_id, external_customer_id, bucket,
		events OPERATOR(pg_catalog.-) n AS skipped
	FROM meter.rollups
	WHERE events OPERATOR(pg_catalog.<>) n
		AND tenant_id OPERATOR(pg_catalog.=) pg_catalog.current_setting('meter.tenant_id', true)
		AND environment_id OPERATOR(pg_catalog.=) COALESCE(pg_catalog.current_setting('meter.environment_id', true), '');
COMMENT ON VIEW meter.skipped IS
	'Events a meter matched but skipped for want of a usable value, per customer and bucket, in the current scope';

-- ── Rollups recomputed from the raw events (SPEC §7, §8) ────────────────────────────
-- The ground truth the tracking trigger must equal: meter.rebuild, meter.verify and the
-- trigger's recomputation of buckets whose events were updated or deleted call these.
-- (After 60_rollups.sql: they return its row types.)

-- The event tables a meter's usage covers: every tracked table, or the one given.
CREATE FUNCTION meter.event_tables(source regclass DEFAULT NULL)
RETURNS regclass[]
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	missing text[];
BEGIN
	IF source IS NULL THEN
		RETURN ARRAY(SELECT t.relid FROM meter.tracked_tables t ORDER BY t.relid::oid);
	END IF;
	SELECT array_agg(format('%I %s', c.name, c.type) ORDER BY c.ord) INTO missing
	FROM (VALUES (1, 'tenant_id', NULL), (2, 'environment_id', NULL), (3, 'event_name', NULL),
			(4, 'customer_id', NULL), (5, 'external_customer_id', NULL),
			(6, 'timestamp', 'timestamptz'::regtype), (7, 'properties', 'jsonb'::regtype))
		AS c(ord, name, type)
	WHERE NOT EXISTS (SELECT 1 FROM pg_attribute a
		WHERE a.attrelid = source AND a.attname = c.name AND a.attnum > 0
			AND NOT a.attisdropped AND (c.type IS NULL OR a.atttypid = c.type));
	IF missing IS NOT NULL THEN
		RAISE EXCEPTION 'source table % lacks event columns', source
			USING ERRCODE = 'invalid_parameter_value',
				DETAIL = format('Missing or of another type: %s.', array_to_string(missing, ', ')),
				HINT = 'An event table has the columns of meter.events: tenant_id, environment_id, event_name, customer_id, external_customer_id, "timestamp" timestamptz, properties jsonb.';
	END IF;
	RETURN ARRAY[source];
END
$$;
COMMENT ON FUNCTION meter.event_tables(regclass) IS
	'The event tables usage reads: every tracked table (source NULL), or source after checking its columns';

-- The SQL expression of the 15-minute UTC bucket of a timestamptz expression: the bucket
-- of the rollup contract, to_timestamp(floor(extract(epoch FROM ts) / 900) * 900), computed
-- with integer arithmetic (date_bin) where that is known to agree (from 2000 on).
CREATE FUNCTION meter.bucket_sql(ts text)
RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$
	SELECT pg_catalog.format('CASE WHEN %1$s >= ''2000-01-01 00:00:00+00''::timestamptz '
		'THEN date_bin(''15 minutes'', %1$s, ''2000-01-01 00:00:00+00''::timestamptz) '
		'ELSE to_timestamp(floor(extract(epoch FROM %1$s) / 900) * 900) END', ts)
$$;
COMMENT ON FUNCTION meter.bucket_sql(text) IS
	'Internal: SQL text of the 15-minute UTC bucket of a timestamptz expression (for EXECUTE)';

-- One SELECT per event table of the events of a meter in [lo, hi), as text for EXECUTE:
-- the columns customer_id and external_customer_id ('' for NULL), t and properties.
-- Parameters: $1 tenant, $2 environment, $3 event name, $4 filters, $5 lo, $6 hi.
-- Each part is one range scan of (tenant_id, environment_id, event_name, "timestamp").
-- Table names come from regclass output (quoted, schema-qualified unless visible), so
-- callers run the text under their own fixed search_path; STABLE for that reason.
CREATE FUNCTION meter.events_query(tables regclass[])
RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
	SELECT COALESCE(pg_catalog.string_agg(pg_catalog.format(
		'SELECT COALESCE(e.customer_id::text, '''') AS customer_id, '
		'COALESCE(e.external_customer_id::text, '''') AS external_customer_id, '
		'e."timestamp" AS t, e.properties '
		'FROM %s AS e WHERE e.tenant_id = $1 AND e.environment_id = $2 AND e.event_name = $3 '
		'AND e."timestamp" >= $5 AND e."timestamp" < $6 AND meter.matches($4, e.properties)',
		tbl), ' UNION ALL ' ORDER BY ord),
		'SELECT NULL::text AS customer_id, NULL::text AS external_customer_id, '
		'NULL::timestamptz AS t, NULL::jsonb AS properties WHERE false')
	FROM pg_catalog.unnest(tables) WITH ORDINALITY AS x(tbl, ord)
$$;
COMMENT ON FUNCTION meter.events_query(regclass[]) IS
	'Internal: the SQL text reading a meter''s events in a time range from the given tables';

CREATE FUNCTION meter.rollups_from_events(
	meter_id text,
	start_time timestamptz,
	end_time timestamptz,
	source regclass DEFAULT NULL)
RETURNS SETOF meter.rollups
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	m meter.meters := meter.get_meter(rollups_from_events.meter_id);
	kind meter.aggregation_type := meter.type_of(m.aggregation);
	-- the value of each event (v), and whether it counts in n (c; NULL = no)
	v text := CASE WHEN kind IN ('COUNT', 'COUNT_UNIQUE') THEN 'NULL::numeric'
		ELSE 'meter.numeric_value(e.properties, $7)' END;
	c text := CASE kind WHEN 'COUNT' THEN 'true'
		WHEN 'COUNT_UNIQUE' THEN 'CASE WHEN meter.unique_value(e.properties, $7) IS NOT NULL THEN true END'
		ELSE 'NULL::boolean' END;
	n text := CASE WHEN kind IN ('COUNT', 'COUNT_UNIQUE') THEN 'count(x.c)' ELSE 'count(x.v)' END;
BEGIN
	RETURN QUERY EXECUTE format($q$
		SELECT $1, $2, $8, x.customer_id, x.external_customer_id, x.bucket,
			count(*), %s, sum(x.v), sum(x.v * extract(epoch FROM x.t)), min(x.v), max(x.v),
			max(x.t) FILTER (WHERE x.v IS NOT NULL),
			(max(ARRAY[extract(epoch FROM x.t), x.v]) FILTER (WHERE x.v IS NOT NULL))[2]
		FROM (SELECT e.customer_id, e.external_customer_id, e.t, %s AS v, %s AS c, %s AS bucket
			FROM (%s) e) x
		GROUP BY x.customer_id, x.external_customer_id, x.bucket
		ORDER BY x.customer_id, x.external_customer_id, x.bucket$q$,
		n, v, c, meter.bucket_sql('e.t'), meter.events_query(meter.event_tables(source)))
	USING m.tenant_id, m.environment_id, m.event_name, m.filters,
		COALESCE(start_time, '-infinity'), COALESCE(end_time, 'infinity'),
		meter.field_of(m.aggregation), m.id;
END
$$;
COMMENT ON FUNCTION meter.rollups_from_events(text, timestamptz, timestamptz, regclass) IS
	'The meter.rollups rows of a meter of the current scope recomputed from the raw events in '
	'[start_time, end_time) of every tracked table (or of source); NULL bounds are unbounded. '
	'Pass 15-minute-aligned bounds to get whole buckets. Errors: 55000 no tenant, P0002 unknown meter';

CREATE FUNCTION meter.rollup_values_from_events(
	meter_id text,
	start_time timestamptz,
	end_time timestamptz,
	source regclass DEFAULT NULL)
RETURNS SETOF meter.rollup_values
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	m meter.meters := meter.get_meter(rollup_values_from_events.meter_id);
BEGIN
	IF meter.type_of(m.aggregation) <> 'COUNT_UNIQUE' THEN
		RETURN;
	END IF;
	RETURN QUERY EXECUTE format($q$
		SELECT $1, $2, $8, x.customer_id, x.external_customer_id, x.bucket, x.u, count(*)
		FROM (SELECT e.customer_id, e.external_customer_id,
				%s AS bucket, meter.unique_value(e.properties, $7) AS u
			FROM (%s) e) x
		WHERE x.u IS NOT NULL
		GROUP BY x.customer_id, x.external_customer_id, x.bucket, x.u
		ORDER BY x.customer_id, x.external_customer_id, x.bucket, x.u$q$,
		meter.bucket_sql('e.t'), meter.events_query(meter.event_tables(source)))
	USING m.tenant_id, m.environment_id, m.event_name, m.filters,
		COALESCE(start_time, '-infinity'), COALESCE(end_time, 'infinity'),
		meter.field_of(m.aggregation), m.id;
END
$$;
COMMENT ON FUNCTION meter.rollup_values_from_events(text, timestamptz, timestamptz, regclass) IS
	'The meter.rollup_values rows (COUNT_UNIQUE meters; none for other types) of a meter of the '
	'current scope recomputed from the raw events in [start_time, end_time) of every tracked table '
	'(or of source). Errors: 55000 no tenant, P0002 unknown meter';

-- ── Tracking: events → rollups (SPEC §7) ────────────────────────────────────────────
-- SECURITY DEFINER: whoever may insert, update or delete events (row-level security on
-- the event table decides which) gets the rollups of exactly those rows maintained,
-- without needing write access to the rollup tables themselves.
CREATE FUNCTION meter.track_usage() RETURNS trigger
	AS 'MODULE_PATHNAME', 'meter_track_usage' LANGUAGE C
	SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION meter.track_usage() IS
	'Trigger keeping meter.rollups exact: AFTER … FOR EACH ROW, or statement-level with transition tables';

CREATE FUNCTION meter.lock_tenant(tenant text) RETURNS void
	AS 'MODULE_PATHNAME', 'meter_lock_tenant' LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION meter.lock_tenant(text) IS
	'Exclusive per-tenant lock until commit: waits for in-flight tracking of the tenant''s events';

CREATE FUNCTION meter.rebuild_all() RETURNS bigint
	AS 'MODULE_PATHNAME', 'meter_rebuild_all' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION meter.rebuild_all() IS
	'meter.rebuild() in every tenant and environment with published meters the caller can see';

-- Recompute the given rollup keys of the current scope from the raw events. The trigger
-- calls it for buckets whose events were updated or deleted. Rows are written one key at
-- a time through the primary key: the inputs are small, and a join against the rollup
-- tables could be planned as a scan of every rollup of the tenant whenever the
-- statistics of these fast-growing tables are stale.
CREATE FUNCTION meter.refresh_rollups(meter_ids text[], customer_ids text[],
	external_customer_ids text[], buckets timestamptz[]) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	t text := meter.current_tenant();
	e text := meter.current_environment();
	run_meters text[];
	run_lo timestamptz[];
	run_hi timestamptz[];
	f record;
BEGIN
	-- Lock each key's row first (creating an empty one if needed): a concurrent insert
	-- into these buckets has then either committed, and the next statement sees it, or
	-- waits for this transaction.
	INSERT INTO meter.rollups AS r (tenant_id, environment_id, meter_id, customer_id,
		external_customer_id, bucket, events, n)
	SELECT t, e, k.m, k.c, k.x, k.b, 0, 0
	FROM unnest(meter_ids, customer_ids, external_customer_ids, buckets) AS k(m, c, x, b)
	ON CONFLICT (tenant_id, environment_id, meter_id, customer_id, external_customer_id, bucket)
	DO UPDATE SET events = r.events;

	-- Recompute per meter over runs of nearby buckets (one range scan each), not per bucket.
	SELECT array_agg(z.meter_id), array_agg(z.lo), array_agg(z.hi) INTO run_meters, run_lo, run_hi
	FROM (SELECT y.meter_id, min(y.bucket) AS lo, max(y.bucket) + interval '15 minutes' AS hi
	FROM (SELECT x.meter_id, x.bucket, sum(x.brk) OVER (PARTITION BY x.meter_id ORDER BY x.bucket) AS grp
		FROM (SELECT b.meter_id, b.bucket,
				CASE WHEN b.bucket - lag(b.bucket) OVER (PARTITION BY b.meter_id ORDER BY b.bucket)
					<= interval '6 hours' THEN 0 ELSE 1 END AS brk
			FROM (SELECT DISTINCT k.m AS meter_id, k.b AS bucket
				FROM unnest(meter_ids, buckets) AS k(m, b)) b) x) y
	GROUP BY y.meter_id, y.grp) z;

	FOR f IN
		WITH fresh AS MATERIALIZED (
			SELECT x.* FROM unnest(run_meters, run_lo, run_hi) AS r(meter_id, lo, hi)
			CROSS JOIN LATERAL meter.rollups_from_events(r.meter_id, r.lo, r.hi) x)
		SELECT k.m, k.c, k.x, k.b, fr.events, fr.n, fr.sum, fr.sum_vt, fr.min, fr.max,
			fr.latest_at, fr.latest_value
		FROM unnest(meter_ids, customer_ids, external_customer_ids, buckets) AS k(m, c, x, b)
		LEFT JOIN fresh fr ON fr.meter_id = k.m AND fr.customer_id = k.c
			AND fr.external_customer_id = k.x AND fr.bucket = k.b
	LOOP
		IF f.events IS NULL THEN
			DELETE FROM meter.rollups r WHERE r.tenant_id = t AND r.environment_id = e
				AND r.meter_id = f.m AND r.external_customer_id = f.x AND r.customer_id = f.c
				AND r.bucket = f.b;
		ELSE
			UPDATE meter.rollups r SET events = f.events, n = f.n, sum = f.sum,
				sum_vt = f.sum_vt, min = f.min, max = f.max, latest_at = f.latest_at,
				latest_value = f.latest_value
			WHERE r.tenant_id = t AND r.environment_id = e AND r.meter_id = f.m
				AND r.external_customer_id = f.x AND r.customer_id = f.c AND r.bucket = f.b;
		END IF;
		-- Distinct values (COUNT_UNIQUE): the row lock above also guards these.
		DELETE FROM meter.rollup_values v WHERE v.tenant_id = t AND v.environment_id = e
			AND v.meter_id = f.m AND v.external_customer_id = f.x AND v.customer_id = f.c
			AND v.bucket = f.b;
	END LOOP;

	INSERT INTO meter.rollup_values
	SELECT x.* FROM unnest(run_meters, run_lo, run_hi) AS r(meter_id, lo, hi)
	CROSS JOIN LATERAL meter.rollup_values_from_events(r.meter_id, r.lo, r.hi) x
	WHERE EXISTS (SELECT 1 FROM unnest(meter_ids, customer_ids, external_customer_ids, buckets)
		AS k(m, c, x, b) WHERE x.meter_id = k.m AND x.customer_id = k.c
		AND x.external_customer_id = k.x AND x.bucket = k.b);
END $$;
COMMENT ON FUNCTION meter.refresh_rollups(text[], text[], text[], timestamptz[]) IS
	'Recompute the given rollups of the current scope from the raw events (used by the trigger)';

CREATE TRIGGER meter_track_insert AFTER INSERT ON meter.events
	REFERENCING NEW TABLE AS meter_new FOR EACH STATEMENT EXECUTE FUNCTION meter.track_usage();
CREATE TRIGGER meter_track_update AFTER UPDATE ON meter.events
	REFERENCING OLD TABLE AS meter_old NEW TABLE AS meter_new
	FOR EACH STATEMENT EXECUTE FUNCTION meter.track_usage();
CREATE TRIGGER meter_track_delete AFTER DELETE ON meter.events
	REFERENCING OLD TABLE AS meter_old FOR EACH STATEMENT EXECUTE FUNCTION meter.track_usage();
CREATE TRIGGER meter_track_truncate AFTER TRUNCATE ON meter.events
	FOR EACH STATEMENT EXECUTE FUNCTION meter.track_usage();

-- ── Meter changes keep rollups in line (SPEC §6) ────────────────────────────────────
-- SECURITY DEFINER for the same reason: a role that may define a meter gets its rollups
-- rebuilt without write access to the rollup tables.
CREATE FUNCTION meter.on_meter_change() RETURNS trigger
	AS 'MODULE_PATHNAME', 'meter_on_meter_change' LANGUAGE C
	SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION meter.on_meter_change() IS
	'Rebuilds a created, redefined or re-published meter from the raw events; drops a deleted meter''s rollups';
CREATE TRIGGER meters_rollups AFTER INSERT OR UPDATE OR DELETE ON meter.meters
	FOR EACH ROW EXECUTE FUNCTION meter.on_meter_change();

-- ── rebuild and verify (SPEC §8) ────────────────────────────────────────────────────
-- Row types, so that the argument meter_id and the result column meter_id can coexist.
CREATE TYPE meter.rebuilt AS (meter_id text, rollups bigint, unique_values bigint);
COMMENT ON TYPE meter.rebuilt IS 'A meter meter.rebuild() recomputed, and how many rows it wrote';
CREATE TYPE meter.difference AS (meter_id text, customer_id text, external_customer_id text,
	bucket timestamptz, what text, stored text, expected text);
COMMENT ON TYPE meter.difference IS
	'A rollup value meter.verify() found different from the raw events: where, what, stored and expected';

CREATE FUNCTION meter.rebuild(meter_id text DEFAULT NULL)
RETURNS SETOF meter.rebuilt
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	t text := meter.current_tenant();
	e text := meter.current_environment();
	m record;
	n_rollups bigint;
	n_values bigint;
	result meter.rebuilt;
BEGIN
	IF rebuild.meter_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM meter.meters x
		WHERE x.id = rebuild.meter_id AND x.tenant_id = t AND x.environment_id = e
		AND x.status <> 'deleted') THEN
		RAISE EXCEPTION 'meter "%" not found', rebuild.meter_id USING ERRCODE = 'P0002',
			HINT = 'meter.list_meters() lists the meters of the current tenant and environment.';
	END IF;
	PERFORM meter.lock_tenant(t);
	FOR m IN SELECT x.id FROM meter.meters x WHERE x.tenant_id = t AND x.environment_id = e
		AND x.status = 'published' AND (rebuild.meter_id IS NULL OR x.id = rebuild.meter_id)
		ORDER BY x.id
	LOOP
		DELETE FROM meter.rollups r WHERE r.tenant_id = t AND r.environment_id = e AND r.meter_id = m.id;
		DELETE FROM meter.rollup_values v WHERE v.tenant_id = t AND v.environment_id = e AND v.meter_id = m.id;
		INSERT INTO meter.rollups SELECT * FROM meter.rollups_from_events(m.id, '-infinity', 'infinity');
		GET DIAGNOSTICS n_rollups = ROW_COUNT;
		INSERT INTO meter.rollup_values SELECT * FROM meter.rollup_values_from_events(m.id, '-infinity', 'infinity');
		GET DIAGNOSTICS n_values = ROW_COUNT;
		result := ROW(m.id, n_rollups, n_values);
		RETURN NEXT result;
	END LOOP;
END $$;
COMMENT ON FUNCTION meter.rebuild(text) IS
	'Recompute the rollups of one published meter (or all of the current scope) from the raw events of every tracked table';

CREATE FUNCTION meter.verify(meter_id text DEFAULT NULL)
RETURNS SETOF meter.difference
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	t text := meter.current_tenant();
	e text := meter.current_environment();
	m record;
BEGIN
	IF verify.meter_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM meter.meters x
		WHERE x.id = verify.meter_id AND x.tenant_id = t AND x.environment_id = e
		AND x.status <> 'deleted') THEN
		RAISE EXCEPTION 'meter "%" not found', verify.meter_id USING ERRCODE = 'P0002',
			HINT = 'meter.list_meters() lists the meters of the current tenant and environment.';
	END IF;
	FOR m IN SELECT x.id FROM meter.meters x WHERE x.tenant_id = t AND x.environment_id = e
		AND x.status = 'published' AND (verify.meter_id IS NULL OR x.id = verify.meter_id)
		ORDER BY x.id
	LOOP
		RETURN QUERY
		WITH s AS (SELECT * FROM meter.rollups r WHERE r.tenant_id = t
				AND r.environment_id = e AND r.meter_id = m.id),
			f AS (SELECT * FROM meter.rollups_from_events(m.id, '-infinity', 'infinity'))
		SELECT m.id, COALESCE(s.customer_id, f.customer_id),
			COALESCE(s.external_customer_id, f.external_customer_id), COALESCE(s.bucket, f.bucket),
			d.what, d.stored, d.expected
		FROM s FULL JOIN f ON s.customer_id = f.customer_id
			AND s.external_customer_id = f.external_customer_id AND s.bucket = f.bucket
		CROSS JOIN LATERAL (VALUES
			('events', s.events::text, f.events::text, s.events IS DISTINCT FROM f.events),
			('n', s.n::text, f.n::text, s.n IS DISTINCT FROM f.n),
			('sum', s.sum::text, f.sum::text, s.sum IS DISTINCT FROM f.sum),
			('sum_vt', s.sum_vt::text, f.sum_vt::text, s.sum_vt IS DISTINCT FROM f.sum_vt),
			('min', s.min::text, f.min::text, s.min IS DISTINCT FROM f.min),
			('max', s.max::text, f.max::text, s.max IS DISTINCT FROM f.max),
			('latest_at', s.latest_at::text, f.latest_at::text, s.latest_at IS DISTINCT FROM f.latest_at),
			('latest_value', s.latest_value::text, f.latest_value::text,
				s.latest_value IS DISTINCT FROM f.latest_value)
		) AS d(what, stored, expected, differs)
		WHERE d.differs
		ORDER BY 2, 3, 4, 5;

		RETURN QUERY
		WITH s AS (SELECT * FROM meter.rollup_values v WHERE v.tenant_id = t
				AND v.environment_id = e AND v.meter_id = m.id),
			f AS (SELECT * FROM meter.rollup_values_from_events(m.id, '-infinity', 'infinity'))
		SELECT m.id, COALESCE(s.customer_id, f.customer_id),
			COALESCE(s.external_customer_id, f.external_customer_id), COALESCE(s.bucket, f.bucket),
			'refs of value ' || quote_literal(COALESCE(s.value, f.value)), s.refs::text, f.refs::text
		FROM s FULL JOIN f ON s.customer_id = f.customer_id
			AND s.external_customer_id = f.external_customer_id AND s.bucket = f.bucket
			AND s.value = f.value
		WHERE s.refs IS DISTINCT FROM f.refs
		ORDER BY 2, 3, 4, 5;
	END LOOP;
END $$;
COMMENT ON FUNCTION meter.verify(text) IS
	'Every rollup of the published meters of the current scope that differs from a recomputation from the raw events; empty when all is well';

-- ── Tracking users' own event tables (SPEC §7) ──────────────────────────────────────
CREATE FUNCTION meter.track(tbl regclass) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	c record;
	found_type text;
BEGIN
	IF (SELECT relkind FROM pg_class WHERE oid = tbl) NOT IN ('r', 'p') THEN
		RAISE EXCEPTION '% is not a table', tbl USING ERRCODE = '42809',
			HINT = 'Track the table the events are inserted into.';
	END IF;
	FOR c IN SELECT * FROM (VALUES ('tenant_id', 'text'), ('environment_id', 'text'),
		('event_name', 'text'), ('customer_id', 'text'), ('external_customer_id', 'text'),
		('timestamp', 'timestamp with time zone'), ('properties', 'jsonb')) AS v(name, type)
	LOOP
		SELECT format_type(a.atttypid, a.atttypmod) INTO found_type FROM pg_attribute a
		WHERE a.attrelid = tbl AND a.attname = c.name AND a.attnum > 0 AND NOT a.attisdropped;
		IF NOT FOUND THEN
			RAISE EXCEPTION 'table % has no column "%"', tbl, c.name USING ERRCODE = '42703',
				DETAIL = 'A tracked table has the event columns of meter.events.',
				HINT = format('ALTER TABLE %s ADD COLUMN %I %s', tbl, c.name, c.type);
		ELSIF found_type <> c.type THEN
			RAISE EXCEPTION 'column "%" of table % is %, not %', c.name, tbl, found_type, c.type
				USING ERRCODE = '42804',
				HINT = format('ALTER TABLE %s ALTER COLUMN %I TYPE %s', tbl, c.name, c.type);
		END IF;
	END LOOP;
	IF EXISTS (SELECT 1 FROM meter.tracked_tables WHERE relid = tbl) THEN
		RAISE NOTICE 'table % is already tracked', tbl;
		RETURN;
	END IF;
	EXECUTE format('CREATE TRIGGER meter_track_insert AFTER INSERT ON %s REFERENCING NEW TABLE AS meter_new FOR EACH STATEMENT EXECUTE FUNCTION meter.track_usage()', tbl);
	EXECUTE format('CREATE TRIGGER meter_track_update AFTER UPDATE ON %s REFERENCING OLD TABLE AS meter_old NEW TABLE AS meter_new FOR EACH STATEMENT EXECUTE FUNCTION meter.track_usage()', tbl);
	EXECUTE format('CREATE TRIGGER meter_track_delete AFTER DELETE ON %s REFERENCING OLD TABLE AS meter_old FOR EACH STATEMENT EXECUTE FUNCTION meter.track_usage()', tbl);
	EXECUTE format('CREATE TRIGGER meter_track_truncate AFTER TRUNCATE ON %s FOR EACH STATEMENT EXECUTE FUNCTION meter.track_usage()', tbl);
	INSERT INTO meter.tracked_tables (relid) VALUES (tbl);
	-- The table's existing events now count: bring every meter in line.
	PERFORM meter.rebuild_all();
END $$;
COMMENT ON FUNCTION meter.track(regclass) IS
	'Check a table''s event columns, attach meter.track_usage() and count its events in every meter''s usage';

CREATE FUNCTION meter.untrack(tbl regclass) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF tbl = 'meter.events'::regclass THEN
		RAISE EXCEPTION 'meter.events is always tracked' USING ERRCODE = '22023',
			HINT = 'Leave it empty if your events live in a table of your own.';
	END IF;
	IF NOT EXISTS (SELECT 1 FROM meter.tracked_tables WHERE relid = tbl) THEN
		RAISE EXCEPTION 'table % is not tracked', tbl USING ERRCODE = '22023',
			HINT = 'SELECT relid FROM meter.tracked_tables lists the tracked tables.';
	END IF;
	EXECUTE format('DROP TRIGGER IF EXISTS meter_track_insert ON %s', tbl);
	EXECUTE format('DROP TRIGGER IF EXISTS meter_track_update ON %s', tbl);
	EXECUTE format('DROP TRIGGER IF EXISTS meter_track_delete ON %s', tbl);
	EXECUTE format('DROP TRIGGER IF EXISTS meter_track_truncate ON %s', tbl);
	DELETE FROM meter.tracked_tables WHERE relid = tbl;
	PERFORM meter.rebuild_all();
END $$;
COMMENT ON FUNCTION meter.untrack(regclass) IS
	'Detach meter.track_usage() from a table and take its events out of every meter''s usage';

-- ── Matching meters (SPEC §3) ───────────────────────────────────────────────────────
CREATE FUNCTION meter.matching_meters(event_name text, properties jsonb)
	RETURNS SETOF meter.meters
	AS 'MODULE_PATHNAME', 'meter_matching_meters' LANGUAGE C STABLE STRICT;
COMMENT ON FUNCTION meter.matching_meters(text, jsonb) IS
	'The published meters of the current scope that count an event of this name and properties';

CREATE FUNCTION meter.explain_match(meter_id text, event_name text, properties jsonb)
	RETURNS text
	AS 'MODULE_PATHNAME', 'meter_explain_match' LANGUAGE C STABLE STRICT;
COMMENT ON FUNCTION meter.explain_match(text, text, jsonb) IS
	'Why an event does or does not count for a meter, in words';

-- ── Usage windows (SPEC §8) ─────────────────────────────────────────────────────────
CREATE FUNCTION meter.windows(
	start_time timestamptz,
	end_time timestamptz,
	window_size meter.window_size DEFAULT NULL,
	timezone text DEFAULT 'UTC',
	billing_anchor timestamptz DEFAULT NULL)
RETURNS TABLE (window_start timestamptz, window_end timestamptz)
	AS 'MODULE_PATHNAME', 'meter_windows'
	LANGUAGE C IMMUTABLE PARALLEL SAFE ROWS 100;
COMMENT ON FUNCTION meter.windows(timestamptz, timestamptz, meter.window_size, text, timestamptz) IS
	'The windows partitioning [start_time, end_time), aligned to the wall clock of an IANA time zone '
	'(DST-correct); WEEK starts Monday, MONTH at the billing anchor''s local day and time of day; '
	'NULL window_size gives one window';

-- ── Usage queries (SPEC §8) ─────────────────────────────────────────────────────────
-- meter.usage serves whole 15-minute buckets from meter.rollups and reads the raw events
-- only of buckets that a boundary (a window or bucket_size edge, start_time, end_time)
-- cuts; meter.usage_from_events reads the raw events only. Both run the same query
-- (meter.usage_compute) and finish each row with the same function (meter.usage_value),
-- so they agree exactly.

-- The value of one usage row from the aggregated parts of its events (the one place
-- where the aggregation types differ). For reset_usage NEVER the caller passes running
-- totals (everything before window_end) and prior_sum, the Σ value of the events before
-- window_start; own_sum and own_sum_vt are always the row's own window's.
-- Inlined into the caller's query: operators are schema-qualified instead of SET search_path
-- (EXTRACT is syntax for pg_catalog.extract), and it is STABLE like extract(epoch FROM
-- timestamptz) (an IMMUTABLE function calling a STABLE one is not inlined).
CREATE FUNCTION meter.usage_value(
	aggregation meter.aggregation,
	window_start timestamptz,
	window_end timestamptz,
	events numeric,
	n numeric,
	sum numeric,
	min numeric,
	max numeric,
	latest_value numeric,
	uniques numeric,
	bucketed numeric,
	own_sum numeric,
	own_sum_vt numeric,
	prior_sum numeric)
RETURNS numeric
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
	SELECT CASE
		WHEN meter.type_of(aggregation) OPERATOR(pg_catalog.=) 'COUNT' THEN COALESCE(events, 0)
		WHEN meter.type_of(aggregation) OPERATOR(pg_catalog.=) 'SUM' THEN COALESCE(sum, 0)
		-- like avg(numeric): numeric_div of the sum by the number of values
		WHEN meter.type_of(aggregation) OPERATOR(pg_catalog.=) 'AVG' THEN
			CASE WHEN n OPERATOR(pg_catalog.>) 0 THEN sum OPERATOR(pg_catalog./) n END
		WHEN meter.type_of(aggregation) OPERATOR(pg_catalog.=) 'COUNT_UNIQUE' THEN COALESCE(uniques, 0)
		WHEN meter.type_of(aggregation) OPERATOR(pg_catalog.=) 'MAX' THEN
			CASE WHEN meter.bucket_size_of(aggregation) IS NULL THEN max ELSE bucketed END
		WHEN meter.type_of(aggregation) OPERATOR(pg_catalog.=) 'MIN' THEN min
		WHEN meter.type_of(aggregation) OPERATOR(pg_catalog.=) 'LATEST' THEN latest_value
		WHEN meter.type_of(aggregation) OPERATOR(pg_catalog.=) 'SUM_WITH_MULTIPLIER' THEN
			COALESCE(sum OPERATOR(pg_catalog.*) meter.multiplier_of(aggregation), 0)
		-- Σ v·(E − t)/(E − S) = (E·Σv − Σ v·t)/(E − S) in epoch seconds; events before S
		-- (reset NEVER) count with t = S, i.e. fully
		WHEN meter.type_of(aggregation) OPERATOR(pg_catalog.=) 'WEIGHTED_SUM' THEN
			CASE WHEN own_sum IS NULL AND prior_sum IS NULL THEN 0
			-- (OPERATOR() gives every operator the same precedence: parenthesize all)
			ELSE ((EXTRACT(epoch FROM window_end) OPERATOR(pg_catalog.*)
					(COALESCE(own_sum, 0) OPERATOR(pg_catalog.+) COALESCE(prior_sum, 0)))
				OPERATOR(pg_catalog.-) (COALESCE(own_sum_vt, 0) OPERATOR(pg_catalog.+)
					(COALESCE(prior_sum, 0) OPERATOR(pg_catalog.*) EXTRACT(epoch FROM window_start))))
				OPERATOR(pg_catalog./) (EXTRACT(epoch FROM window_end)
					OPERATOR(pg_catalog.-) EXTRACT(epoch FROM window_start))
			END
	END
$$;
COMMENT ON FUNCTION meter.usage_value(meter.aggregation, timestamptz, timestamptz, numeric,
	numeric, numeric, numeric, numeric, numeric, numeric, numeric, numeric, numeric, numeric) IS
	'Internal: the usage value of one window from its aggregated parts (shared by usage and usage_from_events)';

-- The engine of meter.usage (from_rollups) and meter.usage_from_events (not from_rollups).
--
-- The rows are the windows of meter.windows(); for a MAX meter with bucket_size each
-- window is cut further into bucket_size buckets. Those pieces ("cells") are listed by
-- their lower bounds in `grid`, so width_bucket(t, grid) is the cell of an instant.
-- For reset_usage NEVER a first, hidden window [t0, start_time) holds everything before
-- start_time (t0 = the 15-minute bucket of the meter's earliest event).
--
-- Raw path: every event in [grid[1], end_time) of every event table, one range scan each.
-- Rollup path: a 15-minute bucket that no cell boundary cuts comes from meter.rollups
-- (one range scan of the rollups' primary key or external-customer index); the buckets
-- a boundary cuts (an unaligned start_time or end_time, a billing anchor at 10:07,
-- MINUTE windows or buckets, a time zone off UTC by other than a multiple of 15 minutes)
-- are read from the raw events, merged into as few ranges as possible.
CREATE FUNCTION meter.usage_compute(
	m meter.meters,
	start_time timestamptz,
	end_time timestamptz,
	customer_id text,
	external_customer_id text,
	window_size meter.window_size,
	timezone text,
	billing_anchor timestamptz,
	from_rollups boolean,
	source regclass)
RETURNS TABLE (window_start timestamptz, window_end timestamptz, value numeric)
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_column
DECLARE
	kind meter.aggregation_type := meter.type_of(m.aggregation);
	bsize meter.window_size;
	never boolean := m.reset_usage = 'NEVER';
	tables regclass[] := meter.event_tables(source);
	t0 timestamptz;
	hidden integer := 0;		-- 1 when the first window is the hidden [t0, start_time)
	ws timestamptz[];
	we timestamptz[];
	grid timestamptz[];
	cw integer[];				-- the window of each cell
	raw_lo timestamptz[];
	raw_hi timestamptz[];
	skip timestamptz[];			-- flat [lo, hi, lo, hi, …]: buckets the rollups must not serve
	v_expr text;
	u_expr text;
	vt_expr text;
	latest_expr text;
	who text := '';
	raw_q text;
	roll_q text;
	vals_q text;
	uvals_q text;
	uniq_q text;
BEGIN
	IF kind = 'MAX' THEN
		bsize := meter.bucket_size_of(m.aggregation);
	END IF;

	-- The windows (errors for bad ranges, zones and sizes come from here).
	SELECT array_agg(w.window_start ORDER BY w.window_start),
		array_agg(w.window_end ORDER BY w.window_start)
	INTO ws, we
	FROM meter.windows(start_time, end_time, window_size, timezone, billing_anchor) AS w;

	IF never THEN
		EXECUTE format('SELECT min(x.t) FROM (%s) x',
			COALESCE((SELECT string_agg(format(
				'SELECT min(e."timestamp") AS t FROM %s AS e WHERE e.tenant_id = $1 '
				'AND e.environment_id = $2 AND e.event_name = $3 AND e."timestamp" < $4', tbl),
				' UNION ALL ') FROM unnest(tables) AS tbl), 'SELECT NULL::timestamptz AS t'))
		INTO t0 USING m.tenant_id, m.environment_id, m.event_name, start_time;
		t0 := to_timestamp(floor(extract(epoch FROM t0) / 900) * 900);
		IF t0 < start_time THEN
			ws := t0 || ws;
			we := start_time || we;
			hidden := 1;
		END IF;
	END IF;

	IF bsize IS NULL THEN
		grid := ws || end_time;
		cw := ARRAY(SELECT generate_series(1, cardinality(ws)));
	ELSE
		SELECT array_agg(c.window_start ORDER BY c.window_start), array_agg(w.i ORDER BY c.window_start)
		INTO grid, cw
		FROM unnest(ws, we) WITH ORDINALITY AS w(s, e, i)
		CROSS JOIN LATERAL meter.windows(w.s, w.e, bsize, timezone, billing_anchor) AS c;
		grid := grid || end_time;
	END IF;

	IF from_rollups THEN
		-- Buckets cut by a cell boundary, merged into ranges (gaps and islands).
		WITH cut AS (
			SELECT DISTINCT to_timestamp(floor(extract(epoch FROM g) / 900) * 900) AS b
			FROM unnest(grid) AS g
			WHERE g <> to_timestamp(floor(extract(epoch FROM g) / 900) * 900)),
		island AS (
			SELECT cut.b, cut.b - (row_number() OVER (ORDER BY cut.b)) * interval '15 minutes' AS k
			FROM cut),
		r AS (
			SELECT min(island.b) AS lo, max(island.b) + interval '15 minutes' AS hi
			FROM island GROUP BY island.k)
		SELECT array_agg(greatest(r.lo, grid[1]) ORDER BY r.lo),
			array_agg(least(r.hi, end_time) ORDER BY r.lo),
			(SELECT array_agg(x ORDER BY x) FROM r AS r2, unnest(ARRAY[r2.lo, r2.hi]) AS x)
		INTO raw_lo, raw_hi, skip
		FROM r;
	ELSE
		raw_lo := ARRAY[grid[1]];
		raw_hi := ARRAY[end_time];
	END IF;

	-- What each event contributes, by aggregation type (the same text for both paths).
	v_expr := CASE WHEN kind IN ('COUNT', 'COUNT_UNIQUE') THEN 'NULL::numeric'
		ELSE 'meter.numeric_value(p.properties, $6)' END;
	u_expr := CASE WHEN kind = 'COUNT_UNIQUE' THEN 'meter.unique_value(p.properties, $6)'
		ELSE 'NULL::text' END;
	vt_expr := CASE WHEN kind = 'WEIGHTED_SUM' THEN 'sum(raw.v * extract(epoch FROM raw.t))'
		ELSE 'NULL::numeric' END;
	latest_expr := CASE WHEN kind = 'LATEST'
		THEN 'max(ARRAY[extract(epoch FROM raw.t), raw.v]) FILTER (WHERE raw.v IS NOT NULL)'
		ELSE 'NULL::numeric[]' END;

	IF customer_id IS NOT NULL THEN
		who := who || ' AND COALESCE(x.customer_id::text, '''') = $5';
	END IF;
	IF external_customer_id IS NOT NULL THEN
		who := who || ' AND COALESCE(x.external_customer_id::text, '''') = $7';
	END IF;

	IF raw_lo IS NULL OR cardinality(tables) = 0 THEN
		raw_q := 'SELECT NULL::integer AS cell, NULL::timestamptz AS t, NULL::numeric AS v, NULL::text AS u WHERE false';
	ELSE
		SELECT format('SELECT p.cell, p.t, %s AS v, %s AS u FROM (%s) AS p', v_expr, u_expr,
			string_agg(format(
				'SELECT width_bucket(e.t, $9) AS cell, e.t, e.properties '
				'FROM unnest($10::timestamptz[], $11::timestamptz[]) AS r(lo, hi) '
				'CROSS JOIN LATERAL (SELECT x."timestamp" AS t, x.properties FROM %s AS x '
				'WHERE x.tenant_id = $1 AND x.environment_id = $2 AND x.event_name = $3 '
				'AND x."timestamp" >= r.lo AND x."timestamp" < r.hi%s OFFSET 0) AS e '
				'WHERE meter.matches($4, e.properties)', tbl, who), ' UNION ALL '))
		INTO raw_q
		FROM unnest(tables) AS tbl;
	END IF;

	IF from_rollups THEN
		who := replace(replace(who, 'COALESCE(x.customer_id::text, '''')', 'r.customer_id'),
			'COALESCE(x.external_customer_id::text, '''')', 'r.external_customer_id');
		-- Lets the planner use the partial indexes on customer_id (rows that have one).
		IF customer_id IS NOT NULL AND customer_id <> '' THEN
			who := who || ' AND r.customer_id OPERATOR(pg_catalog.<>) ''''';
		END IF;
		roll_q := format(
			' UNION ALL SELECT width_bucket(r.bucket, $9) AS cell, r.events, r.n, r.sum, r.sum_vt, '
			'r.min, r.max, CASE WHEN r.latest_at IS NOT NULL '
			'THEN ARRAY[extract(epoch FROM r.latest_at), r.latest_value] END '
			'FROM meter.rollups AS r WHERE r.tenant_id = $1 AND r.environment_id = $2 '
			'AND r.meter_id = $12 AND r.bucket >= $19 AND r.bucket < $20%s%s',
			who, CASE WHEN skip IS NOT NULL THEN ' AND width_bucket(r.bucket, $13) % 2 = 0' ELSE '' END);
		vals_q := format(
			' UNION ALL SELECT width_bucket(r.bucket, $9), r.value FROM meter.rollup_values AS r '
			'WHERE r.tenant_id = $1 AND r.environment_id = $2 '
			'AND r.meter_id = $12 AND r.bucket >= $19 AND r.bucket < $20%s%s',
			who, CASE WHEN skip IS NOT NULL THEN ' AND width_bucket(r.bucket, $13) % 2 = 0' ELSE '' END);
	ELSE
		roll_q := '';
		vals_q := '';
	END IF;

	-- COUNT_UNIQUE: the distinct values per window, or (NEVER) the values first seen in
	-- each window. (Only then is raw read twice, which materializes it.)
	IF kind <> 'COUNT_UNIQUE' THEN
		uvals_q := 'SELECT NULL::integer AS cell, NULL::text AS u WHERE false';
		uniq_q := 'SELECT NULL::integer AS w, NULL::numeric AS uniques WHERE false';
	ELSE
		uvals_q := 'SELECT raw.cell, raw.u FROM raw WHERE raw.u IS NOT NULL' || vals_q;
		IF never THEN
			uniq_q := 'SELECT f.w, count(*)::numeric AS uniques FROM (SELECT min(($8::integer[])[uv.cell]) AS w '
				'FROM uvals AS uv GROUP BY uv.u) AS f GROUP BY f.w';
		ELSE
			uniq_q := 'SELECT ($8::integer[])[uv.cell] AS w, count(DISTINCT uv.u)::numeric AS uniques '
				'FROM uvals AS uv GROUP BY 1';
		END IF;
	END IF;

	RETURN QUERY EXECUTE format($q$
		WITH raw AS (%1$s),
		cells AS (
			SELECT c.cell, sum(c.events) AS events, sum(c.n) AS n, sum(c.sum) AS sum,
				sum(c.sum_vt) AS sum_vt, min(c.min) AS min, max(c.max) AS max, max(c.latest) AS latest
			FROM (
				SELECT raw.cell, count(*) AS events, count(raw.v) AS n, sum(raw.v) AS sum,
					%2$s AS sum_vt, min(raw.v) AS min, max(raw.v) AS max, %3$s AS latest
				FROM raw GROUP BY raw.cell
				%4$s
			) AS c
			GROUP BY c.cell),
		uvals AS (%5$s),
		per_window AS (
			SELECT ($8::integer[])[c.cell] AS w, sum(c.events) AS events, sum(c.n) AS n,
				sum(c.sum) AS sum, sum(c.sum_vt) AS sum_vt, min(c.min) AS min, max(c.max) AS max,
				max(c.latest) AS latest, sum(c.max) AS bucketed
			FROM cells AS c GROUP BY 1),
		uniq AS (%6$s),
		running AS (
			SELECT w.s, w.e, w.i, pw.sum AS own_sum, pw.sum_vt AS own_sum_vt,
				pw.events, pw.n, pw.sum, pw.min, pw.max, pw.latest, pw.bucketed, u.uniques,
				sum(pw.events) OVER run AS r_events, sum(pw.n) OVER run AS r_n,
				sum(pw.sum) OVER run AS r_sum, min(pw.min) OVER run AS r_min,
				max(pw.max) OVER run AS r_max, max(pw.latest) OVER run AS r_latest,
				sum(pw.bucketed) OVER run AS r_bucketed, sum(u.uniques) OVER run AS r_uniques,
				sum(pw.sum) OVER (ORDER BY w.i ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS prior_sum
			FROM unnest($14::timestamptz[], $15::timestamptz[]) WITH ORDINALITY AS w(s, e, i)
			LEFT JOIN per_window AS pw ON pw.w = w.i
			LEFT JOIN uniq AS u ON u.w = w.i
			WINDOW run AS (ORDER BY w.i ROWS UNBOUNDED PRECEDING))
		SELECT r.s, r.e, CASE WHEN $18 THEN
				meter.usage_value($17, r.s, r.e, r.r_events, r.r_n, r.r_sum, r.r_min, r.r_max,
					r.r_latest[2], r.r_uniques, r.r_bucketed, r.own_sum, r.own_sum_vt, r.prior_sum)
			ELSE
				meter.usage_value($17, r.s, r.e, r.events, r.n, r.sum, r.min, r.max,
					r.latest[2], r.uniques, r.bucketed, r.own_sum, r.own_sum_vt, NULL)
			END
		FROM running AS r
		WHERE r.i > $16
		ORDER BY r.i$q$,
		raw_q, vt_expr, latest_expr, roll_q, uvals_q, uniq_q)
	USING m.tenant_id, m.environment_id, m.event_name, m.filters, customer_id,
		meter.field_of(m.aggregation), external_customer_id, cw, grid, raw_lo, raw_hi,
		m.id, skip, ws, we, hidden, m.aggregation, never, grid[1], end_time;
END
$fn$;
COMMENT ON FUNCTION meter.usage_compute(meter.meters, timestamptz, timestamptz, text, text,
	meter.window_size, text, timestamptz, boolean, regclass) IS
	'Internal: the engine of meter.usage (from_rollups) and meter.usage_from_events';

CREATE FUNCTION meter.usage(
	meter_id text,
	start_time timestamptz,
	end_time timestamptz,
	customer_id text DEFAULT NULL,
	external_customer_id text DEFAULT NULL,
	window_size meter.window_size DEFAULT NULL,
	timezone text DEFAULT 'UTC',
	billing_anchor timestamptz DEFAULT NULL)
RETURNS TABLE (window_start timestamptz, window_end timestamptz, value numeric)
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	RETURN QUERY SELECT * FROM meter.usage_compute(meter.get_meter(usage.meter_id),
		usage.start_time, usage.end_time, usage.customer_id, usage.external_customer_id,
		usage.window_size, usage.timezone, usage.billing_anchor, true, NULL);
END
$$;
COMMENT ON FUNCTION meter.usage(text, timestamptz, timestamptz, text, text, meter.window_size,
	text, timestamptz) IS
	'Usage of a meter per window over [start_time, end_time), served from the rollups '
	'(raw events only for 15-minute buckets a window edge cuts). Errors: 55000 no tenant, '
	'P0002 unknown or deleted meter, 22023 bad range or time zone, 54000 too many windows';

CREATE FUNCTION meter.usage_from_events(
	meter_id text,
	start_time timestamptz,
	end_time timestamptz,
	customer_id text DEFAULT NULL,
	external_customer_id text DEFAULT NULL,
	window_size meter.window_size DEFAULT NULL,
	timezone text DEFAULT 'UTC',
	billing_anchor timestamptz DEFAULT NULL,
	source regclass DEFAULT NULL)
RETURNS TABLE (window_start timestamptz, window_end timestamptz, value numeric)
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	RETURN QUERY SELECT * FROM meter.usage_compute(meter.get_meter(usage_from_events.meter_id),
		usage_from_events.start_time, usage_from_events.end_time,
		usage_from_events.customer_id, usage_from_events.external_customer_id,
		usage_from_events.window_size, usage_from_events.timezone,
		usage_from_events.billing_anchor, false, usage_from_events.source);
END
$$;
COMMENT ON FUNCTION meter.usage_from_events(text, timestamptz, timestamptz, text, text,
	meter.window_size, text, timestamptz, regclass) IS
	'meter.usage computed from the raw events only (the ground truth; the path for untracked '
	'tables): every tracked table, or source. Errors as meter.usage, and 22023 for a source '
	'without the event columns';

-- ── meter.aggregate (SPEC §8) ───────────────────────────────────────────────────────
-- A meter's aggregation as an SQL aggregate. Its state is a concrete type with exact text
-- and binary forms (not internal), so Citus can ship partial states between nodes.
CREATE TYPE meter.aggregate_state;

CREATE FUNCTION meter.aggregate_state_in(cstring) RETURNS meter.aggregate_state
	AS 'MODULE_PATHNAME', 'meter_aggregate_state_in' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION meter.aggregate_state_in(cstring) IS
	'Text input of meter.aggregate_state: the versioned JSON its output writes, validated';

CREATE FUNCTION meter.aggregate_state_out(meter.aggregate_state) RETURNS cstring
	AS 'MODULE_PATHNAME', 'meter_aggregate_state_out' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION meter.aggregate_state_out(meter.aggregate_state) IS
	'Text output of meter.aggregate_state: versioned JSON, timestamps in UTC, sets sorted';

CREATE FUNCTION meter.aggregate_state_recv(internal) RETURNS meter.aggregate_state
	AS 'MODULE_PATHNAME', 'meter_aggregate_state_recv' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION meter.aggregate_state_recv(internal) IS
	'Binary input of meter.aggregate_state (versioned layout), validated';

CREATE FUNCTION meter.aggregate_state_send(meter.aggregate_state) RETURNS bytea
	AS 'MODULE_PATHNAME', 'meter_aggregate_state_send' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION meter.aggregate_state_send(meter.aggregate_state) IS
	'Binary output of meter.aggregate_state (versioned layout, network byte order)';

CREATE TYPE meter.aggregate_state (
	INPUT = meter.aggregate_state_in,
	OUTPUT = meter.aggregate_state_out,
	RECEIVE = meter.aggregate_state_recv,
	SEND = meter.aggregate_state_send,
	INTERNALLENGTH = VARIABLE,
	ALIGNMENT = int4,
	STORAGE = extended
);
COMMENT ON TYPE meter.aggregate_state IS
	'Partial result of meter.aggregate: the aggregation, row and value counts, and the running sum, extreme, latest value, unique values or buckets';

-- Not strict: the first row creates the state, rows with NULL properties still count.
CREATE FUNCTION meter.aggregate_transfn(state meter.aggregate_state, aggregation meter.aggregation,
		properties jsonb, "timestamp" timestamptz) RETURNS meter.aggregate_state
	AS 'MODULE_PATHNAME', 'meter_aggregate_transfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION meter.aggregate_transfn(meter.aggregate_state, meter.aggregation, jsonb, timestamptz) IS
	'Transition function of meter.aggregate(aggregation, properties, timestamp)';

CREATE FUNCTION meter.aggregate_transfn(state meter.aggregate_state, aggregation meter.aggregation,
		properties jsonb, "timestamp" timestamptz, period_start timestamptz, period_end timestamptz)
		RETURNS meter.aggregate_state
	AS 'MODULE_PATHNAME', 'meter_aggregate_period_transfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION meter.aggregate_transfn(meter.aggregate_state, meter.aggregation, jsonb, timestamptz, timestamptz, timestamptz) IS
	'Transition function of meter.aggregate(aggregation, properties, timestamp, period_start, period_end)';

-- Not strict: either partial state may be the empty (NULL) one.
CREATE FUNCTION meter.aggregate_combine(meter.aggregate_state, meter.aggregate_state)
		RETURNS meter.aggregate_state
	AS 'MODULE_PATHNAME', 'meter_aggregate_combine' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION meter.aggregate_combine(meter.aggregate_state, meter.aggregate_state) IS
	'Combine function of meter.aggregate: merges two partial states of the same aggregation';

CREATE FUNCTION meter.aggregate_final(meter.aggregate_state) RETURNS numeric
	AS 'MODULE_PATHNAME', 'meter_aggregate_final' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION meter.aggregate_final(meter.aggregate_state) IS
	'Final function of meter.aggregate: the usage value a state stands for';

CREATE AGGREGATE meter.aggregate(aggregation meter.aggregation, properties jsonb, "timestamp" timestamptz) (
	SFUNC = meter.aggregate_transfn,
	STYPE = meter.aggregate_state,
	FINALFUNC = meter.aggregate_final,
	COMBINEFUNC = meter.aggregate_combine,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE meter.aggregate(meter.aggregation, jsonb, timestamptz) IS
	'Usage of the rows under a meter''s aggregation (exact numeric); WEIGHTED_SUM needs the five-argument form';

CREATE AGGREGATE meter.aggregate(aggregation meter.aggregation, properties jsonb, "timestamp" timestamptz,
		period_start timestamptz, period_end timestamptz) (
	SFUNC = meter.aggregate_transfn,
	STYPE = meter.aggregate_state,
	FINALFUNC = meter.aggregate_final,
	COMBINEFUNC = meter.aggregate_combine,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE meter.aggregate(meter.aggregation, jsonb, timestamptz, timestamptz, timestamptz) IS
	'Usage of the rows under a meter''s aggregation; WEIGHTED_SUM weighs each value over [period_start, period_end)';

-- The same aggregation, stopping at the state: partial results to store, ship or merge.
CREATE AGGREGATE meter.aggregate_partial(aggregation meter.aggregation, properties jsonb, "timestamp" timestamptz) (
	SFUNC = meter.aggregate_transfn,
	STYPE = meter.aggregate_state,
	COMBINEFUNC = meter.aggregate_combine,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE meter.aggregate_partial(meter.aggregation, jsonb, timestamptz) IS
	'The state of meter.aggregate over the rows (finish it with meter.aggregate_final)';

CREATE AGGREGATE meter.aggregate_partial(aggregation meter.aggregation, properties jsonb, "timestamp" timestamptz,
		period_start timestamptz, period_end timestamptz) (
	SFUNC = meter.aggregate_transfn,
	STYPE = meter.aggregate_state,
	COMBINEFUNC = meter.aggregate_combine,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE meter.aggregate_partial(meter.aggregation, jsonb, timestamptz, timestamptz, timestamptz) IS
	'The state of the five-argument meter.aggregate over the rows (finish it with meter.aggregate_final)';

CREATE AGGREGATE meter.aggregate_merge(meter.aggregate_state) (
	SFUNC = meter.aggregate_combine,
	STYPE = meter.aggregate_state,
	COMBINEFUNC = meter.aggregate_combine,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE meter.aggregate_merge(meter.aggregate_state) IS
	'Merges partial states of one aggregation into one (finish it with meter.aggregate_final)';

-- ── Privileges: least privilege (SPEC §5, §9) ───────────────────────────────────────
-- CREATE EXTENSION grants nothing on schema meter: only its owner (and superusers) can
-- use the extension until roles are granted access. Three kinds of access, each granted
-- by a function below (roles are cluster-wide, so the extension creates none):
--   reader  meter.grant_reader(role)  read meters, events and usage (usage, usage_from_events,
--                                     verify, matching_meters, explain_match, list/get meters)
--   writer  meter.grant_writer(role)  write events (INSERT/UPDATE/DELETE on meter.events,
--                                     meter.ingest); no meters, no usage
--   admin   meter.grant_admin(role)   define meters (create/update/disable), rebuild, and
--                                     everything a reader may
-- Row-level security keeps every one of them inside the current scope (meter.tenant_id,
-- meter.environment_id). Nobody but the extension owner writes rollups: the tracking and
-- meter-change triggers and meter.rebuild run as the owner (SECURITY DEFINER, pinned
-- search_path). Maintenance functions are the owner's only.

-- Internal or maintenance functions: not for PUBLIC. Trigger functions fire whatever
-- their EXECUTE privilege; revoking it stops others attaching them (a SECURITY DEFINER
-- trigger on a table without row-level security could write any tenant's rollups).
REVOKE EXECUTE ON FUNCTION meter.track_usage() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION meter.on_meter_change() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION meter.validate_meter() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION meter.lock_tenant(text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION meter.rebuild_all() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION meter.refresh_rollups(text[], text[], text[], timestamptz[]) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION meter.track(regclass) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION meter.untrack(regclass) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION meter.rebuild(text) FROM PUBLIC;
-- meter.ingest (when present) stays executable by PUBLIC: it runs as the caller, so
-- only roles that may INSERT into meter.events (writers) can store anything with it.

-- SECURITY DEFINER: rebuilding recomputes the scope's rollups from the raw events, the
-- same rows the triggers write as the owner; so an admin may rebuild without any write
-- privilege on the rollup tables (which would let it forge usage). It acts in the
-- current scope only (every query filters on meter.current_tenant()/environment).
ALTER FUNCTION meter.rebuild(text) SECURITY DEFINER;

CREATE FUNCTION meter.grant_reader(role regrole) RETURNS void
LANGUAGE plpgsql VOLATILE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	EXECUTE pg_catalog.format('GRANT USAGE ON SCHEMA meter TO %s', role);
	EXECUTE pg_catalog.format('GRANT SELECT ON meter.meters, meter.events, meter.rollups, '
		'meter.rollup_values, meter.skipped, meter.tracked_tables TO %s', role);
END
$$;
COMMENT ON FUNCTION meter.grant_reader(regrole) IS
	'Let a role read meters, events and usage of the current scope (schema USAGE, SELECT on the extension''s tables); owner only';

CREATE FUNCTION meter.grant_writer(role regrole) RETURNS void
LANGUAGE plpgsql VOLATILE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	EXECUTE pg_catalog.format('GRANT USAGE ON SCHEMA meter TO %s', role);
	-- SELECT: UPDATE and DELETE … WHERE read the rows they change (of the current scope only)
	EXECUTE pg_catalog.format('GRANT SELECT, INSERT, UPDATE, DELETE ON meter.events TO %s', role);
	IF pg_catalog.to_regprocedure('meter.ingest(jsonb)') IS NOT NULL THEN
		EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION meter.ingest(jsonb) TO %s', role);
	END IF;
END
$$;
COMMENT ON FUNCTION meter.grant_writer(regrole) IS
	'Let a role write events of the current scope (INSERT/UPDATE/DELETE on meter.events, meter.ingest); owner only';

CREATE FUNCTION meter.grant_admin(role regrole) RETURNS void
LANGUAGE plpgsql VOLATILE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM meter.grant_reader(role);
	-- No DELETE: meters are disabled (archived) or marked deleted, their history kept.
	EXECUTE pg_catalog.format('GRANT INSERT, UPDATE ON meter.meters TO %s', role);
	EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION meter.rebuild(text) TO %s', role);
END
$$;
COMMENT ON FUNCTION meter.grant_admin(regrole) IS
	'Let a role define meters of the current scope (create/update/disable, rebuild) and read everything a reader may; owner only';

CREATE FUNCTION meter.revoke_access(role regrole) RETURNS void
LANGUAGE plpgsql VOLATILE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	EXECUTE pg_catalog.format('REVOKE ALL ON meter.meters, meter.events, meter.rollups, '
		'meter.rollup_values, meter.skipped, meter.tracked_tables FROM %s', role);
	EXECUTE pg_catalog.format('REVOKE EXECUTE ON FUNCTION meter.rebuild(text) FROM %s', role);
	IF pg_catalog.to_regprocedure('meter.ingest(jsonb)') IS NOT NULL THEN
		EXECUTE pg_catalog.format('REVOKE EXECUTE ON FUNCTION meter.ingest(jsonb) FROM %s', role);
	END IF;
	EXECUTE pg_catalog.format('REVOKE USAGE ON SCHEMA meter FROM %s', role);
END
$$;
COMMENT ON FUNCTION meter.revoke_access(regrole) IS
	'Undo meter.grant_reader/grant_writer/grant_admin for a role; owner only';

REVOKE EXECUTE ON FUNCTION meter.grant_reader(regrole) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION meter.grant_writer(regrole) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION meter.grant_admin(regrole) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION meter.revoke_access(regrole) FROM PUBLIC;
