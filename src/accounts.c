/*
** accounts.c — accounts: link_account(), account_signup(), account_signin(),
** and the pieces secrets.c builds on (changing and resetting secrets, codes
** as credentials; declared in anonauth_int.h as aa_acct_*).
**
** An account is an identity from a provider (a password, an OAuth subject,
** an e-mail address the app verified) attached to a user. Linking one to an
** anonymous user converts that user in place: same id, so every app row that
** points at it stays theirs. Linking one that already belongs to someone
** else either fails (account_exists) or, when configured and proven, folds
** the anonymous user into the owner (merge.c).
**
** Three rules shape the code:
**
** - Argon2 never runs while holding the write lock. It takes tens of
**   milliseconds at the default cost and would serialise every writer. So
**   each call reads what it needs first (session, account row, rate-limit
**   bucket), hashes or verifies outside any transaction, then runs its
**   writes with aa_atomic(). The body reads the account row again and, if it
**   changed in between (another process linked or re-keyed it), nothing is
**   written and the call starts over, at most TRIES times.
**
** - Sign-in failures look alike. An unknown account, a wrong secret, a
**   missing secret and a secret for an account that takes none all give the
**   same invalid_credentials, and every failure that presented a secret
**   costs one Argon2 verification (a dummy one when there is nothing real to
**   verify against, see password.c).
**
** - Guessing is limited per account, not per caller: a token bucket keyed by
**   provider and account id (ratelimit.c), whether the account exists or
**   not (so the limit itself does not reveal which accounts exist). Every
**   check of a secret goes through it: sign-in, and link_account when it
**   must prove ownership. A token is taken *before* the secret is checked,
**   in an atomic call of its own that commits before Argon2 starts, so N
**   tokens buy at most N checks however many callers race (checking first
**   and drawing after let every parallel guess through to Argon2). A
**   success gives the bucket back whole; an empty bucket refuses without
**   running Argon2 at all. An attempt without a secret guesses nothing and
**   neither takes nor needs a token. Refusals and failures commit their
**   bucket and audit row even though the call returns an error
**   (aa_err_after_commit). Inside the caller's BEGIN ... COMMIT the take is
**   part of the caller's transaction: a ROLLBACK undoes it with the rest.
**
** - A stored hash is re-hashed at today's cost only after the sign-in has
**   committed, in a third short atomic call whose failure is ignored: the
**   extra Argon2 run never delays a refusal or a bucket check.
**
** link_account() rotates the session: the presented token is revoked and a
** new one returned, so a token planted on a visitor before they link never
** becomes a session of their real account (session fixation).
*/
#include "anonauth_int.h"

#include <sodium.h>
#include <string.h>

#define PROVIDER_MAX   AA_PROVIDER_MAX
#define ACCOUNT_ID_MAX AA_ACCOUNT_ID_MAX
#define AA_SECRET_MAX     1024
#define TRIES          3

static const char RATE_KIND[] = "failed_signin";

/* ---- arguments ----------------------------------------------------------- */


static int provider_ok(const char *p, int n) {
  if (n < 1 || n > PROVIDER_MAX) return 0;
  for (int i = 0; i < n; i++) {
    char ch = p[i];
    if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_' || ch == '.' ||
          ch == '-'))
      return 0;
  }
  return 1;
}

/* Values are never echoed in errors: an account id is personal data and a
** secret is a secret. */
int aa_acct_read_args(aa_conn *c, sqlite3_value *provider, sqlite3_value *account_id,
                     sqlite3_value *secret, aa_account_args *a) {
  memset(a, 0, sizeof(*a));
  if (sqlite3_value_type(provider) == SQLITE_TEXT) {
    a->provider = (const char *)sqlite3_value_text(provider);
    a->provider_len = sqlite3_value_bytes(provider);
  }
  if (a->provider == NULL || !provider_ok(a->provider, a->provider_len))
    return aa_err(c, SQLITE_ERROR, AA_E_INVALID_ARGUMENT,
                  "provider must be 1 to %d characters of a-z, 0-9, '_', '.' and '-'",
                  PROVIDER_MAX);

  if (sqlite3_value_type(account_id) == SQLITE_TEXT) {
    a->account_id = (const char *)sqlite3_value_text(account_id);
    a->account_id_len = sqlite3_value_bytes(account_id);
  }
  if (a->account_id == NULL || a->account_id_len < 1 || a->account_id_len > ACCOUNT_ID_MAX ||
      !aa_utf8_valid((const unsigned char *)a->account_id, a->account_id_len))
    return aa_err(c, SQLITE_ERROR, AA_E_INVALID_ARGUMENT,
                  "account_id must be text of 1 to %d bytes of valid UTF-8", ACCOUNT_ID_MAX);

  if (secret != NULL && sqlite3_value_type(secret) != SQLITE_NULL) {
    if (sqlite3_value_type(secret) == SQLITE_TEXT) {
      a->secret = (const char *)sqlite3_value_text(secret);
      a->secret_len = sqlite3_value_bytes(secret);
    }
    if (a->secret == NULL || a->secret_len < 1 || a->secret_len > AA_SECRET_MAX) {
      a->secret = NULL;
      return aa_err(c, SQLITE_ERROR, AA_E_INVALID_ARGUMENT,
                    "secret must be text of 1 to %d bytes, or NULL for none", AA_SECRET_MAX);
    }
  }
  /* Providers never contain ':', so provider:account_id is unambiguous. */
  memcpy(a->subject, a->provider, (size_t)a->provider_len);
  a->subject[a->provider_len] = ':';
  memcpy(a->subject + a->provider_len + 1, a->account_id, (size_t)a->account_id_len);
  a->subject[a->provider_len + 1 + a->account_id_len] = 0;
  return SQLITE_OK;
}

