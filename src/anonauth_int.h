/*
** anonauth_int.h — declarations shared by the files in src/.
**
** Not a public header: the public interface of anonauth is SQL. Every file in
** src/ owns one concern; this header is where each one lists what the others
** may call. Functions that can fail return an SQLite result code and, on
** failure, leave a user-facing message in the connection's error slot
** (see errors.c).
**
** Sections follow the layers, each using only those above it (errors comes
** before conn because struct aa_conn holds the error slot):
**   core: errors, conn, stmtcache, schema, atomic, config, appsql, clock, replicated
**   helpers: text, json, netaddr, token, opts, jws
**   records: audit, ratelimit, password
**   features: anon, sessions, accounts, secrets, codes, merge, http, siteverify, captcha, purge,
**             profile, authctx, jwt_keys, jwt, refresh
**   virtual tables: vtab
**     (vtab_users.c, vtab_sessions.c and vtab_accounts.c describe their
**     tables with the aa_vtab_def of vtab.c)
** The entry point, anonauth.c, registers the SQL functions and tables.
*/
#ifndef ANONAUTH_INT_H
#define ANONAUTH_INT_H

#include <sqlite3ext.h>
SQLITE_EXTENSION_INIT3

#include <stddef.h>
#include <stdint.h>

/* Token text: a fixed prefix, then 32 random bytes in URL-safe base64. */
#define AA_TOKEN_PREFIX     "anonauth_sess_"
#define AA_TOKEN_PREFIX_LEN (sizeof(AA_TOKEN_PREFIX) - 1)
#define AA_TOKEN_RAW_BYTES  32
#define AA_TOKEN_B64_LEN    43
#define AA_TOKEN_TEXT_LEN   (AA_TOKEN_PREFIX_LEN + AA_TOKEN_B64_LEN)
#define AA_TOKEN_HASH_BYTES 32

typedef struct aa_conn aa_conn;

/* ===== core: connection state, errors, statements, schema, settings ======= */

/* ----------------------------------------------------------------- errors.c */

/* The <code> part of "anonauth: <code>: <detail>". */
typedef enum {
  AA_E_INVALID_ARGUMENT,
  AA_E_INVALID_SESSION,
  AA_E_STORAGE,
  AA_E_INTERNAL,
  AA_E_REENTRANT,
  AA_E_ACCOUNT_EXISTS,
  AA_E_INVALID_CREDENTIALS,
  AA_E_RATE_LIMITED,
  AA_E_MERGE_FAILED,
  AA_E_CAPTCHA_REQUIRED,
  AA_E_CAPTCHA_REJECTED,
  AA_E_CAPTCHA_UNAVAILABLE,
  AA_E_CAPTCHA_MISCONFIGURED,
  AA_E_PURGE_FAILED,
  AA_E_TRANSACTION_REQUIRED,
  AA_E_WEAK_SECRET,
  AA_E_JWT_MISCONFIGURED,
  AA_E_COUNT
} aa_errcode;

