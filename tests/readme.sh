#!/usr/bin/env bash
# Runs the documentation's snippets as they are written: every fenced block
# preceded by `<!-- test: shell|python|node -->` in README.md and docs/*.md,
# each in a scratch directory of its own holding ./anonauth.so.
#
# When a snippet passes:
#   shell   the sqlite3 shell (-batch, on a fresh app.db) exits 0 and the
#           LAST line it printed is `1` (so a snippet ends with a SELECT that
#           states what it shows, e.g. `SELECT session_valid(token) FROM t;`);
#   python  Debian's /usr/bin/python3 (the one that can load extensions)
#           exits 0;
#   node    node exits 0 (better-sqlite3 12, installed into build/node).
#
# Prints one ok/FAIL line per snippet, naming its file and line, and
# "N passed, N failed" last; exits non-zero on any failure.
set -u
cd "$(dirname "$0")/.."
root=$(pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/anonauth-readme.XXXXXX")
trap 'rm -rf "$work"' EXIT
passed=0
failed=0
label=${TEST_LABEL:-readme}

# Each snippet goes to $work/snippetNNN.<lang>; $work/index lists
# "NNN<TAB>file:line" for the messages.
awk -v dir="$work" '
  FNR == 1 { lang = ""; inside = 0 }
  /^<!-- test: [a-z]+ -->$/ { lang = $3; n++; where = FILENAME ":" FNR; next }
  lang != "" && /^```/ && !inside {
    inside = 1; file = sprintf("%s/snippet%03d.%s", dir, n, lang)
    printf "%03d\t%s\n", n, where > (dir "/index"); next
  }
  inside && /^```/ { inside = 0; lang = ""; close(file); next }
  inside { print > file }
' README.md docs/*.md

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
  base=$(basename "$f")
  num=${base#snippet}; num=${num%%.*}
  where=$(awk -F '\t' -v n="$num" '$1 == n { print $2 }' "$work/index")
  dir="$work/run.$base"
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
    passed=$((passed + 1)); echo "ok - $label: $where: the $lang snippet runs"
  else
    failed=$((failed + 1)); echo "FAIL - $label: $where: the $lang snippet (exit $rc)"
    sed 's/^/    /' "$dir/out" | head -20
  fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
