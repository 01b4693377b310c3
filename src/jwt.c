/*
** jwt.c — access tokens for other services: session_jwt() issues a signed
** JWT (RFC 7519, compact JWS) for a live session, and jwt_verify() checks
** one the way a careful verifier should (RFC 8725).
**
** session_jwt() counts as activity for the session (it touches it, as
** session_valid() does): a client asking for an access token is using its
** session. The claims are RFC 9068's (typ at+jwt; iss, aud, sub, iat, exp,
** jti) plus sid, the session id, and is_anonymous; the app may add its own
** through opts.claims but never replace these.
**
** jwt_verify() fixes the algorithm by the key, never by the token: the kid
** must name a published key, and the header's alg must be that key's
** algorithm (and jwt.accept's, when set). "none" and every HMAC are refused
** before any key is looked at, so a public key can never be used as an HMAC
** secret. It writes nothing: no touch, no migration, no key creation, which
** is why views and triggers may call it (SQLITE_INNOCUOUS).
*/
#include "anonauth_int.h"

#include <sodium.h>
#include <string.h>
#include <strings.h>

#define JWT_MAX         8192 /* the whole compact token */
#define JWT_HEADER_MAX  512  /* decoded header */
#define JWT_PAYLOAD_MAX 6144 /* decoded claims */
#define CLAIMS_MAX      4096 /* opts.claims, as JSON text */
#define JTI_BYTES       16

static const char *const reserved_claims[] = {"iss", "sub", "aud", "exp", "nbf", "iat",
                                              "jti", "sid", "is_anonymous", NULL};

static int bad(aa_conn *c, const char *fn, const char *what) {
  return aa_err(c, SQLITE_ERROR, AA_E_INVALID_ARGUMENT, "%s: %s", fn, what);
}

/* An integer JSON number (no fraction, no exponent) in int64 range. */
static int json_int(const aa_json *j, int tok, int64_t *out) {
  const char *p;
  int n, i = 0, neg = 0;
  int64_t v = 0;
  if (aa_json_type(j, tok) != AA_JSON_PRIMITIVE) return 0;
  aa_json_span(j, tok, &p, &n);
  if (n > 0 && p[0] == '-') neg = i = 1;
  if (i >= n || n - i > 15) return 0;
  for (; i < n; i++) {
    if (p[i] < '0' || p[i] > '9') return 0;
    v = v * 10 + (p[i] - '0');
  }
  *out = neg ? -v : v;
  return 1;
}

/* The opts argument as a parsed JSON object; *has 0 for NULL. */
static int parse_opts(aa_conn *c, const char *fn, sqlite3_value *v, aa_json *j, int *has) {
  const char *why = NULL;
  int rc;
  *has = 0;
  if (v == NULL || sqlite3_value_type(v) == SQLITE_NULL) return SQLITE_OK;
  if (sqlite3_value_type(v) != SQLITE_TEXT) return bad(c, fn, "opts must be JSON text");
  if (sqlite3_value_bytes(v) > AA_OPTS_MAX_BYTES) return bad(c, fn, "opts is too long");
  rc = aa_json_parse(j, (const char *)sqlite3_value_text(v), sqlite3_value_bytes(v), &why);
  if (rc == SQLITE_NOMEM) return aa_err_nomem(c);
  if (rc != SQLITE_OK)
    return aa_err(c, SQLITE_ERROR, AA_E_INVALID_ARGUMENT, "%s: opts is not valid JSON (%s)", fn,
                  why ? why : "invalid");
  if (aa_json_type(j, 0) != AA_JSON_OBJECT) {
    aa_json_free(j);
    return bad(c, fn, "opts must be a JSON object");
  }
  *has = 1;
  return SQLITE_OK;
}

/* ---- session_jwt ------------------------------------------------------------- */

