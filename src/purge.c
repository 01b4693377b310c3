/*
** purge.c — removing users: user_delete() for one user, and anon_purge(),
** the clean-up of what anonymous sign-in leaves behind. Both run the app's
** purge.user_sql for every user they remove, in the same atomic call.
**
** Every anonymous visitor becomes a user row and a session, and most never
** come back. anon_purge([max_idle]) deletes anonymous users with no account
** whose last activity (latest session last_seen_at, or created_at) is older
** than max_idle (purge.max_idle, 30 days by default, as Firebase does),
** after running the app's purge.user_sql for each so the app's rows go too.
** It also deletes what holds no information any more: sessions that died
** (revoked or expired) more than max_idle ago, audit rows older than
** audit.max_age, one-time codes past their expiry, and rate-limit buckets
** untouched for an hour (a bucket of N per hour refills from empty in exactly
** one hour, so such a bucket reads as full, exactly as a missing one does).
**
** One call is one atomic unit and removes at most purge.batch users, so a
** purge never holds the write lock for long: callers loop until it returns
** 0. The other deletions run in every call, and cost what they delete, not
** the table size, without an index of their own (schema step 6 dropped the
** two that every sign-in wrote): sessions and audit rows get ids that grow
** with time, so the old ones are a prefix of their table. A session is only
** touched while it is live, so one that died before the cutoff was also
** created before it: the purge reads sessions from the oldest up to the
** first one created at or after the cutoff, and deletes the dead among
** them (the ones read and kept are the old sessions still alive). Audit
** rows go from the oldest up to the first one young enough to stay. Should
** the clock step backwards, a row written after the step waits for the rows
** before it: it goes late, never early.
*/
#include "anonauth_int.h"

#include <string.h>

#define TEN_YEARS INT64_C(315360000)

static const char SQL_DELETE_SESSIONS[] =
    "DELETE FROM main.anonauth_sessions WHERE user_id = ?1";
static const char SQL_DELETE_ACCOUNTS[] =
    "DELETE FROM main.anonauth_accounts WHERE user_id = ?1";
static const char SQL_DELETE_USER[] = "DELETE FROM main.anonauth_users WHERE id = ?1";

static int delete_by_id(aa_conn *c, const char *sql, int64_t id, int64_t *changes) {
  sqlite3_stmt *st;
  int rc = aa_stmt_get(c, sql, &st);
  if (rc != SQLITE_OK) return rc;
  sqlite3_bind_int64(st, 1, id);
  rc = aa_stmt_exec(c, st);
  if (rc == SQLITE_OK && changes) *changes = sqlite3_changes64(c->db);
  return rc;
}

int aa_user_delete(aa_conn *c, int64_t user_id, int *found, int64_t *sessions,
                   int64_t *accounts) {
  int64_t users = 0;
  /* Children first, so that enforced foreign keys are satisfied. */
  int rc = delete_by_id(c, SQL_DELETE_SESSIONS, user_id, sessions);
  if (rc == SQLITE_OK) rc = delete_by_id(c, SQL_DELETE_ACCOUNTS, user_id, accounts);
  if (rc == SQLITE_OK) rc = delete_by_id(c, SQL_DELETE_USER, user_id, &users);
  *found = users > 0;
  if ((rc & 0xff) == SQLITE_CONSTRAINT) {
    /* The app's rows still point at the user (foreign keys are on). */
    aa_err_clear(c);
    rc = aa_err(c, rc, AA_E_INVALID_ARGUMENT,
                "user %lld is still referenced by other rows (%s); delete them first, "
                "or declare the reference ON DELETE CASCADE",
                (long long)user_id, sqlite3_errmsg(c->db));
  }
  return rc;
}

/* Oldest first, so each call takes the users that waited longest. */
static const char SQL_STALE_USERS[] =
    "SELECT u.id FROM main.anonauth_users AS u "
    "WHERE u.is_anonymous = 1 AND u.created_at < ?1 "
    "  AND NOT EXISTS (SELECT 1 FROM main.anonauth_accounts AS a "
    "                  WHERE a.user_id = u.id) "
    "  AND NOT EXISTS (SELECT 1 FROM main.anonauth_sessions AS s "
    "                  INDEXED BY anonauth_sessions_by_user "
    "                  WHERE s.user_id = u.id AND s.last_seen_at >= ?1) "
    "ORDER BY u.created_at, u.id LIMIT ?2";

