/*
** anon_signin inside the caller's transaction writes without a statement
** journal (src/atomic.c, aa_atomic_direct). It must stay all-or-nothing
** where a write fails part-way all the same:
**   - an authorizer that refuses the audit insert once the statements have
**     to be prepared again (a schema change inside the transaction): the
**     user and session rows were written, so the whole transaction goes;
**   - disk full (max_page_count): SQLite rolls the transaction back itself;
** and a trigger of the app's on anonauth's tables sends the call back to
** the wrapper statement, so a failure there undoes only the call.
** Autocommit sign-ins that skip re-reading the schema cookies and the
** configuration after their own commit still see another connection's
** changes. And a batch after PRAGMA temp_store closed the temp database (SQLite
** 3.40 ran statements prepared against it on no btree: a crash).
*/
#include "harness.h"

static int deny_audit_insert;

static int authorizer(void *arg, int action, const char *a, const char *b, const char *c,
                      const char *d) {
  (void)arg;
  (void)b;
  (void)c;
  (void)d;
  if (deny_audit_insert && action == SQLITE_INSERT && a != NULL &&
      strcmp(a, "anonauth_audit") == 0)
    return SQLITE_DENY;
  return SQLITE_OK;
}

static int exec_ok(sqlite3 *db, const char *sql) {
  return sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK;
}

/* Runs sql (one row expected); returns the error message, or "" on success. */
static void error_of(sqlite3 *db, const char *sql, char *out, size_t cap) {
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
  out[0] = 0;
  if (rc == SQLITE_OK) rc = sqlite3_step(st);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) snprintf(out, cap, "%s", sqlite3_errmsg(db));
  sqlite3_finalize(st);
}

