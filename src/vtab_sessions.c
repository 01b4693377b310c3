/*
** vtab_sessions.c — anon_sessions: every session, with its status; DELETE
** revokes.
**
** status is computed with the same rule session_valid() applies
** (aa_session_is_live), at the clock of the scan: 'revoked' when revoked_at
** is set, else 'expired' or 'active'. A revoked session stays visible (it
** is history); anon_purge() removes it once it is old. The token hash is
** not a column, hidden or otherwise.
*/
#include "anonauth_int.h"

enum {
  COL_ID,
  COL_USER_ID,
  COL_CREATED_AT,
  COL_LAST_SEEN_AT,
  COL_EXPIRES_AT,
  COL_REVOKED_AT,
  COL_STATUS,
  COL_IP,
  COL_USER_AGENT
};

#define SELECT_SESSIONS                                                        \
  "SELECT id, id, user_id, created_at, last_seen_at, expires_at, revoked_at, " \
  "       NULL, ip, user_agent "                                               \
  "FROM main.anonauth_sessions "

static const char SQL_SCAN[] = SELECT_SESSIONS "ORDER BY id";
static const char SQL_BY_ID[] = SELECT_SESSIONS "WHERE id = ?1";
static const char SQL_BY_USER[] = SELECT_SESSIONS "WHERE user_id = ?1 ORDER BY id";

static int status_column(aa_conn *c, const aa_vtab_scan *scan, sqlite3_stmt *st,
                         sqlite3_context *ctx, int col) {
  aa_session s;
  const char *status;
  if (col != COL_STATUS) return 0;
  s.session_id = sqlite3_column_int64(st, 1 + COL_ID);
  s.user_id = sqlite3_column_int64(st, 1 + COL_USER_ID);
  s.is_anonymous = 0;
  s.created_at = sqlite3_column_int64(st, 1 + COL_CREATED_AT);
  s.last_seen_at = sqlite3_column_int64(st, 1 + COL_LAST_SEEN_AT);
  s.expires_at = sqlite3_column_int64(st, 1 + COL_EXPIRES_AT);
  if (sqlite3_column_type(st, 1 + COL_REVOKED_AT) != SQLITE_NULL) {
    status = "revoked";
  } else if (aa_session_is_live(c, &s, 0, scan->now)) {
    status = "active";
  } else {
    status = "expired";
  }
  sqlite3_result_text(ctx, status, -1, SQLITE_STATIC);
  return 1;
}

static const char SQL_OWNER[] =
    "SELECT user_id FROM main.anonauth_sessions WHERE id = ?1";

typedef struct {
  int64_t session_id;
  int revoked;
} revoke_row;

static int revoke_body(aa_conn *c, void *arg) {
  revoke_row *r = arg;
  sqlite3_stmt *st;
  int64_t user_id = 0;
  int rc = aa_stmt_get(c, SQL_OWNER, &st);
  if (rc != SQLITE_OK) return rc;
  sqlite3_bind_int64(st, 1, r->session_id);
  rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    user_id = sqlite3_column_int64(st, 0);
    rc = SQLITE_OK;
  } else if (rc == SQLITE_DONE) {
    rc = SQLITE_NOTFOUND;
  } else {
    rc = aa_err_storage(c, rc);
  }
  aa_stmt_release(st);
  if (rc == SQLITE_NOTFOUND) return SQLITE_OK; /* already gone */
  if (rc != SQLITE_OK) return rc;
  rc = aa_session_revoke(c, r->session_id, &r->revoked);
  if (rc != SQLITE_OK || !r->revoked) return rc; /* revoked before: no change */
  return aa_audit(c, "session_revoked", user_id, r->session_id, NULL,
                  "{\"via\":\"anon_sessions\"}");
}

static int delete_row(aa_conn *c, int64_t rowid) {
  revoke_row r = {rowid, 0};
  int rc = aa_atomic(c, revoke_body, &r);
  if (rc == SQLITE_OK && r.revoked) aa_authctx_session_revoked(c, rowid);
  return rc;
}

const aa_vtab_def aa_vtab_sessions = {
    .name = "anon_sessions",
    .declaration = "CREATE TABLE x(id INTEGER, user_id INTEGER, created_at INTEGER, "
                   "last_seen_at INTEGER, expires_at INTEGER, revoked_at INTEGER, "
                   "status TEXT, ip TEXT, user_agent TEXT)",
    .delete_does = "revokes the session",
    .rowid_column = COL_ID,
    .n_plans = 3,
    .plans =
        {
            {"scan", SQL_SCAN, {-1, -1}, 0, 0, 1000000.0},
            {"id=?", SQL_BY_ID, {COL_ID, -1}, 1, 1, 1.0},
            {"user_id=?", SQL_BY_USER, {COL_USER_ID, -1}, 0, 1, 10.0},
        },
    .column = status_column,
    .delete_row = delete_row,
};
