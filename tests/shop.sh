#!/usr/bin/env bash
# The shop example's story over HTTP against the real extension and the fake provider.
set -uo pipefail
cd "$(dirname "$0")/.."
make -s all fake-provider >/dev/null || exit 1
(cd examples/shop && { [ -d node_modules/better-sqlite3 ] || npm install --no-audit --no-fund >/dev/null; }) || exit 1
tmp=$(mktemp -d); trap 'kill "$fp" 2>/dev/null; rm -rf "$tmp"' EXIT
build/fake-provider --port 0 --port-file "$tmp/port" >/dev/null 2>&1 & fp=$!
for _ in $(seq 50); do [ -s "$tmp/port" ] && break; sleep 0.1; done
port=$(( 20000 + RANDOM % 20000 ))
node examples/shop/test/http.mjs "$(cut -d' ' -f1 "$tmp/port")" "$port" "$tmp/shop.db"