/* Dead since before the cutoff ?1: revoked before it, or past one of the
** deadlines of AA_SESSION_UNEXPIRED_SQL before it (not unexpired at ?1 with
** ">=": a deadline equal to the cutoff has been dead for no time yet).
** ?2 is session.max_age, ?3 session.idle_timeout. */
static const char SQL_STALE_SESSIONS[] =
    "DELETE FROM main.anonauth_sessions "
    "WHERE id < coalesce((SELECT id FROM main.anonauth_sessions WHERE created_at >= ?1 "
    "                     ORDER BY id LIMIT 1), "
    "                    (SELECT max(id) + 1 FROM main.anonauth_sessions)) "
    "  AND last_seen_at < ?1 AND (revoked_at < ?1 "
    "  OR NOT " AA_SESSION_UNEXPIRED_SQL("", ">=", "?1", "?2", "?3") ")";

static const char SQL_OLD_AUDIT[] =
    "DELETE FROM main.anonauth_audit "
    "WHERE id < coalesce((SELECT id FROM main.anonauth_audit WHERE at >= ?1 "
    "                     ORDER BY id LIMIT 1), "
    "                    (SELECT max(id) + 1 FROM main.anonauth_audit))";

/* One-time codes past their expiry (src/codes.c); a used or exhausted code
** is deleted when it dies. */
static const char SQL_DEAD_CODES[] = "DELETE FROM main.anonauth_codes WHERE expires_at <= ?1";

static const char SQL_FULL_BUCKETS[] =
    "DELETE FROM main.anonauth_rate_limits WHERE updated_at <= ?1";

typedef struct {
  int64_t max_idle; /* -1: purge.max_idle */
  int64_t *ids;     /* the users deleted, for the context hook */
  int n_ids;
  int64_t users, sessions, audit, buckets, codes;
} purge_call;

/* The app's purge.user_sql, prepared once per call. */
typedef struct {
  sqlite3_stmt **st;
  int n;
} app_sql;

static void app_sql_free(app_sql *a) {
  for (int i = 0; i < a->n; i++) sqlite3_finalize(a->st[i]);
  sqlite3_free(a->st);
  memset(a, 0, sizeof(*a));
}

static int app_sql_prepare(aa_conn *c, app_sql *a) {
  const char *text = aa_config_text(c, AA_CFG_PURGE_USER_SQL);
  char *copy, *tail;
  int rc = SQLITE_OK;
  memset(a, 0, sizeof(*a));
  if (text == NULL) return SQLITE_OK;
  /* The config cache may reload while the app's SQL runs: keep our own copy. */
  copy = sqlite3_mprintf("%s", text);
  if (copy == NULL) return aa_err_nomem(c);
  tail = copy;
  while (*tail) {
    sqlite3_stmt *st = NULL;
    const char *next = NULL;
    sqlite3_stmt **grown;
    /* Only a value written around anonauth_config() can hold one. */
    if (aa_sql_next_is_pragma(tail, (int)strlen(tail))) {
      rc = aa_err(c, SQLITE_ERROR, AA_E_PURGE_FAILED,
                  "purge.user_sql is not run: statement %d is a PRAGMA or EXPLAIN; set it "
                  "again with anonauth_config()",
                  a->n + 1);
      break;
    }
    rc = sqlite3_prepare_v2(c->db, tail, -1, &st, &next);
    if (rc != SQLITE_OK) {
      rc = aa_err(c, rc, AA_E_PURGE_FAILED, "purge.user_sql does not prepare: %s",
                  sqlite3_errmsg(c->db));
      break;
    }
    if (st == NULL) break; /* only whitespace or comments left */
    grown = sqlite3_realloc64(a->st, sizeof(sqlite3_stmt *) * (sqlite3_uint64)(a->n + 1));
    if (grown == NULL) {
      sqlite3_finalize(st);
      rc = aa_err_nomem(c);
      break;
    }
    a->st = grown;
    a->st[a->n++] = st;
    tail = (char *)next;
  }
  if (rc == SQLITE_OK)
    rc = aa_config_check_app_sql(c, AA_CFG_PURGE_USER_SQL, copy, AA_E_PURGE_FAILED);
  sqlite3_free(copy);
  if (rc != SQLITE_OK) app_sql_free(a);
  return rc;
}

