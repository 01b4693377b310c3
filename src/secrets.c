/*
** secrets.c — what happens to an account's secret after sign-up:
** account_set_secret() (change it, proving the current one),
** account_reset_secret() (set a forgotten one with a 'reset' code), and
** account_signin() with opts.code (a 'signin' code as the credential).
**
** Each is built from accounts.c's pieces (the shared internals in
** anonauth_int.h): the failed sign-in bucket taken before any check,
** Argon2 outside the write lock, the unlocked read checked again under it,
** failures that commit their bucket and audit row. Every success that
** replaces a secret revokes the sessions that may have known the old one.
*/
#include "anonauth_int.h"

#include <sodium.h>
#include <string.h>

/* ---- account_set_secret(token, provider, account_id, current, new) ------- */

/*
** Changing a secret is a sign-in with the current one (the same bucket,
** taken first, and the same equal-time failure) by the account's owner's
** live session. On success the new hash replaces the verified one, every
** other session of the user is revoked (whoever else held one may have
** known the old secret), and the calling session is rotated like
** link_account's. An account that is not the session user's costs what an
** unknown one costs and fails alike: its hash is never checked here.
*/

/* Live or not: after a secret change no other session may stay usable. */
static const char SQL_REVOKE_OTHERS[] =
    "UPDATE main.anonauth_sessions SET revoked_at = ?3 "
    "WHERE user_id = ?1 AND id <> ?2 AND revoked_at IS NULL";

static const char SQL_SET_HASH[] =
    "UPDATE main.anonauth_accounts SET secret_hash = ?2 WHERE id = ?1";

static int revoke_others(aa_conn *c, int64_t user_id, int64_t keep, int64_t *n) {
  sqlite3_stmt *st;
  int rc = aa_stmt_get(c, SQL_REVOKE_OTHERS, &st);
  if (rc != SQLITE_OK) return rc;
  sqlite3_bind_int64(st, 1, user_id);
  sqlite3_bind_int64(st, 2, keep);
  sqlite3_bind_int64(st, 3, aa_now(c));
  rc = aa_stmt_exec(c, st);
  if (rc == SQLITE_OK) *n = sqlite3_changes(c->db);
  return rc;
}

static int set_hash(aa_conn *c, int64_t account_row_id, const char *hash) {
  sqlite3_stmt *st;
  int rc = aa_stmt_get(c, SQL_SET_HASH, &st);
  if (rc != SQLITE_OK) return rc;
  sqlite3_bind_int64(st, 1, account_row_id);
  sqlite3_bind_text(st, 2, hash, -1, SQLITE_STATIC);
  return aa_stmt_exec(c, st);
}

typedef struct {
  sqlite3_value *token_in;
  const aa_account_args *a; /* secret: the current one */
  aa_session sess;
  aa_account_row seen;  /* as read, for aa_acct_row_same() */
  aa_account_row judged; /* what the credential was checked against */
  int matches;
  char hash[AA_PASSWORD_HASH_MAX]; /* the new secret's, when matches */
  int changed;
  int64_t new_session;
  aa_token token;
} set_secret_call;

/* The row as the check sees it: another user's account is unknown here. */
static void judge_row(const set_secret_call *s, aa_account_row *out) {
  *out = s->seen;
  if (out->exists && out->user_id != s->sess.user_id) {
    out->exists = 0;
    out->hash = NULL;
  }
}

