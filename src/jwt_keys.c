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
#include <stdio.h>
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
  const char *secret, *why;
  static const unsigned char context[] = "anonauth jwt.key_secret v1";
  *have = 0;
  if (v == NULL) return SQLITE_OK;
  if (strncmp(v, "env:", 4) != 0)
    return aa_err(c, SQLITE_ERROR, AA_E_JWT_MISCONFIGURED, "jwt.key_secret must be env:NAME");
  /* Checked where it is used too: the value may come from a database file
  ** someone else wrote, naming a variable the process never meant to share. */
  why = aa_secret_env_problem(v + 4, (int)strlen(v + 4), 0);
  if (why != NULL)
    return aa_err(c, SQLITE_ERROR, AA_E_JWT_MISCONFIGURED, "jwt.key_secret: %s", why);
  secret = getenv(v + 4);
  if (secret == NULL || secret[0] == 0)
    return aa_err(c, SQLITE_ERROR, AA_E_JWT_MISCONFIGURED,
                  "jwt.key_secret: the environment variable %s is not set", v + 4);
  crypto_generichash(key, 32, (const unsigned char *)secret, strlen(secret), context,
                     sizeof(context) - 1);
  *have = 1;
  return SQLITE_OK;
}

/* "<kid>.<alg>" (ad holds AA_KID_MAX + 8 bytes). */
static void seal_ad(const char *kid, int alg, unsigned char *ad, size_t *ad_n) {
  int n = snprintf((char *)ad, AA_KID_MAX + 8, "%s.%s", kid, aa_jws_alg_name(alg));
  *ad_n = n > 0 && n < AA_KID_MAX + 8 ? (size_t)n : 0;
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

/* ---- the connection's parsed keys -------------------------------------------- */

/* Parsing a P-256 key costs more than a signature, so each connection keeps
** the keys it parsed. The stored row is still read on every call (that is
** what says which key is current and published); a cached key is reused
** only while its fingerprint, a hash of everything it was made from (the
** stored bytes, and for a sealed key the sealing key), is unchanged. */
#define VERIFY_SLOTS 4

typedef struct {
  char kid[AA_KID_MAX + 1];
  unsigned char fingerprint[32];
  aa_jws_key *key;
} cached_key;

struct aa_jwt_cache {
  cached_key signer;
  /* the file's data version and jwt.alg when the signer was last read: while
  ** both are unchanged (and the sealing key, for a sealed key), the signer is
  ** still the current key and its row need not be read again */
  int signer_known;
  unsigned signer_dv;
  int signer_alg;
  int signer_sealed;
  unsigned char signer_seal_fp[32];
  cached_key verifiers[VERIFY_SLOTS];
  unsigned next;
};

static void fingerprint(int alg, const unsigned char *blob, int n, const unsigned char *seal,
                        unsigned char out[32]) {
  crypto_generichash_state h;
  unsigned char a = (unsigned char)alg;
  crypto_generichash_init(&h, NULL, 0, 32);
  crypto_generichash_update(&h, &a, 1);
  crypto_generichash_update(&h, blob, (unsigned long long)n);
  if (seal != NULL) crypto_generichash_update(&h, seal, 32);
  crypto_generichash_final(&h, out, 32);
}

static struct aa_jwt_cache *cache(aa_conn *c) {
  if (c->jwt == NULL) {
    c->jwt = sqlite3_malloc(sizeof(*c->jwt));
    if (c->jwt != NULL) memset(c->jwt, 0, sizeof(*c->jwt));
  }
  return c->jwt;
}

static const cached_key *cached(const cached_key *k, const char *kid, const unsigned char fp[32]) {
  return k->key != NULL && strcmp(k->kid, kid) == 0 && sodium_memcmp(k->fingerprint, fp, 32) == 0
             ? k
             : NULL;
}

static void cache_put(cached_key *k, const char *kid, const unsigned char fp[32], aa_jws_key *key) {
  aa_jws_key_free(k->key);
  memcpy(k->kid, kid, strlen(kid) + 1);
  memcpy(k->fingerprint, fp, 32);
  k->key = key;
}

void aa_jwt_cache_free(aa_conn *c) {
  if (c->jwt == NULL) return;
  aa_jws_key_free(c->jwt->signer.key);
  for (int i = 0; i < VERIFY_SLOTS; i++) aa_jws_key_free(c->jwt->verifiers[i].key);
  sqlite3_free(c->jwt);
  c->jwt = NULL;
}

/* Opens (when sealed) and parses a stored private key. */
static int load_private(aa_conn *c, const char *kid, int alg, const unsigned char *blob, int n,
                        int encrypted, const unsigned char *seal, aa_jws_key **out) {
  unsigned char plain[PRIV_MAX], ad[AA_KID_MAX + 8];
  unsigned long long plain_n = 0;
  size_t ad_n;
  int rc;
  if (!encrypted) {
    rc = aa_jws_key_load(alg, 1, blob, n, out);
  } else {
    seal_ad(kid, alg, ad, &ad_n);
    if (n < (int)(SEAL_NONCE + SEAL_TAG) ||
        crypto_aead_xchacha20poly1305_ietf_decrypt(plain, &plain_n, NULL, blob + SEAL_NONCE,
                                                   (unsigned long long)n - SEAL_NONCE, ad, ad_n,
                                                   blob, seal) != 0)
      return aa_err(c, SQLITE_ERROR, AA_E_JWT_MISCONFIGURED,
                    "the signing key %s does not open with jwt.key_secret (was it changed?)", kid);
    rc = aa_jws_key_load(alg, 1, plain, (int)plain_n, out);
    sodium_memzero(plain, sizeof(plain));
  }
  if (rc == SQLITE_NOMEM) return aa_err_nomem(c);
  if (rc != SQLITE_OK)
    return aa_err(c, SQLITE_CORRUPT, AA_E_STORAGE, "anonauth_jwt_keys holds an invalid key (%s)",
                  kid);
  return SQLITE_OK;
}

static unsigned data_version(aa_conn *c) {
  unsigned dv = 0;
  sqlite3_file_control(c->db, "main", SQLITE_FCNTL_DATA_VERSION, &dv);
  return dv;
}

/* The signer read last is still current: nothing was committed since (the
** data version moves on any commit, this connection's included; the caller
** has just read the database, so it is up to date), jwt.alg is the same,
** and a sealed key's sealing key is unchanged. Not inside a write
** transaction, whose own changes do not move the data version. */
static int signer_still_current(aa_conn *c, struct aa_jwt_cache *kc, int alg) {
  unsigned char seal[32], fp[32];
  int have = 0, same;
  if (!kc->signer_known || kc->signer.key == NULL || kc->signer_alg != alg ||
      kc->signer_dv != data_version(c) || sqlite3_txn_state(c->db, "main") == SQLITE_TXN_WRITE)
    return 0;
  if (!kc->signer_sealed) return 1;
  if (seal_key(c, seal, &have) != SQLITE_OK) {
    aa_err_clear(c); /* the slow path reports it */
    return 0;
  }
  if (!have) return 0;
  crypto_generichash(fp, sizeof(fp), seal, sizeof(seal), NULL, 0);
  sodium_memzero(seal, sizeof(seal));
  same = sodium_memcmp(fp, kc->signer_seal_fp, sizeof(fp)) == 0;
  return same;
}

/* Reads the current key of jwt.alg into *s; s->key stays NULL when none. */
static int read_current(aa_conn *c, aa_jwt_signer *s) {
  sqlite3_stmt *st;
  struct aa_jwt_cache *kc = cache(c);
  int alg = (int)aa_config_int(c, AA_CFG_JWT_ALG);
  int rc;
  if (kc == NULL) return aa_err_nomem(c);
  if (signer_still_current(c, kc, alg)) {
    memcpy(s->kid, kc->signer.kid, sizeof(s->kid));
    s->alg = alg;
    s->key = kc->signer.key;
    return SQLITE_OK;
  }
  kc->signer_known = 0;
  rc = aa_stmt_get(c, SQL_CURRENT, &st);
  if (rc != SQLITE_OK) return rc;
  sqlite3_bind_text(st, 1, aa_jws_alg_name(alg), -1, SQLITE_STATIC);
  rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    const char *kid = (const char *)sqlite3_column_text(st, 0);
    const unsigned char *blob = sqlite3_column_blob(st, 1);
    int n = sqlite3_column_bytes(st, 1), encrypted = sqlite3_column_int(st, 2), have = 0;
    unsigned char seal[32], fp[32];
    memset(seal, 0, sizeof(seal));
    rc = SQLITE_OK;
    /* Someone else may have written this row: check what is used. */
    if (kid == NULL || strlen(kid) < 1 || strlen(kid) > AA_KID_MAX || n < 1 || n > PRIV_MAX ||
        blob == NULL) {
      aa_stmt_release(st);
      return aa_err(c, SQLITE_CORRUPT, AA_E_STORAGE, "anonauth_jwt_keys holds an invalid key");
    }
    if (encrypted) {
      rc = seal_key(c, seal, &have);
      if (rc == SQLITE_OK && !have)
        rc = aa_err(c, SQLITE_ERROR, AA_E_JWT_MISCONFIGURED,
                    "the signing key is encrypted and jwt.key_secret is not set");
    }
    if (rc == SQLITE_OK) {
      fingerprint(alg, blob, n, encrypted ? seal : NULL, fp);
      if (cached(&kc->signer, kid, fp) == NULL) {
        aa_jws_key *key = NULL;
        rc = load_private(c, kid, alg, blob, n, encrypted, seal, &key);
        if (rc == SQLITE_OK) cache_put(&kc->signer, kid, fp, key);
      }
    }
    if (rc == SQLITE_OK) {
      memcpy(s->kid, kid, strlen(kid) + 1);
      s->alg = alg;
      s->key = kc->signer.key;
      kc->signer_alg = alg;
      kc->signer_sealed = encrypted;
      if (encrypted) crypto_generichash(kc->signer_seal_fp, 32, seal, sizeof(seal), NULL, 0);
      /* A row read inside a write transaction may yet be rolled back. */
      kc->signer_known = sqlite3_txn_state(c->db, "main") != SQLITE_TXN_WRITE;
    }
    sodium_memzero(seal, sizeof(seal));
  } else if (rc == SQLITE_DONE) {
    rc = SQLITE_OK;
  } else {
    rc = aa_err_storage(c, rc);
  }
  aa_stmt_release(st);
  /* The version the row was read at (read after the statement: the read
  ** transaction brought it up to date). */
  if (kc->signer_known) kc->signer_dv = data_version(c);
  return rc;
}

