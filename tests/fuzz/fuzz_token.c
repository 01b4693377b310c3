/*
** libFuzzer harness for the session-token parser (src/token.c): whatever a
** caller presents as a token, aa_token_hash_value() must accept exactly the
** texts of the form anonauth_sess_ + 43 characters of URL-safe base64 and
** hash those with BLAKE2b-256 of the text, refuse everything else with
** SQLITE_MISMATCH, and never read past the value.
**
** The input reaches the parser as a real SQLite value, as text and as a
** blob (a blob must never be taken for a token). The expected answer is
** computed here independently, from the rule as the README states it.
*/
#include "anonauth_int.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

static sqlite3 *db;
static sqlite3_stmt *as_text, *as_blob;

static int b64url(unsigned char ch) {
  return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
         ch == '-' || ch == '_';
}

static int well_formed(const uint8_t *data, size_t size) {
  if (size != AA_TOKEN_TEXT_LEN) return 0;
  if (memcmp(data, AA_TOKEN_PREFIX, AA_TOKEN_PREFIX_LEN) != 0) return 0;
  for (size_t i = AA_TOKEN_PREFIX_LEN; i < size; i++) {
    if (!b64url(data[i])) return 0;
  }
  return 1;
}

static void check_one(sqlite3_stmt *st, const uint8_t *data, size_t size, int is_text) {
  unsigned char got[AA_TOKEN_HASH_BYTES], want[AA_TOKEN_HASH_BYTES];
  int rc;
  if (sqlite3_step(st) != SQLITE_ROW) abort();
  rc = aa_token_hash_value(sqlite3_column_value(st, 0), got);
  if (is_text && well_formed(data, size)) {
    if (rc != SQLITE_OK) abort();
    crypto_generichash(want, sizeof want, data, size, NULL, 0);
    if (memcmp(got, want, sizeof want) != 0) abort();
  } else if (rc != SQLITE_MISMATCH) {
    abort();
  }
  sqlite3_reset(st);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (db == NULL) {
    aa_token t;
    unsigned char h[AA_TOKEN_HASH_BYTES];
    if (sodium_init() < 0) abort();
    if (sqlite3_open(":memory:", &db) != SQLITE_OK) abort();
    if (sqlite3_prepare_v2(db, "SELECT ?1", -1, &as_text, NULL) != SQLITE_OK) abort();
    if (sqlite3_prepare_v2(db, "SELECT ?1", -1, &as_blob, NULL) != SQLITE_OK) abort();
    /* A fresh token must parse and hash to what aa_token_new() stored. */
    aa_token_new(&t);
    sqlite3_bind_text(as_text, 1, t.text, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(as_text) != SQLITE_ROW) abort();
    if (aa_token_hash_value(sqlite3_column_value(as_text, 0), h) != SQLITE_OK) abort();
    if (memcmp(h, t.hash, sizeof h) != 0) abort();
    sqlite3_reset(as_text);
    aa_token_wipe(&t);
  }
  if (size > 4096) return 0;
  sqlite3_bind_text(as_text, 1, (const char *)data, (int)size, SQLITE_TRANSIENT);
  check_one(as_text, data, size, 1);
  sqlite3_bind_blob(as_blob, 1, data, (int)size, SQLITE_TRANSIENT);
  check_one(as_blob, data, size, 0);
  return 0;
}
