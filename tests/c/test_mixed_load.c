/*
** Concurrency: 8 processes mix every operation on one WAL database for
** LOAD_SECONDS (3 in make test, 30 in make stress), calling the documented
** way: bare SELECTs with a busy timeout. No operation may fail except with
** an error the README documents for it (a race lost to another process:
** account_exists, invalid_session ...); the invariants hold afterwards and
** the counts add up: every success a process counted is one audit row.
*/
#include "harness.h"

#include <sys/wait.h>
#include <time.h>

#define PROCS 8
#define TOKEN_LEN 57

typedef struct {
  const char *name;
  const char *probe;   /* a statement that prepares only if the function exists */
  const char *sql;     /* ?1 = a token of this process, ?2 = a text, ?3 = an int */
  const char *allowed; /* comma-separated error codes this operation may meet */
  const char *event;   /* audit event counted per success, or NULL */
} op_def;

static const op_def ops[] = {
    {"anon_signin", NULL, "SELECT anon_signin(json_object('ip', ?2))", "rate_limited", "anon_signin"},
    {"session_valid", NULL, "SELECT session_valid(?1)", "", NULL},
    {"session_user", NULL, "SELECT session_user(?1)", "", NULL},
    {"anon_signout", NULL, "SELECT anon_signout(?1)", "", NULL},
    {"session_revoke_all", NULL, "SELECT session_revoke_all(?3)", "", NULL},
    {"config read", NULL, "SELECT anonauth_config('session.max_age')", "", NULL},
    {"link_account", "SELECT link_account(NULL,NULL,NULL)",
     "SELECT link_account(?1, 'email', ?2)", "invalid_session,account_exists", "link"},
    {"account_signup", "SELECT account_signup(NULL,NULL)", "SELECT account_signup('email', ?2)",
     "account_exists", "signup"},
    {"account_signin+merge", "SELECT account_signin(NULL,NULL)",
     "SELECT account_signin('email', 'shared@example.com', NULL, json_object('anon_token', ?1))",
     "rate_limited", NULL},
    {"anon_sessions", "SELECT 1 FROM anon_sessions", "SELECT count(*) FROM anon_sessions WHERE user_id = ?3",
     "", NULL},
    {"anon_purge", "SELECT anon_purge(0)", "SELECT anon_purge()", "", NULL},
};
#define N_OPS ((int)(sizeof ops / sizeof ops[0]))

typedef struct {
  long ok[N_OPS];
  long failed[N_OPS];
  long undocumented;
  char last_error[200];
} tally;

static int allowed_error(const op_def *op, const char *msg) {
  char code[64];
  const char *p = op->allowed;
  if (strncmp(msg, "anonauth: ", 10) != 0) return 0;
  while (*p) {
    size_t n = strcspn(p, ",");
    snprintf(code, sizeof code, "anonauth: %.*s: ", (int)n, p);
    if (strncmp(msg, code, strlen(code)) == 0) return 1;
    p += n + (p[n] == ',');
  }
  return 0;
}

static void run(const char *path, int seconds, int proc, tally *t) {
  sqlite3 *db = harness_open(path);
  sqlite3_stmt *st[N_OPS];
  char token[TOKEN_LEN + 1] = "";
  int present[N_OPS];
  time_t end = time(NULL) + seconds;
  unsigned n = 0;
  memset(t, 0, sizeof *t);
  if (db == NULL) _exit(2);
  sqlite3_busy_timeout(db, 20000);
  for (int i = 0; i < N_OPS; i++) {
    sqlite3_stmt *probe = NULL;
    present[i] = ops[i].probe == NULL ||
                 sqlite3_prepare_v2(db, ops[i].probe, -1, &probe, NULL) == SQLITE_OK;
    sqlite3_finalize(probe);
    st[i] = NULL;
    if (present[i] && sqlite3_prepare_v2(db, ops[i].sql, -1, &st[i], NULL) != SQLITE_OK) _exit(3);
  }
  srand((unsigned)proc * 7919u + (unsigned)time(NULL));
  while (time(NULL) < end) {
    int i = rand() % N_OPS;
    char text[96];
    int rc;
    if (!present[i]) continue;
    n++;
    snprintf(text, sizeof text, i == 0 ? "198.51.%d.%d" : "p%d-%u@example.com", proc, n % 250);
    sqlite3_bind_text(st[i], 1, token, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st[i], 2, text, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st[i], 3, 1 + rand() % 50);
    rc = sqlite3_step(st[i]);
    if (rc == SQLITE_ROW || rc == SQLITE_DONE) {
      t->ok[i]++;
      /* sign-ins, links and merges hand out the token to use next */
      if (rc == SQLITE_ROW && sqlite3_column_type(st[i], 0) == SQLITE_TEXT &&
          sqlite3_column_bytes(st[i], 0) == TOKEN_LEN)
        memcpy(token, sqlite3_column_text(st[i], 0), TOKEN_LEN + 1);
    } else {
      const char *msg = sqlite3_errmsg(db);
      t->failed[i]++;
      if (!allowed_error(&ops[i], msg)) {
        t->undocumented++;
        snprintf(t->last_error, sizeof t->last_error, "%s: %s", ops[i].name, msg);
      }
    }
    sqlite3_reset(st[i]);
  }
  for (int i = 0; i < N_OPS; i++) sqlite3_finalize(st[i]);
  if (sqlite3_close(db) != SQLITE_OK) t->undocumented++;
}

