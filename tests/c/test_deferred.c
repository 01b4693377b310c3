/*
** Writing calls inside a deferred BEGIN (issue 13).
**
** SQLite runs the busy handler only for a transaction that holds no
** snapshot yet: a transaction that has read and must now write fails at
** once with SQLITE_BUSY, or SQLITE_BUSY_SNAPSHOT when another connection
** committed since it read. So:
**   - load: 4 processes on one new WAL file, each request on a new
**     connection with a 5 s busy timeout, `BEGIN; SELECT <call>; COMMIT`
**     as web apps do: no request fails (anon_signin; then session_valid
**     with a touch due, link_account and anon_signout);
**   - every writing call first in a deferred BEGIN waits for the write
**     lock through the busy handler, shown without timing: the handler
**     commits the connection holding the lock, and the call then succeeds;
**     read-only calls never take the write lock;
**   - after the transaction has read and another connection has written,
**     a writing call fails with the extended code SQLITE_BUSY_SNAPSHOT,
**     says to restart with BEGIN IMMEDIATE, and writes nothing; with a read
**     snapshot that is not stale but the lock taken, it fails with
**     SQLITE_BUSY saying the same.
** Counts are asserted, never latencies. Tokens stay in memory.
*/
#include "harness.h"

#include <sys/wait.h>
#include <time.h>

#define PROCS 4
#define PER_PROC 150 /* sign-ins per process */
#define FOLLOW 50    /* per process: session_valid, link_account, anon_signout each */
#define TOKEN_LEN 57

/* ---- load: many processes, a new connection per request ------------------ */

typedef struct {
  int signin_ok, signin_failed;
  int valid_ok, valid_failed; /* ok: session_valid() answered 1 */
  int link_ok, link_failed;
  int signout_ok, signout_failed;
  int tokens; /* made for the follow-up calls */
  int last_code;
  char last_error[160];
} tally;

/* One request: a new connection, a deferred transaction around one call.
** 0 on success with the result's text in out; 1 on failure (recorded). */
static int request(const char *path, const char *sql, const char *param, long long clock,
                   char *out, size_t cap, tally *t) {
  sqlite3 *db = harness_open(path);
  sqlite3_stmt *st = NULL;
  int failed = 1;
  if (db == NULL) {
    snprintf(t->last_error, sizeof t->last_error, "could not open");
    return 1;
  }
  sqlite3_busy_timeout(db, 5000);
  if (clock > 0) {
    char set[64];
    snprintf(set, sizeof set, "SELECT anonauth_set_clock(%lld)", clock);
    sqlite3_exec(db, set, NULL, NULL, NULL);
  }
  if (sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) == SQLITE_OK &&
      sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
    if (param) sqlite3_bind_text(st, 1, param, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(st) == SQLITE_ROW) {
      const unsigned char *v = sqlite3_column_text(st, 0);
      snprintf(out, cap, "%s", v ? (const char *)v : "");
      sqlite3_finalize(st);
      st = NULL;
      failed = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK;
    }
  }
  if (failed) {
    t->last_code = sqlite3_extended_errcode(db);
    snprintf(t->last_error, sizeof t->last_error, "%s", sqlite3_errmsg(db));
    sqlite3_finalize(st);
    if (!sqlite3_get_autocommit(db)) sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
  }
  sqlite3_close(db);
  return failed;
}

/* Tokens for the follow-up calls, made apart from the measured sign-ins
** (in one BEGIN IMMEDIATE) so that each kind of call is measured alone. */
static int make_tokens(const char *path, char tokens[][TOKEN_LEN + 1], int n) {
  sqlite3 *db = harness_open(path);
  sqlite3_stmt *st = NULL;
  int made = 0;
  if (db == NULL) return 0;
  sqlite3_busy_timeout(db, 5000);
  if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK &&
      sqlite3_prepare_v2(db, "SELECT anon_signin()", -1, &st, NULL) == SQLITE_OK) {
    for (int i = 0; i < n; i++) {
      if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_bytes(st, 0) == TOKEN_LEN) {
        memcpy(tokens[i], sqlite3_column_text(st, 0), TOKEN_LEN);
        made++;
      }
      sqlite3_reset(st);
    }
  }
  sqlite3_finalize(st);
  if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) made = 0;
  sqlite3_close(db);
  return made;
}

