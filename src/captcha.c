/*
** captcha.c — server-side CAPTCHA verification (Cloudflare Turnstile,
** hCaptcha): verify_turnstile(), verify_hcaptcha(), and the gate in front of
** the sign-up functions.
**
** A CAPTCHA only protects anything if the server asks the provider about
** every token, so the gate sits in front of anon_signin (and
** account_signup): with captcha.provider set, no token or a refused token
** means nothing is created. The rules that shape this file:
**   - the network call happens before the caller's write (aa_atomic), never
**     while holding the database's write lock, which would stall every
**     other writer for up to captcha.timeout_ms; unless the caller's
**     transaction holds it: after BEGIN IMMEDIATE, or a deferred BEGIN whose
**     first statement is this call (see aa_atomic_begin());
**   - captcha.timeout_ms bounds the whole verification, retries included,
**     measured on the monotonic clock (aa_now() is for validity rules and
**     tests move it);
**   - only what may heal is retried: no answer, HTTP 5xx, internal-error.
**     A Turnstile verification carries one idempotency_key on every try, so
**     a retry after a lost answer is not refused as a duplicate;
**   - the secret is read at call time (argument, else captcha.secret, and
**     env:NAME from the environment), only ever copied into the request
**     buffer, which is wiped; no message names it. Where it may be sent is
**     the process's decision, not the database's (check_destination); A provider that refuses
**     the secret is a misconfiguration, not the user's fault, so it raises
**     captcha_misconfigured instead of quietly rejecting everybody.
*/
#include "anonauth_int.h"

#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SECRET_MAX 1024 /* as config.c allows for captcha.secret */
#define BACKOFF_MS 100  /* first pause between tries; doubles each time */

typedef struct {
  const char *name;  /* as in captcha.provider */
  const char *label; /* for messages */
  const char *url;   /* the official endpoint */
  int idempotency;   /* sends idempotency_key */
  int sitekey;       /* sends captcha.sitekey */
  int action;        /* answers carry an action to compare */
} provider_def;

enum { PROVIDER_NONE, PROVIDER_TURNSTILE, PROVIDER_HCAPTCHA }; /* config.c's order */

static const provider_def providers[] = {
    [PROVIDER_TURNSTILE] = {"turnstile", "Turnstile",
                            "https://challenges.cloudflare.com/turnstile/v0/siteverify", 1, 0, 1},
    [PROVIDER_HCAPTCHA] = {"hcaptcha", "hCaptcha", "https://api.hcaptcha.com/siteverify", 0, 1, 0},
};

/* Codes with which a provider refuses the configuration rather than the
** user's token. */
static const char *const secret_codes[] = {"missing-input-secret", "invalid-input-secret",
                                           "sitekey-secret-mismatch", NULL};

static int64_t monotonic_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void pause_ms(int64_t ms) {
  struct timespec ts;
  if (ms <= 0) return;
  ts.tv_sec = (time_t)(ms / 1000);
  ts.tv_nsec = (long)(ms % 1000) * 1000000L;
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

/* ---- the secret and where it may go ---------------------------------------- */

/*
** Where a request may go, and which environment variables a secret may name,
** is decided by the process, never by the database: captcha.url and
** captcha.secret live in the database, and a database someone else wrote
** could otherwise point captcha.url at their own server or at any port of
** this machine and have anonauth send it env:DATABASE_PASSWORD, or the
** secret the app passed as an argument. So:
**   - env:NAME may name only variables whose names start with ANONAUTH_:
**     the process decides which of those exist;
**   - a loopback captcha.url is a test and development setting, used only
**     when the process sets ANONAUTH_ALLOW_LOOPBACK_CAPTCHA=1;
**   - a secret from the argument or from the environment goes only to the
**     provider's official endpoint (or that opted-in loopback address); only
**     a literal captcha.secret, which whoever chose captcha.url could read
**     anyway, may go to another https:// host.
*/
#define SECRET_ENV_PREFIX "ANONAUTH_"
#define LOOPBACK_OPT_IN "ANONAUTH_ALLOW_LOOPBACK_CAPTCHA"

const char *aa_secret_env_problem(const char *name, int n, int syntax_only) {
  const int prefix_len = (int)sizeof(SECRET_ENV_PREFIX) - 1;
  if (n < 1 || n > 128) return "env: must be followed by an environment variable name";
  for (int i = 0; i < n; i++) {
    char ch = name[i];
    if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || ch == '_' ||
          (i > 0 && ch >= '0' && ch <= '9')))
      return "env: must be followed by an environment variable name";
  }
  if (!syntax_only && (n <= prefix_len || memcmp(name, SECRET_ENV_PREFIX, prefix_len) != 0))
    return "env: may name only an environment variable whose name starts with "
           SECRET_ENV_PREFIX;
  return NULL;
}

