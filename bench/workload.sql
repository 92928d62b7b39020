-- The benchmark's workload (SPEC §9, issues 5, 9, 10), loaded by bench/bench.py into a
-- database where `CREATE EXTENSION meter` was done. Everything the benchmark owns lives in
-- schema bench; meters live in tenant 'bench' (20 meters, most figures) and in tenants of
-- their own for the figures that need another catalog (see the functions below).

CREATE SCHEMA bench;

-- 2,000 customers; customer k's share of the events ∝ 1/k (customer 1: 1/H(2000) ≈ 1/8.2).
-- lo holds each customer's lower bound on [0, 1): width_bucket(u, lo) is the customer of u.
CREATE TABLE bench.customers AS
SELECT k, 'cust_' || lpad(k::text, 4, '0') AS external_customer_id,
	(coalesce(sum(1.0 / k) OVER (ORDER BY k ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0)
		/ (SELECT sum(1.0 / i) FROM generate_series(1, 2000) i))::float8 AS lo
FROM generate_series(1, 2000) k;

-- n events, fixed seed: 5 event names, customers as above, timestamps over 30 days from
-- 2024-01-01 in roughly increasing order (each up to 10 minutes late), batches of 1,000.
-- Deterministic as long as it runs in one serial plan (random() after setseed).
CREATE FUNCTION bench.generate(n integer)
RETURNS TABLE (g integer, batch integer, id text, event_name text, external_customer_id text,
	ts timestamptz, properties jsonb)
LANGUAGE sql VOLATILE AS $$
	SELECT setseed(0.42);
	SELECT r.g, (r.g - 1) / 1000 + 1, 'evt_' || lpad(r.g::text, 9, '0'),
		(ARRAY['llm.tokens', 'api.request', 'storage.gb', 'seat.active', 'job.run'])[1 + floor(r.u_name * 5)::int],
		'cust_' || lpad(width_bucket(r.u_cust, (SELECT array_agg(c.lo ORDER BY c.k) FROM bench.customers c))::text, 4, '0'),
		timestamptz '2024-01-01 00:00:00+00'
			+ (r.g - 1) * (interval '30 days' - interval '10 minutes') / n
			+ r.u_late * interval '10 minutes',
		jsonb_build_object(
			'model', (ARRAY['gpt-4o', 'gpt-4o-mini', 'o1', 'o1-mini', 'claude'])[1 + floor(r.u_model * 5)::int],
			'region', (ARRAY['us', 'eu', 'ap'])[1 + floor(r.u_region * 3)::int],
			'tokens', 1 + floor(r.u_tokens * 5000)::int,
			'duration_ms', 5 + floor(r.u_dur * r.u_dur * 20000)::int,
			'user_id', 'user_' || floor(r.u_user * 50000)::int,
			'gb', round((r.u_gb * 100)::numeric, 3))
	FROM (SELECT g, random() AS u_name, random() AS u_cust, random() AS u_late,
			random() AS u_model, random() AS u_region, random() AS u_tokens, random() AS u_dur,
			random() AS u_user, random() AS u_gb
		FROM generate_series(1, n) g) r
	ORDER BY r.g
$$;

-- The 20 meters of tenant 'bench' (ids bm_01 … bm_20): ~4 per event name, every
-- aggregation type the issue names, with and without filters. Ids are fixed so that
-- figures can name them. The same 20 in another tenant with another id prefix (ids are
-- unique across tenants): 'bench_pend' (bp_…, the usage-with-pending figure) and
-- 'bench_conc' (bc_…, the concurrent-writers figure).
CREATE FUNCTION bench.create_meters(tenant text DEFAULT 'bench', prefix text DEFAULT 'bm_')
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	PERFORM set_config('meter.tenant_id', tenant, true);
	PERFORM meter.create_meter('llm.tokens', 'Tokens', '{"type":"SUM","field":"tokens"}', id => prefix || '01');
	PERFORM meter.create_meter('llm.tokens', 'Tokens gpt-4o/o1-mini in us', '{"type":"SUM","field":"tokens"}',
		'[{"key":"model","values":["gpt-4o","o1-mini"]},{"key":"region","values":["us"]}]', id => prefix || '02');
	PERFORM meter.create_meter('llm.tokens', 'LLM calls', id => prefix || '03');
	PERFORM meter.create_meter('llm.tokens', 'Billed gpt-4o tokens',
		'{"type":"SUM_WITH_MULTIPLIER","field":"tokens","multiplier":"0.002"}',
		'[{"key":"model","values":["gpt-4o"]}]', id => prefix || '04');
	PERFORM meter.create_meter('api.request', 'Requests', id => prefix || '05');
	PERFORM meter.create_meter('api.request', 'Requests in eu', filters => '[{"key":"region","values":["eu"]}]', id => prefix || '06');
	PERFORM meter.create_meter('api.request', 'Average latency', '{"type":"AVG","field":"duration_ms"}', id => prefix || '07');
	PERFORM meter.create_meter('api.request', 'Slowest request', '{"type":"MAX","field":"duration_ms"}', id => prefix || '08');
	PERFORM meter.create_meter('storage.gb', 'Peak storage', '{"type":"MAX","field":"gb"}', id => prefix || '09');
	PERFORM meter.create_meter('storage.gb', 'Storage now', '{"type":"LATEST","field":"gb"}', id => prefix || '10');
	PERFORM meter.create_meter('storage.gb', 'Storage in us', '{"type":"SUM","field":"gb"}',
		'[{"key":"region","values":["us"]}]', id => prefix || '11');
	PERFORM meter.create_meter('storage.gb', 'Average storage', '{"type":"AVG","field":"gb"}', id => prefix || '12');
	PERFORM meter.create_meter('seat.active', 'Active users', '{"type":"COUNT_UNIQUE","field":"user_id"}', id => prefix || '13');
	PERFORM meter.create_meter('seat.active', 'Active users in eu', '{"type":"COUNT_UNIQUE","field":"user_id"}',
		'[{"key":"region","values":["eu"]}]', id => prefix || '14');
	PERFORM meter.create_meter('seat.active', 'Seat pings', id => prefix || '15');
	PERFORM meter.create_meter('seat.active', 'Last seat gb', '{"type":"LATEST","field":"gb"}',
		'[{"key":"model","values":["o1","claude"]}]', id => prefix || '16');
	PERFORM meter.create_meter('job.run', 'Jobs', id => prefix || '17');
	PERFORM meter.create_meter('job.run', 'Job time', '{"type":"SUM","field":"duration_ms"}', id => prefix || '18');
	PERFORM meter.create_meter('job.run', 'Jobs on o1 in ap', filters =>
		'[{"key":"model","values":["o1","o1-mini"]},{"key":"region","values":["ap"]}]', id => prefix || '19');
	PERFORM meter.create_meter('job.run', 'Longest job in us', '{"type":"MAX","field":"duration_ms"}',
		'[{"key":"region","values":["us"]}]', id => prefix || '20');
END $$;

-- n meters on one event name (llm.tokens) in a tenant of their own: the catalog a
-- per-event meter lookup has to search. Mixed filters: none, one key, two keys, a user
-- list. 'bench_match' has 100 (mm_001 … mm_100: the matching_meters figure, and the
-- 100-meter side of the meters_100_vs_20 ingest figure); 'bench_match20' has the first 20
-- of the same (m20_001 … m20_020).
CREATE FUNCTION bench.create_match_meters(tenant text DEFAULT 'bench_match', n integer DEFAULT 100,
	prefix text DEFAULT 'mm_')
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
	models text[] := ARRAY['gpt-4o', 'gpt-4o-mini', 'o1', 'o1-mini', 'claude'];
	regions text[] := ARRAY['us', 'eu', 'ap'];
	f text;
BEGIN
	PERFORM set_config('meter.tenant_id', tenant, true);
	FOR i IN 1..n LOOP
		f := CASE i % 4
			WHEN 0 THEN '[]'
			WHEN 1 THEN format('[{"key":"model","values":["%s"]}]', models[1 + i % 5])
			WHEN 2 THEN format('[{"key":"model","values":["%s","%s"]},{"key":"region","values":["%s"]}]',
				models[1 + i % 5], models[1 + (i + 1) % 5], regions[1 + i % 3])
			ELSE format('[{"key":"user_id","values":["user_%s","user_%s","user_%s"]}]', i, i * 7, i * 13)
		END;
		PERFORM meter.create_meter('llm.tokens', 'match ' || i,
			CASE WHEN i % 2 = 0 THEN '{"type":"COUNT"}' ELSE '{"type":"SUM","field":"tokens"}' END::meter.aggregation,
			f::meter.filters, id => prefix || lpad(i::text, 3, '0'));
	END LOOP;
END $$;

-- 'bench_match_idle': the same first 20 meters (mi_001 … mi_020) and 80 more on
-- llm.tokens whose filters name values the workload never has (mi_021 … mi_100), on the
-- same keys: each event matches as many meters as in 'bench_match20', so that ingest
-- compares a catalog five times larger and nothing else.
CREATE FUNCTION bench.create_idle_meters() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	PERFORM bench.create_match_meters('bench_match_idle', 20, 'mi_');
	PERFORM set_config('meter.tenant_id', 'bench_match_idle', true);
	FOR i IN 21..100 LOOP
		PERFORM meter.create_meter('llm.tokens', 'idle ' || i,
			CASE WHEN i % 2 = 0 THEN '{"type":"COUNT"}' ELSE '{"type":"SUM","field":"tokens"}' END::meter.aggregation,
			(CASE i % 3
				WHEN 0 THEN format('[{"key":"model","values":["model-%s"]}]', i)
				WHEN 1 THEN format('[{"key":"model","values":["gpt-4o"]},{"key":"region","values":["region-%s"]}]', i)
				ELSE format('[{"key":"user_id","values":["user_%s","user_%s"]}]', 100000 + i, 200000 + i)
			END)::meter.filters,
			id => 'mi_' || lpad(i::text, 3, '0'));
	END LOOP;
END $$;

-- One SUM meter on llm.tokens in each of two tenants: a value computed by an expression of
-- three properties (bench_expr, bx_expr) vs one field (bench_field, bx_field).
CREATE FUNCTION bench.create_expression_meters() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	PERFORM set_config('meter.tenant_id', 'bench_expr', true);
	PERFORM meter.create_meter('llm.tokens', 'Weighted work',
		'{"type":"SUM","expression":"tokens + duration_ms * 2 + gb"}', id => 'bx_expr');
	PERFORM set_config('meter.tenant_id', 'bench_field', true);
	PERFORM meter.create_meter('llm.tokens', 'Tokens', '{"type":"SUM","field":"tokens"}', id => 'bx_field');
END $$;

-- Contender "plain": the same table without any trigger.
CREATE TABLE bench.plain_events (LIKE meter.events INCLUDING ALL);
