#!/usr/bin/env bash
# End-to-end stress (SPEC §9 concurrency: "many sessions ingesting at once never deadlock,
# never lose an increment").
#
# STRESS_CLIENTS (default 8) client sessions, as a non-superuser role under row-level
# security, for STRESS_SECONDS (default 20), on two tenants (acme, globex/prod), all on the
# same 3 customers and the same 20 minutes (2 fifteen-minute slots), so writers touch the
# same slots all the time. Each transaction is one of: a batch of new events (meter.ingest
# if installed, INSERT … ON CONFLICT DO NOTHING, or plain INSERT) into meter.events or a tracked
# user table public.app_events; a re-send of already acknowledged ids with one new id;
# ids shared by every client (the same id sent by several sessions at the same moment);
# updates of own events (timestamp, customer, properties); deletes of own events.
# Meanwhile another session changes the filters of two meters (meter.update_meter) and
# disables and re-publishes a third, in a loop, for the first 3/4 of the run.
# Meters per tenant: COUNT, SUM, COUNT_UNIQUE, MAX by HOUR, LATEST, MIN (api_call), AVG (other).
#
# Pass when: no error but 23505 from plain INSERTs of re-sent ids (the client is told, and
# the whole batch is not acknowledged), no "deadlock detected" in the server log,
# meter.verify() empty for each tenant, the event tables hold exactly what was
# acknowledged (content included; deleted ids absent; nothing that was refused), and
# COUNT and SUM usage per customer equal the figures computed by the driver from its own
# record of acknowledged events.
#
# Knobs: STRESS_CLIENTS, STRESS_SECONDS, STRESS_BATCH (events per insert, max), STRESS_SEED,
# STRESS_MIX (weights of insert,resend,shared,update,delete; default 50,12,8,18,12),
# STRESS_CHURN=0 (no meter changes), STRESS_SABOTAGE=1 (self-test: change two events
# behind the triggers' back after the run; the checks must then fail),
# STRESS_COMPACTION_THRESHOLD (meter.compaction_threshold of the clients; default 200, so
# that writers compact while others write).
# Uses PGHOST/PGPORT/PGUSER and its own database. Exit 0 = pass.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
clients=${STRESS_CLIENTS:-8}
seconds=${STRESS_SECONDS:-20}
batch=${STRESS_BATCH:-20}
seed=${STRESS_SEED:-$RANDOM}
mix=${STRESS_MIX:-50,12,8,18,12}   # weights of insert,resend,shared,update,delete
churn=${STRESS_CHURN:-1}     # 0: no meter changes (plain ingestion throughput)
db=meter_e2e_stress_$$
role=meter_stress_$$
work=$(mktemp -d /tmp/meter-stress.XXXXXX)
log="${METER_TEST_DIR:-${PGHOST:-/nonexistent}}/server.log"
failures=0

