/*
** vtab.c — what anon_users, anon_sessions and anon_accounts share: the
** eponymous virtual-table module that scans, looks up and deletes.
**
** Each table is described by an aa_vtab_def (vtab_users.c, vtab_sessions.c,
** vtab_accounts.c): its columns, the statements that read it, and how one of
** its rows is deleted. This file turns equality constraints into those
** statements in xBestIndex, so `WHERE user_id = ?` is a lookup and
** EXPLAIN QUERY PLAN says which one ("INDEX 2:user_id=?").
**
** The tables are eponymous only (xCreate is NULL: no CREATE VIRTUAL TABLE)
** and SQLITE_VTAB_DIRECTONLY: they expose every user and session, so a view
** or trigger in a schema someone else wrote must not be able to read them
** or, worse, delete through them.
**
** Why cursors do not use the connection's statement cache (stmtcache.c): a
** cursor keeps its statement between calls, for as long as the caller's
** statement is open, and the cache's owner table can be disconnected in the
** meantime (sqlite3_close() disconnects every virtual table before it finds
** the caller's unfinalized statement and returns SQLITE_BUSY), which
** finalizes every cached statement under the cursor. Each table therefore
** keeps its own idle statements, which it finalizes only in xDisconnect;
** SQLite calls that only when no statement uses the table, so no cursor is
** open. A cursor takes a statement out of that store while it scans and
** puts it back when done, and prepares its own when another cursor of the
** same table holds it (a self-join).
**
** Writes: INSERT and UPDATE are refused. DELETE calls xUpdate once per row,
** inside the caller's statement, and each call is one aa_atomic() unit
** (the table's delete_row). A DELETE that fails on its third row must not
** keep its first two: SQLite sees to that without the xBegin/xSavepoint
** family, because the rows live in ordinary tables of "main". A DELETE
** that may touch several rows (ONEPASS_OFF) opens a statement journal on
** main, so when a row fails SQLite rolls the whole statement back, the
** writes our atomic calls made inside it included; in autocommit the
** failed statement's transaction is rolled back whole. A DELETE of one row
** found through a unique plan (ONEPASS_SINGLE) has one atomic call and
** nothing to undo. tests/sql/vtab.test proves both, inside BEGIN and out.
** Those methods are for tables that keep data outside SQLite's pager;
** these tables have nothing of their own to commit or roll back.
*/
#include "anonauth_int.h"

#include <string.h>

typedef struct {
  aa_conn *c;
  const aa_vtab_def *def;
} module_data;

typedef struct {
  sqlite3_vtab base;
  aa_conn *c;
  const aa_vtab_def *def;
  sqlite3_stmt *idle[AA_VTAB_MAX_PLANS]; /* statements no cursor holds */
} vtab;

typedef struct {
  sqlite3_vtab_cursor base;
  int plan;
  sqlite3_stmt *st; /* NULL at the end */
  aa_vtab_scan scan;
} cursor;

static int vtab_error(sqlite3_vtab *vt, aa_conn *c, int rc) {
  return aa_vtab_error(c, rc, &vt->zErrMsg);
}

/* The error slot belongs to the anonauth call in progress, if any (a
** purge.user_sql that reads these tables): never wipe its state. */
static void begin_call(aa_conn *c) {
  if (!c->in_atomic) aa_err_clear(c);
}

static int vt_connect(sqlite3 *db, void *aux, int argc, const char *const *argv,
                      sqlite3_vtab **out, char **err) {
  module_data *m = aux;
  vtab *v;
  int rc;
  (void)argc;
  (void)argv;
  (void)err;
  rc = sqlite3_declare_vtab(db, m->def->declaration);
  if (rc != SQLITE_OK) return rc;
  v = sqlite3_malloc(sizeof(*v));
  if (v == NULL) return SQLITE_NOMEM;
  memset(v, 0, sizeof(*v));
  v->c = m->c;
  v->def = m->def;
  aa_conn_ref(v->c);
  sqlite3_vtab_config(db, SQLITE_VTAB_DIRECTONLY);
  *out = &v->base;
  return SQLITE_OK;
}

static int vt_disconnect(sqlite3_vtab *vt) {
  vtab *v = (vtab *)vt;
  for (int i = 0; i < AA_VTAB_MAX_PLANS; i++) sqlite3_finalize(v->idle[i]);
  aa_conn_unref(v->c);
  sqlite3_free(v);
  return SQLITE_OK;
}

static int key_matches(const aa_vtab_def *def, int column, int key) {
  return column == key || (column == -1 && key == def->rowid_column && key >= 0);
}