static void child(const char *path, int proc, int fd) {
  static char tokens[3 * FOLLOW][TOKEN_LEN + 1];
  char out[128], email[64];
  tally t;
  memset(&t, 0, sizeof t);
  memset(tokens, 0, sizeof tokens);
  for (int i = 0; i < PER_PROC; i++) {
    if (request(path, "SELECT anon_signin()", NULL, 0, out, sizeof out, &t) == 0 &&
        strlen(out) == TOKEN_LEN)
      t.signin_ok++;
    else
      t.signin_failed++;
  }
  t.tokens = make_tokens(path, tokens, 3 * FOLLOW);
  for (int i = 0; i < FOLLOW; i++) {
    /* Two hours on: a touch is due (session.touch_interval is 1 h). */
    long long later = (long long)time(NULL) + 7200;
    const char *tok = tokens[i];
    if (request(path, "SELECT session_valid(?1)", tok, later, out, sizeof out, &t) == 0)
      t.valid_ok += strcmp(out, "1") == 0;
    else
      t.valid_failed++;

    tok = tokens[FOLLOW + i];
    snprintf(email, sizeof email, "p%d-%d@example.com", proc, i);
    {
      char sql[160];
      snprintf(sql, sizeof sql, "SELECT link_account(?1, 'email', '%s')", email);
      if (request(path, sql, tok, 0, out, sizeof out, &t) == 0 && strlen(out) == TOKEN_LEN)
        t.link_ok++;
      else
        t.link_failed++;
    }

    tok = tokens[2 * FOLLOW + i];
    if (request(path, "SELECT anon_signout(?1)", tok, 0, out, sizeof out, &t) == 0)
      t.signout_ok += strcmp(out, "1") == 0;
    else
      t.signout_failed++;
  }
  memset(tokens, 0, sizeof tokens);
  if (write(fd, &t, sizeof t) != (ssize_t)sizeof t) _exit(3);
  _exit(0);
}

static void load(void) {
  char path[512];
  int fds[PROCS][2];
  pid_t pids[PROCS];
  tally sum, t;
  int children_ok = 1, reported = 0;
  sqlite3 *db;
  memset(&sum, 0, sizeof sum);
  harness_path(path, sizeof path, "deferred-load");
  harness_remove(path);
  /* A new file: the first calls also race to create anonauth's tables. */
  db = harness_open(path);
  if (db == NULL) {
    CHECK(0, "opens the load database");
    return;
  }
  sqlite3_exec(db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL);
  sqlite3_close(db);

  for (int p = 0; p < PROCS; p++) {
    if (pipe(fds[p]) != 0) exit(1);
    pids[p] = fork();
    if (pids[p] == 0) {
      close(fds[p][0]);
      child(path, p, fds[p][1]);
    }
    close(fds[p][1]);
  }
  for (int p = 0; p < PROCS; p++) {
    if (read(fds[p][0], &t, sizeof t) == (ssize_t)sizeof t) {
      reported++;
      sum.signin_ok += t.signin_ok;
      sum.signin_failed += t.signin_failed;
      sum.valid_ok += t.valid_ok;
      sum.valid_failed += t.valid_failed;
      sum.link_ok += t.link_ok;
      sum.link_failed += t.link_failed;
      sum.signout_ok += t.signout_ok;
      sum.signout_failed += t.signout_failed;
      sum.tokens += t.tokens;
      if (t.last_error[0]) {
        sum.last_code = t.last_code;
        memcpy(sum.last_error, t.last_error, sizeof sum.last_error);
      }
    }
    close(fds[p][0]);
  }
  for (int p = 0; p < PROCS; p++) {
    int status = 0;
    waitpid(pids[p], &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) children_ok = 0;
  }
  CHECK(children_ok && reported == PROCS, "all %d processes ran to their end", PROCS);
  if (sum.last_error[0])
    printf("# last error seen (extended code %d): %s\n", sum.last_code, sum.last_error);
  CHECK(sum.tokens == PROCS * 3 * FOLLOW, "%d sessions made (bare, in BEGIN IMMEDIATE) for the "
        "follow-up calls", sum.tokens);
  CHECK(sum.signin_failed == 0 && sum.signin_ok == PROCS * PER_PROC,
        "BEGIN; SELECT anon_signin(); COMMIT on a new connection each time: %d of %d failed",
        sum.signin_failed, PROCS * PER_PROC);
  CHECK(sum.valid_failed == 0 && sum.valid_ok == PROCS * FOLLOW,
        "BEGIN; SELECT session_valid(?) (touch due); COMMIT: %d of %d failed, %d answered 1",
        sum.valid_failed, PROCS * FOLLOW, sum.valid_ok);
  CHECK(sum.link_failed == 0 && sum.link_ok == PROCS * FOLLOW,
        "BEGIN; SELECT link_account(?, ...); COMMIT: %d of %d failed", sum.link_failed,
        PROCS * FOLLOW);
  CHECK(sum.signout_failed == 0 && sum.signout_ok == PROCS * FOLLOW,
        "BEGIN; SELECT anon_signout(?); COMMIT: %d of %d failed, %d signed out",
        sum.signout_failed, PROCS * FOLLOW, sum.signout_ok);

  db = harness_open(path);
  if (db == NULL) {
    CHECK(0, "reopens the load database");
    return;
  }
  /* What committed is exactly what succeeded. */
  CHECK(harness_int(db, "SELECT count(*) FROM anonauth_users") == sum.signin_ok + sum.tokens,
        "one user per successful sign-in");
  CHECK(harness_int(db, "SELECT count(*) FROM anonauth_audit WHERE event = 'anon_signin'") ==
            sum.signin_ok + sum.tokens,
        "one anon_signin audit row per successful sign-in");
  CHECK(harness_int(db, "SELECT count(*) FROM anonauth_accounts") == sum.link_ok,
        "one account per successful link");
  CHECK(harness_int(db, "SELECT count(*) FROM anonauth_sessions") ==
            sum.signin_ok + sum.tokens + sum.link_ok,
        "one session per sign-in, plus the one each link opened");
  CHECK(harness_int(db, "SELECT count(*) FROM anonauth_audit WHERE event = 'signout'") ==
            sum.signout_ok,
        "one signout audit row per sign-out");
  /* The touch stays best-effort: session_valid() is a read and takes no
  ** write lock, so a touch that finds the lock taken is skipped. */
  printf("# %lld of %d due touches were written\n",
         harness_int(db, "SELECT count(*) FROM anonauth_sessions WHERE last_seen_at > created_at"),
         PROCS * FOLLOW);
  sqlite3_close(db);
  harness_remove(path);
}

