-- A hostile search_path (STYLE: schema-qualify everything): look-alike functions,
-- operators and aggregates in public, searched BEFORE pg_catalog, must never be called
-- by the extension. Each look-alike counts its calls (a sequence: not undone by the
-- errors) and raises 'hijacked'. Every function family runs under
-- search_path = public, meter, pg_catalog; results must equal the expected ones.
BEGIN;
SET client_min_messages = warning;
SELECT plan(55);

CREATE SEQUENCE public.meter_hijack_calls;
CREATE FUNCTION public.meter_hijack() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	PERFORM pg_catalog.nextval('public.meter_hijack_calls');
	RAISE EXCEPTION 'hijacked';
END $$;

-- Look-alike functions (name, argument types, result type).
DO $$
DECLARE
	f record;
BEGIN
	FOR f IN SELECT * FROM (VALUES
		('now', '', 'timestamptz'), ('lower', 'text', 'text'), ('upper', 'text', 'text'),
		('btrim', 'text', 'text'), ('length', 'text', 'integer'),
		('jsonb_typeof', 'jsonb', 'text'), ('jsonb_each', 'jsonb', 'SETOF record'),
		('unnest', 'anyarray', 'SETOF anyelement'), ('array_length', 'anyarray, integer', 'integer'),
		('current_setting', 'text', 'text'), ('current_setting', 'text, boolean', 'text'),
		('set_config', 'text, text, boolean', 'text'), ('format', 'text', 'text'),
		('format', 'text, text', 'text'), ('to_json', 'anyelement', 'json'),
		('quote_literal', 'text', 'text'), ('date_bin', 'interval, timestamptz, timestamptz', 'timestamptz'),
		('to_timestamp', 'double precision', 'timestamptz'), ('floor', 'numeric', 'numeric'),
		('enum_range', 'anyenum', 'anyarray'), ('coalesce', 'text, text', 'text'),
		('width_bucket', 'anycompatible, anycompatiblearray', 'integer'),
		('generate_series', 'timestamptz, timestamptz, interval', 'SETOF timestamptz'),
		('hashtext', 'text', 'integer'), ('count', 'text', 'bigint'),
		('jsonb_build_object', 'text, numeric', 'jsonb'), ('string_to_array', 'text, text', 'text[]'),
		('array_to_string', 'anyarray, text', 'text'), ('to_char', 'timestamptz, text', 'text'),
		('timezone', 'text, timestamptz', 'timestamp'), ('age', 'timestamptz', 'interval'),
		('date_trunc', 'text, timestamptz, text', 'timestamptz'), ('make_interval', 'integer', 'interval'),
		('pg_advisory_xact_lock', 'bigint', 'void'), ('pg_advisory_xact_lock_shared', 'bigint', 'void'),
		('regclass', 'text', 'regclass'), ('format_type', 'oid, integer', 'text'),
		('row_number', '', 'bigint'), ('lag', 'timestamptz', 'timestamptz')) AS v(name, args, result)
	LOOP
		EXECUTE pg_catalog.format('CREATE FUNCTION public.%I(%s) RETURNS %s LANGUAGE plpgsql AS %L',
			f.name, f.args, f.result, 'BEGIN PERFORM public.meter_hijack(); END');
	END LOOP;
	-- Look-alike operators.
	FOR f IN SELECT v.*, row_number() OVER () AS i FROM (VALUES
		('=', 'text', 'text', 'boolean'), ('<>', 'text', 'text', 'boolean'), ('<', 'text', 'text', 'boolean'),
		('=', 'bigint', 'bigint', 'boolean'), ('=', 'integer', 'integer', 'boolean'),
		('<', 'integer', 'integer', 'boolean'), ('>', 'bigint', 'integer', 'boolean'),
		('+', 'bigint', 'bigint', 'bigint'), ('-', 'bigint', 'bigint', 'bigint'),
		('+', 'integer', 'integer', 'integer'),
		('+', 'numeric', 'numeric', 'numeric'), ('-', 'numeric', 'numeric', 'numeric'),
		('*', 'numeric', 'numeric', 'numeric'), ('/', 'numeric', 'numeric', 'numeric'),
		('<', 'numeric', 'numeric', 'boolean'), ('>', 'numeric', 'numeric', 'boolean'),
		('=', 'numeric', 'numeric', 'boolean'),
		('=', 'timestamptz', 'timestamptz', 'boolean'), ('<', 'timestamptz', 'timestamptz', 'boolean'),
		('<=', 'timestamptz', 'timestamptz', 'boolean'), ('>=', 'timestamptz', 'timestamptz', 'boolean'),
		('>', 'timestamptz', 'timestamptz', 'boolean'),
		('+', 'timestamptz', 'interval', 'timestamptz'), ('-', 'timestamptz', 'interval', 'timestamptz'),
		('-', 'timestamptz', 'timestamptz', 'interval'), ('<=', 'interval', 'interval', 'boolean'),
		('->>', 'jsonb', 'text', 'text'), ('->', 'jsonb', 'text', 'jsonb'), ('=', 'jsonb', 'jsonb', 'boolean'),
		('||', 'text', 'text', 'text'), ('~', 'text', 'text', 'boolean'), ('!~', 'text', 'text', 'boolean'),
		('=', 'regclass', 'regclass', 'boolean'), ('=', 'oid', 'oid', 'boolean'), ('>', 'smallint', 'integer', 'boolean'),
		('=', 'name', 'text', 'boolean'), ('=', 'anyenum', 'anyenum', 'boolean'),
		('<>', 'anyenum', 'anyenum', 'boolean'), ('=', 'anyarray', 'anyarray', 'boolean'),
		('@>', 'anyarray', 'anyarray', 'boolean')) AS v(op, l, r, result)
	LOOP
		EXECUTE pg_catalog.format('CREATE FUNCTION public.meter_hijack_op%s(%s, %s) RETURNS %s LANGUAGE plpgsql AS %L',
			f.i, f.l, f.r, f.result, 'BEGIN PERFORM public.meter_hijack(); END');
		EXECUTE pg_catalog.format('CREATE OPERATOR public.%s (LEFTARG = %s, RIGHTARG = %s, FUNCTION = public.meter_hijack_op%s)',
			f.op, f.l, f.r, f.i);
	END LOOP;
