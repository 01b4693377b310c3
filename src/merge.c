/*
** merge.c — folding an anonymous user into an existing one.
**
** When an anonymous visitor turns out to own an account already (link_account
** with link.on_conflict = 'merge', or account_signin with opts.anon_token),
** the app's rows that point at the anonymous user move to the account's user
** through the app's own link.merge_sql, run with :from_user and :to_user
** bound; then the anonymous user is deleted with its sessions and accounts.
** anonauth cannot know the app's tables, so the app says how its data
** combines (moving rows, adding quantities, dropping duplicates).
**
** Everything runs inside the caller's aa_atomic() body: if any statement of
** the merge SQL fails, the whole call rolls back, sign-in or link included.
** The statements are prepared once per connection and kept until the
** configured SQL changes. Like the statement cache (stmtcache.c), they are
** finalized when the cache's owner table disconnects, so that
** sqlite3_close() is never refused because of them.
*/
#include "anonauth_int.h"

#include <string.h>

typedef struct {
  sqlite3_stmt *st;
} merge_stmt;

struct aa_merge_cache {
  char *sql; /* the text the statements were prepared from */
  merge_stmt *stmts;
  int n_stmts;
};

void aa_merge_cache_clear(aa_conn *c) {
  struct aa_merge_cache *m = c->merge;
  if (m == NULL) return;
  for (int i = 0; i < m->n_stmts; i++) sqlite3_finalize(m->stmts[i].st);
  sqlite3_free(m->stmts);
  sqlite3_free(m->sql);
  sqlite3_free(m);
  c->merge = NULL;
}

static int merge_failed_storage(aa_conn *c, int rc, const char *what) {
  if (rc == SQLITE_NOMEM) return aa_err_nomem(c);
  return aa_err(c, rc, AA_E_MERGE_FAILED, "%s: %s", what, sqlite3_errmsg(c->db));
}

/* Prepares every statement of sql (done again only when it changes). */
static int prepare_all(aa_conn *c, const char *sql, struct aa_merge_cache **out) {
  struct aa_merge_cache *m;
  *out = NULL;
  const char *tail = sql, *end = sql + strlen(sql);
  int cap = 0;

  m = c->merge;
  if (m != NULL && strcmp(m->sql, sql) == 0) {
    /* Prepared before, checked again: a trigger added since then would run
    ** inside the merge, and appsql.c's rules cover what triggers do too. */
    int rc = aa_config_check_app_sql(c, AA_CFG_LINK_MERGE_SQL, sql, AA_E_MERGE_FAILED);
    if (rc != SQLITE_OK) {
      aa_merge_cache_clear(c);
      return rc;
    }
    *out = m;
    return SQLITE_OK;
  }
  aa_merge_cache_clear(c);
  m = sqlite3_malloc(sizeof(*m));
  if (m == NULL) return aa_err_nomem(c);
  memset(m, 0, sizeof(*m));
  c->merge = m;
  m->sql = sqlite3_mprintf("%s", sql);
  if (m->sql == NULL) return aa_err_nomem(c);

  while (tail < end) {
    sqlite3_stmt *st = NULL;
    const char *next = NULL;
    int rc;
    /* Only a value written around anonauth_config() can hold one. */
    if (aa_sql_next_is_pragma(tail, (int)(end - tail))) {
      rc = aa_err(c, SQLITE_ERROR, AA_E_MERGE_FAILED,
                  "link.merge_sql is not run: statement %d is a PRAGMA or EXPLAIN; set it "
                  "again with anonauth_config()",
                  m->n_stmts + 1);
      aa_merge_cache_clear(c);
      return rc;
    }
    rc = sqlite3_prepare_v3(c->db, tail, (int)(end - tail), SQLITE_PREPARE_PERSISTENT, &st,
                            &next);
    if (rc != SQLITE_OK) {
      rc = aa_err(c, rc == SQLITE_NOMEM ? rc : SQLITE_ERROR, AA_E_MERGE_FAILED,
                  "link.merge_sql statement %d does not prepare: %s", m->n_stmts + 1,
                  sqlite3_errmsg(c->db));
      aa_merge_cache_clear(c);
      return rc;
    }
    if (st == NULL) break; /* only comments or whitespace left */
    if (m->n_stmts == cap) {
      int ncap = cap ? cap * 2 : 4;
      merge_stmt *grown = sqlite3_realloc64(m->stmts, sizeof(merge_stmt) * (sqlite3_uint64)ncap);
      if (grown == NULL) {
        sqlite3_finalize(st);
        aa_merge_cache_clear(c);
        return aa_err_nomem(c);
      }
      m->stmts = grown;
      cap = ncap;
    }
    m->stmts[m->n_stmts++].st = st;
    tail = next;
  }
  /* The rules of the setter, for a text read from the database. */
  {
    int rc = aa_config_check_app_sql(c, AA_CFG_LINK_MERGE_SQL, sql, AA_E_MERGE_FAILED);
    if (rc != SQLITE_OK) {
      aa_merge_cache_clear(c);
      return rc;
    }
  }
  *out = m;
  return SQLITE_OK;
}

