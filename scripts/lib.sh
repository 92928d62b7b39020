# Shared shell functions for the test, demo and bench commands. Sourced, not run.
# Everything here works as root on a fresh Debian 12 machine with the PostgreSQL 15
# server installed: it installs what is missing and runs the server as `postgres`.

PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
export PATH="$PGBIN:$PATH"

# METER_PGROOT=/some/dir: work on a private copy of the server installation there, so
# that several checkouts (helpers' worktrees) can build, install and test side by side
# without overwriting each other's installed extension. Call after ensure_packages.
use_pg_root() {
	[ -n "${METER_PGROOT:-}" ] || return 0
	local r=$METER_PGROOT
	if [ ! -x "$r/usr/lib/postgresql/15/bin/postgres" ]; then
		mkdir -p "$r/usr/lib/postgresql" "$r/usr/share/postgresql" "$r/usr/include"
		cp -a /usr/lib/postgresql/15 "$r/usr/lib/postgresql/"
		cp -a /usr/share/postgresql/15 "$r/usr/share/postgresql/"
		ln -sfn /usr/include/postgresql "$r/usr/include/postgresql"
		chmod 755 "$r"
	fi
	# A copy made before pg_partman was installed gets its files (never overwriting).
	cp -n /usr/share/postgresql/15/extension/pg_partman* "$r/usr/share/postgresql/15/extension/" 2>/dev/null
	cp -n /usr/lib/postgresql/15/lib/pg_partman* "$r/usr/lib/postgresql/15/lib/" 2>/dev/null
	PGBIN=$r/usr/lib/postgresql/15/bin
	export PATH="$PGBIN:$PATH"
}

log() { printf '== %s\n' "$*" >&2; }

# Install the headers pinned to the server's exact version, pgTAP, pg_partman and the
# client libraries.
ensure_packages() {
	local want=() v
	v=$(dpkg-query -W -f='${Version}' postgresql-15 2>/dev/null || true)
	[ -n "$v" ] || { echo "postgresql-15 is not installed" >&2; return 1; }
	[ -x "$PGBIN/pg_config" ] && [ -f /usr/include/postgresql/15/server/postgres.h ] \
		|| want+=("postgresql-server-dev-15=$v")
	dpkg-query -W -f='${Status}' postgresql-15-pgtap 2>/dev/null | grep -q 'ok installed' \
		|| want+=(postgresql-15-pgtap)
	# pg_partman: the partitioned meter.events is tested under its maintenance
	dpkg-query -W -f='${Status}' postgresql-15-partman 2>/dev/null | grep -q 'ok installed' \
		|| want+=(postgresql-15-partman)
	command -v pg_prove >/dev/null || want+=(libtap-parser-sourcehandler-pgtap-perl)
	/usr/bin/python3 -c 'import psycopg2' 2>/dev/null || want+=(python3-psycopg2)
	[ ${#want[@]} -eq 0 ] && return 0
	log "installing ${want[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >/dev/null
	if ! apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null; then
		# The pinned headers may be gone from the mirror: fall back to the current ones.
		want=("${want[@]/%=$v/}")
		apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null
	fi
}

# Build with every warning an error, and install into the server's directories.
build_install() {
	local flags="-Werror -Wextra -Wno-unused-parameter -Wno-missing-field-initializers ${EXTRA_CFLAGS:-}"
	make -s with_llvm=no PG_CONFIG="$PGBIN/pg_config" PG_CFLAGS="$flags" >/dev/null
	make -s with_llvm=no PG_CONFIG="$PGBIN/pg_config" PG_CFLAGS="$flags" install >/dev/null
}

as_pg() { (cd / && runuser -u postgres -- "$@"); }

# cluster_start DIR PORT [extra postgresql.conf lines]: initdb and start a throwaway
# cluster in DIR (created, owned by postgres). Exports PGHOST, PGPORT, PGUSER.
cluster_start() {
	local dir=$1 port=$2 extra=${3:-}
	mkdir -p "$dir"
	chown postgres:postgres "$dir"
	chmod 755 "$dir"
	if ! as_pg test -w "$dir"; then
		echo "postgres cannot write $dir (is a parent directory private?)" >&2
		return 1
	fi
	as_pg initdb -D "$dir/data" -A trust -U postgres -E UTF8 --locale=C.UTF-8 --no-sync >/dev/null
	cat >>"$dir/data/postgresql.conf" <<-CONF
	listen_addresses = ''
	port = $port
	unix_socket_directories = '$dir'
	fsync = off
	synchronous_commit = off
	full_page_writes = off
	max_connections = 50
	$extra
	CONF
	if [ "${METER_VALGRIND:-0}" = 1 ]; then
		valgrind_start "$dir" "$port" || return 1
	else
		as_pg pg_ctl -D "$dir/data" -l "$dir/server.log" -w start >/dev/null
	fi
	export PGHOST=$dir PGPORT=$port PGUSER=postgres
}

# METER_VALGRIND=1: the server runs under valgrind, one log per process in DIR/vg.PID.log
# (PostgreSQL's own false positives suppressed by test/valgrind.supp); a non-empty log
# is an error (valgrind_check). About 20 times slower.
valgrind_start() {
	local dir=$1 port=$2 i
	# JIT would load LLVM into every backend: far slower under valgrind, and not ours.
	echo "jit = off" >>"$dir/data/postgresql.conf"
	cp "$(dirname "${BASH_SOURCE[0]}")/../test/valgrind.supp" "$dir/valgrind.supp"
	chmod 644 "$dir/valgrind.supp"
	as_pg sh -c "valgrind --quiet --trace-children=yes --leak-check=no --error-limit=no \
		--num-callers=30 --suppressions='$dir/valgrind.supp' --log-file='$dir/vg.%p.log' \
		'$PGBIN/postgres' -D '$dir/data' >'$dir/server.log' 2>&1 </dev/null &"
	for i in $(seq 1 300); do
		pg_isready -q -h "$dir" -p "$port" && return 0
		grep -qs FATAL "$dir"/vg.*.log && break
		sleep 1
	done
	echo "the server did not start under valgrind" >&2
	cat "$dir"/vg.*.log "$dir/server.log" >&2 2>/dev/null
	return 1
}

# Print every non-empty valgrind log of the cluster in DIR; fails if there is one.
valgrind_check() {
	local dir=$1 f bad=0
	for f in "$dir"/vg.*.log; do
		[ -s "$f" ] || continue
		echo "== valgrind: $f"
		cat "$f"
		bad=1
	done
	return $bad
}

cluster_stop() {
	local dir=$1
	[ -f "$dir/data/postmaster.pid" ] && as_pg pg_ctl -D "$dir/data" -m fast -w stop >/dev/null 2>&1
	return 0
}

# A directory the postgres user can use: under the checkout if it can reach it, else /tmp.
cluster_dir() {
	local want=$1
	mkdir -p "$want" && chown postgres:postgres "$want" && chmod 755 "$want"
	if as_pg test -w "$want" 2>/dev/null; then
		echo "$want"
	else
		rmdir "$want" 2>/dev/null
		local d
		d=$(mktemp -d /tmp/meter-cluster.XXXXXX)
		echo "$d"
	fi
}
