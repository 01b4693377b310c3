/*
** config.c — configuration keys: what exists, what is allowed, and the
** per-connection cache.
**
** Values live in anonauth_config, so every connection and process shares
** them. Each connection keeps a parsed copy and trusts it while the database
** file is unchanged (SQLITE_FCNTL_DATA_VERSION, which moves on any commit by
** anyone); when the file changed it compares anonauth_meta's
** config_generation, which triggers bump on any write to anonauth_config,
** and reloads only if that moved. So a session check with no writes
** anywhere costs no configuration query at all.
**
** Values are validated when set and again when loaded: a row written around
** anonauth_config() cannot smuggle in a value the setter would refuse. The
** security-critical rules live with what they judge: URLs in netaddr.c
** (aa_url_problem), the app's SQL in appsql.c (prepared and read in its
** bytecode when set, checked again before it runs).
*/
#include "anonauth_int.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

typedef enum { K_INT, K_ENUM, K_TEXT, K_SECRET, K_URL, K_SQL } key_kind;

typedef struct {
  const char *name;
  key_kind kind;
  int64_t def; /* K_INT default; K_ENUM default choice index */
  int64_t min, max;
  const char *const *choices;    /* K_ENUM */
  const char *const *sql_params; /* K_SQL: the named parameters allowed */
} key_def;

static const char *const on_conflict_choices[] = {"error", "merge", NULL};
static const char *const merge_without_sql_choices[] = {"refuse", "drop", NULL};
static const char *const provider_choices[] = {"none", "turnstile", "hcaptcha",
                                               NULL};
static const char *const jwt_alg_choices[] = {"ES256", "EdDSA", NULL};
static const char *const jwt_accept_choices[] = {"key", "ES256", "EdDSA", NULL};
static const char *const merge_params[] = {":from_user", ":to_user", NULL};
static const char *const purge_params[] = {":user_id", NULL};

#define TEN_YEARS INT64_C(315360000)