/*
** Fail closed: without link.merge_sql a merge would delete the anonymous
** user and leave every app row that pointed at it orphaned, silently. So a
** merge runs only when the app said how (link.merge_sql) or said that there
** is nothing to move (link.merge_without_sql = 'drop').
*/
int aa_merge_allowed(aa_conn *c) {
  if (aa_config_text(c, AA_CFG_LINK_MERGE_SQL) != NULL) return SQLITE_OK;
  if (aa_config_int(c, AA_CFG_LINK_MERGE_WITHOUT_SQL) == 1) return SQLITE_OK; /* 'drop' */
  return aa_err(c, SQLITE_ERROR, AA_E_MERGE_FAILED,
                "merging the anonymous user needs link.merge_sql (or "
                "link.merge_without_sql = 'drop' when the app keeps no rows for it); "
                "nothing was changed");
}

static int run_merge_sql(aa_conn *c, int64_t from_user, int64_t to_user) {
  struct aa_merge_cache *m = NULL;
  const char *sql = aa_config_text(c, AA_CFG_LINK_MERGE_SQL);
  int rc, in_txn;
  if (sql == NULL) return aa_merge_allowed(c); /* 'drop': no per-user rows */
  rc = prepare_all(c, sql, &m);
  if (rc != SQLITE_OK) return rc;
  if (m == NULL) return aa_err(c, SQLITE_INTERNAL, AA_E_INTERNAL, "merge statements missing");
  in_txn = !sqlite3_get_autocommit(c->db);
  for (int i = 0; i < m->n_stmts; i++) {
    sqlite3_stmt *st = m->stmts[i].st;
    int p;
    if (sqlite3_stmt_busy(st))
      return aa_err(c, SQLITE_ERROR, AA_E_REENTRANT,
                    "link.merge_sql is already running on this connection");
    if ((p = sqlite3_bind_parameter_index(st, ":from_user")) > 0)
      sqlite3_bind_int64(st, p, from_user);
    if ((p = sqlite3_bind_parameter_index(st, ":to_user")) > 0)
      sqlite3_bind_int64(st, p, to_user);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    } /* RETURNING rows are not ours to show */
    if (rc != SQLITE_DONE) {
      char what[48];
      sqlite3_snprintf((int)sizeof(what), what, "link.merge_sql statement %d", i + 1);
      if (in_txn && sqlite3_get_autocommit(c->db) && rc != SQLITE_NOMEM)
        /* An app trigger's RAISE(ROLLBACK) (config refuses OR ROLLBACK in the
        ** statements themselves): SQLite has ended the caller's transaction. */
        rc = aa_err(c, rc, AA_E_MERGE_FAILED,
                    "%s: %s; SQLite rolled back the caller's whole transaction (RAISE(ROLLBACK))",
                    what, sqlite3_errmsg(c->db));
      else
        rc = merge_failed_storage(c, rc, what);
      sqlite3_reset(st);
      sqlite3_clear_bindings(st);
      return rc;
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
  }
  return SQLITE_OK;
}

/* Sessions and accounts first: they reference the user. */
static const char SQL_DELETE_SESSIONS[] =
    "DELETE FROM main.anonauth_sessions WHERE user_id = ?1";
static const char SQL_DELETE_ACCOUNTS[] =
    "DELETE FROM main.anonauth_accounts WHERE user_id = ?1";
static const char SQL_DELETE_USER[] =
    "DELETE FROM main.anonauth_users WHERE id = ?1 AND is_anonymous = 1";

static int delete_by_user(aa_conn *c, const char *sql, int64_t user_id, const char *what,
                          int *changes) {
  sqlite3_stmt *st;
  int rc = aa_stmt_get(c, sql, &st);
  if (rc != SQLITE_OK) return rc;
  sqlite3_bind_int64(st, 1, user_id);
  rc = sqlite3_step(st);
  if (rc == SQLITE_DONE) {
    rc = SQLITE_OK;
    if (changes) *changes = sqlite3_changes(c->db);
  } else {
    rc = merge_failed_storage(c, rc, what);
  }
  aa_stmt_release(st);
  return rc;
}

int aa_merge_users(aa_conn *c, int64_t from_user, int64_t to_user) {
  int deleted = 0;
  int rc;
  if (from_user == to_user)
    return aa_err(c, SQLITE_INTERNAL, AA_E_INTERNAL, "a user cannot be merged into itself");
  rc = run_merge_sql(c, from_user, to_user);
  if (rc == SQLITE_OK)
    rc = delete_by_user(c, SQL_DELETE_SESSIONS, from_user,
                        "deleting the anonymous user's sessions", NULL);
  if (rc == SQLITE_OK)
    rc = delete_by_user(c, SQL_DELETE_ACCOUNTS, from_user,
                        "deleting the anonymous user's accounts", NULL);
  /* With foreign keys on, app rows that link.merge_sql left pointing at the
  ** anonymous user make this fail, and the whole call rolls back. */
  if (rc == SQLITE_OK)
    rc = delete_by_user(c, SQL_DELETE_USER, from_user,
                        "deleting the anonymous user (do app rows still point at "
                        "it? link.merge_sql must move or delete them)",
                        &deleted);
  if (rc == SQLITE_OK && deleted != 1)
    rc = aa_err(c, SQLITE_ERROR, AA_E_MERGE_FAILED,
                "the user merged from is no longer anonymous");
  return rc;
}
