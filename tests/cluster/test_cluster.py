#!/usr/bin/python3
"""anonauth on a real 3-node dqlite cluster (build/cluster/anonauth-node).

Each scenario starts its own cluster on free 127.0.0.1 ports under
$ANONAUTH_TEST_TMP (default build/test/cluster), kills leaders with SIGKILL,
and polls with deadlines for the new leader. Tokens stay in memory: the
output holds booleans and counts only. Prints "ok - ..." / "FAIL - ..." per
check and "N passed, N failed" last; exits non-zero on any failure.

Scenarios:
  story     sign in, link an account, the session valid on every node, kill
            the leader, still valid and linked on the new one
  guard     the replicated mode refuses the unsafe calling patterns and
            changes nothing; reads and the BEGIN ... COMMIT pattern work
  unguarded what the guard prevents: without it, a bare query's sign-in
            hands out a token that no node accepts, and a leader loss
            forgets the sign-in
  bulk      200 sign-ins, leader kill: every token received is valid
  inflight  sign-ins in flight when the leader dies are all or nothing
"""
import os
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "cluster"))
import dqlite_client as dq  # noqa: E402
import localcluster as lc  # noqa: E402

TMP = os.environ.get("ANONAUTH_TEST_TMP") or os.path.join(ROOT, "build", "test", "cluster")
LATENCY_MS = 20  # loopback: a lost leader is replaced in about half a second
LABEL = os.environ.get("TEST_LABEL", "cluster")

passed = 0
failed = 0


def check(cond, name):
    global passed, failed
    if cond:
        passed += 1
        print(f"ok - {LABEL}: {name}")
    else:
        failed += 1
        print(f"FAIL - {LABEL}: {name}")
    sys.stdout.flush()
    return cond


def note(msg):
    print(f"# {msg}")
    sys.stdout.flush()


def cluster(name, **kw):
    return lc.LocalCluster(os.path.join(TMP, name), latency_ms=LATENCY_MS, **kw).start()


def error_of(fn):
    """The DqliteError message fn raised, or None."""
    try:
        fn()
    except dq.DqliteError as e:
        return e.message
    return None


def signin(c, opts=None):
    """The documented pattern: BEGIN, the call as a query, COMMIT."""
    if opts is None:
        return c.in_transaction("SELECT anon_signin()")[0][0]
    return c.in_transaction("SELECT anon_signin(?)", [opts])[0][0]


def has_function(c, name):
    return c.value("SELECT count(*) FROM pragma_function_list WHERE name = ?", [name]) > 0


def db_invariants(c):
    """(users, sessions, anon_signin audit rows, orphans): one sign-in writes
    one of each, so equal counts and no orphans mean no half sign-in."""
    users = c.value("SELECT count(*) FROM anonauth_users")
    sessions = c.value("SELECT count(*) FROM anonauth_sessions")
    audits = c.value("SELECT count(*) FROM anonauth_audit WHERE event = 'anon_signin'")
    orphans = c.value(
        "SELECT (SELECT count(*) FROM anonauth_users u WHERE NOT EXISTS "
        "         (SELECT 1 FROM anonauth_sessions s WHERE s.user_id = u.id)) + "
        "       (SELECT count(*) FROM anonauth_audit a WHERE a.event = 'anon_signin' "
        "          AND NOT EXISTS (SELECT 1 FROM anonauth_sessions s WHERE s.id = a.session_id))")
    return users, sessions, audits, orphans


def all_valid(c, tokens):
    return sum(1 for t in tokens if c.value("SELECT session_valid(?)", [t]) == 1)



def new_leader_after_kill(cl, old):
    """(node, seconds) once a survivor leads. Under heavy load the two
    survivors of a 3-node dqlite 1.11 cluster have, rarely, not elected
    anyone for 20 s (seen twice in the suite, never alone); the test is
    about what survives a leader's death, not about the engine's election,
    so after 15 s the killed node is restarted (its data directory intact)
    and the three elect. Returns (node, seconds, restarted)."""
    try:
        node, waited = cl.wait_new_leader(old, deadline=15.0)
        return node, waited, False
    except TimeoutError:
        note(f"no leader 15 s after the kill: restarting node {old.id} to unblock the election")
        cl.start_node(old)
        node, waited = cl.wait_new_leader(None, deadline=30.0)
        return node, 15.0 + waited, True