static const key_def keys[AA_CFG_COUNT] = {
    [AA_CFG_SESSION_MAX_AGE] = {"session.max_age", K_INT, 2592000, 60, TEN_YEARS, 0, 0},
    [AA_CFG_SESSION_IDLE_TIMEOUT] = {"session.idle_timeout", K_INT, 2592000, 60, TEN_YEARS, 0, 0},
    [AA_CFG_SESSION_TOUCH_INTERVAL] = {"session.touch_interval", K_INT, 3600, 0, 86400, 0, 0},
    [AA_CFG_PASSWORD_OPSLIMIT] = {"password.opslimit", K_INT, crypto_pwhash_OPSLIMIT_INTERACTIVE,
                                  crypto_pwhash_OPSLIMIT_MIN, AA_PASSWORD_OPSLIMIT_MAX, 0, 0},
    [AA_CFG_PASSWORD_MEMLIMIT] = {"password.memlimit", K_INT, crypto_pwhash_MEMLIMIT_INTERACTIVE,
                                  crypto_pwhash_MEMLIMIT_MIN, AA_PASSWORD_MEMLIMIT_MAX, 0, 0},
    [AA_CFG_LINK_ON_CONFLICT] = {"link.on_conflict", K_ENUM, 0, 0, 0, on_conflict_choices, 0},
    [AA_CFG_LINK_MERGE_SQL] = {"link.merge_sql", K_SQL, 0, 0, 0, 0, merge_params},
    [AA_CFG_RATELIMIT_FAILED_SIGNIN_PER_HOUR] = {"ratelimit.failed_signin_per_hour", K_INT, 10, 0, 1000000, 0, 0},
    [AA_CFG_RATELIMIT_ANON_PER_HOUR] = {"ratelimit.anon_per_hour", K_INT, 30, 0, 1000000, 0, 0},
    [AA_CFG_RATELIMIT_SIGNUP_PER_HOUR] = {"ratelimit.signup_per_hour", K_INT, 10, 0, 1000000, 0, 0},
    [AA_CFG_CAPTCHA_PROVIDER] = {"captcha.provider", K_ENUM, 0, 0, 0, provider_choices, 0},
    [AA_CFG_CAPTCHA_SECRET] = {"captcha.secret", K_SECRET, 0, 0, 0, 0, 0},
    [AA_CFG_CAPTCHA_URL] = {"captcha.url", K_URL, 0, 0, 0, 0, 0},
    [AA_CFG_CAPTCHA_HOSTNAME] = {"captcha.hostname", K_TEXT, 0, 0, 0, 0, 0},
    [AA_CFG_CAPTCHA_ACTION] = {"captcha.action", K_TEXT, 0, 0, 0, 0, 0},
    [AA_CFG_CAPTCHA_SITEKEY] = {"captcha.sitekey", K_TEXT, 0, 0, 0, 0, 0},
    [AA_CFG_CAPTCHA_TIMEOUT_MS] = {"captcha.timeout_ms", K_INT, 10000, 100, 120000, 0, 0},
    [AA_CFG_CAPTCHA_RETRIES] = {"captcha.retries", K_INT, 2, 0, 10, 0, 0},
    [AA_CFG_PURGE_MAX_IDLE] = {"purge.max_idle", K_INT, 2592000, 0, TEN_YEARS, 0, 0},
    [AA_CFG_PURGE_USER_SQL] = {"purge.user_sql", K_SQL, 0, 0, 0, 0, purge_params},
    [AA_CFG_PURGE_BATCH] = {"purge.batch", K_INT, 1000, 1, 100000, 0, 0},
    [AA_CFG_AUDIT_MAX_AGE] = {"audit.max_age", K_INT, 7776000, 3600, TEN_YEARS, 0, 0},
    /* Code points; bytes are bounded by the 1024-byte argument limit. */
    [AA_CFG_PASSWORD_MIN_LENGTH] = {"password.min_length", K_INT, 8, 1, 1024, 0, 0},
    [AA_CFG_PASSWORD_MAX_BYTES] = {"password.max_bytes", K_INT, 1024, 1, 1024, 0, 0},
    /* What a merge does while link.merge_sql is unset: 'refuse' (fail
    ** closed: the app's rows would be orphaned) or 'drop' (the app said it
    ** keeps nothing per user that needs moving). */
    [AA_CFG_LINK_MERGE_WITHOUT_SQL] = {"link.merge_without_sql", K_ENUM, 0, 0, 0,
                                       merge_without_sql_choices, 0},
    [AA_CFG_VERIFICATION_TTL] = {"verification.ttl", K_INT, 900, 60, 86400, 0, 0},
    [AA_CFG_VERIFICATION_MAX_ATTEMPTS] = {"verification.max_attempts", K_INT, 5, 1, 100, 0, 0},
    [AA_CFG_RATELIMIT_VERIFICATION_PER_HOUR] = {"ratelimit.verification_per_hour", K_INT, 5, 0, 1000000, 0, 0},
    [AA_CFG_RATELIMIT_VERIFICATION_IP_PER_HOUR] = {"ratelimit.verification_ip_per_hour", K_INT, 30, 0, 1000000, 0, 0},
    [AA_CFG_JWT_ALG] = {"jwt.alg", K_ENUM, 0, 0, 0, jwt_alg_choices, 0},
    [AA_CFG_JWT_ISSUER] = {"jwt.issuer", K_TEXT, 0, 0, 0, 0, 0},
    [AA_CFG_JWT_AUDIENCE] = {"jwt.audience", K_TEXT, 0, 0, 0, 0, 0},
    [AA_CFG_JWT_TTL] = {"jwt.ttl", K_INT, 3600, 60, 86400, 0, 0},
    [AA_CFG_JWT_LEEWAY] = {"jwt.leeway", K_INT, 30, 0, 300, 0, 0},
    [AA_CFG_JWT_ACCEPT] = {"jwt.accept", K_ENUM, 0, 0, 0, jwt_accept_choices, 0},
    [AA_CFG_JWT_KEY_SECRET] = {"jwt.key_secret", K_SECRET, 0, 0, 0, 0, 0},
    [AA_CFG_SESSION_REUSE_WINDOW] = {"session.reuse_window", K_INT, 10, 0, 300, 0, 0},
    /* 0: an anonymous sign-in writes no audit row (its session row holds the
    ** same facts while it lives); the audit page is a sixth of its commit. */
    [AA_CFG_AUDIT_ANON_SIGNIN] = {"audit.anon_signin", K_INT, 1, 0, 1, 0, 0},
};