/* opts.claims: the app's claims, as the text between the object's braces. */
static int read_claims(aa_conn *c, const aa_json *j, char **inner, int *inner_n) {
  static const char fn[] = "session_jwt";
  *inner = NULL;
  *inner_n = 0;
  for (int m = 0; m < aa_json_object_size(j, 0); m++) {
    int key, val;
    const char *p;
    int n;
    aa_json_member(j, 0, m, &key, &val);
    if (!aa_json_string_eq(j, key, "claims"))
      return bad(c, fn, "opts may hold only \"claims\"");
    if (aa_json_is_null(j, val)) continue;
    if (aa_json_type(j, val) != AA_JSON_OBJECT)
      return bad(c, fn, "opts.claims must be a JSON object");
    aa_json_span(j, val, &p, &n);
    if (n > CLAIMS_MAX) return bad(c, fn, "opts.claims is longer than 4096 bytes");
    for (int k = 0; k < aa_json_object_size(j, val); k++) {
      int ck, cv;
      aa_json_member(j, val, k, &ck, &cv);
      for (int r = 0; reserved_claims[r]; r++) {
        if (aa_json_string_eq(j, ck, reserved_claims[r]))
          return aa_err(c, SQLITE_ERROR, AA_E_INVALID_ARGUMENT,
                        "session_jwt: opts.claims may not set the reserved claim \"%s\"",
                        reserved_claims[r]);
      }
    }
    /* Between the braces, trimmed: members the strict parser accepted. */
    p++;
    n -= 2;
    while (n > 0 && (p[0] == ' ' || p[0] == '\t' || p[0] == '\n' || p[0] == '\r')) p++, n--;
    while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t' || p[n - 1] == '\n' || p[n - 1] == '\r'))
      n--;
    *inner = (char *)p;
    *inner_n = n;
  }
  return SQLITE_OK;
}

static int need_text(aa_conn *c, aa_config_key key, const char *name, const char **out) {
  *out = aa_config_text(c, key);
  if (*out == NULL)
    return aa_err(c, SQLITE_ERROR, AA_E_JWT_MISCONFIGURED,
                  "%s is not set: set it with anonauth_config('%s', ...)", name, name);
  return SQLITE_OK;
}

static int build_jwt(aa_conn *c, const aa_session *s, const aa_jwt_signer *k,
                     const char *inner, int inner_n, char **out) {
  const char *iss, *aud;
  int64_t now = aa_now(c);
  unsigned char jti[JTI_BYTES], sig[AA_JWS_SIG_BYTES];
  sqlite3_str *hdr, *pl, *tok;
  char *header = NULL, *payload = NULL;
  int rc = need_text(c, AA_CFG_JWT_ISSUER, "jwt.issuer", &iss);
  if (rc == SQLITE_OK) rc = need_text(c, AA_CFG_JWT_AUDIENCE, "jwt.audience", &aud);
  if (rc != SQLITE_OK) return rc;

  hdr = sqlite3_str_new(c->db);
  sqlite3_str_appendf(hdr, "{\"alg\":\"%s\",\"kid\":", aa_jws_alg_name(k->alg));
  aa_str_append_json_string(hdr, k->kid, (int)strlen(k->kid));
  sqlite3_str_appendall(hdr, ",\"typ\":\"at+jwt\"}");
  header = sqlite3_str_finish(hdr);

  randombytes_buf(jti, sizeof(jti));
  pl = sqlite3_str_new(c->db);
  sqlite3_str_appendall(pl, "{\"iss\":");
  aa_str_append_json_string(pl, iss, (int)strlen(iss));
  sqlite3_str_appendall(pl, ",\"aud\":");
  aa_str_append_json_string(pl, aud, (int)strlen(aud));
  sqlite3_str_appendf(pl, ",\"sub\":\"%lld\",\"sid\":\"%lld\",\"iat\":%lld,\"exp\":%lld,\"jti\":\"",
                      (long long)s->user_id, (long long)s->session_id, (long long)now,
                      (long long)now + (long long)aa_config_int(c, AA_CFG_JWT_TTL));
  aa_b64url_append(pl, jti, sizeof(jti));
  sqlite3_str_appendf(pl, "\",\"is_anonymous\":%s", s->is_anonymous ? "true" : "false");
  if (inner_n > 0) {
    sqlite3_str_appendchar(pl, 1, ',');
    sqlite3_str_append(pl, inner, inner_n);
  }
  sqlite3_str_appendchar(pl, 1, '}');
  payload = sqlite3_str_finish(pl);

  tok = sqlite3_str_new(c->db);
  if (header != NULL && payload != NULL) {
    aa_b64url_append(tok, (const unsigned char *)header, strlen(header));
    sqlite3_str_appendchar(tok, 1, '.');
    aa_b64url_append(tok, (const unsigned char *)payload, strlen(payload));
  }
  sqlite3_free(header);
  sqlite3_free(payload);
  if (sqlite3_str_errcode(tok) != SQLITE_OK || sqlite3_str_length(tok) == 0) {
    sqlite3_free(sqlite3_str_finish(tok));
    return aa_err_nomem(c);
  }
  if (aa_jws_sign(k->key, (const unsigned char *)sqlite3_str_value(tok),
                  (size_t)sqlite3_str_length(tok), sig) != SQLITE_OK) {
    sqlite3_free(sqlite3_str_finish(tok));
    return aa_err(c, SQLITE_ERROR, AA_E_INTERNAL, "session_jwt: signing with key %s failed",
                  k->kid);
  }
  sqlite3_str_appendchar(tok, 1, '.');
  aa_b64url_append(tok, sig, sizeof(sig));
  *out = sqlite3_str_finish(tok);
  return *out ? SQLITE_OK : aa_err_nomem(c);
}