/*
** The password policy, for every call that stores a secret (sign-up,
** linking, changing and resetting it): password.min_length code points and
** password.max_bytes bytes. Checked after the configuration was read and
** before anything is spent or hashed; the detail names the rule, never the
** secret. Checking a secret (sign-in) applies no policy: a secret stored
** under an older policy still opens its account.
*/
int aa_acct_secret_policy(aa_conn *c, const char *secret, int n) {
  int64_t min_len = aa_config_int(c, AA_CFG_PASSWORD_MIN_LENGTH);
  int64_t max_bytes = aa_config_int(c, AA_CFG_PASSWORD_MAX_BYTES);
  int64_t code_points = 0;
  if (!aa_utf8_valid((const unsigned char *)secret, n))
    return aa_err(c, SQLITE_ERROR, AA_E_WEAK_SECRET,
                  "a new secret must be valid UTF-8 without NUL characters");
  for (int i = 0; i < n; i++)
    if (((unsigned char)secret[i] & 0xC0) != 0x80) code_points++;
  if (code_points < min_len)
    return aa_err(c, SQLITE_ERROR, AA_E_WEAK_SECRET,
                  "a new secret must be at least %lld characters long (password.min_length)",
                  (long long)min_len);
  if (n > max_bytes)
    return aa_err(c, SQLITE_ERROR, AA_E_WEAK_SECRET,
                  "a new secret must be at most %lld bytes long (password.max_bytes)",
                  (long long)max_bytes);
  return SQLITE_OK;
}

/* ---- the account row ------------------------------------------------------ */


static const char SQL_ACCOUNT[] =
    "SELECT id, user_id, secret_hash FROM main.anonauth_accounts "
    "WHERE provider = ?1 AND account_id = ?2";

void aa_acct_row_free(aa_account_row *r) {
  if (r->hash) {
    sodium_memzero(r->hash, strlen(r->hash));
    sqlite3_free(r->hash);
  }
  memset(r, 0, sizeof(*r));
}

int aa_acct_row_read(aa_conn *c, const aa_account_args *a, aa_account_row *r) {
  sqlite3_stmt *st;
  int rc;
  memset(r, 0, sizeof(*r));
  rc = aa_stmt_get(c, SQL_ACCOUNT, &st);
  if (rc != SQLITE_OK) return rc;
  sqlite3_bind_text(st, 1, a->provider, a->provider_len, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, a->account_id, a->account_id_len, SQLITE_STATIC);
  rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    const char *h = (const char *)sqlite3_column_text(st, 2);
    r->exists = 1;
    r->id = sqlite3_column_int64(st, 0);
    r->user_id = sqlite3_column_int64(st, 1);
    rc = SQLITE_OK;
    if (h != NULL) {
      r->hash = sqlite3_mprintf("%s", h);
      if (r->hash == NULL) rc = aa_err_nomem(c);
    }
  } else if (rc == SQLITE_DONE) {
    rc = SQLITE_OK;
  } else {
    rc = aa_err_storage(c, rc);
  }
  aa_stmt_release(st);
  return rc;
}

int aa_acct_row_same(const aa_account_row *x, const aa_account_row *y) {
  if (x->exists != y->exists) return 0;
  if (!x->exists) return 1;
  if (x->id != y->id || x->user_id != y->user_id) return 0;
  if ((x->hash == NULL) != (y->hash == NULL)) return 0;
  return x->hash == NULL || strcmp(x->hash, y->hash) == 0;
}

/* Outside any lock: the account row. A database without anonauth's tables
** has no accounts. */
int aa_acct_read_before(aa_conn *c, const aa_account_args *a, aa_account_row *r) {
  int rc;
  memset(r, 0, sizeof(*r));
  rc = aa_config_refresh(c);
  if (rc != SQLITE_OK) return rc;
  rc = aa_schema_check(c);
  if (rc == SQLITE_NOTFOUND) {
    aa_err_clear(c);
    return SQLITE_OK;
  }
  if (rc == SQLITE_OK) rc = aa_acct_row_read(c, a, r);
  return rc;
}


/*
** Whether the presented credential opens the account, as sign-in decides
** it: the secret verifies against the stored hash, or the account has no
** secret and none was presented. Outside any lock. Every path that was
** handed a secret runs one Argon2 verification at most at the configured
** cost (password.c).
*/
int aa_acct_credential_matches(aa_conn *c, const aa_account_row *r, const aa_account_args *a) {
  if (a->secret != NULL) {
    if (r->exists && r->hash != NULL) {
      int refused = 0;
      if (aa_password_verify(c, r->hash, a->secret, a->secret_len, &refused)) return AA_CRED_MATCH;
      return refused ? AA_CRED_HASH_REFUSED : AA_CRED_NO;
    }
    aa_password_verify_dummy(c, a->secret, a->secret_len);
    return AA_CRED_NO;
  }
  return r->exists && r->hash == NULL ? AA_CRED_MATCH : AA_CRED_NO;
}

static const char *failure_reason(const aa_account_row *r, const aa_account_args *a, int found) {
  if (!r->exists) return "unknown_account";
  if (r->hash == NULL) return "account_takes_no_secret";
  if (a->secret == NULL) return "secret_required";
  if (found == AA_CRED_HASH_REFUSED) return "hash_refused";
  return "wrong_secret";
}

/* ---- writes shared by the three functions ------------------------------- */

static const char SQL_INSERT_ACCOUNT[] =
    "INSERT INTO main.anonauth_accounts"
    "(user_id, provider, account_id, secret_hash, created_at) "
    "VALUES (?1, ?2, ?3, ?4, ?5)";

static const char SQL_CONVERT[] =
    "UPDATE main.anonauth_users SET is_anonymous = 0 WHERE id = ?1 AND is_anonymous = 1";

/* Only the hash that was verified is replaced: a secret changed meanwhile
** stays changed. */
static const char SQL_REHASH[] =
    "UPDATE main.anonauth_accounts SET secret_hash = ?2 WHERE id = ?1 AND secret_hash = ?3";

static const char SQL_BUCKET_RESET[] =
    "DELETE FROM main.anonauth_rate_limits WHERE kind = ?1 AND subject = ?2";

static const char SQL_SESSION_CLIENT[] =
    "SELECT ip, user_agent FROM main.anonauth_sessions WHERE id = ?1";

/* Turns a text into a protected sqlite3_value, for aa_session_lookup(). */
static const char SQL_AS_VALUE[] = "SELECT ?1";