#define TEXT_MAX 255
#define SECRET_MAX 1024
#define SQL_MAX 65536

struct aa_config_cache {
  int loaded;
  uint64_t invalid; /* keys whose stored value a tolerant load skipped, one bit each */
  unsigned data_version;
  int64_t generation;
  int64_t ints[AA_CFG_COUNT];
  char *texts[AA_CFG_COUNT];
};

/* ---- value rules --------------------------------------------------------- */

static int find_key(const char *name, int n) {
  for (int i = 0; i < AA_CFG_COUNT; i++) {
    if ((int)strlen(keys[i].name) == n && memcmp(keys[i].name, name, (size_t)n) == 0)
      return i;
  }
  return -1;
}

static int parse_int(const char *s, int n, int64_t *out) {
  int64_t v = 0;
  int i = 0, neg = 0;
  if (n > 0 && s[0] == '-') {
    neg = 1;
    i = 1;
  }
  if (i >= n || n - i > 18) return 0;
  for (; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return 0;
    v = v * 10 + (s[i] - '0');
  }
  *out = neg ? -v : v;
  return 1;
}

int aa_config_check_app_sql(aa_conn *c, aa_config_key key, const char *sql, aa_errcode code) {
  if (keys[key].kind != K_SQL)
    return aa_err(c, SQLITE_INTERNAL, AA_E_INTERNAL, "%s holds no SQL", keys[key].name);
  return aa_appsql_recheck(c, keys[key].name, keys[key].sql_params, sql, code);
}

