/*
** Error paths that need more than one connection or the environment, for
** the coverage review (README, "Test coverage"):
**   - another connection holds the write lock and this one has no busy
**     timeout: every writing call fails with storage (SQLITE_BUSY) and
**     writes nothing, session checks still answer (their touch is
**     best-effort), and everything works once the lock is released;
**   - a CAPTCHA secret from an environment variable that holds a
**     non-printable value is captcha_misconfigured, before any request;
**   - retries that run out of captcha.timeout_ms end as captcha_unavailable
**     naming what the provider answered before.
*/
#include "harness.h"

/* 1 for a row, 0 for an error (message into err). */
static int run(sqlite3 *db, const char *sql, const char *param, char *err, size_t cap) {
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
  if (rc == SQLITE_OK) {
    if (param) sqlite3_bind_text(st, 1, param, -1, SQLITE_TRANSIENT);
    rc = sqlite3_step(st);
  }
  snprintf(err, cap, "%s", rc == SQLITE_ROW ? "" : sqlite3_errmsg(db));
  sqlite3_finalize(st);
  return rc == SQLITE_ROW;
}

static int is_busy_error(const char *err) {
  return strcmp(err, "anonauth: storage: database is locked") == 0;
}

static void test_busy(const char *path) {
  char err[512], token[128] = "";
  sqlite3 *a = harness_open(path), *b = harness_open(path);
  int busy_all = 1;
  static const char *const writers[] = {
      "SELECT anon_signin()",
      "SELECT anonauth_config('session.max_age', 120)",
      "SELECT anon_signout(?1)",
      "SELECT session_revoke_all(session_user(?1))",
      "SELECT link_account(?1, 'google', 'g-1')",
      "SELECT account_signup('google', 'g-2')",
      "SELECT account_signin('password', 'ann@example.com', 'wrong')",
      "SELECT anon_purge()",
      NULL};
  if (a == NULL || b == NULL) return;
  sqlite3_exec(a, "SELECT anonauth_config('session.touch_interval', 0)", NULL, NULL, NULL);
  if (harness_text(a, "SELECT anon_signin()", token, sizeof token) != SQLITE_OK) return;
  sqlite3_busy_timeout(a, 0);
  if (sqlite3_exec(b, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
    CHECK(0, "another connection takes the write lock");
    return;
  }
  for (int i = 0; writers[i]; i++) {
    int ok = run(a, writers[i], token, err, sizeof err);
    if (ok || !is_busy_error(err)) {
      busy_all = 0;
      printf("# %s: %s\n", writers[i], ok ? "succeeded" : err);
    }
  }
  CHECK(busy_all, "with the lock held elsewhere, every writing call fails with storage "
                  "(database is locked)");
  CHECK(harness_valid(a, token) == 1, "a session check still answers (its touch is best-effort)");
  CHECK(run(a, "SELECT count(*) FROM anon_sessions", NULL, err, sizeof err),
        "the virtual tables read (%s)", err);
  sqlite3_exec(b, "COMMIT", NULL, NULL, NULL);
  CHECK(harness_int(a, "SELECT count(*) FROM anonauth_users") == 1 &&
            harness_int(a, "SELECT count(*) FROM anonauth_sessions WHERE revoked_at IS NULL") ==
                1 &&
            harness_int(a, "SELECT count(*) FROM anonauth_accounts") == 0,
        "none of them wrote anything");
  CHECK(run(a, "SELECT anon_signin()", NULL, err, sizeof err), "after COMMIT it works (%s)", err);
  sqlite3_close(a);
  sqlite3_close(b);
}

static void test_env_secret(const char *path) {
  char err[512];
  sqlite3 *db = harness_open(path);
  if (db == NULL) return;
  setenv("ANONAUTH_TEST_BAD_SECRET", "line\nbreak", 1);
  sqlite3_exec(db,
               "SELECT anonauth_config('captcha.url', 'http://127.0.0.1:9/siteverify'),"
               "       anonauth_config('captcha.provider', 'turnstile'),"
               "       anonauth_config('captcha.secret', 'env:ANONAUTH_TEST_BAD_SECRET')",
               NULL, NULL, NULL);
  CHECK(!run(db, "SELECT verify_turnstile('tok')", NULL, err, sizeof err) &&
            strstr(err, "anonauth: captcha_misconfigured: verify_turnstile: the environment "
                        "variable ANONAUTH_TEST_BAD_SECRET must hold") == err &&
            !strstr(err, "break"),
        "an environment secret that is not printable ASCII is captcha_misconfigured, "
        "without its value (%s)",
        err);
  sqlite3_close(db);
}

static void test_deadline(const char *path) {
  char err[512], url[512];
  const char *provider = getenv("ANONAUTH_PROVIDER");
  sqlite3 *db = harness_open(path);
  if (db == NULL || provider == NULL) {
    sqlite3_close(db);
    CHECK(provider != NULL, "the fake provider is running (tests/run.sh starts it)");
    return;
  }
  snprintf(url, sizeof url, "%s/slow-60/always500/turnstile/v0/siteverify", provider);
  run(db, "SELECT anonauth_config('captcha.url', ?1)", url, err, sizeof err);
  sqlite3_exec(db,
               "SELECT anonauth_config('captcha.secret', '1x0000000000000000000000000000000AA'),"
               "       anonauth_config('captcha.timeout_ms', 100),"
               "       anonauth_config('captcha.retries', 10)",
               NULL, NULL, NULL);
  /* 60 ms for the first answer (HTTP 500), then a 100 ms pause cut to the
  ** 40 ms left: the deadline passes before a second try. */
  CHECK(!run(db, "SELECT verify_turnstile('tok-deadline')", NULL, err, sizeof err) &&
            strstr(err, "anonauth: captcha_unavailable: verify_turnstile: ") == err &&
            strstr(err, "did not answer within captcha.timeout_ms (100 ms); before that it "
                        "answered HTTP 500"),
        "retries that outlast captcha.timeout_ms end as captcha_unavailable with the last "
        "answer (%s)",
        err);
  sqlite3_close(db);
}

/* One connection calls every kind of function twice: each call's cached
** statements are found again and reused (the README's coverage notes say
** why the cache's growth itself is not reached: a connection uses fewer
** than the 32 statements that would grow its first table). */
static void test_cache_growth(const char *dir_path) {
  static const char *const calls[] = {
      "SELECT anonauth_config('link.on_conflict', 'merge'), "
      "anonauth_config('link.merge_without_sql', 'drop')",
      "SELECT account_signin('password', 'grow@example.com', 'pass phrase') IS NOT NULL",
      "SELECT session_valid(anon_signin())",
      "SELECT link_account(anon_signin(), 'google', 'grow-g') IS NOT NULL",
      "SELECT link_account(anon_signin(), 'password', 'grow@example.com', 'pass phrase') IS NOT NULL",
      "SELECT anon_signout(anon_signin())",
      "SELECT session_revoke_all(session_user(anon_signin())) >= 1",
      "SELECT anonauth_use(anon_signin()), auth_uid() IS NOT NULL, auth_is_anonymous()",
      "SELECT count(*) >= 1 FROM anon_users",
      "SELECT count(*) >= 1 FROM anon_sessions WHERE user_id = 1",
      "SELECT count(*) >= 1 FROM anon_accounts",
      "SELECT anon_purge() >= 0",
      "SELECT user_is_anonymous(session_user(anon_signin()))",
      NULL};
  char err[512], path[600];
  int all = 1;
  sqlite3 *db;
  snprintf(path, sizeof path, "%s.cache", dir_path);
  harness_remove(path);
  db = harness_open(path);
  if (db == NULL) return;
  sqlite3_exec(db,
               "SELECT anonauth_config('password.opslimit', 1),"
               "       anonauth_config('password.memlimit', 8192),"
               "       account_signup('password', 'grow@example.com', 'pass phrase')",
               NULL, NULL, NULL);
  for (int round = 0; round < 2; round++) {
    for (int i = 0; calls[i]; i++) {
      sqlite3_stmt *st = NULL;
      int ok = sqlite3_prepare_v2(db, calls[i], -1, &st, NULL) == SQLITE_OK &&
               sqlite3_step(st) == SQLITE_ROW;
      if (!ok) {
        snprintf(err, sizeof err, "%s", sqlite3_errmsg(db));
        printf("# round %d: %s: %s\n", round, calls[i], err);
        all = 0;
      }
      sqlite3_finalize(st);
    }
  }
  CHECK(all, "one connection calls every function twice, its cached statements reused");
  sqlite3_close(db);
  harness_remove(path);
}

int main(void) {
  char path[512];
  sqlite3 *db;
  check_label = getenv("TEST_LABEL") ? getenv("TEST_LABEL") : "c";
  harness_path(path, sizeof path, "error_paths");
  harness_remove(path);
  db = harness_open(path);
  REQUIRE(db != NULL, "opens the database");
  sqlite3_exec(db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL);
  sqlite3_exec(db,
               "SELECT anonauth_config('password.opslimit', 1),"
               "       anonauth_config('password.memlimit', 8192)",
               NULL, NULL, NULL);
  sqlite3_close(db);
  test_busy(path);
  test_env_secret(path);
  test_deadline(path);
  test_cache_growth(path);
  harness_remove(path);
  return check_done();
}