int aa_acct_insert_account(aa_conn *c, int64_t user_id, const aa_account_args *a,
                          const char *hash) {
  sqlite3_stmt *st;
  int rc = aa_stmt_get(c, SQL_INSERT_ACCOUNT, &st);
  if (rc != SQLITE_OK) return rc;
  sqlite3_bind_int64(st, 1, user_id);
  sqlite3_bind_text(st, 2, a->provider, a->provider_len, SQLITE_STATIC);
  sqlite3_bind_text(st, 3, a->account_id, a->account_id_len, SQLITE_STATIC);
  if (hash) sqlite3_bind_text(st, 4, hash, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 5, aa_now(c));
  return aa_stmt_exec(c, st);
}

int aa_acct_convert_user(aa_conn *c, int64_t user_id, int *converted) {
  sqlite3_stmt *st;
  int rc = aa_stmt_get(c, SQL_CONVERT, &st);
  if (rc != SQLITE_OK) return rc;
  sqlite3_bind_int64(st, 1, user_id);
  rc = aa_stmt_exec(c, st);
  if (rc == SQLITE_OK) *converted = sqlite3_changes(c->db) > 0;
  return rc;
}

static int store_rehash(aa_conn *c, int64_t account_row_id, const char *old_hash,
                        const char *hash) {
  sqlite3_stmt *st;
  int rc = aa_stmt_get(c, SQL_REHASH, &st);
  if (rc != SQLITE_OK) return rc;
  sqlite3_bind_int64(st, 1, account_row_id);
  sqlite3_bind_text(st, 2, hash, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 3, old_hash, -1, SQLITE_STATIC);
  return aa_stmt_exec(c, st);
}

/* A success ends the account's run of failures (as Convex Auth does). */
int aa_acct_bucket_reset(aa_conn *c, const aa_account_args *a) {
  sqlite3_stmt *st;
  int rc = aa_stmt_get(c, SQL_BUCKET_RESET, &st);
  if (rc != SQLITE_OK) return rc;
  sqlite3_bind_text(st, 1, RATE_KIND, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, a->subject, -1, SQLITE_STATIC);
  return aa_stmt_exec(c, st);
}

/* The client fields of a session, carried over to the one that replaces it. */
int aa_acct_session_client(aa_conn *c, int64_t session_id, aa_opts *o) {
  sqlite3_stmt *st;
  int rc = aa_stmt_get(c, SQL_SESSION_CLIENT, &st);
  memset(o, 0, sizeof(*o));
  if (rc != SQLITE_OK) return rc;
  sqlite3_bind_int64(st, 1, session_id);
  rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    const char *ip = (const char *)sqlite3_column_text(st, 0);
    const char *ua = (const char *)sqlite3_column_text(st, 1);
    if (ip && (size_t)sqlite3_column_bytes(st, 0) < sizeof(o->ip)) {
      memcpy(o->ip, ip, (size_t)sqlite3_column_bytes(st, 0) + 1);
      o->has_ip = 1;
    }
    if (ua && (size_t)sqlite3_column_bytes(st, 1) < sizeof(o->user_agent)) {
      memcpy(o->user_agent, ua, (size_t)sqlite3_column_bytes(st, 1) + 1);
      o->has_user_agent = 1;
    }
    rc = SQLITE_OK;
  } else if (rc == SQLITE_DONE) {
    rc = SQLITE_OK;
  } else {
    rc = aa_err_storage(c, rc);
  }
  aa_stmt_release(st);
  return rc;
}

/* aa_session_lookup() takes a SQL value; opts.anon_token arrives as text. */
int aa_acct_lookup_token_text(aa_conn *c, const char *token, aa_session *s, int *found) {
  sqlite3_stmt *st;
  sqlite3_value *v = NULL;
  int rc = aa_stmt_get(c, SQL_AS_VALUE, &st);
  *found = 0;
  if (rc != SQLITE_OK) return rc;
  sqlite3_bind_text(st, 1, token, -1, SQLITE_STATIC);
  if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_value_dup(sqlite3_column_value(st, 0));
  aa_stmt_release(st);
  if (v == NULL) return aa_err_nomem(c);
  rc = aa_session_lookup(c, v, 0, s, found);
  sqlite3_value_free(v);
  return rc;
}

/* ---- audit details ------------------------------------------------------- */

/*
** {"provider":..., "account_id":..., <extra>}. The account id is left out
** for an account that does not exist: a failed sign-in with an unknown id
** is often a password typed into the wrong field.
*/
int aa_acct_audit_account(aa_conn *c, const char *event, int64_t user_id, int64_t session_id,
                         const char *ip, const aa_account_args *a, int with_account_id,
                         const char *extra) {
  sqlite3_str *s = sqlite3_str_new(c->db);
  char *detail;
  int rc;
  sqlite3_str_appendall(s, "{\"provider\":");
  aa_str_append_json_string(s, a->provider, a->provider_len);
  if (with_account_id) {
    sqlite3_str_appendall(s, ",\"account_id\":");
    aa_str_append_json_string(s, a->account_id, a->account_id_len);
  }
  if (extra) {
    sqlite3_str_appendchar(s, 1, ',');
    sqlite3_str_appendall(s, extra);
  }
  sqlite3_str_appendchar(s, 1, '}');
  detail = sqlite3_str_finish(s);
  if (detail == NULL) return aa_err_nomem(c);
  rc = aa_audit(c, event, user_id, session_id, ip, detail);
  sqlite3_free(detail);
  return rc;
}

/* ---- failures that still commit ----------------------------------------- */

static int fail_rate_limited(aa_conn *c, const aa_account_args *a, const aa_account_row *r,
                             const char *ip, const char *via) {
  char extra[64];
  int rc;
  sqlite3_snprintf((int)sizeof(extra), extra, "\"via\":\"%s\"", via);
  rc = aa_acct_audit_account(c, "rate_limited", r->exists ? r->user_id : AA_NO_ID, AA_NO_ID, ip, a,
                     r->exists, extra);
  if (rc != SQLITE_OK) return rc;
  return aa_err_after_commit(c, AA_E_RATE_LIMITED,
                             "too many failed sign-ins for this account; try again later");
}

