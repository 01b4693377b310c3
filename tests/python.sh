#!/usr/bin/env bash
# Runs tests/python/*.py with Debian's /usr/bin/python3 (the one that can
# load SQLite extensions) against the real extension: each script gets a
# fresh database path and the extension path, prints ok/FAIL lines and
# "N passed, N failed"; this prints the totals last.
set -u
cd "$(dirname "$0")/.."
root=$(pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/anonauth-python.XXXXXX")
trap 'rm -rf "$work"' EXIT
passed=0
failed=0
for t in tests/python/*.py; do
  [ -e "$t" ] || continue
  name=$(basename "$t" .py)
  /usr/bin/python3 "$t" "$work/$name.db" "${ANONAUTH_SO:-$root/anonauth}" > "$work/out" 2>&1
  rc=$?
  grep -v -E '^[0-9]+ passed, [0-9]+ failed$' "$work/out"
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$work/out" | tail -n 1)
  if [ -z "$line" ]; then
    echo "FAIL - python: $name exited $rc without a closing line"
    failed=$((failed + 1))
    continue
  fi
  passed=$((passed + ${line%% passed*}))
  f=${line#*, }
  failed=$((failed + ${f%% failed}))
  if [ "$rc" -ne 0 ] && [ "${f%% failed}" -eq 0 ]; then
    echo "FAIL - python: $name exited $rc"
    failed=$((failed + 1))
  fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
