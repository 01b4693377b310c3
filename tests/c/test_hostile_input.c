/*
** Every SQL function x every argument position x every bad value, generated
** from two tables below rather than picked by hand. Each call must either
** fail with a documented "anonauth: <code>: ..." error (or SQLite's own
** argument-count error) and change nothing, or succeed with a value; a
** crash, a leak (ASan/valgrind passes) or a partial write fails the test.
*/
#include "harness.h"

#include <stdint.h>

/* ---- bad values --------------------------------------------------------- */

typedef struct {
  const char *name;
  int type; /* SQLITE_NULL, _INTEGER, _FLOAT, _BLOB, _TEXT */
  sqlite3_int64 i;
  double d;
  const char *bytes; /* text or blob (NULL: generated) */
  int len;           /* -1: strlen */
} bad_value;

#define MIB (1024 * 1024)
static char *big_text, *big_blob, *deep_json, *deep_profile, *many_keys;

static const bad_value bad_values[] = {
    {"NULL", SQLITE_NULL, 0, 0, NULL, 0},
    {"0", SQLITE_INTEGER, 0, 0, NULL, 0},
    {"-1", SQLITE_INTEGER, -1, 0, NULL, 0},
    {"INT64_MAX", SQLITE_INTEGER, INT64_MAX, 0, NULL, 0},
    {"INT64_MIN", SQLITE_INTEGER, INT64_MIN, 0, NULL, 0},
    {"1.5", SQLITE_FLOAT, 0, 1.5, NULL, 0},
    {"-0.0", SQLITE_FLOAT, 0, -0.0, NULL, 0},
    {"1e308", SQLITE_FLOAT, 0, 1e308, NULL, 0},
    {"empty blob", SQLITE_BLOB, 0, 0, "", 0},
    {"blob 00", SQLITE_BLOB, 0, 0, "\0", 1},
    {"blob {}", SQLITE_BLOB, 0, 0, "{}", 2},
    {"1 MiB blob", SQLITE_BLOB, 0, 0, NULL, MIB},
    {"empty text", SQLITE_TEXT, 0, 0, "", 0},
    {"1 MiB text", SQLITE_TEXT, 0, 0, NULL, MIB},
    {"invalid UTF-8", SQLITE_TEXT, 0, 0, "\xff\xfe\xc0\x80", 4},
    {"embedded NUL", SQLITE_TEXT, 0, 0, "ab\0cd", 5},
    {"SQL injection", SQLITE_TEXT, 0, 0, "'); DROP TABLE anonauth_users; --", -1},
    {"SQL injection 2", SQLITE_TEXT, 0, 0, "' OR 1=1 --", -1},
    {"token-shaped", SQLITE_TEXT, 0, 0, "anonauth_sess_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", -1},
    {"token-shaped, bad alphabet", SQLITE_TEXT, 0, 0, "anonauth_sess_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA+=", -1},
    {"JSON: number", SQLITE_TEXT, 0, 0, "123", -1},
    {"JSON: string", SQLITE_TEXT, 0, 0, "\"str\"", -1},
    {"JSON: array", SQLITE_TEXT, 0, 0, "[]", -1},
    {"JSON: null", SQLITE_TEXT, 0, 0, "null", -1},
    {"JSON: truncated", SQLITE_TEXT, 0, 0, "{\"ip\":\"1.2.3.4\"", -1},
    {"JSON: duplicate keys", SQLITE_TEXT, 0, 0, "{\"ip\":\"1.2.3.4\",\"ip\":\"1.2.3.4\"}", -1},
    {"JSON: huge number", SQLITE_TEXT, 0, 0, "{\"profile\":{\"n\":1e999999}}", -1},
    {"JSON: long number", SQLITE_TEXT, 0, 0, "{\"profile\":{\"n\":123456789012345678901234567890123}}", -1},
    {"JSON: NUL escape", SQLITE_TEXT, 0, 0, "{\"user_agent\":\"a\\u0000b\"}", -1},
    {"JSON: lone surrogate", SQLITE_TEXT, 0, 0, "{\"user_agent\":\"\\udc00\"}", -1},
    {"JSON: wrong type", SQLITE_TEXT, 0, 0, "{\"ip\":[\"1.2.3.4\"]}", -1},
    {"JSON: deep nesting", SQLITE_TEXT, 0, 0, NULL, 0},
    {"JSON: deep profile", SQLITE_TEXT, 0, 0, NULL, 0},
    {"JSON: many keys", SQLITE_TEXT, 0, 0, NULL, 0},
    {"JSON: BOM", SQLITE_TEXT, 0, 0, "\xef\xbb\xbf{}", -1},
    {"JSON: comment", SQLITE_TEXT, 0, 0, "{/* c */}", -1},
};
#define N_BAD ((int)(sizeof bad_values / sizeof bad_values[0]))