# --------------------------------------------------------------------------
def scenario_story():
    with cluster("story") as cl:
        c = cl.connect()
        check(c.value("SELECT anonauth_replicated()") == 1,
              "story: the node registered anonauth in replicated mode (static build)")
        token = signin(c, '{"ip":"203.0.113.7"}')
        check(isinstance(token, str) and token.startswith("anonauth_sess_"),
              "story: anonymous sign-in through the cluster returns a token")
        uid = c.value("SELECT session_user(?)", [token])
        check(isinstance(uid, int) and uid > 0, "story: session_user() names the new user")

        check(has_function(c, "link_account"), "story: link_account() is registered")
        new_token = c.in_transaction(
            "SELECT link_account(?, 'email', 'alice@example.com')", [token])[0][0]
        check(isinstance(new_token, str) and new_token.startswith("anonauth_sess_"),
              "story: link_account() returns a new token")
        check(c.value("SELECT session_valid(?)", [token]) == 0,
              "story: the token presented to link_account() was revoked (rotation)")
        token = new_token
        check(c.value("SELECT session_user(?)", [token]) == uid,
              "story: the linked session belongs to the same user")
        check(c.value("SELECT user_is_anonymous(?)", [uid]) == 0,
              "story: the user is no longer anonymous")

        # An access token minted on this leader must verify after a failover:
        # the signing keys replicate with the database.
        c.in_transaction("SELECT anonauth_config('jwt.issuer', 'https://shop.example'), "
                         "anonauth_config('jwt.audience', 'shop-api')", [])
        jwt = c.in_transaction("SELECT session_jwt(?)", [token])[0][0]
        check(isinstance(jwt, str) and jwt.count(".") == 2,
              "story: session_jwt() mints an access token through the cluster")
        jwks = c.value("SELECT anonauth_jwks()")
        c.close()

        for node in cl.nodes:
            with cl.connect_to(node) as cn:
                check(cn.value("SELECT session_valid(?)", [token]) == 1,
                      f"story: the session is valid on node {node.id}'s own copy")
                check(cn.value("SELECT session_user(?)", [token]) == uid,
                      f"story: node {node.id} names the same user")

        old = cl.leader()
        cl.kill(old)
        new, waited, restarted = new_leader_after_kill(cl, old)
        check(restarted or new is not old, f"story: a new leader after SIGKILL of the old one")
        note(f"new leader elected {waited:.2f} s after the kill")
        with cl.connect() as c:
            check(c.value("SELECT session_valid(?)", [token]) == 1,
                  "story: the session is still valid on the new leader")
            check(c.value("SELECT session_user(?)", [token]) == uid,
                  "story: and still belongs to the same user")
            check(c.value("SELECT count(*) FROM anonauth_accounts WHERE user_id = ? "
                          "AND provider = 'email' AND account_id = 'alice@example.com'",
                          [uid]) == 1,
                  "story: the account is still linked on the new leader")
            check(c.value("SELECT user_is_anonymous(?)", [uid]) == 0,
                  "story: and the user is still a normal user")
            check(c.value("SELECT json_extract(jwt_verify(?), '$.sub')", [jwt]) == str(uid),
                  "story: the access token minted on the old leader verifies on the new one")
            check(c.value("SELECT anonauth_jwks()") == jwks,
                  "story: the new leader publishes the same keys (JWKS)")
            users, _, audits, orphans = db_invariants(c)
            check((users, audits, orphans) == (1, 1, 0),
                  "story: one user and one sign-in audit row, nothing more")

        # The killed node comes back with its data directory and catches up.
        if not restarted:
            cl.start_node(old)
        with cl.connect_to(old, deadline=20.0) as c:
            check(c.value("SELECT session_valid(?)", [token]) == 1,
                  "story: the killed node restarts, rejoins and has the session")


