/*
** appsql.c — the rules for the app's own SQL (link.merge_sql,
** purge.user_sql): checked when anonauth_config() sets it, and again just
** before it runs.
**
** Security-critical: this SQL runs inside anonauth's atomic call, in the
** caller's transaction, with anonauth's tables at hand. config.c says which
** keys hold SQL and which named parameters each may use; this file decides
** whether a text is acceptable SQL for such a key.
*/
#include "anonauth_int.h"

#include <string.h>

/*
** The app's SQL runs inside our atomic statement, in the caller's
** transaction: it may change rows, nothing else. Transaction control
** (BEGIN, COMMIT, ROLLBACK, SAVEPOINT, RELEASE), ATTACH, DETACH and the
** pragmas that only set connection state count as read-only to SQLite, so
** "must write" keeps them out (aa_appsql_check). What writes without changing rows
** is found in the statement's own bytecode, read through EXPLAIN: SQLite has
** no tokenizer for extensions, and the authorizer cannot be borrowed (there
** is no way to read back and restore one the app installed). Refused:
**   - a conflict that would roll back the caller's whole transaction:
**     OR ROLLBACK (Halt/HaltIfNull with OE_Rollback), also from a trigger
**     that exists now (EXPLAIN lists trigger programs too). A trigger added
**     later is caught when it fires: the call fails with merge_failed or
**     purge_failed and says the transaction was rolled back;
**   - schema and file changes: CREATE/DROP/ALTER, VACUUM, ANALYZE, and
**     writing pragmas (user_version, journal_mode, wal_checkpoint,
**     incremental_vacuum ...).
** OR FAIL and OR ABORT end only their statement; the atomic call around the
** app's SQL undoes their writes, so they are allowed.
*/
#define OE_ROLLBACK 1 /* SQLite's OE_Rollback, the P2 of Halt and HaltIfNull */

static const char *const not_row_changes[] = {
    "Vacuum",     "SetCookie",    "JournalMode", "Checkpoint",  "IncrVacuum",
    "ParseSchema", "CreateBtree", "Destroy",     "DropTable",   "DropIndex",
    "DropTrigger", "LoadAnalysis", "VCreate",    "VDestroy",    "Expire",
    "RenameTable", NULL};

/* NULL when st only changes rows; otherwise why not. */
static const char *bytecode_problem(aa_conn *c, sqlite3_stmt *st, int *rc_out) {
  /* The text of one statement that already prepared on its own: with
  ** EXPLAIN before it, it is still exactly that one statement. */
  char *sql = sqlite3_mprintf("EXPLAIN %s", sqlite3_sql(st));
  sqlite3_stmt *ex = NULL;
  const char *why = NULL;
  int rc;
  *rc_out = SQLITE_OK;
  if (sql == NULL) {
    *rc_out = SQLITE_NOMEM;
    return NULL;
  }
  rc = sqlite3_prepare_v2(c->db, sql, -1, &ex, NULL);
  sqlite3_free(sql);
  if (rc != SQLITE_OK || ex == NULL) {
    sqlite3_finalize(ex);
    return "cannot be explained";
  }
  while (why == NULL && (rc = sqlite3_step(ex)) == SQLITE_ROW) {
    const char *op = (const char *)sqlite3_column_text(ex, 1);
    if (op == NULL) continue;
    if ((strcmp(op, "Halt") == 0 || strcmp(op, "HaltIfNull") == 0) &&
        sqlite3_column_int(ex, 3) == OE_ROLLBACK)
      why = "would roll back the caller's whole transaction on a conflict (OR ROLLBACK, or "
            "RAISE(ROLLBACK) in a trigger it fires); use OR ABORT, the default";
    for (int i = 0; why == NULL && not_row_changes[i]; i++) {
      if (strcmp(op, not_row_changes[i]) == 0)
        why = "changes the schema, a setting or the file, not rows (CREATE, DROP, ALTER, "
              "VACUUM, ANALYZE, PRAGMA are not allowed)";
    }
  }
  if (why == NULL && rc != SQLITE_DONE) {
    *rc_out = rc;
    why = "cannot be explained";
  }
  sqlite3_finalize(ex);
  return why;
}