void aa_fn_session_jwt(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  aa_conn *c = sqlite3_user_data(ctx);
  aa_json j;
  aa_session s;
  aa_jwt_signer k;
  char *inner = NULL, *jwt = NULL;
  int has_opts = 0, inner_n = 0, found = 0, rc;
  aa_err_clear(c);
  memset(&k, 0, sizeof(k));
  rc = parse_opts(c, "session_jwt", argc > 1 ? argv[1] : NULL, &j, &has_opts);
  if (rc == SQLITE_OK && has_opts) rc = read_claims(c, &j, &inner, &inner_n);
  if (rc == SQLITE_OK) rc = aa_session_lookup(c, argv[0], 1, &s, &found);
  if (rc == SQLITE_OK && found) rc = aa_jwt_signer_get(c, &k);
  if (rc == SQLITE_OK && found) rc = build_jwt(c, &s, &k, inner, inner_n, &jwt);
  if (has_opts) aa_json_free(&j);
  if (rc != SQLITE_OK) {
    aa_result_error(ctx, c, rc);
    return;
  }
  if (jwt != NULL) sqlite3_result_text(ctx, jwt, -1, sqlite3_free);
}

/* ---- jwt_verify --------------------------------------------------------------- */

static const char SQL_SESSION_BY_ID[] =
    "SELECT user_id, created_at, last_seen_at, expires_at, revoked_at IS NOT NULL "
    "FROM main.anonauth_sessions WHERE id = ?1";

/* Decodes one base64url part and parses it as a JSON object. */
static int decode_part(const char *p, size_t n, unsigned char *buf, size_t cap, aa_json *j,
                       int *ok) {
  size_t len = 0;
  const char *why;
  int rc;
  *ok = 0;
  if (n == 0 || n > (cap / 3) * 4 + 3) return SQLITE_OK;
  if (aa_b64url_decode(p, n, buf, cap - 1, &len) != SQLITE_OK) return SQLITE_OK;
  buf[len] = 0;
  rc = aa_json_parse(j, (const char *)buf, (int)len, &why);
  if (rc == SQLITE_NOMEM) return rc;
  if (rc != SQLITE_OK) return SQLITE_OK;
  if (aa_json_type(j, 0) != AA_JSON_OBJECT) {
    aa_json_free(j);
    return SQLITE_OK;
  }
  *ok = 1;
  return SQLITE_OK;
}

/* The member named `name` of the root object, or -1. */
static int member(const aa_json *j, const char *name) {
  for (int m = 0; m < aa_json_object_size(j, 0); m++) {
    int key, val;
    aa_json_member(j, 0, m, &key, &val);
    if (aa_json_string_eq(j, key, name)) return val;
  }
  return -1;
}

/* The header: alg (a known asymmetric one), kid, typ at+jwt, no crit. */
static int check_header(const aa_json *h, int *alg, char kid[AA_KID_MAX + 1]) {
  char buf[64];
  int n, t;
  t = member(h, "alg");
  if (t < 0 || aa_json_type(h, t) != AA_JSON_STRING ||
      aa_json_string(h, t, buf, (int)sizeof(buf), &n) != SQLITE_OK)
    return 0;
  *alg = aa_jws_alg_parse(buf, n); /* "none", HS256 ... are -1 */
  if (*alg < 0) return 0;
  t = member(h, "kid");
  if (t < 0 || aa_json_type(h, t) != AA_JSON_STRING ||
      aa_json_string(h, t, kid, AA_KID_MAX + 1, &n) != SQLITE_OK || n < 1 ||
      (int)strlen(kid) != n)
    return 0;
  t = member(h, "typ");
  if (t < 0 || aa_json_type(h, t) != AA_JSON_STRING ||
      aa_json_string(h, t, buf, (int)sizeof(buf), &n) != SQLITE_OK ||
      (strcasecmp(buf, "at+jwt") != 0 && strcasecmp(buf, "application/at+jwt") != 0))
    return 0;
  if (member(h, "crit") >= 0) return 0; /* no extension is understood */
  return 1;
}

static int string_is(const aa_json *j, int tok, const char *want) {
  return tok >= 0 && aa_json_type(j, tok) == AA_JSON_STRING && aa_json_string_eq(j, tok, want);
}

