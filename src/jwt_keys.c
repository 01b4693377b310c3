/*
** jwt_keys.c — the keys that sign access tokens: making, storing,
** rotating, publishing (JWKS) and retiring them.
**
** Keys live in anonauth_jwt_keys. The current key is the newest unretired
** one of the configured algorithm (jwt.alg); the first session_jwt() or
** anonauth_jwks() makes it. anonauth_jwt_rotate() retires every current key
** and makes a new one. A retired key stays published (in the JWKS, and to
** jwt_verify) until every token it signed has expired: retired_at + jwt.ttl
** + jwt.leeway. The next rotation or key creation deletes it after that.
**
** The private key is sealed at rest when jwt.key_secret names an
** environment variable: XChaCha20-Poly1305 under a key derived from the
** variable's value (BLAKE2b keyed with this file's context), with the kid
** and algorithm as associated data so that a sealed key cannot be moved to
** another row. Without jwt.key_secret the private key is stored as it is,
** and whoever can read the database file can mint tokens.
*/
#include "anonauth_int.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define KID_RAW_BYTES 12 /* 16 base64url characters */
#define SEAL_NONCE crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define SEAL_TAG   crypto_aead_xchacha20poly1305_ietf_ABYTES
#define PRIV_MAX   512

static const char SQL_CURRENT[] =
    "SELECT kid, private_key, encrypted FROM main.anonauth_jwt_keys "
    "WHERE alg = ?1 AND retired_at IS NULL ORDER BY created_at DESC, kid LIMIT 1";

static const char SQL_RETIRE[] =
    "UPDATE main.anonauth_jwt_keys SET retired_at = ?1 WHERE retired_at IS NULL";

/* Past its publication: every token it signed has expired. */
static const char SQL_DROP[] =
    "DELETE FROM main.anonauth_jwt_keys "
    "WHERE retired_at IS NOT NULL AND retired_at + ?2 + ?3 <= ?1";

static const char SQL_INSERT[] =
    "INSERT INTO main.anonauth_jwt_keys"
    "(kid, alg, public_key, private_key, encrypted, created_at) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

/* The same rule as aa_jwt_key_find() applies in C. */
#define PUBLISHED "(retired_at IS NULL OR retired_at + ?3 + ?4 > ?2)"

static const char SQL_FIND[] =
    "SELECT alg, public_key, retired_at FROM main.anonauth_jwt_keys WHERE kid = ?1";

static const char SQL_PUBLISHED[] =
    "SELECT kid, alg, public_key FROM main.anonauth_jwt_keys WHERE ?1 IS NULL AND " PUBLISHED
    " ORDER BY retired_at IS NOT NULL, created_at DESC, kid";

/* ---- sealing the private key ------------------------------------------------ */

/* The sealing key from jwt.key_secret: *have 0 when it is not set. */
static int seal_key(aa_conn *c, unsigned char key[32], int *have) {
  const char *v = aa_config_text(c, AA_CFG_JWT_KEY_SECRET);
  const char *secret;
  static const unsigned char context[] = "anonauth jwt.key_secret v1";
  *have = 0;
  if (v == NULL) return SQLITE_OK;
  if (strncmp(v, "env:", 4) != 0)
    return aa_err(c, SQLITE_ERROR, AA_E_JWT_MISCONFIGURED, "jwt.key_secret must be env:NAME");
  secret = getenv(v + 4);
  if (secret == NULL || secret[0] == 0)
    return aa_err(c, SQLITE_ERROR, AA_E_JWT_MISCONFIGURED,
                  "jwt.key_secret: the environment variable %s is not set", v + 4);
  crypto_generichash(key, 32, (const unsigned char *)secret, strlen(secret), context,
                     sizeof(context) - 1);
  *have = 1;
  return SQLITE_OK;
}

