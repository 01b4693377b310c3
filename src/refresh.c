/*
** refresh.c — session_refresh(): rotating the session token (the refresh
** token) with reuse detection.
**
** Each refresh gives the session a new token and the old one stops
** working. The hash of every token a session has had is kept
** (anonauth_refresh_spent), so a replayed old token is recognised:
**   - the immediately previous token, within session.reuse_window seconds
**     of the rotation, returns the current token again (two tabs refreshing
**     at once, a retry after a lost response);
**   - any older token, or the previous one after the window, revokes the
**     session and writes a refresh_reuse audit row: two parties hold
**     tokens of one session, and one of them is a thief.
** Only hashes are stored. To hand the current token out again, the
** rotation stores it sealed (XChaCha20-Poly1305) under a key derived from
** the previous token, which the database does not hold: only whoever
** presents the previous token can open it. A transient failure (busy, I/O)
** is an error and rolls everything back; it never revokes.
*/
#include "anonauth_int.h"

#include <sodium.h>
#include <string.h>

#define SEAL_NONCE crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define SEAL_TAG   crypto_aead_xchacha20poly1305_ietf_ABYTES
#define SEALED_LEN (SEAL_NONCE + AA_TOKEN_TEXT_LEN + SEAL_TAG)

static const char SQL_ROTATE[] =
    "UPDATE main.anonauth_sessions SET token_hash = ?2, "
    "last_seen_at = max(last_seen_at, ?3) WHERE id = ?1";

static const char SQL_SPEND[] =
    "INSERT OR REPLACE INTO main.anonauth_refresh_spent(token_hash, session_id, replaced_at) "
    "VALUES (?1, ?2, ?3)";

static const char SQL_REMEMBER[] =
    "INSERT OR REPLACE INTO main.anonauth_refresh(session_id, prev_hash, rotated_at, sealed) "
    "VALUES (?1, ?2, ?3, ?4)";

static const char SQL_SPENT[] =
    "SELECT x.session_id, r.prev_hash, r.rotated_at, r.sealed, s.token_hash "
    "FROM main.anonauth_refresh_spent AS x "
    "LEFT JOIN main.anonauth_refresh AS r ON r.session_id = x.session_id "
    "LEFT JOIN main.anonauth_sessions AS s ON s.id = x.session_id "
    "WHERE x.token_hash = ?1";

static const char SQL_SESSION[] =
    "SELECT user_id, created_at, last_seen_at, expires_at, revoked_at IS NOT NULL "
    "FROM main.anonauth_sessions WHERE id = ?1";

typedef struct {
  sqlite3_value *token;
  unsigned char hash[AA_TOKEN_HASH_BYTES];
  aa_token next; /* the token handed out, when there is one */
  int have_next;
} refresh_call;

/* The key that seals the next token: derived from the previous token's text
** with a context of its own, so it is not the stored hash. */
static void seal_key(const unsigned char *token_text, unsigned char key[32]) {
  static const unsigned char context[] = "anonauth refresh seal v1";
  crypto_generichash(key, 32, token_text, AA_TOKEN_TEXT_LEN, context, sizeof(context) - 1);
}

static void seal_ad(int64_t session_id, unsigned char ad[8]) {
  for (int i = 0; i < 8; i++) ad[i] = (unsigned char)((uint64_t)session_id >> (8 * i));
}

