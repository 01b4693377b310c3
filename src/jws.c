/*
** jws.c — the cryptography of JSON Web Signatures (RFC 7515) for the two
** algorithms anonauth signs with: EdDSA (Ed25519, libsodium) and ES256
** (ECDSA P-256 with SHA-256, OpenSSL's libcrypto), plus strict base64url.
**
** It knows nothing of the database: key generation, signing, verifying and
** the public JWK members. Keys travel as bytes: Ed25519 as libsodium's raw
** 32-byte public / 64-byte secret keys, P-256 as DER (SubjectPublicKeyInfo,
** and the private key as OpenSSL writes it with i2d_PrivateKey).
**
** ES256 signatures in a JWS are r || s, 32 bytes each (RFC 7518 3.4), not
** the DER SEQUENCE OpenSSL produces and expects, so both directions convert.
*/
#include "anonauth_int.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <sodium.h>
#include <string.h>

const char *aa_jws_alg_name(int alg) { return alg == AA_JWS_EDDSA ? "EdDSA" : "ES256"; }

int aa_jws_alg_parse(const char *s, int n) {
  if (n == 5 && memcmp(s, "ES256", 5) == 0) return AA_JWS_ES256;
  if (n == 5 && memcmp(s, "EdDSA", 5) == 0) return AA_JWS_EDDSA;
  return -1;
}

/* ---- base64url ------------------------------------------------------------ */

void aa_b64url_append(sqlite3_str *out, const unsigned char *p, size_t n) {
  char buf[1400];
  while (n > 0) {
    size_t chunk = n > 1020 ? 1020 : n; /* a multiple of 3 */
    sodium_bin2base64(buf, sizeof(buf), p, chunk, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sqlite3_str_appendall(out, buf);
    p += chunk;
    n -= chunk;
  }
}

/* A table decoder: what it decodes is public (a token anyone may hold), so
** libsodium's constant-time decoder, several times slower, buys nothing
** here. Strict: only the URL-safe alphabet, no padding, no length that
** leaves 6 bits over, and the unused low bits of the last character must be
** zero (one encoding per byte string). */
static const unsigned char b64url_value[256] = {
    ['A'] = 1,  ['B'] = 2,  ['C'] = 3,  ['D'] = 4,  ['E'] = 5,  ['F'] = 6,  ['G'] = 7,
    ['H'] = 8,  ['I'] = 9,  ['J'] = 10, ['K'] = 11, ['L'] = 12, ['M'] = 13, ['N'] = 14,
    ['O'] = 15, ['P'] = 16, ['Q'] = 17, ['R'] = 18, ['S'] = 19, ['T'] = 20, ['U'] = 21,
    ['V'] = 22, ['W'] = 23, ['X'] = 24, ['Y'] = 25, ['Z'] = 26, ['a'] = 27, ['b'] = 28,
    ['c'] = 29, ['d'] = 30, ['e'] = 31, ['f'] = 32, ['g'] = 33, ['h'] = 34, ['i'] = 35,
    ['j'] = 36, ['k'] = 37, ['l'] = 38, ['m'] = 39, ['n'] = 40, ['o'] = 41, ['p'] = 42,
    ['q'] = 43, ['r'] = 44, ['s'] = 45, ['t'] = 46, ['u'] = 47, ['v'] = 48, ['w'] = 49,
    ['x'] = 50, ['y'] = 51, ['z'] = 52, ['0'] = 53, ['1'] = 54, ['2'] = 55, ['3'] = 56,
    ['4'] = 57, ['5'] = 58, ['6'] = 59, ['7'] = 60, ['8'] = 61, ['9'] = 62, ['-'] = 63,
    ['_'] = 64,
}; /* the value plus one; 0: not in the alphabet */

int aa_b64url_decode(const char *in, size_t n, unsigned char *out, size_t cap, size_t *out_n) {
  uint32_t acc = 0;
  int bits = 0;
  size_t o = 0;
  if (n % 4 == 1 || (n / 4) * 3 + (n % 4 ? n % 4 - 1 : 0) > cap) return SQLITE_MISMATCH;
  for (size_t i = 0; i < n; i++) {
    int v = b64url_value[(unsigned char)in[i]];
    if (v == 0) return SQLITE_MISMATCH;
    acc = (acc << 6) | (uint32_t)(v - 1);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (unsigned char)(acc >> bits);
    }
  }
  if ((acc & ((1u << bits) - 1)) != 0) return SQLITE_MISMATCH; /* non-canonical */
  *out_n = o;
  return SQLITE_OK;
}

/* ---- P-256 with OpenSSL --------------------------------------------------- */

