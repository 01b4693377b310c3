/*
** Crash safety: worker processes doing sign-ins, links, merges, sign-outs
** and purges on one WAL database are killed with SIGKILL at random moments,
** many times. Afterwards PRAGMA integrity_check is ok and the invariants
** hold: every session's user exists; no anonymous user holds an account; no
** account has two owners; no merge is half-done (a merged visitor's cart
** rows are all on one side); every token a worker received and did not give
** up still validates.
**
** Workers report what they received over a pipe in fixed-size records, so a
** record cut short by the kill is simply not counted. CRASH_ROUNDS sets the
** number of kill rounds (make stress raises it).
*/
#include "harness.h"

#include <signal.h>
#include <sys/wait.h>
#include <time.h>

#define WORKERS 3
#define TOKEN_LEN 57
#define MAX_TOKENS 200000

/* A record: 'S' + token (signed in, keep checking it) or 'X' + token (about
** to be given up: signed out, linked or merged away). */
typedef struct {
  char kind;
  char token[TOKEN_LEN];
} record;

static int has_function(sqlite3 *db, const char *probe) {
  sqlite3_stmt *st = NULL;
  int ok = sqlite3_prepare_v2(db, probe, -1, &st, NULL) == SQLITE_OK;
  sqlite3_finalize(st);
  return ok;
}

static void send_record(int fd, char kind, const char *token) {
  record r;
  r.kind = kind;
  memcpy(r.token, token, TOKEN_LEN);
  if (write(fd, &r, sizeof r) != (ssize_t)sizeof r) _exit(3);
}

static int text1(sqlite3 *db, const char *sql, const char *arg, const char *arg2, char *out) {
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
  if (rc == SQLITE_OK) {
    if (arg) sqlite3_bind_text(st, 1, arg, -1, SQLITE_TRANSIENT);
    if (arg2) sqlite3_bind_text(st, 2, arg2, -1, SQLITE_TRANSIENT);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW && out) {
      if (sqlite3_column_type(st, 0) == SQLITE_TEXT && sqlite3_column_bytes(st, 0) == TOKEN_LEN) {
        memcpy(out, sqlite3_column_text(st, 0), TOKEN_LEN);
        out[TOKEN_LEN] = 0;
        rc = SQLITE_OK;
      } else {
        rc = SQLITE_MISMATCH; /* not a token (e.g. NULL) */
      }
    } else if (rc == SQLITE_ROW || rc == SQLITE_DONE) {
      rc = SQLITE_OK;
    }
  }
  sqlite3_finalize(st);
  return rc;
}

/* One worker: an endless mix of operations, each a bare SELECT. */
static void worker(const char *path, int fd, unsigned seed) {
  sqlite3 *db = harness_open(path);
  char tok[TOKEN_LEN + 1], tok2[TOKEN_LEN + 1], acct[64];
  int have_accounts;
  if (db == NULL) _exit(2);
  sqlite3_busy_timeout(db, 10000);
  have_accounts = has_function(db, "SELECT link_account(NULL, NULL, NULL)");
  srand(seed);
  for (unsigned n = 0;; n++) {
    int op = rand() % 10;
    if (text1(db, "SELECT anon_signin('{\"ip\":\"198.51.100.1\"}')", NULL, NULL, tok) != SQLITE_OK) continue;
    if (text1(db, "INSERT INTO cart SELECT session_user(?1), 'item', 1", tok, NULL, NULL) != SQLITE_OK)
      continue;
    send_record(fd, 'S', tok);
    if (op < 2) {
      send_record(fd, 'X', tok);
      text1(db, "SELECT anon_signout(?1)", tok, NULL, NULL);
    } else if (op < 5 && have_accounts) {
      /* a new account linked in place: the old token dies, the new one lives */
      snprintf(acct, sizeof acct, "user-%u-%u@example.com", seed, n);
      send_record(fd, 'X', tok);
      if (text1(db, "SELECT link_account(?1, 'email', ?2)", tok, acct, tok2) == SQLITE_OK)
        send_record(fd, 'S', tok2);
    } else if (op < 7 && have_accounts) {
      /* sign into a shared account with the anonymous token: a merge */
      snprintf(acct, sizeof acct, "shared-%d@example.com", rand() % 5);
      send_record(fd, 'X', tok);
      if (text1(db, "SELECT account_signin('email', ?1, NULL, json_object('anon_token', ?2))", acct,
                tok, tok2) == SQLITE_OK)
        send_record(fd, 'S', tok2);
    } else if (op == 7 && has_function(db, "SELECT anon_purge(0)")) {
      text1(db, "SELECT anon_purge()", NULL, NULL, NULL);
    }
  }
}

static int cmp_token(const void *a, const void *b) { return memcmp(a, b, TOKEN_LEN); }

