/*
** No token is stored anywhere: not in any cell of any table, not in the raw
** bytes of the database file or its WAL, in text or in raw form.
*/
#include "harness.h"

#include <sodium.h>

#define N 200
#define PREFIX_LEN 14
#define TOKEN_LEN 57

static unsigned char *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  unsigned char *buf;
  long n;
  *len = 0;
  if (f == NULL) return NULL;
  fseek(f, 0, SEEK_END);
  n = ftell(f);
  fseek(f, 0, SEEK_SET);
  buf = malloc((size_t)n + 1);
  if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
    free(buf);
    buf = NULL;
  }
  fclose(f);
  if (buf) *len = (size_t)n;
  return buf;
}

static int contains(const unsigned char *hay, size_t n, const void *needle, size_t m) {
  if (hay == NULL || m == 0 || n < m) return 0;
  for (size_t i = 0; i + m <= n; i++) {
    if (hay[i] == *(const unsigned char *)needle && memcmp(hay + i, needle, m) == 0) return 1;
  }
  return 0;
}

static char tokens[N][TOKEN_LEN + 1];
static unsigned char raw[N][32];

/* Every cell of every table, as text and as blob, against every token. */
static int cells_with_tokens(sqlite3 *db) {
  sqlite3_stmt *tables = NULL;
  int hits = 0;
  sqlite3_prepare_v2(db, "SELECT name FROM sqlite_master WHERE type = 'table'", -1, &tables, NULL);
  while (sqlite3_step(tables) == SQLITE_ROW) {
    char sql[300];
    sqlite3_stmt *rows = NULL;
    snprintf(sql, sizeof sql, "SELECT * FROM \"%s\"", sqlite3_column_text(tables, 0));
    if (sqlite3_prepare_v2(db, sql, -1, &rows, NULL) != SQLITE_OK) continue;
    while (sqlite3_step(rows) == SQLITE_ROW) {
      for (int col = 0; col < sqlite3_column_count(rows); col++) {
        const unsigned char *v = sqlite3_column_blob(rows, col);
        size_t n = (size_t)sqlite3_column_bytes(rows, col);
        for (int t = 0; t < N; t++) {
          hits += contains(v, n, tokens[t] + PREFIX_LEN, TOKEN_LEN - PREFIX_LEN);
          hits += contains(v, n, raw[t], 32);
        }
      }
    }
    sqlite3_finalize(rows);
  }
  sqlite3_finalize(tables);
  return hits;
}

static int file_hits(const char *path) {
  size_t n;
  unsigned char *bytes = slurp(path, &n);
  int hits = 0;
  for (int t = 0; t < N && bytes; t++) {
    hits += contains(bytes, n, tokens[t] + PREFIX_LEN, TOKEN_LEN - PREFIX_LEN);
    hits += contains(bytes, n, raw[t], 32);
  }
  free(bytes);
  return hits;
}

int main(void) {
  char path[512], wal[520];
  sqlite3 *db;
  size_t wal_len = 0;
  unsigned char *wal_bytes;
  check_label = getenv("TEST_LABEL") ? getenv("TEST_LABEL") : "c";
  if (sodium_init() < 0) return 1;
  harness_path(path, sizeof path, "at_rest");
  harness_remove(path);
  snprintf(wal, sizeof wal, "%s-wal", path);

  db = harness_open(path);
  REQUIRE(db != NULL, "opens the database");
  sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0", NULL, NULL, NULL);
  /* N sign-ins from one address are past the per-IP limit, which is not
  ** what this test is about. */
  sqlite3_exec(db, "SELECT anonauth_config('ratelimit.anon_per_hour', 0)", NULL, NULL, NULL);
  for (int i = 0; i < N; i++) {
    size_t raw_len = 0;
    REQUIRE(harness_text(db,
                         "SELECT anon_signin('{\"ip\":\"198.51.100.7\",\"user_agent\":\"t\"}')",
                         tokens[i], sizeof tokens[i]) == SQLITE_OK &&
                strlen(tokens[i]) == TOKEN_LEN,
            "sign-in %d returns a token", i);
    sodium_base642bin(raw[i], 32, tokens[i] + PREFIX_LEN, TOKEN_LEN - PREFIX_LEN, NULL, &raw_len,
                      NULL, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    check_passed--; /* count the loop as the one check below */
  }
  CHECK(1, "%d sign-ins returned tokens", N);
  /* session checks and sign-outs write too: they must not leak either */
  for (int i = 0; i < N; i += 2) harness_valid(db, tokens[i]);
  {
    sqlite3_stmt *st = NULL;
    sqlite3_prepare_v2(db, "SELECT anon_signout(?1)", -1, &st, NULL);
    for (int i = 1; i < N; i += 4) {
      sqlite3_bind_text(st, 1, tokens[i], -1, SQLITE_STATIC);
      sqlite3_step(st);
      sqlite3_reset(st);
    }
    sqlite3_finalize(st);
  }

  wal_bytes = slurp(wal, &wal_len);
  CHECK(wal_bytes != NULL && wal_len > 0, "the WAL file holds the writes (%zu bytes)", wal_len);
  free(wal_bytes);
  CHECK(cells_with_tokens(db) == 0, "no cell of any table holds a token, text or raw");
  CHECK(file_hits(wal) == 0, "the WAL file's bytes hold no token");
  CHECK(file_hits(path) == 0, "the database file's bytes hold no token (before checkpoint)");
  sqlite3_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL);
  CHECK(file_hits(path) == 0, "the database file's bytes hold no token (after checkpoint)");
  CHECK(harness_valid(db, tokens[0]) == 1, "and the tokens still work");
  sqlite3_close(db);
  harness_remove(path);
  return check_done();
}