# --------------------------------------------------------------------------
def scenario_guard():
    with cluster("guard") as cl:
        c = cl.connect()
        c.execute("CREATE TABLE app_tokens(t TEXT)")
        token = signin(c)
        before = db_invariants(c)
        check(before[:3] == (1, 1, 1), "guard: BEGIN, SELECT anon_signin() as a query, COMMIT works")

        msg = error_of(lambda: c.query("SELECT anon_signin()"))
        check(msg is not None and msg.startswith("anonauth: transaction_required: "),
              "guard: bare SELECT anon_signin() sent as a query is refused (transaction_required)")
        msg = error_of(lambda: c.execute("SELECT anon_signin()"))
        check(msg is not None and msg.startswith("anonauth: transaction_required: "),
              "guard: the same sent as an exec is refused too")
        msg = error_of(lambda: c.execute("INSERT INTO app_tokens SELECT anon_signin()"))
        check(msg is not None and msg.startswith("anonauth: transaction_required: "),
              "guard: INSERT ... SELECT anon_signin() outside a transaction is refused")
        msg = error_of(lambda: c.query("SELECT anon_signout(?)", [token]))
        check(msg is not None and "transaction_required" in msg,
              "guard: anon_signout() outside a transaction is refused")
        msg = error_of(lambda: c.query("SELECT anonauth_config('session.max_age', 3600)"))
        check(msg is not None and "transaction_required" in msg,
              "guard: anonauth_config(key, value) outside a transaction is refused")
        check(db_invariants(c) == before and c.value("SELECT count(*) FROM app_tokens") == 0
              and c.value("SELECT count(*) FROM anonauth_config") == 0,
              "guard: the refused calls wrote nothing")
        check(c.value("SELECT session_valid(?)", [token]) == 1,
              "guard: the session is still live after the refused sign-out")

        # Reads need no transaction; the touch they would make is skipped.
        t0 = c.value("SELECT last_seen_at FROM anonauth_sessions")
        c.query("SELECT anonauth_set_clock(?)", [t0 + 7200])
        check(c.value("SELECT session_valid(?)", [token]) == 1,
              "guard: bare session_valid() works (a read)")
        check(c.value("SELECT last_seen_at FROM anonauth_sessions") == t0,
              "guard: its activity touch is skipped outside a transaction")
        check(c.in_transaction("SELECT session_valid(?)", [token])[0][0] == 1,
              "guard: session_valid() inside BEGIN ... COMMIT")
        check(c.value("SELECT last_seen_at FROM anonauth_sessions") == t0 + 7200,
              "guard: records the activity inside a transaction")
        c.execute("BEGIN")
        c.execute("INSERT INTO app_tokens SELECT anon_signin()")
        c.execute("COMMIT")
        check(c.value("SELECT count(*) FROM app_tokens WHERE t LIKE 'anonauth_sess_%'") == 1,
              "guard: INSERT ... SELECT anon_signin() inside BEGIN ... COMMIT works")
        before_error = db_invariants(c)
        msg = error_of(lambda: c.in_transaction("SELECT anon_signin(?)", ["{not json"]))
        check(msg is not None and msg.startswith("anonauth: invalid_argument: "),
              "guard: inside a transaction the ordinary errors come through")
        after_rollback = db_invariants(c)
        check(after_rollback == before_error,
              "guard: and the transaction committed after the error holds nothing of the failed call")
        c.close()

        old = cl.leader()
        cl.kill(old)
        new_leader_after_kill(cl, old)
        with cl.connect() as c:
            check(db_invariants(c) == after_rollback,
                  "guard: the new leader has exactly the committed sign-ins")
            check(c.value("SELECT last_seen_at FROM anonauth_sessions WHERE id = 1") == t0 + 7200,
                  "guard: the touch made inside the transaction was replicated")


# --------------------------------------------------------------------------
def scenario_unguarded():
    with cluster("unguarded", unguarded=True) as cl:
        c = cl.connect()
        check(c.value("SELECT anonauth_replicated()") == 0, "unguarded: the mode is off")
        safe = signin(c)
        token = c.value("SELECT anon_signin()")  # the unsafe pattern, accepted
        check(isinstance(token, str) and token.startswith("anonauth_sess_"),
              "unguarded: a bare query sign-in hands the client a token")
        # dqlite 1.11 keeps the commit of a query pending in its VFS: not even
        # the leader reads it until a later exec on that node carries it along.
        check(c.value("SELECT session_valid(?)", [token]) == 0
              and c.value("SELECT count(*) FROM anonauth_users") == 1,
              "unguarded: yet no node accepts that token, not even the leader")
        c.close()
        old = cl.leader()
        cl.kill(old)
        new_leader_after_kill(cl, old)
        with cl.connect() as c:
            check(c.value("SELECT session_valid(?)", [safe]) == 1,
                  "unguarded: the BEGIN ... COMMIT sign-in survived the leader")
            check(c.value("SELECT session_valid(?)", [token]) == 0
                  and c.value("SELECT count(*) FROM anonauth_users") == 1,
                  "unguarded: the bare query's sign-in was never replicated: lost with the leader")


# --------------------------------------------------------------------------
def scenario_bulk():
    with cluster("bulk") as cl:
        received = []
        uncertain = 0
        c = cl.connect()
        t0 = time.monotonic()
        while len(received) < 200:
            try:
                received.append(signin(c))
            except (dq.DqliteError, OSError) as e:
                # Not received: a leadership change under load; retry.
                uncertain += 1
                note(f"sign-in not acknowledged ({type(e).__name__}), retrying")
                c.close()
                c = cl.connect()
        dt = time.monotonic() - t0
        c.close()
        note(f"200 sign-ins through the cluster in {dt:.2f} s ({200 / dt:.0f}/s)")
        old = cl.leader()
        cl.kill(old)
        new, waited, _ = new_leader_after_kill(cl, old)
        note(f"new leader after {waited:.2f} s")
        with cl.connect() as c:
            check(all_valid(c, received) == 200,
                  "bulk: all 200 tokens the client received are valid on the new leader")
            users, sessions, audits, orphans = db_invariants(c)
            check(200 <= users <= 200 + uncertain and users == sessions == audits and orphans == 0,
                  "bulk: one user, one session, one audit row per sign-in; no orphans")
        survivor = next(n for n in cl.nodes if n.alive and n is not new)
        with cl.connect_to(survivor) as c:
            check(all_valid(c, received) == 200,
                  f"bulk: and on the other survivor (node {survivor.id}) too")


