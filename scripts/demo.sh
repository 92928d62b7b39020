#!/usr/bin/env bash
# The main job: installs what is missing, builds, starts a throwaway cluster in
# .demo/ of the checkout (or /tmp when postgres cannot reach it), creates the
# extension and runs scripts/demo.sql: meters, events in, usage out. The cluster keeps
# running afterwards so you can look around; `scripts/demo.sh stop` stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
port=${DEMO_PORT:-54916}

if [ "${1:-}" = stop ]; then
	[ -f .demo/where ] && cluster_stop "$(cat .demo/where)"
	echo "stopped"; exit 0
fi
ensure_packages
use_pg_root
log "building"
build_install
if [ -f .demo/where ]; then cluster_stop "$(cat .demo/where)"; rm -rf "$(cat .demo/where)/data"; fi
dir=$(cluster_dir "$PWD/.demo")
rm -rf "$dir/data"
cluster_start "$dir" "$port"
mkdir -p .demo && echo "$dir" > .demo/where
psql -X -q -d postgres -c 'CREATE DATABASE demo' >/dev/null
psql -X -d demo -v ON_ERROR_STOP=1 -f scripts/demo.sql
cat <<MSG

The demo cluster is running. Connect with:
  psql -h $dir -p $port -U postgres demo
Stop it with:
  scripts/demo.sh stop
MSG
