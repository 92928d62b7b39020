-- meter.ingest(jsonb) (SPEC §7): the exact error texts.
-- Runs meter.ingest; returns 'accepted/duplicates' or 'SQLSTATE: message'.
CREATE FUNCTION pg_temp.try(events jsonb) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	r record;
BEGIN
	SELECT * INTO r FROM meter.ingest(events);
	RETURN r.accepted || ' accepted, ' || r.duplicates || ' duplicates';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ': ' || SQLERRM;
END $$;
SELECT pg_temp.try('[]');
SET meter.tenant_id = 'regress_ingest';
-- Every rule, one line each (events count from 0).
SELECT label, pg_temp.try(input::jsonb) AS result FROM (VALUES
	('empty array', '[]'),
	('string', '"x"'),
	('number', '1'),
	('json null', 'null'),
	('element not object', '[{"event_name":"a","customer_id":"c"}, [1]]'),
	('no event_name', '[{"event_name":"a","customer_id":"c"}, {"customer_id":"c"}]'),
	('empty event_name', '{"event_name":" ","customer_id":"c"}'),
	('numeric event_name', '{"event_name":1,"customer_id":"c"}'),
	('no customer', '{"event_name":"a"}'),
	('empty customers', '{"event_name":"a","customer_id":"","external_customer_id":""}'),
	('numeric customer', '{"event_name":"a","external_customer_id":3}'),
	('ids differ', '{"event_name":"a","customer_id":"c","id":"x","event_id":"y"}'),
	('empty id', '{"event_name":"a","customer_id":"c","id":""}'),
	('numeric event_id', '{"event_name":"a","customer_id":"c","event_id":5}'),
	('no zone', '{"event_name":"a","customer_id":"c","timestamp":"2024-03-10T20:00:00"}'),
	('garbage time', '{"event_name":"a","customer_id":"c","timestamp":"last tuesday"}'),
	('numeric time', '{"event_name":"a","customer_id":"c","timestamp":1710100800}'),
	('array properties', '{"event_name":"a","customer_id":"c","properties":[]}'),
	('numeric source', '{"event_name":"a","customer_id":"c","source":2}'),
	('other tenant', '{"event_name":"a","customer_id":"c","tenant_id":"globex"}'),
	('other environment', '{"event_name":"a","customer_id":"c","environment_id":"prod"}'),
	('unknown key', '{"event_name":"a","customer_id":"c","quantity":5}'),
	('first ok', '{"event_name":"a","customer_id":"c","id":"e1","timestamp":"2024-03-10T20:00:00Z"}'),
	('re-sent', '[{"event_name":"a","customer_id":"c","id":"e1","timestamp":"2024-03-10T20:00:00Z"},{"event_name":"a","customer_id":"c","id":"e2","timestamp":"2024-03-10T21:00:00Z"},{"event_name":"a","customer_id":"c","id":"e2","timestamp":"2024-03-10T21:00:00Z"}]')
) AS t(label, input);
-- Details and hints.
SELECT * FROM meter.ingest('[{"event_name":"a","customer_id":"c"}, {"event_name":"a","customer_id":"c"}, {"customer_id":"c"}]');
SELECT * FROM meter.ingest('[{"event_name":"a","customer_id":"c","timestamp":"2024-03-10T20:00:00"}]');
SELECT * FROM meter.ingest('[{"event_name":"a","customer_id":"c","timestamp":"2024-02-30T20:00:00Z"}]');
SELECT * FROM meter.ingest('[{"event_name":"a","customer_id":"c","timestamp":"10/03/2024"}]');
SELECT * FROM meter.ingest('[{"event_name":"a","customer_id":"c","id":"x","event_id":"y"}]');
SELECT * FROM meter.ingest('[{"event_name":"a","customer_id":"c","tenant_id":"globex"}]');
SELECT * FROM meter.ingest('[{"event_name":"a","customer_id":"c","properties":"tokens=5"}]');
SELECT * FROM meter.ingest('[{"event_name":"a","customer_id":"c","tokens":5}]');
SELECT * FROM meter.ingest('[{"event_name":"a"}]');
SELECT * FROM meter.ingest('{"event_name":"a","customer_id":"c","timestamp":"2024-03-10T20:00:00+05:30","id":"e3"}');
SELECT id, event_name, customer_id, "timestamp" AT TIME ZONE 'UTC' AS utc FROM meter.events WHERE tenant_id = 'regress_ingest' ORDER BY id;
RESET meter.tenant_id;
