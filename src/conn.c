/*
** conn.c — lifetime of the per-connection state.
**
** One aa_conn exists per database connection that loaded anonauth. Every SQL
** function and module registered on the connection holds a reference; SQLite
** drops them when it destroys the functions (on close, or when the extension
** is registered again), and the last one frees the state.
*/
#include "anonauth_int.h"

#include <string.h>

aa_conn *aa_conn_new(sqlite3 *db) {
  aa_conn *c = sqlite3_malloc(sizeof(*c));
  if (c == NULL) return NULL;
  memset(c, 0, sizeof(*c));
  c->db = db;
  c->refs = 1;
  c->replicated = aa_replicated_default();
  return c;
}

void aa_conn_ref(aa_conn *c) { c->refs++; }

void aa_conn_unref(void *p) {
  aa_conn *c = p;
  if (c == NULL || --c->refs > 0) return;
  aa_stmt_cache_clear(c);
  sqlite3_free(c->slots);
  aa_config_cache_free(c);
  aa_jwt_cache_free(c);
  if (c->http_release != NULL) c->http_release(c->http);
  sqlite3_free(c);
}
