-- meter.aggregate (SPEC §8): exact results for every aggregation type, the usable-value
-- rules, the state type's text form, and exact error texts (SQLSTATE: message, DETAIL, HINT).
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
-- The session's time zone must not change any result or state text.
SET TimeZone = 'America/New_York';

-- Reference events: v is the property the meters read.
CREATE TEMP TABLE ev (k text, properties jsonb, ts timestamptz);
INSERT INTO ev VALUES
	('max', '{"v":10}', '2024-01-05 00:00+00'), ('max', '{"v":50}', '2024-01-06 00:00+00'),
	('max', '{"v":20}', '2024-01-07 00:00+00'),
	('latest', '{"v":10}', '2024-01-05 00:00+00'), ('latest', '{"v":77}', '2024-01-12 00:00+00'),
	('latest', '{"v":22}', '2024-01-08 00:00+00'),
	('avg', '{"v":10}', '2024-01-01 00:00+00'), ('avg', '{"v":20}', '2024-01-02 00:00+00'),
	('avg', '{"v":30}', '2024-01-03 00:00+00'), ('avg', '{"v":40}', '2024-01-04 00:00+00'),
	('avg_missing', '{"v":10}', '2024-01-01 00:00+00'), ('avg_missing', '{"v":20}', '2024-01-02 00:00+00'),
	('avg_missing', '{"other":99}', '2024-01-03 00:00+00'),
	('decimals', '{"v":0.1}', '2024-01-01 00:00+00'), ('decimals', '{"v":"0.2"}', '2024-01-02 00:00+00'),
	('huge', '{"v":1e400}', '2024-01-01 00:00+00'), ('huge', '{"v":1}', '2024-01-02 00:00+00'),
	('negative', '{"v":-5}', '2024-01-01 00:00+00'), ('negative', '{"v":3}', '2024-01-02 00:00+00'),
	('negative', '{"v":"-0.5"}', '2024-01-03 00:00+00'),
	('unusable', '{"v":"abc"}', '2024-01-01 00:00+00'), ('unusable', '{"v":""}', '2024-01-02 00:00+00'),
	('unusable', '{"v":"NaN"}', '2024-01-03 00:00+00'), ('unusable', '{"v":"Infinity"}', '2024-01-04 00:00+00'),
	('unusable', '{"v":true}', '2024-01-05 00:00+00'), ('unusable', '{"v":{"x":1}}', '2024-01-06 00:00+00'),
	('unusable', '{"v":[1]}', '2024-01-07 00:00+00'), ('unusable', '{"v":null}', '2024-01-08 00:00+00'),
	('unusable', '{}', '2024-01-09 00:00+00'), ('unusable', '{"v":" 1"}', '2024-01-10 00:00+00'),
	('unusable', '{"v":"1e"}', '2024-01-11 00:00+00'), ('unusable', '[1]', '2024-01-12 00:00+00'),
	('unusable', NULL, '2024-01-13 00:00+00'),
	('mixed', '{"v":"abc"}', '2024-01-01 00:00+00'), ('mixed', '{"v":4}', '2024-01-02 00:00+00'),
	('mixed', '{"v":"6"}', '2024-01-03 00:00+00'), ('mixed', '{"v":false}', '2024-01-04 00:00+00'),
	('unique', '{"v":2}', '2024-01-01 00:00+00'), ('unique', '{"v":2.0}', '2024-01-02 00:00+00'),
	('unique', '{"v":"2"}', '2024-01-03 00:00+00'), ('unique', '{"v":"2.50"}', '2024-01-04 00:00+00'),
	('unique', '{"v":2.5}', '2024-01-05 00:00+00'), ('unique', '{"v":"gpt-4o"}', '2024-01-06 00:00+00'),
	('unique', '{"v":true}', '2024-01-07 00:00+00'), ('unique', '{"v":null}', '2024-01-08 00:00+00'),
	('unique', '{}', '2024-01-09 00:00+00'), ('unique', '{"v":1e2}', '2024-01-10 00:00+00'),
	('unique', '{"v":"100"}', '2024-01-11 00:00+00');

CREATE TEMP TABLE types (t text, agg meter.aggregation);
INSERT INTO types VALUES
	('COUNT', '{"type":"COUNT"}'), ('SUM', '{"type":"SUM","field":"v"}'),
	('AVG', '{"type":"AVG","field":"v"}'), ('COUNT_UNIQUE', '{"type":"COUNT_UNIQUE","field":"v"}'),
	('MAX', '{"type":"MAX","field":"v"}'), ('MIN', '{"type":"MIN","field":"v"}'),
	('LATEST', '{"type":"LATEST","field":"v"}'),
	('SUM_WITH_MULTIPLIER', '{"type":"SUM_WITH_MULTIPLIER","field":"v","multiplier":1.5}');