static int set_secret_body(aa_conn *c, void *arg) {
  set_secret_call *s = arg;
  aa_session now_sess;
  aa_account_row now;
  aa_opts client;
  int64_t session_id = 0, others = 0;
  int found, same, proceed, revoked = 0;
  char extra[64];
  const char *ip;
  int rc = aa_config_sync(c);
  if (rc != SQLITE_OK) return rc;
  rc = aa_session_lookup(c, s->token_in, 0, &now_sess, &found);
  if (rc != SQLITE_OK) return rc;
  if (!found) return aa_acct_invalid_session(c);
  rc = aa_acct_row_read(c, s->a, &now);
  if (rc != SQLITE_OK) return rc;
  same = aa_acct_row_same(&now, &s->seen);
  aa_acct_row_free(&now);
  if (!same || now_sess.session_id != s->sess.session_id) return aa_acct_changed_meanwhile(c, &s->changed);

  rc = aa_acct_session_client(c, now_sess.session_id, &client);
  if (rc != SQLITE_OK) return rc;
  ip = client.has_ip ? client.ip : NULL;
  rc = aa_acct_settle_credential(c, s->a, &s->judged, s->matches, ip, "account_set_secret", &proceed);
  if (rc != SQLITE_OK || !proceed) return rc;

  rc = set_hash(c, s->seen.id, s->hash);
  if (rc == SQLITE_OK) rc = revoke_others(c, now_sess.user_id, now_sess.session_id, &others);
  if (rc == SQLITE_OK) rc = aa_session_revoke(c, now_sess.session_id, &revoked);
  if (rc == SQLITE_OK)
    rc = aa_session_create(c, now_sess.user_id, &client, &s->token, &session_id);
  if (rc != SQLITE_OK) return rc;
  s->new_session = session_id;
  sqlite3_snprintf((int)sizeof(extra), extra, "\"sessions_revoked\":%lld", (long long)others);
  return aa_acct_audit_account(c, "secret_changed", now_sess.user_id, session_id, ip, s->a, 1, extra);
}

static int no_secret_to_change(aa_conn *c) {
  return aa_err(c, SQLITE_ERROR, AA_E_INVALID_ARGUMENT,
                "this account has no secret to change; add a password account with "
                "link_account()");
}

void aa_fn_account_set_secret(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  aa_conn *c = sqlite3_user_data(ctx);
  unsigned char token_hash[AA_TOKEN_HASH_BYTES];
  aa_account_args a;
  set_secret_call call;
  const char *fresh = NULL;
  int fresh_len = 0, found, rc;
  (void)argc;

  aa_err_clear(c);
  memset(&call, 0, sizeof(call));
  rc = aa_acct_read_args(c, argv[1], argv[2], argv[3], &a);
  if (rc == SQLITE_OK && a.secret == NULL)
    rc = aa_err(c, SQLITE_ERROR, AA_E_INVALID_ARGUMENT,
                "current_secret must be text of 1 to %d bytes", AA_SECRET_MAX);
  if (rc == SQLITE_OK) {
    if (sqlite3_value_type(argv[4]) == SQLITE_TEXT) {
      fresh = (const char *)sqlite3_value_text(argv[4]);
      fresh_len = sqlite3_value_bytes(argv[4]);
    }
    if (fresh == NULL || fresh_len < 1 || fresh_len > AA_SECRET_MAX)
      rc = aa_err(c, SQLITE_ERROR, AA_E_INVALID_ARGUMENT,
                  "new_secret must be text of 1 to %d bytes", AA_SECRET_MAX);
  }
  if (rc != SQLITE_OK) {
    aa_result_error(ctx, c, rc);
    return;
  }
  if (aa_token_hash_value(argv[0], token_hash) != SQLITE_OK) {
    aa_result_error(ctx, c, aa_acct_invalid_session(c));
    return;
  }
  rc = aa_atomic_begin(c);
  for (int attempt = 1; rc == SQLITE_OK; attempt++) {
    int refused = 0;
    memset(&call, 0, sizeof(call));
    call.token_in = argv[0];
    call.a = &a;
    rc = aa_acct_read_before(c, &a, &call.seen);
    if (rc == SQLITE_OK) rc = aa_acct_secret_policy(c, fresh, fresh_len);
    if (rc == SQLITE_OK) rc = aa_session_lookup(c, argv[0], 0, &call.sess, &found);
    if (rc == SQLITE_OK && !found) rc = aa_acct_invalid_session(c);
    if (rc == SQLITE_OK) {
      judge_row(&call, &call.judged);
      /* Its owner may learn that the account takes no secret. */
      if (call.judged.exists && call.judged.hash == NULL) rc = no_secret_to_change(c);
    }
    if (rc == SQLITE_OK)
      rc = aa_acct_take_before_check(c, &a, &call.judged, NULL, call.sess.session_id,
                             "account_set_secret", &refused);
    if (rc == SQLITE_OK && !refused) {
      call.matches = aa_acct_credential_matches(c, &call.judged, &a);
      if (call.matches == AA_CRED_MATCH) rc = aa_password_hash(c, fresh, fresh_len, call.hash);
      if (rc == SQLITE_OK) rc = aa_atomic(c, set_secret_body, &call);
    }
    aa_acct_row_free(&call.seen); /* judged shares its hash */
    aa_password_wipe(call.hash);
    if (!aa_acct_start_over(c, rc, call.changed, attempt, &call.token)) break;
    rc = SQLITE_OK;
  }
  if (rc == SQLITE_OK && aa_err_deferred(c) == SQLITE_OK) {
    aa_authctx_others_signed_out(c, call.sess.user_id, call.sess.session_id);
    aa_authctx_session_replaced(c, call.sess.session_id, call.new_session, call.sess.user_id, 0);
  }
  aa_acct_finish(ctx, c, rc, &call.token);
}

