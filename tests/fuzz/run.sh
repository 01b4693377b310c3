#!/usr/bin/env bash
# Builds the libFuzzer harnesses in tests/fuzz/ and runs each one.
#
#   tests/fuzz/run.sh [SECONDS]     (default 5; `make fuzz` runs longer)
#
# Each harness first replays its seed corpus (tests/fuzz/corpus/<harness>/),
# then fuzzes for SECONDS. New inputs go to build/fuzz/corpus-<harness>/, never
# into the repository; a crash leaves its input in build/fuzz/ and fails the
# run. The harnesses compile the src/ files they test with -DSQLITE_CORE and
# link the system SQLite. Prints "N passed, N failed" last.
set -u
cd "$(dirname "$0")/../.."
secs=${1:-5}
out=build/fuzz
mkdir -p "$out"
passed=0
failed=0

flags="-std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -DSQLITE_CORE -Wall -Wextra -Werror
       -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined
       -fno-sanitize-recover=all -Isrc -Ibuild"

declare -A sources=(
  [siteverify]="src/siteverify.c src/json.c src/text.c"
  [opts]="src/opts.c src/json.c src/text.c src/netaddr.c src/errors.c"
  [token]="src/token.c"
  [b64url]="src/jws.c"
)
declare -A libs=(
  [token]="-lsodium"
  [b64url]="-lsodium -lcrypto"
)

for h in siteverify opts token b64url; do
  bin="$out/fuzz_$h"
  # shellcheck disable=SC2086
  if ! clang $flags -o "$bin" "tests/fuzz/fuzz_$h.c" ${sources[$h]} ${libs[$h]:-} -lsqlite3 \
       > "$out/fuzz_$h.build.log" 2>&1; then
    echo "FAIL - fuzz: fuzz_$h does not build"
    sed 's/^/    /' "$out/fuzz_$h.build.log" | head -30
    failed=$((failed + 1))
    continue
  fi
  mkdir -p "$out/corpus-$h"
  if "$bin" -runs=0 -artifact_prefix="$out/crash-$h-" "tests/fuzz/corpus/$h" \
       > "$out/fuzz_$h.replay.log" 2>&1; then
    passed=$((passed + 1))
    echo "ok - fuzz: fuzz_$h replays its $(ls "tests/fuzz/corpus/$h" | wc -l) seeds"
  else
    failed=$((failed + 1))
    echo "FAIL - fuzz: fuzz_$h fails on a seed"
    grep -E 'ERROR|SUMMARY|abort' "$out/fuzz_$h.replay.log" | head -10 | sed 's/^/    /'
  fi
  if (cd "$out" && "./fuzz_$h" -max_total_time="$secs" -max_len=16384 -timeout=10 \
        -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="./crash-$h-" \
        "corpus-$h" "../../tests/fuzz/corpus/$h") > "$out/fuzz_$h.log" 2>&1; then
    runs=$(grep -E '^stat::number_of_executed_units' "$out/fuzz_$h.log" | awk '{print $2}')
    passed=$((passed + 1))
    echo "ok - fuzz: fuzz_$h ran ${secs}s, ${runs:-?} inputs, no crash"
  else
    failed=$((failed + 1))
    echo "FAIL - fuzz: fuzz_$h crashed (input in $out/crash-$h-*; log $out/fuzz_$h.log)"
    grep -E 'ERROR|SUMMARY|runtime error' "$out/fuzz_$h.log" | head -10 | sed 's/^/    /'
  fi
done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