static void bind_bad(sqlite3_stmt *st, int pos, const bad_value *v) {
  const char *bytes = v->bytes;
  int len = v->len;
  if (strcmp(v->name, "1 MiB text") == 0) bytes = big_text;
  if (strcmp(v->name, "1 MiB blob") == 0) bytes = big_blob;
  if (strcmp(v->name, "JSON: deep nesting") == 0) bytes = deep_json, len = -1;
  if (strcmp(v->name, "JSON: deep profile") == 0) bytes = deep_profile, len = -1;
  if (strcmp(v->name, "JSON: many keys") == 0) bytes = many_keys, len = -1;
  if (len < 0 && bytes) len = (int)strlen(bytes);
  switch (v->type) {
    case SQLITE_NULL: sqlite3_bind_null(st, pos); break;
    case SQLITE_INTEGER: sqlite3_bind_int64(st, pos, v->i); break;
    case SQLITE_FLOAT: sqlite3_bind_double(st, pos, v->d); break;
    case SQLITE_BLOB: sqlite3_bind_blob(st, pos, bytes, len, SQLITE_TRANSIENT); break;
    default: sqlite3_bind_text(st, pos, bytes, len, SQLITE_TRANSIENT); break;
  }
}

/* ---- functions ---------------------------------------------------------- */

typedef struct {
  const char *name;
  int n_args;
  const char *defaults[4]; /* SQL expressions; "TOKEN" is a live token */
} function_def;

static const function_def functions[] = {
    {"anon_signin", 1, {"'{}'"}},
    {"session_valid", 1, {"TOKEN"}},
    {"session_user", 1, {"TOKEN"}},
    {"user_is_anonymous", 1, {"1"}},
    {"anon_signout", 1, {"TOKEN"}},
    {"session_revoke_all", 1, {"1"}},
    {"anonauth_config", 1, {"'session.max_age'"}},
    {"anonauth_config", 2, {"'session.max_age'", "3600"}},
    {"anonauth_config", 2, {"'captcha.url'", "'https://example.com/v'"}},
    {"anonauth_config", 2, {"'link.merge_sql'", "'UPDATE cart SET user_id = :to_user WHERE user_id = :from_user'"}},
    {"anonauth_set_clock", 1, {"NULL"}},
    {"anonauth_version", 0, {NULL}},
};
#define N_FUNCTIONS ((int)(sizeof functions / sizeof functions[0]))

static const char *const documented_codes[] = {
    "invalid_argument", "invalid_session", "storage", "internal", "reentrant_call",
    "account_exists", "invalid_credentials", "rate_limited", "merge_failed",
    "captcha_required", "captcha_rejected", "captcha_unavailable", "captcha_misconfigured",
    "purge_failed", "transaction_required", NULL};

static int documented_error(const char *msg) {
  if (msg == NULL) return 0;
  if (strncmp(msg, "anonauth: ", 10) == 0) {
    for (int i = 0; documented_codes[i]; i++) {
      size_t n = strlen(documented_codes[i]);
      if (strncmp(msg + 10, documented_codes[i], n) == 0 && strncmp(msg + 10 + n, ": ", 2) == 0)
        return 1;
    }
  }
  return 0;
}

/* A fingerprint of everything anonauth stores. */
static void snapshot(sqlite3 *db, char *out, size_t cap) {
  harness_text(db,
               "SELECT (SELECT count(*) FROM anonauth_users) || '/' || "
               "(SELECT count(*) FROM anonauth_sessions) || '/' || "
               "(SELECT count(*) FROM anonauth_sessions WHERE revoked_at IS NOT NULL) || '/' || "
               "(SELECT count(*) FROM anonauth_audit) || '/' || "
               "(SELECT group_concat(key || '=' || value) FROM anonauth_config) || '/' || "
               "(SELECT count(*) FROM anonauth_accounts) || '/' || "
               "(SELECT total(tokens) FROM anonauth_rate_limits)",
               out, cap);
}