int main(void) {
  char path[512];
  int seconds = getenv("LOAD_SECONDS") ? atoi(getenv("LOAD_SECONDS")) : 3;
  tally totals, each[PROCS];
  pid_t pids[PROCS];
  int fds[PROCS][2];
  int children_ok = 1;
  long calls = 0;
  long long baseline[N_OPS] = {0};
  sqlite3 *db;
  check_label = getenv("TEST_LABEL") ? getenv("TEST_LABEL") : "c";
  harness_path(path, sizeof path, "mixed_load");
  harness_remove(path);
  memset(&totals, 0, sizeof totals);

  db = harness_open(path);
  REQUIRE(db != NULL, "opens the database");
  sqlite3_exec(db,
               "PRAGMA journal_mode=WAL; CREATE TABLE cart(user_id INTEGER, item TEXT);"
               "SELECT anonauth_config('ratelimit.anon_per_hour', 0);",
               NULL, NULL, NULL);
  sqlite3_exec(db,
               "SELECT anonauth_config('link.merge_sql', "
               "'UPDATE cart SET user_id = :to_user WHERE user_id = :from_user');"
               "SELECT anonauth_config('ratelimit.failed_signin_per_hour', 0);"
               "SELECT account_signup('email', 'shared@example.com');",
               NULL, NULL, NULL);
  for (int i = 0; i < N_OPS; i++) { /* audit rows the setup wrote */
    char sql[200];
    if (ops[i].event == NULL) continue;
    snprintf(sql, sizeof sql, "SELECT count(*) FROM anonauth_audit WHERE event = '%s'", ops[i].event);
    baseline[i] = harness_int(db, sql);
  }
  sqlite3_close(db);

  for (int p = 0; p < PROCS; p++) {
    if (pipe(fds[p]) != 0) return 1;
    pids[p] = fork();
    if (pids[p] == 0) {
      tally t;
      close(fds[p][0]);
      run(path, seconds, p, &t);
      _exit(write(fds[p][1], &t, sizeof t) == (ssize_t)sizeof t ? 0 : 4);
    }
    close(fds[p][1]);
  }
  for (int p = 0; p < PROCS; p++) {
    int status = 0;
    if (read(fds[p][0], &each[p], sizeof each[p]) != (ssize_t)sizeof each[p]) children_ok = 0;
    close(fds[p][0]);
    waitpid(pids[p], &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) children_ok = 0;
    if (!children_ok) continue;
    for (int i = 0; i < N_OPS; i++) {
      totals.ok[i] += each[p].ok[i];
      totals.failed[i] += each[p].failed[i];
    }
    totals.undocumented += each[p].undocumented;
    if (each[p].undocumented) printf("    process %d: %s\n", p, each[p].last_error);
  }
  CHECK(children_ok, "%d processes ran for %d s and reported", PROCS, seconds);
  for (int i = 0; i < N_OPS; i++) calls += totals.ok[i] + totals.failed[i];
  CHECK(calls > 100, "%ld calls in all", calls);
  CHECK(totals.undocumented == 0, "no operation failed except as documented (%ld did)",
        totals.undocumented);
  for (int i = 0; i < N_OPS; i++) {
    if (totals.ok[i] + totals.failed[i])
      printf("    %-22s %7ld ok %6ld documented failures\n", ops[i].name, totals.ok[i],
             totals.failed[i]);
  }

  db = harness_open(path);
  REQUIRE(db != NULL, "reopens the database");
  {
    char ok[64];
    harness_text(db, "PRAGMA integrity_check", ok, sizeof ok);
    CHECK(strcmp(ok, "ok") == 0, "PRAGMA integrity_check: %s", ok);
  }
  for (int i = 0; i < N_OPS; i++) {
    char sql[200];
    if (ops[i].event == NULL) continue;
    snprintf(sql, sizeof sql, "SELECT count(*) FROM anonauth_audit WHERE event = '%s'", ops[i].event);
    CHECK(harness_int(db, sql) == baseline[i] + totals.ok[i],
          "every successful %s is one '%s' audit row (%ld)", ops[i].name, ops[i].event, totals.ok[i]);
  }
  CHECK(harness_int(db, "SELECT count(*) FROM anonauth_sessions s WHERE NOT EXISTS "
                        "(SELECT 1 FROM anonauth_users u WHERE u.id = s.user_id)") == 0,
        "every session's user exists");
  CHECK(harness_int(db, "SELECT count(*) FROM anonauth_users u WHERE is_anonymous = 1 AND EXISTS "
                        "(SELECT 1 FROM anonauth_accounts a WHERE a.user_id = u.id)") == 0,
        "no anonymous user holds an account");
  CHECK(sqlite3_close(db) == SQLITE_OK, "closes");
  harness_remove(path);
  return check_done();
}
