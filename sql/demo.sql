-- make demo: anonauth's walkthrough, in the real sqlite3 shell.
-- Tokens are secrets, so this script never prints one: it keeps the
-- visitor's token in a TEMP table, as a web app would keep it in a cookie.
.load ./anonauth
.headers on
.mode box
.print
.print '== 1. A visitor arrives. The app signs them in anonymously.'
.print "   SELECT anon_signin('{\"ip\": \"203.0.113.7\", \"user_agent\": \"Demo Browser\"}');"
CREATE TEMP TABLE browser AS
  SELECT anon_signin('{"ip": "203.0.113.7", "user_agent": "Demo Browser"}') AS token;
SELECT substr(token, 1, 14) || '…' AS token_starts_with, length(token) AS token_length FROM browser;
.print '   The token goes to the browser. The database keeps only a BLAKE2b-256 hash of it:'
SELECT id, is_anonymous, datetime(created_at, 'unixepoch') AS created FROM anonauth_users;
SELECT id, user_id, length(token_hash) AS hash_bytes, ip, user_agent,
       datetime(expires_at, 'unixepoch') AS expires FROM anonauth_sessions;
.print
.print '== 2. They fill a cart. The app keys it by session_user(token).'
CREATE TABLE cart (user_id INTEGER NOT NULL, item TEXT NOT NULL, qty INTEGER NOT NULL);
INSERT INTO cart SELECT session_user(token), 'coffee beans', 2 FROM browser;
INSERT INTO cart SELECT session_user(token), 'grinder', 1 FROM browser;
SELECT * FROM cart;
.print
.print '== 3. Next day, same browser, same token: still signed in, cart still there.'
.print '   (anonauth_set_clock() moves this connection one day ahead: tests and demos never sleep)'
.output /dev/null
SELECT anonauth_set_clock(CAST(strftime('%s', 'now') AS INTEGER) + 86400);
.output stdout
SELECT session_valid(token) AS valid, session_user(token) AS user_id FROM browser;
SELECT item, qty FROM cart WHERE user_id = (SELECT session_user(token) FROM browser);
.print
.print '== 4. They sign out. The token stops working everywhere, at once.'
SELECT anon_signout(token) AS signed_out FROM browser;
SELECT session_valid(token) AS valid, session_user(token) AS user_id FROM browser;
.print
.print '== 5. Every step is in the audit trail (never with a token):'
SELECT id, event, user_id, session_id, ip FROM anonauth_audit;
.output /dev/null
SELECT anonauth_set_clock(NULL);
.output stdout