static void seal_ad(const char *kid, int alg, unsigned char *ad, size_t *ad_n) {
  size_t k = strlen(kid);
  memcpy(ad, kid, k);
  ad[k] = '.';
  memcpy(ad + k + 1, aa_jws_alg_name(alg), 5);
  *ad_n = k + 6;
}

/* The table is missing in a schema older than the step that made it, which
** a read-only caller (jwt_verify) does not migrate. */
static int keys_table_missing(aa_conn *c) {
  return sqlite3_table_column_metadata(c->db, "main", "anonauth_jwt_keys", "kid", NULL, NULL,
                                       NULL, NULL, NULL) != SQLITE_OK;
}

/* ---- the current key --------------------------------------------------------- */

static int new_kid(char kid[AA_KID_MAX + 1]) {
  unsigned char raw[KID_RAW_BYTES];
  randombytes_buf(raw, sizeof(raw));
  sodium_bin2base64(kid, AA_KID_MAX + 1, raw, sizeof(raw),
                    sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  return SQLITE_OK;
}

static int drop_expired(aa_conn *c, int64_t now) {
  sqlite3_stmt *st;
  int rc = aa_stmt_get(c, SQL_DROP, &st);
  if (rc != SQLITE_OK) return rc;
  sqlite3_bind_int64(st, 1, now);
  sqlite3_bind_int64(st, 2, aa_config_int(c, AA_CFG_JWT_TTL));
  sqlite3_bind_int64(st, 3, aa_config_int(c, AA_CFG_JWT_LEEWAY));
  return aa_stmt_exec(c, st);
}

/* Retires the current keys, drops the expired ones, inserts a new key. */
static int make_key(aa_conn *c, char kid_out[AA_KID_MAX + 1]) {
  int alg = (int)aa_config_int(c, AA_CFG_JWT_ALG);
  int64_t now = aa_now(c);
  unsigned char *pub = NULL, *priv = NULL, *sealed = NULL;
  int pub_n = 0, priv_n = 0, have = 0, rc;
  unsigned char key[32], ad[AA_KID_MAX + 8];
  size_t ad_n;
  unsigned long long sealed_n = 0;
  sqlite3_stmt *st;
  char kid[AA_KID_MAX + 1];

  rc = seal_key(c, key, &have);
  if (rc != SQLITE_OK) return rc;
  rc = aa_stmt_get(c, SQL_RETIRE, &st);
  if (rc != SQLITE_OK) goto done;
  sqlite3_bind_int64(st, 1, now);
  rc = aa_stmt_exec(c, st);
  if (rc == SQLITE_OK) rc = drop_expired(c, now);
  if (rc != SQLITE_OK) goto done;

  rc = aa_jws_keygen(alg, &pub, &pub_n, &priv, &priv_n);
  if (rc == SQLITE_NOMEM) {
    rc = aa_err_nomem(c);
    goto done;
  }
  if (rc != SQLITE_OK) {
    rc = aa_err(c, SQLITE_ERROR, AA_E_INTERNAL, "could not make a %s key",
                aa_jws_alg_name(alg));
    goto done;
  }
  new_kid(kid);
  if (have) {
    sealed = sqlite3_malloc(SEAL_NONCE + priv_n + SEAL_TAG);
    if (sealed == NULL) {
      rc = aa_err_nomem(c);
      goto done;
    }
    randombytes_buf(sealed, SEAL_NONCE);
    seal_ad(kid, alg, ad, &ad_n);
    crypto_aead_xchacha20poly1305_ietf_encrypt(sealed + SEAL_NONCE, &sealed_n, priv,
                                               (unsigned long long)priv_n, ad, ad_n, NULL,
                                               sealed, key);
    sealed_n += SEAL_NONCE;
  }
  rc = aa_stmt_get(c, SQL_INSERT, &st);
  if (rc != SQLITE_OK) goto done;
  sqlite3_bind_text(st, 1, kid, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, aa_jws_alg_name(alg), -1, SQLITE_STATIC);
  sqlite3_bind_blob(st, 3, pub, pub_n, SQLITE_STATIC);
  if (have)
    sqlite3_bind_blob(st, 4, sealed, (int)sealed_n, SQLITE_STATIC);
  else
    sqlite3_bind_blob(st, 4, priv, priv_n, SQLITE_STATIC);
  sqlite3_bind_int(st, 5, have);
  sqlite3_bind_int64(st, 6, now);
  rc = aa_stmt_exec(c, st);
  if (rc == SQLITE_OK && kid_out != NULL) memcpy(kid_out, kid, sizeof(kid));
done:
  sodium_memzero(key, sizeof(key));
  if (priv != NULL) sodium_memzero(priv, (size_t)priv_n);
  sqlite3_free(priv);
  sqlite3_free(pub);
  sqlite3_free(sealed);
  return rc;
}

/* Reads the current key of jwt.alg into *s; s->priv stays NULL when none. */
static int read_current(aa_conn *c, aa_jwt_signer *s) {
  sqlite3_stmt *st;
  int alg = (int)aa_config_int(c, AA_CFG_JWT_ALG);
  int rc = aa_stmt_get(c, SQL_CURRENT, &st);
  if (rc != SQLITE_OK) return rc;
  sqlite3_bind_text(st, 1, aa_jws_alg_name(alg), -1, SQLITE_STATIC);
  rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    const char *kid = (const char *)sqlite3_column_text(st, 0);
    const unsigned char *blob = sqlite3_column_blob(st, 1);
    int n = sqlite3_column_bytes(st, 1), encrypted = sqlite3_column_int(st, 2);
    rc = SQLITE_OK;
    /* Someone else may have written this row: check what is used. */
    if (kid == NULL || strlen(kid) < 1 || strlen(kid) > AA_KID_MAX || n < 1 || n > PRIV_MAX ||
        blob == NULL) {
      rc = aa_err(c, SQLITE_CORRUPT, AA_E_STORAGE, "anonauth_jwt_keys holds an invalid key");
    } else {
      memcpy(s->kid, kid, strlen(kid) + 1);
      s->alg = alg;
      s->priv = sqlite3_malloc(n);
      if (s->priv == NULL) rc = aa_err_nomem(c);
    }
    if (rc == SQLITE_OK && !encrypted) {
      memcpy(s->priv, blob, (size_t)n);
      s->priv_n = n;
    } else if (rc == SQLITE_OK) {
      unsigned char key[32], ad[AA_KID_MAX + 8];
      size_t ad_n;
      unsigned long long out_n = 0;
      int have = 0;
      rc = seal_key(c, key, &have);
      if (rc == SQLITE_OK && !have)
        rc = aa_err(c, SQLITE_ERROR, AA_E_JWT_MISCONFIGURED,
                    "the signing key is encrypted and jwt.key_secret is not set");
      if (rc == SQLITE_OK) {
        seal_ad(s->kid, alg, ad, &ad_n);
        if (n < (int)(SEAL_NONCE + SEAL_TAG) ||
            crypto_aead_xchacha20poly1305_ietf_decrypt(
                s->priv, &out_n, NULL, blob + SEAL_NONCE, (unsigned long long)n - SEAL_NONCE,
                ad, ad_n, blob, key) != 0)
          rc = aa_err(c, SQLITE_ERROR, AA_E_JWT_MISCONFIGURED,
                      "the signing key %s does not open with jwt.key_secret (was it changed?)",
                      s->kid);
        s->priv_n = (int)out_n;
      }
      sodium_memzero(key, sizeof(key));
    }
  } else if (rc == SQLITE_DONE) {
    rc = SQLITE_OK;
  } else {
    rc = aa_err_storage(c, rc);
  }
  aa_stmt_release(st);
  if (rc != SQLITE_OK) aa_jwt_signer_free(s);
  return rc;
}