static int fail_credentials(aa_conn *c, const aa_account_args *a, const aa_account_row *r,
                            int found, const char *ip, const char *via) {
  char extra[96];
  int64_t user_id = r->exists ? r->user_id : AA_NO_ID;
  int rc;
  /* The token this check cost was taken before it ran (aa_acct_take_before_check). */
  sqlite3_snprintf((int)sizeof(extra), extra, "\"reason\":\"%s\",\"via\":\"%s\"",
                   failure_reason(r, a, found), via);
  rc = aa_acct_audit_account(c, "signin_failed", user_id, AA_NO_ID, ip, a, r->exists, extra);
  if (rc != SQLITE_OK) return rc;
  if (found == AA_CRED_HASH_REFUSED) {
    /* Its own event, for alerting: anonauth never writes such a hash, so
    ** the database was written by someone else. The string is not quoted. */
    sqlite3_snprintf((int)sizeof(extra), extra,
                     "\"reason\":\"cost above the password maxima\",\"via\":\"%s\"", via);
    rc = aa_acct_audit_account(c, "hash_refused", user_id, AA_NO_ID, ip, a, 1, extra);
    if (rc != SQLITE_OK) return rc;
  }
  return aa_err_after_commit(c, AA_E_INVALID_CREDENTIALS,
                             "unknown account or wrong secret");
}

/* Settles a checked credential under the write lock. *proceed is 1 when
** the caller may go on to succeed. */
int aa_acct_settle_credential(aa_conn *c, const aa_account_args *a, const aa_account_row *r,
                            int found, const char *ip, const char *via, int *proceed) {
  *proceed = 0;
  if (found != AA_CRED_MATCH) return fail_credentials(c, a, r, found, ip, via);
  *proceed = 1;
  return aa_acct_bucket_reset(c, a);
}

/* ---- the token a check costs, taken before it runs ---------------------- */

typedef struct {
  const aa_account_args *a;
  const aa_account_row *r;
  const aa_opts *opts;   /* the client, for account_signin */
  int64_t session_id;    /* or the session's client, for link_account */
  const char *via;
} take_call;

static int take_body(aa_conn *c, void *arg) {
  take_call *t = arg;
  aa_opts client;
  const char *ip = NULL;
  int allowed = 1, rc = aa_config_sync(c);
  if (rc != SQLITE_OK) return rc;
  rc = aa_ratelimit_take(c, RATE_KIND, t->a->subject,
                         aa_config_int(c, AA_CFG_RATELIMIT_FAILED_SIGNIN_PER_HOUR), &allowed);
  if (rc != SQLITE_OK || allowed) return rc;
  if (t->opts) {
    ip = t->opts->has_ip ? t->opts->ip : NULL;
  } else {
    rc = aa_acct_session_client(c, t->session_id, &client);
    if (rc != SQLITE_OK) return rc;
    ip = client.has_ip ? client.ip : NULL;
  }
  return fail_rate_limited(c, t->a, t->r, ip, t->via);
}

/*
** Before a secret is checked: one token from the account's bucket, in an
** atomic call that commits (in autocommit) before the Argon2 work starts,
** so that however many callers race, N tokens buy at most N checks. An
** empty bucket refuses: the refusal and its audit row commit, the error is
** recorded for after the commit, and *refused is set: nothing is checked.
** Without a secret there is nothing to guess, and no token is taken.
*/
int aa_acct_take_before_check(aa_conn *c, const aa_account_args *a, const aa_account_row *r,
                             const aa_opts *opts, int64_t session_id, const char *via,
                             int *refused) {
  take_call t;
  int rc;
  *refused = 0;
  if (a->secret == NULL) return SQLITE_OK;
  t.a = a;
  t.r = r;
  t.opts = opts;
  t.session_id = session_id;
  t.via = via;
  rc = aa_atomic(c, take_body, &t);
  if (rc == SQLITE_OK && aa_err_recorded(c, NULL) != SQLITE_OK) *refused = 1;
  return rc;
}

/* ---- answers that tell an account exists -------------------------------- */

/*
** account_signup and link_account must be able to say "this account is
** taken", and so tell whoever asks that it exists. Such an answer is not
** free: it takes a token from the account's failed sign-in bucket (so one
** caller cannot probe the same account without end, and an empty bucket
** answers rate_limited instead, which says nothing new) and is audited
** (`account_exists`), both committed with the error reported after them.
*/
typedef struct {
  const aa_account_args *a;
  const aa_account_row *r;
  const aa_opts *opts;      /* account_signup's client */
  const aa_session *sess;   /* or link_account's session */
  const char *via;
} conflict_call;

static int conflict_body(aa_conn *c, void *arg) {
  conflict_call *k = arg;
  aa_opts client;
  const char *ip = NULL;
  int64_t session_id = k->sess ? k->sess->session_id : AA_NO_ID;
  char extra[64];
  int allowed = 1, rc = aa_config_sync(c);
  if (rc != SQLITE_OK) return rc;
  if (k->sess) {
    rc = aa_acct_session_client(c, session_id, &client);
    if (rc != SQLITE_OK) return rc;
    ip = client.has_ip ? client.ip : NULL;
  } else if (k->opts && k->opts->has_ip) {
    ip = k->opts->ip;
  }
  rc = aa_ratelimit_take(c, RATE_KIND, k->a->subject,
                         aa_config_int(c, AA_CFG_RATELIMIT_FAILED_SIGNIN_PER_HOUR), &allowed);
  if (rc != SQLITE_OK) return rc;
  if (!allowed) return fail_rate_limited(c, k->a, k->r, ip, k->via);
  sqlite3_snprintf((int)sizeof(extra), extra, "\"via\":\"%s\"", k->via);
  rc = aa_acct_audit_account(c, "account_exists", k->r->user_id, session_id, ip, k->a, 1, extra);
  if (rc != SQLITE_OK) return rc;
  if (k->sess == NULL)
    return aa_err_after_commit(c, AA_E_ACCOUNT_EXISTS, "this account already belongs to a user");
  if (aa_config_int(c, AA_CFG_LINK_ON_CONFLICT) == 1 /* 'merge' */ && !k->sess->is_anonymous)
    return aa_err_after_commit(c, AA_E_ACCOUNT_EXISTS,
                               "this account belongs to another user (link.on_conflict = "
                               "'merge' merges only anonymous users)");
  return aa_err_after_commit(c, AA_E_ACCOUNT_EXISTS, "this account belongs to another user");
}