const char *aa_errcode_name(aa_errcode code);
/* Records an error and returns rc (never SQLITE_OK). */
int aa_err(aa_conn *c, int rc, aa_errcode code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
/* Records the connection's current SQLite error as "storage" and returns rc. */
int aa_err_storage(aa_conn *c, int rc);
int aa_err_nomem(aa_conn *c);
/* Clears the error slot at the start of a public call. */
void aa_err_clear(aa_conn *c);
/* Reports the recorded error (or a generic one for rc) as the SQL result. */
void aa_result_error(sqlite3_context *ctx, aa_conn *c, int rc);
/* Turns the recorded error (or a generic one for rc) into a virtual table's
** message in *errmsg (freed first); returns the result code for the method. */
int aa_vtab_error(aa_conn *c, int rc, char **errmsg);
/* Records an error to report after the call's writes were committed (see
** atomic.c): the call's body still returns SQLITE_OK, so its writes stay. */
int aa_err_after_commit(aa_conn *c, aa_errcode code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* The result code of an error aa_err_after_commit() recorded in this call;
** SQLITE_OK when there is none. */
int aa_err_deferred(const aa_conn *c);
/* The result code of the error recorded in this call (SQLITE_OK when none),
** and its code in *code when code is not NULL. */
int aa_err_recorded(const aa_conn *c, aa_errcode *code);
/* Re-records the error recorded for rc under `code` as "<before><detail>
** <after>" (an out-of-memory error is kept as it is); returns its result code. */
int aa_err_reframe(aa_conn *c, int rc, aa_errcode code, const char *before,
                   const char *after);

/* ------------------------------------------------------------------- conn.c */

/* Callback type for statement-cache owners and per-connection resources. */
typedef void (*aa_release_fn)(void *);

struct aa_conn {
  sqlite3 *db;
  int refs;

  /* statement cache (stmtcache.c) */
  struct aa_stmt_slot *slots;
  int n_slots;
  int n_used;
  int cache_owner_live; /* the eponymous owner table is connected */

  /* clock override (clock.c) */
  int clock_overridden;
  int64_t clock_value;

  /* schema state (schema.c) */
  int schema_ready;
  /* names that could hide anonauth's virtual tables (schema.c): checked
  ** again whenever the schema cookies or the attached databases change */
  int names_checked;
  int64_t names_main_cookie;
  int64_t names_temp_cookie;
  unsigned names_main_dv, names_temp_dv; /* SQLITE_FCNTL_DATA_VERSION */
  int names_n_db;
  int names_in_write; /* checked inside a write transaction */
  int own_tables_triggered; /* a trigger someone else made fires on a table
                               aa_atomic_direct() bodies write */
  const char *name_probe; /* the table a probe prepares, while it does */
  int name_probe_hit;     /* its xBestIndex ran: the name reaches ours */

  /* configuration cache (config.c) */
  struct aa_config_cache *config;

  /* error slot: read and written only by errors.c (use aa_err_*()) */
  struct aa_err_slot {
    int set;
    int rc;
    aa_errcode code;
    int after_commit; /* recorded by aa_err_after_commit() */
    char detail[512];
  } err;

  /* atomic call in progress (atomic.c) */
  int in_atomic;
  int signin_prepared; /* anon_signin's statements are prepared (anon.c) */
  int (*atomic_body)(aa_conn *, void *);
  void *atomic_arg;
  int atomic_rc;

  /* authorization context (authctx.c) */
  int auth_set;
  int64_t auth_uid;
  int auth_is_anonymous;
  int64_t auth_session_id; /* the session anonauth_use() found */

  /* CAPTCHA transport (http.c): opaque, released with the connection */
  void *http;
  aa_release_fn http_release;

  /* replicated mode (replicated.c): writes only inside the caller's BEGIN */
  int replicated;
  /* prepared link.merge_sql (merge.c), cleared with the statement cache */
  struct aa_merge_cache *merge;
  /* parsed signing and verification keys (jwt_keys.c) */
  struct aa_jwt_cache *jwt;
};

aa_conn *aa_conn_new(sqlite3 *db);
void aa_conn_ref(aa_conn *c);
void aa_conn_unref(void *c); /* xDestroy-compatible */

/* -------------------------------------------------------------- stmtcache.c */

/*
** Returns a reset, cached prepared statement for `sql`. The cache is keyed by
** the address of `sql`, so pass a static string. Callers hand it back with
** aa_stmt_release() on every path.
*/
int aa_stmt_get(aa_conn *c, const char *sql, sqlite3_stmt **out);
void aa_stmt_release(sqlite3_stmt *st);
/* Finalizes every cached statement (owner table disconnect, teardown). */
void aa_stmt_cache_clear(aa_conn *c);
/* Registers the eponymous table that owns the cache. */
int aa_stmt_cache_register(sqlite3 *db, aa_conn *c);
/* Runs a cached statement that returns no rows. */
int aa_stmt_exec(aa_conn *c, sqlite3_stmt *st);

/* ----------------------------------------------------------------- schema.c */

/*
** aa_schema_check() tells whether the schema exists at the version this build
** knows: SQLITE_OK when it does, SQLITE_NOTFOUND when the database has none
** yet (read functions then behave as if it were empty), an error otherwise.
** aa_schema_ensure() creates or migrates it (writing).
*/
int aa_schema_check(aa_conn *c);
int aa_schema_ensure(aa_conn *c);
/* The same, told whether any transaction was open when the call began
** (before aa_atomic_begin() took the write lock): only then may schema
** step 6 drop its indexes. */
int aa_schema_ensure_began(aa_conn *c, int began_idle);
/* Begins creating the tables with a write, so that the write lock is taken
** before anything is read (see aa_atomic_begin()). */
int aa_schema_begin_create(aa_conn *c);
/*
** For functions that must never write (the SQLITE_INNOCUOUS ones, which a
** view or trigger someone else wrote may call): as aa_schema_check(), but an
** older schema is read as it is, never migrated. Such a function may only
** read what schema version 1 already had.
*/
int aa_schema_check_no_upgrade(aa_conn *c);
/*
** Fails (storage, naming the object) when a table or view in any attached
** schema (temp, main, ATTACHed) hides one of anonauth's eponymous virtual
** tables: SQL naming anon_sessions would reach that object instead, and a
** DELETE meant as a revocation would revoke nothing. Costs nothing while the
** database is unchanged; after a change it reads the schema cookies, and
** looks again only when one of them or the set of attached databases
** changed. aa_schema_check() and aa_schema_ensure() call it first.
*/
int aa_schema_names_check(aa_conn *c);
/*
** A call that was its own transaction committed it, and wrote nothing to
** the schema or the configuration: the data version moved by one for that
** commit only, so what was checked before it still holds. Without this the
** next call read the schema cookies and the configuration generation again
** after every sign-in made in autocommit mode. (config.c has the same.)
*/
void aa_schema_after_own_commit(aa_conn *c);
void aa_config_after_own_commit(aa_conn *c);
/* What the virtual tables' xBestIndex calls: a probe of `name` reached them. */
void aa_schema_name_reached(aa_conn *c, const char *name);
/* Records the error for an object hiding virtual table `name`. */
int aa_schema_name_hidden(aa_conn *c, const char *name);

/* ----------------------------------------------------------------- atomic.c */

/*
** Runs body(c, arg) so that all of its writes happen, or none do, whatever
** the calling context (autocommit, inside BEGIN, inside a writing statement).
** The body returns SQLITE_OK to commit, anything else to roll back.
*/
int aa_atomic(aa_conn *c, int (*body)(aa_conn *, void *), void *arg);
/*
** Every writing call runs this before it reads anything (aa_atomic() runs it
** too): the replicated-mode check, and, first in a deferred transaction,
** taking the write lock through the busy handler as BEGIN IMMEDIATE would.
*/
int aa_atomic_begin(aa_conn *c);
/*
** The same guarantee, without a statement journal inside the caller's
** transaction, for a body that does everything that can fail before its
** first write and then writes only single-row statements on anonauth_users,
** _sessions, _audit and _rate_limits. *prepared is the call site's flag:
** the first call on a connection goes through aa_atomic() (it prepares the
** statements) and sets it. See atomic.c for what it costs when a write
** fails all the same.
*/
int aa_atomic_direct(aa_conn *c, int (*body)(aa_conn *, void *), void *arg, int *prepared);
void aa_fn_atomic_trampoline(sqlite3_context *ctx, int argc,
                             sqlite3_value **argv);
/* True while a writing statement of the caller is running on the connection. */
int aa_caller_is_writing(aa_conn *c);

/* ----------------------------------------------------------------- config.c */

typedef enum {
  AA_CFG_SESSION_MAX_AGE,
  AA_CFG_SESSION_IDLE_TIMEOUT,
  AA_CFG_SESSION_TOUCH_INTERVAL,
  AA_CFG_PASSWORD_OPSLIMIT,
  AA_CFG_PASSWORD_MEMLIMIT,
  AA_CFG_LINK_ON_CONFLICT,
  AA_CFG_LINK_MERGE_SQL,
  AA_CFG_RATELIMIT_FAILED_SIGNIN_PER_HOUR,
  AA_CFG_RATELIMIT_ANON_PER_HOUR,
  AA_CFG_RATELIMIT_SIGNUP_PER_HOUR,
  AA_CFG_CAPTCHA_PROVIDER,
  AA_CFG_CAPTCHA_SECRET,
  AA_CFG_CAPTCHA_URL,
  AA_CFG_CAPTCHA_HOSTNAME,
  AA_CFG_CAPTCHA_ACTION,
  AA_CFG_CAPTCHA_SITEKEY,
  AA_CFG_CAPTCHA_TIMEOUT_MS,
  AA_CFG_CAPTCHA_RETRIES,
  AA_CFG_PURGE_MAX_IDLE,
  AA_CFG_PURGE_USER_SQL,
  AA_CFG_PURGE_BATCH,
  AA_CFG_AUDIT_MAX_AGE,
  AA_CFG_PASSWORD_MIN_LENGTH,
  AA_CFG_PASSWORD_MAX_BYTES,
  AA_CFG_LINK_MERGE_WITHOUT_SQL,
  AA_CFG_VERIFICATION_TTL,
  AA_CFG_VERIFICATION_MAX_ATTEMPTS,
  AA_CFG_RATELIMIT_VERIFICATION_PER_HOUR,
  AA_CFG_RATELIMIT_VERIFICATION_IP_PER_HOUR,
  AA_CFG_JWT_ALG,
  AA_CFG_JWT_ISSUER,
  AA_CFG_JWT_AUDIENCE,
  AA_CFG_JWT_TTL,
  AA_CFG_JWT_LEEWAY,
  AA_CFG_JWT_ACCEPT,
  AA_CFG_JWT_KEY_SECRET,
  AA_CFG_SESSION_REUSE_WINDOW,
  AA_CFG_AUDIT_ANON_SIGNIN,
  AA_CFG_COUNT
} aa_config_key;

/*
** Brings the cached configuration up to date with the database. Call inside
** a read transaction (an active statement, or the body of aa_atomic()).
*/
int aa_config_sync(aa_conn *c);
/*
** The same, callable anywhere (outside aa_atomic, with no statement open):
** it runs one short read of its own. Use it before work that must not hold
** the write lock, such as a CAPTCHA request or an Argon2 hash. A database
** without anonauth's tables reads as all defaults.
*/
int aa_config_refresh(aa_conn *c);
int64_t aa_config_int(aa_conn *c, aa_config_key key);
/* NULL when unset; the pointer lives until the next aa_config_sync(). */
const char *aa_config_text(aa_conn *c, aa_config_key key);
void aa_config_cache_free(aa_conn *c);
void aa_fn_config(sqlite3_context *ctx, int argc, sqlite3_value **argv);
/* Before running link.merge_sql or purge.user_sql: the setter's rules again
** (aa_appsql_recheck), for a value that reached anonauth_config some other
** way; a refusal is recorded with `code`. */
int aa_config_check_app_sql(aa_conn *c, aa_config_key key, const char *sql, aa_errcode code);

/* ----------------------------------------------------------------- appsql.c */

/*
** The rules for the app's SQL (link.merge_sql, purge.user_sql): every
** statement prepares, writes, changes only rows (read in its bytecode), and
** uses only `params` (a NULL-terminated list of named parameters). _check is
** the setter's test (invalid_argument); _recheck runs it again just before
** the SQL runs and records a refusal with `code`.
*/
int aa_appsql_check(aa_conn *c, const char *name, const char *const *params,
                    const char *sql, int n);
int aa_appsql_recheck(aa_conn *c, const char *name, const char *const *params,
                      const char *sql, aa_errcode code);

/* ------------------------------------------------------------------ clock.c */

int64_t aa_now(aa_conn *c);
void aa_fn_set_clock(sqlite3_context *ctx, int argc, sqlite3_value **argv);

/* ------------------------------------------------------------- replicated.c */

/* The process-wide mode set by anonauth_set_replicated(), for new connections. */
int aa_replicated_default(void);
/*
** Call before a write that would commit on its own: in replicated mode it
** records transaction_required unless the caller has a transaction open.
*/
int aa_replicated_check_write(aa_conn *c);
/* For best-effort writes: false when the write must be skipped. */
int aa_replicated_may_write_quietly(aa_conn *c);
void aa_fn_replicated(sqlite3_context *ctx, int argc, sqlite3_value **argv);

/* ===== helpers: pure functions on values ================================== */

/* ------------------------------------------------------------------- text.c */

/* True when p[0..n) is valid UTF-8 without NUL bytes. */
int aa_utf8_valid(const unsigned char *p, int n);
/* Appends a JSON string literal for s to the sqlite3_str (for audit detail). */
void aa_str_append_json_string(sqlite3_str *s, const char *p, int n);
/* True when the next statement of sql[0..n) is a PRAGMA or an EXPLAIN: SQLite
** applies flag pragmas while preparing them, so untrusted SQL must be checked
** with this before it is prepared. */
int aa_sql_next_is_pragma(const char *sql, int n);
/* True when s[0..n) is printable ASCII (0x20 to 0x7e). */
int aa_printable_ascii(const char *s, int n);

/* ------------------------------------------------------------------- json.c */

/* A validated JSON document: jsmn tokens over caller-owned text. */
typedef struct {
  const char *text;
  int len;
  void *toks; /* jsmntok_t[], opaque outside json.c */
  int n_toks;
  void *heap;
} aa_json;

#define AA_JSON_MAX_DEPTH 64

/*
** Parses and strictly validates `text` (RFC 8259: UTF-8, no duplicate keys,
** nesting at most AA_JSON_MAX_DEPTH). SQLITE_OK, SQLITE_NOMEM, or
** SQLITE_MISMATCH with a short reason in *why.
*/
int aa_json_parse(aa_json *j, const char *text, int len, const char **why);
void aa_json_free(aa_json *j);
/* Token accessors: index 0 is the root. */
int aa_json_type(const aa_json *j, int tok); /* AA_JSON_* below */
int aa_json_object_size(const aa_json *j, int tok);
/* For object member i (0-based) of object token `obj`: key token and value. */
int aa_json_member(const aa_json *j, int obj, int i, int *key_tok, int *val_tok);
/* Raw text span of a token (strings: including the quotes). */
void aa_json_span(const aa_json *j, int tok, const char **p, int *n);
/* True when a string token equals `s` after unescaping. */
int aa_json_string_eq(const aa_json *j, int tok, const char *s);
/* Unescapes a string token into a NUL-terminated buffer; SQLITE_TOOBIG if it
** does not fit. */
int aa_json_string(const aa_json *j, int tok, char *out, int cap, int *out_len);
/* Literal check for primitives. */
int aa_json_is_true(const aa_json *j, int tok);
int aa_json_is_null(const aa_json *j, int tok);

enum { AA_JSON_OBJECT = 1, AA_JSON_ARRAY, AA_JSON_STRING, AA_JSON_PRIMITIVE };

/* ---------------------------------------------------------------- netaddr.c */

#define AA_IP_TEXT_MAX 46 /* INET6_ADDRSTRLEN */

/*
** Parses an IPv4 or IPv6 address into canonical text (IPv4-mapped IPv6 is
** written as IPv4) and the key its rate limit is counted under (the address
** for IPv4, the /64 prefix for IPv6). SQLITE_OK or SQLITE_MISMATCH.
*/
int aa_ip_parse(const char *in, int n, char canon[AA_IP_TEXT_MAX],
                char limit_key[AA_IP_TEXT_MAX + 4]);

#define AA_URL_MAX 2048
/* NULL when s[0..n) is a URL anonauth may send requests to (https://, or
** http:// to a loopback host; no credentials); otherwise why not. */
const char *aa_url_problem(const char *s, int n);
/* The URL (one aa_url_problem() accepted) names a loopback host. */
int aa_url_is_loopback(const char *url);
/* NULL when NAME may follow env: in a CAPTCHA secret, else why not
** (captcha.c). syntax_only: only the shape of the name, not which variables
** the process allows. */
const char *aa_secret_env_problem(const char *name, int n, int syntax_only);

/* ------------------------------------------------------------------ token.c */

typedef struct {
  char text[AA_TOKEN_TEXT_LEN + 1];
  unsigned char hash[AA_TOKEN_HASH_BYTES];
} aa_token;

/* Fresh random token and its hash. */
void aa_token_new(aa_token *t);
/* Hash of a presented token; SQLITE_OK, or SQLITE_MISMATCH if malformed. */
int aa_token_hash_value(sqlite3_value *v, unsigned char hash[AA_TOKEN_HASH_BYTES]);
void aa_token_wipe(aa_token *t);

/* ------------------------------------------------------------------- opts.c */

#define AA_OPTS_MAX_BYTES       16384
#define AA_USER_AGENT_MAX_BYTES 512
#define AA_PROFILE_MAX_BYTES    4096
#define AA_CAPTCHA_TOKEN_MAX    2048

enum {
  AA_OPT_IP = 1 << 0,
  AA_OPT_USER_AGENT = 1 << 1,
  AA_OPT_PROFILE = 1 << 2,
  AA_OPT_CAPTCHA = 1 << 3,
  AA_OPT_ANON_TOKEN = 1 << 4,
  AA_OPT_CODE = 1 << 5 /* a one-time code (codes.c), for account_signin */
};

typedef struct {
  int has_ip;
  char ip[AA_IP_TEXT_MAX];
  char ip_limit_key[AA_IP_TEXT_MAX + 4];
  int has_user_agent;
  char user_agent[AA_USER_AGENT_MAX_BYTES + 1];
  int has_profile;
  char *profile; /* sqlite3_malloc'd JSON object text */
  int has_captcha;
  int captcha_oversized; /* longer than AA_CAPTCHA_TOKEN_MAX: rejected */
  char captcha[AA_CAPTCHA_TOKEN_MAX + 1];
  int has_anon_token;
  char anon_token[AA_TOKEN_TEXT_LEN + 1];
  int anon_token_malformed;
  int has_code;
  char code[64 + 1];
} aa_opts;

/* Parses the opts argument (NULL means none); `allowed` is a mask of AA_OPT_*. */
int aa_opts_parse(aa_conn *c, sqlite3_value *v, unsigned allowed, aa_opts *o);
void aa_opts_free(aa_opts *o);

/* Strict argument readers shared by the SQL functions. */
/* True, with the value in *out, when v is an INTEGER, or a REAL whose value
** is an exact integer in int64 range (5.0, 1.7e9; not 1.5, NaN, infinities
** or 1e300); false for anything else, text and NULL included. The one test
** of "is this an integer" for every argument anonauth takes. */
int aa_value_int64(sqlite3_value *v, int64_t *out);
int aa_arg_user_id(aa_conn *c, sqlite3_value *v, const char *what, int64_t *out);

/* ------------------------------------------------------------------- jws.c */

/* The JWS algorithms anonauth signs with, in jwt.alg's order. */
enum { AA_JWS_ES256 = 0, AA_JWS_EDDSA = 1 };
#define AA_JWS_SIG_BYTES 64 /* Ed25519, and ES256's r || s */

const char *aa_jws_alg_name(int alg);
/* AA_JWS_* for an algorithm name, -1 for any other (none, HS256 ...). */
int aa_jws_alg_parse(const char *s, int n);
/* Appends base64url without padding. */
void aa_b64url_append(sqlite3_str *out, const unsigned char *p, size_t n);
/* Strict base64url: no padding, canonical last character, every character
** consumed. SQLITE_OK or SQLITE_MISMATCH. */
int aa_b64url_decode(const char *in, size_t n, unsigned char *out, size_t cap, size_t *out_n);
/* A new key pair; *pub and *priv are sqlite3_malloc'd (wipe *priv). */
int aa_jws_keygen(int alg, unsigned char **pub, int *pub_n, unsigned char **priv, int *priv_n);
/* A key parsed once for many signatures or verifications. */
typedef struct aa_jws_key aa_jws_key;
/* SQLITE_OK, SQLITE_NOMEM, or SQLITE_ERROR for bytes that are not such a key. */
int aa_jws_key_load(int alg, int is_private, const unsigned char *bytes, int n,
                    aa_jws_key **out);
void aa_jws_key_free(aa_jws_key *k);
int aa_jws_key_alg(const aa_jws_key *k);
int aa_jws_sign(const aa_jws_key *k, const unsigned char *msg, size_t n,
                unsigned char sig[AA_JWS_SIG_BYTES]);
/* 1 when sig is a valid signature of msg by the public key k; 0 otherwise. */
int aa_jws_verify(const aa_jws_key *k, const unsigned char *msg, size_t n,
                  const unsigned char *sig, size_t sig_n);
/* Appends the key-type members of a public JWK ("kty", "crv", "x"[, "y"]). */
int aa_jws_public_jwk(int alg, const unsigned char *pub, int pub_n, sqlite3_str *out);

/* ===== records: rows anonauth keeps for itself ============================ */

/* ------------------------------------------------------------------ audit.c */

/* Appends an audit row in the current transaction. detail is JSON or NULL. */
int aa_audit(aa_conn *c, const char *event, int64_t user_id, int64_t session_id,
             const char *ip, const char *detail);
#define AA_NO_ID ((int64_t)-1)

/* -------------------------------------------------------------- ratelimit.c */

/*
** Token bucket (kind, subject) holding up to per_hour tokens. _take consumes
** one when there is one and sets *allowed accordingly; _available only
** looks. per_hour <= 0 means no limit. Call inside aa_atomic().
*/
int aa_ratelimit_take(aa_conn *c, const char *kind, const char *subject, int64_t per_hour,
                      int *allowed);
/* A per-address limit: its bucket kind, the key that sets it, and what the
** refusal says ("<function>: more than N <what> per hour from this address"). */
typedef struct {
  const char *function;
  const char *kind;
  aa_config_key config_key;
  const char *config_name;
  const char *what;
} aa_ip_limit;
/*
** Takes one token from the bucket of ip_key (the address's key, see
** netaddr.c). When it is empty (*allowed = 0), writes the rate_limited audit
** row and records rate_limited for after the commit, so the refusal is kept;
** returns SQLITE_OK then too. Call inside aa_atomic().
*/
int aa_ratelimit_take_ip(aa_conn *c, const aa_ip_limit *l, const char *ip, const char *ip_key,
                         int *allowed);
int aa_ratelimit_available(aa_conn *c, const char *kind, const char *subject,
                           int64_t per_hour, int *allowed);

/* --------------------------------------------------------------- password.c */

/* Room for a crypto_pwhash_str() string, NUL included. */
#define AA_PASSWORD_HASH_MAX 128
/* The most one hash or verification may cost, configured or stored:
** libsodium's SENSITIVE level (crypto_pwhash_OPSLIMIT_SENSITIVE and
** crypto_pwhash_MEMLIMIT_SENSITIVE; checked in password.c). */
#define AA_PASSWORD_OPSLIMIT_MAX 4
#define AA_PASSWORD_MEMLIMIT_MAX INT64_C(1073741824)

/*
** Argon2id at the configured cost (password.opslimit / password.memlimit):
** call aa_config_refresh() or aa_config_sync() first, and never while
** holding the write lock. aa_password_verify() returns 1 when secret matches
** the stored string; a stored value that is not Argon2id costs a dummy
** verification and never matches, and so does one whose parameters exceed
** the maxima above (then *refused is set, for the audit trail: the string
** came from someone else). aa_password_verify_dummy() does the work
** of one verification at the configured cost for a credential that cannot
** match, so that every failure takes about the same time.
*/
int aa_password_hash(aa_conn *c, const char *secret, int n, char out[AA_PASSWORD_HASH_MAX]);
int aa_password_verify(aa_conn *c, const char *hash, const char *secret, int n, int *refused);
void aa_password_verify_dummy(aa_conn *c, const char *secret, int n);
/* True when hash was made at another cost than the configured one. */
int aa_password_needs_rehash(aa_conn *c, const char *hash);
void aa_password_wipe(char *hash);

/* ===== features: what the SQL functions do ================================ */

/* ------------------------------------------------------------------- anon.c */

void aa_fn_anon_signin(sqlite3_context *ctx, int argc, sqlite3_value **argv);
void aa_fn_user_is_anonymous(sqlite3_context *ctx, int argc,
                             sqlite3_value **argv);
/* Inserts a user row; the caller is inside aa_atomic(). */
int aa_user_create(aa_conn *c, int is_anonymous, const char *profile,
                   int64_t *user_id);

/* --------------------------------------------------------------- sessions.c */

typedef struct {
  int64_t session_id;
  int64_t user_id;
  int is_anonymous;
  int64_t created_at;
  int64_t last_seen_at;
  int64_t expires_at;
} aa_session;

/*
** Looks a presented token up and applies the validity rules. SQLITE_OK with
** *found set to 1 for a live session, 0 otherwise (bad input included).
** touch: record activity when due (skipped quietly when it cannot write).
*/
int aa_session_lookup(aa_conn *c, sqlite3_value *token, int touch,
                      aa_session *s, int *found);
/* Creates a session for user_id and fills *t with its token. */
int aa_session_create(aa_conn *c, int64_t user_id, const aa_opts *o,
                      aa_token *t, int64_t *session_id);
/* Revokes one session; *revoked is 1 when it was live. */
int aa_session_revoke(aa_conn *c, int64_t session_id, int *revoked);
void aa_fn_session_valid(sqlite3_context *ctx, int argc, sqlite3_value **argv);
void aa_fn_session_user(sqlite3_context *ctx, int argc, sqlite3_value **argv);
void aa_fn_anon_signout(sqlite3_context *ctx, int argc, sqlite3_value **argv);
void aa_fn_session_revoke_all(sqlite3_context *ctx, int argc,
                              sqlite3_value **argv);
void aa_fn_session_info(sqlite3_context *ctx, int argc, sqlite3_value **argv);
void aa_fn_session_revoke_others(sqlite3_context *ctx, int argc, sqlite3_value **argv);
/*
** "A session is live": it is not revoked and the clock is before each of
** expires_at (fixed at creation), created_at + session.max_age and
** last_seen_at + session.idle_timeout. This is the one definition, for SQL
** and C alike: AA_SESSION_UNEXPIRED_SQL writes the three deadlines with the
** comparison `cmp` against instant t (s is the table alias with its dot, or
** ""; t, max_age and idle are SQL expressions, usually parameters), and
** aa_session_is_live() evaluates the same terms with cmp ">".
** tests/sql/session-liveness.test holds every user to the same instant.
*/
#define AA_SESSION_UNEXPIRED_SQL(s, cmp, t, max_age, idle)                   \
  "(" s "expires_at " cmp " " t " AND " s "created_at + " max_age " " cmp " " \
  t " AND " s "last_seen_at + " idle " " cmp " " t ")"
#define AA_SESSION_LIVE_SQL(s, now, max_age, idle) \
  "(" s "revoked_at IS NULL AND " AA_SESSION_UNEXPIRED_SQL(s, ">", now, max_age, idle) ")"
/* The rule above for a row read some other way (the anon_sessions table's
** status column). Call after aa_config_sync(). */
int aa_session_is_live(aa_conn *c, const aa_session *s, int revoked, int64_t now);

/* --------------------------------------------------------------- accounts.c */

/* An account's name, as the account functions check it (accounts.c). */
typedef struct {
  const char *provider;
  int provider_len;
  const char *account_id;
  int account_id_len;
} aa_account_name;
/* Checks provider and account_id as every account function does
** (invalid_argument, never echoing the value). */
int aa_account_name_read(aa_conn *c, sqlite3_value *provider, sqlite3_value *account_id,
                         aa_account_name *out);
/* Inside aa_atomic(): whether the account exists, and whether it has a secret. */
int aa_account_state(aa_conn *c, const aa_account_name *n, int *exists, int *has_secret,
                     int64_t *user_id);
void aa_fn_link_account(sqlite3_context *ctx, int argc, sqlite3_value **argv);
void aa_fn_account_signup(sqlite3_context *ctx, int argc, sqlite3_value **argv);
void aa_fn_account_signin(sqlite3_context *ctx, int argc, sqlite3_value **argv);

/*
** accounts.c's pieces that secrets.c builds on (what each one does is said
** where it is defined). Only accounts.c and secrets.c use them.
*/
#define AA_PROVIDER_MAX   64
#define AA_ACCOUNT_ID_MAX 320
#define AA_SECRET_MAX     1024

typedef struct {
  const char *provider;
  int provider_len;
  const char *account_id;
  int account_id_len;
  const char *secret; /* NULL when none was given */
  int secret_len;
  char subject[AA_PROVIDER_MAX + 1 + AA_ACCOUNT_ID_MAX + 1]; /* the bucket's key */
} aa_account_args;

typedef struct {
  int exists;
  int64_t id;
  int64_t user_id;
  char *hash; /* sqlite3_malloc'd; NULL for an account without a secret */
} aa_account_row;

/* What checking a credential found. */
enum {
  AA_CRED_NO = 0,        /* it does not open the account */
  AA_CRED_MATCH = 1,     /* it does */
  AA_CRED_HASH_REFUSED = 2 /* the stored hash costs more than the caps: not run */
};

int aa_acct_read_args(aa_conn *c, sqlite3_value *provider, sqlite3_value *account_id,
                      sqlite3_value *secret, aa_account_args *a);
int aa_acct_secret_policy(aa_conn *c, const char *secret, int n);
void aa_acct_row_free(aa_account_row *r);
int aa_acct_row_read(aa_conn *c, const aa_account_args *a, aa_account_row *r);
int aa_acct_row_same(const aa_account_row *x, const aa_account_row *y);
int aa_acct_read_before(aa_conn *c, const aa_account_args *a, aa_account_row *r);
int aa_acct_credential_matches(aa_conn *c, const aa_account_row *r, const aa_account_args *a);
int aa_acct_insert_account(aa_conn *c, int64_t user_id, const aa_account_args *a,
                           const char *hash);
int aa_acct_convert_user(aa_conn *c, int64_t user_id, int *converted);
int aa_acct_bucket_reset(aa_conn *c, const aa_account_args *a);
int aa_acct_session_client(aa_conn *c, int64_t session_id, aa_opts *o);
int aa_acct_lookup_token_text(aa_conn *c, const char *token, aa_session *s, int *found);
int aa_acct_audit_account(aa_conn *c, const char *event, int64_t user_id, int64_t session_id,
                          const char *ip, const aa_account_args *a, int with_account_id,
                          const char *extra);
int aa_acct_settle_credential(aa_conn *c, const aa_account_args *a, const aa_account_row *r,
                              int found, const char *ip, const char *via, int *proceed);
int aa_acct_take_before_check(aa_conn *c, const aa_account_args *a, const aa_account_row *r,
                              const aa_opts *opts, int64_t session_id, const char *via,
                              int *refused);
int aa_acct_changed_meanwhile(aa_conn *c, int *changed);
int aa_acct_start_over(aa_conn *c, int rc, int changed, int attempt, aa_token *t);
void aa_acct_finish(sqlite3_context *ctx, aa_conn *c, int rc, aa_token *t);
int aa_acct_anon_to_merge(aa_conn *c, const aa_opts *o, int64_t into, int64_t *from);
int aa_acct_invalid_session(aa_conn *c);

/* ---------------------------------------------------------------- secrets.c */

void aa_fn_account_set_secret(sqlite3_context *ctx, int argc, sqlite3_value **argv);
void aa_fn_account_reset_secret(sqlite3_context *ctx, int argc, sqlite3_value **argv);
/* account_signin() with opts.code, once its arguments are read. */
void aa_acct_code_signin(sqlite3_context *ctx, aa_conn *c, const aa_account_args *a,
                         const aa_opts *opts);

/* ------------------------------------------------------------------ codes.c */

/* Purposes of one-time codes. */
#define AA_CODE_RESET  "reset"
#define AA_CODE_SIGNIN "signin"

/*
** Inside aa_atomic(): checks `code` against the live code of (provider,
** account_id, purpose). A match uses it up (*ok = 1); a mismatch costs one
** of its attempts (the code dies at 0); no live code is a mismatch too.
** The comparison is in constant time.
*/
int aa_code_consume(aa_conn *c, const char *provider, int provider_len, const char *account_id,
                    int account_id_len, const char *purpose, const char *code, int code_len,
                    int *ok);
void aa_fn_verification_issue(sqlite3_context *ctx, int argc, sqlite3_value **argv);

/* ------------------------------------------------------------------ merge.c */

/*
** Runs link.merge_sql with :from_user and :to_user bound, then deletes the
** anonymous user from_user with its sessions and accounts. Call inside
** aa_atomic(); any failure is merge_failed and must roll the call back.
*/
int aa_merge_users(aa_conn *c, int64_t from_user, int64_t to_user);
/* SQLITE_OK when a merge may run: link.merge_sql is set, or
** link.merge_without_sql is 'drop'; otherwise records merge_failed. Call
** after the configuration was read, before any work a refusal would waste. */
int aa_merge_allowed(aa_conn *c);
/* Finalizes the prepared merge statements (with the statement cache). */
void aa_merge_cache_clear(aa_conn *c);

/* ------------------------------------------------------------------- http.c */

#define AA_HTTP_BODY_MAX 65536 /* a siteverify answer is a few hundred bytes */
#define AA_HTTP_FORM_MAX 16384 /* secret, token, remoteip, key, sitekey, encoded */

/*
** A form-encoded request body in a fixed buffer: the CAPTCHA secret it
** carries is never copied by a reallocation, and aa_form_wipe() erases it.
** A value that does not fit sets `overflow` (the request must not be sent).
*/
typedef struct {
  char buf[AA_HTTP_FORM_MAX];
  size_t len;
  int overflow;
} aa_form;

void aa_form_add(aa_form *f, const char *name, const char *value, size_t value_len);
void aa_form_wipe(aa_form *f);

typedef enum {
  AA_HTTP_ANSWERED,    /* status and body are set */
  AA_HTTP_UNREACHABLE, /* no answer (connect, TLS, reset): worth a retry */
  AA_HTTP_TIMED_OUT,   /* the time allowed ran out */
  AA_HTTP_TOO_LARGE    /* the answer was longer than AA_HTTP_BODY_MAX */
} aa_http_outcome;

typedef struct {
  aa_http_outcome outcome;
  long status;
  const char *body; /* owned by the connection's transport, valid until the next request */
  int body_len;
  const char *error; /* static text (curl_easy_strerror) when not answered */
} aa_http_reply;

/*
** POSTs `form` to `url` on the connection's reused handle, waiting at most
** timeout_ms. SQLITE_OK whatever the provider did (see r->outcome); an error
** only when the transport itself cannot be set up (out of memory, libcurl
** failed to initialise).
*/
int aa_http_post_form(aa_conn *c, const char *url, const aa_form *form, long timeout_ms,
                      aa_http_reply *r);

/* ------------------------------------------------------------- siteverify.c */

#define AA_VERDICT_MAX_CODES 8
#define AA_VERDICT_CODE_MAX  63

typedef struct {
  int success;          /* provider said yes, and every configured check matched */
  int provider_success; /* `success` was the JSON literal true */
  int n_codes;
  int codes_dropped; /* codes beyond AA_VERDICT_MAX_CODES */
  char codes[AA_VERDICT_MAX_CODES][AA_VERDICT_CODE_MAX + 1];
} aa_verdict;

/*
** Reads a siteverify answer. want_hostname / want_action (NULL: no check)
** turn a provider's yes into a no with the code hostname-mismatch /
** action-mismatch. SQLITE_OK when the body is a valid verdict; SQLITE_MISMATCH
** with a short static reason in *why when it is not (it is then not a
** verdict either way); SQLITE_NOMEM.
*/
int aa_siteverify_parse(const char *body, int len, const char *want_hostname,
                        const char *want_action, aa_verdict *v, const char **why);
int aa_verdict_has_code(const aa_verdict *v, const char *code);

/* ---------------------------------------------------------------- captcha.c */

/*
** The CAPTCHA gate of the sign-up functions (anon_signin, account_signup).
** Call it after parsing opts and before aa_atomic(): it may make a network
** request, which must never happen while holding the write lock. SQLITE_OK
** when captcha.provider is 'none' or opts.captcha verified; otherwise it
** records captcha_required / captcha_rejected / captcha_unavailable /
** captcha_misconfigured (a rejection also commits an audit row of its own).
*/
int aa_captcha_gate(aa_conn *c, const aa_opts *o, const char *function_name);
/* True when the configuration as last cached names a provider: a hint for
** skipping the gate's own read, to be confirmed after aa_config_sync(). */
int aa_captcha_configured(aa_conn *c);
void aa_fn_verify_turnstile(sqlite3_context *ctx, int argc, sqlite3_value **argv);
void aa_fn_verify_hcaptcha(sqlite3_context *ctx, int argc, sqlite3_value **argv);

/* ------------------------------------------------------------------ purge.c */

/*
** Removes one user with its sessions and accounts (not the app's rows).
** Call inside aa_atomic(). *found is 0 when there was no such user; the
** counts may be NULL.
*/
int aa_user_delete(aa_conn *c, int64_t user_id, int *found,
                   int64_t *sessions, int64_t *accounts);
void aa_fn_anon_purge(sqlite3_context *ctx, int argc, sqlite3_value **argv);
void aa_fn_user_delete(sqlite3_context *ctx, int argc, sqlite3_value **argv);

/* ---------------------------------------------------------------- profile.c */

/* user_profile(user_id) reads, user_profile(user_id, patch) merges (RFC 7396). */
void aa_fn_user_profile(sqlite3_context *ctx, int argc, sqlite3_value **argv);

/* ---------------------------------------------------------------- authctx.c */

/*
** The connection's current user, set by anonauth_use(token) and read by
** auth_uid() / auth_is_anonymous() without touching the database. It is a
** snapshot taken by anonauth_use(); code that changes that user through this
** connection keeps it true with these calls. Call them once the change is
** made (inside or after the atomic call): _user_changed when a user's
** is_anonymous flips (link_account), _user_merged when from_user was merged
** into to_user, _user_deleted and _session_revoked when the user or the
** session the context came from is gone. Each one only acts when the
** context is about that user or session.
*/
void aa_authctx_user_changed(aa_conn *c, int64_t user_id, int is_anonymous);
void aa_authctx_user_merged(aa_conn *c, int64_t from_user, int64_t to_user,
                            int to_is_anonymous);
/* link_account revoked old_session and opened new_session in its place
** (token rotation): a context taken from the old one follows it. */
void aa_authctx_session_replaced(aa_conn *c, int64_t old_session, int64_t new_session,
                                 int64_t user_id, int is_anonymous);
void aa_authctx_user_deleted(aa_conn *c, int64_t user_id);
void aa_authctx_session_revoked(aa_conn *c, int64_t session_id);
/* Every live session of user_id was revoked (session_revoke_all). */
void aa_authctx_user_signed_out(aa_conn *c, int64_t user_id);
/* Every live session of user_id but kept_session was revoked
** (session_revoke_others, account_set_secret). */
void aa_authctx_others_signed_out(aa_conn *c, int64_t user_id, int64_t kept_session);
void aa_fn_anonauth_use(sqlite3_context *ctx, int argc, sqlite3_value **argv);
void aa_fn_auth_uid(sqlite3_context *ctx, int argc, sqlite3_value **argv);
void aa_fn_auth_is_anonymous(sqlite3_context *ctx, int argc,
                             sqlite3_value **argv);

/* --------------------------------------------------------------- jwt_keys.c */

#define AA_KID_MAX 32

/* The current signing key, parsed (and opened) once per connection: `key`
** belongs to the connection's key cache and stays valid until the next
** anonauth call on the connection. */
typedef struct {
  char kid[AA_KID_MAX + 1];
  int alg;
  const aa_jws_key *key;
} aa_jwt_signer;

/* The current key for jwt.alg, made (in an atomic call of its own) when
** there is none. Call with no statement of ours open, after the schema check
** and a configuration sync. */
int aa_jwt_signer_get(aa_conn *c, aa_jwt_signer *s);
/* A published public key by kid (cached as the signer is): *key NULL when
** there is none (or no such table in an older schema). Never writes. The
** configuration is synced on the way. */
int aa_jwt_key_find(aa_conn *c, const char *kid, const aa_jws_key **key);
/* Frees the connection's parsed keys (with the connection). */
void aa_jwt_cache_free(aa_conn *c);
void aa_fn_jwks(sqlite3_context *ctx, int argc, sqlite3_value **argv);
void aa_fn_jwt_rotate(sqlite3_context *ctx, int argc, sqlite3_value **argv);

/* -------------------------------------------------------------------- jwt.c */

void aa_fn_session_jwt(sqlite3_context *ctx, int argc, sqlite3_value **argv);
void aa_fn_jwt_verify(sqlite3_context *ctx, int argc, sqlite3_value **argv);

/* ---------------------------------------------------------------- refresh.c */

void aa_fn_session_refresh(sqlite3_context *ctx, int argc, sqlite3_value **argv);

/* ===== virtual tables ===================================================== */

/* ------------------------------------------------------------------- vtab.c */

/*
** The machinery shared by the eponymous tables anon_users, anon_sessions and
** anon_accounts: each file describes its table with an aa_vtab_def and
** vtab.c does the rest (xBestIndex, scans, refusing INSERT and UPDATE).
*/
#define AA_VTAB_MAX_PLANS 4

/* One way to read the table: a statement and the columns it needs equal. */
typedef struct {
  const char *label; /* what EXPLAIN QUERY PLAN shows, e.g. "user_id=?" */
  const char *sql;   /* static; column 0 is the rowid, column i+1 is
                     ** table column i; ?1 (?2) are the keys; it may use
                     ** the AA_VTAB_PARAM_* numbers below */
  int keys[2];       /* table columns, -1 when unused */
  int unique;        /* at most one row */
  int omit;          /* the statement checks the keys exactly as SQLite
                     ** would (integer columns), so SQLite need not */
  double cost;
} aa_vtab_plan;

/* Parameters a plan's statement may use, by number (named parameters would
** take numbers of their own and could collide with the keys). */
#define AA_VTAB_PARAM_NOW          3
#define AA_VTAB_PARAM_MAX_AGE      4
#define AA_VTAB_PARAM_IDLE_TIMEOUT 5

/* What a scan knows beyond its row: the clock and the session rules. */
typedef struct {
  int64_t now;
  int64_t max_age;
  int64_t idle_timeout;
} aa_vtab_scan;

typedef struct {
  const char *name;        /* anon_users */
  const char *declaration; /* CREATE TABLE x(...) */
  const char *delete_does; /* for the refusal message: "revokes the session" */
  int rowid_column;        /* the column equal to the rowid, or -1 */
  int n_plans;             /* plans[0] is the full scan */
  aa_vtab_plan plans[AA_VTAB_MAX_PLANS];
  /* Optional: computes column col of the row in st; returns 0 to fall back
  ** to the statement's column col+1. */
  int (*column)(aa_conn *c, const aa_vtab_scan *scan, sqlite3_stmt *st,
                sqlite3_context *ctx, int col);
  /* DELETE of one row: a complete atomic call (records its error in c). */
  int (*delete_row)(aa_conn *c, int64_t rowid);
} aa_vtab_def;

extern const aa_vtab_def aa_vtab_users;    /* vtab_users.c */
extern const aa_vtab_def aa_vtab_sessions; /* vtab_sessions.c */
extern const aa_vtab_def aa_vtab_accounts; /* vtab_accounts.c */

/* Registers the three tables on the connection. */
int aa_vtab_register(sqlite3 *db, aa_conn *c);

#endif /* ANONAUTH_INT_H */
