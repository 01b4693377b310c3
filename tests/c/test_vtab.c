/*
** The virtual tables and the connection's lifetime:
**   - sqlite3_close() (not _v2) succeeds after every function and table of
**     this part was used, as better-sqlite3 needs;
**   - sqlite3_close() with a caller's statement still open in the middle of
**     a scan returns SQLITE_BUSY, and the scan is unharmed: its cursor keeps
**     a statement the close does not finalize (run under ASan, this is where
**     a use-after-free would show);
**   - nested scans of one table on one connection each get their rows.
*/
#include "harness.h"

static const char *const every_call[] = {
    "SELECT anon_signin()",
    "SELECT * FROM anon_users",
    "SELECT * FROM anon_users WHERE id = 1",
    "SELECT * FROM anon_sessions",
    "SELECT * FROM anon_sessions WHERE user_id = 1",
    "SELECT * FROM anon_sessions WHERE id = 1",
    "SELECT * FROM anon_accounts",
    "SELECT * FROM anon_accounts WHERE user_id = 1",
    "SELECT * FROM anon_accounts WHERE provider = 'p' AND account_id = 'a'",
    "SELECT anonauth_use((SELECT anon_signin()))",
    "SELECT auth_uid(), auth_is_anonymous()",
    "SELECT anonauth_use(NULL)",
    "DELETE FROM anon_sessions WHERE id = 1",
    "DELETE FROM anon_users WHERE id = 1",
    "DELETE FROM anon_accounts WHERE user_id = 1",
    "INSERT INTO anon_users(id) VALUES (1)", /* an error path */
    "SELECT anon_purge()",
    "SELECT anon_purge(0)",
    "SELECT anon_purge(-1)", /* an error path */
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
  sqlite3_stmt *scan = NULL, *inner = NULL;
  int rows = 0, nested = 0;
  check_label = getenv("TEST_LABEL") ? getenv("TEST_LABEL") : "c";
  harness_path(path, sizeof path, "vtab");
  harness_remove(path);

  db = harness_open(path);
  REQUIRE(db != NULL, "the extension loads");
  CHECK(run_all(db) == 0, "every function and table prepares and runs");
  CHECK(sqlite3_close(db) == SQLITE_OK, "sqlite3_close() returns SQLITE_OK after all of them");

  harness_remove(path);
  db = harness_open(path);
  REQUIRE(db != NULL, "opens a fresh database");
  for (int i = 0; i < 5; i++) sqlite3_exec(db, "SELECT anon_signin()", NULL, NULL, NULL);
  CHECK(harness_int(db, "SELECT count(*) FROM anon_sessions") == 5, "five sessions");

  /* A scan left open across sqlite3_close(). */
  REQUIRE(sqlite3_prepare_v2(db, "SELECT id, status FROM anon_sessions", -1, &scan, NULL) ==
              SQLITE_OK,
          "prepares a scan");
  CHECK(sqlite3_step(scan) == SQLITE_ROW, "the scan returns its first row");
  CHECK(sqlite3_close(db) == SQLITE_BUSY, "sqlite3_close() is refused while the scan is open");
  rows = 1;
  while (sqlite3_step(scan) == SQLITE_ROW) {
    if (sqlite3_column_text(scan, 1) != NULL) rows++;
  }
  CHECK(rows == 5, "the scan still returns every row after the refused close (%d)", rows);
  sqlite3_reset(scan);

  /* A scan of the same table inside each row of another. */
  REQUIRE(sqlite3_prepare_v2(db, "SELECT user_id FROM anon_sessions WHERE user_id = ?1", -1,
                             &inner, NULL) == SQLITE_OK,
          "prepares an inner lookup");
  rows = 0;
  while (sqlite3_step(scan) == SQLITE_ROW) {
    rows++;
    sqlite3_bind_int64(inner, 1, sqlite3_column_int64(scan, 0));
    while (sqlite3_step(inner) == SQLITE_ROW) nested++;
    sqlite3_reset(inner);
  }
  CHECK(rows == 5 && nested == 5, "nested scans of one table: %d outer rows, %d inner rows",
        rows, nested);
  sqlite3_finalize(inner);
  sqlite3_finalize(scan);
  CHECK(sqlite3_close(db) == SQLITE_OK, "sqlite3_close() succeeds once the scan is finalized");

  harness_remove(path);
  return check_done();
}
