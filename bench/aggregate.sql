-- meter.aggregate vs built-in aggregates (SPEC §9), serial plans, one session, runs
-- alternated so that caching and noise hit both sides alike; prints the median ratio.
-- Run: psql -X -d <db with the extension> -f bench/aggregate.sql  (creates and drops a table)
\set rows 1000000
SET max_parallel_workers_per_gather = 0;
SET jit = off;
DROP TABLE IF EXISTS bench_aggregate_events;
CREATE TABLE bench_aggregate_events AS
SELECT jsonb_build_object('tokens', (g % 1000) + 1, 'model', 'gpt-' || (g % 7), 'user', 'u' || (g % 5000)) AS properties,
	timestamptz '2024-01-01 00:00+00' + g * interval '2 seconds' AS ts
FROM generate_series(1, :rows) g;
VACUUM ANALYZE bench_aggregate_events;

CREATE FUNCTION pg_temp.ms(q text) RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE t0 timestamptz; r text;
BEGIN
	t0 := clock_timestamp();
	EXECUTE q INTO r;
	RETURN extract(epoch FROM clock_timestamp() - t0) * 1000;
END $$;

CREATE TEMP TABLE cases (name text, ours text, builtin text);
INSERT INTO cases VALUES
	('SUM', $$SELECT meter.aggregate('{"type":"SUM","field":"tokens"}', properties, ts) FROM bench_aggregate_events$$,
		$$SELECT sum((properties->>'tokens')::numeric) FROM bench_aggregate_events$$),
	('AVG', $$SELECT meter.aggregate('{"type":"AVG","field":"tokens"}', properties, ts) FROM bench_aggregate_events$$,
		$$SELECT avg((properties->>'tokens')::numeric) FROM bench_aggregate_events$$),
	('MAX', $$SELECT meter.aggregate('{"type":"MAX","field":"tokens"}', properties, ts) FROM bench_aggregate_events$$,
		$$SELECT max((properties->>'tokens')::numeric) FROM bench_aggregate_events$$),
	('COUNT', $$SELECT meter.aggregate('{"type":"COUNT"}', properties, ts) FROM bench_aggregate_events$$,
		$$SELECT count(properties) FROM bench_aggregate_events$$),
	('COUNT_UNIQUE', $$SELECT meter.aggregate('{"type":"COUNT_UNIQUE","field":"user"}', properties, ts) FROM bench_aggregate_events$$,
		$$SELECT count(DISTINCT properties->>'user') FROM bench_aggregate_events$$),
	('SUM by model', $$SELECT count(x) FROM (SELECT meter.aggregate('{"type":"SUM","field":"tokens"}', properties, ts) x FROM bench_aggregate_events GROUP BY properties->>'model') s$$,
		$$SELECT count(x) FROM (SELECT sum((properties->>'tokens')::numeric) x FROM bench_aggregate_events GROUP BY properties->>'model') s$$);

-- warm up, then 5 alternating runs per case
SELECT pg_temp.ms(ours) + pg_temp.ms(builtin) AS warmup_ms FROM cases WHERE name = 'SUM';
CREATE TEMP TABLE runs AS
SELECT c.name, i, pg_temp.ms(c.ours) AS ours_ms, pg_temp.ms(c.builtin) AS builtin_ms
FROM cases c, generate_series(1, 5) i;
SELECT name AS "case",
	round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ours_ms)::numeric, 1) AS meter_ms,
	round(percentile_cont(0.5) WITHIN GROUP (ORDER BY builtin_ms)::numeric, 1) AS builtin_ms,
	round((percentile_cont(0.5) WITHIN GROUP (ORDER BY ours_ms)
		/ percentile_cont(0.5) WITHIN GROUP (ORDER BY builtin_ms))::numeric, 2) AS ratio
FROM runs GROUP BY name
ORDER BY array_position(ARRAY['SUM', 'AVG', 'MAX', 'COUNT', 'COUNT_UNIQUE', 'SUM by model'], name);
DROP TABLE bench_aggregate_events;
