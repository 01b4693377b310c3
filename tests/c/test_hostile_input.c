/*
** Every SQL function x every argument position x every bad value, generated
** from the tables below rather than picked by hand; then the three virtual
** tables with the same values as constraint values, rowids and column
** values. Each call must either fail with a documented "anonauth: <code>: ..."
** error and change nothing, or succeed with the kind of value its function
** documents; a crash, a leak (the ASan pass), an undocumented error or a
** partial write fails the test.
**
** "Changes nothing" is a fingerprint of every anonauth table taken before
** and after each call. The only writes a failing call may keep are the ones
** the README documents: a refused credential (invalid_credentials,
** rate_limited) commits one audit row and its rate-limit bucket, a refused
** CAPTCHA one audit row, and account_exists keeps the per-address token
** account_signup took before looking (ratelimit.signup_per_hour), a token of
** the account's bucket and one account_exists audit row.
**
** The table of functions is checked against the registration table in
** anonauth.c, so a function added there without a line here fails the test.
**
** The connection runs with SQLITE_DBCONFIG_DEFENSIVE on and
** trusted_schema=OFF: everything must work in that mode too. Passwords are
** hashed at libsodium's minimum cost so that thousands of calls take
** seconds; the CAPTCHA functions talk to the fake provider
** ($ANONAUTH_PROVIDER, started by tests/run.sh) or, without it, to a closed
** loopback port (captcha_unavailable) — never to the internet.
**
** Last, everything the test saw (error messages, audit rows, the virtual
** tables) is searched for secrets: text of any live token, any 64-hex-digit
** string (a token hash), "$argon2" (a password hash), and the secrets the
** test used.
*/
#include "harness.h"

#include <ctype.h>
#include <sodium.h>
#include <stdint.h>
#include <time.h>

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
static char *big_text, *big_blob, *deep_json, *deep_profile, *many_keys, *big_opts;

static const bad_value bad_values[] = {
    {"NULL", SQLITE_NULL, 0, 0, NULL, 0},
    {"0", SQLITE_INTEGER, 0, 0, NULL, 0},
    {"-1", SQLITE_INTEGER, -1, 0, NULL, 0},
    {"INT64_MAX", SQLITE_INTEGER, INT64_MAX, 0, NULL, 0},
    {"INT64_MIN", SQLITE_INTEGER, INT64_MIN, 0, NULL, 0},
    {"1.5", SQLITE_FLOAT, 0, 1.5, NULL, 0},
    {"1.0", SQLITE_FLOAT, 0, 1.0, NULL, 0},
    {"-0.0", SQLITE_FLOAT, 0, -0.0, NULL, 0},
    {"1e308", SQLITE_FLOAT, 0, 1e308, NULL, 0},
    {"empty blob", SQLITE_BLOB, 0, 0, "", 0},
    {"blob 00", SQLITE_BLOB, 0, 0, "\0", 1},
    {"blob {}", SQLITE_BLOB, 0, 0, "{}", 2},
    {"1 MiB blob", SQLITE_BLOB, 0, 0, NULL, MIB},
    {"empty text", SQLITE_TEXT, 0, 0, "", 0},
    {"text '1'", SQLITE_TEXT, 0, 0, "1", -1},
    {"1 MiB text", SQLITE_TEXT, 0, 0, NULL, MIB},
    {"invalid UTF-8", SQLITE_TEXT, 0, 0, "\xff\xfe\xc0\x80", 4},
    {"overlong UTF-8", SQLITE_TEXT, 0, 0, "a\xc0\xafz", 4},
    {"UTF-16 surrogate in UTF-8", SQLITE_TEXT, 0, 0, "\xed\xa0\x80", 3},
    {"embedded NUL", SQLITE_TEXT, 0, 0, "ab\0cd", 5},
    {"control characters", SQLITE_TEXT, 0, 0, "a\r\nb\x1b[2J", -1},
    {"SQL injection", SQLITE_TEXT, 0, 0, "'); DROP TABLE anonauth_users; --", -1},
    {"SQL injection 2", SQLITE_TEXT, 0, 0, "' OR 1=1 --", -1},
    {"SQL: flag pragma", SQLITE_TEXT, 0, 0, "PRAGMA trusted_schema = ON", -1},
    {"SQL: explained pragma", SQLITE_TEXT, 0, 0, "/* x */ EXPLAIN PRAGMA query_only = 1", -1},
    {"token-shaped", SQLITE_TEXT, 0, 0, "anonauth_sess_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", -1},
    {"token-shaped, bad alphabet", SQLITE_TEXT, 0, 0, "anonauth_sess_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA+=", -1},
    {"token-shaped, one short", SQLITE_TEXT, 0, 0, "anonauth_sess_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", -1},
    {"JSON: number", SQLITE_TEXT, 0, 0, "123", -1},
    {"JSON: string", SQLITE_TEXT, 0, 0, "\"str\"", -1},
    {"JSON: array", SQLITE_TEXT, 0, 0, "[]", -1},
    {"JSON: null", SQLITE_TEXT, 0, 0, "null", -1},
    {"JSON: empty object", SQLITE_TEXT, 0, 0, "{}", -1},
    {"JSON: truncated", SQLITE_TEXT, 0, 0, "{\"ip\":\"1.2.3.4\"", -1},
    {"JSON: duplicate keys", SQLITE_TEXT, 0, 0, "{\"ip\":\"1.2.3.4\",\"ip\":\"1.2.3.4\"}", -1},
    {"JSON: escaped duplicate keys", SQLITE_TEXT, 0, 0, "{\"ip\":\"1.2.3.4\",\"\\u0069p\":\"1.2.3.4\"}", -1},
    {"JSON: huge number", SQLITE_TEXT, 0, 0, "{\"profile\":{\"n\":1e999999}}", -1},
    {"JSON: long number", SQLITE_TEXT, 0, 0, "{\"profile\":{\"n\":123456789012345678901234567890123}}", -1},
    {"JSON: NUL escape", SQLITE_TEXT, 0, 0, "{\"user_agent\":\"a\\u0000b\"}", -1},
    {"JSON: lone surrogate", SQLITE_TEXT, 0, 0, "{\"user_agent\":\"\\udc00\"}", -1},
    {"JSON: wrong type", SQLITE_TEXT, 0, 0, "{\"ip\":[\"1.2.3.4\"]}", -1},
    {"JSON: profile not an object", SQLITE_TEXT, 0, 0, "{\"profile\":[1,2]}", -1},
    {"JSON: anon_token garbage", SQLITE_TEXT, 0, 0, "{\"anon_token\":\"anonauth_sess_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}", -1},
    {"JSON: anon_token not a string", SQLITE_TEXT, 0, 0, "{\"anon_token\":5}", -1},
    {"JSON: anon_token oversized", SQLITE_TEXT, 0, 0, "{\"anon_token\":\"anonauth_sess_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}", -1},
    {"JSON: captcha empty", SQLITE_TEXT, 0, 0, "{\"captcha\":\"\"}", -1},
    {"JSON: captcha not a string", SQLITE_TEXT, 0, 0, "{\"captcha\":{}}", -1},
    {"JSON: ip out of range", SQLITE_TEXT, 0, 0, "{\"ip\":\"256.1.1.1\"}", -1},
    {"JSON: ip with zone", SQLITE_TEXT, 0, 0, "{\"ip\":\"fe80::1%eth0\"}", -1},
    {"JSON: unknown key", SQLITE_TEXT, 0, 0, "{\"is_anonymous\":0}", -1},
    {"JSON: deep nesting", SQLITE_TEXT, 0, 0, NULL, 0},
    {"JSON: deep profile", SQLITE_TEXT, 0, 0, NULL, 0},
    {"JSON: many keys", SQLITE_TEXT, 0, 0, NULL, 0},
    {"JSON: just over 16 KiB", SQLITE_TEXT, 0, 0, NULL, 0},
    {"JSON: BOM", SQLITE_TEXT, 0, 0, "\xef\xbb\xbf{}", -1},
    {"JSON: comment", SQLITE_TEXT, 0, 0, "{/* c */}", -1},
    {"JSON: trailing garbage", SQLITE_TEXT, 0, 0, "{} {}", -1},
};
#define N_BAD ((int)(sizeof bad_values / sizeof bad_values[0]))

