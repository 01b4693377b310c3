-- anonauth schema: the only place it is written.
--
-- The build compiles this file into the extension. It is split at the
-- "-- migrate N" lines: step N takes a database from schema version N-1 to N,
-- and a new database runs every step in order. Released steps never change,
-- but for one kind of edit: a step may stop creating an object that a later
-- step drops, since every database then ends in the same state (step 6).
-- A change to the schema is a new step at the end. Steps must be safe to run
-- twice (IF NOT EXISTS, OR IGNORE), because a step interrupted inside a
-- caller's statement runs again on the next call.
--
-- Times are unix seconds. Apps point their own rows at anonauth_users(id).

-- migrate 1: users, sessions, configuration, audit
CREATE TABLE IF NOT EXISTS anonauth_meta (
  key   TEXT PRIMARY KEY NOT NULL,
  value INTEGER NOT NULL
) WITHOUT ROWID;

INSERT OR IGNORE INTO anonauth_meta(key, value) VALUES ('config_generation', 0);

-- AUTOINCREMENT: a purged user's id is never handed to a new user, so app
-- rows that were left pointing at it can never change owner.
CREATE TABLE IF NOT EXISTS anonauth_users (
  id           INTEGER PRIMARY KEY AUTOINCREMENT,
  is_anonymous INTEGER NOT NULL CHECK (is_anonymous IN (0, 1)),
  created_at   INTEGER NOT NULL,
  profile      TEXT
);

-- Only a BLAKE2b-256 hash of each token is stored.
CREATE TABLE IF NOT EXISTS anonauth_sessions (
  id           INTEGER PRIMARY KEY AUTOINCREMENT,
  token_hash   BLOB NOT NULL UNIQUE CHECK (length(token_hash) = 32),
  user_id      INTEGER NOT NULL REFERENCES anonauth_users(id),
  created_at   INTEGER NOT NULL,
  last_seen_at INTEGER NOT NULL,
  expires_at   INTEGER NOT NULL,
  revoked_at   INTEGER,
  ip           TEXT,
  user_agent   TEXT
);
CREATE INDEX IF NOT EXISTS anonauth_sessions_by_user
  ON anonauth_sessions(user_id);

-- Written through anonauth_config(key, value), which validates values.
CREATE TABLE IF NOT EXISTS anonauth_config (
  key   TEXT PRIMARY KEY NOT NULL,
  value TEXT NOT NULL
) WITHOUT ROWID;

-- Connections cache the configuration and reload it when this counter moves,
-- whoever changed the table and however.
CREATE TRIGGER IF NOT EXISTS anonauth_config_inserted
  AFTER INSERT ON anonauth_config BEGIN
    UPDATE anonauth_meta SET value = value + 1 WHERE key = 'config_generation';
  END;
CREATE TRIGGER IF NOT EXISTS anonauth_config_updated
  AFTER UPDATE ON anonauth_config BEGIN
    UPDATE anonauth_meta SET value = value + 1 WHERE key = 'config_generation';
  END;
CREATE TRIGGER IF NOT EXISTS anonauth_config_deleted
  AFTER DELETE ON anonauth_config BEGIN
    UPDATE anonauth_meta SET value = value + 1 WHERE key = 'config_generation';
  END;

CREATE TABLE IF NOT EXISTS anonauth_audit (
  id         INTEGER PRIMARY KEY,
  at         INTEGER NOT NULL,
  event      TEXT NOT NULL,
  user_id    INTEGER,
  session_id INTEGER,
  ip         TEXT,
  detail     TEXT
);
-- (Until schema step 6 an index on at was created here.)

-- Never holds a row: every writing call runs inside one INSERT into it, which
-- gives the call a statement journal of its own (see src/atomic.c).
CREATE TABLE IF NOT EXISTS anonauth_txn (
  never_written INTEGER NOT NULL
);

-- migrate 2: accounts and rate limits
-- An account is an identity from a provider ('password', 'google', 'email'
-- ...). secret_hash is an Argon2id string (crypto_pwhash_str) or NULL for an
-- identity the app verified itself. A user may hold several accounts; an
-- account has exactly one owner.
CREATE TABLE IF NOT EXISTS anonauth_accounts (
  id          INTEGER PRIMARY KEY,
  user_id     INTEGER NOT NULL REFERENCES anonauth_users(id),
  provider    TEXT NOT NULL,
  account_id  TEXT NOT NULL,
  secret_hash TEXT,
  created_at  INTEGER NOT NULL,
  UNIQUE (provider, account_id)
);
CREATE INDEX IF NOT EXISTS anonauth_accounts_by_user
  ON anonauth_accounts(user_id);