/* The constraint that supplies `key` for the plan, or -1. Only equality
** compared with BINARY: the statements compare that way, so any other
** collation is left to a scan. */
static int find_key(const aa_vtab_def *def, sqlite3_index_info *info, int key) {
  for (int i = 0; i < info->nConstraint; i++) {
    const struct sqlite3_index_constraint *con = &info->aConstraint[i];
    if (!con->usable || con->op != SQLITE_INDEX_CONSTRAINT_EQ) continue;
    if (!key_matches(def, con->iColumn, key)) continue;
    if (sqlite3_stricmp(sqlite3_vtab_collation(info, i), "BINARY") != 0) continue;
    return i;
  }
  return -1;
}

static int vt_best_index(sqlite3_vtab *vt, sqlite3_index_info *info) {
  const aa_vtab_def *def = ((vtab *)vt)->def;
  int best = 0;
  int best_cons[2] = {-1, -1};
  aa_schema_name_reached(((vtab *)vt)->c, def->name);
  for (int p = 1; p < def->n_plans; p++) {
    const aa_vtab_plan *plan = &def->plans[p];
    int cons[2] = {-1, -1};
    int usable = 1;
    for (int k = 0; k < 2 && usable; k++) {
      if (plan->keys[k] < 0) continue;
      cons[k] = find_key(def, info, plan->keys[k]);
      if (cons[k] < 0) usable = 0;
    }
    if (usable && plan->cost < def->plans[best].cost) {
      best = p;
      best_cons[0] = cons[0];
      best_cons[1] = cons[1];
    }
  }
  for (int k = 0; k < 2; k++) {
    if (best_cons[k] < 0) continue;
    info->aConstraintUsage[best_cons[k]].argvIndex = k + 1;
    info->aConstraintUsage[best_cons[k]].omit = (unsigned char)def->plans[best].omit;
  }
  info->idxNum = best;
  info->idxStr = (char *)def->plans[best].label;
  info->needToFreeIdxStr = 0;
  info->estimatedCost = def->plans[best].cost;
  info->estimatedRows = def->plans[best].unique ? 1 : (sqlite3_int64)def->plans[best].cost;
  if (def->plans[best].unique) info->idxFlags |= SQLITE_INDEX_SCAN_UNIQUE;
  return SQLITE_OK;
}

static int vt_open(sqlite3_vtab *vt, sqlite3_vtab_cursor **out) {
  cursor *cur = sqlite3_malloc(sizeof(*cur));
  (void)vt;
  if (cur == NULL) return SQLITE_NOMEM;
  memset(cur, 0, sizeof(*cur));
  *out = &cur->base;
  return SQLITE_OK;
}

/* Hands the cursor's statement back to the table's store (or finalizes it
** when the store already holds one). */
static void release(cursor *cur) {
  vtab *v = (vtab *)cur->base.pVtab;
  if (cur->st == NULL) return;
  sqlite3_reset(cur->st);
  sqlite3_clear_bindings(cur->st);
  if (v->idle[cur->plan] == NULL) {
    v->idle[cur->plan] = cur->st;
  } else {
    sqlite3_finalize(cur->st);
  }
  cur->st = NULL;
}

static int take(vtab *v, int plan, sqlite3_stmt **out) {
  int rc;
  *out = v->idle[plan];
  if (*out != NULL) {
    v->idle[plan] = NULL;
    return SQLITE_OK;
  }
  rc = sqlite3_prepare_v3(v->c->db, v->def->plans[plan].sql, -1, SQLITE_PREPARE_PERSISTENT,
                          out, NULL);
  if (rc != SQLITE_OK) return aa_err_storage(v->c, rc);
  return SQLITE_OK;
}

static int vt_close(sqlite3_vtab_cursor *cur) {
  release((cursor *)cur);
  sqlite3_free(cur);
  return SQLITE_OK;
}

/* Moves to the next row; at the end the statement goes back at once, so a
** finished cursor never holds one another cursor could use. */
static int step(cursor *cur) {
  vtab *v = (vtab *)cur->base.pVtab;
  int rc = sqlite3_step(cur->st);
  if (rc == SQLITE_ROW) return SQLITE_OK;
  if (rc == SQLITE_DONE) {
    release(cur);
    return SQLITE_OK;
  }
  rc = aa_err_storage(v->c, rc);
  release(cur);
  return vtab_error(&v->base, v->c, rc);
}

/* A statement that does not use one of these simply has fewer parameters
** (the bind then fails harmlessly with SQLITE_RANGE). */
static void bind_scan(sqlite3_stmt *st, const aa_vtab_scan *scan) {
  if (sqlite3_bind_parameter_count(st) >= AA_VTAB_PARAM_NOW)
    sqlite3_bind_int64(st, AA_VTAB_PARAM_NOW, scan->now);
  if (sqlite3_bind_parameter_count(st) >= AA_VTAB_PARAM_MAX_AGE)
    sqlite3_bind_int64(st, AA_VTAB_PARAM_MAX_AGE, scan->max_age);
  if (sqlite3_bind_parameter_count(st) >= AA_VTAB_PARAM_IDLE_TIMEOUT)
    sqlite3_bind_int64(st, AA_VTAB_PARAM_IDLE_TIMEOUT, scan->idle_timeout);
}

