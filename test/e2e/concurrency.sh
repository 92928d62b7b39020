#!/usr/bin/env bash
# End-to-end: concurrent ingestion (SPEC §9 "many sessions ingesting at once never deadlock,
# never lose an increment").
#
# pgbench runs 4 clients at once, each transaction either meter.ingest() of a JSON array or
# a multi-row INSERT into meter.events, all for the same 3 customers and 5 minutes, with
# ids re-sent across clients (a pool of 20 ids per path) and inside one call. Afterwards:
# no failed transaction, no deadlock in the server log, the number of stored events equals
# what was sent minus the duplicates, meter.verify() is empty (meters of six kinds: COUNT,
# SUM, MAX, COUNT_UNIQUE, AVG, filtered COUNT) and usage equals plain SQL over the events.
#
# Uses PGHOST/PGPORT/PGUSER from the environment and its own database. Exit 0 = pass.
# CONC_CLIENTS (default 4) and CONC_TRANSACTIONS (per client, default 150) size the run.
set -uo pipefail

clients=${CONC_CLIENTS:-4}
per_client=${CONC_TRANSACTIONS:-150}
db="meter_e2e_conc_$$"
work=$(mktemp -d /tmp/meter-conc.XXXXXX)
log="${METER_TEST_DIR:-${PGHOST:-}}/server.log"
failures=0

cleanup() {
	psql -X -q -d postgres -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1
	rm -rf "$work"
}
trap cleanup EXIT

check() { # check DESCRIPTION CONDITION-EXIT-STATUS
	if [ "$2" -eq 0 ]; then echo "ok    $1"; else echo "FAIL  $1"; failures=$((failures + 1)); fi
}
q() { psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" -c "$1"; }

command -v pgbench >/dev/null || { echo "pgbench not found in PATH" >&2; exit 1; }

psql -X -q -d postgres -c "CREATE DATABASE \"$db\"" >/dev/null || exit 1
q "CREATE EXTENSION meter" || exit 1
q "CREATE SEQUENCE public.seq_ingest; CREATE SEQUENCE public.seq_insert" || exit 1

tracking=$(q "SELECT (SELECT count(DISTINCT proname) FROM pg_catalog.pg_proc
	WHERE pronamespace = 'meter'::regnamespace AND proname IN ('create_meter', 'verify', 'track_usage')) = 3
	AND EXISTS (SELECT FROM pg_catalog.pg_trigger WHERE tgrelid = 'meter.events'::regclass AND NOT tgisinternal)")
if [ "$tracking" = t ]; then
	q "SET meter.tenant_id = 'acme';
	   SELECT meter.create_meter(event_name => 'api_call', name => 'calls');
	   SELECT meter.create_meter(event_name => 'api_call', name => 'tokens', aggregation => '{\"type\":\"SUM\",\"field\":\"tokens\"}');
	   SELECT meter.create_meter(event_name => 'api_call', name => 'peak', aggregation => '{\"type\":\"MAX\",\"field\":\"tokens\"}');
	   SELECT meter.create_meter(event_name => 'api_call', name => 'models', aggregation => '{\"type\":\"COUNT_UNIQUE\",\"field\":\"model\"}');
	   SELECT meter.create_meter(event_name => 'api_call', name => 'avg', aggregation => '{\"type\":\"AVG\",\"field\":\"tokens\"}');
	   SELECT meter.create_meter(event_name => 'api_call', name => 'm0_calls', filters => '[{\"key\":\"model\",\"values\":[\"m0\"]}]');" >/dev/null \
		|| { echo "could not create meters" >&2; exit 1; }
	echo "meters: COUNT, SUM, MAX, COUNT_UNIQUE, AVG, filtered COUNT"
else
	echo "FAIL  meter.track_usage / meter.verify / meter.create_meter are not installed"
	exit 1
fi

# Path 1: meter.ingest of 23 events: a pool id shared by all clients (a pool of 20; same id
# → same content), 20 new ids, another pool id, and a new id again inside the same call.
# Transactions s and s+1 (running at the same time) send the same two pool ids in opposite
# orders: without a fixed lock order inside meter.ingest, that would deadlock.
cat >"$work/ingest.sql" <<'SQL'
\set c random(1, 3)
\set m random(0, 4)
\set tok random(1, 100)
SELECT pg_catalog.nextval('public.seq_ingest') AS s \gset
\set a (:s / 2) % 10 + 10 * (:s % 2)
\set b (:s / 2) % 10 + 10 * (1 - :s % 2)
SELECT accepted, duplicates FROM meter.ingest(
	pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object('id', 'p-' || (:a), 'event_name', 'api_call',
		'external_customer_id', 'cus_' || ((:a) % 3 + 1), 'timestamp', '2024-03-10T20:0' || ((:a) % 5) || ':00Z',
		'properties', pg_catalog.jsonb_build_object('tokens', :a, 'model', 'pool')))
	|| (SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object('id', 'i-' || :s || '-' || k, 'event_name', 'api_call',
		'external_customer_id', 'cus_' || ((:c + k) % 3 + 1), 'timestamp', '2024-03-10T20:0' || ((:m + k) % 5) || ':30Z',
		'properties', pg_catalog.jsonb_build_object('tokens', (:tok + k) % 100, 'model', 'm' || (k % 3))))
		FROM pg_catalog.generate_series(1, 20) AS k)
	|| pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object('id', 'p-' || (:b), 'event_name', 'api_call',
		'external_customer_id', 'cus_' || ((:b) % 3 + 1), 'timestamp', '2024-03-10T20:0' || ((:b) % 5) || ':00Z',
		'properties', pg_catalog.jsonb_build_object('tokens', :b, 'model', 'pool')),
	pg_catalog.jsonb_build_object('id', 'i-' || :s || '-1', 'event_name', 'api_call',
		'external_customer_id', 'cus_' || :c, 'properties', '{"tokens": 100000}'::jsonb)));