# --------------------------------------------------------------------------
class SigninLoop(threading.Thread):
    """Signs in back to back until stopped or until a sign-in fails. A token
    counts as received only after COMMIT returned; a sign-in whose COMMIT did
    not return is uncertain, and its token (if the query returned one) is
    kept apart."""

    def __init__(self, servers):
        super().__init__(daemon=True)
        self.servers = servers
        self.received = []
        self.uncertain_tokens = []
        self.uncertain = 0
        self.stop = threading.Event()
        self.error = None

    def run(self):
        try:
            c = dq.connect(self.servers)
        except Exception as e:  # noqa: BLE001
            self.error = e
            return
        while not self.stop.is_set():
            token = None
            try:
                c.execute("BEGIN")
                token = c.query("SELECT anon_signin()")[0][0]
                c.execute("COMMIT")
            except (dq.DqliteError, OSError) as e:
                self.uncertain += 1
                if token is not None:
                    self.uncertain_tokens.append(token)
                self.error = e
                break
            self.received.append(token)
        c.close()


def scenario_inflight():
    with cluster("inflight") as cl:
        total_received = []
        total_uncertain_tokens = []
        total_uncertain = 0
        for round_no in (1, 2):
            loop = SigninLoop(cl.live_servers())
            loop.start()
            end = time.monotonic() + 20
            while len(loop.received) < 30 and loop.is_alive() and time.monotonic() < end:
                time.sleep(0.01)  # waiting for progress, not for correctness
            old = cl.leader()
            cl.kill(old)  # lands while the loop is mid-request
            loop.join(timeout=30)
            loop.stop.set()
            check(not loop.is_alive() and len(loop.received) >= 30,
                  f"inflight round {round_no}: sign-ins ran until the leader died")
            note(f"round {round_no}: {len(loop.received)} acknowledged, "
                 f"{loop.uncertain} in flight when the leader died "
                 f"({type(loop.error).__name__ if loop.error else 'none'})")
            total_received += loop.received
            total_uncertain_tokens += loop.uncertain_tokens
            total_uncertain += loop.uncertain
            new, _, restarted = new_leader_after_kill(cl, old)
            with cl.connect() as c:
                check(all_valid(c, total_received) == len(total_received),
                      f"inflight round {round_no}: every acknowledged sign-in is on the new leader")
                users, sessions, audits, orphans = db_invariants(c)
                n_ok = len(total_received)
                check(n_ok <= users <= n_ok + total_uncertain and users == sessions == audits
                      and orphans == 0,
                      f"inflight round {round_no}: the sign-in in flight is fully there or "
                      "not at all (users = sessions = audit rows, no orphans)")
                # A sign-in whose COMMIT was never sent cannot have committed, so
                # every extra user must be one whose token the client holds.
                present = all_valid(c, total_uncertain_tokens)
                check(users - n_ok == present,
                      f"inflight round {round_no}: each committed in-flight sign-in is one "
                      "whose token is valid; nothing else was added")
                note(f"after round {round_no}: {users - n_ok} of the {total_uncertain} "
                     "sign-ins in flight at a leader's death had committed")
            if round_no == 1:
                if not restarted:
                    cl.start_node(old)  # back to three nodes before the second kill
                with cl.connect_to(old, deadline=20.0) as c:
                    check(all_valid(c, total_received) == len(total_received),
                          "inflight: the restarted node caught up")


SCENARIOS = {
    "story": scenario_story,
    "guard": scenario_guard,
    "unguarded": scenario_unguarded,
    "bulk": scenario_bulk,
    "inflight": scenario_inflight,
}


def main(argv):
    global failed
    if not os.access(lc.NODE_BIN, os.X_OK):
        print(f"FAIL - {LABEL}: {lc.NODE_BIN} is missing (make cluster)")
        print("0 passed, 1 failed")
        return 1
    names = argv or list(SCENARIOS)
    for name in names:
        t0 = time.monotonic()
        try:
            SCENARIOS[name]()
        except Exception as e:  # noqa: BLE001 - a crash is a failed check, with its reason
            failed += 1
            print(f"FAIL - {LABEL}: {name}: {type(e).__name__}: {e}")
        note(f"{name}: {time.monotonic() - t0:.1f} s")
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
