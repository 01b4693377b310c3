/*
** profile.c — user_profile(): reading a user's profile, and changing it with
** a JSON merge patch (RFC 7396).
**
** The profile is the JSON object an app stores on the user
** (anonauth_users.profile, first set by anon_signin's opts.profile). Its
** limits are opts.profile's: at most AA_PROFILE_MAX_BYTES, an object, and
** strict JSON nested no deeper than it could be inside opts. SQLite's
** json_patch() applies the patch; it is lenient (JSON5 in newer releases,
** duplicate keys), so the patch is held to the strict parser first, and so
** is the stored profile, which someone else may have written, and the
** result, before it is stored.
*/
#include "anonauth_int.h"

#include <string.h>

static const char SQL_PROFILE[] = "SELECT profile FROM main.anonauth_users WHERE id = ?1";
static const char SQL_PATCH[] = "SELECT json_patch(?1, ?2)";
static const char SQL_STORE[] = "UPDATE main.anonauth_users SET profile = ?2 WHERE id = ?1";

/* A user with no profile has the empty one. */
static const char EMPTY_PROFILE[] = "{}";

/*
** NULL when text[0..n) could be a profile: a strict JSON object of at most
** AA_PROFILE_MAX_BYTES that would fit in opts.profile, that is, nested at
** most AA_JSON_MAX_DEPTH - 1 levels. Otherwise why not (in msg, or static
** text); *nomem is set when the answer is unknown for lack of memory.
*/
static const char *profile_problem(const char *text, int n, int *nomem, char msg[96]) {
  static const char head[] = "{\"profile\":";
  char *wrapped;
  aa_json j;
  const char *why = NULL;
  int rc, is_object;
  _Static_assert(AA_PROFILE_MAX_BYTES == 4096, "the message below names the limit");
  *nomem = 0;
  if (n > AA_PROFILE_MAX_BYTES) return "larger than 4096 bytes";
  /* The strict parser reads up to a NUL, json_patch() might not. */
  if (!aa_utf8_valid((const unsigned char *)text, n)) return "not valid JSON";
  wrapped = sqlite3_mprintf("%s%.*s}", head, n, text);
  if (wrapped == NULL) {
    *nomem = 1;
    return "out of memory";
  }
  rc = aa_json_parse(&j, wrapped, (int)strlen(wrapped), &why);
  if (rc == SQLITE_NOMEM) *nomem = 1;
  if (rc != SQLITE_OK) {
    sqlite3_free(wrapped);
    if (rc == SQLITE_NOMEM) return "out of memory";
    sqlite3_snprintf(96, msg, "not valid JSON (%s)", why ? why : "malformed");
    return msg;
  }
  /* Token 1 is the key, token 2 the value; a document that closed early
  ** ("1}, {"...) would not have parsed as one object. */
  is_object = aa_json_object_size(&j, 0) == 1 && aa_json_type(&j, 2) == AA_JSON_OBJECT;
  aa_json_free(&j);
  sqlite3_free(wrapped);
  return is_object ? NULL : "not a JSON object";
}

/* The stored profile of user_id in *out (sqlite3_malloc'd; "{}" when it has
** none), or *found = 0. Must run inside a read (or the atomic call). */
static int load(aa_conn *c, int64_t user_id, int *found, char **out) {
  sqlite3_stmt *st;
  int rc = aa_stmt_get(c, SQL_PROFILE, &st);
  *found = 0;
  *out = NULL;
  if (rc != SQLITE_OK) return rc;
  sqlite3_bind_int64(st, 1, user_id);
  rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    const char *p = (const char *)sqlite3_column_text(st, 0);
    int n = sqlite3_column_bytes(st, 0);
    *found = 1;
    if (p == NULL && sqlite3_column_type(st, 0) != SQLITE_NULL) {
      rc = aa_err_nomem(c);
    } else {
      if (p == NULL) {
        p = EMPTY_PROFILE;
        n = (int)strlen(EMPTY_PROFILE);
      }
      *out = sqlite3_mprintf("%.*s", n, p);
      rc = *out ? SQLITE_OK : aa_err_nomem(c);
    }
  } else if (rc == SQLITE_DONE) {
    rc = SQLITE_OK;
  } else {
    rc = aa_err_storage(c, rc);
  }
  aa_stmt_release(st);
  return rc;
}

typedef struct {
  int64_t user_id;
  const char *patch;
  int patch_len;
  int found;
  char *result; /* sqlite3_malloc'd */
} profile_call;