int main(void) {
  char path[512];
  int rounds = getenv("CRASH_ROUNDS") ? atoi(getenv("CRASH_ROUNDS")) : 25;
  static char live[MAX_TOKENS][TOKEN_LEN], gone[MAX_TOKENS][TOKEN_LEN];
  int n_live = 0, n_gone = 0, kills = 0, valid = 0, checked = 0;
  sqlite3 *db;
  check_label = getenv("TEST_LABEL") ? getenv("TEST_LABEL") : "c";
  harness_path(path, sizeof path, "crash");
  harness_remove(path);
  srand((unsigned)time(NULL) ^ (unsigned)getpid());

  db = harness_open(path);
  REQUIRE(db != NULL, "opens the database");
  sqlite3_exec(db,
               "PRAGMA journal_mode=WAL;"
               "CREATE TABLE cart(user_id INTEGER NOT NULL, item TEXT, qty INTEGER);"
               "SELECT anonauth_config('ratelimit.anon_per_hour', 0);",
               NULL, NULL, NULL);
  if (has_function(db, "SELECT link_account(NULL, NULL, NULL)")) {
    sqlite3_exec(db,
                 "SELECT anonauth_config('link.merge_sql',"
                 " 'UPDATE cart SET user_id = :to_user WHERE user_id = :from_user');"
                 "SELECT anonauth_config('ratelimit.failed_signin_per_hour', 0);",
                 NULL, NULL, NULL);
    /* the shared accounts the workers merge into */
    for (int i = 0; i < 5; i++) {
      char sql[200];
      snprintf(sql, sizeof sql, "SELECT account_signup('email', 'shared-%d@example.com')", i);
      sqlite3_exec(db, sql, NULL, NULL, NULL);
    }
  }
  sqlite3_close(db);

  for (int round = 0; round < rounds; round++) {
    pid_t pids[WORKERS];
    int fds[WORKERS][2];
    for (int w = 0; w < WORKERS; w++) {
      if (pipe(fds[w]) != 0) return 1;
      pids[w] = fork();
      if (pids[w] == 0) {
        close(fds[w][0]);
        worker(path, fds[w][1], (unsigned)(round * WORKERS + w + 1));
      }
      close(fds[w][1]);
    }
    /* let them run 10-60 ms, then kill each at its own random moment */
    for (int w = 0; w < WORKERS; w++) {
      struct timespec ts = {0, (10 + rand() % 50) * 1000000L};
      nanosleep(&ts, NULL);
      kill(pids[w], SIGKILL);
      kills++;
    }
    for (int w = 0; w < WORKERS; w++) {
      record r;
      waitpid(pids[w], NULL, 0);
      while (read(fds[w][0], &r, sizeof r) == (ssize_t)sizeof r) {
        if (r.kind == 'S' && n_live < MAX_TOKENS) memcpy(live[n_live++], r.token, TOKEN_LEN);
        if (r.kind == 'X' && n_gone < MAX_TOKENS) memcpy(gone[n_gone++], r.token, TOKEN_LEN);
      }
      close(fds[w][0]);
    }
  }
  CHECK(kills == rounds * WORKERS, "%d workers killed with SIGKILL over %d rounds", kills, rounds);
  CHECK(n_live > 0, "the workers received %d tokens before they died", n_live);

  db = harness_open(path);
  REQUIRE(db != NULL, "reopens the database after the crashes");
  {
    char ok[64];
    harness_text(db, "PRAGMA integrity_check", ok, sizeof ok);
    CHECK(strcmp(ok, "ok") == 0, "PRAGMA integrity_check: %s", ok);
  }
  CHECK(harness_int(db, "SELECT count(*) FROM anonauth_sessions s "
                        "WHERE NOT EXISTS (SELECT 1 FROM anonauth_users u WHERE u.id = s.user_id)") == 0,
        "every session's user exists");
  CHECK(harness_int(db, "SELECT count(*) FROM anonauth_users u WHERE is_anonymous = 1 AND EXISTS "
                        "(SELECT 1 FROM anonauth_accounts a WHERE a.user_id = u.id)") == 0,
        "no anonymous user holds an account");
  CHECK(harness_int(db, "SELECT count(*) FROM (SELECT provider, account_id FROM anonauth_accounts "
                        "GROUP BY 1, 2 HAVING count(DISTINCT user_id) > 1)") == 0,
        "no account has two owners");
  CHECK(harness_int(db, "SELECT count(*) FROM anonauth_users u WHERE NOT EXISTS "
                        "(SELECT 1 FROM anonauth_sessions s WHERE s.user_id = u.id) AND NOT EXISTS "
                        "(SELECT 1 FROM anonauth_accounts a WHERE a.user_id = u.id)") == 0,
        "no user was left half-created (without a session or an account)");
  CHECK(harness_int(db, "SELECT count(*) FROM cart c WHERE NOT EXISTS "
                        "(SELECT 1 FROM anonauth_users u WHERE u.id = c.user_id)") == 0,
        "no cart row points at a user a merge deleted (merges are all or nothing)");

  qsort(gone, (size_t)n_gone, TOKEN_LEN, cmp_token);
  for (int i = 0; i < n_live; i++) {
    char t[TOKEN_LEN + 1];
    if (bsearch(live[i], gone, (size_t)n_gone, TOKEN_LEN, cmp_token)) continue;
    memcpy(t, live[i], TOKEN_LEN);
    t[TOKEN_LEN] = 0;
    checked++;
    valid += harness_valid(db, t) == 1;
  }
  CHECK(checked > 0 && valid == checked,
        "every token received and not given up still validates (%d of %d)", valid, checked);
  CHECK(sqlite3_close(db) == SQLITE_OK, "closes");
  harness_remove(path);
  return check_done();
}
