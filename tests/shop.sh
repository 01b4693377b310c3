#!/usr/bin/env bash
# The shop example's story over HTTP, then in headless Chromium, against the real extension and
# the fake provider. SHOP_SCREENSHOTS=DIR sets where the browser run saves its PNGs (build/shop).
set -uo pipefail
cd "$(dirname "$0")/.."
make -s all fake-provider >/dev/null || exit 1
make -s deps DEB_PACKAGES=chromium >/dev/null || exit 1
(cd examples/shop && { [ -d node_modules/playwright-core ] || npm install --no-audit --no-fund >/dev/null; }) || exit 1
tmp=$(mktemp -d); trap 'kill "$fp" 2>/dev/null; rm -rf "$tmp"' EXIT
build/fake-provider --port 0 --port-file "$tmp/port" >/dev/null 2>&1 & fp=$!
for _ in $(seq 50); do [ -s "$tmp/port" ] && break; sleep 0.1; done
fport=$(cut -d' ' -f1 "$tmp/port")
rc=0
node examples/shop/test/http.mjs "$fport" $(( 20000 + RANDOM % 5000 )) "$tmp/shop.db" $(( 25000 + RANDOM % 5000 )) > "$tmp/http.out" 2>&1 || rc=1
node examples/shop/test/e2e.mjs "$fport" $(( 30000 + RANDOM % 10000 )) "$tmp/e2e.db" "${SHOP_SCREENSHOTS:-build/shop}" > "$tmp/e2e.out" 2>&1 || rc=1
# One closing line for both runs (the suite reads only the last one); a run
# that ended without its own closing line counts as a failure.
passed=0; failed=0
for f in "$tmp/http.out" "$tmp/e2e.out"; do
  grep -v -E '^[0-9]+ passed, [0-9]+ failed$' "$f"
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$f" | tail -n 1)
  if [ -z "$line" ]; then failed=$((failed + 1)); echo "FAIL - shop: $(basename "$f" .out) ended without a closing line"; continue; fi
  passed=$((passed + ${line%% passed*})); f2=${line#*, }; failed=$((failed + ${f2%% failed}))
done
echo "$passed passed, $failed failed"
[ "$rc" -eq 0 ] && [ "$failed" -eq 0 ]