static void bad_bytes(const bad_value *v, const char **bytes, int *len) {
  *bytes = v->bytes;
  *len = v->len;
  if (strcmp(v->name, "1 MiB text") == 0) *bytes = big_text;
  if (strcmp(v->name, "1 MiB blob") == 0) *bytes = big_blob;
  if (strcmp(v->name, "JSON: deep nesting") == 0) *bytes = deep_json, *len = -1;
  if (strcmp(v->name, "JSON: deep profile") == 0) *bytes = deep_profile, *len = -1;
  if (strcmp(v->name, "JSON: many keys") == 0) *bytes = many_keys, *len = -1;
  if (strcmp(v->name, "JSON: just over 16 KiB") == 0) *bytes = big_opts, *len = -1;
  if (*len < 0 && *bytes) *len = (int)strlen(*bytes);
}

static void bind_bad(sqlite3_stmt *st, int pos, const bad_value *v) {
  const char *bytes;
  int len;
  bad_bytes(v, &bytes, &len);
  switch (v->type) {
    case SQLITE_NULL: sqlite3_bind_null(st, pos); break;
    case SQLITE_INTEGER: sqlite3_bind_int64(st, pos, v->i); break;
    case SQLITE_FLOAT: sqlite3_bind_double(st, pos, v->d); break;
    case SQLITE_BLOB: sqlite3_bind_blob(st, pos, bytes, len, SQLITE_TRANSIENT); break;
    default: sqlite3_bind_text(st, pos, bytes, len, SQLITE_TRANSIENT); break;
  }
}

/* ---- functions ---------------------------------------------------------- */

/*
** What a call that succeeds must return, as the README documents it:
** 'T' a live session token; 'B' 1 or 0; 'b' 1, 0 or NULL; 'U' an integer or
** NULL; 'N' an integer >= 0; 'S' text; 'J' a JSON object (text) or NULL;
** 'R' a live session token or NULL; 'W' a compact JWS (three parts) or NULL;
** 'A' anything (config values, clock).
*/
typedef struct {
  const char *name;
  int n_args;
  const char *defaults[5]; /* SQL expressions; "TOKEN" is a live token */
  char returns;
  unsigned secret_args; /* bit i: argument i is a token or secret, never echoed */
  const char *setup;     /* SQL run before this function's calls ("@URL@": provider) */
} function_def;

#define PASSWORD "correct horse battery staple"
#define FRESH_ACCOUNT "'acct-' || hex(randomblob(8))"
#define OPTS "'{\"ip\":\"192.0.2.1\",\"user_agent\":\"hostile\"}'"
#define HC_TEST_RESPONSE "'10000000-aaaa-bbbb-cccc-000000000001'"

static const char TURNSTILE_SETUP[] =
    "SELECT anonauth_config('captcha.url', '@URL@/turnstile/v0/siteverify'), "
    "anonauth_config('captcha.secret', 'env:ANONAUTH_HOSTILE_TURNSTILE_SECRET')";
static const char HCAPTCHA_SETUP[] =
    "SELECT anonauth_config('captcha.url', '@URL@/hcaptcha/siteverify'), "
    "anonauth_config('captcha.secret', 'env:ANONAUTH_HOSTILE_HCAPTCHA_SECRET')";

static const char GATE_SETUP[] =
    "SELECT anonauth_config('captcha.url', '@URL@/turnstile/v0/siteverify'), "
    "anonauth_config('captcha.secret', 'env:ANONAUTH_HOSTILE_TURNSTILE_SECRET'), "
    "anonauth_config('captcha.provider', 'turnstile')";
#define GATE_OPTS "'{\"captcha\":\"XXXX.DUMMY.TOKEN.XXXX\",\"ip\":\"192.0.2.7\"}'"

static const char JWT_SETUP[] =
    "SELECT anonauth_config('jwt.issuer', 'https://app.example'), "
    "anonauth_config('jwt.audience', 'api')";
/* A valid access token, made once by the setup (so that the calls
** themselves create nothing). */
static const char JWT_VERIFY_SETUP[] =
    "SELECT anonauth_config('jwt.issuer', 'https://app.example'), "
    "anonauth_config('jwt.audience', 'api');"
    "CREATE TEMP TABLE IF NOT EXISTS hostile_jwt AS SELECT session_jwt(anon_signin()) AS j";
#define JWT_OF_TOKEN "(SELECT j FROM temp.hostile_jwt)"