/* ---- account_reset_secret(provider, account_id, code, new_secret) -------- */

/*
** A forgotten secret, reset with a 'reset' code (codes.c). Guessing a code
** is guessing a secret: a token of the account's failed sign-in bucket is
** taken before the code is checked, as before Argon2 in sign-in, and a wrong
** code also costs one of the code's own attempts. The new secret is hashed
** before the code is checked, whatever the code, so that every answer costs
** one Argon2 run. On success every session of the user is revoked (whoever
** knew the old secret may hold one) and the token of a new one returned.
*/

#define CODE_ARG_MAX 64

typedef struct {
  const aa_account_args *a; /* secret: the code */
  aa_account_row seen;
  char hash[AA_PASSWORD_HASH_MAX];
  int changed;
  int64_t user_id;
  aa_token token;
} reset_call;

static int reset_body(aa_conn *c, void *arg) {
  reset_call *r = arg;
  aa_account_row now;
  aa_opts none;
  int64_t session_id = 0, revoked = 0;
  int ok = 0, same;
  char extra[64];
  int rc = aa_config_sync(c);
  if (rc != SQLITE_OK) return rc;
  rc = aa_acct_row_read(c, r->a, &now);
  if (rc != SQLITE_OK) return rc;
  same = aa_acct_row_same(&now, &r->seen);
  aa_acct_row_free(&now);
  if (!same) return aa_acct_changed_meanwhile(c, &r->changed);
  rc = aa_code_consume(c, r->a->provider, r->a->provider_len, r->a->account_id,
                       r->a->account_id_len, AA_CODE_RESET, r->a->secret, r->a->secret_len, &ok);
  if (rc != SQLITE_OK) return rc;
  if (!ok || !r->seen.exists || r->seen.hash == NULL) {
    rc = aa_acct_audit_account(c, "signin_failed", r->seen.exists ? r->seen.user_id : AA_NO_ID, AA_NO_ID,
                       NULL, r->a, r->seen.exists,
                       "\"reason\":\"wrong_code\",\"via\":\"account_reset_secret\"");
    if (rc != SQLITE_OK) return rc;
    return aa_err_after_commit(c, AA_E_INVALID_CREDENTIALS,
                               "unknown account, or a wrong, used or expired code");
  }
  memset(&none, 0, sizeof(none));
  r->user_id = r->seen.user_id;
  rc = set_hash(c, r->seen.id, r->hash);
  if (rc == SQLITE_OK) rc = aa_acct_bucket_reset(c, r->a);
  if (rc == SQLITE_OK) rc = revoke_others(c, r->user_id, AA_NO_ID, &revoked);
  if (rc == SQLITE_OK) rc = aa_session_create(c, r->user_id, &none, &r->token, &session_id);
  if (rc != SQLITE_OK) return rc;
  sqlite3_snprintf((int)sizeof(extra), extra, "\"sessions_revoked\":%lld", (long long)revoked);
  return aa_acct_audit_account(c, "secret_reset", r->user_id, session_id, NULL, r->a, 1, extra);
}

