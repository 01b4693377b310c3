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
**
** The cost is capped at libsodium's SENSITIVE level (4 passes, 1 GiB), both
** as configured and as read from a stored string: a database written by
** someone else can hold any password.memlimit in anonauth_config and any
** parameters in a hash, and without a cap one sign-in could be made to
** allocate gigabytes or run for minutes. The configured values are checked
** when set and loaded (config.c) and again here, where they are used; a
** stored string over the caps (or with p other than 1, which is all
** crypto_pwhash_str() writes) is not run: it costs a dummy verification at
** the configured cost and never matches, and the caller audits it.
*/
#include "anonauth_int.h"

#include <sodium.h>
#include <string.h>

_Static_assert(AA_PASSWORD_HASH_MAX == crypto_pwhash_STRBYTES,
               "AA_PASSWORD_HASH_MAX must match libsodium's string size");
_Static_assert(AA_PASSWORD_OPSLIMIT_MAX == crypto_pwhash_OPSLIMIT_SENSITIVE,
               "the opslimit cap is libsodium's SENSITIVE level");
_Static_assert(AA_PASSWORD_MEMLIMIT_MAX == crypto_pwhash_MEMLIMIT_SENSITIVE,
               "the memlimit cap is libsodium's SENSITIVE level");

static int opslimit_ok(int64_t v) {
  return v >= (int64_t)crypto_pwhash_OPSLIMIT_MIN && v <= AA_PASSWORD_OPSLIMIT_MAX;
}

static int memlimit_ok(int64_t v) {
  return v >= (int64_t)crypto_pwhash_MEMLIMIT_MIN && v <= AA_PASSWORD_MEMLIMIT_MAX;
}

/* The configured cost, held to the caps again where it is used. A value
** outside them cannot come through config.c; should one ever, the dummy
** runs at the nearest allowed cost and hashing refuses. */
static unsigned long long opslimit(aa_conn *c) {
  int64_t v = aa_config_int(c, AA_CFG_PASSWORD_OPSLIMIT);
  if (v > AA_PASSWORD_OPSLIMIT_MAX) v = AA_PASSWORD_OPSLIMIT_MAX;
  if (v < (int64_t)crypto_pwhash_OPSLIMIT_MIN) v = crypto_pwhash_OPSLIMIT_MIN;
  return (unsigned long long)v;
}

static size_t memlimit(aa_conn *c) {
  int64_t v = aa_config_int(c, AA_CFG_PASSWORD_MEMLIMIT);
  if (v > AA_PASSWORD_MEMLIMIT_MAX) v = AA_PASSWORD_MEMLIMIT_MAX;
  if (v < (int64_t)crypto_pwhash_MEMLIMIT_MIN) v = crypto_pwhash_MEMLIMIT_MIN;
  return (size_t)v;
}

int aa_password_hash(aa_conn *c, const char *secret, int n,
                     char out[AA_PASSWORD_HASH_MAX]) {
  int64_t ops = aa_config_int(c, AA_CFG_PASSWORD_OPSLIMIT);
  int64_t mem = aa_config_int(c, AA_CFG_PASSWORD_MEMLIMIT);
  if (!opslimit_ok(ops) || !memlimit_ok(mem)) {
    sodium_memzero(out, AA_PASSWORD_HASH_MAX);
    return aa_err(c, SQLITE_ERROR, AA_E_STORAGE,
                  "the password cost is outside its limits (password.opslimit %lld, at most "
                  "%d; password.memlimit %lld, at most %lld bytes); set them with "
                  "anonauth_config()",
                  (long long)ops, AA_PASSWORD_OPSLIMIT_MAX, (long long)mem,
                  (long long)AA_PASSWORD_MEMLIMIT_MAX);
  }
  if (crypto_pwhash_str(out, secret, (unsigned long long)n, opslimit(c), memlimit(c)) != 0) {
    sodium_memzero(out, AA_PASSWORD_HASH_MAX);
    return aa_err(c, SQLITE_ERROR, AA_E_INTERNAL,
                  "hashing the secret failed: password.memlimit (%lld bytes) "
                  "could not be allocated",
                  (long long)aa_config_int(c, AA_CFG_PASSWORD_MEMLIMIT));
  }
  return SQLITE_OK;
}

/* Reads up to 10 decimal digits at *p. */
static int read_number(const char **p, uint64_t *out) {
  const char *s = *p;
  uint64_t v = 0;
  int digits = 0;
  while (*s >= '0' && *s <= '9') {
    if (++digits > 10) return 0;
    v = v * 10 + (uint64_t)(*s - '0');
    s++;
  }
  if (digits == 0) return 0;
  *out = v;
  *p = s;
  return 1;
}

typedef enum { STORED_OK, STORED_NOT_ARGON2ID, STORED_OVER_CAPS } stored_verdict;

/* What crypto_pwhash_str() writes: $argon2id$v=19$m=<KiB>,t=<passes>,p=1$... */
static stored_verdict stored_cost(const char *hash) {
  static const char head[] = "$argon2id$v=19$m=";
  const char *p = hash;
  uint64_t m, t, lanes;
  if (strncmp(p, head, sizeof(head) - 1) != 0) return STORED_NOT_ARGON2ID;
  p += sizeof(head) - 1;
  if (!read_number(&p, &m) || strncmp(p, ",t=", 3) != 0) return STORED_NOT_ARGON2ID;
  p += 3;
  if (!read_number(&p, &t) || strncmp(p, ",p=", 3) != 0) return STORED_NOT_ARGON2ID;
  p += 3;
  if (!read_number(&p, &lanes) || *p != '$') return STORED_NOT_ARGON2ID;
  /* Below libsodium's minimums it would refuse at once: not a valid string. */
  if (m * 1024U < crypto_pwhash_MEMLIMIT_MIN || t < crypto_pwhash_OPSLIMIT_MIN || lanes < 1)
    return STORED_NOT_ARGON2ID;
  if (m * 1024U > (uint64_t)AA_PASSWORD_MEMLIMIT_MAX || t > AA_PASSWORD_OPSLIMIT_MAX || lanes > 1)
    return STORED_OVER_CAPS;
  return STORED_OK;
}

int aa_password_verify(aa_conn *c, const char *hash, const char *secret, int n, int *refused) {
  *refused = 0;
  /* A stored value that is not an Argon2id string never matches (no
  ** fallback to another algorithm), and costs what a wrong secret costs;
  ** so does one whose cost is beyond the caps, which is not run at all. */
  switch (hash == NULL ? STORED_NOT_ARGON2ID : stored_cost(hash)) {
    case STORED_OK:
      return crypto_pwhash_str_verify(hash, secret, (unsigned long long)n) == 0;
    case STORED_OVER_CAPS:
      *refused = 1;
      break;
    case STORED_NOT_ARGON2ID:
      break;
  }
  aa_password_verify_dummy(c, secret, n);
  return 0;
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
