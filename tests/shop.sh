#!/usr/bin/env bash
# The shop example's story over HTTP, then in headless Chromium, against the real extension and
# the fake provider, then the checks that make example stops cleanly. SHOP_SCREENSHOTS=DIR sets
# where the browser run saves its PNGs (build/shop).
set -uo pipefail
cd "$(dirname "$0")/.."
make -s all fake-provider >/dev/null || exit 1
make -s deps DEB_PACKAGES=chromium >/dev/null || exit 1
(cd examples/shop && { [ -d node_modules/playwright-core ] || npm install --no-audit --no-fund >/dev/null; }) || exit 1
tmp=$(mktemp -d); trap 'kill "$fp" 2>/dev/null; wait "$fp" 2>/dev/null; rm -rf "$tmp"' EXIT
build/fake-provider --port 0 --port-file "$tmp/port" >/dev/null 2>&1 & fp=$!
for _ in $(seq 50); do [ -s "$tmp/port" ] && break; sleep 0.1; done
fport=$(cut -d' ' -f1 "$tmp/port")
rc=0
node examples/shop/test/http.mjs "$fport" $(( 20000 + RANDOM % 5000 )) "$tmp/shop.db" $(( 25000 + RANDOM % 5000 )) > "$tmp/http.out" 2>&1 || rc=1
node examples/shop/test/e2e.mjs "$fport" $(( 30000 + RANDOM % 10000 )) "$tmp/e2e.db" "${SHOP_SCREENSHOTS:-build/shop}" > "$tmp/e2e.out" 2>&1 || rc=1

# make example (and run.sh) stop cleanly: SIGTERM to make, Ctrl-C, or a signal to run.sh leaves
# no node server and no fake provider behind. Each runs in a session of its own (setsid), so
# its process group is exactly what it started; env --default-signal=INT undoes the "SIGINT
# ignored" that background jobs of a script inherit, as a command started from a terminal has.
# Node's fetch, not curl: a fresh Debian has no curl, and this test needs Node anyway.
http_get() {
  node -e 'fetch(process.argv[1]).then(r => r.ok ? r.text() : Promise.reject())
    .then(t => process.stdout.write(t), () => process.exit(1))' "$1" 2>/dev/null
}
stop_check() {   # $1 = label, $2 = signal, $3 = to whom ("alone" or "group", as Ctrl-C), then the command
  local label=$1 sig=$2 whom=$3; shift 3
  local port=$(( 40000 + RANDOM % 10000 )) out="$tmp/stop-$sig-$whom.log" leader group left
  SHOP_PORT=$port SHOP_DB="$tmp/stop-$sig-$whom.db" setsid env --default-signal=INT "$@" > "$out" 2>&1 < /dev/null & leader=$!
  for _ in $(seq 150); do grep -q "shop: http://127.0.0.1:$port/" "$out" && break; sleep 0.1; done
  group=$(ps -o pid= -g "$leader" | tr -d ' ' | tr '\n' ' ')
  if http_get "http://127.0.0.1:$port/" | grep -q 'Tea shop' && ps -o comm= -g "$leader" | grep -qx node \
     && ps -o comm= -g "$leader" | grep -qx fake-provider; then
    echo "ok - shop: $label serves on its port with node and the fake provider running"
  else echo "FAIL - shop: $label serves on its port with node and the fake provider running"; fi
  if [ "$whom" = group ]; then kill -"$sig" -- -"$leader"; else kill -"$sig" "$leader"; fi
  for _ in $(seq 100); do left=""; for p in $group; do kill -0 "$p" 2>/dev/null && left="$left $p"; done
    [ -z "$left" ] && break; sleep 0.1; done
  if [ -z "$left" ] && ! http_get "http://127.0.0.1:$port/" >/dev/null; then
    echo "ok - shop: SIG$sig to $label ($whom): all $(echo $group | wc -w) processes gone, port closed"
  else
    echo "FAIL - shop: SIG$sig to $label ($whom) left processes:$left"
    kill -KILL $left 2>/dev/null   # ours: the group this test started
  fi
}
{ stop_check 'make example' TERM alone make -s example    # GNU make forwards SIGTERM to its children
  stop_check 'make example' INT group make -s example     # Ctrl-C in a terminal: the whole group
  stop_check 'run.sh' INT alone bash examples/shop/run.sh
  stop_check 'run.sh' TERM alone bash examples/shop/run.sh
} > "$tmp/stop.out" 2>&1
ok=$(grep -c '^ok' "$tmp/stop.out"); bad=$(grep -c '^FAIL' "$tmp/stop.out")
echo "$ok passed, $bad failed" >> "$tmp/stop.out"; [ "$bad" -eq 0 ] || rc=1

# One closing line for the three runs (the suite reads only the last one); a run
# that ended without its own closing line counts as a failure.
passed=0; failed=0
for f in "$tmp/http.out" "$tmp/e2e.out" "$tmp/stop.out"; do
  grep -v -E '^[0-9]+ passed, [0-9]+ failed$' "$f"
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$f" | tail -n 1)
  if [ -z "$line" ]; then failed=$((failed + 1)); echo "FAIL - shop: $(basename "$f" .out) ended without a closing line"; continue; fi
  passed=$((passed + ${line%% passed*})); f2=${line#*, }; failed=$((failed + ${f2%% failed}))
done
echo "$passed passed, $failed failed"
[ "$rc" -eq 0 ] && [ "$failed" -eq 0 ]
