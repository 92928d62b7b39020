
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
