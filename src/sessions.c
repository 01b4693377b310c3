/*
** sessions.c — sessions: creating them, deciding whether one is live,
** recording activity, revoking.
**
** A session is live when it is not revoked and the clock is before all of:
** its expires_at (fixed when it was created), created_at + session.max_age
** (so shortening max_age cuts existing sessions too) and last_seen_at +
** session.idle_timeout. session_valid() is on every request's path, so it
** is one indexed lookup by token hash; it writes only when last_seen_at is
** more than session.touch_interval old, and that write is best-effort: a
** read-only or busy database skips it rather than failing the check.
*/
#include "anonauth_int.h"

#include <string.h>

static const char SQL_LOOKUP[] =
    "SELECT s.id, s.user_id, s.created_at, s.last_seen_at, s.expires_at, "
    "       s.revoked_at IS NOT NULL, u.is_anonymous "
    "FROM main.anonauth_sessions AS s "
    "JOIN main.anonauth_users AS u ON u.id = s.user_id "
    "WHERE s.token_hash = ?1";

static const char SQL_TOUCH[] =
    "UPDATE main.anonauth_sessions SET last_seen_at = ?2 "
    "WHERE id = ?1 AND last_seen_at < ?2";

static const char SQL_INSERT[] =
    "INSERT INTO main.anonauth_sessions"
    "(token_hash, user_id, created_at, last_seen_at, expires_at, ip, user_agent) "
    "VALUES (?1, ?2, ?3, ?3, ?4, ?5, ?6)";

static const char SQL_REVOKE[] =
    "UPDATE main.anonauth_sessions SET revoked_at = ?2 "
    "WHERE id = ?1 AND revoked_at IS NULL";

/* Live sessions of a user (AA_SESSION_LIVE_SQL). */
static const char SQL_REVOKE_ALL[] =
    "UPDATE main.anonauth_sessions SET revoked_at = ?2 "
    "WHERE user_id = ?1 AND " AA_SESSION_LIVE_SQL("", "?2", "?3", "?4");

/* Live sessions of a user but one (?5, the caller's). */
static const char SQL_REVOKE_OTHERS[] =
    "UPDATE main.anonauth_sessions SET revoked_at = ?2 "
    "WHERE user_id = ?1 AND id <> ?5 AND " AA_SESSION_LIVE_SQL("", "?2", "?3", "?4");

/* AA_SESSION_LIVE_SQL in C: the same three deadlines, each compared with ">". */
static int is_live(aa_conn *c, const aa_session *s, int revoked, int64_t now) {
  int64_t max_age = aa_config_int(c, AA_CFG_SESSION_MAX_AGE);
  int64_t idle = aa_config_int(c, AA_CFG_SESSION_IDLE_TIMEOUT);
  return !revoked && s->expires_at > now && s->created_at + max_age > now &&
         s->last_seen_at + idle > now;
}

int aa_session_is_live(aa_conn *c, const aa_session *s, int revoked, int64_t now) {
  return is_live(c, s, revoked, now);
}

/* Best-effort: a failure here must not turn a valid session into an error.
** True when last_seen_at is now `now`. */
static int touch(aa_conn *c, const aa_session *s, int64_t now) {
  sqlite3_stmt *st;
  int rc;
  if (sqlite3_db_readonly(c->db, "main") != 0) return 0;
  if (!aa_replicated_may_write_quietly(c)) return 0;
  if (aa_stmt_get(c, SQL_TOUCH, &st) != SQLITE_OK) {
    aa_err_clear(c);
    return 0;
  }
  sqlite3_bind_int64(st, 1, s->session_id);
  sqlite3_bind_int64(st, 2, now);
  rc = sqlite3_step(st);
  aa_stmt_release(st);
  return rc == SQLITE_DONE;
}