static int loopback_allowed(void) {
  const char *v = getenv(LOOPBACK_OPT_IN);
  return v != NULL && strcmp(v, "1") == 0;
}

typedef enum { SECRET_ARGUMENT, SECRET_CONFIG } secret_origin;

/*
** The secret for this call: the argument when given, else captcha.secret;
** either may be env:NAME. *secret points into SQLite's value, the config
** cache or the environment: nothing is copied here.
*/
static int resolve_secret(aa_conn *c, sqlite3_value *arg, const char *fn, const char **secret,
                          int *secret_len, secret_origin *origin, int *from_env) {
  const char *s = NULL;
  int n = 0;
  int from_arg = 0;
  if (arg != NULL && sqlite3_value_type(arg) != SQLITE_NULL) {
    if (sqlite3_value_type(arg) != SQLITE_TEXT)
      return aa_err(c, SQLITE_ERROR, AA_E_INVALID_ARGUMENT, "%s: secret must be text", fn);
    s = (const char *)sqlite3_value_text(arg);
    if (s == NULL) return aa_err_nomem(c);
    n = sqlite3_value_bytes(arg);
    from_arg = 1;
  } else {
    s = aa_config_text(c, AA_CFG_CAPTCHA_SECRET);
    if (s == NULL)
      return aa_err(c, SQLITE_ERROR, AA_E_CAPTCHA_MISCONFIGURED,
                    "%s: no secret: pass one or set captcha.secret", fn);
    n = (int)strlen(s);
  }
  *origin = from_arg ? SECRET_ARGUMENT : SECRET_CONFIG;
  if (n > 4 && memcmp(s, "env:", 4) == 0) {
    const char *name = s + 4;
    const char *why = aa_secret_env_problem(name, n - 4, 0);
    *from_env = 1;
    if (why != NULL)
      return aa_err(c, SQLITE_ERROR,
                    from_arg ? AA_E_INVALID_ARGUMENT : AA_E_CAPTCHA_MISCONFIGURED, "%s: %s",
                    fn, why);
    s = getenv(name);
    if (s == NULL || s[0] == 0)
      return aa_err(c, SQLITE_ERROR, AA_E_CAPTCHA_MISCONFIGURED,
                    "%s: the secret's environment variable %s is not set", fn, name);
    n = (int)strlen(s);
    if (n > SECRET_MAX || !aa_printable_ascii(s, n))
      return aa_err(c, SQLITE_ERROR, AA_E_CAPTCHA_MISCONFIGURED,
                    "%s: the environment variable %s must hold 1 to %d printable ASCII "
                    "characters",
                    fn, name, SECRET_MAX);
  } else if (n < 1 || n > SECRET_MAX || !aa_printable_ascii(s, n)) {
    return aa_err(c, SQLITE_ERROR, AA_E_INVALID_ARGUMENT,
                  "%s: the secret must be 1 to %d printable ASCII characters, or env:NAME", fn,
                  SECRET_MAX);
  }
  *secret = s;
  *secret_len = n;
  return SQLITE_OK;
}

/* SQLITE_OK when this secret may be sent to url; else captcha_misconfigured
** recorded, saying what would allow it. Nothing has been sent yet. */
static int check_destination(aa_conn *c, const provider_def *p, const char *fn,
                             const char *url, secret_origin origin, int from_env) {
  if (strcmp(url, p->url) == 0) return SQLITE_OK;
  if (aa_url_is_loopback(url)) {
    if (loopback_allowed()) return SQLITE_OK;
    return aa_err(c, SQLITE_ERROR, AA_E_CAPTCHA_MISCONFIGURED,
                  "%s: captcha.url names a loopback address, which is only for tests and "
                  "development: the process must set the environment variable "
                  LOOPBACK_OPT_IN "=1 to allow it",
                  fn);
  }
  if (origin == SECRET_CONFIG && !from_env) return SQLITE_OK;
  return aa_err(c, SQLITE_ERROR, AA_E_CAPTCHA_MISCONFIGURED,
                "%s: %s is sent only to %s's own endpoint (or to a loopback address when "
                "the process sets " LOOPBACK_OPT_IN "=1), and captcha.url names another host",
                fn, from_env ? "an env: secret" : "a secret passed as an argument", p->label);
}