static int rotate(aa_conn *c, refresh_call *r, const aa_session *s) {
  const unsigned char *prev = sqlite3_value_text(r->token);
  unsigned char key[32], ad[8], sealed[SEALED_LEN];
  unsigned long long sealed_n = 0;
  int64_t now = aa_now(c);
  sqlite3_stmt *st;
  int rc;

  aa_token_new(&r->next);
  seal_key(prev, key);
  seal_ad(s->session_id, ad);
  randombytes_buf(sealed, SEAL_NONCE);
  crypto_aead_xchacha20poly1305_ietf_encrypt(sealed + SEAL_NONCE, &sealed_n,
                                             (const unsigned char *)r->next.text,
                                             AA_TOKEN_TEXT_LEN, ad, sizeof(ad), NULL, sealed,
                                             key);
  sodium_memzero(key, sizeof(key));

  rc = aa_stmt_get(c, SQL_ROTATE, &st);
  if (rc != SQLITE_OK) return rc;
  sqlite3_bind_int64(st, 1, s->session_id);
  sqlite3_bind_blob(st, 2, r->next.hash, AA_TOKEN_HASH_BYTES, SQLITE_STATIC);
  sqlite3_bind_int64(st, 3, now);
  rc = aa_stmt_exec(c, st);
  if (rc != SQLITE_OK) return rc;

  rc = aa_stmt_get(c, SQL_SPEND, &st);
  if (rc != SQLITE_OK) return rc;
  sqlite3_bind_blob(st, 1, r->hash, AA_TOKEN_HASH_BYTES, SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, s->session_id);
  sqlite3_bind_int64(st, 3, now);
  rc = aa_stmt_exec(c, st);
  if (rc != SQLITE_OK) return rc;

  rc = aa_stmt_get(c, SQL_REMEMBER, &st);
  if (rc != SQLITE_OK) return rc;
  sqlite3_bind_int64(st, 1, s->session_id);
  sqlite3_bind_blob(st, 2, r->hash, AA_TOKEN_HASH_BYTES, SQLITE_STATIC);
  sqlite3_bind_int64(st, 3, now);
  sqlite3_bind_blob(st, 4, sealed, (int)(SEAL_NONCE + sealed_n), SQLITE_TRANSIENT);
  rc = aa_stmt_exec(c, st);
  if (rc != SQLITE_OK) return rc;
  r->have_next = 1;
  return SQLITE_OK;
}

/* Opens the sealed current token with the previous token; 1 when it opens
** and is the session's current token. */
static int reopen(refresh_call *r, int64_t session_id, const unsigned char *sealed, int n,
                  const unsigned char *current_hash) {
  const unsigned char *prev = sqlite3_value_text(r->token);
  unsigned char key[32], ad[8];
  unsigned long long out_n = 0;
  aa_token t;
  int ok;
  if (n != (int)SEALED_LEN || current_hash == NULL) return 0;
  seal_key(prev, key);
  seal_ad(session_id, ad);
  ok = crypto_aead_xchacha20poly1305_ietf_decrypt((unsigned char *)t.text, &out_n, NULL,
                                                  sealed + SEAL_NONCE, (unsigned long long)n - SEAL_NONCE,
                                                  ad, sizeof(ad), sealed, key) == 0 &&
       out_n == AA_TOKEN_TEXT_LEN;
  sodium_memzero(key, sizeof(key));
  if (ok) {
    t.text[AA_TOKEN_TEXT_LEN] = 0;
    crypto_generichash(t.hash, AA_TOKEN_HASH_BYTES, (const unsigned char *)t.text,
                       AA_TOKEN_TEXT_LEN, NULL, 0);
    ok = sodium_memcmp(t.hash, current_hash, AA_TOKEN_HASH_BYTES) == 0;
  }
  if (ok) r->next = t;
  sodium_memzero(&t, sizeof(t));
  r->have_next = ok;
  return ok;
}

/* *found 1 when session_id is live (the rule of aa_session_is_live). */
static int session_by_id(aa_conn *c, int64_t session_id, aa_session *s, int *found) {
  sqlite3_stmt *st;
  int rc = aa_stmt_get(c, SQL_SESSION, &st);
  *found = 0;
  if (rc != SQLITE_OK) return rc;
  sqlite3_bind_int64(st, 1, session_id);
  rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    int revoked = sqlite3_column_int(st, 4);
    s->session_id = session_id;
    s->user_id = sqlite3_column_int64(st, 0);
    s->created_at = sqlite3_column_int64(st, 1);
    s->last_seen_at = sqlite3_column_int64(st, 2);
    s->expires_at = sqlite3_column_int64(st, 3);
    rc = aa_config_sync(c);
    if (rc == SQLITE_OK) *found = aa_session_is_live(c, s, revoked, aa_now(c));
  } else if (rc == SQLITE_DONE) {
    rc = SQLITE_OK;
  } else {
    rc = aa_err_storage(c, rc);
  }
  aa_stmt_release(st);
  return rc;
}

