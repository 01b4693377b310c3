/*
** bench.c — anonauth against the floor: the same work done directly with
** SQLite and libsodium in C, measured in the same run.
**
** Auth sits on every request's path, so each phase compares an anonauth
** call with the least work that could do the same job on the same schema
** and pragmas (WAL, synchronous=NORMAL):
**
**   sign-in  = 32 random bytes, a BLAKE2b-256 hash, the user insert and the
**              session insert, in one transaction;
**   sign-in, least work = the same on the least schema a sign-in needs: a
**              user row, a session row with its unique hash index and its
**              index by user (no audit, no purge indexes, no AUTOINCREMENT);
**   lookup   = a BLAKE2b-256 hash and an indexed lookup joined to the user;
**   link     = the lookup, then revoking the session, inserting the account,
**              updating the user and inserting a new session (32 random
**              bytes, a hash), in one transaction;
**   session_jwt, jwt_verify, session_refresh: see their section below.
**
** account_signin (Argon2-bound by design, at libsodium's minimum cost) and
** verify_turnstile (a round trip to the local fake provider,
** tests/fake_provider.c, whose URL `make bench` passes in $ANONAUTH_PROVIDER)
** are reported on their own, next to the bare Argon2 verification and the
** bare libcurl POST for scale.
**
** This machine's absolute speed drifts, so every phase runs floor and
** anonauth alternately, RUNS times each, on fresh database files, and
** reports the median of each and the ratio of the medians. Peak RSS is the
** process's high-water mark after the phase.
**
**   build/bench/bench [-n N] [-runs R] [-scale] [-jwt] [-signin] [-dir DIR] [-so PATH]
**   (-jwt: only the session_jwt, jwt_verify and session_refresh lines;
**    -signin: only the anon_signin lines)
*/
#include <curl/curl.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#define TOKEN_TEXT_LEN 57
#define MAX_RUNS 9

static int n_ops = 20000;
static int runs = 3;
static const char *dir = "build/bench";
static const char *so_path = "./anonauth";
/* PRAGMA temp_store=MEMORY on both sides for the phase that asks for it:
** inside a caller's transaction each anonauth call runs in a statement of
** its own, whose statement journal SQLite moves to a temporary file once
** one call's journal passes 64 KiB (SQLITE_STMTJRNL_SPILL), and keeps it
** there until the transaction ends; in memory with temp_store=MEMORY. */
static int temp_store_memory = 0;
/* The floor's schema: anonauth's own, or the least a sign-in needs. */
static int least_schema = 0;

static const char LEAST_SCHEMA[] =
    "CREATE TABLE users(id INTEGER PRIMARY KEY, is_anonymous INTEGER NOT NULL, "
    "  created_at INTEGER NOT NULL, profile TEXT);"
    "CREATE TABLE sessions(id INTEGER PRIMARY KEY, token_hash BLOB NOT NULL UNIQUE, "
    "  user_id INTEGER NOT NULL, created_at INTEGER NOT NULL, last_seen_at INTEGER NOT NULL, "
    "  expires_at INTEGER NOT NULL, revoked_at INTEGER, ip TEXT, user_agent TEXT);"
    "CREATE INDEX sessions_by_user ON sessions(user_id);";

/* ---- helpers ------------------------------------------------------------- */

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long status_kib(const char *field) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  long v = -1;
  size_t n = strlen(field);
  if (f == NULL) return -1;
  while (fgets(line, sizeof line, f)) {
    if (strncmp(line, field, n) == 0) {
      v = strtol(line + n, NULL, 10);
      break;
    }
  }
  fclose(f);
  return v;
}

static void die(sqlite3 *db, const char *what) {
  fprintf(stderr, "bench: %s: %s\n", what, db ? sqlite3_errmsg(db) : "?");
  exit(1);
}

static void exec(sqlite3 *db, const char *sql) {
  char *err = NULL;
  if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) {
    fprintf(stderr, "bench: %s: %s\n", sql, err ? err : "?");
    exit(1);
  }
}

static sqlite3_stmt *prepare(sqlite3 *db, const char *sql) {
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) die(db, sql);
  return st;
}

static void remove_db(const char *path) {
  char aux[600];
  unlink(path);
  snprintf(aux, sizeof aux, "%s-wal", path);
  unlink(aux);
  snprintf(aux, sizeof aux, "%s-shm", path);
  unlink(aux);
}

/* A fresh WAL database with anonauth's schema; `load` also loads anonauth. */
/* A new WAL database file under dir, with the bench's pragmas; its path in
** path_out when given. */
static sqlite3 *open_fresh(const char *name, char *path_out, size_t cap) {
  char path[512];
  sqlite3 *db = NULL;
  snprintf(path, sizeof path, "%s/%s.db", dir, name);
  remove_db(path);
  if (sqlite3_open(path, &db) != SQLITE_OK) die(db, "open");
  exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;");
  if (temp_store_memory) exec(db, "PRAGMA temp_store=MEMORY");
  if (path_out) snprintf(path_out, cap, "%s", path);
  return db;
}

static sqlite3 *open_db(const char *name, int load) {
  char path[512];
  char *err = NULL;
  sqlite3 *db = open_fresh(name, path, sizeof path);
  sqlite3_enable_load_extension(db, 1);
  if (sqlite3_load_extension(db, so_path, NULL, &err) != SQLITE_OK) {
    fprintf(stderr, "bench: loading %s: %s\n", so_path, err ? err : "?");
    exit(1);
  }
  /* The floor uses the very same schema: let anonauth create it. */
  exec(db, "SELECT anonauth_config('session.touch_interval', 3600)");
  exec(db, "DELETE FROM anonauth_audit");
  if (!load) {
    sqlite3_close(db);
    if (sqlite3_open(path, &db) != SQLITE_OK) die(db, "reopen");
    exec(db, "PRAGMA synchronous=NORMAL;");
    if (temp_store_memory) exec(db, "PRAGMA temp_store=MEMORY");
  }
  return db;
}

