/*
** ratelimit.c — token buckets stored in the database.
**
** A limit of N per hour is a bucket of N tokens refilled continuously at
** N/3600 per second. Buckets live in anonauth_rate_limits so that every
** connection and process shares them, and they change inside the caller's
** atomic call, so a bucket moves exactly when the work it guards commits.
** A clock that goes backwards (anonauth_set_clock in tests, NTP steps)
** refills nothing rather than draining or overfilling the bucket.
*/
#include "anonauth_int.h"

static const char SQL_READ[] =
    "SELECT tokens, updated_at FROM main.anonauth_rate_limits "
    "WHERE kind = ?1 AND subject = ?2";

static const char SQL_WRITE[] =
    "INSERT INTO main.anonauth_rate_limits(kind, subject, tokens, updated_at) "
    "VALUES (?1, ?2, ?3, ?4) ON CONFLICT(kind, subject) "
    "DO UPDATE SET tokens = excluded.tokens, updated_at = excluded.updated_at";

/* The bucket's level now, after refilling since it was last written. */
static int level(aa_conn *c, const char *kind, const char *subject, int64_t per_hour,
                 double *tokens) {
  sqlite3_stmt *st;
  int rc = aa_stmt_get(c, SQL_READ, &st);
  if (rc != SQLITE_OK) return rc;
  sqlite3_bind_text(st, 1, kind, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, subject, -1, SQLITE_STATIC);
  rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    double stored = sqlite3_column_double(st, 0);
    int64_t elapsed = aa_now(c) - sqlite3_column_int64(st, 1);
    if (elapsed < 0) elapsed = 0;
    stored += (double)elapsed * (double)per_hour / 3600.0;
    *tokens = stored > (double)per_hour ? (double)per_hour : stored;
    rc = SQLITE_OK;
  } else if (rc == SQLITE_DONE) {
    *tokens = (double)per_hour; /* a new bucket starts full */
    rc = SQLITE_OK;
  } else {
    rc = aa_err_storage(c, rc);
  }
  aa_stmt_release(st);
  return rc;
}

int aa_ratelimit_available(aa_conn *c, const char *kind, const char *subject,
                           int64_t per_hour, int *allowed) {
  double tokens = 0;
  int rc;
  *allowed = 1;
  if (per_hour <= 0) return SQLITE_OK; /* 0 disables the limit */
  rc = level(c, kind, subject, per_hour, &tokens);
  if (rc == SQLITE_OK) *allowed = tokens >= 1.0;
  return rc;
}

int aa_ratelimit_take(aa_conn *c, const char *kind, const char *subject, int64_t per_hour,
                      int *allowed) {
  sqlite3_stmt *st;
  double tokens = 0;
  int rc;
  *allowed = 1;
  if (per_hour <= 0) return SQLITE_OK;
  rc = level(c, kind, subject, per_hour, &tokens);
  if (rc != SQLITE_OK) return rc;
  *allowed = tokens >= 1.0;
  if (*allowed) tokens -= 1.0;
  rc = aa_stmt_get(c, SQL_WRITE, &st);
  if (rc != SQLITE_OK) return rc;
  sqlite3_bind_text(st, 1, kind, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, subject, -1, SQLITE_STATIC);
  sqlite3_bind_double(st, 3, tokens);
  sqlite3_bind_int64(st, 4, aa_now(c));
  return aa_stmt_exec(c, st);
}

int aa_ratelimit_take_ip(aa_conn *c, const aa_ip_limit *l, const char *ip, const char *ip_key,
                         int *allowed) {
  int64_t per_hour = aa_config_int(c, l->config_key);
  char *detail;
  int rc = aa_ratelimit_take(c, l->kind, ip_key, per_hour, allowed);
  if (rc != SQLITE_OK || *allowed) return rc;
  detail = sqlite3_mprintf("{\"function\":\"%s\",\"limit\":\"%s\"}", l->function,
                           l->config_name);
  if (detail == NULL) return aa_err_nomem(c);
  rc = aa_audit(c, "rate_limited", AA_NO_ID, AA_NO_ID, ip, detail);
  sqlite3_free(detail);
  if (rc != SQLITE_OK) return rc;
  /* The refusal's audit row and the drained bucket must stay: the error is
  ** reported after the call commits. */
  return aa_err_after_commit(c, AA_E_RATE_LIMITED, "%s: more than %lld %s per hour from this "
                             "address (%s)", l->function, (long long)per_hour, l->what,
                             l->config_name);
}
