/*
** errors.c — the connection's error slot and how errors reach SQL.
**
** Every error a SQL user sees reads "anonauth: <code>: <detail>". Internal
** functions record the first error of a call here and pass the SQLite result
** code up; the SQL function that was called turns the slot into its result.
** The first error wins because it is the most specific one: callers further
** up only add context the user already has.
*/
#include "anonauth_int.h"

#include <stdarg.h>
#include <string.h>

static const char *const errcode_names[AA_E_COUNT] = {
    [AA_E_INVALID_ARGUMENT] = "invalid_argument",
    [AA_E_INVALID_SESSION] = "invalid_session",
    [AA_E_STORAGE] = "storage",
    [AA_E_INTERNAL] = "internal",
    [AA_E_REENTRANT] = "reentrant_call",
    [AA_E_ACCOUNT_EXISTS] = "account_exists",
    [AA_E_INVALID_CREDENTIALS] = "invalid_credentials",
    [AA_E_RATE_LIMITED] = "rate_limited",
    [AA_E_MERGE_FAILED] = "merge_failed",
    [AA_E_CAPTCHA_REQUIRED] = "captcha_required",
    [AA_E_CAPTCHA_REJECTED] = "captcha_rejected",
    [AA_E_CAPTCHA_UNAVAILABLE] = "captcha_unavailable",
    [AA_E_CAPTCHA_MISCONFIGURED] = "captcha_misconfigured",
    [AA_E_PURGE_FAILED] = "purge_failed",
    [AA_E_TRANSACTION_REQUIRED] = "transaction_required",
};

const char *aa_errcode_name(aa_errcode code) {
  if ((int)code < 0 || code >= AA_E_COUNT || errcode_names[code] == NULL)
    return "internal";
  return errcode_names[code];
}

static int normalise_rc(int rc) {
  if (rc == SQLITE_OK || rc == SQLITE_ROW || rc == SQLITE_DONE ||
      rc == SQLITE_MISMATCH || rc == SQLITE_NOTFOUND)
    return SQLITE_ERROR;
  return rc;
}

static void record(aa_conn *c, int rc, aa_errcode code, const char *fmt,
                   va_list ap) {
  c->err_set = 1;
  c->err_rc = rc;
  c->err_code = code;
  sqlite3_vsnprintf((int)sizeof(c->err_detail), c->err_detail, fmt, ap);
}

int aa_err(aa_conn *c, int rc, aa_errcode code, const char *fmt, ...) {
  rc = normalise_rc(rc);
  if (!c->err_set) {
    va_list ap;
    va_start(ap, fmt);
    record(c, rc, code, fmt, ap);
    va_end(ap);
  }
  return rc;
}

int aa_err_after_commit(aa_conn *c, aa_errcode code, const char *fmt, ...) {
  if (!c->err_set) {
    va_list ap;
    va_start(ap, fmt);
    record(c, SQLITE_ERROR, code, fmt, ap);
    va_end(ap);
    c->err_after_commit = 1;
  }
  return SQLITE_OK;
}

int aa_err_storage(aa_conn *c, int rc) {
  rc = normalise_rc(rc);
  if (rc == SQLITE_NOMEM) return aa_err_nomem(c);
  return aa_err(c, rc, AA_E_STORAGE, "%s", sqlite3_errmsg(c->db));
}

int aa_err_nomem(aa_conn *c) {
  return aa_err(c, SQLITE_NOMEM, AA_E_INTERNAL, "out of memory");
}

void aa_err_clear(aa_conn *c) {
  c->err_set = 0;
  c->err_rc = SQLITE_OK;
  c->err_after_commit = 0;
  c->err_detail[0] = 0;
}

/* The last line of defence for "no token in any error": SQLite's own
** messages quote SQL (a merge statement, a RAISE() of an app trigger) and
** could carry a token someone pasted there. Token text is masked in place. */
static void redact_tokens(char *msg) {
  char *p = msg;
  while ((p = strstr(p, AA_TOKEN_PREFIX)) != NULL) {
    char *q = p + AA_TOKEN_PREFIX_LEN;
    while ((*q >= 'A' && *q <= 'Z') || (*q >= 'a' && *q <= 'z') || (*q >= '0' && *q <= '9') ||
           *q == '-' || *q == '_')
      *q++ = '*';
    p = q;
  }
}

void aa_result_error(sqlite3_context *ctx, aa_conn *c, int rc) {
  char *msg;
  if (!c->err_set) aa_err(c, rc, AA_E_INTERNAL, "%s", sqlite3_errstr(rc));
  if (c->err_rc == SQLITE_NOMEM) {
    sqlite3_result_error_nomem(ctx);
    return;
  }
  msg = sqlite3_mprintf("anonauth: %s: %s", aa_errcode_name(c->err_code),
                        c->err_detail);
  if (msg == NULL) {
    sqlite3_result_error_nomem(ctx);
    return;
  }
  redact_tokens(msg);
  sqlite3_result_error(ctx, msg, -1);
  sqlite3_result_error_code(ctx, c->err_rc);
  sqlite3_free(msg);
}
