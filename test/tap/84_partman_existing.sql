-- The README's recipe for a meter.events that already holds events and is to be kept by
-- pg_partman (whose create_parent makes a default partition of its own): partition it,
-- detach the default partition holding the rows, let create_parent make the monthly
-- partitions, move the rows in with partman.partition_data_time. Afterwards every event is
-- in its month's partition, usage is what it was, verify() is empty, ids are exact.
BEGIN;
SET client_min_messages = warning;
SET LOCAL TimeZone = 'UTC';
SELECT plan(9);

CREATE SCHEMA partman;
CREATE EXTENSION pg_partman SCHEMA partman;
SET LOCAL meter.tenant_id = 'acme';
SELECT meter.create_meter('api', 'calls', id => 'px_count');
SELECT meter.create_meter('api', 'n', '{"type":"SUM","field":"n"}', id => 'px_sum');
SELECT meter.create_meter('api', 'users', '{"type":"COUNT_UNIQUE","field":"user"}', id => 'px_unique');
SELECT * FROM meter.ingest((SELECT jsonb_agg(jsonb_build_object('id', 'x' || i, 'event_name', 'api', 'customer_id', 'c' || (i % 4),
	'timestamp', to_char(timestamptz '2024-01-01' + i * interval '257 minutes', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
	'properties', jsonb_build_object('n', i, 'user', 'u' || (i % 17)))) FROM generate_series(0, 499) i));
CREATE TEMP TABLE before AS
	SELECT m, u.window_start, u.value FROM unnest(ARRAY['px_count', 'px_sum', 'px_unique']) m,
		meter.usage(m, '2024-01-01', '2024-05-01', window_size => 'MONTH') u;

-- The recipe, in one transaction.
SELECT meter.partition_events();
ALTER TABLE meter.events DETACH PARTITION meter.events_default;
ALTER TABLE meter.events_default RENAME TO events_before_partman;
SELECT partman.create_parent('meter.events', 'timestamp', 'native', 'monthly', p_start_partition := '2024-01-01');
SELECT is(partman.partition_data_time('meter.events', p_batch_count := 100,
	p_source_table := 'meter.events_before_partman')::bigint, 500::bigint, 'partition_data_time moves the 500 events');
DROP TABLE meter.events_before_partman;

SELECT is((SELECT count(*) FROM meter.events), 500::bigint, 'meter.events holds them');
SELECT is((SELECT count(*) FROM meter.events_default), 0::bigint, 'none in the default partition');
SELECT is((SELECT count(*) FROM meter.events e WHERE e.tableoid::regclass::text <> 'meter.events_p' || to_char(e."timestamp", 'YYYY_MM')),
	0::bigint, 'each in its month''s partition');
SELECT set_eq($$SELECT m, u.window_start, u.value FROM unnest(ARRAY['px_count', 'px_sum', 'px_unique']) m,
		meter.usage(m, '2024-01-01', '2024-05-01', window_size => 'MONTH') u$$,
	$$SELECT * FROM before$$, 'usage by month as it was');
SELECT is((SELECT count(*) FROM meter.verify()), 0::bigint, 'verify() empty');
SELECT ok(NOT EXISTS (
		(SELECT tenant_id, environment_id, id FROM meter.events EXCEPT ALL SELECT tenant_id, environment_id, id FROM meter.event_ids)
		UNION ALL (SELECT tenant_id, environment_id, id FROM meter.event_ids EXCEPT ALL SELECT tenant_id, environment_id, id FROM meter.events)),
	'meter.event_ids = the stored ids');
SELECT results_eq($$SELECT accepted, duplicates FROM meter.ingest('[{"id": "x7", "event_name": "api", "customer_id": "c1", "timestamp": "2024-04-01T00:00:00Z"},
	{"id": "x500", "event_name": "api", "customer_id": "c1", "timestamp": "2024-04-01T00:00:00Z"}]')$$,
	$$VALUES (1, 1)$$, 'dedup across the new partitions');
SELECT is((SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal AND tgrelid = 'meter.events_p2024_03'::regclass), 8::bigint,
	'pg_partman''s partitions carry the tracking and id triggers');

SELECT * FROM finish();
ROLLBACK;