-- Every type over every group of events (GROUP BY, one aggregation per group).
\pset null '(null)'
SELECT k, t, meter.aggregate(agg, properties, ts)
FROM ev CROSS JOIN types WHERE k <> 'huge' GROUP BY k, t ORDER BY k, t;

-- The reference cases of the issue, one by one.
SELECT meter.aggregate('{"type":"MAX","field":"v"}', properties, ts) AS max_10_50_20 FROM ev WHERE k = 'max';
SELECT meter.aggregate('{"type":"LATEST","field":"v"}', properties, ts) AS latest_77 FROM ev WHERE k = 'latest';
SELECT meter.aggregate('{"type":"AVG","field":"v"}', properties, ts) AS avg_25,
	avg((properties->>'v')::numeric) AS builtin_avg,
	meter.aggregate('{"type":"AVG","field":"v"}', properties, ts)::text = avg((properties->>'v')::numeric)::text AS same_digits
FROM ev WHERE k = 'avg';
SELECT meter.aggregate('{"type":"AVG","field":"v"}', properties, ts) AS avg_15 FROM ev WHERE k = 'avg_missing';
SELECT meter.aggregate('{"type":"SUM","field":"v"}', properties, ts) AS sum_point_3 FROM ev WHERE k = 'decimals';
SELECT meter.aggregate('{"type":"SUM","field":"v"}', properties, ts) = 1e400 + 1 AS huge_sum_exact,
	meter.aggregate('{"type":"MAX","field":"v"}', properties, ts) = 1e400 AS huge_max,
	meter.aggregate('{"type":"AVG","field":"v"}', properties, ts) = avg((properties->>'v')::numeric) AS huge_avg,
	meter.aggregate('{"type":"SUM_WITH_MULTIPLIER","field":"v","multiplier":1.5}', properties, ts) = 1.5e400 + 1.5 AS huge_swm
FROM ev WHERE k = 'huge';
SELECT meter.aggregate('{"type":"SUM_WITH_MULTIPLIER","field":"v","multiplier":1.5}', '{"v":100}', now()) AS swm_150;
-- AVG digits match avg(numeric) on awkward quotients too.
SELECT meter.aggregate('{"type":"AVG","field":"v"}', jsonb_build_object('v', x), now())::text
	= avg(x)::text AS avg_like_builtin
FROM (VALUES (1::numeric), (2), (2), (0.001), (1e-20), (123456789.123)) v(x);

-- WEIGHTED_SUM over January 1–31 (30 days): (E·Σv − Σv·t) / (E − S).
SELECT meter.aggregate('{"type":"WEIGHTED_SUM","field":"v"}', '{"v":300}', '2024-01-16 00:00+00',
	'2024-01-01 00:00+00', '2024-01-31 00:00+00') AS ws_mid_150;
SELECT meter.aggregate('{"type":"WEIGHTED_SUM","field":"v"}', '{"v":300}', '2024-01-01 00:00+00',
	'2024-01-01 00:00+00', '2024-01-31 00:00+00') AS ws_start_300;
-- the same formula written in SQL, to the digit
SELECT meter.aggregate('{"type":"WEIGHTED_SUM","field":"v"}', properties, ts, s, e)
	= (extract(epoch FROM e) * sum((properties->>'v')::numeric)
		- sum((properties->>'v')::numeric * extract(epoch FROM ts)))
	  / (extract(epoch FROM e) - extract(epoch FROM s)) AS ws_like_sql,
	meter.aggregate('{"type":"WEIGHTED_SUM","field":"v"}', properties, ts, s, e)::text
	= ((extract(epoch FROM e) * sum((properties->>'v')::numeric)
		- sum((properties->>'v')::numeric * extract(epoch FROM ts)))
	  / (extract(epoch FROM e) - extract(epoch FROM s)))::text AS ws_same_digits
FROM ev, (VALUES ('2024-01-01 00:00+00'::timestamptz, '2024-01-31 07:13:01.5+00'::timestamptz)) p(s, e)
WHERE k IN ('avg', 'latest', 'decimals', 'negative') GROUP BY s, e;
-- unusable values and NULL timestamps are skipped; no usable value → 0
SELECT meter.aggregate('{"type":"WEIGHTED_SUM","field":"v"}', properties, ts,
	'2024-01-01 00:00+00', '2024-01-31 00:00+00') AS ws_unusable FROM ev WHERE k = 'unusable';
SELECT meter.aggregate('{"type":"WEIGHTED_SUM","field":"v"}', '{"v":5}', NULL,
	'2024-01-01 00:00+00', '2024-01-31 00:00+00') AS ws_no_time;