static const function_def functions[] = {
    {"anon_signin", 0, {NULL}, 'T', 0, NULL},
    {"anon_signin", 1, {"'{}'"}, 'T', 0, NULL},
    /* with the CAPTCHA gate on: captcha_required, captcha_rejected (one
    ** audit row), captcha_unavailable without the provider */
    {"anon_signin", 1, {GATE_OPTS}, 'T', 1, GATE_SETUP},
    {"session_valid", 1, {"TOKEN"}, 'B', 1, NULL},
    {"session_user", 1, {"TOKEN"}, 'U', 1, NULL},
    {"user_is_anonymous", 1, {"1"}, 'b', 0, NULL},
    {"anon_signout", 1, {"TOKEN"}, 'B', 1, NULL},
    {"session_revoke_all", 1, {"1"}, 'N', 0, NULL},
    {"anonauth_config", 1, {"'session.max_age'"}, 'A', 0, NULL},
    {"anonauth_config", 2, {"'session.max_age'", "3600"}, 'A', 0, NULL},
    {"anonauth_config", 2, {"'captcha.url'", "'https://example.com/v'"}, 'A', 0, NULL},
    {"anonauth_config", 2, {"'captcha.secret'", "'env:ANONAUTH_HOSTILE_TURNSTILE_SECRET'"}, 'A', 2, NULL},
    {"anonauth_config", 2, {"'password.memlimit'", "8192"}, 'A', 0, NULL},
    {"anonauth_config", 2, {"'link.on_conflict'", "'merge'"}, 'A', 0, NULL},
    {"anonauth_config", 2, {"'link.merge_sql'", "'UPDATE cart SET user_id = :to_user WHERE user_id = :from_user'"}, 'A', 0, NULL},
    {"anonauth_config", 2, {"'purge.user_sql'", "'DELETE FROM cart WHERE user_id = :user_id'"}, 'A', 0, NULL},
    {"anonauth_set_clock", 1, {"NULL"}, 'A', 0, NULL},
    {"anonauth_version", 0, {NULL}, 'S', 0, NULL},
    {"anonauth_replicated", 0, {NULL}, 'B', 0, NULL},
    {"anonauth_internal_atomic", 0, {NULL}, 'A', 0, NULL},
    {"link_account", 3, {"TOKEN", "'password'", FRESH_ACCOUNT}, 'T', 1, NULL},
    {"link_account", 4, {"TOKEN", "'password'", FRESH_ACCOUNT, "'" PASSWORD "'"}, 'T', 1 | 8, NULL},
    /* linking an account someone else holds: the merge path checks the secret */
    {"link_account", 4, {"TOKEN", "'password'", "'ann@example.com'", "'" PASSWORD "'"}, 'T', 1 | 8,
     "SELECT anonauth_config('link.on_conflict', 'merge')"},
    {"account_signup", 2, {"'google'", FRESH_ACCOUNT}, 'T', 0, NULL},
    {"account_signup", 3, {"'password'", FRESH_ACCOUNT, "'" PASSWORD "'"}, 'T', 4, NULL},
    {"account_signup", 4, {"'password'", FRESH_ACCOUNT, "'" PASSWORD "'", OPTS}, 'T', 4 | 8, NULL},
    {"account_signup", 4, {"'password'", FRESH_ACCOUNT, "'" PASSWORD "'", GATE_OPTS}, 'T', 4 | 8,
     GATE_SETUP},
    {"account_signin", 2, {"'google'", "'ann-google'"}, 'T', 0, NULL},
    {"account_signin", 3, {"'password'", "'ann@example.com'", "'" PASSWORD "'"}, 'T', 4, NULL},
    {"account_signin", 4, {"'password'", "'ann@example.com'", "'" PASSWORD "'", OPTS}, 'T', 4 | 8, NULL},
    /* a small failed-sign-in limit: the bad values empty bob's bucket, then
    ** even the right secret is rate_limited (one audit row each) */
    {"account_signin", 3, {"'password'", "'bob@example.com'", "'" PASSWORD "'"}, 'T', 4,
     "SELECT anonauth_config('ratelimit.failed_signin_per_hour', 3)"},
    {"verify_turnstile", 1, {"'XXXX.DUMMY.TOKEN.XXXX'"}, 'B', 1, TURNSTILE_SETUP},
    {"verify_turnstile", 2, {"'XXXX.DUMMY.TOKEN.XXXX'", "'192.0.2.1'"}, 'B', 1, TURNSTILE_SETUP},
    {"verify_turnstile", 3, {"'XXXX.DUMMY.TOKEN.XXXX'", "'192.0.2.1'", "'env:ANONAUTH_HOSTILE_TURNSTILE_SECRET'"}, 'B', 1 | 4, TURNSTILE_SETUP},
    {"verify_hcaptcha", 1, {HC_TEST_RESPONSE}, 'B', 1, HCAPTCHA_SETUP},
    {"verify_hcaptcha", 2, {HC_TEST_RESPONSE, "'2001:db8::1'"}, 'B', 1, HCAPTCHA_SETUP},
    {"verify_hcaptcha", 3, {HC_TEST_RESPONSE, "NULL", "'env:ANONAUTH_HOSTILE_HCAPTCHA_SECRET'"}, 'B', 1 | 4, HCAPTCHA_SETUP},
    {"anonauth_use", 1, {"TOKEN"}, 'U', 1, NULL},
    {"auth_uid", 0, {NULL}, 'U', 0, "SELECT anonauth_use(NULL)"},
    {"auth_is_anonymous", 0, {NULL}, 'b', 0, NULL},
    /* the token is not the owner's: every call fails like a wrong secret */
    {"account_set_secret", 5, {"TOKEN", "'password'", "'ann@example.com'", "'" PASSWORD "'",
                               "'another " PASSWORD "'"}, 'T', 1 | 8 | 16, NULL},
    {"verification_issue", 3, {"'email'", FRESH_ACCOUNT, "'signin'"}, 'S', 0,
     "SELECT anonauth_config('ratelimit.verification_per_hour', 1000000)"},
    {"verification_issue", 4, {"'email'", FRESH_ACCOUNT, "'reset'",
                               "'{\"format\":\"link\",\"ip\":\"192.0.2.1\"}'"}, 'S', 0,
     "SELECT anonauth_config('ratelimit.verification_ip_per_hour', 1000000)"},
    /* a code that was never issued: every call fails like a wrong code */
    {"account_reset_secret", 4, {"'password'", "'ann@example.com'", "'12345678'",
                                 "'another " PASSWORD "'"}, 'T', 4 | 8, NULL},
    /* last: anon_purge(0) removes every anonymous user without an account */
    {"anon_purge", 0, {NULL}, 'N', 0, NULL},
    {"anon_purge", 1, {"86400"}, 'N', 0, NULL},
    {"session_info", 1, {"TOKEN"}, 'J', 1, NULL},
    {"session_revoke_others", 1, {"TOKEN"}, 'N', 1, NULL},
    {"user_profile", 1, {"1"}, 'J', 0, NULL},
    {"user_profile", 2, {"1", "'{\"a\":{\"b\":1}}'"}, 'J', 0, NULL},
    /* last: it deletes users (1.0 is user 1) */
    {"user_delete", 1, {"1"}, 'B', 0, "SELECT anonauth_config('purge.user_sql', "
                                      "'DELETE FROM cart WHERE user_id = :user_id')"},
    {"session_jwt", 1, {"TOKEN"}, 'W', 1, JWT_SETUP},
    {"session_jwt", 2, {"TOKEN", "'{\"claims\":{\"plan\":\"free\"}}'"}, 'W', 1, JWT_SETUP},
    {"jwt_verify", 1, {JWT_OF_TOKEN}, 'J', 1, JWT_VERIFY_SETUP},
    {"jwt_verify", 2, {JWT_OF_TOKEN, "'{\"require_live_session\":true}'"}, 'J', 1, JWT_VERIFY_SETUP},
    {"anonauth_jwks", 0, {NULL}, 'J', 0, NULL},
    {"anonauth_jwt_rotate", 0, {NULL}, 'S', 0, NULL},
    {"session_refresh", 1, {"TOKEN"}, 'R', 1, NULL},
};
#define N_FUNCTIONS ((int)(sizeof functions / sizeof functions[0]))

