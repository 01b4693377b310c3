#!/usr/bin/env bash
# Runs tests/node/*.mjs with Node, better-sqlite3 12 and jose 5 (installed
# into build/node as tests/readme.sh does) against the real extension: each
# script gets a fresh database path and the extension path, prints ok/FAIL
# lines and "N passed, N failed"; this prints the totals last.
set -u
cd "$(dirname "$0")/.."
root=$(pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/anonauth-node.XXXXXX")
trap 'rm -rf "$work"' EXIT
passed=0
failed=0
if [ ! -d build/node/node_modules/better-sqlite3 ] || [ ! -d build/node/node_modules/jose ]; then
  mkdir -p build/node
  if ! (cd build/node && npm install --no-audit --no-fund --loglevel=error better-sqlite3@12 \
          jose@5 > npm-install.log 2>&1); then
    echo "FAIL - node: npm install better-sqlite3@12 jose@5 failed; the end of build/node/npm-install.log:"
    tail -n 15 build/node/npm-install.log | sed 's/^/    /'
    echo "0 passed, 1 failed"
    exit 1
  fi
fi
ln -s "$root/build/node/node_modules" "$work/node_modules"
for t in tests/node/*.mjs; do
  [ -e "$t" ] || continue
  name=$(basename "$t")
  cp "$t" "$work/$name"
  (cd "$work" && node "$name" "$work/${name%.mjs}.db" "${ANONAUTH_SO:-$root/anonauth}") > "$work/out" 2>&1
  rc=$?
  grep -v -E '^[0-9]+ passed, [0-9]+ failed$' "$work/out"
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$work/out" | tail -n 1)
  if [ -z "$line" ]; then
    echo "FAIL - node: $name exited $rc without a closing line"
    failed=$((failed + 1))
    continue
  fi
  passed=$((passed + ${line%% passed*}))
  f=${line#*, }
  failed=$((failed + ${f%% failed}))
  if [ "$rc" -ne 0 ] && [ "${f%% failed}" -eq 0 ]; then
    echo "FAIL - node: $name exited $rc"
    failed=$((failed + 1))
  fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