/* A positive decimal id in a string claim. */
static int string_id(const aa_json *j, int tok, int64_t *out) {
  char buf[24];
  int n;
  int64_t v = 0;
  if (tok < 0 || aa_json_type(j, tok) != AA_JSON_STRING ||
      aa_json_string(j, tok, buf, (int)sizeof(buf), &n) != SQLITE_OK || n < 1 || n > 18 ||
      buf[0] == '0')
    return 0;
  for (int i = 0; i < n; i++) {
    if (buf[i] < '0' || buf[i] > '9') return 0;
    v = v * 10 + (buf[i] - '0');
  }
  *out = v;
  return 1;
}

/* The claims: exp, nbf, iat against the clock with jwt.leeway; iss; aud;
** sub and sid. Call after the configuration was synced. */
static int check_claims(aa_conn *c, const aa_json *p, int64_t *sub, int64_t *sid, int *ok) {
  const char *iss, *aud;
  int64_t now = aa_now(c), leeway = aa_config_int(c, AA_CFG_JWT_LEEWAY), v;
  int t, rc;
  *ok = 0;
  rc = need_text(c, AA_CFG_JWT_ISSUER, "jwt.issuer", &iss);
  if (rc == SQLITE_OK) rc = need_text(c, AA_CFG_JWT_AUDIENCE, "jwt.audience", &aud);
  if (rc != SQLITE_OK) return rc;
  t = member(p, "exp");
  if (t < 0 || !json_int(p, t, &v) || now >= v + leeway) return SQLITE_OK;
  t = member(p, "nbf");
  if (t >= 0 && (!json_int(p, t, &v) || now + leeway < v)) return SQLITE_OK;
  t = member(p, "iat");
  if (t >= 0 && (!json_int(p, t, &v) || now + leeway < v)) return SQLITE_OK;
  if (!string_is(p, member(p, "iss"), iss)) return SQLITE_OK;
  t = member(p, "aud");
  if (t < 0) return SQLITE_OK;
  if (aa_json_type(p, t) == AA_JSON_ARRAY) {
    /* aa_json has no array accessor: the audiences are the string tokens
    ** that follow the array token, each a direct child (no nesting allowed). */
    int size = aa_json_object_size(p, t), hit = 0;
    for (int i = 1; i <= size; i++) {
      if (aa_json_type(p, t + i) != AA_JSON_STRING) return SQLITE_OK;
      if (aa_json_string_eq(p, t + i, aud)) hit = 1;
    }
    if (!hit) return SQLITE_OK;
  } else if (!string_is(p, t, aud)) {
    return SQLITE_OK;
  }
  if (!string_id(p, member(p, "sub"), sub)) return SQLITE_OK;
  if (!string_id(p, member(p, "sid"), sid)) return SQLITE_OK;
  *ok = 1;
  return SQLITE_OK;
}

/* The session sid is live and belongs to sub. */
static int session_live(aa_conn *c, int64_t sid, int64_t sub, int *live) {
  sqlite3_stmt *st;
  aa_session s;
  int rc = aa_stmt_get(c, SQL_SESSION_BY_ID, &st), revoked;
  *live = 0;
  if (rc != SQLITE_OK) return rc;
  sqlite3_bind_int64(st, 1, sid);
  rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    memset(&s, 0, sizeof(s));
    s.session_id = sid;
    s.user_id = sqlite3_column_int64(st, 0);
    s.created_at = sqlite3_column_int64(st, 1);
    s.last_seen_at = sqlite3_column_int64(st, 2);
    s.expires_at = sqlite3_column_int64(st, 3);
    revoked = sqlite3_column_int(st, 4);
    rc = aa_config_sync(c);
    if (rc == SQLITE_OK)
      *live = s.user_id == sub && aa_session_is_live(c, &s, revoked, aa_now(c));
  } else if (rc == SQLITE_DONE) {
    rc = SQLITE_OK;
  } else {
    rc = aa_err_storage(c, rc);
  }
  aa_stmt_release(st);
  return rc;
}

static int json_false(const aa_json *j, int tok) {
  const char *p;
  int n;
  if (aa_json_type(j, tok) != AA_JSON_PRIMITIVE) return 0;
  aa_json_span(j, tok, &p, &n);
  return n == 5 && memcmp(p, "false", 5) == 0;
}