static int reused(aa_conn *c, refresh_call *r, int64_t session_id, int64_t user_id,
                  const char *why) {
  int revoked = 0;
  char detail[64];
  int rc = aa_session_revoke(c, session_id, &revoked);
  if (rc != SQLITE_OK || !revoked) return rc;
  (void)r;
  aa_authctx_session_revoked(c, session_id);
  sqlite3_snprintf((int)sizeof(detail), detail, "{\"token\":\"%s\"}", why);
  return aa_audit(c, "refresh_reuse", user_id, session_id, NULL, detail);
}

/* A spent token was presented: the grace case or theft. */
static int spent(aa_conn *c, refresh_call *r, int *handled) {
  sqlite3_stmt *st;
  aa_session s;
  int rc, found = 0, is_prev = 0, in_window = 0;
  int64_t session_id = 0, rotated_at = 0, now = aa_now(c);
  unsigned char current[AA_TOKEN_HASH_BYTES], sealed[SEALED_LEN];
  int have_current = 0, sealed_n = 0;

  *handled = 0;
  rc = aa_stmt_get(c, SQL_SPENT, &st);
  if (rc != SQLITE_OK) return rc;
  sqlite3_bind_blob(st, 1, r->hash, AA_TOKEN_HASH_BYTES, SQLITE_STATIC);
  rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    const void *prev = sqlite3_column_blob(st, 1);
    const void *cur = sqlite3_column_blob(st, 4);
    found = 1;
    session_id = sqlite3_column_int64(st, 0);
    is_prev = prev != NULL && sqlite3_column_bytes(st, 1) == AA_TOKEN_HASH_BYTES &&
              sodium_memcmp(prev, r->hash, AA_TOKEN_HASH_BYTES) == 0;
    rotated_at = sqlite3_column_int64(st, 2);
    sealed_n = sqlite3_column_bytes(st, 3);
    if (sealed_n == (int)SEALED_LEN) memcpy(sealed, sqlite3_column_blob(st, 3), SEALED_LEN);
    if (cur != NULL && sqlite3_column_bytes(st, 4) == AA_TOKEN_HASH_BYTES) {
      memcpy(current, cur, AA_TOKEN_HASH_BYTES);
      have_current = 1;
    }
    rc = SQLITE_OK;
  } else if (rc == SQLITE_DONE) {
    rc = SQLITE_OK;
  } else {
    rc = aa_err_storage(c, rc);
  }
  aa_stmt_release(st);
  if (rc != SQLITE_OK || !found || !have_current) return rc;
  *handled = 1;

  memset(&s, 0, sizeof(s));
  rc = session_by_id(c, session_id, &s, &found);
  if (rc != SQLITE_OK) return rc;
  if (!found) return SQLITE_OK; /* dead already: nothing to protect */

  /* Like every deadline here, the window ends at rotated_at + window: 0 means no grace. */
  in_window = now >= rotated_at && now < rotated_at + aa_config_int(c, AA_CFG_SESSION_REUSE_WINDOW);
  if (is_prev && in_window && reopen(r, session_id, sealed, sealed_n, current)) return SQLITE_OK;
  return reused(c, r, session_id, s.user_id, is_prev ? "previous, after the window" : "older");
}

static int refresh_body(aa_conn *c, void *arg) {
  refresh_call *r = arg;
  aa_session s;
  int found = 0, handled = 0;
  int rc = aa_session_lookup(c, r->token, 0, &s, &found);
  if (rc != SQLITE_OK) return rc;
  if (found) return rotate(c, r, &s);
  return spent(c, r, &handled);
}

void aa_fn_session_refresh(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  aa_conn *c = sqlite3_user_data(ctx);
  refresh_call r;
  int rc;
  (void)argc;
  aa_err_clear(c);
  memset(&r, 0, sizeof(r));
  r.token = argv[0];
  /* Garbage never takes the write lock. */
  if (aa_token_hash_value(argv[0], r.hash) != SQLITE_OK) return;
  rc = aa_atomic(c, refresh_body, &r);
  if (rc != SQLITE_OK) {
    aa_token_wipe(&r.next);
    aa_result_error(ctx, c, rc);
    return;
  }
  if (r.have_next) sqlite3_result_text(ctx, r.next.text, AA_TOKEN_TEXT_LEN, SQLITE_TRANSIENT);
  aa_token_wipe(&r.next);
}