static double median(double *v, int n) {
  for (int i = 1; i < n; i++) {
    for (int j = i; j > 0 && v[j] < v[j - 1]; j--) {
      double t = v[j];
      v[j] = v[j - 1];
      v[j - 1] = t;
    }
  }
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void report(const char *phase, double ext_ops, double floor_ops, const char *target) {
  if (floor_ops > 0)
    printf("%-34s %10.0f ops/s  floor %10.0f ops/s  ratio %5.2f  %-8s peak RSS %5ld MiB\n",
           phase, ext_ops, floor_ops, ext_ops / floor_ops, target, status_kib("VmHWM:") / 1024);
  else
    printf("%-34s %10.0f ops/s  %-42s peak RSS %5ld MiB\n", phase, ext_ops, target,
           status_kib("VmHWM:") / 1024);
  fflush(stdout);
}

/* ---- the floor ----------------------------------------------------------- */

typedef struct {
  sqlite3 *db;
  sqlite3_stmt *user, *session, *lookup, *begin, *commit;
} floor_db;

static sqlite3 *open_least_db(const char *name) {
  sqlite3 *db = open_fresh(name, NULL, 0);
  exec(db, LEAST_SCHEMA);
  return db;
}

static void floor_open(floor_db *f, const char *name) {
  const char *users = least_schema ? "users" : "anonauth_users";
  const char *sessions = least_schema ? "sessions" : "anonauth_sessions";
  char sql[400];
  f->db = least_schema ? open_least_db(name) : open_db(name, 0);
  snprintf(sql, sizeof sql, "INSERT INTO %s(is_anonymous, created_at, profile) VALUES (1, ?1, NULL)",
           users);
  f->user = prepare(f->db, sql);
  snprintf(sql, sizeof sql,
           "INSERT INTO %s(token_hash, user_id, created_at, last_seen_at, "
           "expires_at, ip, user_agent) VALUES (?1, ?2, ?3, ?3, ?4, NULL, NULL)",
           sessions);
  f->session = prepare(f->db, sql);
  snprintf(sql, sizeof sql,
           "SELECT s.id, s.user_id, s.created_at, s.last_seen_at, s.expires_at, "
           "s.revoked_at IS NOT NULL, u.is_anonymous FROM %s AS s "
           "JOIN %s AS u ON u.id = s.user_id WHERE s.token_hash = ?1",
           sessions, users);
  f->lookup = prepare(f->db, sql);
  f->begin = prepare(f->db, "BEGIN");
  f->commit = prepare(f->db, "COMMIT");
}

static void floor_close(floor_db *f) {
  sqlite3_finalize(f->user);
  sqlite3_finalize(f->session);
  sqlite3_finalize(f->lookup);
  sqlite3_finalize(f->begin);
  sqlite3_finalize(f->commit);
  sqlite3_close(f->db);
}

static void step_done(sqlite3 *db, sqlite3_stmt *st) {
  if (sqlite3_step(st) != SQLITE_DONE) die(db, sqlite3_sql(st));
  sqlite3_reset(st);
}

/* One floor sign-in; raw receives the token's random bytes. */
static void floor_signin(floor_db *f, unsigned char raw[32]) {
  unsigned char hash[32];
  sqlite3_int64 now = (sqlite3_int64)time(NULL);
  randombytes_buf(raw, 32);
  crypto_generichash(hash, sizeof hash, raw, 32, NULL, 0);
  sqlite3_bind_int64(f->user, 1, now);
  step_done(f->db, f->user);
  sqlite3_bind_blob(f->session, 1, hash, sizeof hash, SQLITE_TRANSIENT);
  sqlite3_bind_int64(f->session, 2, sqlite3_last_insert_rowid(f->db));
  sqlite3_bind_int64(f->session, 3, now);
  sqlite3_bind_int64(f->session, 4, now + 2592000);
  step_done(f->db, f->session);
}

static int floor_lookup(floor_db *f, const unsigned char raw[32]) {
  unsigned char hash[32];
  int found = 0;
  crypto_generichash(hash, sizeof hash, raw, 32, NULL, 0);
  sqlite3_bind_blob(f->lookup, 1, hash, sizeof hash, SQLITE_TRANSIENT);
  if (sqlite3_step(f->lookup) == SQLITE_ROW) {
    sqlite3_int64 now = (sqlite3_int64)time(NULL);
    found = sqlite3_column_int(f->lookup, 5) == 0 && sqlite3_column_int64(f->lookup, 4) > now;
  }
  sqlite3_reset(f->lookup);
  return found;
}

/* ---- anonauth ------------------------------------------------------------ */

typedef struct {
  sqlite3 *db;
  sqlite3_stmt *signin, *valid, *user, *begin, *commit;
} ext_db;

/* SQL run on anonauth's connection after it opens (a setting under test). */
static const char *ext_setup = NULL;

static void ext_open(ext_db *e, const char *name) {
  e->db = open_db(name, 1);
  if (ext_setup) exec(e->db, ext_setup);
  e->signin = prepare(e->db, "SELECT anon_signin()");
  e->valid = prepare(e->db, "SELECT session_valid(?1)");
  e->user = prepare(e->db, "SELECT session_user(?1)");
  e->begin = prepare(e->db, "BEGIN");
  e->commit = prepare(e->db, "COMMIT");
}

static void ext_close(ext_db *e) {
  sqlite3_finalize(e->signin);
  sqlite3_finalize(e->valid);
  sqlite3_finalize(e->user);
  sqlite3_finalize(e->begin);
  sqlite3_finalize(e->commit);
  if (sqlite3_close(e->db) != SQLITE_OK) die(e->db, "close");
}

static void ext_signin(ext_db *e, char token[TOKEN_TEXT_LEN + 1]) {
  if (sqlite3_step(e->signin) != SQLITE_ROW) die(e->db, "anon_signin");
  memcpy(token, sqlite3_column_text(e->signin, 0), TOKEN_TEXT_LEN);
  token[TOKEN_TEXT_LEN] = 0;
  sqlite3_reset(e->signin);
}

static int ext_check(ext_db *e, sqlite3_stmt *st, const char *token) {
  int v;
  sqlite3_bind_text(st, 1, token, TOKEN_TEXT_LEN, SQLITE_STATIC);
  if (sqlite3_step(st) != SQLITE_ROW) die(e->db, sqlite3_sql(st));
  v = sqlite3_column_type(st, 0) != SQLITE_NULL && sqlite3_column_int64(st, 0) != 0;
  sqlite3_reset(st);
  return v;
}

/* ---- phases -------------------------------------------------------------- */

static unsigned char (*raws)[32];
static char (*tokens)[TOKEN_TEXT_LEN + 1];
static char (*unknown)[TOKEN_TEXT_LEN + 1];
static unsigned char (*unknown_raws)[32];

static void make_unknown(int n) {
  for (int i = 0; i < n; i++) {
    randombytes_buf(unknown_raws[i], 32);
    memcpy(unknown[i], "anonauth_sess_", 14);
    sodium_bin2base64(unknown[i] + 14, TOKEN_TEXT_LEN - 14 + 1, unknown_raws[i], 32,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  }
}

static double run_floor_signin(int batch) {
  floor_db f;
  double t0, t;
  floor_open(&f, "floor");
  t0 = now_seconds();
  for (int i = 0; i < n_ops; i++) {
    if (i % batch == 0) step_done(f.db, f.begin);
    floor_signin(&f, raws[i]);
    if (i % batch == batch - 1 || i == n_ops - 1) step_done(f.db, f.commit);
  }
  t = now_seconds() - t0;
  floor_close(&f);
  return n_ops / t;
}

static double run_ext_signin(int batch) {
  ext_db e;
  double t0, t;
  ext_open(&e, "anonauth");
  t0 = now_seconds();
  for (int i = 0; i < n_ops; i++) {
    if (batch > 1 && i % batch == 0) step_done(e.db, e.begin);
    ext_signin(&e, tokens[i]);
    if (batch > 1 && (i % batch == batch - 1 || i == n_ops - 1)) step_done(e.db, e.commit);
  }
  t = now_seconds() - t0;
  ext_close(&e);
  return n_ops / t;
}

/* Pages written per sign-in: WAL frames appended by `n` sign-ins, one
** commit each (batch 1) or all in one transaction, divided by n. The WAL is
** emptied first and not checkpointed meanwhile. side: 0 floor, 1 anonauth. */
static long wal_frames(sqlite3 *db) {
  sqlite3_stmt *st = prepare(db, "PRAGMA wal_checkpoint(PASSIVE)");
  long frames = -1;
  if (sqlite3_step(st) == SQLITE_ROW) frames = sqlite3_column_int(st, 1);
  sqlite3_finalize(st);
  return frames;
}

static double frames_per_signin(int side, int batch) {
  const int n = 1000;
  unsigned char raw[32];
  char token[TOKEN_TEXT_LEN + 1];
  floor_db f;
  ext_db e;
  sqlite3 *db;
  long frames;
  if (side) {
    ext_open(&e, "frames");
    db = e.db;
  } else {
    floor_open(&f, "frames");
    db = f.db;
  }
  exec(db, "PRAGMA wal_autocheckpoint=0");
  /* warm up: the first pages of every table and index exist */
  for (int i = 0; i < 100; i++) {
    if (side) ext_signin(&e, token); else floor_signin(&f, raw);
  }
  exec(db, "PRAGMA wal_checkpoint(TRUNCATE)");
  if (batch > 1) exec(db, "BEGIN");
  for (int i = 0; i < n; i++) {
    if (side) {
      ext_signin(&e, token);
    } else {
      if (batch == 1) step_done(f.db, f.begin);
      floor_signin(&f, raw);
      if (batch == 1) step_done(f.db, f.commit);
    }
  }
  if (batch > 1) exec(db, "COMMIT");
  frames = wal_frames(db);
  if (side) ext_close(&e); else floor_close(&f);
  return (double)frames / n;
}

static void report_frames(void) {
  double least, same, ext, least_b, same_b, ext_b;
  least_schema = 1;
  least = frames_per_signin(0, 1);
  least_b = frames_per_signin(0, 1000);
  least_schema = 0;
  same = frames_per_signin(0, 1);
  same_b = frames_per_signin(0, 1000);
  ext = frames_per_signin(1, 1);
  ext_b = frames_per_signin(1, 1000);
  printf("pages written per sign-in (WAL frames), autocommit: least work %.2f, same schema %.2f, "
         "anonauth %.2f; 1000 per transaction: %.2f, %.2f, %.2f\n",
         least, same, ext, least_b, same_b, ext_b);
  fflush(stdout);
}

static void phase_signin(const char *name, int batch, const char *target) {
  double fl[MAX_RUNS], ex[MAX_RUNS];
  for (int r = 0; r < runs; r++) {
    fl[r] = run_floor_signin(batch);
    ex[r] = run_ext_signin(batch);
  }
  report(name, median(ex, runs), median(fl, runs), target);
}

/* The autocommit line again with audit.anon_signin = 0 on anonauth's side. */
static void phase_signin_without_audit_row(void) {
  ext_setup = "SELECT anonauth_config('audit.anon_signin', 0)";
  phase_signin("  the same, audit.anon_signin=0", 1, "");
  ext_setup = NULL;
}

/* Lookups on a database filled with n_ops sign-ins (made once, kept). */
static floor_db lookup_floor;
static ext_db lookup_ext;

static void fill_lookup_dbs(void) {
  floor_open(&lookup_floor, "floor-lookup");
  step_done(lookup_floor.db, lookup_floor.begin);
  for (int i = 0; i < n_ops; i++) floor_signin(&lookup_floor, raws[i]);
  step_done(lookup_floor.db, lookup_floor.commit);
  ext_open(&lookup_ext, "anonauth-lookup");
  step_done(lookup_ext.db, lookup_ext.begin);
  for (int i = 0; i < n_ops; i++) ext_signin(&lookup_ext, tokens[i]);
  step_done(lookup_ext.db, lookup_ext.commit);
}

typedef enum { LOOK_VALID, LOOK_UNKNOWN, LOOK_USER } lookup_kind;

static double run_lookup(int ext, lookup_kind kind) {
  double t0 = now_seconds(), t;
  long hits = 0;
  for (int i = 0; i < n_ops; i++) {
    int k = (int)(((unsigned)i * 2654435761u) % (unsigned)n_ops); /* scattered order */
    if (ext) {
      const char *tok = kind == LOOK_UNKNOWN ? unknown[k] : tokens[k];
      hits += ext_check(&lookup_ext, kind == LOOK_USER ? lookup_ext.user : lookup_ext.valid, tok);
    } else {
      hits += floor_lookup(&lookup_floor, kind == LOOK_UNKNOWN ? unknown_raws[k] : raws[k]);
    }
  }
  t = now_seconds() - t0;
  if (hits != (kind == LOOK_UNKNOWN ? 0 : n_ops)) {
    fprintf(stderr, "bench: %s lookups found %ld of %d\n", ext ? "anonauth" : "floor", hits,
            kind == LOOK_UNKNOWN ? 0 : n_ops);
    exit(1);
  }
  return n_ops / t;
}

static void phase_lookup(const char *name, lookup_kind kind, const char *target) {
  double fl[MAX_RUNS], ex[MAX_RUNS];
  for (int r = 0; r < runs; r++) {
    fl[r] = run_lookup(0, kind);
    ex[r] = run_lookup(1, kind);
  }
  report(name, median(ex, runs), median(fl, runs), target);
}

/* The operator's table: all of a user's sessions through anon_sessions,
** against the same rows read straight from anonauth_sessions. */
static void phase_vtab(void) {
  double fl[MAX_RUNS], ex[MAX_RUNS];
  sqlite3_stmt *direct = prepare(lookup_floor.db,
                                 "SELECT id, user_id, created_at, last_seen_at, expires_at, "
                                 "revoked_at, ip, user_agent FROM anonauth_sessions WHERE user_id = ?1");
  sqlite3_stmt *vtab = prepare(lookup_ext.db, "SELECT * FROM anon_sessions WHERE user_id = ?1");
  for (int r = 0; r < runs; r++) {
    for (int side = 0; side < 2; side++) {
      sqlite3_stmt *st = side ? vtab : direct;
      long rows = 0;
      double t0 = now_seconds();
      for (int i = 0; i < n_ops; i++) {
        sqlite3_bind_int(st, 1, 1 + (int)(((unsigned)i * 2654435761u) % (unsigned)n_ops));
        while (sqlite3_step(st) == SQLITE_ROW) rows++;
        sqlite3_reset(st);
      }
      if (rows != n_ops) {
        fprintf(stderr, "bench: %s read %ld rows, %d expected\n", side ? "anon_sessions" : "floor",
                rows, n_ops);
        exit(1);
      }
      (side ? ex : fl)[r] = n_ops / (now_seconds() - t0);
    }
  }
  sqlite3_finalize(direct);
  sqlite3_finalize(vtab);
  report("anon_sessions WHERE user_id = ?", median(ex, runs), median(fl, runs), "");
}

/* link_account without a secret on anonymous users: the conversion, with the
** session rotated. Both sides start from n_ops anonymous sign-ins. */
/* ---- access tokens and refresh rotation ----------------------------------- */
/*
** session_jwt: the floor is the session look-up (as above) plus the bare
** signature, with the same library and a key already loaded, of a message
** of the same length (ES256: OpenSSL's EVP_DigestSign and the DER to r||s
** conversion; EdDSA: libsodium's crypto_sign_detached), and its base64url.
** jwt_verify: the floor is the bare verification of the same tokens'
** signatures with a key already loaded. session_refresh: the floor does the
** same writes directly in one transaction: the look-up, a new token and its
** hash, the session update, the spent-hash and rotation rows (sealing the
** new token with XChaCha20-Poly1305).
*/
typedef struct {
  int eddsa;
  EVP_PKEY *ec;
  unsigned char ed_pk[32], ed_sk[64];
} bench_key;

static void bench_key_make(bench_key *k, int eddsa) {
  memset(k, 0, sizeof(*k));
  k->eddsa = eddsa;
  if (eddsa)
    crypto_sign_keypair(k->ed_pk, k->ed_sk);
  else
    k->ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
}

static void bench_sign(const bench_key *k, const char *msg, size_t n, unsigned char sig[64]) {
  if (k->eddsa) {
    crypto_sign_detached(sig, NULL, (const unsigned char *)msg, n, k->ed_sk);
  } else {
    unsigned char der[80];
    size_t dlen = sizeof der;
    const unsigned char *p = der;
    const BIGNUM *r, *s;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    ECDSA_SIG *es;
    if (EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, k->ec) != 1 ||
        EVP_DigestSign(md, der, &dlen, (const unsigned char *)msg, n) != 1 ||
        (es = d2i_ECDSA_SIG(NULL, &p, (long)dlen)) == NULL) {
      fprintf(stderr, "bench: ES256 sign failed\n");
      exit(1);
    }
    ECDSA_SIG_get0(es, &r, &s);
    BN_bn2binpad(r, sig, 32);
    BN_bn2binpad(s, sig + 32, 32);
    ECDSA_SIG_free(es);
    EVP_MD_CTX_free(md);
  }
}

static int bench_verify(const bench_key *k, const char *msg, size_t n, const unsigned char sig[64]) {
  if (k->eddsa) return crypto_sign_verify_detached(sig, (const unsigned char *)msg, n, k->ed_pk) == 0;
  {
    ECDSA_SIG *es = ECDSA_SIG_new();
    unsigned char *der = NULL;
    int dlen, ok;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    ECDSA_SIG_set0(es, BN_bin2bn(sig, 32, NULL), BN_bin2bn(sig + 32, 32, NULL));
    dlen = i2d_ECDSA_SIG(es, &der);
    ok = EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, k->ec) == 1 &&
         EVP_DigestVerify(md, der, (size_t)dlen, (const unsigned char *)msg, n) == 1;
    OPENSSL_free(der);
    ECDSA_SIG_free(es);
    EVP_MD_CTX_free(md);
    return ok;
  }
}

