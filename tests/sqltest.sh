#!/usr/bin/env bash
# Runs SQL test files in the real sqlite3 shell against the real extension.
#
#   tests/sqltest.sh FILE.test...
#
# A file holds cases:
#
#   -- test: what it proves
#   SELECT ...;                 (SQL run by `sqlite3` on a fresh WAL database)
#   -- new connection           (optional: the rest runs in a new process)
#   SELECT ...;
#   -- unset: NAME              (optional: the case runs without the
#                                environment variable NAME)
#   -- expect:
#   lines the shell must print, exactly
#
# In the SQL, @ANONAUTH@ stands for the extension's path (for a second
# `.load` after `.open`), @DIR@ for the case's scratch directory and
# @FIXTURES@ for tests/fixtures (.dump files of databases made by earlier releases). A file
# that mentions @PROVIDER@ gets its own fake CAPTCHA provider
# (tests/fake_provider.sh): @PROVIDER@ is its base URL, @PROVIDER_TLS@ the
# same behind TLS with an untrusted certificate, @PROVIDER_LOG@ its log.
# Errors print as "error: <message>" (the shell's "Runtime error near line N:"
# prefix is dropped so that cases do not depend on line numbers).
#
# The cases run with ANONAUTH_ALLOW_LOOPBACK_CAPTCHA=1 (a loopback
# captcha.url is used only when the process opts in); a case that proves the
# refusal says `-- unset: ANONAUTH_ALLOW_LOOPBACK_CAPTCHA`.
#
# Environment: ANONAUTH_SO (the extension, without .so), SQLITE3 (the shell),
# SQLITE3_WRAPPER (e.g. "valgrind -q --error-exitcode=99"), TEST_LABEL.
# The wrapper must exit 0: a non-zero exit (a sanitizer or valgrind report)
# fails the case even when the output matched.
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
so=${ANONAUTH_SO:-$root/anonauth}
shell=${SQLITE3:-sqlite3}
wrapper=${SQLITE3_WRAPPER:-}
label=${TEST_LABEL:-sql}
export ANONAUTH_ALLOW_LOOPBACK_CAPTCHA=1
work=$(mktemp -d "${TMPDIR:-/tmp}/anonauth-sqltest.XXXXXX")
. "$here/fake_provider.sh"
trap 'fake_provider_stop; rm -rf "$work"' EXIT

passed=0
failed=0

# Trailing blank lines separate cases in the file; they are not output.
trim() {
  awk '{ line[NR] = $0 } END { n = NR; while (n > 0 && line[n] == "") n--; for (i = 1; i <= n; i++) print line[i] }'
}

# The shell echoes the statement and a caret under a parse error; only the
# message matters.
normalise() {
  sed -E -e 's/^(Runtime|Parse) error near line [0-9]+: /error: /' \
         -e 's/^Error: near line [0-9]+: /error: /' \
         -e 's/^Error: /error: /' |
  awk '/^ *\^--- error here/ { if (held) held = ""; next }
       /^  / && prev_error { held = held $0 "\n"; next }
       { if (held != "") { printf "%s", held; held = "" }
         prev_error = /^error: /; print }
       END { if (held != "") printf "%s", held }'
}

run_case() { # file, name, case dir with chunk.N and expect
  local file=$1 name=$2 dir=$3 db="$3/test.db" out="$3/out" status=0 chunk
  "$shell" "$db" 'PRAGMA journal_mode=WAL;' >/dev/null
  : > "$out"
  for chunk in $(ls "$dir" | grep '^chunk\.' | sort -t. -k2 -n); do
    {
      printf '.bail off\n.load %s\n' "$so"
      sed -e "s|@ANONAUTH@|$so|g" -e "s|@DIR@|$dir|g" -e "s|@FIXTURES@|$root/tests/fixtures|g" -e "s|@PROVIDER@|${ANONAUTH_PROVIDER:-}|g" \
          -e "s|@PROVIDER_TLS@|${ANONAUTH_PROVIDER_TLS:-}|g" \
          -e "s|@PROVIDER_LOG@|${ANONAUTH_PROVIDER_LOG:-}|g" "$dir/$chunk"
    } > "$dir/input.sql"
    (cd "$dir" && if [ -f "$dir/unset" ]; then while read -r v; do unset "$v"; done < "$dir/unset"; fi &&
      $wrapper "$shell" -batch "$db" < "$dir/input.sql") 2>&1 | normalise >> "$out"
    local rc=${PIPESTATUS[0]}
    # the shell exits 1 after SQL errors; anything else is a crash or a report
    if [ "$rc" -ne 0 ] && [ "$rc" -ne 1 ]; then status=$rc; fi
  done
  trim < "$dir/expect" > "$dir/expect.trimmed"
  trim < "$out" > "$out.trimmed"
  diff -u "$dir/expect.trimmed" "$out.trimmed" > "$dir/diff"
  local same=$?
  if [ "$status" -eq 0 ] && [ "$same" -eq 0 ]; then
    passed=$((passed + 1))
    echo "ok - $label: $(basename "$file"): $name"
  else
    failed=$((failed + 1))
    echo "FAIL - $label: $(basename "$file"): $name (exit $status)"
    sed 's/^/    /' "$dir/diff" | head -40
  fi
}

for file in "$@"; do
  rm -rf "$work/cases" && mkdir -p "$work/cases"
  # Split the file into cases, one directory each: cases/1, cases/2, ...
  awk -v dirs="$work/cases" '
    /^-- test: / {
      n++; dir = dirs "/" n; system("mkdir -p \"" dir "\"");
      print substr($0, 10) > (dir "/name"); close(dir "/name");
      chunk = 1; mode = "sql";
      printf "" > (dir "/expect"); close(dir "/expect");
      printf "" > (dir "/chunk." chunk); close(dir "/chunk." chunk); next
    }
    n == 0 { next }
    /^-- unset: / { print substr($0, 11) >> (dir "/unset"); close(dir "/unset"); next }
    /^-- new connection/ { chunk++; printf "" > (dir "/chunk." chunk); close(dir "/chunk." chunk); next }
    /^-- expect:/ { mode = "expect"; next }
    mode == "sql" { print >> (dir "/chunk." chunk); close(dir "/chunk." chunk); next }
    mode == "expect" { print >> (dir "/expect"); close(dir "/expect"); next }
  ' "$file"
  count=$(ls "$work/cases" | wc -l)
  if grep -q '@PROVIDER' "$file" && ! fake_provider_start "$work/provider" "$root"; then
    failed=$((failed + 1))
    echo "FAIL - $label: $(basename "$file"): the fake CAPTCHA provider did not start"
    continue
  fi
  for i in $(seq 1 "$count"); do
    run_case "$file" "$(cat "$work/cases/$i/name")" "$work/cases/$i"
  done
  fake_provider_stop
done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
