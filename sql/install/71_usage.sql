
-- ── Usage queries (SPEC §8) ─────────────────────────────────────────────────────────
-- C functions over one engine (src/usage.c): meter.usage serves whole 15-minute slots
-- from the stored partial states (compacted and pending, one snapshot) and reads the raw
-- events only of slots a boundary cuts or a pending change marked; usage_from_events
-- reads the raw events only. Not STRICT: the optional arguments default to NULL.
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
	AS 'MODULE_PATHNAME', 'meter_usage' LANGUAGE C STABLE
	SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION meter.usage(text, timestamptz, timestamptz, text, text, meter.window_size,
	text, timestamptz) IS
	'Usage of a meter per window over [start_time, end_time), served from the stored partial states '
	'(raw events only for 15-minute slots a window edge cuts). Errors: 55000 no tenant, '
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
	AS 'MODULE_PATHNAME', 'meter_usage_from_events' LANGUAGE C STABLE
	SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION meter.usage_from_events(text, timestamptz, timestamptz, text, text,
	meter.window_size, text, timestamptz, regclass) IS
	'meter.usage computed from the raw events only (the ground truth; the path for untracked '
	'tables): every tracked table, or source. Errors as meter.usage, and 22023 for a source '
	'without the event columns';

-- ── Usage for many at once (SPEC §8) ───────────────────────────────────────────────
-- From the stored partial states (their key carries the customer and the events' values
-- of the meter's filter keys): the cost grows with customers × windows, not with events.
-- Each has a _from_events twin computing the same from the raw events.
CREATE FUNCTION meter.usage_by_customer(
	meter_id text,
	start_time timestamptz,
	end_time timestamptz,
	window_size meter.window_size DEFAULT NULL,
	timezone text DEFAULT 'UTC',
	billing_anchor timestamptz DEFAULT NULL)
RETURNS TABLE (customer_id text, external_customer_id text, window_start timestamptz,
	window_end timestamptz, value numeric)
	AS 'MODULE_PATHNAME', 'meter_usage_by_customer' LANGUAGE C STABLE
	SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION meter.usage_by_customer(text, timestamptz, timestamptz, meter.window_size,
	text, timestamptz) IS
	'The invoice run: usage per window for every customer (customer_id, external_customer_id; '
	''''' when absent) with a matched event before end_time, ordered by customer then window';

CREATE FUNCTION meter.usage_by_customer_from_events(
	meter_id text,
	start_time timestamptz,
	end_time timestamptz,
	window_size meter.window_size DEFAULT NULL,
	timezone text DEFAULT 'UTC',
	billing_anchor timestamptz DEFAULT NULL,
	source regclass DEFAULT NULL)
RETURNS TABLE (customer_id text, external_customer_id text, window_start timestamptz,
	window_end timestamptz, value numeric)
	AS 'MODULE_PATHNAME', 'meter_usage_by_customer_from_events' LANGUAGE C STABLE
	SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION meter.usage_by_customer_from_events(text, timestamptz, timestamptz,
	meter.window_size, text, timestamptz, regclass) IS
	'meter.usage_by_customer computed from the raw events (every tracked table, or source)';

CREATE FUNCTION meter.usage_by_group(
	meter_id text,
	group_by text[],
	start_time timestamptz,
	end_time timestamptz,
	customer_id text DEFAULT NULL,
	external_customer_id text DEFAULT NULL,
	window_size meter.window_size DEFAULT NULL,
	timezone text DEFAULT 'UTC',
	billing_anchor timestamptz DEFAULT NULL)
RETURNS TABLE (group_values jsonb, window_start timestamptz, window_end timestamptz, value numeric)
	AS 'MODULE_PATHNAME', 'meter_usage_by_group' LANGUAGE C STABLE
	SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION meter.usage_by_group(text, text[], timestamptz, timestamptz, text, text,
	meter.window_size, text, timestamptz) IS
	'Usage per window and per combination of the events'' values of group_by (filter keys of '
	'the meter) that occurs, e.g. {"model":"gpt-4o","region":"eu"}; 22023 for another key';

CREATE FUNCTION meter.usage_by_group_from_events(
	meter_id text,
	group_by text[],
	start_time timestamptz,
	end_time timestamptz,
	customer_id text DEFAULT NULL,
	external_customer_id text DEFAULT NULL,
	window_size meter.window_size DEFAULT NULL,
	timezone text DEFAULT 'UTC',
	billing_anchor timestamptz DEFAULT NULL,
	source regclass DEFAULT NULL)
RETURNS TABLE (group_values jsonb, window_start timestamptz, window_end timestamptz, value numeric)
	AS 'MODULE_PATHNAME', 'meter_usage_by_group_from_events' LANGUAGE C STABLE
	SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION meter.usage_by_group_from_events(text, text[], timestamptz, timestamptz,
	text, text, meter.window_size, text, timestamptz, regclass) IS
	'meter.usage_by_group computed from the raw events (every tracked table, or source)';

CREATE FUNCTION meter.usage_by_filter_groups(
	meter_id text,
	groups jsonb,
	start_time timestamptz,
	end_time timestamptz,
	customer_id text DEFAULT NULL,
	external_customer_id text DEFAULT NULL,
	window_size meter.window_size DEFAULT NULL,
	timezone text DEFAULT 'UTC',
	billing_anchor timestamptz DEFAULT NULL)
RETURNS TABLE (group_id text, window_start timestamptz, window_end timestamptz, value numeric)
	AS 'MODULE_PATHNAME', 'meter_usage_by_filter_groups' LANGUAGE C STABLE
	SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION meter.usage_by_filter_groups(text, jsonb, timestamptz, timestamptz, text,
	text, meter.window_size, text, timestamptz) IS
	'FlexPrice''s price filter groups: [{"id":…,"filters":{"model":["gpt-4o"]}}, …]; each event '
	'counts in the first group whose filters it matches; every group appears';

CREATE FUNCTION meter.usage_by_filter_groups_from_events(
	meter_id text,
	groups jsonb,
	start_time timestamptz,
	end_time timestamptz,
	customer_id text DEFAULT NULL,
	external_customer_id text DEFAULT NULL,
	window_size meter.window_size DEFAULT NULL,
	timezone text DEFAULT 'UTC',
	billing_anchor timestamptz DEFAULT NULL,
	source regclass DEFAULT NULL)
RETURNS TABLE (group_id text, window_start timestamptz, window_end timestamptz, value numeric)
	AS 'MODULE_PATHNAME', 'meter_usage_by_filter_groups_from_events' LANGUAGE C STABLE
	SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION meter.usage_by_filter_groups_from_events(text, jsonb, timestamptz,
	timestamptz, text, text, meter.window_size, text, timestamptz, regclass) IS
	'meter.usage_by_filter_groups computed from the raw events (every tracked table, or source)';