/* Run before every function's calls: the cheapest password cost, limits
** high enough not to hide the paths behind them, no retries. */
static const char BASE_SETUP[] =
    "DELETE FROM anonauth_config;"
    "SELECT anonauth_config('password.opslimit', ?1);"
    "SELECT anonauth_config('password.memlimit', ?2);"
    "SELECT anonauth_config('ratelimit.failed_signin_per_hour', 1000000);"
    "SELECT anonauth_config('ratelimit.anon_per_hour', 1000000);"
    "SELECT anonauth_config('captcha.retries', 0);"
    "SELECT anonauth_config('captcha.timeout_ms', 5000);";

static const char *const documented_codes[] = {
    "invalid_argument", "invalid_session", "storage", "internal", "reentrant_call",
    "account_exists", "invalid_credentials", "rate_limited", "merge_failed",
    "captcha_required", "captcha_rejected", "captcha_unavailable", "captcha_misconfigured",
    "purge_failed", "transaction_required", "weak_secret", NULL};

/* The <code> of "anonauth: <code>: ...", or NULL when msg is not one. */
static const char *error_code(const char *msg) {
  if (msg == NULL || strncmp(msg, "anonauth: ", 10) != 0) return NULL;
  for (int i = 0; documented_codes[i]; i++) {
    size_t n = strlen(documented_codes[i]);
    if (strncmp(msg + 10, documented_codes[i], n) == 0 && strncmp(msg + 10 + n, ": ", 2) == 0)
      return documented_codes[i];
  }
  return NULL;
}

/* ---- fingerprints ------------------------------------------------------- */

enum { P_USERS, P_SESSIONS, P_ACCOUNTS, P_CONFIG, P_AUDIT, P_LIMITS, N_PARTS };
static const char *const part_names[N_PARTS] = {"users", "sessions", "accounts",
                                                "config", "audit", "rate_limits"};
static const char *const part_sql[N_PARTS] = {
    "SELECT count(*) || ',' || total(is_anonymous) || ',' || total(length(profile)) || ',' || "
    "ifnull(max(id), 0) FROM anonauth_users",
    "SELECT count(*) || ',' || count(revoked_at) || ',' || total(last_seen_at) || ',' || "
    "total(expires_at) || ',' || ifnull(max(id), 0) FROM anonauth_sessions",
    "SELECT count(*) || ',' || total(user_id) || ',' || total(length(secret_hash)) || ',' || "
    "ifnull(max(id), 0) FROM anonauth_accounts",
    "SELECT ifnull(group_concat(key || '=' || length(value) || ':' || hex(value), ';'), '') || '/' || "
    "(SELECT group_concat(value) FROM anonauth_meta) FROM anonauth_config",
    "SELECT count(*) || ',' || ifnull(max(id), 0) FROM anonauth_audit",
    "SELECT count(*) || ',' || total(tokens) || ',' || total(updated_at) FROM anonauth_rate_limits",
};

typedef struct {
  char part[N_PARTS][4096];
  long long audit_max;
} snapshot;

static void take_snapshot(sqlite3 *db, snapshot *s) {
  for (int p = 0; p < N_PARTS; p++) {
    if (harness_text(db, part_sql[p], s->part[p], sizeof s->part[p]) != SQLITE_OK)
      snprintf(s->part[p], sizeof s->part[p], "(unreadable: %s)", sqlite3_errmsg(db));
  }
  s->audit_max = harness_int(db, "SELECT ifnull(max(id), 0) FROM anonauth_audit");
}

/*
** The writes a failing call may keep: code is its error code. Returns 1 when
** after differs from before only as documented, and describes the
** difference in `why` otherwise (counts only: no values that could be
** secrets).
*/
static int only_documented_writes(sqlite3 *db, const char *code, const snapshot *before,
                                  const snapshot *after, char *why, size_t cap) {
  const char *audit_event = NULL; /* the one audit row this error may keep */
  const char *audit_event2 = NULL;
  int limits_may_change = 0;
  why[0] = 0;
  if (code && (strcmp(code, "invalid_credentials") == 0 || strcmp(code, "rate_limited") == 0)) {
    audit_event = "signin_failed";
    audit_event2 = "rate_limited";
    limits_may_change = 1;
  } else if (code && strcmp(code, "captcha_rejected") == 0) {
    audit_event = "captcha_rejected";
  } else if (code && strcmp(code, "account_exists") == 0) {
    /* account_signup with opts.ip takes its per-address token before it
    ** looks for the account (ratelimit.signup_per_hour); the answer takes
    ** a token of the account's bucket and is audited */
    audit_event = "account_exists";
    limits_may_change = 1;
  }
  for (int p = 0; p < N_PARTS; p++) {
    if (strcmp(before->part[p], after->part[p]) == 0) continue;
    if (p == P_LIMITS && limits_may_change) continue;
    if (p == P_AUDIT && audit_event) continue;
    snprintf(why, cap, "%s changed (%s)", part_names[p],
             p == P_CONFIG || p == P_LIMITS ? "values not shown" : after->part[p]);
    return 0;
  }
  if (audit_event && strcmp(before->part[P_AUDIT], after->part[P_AUDIT]) != 0) {
    sqlite3_stmt *st = NULL;
    int rows = 0, wrong = 0;
    sqlite3_prepare_v2(db, "SELECT event FROM anonauth_audit WHERE id > ?1", -1, &st, NULL);
    sqlite3_bind_int64(st, 1, before->audit_max);
    while (sqlite3_step(st) == SQLITE_ROW) {
      const char *ev = (const char *)sqlite3_column_text(st, 0);
      rows++;
      if (!ev || (strcmp(ev, audit_event) != 0 && !(audit_event2 && strcmp(ev, audit_event2) == 0)))
        wrong++;
    }
    sqlite3_finalize(st);
    if (rows != 1 || wrong) {
      snprintf(why, cap, "%d audit rows added (%d of an undocumented kind)", rows, wrong);
      return 0;
    }
  }
  return 1;
}

/* ---- what the test saw, for the secrets scan ---------------------------- */

static sqlite3_str *seen; /* every error message and every text result shown */

static void saw(const char *text) {
  if (text) {
    sqlite3_str_appendall(seen, text);
    sqlite3_str_appendchar(seen, 1, '\n');
  }
}

/* ---- helpers ------------------------------------------------------------ */

static void exec_or_warn(sqlite3 *db, const char *sql) {
  char *err = NULL;
  if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) {
    printf("    setup failed: %.200s\n", err ? err : "?");
    sqlite3_free(err);
  }
}

static void base_setup(sqlite3 *db) {
  sqlite3_stmt *st = NULL;
  const char *tail = BASE_SETUP;
  while (tail && *tail) {
    if (sqlite3_prepare_v2(db, tail, -1, &st, &tail) != SQLITE_OK || st == NULL) break;
    if (sqlite3_bind_parameter_count(st) >= 1)
      sqlite3_bind_int64(st, 1, (sqlite3_int64)crypto_pwhash_OPSLIMIT_MIN);
    if (sqlite3_bind_parameter_count(st) >= 2)
      sqlite3_bind_int64(st, 2, (sqlite3_int64)crypto_pwhash_MEMLIMIT_MIN);
    while (sqlite3_step(st) == SQLITE_ROW) {
    }
    sqlite3_finalize(st);
  }
}