void aa_jwt_signer_free(aa_jwt_signer *s) {
  if (s->priv != NULL) sodium_memzero(s->priv, (size_t)s->priv_n);
  sqlite3_free(s->priv);
  s->priv = NULL;
  s->priv_n = 0;
}

static int ensure_body(aa_conn *c, void *arg) {
  aa_jwt_signer probe;
  int rc = aa_config_sync(c);
  (void)arg;
  if (rc != SQLITE_OK) return rc;
  memset(&probe, 0, sizeof(probe));
  rc = read_current(c, &probe); /* someone may have made it meanwhile */
  if (rc != SQLITE_OK) return rc;
  if (probe.priv != NULL) {
    aa_jwt_signer_free(&probe);
    return SQLITE_OK;
  }
  return make_key(c, NULL);
}

int aa_jwt_signer_get(aa_conn *c, aa_jwt_signer *s) {
  int rc;
  memset(s, 0, sizeof(*s));
  if (!keys_table_missing(c)) {
    rc = read_current(c, s);
    if (rc != SQLITE_OK || s->priv != NULL) return rc;
  }
  rc = aa_atomic(c, ensure_body, NULL);
  if (rc != SQLITE_OK) return rc;
  rc = aa_config_refresh(c);
  if (rc == SQLITE_OK) rc = read_current(c, s);
  if (rc == SQLITE_OK && s->priv == NULL)
    rc = aa_err(c, SQLITE_INTERNAL, AA_E_INTERNAL, "the signing key vanished");
  return rc;
}

