/*
** Replicated mode (src/replicated.c) on a plain file database: the rule the
** cluster node relies on, tested without a cluster. In this mode a write that
** would commit on its own is refused with transaction_required and changes
** nothing; inside BEGIN ... COMMIT everything works; reads need nothing and
** skip their best-effort touch outside a transaction. tests/cluster/ shows
** the same rule on a real dqlite cluster, and why it is needed there.
*/
#include "harness.h"
#include "anonauth.h"

/* The error message of a statement that must fail, in buf ("" if it did not). */
static void error_of(sqlite3 *db, const char *sql, const char *param, char *buf, size_t cap) {
  sqlite3_stmt *st = NULL;
  int rc;
  buf[0] = 0;
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
    snprintf(buf, cap, "prepare: %s", sqlite3_errmsg(db));
    return;
  }
  if (param) sqlite3_bind_text(st, 1, param, -1, SQLITE_TRANSIENT);
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
  }
  if (rc != SQLITE_DONE) snprintf(buf, cap, "%s", sqlite3_errmsg(db));
  sqlite3_finalize(st);
}

static int starts_with(const char *s, const char *prefix) {
  return strncmp(s, prefix, strlen(prefix)) == 0;
}

static void nolog(void *arg, int code, const char *msg) {
  (void)arg;
  (void)code;
  (void)msg;
}

/* One row, one integer column, with a text parameter. */
static long long int_of(sqlite3 *db, const char *sql, const char *param) {
  sqlite3_stmt *st = NULL;
  long long v = -1;
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
    if (param) sqlite3_bind_text(st, 1, param, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int64(st, 0);
  }
  sqlite3_finalize(st);
  return v;
}

