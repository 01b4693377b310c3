/*
** stmtcache.c — prepared statements kept for the life of a connection.
**
** Every statement anonauth runs is prepared once per connection and reused.
** Cached statements have a catch: sqlite3_close() (not _v2) refuses to close
** a connection that still has prepared statements, and drivers such as
** better-sqlite3 close that way. SQLite does disconnect virtual tables before
** it checks, so the cache is owned by an eponymous virtual table,
** anonauth_connection: statements are only cached while it is connected,
** and its xDisconnect finalizes them. A later call simply reconnects it.
**
** The table itself shows one row of harmless per-connection state.
*/
#include "anonauth_int.h"

#include <string.h>

struct aa_stmt_slot {
  const char *sql;
  sqlite3_stmt *st;
};

#define INITIAL_SLOTS 64

static unsigned slot_hash(const char *sql, int n_slots) {
  uintptr_t h = (uintptr_t)sql;
  h ^= h >> 17;
  h *= (uintptr_t)0x9E3779B97F4A7C15ull;
  h ^= h >> 29;
  return (unsigned)(h & (uintptr_t)(n_slots - 1));
}

void aa_stmt_cache_clear(aa_conn *c) {
  aa_merge_cache_clear(c); /* merge.c keeps statements of its own */
  for (int i = 0; i < c->n_slots; i++) {
    if (c->slots[i].st != NULL) sqlite3_finalize(c->slots[i].st);
    c->slots[i].st = NULL;
    c->slots[i].sql = NULL;
  }
  c->n_used = 0;
}

static int grow(aa_conn *c) {
  int n = c->n_slots ? c->n_slots * 2 : INITIAL_SLOTS;
  struct aa_stmt_slot *old = c->slots;
  int old_n = c->n_slots;
  struct aa_stmt_slot *slots = sqlite3_malloc64(sizeof(*slots) * (sqlite3_uint64)n);
  if (slots == NULL) return SQLITE_NOMEM;
  memset(slots, 0, sizeof(*slots) * (size_t)n);
  for (int i = 0; i < old_n; i++) {
    if (old[i].sql == NULL) continue;
    unsigned h = slot_hash(old[i].sql, n);
    while (slots[h].sql != NULL) h = (h + 1) & (unsigned)(n - 1);
    slots[h] = old[i];
  }
  c->slots = slots;
  c->n_slots = n;
  sqlite3_free(old);
  return SQLITE_OK;
}

/* Connects the owner table, which is what allows caching at all. */
static int connect_owner(aa_conn *c) {
  sqlite3_stmt *probe = NULL;
  int rc = sqlite3_prepare_v2(c->db, "SELECT 1 FROM anonauth_connection", -1,
                              &probe, NULL);
  /* A view of that name that does not prepare hides the table too. */
  if (rc == SQLITE_ERROR) return aa_schema_name_hidden(c, "anonauth_connection");
  if (rc != SQLITE_OK) return aa_err_storage(c, rc);
  sqlite3_finalize(probe);
  if (!c->cache_owner_live) return aa_schema_name_hidden(c, "anonauth_connection");
  return SQLITE_OK;
}

int aa_stmt_get(aa_conn *c, const char *sql, sqlite3_stmt **out) {
  int rc;
  unsigned h;
  *out = NULL;
  if (!c->cache_owner_live) {
    rc = connect_owner(c);
    if (rc != SQLITE_OK) return rc;
  }
  if (c->n_slots == 0 || (c->n_used + 1) * 2 > c->n_slots) {
    if (grow(c) != SQLITE_OK) return aa_err_nomem(c);
  }
  h = slot_hash(sql, c->n_slots);
  while (c->slots[h].sql != NULL && c->slots[h].sql != sql)
    h = (h + 1) & (unsigned)(c->n_slots - 1);
  if (c->slots[h].sql == sql) {
    sqlite3_stmt *st = c->slots[h].st;
    if (sqlite3_stmt_busy(st))
      return aa_err(c, SQLITE_ERROR, AA_E_REENTRANT,
                    "an anonauth function was called from inside another "
                    "one on the same connection");
    *out = st;
    return SQLITE_OK;
  }
  rc = sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT,
                          &c->slots[h].st, NULL);
  if (rc != SQLITE_OK) {
    c->slots[h].st = NULL;
    return aa_err_storage(c, rc);
  }
  c->slots[h].sql = sql;
  c->n_used++;
  *out = c->slots[h].st;
  return SQLITE_OK;
}

void aa_stmt_release(sqlite3_stmt *st) {
  if (st == NULL) return;
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
}