-- other types ignore the period
SELECT meter.aggregate('{"type":"SUM","field":"v"}', properties, ts, NULL, NULL) AS sum_5arg FROM ev WHERE k = 'avg';

-- LATEST: ties on the timestamp go to the greatest value, whatever the row order.
SELECT meter.aggregate('{"type":"LATEST","field":"v"}', jsonb_build_object('v', v), '2024-01-31 00:00+00')
FROM (SELECT v FROM unnest(ARRAY[3, 9, 1]) v ORDER BY v) s;
SELECT meter.aggregate('{"type":"LATEST","field":"v"}', jsonb_build_object('v', v), '2024-01-31 00:00+00')
FROM (SELECT v FROM unnest(ARRAY[3, 9, 1]) v ORDER BY v DESC) s;
-- equal values written differently: the one with more decimal places, in either order
SELECT meter.aggregate('{"type":"MAX","field":"v"}', p, now()) AS max_2_0,
	meter.aggregate('{"type":"MIN","field":"v"}', p, now()) AS min_2_0,
	meter.aggregate('{"type":"LATEST","field":"v"}', p, '2024-01-01 00:00+00') AS latest_2_0
FROM (VALUES ('{"v":2}'::jsonb), ('{"v":2.0}')) v(p);
SELECT meter.aggregate('{"type":"MAX","field":"v"}', p, now()) AS max_2_0,
	meter.aggregate('{"type":"MIN","field":"v"}', p, now()) AS min_2_0,
	meter.aggregate('{"type":"LATEST","field":"v"}', p, '2024-01-01 00:00+00') AS latest_2_0
FROM (VALUES ('{"v":2.0}'::jsonb), ('{"v":2}')) v(p);
-- a value without a timestamp has no place in time: skipped by LATEST
SELECT meter.aggregate('{"type":"LATEST","field":"v"}', p, t)
FROM (VALUES ('{"v":1}'::jsonb, '2024-01-01 00:00+00'::timestamptz), ('{"v":5}', NULL)) v(p, t);

-- bucket_size: MAX per bucket (UTC), then the sum of the bucket maxima.
CREATE TEMP TABLE bev AS
SELECT jsonb_build_object('v', v) AS properties, ts::timestamptz AS ts FROM (VALUES
	(5, '2024-01-01 00:10+00'), (7, '2024-01-01 00:50+00'),	-- hour 00: 7, day Jan 1
	(3, '2024-01-01 01:05+00'),								-- hour 01: 3
	(4, '2024-01-01 23:59:59.999999+00'),					-- hour 23: 4
	(9, '2024-01-02 00:00+00'),								-- Tue Jan 2, day: 9
	(2, '2024-01-07 23:00+00'),								-- Sun Jan 7: week of Mon Jan 1
	(6, '2024-01-08 00:00+00'),								-- Mon Jan 8: next week
	(8, '2024-02-01 00:00+00'), (1, '2024-02-29 12:00+00')	-- February
) v(v, ts);
SELECT b, meter.aggregate(('{"type":"MAX","field":"v","bucket_size":"' || b || '"}')::meter.aggregation, properties, ts) AS total,
	(SELECT sum(m) FROM (SELECT max((properties->>'v')::numeric) m FROM bev i
		GROUP BY CASE b WHEN 'HOUR' THEN date_trunc('hour', i.ts, 'UTC') WHEN 'DAY' THEN date_trunc('day', i.ts, 'UTC')
			WHEN 'WEEK' THEN date_trunc('week', i.ts, 'UTC') WHEN 'MONTH' THEN date_trunc('month', i.ts, 'UTC') END) q) AS by_date_trunc
FROM bev, unnest(ARRAY['HOUR', 'DAY', 'WEEK', 'MONTH']) b GROUP BY b ORDER BY b;
SELECT meter.aggregate('{"type":"MAX","field":"v","bucket_size":"15MIN"}', properties, ts) AS max_15min,
	meter.aggregate('{"type":"MAX","field":"v","bucket_size":"12HOUR"}', properties, ts) AS max_12hour,
	meter.aggregate('{"type":"SUM","field":"v","bucket_size":"DAY"}', properties, ts) AS sum_day,
	meter.aggregate('{"type":"SUM","field":"v"}', properties, ts) AS sum_plain
FROM bev;
SELECT meter.aggregate('{"type":"MAX","field":"v","bucket_size":"DAY"}', properties, ts) AS bucketed_unusable
FROM ev WHERE k = 'unusable';