SQL

# Path 2: a multi-row INSERT of 12 rows (10 new ids and two from another pool of 20),
# written in id order — the deadlock-free way for a client to send overlapping batches.
cat >"$work/insert.sql" <<'SQL'
\set c random(1, 3)
\set m random(0, 4)
\set tok random(1, 100)
SELECT pg_catalog.nextval('public.seq_insert') AS s \gset
\set a (:s / 2) % 10 + 10 * (:s % 2)
\set b (:s / 2) % 10 + 10 * (1 - :s % 2)
INSERT INTO meter.events (id, event_name, customer_id, "timestamp", properties)
SELECT v.id, 'api_call', v.cust, v.ts, v.props FROM (
	SELECT 'n-' || :s || '-' || k, 'c' || ((:c + k) % 3 + 1), '2024-03-10 20:00:00+00'::timestamptz + ((:m + k) % 5) * '1 minute'::interval,
		pg_catalog.jsonb_build_object('tokens', (:tok + k) % 100, 'model', 'm' || (k % 3))
	FROM pg_catalog.generate_series(1, 10) AS k
	UNION ALL VALUES
	('q-' || (:a), 'c' || ((:a) % 3 + 1), '2024-03-10 20:00:00+00'::timestamptz + ((:a) % 5) * '1 minute'::interval,
		pg_catalog.jsonb_build_object('tokens', (:a) * 2, 'model', 'pool')),
	('q-' || (:b), 'c' || ((:b) % 3 + 1), '2024-03-10 20:00:00+00'::timestamptz + ((:b) % 5) * '1 minute'::interval,
		pg_catalog.jsonb_build_object('tokens', (:b) * 2, 'model', 'pool'))
) AS v(id, cust, ts, props)
ORDER BY v.id
ON CONFLICT (tenant_id, environment_id, id) DO NOTHING;
SQL

# deadlock_timeout is lowered only so that a deadlocking build fails fast.
log_start=0
[ -r "$log" ] && log_start=$(stat -c %s "$log")

start=$(date +%s)
PGOPTIONS="-c meter.tenant_id=acme -c deadlock_timeout=100ms" timeout 90 pgbench -n -c "$clients" -j 2 -t "$per_client" \
	-f "$work/ingest.sql@1" -f "$work/insert.sql@1" "$db" >"$work/pgbench.out" 2>&1
rc=$?
echo "pgbench: ${clients} clients x ${per_client} transactions in $(( $(date +%s) - start )) s (exit $rc)"
grep -E '^(number of (transactions actually processed|failed transactions)|latency average|tps)' "$work/pgbench.out"
check "pgbench exited 0" "$rc"
processed=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$work/pgbench.out")
[ "${processed:-0}" -eq $((clients * per_client)) ]
check "all $((clients * per_client)) transactions processed" $?
failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$work/pgbench.out")
[ "${failed:-0}" -eq 0 ]
check "no failed transactions" $?
if [ "$rc" -ne 0 ] || [ "${failed:-0}" -ne 0 ]; then grep -iE 'error|abort' "$work/pgbench.out" | head -10; fi

