#!/usr/bin/env bash
# End-to-end dump and restore (SPEC §4: every table holding users' data is dumped).
#
# A database with meters of several types (filters, bucket_size, an archived one, two
# tenants), events in meter.events and in a user table tracked with
# meter.track('public.my_events'), and their rollups; pg_dump -Fc, then:
#
# 1. Restore with the extension's triggers inert during the data load
#    (PGOPTIONS='-c session_replication_role=replica' pg_restore …; superuser): meters,
#    events, the user table, the tracked-tables registry, meter.rollups and
#    meter.rollup_values identical row for row; meter.usage by hour identical for every
#    meter and customer; meter.verify() empty for every tenant; and tracking keeps working
#    afterwards on both tables (insert, update, delete; usage moves by exactly that; verify
#    still empty; untrack works).
# 2. The same through a sectioned restore (pre-data; data with --disable-triggers;
#    post-data): rollups, registry and verify checked.
# 3. A plain `pg_restore` (the extension's triggers firing while the data loads): meters
#    arriving by COPY are not rebuilt (their rollups follow in the dump), so rollups are
#    identical and verify() empty. (Before that rule the meters' insert trigger rebuilt
#    each meter from meter.events alone and the rollups' COPY then failed on duplicate
#    keys.) DUMP_PLAIN_STRICT=0 turns this check into a report only.
# DUMP_EVENTS (default 2000) sizes the data. Uses PGHOST/PGPORT/PGUSER. Exit 0 = pass.
set -uo pipefail
src=meter_dump2_src_$$ dst=meter_dump2_dst_$$ dst2=meter_dump2_sec_$$ dst3=meter_dump2_plain_$$
dump=$(mktemp /tmp/meter-dump.XXXXXX)
events=${DUMP_EVENTS:-2000}
failures=0
cleanup() {
	dropdb --if-exists "$src" 2>/dev/null
	dropdb --if-exists "$dst" 2>/dev/null
	dropdb --if-exists "$dst2" 2>/dev/null
	dropdb --if-exists "$dst3" 2>/dev/null
	rm -f "$dump" "$dump.err"
}
trap cleanup EXIT
[ "${DUMP_KEEP:-0}" = 1 ] && trap - EXIT
check() { if [ "$2" -eq 0 ]; then echo "ok    $1"; else echo "FAIL  $1"; failures=$((failures + 1)); fi; }
q() { local db=$1; shift; psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" -c "$1"; }

createdb "$src" || exit 1
for d in "$dst" "$dst2" "$dst3"; do createdb "$d" || exit 1; done
psql -X -q -v ON_ERROR_STOP=1 -v n="$events" -d "$src" >/dev/null <<'SQL' || exit 1
CREATE EXTENSION meter;
SET meter.user_id = 'alice';
CREATE TABLE public.my_events (
	id text PRIMARY KEY DEFAULT meter.new_id('evt'),
	tenant_id text NOT NULL DEFAULT meter.current_tenant(),
	environment_id text NOT NULL DEFAULT meter.current_environment(),
	event_name text NOT NULL,
	customer_id text,
	external_customer_id text,
	"timestamp" timestamptz NOT NULL,
	properties jsonb NOT NULL DEFAULT '{}',
	note text
);
SELECT meter.track('public.my_events');

SET meter.tenant_id = 'acme';
SET meter.user_id = 'alice';
SELECT meter.create_meter('api_call', 'calls', id => 'd_count');
SELECT meter.create_meter('api_call', 'tokens', '{"type":"SUM","field":"tokens","bucket_size":"HOUR"}',
	'[{"key":"model","values":["a","b"]}]', id => 'd_sum');
SELECT meter.create_meter('api_call', 'users', '{"type":"COUNT_UNIQUE","field":"user"}', id => 'd_unique');
SELECT meter.create_meter('api_call', 'peak', '{"type":"MAX","field":"tokens"}', id => 'd_max');
SELECT meter.create_meter('api_call', 'last', '{"type":"LATEST","field":"tokens"}',
	'[{"key":"region","values":["eu"]}]', id => 'd_latest');
SELECT meter.create_meter('api_call', 'avg', '{"type":"AVG","field":"tokens"}', reset_usage => 'NEVER', id => 'd_avg');
SELECT meter.create_meter('gpu', 'gpu', '{"type":"WEIGHTED_SUM","field":"gpus"}', id => 'd_wsum');
SELECT meter.create_meter('api_call', 'x3', '{"type":"SUM_WITH_MULTIPLIER","field":"tokens","multiplier":"3"}', id => 'd_mult');
SELECT meter.create_meter('api_call', 'old', '{"type":"MIN","field":"tokens"}', id => 'd_old');

INSERT INTO meter.events (id, event_name, customer_id, external_customer_id, "timestamp", properties)
SELECT 'ev' || g, CASE WHEN g % 7 = 0 THEN 'gpu' ELSE 'api_call' END, 'c' || (g % 5),
	CASE WHEN g % 3 = 0 THEN 'x' || (g % 4) END,
	'2024-05-01 00:00:00+00'::timestamptz + (g * 97 % 86400) * interval '1 second',
	jsonb_build_object('tokens', CASE WHEN g % 11 = 0 THEN to_jsonb('n/a'::text) ELSE to_jsonb(g % 1000 - 20) END,
		'model', (ARRAY['a','b','c'])[g % 3 + 1], 'user', 'u' || (g % 13),
		'region', CASE WHEN g % 2 = 0 THEN 'eu' ELSE 'us' END, 'gpus', g % 4)
FROM generate_series(1, :n) g;
INSERT INTO public.my_events (id, event_name, customer_id, "timestamp", properties, note)
SELECT 'my' || g, 'api_call', 'c' || (g % 3), '2024-05-01 06:00:00+00'::timestamptz + g * interval '13 seconds',
	jsonb_build_object('tokens', (g % 50)::text || '.25', 'model', 'a', 'user', 'w' || (g % 7), 'region', 'eu'),
	'user column'
FROM generate_series(1, :n / 2) g;
-- some history: updates and deletes, then a meter archived (its rollups frozen)
UPDATE meter.events SET properties = properties || '{"tokens": 5}' WHERE id IN ('ev1', 'ev2', 'ev3');
DELETE FROM public.my_events WHERE id IN ('my10', 'my20');
SELECT meter.disable_meter('d_old');
INSERT INTO meter.events (id, event_name, customer_id, "timestamp", properties)
VALUES ('late1', 'api_call', 'c1', '2024-05-01 12:00:00+00', '{"tokens": 1}');  -- not in d_old

SET meter.tenant_id = 'globex';
SET meter.environment_id = 'prod';
SELECT meter.create_meter('api_call', 'calls', id => 'g_count');
SELECT meter.create_meter('api_call', 'tokens', '{"type":"SUM","field":"tokens"}', id => 'g_sum');
INSERT INTO meter.events (id, event_name, customer_id, "timestamp", properties)
SELECT 'ev' || g, 'api_call', 'c' || (g % 2), '2024-05-01 00:00:00+00'::timestamptz + g * interval '1 minute',
	jsonb_build_object('tokens', g) FROM generate_series(1, :n / 4) g;
INSERT INTO public.my_events (id, event_name, customer_id, "timestamp", properties)
VALUES ('gmy1', 'api_call', 'c0', '2024-05-01 03:00:00+00', '{"tokens": 1000}');
SQL

pg_dump -Fc -d "$src" -f "$dump" || exit 1
PGOPTIONS='-c session_replication_role=replica' pg_restore --exit-on-error -d "$dst" "$dump"
check "pg_restore with session_replication_role = replica into a fresh database succeeds" $?

compare() { # compare DESCRIPTION QUERY [DATABASE]
	local a b
	a=$(q "$src" "$2") b=$(q "${3:-$dst}" "$2")
	if [ "$a" = "$b" ] && [ -n "$a" ]; then
		check "$1 identical ($(echo "$a" | wc -l) rows)" 0
	else
		diff <(echo "$a") <(echo "$b") | head -20
		check "$1 identical" 1
	fi
}
compare "meters" "SELECT m::text FROM meter.meters m ORDER BY id"
compare "meter.events" "SELECT e::text FROM meter.events e ORDER BY tenant_id, environment_id, id"
compare "public.my_events" "SELECT e::text FROM public.my_events e ORDER BY id"
compare "tracked-tables registry" "SELECT format('%s %s', relid, tracked_by) FROM meter.tracked_tables ORDER BY 1"
compare "meter.rollups" "SELECT r::text FROM meter.rollups r ORDER BY tenant_id, environment_id, meter_id, customer_id, external_customer_id, bucket"
compare "meter.rollup_values" "SELECT v::text FROM meter.rollup_values v ORDER BY tenant_id, environment_id, meter_id, customer_id, external_customer_id, bucket, value"
compare "tracking triggers" "SELECT tgrelid::regclass || ' ' || tgname || ' ' || tgenabled::text FROM pg_trigger WHERE NOT tgisinternal ORDER BY 1"

# usage of every meter for every customer, daily and by hour, as each tenant
usage_q="SELECT string_agg(format('%s %s %s %s', m.id, c.customer_id, u.window_start, u.value), E'\n'
	ORDER BY m.id, c.customer_id, u.window_start)
	FROM meter.meters m
	CROSS JOIN (SELECT DISTINCT customer_id FROM meter.rollups WHERE tenant_id = meter.current_tenant()) c
	CROSS JOIN LATERAL meter.usage(m.id, '2024-04-30', '2024-05-03', c.customer_id, window_size => 'HOUR') u
	WHERE m.tenant_id = meter.current_tenant() AND m.environment_id = meter.current_environment()"
