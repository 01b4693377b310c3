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
**     later is seen by the check before each run (aa_appsql_recheck); should
**     one still fire, the call fails with merge_failed or purge_failed and
**     says the transaction was rolled back;
**   - schema and file changes: CREATE/DROP/ALTER, VACUUM, ANALYZE, and
**     writing pragmas (user_version, journal_mode, wal_checkpoint,
**     incremental_vacuum ...).
** OR FAIL and OR ABORT end only their statement; the atomic call around the
** app's SQL undoes their writes, so they are allowed.
**
** What the SQL calls is held to the same standard, because the text may come
** from whoever wrote the database file, and SQL prepared by an extension is
** top-level SQL to SQLite: trusted_schema and SQLITE_DIRECTONLY, which keep
** triggers and views away from dangerous functions, do not apply to it.
** Without this rule, a stored purge.user_sql could call load_extension(),
** any anonauth function (anonauth_set_clock, session_revoke_all ...) or the
** app's own functions, or copy the direct-only virtual tables (everybody's
** sessions) into a table its author reads later. So the program, trigger
** programs included, may only
**   - call functions named in app_sql_functions below (every opcode that
**     calls one, Function, PureFunc, AggStep, AggValue, AggInverse,
**     AggFinal, names it in P4 as "name(nargs)");
**   - use no virtual table at all (VOpen, VFilter, VColumn, VNext, VUpdate,
**     VBegin ...: every opcode that touches one starts with V and a capital);
**   - keep off anonauth's own tables (main.anonauth_*, found by root page):
**     nothing written there (OpenWrite, Clear), nothing read but
**     anonauth_users, and of that only whether a row exists (a foreign key
**     from an app table to anonauth_users(id) must keep working), not its
**     columns (Column, RowData on its cursors). Otherwise stored SQL could
**     overwrite password hashes or plant sessions for accounts created
**     later, or copy token hashes, secrets or profiles to where its author
**     reads them.
*/
#define OE_ROLLBACK 1 /* SQLite's OE_Rollback, the P2 of Halt and HaltIfNull */

static const char *const not_row_changes[] = {
    "Vacuum",     "SetCookie",    "JournalMode", "Checkpoint",  "IncrVacuum",
    "ParseSchema", "CreateBtree", "Destroy",     "DropTable",   "DropIndex",
    "DropTrigger", "LoadAnalysis", "VCreate",    "VDestroy",    "Expire",
    "RenameTable", NULL};

/*
** The functions app SQL may call: SQLite's built-in functions that compute
** their result from their arguments alone (SQLITE_DETERMINISTIC in SQLite's
** own func.c, json.c, window.c and the optional math functions), and the
** date and time functions, whose only other input is the wall clock ('now',
** current_timestamp), which is no secret and changes nothing. Left out on
** purpose: whatever reads or changes state outside the statement's own rows
** (load_extension, random, randomblob, changes, total_changes,
** last_insert_rowid, sqlite_version, sqlite_compileoption_*, sqlite_attach,
** fts3_tokenizer ...), and every function an extension or the app
** registers, anonauth's own included. Names that this SQLite lacks are
** harmless here: they never appear in a program. A name the app has
** registered its own function under (overriding the built-in) is the app's
** own choice, made in its own process; a database file cannot do that.
*/
static const char *const app_sql_functions[] = {
    /* core scalar */
    "abs", "char", "coalesce", "concat", "concat_ws", "format", "glob", "hex", "if", "ifnull",
    "iif", "instr", "length", "like", "likelihood", "likely", "lower", "ltrim", "max", "min",
    "nullif", "octet_length", "printf", "quote", "replace", "round", "rtrim", "sign", "soundex",
    "substr", "substring", "trim", "typeof", "unhex", "unicode", "unistr", "unlikely", "upper",
    "zeroblob",
    /* core aggregate */
    "avg", "count", "group_concat", "string_agg", "sum", "total",
    /* window */
    "row_number", "rank", "dense_rank", "percent_rank", "cume_dist", "ntile", "lag", "lead",
    "first_value", "last_value", "nth_value",
    /* date and time */
    "date", "time", "datetime", "julianday", "unixepoch", "strftime", "timediff",
    "current_date", "current_time", "current_timestamp",
    /* JSON */
    "json", "jsonb", "json_array", "jsonb_array", "json_array_length", "json_error_position",
    "json_extract", "jsonb_extract", "json_insert", "jsonb_insert", "json_object",
    "jsonb_object", "json_patch", "jsonb_patch", "json_pretty", "json_quote", "json_remove",
    "jsonb_remove", "json_replace", "jsonb_replace", "json_set", "jsonb_set", "json_type",
    "json_valid", "json_group_array", "jsonb_group_array", "json_group_object",
    "jsonb_group_object", "->", "->>",
    /* math (SQLITE_ENABLE_MATH_FUNCTIONS) */
    "acos", "acosh", "asin", "asinh", "atan", "atan2", "atanh", "ceil", "ceiling", "cos",
    "cosh", "degrees", "exp", "floor", "ln", "log", "log10", "log2", "mod", "pi", "pow",
    "power", "radians", "sin", "sinh", "sqrt", "tan", "tanh", "trunc", NULL};

