#!/usr/bin/env bash
# End-to-end: meter.verify() right after a bulk load, before any ANALYZE (SPEC §8 verify;
# a check users run after an import). Its recomputation must not depend on table
# statistics to stay linear: with 40,000 events of one customer set and slot range, it
# takes about 1.5 s once the table is analyzed; unanalyzed (autovacuum off on the tables,
# as right after a load), a plan built for an empty table must not turn it into minutes.
# The bound is generous (VERIFY_TIMEOUT, default 30 s: 20 times the analyzed figure); the
# test checks complexity, not speed, and is skipped under valgrind.
# Uses PGHOST/PGPORT/PGUSER and its own database. Exit 0 = pass.
set -uo pipefail
[ "${METER_VALGRIND:-0}" = 1 ] && { echo "skip  under valgrind"; exit 0; }
db=meter_e2e_bulkverify_$$
timeout=${VERIFY_TIMEOUT:-30s}
failures=0
cleanup() { psql -X -q -d postgres -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1; }
trap cleanup EXIT
check() { if [ "$2" -eq 0 ]; then echo "ok    $1"; else echo "FAIL  $1"; failures=$((failures + 1)); fi; }
q() { PGOPTIONS="-c meter.tenant_id=bulk" psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" "$@"; }

psql -X -q -d postgres -c "CREATE DATABASE \"$db\"" >/dev/null || exit 1
q >/dev/null <<'SQL' || exit 1
CREATE EXTENSION meter;
ALTER TABLE meter.events SET (autovacuum_enabled = off);
ALTER TABLE meter.pending SET (autovacuum_enabled = off);
ALTER TABLE meter.rollups SET (autovacuum_enabled = off);
SELECT meter.create_meter('bulk', 'unique', '{"type":"COUNT_UNIQUE","field":"u"}', id => 'bulk_unique');
SELECT meter.create_meter('bulk', 'max per hour', '{"type":"MAX","field":"v","bucket_size":"HOUR"}', id => 'bulk_maxh');
SELECT meter.create_meter('bulk', 'sum', '{"type":"SUM","field":"v"}', id => 'bulk_sum');
INSERT INTO meter.events (id, event_name, customer_id, "timestamp", properties)
SELECT 'b' || g, 'bulk', 'c' || (g % 200), '2024-06-01 00:00+00'::timestamptz + (g::bigint * 7919 % 259200) * interval '1 second',
	jsonb_build_object('v', g % 1009, 'u', 'u' || g) FROM generate_series(1, 40000) g;
SQL

# verify_all WHEN: each meter's verify() within the bound, and empty.
verify_all() {
	local m t0 out rc
	for m in bulk_unique bulk_maxh bulk_sum; do
		t0=$(date +%s.%N)
		out=$(q -c "SET statement_timeout = '$timeout'" -c "SELECT count(*) FROM meter.verify('$m')" 2>&1)
		rc=$?
		echo "verify('$m') $1: $(awk "BEGIN { printf \"%.1f\", $(date +%s.%N) - $t0 }") s: $(echo "$out" | head -1)"
		check "verify('$m') $1 finishes within $timeout, empty" "$([ "$rc" -eq 0 ] && [ "$out" = 0 ]; echo $?)"
	done
}
verify_all "right after the load"
q -c "ANALYZE meter.events" >/dev/null
verify_all "after ANALYZE"

[ "$failures" -eq 0 ] && echo "verify_after_bulk: pass" || echo "verify_after_bulk: $failures failure(s)"
[ "$failures" -eq 0 ]