/*
** Validates a text value for key k. `deep` also runs the checks that need
** the database (SQL must prepare): done when setting, not when loading, so a
** later schema change in the app cannot lock every connection out.
*/
static int check_value(aa_conn *c, const key_def *k, const char *s, int n,
                       int deep, int64_t *int_out) {
  const char *why;
  switch (k->kind) {
    case K_INT: {
      int64_t v;
      if (!parse_int(s, n, &v) || v < k->min || v > k->max)
        return aa_err(c, SQLITE_ERROR, AA_E_INVALID_ARGUMENT,
                      "%s must be an integer from %lld to %lld", k->name,
                      (long long)k->min, (long long)k->max);
      *int_out = v;
      return SQLITE_OK;
    }
    case K_ENUM:
      for (int i = 0; k->choices[i]; i++) {
        if ((int)strlen(k->choices[i]) == n && memcmp(k->choices[i], s, (size_t)n) == 0) {
          *int_out = i;
          return SQLITE_OK;
        }
      }
      return aa_err(c, SQLITE_ERROR, AA_E_INVALID_ARGUMENT,
                    "%s must be one of: %s, %s%s%s", k->name, k->choices[0],
                    k->choices[1], k->choices[2] ? ", " : "",
                    k->choices[2] ? k->choices[2] : "");
    case K_TEXT:
      if (n < 1 || n > TEXT_MAX || !aa_printable_ascii(s, n))
        return aa_err(c, SQLITE_ERROR, AA_E_INVALID_ARGUMENT,
                      "%s must be 1 to %d printable ASCII characters",
                      k->name, TEXT_MAX);
      return SQLITE_OK;
    case K_SECRET:
      /* A key that encrypts what the database holds must not be stored in it. */
      if (k == &keys[AA_CFG_JWT_KEY_SECRET] && !(n >= 4 && memcmp(s, "env:", 4) == 0))
        return aa_err(c, SQLITE_ERROR, AA_E_INVALID_ARGUMENT,
                      "%s must be env:NAME (a secret kept in the database would protect "
                      "nothing)",
                      k->name);
      if (n >= 4 && memcmp(s, "env:", 4) == 0) {
        /* Which variables may be named is checked when set and when used
        ** (captcha.c), not when loading: a value from an older release must
        ** not lock every call out. */
        why = aa_secret_env_problem(s + 4, n - 4, !deep);
        if (why)
          return aa_err(c, SQLITE_ERROR, AA_E_INVALID_ARGUMENT, "%s: %s", k->name, why);
        return SQLITE_OK;
      }
      if (n < 1 || n > SECRET_MAX || !aa_printable_ascii(s, n))
        return aa_err(c, SQLITE_ERROR, AA_E_INVALID_ARGUMENT,
                      "%s must be 1 to %d printable ASCII characters, or "
                      "env:NAME",
                      k->name, SECRET_MAX);
      return SQLITE_OK;
    case K_URL:
      why = aa_url_problem(s, n);
      if (why)
        return aa_err(c, SQLITE_ERROR, AA_E_INVALID_ARGUMENT, "%s %s", k->name, why);
      return SQLITE_OK;
    case K_SQL:
      if (n < 1 || n > SQL_MAX || !aa_utf8_valid((const unsigned char *)s, n))
        return aa_err(c, SQLITE_ERROR, AA_E_INVALID_ARGUMENT,
                      "%s must be 1 to %d bytes of UTF-8 SQL", k->name, SQL_MAX);
      return deep ? aa_appsql_check(c, k->name, k->sql_params, s, n) : SQLITE_OK;
  }
  return aa_err(c, SQLITE_INTERNAL, AA_E_INTERNAL, "unknown key kind");
}

/* ---- the cache ----------------------------------------------------------- */

static void reset_to_defaults(struct aa_config_cache *cc) {
  for (int i = 0; i < AA_CFG_COUNT; i++) {
    cc->ints[i] = keys[i].def;
    sqlite3_free(cc->texts[i]);
    cc->texts[i] = NULL;
  }
}

/* The connection's cache, created on first use; NULL when out of memory. */
static struct aa_config_cache *cache_get(aa_conn *c) {
  if (c->config == NULL) {
    c->config = sqlite3_malloc(sizeof(*c->config));
    if (c->config == NULL) return NULL;
    memset(c->config, 0, sizeof(*c->config));
    reset_to_defaults(c->config);
  }
  return c->config;
}

void aa_config_cache_free(aa_conn *c) {
  if (c->config == NULL) return;
  reset_to_defaults(c->config);
  sqlite3_free(c->config);
  c->config = NULL;
}

static void invalidate(aa_conn *c) {
  if (c->config) c->config->loaded = 0;
}

static const char SQL_GENERATION[] =
    "SELECT value FROM main.anonauth_meta WHERE key = 'config_generation'";
static const char SQL_ALL[] = "SELECT key, value FROM main.anonauth_config";
static const char SQL_ONE[] =
    "SELECT value FROM main.anonauth_config WHERE key = ?1";
static const char SQL_UPSERT[] =
    "INSERT INTO main.anonauth_config(key, value) VALUES (?1, ?2) "
    "ON CONFLICT(key) DO UPDATE SET value = excluded.value";
static const char SQL_DELETE[] =
    "DELETE FROM main.anonauth_config WHERE key = ?1";