static void function_setup(sqlite3 *db, const char *setup, const char *url) {
  char sql[1024];
  const char *at;
  if (setup == NULL) return;
  at = strstr(setup, "@URL@");
  if (at == NULL) {
    exec_or_warn(db, setup);
    return;
  }
  /* replace every "@URL@" */
  {
    size_t o = 0;
    const char *p = setup;
    while ((at = strstr(p, "@URL@")) != NULL && o < sizeof sql - 1) {
      o += (size_t)snprintf(sql + o, sizeof sql - o, "%.*s%s", (int)(at - p), p, url);
      p = at + 5;
    }
    snprintf(sql + o, sizeof sql - o, "%s", p);
  }
  exec_or_warn(db, sql);
}

static int is_live_token(sqlite3 *db, const char *t) {
  return t && strlen(t) == 57 && strncmp(t, "anonauth_sess_", 14) == 0 && harness_valid(db, t) == 1;
}

/* Does the result of a call that succeeded match what its function returns? */
static int documented_result(sqlite3 *db, sqlite3_stmt *st, char kind) {
  int type = sqlite3_column_type(st, 0);
  sqlite3_int64 v = sqlite3_column_int64(st, 0);
  switch (kind) {
    case 'T': {
      char tok[64];
      if (type != SQLITE_TEXT) return 0;
      snprintf(tok, sizeof tok, "%s", (const char *)sqlite3_column_text(st, 0));
      return is_live_token(db, tok);
    }
    case 'B': return type == SQLITE_INTEGER && (v == 0 || v == 1);
    case 'b': return type == SQLITE_NULL || (type == SQLITE_INTEGER && (v == 0 || v == 1));
    case 'U': return type == SQLITE_NULL || (type == SQLITE_INTEGER && v > 0);
    case 'N': return type == SQLITE_INTEGER && v >= 0;
    case 'S': return type == SQLITE_TEXT;
    case 'R': {
      char tok[64];
      if (type == SQLITE_NULL) return 1;
      if (type != SQLITE_TEXT) return 0;
      snprintf(tok, sizeof tok, "%s", (const char *)sqlite3_column_text(st, 0));
      return is_live_token(db, tok);
    }
    case 'W': {
      const char *t = (const char *)sqlite3_column_text(st, 0);
      const char *d1 = t ? strchr(t, '.') : NULL;
      const char *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
      if (type == SQLITE_NULL) return 1;
      return type == SQLITE_TEXT && d2 != NULL && strchr(d2 + 1, '.') == NULL;
    }
    case 'J': {
      const char *t = (const char *)sqlite3_column_text(st, 0);
      if (type == SQLITE_NULL) return 1;
      return type == SQLITE_TEXT && t && t[0] == '{' && t[strlen(t) - 1] == '}';
    }
    default: return 1;
  }
}

/* Is the registration (name, n_args) in the table above? */
static int covered(const char *name, int n_args) {
  for (int f = 0; f < N_FUNCTIONS; f++) {
    if (strcmp(functions[f].name, name) == 0 && functions[f].n_args == n_args) return 1;
  }
  return 0;
}

/* Every line `{"name", N, FLAGS, fn}` of anonauth.c's registration table. */
static void check_registration_covered(void) {
  char path[600], line[512];
  const char *so = harness_so();
  const char *slash = strrchr(so, '/');
  int registered = 0, missing = 0;
  FILE *f;
  snprintf(path, sizeof path, "%.*sanonauth.c", slash ? (int)(slash - so + 1) : 0, so);
  f = fopen(path, "r");
  if (f == NULL) f = fopen("anonauth.c", "r");
  if (f == NULL) {
    CHECK(0, "anonauth.c is readable next to %s (to compare the registration table)", so);
    return;
  }
  while (fgets(line, sizeof line, f)) {
    char name[64];
    int n;
    if (sscanf(line, " {\"%63[a-z_0-9]\", %d,", name, &n) != 2) continue;
    registered++;
    if (!covered(name, n)) {
      missing++;
      printf("    %s/%d is registered in anonauth.c but has no line in this test\n", name, n);
    }
  }
  fclose(f);
  CHECK(registered >= 30 && missing == 0,
        "every one of the %d registrations in anonauth.c is in the generated table", registered);
}

/* ---- the generated calls ------------------------------------------------ */

typedef struct {
  int calls, errors, successes, bad_errors, bad_results, changed, echoed;
  int by_code[16]; /* errors per documented_codes[] entry */
  double seconds;
} tally;

static char token[64]; /* the live token "TOKEN" stands for */

static void keep_token_alive(sqlite3 *db) {
  if (harness_valid(db, token) != 1) {
    if (harness_text(db, "SELECT anon_signin()", token, sizeof token) != SQLITE_OK) token[0] = 0;
  }
}

/* Does msg contain the bytes of bad value v (only for values long enough to
** be recognisable)? */
static int echoes(const char *msg, const bad_value *v) {
  const char *bytes;
  int len;
  if (v->type != SQLITE_TEXT) return 0;
  bad_bytes(v, &bytes, &len);
  if (len < 8 || msg == NULL) return 0;
  {
    char probe[33];
    int n = len < 32 ? len : 32;
    memcpy(probe, bytes, (size_t)n);
    probe[n] = 0;
    if ((int)strlen(probe) < 8) return 0; /* stops at an embedded NUL */
    return strstr(msg, probe) != NULL;
  }
}