static void jwt_config(sqlite3 *db, const char *alg) {
  char sql[160];
  exec(db, "SELECT anonauth_config('jwt.issuer', 'https://app.example.com'), "
           "anonauth_config('jwt.audience', 'api.example.com')");
  snprintf(sql, sizeof sql, "SELECT anonauth_config('jwt.alg', '%s')", alg);
  exec(db, sql);
}

/* The message a session_jwt signs: its length is what matters to the floor. */
static size_t jwt_message_len(const char *alg) {
  sqlite3_stmt *st = prepare(lookup_ext.db, "SELECT instr(session_jwt(?1), '.') > 0, "
                                            "length(session_jwt(?1))");
  size_t n;
  jwt_config(lookup_ext.db, alg);
  sqlite3_bind_text(st, 1, tokens[0], TOKEN_TEXT_LEN, SQLITE_STATIC);
  if (sqlite3_step(st) != SQLITE_ROW || sqlite3_column_int(st, 0) != 1) die(lookup_ext.db, "session_jwt");
  n = (size_t)sqlite3_column_int(st, 1) - 87; /* without ".<86-character signature>" */
  sqlite3_finalize(st);
  return n;
}

static double run_jwt_sign(int ext, const char *alg, const bench_key *k, size_t msg_len) {
  sqlite3_stmt *st = ext ? prepare(lookup_ext.db, "SELECT session_jwt(?1)") : NULL;
  char *msg = malloc(msg_len + 1), out[128];
  unsigned char sig[64];
  double t0, t;
  long made = 0;
  memset(msg, 'e', msg_len);
  msg[msg_len] = 0;
  if (ext) jwt_config(lookup_ext.db, alg);
  t0 = now_seconds();
  for (int i = 0; i < n_ops; i++) {
    int kk = (int)(((unsigned)i * 2654435761u) % (unsigned)n_ops);
    if (ext) {
      sqlite3_bind_text(st, 1, tokens[kk], TOKEN_TEXT_LEN, SQLITE_STATIC);
      if (sqlite3_step(st) != SQLITE_ROW) die(lookup_ext.db, "session_jwt");
      made += sqlite3_column_type(st, 0) == SQLITE_TEXT;
      sqlite3_reset(st);
    } else {
      made += floor_lookup(&lookup_floor, raws[kk]);
      bench_sign(k, msg, msg_len, sig);
      sodium_bin2base64(out, sizeof out, sig, 64, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    }
  }
  t = now_seconds() - t0;
  free(msg);
  sqlite3_finalize(st);
  if (made != n_ops) {
    fprintf(stderr, "bench: %s made %ld of %d tokens\n", ext ? "session_jwt" : "floor", made, n_ops);
    exit(1);
  }
  return n_ops / t;
}

static void phase_jwt_sign(const char *name, const char *alg) {
  double fl[MAX_RUNS], ex[MAX_RUNS];
  bench_key k;
  size_t len = jwt_message_len(alg);
  bench_key_make(&k, strcmp(alg, "EdDSA") == 0);
  for (int r = 0; r < runs; r++) {
    fl[r] = run_jwt_sign(0, alg, &k, len);
    ex[r] = run_jwt_sign(1, alg, &k, len);
  }
  EVP_PKEY_free(k.ec);
  report(name, median(ex, runs), median(fl, runs), ">= 0.80");
}

#define JWT_POOL 1000

static void phase_jwt_verify(const char *name, const char *alg) {
  static char jwts[JWT_POOL][1024];
  static unsigned char sigs[JWT_POOL][64];
  static char msgs[JWT_POOL][1024];
  double fl[MAX_RUNS], ex[MAX_RUNS];
  sqlite3_stmt *mk, *vf;
  bench_key k;
  bench_key_make(&k, strcmp(alg, "EdDSA") == 0);
  jwt_config(lookup_ext.db, alg);
  mk = prepare(lookup_ext.db, "SELECT session_jwt(?1)");
  for (int i = 0; i < JWT_POOL; i++) {
    sqlite3_bind_text(mk, 1, tokens[i % n_ops], TOKEN_TEXT_LEN, SQLITE_STATIC);
    if (sqlite3_step(mk) != SQLITE_ROW) die(lookup_ext.db, "session_jwt");
    snprintf(jwts[i], sizeof jwts[i], "%s", (const char *)sqlite3_column_text(mk, 0));
    sqlite3_reset(mk);
    /* the floor verifies its own signatures over messages of the same length */
    snprintf(msgs[i], sizeof msgs[i], "%.*s", (int)(strrchr(jwts[i], '.') - jwts[i]), jwts[i]);
    bench_sign(&k, msgs[i], strlen(msgs[i]), sigs[i]);
  }
  sqlite3_finalize(mk);
  vf = prepare(lookup_ext.db, "SELECT jwt_verify(?1)");
  for (int r = 0; r < runs; r++) {
    double t0 = now_seconds();
    long ok = 0;
    for (int i = 0; i < n_ops; i++) {
      const char *m = msgs[i % JWT_POOL];
      unsigned char sig[64];
      size_t sl;
      /* decoding the signature from the token is part of the bare work */
      sodium_base642bin(sig, sizeof sig, strrchr(jwts[i % JWT_POOL], '.') + 1, 86, NULL, &sl, NULL,
                        sodium_base64_VARIANT_URLSAFE_NO_PADDING);
      ok += bench_verify(&k, m, strlen(m), sigs[i % JWT_POOL]);
    }
    fl[r] = n_ops / (now_seconds() - t0);
    if (ok != n_ops) {
      fprintf(stderr, "bench: floor verified %ld of %d\n", ok, n_ops);
      exit(1);
    }
    t0 = now_seconds();
    ok = 0;
    for (int i = 0; i < n_ops; i++) {
      sqlite3_bind_text(vf, 1, jwts[i % JWT_POOL], -1, SQLITE_STATIC);
      if (sqlite3_step(vf) != SQLITE_ROW) die(lookup_ext.db, "jwt_verify");
      ok += sqlite3_column_type(vf, 0) == SQLITE_TEXT;
      sqlite3_reset(vf);
    }
    ex[r] = n_ops / (now_seconds() - t0);
    if (ok != n_ops) {
      fprintf(stderr, "bench: jwt_verify verified %ld of %d\n", ok, n_ops);
      exit(1);
    }
  }
  sqlite3_finalize(vf);
  EVP_PKEY_free(k.ec);
  report(name, median(ex, runs), median(fl, runs), ">= 0.90");
}

static double run_refresh(int ext) {
  floor_db f;
  ext_db e;
  sqlite3 *db;
  sqlite3_stmt *refresh = NULL, *rotate = NULL, *spend = NULL, *remember = NULL;
  double t0, t;
  if (ext) {
    ext_open(&e, "anonauth-refresh");
    db = e.db;
    step_done(db, e.begin);
    for (int i = 0; i < n_ops; i++) ext_signin(&e, tokens[i]);
    step_done(db, e.commit);
    refresh = prepare(db, "SELECT session_refresh(?1)");
  } else {
    floor_open(&f, "floor-refresh");
    db = f.db;
    step_done(db, f.begin);
    for (int i = 0; i < n_ops; i++) floor_signin(&f, raws[i]);
    step_done(db, f.commit);
    rotate = prepare(db, "UPDATE anonauth_sessions SET token_hash = ?2, "
                         "last_seen_at = max(last_seen_at, ?3) WHERE id = ?1");
    spend = prepare(db, "INSERT OR REPLACE INTO anonauth_refresh_spent(token_hash, session_id, "
                        "replaced_at) VALUES (?1, ?2, ?3)");
    remember = prepare(db, "INSERT OR REPLACE INTO anonauth_refresh(session_id, prev_hash, "
                           "rotated_at, sealed) VALUES (?1, ?2, ?3, ?4)");
  }
  t0 = now_seconds();
  for (int i = 0; i < n_ops; i++) {
    if (ext) {
      sqlite3_bind_text(refresh, 1, tokens[i], TOKEN_TEXT_LEN, SQLITE_STATIC);
      if (sqlite3_step(refresh) != SQLITE_ROW || sqlite3_column_bytes(refresh, 0) != TOKEN_TEXT_LEN)
        die(db, "session_refresh");
      sqlite3_reset(refresh);
    } else {
      unsigned char hash[32], fresh[32], newhash[32], key[32], nonce[24], sealed[24 + 57 + 16];
      char text[TOKEN_TEXT_LEN + 1];
      unsigned long long sealed_n;
      sqlite3_int64 now = (sqlite3_int64)time(NULL), session_id;
      step_done(db, f.begin);
      crypto_generichash(hash, sizeof hash, raws[i], 32, NULL, 0);
      sqlite3_bind_blob(f.lookup, 1, hash, sizeof hash, SQLITE_TRANSIENT);
      if (sqlite3_step(f.lookup) != SQLITE_ROW) die(db, "floor refresh lookup");
      session_id = sqlite3_column_int64(f.lookup, 0);
      sqlite3_reset(f.lookup);
      randombytes_buf(fresh, sizeof fresh);
      memcpy(text, "anonauth_sess_", 14);
      sodium_bin2base64(text + 14, sizeof text - 14, fresh, sizeof fresh,
                        sodium_base64_VARIANT_URLSAFE_NO_PADDING);
      crypto_generichash(newhash, sizeof newhash, (const unsigned char *)text, TOKEN_TEXT_LEN,
                         NULL, 0);
      crypto_generichash(key, sizeof key, raws[i], 32, (const unsigned char *)"k", 1);
      randombytes_buf(nonce, sizeof nonce);
      memcpy(sealed, nonce, 24);
      crypto_aead_xchacha20poly1305_ietf_encrypt(sealed + 24, &sealed_n,
                                                 (const unsigned char *)text, TOKEN_TEXT_LEN,
                                                 NULL, 0, NULL, nonce, key);
      sqlite3_bind_int64(rotate, 1, session_id);
      sqlite3_bind_blob(rotate, 2, newhash, 32, SQLITE_TRANSIENT);
      sqlite3_bind_int64(rotate, 3, now);
      step_done(db, rotate);
      sqlite3_bind_blob(spend, 1, hash, 32, SQLITE_TRANSIENT);
      sqlite3_bind_int64(spend, 2, session_id);
      sqlite3_bind_int64(spend, 3, now);
      step_done(db, spend);
      sqlite3_bind_int64(remember, 1, session_id);
      sqlite3_bind_blob(remember, 2, hash, 32, SQLITE_TRANSIENT);
      sqlite3_bind_int64(remember, 3, now);
      sqlite3_bind_blob(remember, 4, sealed, (int)(24 + sealed_n), SQLITE_TRANSIENT);
      step_done(db, remember);
      step_done(db, f.commit);
    }
  }
  t = now_seconds() - t0;
  if (ext) {
    sqlite3_finalize(refresh);
    ext_close(&e);
  } else {
    sqlite3_finalize(rotate);
    sqlite3_finalize(spend);
    sqlite3_finalize(remember);
    floor_close(&f);
  }
  return n_ops / t;
}

static void phase_refresh(void) {
  double fl[MAX_RUNS], ex[MAX_RUNS];
  for (int r = 0; r < runs; r++) {
    fl[r] = run_refresh(0);
    ex[r] = run_refresh(1);
  }
  report("session_refresh", median(ex, runs), median(fl, runs), ">= 0.70");
}

static double run_link(int ext) {
  floor_db f;
  ext_db e;
  sqlite3 *db;
  sqlite3_stmt *link = NULL, *revoke = NULL, *account = NULL, *convert = NULL;
  double t0, t;
  if (ext) {
    ext_open(&e, "anonauth-link");
    db = e.db;
    step_done(db, e.begin);
    for (int i = 0; i < n_ops; i++) ext_signin(&e, tokens[i]);
    step_done(db, e.commit);
    link = prepare(db, "SELECT link_account(?1, 'google', ?2)");
  } else {
    floor_open(&f, "floor-link");
    db = f.db;
    step_done(db, f.begin);
    for (int i = 0; i < n_ops; i++) floor_signin(&f, raws[i]);
    step_done(db, f.commit);
    revoke = prepare(db, "UPDATE anonauth_sessions SET revoked_at = ?2 "
                         "WHERE id = ?1 AND revoked_at IS NULL");
    account = prepare(db, "INSERT INTO anonauth_accounts(user_id, provider, account_id, "
                          "secret_hash, created_at) VALUES (?1, 'google', ?2, NULL, ?3)");
    convert = prepare(db, "UPDATE anonauth_users SET is_anonymous = 0 WHERE id = ?1");
  }
  t0 = now_seconds();
  for (int i = 0; i < n_ops; i++) {
    char subject[32];
    snprintf(subject, sizeof subject, "sub-%d", i);
    if (ext) {
      sqlite3_bind_text(link, 1, tokens[i], TOKEN_TEXT_LEN, SQLITE_STATIC);
      sqlite3_bind_text(link, 2, subject, -1, SQLITE_TRANSIENT);
      if (sqlite3_step(link) != SQLITE_ROW || sqlite3_column_type(link, 0) != SQLITE_TEXT)
        die(db, "link_account");
      sqlite3_reset(link);
    } else {
      unsigned char hash[32], fresh[32];
      sqlite3_int64 now = (sqlite3_int64)time(NULL), session_id, user_id;
      step_done(db, f.begin);
      crypto_generichash(hash, sizeof hash, raws[i], 32, NULL, 0);
      sqlite3_bind_blob(f.lookup, 1, hash, sizeof hash, SQLITE_TRANSIENT);
      if (sqlite3_step(f.lookup) != SQLITE_ROW) die(db, "floor link lookup");
      session_id = sqlite3_column_int64(f.lookup, 0);
      user_id = sqlite3_column_int64(f.lookup, 1);
      sqlite3_reset(f.lookup);
      sqlite3_bind_int64(revoke, 1, session_id);
      sqlite3_bind_int64(revoke, 2, now);
      step_done(db, revoke);
      sqlite3_bind_int64(account, 1, user_id);
      sqlite3_bind_text(account, 2, subject, -1, SQLITE_TRANSIENT);
      sqlite3_bind_int64(account, 3, now);
      step_done(db, account);
      sqlite3_bind_int64(convert, 1, user_id);
      step_done(db, convert);
      randombytes_buf(fresh, sizeof fresh);
      crypto_generichash(hash, sizeof hash, fresh, sizeof fresh, NULL, 0);
      sqlite3_bind_blob(f.session, 1, hash, sizeof hash, SQLITE_TRANSIENT);
      sqlite3_bind_int64(f.session, 2, user_id);
      sqlite3_bind_int64(f.session, 3, now);
      sqlite3_bind_int64(f.session, 4, now + 2592000);
      step_done(db, f.session);
      step_done(db, f.commit);
    }
  }
  t = now_seconds() - t0;
  if (ext) {
    sqlite3_finalize(link);
    ext_close(&e);
  } else {
    sqlite3_finalize(revoke);
    sqlite3_finalize(account);
    sqlite3_finalize(convert);
    floor_close(&f);
  }
  return n_ops / t;
}

static void phase_link(void) {
  double fl[MAX_RUNS], ex[MAX_RUNS];
  for (int r = 0; r < runs; r++) {
    fl[r] = run_link(0);
    ex[r] = run_link(1);
  }
  report("link_account, no secret", median(ex, runs), median(fl, runs), "");
}

static void report_alone(const char *phase, double ops, const char *scale_name, double scale_ops) {
  printf("%-34s %10.0f ops/s  %7.3f ms/op  (%s: %.0f ops/s)  peak RSS %5ld MiB\n", phase, ops,
         1000.0 / ops, scale_name, scale_ops, status_kib("VmHWM:") / 1024);
  fflush(stdout);
}

/* account_signin with a secret at libsodium's minimum Argon2id cost (the
** least password.opslimit / password.memlimit allow). Argon2 dominates by
** design; the bare verification at the same cost is printed for scale. */
static void phase_account_signin(void) {
  int n = n_ops / 10;
  double ex[MAX_RUNS], ar[MAX_RUNS];
  char sql[256], hash[crypto_pwhash_STRBYTES];
  ext_db e;
  sqlite3_stmt *signin;
  ext_open(&e, "anonauth-account");
  snprintf(sql, sizeof sql,
           "SELECT anonauth_config('password.opslimit', %llu), "
           "anonauth_config('password.memlimit', %llu)",
           (unsigned long long)crypto_pwhash_OPSLIMIT_MIN,
           (unsigned long long)crypto_pwhash_MEMLIMIT_MIN);
  exec(e.db, sql);
  exec(e.db, "SELECT account_signup('password', 'bench@example.com', 'correct horse battery')");
  if (crypto_pwhash_str(hash, "correct horse battery", 21, crypto_pwhash_OPSLIMIT_MIN,
                        crypto_pwhash_MEMLIMIT_MIN) != 0)
    exit(1);
  signin = prepare(e.db, "SELECT account_signin('password', 'bench@example.com', "
                         "'correct horse battery')");
  for (int r = 0; r < runs; r++) {
    double t0 = now_seconds();
    for (int i = 0; i < n; i++) {
      if (crypto_pwhash_str_verify(hash, "correct horse battery", 21) != 0) exit(1);
    }
    ar[r] = n / (now_seconds() - t0);
    t0 = now_seconds();
    for (int i = 0; i < n; i++) {
      if (sqlite3_step(signin) != SQLITE_ROW || sqlite3_column_type(signin, 0) != SQLITE_TEXT)
        die(e.db, "account_signin");
      sqlite3_reset(signin);
    }
    ex[r] = n / (now_seconds() - t0);
  }
  sqlite3_finalize(signin);
  ext_close(&e);
  report_alone("account_signin, minimum Argon2 cost", median(ex, runs), "Argon2id verify alone",
               median(ar, runs));
}

static size_t discard(char *p, size_t size, size_t n, void *u) {
  (void)p;
  (void)u;
  return size * n;
}

/* verify_turnstile against the local fake provider: the cost of one round
** trip through anonauth, next to the same POST made directly with libcurl
** on a reused handle. Skipped without $ANONAUTH_PROVIDER. */
static void phase_turnstile(void) {
  const char *base = getenv("ANONAUTH_PROVIDER");
  static const char form[] =
      "secret=1x0000000000000000000000000000000AA&response=XXXX.DUMMY.TOKEN.XXXX";
  int n = n_ops / 10;
  double ex[MAX_RUNS], cu[MAX_RUNS];
  char url[512], sql[700];
  ext_db e;
  sqlite3_stmt *verify;
  CURL *curl;
  if (base == NULL || base[0] == 0) {
    printf("%-34s skipped: no $ANONAUTH_PROVIDER (make bench starts the fake provider)\n",
           "verify_turnstile, local provider");
    return;
  }
  snprintf(url, sizeof url, "%s/turnstile/v0/siteverify", base);
  ext_open(&e, "anonauth-turnstile");
  snprintf(sql, sizeof sql, "SELECT anonauth_config('captcha.url', '%s')", url);
  exec(e.db, sql);
  exec(e.db, "SELECT anonauth_config('captcha.secret', '1x0000000000000000000000000000000AA')");
  verify = prepare(e.db, "SELECT verify_turnstile('XXXX.DUMMY.TOKEN.XXXX')");
  curl = curl_easy_init();
  if (curl == NULL) exit(1);
  curl_easy_setopt(curl, CURLOPT_URL, url);
  curl_easy_setopt(curl, CURLOPT_POSTFIELDS, form);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard);
  for (int r = 0; r < runs; r++) {
    double t0 = now_seconds();
    for (int i = 0; i < n; i++) {
      long status = 0;
      if (curl_easy_perform(curl) != CURLE_OK) {
        fprintf(stderr, "bench: POST %s failed\n", url);
        exit(1);
      }
      curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
      if (status != 200) exit(1);
    }
    cu[r] = n / (now_seconds() - t0);
    t0 = now_seconds();
    for (int i = 0; i < n; i++) {
      if (sqlite3_step(verify) != SQLITE_ROW || sqlite3_column_int(verify, 0) != 1)
        die(e.db, "verify_turnstile");
      sqlite3_reset(verify);
    }
    ex[r] = n / (now_seconds() - t0);
  }
  curl_easy_cleanup(curl);
  sqlite3_finalize(verify);
  ext_close(&e);
  report_alone("verify_turnstile, local provider", median(ex, runs), "bare libcurl POST",
               median(cu, runs));
}