static int answer_exists(aa_conn *c, const aa_account_args *a, const aa_account_row *r,
                         const aa_opts *opts, const aa_session *sess, const char *via) {
  conflict_call k;
  k.a = a;
  k.r = r;
  k.opts = opts;
  k.sess = sess;
  k.via = via;
  return aa_atomic(c, conflict_body, &k);
}

int aa_acct_changed_meanwhile(aa_conn *c, int *changed) {
  *changed = 1;
  return aa_err(c, SQLITE_ERROR, AA_E_STORAGE,
                "the account kept changing while this call ran; try again");
}

/* A body that found the account changed since the unlocked read wrote
** nothing: the caller reads again and retries, a few times. */
int aa_acct_start_over(aa_conn *c, int rc, int changed, int attempt, aa_token *t) {
  if (rc == SQLITE_OK || !changed || attempt >= TRIES) return 0;
  aa_token_wipe(t);
  aa_err_clear(c);
  return 1;
}

/* The SQL result of a call whose body returned rc. */
void aa_acct_finish(sqlite3_context *ctx, aa_conn *c, int rc, aa_token *t) {
  if (rc == SQLITE_OK) rc = aa_err_deferred(c);
  if (rc != SQLITE_OK)
    aa_result_error(ctx, c, rc);
  else
    sqlite3_result_text(ctx, t->text, (int)AA_TOKEN_TEXT_LEN, SQLITE_TRANSIENT);
  aa_token_wipe(t);
}

/* ---- account_signup(provider, account_id [, secret [, opts]]) ------------ */

typedef struct {
  const aa_account_args *a;
  const aa_opts *opts;
  const char *hash;
  aa_token token;
} signup_call;

static int account_exists(aa_conn *c) {
  return aa_err(c, SQLITE_ERROR, AA_E_ACCOUNT_EXISTS,
                "this account already belongs to a user");
}

/*
** Sign-ups are limited per client address (opts.ip, IPv6 by /64) like
** anonymous sign-ins: each one writes rows and costs an Argon2 hash, and
** each answer tells whether an account exists. The token is taken before
** either, in an atomic call of its own, so parallel calls from one address
** cannot all get through to Argon2; an attempt that then finds the account
** taken has still spent it.
*/
static const aa_ip_limit SIGNUP_IP_LIMIT = {"account_signup", "account_signup_ip",
                                            AA_CFG_RATELIMIT_SIGNUP_PER_HOUR,
                                            "ratelimit.signup_per_hour", "sign-ups"};

static int signup_take_body(aa_conn *c, void *arg) {
  const aa_opts *o = arg;
  int allowed = 1, rc = aa_config_sync(c);
  if (rc != SQLITE_OK) return rc;
  return aa_ratelimit_take_ip(c, &SIGNUP_IP_LIMIT, o->ip, o->ip_limit_key, &allowed);
}

static int signup_body(aa_conn *c, void *arg) {
  signup_call *s = arg;
  aa_account_row r;
  int64_t user_id, session_id;
  int exists;
  int rc = aa_config_sync(c);
  if (rc != SQLITE_OK) return rc;
  rc = aa_acct_row_read(c, s->a, &r);
  if (rc != SQLITE_OK) return rc;
  exists = r.exists;
  aa_acct_row_free(&r);
  if (exists) return account_exists(c); /* signed up since we looked */
  rc = aa_user_create(c, 0, s->opts->profile, &user_id);
  if (rc == SQLITE_OK) rc = aa_acct_insert_account(c, user_id, s->a, s->hash);
  if (rc == SQLITE_OK) rc = aa_session_create(c, user_id, s->opts, &s->token, &session_id);
  if (rc == SQLITE_OK)
    rc = aa_acct_audit_account(c, "signup", user_id, session_id, s->opts->has_ip ? s->opts->ip : NULL,
                       s->a, 1, NULL);
  return rc;
}

void aa_fn_account_signup(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  aa_conn *c = sqlite3_user_data(ctx);
  aa_account_args a;
  aa_opts opts;
  aa_account_row r;
  signup_call call;
  char hash[AA_PASSWORD_HASH_MAX];
  int rc;

  aa_err_clear(c);
  memset(&call, 0, sizeof(call));
  memset(&opts, 0, sizeof(opts));
  memset(&r, 0, sizeof(r));
  hash[0] = 0;
  rc = aa_acct_read_args(c, argv[0], argv[1], argc > 2 ? argv[2] : NULL, &a);
  if (rc == SQLITE_OK)
    rc = aa_opts_parse(c, argc > 3 ? argv[3] : NULL,
                       AA_OPT_IP | AA_OPT_USER_AGENT | AA_OPT_PROFILE | AA_OPT_CAPTCHA, &opts);
  if (rc != SQLITE_OK) {
    aa_result_error(ctx, c, rc);
    return;
  }
  /* Before anything that tells whether the account exists. */
  rc = aa_captcha_gate(c, &opts, "account_signup");
  if (rc == SQLITE_OK) rc = aa_acct_read_before(c, &a, &r);
  if (rc == SQLITE_OK && a.secret) rc = aa_acct_secret_policy(c, a.secret, a.secret_len);
  if (rc == SQLITE_OK && opts.has_ip && aa_config_int(c, AA_CFG_RATELIMIT_SIGNUP_PER_HOUR) > 0)
    rc = aa_atomic(c, signup_take_body, &opts);
  if (rc == SQLITE_OK && aa_err_recorded(c, NULL) == SQLITE_OK && r.exists)
    rc = answer_exists(c, &a, &r, &opts, NULL, "account_signup");
  aa_acct_row_free(&r);
  if (rc == SQLITE_OK && aa_err_recorded(c, NULL) == SQLITE_OK && a.secret)
    rc = aa_password_hash(c, a.secret, a.secret_len, hash);
  if (rc == SQLITE_OK && aa_err_recorded(c, NULL) == SQLITE_OK) {
    call.a = &a;
    call.opts = &opts;
    call.hash = a.secret ? hash : NULL;
    rc = aa_atomic(c, signup_body, &call);
  }
  aa_password_wipe(hash);
  aa_opts_free(&opts);
  aa_acct_finish(ctx, c, rc, &call.token);
}

