/*
** token.c — session tokens: minting, recognising, hashing.
**
** A token is AA_TOKEN_PREFIX followed by 32 bytes from libsodium's CSPRNG in
** URL-safe base64 without padding. The prefix lets secret scanners and
** people recognise a leaked token. The database only ever sees a BLAKE2b-256
** hash of the 32 random bytes: with 256 bits of entropy there is nothing to
** brute-force, so a fast unkeyed hash is the right tool (a password hash
** would only slow down every request).
*/
#include "anonauth_int.h"

#include <sodium.h>
#include <string.h>

static void hash_raw(const unsigned char raw[AA_TOKEN_RAW_BYTES],
                     unsigned char hash[AA_TOKEN_HASH_BYTES]) {
  crypto_generichash(hash, AA_TOKEN_HASH_BYTES, raw, AA_TOKEN_RAW_BYTES, NULL, 0);
}

void aa_token_new(aa_token *t) {
  unsigned char raw[AA_TOKEN_RAW_BYTES];
  randombytes_buf(raw, sizeof(raw));
  memcpy(t->text, AA_TOKEN_PREFIX, AA_TOKEN_PREFIX_LEN);
  sodium_bin2base64(t->text + AA_TOKEN_PREFIX_LEN, AA_TOKEN_B64_LEN + 1, raw,
                    sizeof(raw), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  hash_raw(raw, t->hash);
  sodium_memzero(raw, sizeof(raw));
}

int aa_token_hash_value(sqlite3_value *v, unsigned char hash[AA_TOKEN_HASH_BYTES]) {
  unsigned char raw[AA_TOKEN_RAW_BYTES];
  size_t raw_len = 0;
  const char *end = NULL;
  const char *text;
  if (sqlite3_value_type(v) != SQLITE_TEXT) return SQLITE_MISMATCH;
  if (sqlite3_value_bytes(v) != (int)AA_TOKEN_TEXT_LEN) return SQLITE_MISMATCH;
  text = (const char *)sqlite3_value_text(v);
  if (text == NULL || memcmp(text, AA_TOKEN_PREFIX, AA_TOKEN_PREFIX_LEN) != 0)
    return SQLITE_MISMATCH;
  if (sodium_base642bin(raw, sizeof(raw), text + AA_TOKEN_PREFIX_LEN,
                        AA_TOKEN_B64_LEN, NULL, &raw_len, &end,
                        sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
      raw_len != sizeof(raw) || end != text + AA_TOKEN_TEXT_LEN)
    return SQLITE_MISMATCH;
  hash_raw(raw, hash);
  sodium_memzero(raw, sizeof(raw));
  return SQLITE_OK;
}

void aa_token_wipe(aa_token *t) { sodium_memzero(t, sizeof(*t)); }