/* ---- one verification ------------------------------------------------------ */

typedef struct {
  int passed;
  aa_verdict verdict; /* codes of a refusal */
} check;

/* A token that cannot be valid is refused here, without a network call,
** with the code the provider itself would give. */
static int local_refusal(const char *token, int token_len, int oversized, check *out) {
  const char *code = NULL;
  int too_long = oversized || token_len > AA_CAPTCHA_TOKEN_MAX;
  if (!too_long && (token == NULL || token_len == 0)) code = "missing-input-response";
  else if (too_long || !aa_printable_ascii(token, token_len)) code = "invalid-input-response";
  if (code == NULL) return 0;
  memset(out, 0, sizeof(*out));
  memcpy(out->verdict.codes[0], code, strlen(code) + 1);
  out->verdict.n_codes = 1;
  return 1;
}

/* RFC 9562 version 4: 122 bits from libsodium's CSPRNG. */
static void new_uuid(char out[37]) {
  static const char hex[] = "0123456789abcdef";
  unsigned char b[16];
  int o = 0;
  randombytes_buf(b, sizeof(b));
  b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
  b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
  for (int i = 0; i < 16; i++) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out[o++] = '-';
    out[o++] = hex[b[i] >> 4];
    out[o++] = hex[b[i] & 15];
  }
  out[o] = 0;
}

typedef enum { TRY_AGAIN, DONE } try_result;

/*
** Reads one reply. DONE with *rc == SQLITE_OK and *out filled for a verdict,
** DONE with an error recorded for a final failure, TRY_AGAIN with `why`
** set for one that a retry may heal.
*/
static try_result read_reply(aa_conn *c, const provider_def *p, const char *fn,
                             const aa_http_reply *r, int64_t timeout_ms, check *out,
                             char *why, int why_cap, int *rc) {
  const char *want_host = aa_config_text(c, AA_CFG_CAPTCHA_HOSTNAME);
  const char *want_action = p->action ? aa_config_text(c, AA_CFG_CAPTCHA_ACTION) : NULL;
  const char *parse_why = NULL;
  int prc;
  *rc = SQLITE_OK;
  switch (r->outcome) {
    case AA_HTTP_UNREACHABLE:
      sqlite3_snprintf(why_cap, why, "could not be reached (%s)", r->error);
      return TRY_AGAIN;
    case AA_HTTP_TIMED_OUT:
      *rc = aa_err(c, SQLITE_ERROR, AA_E_CAPTCHA_UNAVAILABLE,
                   "%s: %s did not answer within captcha.timeout_ms (%lld ms)%s%s", fn,
                   p->label, (long long)timeout_ms, why[0] ? "; before that it " : "", why);
      return DONE;
    case AA_HTTP_TOO_LARGE:
      *rc = aa_err(c, SQLITE_ERROR, AA_E_CAPTCHA_UNAVAILABLE,
                   "%s: %s answered more than 64 KiB, which is not a verdict", fn, p->label);
      return DONE;
    case AA_HTTP_ANSWERED:
      break;
  }
  if (r->status >= 500) {
    sqlite3_snprintf(why_cap, why, "answered HTTP %ld", r->status);
    return TRY_AGAIN;
  }
  if (r->status >= 300 && r->status < 400) {
    *rc = aa_err(c, SQLITE_ERROR, AA_E_CAPTCHA_UNAVAILABLE,
                 "%s: %s answered a redirect (HTTP %ld), which is not followed", fn, p->label,
                 r->status);
    return DONE;
  }
  prc = aa_siteverify_parse(r->body, r->body_len, want_host, want_action, &out->verdict,
                            &parse_why);
  if (prc == SQLITE_NOMEM) {
    *rc = aa_err_nomem(c);
    return DONE;
  }
  if (prc != SQLITE_OK) {
    *rc = aa_err(c, SQLITE_ERROR, AA_E_CAPTCHA_UNAVAILABLE,
                 "%s: %s answered HTTP %ld with %s, which is not a verdict", fn, p->label,
                 r->status, parse_why);
    return DONE;
  }
  /* Only a 200 can say yes. A 4xx may say no (Turnstile answers secret
  ** errors with 400 and a verdict); a yes under any other status is a
  ** proxy or error page, not the provider. */
  if (r->status != 200 && (r->status < 400 || out->verdict.provider_success)) {
    memset(&out->verdict, 0, sizeof(out->verdict));
    *rc = aa_err(c, SQLITE_ERROR, AA_E_CAPTCHA_UNAVAILABLE,
                 "%s: %s answered HTTP %ld, which is not a verdict", fn, p->label, r->status);
    return DONE;
  }
  if (!out->verdict.provider_success && aa_verdict_has_code(&out->verdict, "internal-error")) {
    sqlite3_snprintf(why_cap, why, "reported internal-error");
    return TRY_AGAIN;
  }
  out->passed = out->verdict.success;
  return DONE;
}

