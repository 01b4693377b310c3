/*
** codes.c — one-time codes: issuing them (verification_issue) and using
** them up (aa_code_consume, for account_reset_secret).
**
** anonauth sends no e-mail: it issues a code, the app delivers it (a typed
** 8-digit code, or a 256-bit token for a magic link), and a later call
** presents it. A code is bound to one account and one purpose; issuing again
** replaces it; it dies after verification.ttl seconds, when used, or after
** verification.max_attempts wrong tries.
**
** Only a hash is stored: BLAKE2b-256 over purpose, provider, account id and
** code. For a 256-bit link token that is as good as the token hashes of
** sessions. For an 8-digit code it is not: 10^8 candidates are hashed in
** seconds, so whoever can read the database can recover a live digits code
** offline. A key kept in the same database would not change that, and a slow
** hash would only cost every honest check. The online defence is the attempt
** limit (and the account's failed sign-in bucket, which wrong codes draw
** from, see accounts.c); the offline window is the code's short life. Apps
** that fear a reader of the database use the 'link' format.
**
** A 'reset' code for an account that does not exist, or that has no secret
** to reset, is issued all the same, in the same shape and with the same
** writes, but what is stored is the hash of another random code, so it can
** never be used: the answer does not tell whether the account exists.
*/
#include "anonauth_int.h"

#include <sodium.h>
#include <string.h>

#define DIGITS          8
#define LINK_BYTES      32
#define CODE_TEXT_MAX   64 /* 43 for a link token */
#define CODE_HASH_BYTES 32

static const char RATE_KIND_ACCOUNT[] = "verification";
static const char RATE_KIND_IP[] = "verification_ip";

typedef enum { FORMAT_DIGITS, FORMAT_LINK } code_format;