END $$;
-- Look-alike aggregates.
CREATE FUNCTION public.meter_hijack_sfunc(numeric, numeric) RETURNS numeric
	LANGUAGE plpgsql AS 'BEGIN PERFORM public.meter_hijack(); END';
CREATE AGGREGATE public.sum(numeric) (SFUNC = public.meter_hijack_sfunc, STYPE = numeric);
CREATE AGGREGATE public.max(numeric) (SFUNC = public.meter_hijack_sfunc, STYPE = numeric);
CREATE AGGREGATE public.min(numeric) (SFUNC = public.meter_hijack_sfunc, STYPE = numeric);
CREATE FUNCTION public.meter_hijack_text_sfunc(text, text) RETURNS text
	LANGUAGE plpgsql AS 'BEGIN PERFORM public.meter_hijack(); END';
CREATE AGGREGATE public.string_agg(text) (SFUNC = public.meter_hijack_text_sfunc, STYPE = text);
CREATE AGGREGATE public.array_agg(text) (SFUNC = public.meter_hijack_text_sfunc, STYPE = text);

SELECT ok((SELECT count(*) FROM pg_proc WHERE pronamespace = 'public'::regnamespace
	AND prosrc LIKE '%meter_hijack()%') >= 45, 'the look-alikes exist');
-- They do bite when the caller's own SQL meets them:
CREATE FUNCTION pg_temp.hostile(q text) RETURNS text
LANGUAGE plpgsql SET search_path = public, meter, pg_catalog AS $$
DECLARE
	res text;
BEGIN
	EXECUTE q INTO res;
	RETURN COALESCE(res, 'ok');
EXCEPTION WHEN OTHERS THEN
	RETURN pg_catalog.concat(SQLSTATE, ': ', SQLERRM);