static int read_generation(aa_conn *c, int64_t *gen) {
  sqlite3_stmt *st;
  int rc = aa_stmt_get(c, SQL_GENERATION, &st);
  if (rc != SQLITE_OK) return rc;
  rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    *gen = sqlite3_column_int64(st, 0);
    rc = SQLITE_OK;
  } else if (rc == SQLITE_DONE) {
    *gen = 0;
    rc = SQLITE_OK;
  } else {
    rc = aa_err_storage(c, rc);
  }
  aa_stmt_release(st);
  return rc;
}

_Static_assert(AA_CFG_COUNT <= 64, "aa_config_cache.invalid has a bit per key");

/* A tolerant load (the setter's) keeps the default for a stored value it
** cannot read and marks the key in cc->invalid, instead of failing. */
static int reload(aa_conn *c, struct aa_config_cache *cc, int tolerant) {
  sqlite3_stmt *st;
  int rc = aa_stmt_get(c, SQL_ALL, &st);
  if (rc != SQLITE_OK) return rc;
  reset_to_defaults(cc);
  cc->invalid = 0;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    const char *name = (const char *)sqlite3_column_text(st, 0);
    int name_len = sqlite3_column_bytes(st, 0);
    const char *val = (const char *)sqlite3_column_text(st, 1);
    int val_len = sqlite3_column_bytes(st, 1);
    int64_t iv = 0;
    int k = name ? find_key(name, name_len) : -1;
    if (k < 0 || val == NULL) continue; /* a key from a newer release */
    if (check_value(c, &keys[k], val, val_len, 0, &iv) != SQLITE_OK) {
      aa_err_clear(c);
      if (tolerant) {
        cc->invalid |= UINT64_C(1) << k;
        continue;
      }
      rc = aa_err(c, SQLITE_ERROR, AA_E_STORAGE,
                  "anonauth_config holds an invalid value for %s; set it "
                  "with anonauth_config()",
                  keys[k].name);
      aa_stmt_release(st);
      reset_to_defaults(cc);
      return rc;
    }
    if (keys[k].kind == K_INT || keys[k].kind == K_ENUM) {
      cc->ints[k] = iv;
    } else {
      cc->texts[k] = sqlite3_mprintf("%.*s", val_len, val);
      if (cc->texts[k] == NULL) {
        aa_stmt_release(st);
        reset_to_defaults(cc);
        return aa_err_nomem(c);
      }
    }
  }
  if (rc != SQLITE_DONE) {
    rc = aa_err_storage(c, rc);
    aa_stmt_release(st);
    reset_to_defaults(cc);
    return rc;
  }
  aa_stmt_release(st);
  return SQLITE_OK;
}

int aa_config_sync(aa_conn *c) {
  struct aa_config_cache *cc = cache_get(c);
  unsigned data_version = 0;
  int64_t gen = 0;
  int rc;
  if (cc == NULL) return aa_err_nomem(c);
  sqlite3_file_control(c->db, "main", SQLITE_FCNTL_DATA_VERSION, &data_version);
  if (cc->loaded && data_version == cc->data_version) return SQLITE_OK;
  rc = read_generation(c, &gen);
  if (rc != SQLITE_OK) return rc;
  if (!cc->loaded || gen != cc->generation) {
    rc = reload(c, cc, 0);
    if (rc != SQLITE_OK) {
      cc->loaded = 0;
      return rc;
    }
  }
  cc->generation = gen;
  cc->data_version = data_version;
  cc->loaded = 1;
  return SQLITE_OK;
}

void aa_config_after_own_commit(aa_conn *c) {
  struct aa_config_cache *cc = c->config;
  unsigned data_version = 0;
  if (cc == NULL || !cc->loaded) return;
  sqlite3_file_control(c->db, "main", SQLITE_FCNTL_DATA_VERSION, &data_version);
  if (data_version == cc->data_version + 1) cc->data_version = data_version;
}