static void one_call(sqlite3 *db, const function_def *fd, int pos, const bad_value *bv,
                     tally *t) {
  char sql[512], why[256];
  snapshot before, after;
  sqlite3_stmt *st = NULL;
  int o = snprintf(sql, sizeof sql, "SELECT %s(", fd->name);
  int rc;
  for (int a = 0; a < fd->n_args; a++) {
    const char *arg = a == pos ? "?1" : strcmp(fd->defaults[a], "TOKEN") == 0 ? "?2" : fd->defaults[a];
    o += snprintf(sql + o, sizeof sql - (size_t)o, "%s%s", a ? ", " : "", arg);
  }
  snprintf(sql + o, sizeof sql - (size_t)o, ")");
  take_snapshot(db, &before);
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
    CHECK(0, "%s prepares: %s", sql, sqlite3_errmsg(db));
    return;
  }
  if (bv) bind_bad(st, 1, bv);
  sqlite3_bind_text(st, 2, token, -1, SQLITE_TRANSIENT);
  rc = sqlite3_step(st);
  t->calls++;
  if (rc != SQLITE_ROW) {
    const char *msg = sqlite3_errmsg(db);
    const char *code = error_code(msg);
    t->errors++;
    saw(msg);
    for (int i = 0; code && documented_codes[i]; i++) {
      if (code == documented_codes[i]) t->by_code[i]++;
    }
    if (code == NULL) {
      t->bad_errors++;
      printf("    %s/%d(%s at %d): undocumented error: %.120s\n", fd->name, fd->n_args,
             bv ? bv->name : "-", pos + 1, msg);
    }
    if (strstr(msg, "anonauth_sess_A") || (bv && (fd->secret_args >> pos) & 1 && echoes(msg, bv))) {
      t->echoed++;
      printf("    %s/%d(%s at %d) echoed a token or secret argument in its error\n", fd->name,
             fd->n_args, bv ? bv->name : "-", pos + 1);
    }
    sqlite3_finalize(st);
    take_snapshot(db, &after);
    if (!only_documented_writes(db, code, &before, &after, why, sizeof why)) {
      t->changed++;
      printf("    %s/%d(%s at %d) failed (%s) but %s\n", fd->name, fd->n_args,
             bv ? bv->name : "-", pos + 1, code ? code : "?", why);
    }
  } else {
    t->successes++;
    if (!documented_result(db, st, fd->returns)) {
      t->bad_results++;
      printf("    %s/%d(%s at %d) returned an undocumented value (type %d)\n", fd->name,
             fd->n_args, bv ? bv->name : "-", pos + 1, sqlite3_column_type(st, 0));
    }
    if (fd->returns == 'S' || fd->returns == 'J') saw((const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
  }
  exec_or_warn(db, "SELECT anonauth_set_clock(NULL)");
  keep_token_alive(db);
}

static void run_functions(sqlite3 *db, const char *url, tally *t) {
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (int f = 0; f < N_FUNCTIONS; f++) {
    const function_def *fd = &functions[f];
    base_setup(db);
    function_setup(db, fd->setup, url);
    if (fd->n_args == 0) {
      one_call(db, fd, -1, NULL, t);
      continue;
    }
    for (int pos = 0; pos < fd->n_args; pos++) {
      for (int b = 0; b < N_BAD; b++) {
        /* a call that changed the configuration must not steer the next */
        if (strcmp(fd->name, "anonauth_config") == 0) {
          base_setup(db);
          function_setup(db, fd->setup, url);
        }
        one_call(db, fd, pos, &bad_values[b], t);
      }
    }
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  t->seconds = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
}

/* ---- the virtual tables ------------------------------------------------- */

/* A SELECT with a bad constraint value and the same SELECT on the table
** underneath: they must agree, whatever the value. */
static const struct {
  const char *vtab_sql, *base_sql;
} selects[] = {
    {"SELECT count(*) FROM anon_users WHERE id = ?1",
     "SELECT count(*) FROM anonauth_users WHERE id = ?1"},
    {"SELECT count(*) FROM anon_users WHERE rowid = ?1",
     "SELECT count(*) FROM anonauth_users WHERE id = ?1"},
    {"SELECT count(*) FROM anon_users WHERE id IN (?1, -5)",
     "SELECT count(*) FROM anonauth_users WHERE id IN (?1, -5)"},
    {"SELECT count(*) FROM anon_users WHERE profile = ?1",
     "SELECT count(*) FROM anonauth_users WHERE profile = ?1"},
    {"SELECT count(*) FROM anon_sessions WHERE id = ?1",
     "SELECT count(*) FROM anonauth_sessions WHERE id = ?1"},
    {"SELECT count(*) FROM anon_sessions WHERE user_id = ?1",
     "SELECT count(*) FROM anonauth_sessions WHERE user_id = ?1"},
    {"SELECT count(*) FROM anon_sessions WHERE ip = ?1 OR user_agent = ?1",
     "SELECT count(*) FROM anonauth_sessions WHERE ip = ?1 OR user_agent = ?1"},
    {"SELECT count(*) FROM anon_accounts WHERE user_id = ?1",
     "SELECT count(*) FROM anonauth_accounts WHERE user_id = ?1"},
    {"SELECT count(*) FROM anon_accounts WHERE provider = ?1 AND account_id = 'ann@example.com'",
     "SELECT count(*) FROM anonauth_accounts WHERE provider = ?1 AND account_id = 'ann@example.com'"},
    {"SELECT count(*) FROM anon_accounts WHERE provider = 'password' AND account_id = ?1",
     "SELECT count(*) FROM anonauth_accounts WHERE provider = 'password' AND account_id = ?1"},
    {"SELECT count(*) FROM anon_accounts WHERE provider = ?1 AND account_id = ?1",
     "SELECT count(*) FROM anonauth_accounts WHERE provider = ?1 AND account_id = ?1"},
    {"SELECT count(*) FROM anon_accounts WHERE rowid = ?1",
     "SELECT count(*) FROM anonauth_accounts WHERE id = ?1"},
};

/* A DELETE with a bad key, and how many rows of the table underneath it
** names. */
static const struct {
  const char *delete_sql, *match_sql;
} deletes[] = {
    {"DELETE FROM anon_users WHERE id = ?1", "SELECT count(*) FROM anonauth_users WHERE id = ?1"},
    {"DELETE FROM anon_users WHERE rowid = ?1", "SELECT count(*) FROM anonauth_users WHERE id = ?1"},
    {"DELETE FROM anon_sessions WHERE id = ?1",
     "SELECT count(*) FROM anonauth_sessions WHERE id = ?1"},
    {"DELETE FROM anon_sessions WHERE user_id = ?1",
     "SELECT count(*) FROM anonauth_sessions WHERE user_id = ?1"},
    {"DELETE FROM anon_accounts WHERE rowid = ?1",
     "SELECT count(*) FROM anonauth_accounts WHERE id = ?1"},
    {"DELETE FROM anon_accounts WHERE provider = 'password' AND account_id = ?1",
     "SELECT count(*) FROM anonauth_accounts WHERE provider = 'password' AND account_id = ?1"},
};

/* Writes the tables refuse, whatever the value: each must fail. */
static const char *const refused[] = {
    "INSERT INTO anon_users(id, profile) VALUES (?1, ?1)",
    "INSERT INTO anon_sessions(id, user_id, ip) VALUES (?1, ?1, ?1)",
    "INSERT INTO anon_accounts(user_id, provider, account_id) VALUES (?1, ?1, ?1)",
    "UPDATE anon_users SET profile = ?1 WHERE id = (SELECT max(id) FROM anonauth_users)",
    "UPDATE anon_users SET id = ?1 WHERE id = (SELECT max(id) FROM anonauth_users)",
    "UPDATE anon_sessions SET revoked_at = ?1 WHERE id = (SELECT max(id) FROM anonauth_sessions)",
    "UPDATE anon_accounts SET account_id = ?1 WHERE rowid = (SELECT min(id) FROM anonauth_accounts)",
};

static long long count_with(sqlite3 *db, const char *sql, const bad_value *bv, int *ok) {
  sqlite3_stmt *st = NULL;
  long long n = -1;
  *ok = 0;
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) return -1;
  bind_bad(st, 1, bv);
  if (sqlite3_step(st) == SQLITE_ROW) {
    n = sqlite3_column_int64(st, 0);
    *ok = 1;
  } else {
    saw(sqlite3_errmsg(db));
  }
  sqlite3_finalize(st);
  return n;
}

static int step_with(sqlite3 *db, const char *sql, const bad_value *bv, const char **code) {
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
  *code = NULL;
  if (rc != SQLITE_OK) {
    saw(sqlite3_errmsg(db));
    return rc;
  }
  bind_bad(st, 1, bv);
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
  }
  if (rc != SQLITE_DONE) {
    saw(sqlite3_errmsg(db));
    *code = error_code(sqlite3_errmsg(db));
  }
  sqlite3_finalize(st);
  return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static void run_vtabs(sqlite3 *db) {
  int selects_run = 0, disagree = 0, failed_reads = 0;
  int deletes_run = 0, wrong_deletes = 0, bad_delete_errors = 0, kept = 0;
  int refusals = 0, not_refused = 0, refused_changed = 0;
  for (int b = 0; b < N_BAD; b++) {
    const bad_value *bv = &bad_values[b];
    for (size_t q = 0; q < sizeof selects / sizeof selects[0]; q++) {
      int ok_v, ok_b;
      long long nv = count_with(db, selects[q].vtab_sql, bv, &ok_v);
      long long nb = count_with(db, selects[q].base_sql, bv, &ok_b);
      selects_run++;
      if (!ok_v) {
        failed_reads++;
        printf("    %s with %s failed: %.120s\n", selects[q].vtab_sql, bv->name, sqlite3_errmsg(db));
      } else if (!ok_b || nv != nb) {
        disagree++;
        printf("    %s with %s: %lld rows, the table underneath %lld\n", selects[q].vtab_sql,
               bv->name, nv, nb);
      }
    }
    for (size_t q = 0; q < sizeof deletes / sizeof deletes[0]; q++) {
      snapshot before, inside, after;
      const char *code;
      int ok, rc;
      long long users_before, users_after;
      long long match = count_with(db, deletes[q].match_sql, bv, &ok);
      deletes_run++;
      take_snapshot(db, &before);
      /* Rows it names are deleted inside a transaction that is then rolled
      ** back, so every value meets the same data; a DELETE that names no
      ** row also runs bare (autocommit) and must change nothing. */
      exec_or_warn(db, "BEGIN");
      users_before = harness_int(db, "SELECT count(*) FROM anonauth_users");
      rc = step_with(db, deletes[q].delete_sql, bv, &code);
      users_after = harness_int(db, "SELECT count(*) FROM anonauth_users");
      take_snapshot(db, &inside);
      if (rc != SQLITE_OK && code == NULL) {
        bad_delete_errors++;
        printf("    %s with %s: undocumented error %.120s\n", deletes[q].delete_sql, bv->name,
               sqlite3_errmsg(db));
      }
      if (match == 0 && strcmp(before.part[P_AUDIT], inside.part[P_AUDIT]) != 0) {
        wrong_deletes++;
        printf("    %s with %s named no row but wrote\n", deletes[q].delete_sql, bv->name);
      }
      if (strstr(deletes[q].delete_sql, "anon_users") && rc == SQLITE_OK &&
          users_before - users_after != match) {
        wrong_deletes++;
        printf("    %s with %s: %lld users removed, %lld named\n", deletes[q].delete_sql, bv->name,
               users_before - users_after, match);
      }
      exec_or_warn(db, "ROLLBACK");
      if (match == 0) {
        rc = step_with(db, deletes[q].delete_sql, bv, &code);
        if (rc != SQLITE_OK && code == NULL) bad_delete_errors++;
      }
      take_snapshot(db, &after);
      for (int p = 0; p < N_PARTS; p++) {
        if (strcmp(before.part[p], after.part[p]) != 0) {
          kept++;
          printf("    %s with %s: %s changed after ROLLBACK or a DELETE of nothing\n",
                 deletes[q].delete_sql, bv->name, part_names[p]);
          break;
        }
      }
    }
    for (size_t q = 0; q < sizeof refused / sizeof refused[0]; q++) {
      snapshot before, after;
      const char *code;
      int rc;
      take_snapshot(db, &before);
      rc = step_with(db, refused[q], bv, &code);
      refusals++;
      if (rc == SQLITE_OK || code == NULL || strcmp(code, "invalid_argument") != 0) {
        not_refused++;
        printf("    %s with %s was not refused with invalid_argument: %.120s\n", refused[q],
               bv->name, rc == SQLITE_OK ? "it succeeded" : sqlite3_errmsg(db));
      }
      take_snapshot(db, &after);
      for (int p = 0; p < N_PARTS; p++) {
        if (strcmp(before.part[p], after.part[p]) != 0) {
          refused_changed++;
          break;
        }
      }
    }
  }
  CHECK(failed_reads == 0 && disagree == 0,
        "%d SELECTs with bad constraint values: each ran and matched the table underneath",
        selects_run);
  CHECK(bad_delete_errors == 0 && wrong_deletes == 0 && kept == 0,
        "%d DELETEs with bad keys: documented errors only, exactly the named rows, nothing kept "
        "after ROLLBACK or from a DELETE of nothing",
        deletes_run);
  CHECK(not_refused == 0 && refused_changed == 0,
        "%d INSERTs and UPDATEs with bad values: every one refused with invalid_argument, "
        "nothing changed",
        refusals);
}

/* ---- the secrets scan --------------------------------------------------- */

static void append_query(sqlite3 *db, const char *sql) {
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
    saw(sqlite3_errmsg(db));
    return;
  }
  while (sqlite3_step(st) == SQLITE_ROW) {
    for (int i = 0; i < sqlite3_column_count(st); i++) {
      const char *v = (const char *)sqlite3_column_text(st, i);
      if (v) sqlite3_str_appendall(seen, v);
      sqlite3_str_appendchar(seen, 1, '|');
    }
    sqlite3_str_appendchar(seen, 1, '\n');
  }
  sqlite3_finalize(st);
}

