/*
** sqlite3_close() — not _v2 — must succeed after every function was used:
** better-sqlite3 closes that way and fails on statements left open.
*/
#include "harness.h"

static const char *const every_call[] = {
    "SELECT anonauth_version()",
    "SELECT anon_signin()",
    "SELECT anon_signin('{\"ip\":\"192.0.2.1\",\"user_agent\":\"ua\",\"profile\":{}}')",
    "SELECT session_valid((SELECT anon_signin()))",
    "SELECT session_user((SELECT anon_signin()))",
    "SELECT user_is_anonymous(1)",
    "SELECT anon_signout((SELECT anon_signin()))",
    "SELECT session_revoke_all(1)",
    "SELECT anonauth_config('session.max_age')",
    "SELECT anonauth_config('session.max_age', 7200)",
    "SELECT anonauth_set_clock(1000)",
    "SELECT anonauth_set_clock(NULL)",
    "SELECT * FROM anonauth_connection",
    "SELECT anon_signin('not json')", /* an error path too */
    NULL};

static int run_all(sqlite3 *db) {
  int failures = 0;
  for (int i = 0; every_call[i]; i++) {
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, every_call[i], -1, &st, NULL) != SQLITE_OK) failures++;
    while (sqlite3_step(st) == SQLITE_ROW) {
    }
    sqlite3_finalize(st);
  }
  return failures;
}

int main(void) {
  char path[512];
  sqlite3 *db;
  check_label = getenv("TEST_LABEL") ? getenv("TEST_LABEL") : "c";
  harness_path(path, sizeof path, "close");
  harness_remove(path);

  db = harness_open(path);
  REQUIRE(db != NULL, "the extension loads");
  CHECK(run_all(db) == 0, "every function prepares and runs");
  CHECK(harness_int(db, "SELECT cached_statements FROM anonauth_connection") > 0,
        "statements are cached on the connection");
  CHECK(sqlite3_close(db) == SQLITE_OK, "sqlite3_close() returns SQLITE_OK after every function");

  db = harness_open(path);
  REQUIRE(db != NULL, "reopens");
  {
    char *err = NULL;
    CHECK(sqlite3_load_extension(db, harness_so(), NULL, &err) == SQLITE_OK,
          "loading a second time succeeds");
    sqlite3_free(err);
  }
  CHECK(run_all(db) == 0, "every function runs after a second load");
  CHECK(sqlite3_close(db) == SQLITE_OK, "sqlite3_close() returns SQLITE_OK after a second load");

  db = harness_open(":memory:");
  REQUIRE(db != NULL, "opens an in-memory database");
  CHECK(run_all(db) == 0, "every function runs in memory");
  CHECK(sqlite3_close(db) == SQLITE_OK, "sqlite3_close() returns SQLITE_OK in memory");

  harness_remove(path);
  return check_done();
}