int main(void) {
  sqlite3 *db = NULL, *plain = NULL, *older = NULL;
  char path[512], token[128], other[128], err[512];
  const char *refused = "anonauth: transaction_required: ";
  long long seen;
  check_label = getenv("TEST_LABEL") ? getenv("TEST_LABEL") : "c";
  harness_path(path, sizeof path, "replicated");
  harness_remove(path);

  /* The node's order: sqlite3_config first, then the mode, then registration. */
  REQUIRE(sqlite3_config(SQLITE_CONFIG_LOG, nolog, NULL) == SQLITE_OK,
          "sqlite3_config works before anything initializes SQLite");
  anonauth_set_replicated(1);
  REQUIRE(sqlite3_auto_extension((void (*)(void))sqlite3_anonauth_init) == SQLITE_OK,
          "sqlite3_auto_extension accepts the entry point");
  CHECK(sqlite3_config(SQLITE_CONFIG_LOG, NULL, NULL) == SQLITE_MISUSE,
        "after sqlite3_auto_extension, sqlite3_config is refused (SQLITE_MISUSE): "
        "configuration must come first");
  REQUIRE(sqlite3_open(path, &db) == SQLITE_OK, "a connection opens in replicated mode");
  sqlite3_exec(db, "PRAGMA journal_mode=WAL; CREATE TABLE app_tokens(t TEXT)", NULL, NULL, NULL);
  CHECK(harness_int(db, "SELECT anonauth_replicated()") == 1, "anonauth_replicated() is 1");

  /* Outside a transaction: refused, nothing written, not even the schema. */
  error_of(db, "SELECT anon_signin()", NULL, err, sizeof err);
  CHECK(starts_with(err, refused), "bare SELECT anon_signin() is refused: %.60s", err);
  CHECK(harness_int(db, "SELECT count(*) FROM sqlite_master WHERE name LIKE 'anonauth_%'") == 0,
        "the refused call created no table");
  error_of(db, "INSERT INTO app_tokens SELECT anon_signin()", NULL, err, sizeof err);
  CHECK(starts_with(err, refused), "INSERT ... SELECT anon_signin() outside BEGIN is refused");
  CHECK(harness_int(db, "SELECT count(*) FROM app_tokens") == 0, "and inserted no row");
  CHECK(sqlite3_get_autocommit(db) != 0, "and left no transaction open");

  /* Inside BEGIN ... COMMIT: works. */
  CHECK(sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) == SQLITE_OK &&
            harness_text(db, "SELECT anon_signin()", token, sizeof token) == SQLITE_OK &&
            sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK &&
            starts_with(token, "anonauth_sess_"),
        "BEGIN; SELECT anon_signin(); COMMIT signs in");
  CHECK(harness_int(db, "SELECT count(*) FROM anonauth_users") == 1 &&
            harness_int(db, "SELECT count(*) FROM anonauth_sessions") == 1,
        "one user and one session were committed");
  CHECK(sqlite3_exec(db, "BEGIN; INSERT INTO app_tokens SELECT anon_signin(); COMMIT", NULL,
                     NULL, NULL) == SQLITE_OK &&
            harness_int(db, "SELECT count(*) FROM app_tokens") == 1,
        "INSERT ... SELECT anon_signin() inside BEGIN ... COMMIT works");
  sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
  error_of(db, "SELECT anon_signin('{\"ip\": 5}')", NULL, err, sizeof err);
  sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
  CHECK(starts_with(err, "anonauth: invalid_argument: "),
        "inside a transaction the ordinary errors still come first: %.60s", err);
  CHECK(harness_int(db, "SELECT count(*) FROM anonauth_users") == 2, "and nothing was added");

  /* Reads: no transaction needed; the touch is skipped outside one. */
  seen = harness_int(db, "SELECT last_seen_at FROM anonauth_sessions WHERE id = 1");
  CHECK(int_of(db, "SELECT anonauth_set_clock(last_seen_at + 7200) IS NULL OR 1 "
                   "FROM anonauth_sessions WHERE id = 1", NULL) == 1,
        "the clock moves two hours (past session.touch_interval)");
  CHECK(harness_valid(db, token) == 1, "bare session_valid() answers");
  CHECK(harness_int(db, "SELECT last_seen_at FROM anonauth_sessions WHERE id = 1") == seen,
        "bare session_valid() skipped its touch (it would have committed alone)");
  sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
  CHECK(harness_valid(db, token) == 1, "session_valid() inside BEGIN answers");
  sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
  CHECK(harness_int(db, "SELECT last_seen_at FROM anonauth_sessions WHERE id = 1") == seen + 7200,
        "and its touch joined the transaction");

  CHECK(harness_int(db, "SELECT anonauth_config('session.max_age')") == 2592000,
        "bare anonauth_config(key) reads");
  CHECK(harness_int(db, "SELECT user_is_anonymous(1)") == 1, "bare user_is_anonymous() reads");

  /* The other writers follow the same rule. */
  error_of(db, "SELECT anon_signout(?1)", token, err, sizeof err);
  CHECK(starts_with(err, refused), "bare anon_signout() is refused");
  CHECK(harness_valid(db, token) == 1, "and the session stays live");
  error_of(db, "SELECT anonauth_config('session.max_age', 3600)", NULL, err, sizeof err);
  CHECK(starts_with(err, refused), "bare anonauth_config(key, value) is refused");
  CHECK(harness_int(db, "SELECT count(*) FROM anonauth_config") == 0, "and stored nothing");
  error_of(db, "SELECT session_revoke_all(1)", NULL, err, sizeof err);
  CHECK(starts_with(err, refused), "bare session_revoke_all() is refused");
  CHECK(sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) == SQLITE_OK &&
            int_of(db, "SELECT anon_signout(?1)", token) == 1 &&
            sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK &&
            harness_valid(db, token) == 0,
        "anon_signout() inside BEGIN ... COMMIT signs out");

  /* Accounts: refused before any Argon2 work or lookup, fine inside BEGIN. */
  sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
  harness_text(db, "SELECT anon_signin()", token, sizeof token);
  sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
  error_of(db, "SELECT link_account(?1, 'google', 'ann')", token, err, sizeof err);
  CHECK(starts_with(err, refused), "bare link_account() is refused: %.60s", err);
  error_of(db, "SELECT account_signup('email', 'bob', 'pass phrase')", NULL, err, sizeof err);
  CHECK(starts_with(err, refused), "bare account_signup() is refused: %.60s", err);
  error_of(db, "SELECT account_signin('email', 'bob', 'pass phrase')", NULL, err, sizeof err);
  CHECK(starts_with(err, refused), "bare account_signin() is refused: %.60s", err);
  CHECK(harness_int(db, "SELECT count(*) FROM anonauth_accounts") == 0 &&
            harness_valid(db, token) == 1,
        "the refused calls linked nothing and left the session live");
  CHECK(sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) == SQLITE_OK &&
            int_of(db, "SELECT length(link_account(?1, 'google', 'ann')) > 0", token) == 1 &&
            sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK &&
            harness_int(db, "SELECT count(*) FROM anonauth_accounts") == 1,
        "link_account() inside BEGIN ... COMMIT links");

  /* CAPTCHA: the refusal comes before the network call that would spend the
  ** visitor's one-use token (the provider URL here is unreachable). */
  sqlite3_exec(db, "BEGIN; SELECT anonauth_config('captcha.provider', 'turnstile');"
                   "SELECT anonauth_config('captcha.secret', 'x');"
                   "SELECT anonauth_config('captcha.url', 'http://127.0.0.1:9/');"
                   "COMMIT",
               NULL, NULL, NULL);
  error_of(db, "SELECT anon_signin('{\"captcha\": \"tok\"}')", NULL, err, sizeof err);
  CHECK(starts_with(err, refused), "bare anon_signin(captcha) is refused before verifying: %.60s",
        err);
  sqlite3_exec(db, "BEGIN; SELECT anonauth_config('captcha.provider', 'none'); COMMIT", NULL, NULL,
               NULL);

  /* An older schema: bare reads read it as it is (a migration outside BEGIN
  ** would commit on this node only); the first writing call inside BEGIN
  ** migrates it. A new connection, because this one knows its schema. */
  CHECK(sqlite3_exec(db, "BEGIN; DROP INDEX anonauth_users_anonymous;"
                         "UPDATE anonauth_meta SET value = 2 WHERE key = 'schema_version';"
                         "COMMIT",
                     NULL, NULL, NULL) == SQLITE_OK,
        "the database is set back to schema version 2");
  REQUIRE(sqlite3_open(path, &older) == SQLITE_OK, "another replicated connection opens");
  CHECK(harness_int(older, "SELECT count(*) FROM anon_sessions") > 0 &&
            harness_int(older, "SELECT user_is_anonymous(1)") == 1 &&
            harness_int(older, "SELECT anonauth_config('session.max_age')") == 2592000 &&
            harness_valid(older, "anonauth_sess_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA") == 0,
        "bare reads on the older schema answer");
  CHECK(harness_int(older, "SELECT value FROM anonauth_meta WHERE key = 'schema_version'") == 2,
        "and did not migrate it");
  CHECK(sqlite3_exec(older, "BEGIN; SELECT anon_signin(); COMMIT", NULL, NULL, NULL) == SQLITE_OK &&
            harness_int(older, "SELECT value FROM anonauth_meta WHERE key = 'schema_version'") >= 3,
        "a writing call inside BEGIN ... COMMIT migrates it");
  CHECK(sqlite3_close(older) == SQLITE_OK, "that connection closes");

  /* The mode belongs to connections opened while it is set. */
  anonauth_set_replicated(0);
  REQUIRE(sqlite3_open(path, &plain) == SQLITE_OK, "a connection opens after the mode is off");
  CHECK(harness_int(plain, "SELECT anonauth_replicated()") == 0, "it is not in replicated mode");
  CHECK(harness_text(plain, "SELECT anon_signin()", other, sizeof other) == SQLITE_OK &&
            starts_with(other, "anonauth_sess_"),
        "and a bare anon_signin() works there");
  CHECK(harness_int(db, "SELECT anonauth_replicated()") == 1,
        "the earlier connection keeps its mode");

  CHECK(sqlite3_close(db) == SQLITE_OK && sqlite3_close(plain) == SQLITE_OK, "both close");
  sqlite3_reset_auto_extension();
  harness_remove(path);
  return check_done();
}
