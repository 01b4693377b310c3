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
**
** It also owns the names of anonauth's eponymous virtual tables: a table or
** view of that name in any schema takes precedence over them, silently (see
** aa_schema_names_check).
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
  int rc = aa_schema_names_check(c);
  if (rc != SQLITE_OK) return rc;
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
  /* Read-only: the file (mode=ro) or the connection (PRAGMA query_only). */
  if (rc != SQLITE_OK &&
      (sqlite3_db_readonly(c->db, "main") == 1 || (rc & 0xff) == SQLITE_READONLY)) {
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

/* Step 6 only drops two indexes that nothing needs any more. SQLite
** refuses DROP INDEX (SQLITE_LOCKED) while another statement reads the
** database, and by then it has changed the schema, so that even rolling
** the step back aborts the caller's statement. It runs only where no
** statement can be reading: no transaction open at all when the call began
** (a bare call in autocommit mode, or the first statement after BEGIN).
** Elsewhere a database that has the indexes stays at version 5, which this
** code reads and writes the same, until such a call. */
#define STEP_DROPS_ONLY 6

/* Whether step 6 has anything to drop: a database that steps 1 and 3 made
** since they stopped creating the two indexes has not, and reaches version
** 6 at once wherever it is created. An error reads as "yes": wait. */
static int has_dropped_indexes(aa_conn *c) {
  sqlite3_stmt *st = NULL;
  int found = 1;
  if (sqlite3_prepare_v2(c->db,
                         "SELECT count(*) FROM main.sqlite_master WHERE type = 'index' AND name IN "
                         "('anonauth_audit_by_at', 'anonauth_sessions_by_last_seen')",
                         -1, &st, NULL) == SQLITE_OK &&
      sqlite3_step(st) == SQLITE_ROW)
    found = sqlite3_column_int(st, 0) > 0;
  sqlite3_finalize(st);
  return found;
}

static int apply_steps(aa_conn *c, int may_drop) {
  int version;
  int rc = read_version(c, &version);
  if (rc != SQLITE_OK) return rc;
  if (version > AA_SCHEMA_VERSION) return too_new(c, version);
  if (version < 0) return aa_err(c, SQLITE_CORRUPT, AA_E_STORAGE, "invalid schema version");
  for (int step = version + 1; step <= AA_SCHEMA_VERSION; step++) {
    char *err = NULL;
    if (step == STEP_DROPS_ONLY && !may_drop && has_dropped_indexes(c)) return SQLITE_OK;
    rc = sqlite3_exec(c->db, aa_schema_steps[step - 1], NULL, NULL, &err);
    if (rc != SQLITE_OK) {
      /* A stale snapshot is told apart from a lock (see atomic.c). */
      if (sqlite3_extended_errcode(c->db) == SQLITE_BUSY_SNAPSHOT) rc = SQLITE_BUSY_SNAPSHOT;
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

/* The first statement of step 1 (CREATE TABLE IF NOT EXISTS anonauth_meta)
** is compiled as a write when the table is missing, so running it alone
** takes the write lock, through the busy handler, before anything is read.
** aa_schema_ensure() then creates the rest under that lock; steps are safe
** to run twice. With anonauth_meta there it only reads. */
int aa_schema_begin_create(aa_conn *c) {
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(c->db, aa_schema_steps[0], -1, &st, NULL);
  if (rc != SQLITE_OK) return aa_err_storage(c, rc);
  rc = sqlite3_step(st);
  rc = rc == SQLITE_DONE ? SQLITE_OK : aa_err_storage(c, rc);
  sqlite3_finalize(st);
  return rc;
}

int aa_schema_ensure(aa_conn *c) {
  return aa_schema_ensure_began(c, sqlite3_txn_state(c->db, NULL) == SQLITE_TXN_NONE);
}

int aa_schema_ensure_began(aa_conn *c, int began_idle) {
  int version, may_drop;
  int rc = aa_schema_names_check(c);
  if (rc != SQLITE_OK) return rc;
  if (c->schema_ready) return SQLITE_OK;
  rc = read_version(c, &version);
  if (rc != SQLITE_OK) return rc;
  if (version == AA_SCHEMA_VERSION) {
    mark_ready(c);
    return SQLITE_OK;
  }
  if (version > AA_SCHEMA_VERSION) return too_new(c, version);

  /* No transaction at all when the call began (aa_atomic_begin() may have
  ** taken the write lock since): no statement of the caller's is reading. */
  may_drop = began_idle;
  if (aa_caller_is_writing(c)) {
    /* Inside the caller's writing statement neither BEGIN nor SAVEPOINT is
    ** allowed; the steps join it and are safe to repeat if it fails. */
    rc = apply_steps(c, may_drop);
  } else if (sqlite3_get_autocommit(c->db)) {
    rc = sqlite3_exec(c->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    if (rc != SQLITE_OK) return aa_err_storage(c, rc);
    rc = apply_steps(c, may_drop);
    if (rc == SQLITE_OK) {
      rc = sqlite3_exec(c->db, "COMMIT", NULL, NULL, NULL);
      if (rc != SQLITE_OK) rc = aa_err_storage(c, rc);
    }
    if (rc != SQLITE_OK && !sqlite3_get_autocommit(c->db))
      sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
  } else {
    rc = sqlite3_exec(c->db, "SAVEPOINT anonauth_schema", NULL, NULL, NULL);
    if (rc != SQLITE_OK) return aa_err_storage(c, rc);
    rc = apply_steps(c, may_drop);
    if (rc != SQLITE_OK)
      sqlite3_exec(c->db, "ROLLBACK TO anonauth_schema", NULL, NULL, NULL);
    sqlite3_exec(c->db, "RELEASE anonauth_schema", NULL, NULL, NULL);
  }
  if (rc == SQLITE_OK) mark_ready(c);
  return rc;
}

/* ---- names that hide the virtual tables --------------------------------- */

/* Each probe names one virtual table the way an operator's SQL would. */
static const struct {
  const char *name;
  const char *probe;
} own_names[] = {
    {"anon_users", "SELECT 1 FROM anon_users"},
    {"anon_sessions", "SELECT 1 FROM anon_sessions"},
    {"anon_accounts", "SELECT 1 FROM anon_accounts"},
    {"anonauth_connection", "SELECT 1 FROM anonauth_connection"},
};

/* PRAGMA temp_store closes the temp database, and SQLite 3.40 then runs a
** statement prepared against it with no btree at all (a NULL dereference
** in sqlite3BtreeGetMeta). A closed temp database holds nothing (its schema
** went with it): statements on temp run only while it is open. */
static int temp_is_open(aa_conn *c) {
  unsigned v = 0;
  return sqlite3_file_control(c->db, "temp", SQLITE_FCNTL_DATA_VERSION, &v) == SQLITE_OK;
}

static const char SQL_MAIN_COOKIE[] = "PRAGMA main.schema_version";
static const char SQL_TEMP_COOKIE[] = "PRAGMA temp.schema_version";
/* Reading main's schema table checks this connection's copy of the schema
** against the file, and reloads it when another connection changed it;
** preparing does not, and a probe must see the schema as it is now. */
static const char SQL_SCHEMA_CURRENT[] = "SELECT 1 FROM main.sqlite_master LIMIT 1";

void aa_schema_name_reached(aa_conn *c, const char *name) {
  if (c->name_probe != NULL && sqlite3_stricmp(c->name_probe, name) == 0)
    c->name_probe_hit = 1;
}

int aa_schema_name_hidden(aa_conn *c, const char *name) {
  /* Which object it is, where pragma_table_list exists (SQLite 3.37): the
  ** first one in the order SQLite resolves a bare name (temp, main, then
  ** the attached databases). */
  static const char sql[] =
      "SELECT t.type, t.name, t.schema FROM pragma_table_list AS t "
      "JOIN pragma_database_list AS d ON d.name = t.schema "
      "WHERE t.name = ?1 COLLATE NOCASE "
      "ORDER BY d.name <> 'temp', d.seq LIMIT 1";
  sqlite3_stmt *st = NULL;
  int rc;
  if (sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) == SQLITE_OK) {
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW) {
      const char *type = (const char *)sqlite3_column_text(st, 0);
      const char *found = (const char *)sqlite3_column_text(st, 1);
      const char *schema = (const char *)sqlite3_column_text(st, 2);
      if (type != NULL && found != NULL && schema != NULL) {
        rc = aa_err(c, SQLITE_ERROR, AA_E_STORAGE,
                    "a %s named %s (in %s) hides anonauth's virtual table %s: "
                    "rename or drop it",
                    strcmp(type, "view") == 0      ? "view"
                    : strcmp(type, "virtual") == 0 ? "virtual table"
                                                   : "table",
                    found, schema, name);
        sqlite3_finalize(st);
        return rc;
      }
    }
  }
  sqlite3_finalize(st);
  return aa_err(c, SQLITE_ERROR, AA_E_STORAGE,
                "a table or view named %s hides anonauth's virtual table %s: "
                "rename or drop it",
                name, name);
}

static int read_cookie(aa_conn *c, const char *sql, int64_t *out) {
  sqlite3_stmt *st;
  int rc = aa_stmt_get(c, sql, &st);
  if (rc != SQLITE_OK) return rc;
  rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    *out = sqlite3_column_int64(st, 0);
    rc = SQLITE_OK;
  } else {
    rc = aa_err_storage(c, rc);
  }
  aa_stmt_release(st);
  return rc;
}

/* How many databases the connection has (main, temp, attached), where
** SQLite can say so without running SQL (3.39); 0 where it cannot. */
static int count_databases(aa_conn *c) {
  int n = 0;
#if SQLITE_VERSION_NUMBER >= 3039000
  if (sqlite3_libversion_number() >= 3039000)
    while (sqlite3_db_name(c->db, n) != NULL) n++;
#else
  (void)c;
#endif
  return n;
}

/* Prepares a bare reference to each name and sees whether SQLite resolved
** it to anonauth's table: this asks SQLite itself, so every kind of object
** in every schema counts, in SQLite's own order. */
static int probe_names(aa_conn *c) {
  for (size_t i = 0; i < sizeof(own_names) / sizeof(own_names[0]); i++) {
    sqlite3_stmt *st = NULL;
    int rc;
    c->name_probe = own_names[i].name;
    c->name_probe_hit = 0;
    rc = sqlite3_prepare_v2(c->db, own_names[i].probe, -1, &st, NULL);
    c->name_probe = NULL;
    sqlite3_finalize(st);
    /* A view of that name that does not prepare hides the table too. */
    if ((rc == SQLITE_OK && !c->name_probe_hit) || rc == SQLITE_ERROR)
      return aa_schema_name_hidden(c, own_names[i].name);
    if (rc != SQLITE_OK) return aa_err_storage(c, rc);
  }
  return SQLITE_OK;
}

/* Whether a trigger fires on a table that aa_atomic_direct() bodies write,
** other than anonauth's own (which fires on DELETE only): such a trigger
** could fail after a write, so those calls go back to the wrapper. Triggers
** on main's tables live in main or temp. */
static const char SQL_MAIN_TRIGGERS[] =
    "SELECT 1 FROM main.sqlite_master WHERE type = 'trigger' "
    "  AND tbl_name COLLATE NOCASE IN ('anonauth_users', 'anonauth_sessions', "
    "    'anonauth_audit', 'anonauth_rate_limits') "
    "  AND name <> 'anonauth_sessions_deleted_refresh' LIMIT 1";
static const char SQL_TEMP_TRIGGERS[] =
    "SELECT 1 FROM temp.sqlite_master WHERE type = 'trigger' "
    "  AND tbl_name COLLATE NOCASE IN ('anonauth_users', 'anonauth_sessions', "
    "    'anonauth_audit', 'anonauth_rate_limits') LIMIT 1";

static int any_row(aa_conn *c, const char *sql, int *found) {
  sqlite3_stmt *st;
  int rc = aa_stmt_get(c, sql, &st);
  if (rc != SQLITE_OK) return rc;
  rc = sqlite3_step(st);
  *found = rc == SQLITE_ROW;
  rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : aa_err_storage(c, rc);
  aa_stmt_release(st);
  return rc;
}

static int probe_triggers(aa_conn *c) {
  int in_main = 0, in_temp = 0;
  int rc = any_row(c, SQL_MAIN_TRIGGERS, &in_main);
  if (rc == SQLITE_OK && temp_is_open(c)) rc = any_row(c, SQL_TEMP_TRIGGERS, &in_temp);
  c->own_tables_triggered = in_main || in_temp;
  return rc;
}

/* The pager's data versions of main and temp: no SQL, no lock. They move
** with every change this connection commits, and with another
** connection's commit once this one has started a transaction since. */
static void data_versions(aa_conn *c, unsigned *main_dv, unsigned *temp_dv) {
  *main_dv = *temp_dv = 0;
  sqlite3_file_control(c->db, "main", SQLITE_FCNTL_DATA_VERSION, main_dv);
  sqlite3_file_control(c->db, "temp", SQLITE_FCNTL_DATA_VERSION, temp_dv);
}

void aa_schema_after_own_commit(aa_conn *c) {
  unsigned main_dv, temp_dv;
  if (!c->names_checked || c->names_in_write) return;
  data_versions(c, &main_dv, &temp_dv);
  /* One more than at the check: this connection's commit and nothing else
  ** (another connection's commit, seen when the call's transaction began,
  ** would have moved it once more). */
  if (main_dv == c->names_main_dv + 1 && temp_dv == c->names_temp_dv)
    c->names_main_dv = main_dv;
}

int aa_schema_names_check(aa_conn *c) {
  int64_t main_cookie = 0, temp_cookie = 0;
  unsigned main_dv, temp_dv;
  int n_db, in_write, rc;
  sqlite3_stmt *st;
  /* aa_atomic() checked before its body runs, and nothing the body runs
  ** changes the schema. */
  if (c->in_atomic) return SQLITE_OK;
  n_db = count_databases(c);
  in_write = sqlite3_txn_state(c->db, NULL) == SQLITE_TXN_WRITE;
  data_versions(c, &main_dv, &temp_dv);
  /* Nothing changed at all since the last check: the common case, free.
  ** Inside a write transaction the versions stand still until the commit,
  ** and only this connection can change the schema: the cookies are read
  ** at the transaction's first check, not again while it writes (a name
  ** the caller itself creates inside that transaction is found at the
  ** first check after the commit). A batch of calls in one transaction
  ** paid two statements per call for nothing else. */
  if (c->names_checked && in_write == c->names_in_write && n_db == c->names_n_db &&
      main_dv == c->names_main_dv && temp_dv == c->names_temp_dv)
    return SQLITE_OK;
  rc = read_cookie(c, SQL_MAIN_COOKIE, &main_cookie);
  if (rc == SQLITE_OK && temp_is_open(c)) rc = read_cookie(c, SQL_TEMP_COOKIE, &temp_cookie);
  if (rc != SQLITE_OK) return rc;
  data_versions(c, &main_dv, &temp_dv); /* the read may have moved them */
  /* A cookie seen inside a write transaction may be rolled back and then
  ** reached again by another change: such a result holds only until the
  ** transaction ends. */
  if (!(c->names_checked && main_cookie == c->names_main_cookie &&
        temp_cookie == c->names_temp_cookie && n_db == c->names_n_db &&
        (in_write || !c->names_in_write))) {
    c->names_checked = 0;
    rc = aa_stmt_get(c, SQL_SCHEMA_CURRENT, &st);
    if (rc != SQLITE_OK) return rc;
    rc = aa_stmt_exec(c, st);
    if (rc == SQLITE_OK) rc = probe_names(c);
    if (rc == SQLITE_OK) rc = probe_triggers(c);
    if (rc != SQLITE_OK) return rc;
  }
  c->names_checked = 1;
  c->names_main_cookie = main_cookie;
  c->names_temp_cookie = temp_cookie;
  c->names_main_dv = main_dv;
  c->names_temp_dv = temp_dv;
  c->names_n_db = n_db;
  c->names_in_write = in_write;
  return SQLITE_OK;
}
