/*
** token.c — session tokens: minting, recognising, hashing.
**
** A token is AA_TOKEN_PREFIX followed by 32 bytes from libsodium's CSPRNG in
** URL-safe base64 without padding. The prefix lets secret scanners and
** people recognise a leaked token. The database only ever sees a BLAKE2b-256
** hash of the token text: with 256 bits of entropy there is nothing to
** brute-force, so a fast unkeyed hash is the right tool (a password hash
** would only slow down every request).
**
** Hashing the text rather than the decoded bytes means a presented token is
** never decoded: session_valid() checks its shape (prefix, length, alphabet)
** and hashes it. The base64 here is a plain table encoder: it only ever
** encodes fresh random bytes, and a presented token's timing tells an
** attacker nothing about anybody else's.
*/
#include "anonauth_int.h"

#include <sodium.h>
#include <string.h>

static const char alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* 1 for the 64 characters of URL-safe base64. */
static const unsigned char in_alphabet[256] = {
    ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1, ['H'] = 1,
    ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1,
    ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1,
    ['Y'] = 1, ['Z'] = 1, ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1,
    ['g'] = 1, ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1,
    ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1,
    ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1, ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1,
    ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1, ['8'] = 1, ['9'] = 1, ['-'] = 1, ['_'] = 1,
};

/* 32 bytes -> 43 characters (the last one carries 4 bits). */
static void encode(const unsigned char raw[AA_TOKEN_RAW_BYTES], char *out) {
  int o = 0, i = 0;
  for (; i + 3 <= AA_TOKEN_RAW_BYTES; i += 3) {
    unsigned v = (unsigned)raw[i] << 16 | (unsigned)raw[i + 1] << 8 | raw[i + 2];
    out[o++] = alphabet[(v >> 18) & 63];
    out[o++] = alphabet[(v >> 12) & 63];
    out[o++] = alphabet[(v >> 6) & 63];
    out[o++] = alphabet[v & 63];
  }
  {
    unsigned v = (unsigned)raw[i] << 16 | (unsigned)raw[i + 1] << 8; /* 2 bytes left */
    out[o++] = alphabet[(v >> 18) & 63];
    out[o++] = alphabet[(v >> 12) & 63];
    out[o++] = alphabet[(v >> 6) & 63];
  }
}

static void hash_text(const char *text, unsigned char hash[AA_TOKEN_HASH_BYTES]) {
  crypto_generichash(hash, AA_TOKEN_HASH_BYTES, (const unsigned char *)text, AA_TOKEN_TEXT_LEN,
                     NULL, 0);
}

void aa_token_new(aa_token *t) {
  unsigned char raw[AA_TOKEN_RAW_BYTES];
  randombytes_buf(raw, sizeof(raw));
  memcpy(t->text, AA_TOKEN_PREFIX, AA_TOKEN_PREFIX_LEN);
  encode(raw, t->text + AA_TOKEN_PREFIX_LEN);
  t->text[AA_TOKEN_TEXT_LEN] = 0;
  hash_text(t->text, t->hash);
  sodium_memzero(raw, sizeof(raw));
}

int aa_token_hash_value(sqlite3_value *v, unsigned char hash[AA_TOKEN_HASH_BYTES]) {
  const unsigned char *text;
  if (sqlite3_value_type(v) != SQLITE_TEXT) return SQLITE_MISMATCH;
  if (sqlite3_value_bytes(v) != (int)AA_TOKEN_TEXT_LEN) return SQLITE_MISMATCH;
  text = sqlite3_value_text(v);
  if (text == NULL || memcmp(text, AA_TOKEN_PREFIX, AA_TOKEN_PREFIX_LEN) != 0)
    return SQLITE_MISMATCH;
  for (size_t i = AA_TOKEN_PREFIX_LEN; i < AA_TOKEN_TEXT_LEN; i++) {
    if (!in_alphabet[text[i]]) return SQLITE_MISMATCH;
  }
  hash_text((const char *)text, hash);
  return SQLITE_OK;
}

void aa_token_wipe(aa_token *t) { sodium_memzero(t, sizeof(*t)); }
