#!/usr/bin/env bash
# make coverage: builds anonauth with gcov instrumentation, runs the SQL and C
# suites against it, and prints line and branch coverage of src/ per file and
# in total (build/coverage/summary.txt; .gcov files beside it).
set -u
cd "$(dirname "$0")/.."
root=$(pwd)
cov=build/coverage
rm -rf "$cov" && mkdir -p "$cov"
make -s BUILD=$cov/build SO=$cov/anonauth.so LIB=$cov/libanonauth.a \
  CFLAGS="-O0 -g --coverage" LDFLAGS="--coverage" all static || exit 1
TEST_LABEL=cov ANONAUTH_SO="$root/$cov/anonauth" tests/sqltest.sh tests/sql/*.test > "$cov/sql.log" 2>&1
tail -n 1 "$cov/sql.log"
# The C programs compile as tests/run.sh compiles them (the Makefile's flags).
test_cflags=$(make -s --no-print-directory print-test-cflags)
test_libs=$(make -s --no-print-directory print-test-libs)
# The CAPTCHA C tests need the fake provider, as in tests/run.sh.
. ./tests/fake_provider.sh
trap fake_provider_stop EXIT
fake_provider_start "$cov/provider" "$root" || echo "the fake CAPTCHA provider did not start"
for t in tests/c/test_*.c; do
  bin="$cov/$(basename "$t" .c)"
  # shellcheck disable=SC2086
  cc $test_cflags -O0 -g --coverage -o "$bin" "$t" "$cov/libanonauth.a" $test_libs &&
  ANONAUTH_SO="$root/$cov/anonauth" ANONAUTH_TEST_TMP="$root/$cov" "$bin" > "$cov/$(basename "$t" .c).log" 2>&1
  echo "$(basename "$t" .c): $(tail -n 1 "$cov/$(basename "$t" .c).log")"
done
fake_provider_stop
# The static and shared builds instrument the same sources separately: gcov
# reads each object directory; the report uses the shared build (what the
# SQL suite loads) and the C tests' static build for the files they reach.
cd "$cov"
{
  printf '%-22s %8s %8s %10s %9s\n' file lines covered branches taken
  total_l=0; total_lc=0; total_b=0; total_bt=0
  for src in "$root"/src/*.c; do
    name=$(basename "$src")
    out=$(gcov -b -n -o "build/obj/src" "$src" 2>/dev/null | awk -v f="$name" '
      index($0, "File ") == 1 && index($0, f "'"'"'") { on = 1; next }
      on && /^Lines executed/ && !l { split($2, a, ":"); sub("%", "", a[2]); l = a[2]; n = $4 }
      on && /^Taken at least once/ && !bn { split($4, a, ":"); sub("%", "", a[2]); t = a[2]; bn = $6 }
      END { if (n) print l, n, (t == "" ? 0 : t), (bn == "" ? 0 : bn) }')
    set -- $out
    [ $# -ge 2 ] || continue
    lines=$2; lc=$(awk -v p="$1" -v n="$2" 'BEGIN { printf "%d", p * n / 100 + 0.5 }')
    br=${4:-0}; bt=$(awk -v p="${3:-0}" -v n="${4:-0}" 'BEGIN { printf "%d", p * n / 100 + 0.5 }')
    printf '%-22s %8d %7.1f%% %10d %8.1f%%\n' "$name" "$lines" "$1" "$br" "${3:-0}"
    total_l=$((total_l + lines)); total_lc=$((total_lc + lc)); total_b=$((total_b + br)); total_bt=$((total_bt + bt))
  done
  awk -v l="$total_l" -v lc="$total_lc" -v b="$total_b" -v bt="$total_bt" \
    'BEGIN { printf "%-22s %8d %7.1f%% %10d %8.1f%%\n", "src/ total", l, 100 * lc / l, b, (b ? 100 * bt / b : 0) }'
} | tee summary.txt
# The .gcov files (uncovered lines are marked #####): the objects name their
# sources as src/NAME.c, relative to the repository.
ln -sfn "$root/src" src
gcov -b -o build/obj/src src/*.c > /dev/null 2>&1 || true
echo "line by line: $cov/*.c.gcov (##### = never run; gcov -b branch lines)"