int main(void) {
  char path[512], err[512];
  sqlite3 *db;
  long long users, app_rows;
  check_label = getenv("TEST_LABEL") ? getenv("TEST_LABEL") : "c";
  harness_path(path, sizeof path, "direct");
  harness_remove(path);
  db = harness_open(path);
  REQUIRE(db != NULL, "the database opens with anonauth loaded");
  REQUIRE(exec_ok(db, "PRAGMA journal_mode=WAL; CREATE TABLE app(x);") &&
              harness_int(db, "SELECT anon_signin() IS NOT NULL") == 1,
          "a first sign-in (through the wrapper) prepares the statements");

  /* 1. A refused reprepare after the first write. */
  sqlite3_set_authorizer(db, authorizer, NULL);
  REQUIRE(exec_ok(db, "BEGIN; INSERT INTO app VALUES ('before');"), "BEGIN and an app row");
  CHECK(harness_int(db, "SELECT anon_signin() IS NOT NULL") == 1,
        "inside BEGIN a sign-in succeeds on the journal-free path");
  REQUIRE(exec_ok(db, "CREATE TABLE schema_moves(y)"),
          "a schema change inside the transaction expires the prepared statements");
  deny_audit_insert = 1;
  error_of(db, "SELECT anon_signin()", err, sizeof err);
  deny_audit_insert = 0;
  CHECK(strstr(err, "anonauth: ") == err &&
            strstr(err, "anonauth rolled back the whole transaction") != NULL,
        "a write refused after the first one fails the call and says the transaction is gone: %s",
        err);
  CHECK(sqlite3_get_autocommit(db) == 1, "no transaction is open any more");
  users = harness_int(db, "SELECT count(*) FROM anonauth_users");
  app_rows = harness_int(db, "SELECT count(*) FROM app");
  CHECK(users == 1 && app_rows == 0, "nothing of the call nor of the transaction is left (users %lld, app rows %lld)",
        users, app_rows);
  CHECK(harness_int(db, "SELECT count(*) FROM sqlite_master WHERE name = 'schema_moves'") == 0,
        "the transaction's own schema change went with it");
  CHECK(harness_int(db, "SELECT count(*) FROM anonauth_sessions") == 1 &&
            harness_int(db, "SELECT count(*) FROM anonauth_audit WHERE event = 'anon_signin'") == 1,
        "sessions and audit rows match the users");
  sqlite3_set_authorizer(db, NULL, NULL);

  /* 2. Disk full part-way through a batch: SQLite rolls back, nothing partial. */
  REQUIRE(exec_ok(db, "BEGIN; INSERT INTO app VALUES ('before');"), "BEGIN again");
  {
    int failed_at = -1;
    char maxpc[128];
    snprintf(maxpc, sizeof maxpc, "PRAGMA max_page_count = %lld",
             harness_int(db, "PRAGMA page_count") + 2);
    REQUIRE(exec_ok(db, maxpc), "the file may grow by two pages only");
    for (int i = 0; i < 500 && failed_at < 0; i++) {
      error_of(db, "SELECT anon_signin()", err, sizeof err);
      if (err[0]) failed_at = i;
    }
    CHECK(failed_at > 0 && strstr(err, "full") != NULL,
          "a sign-in fails once the file is full (call %d): %s", failed_at, err);
    CHECK(sqlite3_get_autocommit(db) == 1, "SQLite rolled the transaction back");
    exec_ok(db, "PRAGMA max_page_count = 1073741823");
    CHECK(harness_int(db, "SELECT count(*) FROM anonauth_users") == 1 &&
              harness_int(db, "SELECT count(*) FROM anonauth_sessions") == 1 &&
              harness_int(db, "SELECT count(*) FROM app") == 0,
          "no user, session or app row of the transaction is left");
    CHECK(harness_int(db, "SELECT count(*) FROM anonauth_users AS u WHERE NOT EXISTS "
                          "(SELECT 1 FROM anonauth_sessions AS s WHERE s.user_id = u.id)") == 0,
          "no user without its session");
  }

  /* 3. An app trigger on anonauth's tables: the wrapper, a failure undoes the call only. */
  REQUIRE(exec_ok(db, "CREATE TABLE fail_now(x); "
                      "CREATE TRIGGER app_fail AFTER INSERT ON anonauth_audit "
                      "WHEN (SELECT count(*) FROM fail_now) > 0 "
                      "BEGIN SELECT RAISE(ABORT, 'the app says no'); END;"),
          "an app trigger on anonauth_audit");
  REQUIRE(exec_ok(db, "BEGIN; INSERT INTO app VALUES ('kept'); INSERT INTO fail_now VALUES (1);"),
          "BEGIN, an app row");
  error_of(db, "SELECT anon_signin()", err, sizeof err);
  CHECK(strstr(err, "the app says no") != NULL && strstr(err, "rolled back the whole") == NULL,
        "the trigger's refusal is the call's error: %s", err);
  CHECK(sqlite3_get_autocommit(db) == 0, "the caller's transaction is still open");
  CHECK(harness_int(db, "SELECT count(*) FROM anonauth_users") == 1 &&
            harness_int(db, "SELECT count(*) FROM app") == 1,
        "the call left nothing, the app's row stays");
  exec_ok(db, "DELETE FROM fail_now");
  CHECK(harness_int(db, "SELECT anon_signin() IS NOT NULL") == 1 && exec_ok(db, "COMMIT"),
        "with the trigger quiet a sign-in joins the transaction and commits");
  CHECK(harness_int(db, "SELECT count(*) FROM anonauth_users") == 2, "two users now");
  REQUIRE(exec_ok(db, "DROP TRIGGER app_fail"), "the trigger goes");

  /* 4. PRAGMA temp_store closes the temp database that the trigger check
  ** above had opened; SQLite 3.40 then ran statements prepared against it
  ** on no btree at all (this crashed before src/schema.c checked). */
  REQUIRE(exec_ok(db, "PRAGMA temp_store = FILE; BEGIN; INSERT INTO app VALUES ('batch');"),
          "temp_store changed, BEGIN, an app row");
  {
    int ok = 0;
    for (int i = 0; i < 2000; i++) ok += harness_int(db, "SELECT anon_signin() IS NOT NULL") == 1;
    CHECK(ok == 2000 && exec_ok(db, "COMMIT") &&
              harness_int(db, "SELECT count(*) FROM anonauth_users") == 2002,
          "2000 sign-ins in one transaction commit (%d)", ok);
  }
  /* 5. Autocommit sign-ins skip re-reading the schema cookies and the
  ** configuration after their own commit; another connection's changes
  ** between two of them are still seen. */
  {
    sqlite3 *other = harness_open(path);
    REQUIRE(other != NULL, "a second connection");
    CHECK(harness_int(db, "SELECT anon_signin() IS NOT NULL") == 1 &&
              harness_int(db, "SELECT anon_signin() IS NOT NULL") == 1,
          "two autocommit sign-ins");
    CHECK(harness_int(other, "SELECT anonauth_config('session.max_age', 7200)") == 7200,
          "the other connection sets session.max_age");
    CHECK(harness_int(db, "SELECT anon_signin() IS NOT NULL") == 1 &&
              harness_int(db, "SELECT expires_at - created_at FROM anonauth_sessions "
                              "ORDER BY id DESC LIMIT 1") == 7200,
          "the next sign-in here uses it");
    CHECK(exec_ok(other, "CREATE VIEW anon_users AS SELECT 1 AS id"),
          "the other connection creates a view that hides anon_users");
    error_of(db, "SELECT anon_signin()", err, sizeof err);
    CHECK(strstr(err, "hides anonauth's virtual table anon_users") != NULL,
          "the next sign-in here is refused, naming it: %s", err);
    CHECK(exec_ok(other, "DROP VIEW anon_users"), "the view goes");
    CHECK(harness_int(db, "SELECT anon_signin() IS NOT NULL") == 1, "sign-ins work again");
    sqlite3_close(other);
  }
  {
    char ok[64];
    harness_text(db, "PRAGMA integrity_check", ok, sizeof ok);
    CHECK(strcmp(ok, "ok") == 0, "integrity_check: %s", ok);
  }
  sqlite3_close(db);
  harness_remove(path);
  return check_done();
}
