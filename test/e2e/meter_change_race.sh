#!/usr/bin/env bash
# End-to-end: every recomputation of stored usage (a meter created, redefined, disabled and
# published again, meter.rebuild, meter.rebuild_all, meter.track/untrack) while another
# session's transaction that wrote events of the same tenant is still open (SPEC §6: "the
# meter's usage is recomputed under its new definition"; §7: usage exact at commit, from
# many sessions at once).
#
# Deterministic interleaving, one tenant per case: session W begins, writes events (INSERT,
# UPDATE, DELETE, into meter.events or a tracked table of the user's own), sleeps, commits;
# while W sleeps, session C runs the change (it waits for W's tenant lock, then
# recomputes). Afterwards meter.verify() must be empty and meter.usage must equal
# meter.usage_from_events for every meter of the tenant — W's events count exactly once
# under the definition C committed. Two controls: the same with C first (W waits for C),
# and meter.compact() instead of a change.
#
# Uses PGHOST/PGPORT/PGUSER and its own database. RACE_SLEEP (default 1.5 s) is how long W
# keeps its transaction open. Exit 0 = pass.
set -uo pipefail
db=meter_e2e_race_$$
nap=${RACE_SLEEP:-1.5}
failures=0
cleanup() { psql -X -q -d postgres -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1; }
trap cleanup EXIT
check() { if [ "$2" -eq 0 ]; then echo "ok    $1"; else echo "FAIL  $1"; failures=$((failures + 1)); fi; }
q() { psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" "$@"; }

psql -X -q -d postgres -c "CREATE DATABASE \"$db\"" >/dev/null || exit 1
q -c "CREATE EXTENSION meter" -c "CREATE TABLE public.app_events (LIKE meter.events INCLUDING ALL)" \
	-c "CREATE TABLE public.late_events (LIKE meter.events INCLUDING ALL)" -c "SELECT meter.track('public.app_events')" >/dev/null || exit 1

# setup TENANT: meters of several types (ids <tenant>_*) and some stored events.
setup() {
	local t=$1
	q >/dev/null <<-SQL || return 1
	SET meter.tenant_id = '$t';
	SELECT count(*) FROM meter.create_meter('api', 'calls a', filters => '[{"key":"model","values":["a"]}]', id => '${t}_count');
	SELECT count(*) FROM meter.create_meter('api', 'tokens', '{"type":"SUM","field":"v"}', id => '${t}_sum');
	SELECT count(*) FROM meter.create_meter('api', 'users', '{"type":"COUNT_UNIQUE","field":"u"}', id => '${t}_unique');
	SELECT count(*) FROM meter.create_meter('api', 'peak', '{"type":"MAX","field":"v"}', id => '${t}_max');
	INSERT INTO meter.events (id, event_name, customer_id, "timestamp", properties)
	SELECT 'old' || g, 'api', 'c' || (g % 2), '2024-05-01 10:00+00'::timestamptz + g * interval '7 minutes',
		jsonb_build_object('model', (ARRAY['a','b'])[1 + g % 2], 'v', g, 'u', 'u' || (g % 3)) FROM generate_series(1, 10) g;
	INSERT INTO public.app_events (id, event_name, customer_id, "timestamp", properties)
	VALUES ('app0', 'api', 'c0', '2024-05-01 10:00+00', '{"model":"a","v":100,"u":"w"}');
	INSERT INTO public.late_events (id, tenant_id, event_name, customer_id, "timestamp", properties)
	VALUES ('late0', '$t', 'api', 'c0', '2024-05-01 10:00+00', '{"model":"a","v":1000,"u":"z"}');
	SQL
}

# The writer's statements (in one transaction).
WRITES="INSERT INTO meter.events (id, event_name, customer_id, \"timestamp\", properties)
	VALUES ('new1', 'api', 'c0', '2024-05-01 10:02+00', '{\"model\":\"a\",\"v\":10,\"u\":\"u9\"}'),
	       ('new2', 'api', 'c1', '2024-05-01 11:40+00', '{\"model\":\"b\",\"v\":20,\"u\":\"u8\"}');
	UPDATE meter.events SET properties = properties || '{\"v\": 7, \"model\": \"a\"}', \"timestamp\" = \"timestamp\" + interval '1 hour'
	WHERE tenant_id = meter.current_tenant() AND id = 'old3';
	DELETE FROM meter.events WHERE tenant_id = meter.current_tenant() AND id = 'old4';
	INSERT INTO public.app_events (id, event_name, customer_id, \"timestamp\", properties)
	VALUES ('app1', 'api', 'c1', '2024-05-01 10:20+00', '{\"model\":\"a\",\"v\":30,\"u\":\"u7\"}');"

# check_tenant TENANT DESCRIPTION: verify empty, usage = usage_from_events for every meter.
check_tenant() {
	local t=$1 out
	out=$(q <<-SQL
	SET meter.tenant_id = '$t';
	SELECT 'verify: ' || row_to_json(v)::text FROM meter.verify() v LIMIT 4;
	SELECT format('%s: usage %s, usage_from_events %s', m.id, u.value, f.value)
	FROM meter.meters m
	CROSS JOIN LATERAL meter.usage(m.id, '2024-04-30', '2024-05-03') u
	CROSS JOIN LATERAL meter.usage_from_events(m.id, '2024-04-30', '2024-05-03') f
	WHERE m.tenant_id = '$t' AND m.status = 'published' AND u.value IS DISTINCT FROM f.value;
	SQL
	)
	[ -n "$out" ] && echo "$out"
	check "$2: verify() empty and usage = usage_from_events for every meter" "$([ -z "$out" ]; echo $?)"
}

# race TENANT DESCRIPTION CHANGE-SQL: W writes and sleeps; C changes meanwhile.
race() {
	local t=$1 what=$2 change=$3 t0 t1
	setup "$t" || { check "$what: setup" 1; return; }
	q >/dev/null <<-SQL &
	SET meter.tenant_id = '$t';
	BEGIN;
	$WRITES
	SELECT pg_sleep($nap);
	COMMIT;
	SQL
	local w=$!
	sleep 0.4
	t0=$(date +%s.%N)
	out=$(q -c "SET meter.tenant_id = '$t'" -c "$change" 2>&1 >/dev/null)
	local rc=$?
	t1=$(date +%s.%N)
	wait "$w"
	local wrc=$?
	[ -n "$out" ] && echo "$out"
	check "$what: the change and the writer both succeed (change took $(awk "BEGIN { printf \"%.1f\", $t1 - $t0 }") s)" \
		"$([ "$rc" -eq 0 ] && [ "$wrc" -eq 0 ]; echo $?)"
	check_tenant "$t" "$what"
}

race r_update "update_meter during a writer's open transaction" "SELECT meter.update_meter('r_update_count', '[]')"
race r_filters "update_meter to narrower filters during a writer's open transaction" \
	"SELECT meter.update_meter('r_filters_unique', '[{\"key\":\"model\",\"values\":[\"a\"]}]')"
race r_republish "disable and publish again during a writer's open transaction" \
	"SELECT meter.disable_meter('r_republish_sum'); UPDATE meter.meters SET status = 'published' WHERE id = 'r_republish_sum'"
race r_rebuild "meter.rebuild(id) during a writer's open transaction" "SELECT count(*) FROM meter.rebuild('r_rebuild_max')"
race r_rebuild_all "meter.rebuild() during a writer's open transaction" "SELECT count(*) FROM meter.rebuild()"
race r_create "create_meter during a writer's open transaction" \
	"SELECT count(*) FROM meter.create_meter('api', 'all calls', id => 'r_create_new')"
race r_track "meter.track of another table during a writer's open transaction" "SELECT meter.track('public.late_events')"
race r_untrack "meter.untrack of the writer's table during a writer's open transaction" "SELECT meter.untrack('public.late_events')"
race r_compact "control: meter.compact() during a writer's open transaction" "SELECT meter.compact()"

# Control: the change first (its transaction open), the writer waits for it.
setup r_first
q >/dev/null <<SQL &
SET meter.tenant_id = 'r_first';
BEGIN;
SELECT meter.update_meter('r_first_count', '[]');
SELECT pg_sleep($nap);
COMMIT;
SQL
c=$!
sleep 0.4
q -c "SET meter.tenant_id = 'r_first'" -c "BEGIN" -c "$WRITES" -c "COMMIT" >/dev/null
wrc=$?
wait "$c"
check "control: a writer waiting for a change in progress succeeds" "$([ "$wrc" -eq 0 ] && [ $? -eq 0 ]; echo $?)"
check_tenant r_first "control: a writer waiting for a change in progress"

[ "$failures" -eq 0 ] && echo "meter_change_race: pass" || echo "meter_change_race: $failures failure(s)"
[ "$failures" -eq 0 ]
