/*
** atomic.c — one public call, one all-or-nothing unit of writes.
**
** A SQL function that writes runs inside somebody else's statement, and the
** usual tools fail there: in autocommit mode each inner statement commits on
** its own; SAVEPOINT is refused while the caller's statement writes
** (INSERT ... SELECT f()); and inside BEGIN a failing function leaves the
** inner writes of its earlier statements behind unless the caller's statement
** happens to hold a statement journal.
**
** So every writing call runs its body from inside one statement of our own:
**
**   INSERT INTO anonauth_txn(never_written)
**     SELECT 1 WHERE anonauth_internal_atomic() = 0
**
** An INSERT ... SELECT into a NOT NULL column may abort half-way, so SQLite
** gives it a statement journal whenever a transaction is already open or
** another statement is running; in plain autocommit it is the transaction.
** The body runs inside that statement (via the trampoline function) and its
** writes join it. If the body fails the statement aborts and SQLite rolls
** back exactly what it wrote, nothing of the caller's; if it succeeds the
** statement inserts nothing and releases (or, in autocommit, commits).
** Because the statement writes, SQLite takes the write lock before the body
** reads anything, calling the busy handler if the lock is taken: the body
** never upgrades a stale snapshot (SQLITE_BUSY_SNAPSHOT) when called bare.
**
** SQLite calls the busy handler only for a transaction that holds no
** snapshot yet (sqlite3BtreeBeginTrans retries only from no transaction);
** one that has read and must now write fails at once with SQLITE_BUSY, or
** with SQLITE_BUSY_SNAPSHOT if another connection committed since. Inside
** a deferred BEGIN anything read first (the schema check, the
** configuration, a call's reads before its body) would turn the write into
** such an upgrade. So a writing call first in a deferred transaction starts
** with aa_atomic_begin(), which runs one statement that writes nothing but
** is compiled as a write (DELETE FROM anonauth_txn WHERE 0): SQLite takes
** the write lock through the busy handler, exactly as BEGIN IMMEDIATE would,
** before anything is read. A caller that read first cannot be helped: its
** call fails with a message saying to restart with BEGIN IMMEDIATE.
*/
#include "anonauth_int.h"

static const char SQL_ATOMIC[] =
    "INSERT INTO anonauth_txn(never_written) "
    "SELECT 1 WHERE anonauth_internal_atomic() = 0";

/* Writes nothing, fires nothing, but begins a write transaction. */
static const char SQL_WRITE_LOCK[] = "DELETE FROM main.anonauth_txn WHERE 0";

/* The caller's transaction had read before this call had to write, so
** SQLite could not wait for the write lock. ext is the extended code of the
** failure. (A caller's statement that reads, SELECT f() FROM t, is such a
** transaction too, even in autocommit.) */
static int write_refused(aa_conn *c, int ext) {
  aa_err_clear(c);
  if (ext == SQLITE_BUSY_SNAPSHOT)
    return aa_err(c, SQLITE_BUSY_SNAPSHOT, AA_E_STORAGE,
                  "another connection wrote since this transaction first read the database, "
                  "so it cannot write any more: roll back and restart the transaction with "
                  "BEGIN IMMEDIATE, or make the anonauth call its first statement");
  return aa_err(c, SQLITE_BUSY, AA_E_STORAGE,
                "database is locked, and a transaction that has already read the database "
                "cannot wait for the lock: roll back and restart it with BEGIN IMMEDIATE, or "
                "make the anonauth call its first statement");
}

int aa_atomic_begin(aa_conn *c) {
  sqlite3_stmt *st;
  int rc = aa_replicated_check_write(c);
  if (rc != SQLITE_OK) return rc;
  /* Only a transaction the caller opened that holds no snapshot yet: in
  ** autocommit each statement is a transaction of its own, and a snapshot
  ** already held can no longer wait (see write_refused()). */
  if (sqlite3_get_autocommit(c->db) || sqlite3_txn_state(c->db, "main") != SQLITE_TXN_NONE ||
      sqlite3_db_readonly(c->db, "main") == 1)
    return SQLITE_OK;
  if (aa_stmt_get(c, SQL_WRITE_LOCK, &st) != SQLITE_OK) {
    /* Without anonauth_txn the tables are not there yet, and creating them
    ** is this call's first write: begin with that instead. */
    if (aa_err_recorded(c, NULL) != SQLITE_ERROR) return aa_err_recorded(c, NULL);
    aa_err_clear(c);
    return aa_schema_begin_create(c);
  }
  rc = sqlite3_step(st);
  rc = rc == SQLITE_DONE ? SQLITE_OK : aa_err_storage(c, rc);
  aa_stmt_release(st);
  return rc;
}

/* What every writing call does before its body: the write lock where it can
** be waited for, the schema. *had_read: the caller's transaction holds a
** snapshot (our own reads before this point ended with their statements, or
** ran under the write lock). */
static int begin_call(aa_conn *c, int *had_read) {
  /* Before the write lock: whether any transaction was open at all. */
  int began_idle = sqlite3_txn_state(c->db, NULL) == SQLITE_TXN_NONE;
  int rc = aa_atomic_begin(c);
  if (rc != SQLITE_OK) return rc;
  *had_read = sqlite3_txn_state(c->db, "main") == SQLITE_TXN_READ;
  rc = aa_schema_ensure_began(c, began_idle);
  /* Creating the tables had to upgrade the caller's snapshot. */
  if (rc != SQLITE_OK && *had_read && (rc & 0xff) == SQLITE_BUSY)
    return write_refused(c, aa_err_recorded(c, NULL));
  return rc;
}

