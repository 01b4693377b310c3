/*
** anon.c — anonymous users: anon_signin() and user_is_anonymous().
**
** anon_signin() creates a user and its first session in one atomic call and
** returns the session token; the token itself is never stored. Options are
** validated completely before anything is written. With opts.ip, sign-ins
** are limited per address (ratelimit.anon_per_hour), because anonymous
** sign-in is the one way for anybody to write rows into the database.
*/
#include "anonauth_int.h"

#include <string.h>

static const char SQL_INSERT_USER[] =
    "INSERT INTO main.anonauth_users(is_anonymous, created_at, profile) "
    "VALUES (?1, ?2, ?3)";

static const char SQL_IS_ANONYMOUS[] =
    "SELECT is_anonymous FROM main.anonauth_users WHERE id = ?1";

int aa_user_create(aa_conn *c, int is_anonymous, const char *profile, int64_t *user_id) {
  sqlite3_stmt *st;
  int rc = aa_stmt_get(c, SQL_INSERT_USER, &st);
  if (rc != SQLITE_OK) return rc;
  sqlite3_bind_int(st, 1, is_anonymous);
  sqlite3_bind_int64(st, 2, aa_now(c));
  if (profile) sqlite3_bind_text(st, 3, profile, -1, SQLITE_STATIC);
  rc = aa_stmt_exec(c, st);
  if (rc != SQLITE_OK) return rc;
  *user_id = sqlite3_last_insert_rowid(c->db);
  return SQLITE_OK;
}

typedef struct {
  aa_opts *opts;
  aa_token token;
  int gate_passed; /* the CAPTCHA gate ran before this attempt */
  int need_gate;   /* the body found a provider the gate has not checked */
} signin_call;

static const aa_ip_limit ANON_IP_LIMIT = {"anon_signin", "anon_signin_ip",
                                          AA_CFG_RATELIMIT_ANON_PER_HOUR,
                                          "ratelimit.anon_per_hour", "anonymous sign-ins"};

static int signin_body(aa_conn *c, void *arg) {
  signin_call *call = arg;
  int64_t user_id, session_id;
  int rc = aa_config_sync(c);
  if (rc != SQLITE_OK) return rc;
  if (!call->gate_passed && aa_captcha_configured(c)) {
    /* Configured since this connection last looked: write nothing, let the
    ** caller verify the CAPTCHA without the write lock and come back. */
    call->need_gate = 1;
    return aa_err(c, SQLITE_ABORT, AA_E_INTERNAL, "anon_signin: CAPTCHA check pending");
  }
  if (call->opts->has_ip) {
    /* Counted per address (per /64 for IPv6) in the shared bucket table,
    ** inside this call so that the bucket moves only if the sign-in (or
    ** its refusal's audit row) commits. */
    int allowed = 1;
    rc = aa_ratelimit_take_ip(c, &ANON_IP_LIMIT, call->opts->ip, call->opts->ip_limit_key,
                              &allowed);
    if (rc != SQLITE_OK || !allowed) return rc;
  }
  rc = aa_user_create(c, 1, call->opts->profile, &user_id);
  if (rc != SQLITE_OK) return rc;
  rc = aa_session_create(c, user_id, call->opts, &call->token, &session_id);
  if (rc != SQLITE_OK) return rc;
  if (!aa_config_int(c, AA_CFG_AUDIT_ANON_SIGNIN)) return SQLITE_OK;
  return aa_audit(c, "anon_signin", user_id, session_id,
                  call->opts->has_ip ? call->opts->ip : NULL, NULL);
}

void aa_fn_anon_signin(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  aa_conn *c = sqlite3_user_data(ctx);
  aa_opts opts;
  signin_call call;
  int rc;
  int own_transaction = sqlite3_get_autocommit(c->db);
  aa_err_clear(c);
  rc = aa_opts_parse(c, argc > 0 ? argv[0] : NULL,
                     AA_OPT_IP | AA_OPT_USER_AGENT | AA_OPT_PROFILE | AA_OPT_CAPTCHA, &opts);
  if (rc != SQLITE_OK) {
    aa_result_error(ctx, c, rc);
    return;
  }
  memset(&call, 0, sizeof(call));
  call.opts = &opts;
  /* The gate must see captcha.provider before the write, which costs a read
  ** transaction of its own in autocommit. Sign-ins on a connection whose
  ** cached configuration names no provider skip it: the body reads the
  ** provider again under the write lock and, if one was set meanwhile,
  ** gives up before writing anything, and the gate runs after all. */
  if (aa_captcha_configured(c)) {
    rc = aa_captcha_gate(c, &opts, "anon_signin");
    call.gate_passed = 1;
  } else {
    rc = aa_atomic_direct(c, signin_body, &call, &c->signin_prepared);
    if (rc != SQLITE_OK && call.need_gate) {
      aa_err_clear(c);
      call.need_gate = 0;
      call.gate_passed = 1;
      rc = aa_captcha_gate(c, &opts, "anon_signin");
    }
  }
  if (rc == SQLITE_OK && call.gate_passed)
    rc = aa_atomic_direct(c, signin_body, &call, &c->signin_prepared);
  aa_opts_free(&opts);
  if (rc == SQLITE_OK) rc = aa_err_deferred(c); /* refused, refusal recorded */
  if (rc != SQLITE_OK) {
    aa_token_wipe(&call.token);
    aa_result_error(ctx, c, rc);
    return;
  }
  /* A sign-in writes neither the schema nor the configuration. */
  if (own_transaction && sqlite3_txn_state(c->db, NULL) == SQLITE_TXN_NONE) {
    aa_schema_after_own_commit(c);
    aa_config_after_own_commit(c);
  }
  sqlite3_result_text(ctx, call.token.text, (int)AA_TOKEN_TEXT_LEN, SQLITE_TRANSIENT);
  aa_token_wipe(&call.token);
}

void aa_fn_user_is_anonymous(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  aa_conn *c = sqlite3_user_data(ctx);
  sqlite3_stmt *st;
  int64_t user_id;
  int rc;
  (void)argc;
  aa_err_clear(c);
  if (sqlite3_value_type(argv[0]) == SQLITE_NULL) return;
  rc = aa_arg_user_id(c, argv[0], "user_id", &user_id);
  /* Innocuous, so a view or trigger may call it: it never migrates, and
  ** reads only what schema version 1 had. */
  if (rc == SQLITE_OK) rc = aa_schema_check_no_upgrade(c);
  if (rc == SQLITE_NOTFOUND) return; /* no tables yet: no such user */
  if (rc == SQLITE_OK) rc = aa_stmt_get(c, SQL_IS_ANONYMOUS, &st);
  if (rc != SQLITE_OK) {
    aa_result_error(ctx, c, rc);
    return;
  }
  sqlite3_bind_int64(st, 1, user_id);
  rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    sqlite3_result_int(ctx, sqlite3_column_int(st, 0));
  } else if (rc != SQLITE_DONE) {
    aa_result_error(ctx, c, aa_err_storage(c, rc));
  }
  aa_stmt_release(st);
}