/* anon_purge over 100,000 stale anonymous users: the time of each batch. */
static void phase_purge(void) {
  enum { STALE = 100000 };
  ext_db e;
  sqlite3_stmt *purge;
  double worst = 0, total = 0;
  int calls = 0;
  long purged = 0;
  ext_open(&e, "anonauth-purge");
  exec(e.db, "SELECT anonauth_set_clock(1000000000)");
  step_done(e.db, e.begin);
  for (int i = 0; i < STALE; i++) {
    char tok[TOKEN_TEXT_LEN + 1];
    ext_signin(&e, tok);
  }
  step_done(e.db, e.commit);
  exec(e.db, "SELECT anonauth_set_clock(1000000000 + 31 * 86400)");
  purge = prepare(e.db, "SELECT anon_purge()");
  for (;;) {
    double t0 = now_seconds(), t;
    long n;
    if (sqlite3_step(purge) != SQLITE_ROW) die(e.db, "anon_purge");
    n = sqlite3_column_int64(purge, 0);
    sqlite3_reset(purge);
    t = now_seconds() - t0;
    total += t;
    calls++;
    if (t > worst) worst = t;
    purged += n;
    if (n == 0) break;
  }
  sqlite3_finalize(purge);
  ext_close(&e);
  printf("\nanon_purge: %ld stale users in %d calls (purge.batch = 1000): %.1f ms per batch on "
         "average, %.1f ms the slowest, %.2f s in all\n",
         purged, calls - 1, 1000 * total / calls, 1000 * worst, total);
}

