#!/usr/bin/env bash
# anonauth on a 3-node dqlite cluster, step by step (make cluster-demo).
#
# Starts three nodes on 127.0.0.1 (ports CLUSTER_PORT_BASE+1..3, default
# 29001-29003), signs in through the cluster, links an account, checks the
# session on every node, kills the leader with SIGKILL, and shows that the
# session and the account survived. Stops every node it started on exit.
# The session token is kept in a shell variable and never printed.
set -eu
cd "$(dirname "$0")/.."

NODE=build/cluster/anonauth-node
PY=python3
[ -x /usr/bin/python3 ] && PY=/usr/bin/python3
CLIENT="$PY cluster/dqlite_client.py"
BASE=${CLUSTER_PORT_BASE:-29000}
DIR=build/cluster-demo
DB=anonauth

[ -x "$NODE" ] || { echo "missing $NODE: run 'make cluster' first" >&2; exit 1; }
command -v dqlite > /dev/null || { echo "missing the dqlite shell (Debian package go-dqlite)" >&2; exit 1; }

declare -A PID ADDR
ALL=""
for i in 1 2 3; do
  ADDR[$i]="127.0.0.1:$((BASE + i))"
  ALL="$ALL${ALL:+,}${ADDR[$i]}"
done

cleanup() {
  for i in 1 2 3; do
    if [ -n "${PID[$i]:-}" ] && kill -0 "${PID[$i]}" 2> /dev/null; then
      kill -TERM "${PID[$i]}" 2> /dev/null || true
      wait "${PID[$i]}" 2> /dev/null || true
    fi
  done
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
say() { printf '   %s\n' "$*"; }
# Shows a command (with the token's value replaced by $TOKEN), then runs it.
run() {
  local shown="" a
  for a in "$@"; do
    case "$a" in *" "*) a="\"$a\"" ;; esac
    shown="$shown${shown:+ }$a"
  done
  [ -n "${TOKEN:-}" ] && shown=${shown//$TOKEN/\$TOKEN}
  printf '   $ %s\n' "$shown"
  "$@" 2>&1 | sed 's/^/     /'
  return "${PIPESTATUS[0]}"
}
survivors() {
  local s="" i
  for i in 1 2 3; do
    if kill -0 "${PID[$i]}" 2> /dev/null; then s="$s${s:+,}${ADDR[$i]}"; fi
  done
  echo "$s"
}
start_node() {
  local i=$1 t
  mkdir -p "$DIR/node$i"
  : > "$DIR/node$i.out"
  "$NODE" --id "$i" --address "${ADDR[$i]}" --dir "$DIR/node$i" --latency-ms 20 \
    > "$DIR/node$i.out" 2>> "$DIR/node$i.log" &
  PID[$i]=$!
  for t in $(seq 1 100); do
    grep -q ready "$DIR/node$i.out" && { say "$(cat "$DIR/node$i.out")"; return 0; }
    kill -0 "${PID[$i]}" 2> /dev/null || break
    sleep 0.05
  done
  echo "node $i did not start; its log ($DIR/node$i.log):" >&2
  cat "$DIR/node$i.log" >&2
  exit 1
}

rm -rf "$DIR"
mkdir -p "$DIR"

step "1. Start three nodes (each one a dqlite node with anonauth linked in)"
say "anonauth-node links libanonauth.a and registers it with sqlite3_auto_extension(),"
say "so every connection dqlite opens has anon_signin(), session_valid(), ..."
for i in 1 2 3; do
  say "\$ $NODE --id $i --address ${ADDR[$i]} --dir $DIR/node$i --latency-ms 20 &"
  start_node "$i"
done

step "2. Form the cluster: node 1 bootstrapped it; nodes 2 and 3 join as voters"
run $CLIENT -s "$ALL" join 2 "${ADDR[2]}"
run $CLIENT -s "$ALL" join 3 "${ADDR[3]}"
say "The dqlite shell (go-dqlite) is a ready client: members are id (hex) | address | role"
run dqlite -s "$ALL" $DB .cluster
run dqlite -s "$ALL" $DB .leader

step "3. Sign in anonymously through the cluster"
say "The shell wraps every statement in BEGIN ... COMMIT: the calling pattern that replicates."
say "\$ TOKEN=\$(dqlite -s $ALL $DB \"SELECT anon_signin()\")"
TOKEN=$(dqlite -s "$ALL" $DB "SELECT anon_signin()")
case "$TOKEN" in
  anonauth_sess_*) say "-> a token of ${#TOKEN} characters, kept in \$TOKEN (never printed)" ;;
  *) echo "sign-in failed: $TOKEN" >&2; exit 1 ;;