int aa_session_lookup(aa_conn *c, sqlite3_value *token, int want_touch,
                      aa_session *s, int *found) {
  unsigned char hash[AA_TOKEN_HASH_BYTES];
  sqlite3_stmt *st;
  int rc, revoked = 0, row = 0;
  int64_t now;

  *found = 0;
  memset(s, 0, sizeof(*s));
  if (aa_token_hash_value(token, hash) != SQLITE_OK) return SQLITE_OK;
  rc = aa_schema_check(c);
  if (rc == SQLITE_NOTFOUND) {
    aa_err_clear(c);
    return SQLITE_OK; /* no tables yet: no sessions */
  }
  if (rc != SQLITE_OK) return rc;

  rc = aa_stmt_get(c, SQL_LOOKUP, &st);
  if (rc != SQLITE_OK) return rc;
  sqlite3_bind_blob(st, 1, hash, sizeof(hash), SQLITE_STATIC);
  rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    row = 1;
    s->session_id = sqlite3_column_int64(st, 0);
    s->user_id = sqlite3_column_int64(st, 1);
    s->created_at = sqlite3_column_int64(st, 2);
    s->last_seen_at = sqlite3_column_int64(st, 3);
    s->expires_at = sqlite3_column_int64(st, 4);
    revoked = sqlite3_column_int(st, 5);
    s->is_anonymous = sqlite3_column_int(st, 6);
    /* The statement holds the read transaction: the config is current. */
    rc = aa_config_sync(c);
  } else if (rc == SQLITE_DONE) {
    rc = SQLITE_OK;
  } else {
    rc = aa_err_storage(c, rc);
  }
  aa_stmt_release(st); /* also unbinds `hash`, which lives on this stack */
  if (rc != SQLITE_OK || !row) return rc;

  now = aa_now(c);
  if (!is_live(c, s, revoked, now)) return SQLITE_OK;
  *found = 1;
  if (want_touch && now - s->last_seen_at >= aa_config_int(c, AA_CFG_SESSION_TOUCH_INTERVAL) &&
      now > s->last_seen_at) {
    /* A skipped touch leaves the stored time, which session_info reports. */
    if (touch(c, s, now)) s->last_seen_at = now;
  }
  return SQLITE_OK;
}

int aa_session_create(aa_conn *c, int64_t user_id, const aa_opts *o, aa_token *t,
                      int64_t *session_id) {
  sqlite3_stmt *st;
  int64_t now = aa_now(c);
  int rc = aa_stmt_get(c, SQL_INSERT, &st);
  if (rc != SQLITE_OK) return rc;
  aa_token_new(t);
  sqlite3_bind_blob(st, 1, t->hash, sizeof(t->hash), SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, user_id);
  sqlite3_bind_int64(st, 3, now);
  sqlite3_bind_int64(st, 4, now + aa_config_int(c, AA_CFG_SESSION_MAX_AGE));
  if (o && o->has_ip) sqlite3_bind_text(st, 5, o->ip, -1, SQLITE_STATIC);
  if (o && o->has_user_agent) sqlite3_bind_text(st, 6, o->user_agent, -1, SQLITE_STATIC);
  rc = aa_stmt_exec(c, st);
  if (rc != SQLITE_OK) return rc;
  *session_id = sqlite3_last_insert_rowid(c->db);
  return SQLITE_OK;
}

int aa_session_revoke(aa_conn *c, int64_t session_id, int *revoked) {
  sqlite3_stmt *st;
  int rc = aa_stmt_get(c, SQL_REVOKE, &st);
  if (rc != SQLITE_OK) return rc;
  sqlite3_bind_int64(st, 1, session_id);
  sqlite3_bind_int64(st, 2, aa_now(c));
  rc = aa_stmt_exec(c, st);
  if (rc != SQLITE_OK) return rc;
  *revoked = sqlite3_changes(c->db) > 0;
  return SQLITE_OK;
}

/* ---- SQL functions ------------------------------------------------------- */

void aa_fn_session_valid(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  aa_conn *c = sqlite3_user_data(ctx);
  aa_session s;
  int found, rc;
  (void)argc;
  aa_err_clear(c);
  rc = aa_session_lookup(c, argv[0], 1, &s, &found);
  if (rc != SQLITE_OK) {
    aa_result_error(ctx, c, rc);
    return;
  }
  sqlite3_result_int(ctx, found);
}