/* session_valid stays flat as the table grows: 10k, 100k, 1M sessions. */
static void phase_scale(void) {
  static const int sizes[] = {10000, 100000, 1000000};
  printf("\nsession_valid by table size (%d lookups of random live tokens each)\n", 20000);
  printf("%12s %14s %14s %7s\n", "sessions", "anonauth ops/s", "floor ops/s", "ratio");
  for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
    int size = sizes[s];
    int saved = n_ops;
    double fl[MAX_RUNS], ex[MAX_RUNS];
    unsigned char (*big_raws)[32] = malloc((size_t)size * 32);
    char (*big_tokens)[TOKEN_TEXT_LEN + 1] = malloc((size_t)size * (TOKEN_TEXT_LEN + 1));
    floor_db f;
    ext_db e;
    if (!big_raws || !big_tokens) exit(1);
    floor_open(&f, "floor-scale");
    ext_open(&e, "anonauth-scale");
    step_done(f.db, f.begin);
    step_done(e.db, e.begin);
    for (int i = 0; i < size; i++) {
      floor_signin(&f, big_raws[i]);
      ext_signin(&e, big_tokens[i]);
    }
    step_done(f.db, f.commit);
    step_done(e.db, e.commit);
    for (int r = 0; r < runs; r++) {
      double t0 = now_seconds();
      for (int i = 0; i < 20000; i++) floor_lookup(&f, big_raws[(int)(((unsigned)i * 2654435761u) % (unsigned)size)]);
      fl[r] = 20000 / (now_seconds() - t0);
      t0 = now_seconds();
      for (int i = 0; i < 20000; i++)
        ext_check(&e, e.valid, big_tokens[(int)(((unsigned)i * 2654435761u) % (unsigned)size)]);
      ex[r] = 20000 / (now_seconds() - t0);
    }
    printf("%12d %14.0f %14.0f %7.2f\n", size, median(ex, runs), median(fl, runs),
           median(ex, runs) / median(fl, runs));
    fflush(stdout);
    floor_close(&f);
    ext_close(&e);
    free(big_raws);
    free(big_tokens);
    n_ops = saved;
  }
}

