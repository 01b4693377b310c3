/*
** authctx.c — the authorization context: who the current request is, for
** views and triggers.
**
** anonauth_use(token) looks the token up once and remembers its user on the
** connection; auth_uid() and auth_is_anonymous() then answer from memory.
** That is what lets the two readers be SQLITE_INNOCUOUS: they read no table,
** so a view such as
**
**   CREATE VIEW my_cart AS SELECT * FROM cart WHERE user_id = auth_uid()
**
** or a trigger that refuses rows owned by someone else works even with
** PRAGMA trusted_schema=OFF, and is no way for a schema someone else wrote
** to read or write anything. anonauth_use() itself reads (and may record
** activity), so it is direct-only.
**
** The context is a snapshot: it is not re-checked on every auth_uid() call
** (a session that expires or is revoked elsewhere keeps answering until the
** next anonauth_use()). Apps call anonauth_use() at the start of every
** request and anonauth_use(NULL) at its end. What this connection itself
** does to the user through anonauth (linking an account, merging, deleting
** the user, signing the session out) updates the snapshot through the
** aa_authctx_* hooks below; every hook only ever narrows or corrects it.
*/
#include "anonauth_int.h"

static void clear(aa_conn *c) {
  c->auth_set = 0;
  c->auth_uid = 0;
  c->auth_is_anonymous = 0;
  c->auth_session_id = 0;
}

void aa_authctx_user_changed(aa_conn *c, int64_t user_id, int is_anonymous) {
  if (c->auth_set && c->auth_uid == user_id) c->auth_is_anonymous = is_anonymous != 0;
}

void aa_authctx_user_merged(aa_conn *c, int64_t from_user, int64_t to_user,
                            int to_is_anonymous) {
  if (!c->auth_set || c->auth_uid != from_user) return;
  c->auth_uid = to_user;
  c->auth_is_anonymous = to_is_anonymous != 0;
}

void aa_authctx_session_replaced(aa_conn *c, int64_t old_session, int64_t new_session,
                                 int64_t user_id, int is_anonymous) {
  if (!c->auth_set || c->auth_session_id != old_session) return;
  c->auth_session_id = new_session;
  c->auth_uid = user_id;
  c->auth_is_anonymous = is_anonymous != 0;
}

void aa_authctx_user_deleted(aa_conn *c, int64_t user_id) {
  if (c->auth_set && c->auth_uid == user_id) clear(c);
}

void aa_authctx_session_revoked(aa_conn *c, int64_t session_id) {
  if (c->auth_set && c->auth_session_id == session_id) clear(c);
}

void aa_authctx_user_signed_out(aa_conn *c, int64_t user_id) {
  aa_authctx_user_deleted(c, user_id);
}

void aa_authctx_user_signed_out_except(aa_conn *c, int64_t user_id, int64_t kept) {
  if (c->auth_set && c->auth_uid == user_id && c->auth_session_id != kept) clear(c);
}

/* anonauth_use(token): the token's user id, or NULL; anything but a live
** session's token (NULL, garbage, expired, revoked) clears the context, and
** so does an error, so a failed look-up never leaves the previous user in
** place. */
void aa_fn_anonauth_use(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  aa_conn *c = sqlite3_user_data(ctx);
  aa_session s;
  int found = 0, rc;
  (void)argc;
  aa_err_clear(c);
  clear(c);
  if (sqlite3_value_type(argv[0]) == SQLITE_NULL) return;
  rc = aa_session_lookup(c, argv[0], 1, &s, &found);
  if (rc != SQLITE_OK) {
    aa_result_error(ctx, c, rc);
    return;
  }
  if (!found) return;
  c->auth_set = 1;
  c->auth_uid = s.user_id;
  c->auth_is_anonymous = s.is_anonymous != 0;
  c->auth_session_id = s.session_id;
  sqlite3_result_int64(ctx, s.user_id);
}

void aa_fn_auth_uid(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  aa_conn *c = sqlite3_user_data(ctx);
  (void)argc;
  (void)argv;
  if (c->auth_set) sqlite3_result_int64(ctx, c->auth_uid);
}

void aa_fn_auth_is_anonymous(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  aa_conn *c = sqlite3_user_data(ctx);
  (void)argc;
  (void)argv;
  if (c->auth_set) sqlite3_result_int(ctx, c->auth_is_anonymous);
}