static int app_sql_run(aa_conn *c, app_sql *a, int64_t user_id) {
  int in_txn = !sqlite3_get_autocommit(c->db);
  for (int i = 0; i < a->n; i++) {
    sqlite3_stmt *st = a->st[i];
    int p = sqlite3_bind_parameter_index(st, ":user_id");
    int rc;
    if (p > 0) sqlite3_bind_int64(st, p, user_id);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    }
    if (rc != SQLITE_DONE) {
      /* Whatever the app's SQL ran into (an anonauth table it reached
      ** included) is reported as the purge's failure, its message kept. */
      aa_err_clear(c);
      rc = aa_err(c, rc, AA_E_PURGE_FAILED, "purge.user_sql failed for user %lld: %s%s",
                  (long long)user_id, sqlite3_errmsg(c->db),
                  in_txn && sqlite3_get_autocommit(c->db)
                      ? "; SQLite rolled back the caller's whole transaction (RAISE(ROLLBACK))"
                      : "");
      sqlite3_reset(st);
      return rc;
    }
    sqlite3_reset(st);
  }
  return SQLITE_OK;
}

static int stale_users(aa_conn *c, purge_call *p, int64_t cutoff, int64_t batch) {
  sqlite3_stmt *st;
  int rc = aa_stmt_get(c, SQL_STALE_USERS, &st);
  if (rc != SQLITE_OK) return rc;
  p->ids = sqlite3_malloc64(sizeof(*p->ids) * (sqlite3_uint64)batch);
  if (p->ids == NULL) {
    aa_stmt_release(st);
    return aa_err_nomem(c);
  }
  sqlite3_bind_int64(st, 1, cutoff);
  sqlite3_bind_int64(st, 2, batch);
  while ((rc = sqlite3_step(st)) == SQLITE_ROW && p->n_ids < batch)
    p->ids[p->n_ids++] = sqlite3_column_int64(st, 0);
  rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : aa_err_storage(c, rc);
  aa_stmt_release(st);
  return rc;
}

/* One user, the app's rows first (purge.user_sql prepared in `app`), then
** anonauth's: what anon_purge() does for each user it picks, and
** user_delete() for the one it is given. */
static int purge_user(aa_conn *c, app_sql *app, int64_t user_id, int *found,
                      int64_t *sessions, int64_t *accounts) {
  int rc = app_sql_run(c, app, user_id);
  if (rc != SQLITE_OK) return rc;
  rc = aa_user_delete(c, user_id, found, sessions, accounts);
  if ((rc & 0xff) == SQLITE_CONSTRAINT) {
    /* The app's rows still point at the user: its purge.user_sql misses them. */
    aa_err_clear(c);
    rc = aa_err(c, rc, AA_E_PURGE_FAILED,
                "user %lld is still referenced by other rows (%s); make "
                "purge.user_sql delete the app's rows for :user_id",
                (long long)user_id, sqlite3_errmsg(c->db));
  }
  return rc;
}

static int delete_users(aa_conn *c, purge_call *p) {
  app_sql app;
  int rc = app_sql_prepare(c, &app);
  if (rc != SQLITE_OK) return rc;
  for (int i = 0; rc == SQLITE_OK && i < p->n_ids; i++) {
    int64_t sessions = 0;
    int found = 0;
    rc = purge_user(c, &app, p->ids[i], &found, &sessions, NULL);
    p->users += found;
    p->sessions += sessions;
  }
  app_sql_free(&app);
  return rc;
}

static int delete_where(aa_conn *c, const char *sql, int64_t a, int64_t b, int64_t d,
                        int64_t *changes) {
  sqlite3_stmt *st;
  int rc = aa_stmt_get(c, sql, &st);
  if (rc != SQLITE_OK) return rc;
  sqlite3_bind_int64(st, 1, a);
  if (sqlite3_bind_parameter_count(st) >= 3) {
    sqlite3_bind_int64(st, 2, b);
    sqlite3_bind_int64(st, 3, d);
  }
  rc = aa_stmt_exec(c, st);
  if (rc == SQLITE_OK) *changes += sqlite3_changes64(c->db);
  return rc;
}

