#!/usr/bin/env bash
# The bench command (`make bench`, SPEC §9): installs what is missing, builds, starts a
# throwaway cluster tuned for bulk work, runs bench/bench.py and prints every figure as
# `name: ratio (target …) ok|MISS|info  [absolute times]`. It measures, it does not gate:
# it exits 0 when a target is missed (non-zero only when the benchmark itself fails or
# two contenders of a figure disagree: a wrong answer never prints as a speed figure).
#
# Options via environment (bench/README.md has them all):
#   BENCH_N (default 200000), BENCH_REPS (3), BENCH_MEMORY_N (BENCH_N),
#   BENCH_SCALING=1 (also measure meter.usage at BENCH_SCALING_N, default 5 x BENCH_N),
#   BENCH_SIDE_N (N/10), BENCH_CONC_SECONDS (20), BENCH_CONC_WRITERS (8),
#   BENCH_PORT (default 54917), METER_PGROOT (install into a private copy of the server
#   installation, so that several checkouts can build and bench side by side),
#   BENCH_EXISTING=1: use the running cluster that PGHOST/PGPORT/PGUSER point at (the
#   extension must be installed there) instead of building and starting one.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

if [ "${BENCH_EXISTING:-}" != 1 ]; then
	ensure_packages
	use_pg_root
	log "building"
	build_install
	port=${BENCH_PORT:-54917}
	dir=$(mktemp -d /tmp/meter-bench.XXXXXX)
	trap 'cluster_stop "$dir"; rm -rf "$dir"' EXIT
	# fsync off etc. (from cluster_start): the figures measure CPU work, not the disk.
	# No autovacuum: the benchmark runs VACUUM ANALYZE itself, so runs repeat exactly.
	# No JIT: the figures compare the extension's C code with plain SQL, both interpreted.
	cluster_start "$dir" "$port" "shared_buffers = 512MB
max_wal_size = 4GB
checkpoint_timeout = 30min
maintenance_work_mem = 256MB
autovacuum = off
jit = off
max_worker_processes = 8
max_parallel_workers = 4"
	log "cluster on port $port (fsync off, synchronous_commit off, shared_buffers 512MB, jit off, autovacuum off)"
fi

/usr/bin/python3 bench/bench.py