int aa_atomic(aa_conn *c, int (*body)(aa_conn *, void *), void *arg) {
  sqlite3_stmt *st;
  sqlite3_int64 rowid_before;
  int rc, had_read, ext;

  if (c->in_atomic)
    return aa_err(c, SQLITE_ERROR, AA_E_REENTRANT,
                  "an anonauth function was called from inside another one "
                  "on the same connection");
  rc = begin_call(c, &had_read);
  if (rc != SQLITE_OK) return rc;
  rc = aa_stmt_get(c, SQL_ATOMIC, &st);
  if (rc != SQLITE_OK) return rc;

  /* The caller's last_insert_rowid() is theirs, not ours. */
  rowid_before = sqlite3_last_insert_rowid(c->db);
  c->in_atomic = 1;
  c->atomic_body = body;
  c->atomic_arg = arg;
  c->atomic_rc = SQLITE_OK;
  rc = sqlite3_step(st);
  ext = sqlite3_extended_errcode(c->db);
  c->in_atomic = 0;
  c->atomic_body = NULL;
  c->atomic_arg = NULL;

  if (rc == SQLITE_DONE) {
    rc = SQLITE_OK;
  } else if (c->atomic_rc != SQLITE_OK) {
    rc = c->atomic_rc; /* the body's own error, already recorded */
  } else {
    /* Lock, commit or read-only failure around a body that succeeded: any
    ** error it deferred past the commit did not commit either. */
    if (aa_err_deferred(c) != SQLITE_OK) aa_err_clear(c);
    if (had_read && (rc & 0xff) == SQLITE_BUSY)
      rc = write_refused(c, ext);
    else
      rc = aa_err_storage(c, rc);
  }
  aa_stmt_release(st);
  sqlite3_set_last_insert_rowid(c->db, rowid_before);
  return rc;
}

/*
** Inside the caller's transaction, the wrapper statement above costs a
** statement journal: SQLite copies every page the call changes, once per
** call, and moves the copies to a temporary file once one call's pass
** 64 KiB. A batch of sign-ins spent most of its time there. Some bodies
** need none of it: a single-row INSERT or UPDATE that is not INSERT ...
** SELECT and fires no trigger gets no statement journal from SQLite, because
** it checks every constraint before it changes a page, so when it fails it
** has changed nothing. A body that does all its reading, checking and
** preparing first and then runs only such statements can fail after its
** first write only for reasons outside its control. SQLite answers most of
** them (I/O error, disk full, out of memory, interrupt) by rolling back the
** whole transaction itself. For the rest (a reprepare refused by an
** authorizer after a schema change, a token hash that collides) this rolls
** the caller's transaction back too: the call stays all-or-nothing, at the
** price of the caller's other work in that transaction, and says so.
**
** Used only where it pays and holds: inside a transaction (in autocommit
** the wrapper statement is the transaction and has no statement journal
** unless the caller's statement reads), with the statements already
** prepared, and no trigger of someone else's on the tables written (one
** could fail after a write; then the wrapper is used).
*/
int aa_atomic_direct(aa_conn *c, int (*body)(aa_conn *, void *), void *arg, int *prepared) {
  sqlite3_int64 rowid_before;
  int rc, had_read, changes_before;

  if (!*prepared || sqlite3_get_autocommit(c->db) || c->in_atomic) {
    rc = aa_atomic(c, body, arg);
    if (rc == SQLITE_OK) *prepared = 1;
    return rc;
  }
  rc = begin_call(c, &had_read);
  if (rc != SQLITE_OK) return rc;
  if (c->own_tables_triggered) return aa_atomic(c, body, arg);

  rowid_before = sqlite3_last_insert_rowid(c->db);
  changes_before = sqlite3_total_changes(c->db);
  c->in_atomic = 1;
  rc = body(c, arg);
  c->in_atomic = 0;
  sqlite3_set_last_insert_rowid(c->db, rowid_before);
  if (rc == SQLITE_OK) return SQLITE_OK;

  if (sqlite3_get_autocommit(c->db)) {
    /* SQLite rolled the transaction back already (I/O, full, memory). */
    return rc;
  }
  if (sqlite3_total_changes(c->db) != changes_before) {
    aa_errcode code = AA_E_STORAGE;
    aa_err_recorded(c, &code);
    sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
    return aa_err_reframe(c, rc, code, "",
                          "; part of the call had been written, so anonauth rolled back the "
                          "whole transaction");
  }
  if (had_read && (rc & 0xff) == SQLITE_BUSY) return write_refused(c, sqlite3_extended_errcode(c->db));
  return rc;
}

void aa_fn_atomic_trampoline(sqlite3_context *ctx, int argc,
                             sqlite3_value **argv) {
  aa_conn *c = sqlite3_user_data(ctx);
  int (*body)(aa_conn *, void *) = c->atomic_body;
  int rc;
  (void)argc;
  (void)argv;
  if (!c->in_atomic || body == NULL) {
    aa_err_clear(c);
    aa_result_error(ctx, c,
                    aa_err(c, SQLITE_ERROR, AA_E_INTERNAL,
                           "anonauth_internal_atomic() is not for direct use"));
    return;
  }
  c->atomic_body = NULL; /* one body per statement, even if re-evaluated */
  rc = body(c, c->atomic_arg);
  if (rc != SQLITE_OK) {
    c->atomic_rc = rc;
    aa_result_error(ctx, c, rc);
    return;
  }
  sqlite3_result_int(ctx, 1);
}

int aa_caller_is_writing(aa_conn *c) {
  sqlite3_stmt *st = NULL;
  while ((st = sqlite3_next_stmt(c->db, st)) != NULL) {
    if (sqlite3_stmt_busy(st) && !sqlite3_stmt_readonly(st)) return 1;
  }
  return 0;
}
