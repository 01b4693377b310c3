/*
** Parallel guesses against one account cannot run more secret checks than
** ratelimit.failed_signin_per_hour allows (issue 16, finding 2).
**
** Several processes guess at once, all released by one broadcast. What is
** counted is Argon2 runs, not time: a process that ran Argon2 at a cost of
** M bytes has a peak resident set of at least about M more than a process
** that did not (Argon2 writes every block of its memory), and the kernel
** reports each child's peak to wait4(). A baseline child that verifies
** nothing gives the level to compare against.
**
** 1. Limit 2 per hour, a full bucket, six wrong guesses at once: at most two
**    processes run Argon2; two answers are invalid_credentials and four
**    rate_limited, and no rate_limited answer cost a verification.
** 2. The case the review reproduced: an account hashed at a low cost, the
**    cost raised since, limit 3 with 2 used, six guesses at once, one of
**    them right. A rate_limited answer never ran Argon2 (before the fix the
**    right guess was refused after verifying and re-hashing, three times
**    slower than the wrong ones), and without a success at most one guess
**    was checked.
** 3. link_account's merge path proves ownership with the same bucket: six
**    anonymous visitors try to merge into one account with wrong secrets at
**    once, limit 2: at most two run Argon2.
*/
#include "harness.h"

#include <sys/resource.h>
#include <sys/wait.h>

#define GUESSERS 6
#define MIB (1024L * 1024L)

typedef struct {
  char result; /* 'S' signed in, 'I' invalid_credentials, 'R' rate_limited, 'X' other */
  long maxrss_kib;
} outcome;

#define SIGNIN_SQL "SELECT account_signin('password', ?1, ?2)"
/* ?3: the visitor's anonymous session token */
#define MERGE_SQL "SELECT link_account(?3, 'password', ?1, ?2)"

static const char *attempt_sql = SIGNIN_SQL;
static char visitor_tokens[GUESSERS][64];

/* One guesser: opens the database, says it is ready, waits for the
** broadcast (EOF on go_fd), makes one attempt and reports its result byte. */
static int guesser(const char *path, const char *account, const char *secret, int me,
                   int ready_fd, int go_fd, int res_fd) {
  sqlite3 *db = harness_open(path);
  sqlite3_stmt *st = NULL;
  char go, out = 'X';
  if (db == NULL) return 2;
  sqlite3_busy_timeout(db, 60000);
  if (sqlite3_prepare_v2(db, attempt_sql, -1, &st, NULL) != SQLITE_OK) return 3;
  sqlite3_bind_text(st, 1, account, -1, SQLITE_STATIC);
  if (secret) sqlite3_bind_text(st, 2, secret, -1, SQLITE_STATIC);
  if (sqlite3_bind_parameter_count(st) >= 3)
    sqlite3_bind_text(st, 3, visitor_tokens[me], -1, SQLITE_STATIC);
  if (write(ready_fd, "r", 1) != 1) return 6;
  if (read(go_fd, &go, 1) != 0) return 4; /* released when the parent closes the pipe */
  if (sqlite3_step(st) == SQLITE_ROW)
    out = 'S';
  else if (strstr(sqlite3_errmsg(db), "anonauth: invalid_credentials:"))
    out = 'I';
  else if (strstr(sqlite3_errmsg(db), "anonauth: rate_limited:"))
    out = 'R';
  else
    fprintf(stderr, "guesser: %s\n", sqlite3_errmsg(db));
  sqlite3_finalize(st);
  sqlite3_close(db);
  return write(res_fd, &out, 1) == 1 ? 0 : 5;
}

/* Runs n guessers at once; secrets[i] is guesser i's secret. */
static int run_guessers(const char *path, const char *account, const char *const *secrets,
                        int n, outcome *res) {
  int go[2], ready[2], pipes[GUESSERS + 1][2];
  pid_t pids[GUESSERS + 1];
  int ok = 1;
  if (pipe(go) != 0 || pipe(ready) != 0) return 0;
  for (int i = 0; i < n; i++) {
    if (pipe(pipes[i]) != 0) return 0;
    fflush(stdout);
    pids[i] = fork();
    if (pids[i] < 0) return 0;
    if (pids[i] == 0) {
      close(go[1]);
      close(ready[0]);
      close(pipes[i][0]);
      _exit(guesser(path, account, secrets[i], i, ready[1], go[0], pipes[i][1]));
    }
    close(pipes[i][1]);
  }
  close(go[0]);
  close(ready[1]);
  for (int i = 0; i < n; i++) { /* every guesser has opened its connection */
    char r;
    if (read(ready[0], &r, 1) != 1) ok = 0;
  }
  close(ready[0]);
  close(go[1]); /* the broadcast */
  for (int i = 0; i < n; i++) {
    struct rusage ru;
    int status = 0;
    res[i].result = 'X';
    if (read(pipes[i][0], &res[i].result, 1) != 1) res[i].result = 'X';
    close(pipes[i][0]);
    memset(&ru, 0, sizeof ru);
    if (wait4(pids[i], &status, 0, &ru) != pids[i] || !WIFEXITED(status) ||
        WEXITSTATUS(status) != 0)
      ok = 0;
    res[i].maxrss_kib = ru.ru_maxrss;
  }
  return ok;
}

