#!/usr/bin/env bash
# The Citus test (SPEC §9, issue 11): a coordinator and two workers on loopback ports of
# their own, `citus` and `meter` created on every node, the workers added, and a fourth,
# plain server without Citus (`single`) for the same workload on one server; then the
# scenario (test/citus/scenario.py), which runs the workload on both and compares. With
# CITUS_BENCH_N > 0 (make citus-bench: 200,000) the benchmark (test/citus/bench.py)
# follows. Everything is stopped and removed on exit.
#
# Not part of scripts/test.sh nor of CI's count: it needs Citus, which Debian does not
# package. Where Citus is not installed it prints one line saying so and exits 0.
#
#   make citus-check                 run it (as root, like scripts/test.sh)
#   make citus-bench                 the scenario, then the benchmark (CITUS_BENCH_N events)
#   test/citus/run.sh --keep         start the cluster, create the extensions, leave it
#                                    running and print how to connect and stop it
#   test/citus/run.sh --stop DIR     stop a cluster left running by --keep
#
# Environment: CITUS_PORT (the coordinator's port, default 55301; the workers take the
# next two, the single server the one after), METER_PGROOT (a private copy of the server
# installation: scripts/lib.sh), CITUS_BENCH_N (default 0: no benchmark).
set -uo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib.sh

nodes=(coordinator worker1 worker2 single)

stop_all() {
	local dir=$1 n
	for n in "${nodes[@]}"; do cluster_stop "$dir/$n"; done
}

if [ "${1:-}" = --stop ]; then
	[ -n "${2:-}" ] && [ -d "$2" ] || { echo "usage: $0 --stop DIR" >&2; exit 2; }
	stop_all "$2"
	rm -rf "$2"
	exit 0
fi
keep=0
[ "${1:-}" = --keep ] && keep=1

# Citus present? Checked before anything is installed or built.
use_pg_root
sharedir=$("$PGBIN/pg_config" --sharedir 2>/dev/null || echo /usr/share/postgresql/15)
if [ ! -f "$sharedir/extension/citus.control" ]; then
	echo "citus test: not run (Citus is not installed: no citus.control in $sharedir/extension)"
	exit 0
fi

base=${CITUS_PORT:-55301}
ports=("$base" $((base + 1)) $((base + 2)) $((base + 3)))
db=meter_citus
dir=$(mktemp -d /tmp/meter-citus.XXXXXX)
chown postgres:postgres "$dir"
chmod 755 "$dir"
ok=0
if [ "$keep" = 0 ]; then
	trap 'stop_all "$dir"; rm -rf "$dir"' EXIT
else
	trap '[ "$ok" = 1 ] || { stop_all "$dir"; rm -rf "$dir"; }' EXIT
fi

ensure_packages || exit 1
use_pg_root
log "building meter"
build_install || { echo "citus test: build failed"; exit 1; }

# One server per node; listen on 127.0.0.1 (the nodes talk to each other over TCP).
conf="listen_addresses = '127.0.0.1'
shared_preload_libraries = 'citus'
citus.enable_unsafe_triggers = on
max_connections = 100
citus.max_cached_conns_per_worker = 2
log_min_messages = warning
log_error_verbosity = default"
# The single server: the same settings, without Citus.
single_conf="listen_addresses = '127.0.0.1'
max_connections = 100
log_min_messages = warning
log_error_verbosity = default"
for i in 0 1 2 3; do
	n=${nodes[$i]}
	log "starting $n on 127.0.0.1:${ports[$i]}"
	c=$conf
	[ "$n" = single ] && c=$single_conf
	cluster_start "$dir/$n" "${ports[$i]}" "$c" || { cat "$dir/$n/server.log" >&2; exit 1; }
done
# initdb -A trust already trusts 127.0.0.1; say it explicitly, first.
for n in "${nodes[@]}"; do
	sed -i '1i host all all 127.0.0.1/32 trust' "$dir/$n/data/pg_hba.conf"
	as_pg pg_ctl -D "$dir/$n/data" reload >/dev/null
done

export PGHOST=127.0.0.1 PGUSER=postgres PGDATABASE=$db
q() { psql -X -q -v ON_ERROR_STOP=1 -p "$1" -d "$2" -c "$3"; }
for i in 0 1 2; do
	q "${ports[$i]}" postgres "CREATE DATABASE $db" >/dev/null || exit 1
	q "${ports[$i]}" "$db" "CREATE EXTENSION citus; CREATE EXTENSION meter" >/dev/null || exit 1
done
q "${ports[3]}" postgres "CREATE DATABASE $db" >/dev/null || exit 1
q "${ports[3]}" "$db" "CREATE EXTENSION meter" >/dev/null || exit 1
q "${ports[0]}" "$db" "SELECT citus_set_coordinator_host('127.0.0.1', ${ports[0]});
	SELECT citus_add_node('127.0.0.1', ${ports[1]});
	SELECT citus_add_node('127.0.0.1', ${ports[2]});" >/dev/null || exit 1
log "citus $(psql -X -Atq -p "${ports[0]}" -c "SELECT extversion FROM pg_extension WHERE extname = 'citus'")," \
	"meter $(psql -X -Atq -p "${ports[0]}" -c "SELECT extversion FROM pg_extension WHERE extname = 'meter'")"

if [ "$keep" = 1 ]; then
	ok=1
	cat <<-EOF
	Citus cluster running in $dir (database $db):
	  coordinator  psql -h 127.0.0.1 -p ${ports[0]} -U postgres $db
	  worker1      psql -h 127.0.0.1 -p ${ports[1]} -U postgres $db
	  worker2      psql -h 127.0.0.1 -p ${ports[2]} -U postgres $db
	  single       psql -h 127.0.0.1 -p ${ports[3]} -U postgres $db   (no Citus)
	stop it with: $0 --stop $dir
	EOF
	exit 0
fi

export CITUS_PORTS="${ports[*]:0:3}" SINGLE_PORT=${ports[3]} CITUS_DIR=$dir
/usr/bin/python3 test/citus/scenario.py
rc=$?
if [ "$rc" -eq 0 ] && [ "${CITUS_BENCH_N:-0}" -gt 0 ]; then
	/usr/bin/python3 test/citus/bench.py || rc=$?
fi
if [ "$rc" -ne 0 ]; then
	for n in "${nodes[@]}"; do
		echo "== $n server log: errors (last 20)"
		grep -E 'ERROR|FATAL|PANIC|terminated by signal' "$dir/$n/server.log" | tail -20
	done
fi
exit $rc
