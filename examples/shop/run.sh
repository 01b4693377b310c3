#!/usr/bin/env bash
# make example: the shop on 127.0.0.1 with the fake CAPTCHA provider, in dev mode.
set -euo pipefail
cd "$(dirname "$0")"
[ -d node_modules/better-sqlite3 ] || npm install --no-audit --no-fund
port_file=$(mktemp); trap 'kill "$fp" 2>/dev/null; rm -f "$port_file"' EXIT
../../build/fake-provider --port 0 --port-file "$port_file" & fp=$!
for _ in $(seq 50); do [ -s "$port_file" ] && break; sleep 0.1; done
export SHOP_DEV=1 SHOP_CAPTCHA_URL="http://127.0.0.1:$(cut -d' ' -f1 "$port_file")/turnstile/v0/siteverify"
export ANONAUTH_ALLOW_LOOPBACK_CAPTCHA=1 ANONAUTH_TURNSTILE_SECRET=1x0000000000000000000000000000000AA
node server.mjs
