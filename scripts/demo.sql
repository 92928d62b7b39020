-- The demo: a tenant's meters, a realistic day of usage events in, exact usage out.
-- Run by scripts/demo.sh on a throwaway cluster.
\pset footer off
\set ON_ERROR_STOP 1
CREATE EXTENSION meter;
SET meter.tenant_id = 'acme';
SET meter.user_id = 'demo';
SELECT setseed(0.2024);

\echo
\echo '== 1. Meters: what counts and how it aggregates (SPEC §4, §6)'
SELECT id FROM meter.create_meter('llm.tokens', 'GPT-4o tokens', '{"type":"SUM","field":"tokens"}',
	'[{"key":"model","values":["gpt-4o"]}]', id => 'tokens_gpt4o') \g /dev/null
SELECT id FROM meter.create_meter('llm.tokens', 'o1 tokens (billed 1.5x)',
	'{"type":"SUM_WITH_MULTIPLIER","field":"tokens","multiplier":1.5}',
	'[{"key":"model","values":["o1","o1-mini"]}]', id => 'tokens_o1') \g /dev/null
SELECT id FROM meter.create_meter('api.request', 'API calls', id => 'api_calls') \g /dev/null
SELECT id FROM meter.create_meter('api.request', 'Active API users',
	'{"type":"COUNT_UNIQUE","field":"user_id"}', id => 'api_users') \g /dev/null
SELECT id FROM meter.create_meter('api.request', 'Slowest EU call (ms)', '{"type":"MAX","field":"duration_ms"}',
	'[{"key":"region","values":["eu-west-1"]}]', id => 'api_p100_eu') \g /dev/null
SELECT id FROM meter.create_meter('storage.usage', 'Storage (GB, time-weighted)',
	'{"type":"WEIGHTED_SUM","field":"gb"}', id => 'storage_gb') \g /dev/null
SELECT id, event_name, name, aggregation, filters FROM meter.list_meters(sort => 'name', "order" => 'asc');

\echo
\echo '== 2. Events: one day of traffic from three customers, ingested as FlexPrice JSON (SPEC §7)'
SELECT * FROM meter.ingest((
	SELECT jsonb_agg(jsonb_build_object(
		'event_id', 'evt_' || g,
		'event_name', CASE WHEN g % 3 = 0 THEN 'api.request' WHEN g % 17 = 0 THEN 'storage.usage' ELSE 'llm.tokens' END,
		'external_customer_id', (ARRAY['cus_northwind', 'cus_globex', 'cus_globex', 'cus_initech', 'cus_northwind', 'cus_northwind'])[1 + (g / 7) % 6],
		'timestamp', to_char(('2024-03-10 00:00Z'::timestamptz + g * interval '73 seconds') AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
		'source', 'demo',
		'properties', jsonb_build_object(
			'model', (ARRAY['gpt-4o', 'o1', 'o1-mini', 'gpt-4o-mini'])[1 + g % 4],
			'tokens', 50 + (g * 7919) % 4000,
			'region', (ARRAY['us-east-1', 'eu-west-1'])[1 + g % 2],
			'duration_ms', 20 + (g * 131) % 900,
			'user_id', 'user_' || (g % 40),
			'gb', round(10 + (g % 50) / 7.0, 2))))
	FROM generate_series(1, 1000) g));
\echo 'The same batch sent again is recognised as duplicates, forever (no time window):'
SELECT * FROM meter.ingest((SELECT jsonb_agg(jsonb_build_object('event_id', 'evt_' || g,
	'event_name', 'api.request', 'external_customer_id', 'cus_globex')) FROM generate_series(1, 5) g));

\echo
\echo '== 3. Stored usage: kept exact by the trigger, in the same transaction'
\echo 'Each statement appended one pending row per meter; compaction folds them:'
SELECT meter_id, count(*) AS pending_rows, sum(entries) AS partial_states
FROM meter.pending GROUP BY meter_id ORDER BY meter_id;
SELECT meter.compact() AS pending_rows_folded;
\echo 'Per meter: the 15-minute partial states now stored (all customers together):'
SELECT m.id AS meter_id, count(*) AS slots, sum(s.events) AS events, sum(s.sum) AS sum, max(s.best) AS best
FROM meter.meters m CROSS JOIN LATERAL meter.stored_slots(m.id, true) s
GROUP BY m.id ORDER BY m.id;
\echo 'Why does an event count, or not?'
SELECT meter.explain_match('tokens_gpt4o', 'llm.tokens', '{"model":"gpt-5","tokens":10}') AS why;
SELECT meter.explain_match('tokens_gpt4o', 'llm.tokens', '{"model":"gpt-4o","tokens":"ten"}') AS why;
\echo 'Stored usage against a recomputation from the raw events in plain SQL (empty = exact):'
SELECT * FROM meter.verify();

\echo
\echo '== 4. Usage: per customer, per meter, per day in New York time (SPEC §8)'
SELECT c.customer, m.id AS meter, u.window_start AT TIME ZONE 'America/New_York' AS day_starts_ny, u.value
FROM (VALUES ('cus_northwind'), ('cus_globex'), ('cus_initech')) c(customer)
CROSS JOIN meter.list_meters(sort => 'name', "order" => 'asc') m
CROSS JOIN LATERAL meter.usage(m.id, '2024-03-09 05:00Z', '2024-03-11 05:00Z',
	external_customer_id => c.customer, window_size => 'DAY', timezone => 'America/New_York') u
ORDER BY 1, 2, 3;
\echo 'The same from the raw events (the ground truth), for one customer and meter:'
SELECT window_start, window_end, value FROM meter.usage_from_events('tokens_gpt4o',
	'2024-03-09 05:00Z', '2024-03-11 05:00Z', external_customer_id => 'cus_globex',
	window_size => 'DAY', timezone => 'America/New_York');
\echo 'The invoice run: every customer of a meter in one call (SPEC §8):'
SELECT customer_id, external_customer_id, window_start, value
FROM meter.usage_by_customer('tokens_gpt4o', '2024-03-01', '2024-04-01', 'MONTH');
\echo 'Ad-hoc SQL with the meter.aggregate aggregate, by customer:'
SELECT e.external_customer_id, meter.aggregate(m.aggregation, e.properties, e."timestamp") AS o1_tokens_billed
FROM meter.events e JOIN meter.meters m ON m.id = 'tokens_o1'
WHERE e.event_name = m.event_name AND meter.matches(m.filters, e.properties)
GROUP BY 1 ORDER BY 1;
