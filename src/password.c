/*
** password.c — account secrets: Argon2id hashing and verification.
**
** Secrets are stored only as crypto_pwhash_str() strings (Argon2id, random
** salt, cost encoded in the string) at the cost configured by
** password.opslimit and password.memlimit. At libsodium's INTERACTIVE cost
** one hash or verification takes tens of milliseconds and 64 MiB, so the
** callers run them outside the write lock (see accounts.c).
**
** A sign-in for an account that does not exist must cost what a wrong
** secret costs, or the response time tells an attacker which accounts
** exist. So it is verified against a dummy: a well-formed Argon2id string
** at the configured cost with a random salt and a random "hash" that no
** secret produces. Building it takes a microsecond (no hashing), so there
** is no slower first call either, and verifying it does exactly the work
** of verifying a real hash made at the same cost.
*/
#include "anonauth_int.h"

#include <sodium.h>
#include <string.h>

_Static_assert(AA_PASSWORD_HASH_MAX == crypto_pwhash_STRBYTES,
               "AA_PASSWORD_HASH_MAX must match libsodium's string size");

static unsigned long long opslimit(aa_conn *c) {
  return (unsigned long long)aa_config_int(c, AA_CFG_PASSWORD_OPSLIMIT);
}

static size_t memlimit(aa_conn *c) {
  return (size_t)aa_config_int(c, AA_CFG_PASSWORD_MEMLIMIT);
}

int aa_password_hash(aa_conn *c, const char *secret, int n,
                     char out[AA_PASSWORD_HASH_MAX]) {
  if (crypto_pwhash_str(out, secret, (unsigned long long)n, opslimit(c), memlimit(c)) != 0) {
    sodium_memzero(out, AA_PASSWORD_HASH_MAX);
    return aa_err(c, SQLITE_ERROR, AA_E_INTERNAL,
                  "hashing the secret failed: password.memlimit (%lld bytes) "
                  "could not be allocated",
                  (long long)aa_config_int(c, AA_CFG_PASSWORD_MEMLIMIT));
  }
  return SQLITE_OK;
}

int aa_password_verify(aa_conn *c, const char *hash, const char *secret, int n) {
  /* A stored value that is not an Argon2id string never matches (no
  ** fallback to another algorithm), and costs what a wrong secret costs. */
  if (hash == NULL || strncmp(hash, crypto_pwhash_STRPREFIX,
                              sizeof(crypto_pwhash_STRPREFIX) - 1) != 0) {
    aa_password_verify_dummy(c, secret, n);
    return 0;
  }
  return crypto_pwhash_str_verify(hash, secret, (unsigned long long)n) == 0;
}

void aa_password_verify_dummy(aa_conn *c, const char *secret, int n) {
  unsigned char salt[crypto_pwhash_SALTBYTES];
  unsigned char hash[32];
  char salt64[sodium_base64_ENCODED_LEN(crypto_pwhash_SALTBYTES,
                                        sodium_base64_VARIANT_ORIGINAL_NO_PADDING)];
  char hash64[sodium_base64_ENCODED_LEN(32, sodium_base64_VARIANT_ORIGINAL_NO_PADDING)];
  char dummy[AA_PASSWORD_HASH_MAX];
  randombytes_buf(salt, sizeof(salt));
  randombytes_buf(hash, sizeof(hash));
  sodium_bin2base64(salt64, sizeof(salt64), salt, sizeof(salt),
                    sodium_base64_VARIANT_ORIGINAL_NO_PADDING);
  sodium_bin2base64(hash64, sizeof(hash64), hash, sizeof(hash),
                    sodium_base64_VARIANT_ORIGINAL_NO_PADDING);
  /* The layout crypto_pwhash_str() writes: m in KiB, t = opslimit, p = 1. */
  sqlite3_snprintf((int)sizeof(dummy), dummy, "%sv=19$m=%llu,t=%llu,p=1$%s$%s",
                   crypto_pwhash_STRPREFIX,
                   (unsigned long long)(memlimit(c) / 1024U), opslimit(c), salt64, hash64);
  /* It cannot match; the result is only read so that the call stays. */
  if (crypto_pwhash_str_verify(dummy, secret, (unsigned long long)n) == 0) dummy[0] = 0;
  sodium_memzero(dummy, sizeof(dummy));
}

int aa_password_needs_rehash(aa_conn *c, const char *hash) {
  return crypto_pwhash_str_needs_rehash(hash, opslimit(c), memlimit(c)) != 0;
}

void aa_password_wipe(char *hash) { sodium_memzero(hash, AA_PASSWORD_HASH_MAX); }