static EVP_PKEY *ec_private(const unsigned char *der, int n) {
  const unsigned char *p = der;
  return d2i_PrivateKey(EVP_PKEY_EC, NULL, &p, n);
}

static EVP_PKEY *ec_public(const unsigned char *der, int n) {
  const unsigned char *p = der;
  EVP_PKEY *k = d2i_PUBKEY(NULL, &p, n);
  if (k != NULL && (p != der + n || EVP_PKEY_get_base_id(k) != EVP_PKEY_EC ||
                    EVP_PKEY_get_bits(k) != 256)) {
    EVP_PKEY_free(k);
    return NULL;
  }
  return k;
}

/* Allocates *out with sqlite3_malloc and DER-encodes into it. */
static int der_copy(int len, unsigned char *tmp, unsigned char **out, int *out_n) {
  if (len <= 0) return SQLITE_ERROR;
  *out = sqlite3_malloc(len);
  if (*out == NULL) return SQLITE_NOMEM;
  memcpy(*out, tmp, (size_t)len);
  *out_n = len;
  return SQLITE_OK;
}

static int ec_keygen(unsigned char **pub, int *pub_n, unsigned char **priv, int *priv_n) {
  EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
  unsigned char *tmp = NULL;
  int len, rc;
  if (k == NULL) return SQLITE_ERROR;
  len = i2d_PUBKEY(k, &tmp);
  rc = der_copy(len, tmp, pub, pub_n);
  OPENSSL_free(tmp);
  tmp = NULL;
  if (rc == SQLITE_OK) {
    len = i2d_PrivateKey(k, &tmp);
    rc = der_copy(len, tmp, priv, priv_n);
    if (len > 0) OPENSSL_clear_free(tmp, (size_t)len);
    if (rc != SQLITE_OK) {
      sqlite3_free(*pub);
      *pub = NULL;
    }
  }
  EVP_PKEY_free(k);
  return rc;
}

static int ec_sign(EVP_PKEY *k, const unsigned char *msg, size_t n,
                   unsigned char sig[AA_JWS_SIG_BYTES]) {
  EVP_MD_CTX *md = NULL;
  ECDSA_SIG *es = NULL;
  unsigned char dsig[80];
  size_t dlen = sizeof(dsig);
  const unsigned char *p = dsig;
  const BIGNUM *r, *s;
  int rc = SQLITE_ERROR;
  if (k == NULL) return SQLITE_ERROR;
  md = EVP_MD_CTX_new();
  if (md != NULL && EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, k) == 1 &&
      EVP_DigestSign(md, dsig, &dlen, msg, n) == 1 &&
      (es = d2i_ECDSA_SIG(NULL, &p, (long)dlen)) != NULL) {
    ECDSA_SIG_get0(es, &r, &s);
    if (BN_bn2binpad(r, sig, 32) == 32 && BN_bn2binpad(s, sig + 32, 32) == 32) rc = SQLITE_OK;
  }
  ECDSA_SIG_free(es);
  EVP_MD_CTX_free(md);
  return rc;
}

/* 1 when the signature verifies, 0 otherwise (any failure included). */
static int ec_verify(EVP_PKEY *k, const unsigned char *msg, size_t n,
                     const unsigned char sig[AA_JWS_SIG_BYTES]) {
  EVP_MD_CTX *md = NULL;
  ECDSA_SIG *es = NULL;
  BIGNUM *r = NULL, *s = NULL;
  unsigned char *dsig = NULL;
  int dlen, ok = 0;
  if (k == NULL) return 0;
  es = ECDSA_SIG_new();
  r = BN_bin2bn(sig, 32, NULL);
  s = BN_bin2bn(sig + 32, 32, NULL);
  if (es == NULL || r == NULL || s == NULL || ECDSA_SIG_set0(es, r, s) != 1) {
    BN_free(r);
    BN_free(s);
    goto done;
  }
  dlen = i2d_ECDSA_SIG(es, &dsig);
  if (dlen <= 0) goto done;
  md = EVP_MD_CTX_new();
  ok = md != NULL && EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, k) == 1 &&
       EVP_DigestVerify(md, dsig, (size_t)dlen, msg, n) == 1;
done:
  OPENSSL_free(dsig);
  ECDSA_SIG_free(es);
  EVP_MD_CTX_free(md);
  return ok;
}