static void code_new(code_format f, char out[CODE_TEXT_MAX + 1]) {
  if (f == FORMAT_DIGITS) {
    /* randombytes_uniform has no modulo bias. */
    for (int i = 0; i < DIGITS; i++) out[i] = (char)('0' + randombytes_uniform(10));
    out[DIGITS] = 0;
  } else {
    unsigned char raw[LINK_BYTES];
    randombytes_buf(raw, sizeof(raw));
    sodium_bin2base64(out, CODE_TEXT_MAX + 1, raw, sizeof(raw),
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero(raw, sizeof(raw));
  }
}

/* NUL separates the fields: none of them may hold one. */
static void code_hash(const char *purpose, const aa_account_name *n, const char *code,
                      int code_len, unsigned char out[CODE_HASH_BYTES]) {
  crypto_generichash_state st;
  static const unsigned char nul = 0;
  crypto_generichash_init(&st, NULL, 0, CODE_HASH_BYTES);
  crypto_generichash_update(&st, (const unsigned char *)purpose, strlen(purpose));
  crypto_generichash_update(&st, &nul, 1);
  crypto_generichash_update(&st, (const unsigned char *)n->provider, (size_t)n->provider_len);
  crypto_generichash_update(&st, &nul, 1);
  crypto_generichash_update(&st, (const unsigned char *)n->account_id,
                            (size_t)n->account_id_len);
  crypto_generichash_update(&st, &nul, 1);
  crypto_generichash_update(&st, (const unsigned char *)code, (size_t)code_len);
  crypto_generichash_final(&st, out, CODE_HASH_BYTES);
}

static const char SQL_STORE[] =
    "INSERT INTO main.anonauth_codes"
    "(provider, account_id, purpose, code_hash, created_at, expires_at, attempts_left) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) "
    "ON CONFLICT(provider, account_id, purpose) DO UPDATE SET "
    "code_hash = excluded.code_hash, created_at = excluded.created_at, "
    "expires_at = excluded.expires_at, attempts_left = excluded.attempts_left";

static const char SQL_READ[] =
    "SELECT code_hash, expires_at, attempts_left FROM main.anonauth_codes "
    "WHERE provider = ?1 AND account_id = ?2 AND purpose = ?3";

static const char SQL_DELETE[] =
    "DELETE FROM main.anonauth_codes WHERE provider = ?1 AND account_id = ?2 AND purpose = ?3";

static const char SQL_SPEND[] =
    "UPDATE main.anonauth_codes SET attempts_left = attempts_left - 1 "
    "WHERE provider = ?1 AND account_id = ?2 AND purpose = ?3";

static void bind_key(sqlite3_stmt *st, const aa_account_name *n, const char *purpose) {
  sqlite3_bind_text(st, 1, n->provider, n->provider_len, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, n->account_id, n->account_id_len, SQLITE_STATIC);
  sqlite3_bind_text(st, 3, purpose, -1, SQLITE_STATIC);
}

static int run_keyed(aa_conn *c, const char *sql, const aa_account_name *n,
                     const char *purpose) {
  sqlite3_stmt *st;
  int rc = aa_stmt_get(c, sql, &st);
  if (rc != SQLITE_OK) return rc;
  bind_key(st, n, purpose);
  return aa_stmt_exec(c, st);
}

static int store(aa_conn *c, const aa_account_name *n, const char *purpose,
                 const unsigned char hash[CODE_HASH_BYTES]) {
  sqlite3_stmt *st;
  int64_t now = aa_now(c);
  int rc = aa_stmt_get(c, SQL_STORE, &st);
  if (rc != SQLITE_OK) return rc;
  bind_key(st, n, purpose);
  sqlite3_bind_blob(st, 4, hash, CODE_HASH_BYTES, SQLITE_STATIC);
  sqlite3_bind_int64(st, 5, now);
  sqlite3_bind_int64(st, 6, now + aa_config_int(c, AA_CFG_VERIFICATION_TTL));
  sqlite3_bind_int64(st, 7, aa_config_int(c, AA_CFG_VERIFICATION_MAX_ATTEMPTS));
  return aa_stmt_exec(c, st);
}

int aa_code_consume(aa_conn *c, const char *provider, int provider_len, const char *account_id,
                    int account_id_len, const char *purpose, const char *code, int code_len,
                    int *ok) {
  aa_account_name n;
  sqlite3_stmt *st;
  unsigned char want[CODE_HASH_BYTES], got[CODE_HASH_BYTES];
  int have = 0, stored_ok = 0, rc;
  int64_t expires_at = 0, attempts_left = 0;
  *ok = 0;
  n.provider = provider;
  n.provider_len = provider_len;
  n.account_id = account_id;
  n.account_id_len = account_id_len;
  rc = aa_stmt_get(c, SQL_READ, &st);
  if (rc != SQLITE_OK) return rc;
  bind_key(st, &n, purpose);
  rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    have = 1;
    /* A row written by someone else may hold anything: only a hash of the
    ** right size is compared. */
    if (sqlite3_column_type(st, 0) == SQLITE_BLOB && sqlite3_column_bytes(st, 0) == CODE_HASH_BYTES) {
      memcpy(want, sqlite3_column_blob(st, 0), CODE_HASH_BYTES);
      stored_ok = 1;
    }
    expires_at = sqlite3_column_int64(st, 1);
    attempts_left = sqlite3_column_int64(st, 2);
    rc = SQLITE_OK;
  } else if (rc == SQLITE_DONE) {
    rc = SQLITE_OK;
  } else {
    rc = aa_err_storage(c, rc);
  }
  aa_stmt_release(st);
  if (rc != SQLITE_OK || !have) return rc;

  if (!stored_ok || expires_at <= aa_now(c) || attempts_left < 1)
    return run_keyed(c, SQL_DELETE, &n, purpose); /* dead: gone, and no match */
  code_hash(purpose, &n, code, code_len, got);
  if (sodium_memcmp(want, got, CODE_HASH_BYTES) == 0) {
    *ok = 1;
    return run_keyed(c, SQL_DELETE, &n, purpose); /* single use */
  }
  return run_keyed(c, attempts_left <= 1 ? SQL_DELETE : SQL_SPEND, &n, purpose);
}

/* ---- verification_issue(provider, account_id, purpose [, opts]) --------- */