static int purge_body(aa_conn *c, void *arg) {
  purge_call *p = arg;
  int64_t now = aa_now(c), max_idle, cutoff;
  char detail[256];
  int rc = aa_config_sync(c);
  if (rc != SQLITE_OK) return rc;
  max_idle = p->max_idle >= 0 ? p->max_idle : aa_config_int(c, AA_CFG_PURGE_MAX_IDLE);
  cutoff = now - max_idle;

  rc = stale_users(c, p, cutoff, aa_config_int(c, AA_CFG_PURGE_BATCH));
  if (rc == SQLITE_OK) rc = delete_users(c, p);
  if (rc == SQLITE_OK)
    rc = delete_where(c, SQL_STALE_SESSIONS, cutoff, aa_config_int(c, AA_CFG_SESSION_MAX_AGE),
                      aa_config_int(c, AA_CFG_SESSION_IDLE_TIMEOUT), &p->sessions);
  if (rc == SQLITE_OK)
    rc = delete_where(c, SQL_OLD_AUDIT, now - aa_config_int(c, AA_CFG_AUDIT_MAX_AGE), 0, 0,
                      &p->audit);
  if (rc == SQLITE_OK) rc = delete_where(c, SQL_FULL_BUCKETS, now - 3600, 0, 0, &p->buckets);
  if (rc == SQLITE_OK) rc = delete_where(c, SQL_DEAD_CODES, now, 0, 0, &p->codes);
  if (rc != SQLITE_OK) return rc;
  if (p->users + p->sessions + p->audit + p->buckets + p->codes == 0) return SQLITE_OK;
  sqlite3_snprintf((int)sizeof(detail), detail,
                   "{\"users\":%lld,\"sessions\":%lld,\"audit_rows\":%lld,"
                   "\"rate_limits\":%lld,\"codes\":%lld,\"max_idle\":%lld}",
                   (long long)p->users, (long long)p->sessions, (long long)p->audit,
                   (long long)p->buckets, (long long)p->codes, (long long)max_idle);
  return aa_audit(c, "purge", AA_NO_ID, AA_NO_ID, NULL, detail);
}

void aa_fn_anon_purge(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  aa_conn *c = sqlite3_user_data(ctx);
  purge_call p;
  int rc;
  aa_err_clear(c);
  memset(&p, 0, sizeof(p));
  p.max_idle = -1;
  if (argc > 0 && sqlite3_value_type(argv[0]) != SQLITE_NULL) {
    if (!aa_value_int64(argv[0], &p.max_idle) || p.max_idle < 0 || p.max_idle > TEN_YEARS) {
      aa_result_error(ctx, c,
                      aa_err(c, SQLITE_ERROR, AA_E_INVALID_ARGUMENT,
                             "max_idle must be an integer number of seconds from 0 to %lld",
                             (long long)TEN_YEARS));
      return;
    }
  }
  rc = aa_atomic(c, purge_body, &p);
  if (rc == SQLITE_OK) {
    for (int i = 0; i < p.n_ids; i++) aa_authctx_user_deleted(c, p.ids[i]);
    sqlite3_result_int64(ctx, p.users);
  } else {
    aa_result_error(ctx, c, rc);
  }
  sqlite3_free(p.ids);
}

/* ---- user_delete(user_id) ------------------------------------------------ */

static const char SQL_USER_KIND[] =
    "SELECT is_anonymous FROM main.anonauth_users WHERE id = ?1";

typedef struct {
  int64_t user_id;
  int found;
} user_delete_call;

static int user_delete_body(aa_conn *c, void *arg) {
  user_delete_call *u = arg;
  sqlite3_stmt *st;
  app_sql app;
  char detail[96];
  int64_t sessions = 0, accounts = 0;
  int is_anonymous = 0, exists;
  int rc = aa_config_sync(c);
  if (rc != SQLITE_OK) return rc;
  rc = aa_stmt_get(c, SQL_USER_KIND, &st);
  if (rc != SQLITE_OK) return rc;
  sqlite3_bind_int64(st, 1, u->user_id);
  rc = sqlite3_step(st);
  exists = rc == SQLITE_ROW;
  if (exists) is_anonymous = sqlite3_column_int(st, 0) != 0;
  rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : aa_err_storage(c, rc);
  aa_stmt_release(st);
  /* No such user: nothing to do, and the app's SQL is not run for it. */
  if (rc != SQLITE_OK || !exists) return rc;

  rc = app_sql_prepare(c, &app);
  if (rc != SQLITE_OK) return rc;
  rc = purge_user(c, &app, u->user_id, &u->found, &sessions, &accounts);
  app_sql_free(&app);
  if (rc != SQLITE_OK || !u->found) return rc;
  sqlite3_snprintf((int)sizeof(detail), detail,
                   "{\"anonymous\":%s,\"sessions\":%lld,\"accounts\":%lld}",
                   is_anonymous ? "true" : "false", (long long)sessions, (long long)accounts);
  return aa_audit(c, "user_delete", u->user_id, AA_NO_ID, NULL, detail);
}

void aa_fn_user_delete(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  aa_conn *c = sqlite3_user_data(ctx);
  user_delete_call u = {0, 0};
  int rc;
  (void)argc;
  aa_err_clear(c);
  rc = aa_arg_user_id(c, argv[0], "user_id", &u.user_id);
  if (rc == SQLITE_OK) rc = aa_atomic(c, user_delete_body, &u);
  if (rc != SQLITE_OK) {
    aa_result_error(ctx, c, rc);
    return;
  }
  if (u.found) aa_authctx_user_deleted(c, u.user_id);
  sqlite3_result_int(ctx, u.found);
}
