/*
** libFuzzer harness for the options parser of the sign-in functions
** (src/opts.c on src/json.c, src/netaddr.c, src/text.c): any text a caller
** passes as opts must give either a parsed object that keeps every promise
** the rest of the code relies on, or an invalid_argument error — never a
** crash, an out-of-bounds read or a half-parsed result.
**
** The input goes through a real SQLite value (bound text, so invalid UTF-8
** and embedded NULs reach the parser as they would from an app).
*/
#include "anonauth_int.h"

#include <stdlib.h>
#include <string.h>

static sqlite3 *db;
static sqlite3_stmt *st;
static aa_conn *conn;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const unsigned masks[] = {
      AA_OPT_IP | AA_OPT_USER_AGENT | AA_OPT_PROFILE | AA_OPT_CAPTCHA,
      AA_OPT_IP | AA_OPT_USER_AGENT | AA_OPT_PROFILE | AA_OPT_CAPTCHA | AA_OPT_ANON_TOKEN,
  };
  aa_opts o;
  if (db == NULL) {
    if (sqlite3_open(":memory:", &db) != SQLITE_OK) abort();
    if (sqlite3_prepare_v2(db, "SELECT ?1", -1, &st, NULL) != SQLITE_OK) abort();
    conn = calloc(1, sizeof(*conn));
    conn->db = db;
  }
  if (size > AA_OPTS_MAX_BYTES + 64) return 0;
  sqlite3_bind_text(st, 1, (const char *)data, (int)size, SQLITE_TRANSIENT);
  if (sqlite3_step(st) != SQLITE_ROW) abort();
  for (size_t m = 0; m < sizeof(masks) / sizeof(masks[0]); m++) {
    int rc;
    aa_err_clear(conn);
    rc = aa_opts_parse(conn, sqlite3_column_value(st, 0), masks[m], &o);
    if (rc == SQLITE_OK) {
      char canon[AA_IP_TEXT_MAX], key[AA_IP_TEXT_MAX + 4];
      if (aa_err_recorded(conn, NULL) != SQLITE_OK) abort();
      if (o.has_ip && aa_ip_parse(o.ip, (int)strlen(o.ip), canon, key) != SQLITE_OK) abort();
      if (o.has_ip && strcmp(canon, o.ip) != 0) abort(); /* stored canonical */
      if (o.has_user_agent &&
          !aa_utf8_valid((const unsigned char *)o.user_agent, (int)strlen(o.user_agent)))
        abort();
      if (o.has_profile != (o.profile != NULL)) abort();
      if (o.profile && (strlen(o.profile) > AA_PROFILE_MAX_BYTES || o.profile[0] != '{'))
        abort();
      if (strlen(o.captcha) > AA_CAPTCHA_TOKEN_MAX) abort();
      if (o.captcha_oversized && o.captcha[0]) abort();
      if (!(masks[m] & AA_OPT_ANON_TOKEN) && o.has_anon_token) abort();
      aa_opts_free(&o);
    } else {
      /* Failure: a recorded error, and nothing left allocated. */
      aa_errcode code = AA_E_COUNT;
      if (aa_err_recorded(conn, &code) == SQLITE_OK) abort();
      if (code != AA_E_INVALID_ARGUMENT && code != AA_E_INTERNAL) abort();
      if (o.profile != NULL) abort();
    }
  }
  sqlite3_reset(st);
  return 0;
}