/* The peak of a process that makes an attempt without any Argon2 work: a
** sign-in without a secret for an account that does not exist. */
static long baseline_kib(const char *path) {
  const char *none[1] = {NULL};
  outcome o;
  if (!run_guessers(path, "nobody@example.com", none, 1, &o)) return -1;
  return o.result == 'I' ? o.maxrss_kib : -1;
}

static int count(const outcome *res, int n, char result) {
  int k = 0;
  for (int i = 0; i < n; i++) k += res[i].result == result;
  return k;
}

int main(void) {
  char path[512];
  sqlite3 *db;
  outcome res[GUESSERS];
  long base, argon_kib;
  int ran, limited_ran, all_ran;

  check_label = getenv("TEST_LABEL") ? getenv("TEST_LABEL") : "c";
  harness_path(path, sizeof path, "signin_guessing");
  harness_remove(path);
  db = harness_open(path);
  REQUIRE(db != NULL, "opens the database");
  sqlite3_busy_timeout(db, 60000);
  sqlite3_exec(db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL);

  /* ---- 1. six wrong guesses, two tokens ---- */
  REQUIRE(sqlite3_exec(db,
                       "SELECT anonauth_config('password.opslimit', 1),"
                       "       anonauth_config('password.memlimit', 67108864),"
                       "       anonauth_config('ratelimit.failed_signin_per_hour', 2),"
                       "       account_signup('password', 'victim@example.com', 'right horse')",
                       NULL, NULL, NULL) == SQLITE_OK,
          "an account hashed at 64 MiB, limit 2 per hour");
  base = baseline_kib(path);
  REQUIRE(base > 0, "a guesser that verifies nothing peaks at %ld KiB", base);
  argon_kib = base + 48 * 1024; /* a 64 MiB Argon2 run raises the peak by about 64 MiB */
  {
    const char *wrong[GUESSERS] = {"w0", "w1", "w2", "w3", "w4", "w5"};
    all_ran = run_guessers(path, "victim@example.com", wrong, GUESSERS, res);
  }
  CHECK(all_ran, "six guessers ran and answered");
  ran = limited_ran = 0;
  for (int i = 0; i < GUESSERS; i++) {
    int argon = res[i].maxrss_kib >= argon_kib;
    ran += argon;
    limited_ran += argon && res[i].result == 'R';
  }
  CHECK(ran <= 2, "at most 2 of %d parallel guesses ran Argon2 with a limit of 2 (%d did)",
        GUESSERS, ran);
  CHECK(limited_ran == 0, "no rate_limited answer ran Argon2 (%d did)", limited_ran);
  CHECK(count(res, GUESSERS, 'I') == 2 && count(res, GUESSERS, 'R') == 4,
        "2 invalid_credentials and 4 rate_limited (got %d and %d, %d other)",
        count(res, GUESSERS, 'I'), count(res, GUESSERS, 'R'),
        GUESSERS - count(res, GUESSERS, 'I') - count(res, GUESSERS, 'R'));
  CHECK(harness_int(db, "SELECT count(*) FROM anonauth_audit WHERE event = 'signin_failed' "
                        "AND detail ->> 'account_id' = 'victim@example.com'") == 2,
        "two failed checks audited");
  CHECK(harness_int(db, "SELECT count(*) FROM anonauth_audit WHERE event = 'rate_limited' "
                        "AND detail ->> 'account_id' = 'victim@example.com'") == 4,
        "four refusals audited");

  /* ---- 2. an old cost, one token left, the right guess among six ---- */
  REQUIRE(sqlite3_exec(db,
                       "SELECT anonauth_config('password.memlimit', 33554432),"
                       "       anonauth_config('ratelimit.failed_signin_per_hour', 3),"
                       "       account_signup('password', 'old@example.com', 'right horse')",
                       NULL, NULL, NULL) == SQLITE_OK,
          "an account hashed at 32 MiB, limit 3 per hour");
  sqlite3_exec(db, "SELECT account_signin('password', 'old@example.com', 'nope 1')", NULL, NULL,
               NULL);
  sqlite3_exec(db, "SELECT account_signin('password', 'old@example.com', 'nope 2')", NULL, NULL,
               NULL);
  REQUIRE(harness_int(db, "SELECT count(*) FROM anonauth_audit WHERE event = 'signin_failed' "
                          "AND detail ->> 'account_id' = 'old@example.com'") == 2,
          "two of three failures used");
  REQUIRE(sqlite3_exec(db,
                       "SELECT anonauth_config('password.memlimit', 67108864),"
                       "       anonauth_config('password.opslimit', 2)",
                       NULL, NULL, NULL) == SQLITE_OK,
          "the cost raised to 64 MiB, 2 passes");
  argon_kib = base + 24 * 1024; /* checking the stored 32 MiB hash */
  {
    const char *guesses[GUESSERS] = {"w0", "w1", "right horse", "w3", "w4", "w5"};
    all_ran = run_guessers(path, "old@example.com", guesses, GUESSERS, res);
  }
  CHECK(all_ran, "six guessers ran and answered");
  ran = limited_ran = 0;
  for (int i = 0; i < GUESSERS; i++) {
    int argon = res[i].maxrss_kib >= argon_kib;
    ran += argon;
    limited_ran += argon && res[i].result == 'R';
  }
  CHECK(limited_ran == 0,
        "no rate_limited answer ran Argon2, the right guess included (%d did)", limited_ran);
  CHECK(count(res, GUESSERS, 'S') == 1 || ran <= 1,
        "without a success at most the one remaining token's guess was checked (%d were)", ran);
  CHECK(count(res, GUESSERS, 'X') == 0, "no other error");
  CHECK(count(res, GUESSERS, 'S') == 0 || res[2].result == 'S', "only the right guess signs in");

  /* ---- 3. link_account's merge path, six wrong secrets, two tokens ---- */
  REQUIRE(sqlite3_exec(db,
                       "SELECT anonauth_config('password.memlimit', 67108864),"
                       "       anonauth_config('password.opslimit', 1),"
                       "       anonauth_config('ratelimit.failed_signin_per_hour', 2),"
                       "       anonauth_config('link.on_conflict', 'merge'),"
                       "       anonauth_config('link.merge_without_sql', 'drop'),"
                       "       account_signup('password', 'owner@example.com', 'right horse')",
                       NULL, NULL, NULL) == SQLITE_OK,
          "an account hashed at 64 MiB, merges on, limit 2 per hour");
  {
    int visitors = 0;
    for (int i = 0; i < GUESSERS; i++)
      visitors += harness_text(db, "SELECT anon_signin()", visitor_tokens[i],
                               sizeof visitor_tokens[i]) == SQLITE_OK;
    REQUIRE(visitors == GUESSERS, "%d anonymous visitors", GUESSERS);
  }
  attempt_sql = MERGE_SQL;
  argon_kib = base + 48 * 1024;
  {
    const char *wrong[GUESSERS] = {"wrong 00", "wrong 01", "wrong 02", "wrong 03", "wrong 04", "wrong 05"};
    all_ran = run_guessers(path, "owner@example.com", wrong, GUESSERS, res);
  }
  CHECK(all_ran, "six merging visitors ran and answered");
  ran = limited_ran = 0;
  for (int i = 0; i < GUESSERS; i++) {
    int argon = res[i].maxrss_kib >= argon_kib;
    ran += argon;
    limited_ran += argon && res[i].result == 'R';
  }
  CHECK(ran <= 2, "at most 2 of %d parallel merge attempts ran Argon2 with a limit of 2 (%d did)",
        GUESSERS, ran);
  CHECK(limited_ran == 0, "no rate_limited merge attempt ran Argon2 (%d did)", limited_ran);
  CHECK(count(res, GUESSERS, 'I') == 2 && count(res, GUESSERS, 'R') == 4,
        "2 invalid_credentials and 4 rate_limited (got %d and %d)", count(res, GUESSERS, 'I'),
        count(res, GUESSERS, 'R'));
  CHECK(harness_int(db, "SELECT count(*) FROM anonauth_users WHERE is_anonymous = 1") >=
            GUESSERS,
        "no visitor was merged");

  CHECK(sqlite3_close(db) == SQLITE_OK, "closes");
  harness_remove(path);
  return check_done();
}
