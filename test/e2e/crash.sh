#!/usr/bin/env bash
# End-to-end crash test (SPEC §9: "after kill -9 of the server mid-ingest and restart,
# meter.verify() is empty").
#
# Runs a throwaway cluster of its own (fsync, synchronous_commit and full_page_writes ON,
# unlike the test cluster), with the meters of two tenants. CRASH_CYCLES times (default 2):
# CRASH_CLIENTS sessions (default 6, non-superuser) ingest, re-send, update and delete
# events in a meter.events and a tracked user table (test/e2e/load_driver.py; the clients
# compact past meter.compaction_threshold = CRASH_COMPACTION_THRESHOLD, default 100) while
# another session changes and re-publishes meters (each change recomputes stored usage)
# and a third loops meter.compact() in both scopes (so compactions are in progress when
# the server dies); after CRASH_AFTER seconds (default 3) the postmaster and all its
# children get SIGKILL at once;
# the server restarts (crash recovery), and then:
# - the server log shows crash recovery ran (it really was a crash), and the compactor
#   had folded pending rows before it (compaction was running) without any error;
# - meter.verify() is empty for every tenant;
# - every acknowledged event is there with its acknowledged content, every acknowledged
#   delete is gone, and nothing that was never sent or was refused appears; an operation
#   whose COMMIT had not returned may be either before or after;
# - ingestion works again (the next cycle, and a final insert checked by verify).
# Meter changes happen in tenant acme only (CRASH_CHURN=0: none); globex sees compaction,
# ingestion and the crash alone.
# CRASH_CONF adds postgresql.conf lines (self-test: CRASH_CONF='synchronous_commit = off'
# loses acknowledged commits, and the acknowledged-events check must then fail).
# Uses PGHOST/PGPORT only to pick a neighbouring port (CRASH_PORT overrides). Exit 0 = pass.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# The server binaries of the test run (PATH), not the system's, then the project's helpers.
PGBIN=$(dirname "$(command -v pg_ctl)")
. "$here/../../scripts/lib.sh"
# Its own cluster is killed with -9 on purpose: never under valgrind (make valgrind), whose
# slow start would race the kill and whose reports a kill -9 would cut short.
unset METER_VALGRIND

clients=${CRASH_CLIENTS:-6}
after=${CRASH_AFTER:-3}
cycles=${CRASH_CYCLES:-2}
seed=${CRASH_SEED:-$RANDOM}
port=${CRASH_PORT:-$(( ${PGPORT:-54915} + 1 ))}
dir=$(mktemp -d /tmp/meter-crash.XXXXXX)
role=meter_crash
failures=0

cleanup() {
	cluster_stop "$dir"
	# a cluster left running after a failed restart: stop it by its own pid file only
	if [ -f "$dir/data/postmaster.pid" ]; then
		pm=$(head -1 "$dir/data/postmaster.pid")
		kill -9 "$pm" $(ps -o pid= --ppid "$pm" 2>/dev/null) 2>/dev/null
	fi
	rm -rf "$dir"
}
trap cleanup EXIT
check() { if [ "$2" -eq 0 ]; then echo "ok    $1"; else echo "FAIL  $1"; failures=$((failures + 1)); fi; }
q() { psql -X -q -At -v ON_ERROR_STOP=1 -d meter_crash -c "$1"; }

cluster_start "$dir" "$port" "fsync = on
synchronous_commit = on
full_page_writes = on
${CRASH_CONF:-}" || { echo "could not start the crash cluster"; exit 1; }
echo "crash cluster: $dir port $port, fsync/synchronous_commit/full_page_writes on"
echo "parameters: CRASH_CLIENTS=$clients CRASH_AFTER=$after CRASH_CYCLES=$cycles CRASH_SEED=$seed"

createdb meter_crash || exit 1
psql -X -q -v ON_ERROR_STOP=1 -d meter_crash >/dev/null <<SQL || exit 1
CREATE EXTENSION meter;
CREATE ROLE $role LOGIN;
GRANT USAGE ON SCHEMA meter TO $role;
GRANT SELECT, INSERT, UPDATE, DELETE ON meter.events TO $role;
CREATE TABLE public.app_events (LIKE meter.events INCLUDING ALL);
GRANT SELECT, INSERT, UPDATE, DELETE ON public.app_events TO $role;
SELECT meter.track('public.app_events');
CREATE FUNCTION pg_temp.meters(p text) RETURNS void LANGUAGE sql AS \$\$
	SELECT meter.create_meter('api_call', 'calls', id => p || '_count');
	SELECT meter.create_meter('api_call', 'tokens', '{"type":"SUM","field":"tokens"}', id => p || '_sum');
	SELECT meter.create_meter('api_call', 'users', '{"type":"COUNT_UNIQUE","field":"user"}',
		'[{"key":"model","values":["a","b"]}]', id => p || '_unique');
	SELECT meter.create_meter('api_call', 'peak', '{"type":"MAX","field":"tokens","bucket_size":"HOUR"}', id => p || '_max');
	SELECT meter.create_meter('api_call', 'last', '{"type":"LATEST","field":"tokens"}',
		'[{"key":"model","values":["a"]}]', id => p || '_latest');
