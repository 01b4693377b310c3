/*
** siteverify.c — reading a CAPTCHA provider's verdict.
**
** The answer comes over the network, so it is untrusted input that decides
** whether somebody may write into the database. The rule is that only an
** unmistakable yes passes: the body must be one strict JSON object (json.c:
** valid UTF-8, no duplicate keys — `{"success":false,"success":true}` must
** not be read either way), `success` must be the literal true (not "true",
** not 1), and the fields we compare must have the types the providers
** document. Anything else is not a verdict at all, and the caller reports
** the provider as unavailable rather than guessing.
**
** Error codes are kept for the caller's message and audit row, so they are
** reduced to the shape the providers use (letters, digits, '-', '_', '.'):
** a hostile endpoint cannot put arbitrary text into either.
*/
#include "anonauth_int.h"

#include <string.h>

#define FIELD_MAX 256 /* hostname, action: config allows at most 255 */

static int code_shape_ok(const char *s, int n) {
  if (n < 1 || n > AA_VERDICT_CODE_MAX) return 0;
  for (int i = 0; i < n; i++) {
    char ch = s[i];
    if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
          ch == '-' || ch == '_' || ch == '.'))
      return 0;
  }
  return 1;
}

static void add_code(aa_verdict *v, const char *code) {
  if (aa_verdict_has_code(v, code)) return;
  if (v->n_codes >= AA_VERDICT_MAX_CODES) {
    v->codes_dropped++;
    return;
  }
  memcpy(v->codes[v->n_codes], code, strlen(code) + 1);
  v->n_codes++;
}

int aa_verdict_has_code(const aa_verdict *v, const char *code) {
  for (int i = 0; i < v->n_codes; i++) {
    if (strcmp(v->codes[i], code) == 0) return 1;
  }
  return 0;
}

static int read_codes(const aa_json *j, int arr, aa_verdict *v) {
  int n = aa_json_object_size(j, arr);
  int tok = arr + 1;
  for (int i = 0; i < n; i++, tok++) {
    char buf[AA_VERDICT_CODE_MAX + 1];
    int len = 0;
    int rc;
    if (aa_json_type(j, tok) != AA_JSON_STRING) return 0;
    rc = aa_json_string(j, tok, buf, (int)sizeof(buf), &len);
    if (rc == SQLITE_OK && code_shape_ok(buf, len)) {
      add_code(v, buf);
    } else if (rc == SQLITE_OK || rc == SQLITE_TOOBIG) {
      add_code(v, "unrecognised-error-code");
    } else {
      return 0;
    }
  }
  return 1;
}

/* A string field that may also be null or absent (providers leave hostname
** and action empty or out of failed answers). *state: 0 absent or null,
** 1 read into out, 2 present but longer than out. */
static int read_field(const aa_json *j, int tok, char *out, int cap, int *state) {
  int rc;
  if (aa_json_is_null(j, tok)) {
    *state = 0;
    return 1;
  }
  if (aa_json_type(j, tok) != AA_JSON_STRING) return 0;
  rc = aa_json_string(j, tok, out, cap, NULL);
  if (rc == SQLITE_TOOBIG) {
    *state = 2;
    return 1;
  }
  if (rc != SQLITE_OK) return 0;
  *state = 1;
  return 1;
}

int aa_siteverify_parse(const char *body, int len, const char *want_hostname,
                        const char *want_action, aa_verdict *v, const char **why) {
  aa_json j;
  char hostname[FIELD_MAX], action[FIELD_MAX];
  int has_success = 0, host_state = 0, action_state = 0;
  const char *json_why = NULL;
  int rc;

  memset(v, 0, sizeof(*v));
  *why = NULL;
  if (body == NULL || len <= 0) {
    *why = "an empty body";
    return SQLITE_MISMATCH;
  }
  if (len > AA_HTTP_BODY_MAX) {
    *why = "a body larger than 64 KiB";
    return SQLITE_MISMATCH;
  }
  rc = aa_json_parse(&j, body, len, &json_why);
  if (rc == SQLITE_NOMEM) return SQLITE_NOMEM;
  if (rc != SQLITE_OK) {
    /* json.c's reasons are static strings; a duplicate key gets its own
    ** words because it is the one that looks like an attack. */
    *why = json_why && strcmp(json_why, "duplicate key") == 0 ? "JSON with a duplicate key"
                                                              : "a body that is not JSON";
    return SQLITE_MISMATCH;
  }
  if (aa_json_type(&j, 0) != AA_JSON_OBJECT) {
    aa_json_free(&j);
    *why = "JSON that is not an object";
    return SQLITE_MISMATCH;
  }
  for (int m = 0; m < aa_json_object_size(&j, 0); m++) {
    int key, val;
    aa_json_member(&j, 0, m, &key, &val);
    if (aa_json_string_eq(&j, key, "success")) {
      const char *p;
      int n;
      aa_json_span(&j, val, &p, &n);
      if (aa_json_is_true(&j, val)) {
        v->provider_success = 1;
      } else if (!(aa_json_type(&j, val) == AA_JSON_PRIMITIVE && n == 5 &&
                   memcmp(p, "false", 5) == 0)) {
        *why = "a success member that is not a boolean";
        goto invalid;
      }
      has_success = 1;
    } else if (aa_json_string_eq(&j, key, "error-codes")) {
      if (aa_json_type(&j, val) != AA_JSON_ARRAY || !read_codes(&j, val, v)) {
        *why = "error-codes that are not an array of strings";
        goto invalid;
      }
    } else if (aa_json_string_eq(&j, key, "hostname")) {
      if (!read_field(&j, val, hostname, (int)sizeof(hostname), &host_state)) {
        *why = "a hostname that is not a string";
        goto invalid;
      }
    } else if (aa_json_string_eq(&j, key, "action")) {
      if (!read_field(&j, val, action, (int)sizeof(action), &action_state)) {
        *why = "an action that is not a string";
        goto invalid;
      }
    }
    /* Other members (challenge_ts, cdata, credit, metadata, score, ...) are
    ** the providers' to add; they were validated as JSON and are ignored. */
  }
  aa_json_free(&j);
  if (!has_success) {
    memset(v, 0, sizeof(*v));
    *why = "JSON without a success member";
    return SQLITE_MISMATCH;
  }
  v->success = v->provider_success;
  if (v->success && want_hostname &&
      !(host_state == 1 && sqlite3_stricmp(hostname, want_hostname) == 0)) {
    v->success = 0;
    add_code(v, "hostname-mismatch");
  }
  if (v->success && want_action && !(action_state == 1 && strcmp(action, want_action) == 0)) {
    v->success = 0;
    add_code(v, "action-mismatch");
  }
  return SQLITE_OK;

invalid:
  aa_json_free(&j);
  memset(v, 0, sizeof(*v));
  return SQLITE_MISMATCH;
}
