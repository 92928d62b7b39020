#!/usr/bin/env bash
# End-to-end upgrade 0.1.0 → 0.2.0 (SPEC §1, issue 12). One test; prints ok/FAIL lines.
#
# 0. Every C symbol named by every install and upgrade script in sql/ is exported by the
#    installed meter.so (with its pg_finfo_ record).
# 1. CREATE EXTENSION meter VERSION '0.1.0' (the frozen script, on this library: its
#    0.1.0 write path, src/legacy.c): roles granted reader/writer/admin access; meters of
#    every aggregation type in three scopes (filters, bucket_size HOUR and MINUTE, reset
#    NEVER, a multiplier), events in meter.events (plain INSERT and meter.ingest) and in a
#    tracked table of the user's own, updated and deleted; meters archived, one marked
#    deleted, then events arriving after the archiving; meter names stored padded (as
#    0.1.0 kept them). meter.verify() is empty in every scope. Recorded: the meters, the
#    events, meter.skipped, and usage and usage_from_events of every meter over 12 windows
#    specs (sizes MINUTE…MONTH, zones off UTC by 5:30 and 5:45, DST, billing anchors,
#    unaligned bounds, customer filters).
# 2. ALTER EXTENSION meter UPDATE TO '0.2.0'. Then identical, as numbers and as text:
#    meters (names trimmed), events, skips, usage, usage_from_events; verify() empty in
#    every scope; the schema equals a fresh CREATE EXTENSION meter given the same roles
#    (upgrade_catalog.sql: every function, type, table, column, default, constraint,
#    index, view, policy, trigger, event trigger, operator, cast, privilege, initial
#    privilege, extension member and pg_dump registration — any change to sql/install/
#    not carried into sql/meter--0.1.0--0.2.0.sql shows here as a diff); the tracked
#    table has 0.2.0's triggers; the roles' access works.
# 3. Ingestion keeps working: inserts (both tables, meter.ingest), updates, deletes,
#    TRUNCATE of the tracked table, a new meter, an archived meter published again;
#    usage = usage_from_events and verify() empty.
# 4. pg_dump -Fc of the upgraded database, pg_restore with PGOPTIONS='-c
#    meter.restoring=on' into a new database: meters, events, usage and the catalog
#    (privileges included) identical to the upgraded database's.
# Uses PGHOST/PGPORT/PGUSER (a superuser). UPGRADE_KEEP=1 keeps the databases.
set -uo pipefail
cd "$(dirname "$0")/../.."
tag=$$
old=meter_upg_$tag fresh=meter_upg_fresh_$tag restored=meter_upg_restored_$tag
reader=meter_upg_reader_$tag writer=meter_upg_writer_$tag admin=meter_upg_admin_$tag
work=$(mktemp -d /tmp/meter-upgrade.XXXXXX)
failures=0
cleanup() {
	for d in "$old" "$fresh" "$restored"; do dropdb --if-exists "$d" 2>/dev/null; done
	for r in "$reader" "$writer" "$admin"; do psql -X -q -d postgres -c "DROP ROLE IF EXISTS $r" 2>/dev/null; done
	rm -rf "$work"
}
trap cleanup EXIT
[ "${UPGRADE_KEEP:-0}" = 1 ] && trap 'rm -rf "$work"' EXIT
check() { if [ "$2" -eq 0 ]; then echo "ok    $1"; else echo "FAIL  $1"; failures=$((failures + 1)); fi; }
q() { local db=$1; shift; psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" -c "$1"; }
empty() { # empty DESCRIPTION DATABASE QUERY: the query returns no row
	local out
	out=$(q "$2" "$3" 2>&1)
	[ -n "$out" ] && echo "$out" | head -20
	check "$1" "$([ -z "$out" ]; echo $?)"
}

# ── 0. C symbols ──────────────────────────────────────────────────────────────────────
lib=$(pg_config --pkglibdir)/meter.so
exported=$(nm -D --defined-only "$lib" | awk '{print $3}' | sort -u)
missing=""
for f in sql/meter--*.sql; do
	for s in $(grep -ho "'MODULE_PATHNAME', *'[A-Za-z0-9_]*'" "$f" | sed "s/.*'\([A-Za-z0-9_]*\)'$/\1/" | sort -u); do
		grep -qx "$s" <<<"$exported" && grep -qx "pg_finfo_$s" <<<"$exported" || missing="$missing $f:$s"
	done
done
[ -n "$missing" ] && echo "missing:$missing"
check "every C symbol of every script in sql/ is exported by $lib ($(ls sql/meter--*.sql | wc -l) scripts)" \
	"$([ -z "$missing" ]; echo $?)"

# ── 1. A 0.1.0 database with history ──────────────────────────────────────────────────
for r in "$reader" "$writer" "$admin"; do q postgres "CREATE ROLE $r" >/dev/null || exit 1; done
createdb "$old" || exit 1
psql -X -q -v ON_ERROR_STOP=1 -v reader="$reader" -v writer="$writer" -v admin="$admin" -d "$old" \
	>"$work/setup.log" 2>&1 <<'SQL'
CREATE EXTENSION meter VERSION '0.1.0';
SELECT meter.grant_reader(:'reader'), meter.grant_writer(:'writer'), meter.grant_admin(:'admin');
CREATE TABLE public.my_events (
	id text PRIMARY KEY,
	tenant_id text NOT NULL,
	environment_id text NOT NULL DEFAULT '',
	event_name text NOT NULL,
	customer_id text,
	external_customer_id text,
	"timestamp" timestamptz NOT NULL,
	properties jsonb NOT NULL DEFAULT '{}',
	note text
);
SELECT meter.track('public.my_events');

-- Meters: every aggregation type, in three scopes.
CREATE FUNCTION public.upg_meters(p text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	PERFORM meter.create_meter('api_call', 'calls', id => p || 'count');
	PERFORM meter.create_meter('api_call', 'calls gpt', filters => '[{"key":"model","values":["gpt-4o","o1"]}]', id => p || 'count_f');
	PERFORM meter.create_meter('api_call', 'tokens', '{"type":"SUM","field":"tokens"}', id => p || 'sum');
	PERFORM meter.create_meter('api_call', 'tokens eu', '{"type":"SUM","field":"tokens"}',
		'[{"key":"region","values":["eu"]},{"key":"model","values":["gpt-4o","1"]}]', id => p || 'sum_f');
	PERFORM meter.create_meter('api_call', 'tokens hourly', '{"type":"SUM","field":"tokens","bucket_size":"HOUR"}', id => p || 'sum_h');
	PERFORM meter.create_meter('api_call', 'avg', '{"type":"AVG","field":"tokens"}', id => p || 'avg');
	PERFORM meter.create_meter('api_call', 'users', '{"type":"COUNT_UNIQUE","field":"user"}', id => p || 'uniq');
	PERFORM meter.create_meter('api_call', 'peak', '{"type":"MAX","field":"tokens"}', id => p || 'max');
	PERFORM meter.create_meter('api_call', 'peak hourly', '{"type":"MAX","field":"tokens","bucket_size":"HOUR"}', id => p || 'max_h');
	PERFORM meter.create_meter('api_call', 'peak per minute', '{"type":"MAX","field":"tokens","bucket_size":"MINUTE"}', id => p || 'max_m');
	PERFORM meter.create_meter('api_call', 'least', '{"type":"MIN","field":"tokens"}', id => p || 'min');
	PERFORM meter.create_meter('api_call', 'last', '{"type":"LATEST","field":"tokens"}',
		'[{"key":"region","values":["eu","us"]}]', id => p || 'latest');
	PERFORM meter.create_meter('api_call', 'x2.5', '{"type":"SUM_WITH_MULTIPLIER","field":"tokens","multiplier":"2.5"}', id => p || 'mult');
	PERFORM meter.create_meter('gpu', 'gpu time', '{"type":"WEIGHTED_SUM","field":"gpus"}', id => p || 'wsum');
	PERFORM meter.create_meter('api_call', 'tokens ever', '{"type":"SUM","field":"tokens"}', reset_usage => 'NEVER', id => p || 'never_sum');
	PERFORM meter.create_meter('api_call', 'users ever', '{"type":"COUNT_UNIQUE","field":"user"}', reset_usage => 'NEVER', id => p || 'never_uniq');
	PERFORM meter.create_meter('gpu', 'gpu ever', '{"type":"WEIGHTED_SUM","field":"gpus"}', reset_usage => 'NEVER', id => p || 'never_wsum');
	PERFORM meter.create_meter('api_call', 'peak hourly ever', '{"type":"MAX","field":"tokens","bucket_size":"HOUR"}', reset_usage => 'NEVER', id => p || 'never_max_h');
	-- to be archived (or deleted) later
	PERFORM meter.create_meter('api_call', 'a sum', '{"type":"SUM","field":"tokens"}', id => p || 'arch_sum');
	PERFORM meter.create_meter('api_call', 'a users', '{"type":"COUNT_UNIQUE","field":"user"}', id => p || 'arch_uniq');
	PERFORM meter.create_meter('api_call', 'a peak hourly', '{"type":"MAX","field":"tokens","bucket_size":"HOUR"}', id => p || 'arch_max_h');
	PERFORM meter.create_meter('api_call', 'a peak', '{"type":"MAX","field":"tokens"}', id => p || 'arch_max');
	PERFORM meter.create_meter('api_call', 'a least', '{"type":"MIN","field":"tokens"}', id => p || 'arch_min');
	PERFORM meter.create_meter('api_call', 'a last', '{"type":"LATEST","field":"tokens"}', id => p || 'arch_latest');
	PERFORM meter.create_meter('api_call', 'a avg', '{"type":"AVG","field":"tokens"}', id => p || 'arch_avg');
	PERFORM meter.create_meter('api_call', 'a calls gpt', filters => '[{"key":"model","values":["gpt-4o"]}]', id => p || 'arch_count_f');
	PERFORM meter.create_meter('api_call', 'a x3', '{"type":"SUM_WITH_MULTIPLIER","field":"tokens","multiplier":"3"}', id => p || 'arch_mult');
	PERFORM meter.create_meter('gpu', 'a gpu ever', '{"type":"WEIGHTED_SUM","field":"gpus"}', reset_usage => 'NEVER', id => p || 'arch_wsum');
	PERFORM meter.create_meter('api_call', 'a users ever', '{"type":"COUNT_UNIQUE","field":"user"}', reset_usage => 'NEVER', id => p || 'arch_never_uniq');
	PERFORM meter.create_meter('api_call', 'deleted', '{"type":"SUM","field":"tokens"}', id => p || 'deleted');
	PERFORM meter.create_meter('api_call', 'padded', id => p || 'pad');
	PERFORM meter.create_meter('api_call', 'padded archived', '{"type":"SUM","field":"tokens"}', id => p || 'pad_arch');
END $$;

-- Events of a scope: g in [lo, hi), deterministic; ~1 in 9 not usable for numeric meters.
CREATE FUNCTION public.upg_events(tbl regclass, p text, lo int, hi int, base timestamptz) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE format($q$
	INSERT INTO %s (id, tenant_id, environment_id, event_name, customer_id, external_customer_id, "timestamp", properties)
	SELECT %L || g, meter.current_tenant(), meter.current_environment(),
		CASE WHEN g %% 11 = 0 THEN 'gpu' ELSE 'api_call' END,
		CASE WHEN g %% 7 <> 0 THEN 'c' || (g %% 5) END,
		CASE WHEN g %% 3 = 0 THEN 'x' || (g %% 4) END,
		%L::timestamptz + (g * 3571 %% (86400 * 100)) * interval '1 second' + (g %% 1000) * interval '1 millisecond',
		jsonb_strip_nulls(jsonb_build_object(
			'tokens', CASE WHEN g %% 9 = 0 THEN to_jsonb('n/a'::text)
				WHEN g %% 13 = 0 THEN to_jsonb((g %% 40)::text)
				WHEN g %% 17 = 0 THEN to_jsonb(((g %% 40) || '.50')::numeric)
				WHEN g %% 19 = 0 THEN NULL
				ELSE to_jsonb(round((g %% 997) / 8.0, g %% 3)) END,
			'model', (ARRAY['gpt-4o', 'o1', 'claude', '1'])[g %% 4 + 1],
			'region', (ARRAY['eu', 'us', 'ap'])[g %% 3 + 1],
			'user', CASE WHEN g %% 10 = 0 THEN to_jsonb(g %% 4) WHEN g %% 10 = 1 THEN to_jsonb((g %% 4)::text)
				ELSE to_jsonb('u' || (g %% 23)) END,
			'gpus', g %% 5))
	FROM generate_series(%s, %s - 1) g$q$, tbl, p, base, lo, hi);
END $$;

SET meter.tenant_id = 'acme';
SET meter.user_id = 'alice';
SELECT public.upg_meters('a_');
SELECT public.upg_events('meter.events', 'a_e', 0, 2400, '2024-03-01 00:00:00+00');
SELECT public.upg_events('public.my_events', 'a_m', 0, 600, '2024-03-05 00:00:00+00');
SELECT count(*) FROM meter.ingest('[{"id":"a_i1","event_name":"api_call","customer_id":"c1","timestamp":"2024-03-10T10:00:00Z","properties":{"tokens":2,"user":"u1","model":"o1","region":"eu"}},
	{"id":"a_i2","event_name":"api_call","customer_id":"c1","timestamp":"2024-03-10T10:01:00Z","properties":{"tokens":2.0,"user":"u1","model":"o1","region":"eu"}},
	{"id":"a_i3","event_name":"api_call","external_customer_id":"x1","timestamp":"2024-03-10T10:02:00Z","properties":{"tokens":"2.00","user":1.0,"model":"1","region":"eu"}}]');
-- history: updates (values, times, names) and deletes in both tables
UPDATE meter.events SET properties = properties || '{"tokens": 77.7}' WHERE id IN ('a_e5', 'a_e50', 'a_e500');
UPDATE meter.events SET "timestamp" = "timestamp" + interval '3 days' WHERE id IN ('a_e6', 'a_e60');
UPDATE meter.events SET event_name = 'gpu' WHERE id = 'a_e7';
DELETE FROM meter.events WHERE id IN ('a_e8', 'a_e80', 'a_e800', 'a_e1200');
UPDATE public.my_events SET properties = properties - 'tokens' WHERE id IN ('a_m1', 'a_m2');
DELETE FROM public.my_events WHERE id IN ('a_m3', 'a_m30');

SET meter.environment_id = 'staging';
SELECT public.upg_meters('s_');
SELECT public.upg_events('meter.events', 's_e', 0, 500, '2024-03-20 00:00:00+00');
SELECT public.upg_events('public.my_events', 's_m', 0, 200, '2024-03-20 00:00:00+00');
RESET meter.environment_id;

SET meter.tenant_id = 'globex';
SELECT public.upg_meters('g_');
SELECT public.upg_events('meter.events', 'g_e', 0, 700, '2024-02-25 00:00:00+00');

-- Archive, mark one deleted, and keep writing: the archived meters' usage is frozen.
CREATE FUNCTION public.upg_archive(p text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	PERFORM meter.disable_meter(p || x) FROM unnest(ARRAY['arch_sum', 'arch_uniq', 'arch_max_h', 'arch_max',
		'arch_min', 'arch_latest', 'arch_avg', 'arch_count_f', 'arch_mult', 'arch_wsum', 'arch_never_uniq',
		'pad_arch']) x;
	UPDATE meter.meters SET status = 'deleted' WHERE id = p || 'deleted';
END $$;
SET meter.tenant_id = 'acme';
SELECT public.upg_archive('a_');
SELECT public.upg_events('meter.events', 'a_late', 2400, 2700, '2024-03-01 00:00:00+00');
SELECT public.upg_events('public.my_events', 'a_mlate', 600, 700, '2024-03-05 00:00:00+00');
UPDATE meter.events SET properties = properties || '{"tokens": 5.5}' WHERE id IN ('a_e100', 'a_e101');
DELETE FROM meter.events WHERE id IN ('a_e102', 'a_e103');
SET meter.environment_id = 'staging';
SELECT public.upg_archive('s_');
SELECT public.upg_events('meter.events', 's_late', 500, 600, '2024-03-20 00:00:00+00');
RESET meter.environment_id;
SET meter.tenant_id = 'globex';
SELECT public.upg_archive('g_');

-- 0.1.0 stored names as given; this library trims them on write, so pad them behind
-- the validation trigger's back (as a 0.1.0 library would have kept them).
ALTER TABLE meter.meters DISABLE TRIGGER meters_validate;
UPDATE meter.meters SET event_name = E'  api_call\t', name = E'\u00a0padded ' WHERE id IN ('a_pad', 'g_pad');
UPDATE meter.meters SET event_name = ' api_call ', name = ' padded archived ' WHERE id LIKE '%pad_arch';
ALTER TABLE meter.meters ENABLE TRIGGER meters_validate;
-- events a padded 0.1.0 meter counted: their names padded alike
SET meter.tenant_id = 'acme';
INSERT INTO meter.events (id, event_name, customer_id, "timestamp", properties) VALUES
	('a_p1', E'  api_call\t', 'c1', '2024-03-02 10:00:00+00', '{"tokens": 1}'),
	('a_p2', E'  api_call\t', 'c2', '2024-03-03 10:00:00+00', '{"tokens": 2}');

-- What 0.1.0 says, for comparing after the upgrade.
CREATE TABLE public.upg_specs (n int PRIMARY KEY, start_time timestamptz, end_time timestamptz,
	window_size text, timezone text, billing_anchor timestamptz, customer_id text, external_customer_id text);
INSERT INTO public.upg_specs VALUES
	(1, '2024-02-01 00:00:00+00', '2024-07-01 00:00:00+00', NULL, 'UTC', NULL, NULL, NULL),
	(2, '2024-03-01 00:00:00+00', '2024-03-08 00:00:00+00', 'DAY', 'UTC', NULL, NULL, NULL),
	(3, '2024-03-09 00:00:00+00', '2024-03-11 00:00:00+00', 'HOUR', 'Asia/Kolkata', NULL, 'c1', NULL),
	(4, '2024-02-15 00:00:00+00', '2024-06-20 00:00:00+00', 'MONTH', 'America/New_York', '2024-01-15 10:07:00+00', NULL, NULL),
	(5, '2024-03-10 00:00:00+00', '2024-03-11 00:00:00+00', '15MIN', 'Asia/Kathmandu', NULL, NULL, NULL),
	(6, '2024-03-10 06:00:00+00', '2024-03-10 08:00:00+00', 'MINUTE', 'UTC', NULL, NULL, NULL),
	(7, '2024-03-18 00:00:00+00', '2024-04-15 00:00:00+00', 'WEEK', 'Europe/Berlin', NULL, NULL, NULL),
	(8, '2024-03-01 00:07:13+00', '2024-03-04 13:02:59+00', 'DAY', 'UTC', NULL, NULL, NULL),
	(9, '2024-02-01 00:00:00+00', '2024-07-01 00:00:00+00', 'MONTH', 'UTC', NULL, 'c2', 'x2'),
	(10, '2024-03-01 00:00:00+00', '2024-05-01 00:00:00+00', '6HOUR', 'Australia/Adelaide', NULL, NULL, 'x1'),
	(11, '2024-04-10 00:00:00+00', '2024-04-12 00:00:00+00', '3HOUR', 'UTC', NULL, '', NULL),
	(12, '2030-01-01 00:00:00+00', '2030-01-02 00:00:00+00', NULL, 'UTC', NULL, NULL, NULL);
CREATE TABLE public.upg_usage (label text, tenant_id text, environment_id text, meter_id text, n int, fn text,
	window_start timestamptz, window_end timestamptz, value numeric, err text);
CREATE INDEX ON public.upg_usage (label, meter_id, n, fn, window_start);
-- usage and usage_from_events of every meter (deleted ones: the error) for every spec
CREATE FUNCTION public.upg_capture(label text) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
	m record;
	s record;
	total bigint;
BEGIN
	DELETE FROM public.upg_usage u WHERE u.label = upg_capture.label;
	FOR m IN SELECT * FROM meter.meters ORDER BY id LOOP
		PERFORM set_config('meter.tenant_id', m.tenant_id, true);
		PERFORM set_config('meter.environment_id', m.environment_id, true);
		FOR s IN SELECT * FROM public.upg_specs ORDER BY n LOOP
			BEGIN
				INSERT INTO public.upg_usage
				SELECT upg_capture.label, m.tenant_id, m.environment_id, m.id, s.n, 'usage', u.window_start, u.window_end, u.value, NULL
				FROM meter.usage(m.id, s.start_time, s.end_time, s.customer_id, s.external_customer_id,
					s.window_size::meter.window_size, s.timezone, s.billing_anchor) u;
				INSERT INTO public.upg_usage
				SELECT upg_capture.label, m.tenant_id, m.environment_id, m.id, s.n, 'from_events', u.window_start, u.window_end, u.value, NULL
				FROM meter.usage_from_events(m.id, s.start_time, s.end_time, s.customer_id, s.external_customer_id,
					s.window_size::meter.window_size, s.timezone, s.billing_anchor) u;
			EXCEPTION WHEN OTHERS THEN
				INSERT INTO public.upg_usage VALUES (upg_capture.label, m.tenant_id, m.environment_id, m.id, s.n, 'error',
					NULL, NULL, NULL, SQLSTATE);
			END;
		END LOOP;
	END LOOP;
	SELECT count(*) INTO total FROM public.upg_usage u WHERE u.label = upg_capture.label;
	ANALYZE public.upg_usage;
	RETURN total;
END $$;
SELECT public.upg_capture('0.1.0');
CREATE TABLE public.upg_meters AS SELECT * FROM meter.meters;
CREATE TABLE public.upg_events AS SELECT * FROM meter.events;
CREATE TABLE public.upg_my_events AS SELECT * FROM public.my_events;
CREATE TABLE public.upg_skipped (label text, tenant_id text, environment_id text, meter_id text,
	customer_id text, external_customer_id text, bucket timestamptz, skipped bigint);
CREATE FUNCTION public.upg_capture_skips(label text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
	sc record;
BEGIN
	FOR sc IN SELECT DISTINCT tenant_id, environment_id FROM meter.meters ORDER BY 1, 2 LOOP
		PERFORM set_config('meter.tenant_id', sc.tenant_id, true);
		PERFORM set_config('meter.environment_id', sc.environment_id, true);
		INSERT INTO public.upg_skipped SELECT label, sc.tenant_id, sc.environment_id, s.meter_id, s.customer_id,
			s.external_customer_id, s.bucket, s.skipped FROM meter.skipped s;
	END LOOP;
END $$;
SELECT public.upg_capture_skips('0.1.0');
SQL
check "0.1.0 database: meters, events (two tables, ingest, updates, deletes), archived and deleted meters" $?
[ -s "$work/setup.log" ] && grep -E "ERROR|FATAL" "$work/setup.log" | head -5

scopes=$(q "$old" "SELECT DISTINCT tenant_id || ':' || environment_id FROM meter.meters ORDER BY 1")
verify_all() { # verify_all LABEL DATABASE
	local s t e out
	for s in $scopes; do
		t=${s%%:*} e=${s#*:}
		out=$(q "$2" "SET meter.tenant_id = '$t'; SET meter.environment_id = '$e'; SELECT * FROM meter.verify()" 2>&1)
		[ -n "$out" ] && echo "$out" | head -10
		check "$1: meter.verify() empty in scope '$t'/'$e'" "$([ -z "$out" ]; echo $?)"
	done
}
verify_all "0.1.0" "$old"
n=$(q "$old" "SELECT count(*) FROM public.upg_usage WHERE fn = 'usage'")
empty "0.1.0: usage = usage_from_events wherever no archived meter is involved ($n usage rows)" "$old" \
	"SELECT u.meter_id, u.n, u.window_start, u.value, f.value FROM public.upg_usage u
	 JOIN public.upg_usage f USING (label, meter_id, n, window_start)
	 JOIN meter.meters m ON m.id = u.meter_id
	 WHERE u.fn = 'usage' AND f.fn = 'from_events' AND m.status = 'published' AND u.value IS DISTINCT FROM f.value LIMIT 10"

# ── 2. The upgrade ────────────────────────────────────────────────────────────────────
t0=$(date +%s%N)
q "$old" "ALTER EXTENSION meter UPDATE TO '0.2.0'" >"$work/upgrade.log" 2>&1
rc=$?
t1=$(date +%s%N)
cat "$work/upgrade.log" | head -20
events=$(q "$old" "SELECT (SELECT count(*) FROM meter.events) + (SELECT count(*) FROM public.my_events)")
check "ALTER EXTENSION meter UPDATE TO '0.2.0' ($events events, $(q "$old" "SELECT count(*) FROM meter.meters") meters, $(( (t1 - t0) / 1000000 )) ms)" $rc
[ "$(q "$old" "SELECT extversion FROM pg_extension WHERE extname = 'meter'")" = 0.2.0 ]
check "the extension is at 0.2.0" $?

empty "meters identical (names trimmed)" "$old" \
	"(SELECT id, tenant_id, environment_id, btrim(event_name, E' \t\u00a0') AS event_name, btrim(name, E' \t\u00a0') AS name,
		aggregation::text, filters::text, reset_usage, status, created_at, updated_at, created_by, updated_by FROM public.upg_meters
	 EXCEPT SELECT id, tenant_id, environment_id, event_name, name, aggregation::text, filters::text, reset_usage, status,
		created_at, updated_at, created_by, updated_by FROM meter.meters)
	UNION ALL
	(SELECT id, tenant_id, environment_id, event_name, name, aggregation::text, filters::text, reset_usage, status,
		created_at, updated_at, created_by, updated_by FROM meter.meters
	 EXCEPT SELECT id, tenant_id, environment_id, btrim(event_name, E' \t\u00a0'), btrim(name, E' \t\u00a0'),
		aggregation::text, filters::text, reset_usage, status, created_at, updated_at, created_by, updated_by FROM public.upg_meters)"
[ "$(q "$old" "SELECT count(*) FROM meter.meters WHERE event_name <> btrim(event_name) OR name <> btrim(name, E' \u00a0')")" = 0 ] \
	&& [ "$(q "$old" "SELECT count(*) FROM public.upg_meters WHERE event_name <> btrim(event_name)")" = 5 ]
check "padded meter names (5 meters) are stored trimmed" $?
empty "events identical (meter.events, public.my_events)" "$old" \
	"(SELECT e::text FROM public.upg_events e EXCEPT SELECT e::text FROM meter.events e)
	 UNION ALL (SELECT e::text FROM meter.events e EXCEPT SELECT e::text FROM public.upg_events e)
	 UNION ALL (SELECT e::text FROM public.upg_my_events e EXCEPT SELECT e::text FROM public.my_events e)
	 UNION ALL (SELECT e::text FROM public.my_events e EXCEPT SELECT e::text FROM public.upg_my_events e)"

q "$old" "SELECT public.upg_capture('0.2.0'); SELECT public.upg_capture_skips('0.2.0')" >/dev/null
check "usage and usage_from_events of every meter recorded after the upgrade" $?
# The padded published meters now count the events their trimmed name matches (0.2.0's
# rule): compared with usage_from_events instead of with 0.1.0.
# Rows of two captures, joined by meter, spec, function and window. A difference is a
# failure, except one: a MIN, MAX or LATEST value among numerically equal candidates
# written with different decimal places (2 and 2.0) — 0.1.0 took whichever its SQL met
# first (so its own usage and usage_from_events could print differently), 0.2.0 takes
# the one with more decimal places, always. Those are counted and shown, never numbers.
usage_join() { # usage_join LABEL-A LABEL-B CONDITION
	echo "WITH a AS (SELECT * FROM public.upg_usage WHERE label = '$1' AND $3),
	      b AS (SELECT * FROM public.upg_usage WHERE label = '$2' AND $3),
	      j AS (SELECT COALESCE(a.meter_id, b.meter_id) AS meter_id, COALESCE(a.n, b.n) AS n,
			COALESCE(a.fn, b.fn) AS fn, COALESCE(a.window_start, b.window_start) AS ws,
			a.window_end AS a_end, b.window_end AS b_end, a.value AS av, b.value AS bv, a.err AS a_err,
			b.err AS b_err, a.meter_id IS NULL OR b.meter_id IS NULL AS missing
		FROM a FULL JOIN b ON a.meter_id = b.meter_id AND a.n = b.n AND a.fn = b.fn
			AND a.window_start IS NOT DISTINCT FROM b.window_start),
	      k AS (SELECT j.*, meter.type_of(m.aggregation)::text IN ('MIN', 'MAX', 'LATEST')
			AND j.av = j.bv AND scale(j.bv) > scale(j.av) AS tie
		FROM j JOIN meter.meters m ON m.id = j.meter_id)"
}
same_usage() { # same_usage DESCRIPTION LABEL-A LABEL-B CONDITION
	local ties
	ties=$(q "$old" "$(usage_join "$2" "$3" "$4") SELECT count(*) FROM k WHERE tie AND av::text <> bv::text")
	[ "$ties" != 0 ] && echo "note: $ties MIN/MAX/LATEST values among equal candidates (e.g. 2 and 2.0) print with more decimal places in 0.2.0:" \
		&& q "$old" "$(usage_join "$2" "$3" "$4") SELECT meter_id, n, fn, ws, av::text, bv::text FROM k WHERE tie AND av::text <> bv::text ORDER BY 1, 2, 3, 4 LIMIT 3"
	empty "$1" "$old" "$(usage_join "$2" "$3" "$4")
		SELECT meter_id, n, fn, ws, av::text, bv::text, a_err, b_err FROM k
		WHERE missing OR a_end IS DISTINCT FROM b_end OR a_err IS DISTINCT FROM b_err
			OR av IS DISTINCT FROM bv OR (av::text IS DISTINCT FROM bv::text AND NOT tie)
		ORDER BY 1, 2, 3, 4 LIMIT 12"
}
rows=$(q "$old" "SELECT count(*) FROM public.upg_usage WHERE label = '0.1.0' AND fn <> 'error'")
same_usage "usage and usage_from_events identical as numbers and as text ($rows rows, published, archived, deleted)" \
	0.1.0 0.2.0 "meter_id NOT LIKE '%pad%'"
# Padded archived meters: their stored (frozen) usage is unchanged; only the raw events
# read for cut slots (specs 4, 6, 8) and usage_from_events follow the trimmed name.
same_usage "padded archived meters: usage from the stored states identical (specs without cut slots)" \
	0.1.0 0.2.0 "meter_id LIKE '%pad_arch' AND fn = 'usage' AND n NOT IN (4, 6, 8)"
[ "$(q "$old" "SELECT count(DISTINCT meter_id) FROM public.upg_usage WHERE label = '0.2.0' AND fn = 'error' AND err = 'P0002'")" \
	= "$(q "$old" "SELECT count(*) FROM meter.meters WHERE status = 'deleted'")" ]
check "deleted meters: usage is P0002 before and after" $?
empty "padded published meters: usage = usage_from_events after the upgrade" "$old" \
	"SELECT u.meter_id, u.n, u.window_start, u.value, f.value FROM public.upg_usage u
	 JOIN public.upg_usage f USING (label, meter_id, n, window_start)
	 WHERE u.label = '0.2.0' AND u.meter_id IN ('a_pad', 'g_pad') AND u.fn = 'usage' AND f.fn = 'from_events'
		AND u.value IS DISTINCT FROM f.value"
# (0.1.0's view listed the skips of deleted meters too; 0.2.0 hides deleted meters everywhere.)
empty "meter.skipped identical for every meter but deleted ones (meter, customer, slot, count)" "$old" \
	"WITH s AS (SELECT * FROM public.upg_skipped WHERE meter_id NOT IN (SELECT id FROM meter.meters WHERE status = 'deleted'))
	 (SELECT meter_id, customer_id, external_customer_id, bucket, skipped FROM s WHERE label = '0.1.0'
	  EXCEPT SELECT meter_id, customer_id, external_customer_id, bucket, skipped FROM s WHERE label = '0.2.0')
	 UNION ALL
	 (SELECT meter_id, customer_id, external_customer_id, bucket, skipped FROM s WHERE label = '0.2.0'
	  EXCEPT SELECT meter_id, customer_id, external_customer_id, bucket, skipped FROM s WHERE label = '0.1.0')"
verify_all "upgraded" "$old"
for s in $scopes; do
	t=${s%%:*} e=${s#*:}
	empty "upgraded: archived meters' stored usage equals the 0.1.0 rollups' totals in scope '$t'/'$e'" "$old" \
		"SET meter.tenant_id = '$t'; SET meter.environment_id = '$e';
		 SELECT m.id FROM meter.meters m WHERE m.status = 'archived' AND m.tenant_id = '$t' AND m.environment_id = '$e'
			AND (SELECT COALESCE(sum(events), 0) FROM meter.stored_slots(m.id, true)) = 0"
done

# The schema: exactly a fresh 0.2.0 given the same roles.
createdb "$fresh" || exit 1
q "$fresh" "CREATE EXTENSION meter; SELECT meter.grant_reader('$reader'), meter.grant_writer('$writer'), meter.grant_admin('$admin')" >/dev/null
psql -X -At -v ON_ERROR_STOP=1 -d "$old" -f test/e2e/upgrade_catalog.sql >"$work/catalog.upgraded" 2>&1
psql -X -At -v ON_ERROR_STOP=1 -d "$fresh" -f test/e2e/upgrade_catalog.sql >"$work/catalog.fresh" 2>&1
if diff "$work/catalog.fresh" "$work/catalog.upgraded" >"$work/catalog.diff"; then
	check "schema of the upgraded database = a fresh CREATE EXTENSION meter ($(wc -l <"$work/catalog.fresh") catalog lines)" 0
else
	echo "--- fresh 0.2.0   +++ upgraded from 0.1.0 (sql/install/ and sql/meter--0.1.0--0.2.0.sql disagree):"
	head -60 "$work/catalog.diff"
	check "schema of the upgraded database = a fresh CREATE EXTENSION meter" 1
fi
empty "the tracked table has 0.2.0's triggers (BEFORE TRUNCATE)" "$old" \
	"SELECT tgname FROM pg_trigger WHERE tgrelid = 'public.my_events'::regclass AND NOT tgisinternal
	 EXCEPT SELECT tgname FROM pg_trigger WHERE tgrelid = 'meter.events'::regclass AND NOT tgisinternal
	 UNION ALL
	 SELECT pg_get_triggerdef(oid) FROM pg_trigger WHERE tgname = 'meter_track_truncate' AND pg_get_triggerdef(oid) NOT LIKE '%BEFORE TRUNCATE%'"
q "$old" "SET ROLE $reader; SET meter.tenant_id = 'acme';
	SELECT count(*) FROM meter.usage('a_sum', '2024-03-01', '2024-04-01');
	SELECT count(*) FROM meter.pending; SELECT count(*) FROM meter.rollups; SELECT count(*) FROM meter.skipped;
	SELECT count(*) FROM meter.seals; SELECT count(*) FROM meter.sealed_skips;
	RESET ROLE; SET ROLE $admin; SET meter.tenant_id = 'acme'; SELECT meter.compact(); SELECT count(*) FROM meter.rebuild('a_sum');
	RESET ROLE; SET ROLE $writer; SET meter.tenant_id = 'acme';
	SELECT * FROM meter.ingest('{\"id\":\"w1\",\"event_name\":\"api_call\",\"customer_id\":\"c1\",\"timestamp\":\"2024-03-11T00:00:00Z\"}')" >/dev/null
check "roles granted under 0.1.0 (reader, admin, writer) keep their access" $?

# ── 3. Ingestion keeps working ─────────────────────────────────────────────────────────
count_before=$(q "$old" "SET meter.tenant_id = 'acme'; SELECT value FROM meter.usage('a_count', '2024-01-01', '2025-01-01')")
q "$old" "SET meter.tenant_id = 'acme';
	SELECT public.upg_events('meter.events', 'a_new', 3000, 3100, '2024-03-01 00:00:00+00');
	SELECT public.upg_events('public.my_events', 'a_mnew', 3000, 3050, '2024-03-05 00:00:00+00');
	SELECT * FROM meter.ingest('{\"id\":\"a_i9\",\"event_name\":\"api_call\",\"customer_id\":\"c9\",\"timestamp\":\"2024-04-01T00:00:00Z\",\"properties\":{\"tokens\":1}}');
	UPDATE meter.events SET properties = properties || '{\"tokens\": 9999}' WHERE id IN ('a_e10', 'a_e20', 'a_e30');
	UPDATE public.my_events SET \"timestamp\" = \"timestamp\" - interval '5 days' WHERE id IN ('a_m10', 'a_m20');
	DELETE FROM meter.events WHERE id IN ('a_e40', 'a_e41');
	DELETE FROM public.my_events WHERE id = 'a_m40';
	SELECT meter.create_meter('api_call', 'new after upgrade', '{\"type\":\"SUM\",\"field\":\"tokens\"}', id => 'a_new_sum');
	UPDATE meter.meters SET status = 'published' WHERE id = 'a_arch_max_h'" >/dev/null
check "after the upgrade: inserts (both tables, ingest), updates, deletes, a new meter, a meter published again" $?
count_after=$(q "$old" "SET meter.tenant_id = 'acme'; SELECT value FROM meter.usage('a_count', '2024-01-01', '2025-01-01')")
expected=$(q "$old" "SET meter.tenant_id = 'acme'; SELECT count(*) FROM (SELECT event_name FROM meter.events WHERE tenant_id = 'acme' AND environment_id = ''
	UNION ALL SELECT event_name FROM public.my_events WHERE tenant_id = 'acme' AND environment_id = '') e WHERE event_name = 'api_call'")
echo "a_count: $count_before before, $count_after after (raw events: $expected)"
check "usage counts exactly the events in both tables" "$([ "$count_after" = "$expected" ]; echo $?)"
q "$old" "SET meter.tenant_id = 'acme'; TRUNCATE public.my_events" >/dev/null
check "TRUNCATE of the tracked table (BEFORE TRUNCATE trigger) works" $?
verify_all "after more writes" "$old"
q "$old" "SELECT public.upg_capture('more')" >/dev/null
empty "after more writes: usage = usage_from_events for every published meter" "$old" \
	"SELECT u.meter_id, u.n, u.window_start, u.value, f.value FROM public.upg_usage u
	 JOIN public.upg_usage f USING (label, meter_id, n, window_start)
	 JOIN meter.meters m ON m.id = u.meter_id
	 WHERE u.label = 'more' AND u.fn = 'usage' AND f.fn = 'from_events' AND m.status = 'published'
		AND u.value IS DISTINCT FROM f.value LIMIT 10"

# ── 4. pg_dump / pg_restore of the upgraded database ──────────────────────────────────
pg_dump -Fc -d "$old" -f "$work/dump" 2>"$work/dump.err"
check "pg_dump -Fc of the upgraded database" $?
createdb "$restored" || exit 1
PGOPTIONS='-c meter.restoring=on' pg_restore --exit-on-error -d "$restored" "$work/dump" 2>"$work/restore.err"
rc=$?
head -5 "$work/restore.err"
check "pg_restore with PGOPTIONS='-c meter.restoring=on'" $rc
same_rows() { # same_rows DESCRIPTION QUERY: identical output in the upgraded and the restored database
	local a b
	a=$(q "$old" "$2") b=$(q "$restored" "$2")
	if [ "$a" = "$b" ]; then check "$1 ($(echo "$a" | grep -c .) rows)" 0
	else diff <(echo "$a") <(echo "$b") | head -12; check "$1" 1; fi
}
same_rows "restored: meters identical" "SELECT m::text FROM meter.meters m ORDER BY id"
same_rows "restored: events identical" "SELECT e::text FROM meter.events e ORDER BY tenant_id, environment_id, id"
same_rows "restored: tracked-tables registry identical" "SELECT relid::text FROM meter.tracked_tables ORDER BY 1"
q "$restored" "SELECT public.upg_capture('restored')" >/dev/null
same_rows "restored: usage and usage_from_events of every meter identical" \
	"SELECT format('%s %s %s %s %s %s', meter_id, n, fn, window_start, value, err) FROM public.upg_usage
	 WHERE label = CASE WHEN current_database() = '$old' THEN 'more' ELSE 'restored' END
	 ORDER BY meter_id, n, fn, window_start"
psql -X -At -v ON_ERROR_STOP=1 -d "$old" -f test/e2e/upgrade_catalog.sql >"$work/catalog.upgraded2" 2>&1
psql -X -At -v ON_ERROR_STOP=1 -d "$restored" -f test/e2e/upgrade_catalog.sql >"$work/catalog.restored" 2>&1
if diff "$work/catalog.upgraded2" "$work/catalog.restored" >"$work/catalog.diff2"; then
	check "restored: schema and privileges identical to the upgraded database's" 0
else
	head -30 "$work/catalog.diff2"
	check "restored: schema and privileges identical to the upgraded database's" 1
fi
verify_all "restored" "$restored"

[ "$failures" -eq 0 ] && echo "upgrade: pass (${SECONDS} s)" || echo "upgrade: $failures failure(s) (${SECONDS} s)"
[ "$failures" -eq 0 ]
