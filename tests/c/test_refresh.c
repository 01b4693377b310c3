/*
** session_refresh() from several processes at once, on one WAL database:
**   - 4 processes present the same token at the same instant (within
**     session.reuse_window): every one gets a token, all the same one, it
**     is valid, the presented one is not, and the session has exactly one
**     live token;
**   - a spent token presented after the window, by another process, revokes
**     the session: no live token is left and one refresh_reuse row is
**     written;
**   - a refresh of the current token racing a replay of an older one: the
**     session ends revoked whichever came first, with one refresh_reuse row;
**   - a replay that meets a locked database fails with an error and revokes
**     nothing (a transient failure is never taken for theft).
** The clock is the extension's (anonauth_set_clock in each process). Tokens
** travel over pipes, never to output.
*/
#include "harness.h"

#include <sys/wait.h>

#define PROCS 4
#define ROUNDS 25
#define TOKEN_LEN 57
#define T0 1800000000LL

/* One process: waits for the go byte, sets its clock, refreshes `token`,
** writes the result (TOKEN_LEN bytes, or that many '-' for NULL). */
static int child(const char *path, const char *token, long long now, int go, int out) {
  sqlite3 *db = harness_open(path);
  sqlite3_stmt *st = NULL;
  char buf[TOKEN_LEN], byte;
  char sql[64];
  int rc;
  if (db == NULL) return 2;
  sqlite3_busy_timeout(db, 30000);
  snprintf(sql, sizeof sql, "SELECT anonauth_set_clock(%lld)", now);
  if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK) return 3;
  if (sqlite3_prepare_v2(db, "SELECT session_refresh(?1)", -1, &st, NULL) != SQLITE_OK) return 4;
  sqlite3_bind_text(st, 1, token, TOKEN_LEN, SQLITE_STATIC);
  if (read(go, &byte, 1) != 1) return 5;
  rc = sqlite3_step(st);
  if (rc != SQLITE_ROW) {
    fprintf(stderr, "session_refresh failed: %s\n", sqlite3_errmsg(db));
    return 6;
  }
  if (sqlite3_column_type(st, 0) == SQLITE_NULL)
    memset(buf, '-', TOKEN_LEN);
  else if (sqlite3_column_bytes(st, 0) == TOKEN_LEN)
    memcpy(buf, sqlite3_column_text(st, 0), TOKEN_LEN);
  else
    return 7;
  sqlite3_finalize(st);
  sqlite3_close(db);
  return write(out, buf, TOKEN_LEN) == TOKEN_LEN ? 0 : 8;
}

/* Runs n processes, process i refreshing tokens[i] at now[i], all released
** at once; results[i] gets each answer ("" for NULL). 1 when all ran. */
static int race(const char *path, int n, char tokens[][TOKEN_LEN + 1], const long long *now,
                char results[][TOKEN_LEN + 1]) {
  int go[2], outs[PROCS][2], ok = 1;
  pid_t pids[PROCS];
  if (pipe(go) != 0) return 0;
  for (int i = 0; i < n; i++) {
    if (pipe(outs[i]) != 0) return 0;
    pids[i] = fork();
    if (pids[i] == 0) {
      close(go[1]);
      close(outs[i][0]);
      _exit(child(path, tokens[i], now[i], go[0], outs[i][1]));
    }
    close(outs[i][1]);
  }
  close(go[0]);
  for (int i = 0; i < n; i++) {
    if (write(go[1], "g", 1) != 1) ok = 0;
  }
  close(go[1]);
  for (int i = 0; i < n; i++) {
    int status = 0;
    ssize_t got = read(outs[i][0], results[i], TOKEN_LEN);
    close(outs[i][0]);
    waitpid(pids[i], &status, 0);
    if (got != TOKEN_LEN || !WIFEXITED(status) || WEXITSTATUS(status) != 0) ok = 0;
    results[i][TOKEN_LEN] = 0;
    if (results[i][0] == '-') results[i][0] = 0;
  }
  return ok;
}