int aa_config_refresh(aa_conn *c) {
  struct aa_config_cache *cc = cache_get(c);
  sqlite3_stmt *st;
  unsigned data_version = 0;
  int64_t gen = 0;
  int rc;
  if (cc == NULL) return aa_err_nomem(c);
  rc = aa_schema_check(c);
  if (rc == SQLITE_NOTFOUND) { /* no tables yet: everything is default */
    aa_err_clear(c);
    reset_to_defaults(cc);
    cc->loaded = 0;
    return SQLITE_OK;
  }
  if (rc != SQLITE_OK) return rc;
  /* Stepping the statement opens a read transaction (if the caller had
  ** none), which is what makes the data version current. */
  rc = aa_stmt_get(c, SQL_GENERATION, &st);
  if (rc != SQLITE_OK) return rc;
  rc = sqlite3_step(st);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
    rc = aa_err_storage(c, rc);
    aa_stmt_release(st);
    return rc;
  }
  if (rc == SQLITE_ROW) gen = sqlite3_column_int64(st, 0);
  sqlite3_file_control(c->db, "main", SQLITE_FCNTL_DATA_VERSION, &data_version);
  rc = SQLITE_OK;
  if (!cc->loaded || gen != cc->generation) rc = reload(c, cc, 0);
  aa_stmt_release(st);
  if (rc != SQLITE_OK) {
    cc->loaded = 0;
    return rc;
  }
  cc->generation = gen;
  cc->data_version = data_version;
  cc->loaded = 1;
  return SQLITE_OK;
}

int64_t aa_config_int(aa_conn *c, aa_config_key key) {
  return c->config ? c->config->ints[key] : keys[key].def;
}

const char *aa_config_text(aa_conn *c, aa_config_key key) {
  return c->config ? c->config->texts[key] : NULL;
}

/* ---- anonauth_config(key [, value]) -------------------------------------- */

typedef struct {
  int key;
  const char *value; /* NULL: back to the default */
  int value_len;
  int64_t int_value;
} config_write;

/* Rules that tie two keys together, checked against the other's value. */
static int check_cross(aa_conn *c, const config_write *w) {
  aa_config_key other;
  int64_t touch = aa_config_int(c, AA_CFG_SESSION_TOUCH_INTERVAL);
  int64_t idle = aa_config_int(c, AA_CFG_SESSION_IDLE_TIMEOUT);
  if (w->key == AA_CFG_SESSION_TOUCH_INTERVAL)
    touch = w->value ? w->int_value : keys[w->key].def;
  if (w->key == AA_CFG_SESSION_IDLE_TIMEOUT)
    idle = w->value ? w->int_value : keys[w->key].def;
  if (w->key != AA_CFG_SESSION_TOUCH_INTERVAL && w->key != AA_CFG_SESSION_IDLE_TIMEOUT)
    return SQLITE_OK;
  other = w->key == AA_CFG_SESSION_TOUCH_INTERVAL ? AA_CFG_SESSION_IDLE_TIMEOUT
                                                  : AA_CFG_SESSION_TOUCH_INTERVAL;
  if (c->config->invalid & (UINT64_C(1) << other))
    return aa_err(c, SQLITE_ERROR, AA_E_STORAGE,
                  "anonauth_config holds an invalid value for %s; set it "
                  "with anonauth_config() first",
                  keys[other].name);
  if (touch >= idle)
    return aa_err(c, SQLITE_ERROR, AA_E_INVALID_ARGUMENT,
                  "session.touch_interval (%lld) must be less than "
                  "session.idle_timeout (%lld), or active sessions would "
                  "time out",
                  (long long)touch, (long long)idle);
  return SQLITE_OK;
}