cleanup() {
	psql -X -q -d postgres -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1
	psql -X -q -d postgres -c "DROP ROLE IF EXISTS \"$role\"" >/dev/null 2>&1
	rm -rf "$work"
}
trap cleanup EXIT
check() { if [ "$2" -eq 0 ]; then echo "ok    $1"; else echo "FAIL  $1"; failures=$((failures + 1)); fi; }
q() { psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" -c "$1"; }

log_start=0
[ -r "$log" ] && log_start=$(stat -c %s "$log")

psql -X -q -d postgres -c "CREATE DATABASE \"$db\"" >/dev/null || exit 1
psql -X -q -v ON_ERROR_STOP=1 -d "$db" >/dev/null <<SQL || exit 1
CREATE EXTENSION meter;
CREATE ROLE "$role" LOGIN;
GRANT USAGE ON SCHEMA meter TO "$role";
GRANT SELECT, INSERT, UPDATE, DELETE ON meter.events TO "$role";
CREATE TABLE public.app_events (LIKE meter.events INCLUDING ALL);
GRANT SELECT, INSERT, UPDATE, DELETE ON public.app_events TO "$role";
SELECT meter.track('public.app_events');
CREATE FUNCTION pg_temp.meters(p text) RETURNS void LANGUAGE sql AS \$\$
	SELECT meter.create_meter('api_call', 'calls', id => p || '_count');
	SELECT meter.create_meter('api_call', 'tokens', '{"type":"SUM","field":"tokens"}', id => p || '_sum');
	SELECT meter.create_meter('api_call', 'users', '{"type":"COUNT_UNIQUE","field":"user"}',
		'[{"key":"model","values":["a","b"]}]', id => p || '_unique');
	SELECT meter.create_meter('api_call', 'peak', '{"type":"MAX","field":"tokens","bucket_size":"HOUR"}', id => p || '_max');
	SELECT meter.create_meter('api_call', 'last', '{"type":"LATEST","field":"tokens"}',
		'[{"key":"model","values":["a"]}]', id => p || '_latest');
	SELECT meter.create_meter('api_call', 'min c', '{"type":"MIN","field":"tokens"}',
		'[{"key":"model","values":["c"]}]', id => p || '_min');
	SELECT meter.create_meter('other', 'other', '{"type":"AVG","field":"tokens"}', id => p || '_avg');
\$\$;
SET meter.tenant_id = 'acme';
SELECT pg_temp.meters('a');
SET meter.tenant_id = 'globex';
SET meter.environment_id = 'prod';
SELECT pg_temp.meters('g');
SQL
echo "meters per tenant (ids a_* for acme, g_* for globex): COUNT, SUM, COUNT_UNIQUE (filters churned), MAX by HOUR (disabled/re-published), LATEST (filters churned), MIN, AVG"
echo "parameters: STRESS_CLIENTS=$clients STRESS_SECONDS=$seconds STRESS_BATCH=$batch STRESS_SEED=$seed STRESS_CHURN=$churn STRESS_MIX=$mix"

PGOPTIONS="-c meter.compaction_threshold=${STRESS_COMPACTION_THRESHOLD:-200}" \
	/usr/bin/python3 "$here/load_driver.py" run "$work/model.json" --db "$db" --role "$role" \
	--clients "$clients" --seconds "$seconds" --batch "$batch" --seed "$seed" --mix "$mix" \
	--tenants 'acme:,globex:prod' $([ "$churn" = 1 ] && echo --churn)
check "clients: no unexpected error (23505 on plain INSERT of a re-sent id is expected)" $?

if [ "${STRESS_SABOTAGE:-0}" = 1 ]; then
	# Self-test of the checks: change the events behind the triggers' back (replica role:
	# no trigger fires): lose one acme event, and change the tokens of one globex event.
	# The verify and event/usage checks below must then fail.
	q "SET session_replication_role = replica;
	   DELETE FROM meter.events WHERE id = (SELECT min(id) FROM meter.events WHERE tenant_id = 'acme' AND event_name = 'api_call');
	   UPDATE meter.events SET properties = properties || '{\"tokens\": 123456}'
	   WHERE id = (SELECT min(id) FROM meter.events WHERE tenant_id = 'globex' AND event_name = 'api_call')"
	echo "sabotaged: one acme event deleted and one globex event's tokens changed without their triggers"
fi

deadlocks=0
if [ -r "$log" ]; then
	deadlocks=$(tail -c +"$((log_start + 1))" "$log" | grep -c "deadlock detected")
	tail -c +"$((log_start + 1))" "$log" | grep -B2 -A8 "deadlock detected" | head -40
else
	echo "note: server log $log not readable, deadlocks only seen as client errors"
fi
check "no deadlock in the server log" "$deadlocks"

for scope in acme: globex:prod; do
	t=${scope%%:*} e=${scope#*:}
	out=$(q "SET meter.tenant_id = '$t'; SET meter.environment_id = '$e'; SELECT * FROM meter.verify() LIMIT 20")
	[ -n "$out" ] && echo "$out"
	check "meter.verify() empty for tenant '$t' environment '$e'" "$([ -z "$out" ]; echo $?)"
done

/usr/bin/python3 "$here/load_driver.py" check "$work/model.json" --db "$db" --usage
check "event tables hold exactly the acknowledged events; COUNT and SUM usage equal the driver's figures" $?

q "SELECT 'stored: ' || (SELECT count(*) FROM meter.events) || ' in meter.events, '
	|| (SELECT count(*) FROM public.app_events) || ' in public.app_events, '
	|| (SELECT count(*) FROM meter.rollups) || ' compacted rows, '
	|| (SELECT count(*) FROM meter.pending) || ' pending rows'"

[ "$failures" -eq 0 ] && echo "stress: pass" || echo "stress: $failures failure(s)"
[ "$failures" -eq 0 ]
