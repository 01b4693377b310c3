#!/usr/bin/env bash
# Runs the README's loading snippets as they are written: every fenced block
# preceded by `<!-- test: shell|python|node -->`, in a scratch directory
# holding ./anonauth.so. Python is Debian's /usr/bin/python3 (the one that can
# load extensions); Node uses better-sqlite3 12, installed into build/node.
set -u
cd "$(dirname "$0")/.."
root=$(pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/anonauth-readme.XXXXXX")
trap 'rm -rf "$work"' EXIT
passed=0
failed=0
label=${TEST_LABEL:-readme}

awk -v dir="$work" '
  /^<!-- test: [a-z]+ -->$/ { lang = $3; n++; next }
  lang != "" && /^```/ && !inside { inside = 1; file = dir "/snippet" n "." lang; next }
  inside && /^```/ { inside = 0; lang = ""; close(file); next }
  inside { print > file }
' README.md

# npm's output goes to build/node/npm-install.log; a failure shows its tail.
node_ready() {
  [ -d build/node/node_modules/better-sqlite3 ] && return 0
  mkdir -p build/node
  (cd build/node && npm install --no-audit --no-fund --loglevel=error better-sqlite3@12 \
     > npm-install.log 2>&1)
}

for f in "$work"/snippet*; do
  [ -e "$f" ] || continue
  lang=${f##*.}
  dir="$work/run.$(basename "$f")"
  mkdir -p "$dir"
  ln -s "$root/anonauth.so" "$dir/anonauth.so"
  case $lang in
    shell)  (cd "$dir" && sqlite3 -batch app.db < "$f") > "$dir/out" 2>&1; rc=$?
            [ "$rc" -eq 0 ] && [ "$(tail -n 1 "$dir/out")" = "1" ] || rc=1 ;;
    python) (cd "$dir" && /usr/bin/python3 "$f") > "$dir/out" 2>&1; rc=$? ;;
    node)   if node_ready; then
              ln -s "$root/build/node/node_modules" "$dir/node_modules"
              cp "$f" "$dir/snippet.mjs"
              (cd "$dir" && node snippet.mjs) > "$dir/out" 2>&1; rc=$?
            else
              { echo "npm install better-sqlite3@12 failed (node $(node --version 2>/dev/null || echo missing)," \
                     "npm $(npm --version 2>/dev/null || echo missing)); the end of build/node/npm-install.log:"
                tail -n 15 build/node/npm-install.log; } > "$dir/out" 2>&1; rc=1
            fi ;;
    *)      echo "unknown snippet language $lang" > "$dir/out"; rc=1 ;;
  esac
  if [ "$rc" -eq 0 ]; then
    passed=$((passed + 1)); echo "ok - $label: the README's $lang snippet runs"
  else
    failed=$((failed + 1)); echo "FAIL - $label: the README's $lang snippet (exit $rc)"
    sed 's/^/    /' "$dir/out" | head -20
  fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