void aa_fn_session_user(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  aa_conn *c = sqlite3_user_data(ctx);
  aa_session s;
  int found, rc;
  (void)argc;
  aa_err_clear(c);
  rc = aa_session_lookup(c, argv[0], 1, &s, &found);
  if (rc != SQLITE_OK) {
    aa_result_error(ctx, c, rc);
    return;
  }
  if (found) sqlite3_result_int64(ctx, s.user_id);
}

typedef struct {
  sqlite3_value *token;
  int64_t user_id;
  int64_t count;
} revoke_call;

static int signout_body(aa_conn *c, void *arg) {
  revoke_call *r = arg;
  aa_session s;
  int found, revoked = 0;
  int rc = aa_session_lookup(c, r->token, 0, &s, &found);
  if (rc != SQLITE_OK || !found) return rc;
  rc = aa_session_revoke(c, s.session_id, &revoked);
  if (rc != SQLITE_OK || !revoked) return rc;
  r->count = 1;
  aa_authctx_session_revoked(c, s.session_id);
  return aa_audit(c, "signout", s.user_id, s.session_id, NULL, NULL);
}

void aa_fn_anon_signout(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  aa_conn *c = sqlite3_user_data(ctx);
  unsigned char hash[AA_TOKEN_HASH_BYTES];
  revoke_call r = {argv[0], 0, 0};
  int rc;
  (void)argc;
  aa_err_clear(c);
  /* Garbage never takes the write lock. */
  if (aa_token_hash_value(argv[0], hash) != SQLITE_OK) {
    sqlite3_result_int(ctx, 0);
    return;
  }
  rc = aa_atomic(c, signout_body, &r);
  if (rc != SQLITE_OK) {
    aa_result_error(ctx, c, rc);
    return;
  }
  sqlite3_result_int(ctx, (int)r.count);
}

static int revoke_all_body(aa_conn *c, void *arg) {
  revoke_call *r = arg;
  sqlite3_stmt *st;
  char detail[48];
  int64_t now = aa_now(c);
  int rc = aa_config_sync(c);
  if (rc != SQLITE_OK) return rc;
  rc = aa_stmt_get(c, SQL_REVOKE_ALL, &st);
  if (rc != SQLITE_OK) return rc;
  sqlite3_bind_int64(st, 1, r->user_id);
  sqlite3_bind_int64(st, 2, now);
  sqlite3_bind_int64(st, 3, aa_config_int(c, AA_CFG_SESSION_MAX_AGE));
  sqlite3_bind_int64(st, 4, aa_config_int(c, AA_CFG_SESSION_IDLE_TIMEOUT));
  rc = aa_stmt_exec(c, st);
  if (rc != SQLITE_OK) return rc;
  r->count = sqlite3_changes(c->db);
  if (r->count == 0) return SQLITE_OK;
  aa_authctx_user_signed_out(c, r->user_id);
  sqlite3_snprintf((int)sizeof(detail), detail, "{\"sessions\":%lld}", (long long)r->count);
  return aa_audit(c, "revoke_all", r->user_id, AA_NO_ID, NULL, detail);
}

void aa_fn_session_revoke_all(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  aa_conn *c = sqlite3_user_data(ctx);
  revoke_call r = {NULL, 0, 0};
  int rc;
  (void)argc;
  aa_err_clear(c);
  rc = aa_arg_user_id(c, argv[0], "user_id", &r.user_id);
  if (rc == SQLITE_OK) rc = aa_atomic(c, revoke_all_body, &r);
  if (rc != SQLITE_OK) {
    aa_result_error(ctx, c, rc);
    return;
  }
  sqlite3_result_int64(ctx, r.count);
}