void aa_fn_account_reset_secret(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  aa_conn *c = sqlite3_user_data(ctx);
  aa_account_args a;
  aa_opts none;
  reset_call call;
  const char *fresh = NULL;
  int fresh_len = 0, rc;
  (void)argc;

  aa_err_clear(c);
  memset(&call, 0, sizeof(call));
  memset(&none, 0, sizeof(none));
  rc = aa_acct_read_args(c, argv[0], argv[1], NULL, &a);
  if (rc == SQLITE_OK) {
    if (sqlite3_value_type(argv[2]) == SQLITE_TEXT) {
      a.secret = (const char *)sqlite3_value_text(argv[2]);
      a.secret_len = sqlite3_value_bytes(argv[2]);
    }
    if (a.secret == NULL || a.secret_len < 1 || a.secret_len > CODE_ARG_MAX ||
        memchr(a.secret, 0, (size_t)a.secret_len) != NULL)
      rc = aa_err(c, SQLITE_ERROR, AA_E_INVALID_ARGUMENT, "code must be text of 1 to %d bytes",
                  CODE_ARG_MAX);
  }
  if (rc == SQLITE_OK) {
    if (sqlite3_value_type(argv[3]) == SQLITE_TEXT) {
      fresh = (const char *)sqlite3_value_text(argv[3]);
      fresh_len = sqlite3_value_bytes(argv[3]);
    }
    if (fresh == NULL || fresh_len < 1 || fresh_len > AA_SECRET_MAX)
      rc = aa_err(c, SQLITE_ERROR, AA_E_INVALID_ARGUMENT,
                  "new_secret must be text of 1 to %d bytes", AA_SECRET_MAX);
  }
  if (rc != SQLITE_OK) {
    aa_result_error(ctx, c, rc);
    return;
  }
  rc = aa_atomic_begin(c);
  for (int attempt = 1; rc == SQLITE_OK; attempt++) {
    int refused = 0;
    aa_acct_row_free(&call.seen);
    memset(&call, 0, sizeof(call));
    call.a = &a;
    rc = aa_acct_read_before(c, &a, &call.seen);
    if (rc == SQLITE_OK) rc = aa_acct_secret_policy(c, fresh, fresh_len);
    if (rc == SQLITE_OK)
      rc = aa_acct_take_before_check(c, &a, &call.seen, &none, AA_NO_ID, "account_reset_secret",
                             &refused);
    if (rc != SQLITE_OK || refused) break;
    rc = aa_password_hash(c, fresh, fresh_len, call.hash);
    if (rc == SQLITE_OK) rc = aa_atomic(c, reset_body, &call);
    aa_password_wipe(call.hash);
    if (!aa_acct_start_over(c, rc, call.changed, attempt, &call.token)) break;
    rc = SQLITE_OK;
  }
  aa_acct_row_free(&call.seen);
  if (rc == SQLITE_OK && aa_err_deferred(c) == SQLITE_OK && call.user_id > 0)
    aa_authctx_user_signed_out(c, call.user_id);
  aa_acct_finish(ctx, c, rc, &call.token);
}

/* ---- account_signin with opts.code: passwordless ------------------------ */

/*
** A 'signin' code (codes.c) is the credential: the app delivered it to the
** identity (an e-mail address, a phone number), so whoever presents it holds
** that identity. Guessing it is guessing a secret: a token of the account's
** bucket is taken first, and a wrong code also costs one of the code's
** attempts. If the account does not exist it is created without a secret
** (an identity the app verified); with the anon_token of a live anonymous
** session, that user is converted in place (same id, so the visitor's rows
** stay theirs) and the visitor's session is replaced, as link_account
** rotates. If it exists, anon_token merges as in a sign-in with a secret,
** under the same fail-closed rule; that refusal can only come after the code
** was checked (before, it would tell whether the account exists), and it
** rolls the code's use back.
*/
typedef struct {
  const aa_account_args *a; /* secret: the code, for the bucket */
  const aa_opts *opts;
  aa_account_row seen;
  int changed;
  int converted;
  int64_t user_id;
  int64_t merged_from;
  int64_t anon_session; /* the visitor's session a conversion replaced */
  int64_t new_session;
  aa_token token;
} code_call;

