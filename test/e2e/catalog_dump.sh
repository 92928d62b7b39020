#!/usr/bin/env bash
# SPEC §4: meter.meters is dumped by pg_dump and restores through its trigger unchanged
# (ids, scope, timestamps, users, statuses, canonical aggregation and filters).
set -euo pipefail
src=meter_dump_src_$$ dst=meter_dump_dst_$$
trap 'dropdb --if-exists "$src" 2>/dev/null; dropdb --if-exists "$dst" 2>/dev/null' EXIT
createdb "$src"
createdb "$dst"
psql -X -q -v ON_ERROR_STOP=1 -d "$src" <<'SQL'
CREATE EXTENSION meter;
SET meter.tenant_id = 'acme';
SET meter.user_id = 'alice';
SELECT meter.create_meter('api_call', 'API calls', id => 'm1');
SELECT meter.create_meter('llm', 'Tokens', '{"type":"SUM","field":"tokens","bucket_size":"HOUR"}',
	'[{"key":"model","values":["gpt-4o","o1-mini"]}]', 'NEVER', 'm2');
SELECT meter.create_meter('{"id":"m3","event_name":"api_call","name":"Old","created_at":"2024-01-01T00:00:00Z","created_by":"bob"}'::jsonb);
SELECT meter.disable_meter('m3');
SET meter.environment_id = 'prod';
SET meter.tenant_id = 'globex';
SELECT meter.create_meter('api_call', 'Prod calls', id => 'm4');
UPDATE meter.meters SET status = 'deleted' WHERE id = 'm4';
SQL
pg_dump -Fc -d "$src" -f "/tmp/$src.dump"
pg_restore --exit-on-error -d "$dst" "/tmp/$src.dump"
rm -f "/tmp/$src.dump"
q="SELECT string_agg(format('%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s', id, tenant_id, environment_id,
	event_name, name, aggregation, filters, reset_usage, status, created_at, updated_at, created_by, updated_by),
	E'\n' ORDER BY id) FROM meter.meters"
a=$(psql -X -At -d "$src" -c "$q")
b=$(psql -X -At -d "$dst" -c "$q")
echo "$a"
[ "$(echo "$a" | wc -l)" -eq 4 ] || { echo "expected 4 meters in the source"; exit 1; }
if [ "$a" != "$b" ]; then
	echo "restored catalog differs:"; diff <(echo "$a") <(echo "$b"); exit 1
fi
# The restored table still has its trigger and policy.
psql -X -At -v ON_ERROR_STOP=1 -d "$dst" -c "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'meter.meters'::regclass AND tgname = 'meters_validate'" | grep -qx 1
psql -X -At -v ON_ERROR_STOP=1 -d "$dst" -c "SET meter.tenant_id = 'acme'; SELECT (meter.get_meter('m2')).name" | grep -qx Tokens
echo "dump and restore: identical"