/* ---- account_signin(provider, account_id [, secret [, opts]]) ------------ */

typedef struct {
  const aa_account_args *a;
  const aa_opts *opts;
  aa_account_row seen; /* the row the credential was checked against */
  int matches;
  int changed;
  int64_t merged_from; /* set when the body folded an anonymous user in */
  int64_t user_id;
  aa_token token;
} signin_call;

/* opts.anon_token: a live anonymous session whose user is folded in. */
int aa_acct_anon_to_merge(aa_conn *c, const aa_opts *o, int64_t into, int64_t *from) {
  aa_session s;
  int found, rc;
  *from = AA_NO_ID;
  if (!o->has_anon_token || o->anon_token_malformed) return SQLITE_OK;
  rc = aa_acct_lookup_token_text(c, o->anon_token, &s, &found);
  if (rc != SQLITE_OK) return rc;
  if (found && s.is_anonymous && s.user_id != into) *from = s.user_id;
  return SQLITE_OK;
}

/* An anon_token naming a live anonymous user means a merge: refused while
** the app has not said what becomes of that user's rows (merge.c). */
static int refuse_unprovided_merge(aa_conn *c, const aa_opts *o) {
  int64_t from;
  int rc = aa_acct_anon_to_merge(c, o, AA_NO_ID, &from);
  if (rc == SQLITE_OK && from != AA_NO_ID) rc = aa_merge_allowed(c);
  return rc;
}

static int signin_body(aa_conn *c, void *arg) {
  signin_call *s = arg;
  const char *ip = s->opts->has_ip ? s->opts->ip : NULL;
  aa_account_row now;
  int64_t user_id, session_id = 0, from = AA_NO_ID;
  int proceed, same, rc = aa_config_sync(c);
  if (rc != SQLITE_OK) return rc;
  rc = aa_acct_row_read(c, s->a, &now);
  if (rc != SQLITE_OK) return rc;
  same = aa_acct_row_same(&now, &s->seen);
  aa_acct_row_free(&now);
  if (!same) return aa_acct_changed_meanwhile(c, &s->changed);

  rc = aa_acct_settle_credential(c, s->a, &s->seen, s->matches, ip, "account_signin", &proceed);
  if (rc != SQLITE_OK || !proceed) return rc;

  user_id = s->seen.user_id;
  rc = aa_acct_anon_to_merge(c, s->opts, user_id, &from);
  if (rc == SQLITE_OK && from != AA_NO_ID) rc = aa_merge_users(c, from, user_id);
  s->merged_from = from;
  s->user_id = user_id;
  if (rc == SQLITE_OK) rc = aa_session_create(c, user_id, s->opts, &s->token, &session_id);
  if (rc == SQLITE_OK) rc = aa_acct_audit_account(c, "signin", user_id, session_id, ip, s->a, 1, NULL);
  if (rc == SQLITE_OK && from != AA_NO_ID) {
    char extra[80];
    sqlite3_snprintf((int)sizeof(extra), extra,
                     "\"from_user\":%lld,\"via\":\"account_signin\"", (long long)from);
    rc = aa_acct_audit_account(c, "merge", user_id, session_id, ip, s->a, 1, extra);
  }
  return rc;
}

typedef struct {
  const aa_account_row *seen;
  const char *fresh;
} rehash_call;

static int rehash_body(aa_conn *c, void *arg) {
  rehash_call *r = arg;
  return store_rehash(c, r->seen->id, r->seen->hash, r->fresh);
}

/*
** Keeps stored hashes at the configured cost: after a sign-in committed,
** while the secret is at hand, the hash it verified is replaced by one at
** today's cost. Best effort: a failure here (out of memory, a busy
** database) leaves the old hash and the sign-in stands.
*/
static void rehash_after_signin(aa_conn *c, const aa_account_row *seen, const aa_account_args *a) {
  char fresh[AA_PASSWORD_HASH_MAX];
  rehash_call r;
  if (a->secret == NULL || seen->hash == NULL || !aa_password_needs_rehash(c, seen->hash))
    return;
  if (aa_password_hash(c, a->secret, a->secret_len, fresh) == SQLITE_OK) {
    r.seen = seen;
    r.fresh = fresh;
    (void)aa_atomic(c, rehash_body, &r);
  }
  aa_password_wipe(fresh);
  aa_err_clear(c);
}

void aa_fn_account_signin(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  aa_conn *c = sqlite3_user_data(ctx);
  aa_account_args a;
  aa_opts opts;
  signin_call call;
  int rc;

  aa_err_clear(c);
  memset(&call, 0, sizeof(call));
  memset(&opts, 0, sizeof(opts));
  rc = aa_acct_read_args(c, argv[0], argv[1], argc > 2 ? argv[2] : NULL, &a);
  if (rc == SQLITE_OK)
    rc = aa_opts_parse(c, argc > 3 ? argv[3] : NULL,
                       AA_OPT_IP | AA_OPT_USER_AGENT | AA_OPT_ANON_TOKEN | AA_OPT_CODE, &opts);
  if (rc == SQLITE_OK && opts.has_code && a.secret != NULL)
    rc = aa_err(c, SQLITE_ERROR, AA_E_INVALID_ARGUMENT,
                "a secret and opts.code together: give one credential");
  if (rc != SQLITE_OK) {
    aa_result_error(ctx, c, rc);
    return;
  }
  if (opts.has_code) {
    aa_acct_code_signin(ctx, c, &a, &opts);
    aa_opts_free(&opts);
    return;
  }
  /* Refused writes fail before any Argon2 work; first in a deferred
  ** transaction, the write lock comes before the first read. */
  rc = aa_atomic_begin(c);
  for (int attempt = 1; rc == SQLITE_OK; attempt++) {
    int refused = 0;
    aa_acct_row_free(&call.seen);
    memset(&call, 0, sizeof(call));
    call.a = &a;
    call.opts = &opts;
    rc = aa_acct_read_before(c, &a, &call.seen);
    /* Fail closed before any bucket or Argon2 work, whether or not the
    ** account exists: a merge the app has not provided for is refused. */
    if (rc == SQLITE_OK) rc = refuse_unprovided_merge(c, &opts);
    if (rc == SQLITE_OK)
      rc = aa_acct_take_before_check(c, &a, &call.seen, &opts, AA_NO_ID, "account_signin", &refused);
    if (rc != SQLITE_OK || refused) break;
    call.matches = aa_acct_credential_matches(c, &call.seen, &a);
    rc = aa_atomic(c, signin_body, &call);
    if (!aa_acct_start_over(c, rc, call.changed, attempt, &call.token)) break;
    rc = SQLITE_OK;
  }
  if (rc == SQLITE_OK && aa_err_recorded(c, NULL) == SQLITE_OK) {
    /* Only after a commit that signed in (a refused credential commits too,
    ** with its error recorded for after the commit). */
    if (call.merged_from > 0) aa_authctx_user_merged(c, call.merged_from, call.user_id, 0);
    rehash_after_signin(c, &call.seen, &a);
  }
  aa_acct_row_free(&call.seen);
  aa_opts_free(&opts);
  aa_acct_finish(ctx, c, rc, &call.token);
}