for scope in acme: globex:prod; do
	t=${scope%%:*} e=${scope#*:}
	set_scope="SET meter.tenant_id = '$t'; SET meter.environment_id = '$e';"
	compare "usage by hour, tenant '$t'" "$set_scope $usage_q"
	out=$(q "$dst" "$set_scope SELECT * FROM meter.verify() LIMIT 20")
	[ -n "$out" ] && echo "$out"
	check "restored: meter.verify() empty for tenant '$t'" "$([ -z "$out" ]; echo $?)"
done

# Ingestion keeps working in the restored database, on both tracked tables.
before=$(q "$dst" "SET meter.tenant_id = 'acme'; SELECT value FROM meter.usage('d_count', '2024-04-30', '2024-05-03')")
q "$dst" "SET meter.tenant_id = 'acme';
	INSERT INTO meter.events (id, event_name, customer_id, \"timestamp\", properties)
	VALUES ('new1', 'api_call', 'c1', '2024-05-01 10:00:00+00', '{\"tokens\": 3, \"model\": \"a\", \"user\": \"zz\"}'),
	       ('new2', 'api_call', 'c9', '2024-05-02 10:00:00+00', '{\"tokens\": 4, \"region\": \"eu\"}');
	INSERT INTO public.my_events (id, event_name, customer_id, \"timestamp\", properties)
	VALUES ('mynew', 'api_call', 'c2', '2024-05-01 06:30:00+00', '{\"tokens\": \"9.5\", \"model\": \"b\"}');
	UPDATE public.my_events SET properties = properties || '{\"tokens\": 100}' WHERE id = 'my1';
	DELETE FROM meter.events WHERE id = 'ev4'; -- one api_call event gone
	UPDATE meter.meters SET status = 'published' WHERE id = 'd_old'" >/dev/null
check "restored: new events, updates and deletes on both tables are accepted" $?
after=$(q "$dst" "SET meter.tenant_id = 'acme'; SELECT value FROM meter.usage('d_count', '2024-04-30', '2024-05-03')")
echo "d_count usage: $before before, $after after (+3 new, -1 deleted)"
check "restored: usage moves by exactly what was added" "$([ "$after" = "$((before + 2))" ]; echo $?)"
for scope in acme: globex:prod; do
	t=${scope%%:*} e=${scope#*:}
	out=$(q "$dst" "SET meter.tenant_id = '$t'; SET meter.environment_id = '$e'; SELECT * FROM meter.verify() LIMIT 20")
	[ -n "$out" ] && echo "$out"
	check "restored, after more ingestion: meter.verify() empty for tenant '$t'" "$([ -z "$out" ]; echo $?)"
done
# untrack still works on the restored registry
q "$dst" "SELECT meter.untrack('public.my_events'); SELECT count(*) FROM meter.tracked_tables" | grep -qx 1
check "restored: meter.untrack('public.my_events') works" $?

echo "== sectioned restore: pre-data, data with --disable-triggers, post-data"
pg_restore --exit-on-error --section=pre-data -d "$dst2" "$dump" \
	&& pg_restore --exit-on-error --section=data --disable-triggers -d "$dst2" "$dump" \
	&& pg_restore --exit-on-error --section=post-data -d "$dst2" "$dump"
check "sectioned restore succeeds" $?
rollups_q="SELECT r::text FROM meter.rollups r ORDER BY tenant_id, environment_id, meter_id, customer_id, external_customer_id, bucket"
values_q="SELECT v::text FROM meter.rollup_values v ORDER BY tenant_id, environment_id, meter_id, customer_id, external_customer_id, bucket, value"
registry_q="SELECT format('%s %s', relid, tracked_by) FROM meter.tracked_tables ORDER BY 1"
compare "sectioned: meter.rollups" "$rollups_q" "$dst2"
compare "sectioned: meter.rollup_values" "$values_q" "$dst2"
compare "sectioned: tracked-tables registry" "$registry_q" "$dst2"
n=$(q "$dst2" "SET meter.tenant_id = 'acme'; SELECT count(*) FROM meter.verify()")
check "sectioned: meter.verify() empty for tenant 'acme'" "$([ "$n" = 0 ]; echo $?)"

echo "== plain pg_restore (the extension's triggers fire during the data load)"
plain_err=$(pg_restore -d "$dst3" "$dump" 2>&1)
plain_rc=$?
echo "$plain_err" | grep -E "error|ERROR|DETAIL" | head -6
plain_ok=1
[ "$plain_rc" -eq 0 ] || plain_ok=0
a=$(q "$src" "$rollups_q") b=$(q "$dst3" "$rollups_q")
[ "$a" = "$b" ] || { plain_ok=0; echo "plain: meter.rollups differ ($(echo "$a" | wc -l) rows dumped, $(echo "$b" | wc -l) restored; archived meter d_old: $(q "$dst3" "SELECT count(*) FROM meter.rollups WHERE meter_id = 'd_old'") rows)"; }
n=$(q "$dst3" "SET meter.tenant_id = 'acme'; SELECT count(*) FROM meter.verify()")
[ "$n" = 0 ] || { plain_ok=0; echo "plain: meter.verify() reports $n differences for tenant 'acme'"; }
if [ "$plain_ok" = 1 ]; then
	echo "ok    plain pg_restore: rollups identical, verify() empty"
elif [ "${DUMP_PLAIN_STRICT:-1}" = 1 ]; then
	check "plain pg_restore: rollups identical, verify() empty" 1
else
	echo "KNOWN ISSUE plain pg_restore: restore with session_replication_role = replica or --disable-triggers (set DUMP_PLAIN_STRICT=1 to fail on it)"
fi

[ "$failures" -eq 0 ] && echo "dump_restore: pass" || echo "dump_restore: $failures failure(s)"
[ "$failures" -eq 0 ]
