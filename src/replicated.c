/*
** replicated.c — the one rule anonauth follows under a replicating engine.
**
** dqlite (Raft-replicated SQLite) replicates the pages a transaction commits,
** but only when the commit happens in a statement the client sent as an
** "exec" request: the leader then collects the new WAL frames and waits for a
** quorum before answering. A "query" request is stepped without that step.
** So a bare `SELECT anon_signin()` sent as a query commits on the leader
** alone: the client gets a token that no follower has, a leader loss forgets
** it, and dqlite 1.11 aborts the leader process at its next write (its VFS
** asserts that no unreplicated transaction is pending). A write that joins
** a transaction the client opened with BEGIN is safe whatever request type
** carries it, because the client's COMMIT (always an exec) replicates all of
** it before it returns.
**
** The engine cannot be asked which request type is running, but anonauth can
** tell whether a write of its own would commit by itself: the connection is
** in autocommit mode. So in replicated mode, set for the whole process by
** anonauth_set_replicated(1) before connections open (the cluster node does
** it), every writing call requires an open transaction and fails with
** `transaction_required` otherwise, and the best-effort session touch is
** skipped rather than committed alone. Reads are unaffected.
*/
#include "anonauth_int.h"

#include "../anonauth.h"

/* Written once at start-up, before connections open; read by aa_conn_new(). */
static int replicated_process;

void anonauth_set_replicated(int on) { replicated_process = on != 0; }

int aa_replicated_default(void) { return replicated_process; }

/* True when a write made now would become part of a transaction the caller
** commits, rather than commit on its own. */
static int inside_caller_transaction(aa_conn *c) {
  return sqlite3_get_autocommit(c->db) == 0;
}

int aa_replicated_check_write(aa_conn *c) {
  if (!c->replicated || inside_caller_transaction(c)) return SQLITE_OK;
  return aa_err(c, SQLITE_ERROR, AA_E_TRANSACTION_REQUIRED,
                "this database is replicated: call anonauth functions that write "
                "inside BEGIN ... COMMIT (outside a transaction the write would "
                "commit on this node only and be lost)");
}

int aa_replicated_may_write_quietly(aa_conn *c) {
  return !c->replicated || inside_caller_transaction(c);
}

void aa_fn_replicated(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  aa_conn *c = sqlite3_user_data(ctx);
  (void)argc;
  (void)argv;
  sqlite3_result_int(ctx, c->replicated);
}