/* ---- link_account(token, provider, account_id [, secret]) ---------------- */

typedef enum {
  PLAN_ATTACH,   /* the account is new: attach it to the session's user */
  PLAN_RELINK,   /* the session's user holds it already */
  PLAN_MERGE,    /* another user holds it: fold the anonymous user into it */
  PLAN_CONFLICT  /* another user holds it: account_exists */
} link_plan;

/* link.on_conflict is stored as the index of its choice in config.c. */
static int on_conflict_merges(aa_conn *c) {
  return aa_config_int(c, AA_CFG_LINK_ON_CONFLICT) == 1; /* 'merge' */
}

static link_plan plan_for(aa_conn *c, const aa_session *s, const aa_account_row *r) {
  if (!r->exists) return PLAN_ATTACH;
  if (r->user_id == s->user_id) return PLAN_RELINK;
  if (on_conflict_merges(c) && s->is_anonymous) return PLAN_MERGE;
  return PLAN_CONFLICT;
}

static int link_conflict(aa_conn *c, const aa_session *s) {
  if (on_conflict_merges(c) && !s->is_anonymous)
    return aa_err(c, SQLITE_ERROR, AA_E_ACCOUNT_EXISTS,
                  "this account belongs to another user (link.on_conflict = 'merge' "
                  "merges only anonymous users)");
  return aa_err(c, SQLITE_ERROR, AA_E_ACCOUNT_EXISTS,
                "this account belongs to another user");
}

int aa_acct_invalid_session(aa_conn *c) {
  return aa_err(c, SQLITE_ERROR, AA_E_INVALID_SESSION, "the session is not valid");
}

typedef struct {
  sqlite3_value *token_in;
  const aa_account_args *a;
  aa_session sess; /* as seen before the body */
  aa_account_row seen;
  link_plan plan;
  int matches;
  char hash[AA_PASSWORD_HASH_MAX]; /* PLAN_ATTACH with a secret */
  int changed;
  int64_t new_session; /* what the body left behind, for the auth context */
  int64_t new_user;
  aa_token token;
} link_call;

/* Revokes the presented session and opens its replacement for user_id. */
static int rotate(aa_conn *c, const aa_session *old, const aa_opts *client, int64_t user_id,
                  aa_token *t, int64_t *session_id) {
  int revoked = 0;
  int rc = aa_session_revoke(c, old->session_id, &revoked);
  if (rc == SQLITE_OK) rc = aa_session_create(c, user_id, client, t, session_id);
  return rc;
}

/* What attaching and re-linking end with: the user becomes a normal user,
** the presented session is replaced, and the link is audited. */
static int convert_rotate_audit(aa_conn *c, link_call *l, const aa_session *s,
                                const aa_opts *client, const char *ip, int again) {
  int64_t session_id = 0;
  int converted = 0;
  char extra[64];
  int rc = aa_acct_convert_user(c, s->user_id, &converted);
  if (rc == SQLITE_OK) rc = rotate(c, s, client, s->user_id, &l->token, &session_id);
  if (rc != SQLITE_OK) return rc;
  l->new_session = session_id;
  l->new_user = s->user_id;
  sqlite3_snprintf((int)sizeof(extra), extra, "\"converted\":%s%s",
                   converted ? "true" : "false", again ? ",\"again\":true" : "");
  return aa_acct_audit_account(c, "link", s->user_id, session_id, ip, l->a, 1, extra);
}

static int link_body(aa_conn *c, void *arg) {
  link_call *l = arg;
  aa_session s;
  aa_account_row now;
  aa_opts client;
  int64_t session_id = 0, to_user;
  int found, same, proceed;
  char extra[96];
  const char *ip;
  int rc = aa_config_sync(c);
  if (rc != SQLITE_OK) return rc;
  rc = aa_session_lookup(c, l->token_in, 0, &s, &found);
  if (rc != SQLITE_OK) return rc;
  if (!found) return aa_acct_invalid_session(c);
  rc = aa_acct_row_read(c, l->a, &now);
  if (rc != SQLITE_OK) return rc;
  same = aa_acct_row_same(&now, &l->seen);
  aa_acct_row_free(&now);
  if (!same || s.session_id != l->sess.session_id || s.is_anonymous != l->sess.is_anonymous ||
      plan_for(c, &s, &l->seen) != l->plan)
    return aa_acct_changed_meanwhile(c, &l->changed);

  rc = aa_acct_session_client(c, s.session_id, &client);
  if (rc != SQLITE_OK) return rc;
  ip = client.has_ip ? client.ip : NULL;

  switch (l->plan) {
    case PLAN_CONFLICT:
      return link_conflict(c, &s);

    case PLAN_ATTACH:
      rc = aa_acct_insert_account(c, s.user_id, l->a, l->a->secret ? l->hash : NULL);
      if (rc != SQLITE_OK) return rc;
      return convert_rotate_audit(c, l, &s, &client, ip, 0);

    case PLAN_RELINK:
      /* Linking again takes what signing in takes: the same credential. */
      rc = aa_acct_settle_credential(c, l->a, &l->seen, l->matches, ip, "link_account", &proceed);
      if (rc != SQLITE_OK || !proceed) return rc;
      return convert_rotate_audit(c, l, &s, &client, ip, 1);

    case PLAN_MERGE:
      rc = aa_acct_settle_credential(c, l->a, &l->seen, l->matches, ip, "link_account", &proceed);
      if (rc != SQLITE_OK || !proceed) return rc;
      to_user = l->seen.user_id;
      /* Deletes the anonymous user's sessions, the presented one included. */
      rc = aa_merge_users(c, s.user_id, to_user);
      if (rc == SQLITE_OK) rc = aa_session_create(c, to_user, &client, &l->token, &session_id);
      l->new_session = session_id;
      l->new_user = to_user;
      sqlite3_snprintf((int)sizeof(extra), extra, "\"from_user\":%lld,\"via\":\"link_account\"",
                       (long long)s.user_id);
      if (rc == SQLITE_OK)
        rc = aa_acct_audit_account(c, "merge", to_user, session_id, ip, l->a, 1, extra);
      return rc;
  }
  return aa_err(c, SQLITE_INTERNAL, AA_E_INTERNAL, "unknown link plan");
}