int main(void) {
  char path[512];
  char token[64];
  sqlite3 *db;
  int calls = 0, errors = 0, bad_errors = 0, changed = 0, secret_echo = 0;
  check_label = getenv("TEST_LABEL") ? getenv("TEST_LABEL") : "c";
  harness_path(path, sizeof path, "hostile_input");
  harness_remove(path);

  big_text = malloc(MIB + 1);
  big_blob = malloc(MIB);
  deep_json = malloc(200002 + 1);
  deep_profile = malloc(1000);
  many_keys = malloc(40000);
  if (!big_text || !big_blob || !deep_json || !deep_profile || !many_keys) return 1;
  memset(big_text, 'a', MIB);
  big_text[MIB] = 0;
  memset(big_blob, 'A', MIB);
  memset(deep_json, '[', 100001);
  memset(deep_json + 100001, ']', 100001);
  deep_json[200002] = 0;
  {
    int o = sprintf(deep_profile, "{\"profile\":");
    for (int i = 0; i < 70; i++) o += sprintf(deep_profile + o, "{\"a\":");
    o += sprintf(deep_profile + o, "1");
    for (int i = 0; i < 70; i++) deep_profile[o++] = '}';
    deep_profile[o++] = '}';
    deep_profile[o] = 0;
  }
  {
    int o = sprintf(many_keys, "{\"profile\":{");
    for (int i = 0; i < 2000; i++) o += sprintf(many_keys + o, "%s\"k%d\":%d", i ? "," : "", i, i);
    sprintf(many_keys + o, "}}");
  }

  db = harness_open(path);
  REQUIRE(db != NULL, "opens the database");
  sqlite3_exec(db, "PRAGMA journal_mode=WAL; CREATE TABLE cart(user_id, item);", NULL, NULL, NULL);
  REQUIRE(harness_text(db, "SELECT anon_signin()", token, sizeof token) == SQLITE_OK,
          "a live token to use as the default argument");

  for (int f = 0; f < N_FUNCTIONS; f++) {
    const function_def *fd = &functions[f];
    for (int pos = 0; pos < (fd->n_args ? fd->n_args : 1); pos++) {
      for (int b = 0; b < N_BAD; b++) {
        char sql[512], before[512], after[512];
        sqlite3_stmt *st = NULL;
        int o = snprintf(sql, sizeof sql, "SELECT %s(", fd->name);
        int rc;
        for (int a = 0; a < fd->n_args; a++) {
          const char *arg = a == pos ? "?1" : strcmp(fd->defaults[a], "TOKEN") == 0 ? "?2" : fd->defaults[a];
          o += snprintf(sql + o, sizeof sql - (size_t)o, "%s%s", a ? ", " : "", arg);
        }
        snprintf(sql + o, sizeof sql - (size_t)o, ")");
        if (fd->n_args == 0 && b > 0) break; /* no argument to vary */
        snapshot(db, before, sizeof before);
        if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
          CHECK(0, "%s prepares", sql);
          continue;
        }
        if (fd->n_args > 0) bind_bad(st, 1, &bad_values[b]);
        sqlite3_bind_text(st, 2, token, -1, SQLITE_TRANSIENT);
        rc = sqlite3_step(st);
        calls++;
        if (rc != SQLITE_ROW) {
          const char *msg = sqlite3_errmsg(db);
          errors++;
          if (!documented_error(msg)) {
            bad_errors++;
            printf("    %s(%s at %d): undocumented error: %.120s\n", fd->name, bad_values[b].name,
                   pos + 1, msg);
          }
          if (strstr(msg, "anonauth_sess_A")) {
            secret_echo++;
            printf("    %s(%s at %d) echoed its input: %.100s\n", fd->name, bad_values[b].name, pos + 1, msg);
          }
          sqlite3_finalize(st);
          snapshot(db, after, sizeof after);
          if (strcmp(before, after) != 0) {
            changed++;
            printf("    %s(%s at %d) failed but changed %s -> %s\n", fd->name, bad_values[b].name,
                   pos + 1, before, after);
          }
        } else {
          sqlite3_finalize(st);
        }
        sqlite3_exec(db, "SELECT anonauth_set_clock(NULL)", NULL, NULL, NULL);
        /* keep the default token alive for the next calls */
        if (harness_valid(db, token) != 1)
          harness_text(db, "SELECT anon_signin()", token, sizeof token);
      }
    }
  }
  CHECK(calls > 300, "%d generated calls ran (%d functions x positions x %d bad values)", calls,
        N_FUNCTIONS, N_BAD);
  CHECK(bad_errors == 0, "every error was a documented anonauth error (%d errors)", errors);
  CHECK(changed == 0, "no failing call changed anything");
  CHECK(secret_echo == 0, "no error echoed token text");
  CHECK(harness_int(db, "SELECT count(*) FROM sqlite_master WHERE name = 'anonauth_users'") == 1,
        "the injection text dropped nothing");
  {
    char ok[32];
    harness_text(db, "PRAGMA integrity_check", ok, sizeof ok);
    CHECK(strcmp(ok, "ok") == 0, "PRAGMA integrity_check is ok");
  }
  CHECK(sqlite3_close(db) == SQLITE_OK, "closes with sqlite3_close()");
  harness_remove(path);
  free(big_text);
  free(big_blob);
  free(deep_json);
  free(deep_profile);
  free(many_keys);
  return check_done();
}
