/*
** opts.c — the JSON options object taken by the sign-in functions.
**
** {"ip": "...", "user_agent": "...", "profile": {...}, "captcha": "...",
**  "anon_token": "..."}: which keys a function accepts is its caller's
** choice (a mask). Anything unexpected — an unknown key, a wrong type, a
** duplicate key, malformed JSON, an oversized value — is invalid_argument,
** decided before anything is written. A key whose value is null counts as
** absent, because apps build this object from optional request fields.
**
** Also the strict readers of plain arguments: SQLite passes values of any
** type to any function, and anonauth does not guess. A user id is an
** INTEGER, not the text '5', so that a mistake in the caller shows up as an
** error instead of a silent miss. A REAL holding an exact integer (5.0) is
** that integer, as it is to SQLite's own functions: some drivers
** (better-sqlite3 for every JavaScript number) bind all numbers as REAL.
*/
#include "anonauth_int.h"

#include <string.h>

static int bad(aa_conn *c, const char *fmt, const char *what) {
  return aa_err(c, SQLITE_ERROR, AA_E_INVALID_ARGUMENT, fmt, what);
}

static int read_string(aa_conn *c, const aa_json *j, int tok, const char *name,
                       char *out, int cap, int *len) {
  int rc;
  if (aa_json_type(j, tok) != AA_JSON_STRING) return bad(c, "opts.%s must be a string", name);
  rc = aa_json_string(j, tok, out, cap, len);
  if (rc == SQLITE_TOOBIG) return SQLITE_TOOBIG;
  if (rc != SQLITE_OK) return bad(c, "opts.%s is not a valid string", name);
  return SQLITE_OK;
}

static int take_member(aa_conn *c, const aa_json *j, int key, int val,
                       unsigned allowed, aa_opts *o) {
  char name[32];
  int name_len = 0;
  int rc = aa_json_string(j, key, name, (int)sizeof(name), &name_len);
  unsigned which = 0;
  int len = 0;

  if (rc == SQLITE_OK) {
    if (strcmp(name, "ip") == 0) which = AA_OPT_IP;
    else if (strcmp(name, "user_agent") == 0) which = AA_OPT_USER_AGENT;
    else if (strcmp(name, "profile") == 0) which = AA_OPT_PROFILE;
    else if (strcmp(name, "captcha") == 0) which = AA_OPT_CAPTCHA;
    else if (strcmp(name, "anon_token") == 0) which = AA_OPT_ANON_TOKEN;
    else if (strcmp(name, "code") == 0) which = AA_OPT_CODE;
  }
  if (!(which & allowed)) {
    if (rc == SQLITE_OK && name_len > 0 && aa_printable_ascii(name, name_len))
      return aa_err(c, SQLITE_ERROR, AA_E_INVALID_ARGUMENT, "opts: unknown key '%s'", name);
    return aa_err(c, SQLITE_ERROR, AA_E_INVALID_ARGUMENT, "opts: unknown key");
  }
  if (aa_json_is_null(j, val)) return SQLITE_OK;

  switch (which) {
    case AA_OPT_IP: {
      char ip[64];
      rc = read_string(c, j, val, "ip", ip, (int)sizeof(ip), &len);
      if (rc == SQLITE_TOOBIG || (rc == SQLITE_OK &&
                                  aa_ip_parse(ip, len, o->ip, o->ip_limit_key) != SQLITE_OK))
        return bad(c, "opts.%s must be an IPv4 or IPv6 address", "ip");
      if (rc != SQLITE_OK) return rc;
      o->has_ip = 1;
      return SQLITE_OK;
    }
    case AA_OPT_USER_AGENT:
      rc = read_string(c, j, val, "user_agent", o->user_agent, (int)sizeof(o->user_agent), &len);
      if (rc == SQLITE_TOOBIG)
        return aa_err(c, SQLITE_ERROR, AA_E_INVALID_ARGUMENT,
                      "opts.user_agent is longer than %d bytes", AA_USER_AGENT_MAX_BYTES);
      if (rc != SQLITE_OK) return rc;
      o->has_user_agent = 1;
      return SQLITE_OK;
    case AA_OPT_PROFILE: {
      const char *p;
      int n;
      if (aa_json_type(j, val) != AA_JSON_OBJECT) return bad(c, "opts.%s must be a JSON object", "profile");
      aa_json_span(j, val, &p, &n);
      if (n > AA_PROFILE_MAX_BYTES)
        return aa_err(c, SQLITE_ERROR, AA_E_INVALID_ARGUMENT,
                      "opts.profile is larger than %d bytes", AA_PROFILE_MAX_BYTES);
      o->profile = sqlite3_mprintf("%.*s", n, p);
      if (o->profile == NULL) return aa_err_nomem(c);
      o->has_profile = 1;
      return SQLITE_OK;
    }
    case AA_OPT_CAPTCHA:
      rc = read_string(c, j, val, "captcha", o->captcha, (int)sizeof(o->captcha), &len);
      if (rc == SQLITE_TOOBIG) {
        o->captcha_oversized = 1; /* rejected by the CAPTCHA check, not here */
        o->captcha[0] = 0;
      } else if (rc != SQLITE_OK) {
        return rc;
      }
      o->has_captcha = 1;
      return SQLITE_OK;
    case AA_OPT_ANON_TOKEN:
      rc = read_string(c, j, val, "anon_token", o->anon_token, (int)sizeof(o->anon_token), &len);
      if (rc == SQLITE_TOOBIG) {
        o->anon_token_malformed = 1;
        o->anon_token[0] = 0;
      } else if (rc != SQLITE_OK) {
        return rc;
      }
      o->has_anon_token = 1;
      return SQLITE_OK;
    case AA_OPT_CODE:
      rc = read_string(c, j, val, "code", o->code, (int)sizeof(o->code), &len);
      if (rc == SQLITE_TOOBIG || (rc == SQLITE_OK && len < 1))
        return bad(c, "opts.%s must be text of 1 to 64 bytes", "code");
      if (rc != SQLITE_OK) return rc;
      o->has_code = 1;
      return SQLITE_OK;
  }
  return aa_err(c, SQLITE_INTERNAL, AA_E_INTERNAL, "unhandled option");
}