/* 1 when the P4 text of a function-calling opcode, "name(nargs)", names a
** function app SQL may call; the name is copied to name (for messages). */
static int function_allowed(const char *p4, char *name, int name_cap) {
  const char *paren;
  int n;
  name[0] = 0;
  if (p4 == NULL) return 0;
  paren = strrchr(p4, '(');
  n = paren ? (int)(paren - p4) : (int)strlen(p4);
  if (n >= name_cap) n = name_cap - 1;
  if (n > 0) memcpy(name, p4, (size_t)n);
  name[n < 0 ? 0 : n] = 0;
  if (paren == NULL || n <= 0) return 0;
  for (int i = 0; app_sql_functions[i]; i++) {
    if ((int)strlen(app_sql_functions[i]) == n &&
        sqlite3_strnicmp(app_sql_functions[i], p4, n) == 0)
      return 1;
  }
  return 0;
}

static int calls_function(const char *op) {
  return strstr(op, "Func") != NULL || strncmp(op, "Agg", 3) == 0;
}

static int uses_virtual_table(const char *op) {
  return op[0] == 'V' && op[1] >= 'A' && op[1] <= 'Z';
}

#define WHY_MAX 256
#define ROOTS_MAX 64   /* anonauth has about 20 tables and indexes */
#define CURSORS_MAX 16 /* cursors on anonauth_users in one program */

typedef struct {
  int n;
  int root[ROOTS_MAX];
  int users[ROOTS_MAX]; /* 1 for anonauth_users and its indexes */
} anonauth_roots;

static const char SQL_ANONAUTH_ROOTS[] =
    "SELECT rootpage, tbl_name = 'anonauth_users' COLLATE NOCASE FROM main.sqlite_schema "
    "WHERE type IN ('table', 'index') AND rootpage > 0 "
    "AND tbl_name LIKE 'anonauth\\_%' ESCAPE '\\'";

/* The root pages of anonauth's tables and their indexes in main. More than
** ROOTS_MAX (someone added indexes) is refused rather than half-checked. */
static int load_roots(aa_conn *c, anonauth_roots *r, int *too_many) {
  sqlite3_stmt *st;
  int rc = aa_stmt_get(c, SQL_ANONAUTH_ROOTS, &st);
  r->n = 0;
  *too_many = 0;
  if (rc != SQLITE_OK) return rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    if (r->n == ROOTS_MAX) {
      *too_many = 1;
      continue;
    }
    r->root[r->n] = sqlite3_column_int(st, 0);
    r->users[r->n] = sqlite3_column_int(st, 1);
    r->n++;
  }
  aa_stmt_release(st);
  return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* -1 when root (in database db) is not anonauth's, else 1 for anonauth_users, 0 for
** another of its tables. */
static int anonauth_root(const anonauth_roots *r, int db, int root) {
  if (db != 0) return -1;
  for (int i = 0; i < r->n; i++) {
    if (r->root[i] == root) return r->users[i];
  }
  return -1;
}

