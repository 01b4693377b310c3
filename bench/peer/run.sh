#!/usr/bin/env bash
# run.sh — Better Auth's anonymous plugin and anonauth side by side, each
# from its own Node process through better-sqlite3 (WAL, synchronous=NORMAL),
# back to back, ROUNDS times with the order alternating; prints the medians.
#
#   bench/peer/run.sh [-signins N] [-checks N] [-warmup N] [-rounds R] [-joins 0|1]
#   (defaults 5000, 20000, 500, 3, 0; make bench-peer PEER_FLAGS='...')
#   -joins 1: Better Auth with its optional database joins (advanced.database.joins)
#
# The npm packages (exact versions: package.json, package-lock.json) are
# installed into a scratch folder, $PEER_DIR (default build/peer), never into
# the repository; the database files are fresh ones under $PEER_DIR/db.
set -eu
cd "$(dirname "$0")/../.."
root=$(pwd)

signins=5000 checks=20000 warmup=500 rounds=3 joins=0
while [ $# -gt 0 ]; do
  [ $# -ge 2 ] || { echo "$0: $1 needs a value" >&2; exit 2; }
  case "$1" in
    -signins) signins=$2 ;; -checks) checks=$2 ;; -warmup) warmup=$2 ;; -rounds) rounds=$2 ;; -joins) joins=$2 ;;
    *) echo "usage: $0 [-signins N] [-checks N] [-warmup N] [-rounds R] [-joins 0|1]" >&2; exit 2 ;;
  esac
  shift 2
done

so=${ANONAUTH_SO:-$root/anonauth.so}
[ -f "$so" ] || make --no-print-directory all
so=$(cd "$(dirname "$so")" && pwd)/$(basename "$so")   # the scripts run from another folder
scratch=${PEER_DIR:-$root/build/peer}
mkdir -p "$scratch/node" "$scratch/db"
scratch=$(cd "$scratch" && pwd)
node_dir=$scratch/node

# Install (again) only when the pinned versions changed since the last time.
if ! cmp -s bench/peer/package-lock.json "$node_dir/.installed-lock" || [ ! -d "$node_dir/node_modules" ]; then
  cp bench/peer/package.json bench/peer/package-lock.json "$node_dir/"
  echo "installing better-auth and better-sqlite3 into $node_dir (npm ci; log: $node_dir/npm-install.log)"
  if ! (cd "$node_dir" && npm ci --no-audit --no-fund --loglevel=error > npm-install.log 2>&1); then
    echo "bench-peer: npm ci failed; the end of $node_dir/npm-install.log:" >&2
    tail -n 15 "$node_dir/npm-install.log" >&2
    exit 1
  fi
  cp bench/peer/package-lock.json "$node_dir/.installed-lock"
fi
# The scripts run from the scratch folder so that their imports find its node_modules.
cp bench/peer/common.mjs bench/peer/betterauth.mjs bench/peer/anonauth.mjs bench/peer/report.mjs "$node_dir/"

version() { node -p "require('$node_dir/node_modules/$1/package.json').version"; }
sqlite_version=$(cd "$node_dir" && node -e "const D=require('better-sqlite3'); console.log(new D(':memory:').prepare('select sqlite_version()').pluck().get())")
echo "node $(node --version | sed 's/^v//'), better-sqlite3 $(version better-sqlite3) (SQLite $sqlite_version)," \
     "better-auth $(version better-auth), kysely $(version kysely)," \
     "anonauth $(git describe --always --dirty 2>/dev/null || echo '?')"
echo "$(nproc) CPUs: $(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n 1); load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "$signins sign-ins and $checks checks of valid sessions per process after $warmup warm-up sign-ins and checks; $rounds rounds;" \
     "Better Auth's database joins $([ "$joins" = 1 ] && echo on || echo 'off (its default)')"

results=$scratch/results.jsonl
: > "$results"
run_side() {  # side round
  local db=$scratch/db/$1-$2.db
  rm -f "$db" "$db-wal" "$db-shm"
  local args=(--db "$db" --signins "$signins" --checks "$checks" --warmup "$warmup")
  if [ "$1" = anonauth ]; then args+=(--so "$so"); else args+=(--joins "$joins"); fi
  (cd "$node_dir" && NODE_ENV=production node "$1.mjs" "${args[@]}") >> "$results"
  rm -f "$db" "$db-wal" "$db-shm"
}
loads=()
for r in $(seq 1 "$rounds"); do
  if [ $((r % 2)) -eq 1 ]; then order="betterauth anonauth"; else order="anonauth betterauth"; fi
  for side in $order; do
    run_side "$side" "$r"
  done
  loads+=("$(cut -d' ' -f1 /proc/loadavg)")
  echo "round $r of $rounds done ($order); load average $(cut -d' ' -f1-3 /proc/loadavg)"
done
echo
node "$node_dir/report.mjs" "$results"
echo
echo "load average (1 min) after each round: ${loads[*]}"