/* Is this 57-character candidate the text of a session in the database? */
static int names_a_session(sqlite3 *db, const char *p) {
  unsigned char hash[32];
  sqlite3_stmt *st = NULL;
  int found = 0;
  crypto_generichash(hash, sizeof hash, (const unsigned char *)p, 57, NULL, 0);
  if (sqlite3_prepare_v2(db, "SELECT 1 FROM anonauth_sessions WHERE token_hash = ?1", -1, &st,
                         NULL) == SQLITE_OK) {
    sqlite3_bind_blob(st, 1, hash, sizeof hash, SQLITE_STATIC);
    found = sqlite3_step(st) == SQLITE_ROW;
  }
  sqlite3_finalize(st);
  return found;
}

static void scan_for_secrets(sqlite3 *db) {
  static const char *const secrets[] = {PASSWORD, "$argon2", "1x0000000000000000000000000000000AA",
                                        "0x0000000000000000000000000000000000000000", NULL};
  const char *text;
  int tokens = 0, hex_runs = 0, literal = 0;
  long len;
  append_query(db, "SELECT * FROM anonauth_audit");
  append_query(db, "SELECT * FROM anon_users");
  append_query(db, "SELECT * FROM anon_sessions");
  append_query(db, "SELECT * FROM anon_accounts");
  append_query(db, "SELECT key, anonauth_config(key) FROM anonauth_config");
  len = sqlite3_str_length(seen);
  text = sqlite3_str_value(seen);
  if (text == NULL) text = "";
  for (long i = 0; i + 57 <= len; i++) {
    if (strncmp(text + i, "anonauth_sess_", 14) == 0 && names_a_session(db, text + i)) tokens++;
  }
  for (long i = 0; i < len; i++) {
    if (isxdigit((unsigned char)text[i])) {
      /* A hash has many different digits; "AAAA..." (a bad value stored
      ** as an account id) is no hash. */
      long j = i;
      int distinct = 0;
      unsigned seen_digit = 0;
      while (j < len && isxdigit((unsigned char)text[j])) {
        unsigned d = (unsigned)(isdigit((unsigned char)text[j]) ? text[j] - '0'
                                                               : (tolower((unsigned char)text[j]) - 'a' + 10));
        if (!(seen_digit & (1u << d))) distinct++;
        seen_digit |= 1u << d;
        j++;
      }
      if (j - i >= 64 && distinct >= 8) {
        hex_runs++;
        /* where it is, never what it is */
        printf("    a run of %ld hex digits at byte %ld of what the test saw\n", j - i, i);
      }
      i = j;
    }
  }
  for (int s = 0; secrets[s]; s++) {
    if (strstr(text, secrets[s])) literal++;
  }
  CHECK(tokens == 0 && hex_runs == 0 && literal == 0,
        "%ld bytes of errors, audit rows and virtual-table rows hold no live token (%d), no "
        "64-hex-digit hash (%d), no password hash or secret (%d)",
        len, tokens, hex_runs, literal);
}