/* ---- per device: session_info(), session_revoke_others() ---------------- */

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* session_info(token): what a cookie needs to know about a live session, as
** JSON; NULL otherwise. It shares session_valid()'s look-up, touch included:
** a request that asks for its session's details is activity. */
void aa_fn_session_info(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  aa_conn *c = sqlite3_user_data(ctx);
  aa_session s;
  char json[256];
  int found, rc;
  int64_t expires;
  (void)argc;
  aa_err_clear(c);
  rc = aa_session_lookup(c, argv[0], 1, &s, &found);
  if (rc != SQLITE_OK) {
    aa_result_error(ctx, c, rc);
    return;
  }
  if (!found) return;
  /* The earliest of the three deadlines of AA_SESSION_LIVE_SQL (the look-up
  ** synced the configuration). */
  expires = min64(s.expires_at,
                  min64(s.created_at + aa_config_int(c, AA_CFG_SESSION_MAX_AGE),
                        s.last_seen_at + aa_config_int(c, AA_CFG_SESSION_IDLE_TIMEOUT)));
  sqlite3_snprintf((int)sizeof(json), json,
                   "{\"session_id\":%lld,\"user_id\":%lld,\"is_anonymous\":%s,"
                   "\"created_at\":%lld,\"last_seen_at\":%lld,\"expires_at\":%lld}",
                   (long long)s.session_id, (long long)s.user_id,
                   s.is_anonymous ? "true" : "false", (long long)s.created_at,
                   (long long)s.last_seen_at, (long long)expires);
  sqlite3_result_text(ctx, json, -1, SQLITE_TRANSIENT);
}

static int revoke_others_body(aa_conn *c, void *arg) {
  revoke_call *r = arg;
  aa_session s;
  sqlite3_stmt *st;
  char detail[48];
  int found;
  int64_t now = aa_now(c);
  int rc = aa_session_lookup(c, r->token, 0, &s, &found);
  if (rc != SQLITE_OK) return rc;
  if (!found) return aa_err(c, SQLITE_ERROR, AA_E_INVALID_SESSION, "the session is not valid");
  rc = aa_stmt_get(c, SQL_REVOKE_OTHERS, &st);
  if (rc != SQLITE_OK) return rc;
  sqlite3_bind_int64(st, 1, s.user_id);
  sqlite3_bind_int64(st, 2, now);
  sqlite3_bind_int64(st, 3, aa_config_int(c, AA_CFG_SESSION_MAX_AGE));
  sqlite3_bind_int64(st, 4, aa_config_int(c, AA_CFG_SESSION_IDLE_TIMEOUT));
  sqlite3_bind_int64(st, 5, s.session_id);
  rc = aa_stmt_exec(c, st);
  if (rc != SQLITE_OK) return rc;
  r->count = sqlite3_changes(c->db);
  if (r->count == 0) return SQLITE_OK;
  aa_authctx_others_signed_out(c, s.user_id, s.session_id);
  sqlite3_snprintf((int)sizeof(detail), detail, "{\"sessions\":%lld}", (long long)r->count);
  return aa_audit(c, "revoke_others", s.user_id, s.session_id, NULL, detail);
}

/* session_revoke_others(token): "sign out my other devices". The token must
** be live (invalid_session otherwise, as link_account): revoking on behalf
** of a dead session would let a stolen, expired cookie sign the owner out. */
void aa_fn_session_revoke_others(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  aa_conn *c = sqlite3_user_data(ctx);
  unsigned char hash[AA_TOKEN_HASH_BYTES];
  revoke_call r = {argv[0], 0, 0};
  int rc;
  (void)argc;
  aa_err_clear(c);
  /* Garbage never takes the write lock. */
  if (aa_token_hash_value(argv[0], hash) != SQLITE_OK)
    rc = aa_err(c, SQLITE_ERROR, AA_E_INVALID_SESSION, "the session is not valid");
  else
    rc = aa_atomic(c, revoke_others_body, &r);
  if (rc != SQLITE_OK) {
    aa_result_error(ctx, c, rc);
    return;
  }
  sqlite3_result_int64(ctx, r.count);
}