int aa_opts_parse(aa_conn *c, sqlite3_value *v, unsigned allowed, aa_opts *o) {
  aa_json j;
  const char *why = NULL;
  const char *text;
  int len, rc;

  memset(o, 0, sizeof(*o));
  if (v == NULL || sqlite3_value_type(v) == SQLITE_NULL) return SQLITE_OK;
  if (sqlite3_value_type(v) != SQLITE_TEXT)
    return aa_err(c, SQLITE_ERROR, AA_E_INVALID_ARGUMENT, "opts must be a JSON object (text)");
  len = sqlite3_value_bytes(v);
  if (len > AA_OPTS_MAX_BYTES)
    return aa_err(c, SQLITE_ERROR, AA_E_INVALID_ARGUMENT, "opts is larger than %d bytes",
                  AA_OPTS_MAX_BYTES);
  text = (const char *)sqlite3_value_text(v);
  if (text == NULL) return aa_err_nomem(c);

  rc = aa_json_parse(&j, text, len, &why);
  if (rc == SQLITE_NOMEM) return aa_err_nomem(c);
  if (rc != SQLITE_OK)
    return aa_err(c, SQLITE_ERROR, AA_E_INVALID_ARGUMENT, "opts is not valid JSON (%s)", why);
  if (aa_json_type(&j, 0) != AA_JSON_OBJECT) {
    aa_json_free(&j);
    return aa_err(c, SQLITE_ERROR, AA_E_INVALID_ARGUMENT, "opts must be a JSON object");
  }
  for (int m = 0; m < aa_json_object_size(&j, 0); m++) {
    int key, val;
    aa_json_member(&j, 0, m, &key, &val);
    rc = take_member(c, &j, key, val, allowed, o);
    if (rc != SQLITE_OK) {
      aa_json_free(&j);
      aa_opts_free(o);
      return rc;
    }
  }
  aa_json_free(&j);
  if (o->has_user_agent &&
      !aa_utf8_valid((const unsigned char *)o->user_agent, (int)strlen(o->user_agent))) {
    aa_opts_free(o);
    return aa_err(c, SQLITE_ERROR, AA_E_INVALID_ARGUMENT, "opts.user_agent is not valid UTF-8");
  }
  return SQLITE_OK;
}

void aa_opts_free(aa_opts *o) {
  sqlite3_free(o->profile);
  o->profile = NULL;
  o->has_profile = 0;
  /* a CAPTCHA response and an anonymous token are credentials */
  memset(o->captcha, 0, sizeof(o->captcha));
  memset(o->anon_token, 0, sizeof(o->anon_token));
}

/* ---- plain arguments ----------------------------------------------------- */

int aa_value_int64(sqlite3_value *v, int64_t *out) {
  double d;
  switch (sqlite3_value_type(v)) {
    case SQLITE_INTEGER:
      *out = sqlite3_value_int64(v);
      return 1;
    case SQLITE_FLOAT:
      d = sqlite3_value_double(v);
      /* -2^63 <= d < 2^63 (false for NaN), then no fractional part. The
      ** bounds are exact doubles, so the cast below is defined. */
      if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0)) return 0;
      if ((double)(int64_t)d != d) return 0;
      *out = (int64_t)d;
      return 1;
    default:
      return 0;
  }
}

int aa_arg_user_id(aa_conn *c, sqlite3_value *v, const char *what, int64_t *out) {
  if (!aa_value_int64(v, out))
    return aa_err(c, SQLITE_ERROR, AA_E_INVALID_ARGUMENT, "%s must be an integer user id",
                  what);
  return SQLITE_OK;
}
