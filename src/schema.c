/*
** schema.c — creating and migrating anonauth's tables.
**
** sql/schema.sql is the only place the schema is written. The build splits
** it at its "-- migrate N" lines into steps (build/schema_sql.h); step N
** takes a database from version N-1 to N, and the version reached is kept in
** anonauth_meta. Tables are created on first use, never at load time, so
** loading works on read-only and busy databases. Steps use IF NOT EXISTS:
** if one is interrupted inside a caller's statement and runs again, it
** finishes the job instead of failing.
**
** Only the app's own (SQLITE_DIRECTONLY) calls migrate. A function a view
** or trigger may call (user_is_anonymous) reads an older schema as it is:
** code someone else's schema can run must never write.
*/
#include "anonauth_int.h"

#include "schema_sql.h"

#include <string.h>

/* Reads the stored version: 0 when the database has no anonauth tables. */
static int read_version(aa_conn *c, int *version) {
  sqlite3_stmt *st = NULL;
  int rc;
  int has_meta = 0;
  *version = 0;
  rc = sqlite3_prepare_v2(c->db,
                          "SELECT 1 FROM main.sqlite_master "
                          "WHERE type = 'table' AND name = 'anonauth_meta'",
                          -1, &st, NULL);
  if (rc != SQLITE_OK) return aa_err_storage(c, rc);
  rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    has_meta = 1;
  } else if (rc != SQLITE_DONE) {
    rc = aa_err_storage(c, rc);
    sqlite3_finalize(st);
    return rc;
  }
  sqlite3_finalize(st);
  if (!has_meta) return SQLITE_OK;

  rc = sqlite3_prepare_v2(c->db,
                          "SELECT value FROM main.anonauth_meta "
                          "WHERE key = 'schema_version'",
                          -1, &st, NULL);
  if (rc != SQLITE_OK) return aa_err_storage(c, rc);
  rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    sqlite3_int64 v = sqlite3_column_int64(st, 0);
    if (v < 1 || v > 1000000) { /* never written by anonauth: refuse to guess */
      sqlite3_finalize(st);
      return aa_err(c, SQLITE_CORRUPT, AA_E_STORAGE,
                    "anonauth_meta holds an invalid schema_version");
    }
    *version = (int)v;
    rc = SQLITE_OK;
  } else if (rc == SQLITE_DONE) {
    rc = SQLITE_OK;
  } else {
    rc = aa_err_storage(c, rc);
  }
  sqlite3_finalize(st);
  return rc;
}

/* The schema is there: remember it only once it is committed. Tables that
** this connection's open transaction created (or that are read through a
** transaction that has written) would go with a ROLLBACK, and a cached
** "ready" would then send every later call to missing tables; such a
** transaction checks again on each call, which costs one read. */
static void mark_ready(aa_conn *c) {
  c->schema_ready = sqlite3_txn_state(c->db, "main") != SQLITE_TXN_WRITE;
}

static int too_new(aa_conn *c, int version) {
  return aa_err(c, SQLITE_ERROR, AA_E_STORAGE,
                "this database's anonauth schema is version %d, newer than "
                "this build of anonauth (version %d)",
                version, AA_SCHEMA_VERSION);
}

static int check(aa_conn *c, int may_upgrade) {
  int version;
  int rc;
  if (c->schema_ready) return SQLITE_OK;
  rc = read_version(c, &version);
  if (rc != SQLITE_OK) return rc;
  if (version == AA_SCHEMA_VERSION) {
    mark_ready(c);
    return SQLITE_OK;
  }
  if (version > AA_SCHEMA_VERSION) return too_new(c, version);
  if (version == 0) return SQLITE_NOTFOUND;
  /* An older schema: bring it up to date if this call may write and this
  ** connection may; if not, read what is there. A replicated node writes
  ** only inside the caller's transaction (a migration committed on its own
  ** would reach this node only). */
  if (!may_upgrade || !aa_replicated_may_write_quietly(c)) return SQLITE_OK;
  rc = aa_schema_ensure(c);
  if (rc != SQLITE_OK && sqlite3_db_readonly(c->db, "main") == 1) {
    aa_err_clear(c);
    return SQLITE_OK;
  }
  return rc;
}

int aa_schema_check(aa_conn *c) { return check(c, 1); }

int aa_schema_check_no_upgrade(aa_conn *c) { return check(c, 0); }

static int set_version(aa_conn *c, int version) {
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(c->db,
                              "INSERT INTO main.anonauth_meta(key, value) "
                              "VALUES('schema_version', ?1) ON CONFLICT(key) "
                              "DO UPDATE SET value = excluded.value",
                              -1, &st, NULL);
  if (rc != SQLITE_OK) return aa_err_storage(c, rc);
  sqlite3_bind_int(st, 1, version);
  rc = sqlite3_step(st);
  rc = rc == SQLITE_DONE ? SQLITE_OK : aa_err_storage(c, rc);
  sqlite3_finalize(st);
  return rc;
}

static int apply_steps(aa_conn *c) {
  int version;
  int rc = read_version(c, &version);
  if (rc != SQLITE_OK) return rc;
  if (version > AA_SCHEMA_VERSION) return too_new(c, version);
  if (version < 0) return aa_err(c, SQLITE_CORRUPT, AA_E_STORAGE, "invalid schema version");
  for (int step = version + 1; step <= AA_SCHEMA_VERSION; step++) {
    char *err = NULL;
    rc = sqlite3_exec(c->db, aa_schema_steps[step - 1], NULL, NULL, &err);
    if (rc != SQLITE_OK) {
      aa_err(c, rc, AA_E_STORAGE, "creating anonauth's tables: %s",
             err ? err : sqlite3_errstr(rc));
      sqlite3_free(err);
      return rc;
    }
    rc = set_version(c, step);
    if (rc != SQLITE_OK) return rc;
  }
  return SQLITE_OK;
}

int aa_schema_ensure(aa_conn *c) {
  int version;
  int rc;
  if (c->schema_ready) return SQLITE_OK;
  rc = read_version(c, &version);
  if (rc != SQLITE_OK) return rc;
  if (version == AA_SCHEMA_VERSION) {
    mark_ready(c);
    return SQLITE_OK;
  }
  if (version > AA_SCHEMA_VERSION) return too_new(c, version);

  if (aa_caller_is_writing(c)) {
    /* Inside the caller's writing statement neither BEGIN nor SAVEPOINT is
    ** allowed; the steps join it and are safe to repeat if it fails. */
    rc = apply_steps(c);
  } else if (sqlite3_get_autocommit(c->db)) {
    rc = sqlite3_exec(c->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    if (rc != SQLITE_OK) return aa_err_storage(c, rc);
    rc = apply_steps(c);
    if (rc == SQLITE_OK) {
      rc = sqlite3_exec(c->db, "COMMIT", NULL, NULL, NULL);
      if (rc != SQLITE_OK) rc = aa_err_storage(c, rc);
    }
    if (rc != SQLITE_OK && !sqlite3_get_autocommit(c->db))
      sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
  } else {
    rc = sqlite3_exec(c->db, "SAVEPOINT anonauth_schema", NULL, NULL, NULL);
    if (rc != SQLITE_OK) return aa_err_storage(c, rc);
    rc = apply_steps(c);
    if (rc != SQLITE_OK)
      sqlite3_exec(c->db, "ROLLBACK TO anonauth_schema", NULL, NULL, NULL);
    sqlite3_exec(c->db, "RELEASE anonauth_schema", NULL, NULL, NULL);
  }
  if (rc == SQLITE_OK) mark_ready(c);
  return rc;
}