static int code_signin_body(aa_conn *c, void *arg) {
  code_call *k = arg;
  const char *ip = k->opts->has_ip ? k->opts->ip : NULL;
  aa_account_row now;
  aa_session s;
  int64_t session_id = 0, from = AA_NO_ID, user_id = AA_NO_ID;
  int same, ok = 0, found = 0, revoked = 0;
  char extra[96];
  int rc = aa_config_sync(c);
  if (rc != SQLITE_OK) return rc;
  rc = aa_acct_row_read(c, k->a, &now);
  if (rc != SQLITE_OK) return rc;
  same = aa_acct_row_same(&now, &k->seen);
  aa_acct_row_free(&now);
  if (!same) return aa_acct_changed_meanwhile(c, &k->changed);
  rc = aa_code_consume(c, k->a->provider, k->a->provider_len, k->a->account_id,
                       k->a->account_id_len, AA_CODE_SIGNIN, k->a->secret, k->a->secret_len, &ok);
  if (rc != SQLITE_OK) return rc;
  if (!ok) {
    rc = aa_acct_audit_account(c, "signin_failed", k->seen.exists ? k->seen.user_id : AA_NO_ID, AA_NO_ID,
                       ip, k->a, k->seen.exists,
                       "\"reason\":\"wrong_code\",\"via\":\"account_signin\"");
    if (rc != SQLITE_OK) return rc;
    return aa_err_after_commit(c, AA_E_INVALID_CREDENTIALS,
                               "unknown account, or a wrong, used or expired code");
  }
  rc = aa_acct_bucket_reset(c, k->a);
  if (rc != SQLITE_OK) return rc;
  if (k->seen.exists) {
    user_id = k->seen.user_id;
    rc = aa_acct_anon_to_merge(c, k->opts, user_id, &from);
    if (rc == SQLITE_OK && from != AA_NO_ID) rc = aa_merge_allowed(c);
    if (rc == SQLITE_OK && from != AA_NO_ID) rc = aa_merge_users(c, from, user_id);
  } else {
    if (k->opts->has_anon_token && !k->opts->anon_token_malformed)
      rc = aa_acct_lookup_token_text(c, k->opts->anon_token, &s, &found);
    if (rc == SQLITE_OK && found && s.is_anonymous) {
      user_id = s.user_id;
      k->anon_session = s.session_id;
      rc = aa_acct_insert_account(c, user_id, k->a, NULL);
      if (rc == SQLITE_OK) rc = aa_acct_convert_user(c, user_id, &k->converted);
      if (rc == SQLITE_OK) rc = aa_session_revoke(c, s.session_id, &revoked);
    } else if (rc == SQLITE_OK) {
      rc = aa_user_create(c, 0, NULL, &user_id);
      if (rc == SQLITE_OK) rc = aa_acct_insert_account(c, user_id, k->a, NULL);
    }
  }
  if (rc == SQLITE_OK) rc = aa_session_create(c, user_id, k->opts, &k->token, &session_id);
  if (rc != SQLITE_OK) return rc;
  k->user_id = user_id;
  k->merged_from = from;
  k->new_session = session_id;
  sqlite3_snprintf((int)sizeof(extra), extra, "\"via\":\"code\",\"created\":%s,\"converted\":%s",
                   k->seen.exists ? "false" : "true", k->converted ? "true" : "false");
  rc = aa_acct_audit_account(c, "signin", user_id, session_id, ip, k->a, 1, extra);
  if (rc == SQLITE_OK && from != AA_NO_ID) {
    sqlite3_snprintf((int)sizeof(extra), extra,
                     "\"from_user\":%lld,\"via\":\"account_signin\"", (long long)from);
    rc = aa_acct_audit_account(c, "merge", user_id, session_id, ip, k->a, 1, extra);
  }
  return rc;
}

void aa_acct_code_signin(sqlite3_context *ctx, aa_conn *c, const aa_account_args *a,
                        const aa_opts *opts) {
  aa_account_args guess = *a;
  code_call call;
  int rc;
  memset(&call, 0, sizeof(call));
  guess.secret = opts->code;
  guess.secret_len = (int)strlen(opts->code);
  rc = aa_atomic_begin(c);
  for (int attempt = 1; rc == SQLITE_OK; attempt++) {
    int refused = 0;
    aa_acct_row_free(&call.seen);
    memset(&call, 0, sizeof(call));
    call.a = &guess;
    call.opts = opts;
    rc = aa_acct_read_before(c, &guess, &call.seen);
    if (rc == SQLITE_OK)
      rc = aa_acct_take_before_check(c, &guess, &call.seen, opts, AA_NO_ID, "account_signin", &refused);
    if (rc != SQLITE_OK || refused) break;
    rc = aa_atomic(c, code_signin_body, &call);
    if (!aa_acct_start_over(c, rc, call.changed, attempt, &call.token)) break;
    rc = SQLITE_OK;
  }
  aa_acct_row_free(&call.seen);
  if (rc == SQLITE_OK && aa_err_deferred(c) == SQLITE_OK && call.user_id > 0) {
    if (call.merged_from > 0) aa_authctx_user_merged(c, call.merged_from, call.user_id, 0);
    if (call.converted) {
      aa_authctx_session_replaced(c, call.anon_session, call.new_session, call.user_id, 0);
      aa_authctx_user_changed(c, call.user_id, 0);
    }
  }
  aa_acct_finish(ctx, c, rc, &call.token);
}