static int ensure_body(aa_conn *c, void *arg) {
  aa_jwt_signer probe;
  int rc = aa_config_sync(c);
  (void)arg;
  if (rc != SQLITE_OK) return rc;
  memset(&probe, 0, sizeof(probe));
  rc = read_current(c, &probe); /* someone may have made it meanwhile */
  if (rc != SQLITE_OK || probe.key != NULL) return rc;
  return make_key(c, NULL);
}

int aa_jwt_signer_get(aa_conn *c, aa_jwt_signer *s) {
  int rc;
  memset(s, 0, sizeof(*s));
  rc = read_current(c, s);
  if (rc != SQLITE_OK && keys_table_missing(c)) {
    aa_err_clear(c); /* an older schema: the atomic call below migrates it */
    rc = SQLITE_OK;
  }
  if (rc != SQLITE_OK || s->key != NULL) return rc;
  rc = aa_atomic(c, ensure_body, NULL);
  if (rc != SQLITE_OK) return rc;
  rc = aa_config_refresh(c);
  if (rc == SQLITE_OK) rc = read_current(c, s);
  if (rc == SQLITE_OK && s->key == NULL)
    rc = aa_err(c, SQLITE_INTERNAL, AA_E_INTERNAL, "the signing key vanished");
  return rc;
}

