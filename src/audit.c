/*
** audit.c — the audit trail.
**
** Rows are written in the same transaction as the change they describe, so
** the trail and the data never disagree. Details are JSON objects built by
** the callers; by rule they name things (keys, providers, counts) and never
** carry tokens, hashes or secrets.
*/
#include "anonauth_int.h"

static const char SQL_AUDIT[] =
    "INSERT INTO main.anonauth_audit(at, event, user_id, session_id, ip, detail) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

int aa_audit(aa_conn *c, const char *event, int64_t user_id, int64_t session_id,
             const char *ip, const char *detail) {
  sqlite3_stmt *st;
  int rc = aa_stmt_get(c, SQL_AUDIT, &st);
  if (rc != SQLITE_OK) return rc;
  sqlite3_bind_int64(st, 1, aa_now(c));
  sqlite3_bind_text(st, 2, event, -1, SQLITE_STATIC);
  if (user_id != AA_NO_ID) sqlite3_bind_int64(st, 3, user_id);
  if (session_id != AA_NO_ID) sqlite3_bind_int64(st, 4, session_id);
  if (ip) sqlite3_bind_text(st, 5, ip, -1, SQLITE_STATIC);
  if (detail) sqlite3_bind_text(st, 6, detail, -1, SQLITE_STATIC);
  return aa_stmt_exec(c, st);
}