static int write_body(aa_conn *c, void *arg) {
  config_write *w = arg;
  sqlite3_stmt *st;
  sqlite3_str *detail;
  char *detail_text;
  int rc = aa_config_sync(c);
  if (rc != SQLITE_OK && c->config != NULL && aa_err_recorded(c, NULL) == SQLITE_ERROR) {
    /* A stored value that cannot be read (written around the setter, or out
    ** of range since a release lowered a maximum) must not block the setter:
    ** setting or resetting keys is the repair the error asks for. */
    aa_err_clear(c);
    rc = reload(c, c->config, 1);
  }
  if (rc != SQLITE_OK) return rc;
  rc = check_cross(c, w);
  if (rc != SQLITE_OK) return rc;
  if (w->value) {
    rc = aa_stmt_get(c, SQL_UPSERT, &st);
    if (rc != SQLITE_OK) return rc;
    sqlite3_bind_text(st, 1, keys[w->key].name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, w->value, w->value_len, SQLITE_STATIC);
  } else {
    rc = aa_stmt_get(c, SQL_DELETE, &st);
    if (rc != SQLITE_OK) return rc;
    sqlite3_bind_text(st, 1, keys[w->key].name, -1, SQLITE_STATIC);
  }
  rc = aa_stmt_exec(c, st);
  if (rc != SQLITE_OK) return rc;
  invalidate(c);

  /* The audit row names the key, never the value: some values are secrets. */
  detail = sqlite3_str_new(c->db);
  sqlite3_str_appendall(detail, "{\"key\":");
  aa_str_append_json_string(detail, keys[w->key].name, (int)strlen(keys[w->key].name));
  sqlite3_str_appendall(detail, w->value ? "}" : ",\"reset\":true}");
  detail_text = sqlite3_str_finish(detail);
  if (detail_text == NULL) return aa_err_nomem(c);
  rc = aa_audit(c, "config_set", AA_NO_ID, AA_NO_ID, NULL, detail_text);
  sqlite3_free(detail_text);
  return rc;
}

/* What anonauth_config() shows for a value: secrets only as "set". */
static void result_value(sqlite3_context *ctx, const key_def *k, const char *v,
                         int n) {
  if (v == NULL) {
    if (k->kind == K_INT)
      sqlite3_result_int64(ctx, k->def);
    else if (k->kind == K_ENUM)
      sqlite3_result_text(ctx, k->choices[k->def], -1, SQLITE_STATIC);
    else
      sqlite3_result_null(ctx);
    return;
  }
  if (k->kind == K_INT) {
    int64_t iv = 0;
    parse_int(v, n, &iv);
    sqlite3_result_int64(ctx, iv);
  } else if (k->kind == K_SECRET && !(n >= 4 && memcmp(v, "env:", 4) == 0)) {
    sqlite3_result_text(ctx, "(hidden)", -1, SQLITE_STATIC);
  } else {
    sqlite3_result_text(ctx, v, n, SQLITE_TRANSIENT);
  }
}

static int read_one(aa_conn *c, sqlite3_context *ctx, const key_def *k) {
  sqlite3_stmt *st;
  int64_t iv;
  int rc = aa_schema_check(c);
  if (rc == SQLITE_NOTFOUND) {
    aa_err_clear(c);
    result_value(ctx, k, NULL, 0);
    return SQLITE_OK;
  }
  if (rc != SQLITE_OK) return rc;
  rc = aa_stmt_get(c, SQL_ONE, &st);
  if (rc != SQLITE_OK) return rc;
  sqlite3_bind_text(st, 1, k->name, -1, SQLITE_STATIC);
  rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    const char *v = (const char *)sqlite3_column_text(st, 0);
    int n = sqlite3_column_bytes(st, 0);
    if (v == NULL || check_value(c, k, v, n, 0, &iv) != SQLITE_OK) {
      aa_err_clear(c);
      rc = aa_err(c, SQLITE_ERROR, AA_E_STORAGE,
                  "anonauth_config holds an invalid value for %s; set it "
                  "with anonauth_config()",
                  k->name);
    } else {
      result_value(ctx, k, v, n);
      rc = SQLITE_OK;
    }
  } else if (rc == SQLITE_DONE) {
    result_value(ctx, k, NULL, 0);
    rc = SQLITE_OK;
  } else {
    rc = aa_err_storage(c, rc);
  }
  aa_stmt_release(st);
  return rc;
}