int aa_stmt_exec(aa_conn *c, sqlite3_stmt *st) {
  int rc = sqlite3_step(st);
  if (rc == SQLITE_DONE || rc == SQLITE_ROW) {
    rc = SQLITE_OK;
  } else {
    rc = aa_err_storage(c, rc);
  }
  aa_stmt_release(st);
  return rc;
}

/* ---- the owner table ---------------------------------------------------- */

typedef struct {
  sqlite3_vtab base;
  aa_conn *c;
} owner_vtab;

typedef struct {
  sqlite3_vtab_cursor base;
  int row;
} owner_cursor;

enum { COL_USER_ID, COL_CLOCK, COL_CACHED_STATEMENTS };

static int owner_connect(sqlite3 *db, void *aux, int argc,
                         const char *const *argv, sqlite3_vtab **out,
                         char **err) {
  aa_conn *c = aux;
  owner_vtab *v;
  int rc;
  (void)argc;
  (void)argv;
  (void)err;
  rc = sqlite3_declare_vtab(
      db, "CREATE TABLE x(user_id INTEGER, clock INTEGER, "
          "cached_statements INTEGER)");
  if (rc != SQLITE_OK) return rc;
  v = sqlite3_malloc(sizeof(*v));
  if (v == NULL) return SQLITE_NOMEM;
  memset(v, 0, sizeof(*v));
  v->c = c;
  sqlite3_vtab_config(db, SQLITE_VTAB_INNOCUOUS);
  c->cache_owner_live = 1;
  *out = &v->base;
  return SQLITE_OK;
}

static int owner_disconnect(sqlite3_vtab *vt) {
  owner_vtab *v = (owner_vtab *)vt;
  aa_stmt_cache_clear(v->c);
  v->c->cache_owner_live = 0;
  sqlite3_free(v);
  return SQLITE_OK;
}

static int owner_best_index(sqlite3_vtab *vt, sqlite3_index_info *info) {
  aa_schema_name_reached(((owner_vtab *)vt)->c, "anonauth_connection");
  info->estimatedCost = 1;
  info->estimatedRows = 1;
  return SQLITE_OK;
}

static int owner_open(sqlite3_vtab *vt, sqlite3_vtab_cursor **out) {
  owner_cursor *cur = sqlite3_malloc(sizeof(*cur));
  (void)vt;
  if (cur == NULL) return SQLITE_NOMEM;
  memset(cur, 0, sizeof(*cur));
  *out = &cur->base;
  return SQLITE_OK;
}

static int owner_close(sqlite3_vtab_cursor *cur) {
  sqlite3_free(cur);
  return SQLITE_OK;
}

static int owner_filter(sqlite3_vtab_cursor *cur, int idx, const char *idxs,
                        int argc, sqlite3_value **argv) {
  (void)idx;
  (void)idxs;
  (void)argc;
  (void)argv;
  ((owner_cursor *)cur)->row = 0;
  return SQLITE_OK;
}

static int owner_next(sqlite3_vtab_cursor *cur) {
  ((owner_cursor *)cur)->row++;
  return SQLITE_OK;
}

static int owner_eof(sqlite3_vtab_cursor *cur) {
  return ((owner_cursor *)cur)->row > 0;
}

static int owner_column(sqlite3_vtab_cursor *cur, sqlite3_context *ctx,
                        int col) {
  aa_conn *c = ((owner_vtab *)cur->pVtab)->c;
  switch (col) {
    case COL_USER_ID:
      if (c->auth_set) sqlite3_result_int64(ctx, c->auth_uid);
      break;
    case COL_CLOCK:
      if (c->clock_overridden) sqlite3_result_int64(ctx, c->clock_value);
      break;
    case COL_CACHED_STATEMENTS:
      sqlite3_result_int(ctx, c->n_used);
      break;
  }
  return SQLITE_OK;
}

static int owner_rowid(sqlite3_vtab_cursor *cur, sqlite3_int64 *rowid) {
  *rowid = ((owner_cursor *)cur)->row;
  return SQLITE_OK;
}

static const sqlite3_module owner_module = {
    .iVersion = 0,
    .xCreate = NULL, /* eponymous only */
    .xConnect = owner_connect,
    .xBestIndex = owner_best_index,
    .xDisconnect = owner_disconnect,
    .xDestroy = owner_disconnect,
    .xOpen = owner_open,
    .xClose = owner_close,
    .xFilter = owner_filter,
    .xNext = owner_next,
    .xEof = owner_eof,
    .xColumn = owner_column,
    .xRowid = owner_rowid,
};

int aa_stmt_cache_register(sqlite3 *db, aa_conn *c) {
  int rc;
  aa_conn_ref(c);
  rc = sqlite3_create_module_v2(db, "anonauth_connection", &owner_module, c,
                                aa_conn_unref);
  return rc;
}