/*
** Asks provider p about token. SQLITE_OK with out->passed set (and the
** codes of a refusal), or captcha_unavailable / captcha_misconfigured /
** invalid_argument recorded. remoteip is canonical text or NULL.
*/
static int verify(aa_conn *c, int provider, const char *fn, const char *token, int token_len,
                  int token_oversized, const char *remoteip, sqlite3_value *secret_arg,
                  check *out) {
  const provider_def *p = &providers[provider];
  const char *secret = NULL, *url, *sitekey;
  int secret_len = 0, from_env = 0, rc, attempts = 0;
  secret_origin origin = SECRET_CONFIG;
  int64_t timeout_ms, retries, deadline;
  char idem[37];
  char why[160] = "";
  aa_form *form;

  memset(out, 0, sizeof(*out));
  /* Inside another anonauth call (SQL it runs, such as link.merge_sql) the
  ** write lock is held: no network call may happen there. */
  if (c->in_atomic)
    return aa_err(c, SQLITE_ERROR, AA_E_REENTRANT,
                  "%s: cannot verify a CAPTCHA from inside another anonauth call", fn);
  rc = aa_config_refresh(c);
  if (rc != SQLITE_OK) return rc;
  rc = resolve_secret(c, secret_arg, fn, &secret, &secret_len, &origin, &from_env);
  if (rc != SQLITE_OK) return rc;
  url = aa_config_text(c, AA_CFG_CAPTCHA_URL);
  if (url == NULL) url = p->url;
  rc = check_destination(c, p, fn, url, origin, from_env);
  if (rc != SQLITE_OK) return rc;
  if (local_refusal(token, token_len, token_oversized, out)) return SQLITE_OK;

  sitekey = p->sitekey ? aa_config_text(c, AA_CFG_CAPTCHA_SITEKEY) : NULL;
  timeout_ms = aa_config_int(c, AA_CFG_CAPTCHA_TIMEOUT_MS);
  retries = aa_config_int(c, AA_CFG_CAPTCHA_RETRIES);

  form = sqlite3_malloc(sizeof(*form));
  if (form == NULL) return aa_err_nomem(c);
  memset(form, 0, sizeof(*form));
  aa_form_add(form, "secret", secret, (size_t)secret_len);
  aa_form_add(form, "response", token, (size_t)token_len);
  if (remoteip) aa_form_add(form, "remoteip", remoteip, strlen(remoteip));
  if (p->idempotency) {
    new_uuid(idem); /* one key for every try of this verification */
    aa_form_add(form, "idempotency_key", idem, strlen(idem));
  }
  if (sitekey) aa_form_add(form, "sitekey", sitekey, strlen(sitekey));

  deadline = monotonic_ms() + timeout_ms;
  for (;;) {
    aa_http_reply reply;
    int64_t left = deadline - monotonic_ms();
    try_result tr;
    if (left <= 0) {
      rc = aa_err(c, SQLITE_ERROR, AA_E_CAPTCHA_UNAVAILABLE,
                  "%s: %s did not answer within captcha.timeout_ms (%lld ms)%s%s", fn, p->label,
                  (long long)timeout_ms, why[0] ? "; before that it " : "", why);
      break;
    }
    attempts++;
    rc = aa_http_post_form(c, url, form, (long)left, &reply);
    if (rc != SQLITE_OK) break;
    tr = read_reply(c, p, fn, &reply, timeout_ms, out, why, (int)sizeof(why), &rc);
    if (tr == DONE) break;
    if (attempts > retries) {
      rc = aa_err(c, SQLITE_ERROR, AA_E_CAPTCHA_UNAVAILABLE, "%s: %s %s (%d %s)", fn, p->label,
                  why, attempts, attempts == 1 ? "try" : "tries");
      break;
    }
    {
      int64_t backoff = (int64_t)BACKOFF_MS << (attempts - 1);
      left = deadline - monotonic_ms();
      pause_ms(backoff < left ? backoff : left);
    }
  }
  aa_form_wipe(form);
  sqlite3_free(form);
  if (rc != SQLITE_OK) return rc;

  if (!out->passed) {
    for (int i = 0; secret_codes[i]; i++) {
      if (aa_verdict_has_code(&out->verdict, secret_codes[i]))
        return aa_err(c, SQLITE_ERROR, AA_E_CAPTCHA_MISCONFIGURED,
                      "%s: %s refused the secret or site key (%s)", fn, p->label,
                      secret_codes[i]);
    }
  }
  return SQLITE_OK;
}

