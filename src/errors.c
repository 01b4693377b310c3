/*
** errors.c — the connection's error slot and how errors reach SQL.
**
** Every error a SQL user sees reads "anonauth: <code>: <detail>". Internal
** functions record the first error of a call here and pass the SQLite result
** code up; the SQL function that was called turns the slot into its result.
** The first error wins because it is the most specific one: callers further
** up only add context the user already has.
**
** The slot (struct aa_err_slot in aa_conn) is read and written only here.
** Every message leaves through err_message(), for SQL functions
** (aa_result_error) and virtual tables (aa_vtab_error) alike, so every one
** gets the same token redaction.
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
    [AA_E_WEAK_SECRET] = "weak_secret",
    [AA_E_JWT_MISCONFIGURED] = "jwt_misconfigured",
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
  c->err.set = 1;
  c->err.rc = rc;
  c->err.code = code;
  sqlite3_vsnprintf((int)sizeof(c->err.detail), c->err.detail, fmt, ap);
}

int aa_err(aa_conn *c, int rc, aa_errcode code, const char *fmt, ...) {
  rc = normalise_rc(rc);
  if (!c->err.set) {
    va_list ap;
    va_start(ap, fmt);
    record(c, rc, code, fmt, ap);
    va_end(ap);
  }
  return rc;
}

int aa_err_after_commit(aa_conn *c, aa_errcode code, const char *fmt, ...) {
  if (!c->err.set) {
    va_list ap;
    va_start(ap, fmt);
    record(c, SQLITE_ERROR, code, fmt, ap);
    va_end(ap);
    c->err.after_commit = 1;
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
  c->err.set = 0;
  c->err.rc = SQLITE_OK;
  c->err.after_commit = 0;
  c->err.detail[0] = 0;
}

int aa_err_recorded(const aa_conn *c, aa_errcode *code) {
  if (!c->err.set) return SQLITE_OK;
  if (code != NULL) *code = c->err.code;
  return c->err.rc;
}

int aa_err_deferred(const aa_conn *c) {
  return c->err.set && c->err.after_commit ? c->err.rc : SQLITE_OK;
}

int aa_err_reframe(aa_conn *c, int rc, aa_errcode code, const char *before,
                   const char *after) {
  char detail[sizeof(c->err.detail)];
  if (!c->err.set) aa_err(c, rc, AA_E_INTERNAL, "%s", sqlite3_errstr(rc));
  if (c->err.rc == SQLITE_NOMEM) return c->err.rc;
  sqlite3_snprintf((int)sizeof(detail), detail, "%s", c->err.detail);
  aa_err_clear(c);
  return aa_err(c, SQLITE_ERROR, code, "%s%s%s", before, detail, after);
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

/* The one place a user-facing message is built: "anonauth: <code>: <detail>"
** for the recorded error (or a generic one for rc), tokens masked. NULL when
** out of memory; *out_rc is the result code to report. */
static char *err_message(aa_conn *c, int rc, int *out_rc) {
  char *msg;
  if (!c->err.set) aa_err(c, rc, AA_E_INTERNAL, "%s", sqlite3_errstr(rc));
  *out_rc = c->err.rc;
  if (c->err.rc == SQLITE_NOMEM) return NULL;
  msg = sqlite3_mprintf("anonauth: %s: %s", aa_errcode_name(c->err.code), c->err.detail);
  if (msg == NULL) {
    *out_rc = SQLITE_NOMEM;
    return NULL;
  }
  redact_tokens(msg);
  return msg;
}

void aa_result_error(sqlite3_context *ctx, aa_conn *c, int rc) {
  int out_rc;
  char *msg = err_message(c, rc, &out_rc);
  if (msg == NULL) {
    sqlite3_result_error_nomem(ctx);
    return;
  }
  sqlite3_result_error(ctx, msg, -1);
  sqlite3_result_error_code(ctx, out_rc);
  sqlite3_free(msg);
}

int aa_vtab_error(aa_conn *c, int rc, char **errmsg) {
  int out_rc;
  sqlite3_free(*errmsg);
  *errmsg = err_message(c, rc, &out_rc);
  return out_rc;
}