\$\$;
SET meter.tenant_id = 'acme';
SELECT pg_temp.meters('a');
SET meter.tenant_id = 'globex';
SET meter.environment_id = 'prod';
SELECT pg_temp.meters('g');
SQL

verify_all() {
	local scope t e out
	for scope in acme: globex:prod; do
		t=${scope%%:*} e=${scope#*:}
		out=$(q "SET meter.tenant_id = '$t'; SET meter.environment_id = '$e'; SELECT * FROM meter.verify() LIMIT 20")
		[ -n "$out" ] && echo "$out"
		check "$1: meter.verify() empty for tenant '$t' environment '$e'" "$([ -z "$out" ]; echo $?)"
	done
}

models=()
for cycle in $(seq 1 "$cycles"); do
	model=$dir/model$cycle.json
	models+=("$model")
	# A compactor: one session looping meter.compact() in both scopes until the kill.
	( while :; do
		printf '%s\n' "SET meter.tenant_id = 'acme'; SET meter.environment_id = ''; SELECT 'folded ' || meter.compact();" \
			"SET meter.tenant_id = 'globex'; SET meter.environment_id = 'prod'; SELECT 'folded ' || meter.compact();"
	done ) | psql -X -q -At -d meter_crash >"$dir/compactor$cycle.log" 2>&1 &
	PGOPTIONS="-c meter.compaction_threshold=${CRASH_COMPACTION_THRESHOLD:-100}" \
	/usr/bin/python3 "$here/load_driver.py" run "$model" --db meter_crash --role "$role" \
		--clients "$clients" --seconds $((after + 30)) --seed "$((seed + cycle))" \
		--tenants 'acme:,globex:prod' $([ "${CRASH_CHURN:-1}" = 1 ] && echo --churn) --churn-pause 1 --expect-crash &
	driver=$!
	sleep "$after"
	pm=$(head -1 "$dir/data/postmaster.pid")
	kids=$(ps -o pid= --ppid "$pm")
	echo "cycle $cycle: kill -9 of postmaster $pm and its $(echo $kids | wc -w) children"
	kill -9 "$pm" $kids
	wait "$driver"
	check "cycle $cycle: the driver saw no unexpected error before the crash" $?
	calls=$(grep -c '^folded ' "$dir/compactor$cycle.log")
	folded=$(grep '^folded ' "$dir/compactor$cycle.log" | awk '{ s += $2 } END { print s + 0 }')
	echo "cycle $cycle: the compactor ran meter.compact() $calls times and folded $folded pending rows before the kill"
	[ "$folded" -gt 0 ]
	check "cycle $cycle: the compactor folded pending rows while the clients wrote, up to the kill" $?
	grep -v '^folded \|server closed the connection\|connection to server was lost\|terminated abnormally\|before or while processing\|^$' \
		"$dir/compactor$cycle.log" | head -5 >"$dir/compactor$cycle.err"
	cat "$dir/compactor$cycle.err"
	[ ! -s "$dir/compactor$cycle.err" ]
	check "cycle $cycle: the compactor saw no error before the crash" $?
	# the killed processes are gone once their pids are; then start again
	for _ in $(seq 1 50); do
		alive=0
		for p in $pm $kids; do kill -0 "$p" 2>/dev/null && alive=1; done
		[ "$alive" = 0 ] && break
		sleep 0.1
	done
	log_start=$(stat -c %s "$dir/server.log")
	as_pg pg_ctl -D "$dir/data" -l "$dir/server.log" -w start >/dev/null
	check "cycle $cycle: the server restarts" $?
	grep -q "automatic recovery in progress" <<<"$(tail -c +"$((log_start + 1))" "$dir/server.log")"
	check "cycle $cycle: the restart ran crash recovery" $?
	verify_all "cycle $cycle"
	/usr/bin/python3 "$here/load_driver.py" check "${models[@]}" --db meter_crash
	check "cycle $cycle: every acknowledged insert, update and delete survived; nothing else" $?
done

# Ingestion after recovery still tracks.
q "SET meter.tenant_id = 'acme';
   INSERT INTO meter.events (id, event_name, customer_id, \"timestamp\", properties)
   VALUES ('after_crash_1', 'api_call', 'c1', '2024-05-01 10:05:00+00', '{\"tokens\": 7, \"model\": \"a\", \"user\": \"u9\"}')" \
	&& n=$(q "SET meter.tenant_id = 'acme'; SELECT count(*) FROM meter.verify()") && [ "$n" = 0 ]
check "ingestion after recovery: an insert is tracked, verify() still empty" $?
q "SET meter.tenant_id = 'acme'; SELECT 'after the crashes: ' || string_agg(id || ' ' || status, ', ' ORDER BY id) FROM meter.meters"
q "SELECT 'stored: ' || (SELECT count(*) FROM meter.events) || ' in meter.events, '
	|| (SELECT count(*) FROM public.app_events) || ' in public.app_events, '
	|| (SELECT count(*) FROM meter.rollups) || ' compacted rows, ' || (SELECT count(*) FROM meter.pending) || ' pending rows'"

[ "$failures" -eq 0 ] && echo "crash: pass" || echo "crash: $failures failure(s)"
[ "$failures" -eq 0 ]
