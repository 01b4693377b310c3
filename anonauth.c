/*
** anonauth.c — entry point: registers anonauth's SQL functions and tables on
** a connection.
**
** This table is the one place that says how each function may be used.
** Functions that write or reach the network are SQLITE_DIRECTONLY, so a
** trigger or view in a schema someone else wrote cannot call them; read-only
** helpers meant for views and triggers are SQLITE_INNOCUOUS.
**
** Load it with `.load ./anonauth` (the entry point sqlite3_anonauth_init is
** derived from the file name), sqlite3_load_extension(), or, when linking
** libanonauth.a into a program, sqlite3_auto_extension(sqlite3_anonauth_init).
*/
#include <sqlite3ext.h>
SQLITE_EXTENSION_INIT1

#include "anonauth.h"
#include "src/anonauth_int.h"

#include <sodium.h>

#define DIRECT (SQLITE_UTF8 | SQLITE_DIRECTONLY)
#define INNOCUOUS (SQLITE_UTF8 | SQLITE_INNOCUOUS)
#define PURE (SQLITE_UTF8 | SQLITE_INNOCUOUS | SQLITE_DETERMINISTIC)

typedef void (*sql_fn)(sqlite3_context *, int, sqlite3_value **);

static void fn_version(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  (void)argc;
  (void)argv;
  sqlite3_result_text(ctx, ANONAUTH_VERSION, -1, SQLITE_STATIC);
}

static const struct {
  const char *name;
  int n_args;
  int flags;
  sql_fn fn;
} functions[] = {
    {"anon_signin", 0, DIRECT, aa_fn_anon_signin},
    {"anon_signin", 1, DIRECT, aa_fn_anon_signin},
    {"session_valid", 1, DIRECT, aa_fn_session_valid},
    {"session_user", 1, DIRECT, aa_fn_session_user},
    {"user_is_anonymous", 1, INNOCUOUS, aa_fn_user_is_anonymous},
    {"anon_signout", 1, DIRECT, aa_fn_anon_signout},
    {"session_revoke_all", 1, DIRECT, aa_fn_session_revoke_all},
    {"verify_turnstile", 1, DIRECT, aa_fn_verify_turnstile},
    {"verify_turnstile", 2, DIRECT, aa_fn_verify_turnstile},
    {"verify_turnstile", 3, DIRECT, aa_fn_verify_turnstile},
    {"verify_hcaptcha", 1, DIRECT, aa_fn_verify_hcaptcha},
    {"verify_hcaptcha", 2, DIRECT, aa_fn_verify_hcaptcha},
    {"verify_hcaptcha", 3, DIRECT, aa_fn_verify_hcaptcha},
    {"link_account", 3, DIRECT, aa_fn_link_account},
    {"link_account", 4, DIRECT, aa_fn_link_account},
    {"account_signup", 2, DIRECT, aa_fn_account_signup},
    {"account_signup", 3, DIRECT, aa_fn_account_signup},
    {"account_signup", 4, DIRECT, aa_fn_account_signup},
    {"account_signin", 2, DIRECT, aa_fn_account_signin},
    {"account_signin", 3, DIRECT, aa_fn_account_signin},
    {"account_signin", 4, DIRECT, aa_fn_account_signin},
    {"anonauth_config", 1, DIRECT, aa_fn_config},
    {"anonauth_config", 2, DIRECT, aa_fn_config},
    {"anonauth_set_clock", 1, DIRECT, aa_fn_set_clock},
    {"anonauth_version", 0, PURE, fn_version},
    {"anonauth_replicated", 0, INNOCUOUS, aa_fn_replicated},
    {"anonauth_internal_atomic", 0, DIRECT, aa_fn_atomic_trampoline},
    {"anonauth_use", 1, DIRECT, aa_fn_anonauth_use},
    {"auth_uid", 0, INNOCUOUS, aa_fn_auth_uid},
    {"auth_is_anonymous", 0, INNOCUOUS, aa_fn_auth_is_anonymous},
    {"anon_purge", 0, DIRECT, aa_fn_anon_purge},
    {"anon_purge", 1, DIRECT, aa_fn_anon_purge},
    {"session_info", 1, DIRECT, aa_fn_session_info},
    {"session_revoke_others", 1, DIRECT, aa_fn_session_revoke_others},
    {"user_delete", 1, DIRECT, aa_fn_user_delete},
    {"user_profile", 1, DIRECT, aa_fn_user_profile},
    {"user_profile", 2, DIRECT, aa_fn_user_profile},
    {"account_set_secret", 5, DIRECT, aa_fn_account_set_secret},
    {"verification_issue", 3, DIRECT, aa_fn_verification_issue},
    {"verification_issue", 4, DIRECT, aa_fn_verification_issue},
    {"account_reset_secret", 4, DIRECT, aa_fn_account_reset_secret},
    {"session_jwt", 1, DIRECT, aa_fn_session_jwt},
    {"session_jwt", 2, DIRECT, aa_fn_session_jwt},
    {"jwt_verify", 1, INNOCUOUS, aa_fn_jwt_verify},
    {"jwt_verify", 2, INNOCUOUS, aa_fn_jwt_verify},
    {"anonauth_jwks", 0, DIRECT, aa_fn_jwks},
    {"anonauth_jwt_rotate", 0, DIRECT, aa_fn_jwt_rotate},
    {"session_refresh", 1, DIRECT, aa_fn_session_refresh},
};