static long long live_sessions(sqlite3 *db) {
  return harness_int(db, "SELECT count(*) FROM anonauth_sessions WHERE revoked_at IS NULL");
}

int main(void) {
  char path[512], tok[PROCS][TOKEN_LEN + 1], res[PROCS][TOKEN_LEN + 1];
  long long now[PROCS];
  int all_ran = 1, all_same = 1, all_valid = 1, old_dead = 1, one_live = 1;
  int window_ran, window_revoked, race_ran, race_revoked;
  sqlite3 *db;
  check_label = getenv("TEST_LABEL") ? getenv("TEST_LABEL") : "c";
  harness_path(path, sizeof path, "refresh");
  harness_remove(path);
  db = harness_open(path);
  REQUIRE(db != NULL, "opens the database");
  sqlite3_exec(db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL);
  sqlite3_busy_timeout(db, 30000);
  sqlite3_exec(db, "SELECT anonauth_set_clock(1800000000)", NULL, NULL, NULL);

  /* 1. Concurrent refreshes of one token within the window. */
  for (int r = 0; r < ROUNDS; r++) {
    char first[TOKEN_LEN + 1];
    sqlite3_exec(db, "UPDATE anonauth_sessions SET revoked_at = 1 WHERE revoked_at IS NULL",
                 NULL, NULL, NULL);
    REQUIRE(harness_text(db, "SELECT anon_signin()", first, sizeof first) == SQLITE_OK,
            "signs in (round %d)", r);
    for (int i = 0; i < PROCS; i++) {
      memcpy(tok[i], first, sizeof first);
      now[i] = T0;
    }
    if (!race(path, PROCS, tok, now, res)) all_ran = 0;
    for (int i = 0; i < PROCS; i++) {
      if (strcmp(res[i], res[0]) != 0 || res[i][0] == 0) all_same = 0;
    }
    if (res[0][0] == 0 || harness_valid(db, res[0]) != 1) all_valid = 0;
    if (harness_valid(db, first) != 0) old_dead = 0;
    if (live_sessions(db) != 1) one_live = 0;
  }
  CHECK(all_ran, "every process ran every refresh without an error (%d rounds x %d)", ROUNDS,
        PROCS);
  CHECK(all_same, "the processes refreshing one token at once all got the same new token");
  CHECK(all_valid, "that token is valid");
  CHECK(old_dead, "the presented token no longer is");
  CHECK(one_live, "the session has exactly one live token each round");
  CHECK(harness_int(db, "SELECT count(*) FROM anonauth_audit WHERE event = 'refresh_reuse'") == 0,
        "no grace-window reuse was taken for theft");

  /* 2. The spent token after the window, from another process: revoked. */
  memcpy(tok[0], res[0], sizeof res[0]); /* the current token of the last session */
  now[0] = T0 + 1;
  window_ran = race(path, 1, tok, now, res); /* current -> next */
  memcpy(tok[1], tok[0], sizeof tok[0]);     /* now the previous token */
  now[1] = T0 + 1 + 10;
  memcpy(tok[0], tok[1], sizeof tok[1]);
  now[0] = now[1];
  window_ran = window_ran && race(path, 1, tok, now, res);
  window_revoked = res[0][0] == 0 && live_sessions(db) == 0;
  CHECK(window_ran, "the processes ran");
  CHECK(window_revoked, "the previous token after the window answers NULL and revokes the session");
  CHECK(harness_int(db, "SELECT count(*) FROM anonauth_audit WHERE event = 'refresh_reuse'") == 1,
        "one refresh_reuse audit row");

  /* 3. A refresh of the current token racing a replay of an older one. */
  {
    char t1[TOKEN_LEN + 1], t2[TOKEN_LEN + 1], t3[TOKEN_LEN + 1];
    REQUIRE(harness_text(db, "SELECT anon_signin()", t1, sizeof t1) == SQLITE_OK, "signs in");
    memcpy(tok[0], t1, sizeof t1);
    now[0] = T0;
    race_ran = race(path, 1, tok, now, res);
    memcpy(t2, res[0], sizeof t2);
    memcpy(tok[0], t2, sizeof t2);
    race_ran = race_ran && race(path, 1, tok, now, res);
    memcpy(t3, res[0], sizeof t3);
    memcpy(tok[0], t3, sizeof t3); /* the owner refreshes its current token */
    memcpy(tok[1], t1, sizeof t1); /* the thief replays an older one */
    now[0] = now[1] = T0 + 1;
    race_ran = race_ran && race(path, 2, tok, now, res);
    race_revoked = res[1][0] == 0 && live_sessions(db) == 0;
    CHECK(race_ran, "the racing processes ran");
    CHECK(race_revoked, "the replay answered NULL and the session ended revoked, whichever ran first");
    CHECK(harness_int(db, "SELECT count(*) FROM anonauth_audit WHERE event = 'refresh_reuse'") ==
              2,
          "one more refresh_reuse audit row");
    CHECK(res[0][0] == 0 || harness_valid(db, res[0]) == 0,
          "a token the owner got in the race does not outlive the revocation");
  }
  /* 4. A busy database: the replay of a spent token is an error, not a
  ** revocation; once the lock is gone, the same replay revokes. */
  {
    char t1[TOKEN_LEN + 1], t2[TOKEN_LEN + 1];
    sqlite3 *locker = harness_open(path);
    sqlite3_stmt *st = NULL;
    int rc, busy_ok;
    REQUIRE(locker != NULL, "opens a second connection");
    REQUIRE(harness_text(db, "SELECT anon_signin()", t1, sizeof t1) == SQLITE_OK, "signs in");
    memcpy(tok[0], t1, sizeof t1);
    now[0] = T0;
    REQUIRE(race(path, 1, tok, now, res) && res[0][0] != 0, "refreshes once");
    memcpy(t2, res[0], sizeof t2);
    REQUIRE(sqlite3_exec(locker, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK,
            "the second connection takes the write lock");
    sqlite3_busy_timeout(db, 0);
    sqlite3_exec(db, "SELECT anonauth_set_clock(1800000100)", NULL, NULL, NULL);
    rc = sqlite3_prepare_v2(db, "SELECT session_refresh(?1)", -1, &st, NULL);
    sqlite3_bind_text(st, 1, t1, TOKEN_LEN, SQLITE_STATIC);
    rc = rc == SQLITE_OK ? sqlite3_step(st) : rc;
    busy_ok = rc != SQLITE_ROW && (sqlite3_errcode(db) & 0xff) == SQLITE_BUSY;
    sqlite3_finalize(st);
    CHECK(busy_ok, "the replay of a spent token against a locked database fails with SQLITE_BUSY");
    sqlite3_exec(locker, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_busy_timeout(db, 30000);
    CHECK(harness_valid(db, t2) == 1, "and revoked nothing: the current token still works");
    CHECK(harness_int(db, "SELECT count(*) FROM anonauth_audit WHERE event = 'refresh_reuse'") ==
              2,
          "and wrote no refresh_reuse row");
    rc = sqlite3_prepare_v2(db, "SELECT session_refresh(?1) IS NULL", -1, &st, NULL);
    sqlite3_bind_text(st, 1, t1, TOKEN_LEN, SQLITE_STATIC);
    CHECK(rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0) == 1 &&
              harness_valid(db, t2) == 0,
          "once the lock is gone the same replay revokes the session");
    sqlite3_finalize(st);
    sqlite3_close(locker);
  }
  CHECK(sqlite3_close(db) == SQLITE_OK, "closes");
  harness_remove(path);
  return check_done();
}