END $$;
-- The same for a statement that returns no data.
CREATE FUNCTION pg_temp.hostile_do(q text) RETURNS text
LANGUAGE plpgsql SET search_path = public, meter, pg_catalog AS $$
BEGIN
	EXECUTE q;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	RETURN pg_catalog.concat(SQLSTATE, ': ', SQLERRM);
END $$;
SELECT is(pg_temp.hostile($$SELECT ('a'::text = 'a'::text)::text$$), 'P0001: hijacked',
	'a query of the caller''s own does reach public.=(text, text)');
SELECT is(pg_temp.hostile('SELECT lower(''A'')'), 'P0001: hijacked', 'and public.lower(text)');
SELECT setval('public.meter_hijack_calls', 1, false);

-- ── Every function family under the hostile search_path ─────────────────────────────
SET LOCAL meter.tenant_id = 'sp';
-- a tracked table of the user's own, for track/untrack and usage_from_events(source)
CREATE TABLE public.my_events (LIKE meter.events INCLUDING DEFAULTS);

SELECT is(pg_temp.hostile($$SELECT id FROM meter.create_meter('api', 'Calls', '{"type":"SUM","field":"n"}',
	'[{"key":"model","values":["a","1"]}]', 'BILLING_PERIOD', 'sp_sum')$$), 'sp_sum', 'create_meter');