esac
run dqlite -s "$ALL" $DB "SELECT 'user id ' || session_user('$TOKEN'), 'replicated mode ' || anonauth_replicated()"

step "4. Link an account to the anonymous user"
say "\$ TOKEN=\$(dqlite -s $ALL $DB \"SELECT link_account('\$TOKEN', 'email', 'alice@example.com')\")"
TOKEN=$(dqlite -s "$ALL" $DB "SELECT link_account('$TOKEN', 'email', 'alice@example.com')")
case "$TOKEN" in
  anonauth_sess_*) say "-> linked; link_account() returned a new token, kept in \$TOKEN (the old one is revoked)" ;;
  *) echo "link_account failed: $TOKEN" >&2; exit 1 ;;
esac
run dqlite -s "$ALL" $DB "SELECT provider, account_id FROM anonauth_accounts WHERE user_id = session_user('$TOKEN')"

step "5. The session is valid on every node"
say "dqlite 1.11 answers statements on the leader only, so each node in turn is made"
say "the leader (a Raft leadership transfer) and answers from its own replicated copy."
for i in 1 2 3; do
  if [ "$($CLIENT -s "$ALL" leader)" != "$i|${ADDR[$i]}" ]; then
    run $CLIENT -s "$ALL" transfer "$i"
  fi
  run dqlite -s "${ADDR[$i]}" $DB .leader
  run dqlite -s "${ADDR[$i]}" $DB "SELECT 'node $i: session valid ' || session_valid('$TOKEN')"
done

step "6. Kill the leader with SIGKILL"
LEADER=$($CLIENT -s "$ALL" leader)
LEADER_ID=${LEADER%%|*}
say "leader: node $LEADER_ID (${LEADER#*|}), pid ${PID[$LEADER_ID]}"
say "\$ kill -KILL ${PID[$LEADER_ID]}"
kill -KILL "${PID[$LEADER_ID]}"
wait "${PID[$LEADER_ID]}" 2> /dev/null || true
t0=$(date +%s%N)
NEW=$($CLIENT -s "$(survivors)" leader)  # polls the survivors until one leads
t1=$(date +%s%N)
say "new leader: node ${NEW%%|*} (${NEW#*|}), elected $(((t1 - t0) / 1000000)) ms after the kill"

step "7. After the leader's death: the session is still valid, the account still linked"
run dqlite -s "$(survivors)" $DB "SELECT 'session valid ' || session_valid('$TOKEN'), 'user id ' || session_user('$TOKEN')"
run dqlite -s "$(survivors)" $DB "SELECT 'accounts linked ' || count(*), 'anonymous ' || user_is_anonymous(session_user('$TOKEN')) FROM anonauth_accounts WHERE user_id = session_user('$TOKEN')"
run dqlite -s "$(survivors)" $DB "SELECT 'users ' || count(*), 'audit rows ' || (SELECT count(*) FROM anonauth_audit) FROM anonauth_users"

step "8. The calling pattern: writes go inside BEGIN ... COMMIT"
say "A bare 'SELECT anon_signin()' sent as a query would commit on the leader alone"
say "(dqlite replicates only what an exec request commits). The node runs anonauth in"
say "replicated mode, so the extension refuses it instead of handing out a token the"
say "cluster would forget:"
run $CLIENT -s "$(survivors)" query "SELECT anon_signin()" || true
say "The same call inside BEGIN ... COMMIT (here: BEGIN, the query, COMMIT) works:"
run $CLIENT -s "$(survivors)" tx "SELECT 'token length ' || length(anon_signin())"

step "9. Restart the killed node: it rejoins and catches up from the others"
start_node "$LEADER_ID"
run $CLIENT -s "$(survivors)" transfer "$LEADER_ID"
run dqlite -s "${ADDR[$LEADER_ID]}" $DB .leader
run dqlite -s "${ADDR[$LEADER_ID]}" $DB "SELECT 'node $LEADER_ID: session valid ' || session_valid('$TOKEN'), 'users ' || (SELECT count(*) FROM anonauth_users)"

step "10. Stop the cluster"
cleanup
say "all nodes stopped; their data is in $DIR/"