/* ---- the busy handler, without timing ------------------------------------ */

/* A busy handler that frees the lock: it commits the connection holding it. */
typedef struct {
  sqlite3 *holder;
  int calls;
} release_on_busy;

static int commit_holder(void *arg, int n) {
  release_on_busy *r = arg;
  r->calls++;
  if (!sqlite3_get_autocommit(r->holder)) sqlite3_exec(r->holder, "COMMIT", NULL, NULL, NULL);
  return n < 3;
}

/* Runs one statement with an optional text parameter; its first column's
** text goes into out. Returns the step's result code. */
static int run(sqlite3 *db, const char *sql, const char *param, char *out, size_t cap) {
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
  if (out) out[0] = 0;
  if (rc != SQLITE_OK) return rc;
  if (param) sqlite3_bind_text(st, 1, param, -1, SQLITE_TRANSIENT);
  rc = sqlite3_step(st);
  if (rc == SQLITE_ROW && out) {
    const unsigned char *v = sqlite3_column_text(st, 0);
    snprintf(out, cap, "%s", v ? (const char *)v : "");
  }
  while (rc == SQLITE_ROW) rc = sqlite3_step(st);
  sqlite3_finalize(st);
  return rc;
}

/* In a deferred BEGIN as its first statement, sql waits for the write lock
** through the busy handler (which frees it) and succeeds. */
static void waits_for_lock(sqlite3 *a, sqlite3 *b, const char *what, const char *sql,
                           const char *param) {
  release_on_busy r = {b, 0};
  int rc;
  if (sqlite3_exec(b, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
    CHECK(0, "%s: the other connection takes the write lock", what);
    return;
  }
  sqlite3_busy_handler(a, commit_holder, &r);
  sqlite3_exec(a, "BEGIN", NULL, NULL, NULL);
  rc = run(a, sql, param, NULL, 0);
  CHECK(rc == SQLITE_DONE && r.calls >= 1,
        "%s first in a deferred BEGIN waits through the busy handler (%d calls) and "
        "succeeds (rc %d%s%s)",
        what, r.calls, rc, rc == SQLITE_DONE ? "" : ": ", rc == SQLITE_DONE ? "" : sqlite3_errmsg(a));
  CHECK(sqlite3_exec(a, "COMMIT", NULL, NULL, NULL) == SQLITE_OK, "%s: COMMIT", what);
  if (!sqlite3_get_autocommit(a)) sqlite3_exec(a, "ROLLBACK", NULL, NULL, NULL);
  if (!sqlite3_get_autocommit(b)) sqlite3_exec(b, "ROLLBACK", NULL, NULL, NULL);
  sqlite3_busy_handler(a, NULL, NULL);
}

/* A call that only reads, first in a deferred BEGIN while another
** connection holds the write lock: no waiting, and no write lock taken. */
static void reads_without_lock(sqlite3 *a, sqlite3 *b, const char *what, const char *sql,
                               const char *param) {
  release_on_busy r = {b, 0};
  int rc, state;
  sqlite3_exec(b, "BEGIN IMMEDIATE", NULL, NULL, NULL);
  sqlite3_busy_handler(a, commit_holder, &r);
  sqlite3_exec(a, "BEGIN", NULL, NULL, NULL);
  rc = run(a, sql, param, NULL, 0);
  state = sqlite3_txn_state(a, "main");
  CHECK(rc == SQLITE_DONE && r.calls == 0 && state != SQLITE_TXN_WRITE,
        "%s (read-only) first in a deferred BEGIN takes no write lock (rc %d, busy calls %d, "
        "transaction state %d)",
        what, rc, r.calls, state);
  sqlite3_exec(a, "COMMIT", NULL, NULL, NULL);
  sqlite3_exec(b, "ROLLBACK", NULL, NULL, NULL);
  sqlite3_busy_handler(a, NULL, NULL);
}

static void busy_handler_cases(void) {
  char path[512], tok[128], tok2[128], tok3[128], out[128];
  sqlite3 *a, *b;
  release_on_busy r;
  harness_path(path, sizeof path, "deferred-lock");
  harness_remove(path);
  a = harness_open(path);
  b = harness_open(path);
  if (a == NULL || b == NULL) {
    CHECK(0, "opens two connections");
    return;
  }
  sqlite3_exec(a, "PRAGMA journal_mode=WAL", NULL, NULL, NULL);

  /* A new file: the call creates anonauth's tables under the lock it waited for. */
  waits_for_lock(a, b, "anon_signin() on a new file", "SELECT anon_signin()", NULL);
  CHECK(harness_int(a, "SELECT count(*) FROM anonauth_users") == 1, "and its user is there");

  run(b, "SELECT anon_signin()", NULL, tok, sizeof tok);
  run(b, "SELECT anon_signin()", NULL, tok2, sizeof tok2);
  run(b, "SELECT anon_signin()", NULL, tok3, sizeof tok3);
  waits_for_lock(a, b, "anon_signin()", "SELECT anon_signin()", NULL);
  waits_for_lock(a, b, "anon_signin(opts.ip)", "SELECT anon_signin(json_object('ip', '192.0.2.1'))",
                 NULL);
  waits_for_lock(a, b, "anon_signout()", "SELECT anon_signout(?1)", tok);
  waits_for_lock(a, b, "session_revoke_all()", "SELECT session_revoke_all(1)", NULL);
  waits_for_lock(a, b, "link_account()", "SELECT link_account(?1, 'email', 'a@example.com')",
                 tok2);
  waits_for_lock(a, b, "account_signup()", "SELECT account_signup('email', 'b@example.com')",
                 NULL);
  waits_for_lock(a, b, "account_signin()", "SELECT account_signin('email', 'b@example.com')",
                 NULL);
  waits_for_lock(a, b, "anonauth_config(key, value)",
                 "SELECT anonauth_config('session.touch_interval', 1800)", NULL);
  waits_for_lock(a, b, "anon_purge()", "SELECT anon_purge()", NULL);
  waits_for_lock(a, b, "DELETE FROM anon_sessions", "DELETE FROM anon_sessions WHERE id = 1",
                 NULL);

  reads_without_lock(a, b, "session_valid()", "SELECT session_valid(?1)", tok3);
  reads_without_lock(a, b, "session_user()", "SELECT session_user(?1)", tok3);
  reads_without_lock(a, b, "anonauth_use()", "SELECT anonauth_use(?1)", tok3);
  reads_without_lock(a, b, "user_is_anonymous()", "SELECT user_is_anonymous(2)", NULL);
  reads_without_lock(a, b, "anonauth_config(key)", "SELECT anonauth_config('session.max_age')",
                     NULL);
  reads_without_lock(a, b, "SELECT FROM anon_sessions", "SELECT count(*) FROM anon_sessions",
                     NULL);
  reads_without_lock(a, b, "anon_signout(garbage)", "SELECT anon_signout('not a token')", NULL);

  /* Another connection's call created the tables, uncommitted, while this
  ** one waited: the call finds them after the wait. */
  sqlite3_close(a);
  sqlite3_close(b);
  harness_remove(path);
  a = harness_open(path);
  b = harness_open(path);
  if (a == NULL || b == NULL) {
    CHECK(0, "opens two connections on a second new file");
    return;
  }
  sqlite3_exec(a, "PRAGMA journal_mode=WAL", NULL, NULL, NULL);
  r.holder = b;
  r.calls = 0;
  sqlite3_exec(b, "BEGIN IMMEDIATE", NULL, NULL, NULL);
  CHECK(run(b, "SELECT anon_signin()", NULL, out, sizeof out) == SQLITE_DONE,
        "a sign-in creates the tables inside another connection's open transaction");
  sqlite3_busy_handler(a, commit_holder, &r);
  sqlite3_exec(a, "BEGIN", NULL, NULL, NULL);
  CHECK(run(a, "SELECT anon_signin()", NULL, out, sizeof out) == SQLITE_DONE && r.calls >= 1,
        "a deferred BEGIN's first call waits for that commit and signs in (%s)",
        sqlite3_errmsg(a));
  CHECK(sqlite3_exec(a, "COMMIT", NULL, NULL, NULL) == SQLITE_OK, "and commits");
  CHECK(harness_int(a, "SELECT count(*) FROM anonauth_users") == 2, "two users");
  sqlite3_close(a);
  sqlite3_close(b);
  harness_remove(path);
}

/* ---- a transaction that has read first ------------------------------------ */

static int contains(const char *s, const char *part) { return strstr(s, part) != NULL; }

static void after_reads(void) {
  char path[512], msg[512], tok[128], out[128];
  sqlite3 *a, *b;
  release_on_busy r;
  long long users;
  int rc;
  harness_path(path, sizeof path, "deferred-stale");
  harness_remove(path);
  a = harness_open(path);
  b = harness_open(path);
  if (a == NULL || b == NULL) {
    CHECK(0, "opens two connections");
    return;
  }
  sqlite3_exec(a, "PRAGMA journal_mode=WAL", NULL, NULL, NULL);
  sqlite3_busy_timeout(a, 5000);
  sqlite3_busy_timeout(b, 5000);
  run(b, "SELECT anon_signin()", NULL, tok, sizeof tok);

  static const char *const calls[] = {
      "SELECT anon_signin()",
      "SELECT account_signup('email', 'stale@example.com')",
      "SELECT anonauth_config('session.touch_interval', 1800)",
      "SELECT anon_signout(?1)",
      NULL};
  for (int i = 0; calls[i]; i++) {
    long long audit;
    users = harness_int(a, "SELECT count(*) FROM anonauth_users");
    sqlite3_exec(a, "BEGIN", NULL, NULL, NULL);
    harness_int(a, "SELECT count(*) FROM anonauth_users"); /* the snapshot */
    CHECK(run(b, "SELECT anon_signin()", NULL, out, sizeof out) == SQLITE_DONE,
          "another connection signs in and commits");
    rc = run(a, calls[i], contains(calls[i], "?1") ? tok : NULL, NULL, 0);
    snprintf(msg, sizeof msg, "%s", sqlite3_errmsg(a));
    CHECK(rc == SQLITE_BUSY && sqlite3_extended_errcode(a) == SQLITE_BUSY_SNAPSHOT,
          "%s on a stale snapshot: SQLITE_BUSY, extended SQLITE_BUSY_SNAPSHOT (rc %d, "
          "extended %d)",
          calls[i], rc, sqlite3_extended_errcode(a));
    CHECK(strncmp(msg, "anonauth: storage: ", 19) == 0 && contains(msg, "BEGIN IMMEDIATE"),
          "the message says to restart with BEGIN IMMEDIATE: %s", msg);
    audit = harness_int(a, "SELECT count(*) FROM anonauth_audit");
    CHECK(sqlite3_get_autocommit(a) == 0, "the caller's transaction is still open");
    sqlite3_exec(a, "ROLLBACK", NULL, NULL, NULL);
    CHECK(harness_int(a, "SELECT count(*) FROM anonauth_users") == users + 1 &&
              harness_int(a, "SELECT count(*) FROM anonauth_audit") == audit + 1,
          "nothing of the refused call was written");
  }

  /* Restarting as told works. */
  sqlite3_exec(a, "BEGIN IMMEDIATE", NULL, NULL, NULL);
  CHECK(run(a, "SELECT anon_signin()", NULL, out, sizeof out) == SQLITE_DONE &&
            strlen(out) == TOKEN_LEN,
        "restarted with BEGIN IMMEDIATE, the sign-in succeeds");
  CHECK(sqlite3_exec(a, "COMMIT", NULL, NULL, NULL) == SQLITE_OK, "and commits");

  /* A snapshot that is not stale, but the write lock is taken: SQLite does
  ** not call the busy handler here, so the call cannot wait. */
  users = harness_int(a, "SELECT count(*) FROM anonauth_users");
  r.holder = b;
  r.calls = 0;
  sqlite3_busy_handler(a, commit_holder, &r);
  sqlite3_exec(a, "BEGIN", NULL, NULL, NULL);
  harness_int(a, "SELECT count(*) FROM anonauth_users");
  sqlite3_exec(b, "BEGIN IMMEDIATE", NULL, NULL, NULL);
  rc = run(a, "SELECT anon_signin()", NULL, NULL, 0);
  snprintf(msg, sizeof msg, "%s", sqlite3_errmsg(a));
  CHECK(rc == SQLITE_BUSY && sqlite3_extended_errcode(a) == SQLITE_BUSY && r.calls == 0,
        "after reads, with the write lock taken: SQLITE_BUSY at once, no busy handler "
        "(rc %d, extended %d, busy calls %d)",
        rc, sqlite3_extended_errcode(a), r.calls);
  CHECK(strncmp(msg, "anonauth: storage: ", 19) == 0 && contains(msg, "BEGIN IMMEDIATE"),
        "the message says to use BEGIN IMMEDIATE: %s", msg);
  sqlite3_exec(b, "ROLLBACK", NULL, NULL, NULL);
  sqlite3_exec(a, "ROLLBACK", NULL, NULL, NULL);
  sqlite3_busy_handler(a, NULL, NULL);
  CHECK(harness_int(a, "SELECT count(*) FROM anonauth_users") == users, "nothing was written");

  /* A new file, read first; another connection creates the tables: the
  ** call would have to create them on a stale snapshot. */
  {
    char fresh[512];
    sqlite3 *c, *d;
    harness_path(fresh, sizeof fresh, "deferred-stale-new");
    harness_remove(fresh);
    c = harness_open(fresh);
    d = harness_open(fresh);
    if (c != NULL && d != NULL) {
      sqlite3_exec(c, "PRAGMA journal_mode=WAL", NULL, NULL, NULL);
      sqlite3_exec(c, "BEGIN", NULL, NULL, NULL);
      harness_int(c, "SELECT count(*) FROM sqlite_master");
      run(d, "SELECT anon_signin()", NULL, out, sizeof out);
      rc = run(c, "SELECT anon_signin()", NULL, NULL, 0);
      snprintf(msg, sizeof msg, "%s", sqlite3_errmsg(c));
      CHECK(rc == SQLITE_BUSY && sqlite3_extended_errcode(c) == SQLITE_BUSY_SNAPSHOT &&
                contains(msg, "BEGIN IMMEDIATE"),
            "a new file read first, tables created meanwhile: SQLITE_BUSY_SNAPSHOT, "
            "restart with BEGIN IMMEDIATE (rc %d, extended %d)",
            rc, sqlite3_extended_errcode(c));
      sqlite3_exec(c, "ROLLBACK", NULL, NULL, NULL);
      CHECK(harness_int(c, "SELECT count(*) FROM anonauth_users") == 1, "only the other user");
    } else {
      CHECK(0, "opens two connections on a new file");
    }
    sqlite3_close(c);
    sqlite3_close(d);
    harness_remove(fresh);
  }

  /* After reads with nobody else writing, the call simply works. */
  sqlite3_exec(a, "BEGIN", NULL, NULL, NULL);
  harness_int(a, "SELECT count(*) FROM anonauth_users");
  CHECK(run(a, "SELECT anon_signin()", NULL, out, sizeof out) == SQLITE_DONE,
        "after reads, uncontended, the sign-in succeeds");
  CHECK(sqlite3_exec(a, "COMMIT", NULL, NULL, NULL) == SQLITE_OK, "and commits");
  sqlite3_close(a);
  sqlite3_close(b);
  harness_remove(path);
}

int main(void) {
  check_label = getenv("TEST_LABEL") ? getenv("TEST_LABEL") : "c";
  busy_handler_cases();
  after_reads();
  load();
  return check_done();
}