/* ---- published keys ---------------------------------------------------------- */

static void bind_published(aa_conn *c, sqlite3_stmt *st) {
  sqlite3_bind_int64(st, 2, aa_now(c));
  sqlite3_bind_int64(st, 3, aa_config_int(c, AA_CFG_JWT_TTL));
  sqlite3_bind_int64(st, 4, aa_config_int(c, AA_CFG_JWT_LEEWAY));
}

int aa_jwt_key_find(aa_conn *c, const char *kid, int *alg, unsigned char **pub, int *pub_n,
                    int *found) {
  sqlite3_stmt *st;
  int rc;
  *found = 0;
  *pub = NULL;
  if (keys_table_missing(c)) return SQLITE_OK;
  rc = aa_stmt_get(c, SQL_FIND, &st);
  if (rc != SQLITE_OK) return rc;
  sqlite3_bind_text(st, 1, kid, -1, SQLITE_STATIC);
  rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    const unsigned char *a = sqlite3_column_text(st, 0);
    const unsigned char *p = sqlite3_column_blob(st, 1);
    int n = sqlite3_column_bytes(st, 1);
    int retired = sqlite3_column_type(st, 2) != SQLITE_NULL;
    int64_t retired_at = sqlite3_column_int64(st, 2);
    /* The statement holds the read transaction: the config is current. */
    rc = aa_config_sync(c);
    *alg = a ? aa_jws_alg_parse((const char *)a, (int)strlen((const char *)a)) : -1;
    if (rc == SQLITE_OK && retired &&
        retired_at + aa_config_int(c, AA_CFG_JWT_TTL) + aa_config_int(c, AA_CFG_JWT_LEEWAY) <=
            aa_now(c))
      *alg = -1; /* past its publication */
    if (rc == SQLITE_OK && *alg >= 0 && p != NULL && n > 0 && n <= PRIV_MAX) {
      *pub = sqlite3_malloc(n);
      if (*pub == NULL) {
        rc = aa_err_nomem(c);
      } else {
        memcpy(*pub, p, (size_t)n);
        *pub_n = n;
        *found = 1;
      }
    }
  } else if (rc == SQLITE_DONE) {
    rc = aa_config_sync(c);
  } else {
    rc = aa_err_storage(c, rc);
  }
  aa_stmt_release(st);
  return rc;
}

/* ---- SQL functions ----------------------------------------------------------- */

