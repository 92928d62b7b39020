#!/usr/bin/env bash
# End-to-end dump and restore (SPEC §4: every table holding users' data is dumped, stored
# usage included; issue 9: restores use an explicit, documented switch).
#
# A database with meters of several types (filters, bucket_size, an archived one, two
# tenants), events in meter.events and in a user table tracked with
# meter.track('public.my_events'), and their stored usage, part of it compacted and part
# still pending; pg_dump -Fc, then three restore modes into fresh databases:
#   replica    PGOPTIONS='-c session_replication_role=replica' pg_restore (no trigger fires)
#   sectioned  pre-data; data with --disable-triggers; post-data
#   restoring  a plain pg_restore with PGOPTIONS='-c meter.restoring=on' (the triggers fire
#              but count nothing and rebuild nothing: the dump brings the stored usage)
#   restoring, meters first  the same with a list (pg_restore -L) that loads meter.meters
#              before meter.events, so that the events' trigger finds the meters while the
#              events load (pg_dump's own order loads meter.events first)
# For each: the restore succeeds; meters, events, the user table and the tracked-tables
# registry are identical; the stored partial states (meter.stored_slots, per customer and
# for all customers) of every meter, archived ones included, and meter.usage by hour of
# every meter and customer are identical; meter.verify() is empty for every tenant; and
# tracking keeps working afterwards on both tables (insert, update, delete, compaction;
# usage moves by exactly that; verify still empty; untrack works).
# A plain pg_restore WITHOUT the switch is run too and only reported (KNOWN LIMITATION):
# its triggers count the restored events on top of the restored stored usage.
# DUMP_EVENTS (default 2000) sizes the data. Uses PGHOST/PGPORT/PGUSER. Exit 0 = pass.
set -uo pipefail
src=meter_dump2_src_$$ dst=meter_dump2_dst_$$ dst2=meter_dump2_sec_$$ dst3=meter_dump2_rst_$$ dst4=meter_dump2_plain_$$ dst5=meter_dump2_order_$$
dump=$(mktemp /tmp/meter-dump.XXXXXX)
events=${DUMP_EVENTS:-2000}
failures=0
cleanup() {
	dropdb --if-exists "$src" 2>/dev/null
	dropdb --if-exists "$dst" 2>/dev/null
	dropdb --if-exists "$dst2" 2>/dev/null
	dropdb --if-exists "$dst3" 2>/dev/null
	dropdb --if-exists "$dst4" 2>/dev/null
	dropdb --if-exists "$dst5" 2>/dev/null
	rm -f "$dump" "$dump.err" "$dump.list" "$dump.list2"
}
trap cleanup EXIT
[ "${DUMP_KEEP:-0}" = 1 ] && trap - EXIT
check() { if [ "$2" -eq 0 ]; then echo "ok    $1"; else echo "FAIL  $1"; failures=$((failures + 1)); fi; }
q() { local db=$1; shift; psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" -c "$1"; }

createdb "$src" || exit 1
for d in "$dst" "$dst2" "$dst3" "$dst4" "$dst5"; do createdb "$d" || exit 1; done
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
-- fold what is stored so far: the dump holds compacted rows and pending ones
SELECT meter.compact();
-- some history: updates and deletes, then a meter archived (its stored usage frozen)
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
n_pending=$(q "$src" "SELECT count(*) FROM meter.pending")
n_rollups=$(q "$src" "SELECT count(*) FROM meter.rollups")
echo "dumped: $(q "$src" "SELECT count(*) FROM meter.events") events, $n_rollups compacted rows, $n_pending pending rows"
[ "$n_pending" -gt 0 ] && [ "$n_rollups" -gt 0 ]
check "the dump holds both compacted and pending stored usage" $?

# compare DATABASE DESCRIPTION QUERY: the query's output in $src and DATABASE.
compare() {
	local a b
	a=$(q "$src" "$3") b=$(q "$1" "$3")
	if [ "$a" = "$b" ] && [ -n "$a" ]; then
		check "$2 identical ($(echo "$a" | wc -l) rows)" 0
	else
		diff <(echo "$a") <(echo "$b") | head -20
		check "$2 identical" 1
	fi
}
# The stored partial states of every meter of the current scope (archived ones included),
# per customer and for all customers.
stored_q="SELECT format('%s %s %s %s %s %s %s %s %s %s %s %s %s', m.id, l.totals, s.customer_id, s.external_customer_id,
		s.slot, s.dims, s.marked, s.events, s.n, s.sum, s.best, s.uniques, s.maxima)
	FROM meter.meters m CROSS JOIN (VALUES (false), (true)) l(totals)
	CROSS JOIN LATERAL meter.stored_slots(m.id, l.totals) s
	WHERE m.tenant_id = meter.current_tenant() AND m.environment_id = meter.current_environment()
	ORDER BY 1"