SELECT is(pg_temp.hostile($$SELECT id FROM meter.create_meter('{"id":"sp_cu","event_name":"api","name":"Users",
	"aggregation":{"type":"COUNT_UNIQUE","field":"u"},"reset_usage":"NEVER","created_at":"2024-01-01T00:00:00Z"}'::jsonb)$$),
	'sp_cu', 'create_meter(jsonb)');
SELECT is(pg_temp.hostile($$SELECT id FROM meter.create_meter('api', 'Max', '{"type":"MAX","field":"n","bucket_size":"HOUR"}', id => 'sp_max')$$),
	'sp_max', 'create_meter (MAX with bucket_size)');
SELECT is(pg_temp.hostile($$SELECT id FROM meter.create_meter('api', 'Weighted', '{"type":"WEIGHTED_SUM","field":"n"}', id => 'sp_ws')$$),
	'sp_ws', 'create_meter (WEIGHTED_SUM)');
SELECT is(pg_temp.hostile($$SELECT name FROM meter.get_meter('sp_sum')$$), 'Calls', 'get_meter');
SELECT is(pg_temp.hostile($$SELECT string_agg(id, ',' ORDER BY id) FROM meter.list_meters(sort => 'name', "order" => 'asc')$$),
	'sp_cu,sp_max,sp_sum,sp_ws', 'list_meters');
SELECT is(pg_temp.hostile($$SELECT count(*)::text FROM meter.list_all_meters('api', '{sp_sum,sp_cu}', 'published', '2000-01-01', '2100-01-01')$$),
	'2', 'list_all_meters');
SELECT is(pg_temp.hostile($$SELECT meter.count_meters(event_name => 'api')::text$$), '4', 'count_meters');
SELECT is(pg_temp.hostile($$SELECT count(*)::text FROM meter.list_meters("limit" => 0)$$),
	'22023: limit must be between 1 and 1000', 'list_meters errors');
SELECT is(pg_temp.hostile($$SELECT id FROM meter.get_meter('nope')$$), 'P0002: meter "nope" not found', 'get_meter not found');

SELECT is(pg_temp.hostile($$WITH i AS (INSERT INTO meter.events (id, event_name, customer_id, "timestamp", properties)
	VALUES ('e1', 'api', 'c1', '2024-03-01 10:00+00', '{"n":2,"model":"a","u":"x"}'),
	       ('e2', 'api', 'c1', '2024-03-01 10:20+00', '{"n":"3.5","model":1,"u":"y"}'),
	       ('e3', 'api', 'c2', '2024-03-02 23:59+00', '{"n":"bad","model":"a","u":"x"}'),
	       ('e4', 'api', 'c2', '2024-03-02 23:59+00', '{"n":7,"model":"b"}') RETURNING 1)
	SELECT count(*)::text FROM i$$), '4', 'INSERT into meter.events (statement-level trigger)');
SELECT is(pg_temp.hostile($$WITH u AS (UPDATE meter.events SET properties = '{"n":4,"model":"a","u":"z"}',
	"timestamp" = '2024-03-01 11:00+00' WHERE id OPERATOR(pg_catalog.=) 'e2' RETURNING 1) SELECT count(*)::text FROM u$$), '1',
	'UPDATE of an event');
SELECT is(pg_temp.hostile($$WITH d AS (DELETE FROM meter.events WHERE id OPERATOR(pg_catalog.=) 'e4' RETURNING 1) SELECT count(*)::text FROM d$$), '1',
	'DELETE of an event');
SELECT CASE WHEN to_regprocedure('meter.ingest(jsonb)') IS NULL THEN skip('meter.ingest does not exist')
	ELSE is(pg_temp.hostile($$SELECT pg_catalog.concat(accepted, '/', duplicates) FROM meter.ingest('[{"id":"e5","event_name":"api",
		"customer_id":"c1","timestamp":"2024-03-01T12:00:00Z","properties":{"n":1,"model":"1","u":"w"}},
		{"id":"e1","event_name":"api","customer_id":"c1"}]')$$), '1/1', 'meter.ingest') END;
SELECT is(pg_temp.hostile($$SELECT string_agg(value::text, ',' ORDER BY window_start) FROM meter.usage('sp_sum',
	'2024-03-01', '2024-03-03', window_size => 'DAY', timezone => 'Europe/Berlin')$$),
	(SELECT CASE WHEN to_regprocedure('meter.ingest(jsonb)') IS NULL THEN '6,0,0' ELSE '7,0,0' END),
	'usage (windows in a time zone)');
SELECT is(pg_temp.hostile($$SELECT string_agg(value::text, ',' ORDER BY window_start) FROM meter.usage_from_events('sp_sum',
	'2024-03-01', '2024-03-03', window_size => 'DAY', timezone => 'Europe/Berlin')$$),
	(SELECT CASE WHEN to_regprocedure('meter.ingest(jsonb)') IS NULL THEN '6,0,0' ELSE '7,0,0' END),
	'usage_from_events');
SELECT is(pg_temp.hostile($$SELECT string_agg(value::text, ',' ORDER BY window_start) FROM meter.usage('sp_cu',
	'2024-03-01 12:00+00', '2024-03-03', customer_id => 'c1', window_size => 'HOUR')$$) IS NOT NULL, true,
	'usage (COUNT_UNIQUE, reset NEVER, unaligned start)');
SELECT is(pg_temp.hostile($$SELECT value::text FROM meter.usage('sp_max', '2024-03-01 10:07+00', '2024-03-03')$$),
	pg_temp.hostile($$SELECT value::text FROM meter.usage_from_events('sp_max', '2024-03-01 10:07+00', '2024-03-03')$$),
	'usage = usage_from_events (MAX with buckets, unaligned start)');
SELECT is(pg_temp.hostile($$SELECT value::text FROM meter.usage('sp_ws', '2024-03-01', '2024-03-03')$$),
	pg_temp.hostile($$SELECT value::text FROM meter.usage_from_events('sp_ws', '2024-03-01', '2024-03-03')$$),
	'usage = usage_from_events (WEIGHTED_SUM)');
SELECT is(pg_temp.hostile('SELECT count(*)::text FROM meter.verify()'), '0', 'verify');
SELECT is(pg_temp.hostile($$SELECT pg_catalog.sum(events)::text FROM meter.stored_slots('sp_sum')$$),
	(SELECT sum(events)::text FROM meter.stored_slots('sp_sum')), 'stored_slots');
SELECT is(pg_temp.hostile($$SELECT pg_catalog.sum(events)::text FROM meter.stored_slots('sp_cu', true)$$),
	(SELECT sum(events)::text FROM meter.stored_slots('sp_cu', true)), 'stored_slots (all customers)');
SELECT is(pg_temp.hostile('SELECT pg_catalog.sum(skipped)::text FROM meter.skipped'),
	(SELECT sum(skipped)::text FROM meter.skipped), 'meter.skipped');
CREATE TEMP TABLE sp_pending AS SELECT count(*)::text AS n FROM meter.pending WHERE tenant_id = 'sp';
SELECT is(pg_temp.hostile('SELECT meter.compact()::text'), (SELECT n FROM sp_pending), 'compact');
SET LOCAL meter.compaction_threshold = 1;
SELECT is(pg_temp.hostile($$WITH i AS (INSERT INTO meter.events (id, event_name, customer_id, "timestamp", properties)
	VALUES ('e6', 'api', 'c2', '2024-03-02 10:00+00', '{"n":1,"model":"a","u":"v"}') RETURNING 1) SELECT count(*)::text FROM i$$), '1',
	'INSERT compacting in the statement (compaction_threshold = 1)');
RESET meter.compaction_threshold;
SELECT is(pg_temp.hostile_do($$MERGE INTO meter.events e USING (VALUES ('e6', 'delete'), ('e3', 'update'), ('e7', 'insert')) v(id, what)
	ON e.tenant_id OPERATOR(pg_catalog.=) 'sp' AND e.environment_id OPERATOR(pg_catalog.=) '' AND e.id OPERATOR(pg_catalog.=) v.id
	WHEN MATCHED AND v.what OPERATOR(pg_catalog.=) 'delete' THEN DELETE
	WHEN MATCHED THEN UPDATE SET "timestamp" = '2024-03-02 23:00+00', customer_id = 'c1'
	WHEN NOT MATCHED THEN INSERT (id, event_name, customer_id, "timestamp", properties)
		VALUES (v.id, 'api', 'c2', '2024-03-02 10:05+00', '{"n":2,"model":"a"}')$$), 'ok',
	'MERGE with delete, update and insert branches');
SELECT is(pg_temp.hostile('SELECT count(*)::text FROM meter.verify()'), '0', 'verify after compacting and MERGE');
SELECT is(pg_temp.hostile('SELECT string_agg(meter_id, '','' ORDER BY meter_id) FROM meter.rebuild()'),
	'sp_cu,sp_max,sp_sum,sp_ws', 'rebuild');
SELECT is(pg_temp.hostile('SELECT meter.rebuild_all()::text'), '4', 'rebuild_all');
SELECT is(pg_temp.hostile($$SELECT string_agg(id, ',' ORDER BY id) FROM meter.matching_meters('api', '{"model":1.0,"n":1}')$$),
	'sp_cu,sp_max,sp_sum,sp_ws', 'matching_meters');
SELECT is(pg_temp.hostile($$SELECT meter.explain_match('sp_sum', 'api', '{"model":"gpt-5"}')$$),
	(SELECT meter.explain_match('sp_sum', 'api', '{"model":"gpt-5"}')), 'explain_match');
SELECT is(pg_temp.hostile($$SELECT meter.matches('[{"key":"model","values":["1"]}]', '{"model":1.0}')::text$$), 'true', 'matches');
SELECT is(pg_temp.hostile($$SELECT '{"type":"SUM_WITH_MULTIPLIER","multiplier":"2.50","field":"n"}'::meter.aggregation::jsonb::meter.aggregation::text$$),
	(SELECT '{"type":"SUM_WITH_MULTIPLIER","multiplier":"2.50","field":"n"}'::meter.aggregation::text),
	'aggregation input, output and casts');
SELECT is(pg_temp.hostile($$SELECT '[{"values":["b","a","a"],"key":"k"}]'::meter.filters::text$$),
	'[{"key":"k","values":["a","b"]}]', 'filters input and output');
SELECT is(pg_temp.hostile($$SELECT (meter.aggregation '{"type":"COUNT"}' = meter.aggregation '{"type":"COUNT"}')::text$$), 'true',
	'aggregation equality');
SELECT is(pg_temp.hostile($$SELECT meter.aggregate('{"type":"AVG","field":"n"}', properties, "timestamp")::text
	FROM meter.events WHERE id OPERATOR(pg_catalog.=) ANY ('{e1,e2}')$$), '3.0000000000000000',
	'aggregate');
SELECT is(pg_temp.hostile($$SELECT meter.aggregate('{"type":"WEIGHTED_SUM","field":"n"}', properties, "timestamp",
	'2024-03-01', '2024-03-03')::text FROM meter.events WHERE id OPERATOR(pg_catalog.=) 'e1'$$),
	(SELECT meter.aggregate('{"type":"WEIGHTED_SUM","field":"n"}', properties, "timestamp", '2024-03-01', '2024-03-03')::text
	 FROM meter.events WHERE id = 'e1'), 'aggregate (five arguments)');
SELECT is(pg_temp.hostile($$SELECT meter.aggregate_final(meter.aggregate_merge(s))::text FROM (SELECT
	meter.aggregate_partial('{"type":"COUNT_UNIQUE","field":"u"}', properties, "timestamp")::text::meter.aggregate_state AS s
	FROM meter.events GROUP BY customer_id) x$$),
	(SELECT meter.aggregate('{"type":"COUNT_UNIQUE","field":"u"}', properties, "timestamp")::text FROM meter.events WHERE tenant_id = 'sp'),
	'aggregate_partial, state text I/O, aggregate_merge, aggregate_final');
SELECT is(pg_temp.hostile($$SELECT count(*)::text FROM meter.windows('2024-03-01', '2024-04-01', 'MONTH', 'Europe/Berlin', '2024-01-31 10:00+01')$$),
	(SELECT count(*)::text FROM meter.windows('2024-03-01', '2024-04-01', 'MONTH', 'Europe/Berlin', '2024-01-31 10:00+01')), 'windows');
SELECT is(pg_temp.hostile($$SELECT 'ok' FROM meter.track('public.my_events')$$), 'ok', 'track');
SELECT is(pg_temp.hostile($$WITH i AS (INSERT INTO public.my_events (id, event_name, customer_id, "timestamp", properties)
	VALUES ('m1', 'api', 'c1', '2024-03-01 10:00+00', '{"n":100,"model":"a"}') RETURNING 1) SELECT count(*)::text FROM i$$), '1',
	'INSERT into a tracked table of the user''s own');
SELECT is(pg_temp.hostile($$SELECT value::text FROM meter.usage_from_events('sp_sum', '2024-03-01', '2024-03-02', source => 'public.my_events')$$),
	'100', 'usage_from_events from one source table');
SELECT is(pg_temp.hostile('SELECT count(*)::text FROM meter.verify()'), '0', 'verify with two tracked tables');
SELECT is(pg_temp.hostile_do('TRUNCATE public.my_events'), 'ok', 'TRUNCATE of a tracked table');
SELECT is(pg_temp.hostile($$SELECT value::text FROM meter.usage('sp_sum', '2024-03-01', '2024-03-02')$$),
	pg_temp.hostile($$SELECT value::text FROM meter.usage_from_events('sp_sum', '2024-03-01', '2024-03-02')$$),
	'usage = usage_from_events after the TRUNCATE');
SELECT is(pg_temp.hostile($$SELECT 'ok' FROM meter.untrack('public.my_events')$$), 'ok', 'untrack');
SELECT is(pg_temp.hostile($$SELECT filters::text FROM meter.update_meter('sp_sum', '[]')$$), '[]', 'update_meter');
SELECT is(pg_temp.hostile($$SELECT status::text FROM meter.disable_meter('sp_max')$$), 'archived', 'disable_meter');
SELECT is(pg_temp.hostile('SELECT count(*)::text FROM meter.verify()'), '0', 'verify after the meter changes');
SELECT is(pg_temp.hostile($$SELECT pg_catalog.concat(meter.current_tenant(), '/', meter.current_environment())$$), 'sp/', 'scope functions');

SELECT is((SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM public.meter_hijack_calls), 0::bigint,
	'no look-alike was ever called');
SELECT is_empty('SELECT * FROM meter.verify()', 'rollups exact (checked under the normal search_path)');

SELECT * FROM finish();
ROLLBACK;
