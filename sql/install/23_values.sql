
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

CREATE FUNCTION meter.quantity(aggregation meter.aggregation, properties jsonb) RETURNS numeric
	AS 'MODULE_PATHNAME', 'meter_quantity' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION meter.quantity(meter.aggregation, jsonb) IS
	'What one event contributes to the aggregation, before the multiplier or time weight: 1 for COUNT, '
	'NULL for COUNT_UNIQUE, else the field''s usable number or the expression''s value; NULL when the event is skipped';