static int read_verify_opts(aa_conn *c, sqlite3_value *v, int *require_live) {
  aa_json j;
  int has = 0, rc;
  *require_live = 0;
  rc = parse_opts(c, "jwt_verify", v, &j, &has);
  if (rc != SQLITE_OK || !has) return rc;
  for (int m = 0; rc == SQLITE_OK && m < aa_json_object_size(&j, 0); m++) {
    int key, val;
    aa_json_member(&j, 0, m, &key, &val);
    if (!aa_json_string_eq(&j, key, "require_live_session"))
      rc = bad(c, "jwt_verify", "opts may hold only \"require_live_session\"");
    else if (aa_json_is_true(&j, val))
      *require_live = 1;
    else if (!aa_json_is_null(&j, val) && !json_false(&j, val))
      rc = bad(c, "jwt_verify", "opts.require_live_session must be true or false");
  }
  aa_json_free(&j);
  return rc;
}

/* The claims when jwt verifies, *claims NULL otherwise. */
static int verify(aa_conn *c, const char *jwt, int n, int require_live, char **claims) {
  unsigned char hbuf[JWT_HEADER_MAX + 1], pbuf[JWT_PAYLOAD_MAX + 1], sig[AA_JWS_SIG_BYTES + 1];
  const char *dot1, *dot2, *end = jwt + n;
  char kid[AA_KID_MAX + 1];
  aa_json h, p;
  const aa_jws_key *key = NULL;
  size_t sig_n = 0;
  int ok, alg, rc, accept, live;
  int64_t sub = 0, sid = 0;

  *claims = NULL;
  dot1 = memchr(jwt, '.', (size_t)n);
  if (dot1 == NULL) return SQLITE_OK;
  dot2 = memchr(dot1 + 1, '.', (size_t)(end - dot1 - 1));
  if (dot2 == NULL || memchr(dot2 + 1, '.', (size_t)(end - dot2 - 1)) != NULL) return SQLITE_OK;

  rc = decode_part(jwt, (size_t)(dot1 - jwt), hbuf, sizeof(hbuf), &h, &ok);
  if (rc != SQLITE_OK) return aa_err_nomem(c);
  if (!ok) return SQLITE_OK;
  ok = check_header(&h, &alg, kid);
  aa_json_free(&h);
  if (!ok) return SQLITE_OK;
  if ((size_t)(end - dot2 - 1) != 86 ||
      aa_b64url_decode(dot2 + 1, (size_t)(end - dot2 - 1), sig, sizeof(sig), &sig_n) !=
          SQLITE_OK)
    return SQLITE_OK;

  rc = aa_schema_check_no_upgrade(c);
  if (rc == SQLITE_NOTFOUND) {
    aa_err_clear(c);
    return SQLITE_OK; /* no tables, no keys */
  }
  if (rc == SQLITE_OK) rc = aa_jwt_key_find(c, kid, &key);
  if (rc != SQLITE_OK || key == NULL) return rc;
  accept = (int)aa_config_int(c, AA_CFG_JWT_ACCEPT); /* 0: the key's; 1 + AA_JWS_* */
  ok = aa_jws_key_alg(key) == alg && (accept == 0 || accept - 1 == alg) &&
       aa_jws_verify(key, (const unsigned char *)jwt, (size_t)(dot2 - jwt), sig, sig_n);
  if (!ok) return SQLITE_OK;

  rc = decode_part(dot1 + 1, (size_t)(dot2 - dot1 - 1), pbuf, sizeof(pbuf), &p, &ok);
  if (rc != SQLITE_OK) return aa_err_nomem(c);
  if (!ok) return SQLITE_OK;
  rc = check_claims(c, &p, &sub, &sid, &ok);
  aa_json_free(&p);
  if (rc != SQLITE_OK || !ok) return rc;
  if (require_live) {
    rc = session_live(c, sid, sub, &live);
    if (rc != SQLITE_OK || !live) return rc;
  }
  *claims = sqlite3_mprintf("%s", (const char *)pbuf);
  return *claims ? SQLITE_OK : aa_err_nomem(c);
}

void aa_fn_jwt_verify(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  aa_conn *c = sqlite3_user_data(ctx);
  char *claims = NULL;
  int require_live = 0, n, rc;
  aa_err_clear(c);
  rc = read_verify_opts(c, argc > 1 ? argv[1] : NULL, &require_live);
  if (rc == SQLITE_OK && sqlite3_value_type(argv[0]) == SQLITE_TEXT &&
      (n = sqlite3_value_bytes(argv[0])) > 0 && n <= JWT_MAX)
    rc = verify(c, (const char *)sqlite3_value_text(argv[0]), n, require_live, &claims);
  if (rc != SQLITE_OK) {
    aa_result_error(ctx, c, rc);
    return;
  }
  if (claims != NULL) sqlite3_result_text(ctx, claims, -1, sqlite3_free);
}
