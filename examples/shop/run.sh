#!/usr/bin/env bash
# make example: the shop on 127.0.0.1 with the fake CAPTCHA provider, in dev mode.
# SIGTERM (make forwards it), SIGINT (Ctrl-C) or SIGHUP stops both servers before this
# script exits; both also exit on their own if this script is killed outright.
set -euo pipefail
cd "$(dirname "$0")"
[ -d node_modules/better-sqlite3 ] || npm install --no-audit --no-fund
port_file=$(mktemp)
pids=()
stop() {
  trap - EXIT INT TERM HUP
  [ ${#pids[@]} -eq 0 ] || kill "${pids[@]}" 2>/dev/null || true
  wait || true
  rm -f "$port_file"
}
trap stop EXIT
trap 'stop; exit 130' INT
trap 'stop; exit 143' TERM
trap 'stop; exit 129' HUP
../../build/fake-provider --port 0 --port-file "$port_file" --exit-with-parent --quiet & pids+=($!)
for _ in $(seq 50); do [ -s "$port_file" ] && break; sleep 0.1; done
export SHOP_DEV=1 SHOP_CAPTCHA_URL="http://127.0.0.1:$(cut -d' ' -f1 "$port_file")/turnstile/v0/siteverify"
export ANONAUTH_ALLOW_LOOPBACK_CAPTCHA=1 ANONAUTH_TURNSTILE_SECRET=1x0000000000000000000000000000000AA
# In the background and waited for, so that a signal runs the trap at once (bash runs
# traps only between foreground commands).
SHOP_EXIT_WITH_PARENT=1 node server.mjs & pids+=($!)
wait "${pids[1]}"