# usage of every meter for every customer (and all customers), by hour
usage_q="SELECT string_agg(format('%s %s %s %s', m.id, c.customer_id, u.window_start, u.value), E'\n'
	ORDER BY m.id, c.customer_id NULLS FIRST, u.window_start)
	FROM meter.meters m
	CROSS JOIN (SELECT DISTINCT customer_id FROM meter.events WHERE tenant_id = meter.current_tenant()
		UNION ALL SELECT NULL) c
	CROSS JOIN LATERAL meter.usage(m.id, '2024-04-30', '2024-05-03', c.customer_id, window_size => 'HOUR') u
	WHERE m.tenant_id = meter.current_tenant() AND m.environment_id = meter.current_environment()"
registry_q="SELECT format('%s %s', relid, tracked_by) FROM meter.tracked_tables ORDER BY 1"

# check_restored DATABASE MODE: everything identical to $src, verify empty, and tracking
# keeps working.
check_restored() {
	local db=$1 mode=$2 t e set_scope out before after
	compare "$db" "$mode: meters" "SELECT m::text FROM meter.meters m ORDER BY id"
	compare "$db" "$mode: meter.events" "SELECT e::text FROM meter.events e ORDER BY tenant_id, environment_id, id"
	compare "$db" "$mode: public.my_events" "SELECT e::text FROM public.my_events e ORDER BY id"
	compare "$db" "$mode: tracked-tables registry" "$registry_q"
	compare "$db" "$mode: tracking triggers" "SELECT tgrelid::regclass || ' ' || tgname || ' ' || tgenabled::text FROM pg_trigger WHERE NOT tgisinternal ORDER BY 1"
	for scope in acme: globex:prod; do
		t=${scope%%:*} e=${scope#*:}
		set_scope="SET meter.tenant_id = '$t'; SET meter.environment_id = '$e';"
		compare "$db" "$mode: stored usage (stored_slots of every meter), tenant '$t'" "$set_scope $stored_q"
		compare "$db" "$mode: usage by hour of every meter and customer, tenant '$t'" "$set_scope $usage_q"
		out=$(q "$db" "$set_scope SELECT * FROM meter.verify() LIMIT 20")
		[ -n "$out" ] && echo "$out"
		check "$mode: meter.verify() empty for tenant '$t'" "$([ -z "$out" ]; echo $?)"
	done

	# Ingestion keeps working in the restored database, on both tracked tables.
	before=$(q "$db" "SET meter.tenant_id = 'acme'; SELECT value FROM meter.usage('d_count', '2024-04-30', '2024-05-03')")
	q "$db" "SET meter.tenant_id = 'acme';
		INSERT INTO meter.events (id, event_name, customer_id, \"timestamp\", properties)
		VALUES ('new1', 'api_call', 'c1', '2024-05-01 10:00:00+00', '{\"tokens\": 3, \"model\": \"a\", \"user\": \"zz\"}'),
		       ('new2', 'api_call', 'c9', '2024-05-02 10:00:00+00', '{\"tokens\": 4, \"region\": \"eu\"}');
		INSERT INTO public.my_events (id, event_name, customer_id, \"timestamp\", properties)
		VALUES ('mynew', 'api_call', 'c2', '2024-05-01 06:30:00+00', '{\"tokens\": \"9.5\", \"model\": \"b\"}');
		UPDATE public.my_events SET properties = properties || '{\"tokens\": 100}' WHERE id = 'my1';
		DELETE FROM meter.events WHERE id = 'ev4'; -- one api_call event gone
		UPDATE meter.meters SET status = 'published' WHERE id = 'd_old'" >/dev/null
	check "$mode: new events, updates and deletes on both tables are accepted" $?
	after=$(q "$db" "SET meter.tenant_id = 'acme'; SELECT value FROM meter.usage('d_count', '2024-04-30', '2024-05-03')")
	echo "$mode: d_count usage: $before before, $after after (+3 new, -1 deleted)"
	check "$mode: usage moves by exactly what was added" "$([ "$after" = "$((before + 2))" ]; echo $?)"
	out=$(q "$db" "SET meter.tenant_id = 'acme'; SELECT meter.compact(); SET meter.tenant_id = 'globex'; SET meter.environment_id = 'prod'; SELECT meter.compact()")
	check "$mode: meter.compact() folds the restored pending rows ($(echo $out | tr '\n' ' '))" "$([ "$(q "$db" "SELECT count(*) FROM meter.pending")" = 0 ]; echo $?)"
	for scope in acme: globex:prod; do
		t=${scope%%:*} e=${scope#*:}
		out=$(q "$db" "SET meter.tenant_id = '$t'; SET meter.environment_id = '$e'; SELECT * FROM meter.verify() LIMIT 20")
		[ -n "$out" ] && echo "$out"
		check "$mode, after more ingestion and compaction: meter.verify() empty for tenant '$t'" "$([ -z "$out" ]; echo $?)"
	done
	after=$(q "$db" "SET meter.tenant_id = 'acme'; SELECT value FROM meter.usage('d_count', '2024-04-30', '2024-05-03')")
	check "$mode: compaction changed no usage" "$([ "$after" = "$((before + 2))" ]; echo $?)"
	# untrack still works on the restored registry
	q "$db" "SELECT meter.untrack('public.my_events'); SELECT count(*) FROM meter.tracked_tables" | grep -qx 1
	check "$mode: meter.untrack('public.my_events') works" $?
}

echo "== replica: PGOPTIONS='-c session_replication_role=replica' pg_restore"
PGOPTIONS='-c session_replication_role=replica' pg_restore --exit-on-error -d "$dst" "$dump"
check "replica: pg_restore into a fresh database succeeds" $?
check_restored "$dst" replica

echo "== sectioned: pre-data, data with --disable-triggers, post-data"
pg_restore --exit-on-error --section=pre-data -d "$dst2" "$dump" \
	&& pg_restore --exit-on-error --section=data --disable-triggers -d "$dst2" "$dump" \
	&& pg_restore --exit-on-error --section=post-data -d "$dst2" "$dump"
check "sectioned: restore succeeds" $?
check_restored "$dst2" sectioned

echo "== restoring: PGOPTIONS='-c meter.restoring=on' pg_restore (plain, the triggers fire)"
PGOPTIONS='-c meter.restoring=on' pg_restore --exit-on-error -d "$dst3" "$dump"
check "restoring: pg_restore with meter.restoring = on succeeds" $?
check_restored "$dst3" restoring

echo "== restoring, meters first: PGOPTIONS='-c meter.restoring=on' pg_restore -L (meter.meters data before meter.events)"
pg_restore -l "$dump" >"$dump.list"
meters_line=$(grep -E 'TABLE DATA meter meters ' "$dump.list")
grep -vE 'TABLE DATA meter meters ' "$dump.list" \
	| awk -v m="$meters_line" '/ TABLE DATA / && !done { print m; done = 1 } { print }' >"$dump.list2"
grep -nE 'TABLE DATA meter (meters|events) ' "$dump.list2" | head -2
PGOPTIONS='-c meter.restoring=on' pg_restore --exit-on-error -L "$dump.list2" -d "$dst5" "$dump"
check "restoring, meters first: pg_restore succeeds" $?
check_restored "$dst5" "restoring, meters first"

echo "== plain pg_restore without meter.restoring (reported, not checked)"
plain_err=$(pg_restore -d "$dst4" "$dump" 2>&1)
plain_rc=$?
echo "$plain_err" | grep -E "error|ERROR|DETAIL" | head -6
v=$(q "$dst4" "SET meter.tenant_id = 'acme'; SELECT count(*) FROM meter.verify()")
a=$(q "$src" "SET meter.tenant_id = 'acme'; SELECT value FROM meter.usage('d_count', '2024-04-30', '2024-05-03')")
b=$(q "$dst4" "SET meter.tenant_id = 'acme'; SELECT value FROM meter.usage('d_count', '2024-04-30', '2024-05-03')")
if [ "$plain_rc" -eq 0 ] && [ "$v" = 0 ] && [ "$a" = "$b" ]; then
	echo "note: a plain pg_restore without meter.restoring came out exact (d_count usage $a)"
else
	echo "KNOWN LIMITATION plain pg_restore without PGOPTIONS='-c meter.restoring=on': exit $plain_rc," \
		"verify() reports ${v:-?} differences for tenant 'acme', d_count usage ${b:-?} for ${a} dumped" \
		"(the extension's triggers act while the data loads);" \
		"restore with meter.restoring = on, session_replication_role = replica or --disable-triggers"
fi

[ "$failures" -eq 0 ] && echo "dump_restore: pass" || echo "dump_restore: $failures failure(s)"
[ "$failures" -eq 0 ]