/* ---- published keys ---------------------------------------------------------- */

static void bind_published(aa_conn *c, sqlite3_stmt *st) {
  sqlite3_bind_int64(st, 2, aa_now(c));
  sqlite3_bind_int64(st, 3, aa_config_int(c, AA_CFG_JWT_TTL));
  sqlite3_bind_int64(st, 4, aa_config_int(c, AA_CFG_JWT_LEEWAY));
}

int aa_jwt_key_find(aa_conn *c, const char *kid, const aa_jws_key **key) {
  sqlite3_stmt *st;
  struct aa_jwt_cache *kc;
  int rc;
  *key = NULL;
  kc = cache(c);
  if (kc == NULL) return aa_err_nomem(c);
  rc = aa_stmt_get(c, SQL_FIND, &st);
  if (rc != SQLITE_OK && keys_table_missing(c)) {
    aa_err_clear(c);
    return SQLITE_OK;
  }
  if (rc != SQLITE_OK) return rc;
  sqlite3_bind_text(st, 1, kid, -1, SQLITE_STATIC);
  rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    const unsigned char *a = sqlite3_column_text(st, 0);
    const unsigned char *p = sqlite3_column_blob(st, 1);
    int n = sqlite3_column_bytes(st, 1);
    int retired = sqlite3_column_type(st, 2) != SQLITE_NULL;
    int64_t retired_at = sqlite3_column_int64(st, 2);
    int alg = a ? aa_jws_alg_parse((const char *)a, (int)strlen((const char *)a)) : -1;
    /* The statement holds the read transaction: the config is current. */
    rc = aa_config_sync(c);
    if (rc == SQLITE_OK && retired &&
        retired_at + aa_config_int(c, AA_CFG_JWT_TTL) + aa_config_int(c, AA_CFG_JWT_LEEWAY) <=
            aa_now(c))
      alg = -1; /* past its publication */
    if (rc == SQLITE_OK && alg >= 0 && p != NULL && n > 0 && n <= PRIV_MAX) {
      unsigned char fp[32];
      const cached_key *hit = NULL;
      fingerprint(alg, p, n, NULL, fp);
      for (int i = 0; hit == NULL && i < VERIFY_SLOTS; i++) hit = cached(&kc->verifiers[i], kid, fp);
      if (hit == NULL) {
        aa_jws_key *k = NULL;
        cached_key *slot = &kc->verifiers[kc->next++ % VERIFY_SLOTS];
        rc = aa_jws_key_load(alg, 0, p, n, &k);
        if (rc == SQLITE_NOMEM) {
          rc = aa_err_nomem(c);
        } else if (rc != SQLITE_OK) {
          rc = SQLITE_OK; /* a damaged public key verifies nothing */
        } else {
          cache_put(slot, kid, fp, k);
          hit = slot;
        }
      }
      if (hit != NULL) *key = hit->key;
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