static int ec_jwk(const unsigned char *der, int der_n, sqlite3_str *out) {
  EVP_PKEY *k = ec_public(der, der_n);
  unsigned char pt[65];
  size_t len = 0;
  int rc = SQLITE_ERROR;
  if (k == NULL) return SQLITE_ERROR;
  if (EVP_PKEY_get_octet_string_param(k, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, pt, sizeof(pt),
                                      &len) == 1 &&
      len == 65 && pt[0] == 4) {
    sqlite3_str_appendall(out, "\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"");
    aa_b64url_append(out, pt + 1, 32);
    sqlite3_str_appendall(out, "\",\"y\":\"");
    aa_b64url_append(out, pt + 33, 32);
    sqlite3_str_appendall(out, "\"");
    rc = SQLITE_OK;
  }
  EVP_PKEY_free(k);
  return rc;
}

/* ---- the interface ---------------------------------------------------------- */

struct aa_jws_key {
  int alg;
  int is_private;
  EVP_PKEY *ec;            /* ES256 */
  unsigned char ed[64];    /* EdDSA: the public key (32) or libsodium's secret key (64) */
};

int aa_jws_key_alg(const aa_jws_key *k) { return k->alg; }

int aa_jws_key_load(int alg, int is_private, const unsigned char *bytes, int n,
                    aa_jws_key **out) {
  aa_jws_key *k;
  *out = NULL;
  if (bytes == NULL || n <= 0) return SQLITE_ERROR;
  if (alg == AA_JWS_EDDSA &&
      n != (int)(is_private ? crypto_sign_SECRETKEYBYTES : crypto_sign_PUBLICKEYBYTES))
    return SQLITE_ERROR;
  k = sqlite3_malloc(sizeof(*k));
  if (k == NULL) return SQLITE_NOMEM;
  memset(k, 0, sizeof(*k));
  k->alg = alg;
  k->is_private = is_private;
  if (alg == AA_JWS_EDDSA) {
    memcpy(k->ed, bytes, (size_t)n);
  } else {
    k->ec = is_private ? ec_private(bytes, n) : ec_public(bytes, n);
    if (k->ec == NULL) {
      sqlite3_free(k);
      return SQLITE_ERROR;
    }
  }
  *out = k;
  return SQLITE_OK;
}

void aa_jws_key_free(aa_jws_key *k) {
  if (k == NULL) return;
  EVP_PKEY_free(k->ec);
  sodium_memzero(k, sizeof(*k));
  sqlite3_free(k);
}

int aa_jws_keygen(int alg, unsigned char **pub, int *pub_n, unsigned char **priv, int *priv_n) {
  *pub = *priv = NULL;
  if (alg == AA_JWS_EDDSA) {
    *pub = sqlite3_malloc(crypto_sign_PUBLICKEYBYTES);
    *priv = sqlite3_malloc(crypto_sign_SECRETKEYBYTES);
    if (*pub == NULL || *priv == NULL) {
      sqlite3_free(*pub);
      sqlite3_free(*priv);
      *pub = *priv = NULL;
      return SQLITE_NOMEM;
    }
    crypto_sign_keypair(*pub, *priv);
    *pub_n = crypto_sign_PUBLICKEYBYTES;
    *priv_n = crypto_sign_SECRETKEYBYTES;
    return SQLITE_OK;
  }
  return ec_keygen(pub, pub_n, priv, priv_n);
}

int aa_jws_sign(const aa_jws_key *k, const unsigned char *msg, size_t n,
                unsigned char sig[AA_JWS_SIG_BYTES]) {
  if (!k->is_private) return SQLITE_ERROR;
  if (k->alg == AA_JWS_EDDSA)
    return crypto_sign_detached(sig, NULL, msg, n, k->ed) == 0 ? SQLITE_OK : SQLITE_ERROR;
  return ec_sign(k->ec, msg, n, sig);
}

int aa_jws_verify(const aa_jws_key *k, const unsigned char *msg, size_t n,
                  const unsigned char *sig, size_t sig_n) {
  if (sig_n != AA_JWS_SIG_BYTES || k->is_private) return 0;
  if (k->alg == AA_JWS_EDDSA) return crypto_sign_verify_detached(sig, msg, n, k->ed) == 0;
  return ec_verify(k->ec, msg, n, sig);
}

int aa_jws_public_jwk(int alg, const unsigned char *pub, int pub_n, sqlite3_str *out) {
  if (alg == AA_JWS_EDDSA) {
    if (pub_n != crypto_sign_PUBLICKEYBYTES) return SQLITE_ERROR;
    sqlite3_str_appendall(out, "\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"");
    aa_b64url_append(out, pub, (size_t)pub_n);
    sqlite3_str_appendall(out, "\"");
    return SQLITE_OK;
  }
  return ec_jwk(pub, pub_n, out);
}