typedef struct {
  aa_account_name name;
  const char *purpose;
  code_format format;
  int has_ip;
  char ip[AA_IP_TEXT_MAX];
  char ip_limit_key[AA_IP_TEXT_MAX + 4];
  char subject[64 + 1 + 320 + 1];
  char code[CODE_TEXT_MAX + 1];
} issue_call;

static int bad_opts(aa_conn *c, const char *what) {
  return aa_err(c, SQLITE_ERROR, AA_E_INVALID_ARGUMENT, "opts%s", what);
}

/* opts: {"format": "digits" | "link", "ip": address}, each optional. */
static int read_opts(aa_conn *c, sqlite3_value *v, issue_call *k) {
  aa_json j;
  const char *why = NULL;
  int rc, n;
  k->format = FORMAT_DIGITS;
  if (v == NULL || sqlite3_value_type(v) == SQLITE_NULL) return SQLITE_OK;
  if (sqlite3_value_type(v) != SQLITE_TEXT || sqlite3_value_bytes(v) > AA_OPTS_MAX_BYTES)
    return bad_opts(c, " must be a JSON object of at most 16384 bytes, or NULL");
  rc = aa_json_parse(&j, (const char *)sqlite3_value_text(v), sqlite3_value_bytes(v), &why);
  if (rc == SQLITE_NOMEM) return aa_err_nomem(c);
  if (rc != SQLITE_OK) return bad_opts(c, " must be a JSON object");
  if (aa_json_type(&j, 0) != AA_JSON_OBJECT) {
    aa_json_free(&j);
    return bad_opts(c, " must be a JSON object");
  }
  n = aa_json_object_size(&j, 0);
  for (int i = 0; rc == SQLITE_OK && i < n; i++) {
    int key, val, len = 0;
    char text[64];
    aa_json_member(&j, 0, i, &key, &val);
    if (aa_json_is_null(&j, val)) continue;
    if (aa_json_string_eq(&j, key, "format")) {
      if (aa_json_string_eq(&j, val, "digits"))
        k->format = FORMAT_DIGITS;
      else if (aa_json_string_eq(&j, val, "link"))
        k->format = FORMAT_LINK;
      else
        rc = bad_opts(c, ".format must be 'digits' or 'link'");
    } else if (aa_json_string_eq(&j, key, "ip")) {
      if (aa_json_type(&j, val) != AA_JSON_STRING ||
          aa_json_string(&j, val, text, (int)sizeof(text), &len) != SQLITE_OK ||
          aa_ip_parse(text, len, k->ip, k->ip_limit_key) != SQLITE_OK)
        rc = bad_opts(c, ".ip must be an IPv4 or IPv6 address");
      else
        k->has_ip = 1;
    } else {
      rc = bad_opts(c, ": unknown key (verification_issue takes format and ip)");
    }
  }
  aa_json_free(&j);
  return rc;
}

static int refuse(aa_conn *c, const issue_call *k, const char *limit, int64_t per_hour,
                  const char *whose) {
  char detail[160];
  int rc;
  sqlite3_snprintf((int)sizeof(detail), detail,
                   "{\"function\":\"verification_issue\",\"limit\":\"%s\"}", limit);
  rc = aa_audit(c, "rate_limited", AA_NO_ID, AA_NO_ID, k->has_ip ? k->ip : NULL, detail);
  if (rc != SQLITE_OK) return rc;
  return aa_err_after_commit(c, AA_E_RATE_LIMITED,
                             "verification_issue: more than %lld codes per hour for this %s (%s)",
                             (long long)per_hour, whose, limit);
}