void aa_fn_link_account(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  aa_conn *c = sqlite3_user_data(ctx);
  unsigned char token_hash[AA_TOKEN_HASH_BYTES];
  aa_account_args a;
  link_call call;
  int found, rc;

  aa_err_clear(c);
  memset(&call, 0, sizeof(call));
  rc = aa_acct_read_args(c, argv[1], argv[2], argc > 3 ? argv[3] : NULL, &a);
  if (rc != SQLITE_OK) {
    aa_result_error(ctx, c, rc);
    return;
  }
  /* Garbage never costs a hash or takes the write lock. */
  if (aa_token_hash_value(argv[0], token_hash) != SQLITE_OK) {
    aa_result_error(ctx, c, aa_acct_invalid_session(c));
    return;
  }
  /* Refused writes fail before any Argon2 work; first in a deferred
  ** transaction, the write lock comes before the first read. */
  rc = aa_atomic_begin(c);
  for (int attempt = 1; rc == SQLITE_OK; attempt++) {
    int refused = 0;
    memset(&call, 0, sizeof(call));
    call.token_in = argv[0];
    call.a = &a;
    rc = aa_acct_read_before(c, &a, &call.seen);
    /* The policy holds for the secret whatever the plan, so that its
    ** answer does not depend on whether the account exists. */
    if (rc == SQLITE_OK && a.secret) rc = aa_acct_secret_policy(c, a.secret, a.secret_len);
    if (rc == SQLITE_OK) rc = aa_session_lookup(c, argv[0], 0, &call.sess, &found);
    if (rc == SQLITE_OK && !found) rc = aa_acct_invalid_session(c);
    if (rc == SQLITE_OK) {
      call.plan = plan_for(c, &call.sess, &call.seen);
      switch (call.plan) {
        case PLAN_CONFLICT:
          rc = answer_exists(c, &a, &call.seen, NULL, &call.sess, "link_account");
          refused = 1; /* answered: nothing more to write */
          break;
        case PLAN_ATTACH:
          if (a.secret) rc = aa_password_hash(c, a.secret, a.secret_len, call.hash);
          break;
        case PLAN_RELINK:
        case PLAN_MERGE:
          if (call.plan == PLAN_MERGE) rc = aa_merge_allowed(c); /* fail closed, first */
          /* Proving ownership is a sign-in: the same bucket, taken first. */
          if (rc == SQLITE_OK)
            rc = aa_acct_take_before_check(c, &a, &call.seen, NULL, call.sess.session_id, "link_account",
                                 &refused);
          if (rc == SQLITE_OK && !refused) call.matches = aa_acct_credential_matches(c, &call.seen, &a);
          break;
      }
    }
    if (rc == SQLITE_OK && !refused) rc = aa_atomic(c, link_body, &call);
    aa_acct_row_free(&call.seen);
    aa_password_wipe(call.hash);
    if (!aa_acct_start_over(c, rc, call.changed, attempt, &call.token)) break;
    rc = SQLITE_OK;
  }
  if (rc == SQLITE_OK && aa_err_deferred(c) == SQLITE_OK) {
    /* After the commit, so a call that failed leaves the context alone (a
    ** refused credential commits too, with its error recorded for after). */
    aa_authctx_session_replaced(c, call.sess.session_id, call.new_session, call.new_user, 0);
    if (call.plan == PLAN_MERGE)
      aa_authctx_user_merged(c, call.sess.user_id, call.new_user, 0);
    else
      aa_authctx_user_changed(c, call.sess.user_id, 0);
  }
  aa_acct_finish(ctx, c, rc, &call.token);
}

/* ---- for codes.c ---------------------------------------------------------- */

int aa_account_name_read(aa_conn *c, sqlite3_value *provider, sqlite3_value *account_id,
                         aa_account_name *out) {
  aa_account_args a;
  int rc = aa_acct_read_args(c, provider, account_id, NULL, &a);
  memset(out, 0, sizeof(*out));
  if (rc != SQLITE_OK) return rc;
  out->provider = a.provider;
  out->provider_len = a.provider_len;
  out->account_id = a.account_id;
  out->account_id_len = a.account_id_len;
  return SQLITE_OK;
}

int aa_account_state(aa_conn *c, const aa_account_name *n, int *exists, int *has_secret,
                     int64_t *user_id) {
  aa_account_args a;
  aa_account_row r;
  int rc;
  memset(&a, 0, sizeof(a));
  a.provider = n->provider;
  a.provider_len = n->provider_len;
  a.account_id = n->account_id;
  a.account_id_len = n->account_id_len;
  rc = aa_acct_row_read(c, &a, &r);
  if (rc != SQLITE_OK) return rc;
  *exists = r.exists;
  *has_secret = r.hash != NULL;
  *user_id = r.exists ? r.user_id : AA_NO_ID;
  aa_acct_row_free(&r);
  return SQLITE_OK;
}