if [ -r "$log" ]; then
	tail -c +"$((log_start + 1))" "$log" | grep -i 'deadlock' >"$work/deadlocks"
	[ ! -s "$work/deadlocks" ]
	check "no deadlock in the server log" $?
	head -5 "$work/deadlocks"
else
	echo "skip  server log not readable at $log"
fi
sleep 0.5   # let the cumulative statistics catch up
dl=$(q "SELECT deadlocks FROM pg_catalog.pg_stat_database WHERE datname = current_database()")
[ "${dl:-0}" -eq 0 ]
check "pg_stat_database reports no deadlock" $?

# What was sent: per ingest transaction 23 events, per insert transaction 12 rows; what must
# be stored: every new id once, and each pool id that was sent at least once.
read -r t_ingest t_insert <<<"$(q "SELECT (SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM public.seq_ingest),
	(SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM public.seq_insert)" | tr '|' ' ')"
[ $((t_ingest + t_insert)) -eq "${processed:-0}" ]
check "ingest ($t_ingest) + insert ($t_insert) transactions = processed" $?
sent=$((23 * t_ingest + 12 * t_insert))
expected=$(q "SELECT 20 * $t_ingest + 10 * $t_insert
	+ (SELECT count(DISTINCT v) FROM generate_series(1, $t_ingest) s, LATERAL (VALUES ((s / 2) % 10 + 10 * (s % 2)), ((s / 2) % 10 + 10 * (1 - s % 2))) x(v))
	+ (SELECT count(DISTINCT v) FROM generate_series(1, $t_insert) s, LATERAL (VALUES ((s / 2) % 10 + 10 * (s % 2)), ((s / 2) % 10 + 10 * (1 - s % 2))) x(v))")
stored=$(q "SELECT count(*) FROM meter.events")
echo "sent $sent events, expected $expected distinct, stored $stored ($((sent - stored)) duplicates)"
[ "$stored" -eq "$expected" ]
check "stored events = sent - duplicates" $?
bad=$(q "SELECT count(*) FROM meter.events WHERE tenant_id <> 'acme' OR environment_id <> ''
	OR (id LIKE 'i-%' AND (properties->>'tokens')::int >= 100000)")
[ "$bad" -eq 0 ]
check "scope is right and the first copy of an id re-sent in a call won" $?
mismatch=$(q "SELECT count(*) FROM meter.events WHERE id LIKE 'p-%'
	AND (properties->>'tokens')::int <> substr(id, 3)::int")
[ "$mismatch" -eq 0 ]
check "pool events stored with their own content" $?

if [ "$tracking" = t ]; then
	v=$(q "SET meter.tenant_id = 'acme'; SELECT count(*) FROM meter.verify()")
	[ "$v" = 0 ]
	check "meter.verify() is empty" $?
	[ "$v" = 0 ] || q "SET meter.tenant_id = 'acme'; SELECT * FROM meter.verify() LIMIT 10"
	# usage_is DESCRIPTION METER-NAME SQL: the meter's usage over the whole range (one
	# window; CUSTOMER from the plain SQL's c column when given) equals plain SQL over the
	# raw events.
	usage_is() {
		local diff
		diff=$(q "SET meter.tenant_id = 'acme';
			SELECT count(*) FROM ($3) want
			WHERE (SELECT u.value FROM meter.meters m, meter.usage(m.id, '2000-01-01', '2100-01-01', customer_id => want.c) u
				WHERE m.name = '$2') IS DISTINCT FROM want.v")
		[ "$diff" = 0 ]
		check "$1" $?
	}
	usage_is "COUNT meter usage = number of events" calls "SELECT NULL AS c, count(*) AS v FROM meter.events"
	usage_is "SUM meter usage = sum of tokens over the events" tokens \
		"SELECT NULL AS c, sum((properties->>'tokens')::numeric) AS v FROM meter.events"
	usage_is "COUNT meter usage per customer = events per customer" calls \
		"SELECT 'c' || k AS c, (SELECT count(*) FROM meter.events e WHERE e.customer_id = 'c' || k) AS v FROM generate_series(1, 3) k"
	usage_is "MAX meter usage = the largest tokens value" peak \
		"SELECT NULL AS c, max((properties->>'tokens')::numeric) AS v FROM meter.events"
	usage_is "COUNT_UNIQUE meter usage = distinct models" models \
		"SELECT NULL AS c, count(DISTINCT properties->>'model') AS v FROM meter.events"
fi

echo "$failures failure(s)"
[ "$failures" -eq 0 ]