/* RSS growth from opening CONNS warmed-up connections, measured in a child
** process so that both variants start from the same heap. */
enum { CONNS = 50 };

static long connections_rss(const char *path, int with_ext) {
  int fd[2];
  long delta = -1;
  pid_t pid;
  if (pipe(fd) != 0) return -1;
  pid = fork();
  if (pid == 0) {
    static sqlite3 *dbs[CONNS];
    long before = status_kib("VmRSS:");
    char *err = NULL;
    for (int i = 0; i < CONNS; i++) {
      if (sqlite3_open(path, &dbs[i]) != SQLITE_OK) _exit(1);
      if (with_ext) {
        char tok[TOKEN_TEXT_LEN + 1];
        sqlite3_stmt *st;
        sqlite3_enable_load_extension(dbs[i], 1);
        if (sqlite3_load_extension(dbs[i], so_path, NULL, &err) != SQLITE_OK) _exit(1);
        st = prepare(dbs[i], "SELECT anon_signin()");
        if (sqlite3_step(st) != SQLITE_ROW) _exit(1);
        memcpy(tok, sqlite3_column_text(st, 0), sizeof tok);
        sqlite3_finalize(st);
        st = prepare(dbs[i], "SELECT session_valid(?1), session_user(?1)");
        sqlite3_bind_text(st, 1, tok, TOKEN_TEXT_LEN, SQLITE_STATIC);
        sqlite3_step(st);
        sqlite3_finalize(st);
      } else {
        unsigned char raw[32];
        floor_db f;
        f.db = dbs[i];
        f.user = prepare(f.db, "INSERT INTO anonauth_users(is_anonymous, created_at) VALUES (1, ?1)");
        f.session = prepare(f.db,
                            "INSERT INTO anonauth_sessions(token_hash, user_id, created_at, "
                            "last_seen_at, expires_at) VALUES (?1, ?2, ?3, ?3, ?4)");
        f.lookup = prepare(f.db, "SELECT s.id, s.user_id, s.created_at, s.last_seen_at, "
                                 "s.expires_at, s.revoked_at IS NOT NULL, u.is_anonymous "
                                 "FROM anonauth_sessions AS s JOIN anonauth_users AS u "
                                 "ON u.id = s.user_id WHERE s.token_hash = ?1");
        floor_signin(&f, raw);
        floor_lookup(&f, raw);
        sqlite3_finalize(f.user);
        sqlite3_finalize(f.session);
        sqlite3_finalize(f.lookup);
      }
    }
    delta = status_kib("VmRSS:") - before;
    _exit(write(fd[1], &delta, sizeof delta) == (ssize_t)sizeof delta ? 0 : 1);
  }
  close(fd[1]);
  if (read(fd[0], &delta, sizeof delta) != (ssize_t)sizeof delta) delta = -1;
  close(fd[0]);
  waitpid(pid, NULL, 0);
  return delta;
}