/* 0 when st only changes rows with what it may call; otherwise 1 with why
** filled in. */
static int bytecode_problem(aa_conn *c, sqlite3_stmt *st, char why[WHY_MAX], int *rc_out) {
  /* The text of one statement that already prepared on its own: with
  ** EXPLAIN before it, it is still exactly that one statement. */
  char *sql = sqlite3_mprintf("EXPLAIN %s", sqlite3_sql(st));
  sqlite3_stmt *ex = NULL;
  anonauth_roots roots;
  int users_cursors[CURSORS_MAX];
  int n_cursors = 0, last_addr = -1;
  int found = 0;
  int rc;
  *rc_out = SQLITE_OK;
  why[0] = 0;
  if (sql == NULL) {
    *rc_out = SQLITE_NOMEM;
    return 0;
  }
  /* Read first: inside the caller's transaction this starts its read
  ** snapshot, so the schema EXPLAIN compiles against is the one the app's
  ** SQL will run against. */
  {
    int too_many = 0;
    rc = load_roots(c, &roots, &too_many);
    if (rc != SQLITE_OK) {
      sqlite3_free(sql);
      *rc_out = rc;
      sqlite3_snprintf(WHY_MAX, why, "cannot be checked against anonauth's tables");
      return 1;
    }
    if (too_many) {
      sqlite3_free(sql);
      sqlite3_snprintf(WHY_MAX, why,
                       "cannot be checked: anonauth's tables have more than %d indexes",
                       ROOTS_MAX);
      return 1;
    }
  }
  rc = sqlite3_prepare_v2(c->db, sql, -1, &ex, NULL);
  sqlite3_free(sql);
  if (rc != SQLITE_OK || ex == NULL) {
    sqlite3_finalize(ex);
    sqlite3_snprintf(WHY_MAX, why, "cannot be explained");
    return 1;
  }
  while (!found && (rc = sqlite3_step(ex)) == SQLITE_ROW) {
    const char *op = (const char *)sqlite3_column_text(ex, 1);
    int addr = sqlite3_column_int(ex, 0);
    int p1 = sqlite3_column_int(ex, 2), p2 = sqlite3_column_int(ex, 3);
    int p3 = sqlite3_column_int(ex, 4);
    if (op == NULL) continue;
    /* EXPLAIN lists each trigger program after the statement's, numbered
    ** from 0 again, with cursors of its own. */
    if (addr <= last_addr) n_cursors = 0;
    last_addr = addr;
    /* A cursor number is reused after Close: it is on anonauth_users only
    ** from the OpenRead that put it there. */
    if (strncmp(op, "Open", 4) == 0 || strcmp(op, "SorterOpen") == 0 ||
        strcmp(op, "ReopenIdx") == 0 || strcmp(op, "Close") == 0) {
      for (int i = 0; i < n_cursors; i++) {
        if (users_cursors[i] == p1) users_cursors[i--] = users_cursors[--n_cursors];
      }
    }
    if (strcmp(op, "OpenWrite") == 0 || strcmp(op, "OpenRead") == 0 ||
        strcmp(op, "ReopenIdx") == 0) {
      int which = anonauth_root(&roots, p3, p2);
      if (which == 0 || (which == 1 && op[4] == 'W')) {
        sqlite3_snprintf(WHY_MAX, why,
                         "%s anonauth's own tables (anonauth_*), which app SQL may not",
                         op[4] == 'W' ? "writes" : "reads");
        found = 1;
      } else if (which == 1) {
        if (n_cursors == CURSORS_MAX) {
          sqlite3_snprintf(WHY_MAX, why, "opens anonauth_users too many times");
          found = 1;
        } else {
          users_cursors[n_cursors++] = p1;
        }
      }
    } else if (strcmp(op, "Clear") == 0 && anonauth_root(&roots, p2, p1) >= 0) {
      sqlite3_snprintf(WHY_MAX, why,
                       "writes anonauth's own tables (anonauth_*), which app SQL may not");
      found = 1;
    } else if (strcmp(op, "Column") == 0 || strcmp(op, "RowData") == 0 ||
               strcmp(op, "RowCell") == 0 || strcmp(op, "OpenDup") == 0) {
      int cur = strcmp(op, "OpenDup") == 0 ? p2 : p1;
      for (int i = 0; !found && i < n_cursors; i++) {
        if (users_cursors[i] == cur) {
          sqlite3_snprintf(WHY_MAX, why,
                           "reads the columns of anonauth_users, which app SQL may not (it "
                           "may only look up whether an id exists, as a foreign key does)");
          found = 1;
        }
      }
    }
    if ((strcmp(op, "Halt") == 0 || strcmp(op, "HaltIfNull") == 0) &&
        sqlite3_column_int(ex, 3) == OE_ROLLBACK) {
      sqlite3_snprintf(WHY_MAX, why,
                       "would roll back the caller's whole transaction on a conflict (OR "
                       "ROLLBACK, or RAISE(ROLLBACK) in a trigger it fires); use OR ABORT, "
                       "the default");
      found = 1;
    }
    for (int i = 0; !found && not_row_changes[i]; i++) {
      if (strcmp(op, not_row_changes[i]) == 0) {
        sqlite3_snprintf(WHY_MAX, why,
                         "changes the schema, a setting or the file, not rows (CREATE, DROP, "
                         "ALTER, VACUUM, ANALYZE, PRAGMA are not allowed)");
        found = 1;
      }
    }
    if (!found && uses_virtual_table(op)) {
      sqlite3_snprintf(WHY_MAX, why,
                       "uses a virtual table (%s), which app SQL may not: only ordinary "
                       "tables",
                       op);
      found = 1;
    }
    if (!found && calls_function(op)) {
      char name[64];
      if (!function_allowed((const char *)sqlite3_column_text(ex, 5), name, (int)sizeof(name))) {
        sqlite3_snprintf(WHY_MAX, why,
                         "calls %s(), which app SQL may not: only SQLite's deterministic "
                         "built-in functions (and the date and time functions)",
                         name[0] ? name : "a function");
        found = 1;
      }
    }
  }
  if (!found && rc != SQLITE_DONE) {
    *rc_out = rc;
    sqlite3_snprintf(WHY_MAX, why, "cannot be explained");
    found = 1;
  }
  sqlite3_finalize(ex);
  return found;
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
      char why[WHY_MAX];
      if (bytecode_problem(c, st, why, &xrc) || xrc != SQLITE_OK) {
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