static int issue_body(aa_conn *c, void *arg) {
  issue_call *k = arg;
  unsigned char hash[CODE_HASH_BYTES];
  char decoy[CODE_TEXT_MAX + 1];
  int64_t per_hour, user_id;
  int allowed = 1, exists = 0, has_secret = 0, usable;
  sqlite3_str *s;
  char *detail;
  int rc = aa_config_sync(c);
  if (rc != SQLITE_OK) return rc;
  if (k->has_ip) {
    per_hour = aa_config_int(c, AA_CFG_RATELIMIT_VERIFICATION_IP_PER_HOUR);
    rc = aa_ratelimit_take(c, RATE_KIND_IP, k->ip_limit_key, per_hour, &allowed);
    if (rc != SQLITE_OK) return rc;
    if (!allowed) return refuse(c, k, "ratelimit.verification_ip_per_hour", per_hour, "address");
  }
  per_hour = aa_config_int(c, AA_CFG_RATELIMIT_VERIFICATION_PER_HOUR);
  rc = aa_ratelimit_take(c, RATE_KIND_ACCOUNT, k->subject, per_hour, &allowed);
  if (rc != SQLITE_OK) return rc;
  if (!allowed) return refuse(c, k, "ratelimit.verification_per_hour", per_hour, "account");

  rc = aa_account_state(c, &k->name, &exists, &has_secret, &user_id);
  if (rc != SQLITE_OK) return rc;
  usable = strcmp(k->purpose, AA_CODE_SIGNIN) == 0 || (exists && has_secret);
  code_new(k->format, k->code);
  if (usable) {
    code_hash(k->purpose, &k->name, k->code, (int)strlen(k->code), hash);
  } else {
    code_new(k->format, decoy); /* stored instead: the code returned never matches */
    code_hash(k->purpose, &k->name, decoy, (int)strlen(decoy), hash);
    sodium_memzero(decoy, sizeof(decoy));
  }
  rc = store(c, &k->name, k->purpose, hash);
  if (rc != SQLITE_OK) return rc;

  /* The account id only for an account that exists, as in signin_failed. */
  s = sqlite3_str_new(c->db);
  sqlite3_str_appendall(s, "{\"provider\":");
  aa_str_append_json_string(s, k->name.provider, k->name.provider_len);
  if (exists) {
    sqlite3_str_appendall(s, ",\"account_id\":");
    aa_str_append_json_string(s, k->name.account_id, k->name.account_id_len);
  }
  sqlite3_str_appendf(s, ",\"purpose\":\"%s\",\"format\":\"%s\"}", k->purpose,
                      k->format == FORMAT_LINK ? "link" : "digits");
  detail = sqlite3_str_finish(s);
  if (detail == NULL) return aa_err_nomem(c);
  rc = aa_audit(c, "code_issued", exists ? user_id : AA_NO_ID, AA_NO_ID,
                k->has_ip ? k->ip : NULL, detail);
  sqlite3_free(detail);
  return rc;
}

void aa_fn_verification_issue(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  aa_conn *c = sqlite3_user_data(ctx);
  issue_call k;
  int rc;
  aa_err_clear(c);
  memset(&k, 0, sizeof(k));
  rc = aa_account_name_read(c, argv[0], argv[1], &k.name);
  if (rc == SQLITE_OK) {
    const char *p = sqlite3_value_type(argv[2]) == SQLITE_TEXT
                        ? (const char *)sqlite3_value_text(argv[2])
                        : NULL;
    if (p && strcmp(p, AA_CODE_RESET) == 0 && sqlite3_value_bytes(argv[2]) == 5)
      k.purpose = AA_CODE_RESET;
    else if (p && strcmp(p, AA_CODE_SIGNIN) == 0 && sqlite3_value_bytes(argv[2]) == 6)
      k.purpose = AA_CODE_SIGNIN;
    else
      rc = aa_err(c, SQLITE_ERROR, AA_E_INVALID_ARGUMENT, "purpose must be 'reset' or 'signin'");
  }
  if (rc == SQLITE_OK) rc = read_opts(c, argc > 3 ? argv[3] : NULL, &k);
  if (rc == SQLITE_OK) {
    sqlite3_snprintf((int)sizeof(k.subject), k.subject, "%.*s:%.*s", k.name.provider_len,
                     k.name.provider, k.name.account_id_len, k.name.account_id);
    rc = aa_atomic(c, issue_body, &k);
  }
  if (rc == SQLITE_OK) rc = aa_err_deferred(c);
  if (rc != SQLITE_OK)
    aa_result_error(ctx, c, rc);
  else
    sqlite3_result_text(ctx, k.code, -1, SQLITE_TRANSIENT);
  sodium_memzero(k.code, sizeof(k.code));
}
