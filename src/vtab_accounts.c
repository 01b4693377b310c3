/*
** vtab_accounts.c — anon_accounts: the identities linked to each user; DELETE
** unlinks one.
**
** has_secret says whether a password (or other secret) is set; the hash
** itself is no column. The rowid is the account row's own id, so a DELETE
** of several accounts of one user names each one exactly.
**
** Unlinking is refused when it would leave a user who is not anonymous with
** no account at all: that user could never sign in again, yet would not be
** cleaned up either (anon_purge() only removes anonymous users). Rows are
** checked one at a time against what the statement already removed, so
** `DELETE FROM anon_accounts WHERE user_id = 7` on a user with two accounts
** fails on the second and, because a failed DELETE is rolled back whole
** (see vtab.c), keeps both.
*/
#include "anonauth_int.h"

#include <string.h>

enum { COL_USER_ID, COL_PROVIDER, COL_ACCOUNT_ID, COL_CREATED_AT, COL_HAS_SECRET };

#define SELECT_ACCOUNTS                                                     \
  "SELECT id, user_id, provider, account_id, created_at, "                  \
  "       secret_hash IS NOT NULL "                                         \
  "FROM main.anonauth_accounts "

static const char SQL_SCAN[] = SELECT_ACCOUNTS "ORDER BY id";
static const char SQL_BY_USER[] = SELECT_ACCOUNTS "WHERE user_id = ?1 ORDER BY id";
static const char SQL_BY_IDENTITY[] = SELECT_ACCOUNTS "WHERE provider = ?1 AND account_id = ?2";

static const char SQL_ACCOUNT[] =
    "SELECT a.user_id, a.provider, u.is_anonymous, "
    "  (SELECT count(*) FROM main.anonauth_accounts AS b WHERE b.user_id = a.user_id) "
    "FROM main.anonauth_accounts AS a "
    "LEFT JOIN main.anonauth_users AS u ON u.id = a.user_id "
    "WHERE a.id = ?1";

static const char SQL_UNLINK[] = "DELETE FROM main.anonauth_accounts WHERE id = ?1";

typedef struct {
  int64_t account_row;
} unlink_call;

static int unlink_body(aa_conn *c, void *arg) {
  unlink_call *u = arg;
  sqlite3_stmt *st;
  sqlite3_str *detail;
  char *detail_text;
  int64_t user_id = 0, accounts = 0;
  int is_normal = 0;
  int rc = aa_stmt_get(c, SQL_ACCOUNT, &st);
  if (rc != SQLITE_OK) return rc;
  sqlite3_bind_int64(st, 1, u->account_row);
  rc = sqlite3_step(st);
  if (rc == SQLITE_DONE) { /* already gone */
    aa_stmt_release(st);
    return SQLITE_OK;
  }
  if (rc != SQLITE_ROW) {
    rc = aa_err_storage(c, rc);
    aa_stmt_release(st);
    return rc;
  }
  user_id = sqlite3_column_int64(st, 0);
  /* An account whose user row is missing has no one to strand. */
  is_normal = sqlite3_column_type(st, 2) != SQLITE_NULL && sqlite3_column_int(st, 2) == 0;
  accounts = sqlite3_column_int64(st, 3);
  detail = sqlite3_str_new(c->db);
  sqlite3_str_appendall(detail, "{\"provider\":");
  aa_str_append_json_string(detail, (const char *)sqlite3_column_text(st, 1),
                            sqlite3_column_bytes(st, 1));
  sqlite3_str_appendall(detail, ",\"via\":\"anon_accounts\"}");
  aa_stmt_release(st);
  detail_text = sqlite3_str_finish(detail);
  if (detail_text == NULL) return aa_err_nomem(c);

  if (is_normal && accounts <= 1) {
    sqlite3_free(detail_text);
    return aa_err(c, SQLITE_ERROR, AA_E_INVALID_ARGUMENT,
                  "refusing to unlink the last account of user %lld: a user who is "
                  "not anonymous could never sign in again",
                  (long long)user_id);
  }
  rc = aa_stmt_get(c, SQL_UNLINK, &st);
  if (rc == SQLITE_OK) {
    sqlite3_bind_int64(st, 1, u->account_row);
    rc = aa_stmt_exec(c, st);
  }
  if (rc == SQLITE_OK) rc = aa_audit(c, "account_unlinked", user_id, AA_NO_ID, NULL, detail_text);
  sqlite3_free(detail_text);
  return rc;
}

static int delete_row(aa_conn *c, int64_t rowid) {
  unlink_call u = {rowid};
  return aa_atomic(c, unlink_body, &u);
}

const aa_vtab_def aa_vtab_accounts = {
    .name = "anon_accounts",
    .declaration = "CREATE TABLE x(user_id INTEGER, provider TEXT, account_id TEXT, "
                   "created_at INTEGER, has_secret INTEGER)",
    .delete_does = "unlinks the account",
    .rowid_column = -1,
    .n_plans = 3,
    .plans =
        {
            {"scan", SQL_SCAN, {-1, -1}, 0, 0, 1000000.0},
            {"user_id=?", SQL_BY_USER, {COL_USER_ID, -1}, 0, 1, 10.0},
            /* text keys: SQLite checks them again, so omit stays 0 */
            {"provider=? AND account_id=?", SQL_BY_IDENTITY, {COL_PROVIDER, COL_ACCOUNT_ID}, 1,
             0, 2.0},
        },
    .column = NULL,
    .delete_row = delete_row,
};