/* "a, b, c" for a message; "no error code" when the provider gave none. */
static void codes_text(const aa_verdict *v, char *out, int cap) {
  sqlite3_str *s;
  char *text;
  out[0] = 0;
  s = sqlite3_str_new(NULL);
  for (int i = 0; i < v->n_codes; i++) {
    if (i) sqlite3_str_appendall(s, ", ");
    sqlite3_str_appendall(s, v->codes[i]);
  }
  if (v->codes_dropped) sqlite3_str_appendf(s, " and %d more", v->codes_dropped);
  if (v->n_codes == 0) sqlite3_str_appendall(s, "no error code");
  text = sqlite3_str_finish(s);
  sqlite3_snprintf(cap, out, "%s", text ? text : "?");
  sqlite3_free(text);
}

/* ---- verify_turnstile(), verify_hcaptcha() -------------------------------- */

static void fn_verify(sqlite3_context *ctx, int argc, sqlite3_value **argv, int provider,
                      const char *fn) {
  aa_conn *c = sqlite3_user_data(ctx);
  const char *token = NULL;
  int token_len = 0, rc;
  char ip[AA_IP_TEXT_MAX], ip_key[AA_IP_TEXT_MAX + 4];
  const char *remoteip = NULL;
  check result;
  aa_err_clear(c);

  switch (sqlite3_value_type(argv[0])) {
    case SQLITE_NULL:
      break; /* no token: refused below, like an empty one */
    case SQLITE_TEXT:
      token = (const char *)sqlite3_value_text(argv[0]);
      if (token == NULL) {
        aa_result_error(ctx, c, aa_err_nomem(c));
        return;
      }
      token_len = sqlite3_value_bytes(argv[0]);
      break;
    default:
      aa_result_error(ctx, c,
                      aa_err(c, SQLITE_ERROR, AA_E_INVALID_ARGUMENT, "%s: token must be text", fn));
      return;
  }
  if (argc > 1 && sqlite3_value_type(argv[1]) != SQLITE_NULL) {
    const char *s = (const char *)sqlite3_value_text(argv[1]);
    if (sqlite3_value_type(argv[1]) != SQLITE_TEXT || s == NULL ||
        aa_ip_parse(s, sqlite3_value_bytes(argv[1]), ip, ip_key) != SQLITE_OK) {
      aa_result_error(ctx, c,
                      aa_err(c, SQLITE_ERROR, AA_E_INVALID_ARGUMENT,
                             "%s: remoteip must be an IPv4 or IPv6 address", fn));
      return;
    }
    remoteip = ip;
  }
  rc = verify(c, provider, fn, token, token_len, 0, remoteip, argc > 2 ? argv[2] : NULL,
              &result);
  if (rc != SQLITE_OK) {
    aa_result_error(ctx, c, rc);
    return;
  }
  sqlite3_result_int(ctx, result.passed);
}