-- Token buckets shared by every connection and process (src/ratelimit.c).
-- kind names the limit; subject is what it counts (an IP address or IPv6
-- /64, or provider and account id).
CREATE TABLE IF NOT EXISTS anonauth_rate_limits (
  kind       TEXT NOT NULL,
  subject    TEXT NOT NULL,
  tokens     REAL NOT NULL,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (kind, subject)
) WITHOUT ROWID;

-- migrate 3: indexes for anon_purge
-- Anonymous users, oldest first: the purge reads only candidates, never the
-- users who have accounts.
CREATE INDEX IF NOT EXISTS anonauth_users_anonymous
  ON anonauth_users(created_at) WHERE is_anonymous = 1;
-- (Until schema step 6 an index of sessions by last_seen_at was created here.)

-- migrate 4: one-time codes
-- One live code per account and purpose ('reset', 'signin'); issuing again
-- replaces it. Only a hash of the code is kept (BLAKE2b-256 over purpose,
-- provider, account id and code, src/codes.c); a code dies at expires_at,
-- when used, or when attempts_left reaches 0.
CREATE TABLE IF NOT EXISTS anonauth_codes (
  provider      TEXT NOT NULL,
  account_id    TEXT NOT NULL,
  purpose       TEXT NOT NULL,
  code_hash     BLOB NOT NULL,
  created_at    INTEGER NOT NULL,
  expires_at    INTEGER NOT NULL,
  attempts_left INTEGER NOT NULL,
  PRIMARY KEY (provider, account_id, purpose)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS anonauth_codes_by_expiry ON anonauth_codes(expires_at);

-- migrate 5: signing keys for access tokens (JWTs) and refresh-token rotation
-- Keys that sign session_jwt()'s tokens (src/jwt_keys.c). kid is random and
-- URL-safe. public_key: Ed25519's 32 bytes, or P-256's DER
-- SubjectPublicKeyInfo. private_key: libsodium's 64-byte Ed25519 secret key
-- or P-256's DER PKCS#8, sealed with XChaCha20-Poly1305 when encrypted = 1
-- (the key comes from jwt.key_secret). A retired key stays published until
-- every token it signed has expired, then is deleted.
CREATE TABLE IF NOT EXISTS anonauth_jwt_keys (
  kid         TEXT PRIMARY KEY NOT NULL,
  alg         TEXT NOT NULL CHECK (alg IN ('ES256', 'EdDSA')),
  public_key  BLOB NOT NULL,
  private_key BLOB NOT NULL,
  encrypted   INTEGER NOT NULL CHECK (encrypted IN (0, 1)),
  created_at  INTEGER NOT NULL,
  retired_at  INTEGER
) WITHOUT ROWID;

-- session_refresh() (src/refresh.c): the session's token hash moves on at
-- each refresh; these remember the hashes it had, so that a replayed old
-- token is recognised as theft. prev_hash is the immediately previous
-- token's; sealed is the current token encrypted with a key derived from the
-- previous token (only its holder can open it, within session.reuse_window).
CREATE TABLE IF NOT EXISTS anonauth_refresh (
  session_id INTEGER PRIMARY KEY,
  prev_hash  BLOB NOT NULL CHECK (length(prev_hash) = 32),
  rotated_at INTEGER NOT NULL,
  sealed     BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS anonauth_refresh_spent (
  token_hash  BLOB PRIMARY KEY NOT NULL CHECK (length(token_hash) = 32),
  session_id  INTEGER NOT NULL,
  replaced_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS anonauth_refresh_spent_by_session
  ON anonauth_refresh_spent(session_id);
-- Whoever deletes a session (anon_purge, user_delete, a merge) takes its
-- rotation history with it.
CREATE TRIGGER IF NOT EXISTS anonauth_sessions_deleted_refresh
  AFTER DELETE ON anonauth_sessions BEGIN
    DELETE FROM anonauth_refresh WHERE session_id = OLD.id;
    DELETE FROM anonauth_refresh_spent WHERE session_id = OLD.id;
  END;

-- migrate 6: fewer pages written per sign-in
-- Every anonymous sign-in wrote these two indexes, and every session touch
-- moved an entry of the second. anon_purge finds old audit rows and dead
-- sessions from the start of their tables instead: ids grow with time, so
-- the oldest rows come first (src/purge.c). SQLite refuses DROP INDEX while
-- another statement reads the database, as the caller's may: then this step
-- waits for a call made while no transaction was open (src/schema.c); a
-- database at version 5 works the same meanwhile, only slower.
DROP INDEX IF EXISTS anonauth_audit_by_at;
DROP INDEX IF EXISTS anonauth_sessions_by_last_seen;