/* ---- main --------------------------------------------------------------- */

static void make_values(void) {
  big_text = malloc(MIB + 1);
  big_blob = malloc(MIB);
  deep_json = malloc(200002 + 1);
  deep_profile = malloc(1000);
  many_keys = malloc(40000);
  big_opts = malloc(16384 + 64);
  if (!big_text || !big_blob || !deep_json || !deep_profile || !many_keys || !big_opts) exit(1);
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
  {
    /* valid JSON, one byte over AA_OPTS_MAX_BYTES */
    int o = sprintf(big_opts, "{\"user_agent\":\"");
    memset(big_opts + o, 'u', (size_t)(16385 - o - 2));
    o = 16385 - 2;
    big_opts[o++] = '"';
    big_opts[o++] = '}';
    big_opts[o] = 0;
  }
}

int main(void) {
  char path[512], url[256];
  sqlite3 *db;
  tally t;
  const char *provider = getenv("ANONAUTH_PROVIDER");
  check_label = getenv("TEST_LABEL") ? getenv("TEST_LABEL") : "c";
  harness_path(path, sizeof path, "hostile_input");
  harness_remove(path);
  memset(&t, 0, sizeof t);
  if (sodium_init() < 0) return 1;
  make_values();
  seen = sqlite3_str_new(NULL);
  /* The providers' documented test secrets, read through env:NAME. */
  setenv("ANONAUTH_HOSTILE_TURNSTILE_SECRET", "1x0000000000000000000000000000000AA", 1);
  setenv("ANONAUTH_HOSTILE_HCAPTCHA_SECRET", "0x0000000000000000000000000000000000000000", 1);
  /* Without the fake provider: a closed loopback port, never the internet. */
  snprintf(url, sizeof url, "%s", provider && *provider ? provider : "http://127.0.0.1:1");

  check_registration_covered();

  db = harness_open(path);
  REQUIRE(db != NULL, "opens the database");
  {
    int on = -1;
    sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, &on);
    REQUIRE(on == 1, "SQLITE_DBCONFIG_DEFENSIVE is on for the whole run");
  }
  exec_or_warn(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA trusted_schema=OFF; CREATE TABLE cart(user_id, item);");
  CHECK(harness_int(db, "PRAGMA trusted_schema") == 0, "trusted_schema is OFF for the whole run");
  REQUIRE(harness_text(db, "SELECT anon_signin()", token, sizeof token) == SQLITE_OK,
          "a live token to use as the default argument");
  base_setup(db);
  exec_or_warn(db, "SELECT account_signup('password', 'ann@example.com', '" PASSWORD "') IS NOT NULL;"
                   "SELECT account_signup('password', 'bob@example.com', '" PASSWORD "') IS NOT NULL;"
                   "SELECT account_signup('google', 'ann-google') IS NOT NULL;");
  REQUIRE(harness_int(db, "SELECT count(*) FROM anonauth_accounts") == 3,
          "the accounts the sign-in calls aim at exist");

  run_functions(db, url, &t);
  printf("    %d calls in %.2f s: %d errors, %d successes (%s)\n", t.calls, t.seconds, t.errors,
         t.successes, provider ? "fake CAPTCHA provider" : "no provider: closed port");
  {
    char line[512];
    int o = 0;
    for (int i = 0; documented_codes[i]; i++) {
      if (t.by_code[i])
        o += snprintf(line + o, sizeof line - (size_t)o, "%s%s %d", o ? ", " : "",
                      documented_codes[i], t.by_code[i]);
    }
    printf("    errors by code: %s\n", o ? line : "none");
  }
  CHECK(t.calls > 2000, "%d generated calls ran (%d function lines x positions x %d bad values)",
        t.calls, N_FUNCTIONS, N_BAD);
  CHECK(t.bad_errors == 0, "every error was a documented anonauth error (%d errors)", t.errors);
  CHECK(t.bad_results == 0, "every success returned what its function documents (%d successes)",
        t.successes);
  CHECK(t.changed == 0, "no failing call wrote anything but the documented audit rows and buckets");
  CHECK(t.echoed == 0, "no error echoed a token or secret argument");

  base_setup(db);
  run_vtabs(db);

  {
    int defensive = -1;
    sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, -1, &defensive);
    CHECK(harness_int(db, "PRAGMA trusted_schema") == 0 && defensive == 1 &&
              harness_int(db, "PRAGMA ignore_check_constraints") == 0 &&
              harness_int(db, "PRAGMA query_only") == 0,
          "no call changed the connection's defences (trusted_schema, DEFENSIVE, "
          "ignore_check_constraints, query_only)");
  }
  scan_for_secrets(db);
  CHECK(harness_int(db, "SELECT count(*) FROM sqlite_master WHERE name = 'anonauth_users'") == 1,
        "the injection text dropped nothing");
  {
    char ok[32];
    harness_text(db, "PRAGMA integrity_check", ok, sizeof ok);
    CHECK(strcmp(ok, "ok") == 0, "PRAGMA integrity_check is ok");
  }
  CHECK(sqlite3_close(db) == SQLITE_OK, "closes with sqlite3_close()");
  harness_remove(path);
  sqlite3_free(sqlite3_str_finish(seen));
  free(big_text);
  free(big_blob);
  free(deep_json);
  free(deep_profile);
  free(many_keys);
  free(big_opts);
  return check_done();
}