/* What one connection with anonauth loaded and warmed up costs in RSS, over
** a plain connection doing the floor's work. */
static void phase_memory(void) {
  char path[512];
  long plain[MAX_RUNS], with_ext[MAX_RUNS];
  double p[MAX_RUNS], w[MAX_RUNS];
  snprintf(path, sizeof path, "%s/memory.db", dir);
  sqlite3_close(open_db("memory", 1));
  for (int r = 0; r < runs; r++) {
    plain[r] = connections_rss(path, 0);
    with_ext[r] = connections_rss(path, 1);
    p[r] = (double)plain[r];
    w[r] = (double)with_ext[r];
  }
  printf("\nmemory: %d warmed-up connections add %.0f KiB of RSS plain and %.0f KiB with anonauth: "
         "anonauth adds %.0f KiB per connection (target <= 1024)\n",
         CONNS, median(p, runs), median(w, runs), (median(w, runs) - median(p, runs)) / CONNS);
}

int main(int argc, char **argv) {
  int scale = 0, only_jwt = 0, only_signin = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "-jwt") == 0) {
      only_jwt = 1; /* only the access-token and refresh lines */
      continue;
    }
    if (strcmp(argv[i], "-n") == 0 && i + 1 < argc) n_ops = atoi(argv[++i]);
    else if (strcmp(argv[i], "-runs") == 0 && i + 1 < argc) runs = atoi(argv[++i]);
    else if (strcmp(argv[i], "-dir") == 0 && i + 1 < argc) dir = argv[++i];
    else if (strcmp(argv[i], "-so") == 0 && i + 1 < argc) so_path = argv[++i];
    else if (strcmp(argv[i], "-scale") == 0) scale = 1;
    else if (strcmp(argv[i], "-signin") == 0) only_signin = 1;
    else {
      fprintf(stderr, "usage: %s [-n N] [-runs R] [-scale] [-jwt] [-signin] [-dir DIR] [-so PATH]\n",
              argv[0]);
      return 2;
    }
  }
  if (n_ops < 1000 || runs < 1 || runs > MAX_RUNS) {
    fprintf(stderr, "bench: N must be at least 1000 and runs 1..%d\n", MAX_RUNS);
    return 2;
  }
  if (sodium_init() < 0) return 1;
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) return 1;
  raws = malloc((size_t)n_ops * 32);
  tokens = malloc((size_t)n_ops * (TOKEN_TEXT_LEN + 1));
  unknown = malloc((size_t)n_ops * (TOKEN_TEXT_LEN + 1));
  unknown_raws = malloc((size_t)n_ops * 32);
  if (!raws || !tokens || !unknown || !unknown_raws) return 1;
  make_unknown(n_ops);

  printf("anonauth bench: N=%d, %d runs per phase (medians), WAL, synchronous=NORMAL, SQLite %s\n\n",
         n_ops, runs, sqlite3_libversion());
  if (only_jwt) {
    fill_lookup_dbs();
    phase_jwt_sign("session_jwt, ES256", "ES256");
    phase_jwt_sign("session_jwt, EdDSA", "EdDSA");
    phase_jwt_verify("jwt_verify, ES256", "ES256");
    phase_jwt_verify("jwt_verify, EdDSA", "EdDSA");
    floor_close(&lookup_floor);
    ext_close(&lookup_ext);
    phase_refresh();
    return 0;
  }
  report_frames();
  least_schema = 1;
  phase_signin("anon_signin, autocommit, least work", 1, ">= 0.75");
  phase_signin_without_audit_row();
  phase_signin("anon_signin, 1000/txn, least work", 1000, ">= 0.50");
  least_schema = 0;
  phase_signin("anon_signin, autocommit", 1, ">= 0.90");
  phase_signin_without_audit_row();
  phase_signin("anon_signin, 1000 per transaction", 1000, "");
  temp_store_memory = 1;
  phase_signin("  the same, temp_store=MEMORY", 1000, "");
  temp_store_memory = 0;
  if (only_signin) return 0;
  fill_lookup_dbs();
  phase_lookup("session_valid, valid tokens", LOOK_VALID, ">= 0.95");
  phase_lookup("session_valid, unknown tokens", LOOK_UNKNOWN, ">= 0.95");
  phase_lookup("session_user, valid tokens", LOOK_USER, "");
  phase_vtab();
  phase_jwt_sign("session_jwt, ES256", "ES256");
  phase_jwt_sign("session_jwt, EdDSA", "EdDSA");
  phase_jwt_verify("jwt_verify, ES256", "ES256");
  phase_jwt_verify("jwt_verify, EdDSA", "EdDSA");
  floor_close(&lookup_floor);
  ext_close(&lookup_ext);
  phase_link();
  phase_refresh();
  phase_account_signin();
  phase_turnstile();
  phase_memory();
  if (scale) {
    phase_scale();
    phase_purge();
  }
  free(raws);
  free(tokens);
  free(unknown);
  free(unknown_raws);
  curl_global_cleanup();
  return 0;
}
