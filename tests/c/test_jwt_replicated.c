/*
** Access tokens in replicated mode (src/replicated.c) on a plain file
** database, as docs/cluster.md states it: making the first signing key is a
** write, refused outside BEGIN ... COMMIT with transaction_required and
** nothing written; once a key exists session_jwt, anonauth_jwks and
** jwt_verify work outside a transaction; session_refresh writes and needs
** one.
*/
#include "harness.h"
#include "anonauth.h"

static int fails_with(sqlite3 *db, const char *sql, const char *code) {
  sqlite3_stmt *st = NULL;
  int rc, hit;
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) return 0;
  rc = sqlite3_step(st);
  hit = rc != SQLITE_ROW && strstr(sqlite3_errmsg(db), code) != NULL;
  sqlite3_finalize(st);
  return hit;
}

int main(void) {
  char path[512], tok[64], jwt[1024], next[64];
  sqlite3 *db;
  check_label = getenv("TEST_LABEL") ? getenv("TEST_LABEL") : "c";
  harness_path(path, sizeof path, "jwt_replicated");
  harness_remove(path);
  anonauth_set_replicated(1);
  REQUIRE(sqlite3_auto_extension((void (*)(void))sqlite3_anonauth_init) == SQLITE_OK,
          "registers the extension");
  REQUIRE(sqlite3_open(path, &db) == SQLITE_OK, "opens in replicated mode");
  sqlite3_exec(db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL);
  REQUIRE(sqlite3_exec(db,
                       "BEGIN; SELECT anonauth_config('jwt.issuer', 'i'), "
                       "anonauth_config('jwt.audience', 'a'); COMMIT",
                       NULL, NULL, NULL) == SQLITE_OK,
          "configures inside a transaction");
  REQUIRE(sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) == SQLITE_OK &&
              harness_text(db, "SELECT anon_signin()", tok, sizeof tok) == SQLITE_OK &&
              sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK,
          "signs in inside a transaction");

  CHECK(fails_with(db, "SELECT anonauth_jwks()", "transaction_required"),
        "the first key, outside a transaction: transaction_required");
  CHECK(harness_int(db, "SELECT count(*) FROM anonauth_jwt_keys") == 0, "and no key was made");
  CHECK(sqlite3_exec(db, "BEGIN; SELECT anonauth_jwks(); COMMIT", NULL, NULL, NULL) == SQLITE_OK,
        "inside BEGIN ... COMMIT the first key is made");
  {
    sqlite3_stmt *st = NULL;
    int ok = sqlite3_prepare_v2(db, "SELECT session_jwt(?1)", -1, &st, NULL) == SQLITE_OK;
    sqlite3_bind_text(st, 1, tok, -1, SQLITE_STATIC);
    ok = ok && sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) == SQLITE_TEXT;
    if (ok) snprintf(jwt, sizeof jwt, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    CHECK(ok, "then session_jwt works outside a transaction");
    ok = sqlite3_prepare_v2(db, "SELECT jwt_verify(?1) IS NOT NULL", -1, &st, NULL) == SQLITE_OK;
    sqlite3_bind_text(st, 1, jwt, -1, SQLITE_STATIC);
    ok = ok && sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0) == 1;
    sqlite3_finalize(st);
    CHECK(ok, "and jwt_verify verifies it");
    ok = sqlite3_prepare_v2(db, "SELECT session_refresh(?1)", -1, &st, NULL) == SQLITE_OK;
    sqlite3_bind_text(st, 1, tok, -1, SQLITE_STATIC);
    ok = ok && sqlite3_step(st) != SQLITE_ROW &&
         strstr(sqlite3_errmsg(db), "transaction_required") != NULL;
    sqlite3_finalize(st);
    CHECK(ok, "session_refresh outside a transaction: transaction_required");
    CHECK(harness_valid(db, tok) == 1, "and the token still works");
    sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
    ok = sqlite3_prepare_v2(db, "SELECT session_refresh(?1)", -1, &st, NULL) == SQLITE_OK;
    sqlite3_bind_text(st, 1, tok, -1, SQLITE_STATIC);
    ok = ok && sqlite3_step(st) == SQLITE_ROW && sqlite3_column_bytes(st, 0) == 57;
    if (ok) snprintf(next, sizeof next, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    ok = ok && sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK;
    CHECK(ok && harness_valid(db, next) == 1 && harness_valid(db, tok) == 0,
          "inside a transaction session_refresh rotates the token");
  }
  CHECK(sqlite3_close(db) == SQLITE_OK, "closes");
  anonauth_set_replicated(0);
  harness_remove(path);
  return check_done();
}