-- An expression replaces the field's value everywhere a value is used (SPEC §2, §8).
-- q = input + output * 4 per event: 10 + 2*4 = 18, 1 (output missing: 0), skipped
-- ("abc" is not a number), 0 + 0.5*4 = 2.0, 0 (both missing), 0 (no properties at all).
-- input / output: 5, skipped (division by zero), skipped, 0, skipped, skipped.
CREATE TEMP TABLE xev (properties jsonb, ts timestamptz);
INSERT INTO xev VALUES
	('{"input":10,"output":2}', '2024-01-01 00:00+00'), ('{"input":1}', '2024-01-02 00:00+00'),
	('{"input":"abc","output":1}', '2024-01-03 00:00+00'), ('{"output":"0.5"}', '2024-01-04 00:00+00'),
	('{}', '2024-01-05 00:00+00'), (NULL, '2024-01-06 00:00+00');
SELECT meter.aggregate('{"type":"SUM","expression":"input + output * 4"}', properties, ts) AS sum_21_0,
	meter.aggregate('{"type":"AVG","expression":"input + output * 4"}', properties, ts) AS avg_21_0_over_5,
	meter.aggregate('{"type":"MAX","expression":"input + output * 4"}', properties, ts) AS max_18,
	meter.aggregate('{"type":"MIN","expression":"input + output * 4"}', properties, ts) AS min_0,
	meter.aggregate('{"type":"LATEST","expression":"input + output * 4"}', properties, ts) AS latest_0,
	meter.aggregate('{"type":"SUM","expression":"input / output"}', properties, ts) AS sum_5,
	meter.aggregate('{"type":"SUM","expression":"output != 0 ? input / output : 0"}', properties, ts) AS sum_guarded_5,
	meter.aggregate('{"type":"MAX","expression":"input + output * 4","bucket_size":"DAY"}', properties, ts) AS max_day_21_0
FROM xev;
-- the expression's value is what meter.quantity says, row by row
SELECT meter.aggregate(a, properties, ts) = (SELECT sum(meter.quantity(a, properties)) FROM xev) AS like_quantity
FROM xev, (VALUES ('{"type":"SUM","expression":"input + output * 4"}'::meter.aggregation)) v(a) GROUP BY a;