void aa_fn_verify_turnstile(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  fn_verify(ctx, argc, argv, PROVIDER_TURNSTILE, "verify_turnstile");
}

void aa_fn_verify_hcaptcha(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  fn_verify(ctx, argc, argv, PROVIDER_HCAPTCHA, "verify_hcaptcha");
}

/* ---- the gate -------------------------------------------------------------- */

typedef struct {
  const char *fn;
  const char *provider;
  const char *ip;
  const aa_verdict *verdict;
} refusal;

/* The audit row of a refused token: which function, which provider, the
** provider's codes; never the token or the secret. */
static int refusal_body(aa_conn *c, void *arg) {
  const refusal *r = arg;
  sqlite3_str *s = sqlite3_str_new(c->db);
  char *detail;
  int rc;
  sqlite3_str_appendall(s, "{\"function\":");
  aa_str_append_json_string(s, r->fn, (int)strlen(r->fn));
  sqlite3_str_appendall(s, ",\"provider\":");
  aa_str_append_json_string(s, r->provider, (int)strlen(r->provider));
  sqlite3_str_appendall(s, ",\"error_codes\":[");
  for (int i = 0; i < r->verdict->n_codes; i++) {
    if (i) sqlite3_str_appendchar(s, 1, ',');
    aa_str_append_json_string(s, r->verdict->codes[i], (int)strlen(r->verdict->codes[i]));
  }
  sqlite3_str_appendall(s, "]}");
  detail = sqlite3_str_finish(s);
  if (detail == NULL) return aa_err_nomem(c);
  rc = aa_audit(c, "captcha_rejected", AA_NO_ID, AA_NO_ID, r->ip, detail);
  sqlite3_free(detail);
  return rc;
}

int aa_captcha_configured(aa_conn *c) {
  return aa_config_int(c, AA_CFG_CAPTCHA_PROVIDER) != PROVIDER_NONE;
}

int aa_captcha_gate(aa_conn *c, const aa_opts *o, const char *function_name) {
  int provider, rc;
  check result;
  refusal r;
  char codes[AA_VERDICT_MAX_CODES * (AA_VERDICT_CODE_MAX + 2) + 32];

  /* A call that will be refused for writing must not spend the visitor's
  ** one-use CAPTCHA token first. First in a deferred transaction, the
  ** write lock is taken here, before the first read, as BEGIN IMMEDIATE
  ** would: reading first would make the write fail under load. The
  ** provider is then asked under the lock; a bare call asks it with none. */
  rc = aa_atomic_begin(c);
  if (rc == SQLITE_OK) rc = aa_config_refresh(c);
  if (rc != SQLITE_OK) return rc;
  provider = (int)aa_config_int(c, AA_CFG_CAPTCHA_PROVIDER);
  if (provider == PROVIDER_NONE) return SQLITE_OK;
  if (provider != PROVIDER_TURNSTILE && provider != PROVIDER_HCAPTCHA)
    return aa_err(c, SQLITE_INTERNAL, AA_E_INTERNAL, "unknown captcha.provider");
  if (!o->has_captcha)
    return aa_err(c, SQLITE_ERROR, AA_E_CAPTCHA_REQUIRED,
                  "%s: opts.captcha is required (captcha.provider is '%s')", function_name,
                  providers[provider].name);

  rc = verify(c, provider, function_name, o->captcha, (int)strlen(o->captcha),
              o->captcha_oversized, o->has_ip ? o->ip : NULL, NULL, &result);
  if (rc != SQLITE_OK) return rc;
  if (result.passed) return SQLITE_OK;

  /* Refused: the audit row commits on its own, in a short atomic call of
  ** its own after the network call, and nothing else is written. */
  r.fn = function_name;
  r.provider = providers[provider].name;
  r.ip = o->has_ip ? o->ip : NULL;
  r.verdict = &result.verdict;
  rc = aa_atomic(c, refusal_body, &r);
  if (rc != SQLITE_OK) return rc;
  codes_text(&result.verdict, codes, (int)sizeof(codes));
  return aa_err(c, SQLITE_ERROR, AA_E_CAPTCHA_REJECTED, "%s: %s refused the CAPTCHA response (%s)",
                function_name, providers[provider].label, codes);
}
