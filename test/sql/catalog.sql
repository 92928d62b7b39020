-- The meter catalog and repository functions (SPEC §4–§6): exact error texts.
-- Every error is shown as SQLSTATE: message, then its DETAIL and HINT.
BEGIN;
CREATE FUNCTION pg_temp.try(statement text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE st text; msg text; detail text; hint text;
BEGIN
	EXECUTE statement;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT,
		detail = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT;
	RETURN st || ': ' || msg
		|| CASE WHEN detail <> '' THEN E'\nDETAIL: ' || detail ELSE '' END
		|| CASE WHEN hint <> '' THEN E'\nHINT: ' || hint ELSE '' END;
END $$;
\pset tuples_only on
\pset format unaligned

-- No tenant
SELECT pg_temp.try($$SELECT meter.create_meter('api_call', 'API calls')$$);
SELECT pg_temp.try($$SELECT * FROM meter.list_meters()$$);

SET meter.tenant_id = 'acme';
SET meter.user_id = 'alice';

-- A meter, canonical JSON columns
SELECT event_name, name, aggregation, filters, reset_usage, status, created_by, updated_by
FROM meter.create_meter('llm', 'Tokens', '{"field":"tokens","type":"SUM"}',
	'[{"values":["o1-mini","gpt-4o","gpt-4o"],"key":"model"}]', 'NEVER', 'm_tokens');
SELECT id, aggregation, filters FROM meter.create_meter($${"id":"m_json","event_name":"api_call","name":"API calls",
	"aggregation":{"type":"COUNT"},"filters":[{"key":"region","values":["eu"]}],"tenant_id":"acme"}$$::jsonb);

-- Trigger: required, blank, too long
SELECT pg_temp.try($$SELECT meter.create_meter(NULL, 'n')$$);
SELECT pg_temp.try($$SELECT meter.create_meter(' ', 'n')$$);
SELECT pg_temp.try($$SELECT meter.create_meter('e', E'\u00A0\t')$$);
SELECT pg_temp.try($$SELECT meter.create_meter('e', repeat('ü', 1000))$$);
SELECT pg_temp.try($$SELECT meter.create_meter('e', 'n', id => '')$$);
SELECT pg_temp.try($$SELECT meter.create_meter('e', 'n', aggregation => NULL)$$);
SELECT pg_temp.try($$SELECT meter.create_meter('e', 'n', filters => NULL)$$);
SELECT pg_temp.try($$INSERT INTO meter.meters (event_name, name, aggregation, tenant_id) VALUES ('e', 'n', '{"type":"COUNT"}', '')$$);
SELECT pg_temp.try($$INSERT INTO meter.meters (event_name, name, aggregation, environment_id) VALUES ('e', 'n', '{"type":"COUNT"}', NULL)$$);

-- Trigger: immutable columns
SELECT pg_temp.try($$UPDATE meter.meters SET id = 'm_other' WHERE id = 'm_tokens'$$);
SELECT pg_temp.try($$UPDATE meter.meters SET tenant_id = 'globex' WHERE id = 'm_tokens'$$);
SELECT pg_temp.try($$UPDATE meter.meters SET environment_id = 'prod' WHERE id = 'm_tokens'$$);
SELECT pg_temp.try($$UPDATE meter.meters SET created_at = now() - interval '1 day' WHERE id = 'm_tokens'$$);
SELECT pg_temp.try($$UPDATE meter.meters SET created_by = 'mallory' WHERE id = 'm_tokens'$$);

-- create_meter: duplicate id, FlexPrice JSON errors
SELECT pg_temp.try($$SELECT meter.create_meter('e', 'n', id => 'm_tokens')$$);
SELECT pg_temp.try($$SELECT meter.create_meter('{"id":"m_tokens","event_name":"e","name":"n"}'::jsonb)$$);
SELECT pg_temp.try($$SELECT meter.create_meter('[1]'::jsonb)$$);
SELECT pg_temp.try($$SELECT meter.create_meter('{"event_name":"e","name":"n","description":"x"}'::jsonb)$$);
SELECT pg_temp.try($$SELECT meter.create_meter('{"event_name":"e","name":true}'::jsonb)$$);
SELECT pg_temp.try($$SELECT meter.create_meter('{"event_name":"e","name":"n","aggregation":"SUM"}'::jsonb)$$);
SELECT pg_temp.try($$SELECT meter.create_meter('{"event_name":"e","name":"n","filters":{}}'::jsonb)$$);
SELECT pg_temp.try($$SELECT meter.create_meter('{"event_name":"e","name":"n","tenant_id":"globex"}'::jsonb)$$);
SELECT pg_temp.try($$SELECT meter.create_meter('{"event_name":"e","name":"n","environment_id":"prod"}'::jsonb)$$);
SELECT pg_temp.try($$SELECT meter.create_meter('{"event_name":"e","name":"n","reset_usage":"MONTHLY"}'::jsonb)$$);
SELECT pg_temp.try($$SELECT meter.create_meter('{"event_name":"e","name":"n","status":"active"}'::jsonb)$$);
SELECT pg_temp.try($$SELECT meter.create_meter('{"event_name":"e","name":"n","created_at":"2024-03-20"}'::jsonb)$$);
SELECT pg_temp.try($$SELECT meter.create_meter('{"event_name":"e","name":"n","aggregation":{"type":"AVG"}}'::jsonb)$$);

-- get / disable / update: not found
SELECT pg_temp.try($$SELECT meter.get_meter('nope')$$);
SELECT pg_temp.try($$SELECT meter.get_meter(NULL)$$);
SELECT pg_temp.try($$SELECT meter.disable_meter('nope')$$);
SELECT pg_temp.try($$SELECT meter.update_meter('nope', '[]')$$);
SELECT pg_temp.try($$SELECT meter.update_meter('m_tokens', NULL)$$);
SELECT status, filters FROM meter.disable_meter('m_tokens');
SELECT status, filters FROM meter.disable_meter('m_tokens');
SELECT status, filters FROM meter.update_meter('m_tokens', '[]');
UPDATE meter.meters SET status = 'deleted' WHERE id = 'm_tokens';
SELECT pg_temp.try($$SELECT meter.get_meter('m_tokens')$$);

-- list validation
SELECT pg_temp.try($$SELECT * FROM meter.list_meters("limit" => 0)$$);
SELECT pg_temp.try($$SELECT * FROM meter.list_meters("limit" => 1001)$$);
SELECT pg_temp.try($$SELECT * FROM meter.list_meters("offset" => -1)$$);
SELECT pg_temp.try($$SELECT * FROM meter.list_meters(sort => 'id')$$);
SELECT pg_temp.try($$SELECT * FROM meter.list_meters("order" => 'descending')$$);
SELECT pg_temp.try($$SELECT * FROM meter.list_all_meters(start_time => '2024-02-01Z', end_time => '2024-01-01Z')$$);
SELECT pg_temp.try($$SELECT meter.count_meters(start_time => '2024-02-01Z', end_time => '2024-01-01Z')$$);
SELECT id, status FROM meter.list_meters(status => 'deleted');
SELECT meter.count_meters(), meter.count_meters(status => 'deleted');
ROLLBACK;
