/*
** harness.h — opening connections with the extension for the C tests.
*/
#ifndef ANONAUTH_HARNESS_H
#define ANONAUTH_HARNESS_H

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"

/* The extension under test, from ANONAUTH_SO (without the .so suffix). */
static inline const char *harness_so(void) {
  const char *so = getenv("ANONAUTH_SO");
  return so ? so : "./anonauth";
}

/* A scratch path for this test: $ANONAUTH_TEST_TMP/<name>.<pid>.db */
static inline void harness_path(char *buf, size_t cap, const char *name) {
  const char *dir = getenv("ANONAUTH_TEST_TMP");
  snprintf(buf, cap, "%s/%s.%d.db", dir ? dir : "/tmp", name, (int)getpid());
}

static inline void harness_remove(const char *path) {
  char aux[600];
  unlink(path);
  snprintf(aux, sizeof aux, "%s-wal", path);
  unlink(aux);
  snprintf(aux, sizeof aux, "%s-shm", path);
  unlink(aux);
}

/* Opens path with the extension loaded; NULL (and a message) on failure. */
static inline sqlite3 *harness_open(const char *path) {
  sqlite3 *db = NULL;
  char *err = NULL;
  if (sqlite3_open(path, &db) != SQLITE_OK) {
    fprintf(stderr, "open %s: %s\n", path, sqlite3_errmsg(db));
    sqlite3_close(db);
    return NULL;
  }
  sqlite3_enable_load_extension(db, 1);
  if (sqlite3_load_extension(db, harness_so(), NULL, &err) != SQLITE_OK) {
    fprintf(stderr, "load %s: %s\n", harness_so(), err ? err : "?");
    sqlite3_free(err);
    sqlite3_close(db);
    return NULL;
  }
  return db;
}

/* Runs SQL that returns one row and one column; the text goes into out. */
static inline int harness_text(sqlite3 *db, const char *sql, char *out, size_t cap) {
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
  if (rc == SQLITE_OK) rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    const unsigned char *t = sqlite3_column_text(st, 0);
    snprintf(out, cap, "%s", t ? (const char *)t : "");
    rc = SQLITE_OK;
  }
  sqlite3_finalize(st);
  return rc;
}

static inline long long harness_int(sqlite3 *db, const char *sql) {
  sqlite3_stmt *st = NULL;
  long long v = -1;
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
    v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return v;
}

/* session_valid() of a token held in memory, bound as a parameter. */
static inline int harness_valid(sqlite3 *db, const char *token) {
  sqlite3_stmt *st = NULL;
  int v = -1;
  if (sqlite3_prepare_v2(db, "SELECT session_valid(?1)", -1, &st, NULL) == SQLITE_OK) {
    sqlite3_bind_text(st, 1, token, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int(st, 0);
  }
  sqlite3_finalize(st);
  return v;
}

#endif
