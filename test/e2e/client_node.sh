#!/usr/bin/env bash
# A real Node.js client (node-postgres): meters from JavaScript objects, meter.ingest with
# JSON built by JSON.stringify, COPY ... FROM STDIN streamed through pg-copy-streams, and
# usage read back as exact decimal strings, never floats (SPEC §1: plain SQL from any
# client; §8: exact numeric). The program is test/e2e/client_node.js; it exits non-zero
# on any mismatch.
#
# pg and pg-copy-streams are installed with npm into a cache directory (gitignored,
# METER_NODE_CACHE, default .cache/node in the checkout), once: later runs reuse it. If
# node or npm is missing or npm cannot install, the test fails and says why.
set -euo pipefail
cd "$(dirname "$0")/../.."

cache=${METER_NODE_CACHE:-$PWD/.cache/node}
fail() { echo "client_node: $*" >&2; exit 1; }

command -v node >/dev/null || fail "node is not installed (Node 20 is expected on the image)"
command -v npm >/dev/null || fail "npm is not installed (it comes with Node 20)"

if [ ! -f "$cache/node_modules/pg/package.json" ] || [ ! -f "$cache/node_modules/pg-copy-streams/package.json" ]; then
	mkdir -p "$cache"
	echo "client_node: installing pg and pg-copy-streams into $cache"
	if ! npm install --prefix "$cache" --no-audit --no-fund --loglevel=error \
		'pg@^8' 'pg-copy-streams@^6' >"$cache/npm.log" 2>&1; then
		cat "$cache/npm.log" >&2
		fail "npm could not install pg and pg-copy-streams (is the npm registry reachable? see the log above)"
	fi
fi

NODE_PATH="$cache/node_modules" exec node test/e2e/client_node.js