-- group_by: per bucket, the maximum per group; the bucket's value is the sum of those.
-- Hour 00: a → 7, b → 3, 1/1.0/"1" (one group) → 4, missing/null (one group) → 6,
-- "" → 2, true/"true" → 5: 27. Hour 01: a → 1 (b's "x" is not a number): 1. Total 28.
-- A value without a timestamp is skipped.
CREATE TEMP TABLE gev (properties jsonb, ts timestamptz);
INSERT INTO gev VALUES
	('{"vol":"a","gb":5}', '2024-01-01 00:10+00'), ('{"vol":"a","gb":7}', '2024-01-01 00:50+00'),
	('{"vol":"b","gb":3}', '2024-01-01 00:20+00'), ('{"vol":1,"gb":2}', '2024-01-01 00:30+00'),
	('{"vol":1.0,"gb":4}', '2024-01-01 00:35+00'), ('{"vol":"1","gb":1}', '2024-01-01 00:40+00'),
	('{"gb":6}', '2024-01-01 00:45+00'), ('{"vol":null,"gb":1}', '2024-01-01 00:46+00'),
	('{"vol":"","gb":2}', '2024-01-01 00:47+00'), ('{"vol":true,"gb":5}', '2024-01-01 00:48+00'),
	('{"vol":"true","gb":"4.5"}', '2024-01-01 00:49+00'),
	('{"vol":"a","gb":1}', '2024-01-01 01:10+00'), ('{"vol":"b","gb":"x"}', '2024-01-01 01:20+00'),
	('{"vol":"b","gb":9}', NULL);
SELECT meter.aggregate('{"type":"MAX","field":"gb","bucket_size":"HOUR","group_by":"vol"}', properties, ts) AS grouped_28,
	meter.aggregate('{"type":"MAX","field":"gb","bucket_size":"HOUR"}', properties, ts) AS ungrouped_8,
	meter.aggregate('{"type":"MAX","field":"gb","bucket_size":"DAY","group_by":"vol"}', properties, ts) AS grouped_day_27,
	meter.aggregate('{"type":"MAX","expression":"gb * 2","bucket_size":"HOUR","group_by":"vol"}', properties, ts) AS expression_grouped_56
FROM gev;

-- Zero rows: NULL, like sum(). Rows with a NULL aggregation are ignored.
SELECT meter.aggregate(agg, properties, ts) IS NULL AS zero_rows FROM ev, types WHERE false;
SELECT meter.aggregate(NULL, properties, ts) IS NULL AS all_null_aggregation FROM ev;
SELECT meter.aggregate(CASE WHEN k = 'avg' THEN '{"type":"COUNT"}'::meter.aggregation END, properties, ts) AS count_avg_rows FROM ev;

-- As a window aggregate: a running total.
SELECT ts AT TIME ZONE 'UTC' AS ts_utc, meter.aggregate('{"type":"SUM","field":"v"}', properties, ts) OVER (ORDER BY ts) AS running
FROM ev WHERE k = 'avg' ORDER BY ts;

-- Errors
SELECT pg_temp.try($$SELECT meter.aggregate('{"type":"WEIGHTED_SUM","field":"v"}', properties, ts) FROM ev$$);
SELECT pg_temp.try($$SELECT meter.aggregate(agg, properties, ts) FROM ev, types$$);
SELECT pg_temp.try($$SELECT meter.aggregate(CASE WHEN k = 'max' THEN '{"type":"SUM_WITH_MULTIPLIER","field":"v","multiplier":2}' ELSE '{"type":"SUM_WITH_MULTIPLIER","field":"v","multiplier":3}' END::meter.aggregation, properties, ts) FROM ev$$);
SELECT pg_temp.try($$SELECT meter.aggregate('{"type":"WEIGHTED_SUM","field":"v"}', properties, ts, NULL, '2024-02-01') FROM ev$$);
SELECT pg_temp.try($$SELECT meter.aggregate('{"type":"WEIGHTED_SUM","field":"v"}', properties, ts, '2024-02-01 00:00+00', '2024-01-01 00:00+00') FROM ev$$);
SELECT pg_temp.try($$SELECT meter.aggregate('{"type":"WEIGHTED_SUM","field":"v"}', properties, ts, '2024-01-01 00:00+00', 'infinity') FROM ev$$);
SELECT pg_temp.try($$SELECT meter.aggregate('{"type":"WEIGHTED_SUM","field":"v"}', properties, ts, '2024-01-01 00:00+00', ts) FROM ev$$);
SELECT pg_temp.try($$SELECT meter.aggregate('{"type":"WEIGHTED_SUM","field":"v"}', '{"v":1}', 'infinity', '2024-01-01 00:00+00', '2024-02-01 00:00+00')$$);
-- the same aggregation written with an equal multiplier is the same aggregation
SELECT meter.aggregate(CASE WHEN k = 'max' THEN '{"type":"SUM_WITH_MULTIPLIER","field":"v","multiplier":1.5}' ELSE '{"type":"SUM_WITH_MULTIPLIER","field":"v","multiplier":"1.50"}' END::meter.aggregation, properties, ts) AS swm_equal_multipliers
FROM ev WHERE k IN ('max', 'avg');

-- ── The state: meter.aggregate_state ───────────────────────────────────────────────
-- meter.aggregate_partial stops at the state; its text is versioned JSON, in UTC.
SELECT k, t, meter.aggregate_partial(agg, properties, ts)
FROM ev CROSS JOIN types WHERE k IN ('latest', 'unique', 'mixed') GROUP BY k, t ORDER BY k, t;
SELECT meter.aggregate_partial('{"type":"WEIGHTED_SUM","field":"v"}', properties, ts,
	'2024-01-01 00:00+00', '2024-01-31 00:00+00') FROM ev WHERE k = 'avg';
SELECT meter.aggregate_partial('{"type":"MAX","field":"v","bucket_size":"WEEK"}', properties, ts) FROM bev;
SELECT meter.aggregate_partial('{"type":"SUM","field":"v","bucket_size":"WEEK"}', properties, ts) FROM bev;
SELECT meter.aggregate_partial('{"type":"MAX","field":"v"}', properties, ts) FROM ev WHERE k = 'unusable';
SELECT meter.aggregate_partial('{"type":"LATEST","field":"v"}', '{"v":1}', ts)
FROM (VALUES ('2024-01-16 12:34:56.789012+00'::timestamptz)) v(ts);
SELECT meter.aggregate_partial('{"type":"COUNT_UNIQUE","field":"v"}', jsonb_build_object('v', s), now())
FROM (VALUES (E'quote " backslash \\ tab \t'), ('ünïcødé ✓'), ('')) v(s);

-- text round trip: state → text → state → text is the same text, for every type
SELECT k, t, s::text = s::text::meter.aggregate_state::text AS round_trip,
	meter.aggregate_final(s) IS NOT DISTINCT FROM meter.aggregate_final(s::text::meter.aggregate_state) AS same_result
FROM (SELECT k, t, meter.aggregate_partial(agg, properties, ts) s FROM ev CROSS JOIN types GROUP BY k, t) q
WHERE NOT (s::text = s::text::meter.aggregate_state::text);
SELECT count(*) AS states_checked FROM ev CROSS JOIN types;

-- finishing and merging states
SELECT meter.aggregate_final(meter.aggregate_partial('{"type":"AVG","field":"v"}', properties, ts)) AS avg_25 FROM ev WHERE k = 'avg';
SELECT meter.aggregate_final(meter.aggregate_merge(s)) AS latest_77
FROM (SELECT meter.aggregate_partial('{"type":"LATEST","field":"v"}', properties, ts) s FROM ev WHERE k = 'latest' GROUP BY ts) q;
SELECT meter.aggregate_final(meter.aggregate_combine(a, b)) AS ab, meter.aggregate_final(meter.aggregate_combine(b, a)) AS ba,
	meter.aggregate_combine(a, b)::text = meter.aggregate_combine(b, a)::text AS same_state
FROM (SELECT meter.aggregate_partial('{"type":"LATEST","field":"v"}', '{"v":4}', '2024-01-01 00:00+00') a,
	meter.aggregate_partial('{"type":"LATEST","field":"v"}', '{"v":"4.00"}', '2024-01-01 00:00+00') b) q;
SELECT meter.aggregate_transfn(NULL, '{"type":"SUM","field":"v"}', '{"v":2}', now()) AS transfn_direct;
SELECT meter.aggregate_transfn(meter.aggregate_transfn(NULL, '{"type":"COUNT_UNIQUE","field":"v"}', '{"v":"a"}', now()),
	'{"type":"COUNT_UNIQUE","field":"v"}', '{"v":"b"}', now()) AS chained;
SELECT meter.aggregate_combine(NULL, NULL) IS NULL AS null_null,
	meter.aggregate_combine('{"version":1,"aggregation":{"type":"COUNT"},"rows":2,"values":0}', NULL) AS left_only,
	meter.aggregate_combine(NULL, '{"version":1,"aggregation":{"type":"COUNT"},"rows":2,"values":0}') AS right_only;
SELECT pg_temp.try($$SELECT meter.aggregate_combine('{"version":1,"aggregation":{"type":"COUNT"},"rows":2,"values":0}',
	'{"version":1,"aggregation":{"type":"SUM","field":"v"},"rows":2,"values":0,"sum":0}')$$);
SELECT meter.aggregate_final('{"version":1,"aggregation":{"type":"COUNT"},"rows":0,"values":0}') IS NULL AS final_zero_rows;

-- States of expression and group_by aggregations: the aggregation as meter.aggregation
-- prints it, buckets with a group as [start, value, group].
SELECT meter.aggregate_partial('{"type":"SUM","expression":"input + output * 4"}', properties, ts) FROM xev;
SELECT meter.aggregate_partial('{"type":"LATEST","expression":"input + output * 4"}', properties, ts) FROM xev;
SELECT meter.aggregate_partial('{"type":"MAX","field":"gb","bucket_size":"HOUR","group_by":"vol"}', properties, ts) FROM gev;
-- round trips through the text, the same result; partial states merged give the whole
SELECT a, s::text = s::text::meter.aggregate_state::text AS round_trip,
	meter.aggregate_state_send(s) = meter.aggregate_state_send(s::text::meter.aggregate_state) AS same_bytes,
	meter.aggregate_final(s::text::meter.aggregate_state) AS final
FROM (SELECT a, meter.aggregate_partial(a, properties, ts) s FROM gev, (VALUES
	('{"type":"MAX","field":"gb","bucket_size":"HOUR","group_by":"vol"}'::meter.aggregation),
	('{"type":"MAX","expression":"gb * 2","bucket_size":"HOUR","group_by":"vol"}'),
	('{"type":"SUM","expression":"gb * 2"}'), ('{"type":"AVG","expression":"gb * 2"}'),
	('{"type":"MIN","expression":"gb * 2"}')) v(a) GROUP BY a) q ORDER BY a::text;
SELECT meter.aggregate_final(meter.aggregate_merge(s)) AS merged_28,
	meter.aggregate_merge(s)::text = (SELECT meter.aggregate_partial('{"type":"MAX","field":"gb","bucket_size":"HOUR","group_by":"vol"}', properties, ts)::text FROM gev) AS same_state
FROM (SELECT meter.aggregate_partial('{"type":"MAX","field":"gb","bucket_size":"HOUR","group_by":"vol"}', properties, ts) s
	FROM gev GROUP BY properties->>'gb') q;
SELECT meter.aggregate_final(meter.aggregate_merge(s)) AS merged_21_0
FROM (SELECT meter.aggregate_partial('{"type":"SUM","expression":"input + output * 4"}', properties, ts) s
	FROM xev GROUP BY ts) q;
-- the binary form: version 1 (0.1.0's layout) without expression and group_by, else 2
SELECT meter.aggregate_state_send(meter.aggregate_partial('{"type":"SUM","field":"gb"}', properties, ts)) AS version_1,
	meter.aggregate_state_send(meter.aggregate_partial('{"type":"SUM","expression":"gb"}', properties, ts)) AS version_2
FROM gev WHERE ts < '2024-01-01 00:30+00';
SELECT meter.aggregate_state_send(meter.aggregate_partial('{"type":"MAX","field":"gb","bucket_size":"HOUR","group_by":"vol"}', properties, ts)) AS version_2_groups
FROM gev WHERE ts IN ('2024-01-01 00:10+00', '2024-01-01 00:45+00');
-- combining different expressions or groupings is refused
SELECT pg_temp.try($$SELECT meter.aggregate_combine(
	meter.aggregate_transfn(NULL, '{"type":"SUM","expression":"a + b"}', '{"a":1}', now()),
	meter.aggregate_transfn(NULL, '{"type":"SUM","expression":"a + b * 2"}', '{"a":1}', now()))$$);
SELECT pg_temp.try($$SELECT meter.aggregate(CASE WHEN ts < '2024-01-01 01:00+00' THEN '{"type":"MAX","field":"gb","bucket_size":"HOUR","group_by":"vol"}'
	ELSE '{"type":"MAX","field":"gb","bucket_size":"HOUR"}' END::meter.aggregation, properties, ts) FROM gev$$);

-- Bad state text: 22P02 when not JSON, 22023 when not a valid state; never a crash.
\pset format unaligned
SELECT s, pg_temp.try(format('SELECT %L::meter.aggregate_state', s)) FROM (VALUES
	(''), ('nope'), ('{'), ('[]'), ('{}'), ('null'),
	('{"version":2,"aggregation":{"type":"COUNT"},"rows":1,"values":0}'),
	('{"version":"1","aggregation":{"type":"COUNT"},"rows":1,"values":0}'),
	('{"version":1,"rows":1,"values":0}'),
	('{"version":1,"aggregation":{"type":"NOPE"},"rows":1,"values":0}'),
	('{"version":1,"aggregation":{"type":"SUM"},"rows":1,"values":0,"sum":0}'),
	('{"version":1,"aggregation":{"type":"SUM","field":"v","extra":1},"rows":1,"values":0,"sum":0}'),
	('{"version":1,"aggregation":{"type":"SUM_WITH_MULTIPLIER","field":"v","multiplier":0},"rows":1,"values":0,"sum":0}'),
	('{"version":1,"aggregation":{"type":"AVG","field":"v","bucket_size":"DAY"},"rows":1,"values":0,"sum":0}'),
	('{"version":1,"aggregation":{"type":"COUNT"},"rows":-1,"values":0}'),
	('{"version":1,"aggregation":{"type":"COUNT"},"rows":1.5,"values":0}'),
	('{"version":1,"aggregation":{"type":"COUNT"},"rows":99999999999999999999,"values":0}'),
	('{"version":1,"aggregation":{"type":"COUNT"},"rows":1,"values":2}'),
	('{"version":1,"aggregation":{"type":"COUNT"},"rows":1,"values":0,"sum":1}'),
	('{"version":1,"aggregation":{"type":"COUNT"},"rows":1,"values":0,"bogus":1}'),
	('{"version":1,"aggregation":{"type":"SUM","field":"v"},"rows":1,"values":1}'),
	('{"version":1,"aggregation":{"type":"SUM","field":"v"},"rows":1,"values":1,"sum":"1"}'),
	('{"version":1,"aggregation":{"type":"SUM","field":"v"},"rows":1,"values":1,"sum":1,"sum":2}'),
	('{"version":1,"aggregation":{"type":"SUM","field":"v"},"rows":1,"values":1,"sum":1e999999}'),
	('{"version":1,"aggregation":{"type":"SUM","field":"v"},"rows":9223372036854775807,"values":1,"sum":-0.50}'),
	('{"version":1,"aggregation":{"type":"MAX","field":"v"},"rows":1,"values":1}'),
	('{"version":1,"aggregation":{"type":"MAX","field":"v"},"rows":1,"values":0,"value":3}'),
	('{"version":1,"aggregation":{"type":"LATEST","field":"v"},"rows":1,"values":1,"value":3}'),
	('{"version":1,"aggregation":{"type":"LATEST","field":"v"},"rows":1,"values":1,"value":3,"timestamp":"now"}'),
	('{"version":1,"aggregation":{"type":"LATEST","field":"v"},"rows":1,"values":1,"value":3,"timestamp":"2024-01-01"}'),
	('{"version":1,"aggregation":{"type":"LATEST","field":"v"},"rows":1,"values":1,"value":3,"timestamp":"2024-13-01 00:00:00+00"}'),
	('{"version":1,"aggregation":{"type":"COUNT_UNIQUE","field":"v"},"rows":2,"values":2,"unique":["a","a"]}'),
	('{"version":1,"aggregation":{"type":"COUNT_UNIQUE","field":"v"},"rows":2,"values":1,"unique":["a","b"]}'),
	('{"version":1,"aggregation":{"type":"COUNT_UNIQUE","field":"v"},"rows":2,"values":2,"unique":[1]}'),
	('{"version":1,"aggregation":{"type":"COUNT_UNIQUE","field":"v"},"rows":2,"values":2,"unique":"a"}'),
	('{"version":1,"aggregation":{"type":"MAX","field":"v","bucket_size":"DAY"},"rows":1,"values":1,"buckets":[["2024-01-01 05:00:00+00",1]]}'),
	('{"version":1,"aggregation":{"type":"MAX","field":"v","bucket_size":"DAY"},"rows":1,"values":1,"buckets":[["2024-01-01 00:00:00+00"]]}'),
	('{"version":1,"aggregation":{"type":"MAX","field":"v","bucket_size":"DAY"},"rows":2,"values":2,"buckets":[["2024-01-01 00:00:00+00",1],["2024-01-01 00:00:00+00",2]]}'),
	('{"version":1,"aggregation":{"type":"MAX","field":"v","bucket_size":"DAY"},"rows":1,"values":1,"buckets":[]}'),
	('{"version":1,"aggregation":{"type":"WEIGHTED_SUM","field":"v"},"rows":1,"values":0,"sum":0,"sum_vt":0}'),
	('{"version":1,"aggregation":{"type":"WEIGHTED_SUM","field":"v"},"period":["2024-02-01 00:00:00+00","2024-01-01 00:00:00+00"],"rows":1,"values":0,"sum":0,"sum_vt":0}')
) v(s);
-- bad states of expression and group_by aggregations
SELECT s, pg_temp.try(format('SELECT %L::meter.aggregate_state', s)) FROM (VALUES
	('{"version":1,"aggregation":{"type":"SUM","expression":"a +"},"rows":1,"values":0,"sum":0}'),
	('{"version":1,"aggregation":{"type":"SUM","expression":"a","field":"a"},"rows":1,"values":0,"sum":0}'),
	('{"version":1,"aggregation":{"type":"COUNT_UNIQUE","expression":"a"},"rows":1,"values":0,"unique":[]}'),
	('{"version":1,"aggregation":{"type":"MAX","field":"v","group_by":"g"},"rows":1,"values":0}'),
	('{"version":1,"aggregation":{"type":"MAX","field":"v","bucket_size":"HOUR"},"rows":1,"values":1,"buckets":[["2024-01-01 00:00:00+00",1,"g"]]}'),
	('{"version":1,"aggregation":{"type":"MAX","field":"v","bucket_size":"HOUR","group_by":"g"},"rows":1,"values":1,"buckets":[["2024-01-01 00:00:00+00",1,2]]}'),
	('{"version":1,"aggregation":{"type":"MAX","field":"v","bucket_size":"HOUR","group_by":"g"},"rows":1,"values":1,"buckets":[["2024-01-01 00:00:00+00",1,"g",4]]}'),
	('{"version":1,"aggregation":{"type":"MAX","field":"v","bucket_size":"HOUR","group_by":"g"},"rows":1,"values":1,"buckets":[["2024-01-01 00:00:00+00",1,null]]}'),
	('{"version":1,"aggregation":{"type":"MAX","field":"v","bucket_size":"HOUR","group_by":"g"},"rows":2,"values":2,"buckets":[["2024-01-01 00:00:00+00",1,"g"],["2024-01-01 00:00:00+00",2,"g"]]}'),
	('{"version":1,"aggregation":{"type":"MAX","field":"v","bucket_size":"HOUR","group_by":"g"},"rows":2,"values":2,"buckets":[["2024-01-01 00:00:00+00",1],["2024-01-01 00:00:00+00",2,"g"]]}'),
	('{"version":1,"aggregation":{"type":"MAX","field":"v","bucket_size":"HOUR","group_by":"g"},"rows":2,"values":2,"buckets":[["2024-01-01 00:30:00+00",1,"g"]]}'),
	('{"version":1,"aggregation":{"type":"COUNT"},"rows":2,"values":1}')
) v(s);
SELECT pg_temp.try(format('SELECT %L::meter.aggregate_state', '{"version":1,"aggregation":{"type":"COUNT_UNIQUE","field":"v"},"rows":1,"values":1,"unique":["' || repeat('x', 1000000) || '"]}')) AS one_megabyte;
SELECT pg_temp.try(format('SELECT %L::meter.aggregate_state', repeat('[', 10000) || repeat(']', 10000))) AS deep_nesting;
\pset format aligned
SELECT 'still alive' AS session;
ROLLBACK;