/* anonauth_jwks(): the published public keys as a JWK Set. It makes the
** first key when there is none, so that verifiers can fetch the set before
** the first token is issued. */
void aa_fn_jwks(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  aa_conn *c = sqlite3_user_data(ctx);
  aa_jwt_signer s;
  sqlite3_stmt *st;
  sqlite3_str *out;
  char *json;
  int rc, first = 1;
  (void)argc;
  (void)argv;
  aa_err_clear(c);
  rc = aa_schema_check(c);
  if (rc == SQLITE_NOTFOUND) {
    aa_err_clear(c); /* the atomic call that makes the key creates the tables */
    rc = SQLITE_OK;
  }
  if (rc == SQLITE_OK) rc = aa_config_refresh(c);
  if (rc == SQLITE_OK) rc = aa_jwt_signer_get(c, &s);
  if (rc != SQLITE_OK) {
    aa_result_error(ctx, c, rc);
    return;
  }
  aa_jwt_signer_free(&s);
  rc = aa_stmt_get(c, SQL_PUBLISHED, &st);
  if (rc != SQLITE_OK) {
    aa_result_error(ctx, c, rc);
    return;
  }
  bind_published(c, st);
  out = sqlite3_str_new(c->db);
  sqlite3_str_appendall(out, "{\"keys\":[");
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    const char *kid = (const char *)sqlite3_column_text(st, 0);
    const char *a = (const char *)sqlite3_column_text(st, 1);
    int alg = a ? aa_jws_alg_parse(a, (int)strlen(a)) : -1;
    sqlite3_str *one;
    char *member;
    if (kid == NULL || alg < 0 || strlen(kid) > AA_KID_MAX) continue;
    one = sqlite3_str_new(c->db);
    sqlite3_str_appendall(one, "{");
    if (aa_jws_public_jwk(alg, sqlite3_column_blob(st, 2), sqlite3_column_bytes(st, 2), one) !=
        SQLITE_OK) {
      sqlite3_free(sqlite3_str_finish(one)); /* a damaged row is left out */
      continue;
    }
    sqlite3_str_appendall(one, ",\"kid\":");
    aa_str_append_json_string(one, kid, (int)strlen(kid));
    sqlite3_str_appendf(one, ",\"alg\":\"%s\",\"use\":\"sig\"}", aa_jws_alg_name(alg));
    member = sqlite3_str_finish(one);
    if (member == NULL) continue;
    sqlite3_str_appendf(out, "%s%s", first ? "" : ",", member);
    sqlite3_free(member);
    first = 0;
  }
  aa_stmt_release(st);
  sqlite3_str_appendall(out, "]}");
  json = sqlite3_str_finish(out);
  if (rc != SQLITE_DONE) {
    sqlite3_free(json);
    aa_result_error(ctx, c, aa_err_storage(c, rc));
    return;
  }
  if (json == NULL) {
    sqlite3_result_error_nomem(ctx);
    return;
  }
  sqlite3_result_text(ctx, json, -1, sqlite3_free);
}

static int rotate_body(aa_conn *c, void *arg) {
  int rc = aa_config_sync(c);
  if (rc != SQLITE_OK) return rc;
  rc = make_key(c, arg);
  if (rc != SQLITE_OK) return rc;
  return aa_audit(c, "jwt_rotate", AA_NO_ID, AA_NO_ID, NULL, NULL);
}

/* anonauth_jwt_rotate(): a new current key; returns its kid. */
void aa_fn_jwt_rotate(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  aa_conn *c = sqlite3_user_data(ctx);
  char kid[AA_KID_MAX + 1];
  int rc;
  (void)argc;
  (void)argv;
  aa_err_clear(c);
  rc = aa_atomic(c, rotate_body, kid);
  if (rc != SQLITE_OK) {
    aa_result_error(ctx, c, rc);
    return;
  }
  sqlite3_result_text(ctx, kid, -1, SQLITE_TRANSIENT);
}