/* Every statement must prepare, write something, change only rows, and use
** only the allowed named parameters. */
int aa_appsql_check(aa_conn *c, const char *name, const char *const *params,
                    const char *sql, int n) {
  const char *tail = sql;
  const char *end = sql + n;
  int statements = 0;
  while (tail < end) {
    sqlite3_stmt *st = NULL;
    const char *next = NULL;
    int rc;
    if (aa_sql_next_is_pragma(tail, (int)(end - tail)))
      return aa_err(c, SQLITE_ERROR, AA_E_INVALID_ARGUMENT,
                    "%s: statement %d is a PRAGMA or EXPLAIN, which is not allowed "
                    "(it would take effect while being checked)",
                    name, statements + 1);
    rc = sqlite3_prepare_v2(c->db, tail, (int)(end - tail), &st, &next);
    if (rc != SQLITE_OK)
      return aa_err(c, SQLITE_ERROR, AA_E_INVALID_ARGUMENT,
                    "%s does not prepare: %s", name, sqlite3_errmsg(c->db));
    if (st == NULL) break; /* only whitespace or comments left */
    statements++;
    if (sqlite3_stmt_readonly(st)) {
      sqlite3_finalize(st);
      return aa_err(c, SQLITE_ERROR, AA_E_INVALID_ARGUMENT,
                    "%s: statement %d does not write (only INSERT, UPDATE, "
                    "DELETE and the like are allowed)",
                    name, statements);
    }
    {
      int xrc;
      const char *why = bytecode_problem(c, st, &xrc);
      if (why != NULL || xrc != SQLITE_OK) {
        sqlite3_finalize(st);
        if (xrc == SQLITE_NOMEM) return aa_err_nomem(c);
        return aa_err(c, SQLITE_ERROR, AA_E_INVALID_ARGUMENT, "%s: statement %d %s", name,
                      statements, why);
      }
    }
    for (int p = 1; p <= sqlite3_bind_parameter_count(st); p++) {
      const char *pname = sqlite3_bind_parameter_name(st, p);
      int ok = 0;
      for (int a = 0; pname && params[a]; a++) {
        if (strcmp(pname, params[a]) == 0) ok = 1;
      }
      if (!ok) {
        sqlite3_finalize(st);
        return aa_err(c, SQLITE_ERROR, AA_E_INVALID_ARGUMENT,
                      "%s may use only the parameters %s%s%s", name,
                      params[0], params[1] ? " and " : "",
                      params[1] ? params[1] : "");
      }
    }
    sqlite3_finalize(st);
    tail = next;
  }
  if (statements == 0)
    return aa_err(c, SQLITE_ERROR, AA_E_INVALID_ARGUMENT,
                  "%s holds no statement", name);
  return SQLITE_OK;
}

/*
** The app's SQL as it is about to run (merge.c, purge.c, through
** aa_config_check_app_sql), held to the rules the setter applies. A row
** written around anonauth_config() (a database someone else wrote, a value
** kept from an older release) reaches the cache with only the cheap checks of
** loading, since SQL is prepared only when it runs; without this, `PRAGMA
** trusted_schema = ON` stored as purge.user_sql would switch off the app's
** defence the first time anon_purge() ran. A refusal is recorded with `code`
** (merge_failed, purge_failed), the rule it broke kept in the message.
*/
int aa_appsql_recheck(aa_conn *c, const char *name, const char *const *params,
                      const char *sql, aa_errcode code) {
  char before[96];
  int rc = aa_appsql_check(c, name, params, sql, (int)strlen(sql));
  if (rc == SQLITE_OK) return rc;
  sqlite3_snprintf((int)sizeof(before), before, "%s is not run: ", name);
  return aa_err_reframe(c, rc, code, before, "; set it again with anonauth_config()");
}