/* Loading twice on one connection is a no-op, not a reset of its state. */
static int already_loaded(sqlite3 *db) {
  sqlite3_stmt *st = NULL;
  int loaded = 0;
  if (sqlite3_prepare_v2(db, "SELECT anonauth_version()", -1, &st, NULL) == SQLITE_OK &&
      sqlite3_step(st) == SQLITE_ROW) {
    const unsigned char *v = sqlite3_column_text(st, 0);
    loaded = v != NULL && sqlite3_stricmp((const char *)v, ANONAUTH_VERSION) == 0;
  }
  sqlite3_finalize(st);
  if (!loaded) {
    /* The failed probe left "no such function" as the connection's error,
    ** and sqlite3_open() fails when an auto-extension leaves one: a
    ** successful prepare clears it. */
    if (sqlite3_prepare_v2(db, "SELECT 1", -1, &st, NULL) == SQLITE_OK) sqlite3_finalize(st);
  }
  return loaded;
}

#if defined(__GNUC__)
__attribute__((visibility("default")))
#endif
int sqlite3_anonauth_init(sqlite3 *db, char **pzErrMsg, const sqlite3_api_routines *pApi) {
  aa_conn *c;
  int rc = SQLITE_OK;
  SQLITE_EXTENSION_INIT2(pApi);

  if (sqlite3_libversion_number() < 3034000) {
    if (pzErrMsg) *pzErrMsg = sqlite3_mprintf("anonauth: internal: needs SQLite 3.34.0 or later");
    return SQLITE_ERROR;
  }
  if (sodium_init() < 0) {
    if (pzErrMsg) *pzErrMsg = sqlite3_mprintf("anonauth: internal: libsodium failed to initialise");
    return SQLITE_ERROR;
  }
  if (already_loaded(db)) return SQLITE_OK;

  c = aa_conn_new(db);
  if (c == NULL) return SQLITE_NOMEM;
  for (size_t i = 0; rc == SQLITE_OK && i < sizeof(functions) / sizeof(functions[0]); i++) {
    aa_conn_ref(c); /* released by SQLite, also if registration fails */
    rc = sqlite3_create_function_v2(db, functions[i].name, functions[i].n_args,
                                    functions[i].flags, c, functions[i].fn, NULL, NULL,
                                    aa_conn_unref);
  }
  if (rc == SQLITE_OK) rc = aa_stmt_cache_register(db, c);
  if (rc == SQLITE_OK) rc = aa_vtab_register(db, c);
  aa_conn_unref(c);
  if (rc != SQLITE_OK && pzErrMsg)
    *pzErrMsg = sqlite3_mprintf("anonauth: internal: registering functions: %s",
                                sqlite3_errstr(rc));
  return rc;
}
