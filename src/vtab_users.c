/*
** vtab_users.c — anon_users: every user, with what an operator asks first
** (which providers it signed in with, how many sessions are live, when it
** was last seen); DELETE removes the user with its sessions and accounts.
**
** last_seen_at is the user's last activity as anon_purge() measures it: the
** latest last_seen_at of its sessions, or created_at when it has none.
** active_sessions counts sessions with the rule session_valid() applies,
** at the clock of the scan. Neither password hashes nor token hashes are
** columns, hidden or otherwise.
**
** DELETE removes only anonauth's rows. The app's own rows are the app's:
** with foreign keys on, ON DELETE CASCADE removes them, and a plain
** REFERENCES makes the DELETE fail (and change nothing) while they exist.
*/
#include "anonauth_int.h"

enum {
  COL_ID,
  COL_IS_ANONYMOUS,
  COL_CREATED_AT,
  COL_LAST_SEEN_AT,
  COL_PROFILE,
  COL_PROVIDERS,
  COL_ACTIVE_SESSIONS
};

/* ?3 now, ?4 session.max_age, ?5 session.idle_timeout (AA_VTAB_PARAM_*):
** active_sessions counts by AA_SESSION_LIVE_SQL, as session_revoke_all. */
#define SELECT_USERS                                                         \
  "SELECT u.id, u.id, u.is_anonymous, u.created_at, "                        \
  "  coalesce(max(u.created_at, (SELECT max(s.last_seen_at) "                \
  "    FROM main.anonauth_sessions AS s WHERE s.user_id = u.id)), "          \
  "    u.created_at), "                                                      \
  "  u.profile, NULL, "                                                      \
  "  (SELECT count(*) FROM main.anonauth_sessions AS s "                     \
  "    WHERE s.user_id = u.id "                                              \
  "      AND " AA_SESSION_LIVE_SQL("s.", "?3", "?4", "?5") ") "                \
  "FROM main.anonauth_users AS u "

static const char SQL_SCAN[] = SELECT_USERS "ORDER BY u.id";
static const char SQL_BY_ID[] = SELECT_USERS "WHERE u.id = ?1";

/* providers is built here rather than with json_group_array(), which
** SQLite only has built in from 3.38; and only when the column is read. */
static const char SQL_PROVIDERS[] =
    "SELECT DISTINCT provider FROM main.anonauth_accounts WHERE user_id = ?1 "
    "ORDER BY provider";

static int providers_column(aa_conn *c, const aa_vtab_scan *scan, sqlite3_stmt *row,
                            sqlite3_context *ctx, int col) {
  sqlite3_stmt *st;
  sqlite3_str *json;
  char *text;
  int rc, n = 0;
  (void)scan;
  if (col != COL_PROVIDERS) return 0;
  if (!c->in_atomic) aa_err_clear(c);
  rc = aa_stmt_get(c, SQL_PROVIDERS, &st);
  if (rc != SQLITE_OK) {
    aa_result_error(ctx, c, rc);
    return 1;
  }
  sqlite3_bind_int64(st, 1, sqlite3_column_int64(row, 1 + COL_ID));
  json = sqlite3_str_new(c->db);
  sqlite3_str_appendchar(json, 1, '[');
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    if (n++ > 0) sqlite3_str_appendchar(json, 1, ',');
    aa_str_append_json_string(json, (const char *)sqlite3_column_text(st, 0),
                              sqlite3_column_bytes(st, 0));
  }
  sqlite3_str_appendchar(json, 1, ']');
  rc = rc == SQLITE_DONE ? SQLITE_OK : aa_err_storage(c, rc);
  aa_stmt_release(st);
  text = sqlite3_str_finish(json);
  if (rc == SQLITE_OK && text == NULL) rc = aa_err_nomem(c);
  if (rc != SQLITE_OK) {
    sqlite3_free(text);
    aa_result_error(ctx, c, rc);
    return 1;
  }
  sqlite3_result_text(ctx, text, -1, sqlite3_free);
  return 1;
}

typedef struct {
  int64_t user_id;
  int found;
} delete_call;

static int delete_body(aa_conn *c, void *arg) {
  delete_call *d = arg;
  int64_t sessions = 0, accounts = 0;
  char detail[96];
  int rc = aa_user_delete(c, d->user_id, &d->found, &sessions, &accounts);
  if (rc != SQLITE_OK || !d->found) return rc;
  sqlite3_snprintf((int)sizeof(detail), detail,
                   "{\"sessions\":%lld,\"accounts\":%lld,\"via\":\"anon_users\"}",
                   (long long)sessions, (long long)accounts);
  return aa_audit(c, "user_deleted", d->user_id, AA_NO_ID, NULL, detail);
}

static int delete_row(aa_conn *c, int64_t rowid) {
  delete_call d = {rowid, 0};
  int rc = aa_atomic(c, delete_body, &d);
  if (rc == SQLITE_OK && d.found) aa_authctx_user_deleted(c, rowid);
  return rc;
}

const aa_vtab_def aa_vtab_users = {
    .name = "anon_users",
    .declaration = "CREATE TABLE x(id INTEGER, is_anonymous INTEGER, created_at INTEGER, "
                   "last_seen_at INTEGER, profile TEXT, providers TEXT, "
                   "active_sessions INTEGER)",
    .delete_does = "removes the user with its sessions and accounts",
    .rowid_column = COL_ID,
    .n_plans = 2,
    .plans =
        {
            {"scan", SQL_SCAN, {-1, -1}, 0, 0, 1000000.0},
            {"id=?", SQL_BY_ID, {COL_ID, -1}, 1, 1, 1.0},
        },
    .column = providers_column,
    .delete_row = delete_row,
};