/* Echoes a key back only when it is short and looks like a key (lowercase
** letters, digits, '.' and '_'), so that an error can never carry arbitrary
** bytes, or a token pasted in the wrong place, into a log. */
static int plain_key(const char *s, int n) {
  if (n < 1 || n > 48 || (n >= (int)AA_TOKEN_PREFIX_LEN &&
                          memcmp(s, AA_TOKEN_PREFIX, AA_TOKEN_PREFIX_LEN) == 0))
    return 0;
  for (int i = 0; i < n; i++) {
    char ch = s[i];
    if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '.' || ch == '_'))
      return 0;
  }
  return 1;
}

static int unknown_key(aa_conn *c, const char *name, int n) {
  if (plain_key(name, n))
    return aa_err(c, SQLITE_ERROR, AA_E_INVALID_ARGUMENT,
                  "unknown config key '%.*s'", n, name);
  return aa_err(c, SQLITE_ERROR, AA_E_INVALID_ARGUMENT, "unknown config key");
}

void aa_fn_config(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  aa_conn *c = sqlite3_user_data(ctx);
  const char *name;
  int name_len, k, rc;
  aa_err_clear(c);

  if (sqlite3_value_type(argv[0]) != SQLITE_TEXT) {
    aa_result_error(ctx, c, aa_err(c, SQLITE_ERROR, AA_E_INVALID_ARGUMENT,
                                   "config key must be text"));
    return;
  }
  name = (const char *)sqlite3_value_text(argv[0]);
  name_len = sqlite3_value_bytes(argv[0]);
  if (name == NULL) {
    aa_result_error(ctx, c, aa_err_nomem(c));
    return;
  }
  k = find_key(name, name_len);
  if (k < 0) {
    aa_result_error(ctx, c, unknown_key(c, name, name_len));
    return;
  }

  if (argc == 1) {
    rc = read_one(c, ctx, &keys[k]);
    if (rc != SQLITE_OK) aa_result_error(ctx, c, rc);
    return;
  }

  {
    config_write w = {k, NULL, 0, 0};
    char int_text[24];
    int type = sqlite3_value_type(argv[1]);
    int64_t int_arg;
    if (keys[k].kind == K_INT && aa_value_int64(argv[1], &int_arg)) {
      sqlite3_snprintf((int)sizeof(int_text), int_text, "%lld", (long long)int_arg);
      w.value = int_text;
      w.value_len = (int)strlen(int_text);
    } else if (type == SQLITE_TEXT) {
      w.value = (const char *)sqlite3_value_text(argv[1]);
      w.value_len = sqlite3_value_bytes(argv[1]);
      if (w.value == NULL) {
        aa_result_error(ctx, c, aa_err_nomem(c));
        return;
      }
    } else if (type != SQLITE_NULL) {
      aa_result_error(ctx, c,
                      aa_err(c, SQLITE_ERROR, AA_E_INVALID_ARGUMENT,
                             "%s must be %s, or NULL for the default",
                             keys[k].name,
                             keys[k].kind == K_INT ? "an integer" : "text"));
      return;
    }
    if (w.value) {
      rc = check_value(c, &keys[k], w.value, w.value_len, 1, &w.int_value);
      if (rc != SQLITE_OK) {
        aa_result_error(ctx, c, rc);
        return;
      }
      if (keys[k].kind == K_INT) { /* store "0010" as 10 */
        sqlite3_snprintf((int)sizeof(int_text), int_text, "%lld",
                         (long long)w.int_value);
        w.value = int_text;
        w.value_len = (int)strlen(int_text);
      }
    }
    rc = aa_atomic(c, write_body, &w);
    if (rc != SQLITE_OK) {
      aa_result_error(ctx, c, rc);
      return;
    }
    result_value(ctx, &keys[k], w.value, w.value_len);
  }
}