static int vt_filter(sqlite3_vtab_cursor *base, int idx, const char *idx_str, int argc,
                     sqlite3_value **argv) {
  cursor *cur = (cursor *)base;
  vtab *v = (vtab *)base->pVtab;
  aa_conn *c = v->c;
  int rc;
  (void)idx_str;
  release(cur);
  begin_call(c);
  cur->plan = idx >= 0 && idx < v->def->n_plans ? idx : 0;

  rc = aa_schema_check(c);
  if (rc == SQLITE_NOTFOUND) { /* no tables yet: nothing to show */
    if (!c->in_atomic) aa_err_clear(c);
    return SQLITE_OK;
  }
  if (rc == SQLITE_OK) rc = aa_config_refresh(c);
  if (rc == SQLITE_OK) rc = take(v, cur->plan, &cur->st);
  if (rc != SQLITE_OK) return vtab_error(base->pVtab, c, rc);

  cur->scan.now = aa_now(c);
  cur->scan.max_age = aa_config_int(c, AA_CFG_SESSION_MAX_AGE);
  cur->scan.idle_timeout = aa_config_int(c, AA_CFG_SESSION_IDLE_TIMEOUT);
  for (int i = 0; i < argc && i < 2; i++) sqlite3_bind_value(cur->st, i + 1, argv[i]);
  bind_scan(cur->st, &cur->scan);
  return step(cur);
}

static int vt_next(sqlite3_vtab_cursor *cur) { return step((cursor *)cur); }

static int vt_eof(sqlite3_vtab_cursor *cur) { return ((cursor *)cur)->st == NULL; }

static int vt_column(sqlite3_vtab_cursor *base, sqlite3_context *ctx, int col) {
  cursor *cur = (cursor *)base;
  const aa_vtab_def *def = ((vtab *)base->pVtab)->def;
  aa_conn *c = ((vtab *)base->pVtab)->c;
  if (def->column != NULL && def->column(c, &cur->scan, cur->st, ctx, col)) return SQLITE_OK;
  sqlite3_result_value(ctx, sqlite3_column_value(cur->st, col + 1));
  return SQLITE_OK;
}

static int vt_rowid(sqlite3_vtab_cursor *base, sqlite3_int64 *rowid) {
  *rowid = sqlite3_column_int64(((cursor *)base)->st, 0);
  return SQLITE_OK;
}

static int vt_update(sqlite3_vtab *vt, int argc, sqlite3_value **argv, sqlite3_int64 *rowid) {
  vtab *v = (vtab *)vt;
  aa_conn *c = v->c;
  int rc;
  (void)rowid;
  begin_call(c);
  if (argc > 1) {
    int insert = sqlite3_value_type(argv[0]) == SQLITE_NULL;
    rc = aa_err(c, SQLITE_ERROR, AA_E_INVALID_ARGUMENT,
                "%s does not accept %s; only DELETE, which %s", v->def->name,
                insert ? "INSERT" : "UPDATE", v->def->delete_does);
    return vtab_error(vt, c, rc);
  }
  rc = v->def->delete_row(c, sqlite3_value_int64(argv[0]));
  if (rc != SQLITE_OK) return vtab_error(vt, c, rc);
  return SQLITE_OK;
}

static const sqlite3_module module = {
    .iVersion = 0,
    .xCreate = NULL, /* eponymous only */
    .xConnect = vt_connect,
    .xBestIndex = vt_best_index,
    .xDisconnect = vt_disconnect,
    .xDestroy = vt_disconnect,
    .xOpen = vt_open,
    .xClose = vt_close,
    .xFilter = vt_filter,
    .xNext = vt_next,
    .xEof = vt_eof,
    .xColumn = vt_column,
    .xRowid = vt_rowid,
    .xUpdate = vt_update,
};

static void module_data_free(void *p) {
  module_data *m = p;
  aa_conn_unref(m->c);
  sqlite3_free(m);
}

static int register_one(sqlite3 *db, aa_conn *c, const aa_vtab_def *def) {
  module_data *m = sqlite3_malloc(sizeof(*m));
  if (m == NULL) return SQLITE_NOMEM;
  m->c = c;
  m->def = def;
  aa_conn_ref(c);
  /* On failure SQLite calls module_data_free itself. */
  return sqlite3_create_module_v2(db, def->name, &module, m, module_data_free);
}

int aa_vtab_register(sqlite3 *db, aa_conn *c) {
  int rc = register_one(db, c, &aa_vtab_users);
  if (rc == SQLITE_OK) rc = register_one(db, c, &aa_vtab_sessions);
  if (rc == SQLITE_OK) rc = register_one(db, c, &aa_vtab_accounts);
  return rc;
}
