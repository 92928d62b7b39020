#!/usr/bin/env bash
# The test command: installs what is missing, builds with -Werror, starts a throwaway
# cluster, runs pg_regress (test/sql/ → test/expected/), pgTAP (test/tap/*.sql) and the end-to-end
# scripts (test/e2e/*), stops the cluster and prints `N passed, N failed` last.
# Options via environment: TEST_PORT (default 54915), TEST_SCALE (property/stress sizes),
# METER_VALGRIND=1 (server under valgrind: make valgrind), EXTRA_CFLAGS (make ubsan),
# TEST_E2E and TEST_TAP (globs of the end-to-end scripts and pgTAP files to run, default
# *; e.g. TEST_E2E='client*' TEST_TAP='4*' to keep a valgrind run short).
set -uo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

port=${TEST_PORT:-54915}
dir=$(mktemp -d /tmp/meter-test.XXXXXX)
trap 'cluster_stop "$dir"; rm -rf "$dir"' EXIT

ensure_packages || { echo "0 passed, 1 failed"; exit 1; }
use_pg_root
log "building"
if ! build_install; then echo "0 passed, 1 failed"; exit 1; fi
cluster_start "$dir" "$port" "${TEST_PG_CONF:-}" || { echo "0 passed, 1 failed"; exit 1; }
export METER_TEST_DIR=$dir

passed=0 failed=0

# 1. pg_regress: exact outputs of type I/O and error messages.
log "pg_regress"
out=$(make -s with_llvm=no PG_CONFIG="$PGBIN/pg_config" installcheck 2>&1)
echo "$out" | grep -E '^(test | +[a-z_0-9]+ +\.\.\.|ok |not ok )' || echo "$out" | tail -20
if m=$(echo "$out" | grep -oE 'All [0-9]+ tests passed'); then
	passed=$((passed + $(echo "$m" | grep -oE '[0-9]+')))
elif m=$(echo "$out" | grep -oE '[0-9]+ of [0-9]+ tests failed'); then
	k=$(echo "$m" | awk '{print $1}'); n=$(echo "$m" | awk '{print $3}')
	failed=$((failed + k)); passed=$((passed + n - k))
	[ -f regression.diffs ] && cat regression.diffs
else
	echo "$out" | tail -30; failed=$((failed + 1))
fi

# 2. pgTAP: behaviour. Each file runs in its own transaction and rolls back.
log "pgTAP"
psql -X -q -d postgres -c 'CREATE DATABASE meter_test' >/dev/null
psql -X -q -d meter_test -c 'CREATE EXTENSION meter; CREATE EXTENSION pgtap' >/dev/null
if ls test/tap/${TEST_TAP:-*}.sql >/dev/null 2>&1; then
	tap=$(pg_prove --psql-bin "$PGBIN/psql" -d meter_test test/tap/${TEST_TAP:-*}.sql 2>&1)
	echo "$tap"
	n=$(echo "$tap" | sed -n 's/^Files=[0-9]*, Tests=\([0-9]*\),.*/\1/p')
	n=${n:-0}
	k=$(echo "$tap" | grep -oE 'Failed [0-9]+/[0-9]+ subtests' | awk -F'[ /]' '{s+=$2} END {print s+0}')
	if grep -q '^Result: PASS' <<<"$tap"; then
		passed=$((passed + n))
	else
		[ "$k" -eq 0 ] && k=1
		failed=$((failed + k)); [ "$n" -gt "$k" ] && passed=$((passed + n - k))
	fi
fi

# 3. End-to-end scripts: real clients, concurrency, crash. Each counts as one test.
for t in test/e2e/${TEST_E2E:-*}; do
	[ -x "$t" ] || continue
	log "e2e $t"
	if "$t" >"$dir/e2e.log" 2>&1; then
		echo "ok - $t"; passed=$((passed + 1))
	else
		echo "not ok - $t"; cat "$dir/e2e.log"; failed=$((failed + 1))
	fi
done

# 4. Crashes, memory and undefined behaviour: UndefinedBehaviorSanitizer reports (make ubsan builds
# with it) in the server log, valgrind's logs (METER_VALGRIND=1, make valgrind).
# A backend that died (a crash restarts every session) fails the run, whatever passed.
if grep -qE 'terminated by signal|PANIC:' "$dir/server.log" 2>/dev/null; then
	echo "not ok - a server process crashed (server log)"
	grep -B2 -A4 -E 'terminated by signal|PANIC:' "$dir/server.log" | head -40
	failed=$((failed + 1))
else
	echo "ok - no server process crashed (server log)"; passed=$((passed + 1))
fi
if grep -q 'runtime error:' "$dir/server.log" 2>/dev/null; then
	echo "not ok - undefined behaviour (server log)"; grep -B2 -A8 'runtime error:' "$dir/server.log" | head -80
	failed=$((failed + 1))
fi
if [ "${METER_VALGRIND:-0}" = 1 ]; then
	cluster_stop "$dir"
	if valgrind_check "$dir"; then
		echo "ok - valgrind: no errors"; passed=$((passed + 1))
	else
		echo "not ok - valgrind"; failed=$((failed + 1))
	fi
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