static int patch_body(aa_conn *c, void *arg) {
  profile_call *p = arg;
  sqlite3_stmt *st;
  char *old = NULL;
  const char *why;
  char detail[32], msg[96];
  int nomem, rc, n;

  rc = load(c, p->user_id, &p->found, &old);
  if (rc != SQLITE_OK || !p->found) return rc;
  if (old == NULL) return aa_err_nomem(c); /* load() recorded it */
  why = profile_problem(old, (int)strlen(old), &nomem, msg);
  if (why != NULL) {
    sqlite3_free(old);
    if (nomem) return aa_err_nomem(c);
    /* Written around anonauth (anon_signin checks what it stores). */
    return aa_err(c, SQLITE_ERROR, AA_E_STORAGE,
                  "the stored profile of user %lld is %s, so it cannot be patched; "
                  "replace it with an UPDATE first",
                  (long long)p->user_id, why);
  }

  rc = aa_stmt_get(c, SQL_PATCH, &st);
  if (rc != SQLITE_OK) {
    sqlite3_free(old);
    return rc;
  }
  sqlite3_bind_text(st, 1, old, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, p->patch, p->patch_len, SQLITE_STATIC);
  rc = sqlite3_step(st);
  if (rc == SQLITE_ROW && sqlite3_column_type(st, 0) == SQLITE_TEXT) {
    const char *r = (const char *)sqlite3_column_text(st, 0);
    n = sqlite3_column_bytes(st, 0);
    p->result = r ? sqlite3_mprintf("%.*s", n, r) : NULL; /* NULL: checked below */
    rc = SQLITE_OK;
  } else if (rc == SQLITE_ROW || rc == SQLITE_DONE) {
    rc = aa_err(c, SQLITE_ERROR, AA_E_INTERNAL, "json_patch returned no text");
  } else {
    rc = aa_err_storage(c, rc);
  }
  aa_stmt_release(st);
  sqlite3_free(old);
  if (rc != SQLITE_OK) return rc;
  if (p->result == NULL) return aa_err_nomem(c);

  n = (int)strlen(p->result);
  why = profile_problem(p->result, n, &nomem, msg);
  if (why != NULL) {
    if (nomem) return aa_err_nomem(c);
    return aa_err(c, SQLITE_ERROR, AA_E_INVALID_ARGUMENT,
                  "the patched profile would be %s (the limits of opts.profile)", why);
  }

  rc = aa_stmt_get(c, SQL_STORE, &st);
  if (rc != SQLITE_OK) return rc;
  sqlite3_bind_int64(st, 1, p->user_id);
  sqlite3_bind_text(st, 2, p->result, n, SQLITE_STATIC);
  rc = aa_stmt_exec(c, st);
  if (rc != SQLITE_OK) return rc;
  /* The size only: the profile is the user's data, not the trail's. */
  sqlite3_snprintf((int)sizeof(detail), detail, "{\"bytes\":%d}", n);
  return aa_audit(c, "profile_update", p->user_id, AA_NO_ID, NULL, detail);
}

static void read_profile(sqlite3_context *ctx, aa_conn *c, int64_t user_id) {
  char *profile = NULL;
  int found = 0;
  int rc = aa_schema_check(c);
  if (rc == SQLITE_NOTFOUND) return; /* no tables yet: no such user */
  if (rc == SQLITE_OK) rc = load(c, user_id, &found, &profile);
  if (rc != SQLITE_OK) {
    aa_result_error(ctx, c, rc);
    return;
  }
  if (found) sqlite3_result_text(ctx, profile, -1, sqlite3_free);
}

void aa_fn_user_profile(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  aa_conn *c = sqlite3_user_data(ctx);
  profile_call p;
  const char *why;
  char msg[96];
  int rc, nomem;
  aa_err_clear(c);
  memset(&p, 0, sizeof(p));

  if (argc == 1) {
    if (sqlite3_value_type(argv[0]) == SQLITE_NULL) return;
    rc = aa_arg_user_id(c, argv[0], "user_id", &p.user_id);
    if (rc != SQLITE_OK) {
      aa_result_error(ctx, c, rc);
      return;
    }
    read_profile(ctx, c, p.user_id);
    return;
  }

  /* Everything about the arguments is decided before the write lock. */
  rc = aa_arg_user_id(c, argv[0], "user_id", &p.user_id);
  if (rc == SQLITE_OK && sqlite3_value_type(argv[1]) != SQLITE_TEXT)
    rc = aa_err(c, SQLITE_ERROR, AA_E_INVALID_ARGUMENT,
                "patch must be a JSON object (text)");
  if (rc == SQLITE_OK) {
    p.patch = (const char *)sqlite3_value_text(argv[1]);
    p.patch_len = sqlite3_value_bytes(argv[1]);
    if (p.patch == NULL) rc = aa_err_nomem(c);
  }
  if (rc == SQLITE_OK) {
    why = profile_problem(p.patch, p.patch_len, &nomem, msg);
    if (why != NULL)
      rc = nomem ? aa_err_nomem(c)
                 : aa_err(c, SQLITE_ERROR, AA_E_INVALID_ARGUMENT, "patch is %s", why);
  }
  if (rc == SQLITE_OK) rc = aa_atomic(c, patch_body, &p);
  if (rc != SQLITE_OK) {
    sqlite3_free(p.result);
    aa_result_error(ctx, c, rc);
    return;
  }
  if (p.found)
    sqlite3_result_text(ctx, p.result, -1, sqlite3_free);
  else
    sqlite3_free(p.result);
}
