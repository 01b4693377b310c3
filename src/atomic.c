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
*/
#include "anonauth_int.h"

static const char SQL_ATOMIC[] =
    "INSERT INTO anonauth_txn(never_written) "
    "SELECT 1 WHERE anonauth_internal_atomic() = 0";

int aa_atomic(aa_conn *c, int (*body)(aa_conn *, void *), void *arg) {
  sqlite3_stmt *st;
  sqlite3_int64 rowid_before;
  int rc;

  if (c->in_atomic)
    return aa_err(c, SQLITE_ERROR, AA_E_REENTRANT,
                  "an anonauth function was called from inside another one "
                  "on the same connection");
  rc = aa_replicated_check_write(c);
  if (rc != SQLITE_OK) return rc;
  rc = aa_schema_ensure(c);
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
    rc = aa_err_storage(c, rc);
  }
  aa_stmt_release(st);
  sqlite3_set_last_insert_rowid(c->db, rowid_before);
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
