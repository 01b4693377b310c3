-- make demo: anonauth's walkthrough, in the real sqlite3 shell: anonymous
-- sign-in (1-5), accounts and merging carts (6-12), the operator's view (13-15),
-- devices and leaving (16-17).
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

.print
.print '== 6. Sam browses anonymously on a laptop and fills a cart.'
CREATE TEMP TABLE laptop AS SELECT anon_signin('{"user_agent": "Laptop Browser"}') AS token;
INSERT INTO cart SELECT session_user(token), 'coffee beans', 2 FROM laptop;
INSERT INTO cart SELECT session_user(token), 'milk frother', 1 FROM laptop;
CREATE TEMP TABLE sam AS SELECT session_user(token) AS anonymous_user_id FROM laptop;
SELECT anonymous_user_id, user_is_anonymous(anonymous_user_id) AS is_anonymous FROM sam;

.print
.print '== 7. Sam creates a password account: link_account() converts the user in place.'
.print "   UPDATE laptop SET token = link_account(token, 'password', 'sam@example.com', '…');"
CREATE TEMP TABLE old_laptop AS SELECT token FROM laptop;
UPDATE laptop SET token = link_account(token, 'password', 'sam@example.com', 'correct horse battery staple');
.print '   Same user id, no longer anonymous, the cart untouched:'
SELECT session_user(token) AS user_id, user_is_anonymous(session_user(token)) AS is_anonymous,
       session_user(token) = (SELECT anonymous_user_id FROM sam) AS same_user FROM laptop;
SELECT item, qty FROM cart WHERE user_id = (SELECT session_user(token) FROM laptop);
.print '   The token was rotated (a token planted before linking is worth nothing now):'
SELECT (SELECT session_valid(token) FROM old_laptop) AS old_token_valid,
       (SELECT session_valid(token) FROM laptop) AS new_token_valid;
.print '   The password is stored only as an Argon2id hash (crypto_pwhash_str):'
SELECT provider, account_id, secret_hash LIKE '$argon2id$%' AS is_argon2id,
       substr(secret_hash, instr(secret_hash, 'm='),
              instr(substr(secret_hash, instr(secret_hash, 'm=')), '$') - 1) AS cost,
       instr(secret_hash, 'correct horse') > 0 AS holds_the_password
  FROM anonauth_accounts;

.print
.print '== 8. Sam signs out, then back in with the password, and finds the cart.'
SELECT anon_signout(token) AS signed_out FROM laptop;
DELETE FROM laptop;
INSERT INTO laptop SELECT account_signin('password', 'sam@example.com', 'correct horse battery staple',
                                         '{"user_agent": "Laptop Browser"}');
SELECT session_valid(token) AS valid, session_user(token) AS user_id FROM laptop;
SELECT item, qty FROM cart WHERE user_id = (SELECT session_user(token) FROM laptop);

.print
.print '== 9. On a phone, without signing in, Sam starts another cart.'
CREATE TEMP TABLE phone AS SELECT anon_signin('{"user_agent": "Phone Browser"}') AS token;
INSERT INTO cart SELECT session_user(token), 'coffee beans', 1 FROM phone;
INSERT INTO cart SELECT session_user(token), 'paper filters', 3 FROM phone;
SELECT user_id, item, qty FROM cart ORDER BY user_id, item;

.print
.print '== 10. The app says how carts combine, once, in link.merge_sql:'
.output /dev/null
SELECT anonauth_config('link.merge_sql', '
  UPDATE cart SET qty = qty + (SELECT sum(p.qty) FROM cart AS p
                               WHERE p.user_id = :from_user AND p.item = cart.item)
   WHERE user_id = :to_user AND item IN (SELECT item FROM cart WHERE user_id = :from_user);
  UPDATE cart SET user_id = :to_user
   WHERE user_id = :from_user AND item NOT IN (SELECT item FROM cart WHERE user_id = :to_user);
  DELETE FROM cart WHERE user_id = :from_user');
.output stdout
.print '   (three statements run with :from_user and :to_user bound; checked when set)'
.print
.print '== 11. Sam signs in on the phone, passing the anonymous token along:'
.print "   SELECT account_signin('password', 'sam@example.com', '…', json_object('anon_token', token));"
CREATE TEMP TABLE phone_user AS SELECT session_user(token) AS anonymous_user_id FROM phone;
UPDATE phone SET token = account_signin('password', 'sam@example.com', 'correct horse battery staple',
                                        json_object('anon_token', token, 'user_agent', 'Phone Browser'));
.print '   One cart, folded together in the same transaction as the sign-in:'
SELECT user_id, item, qty FROM cart ORDER BY user_id, item;
.print '   The phone is signed in as Sam; the anonymous phone user is gone:'
SELECT session_user(token) AS phone_user_id,
       (SELECT count(*) FROM anonauth_users WHERE id = (SELECT anonymous_user_id FROM phone_user)) AS anonymous_user_left
  FROM phone;

.print
.print '== 12. The audit trail of the accounts part (never a token or a password):'
SELECT id, event, user_id, detail FROM anonauth_audit
 WHERE event IN ('link', 'signin', 'signin_failed', 'merge', 'signup', 'rate_limited') ORDER BY id;
.print
.print "== 13. The operator's view. Two more visitors arrive, on a phone and on a laptop:"
CREATE TEMP TABLE demo_op(device TEXT PRIMARY KEY, tok TEXT);
INSERT INTO demo_op VALUES
  ('phone',  anon_signin('{"ip":"203.0.113.7","user_agent":"DemoPhone/1.0"}')),
  ('laptop', anon_signin('{"ip":"198.51.100.23","user_agent":"DemoLaptop/2.3"}'));
.print
.print Every session, with its status computed from the clock and the configuration
.print (SELECT * FROM anon_sessions; no column holds a token or its hash):
.mode box
SELECT * FROM anon_sessions;
.print
.print Every user, with its providers and live sessions (SELECT * FROM anon_users):
SELECT * FROM anon_users;
.print
.print '== 14. The laptop was stolen: DELETE on anon_sessions revokes its session.'
DELETE FROM anon_sessions WHERE user_agent = 'DemoLaptop/2.3';
SELECT id, user_id, revoked_at, status FROM anon_sessions WHERE user_agent = 'DemoLaptop/2.3';
SELECT device, session_valid(tok) AS token_still_valid FROM demo_op ORDER BY device;
.print
.print The audit trail recorded it:
SELECT event, user_id, session_id, detail FROM anonauth_audit WHERE event = 'session_revoked';
.print
.print Lookups by id or user_id use an index, not a scan:
.mode list
EXPLAIN QUERY PLAN SELECT * FROM anon_sessions WHERE user_id = 1;
.print
.print '== 15. Clean-up: 31 days later nobody has come back. anon_purge() deletes anonymous'
.print '   users with no account idle for purge.max_idle (30 days) with their sessions, and'
.print "   runs the app's purge.user_sql for each, at most purge.batch users per call;"
.print '   call it until it returns 0. Sam, who holds an account, stays:'
.output /dev/null
SELECT anonauth_config('purge.user_sql', 'DELETE FROM cart WHERE user_id = :user_id');
.output stdout
CREATE TEMP TABLE demo_clock AS
  SELECT anonauth_set_clock((SELECT max(last_seen_at) FROM anon_users) + 31 * 86400) AS t;
.mode box
SELECT anon_purge() AS users_purged;
SELECT anon_purge() AS users_purged;
SELECT count(*) AS users_left, coalesce(sum(is_anonymous), 0) AS anonymous_left FROM anon_users;
SELECT user_id, item, qty FROM cart ORDER BY user_id, item;
SELECT event, detail FROM anonauth_audit WHERE event = 'purge';
.mode list
DELETE FROM temp.demo_clock WHERE anonauth_set_clock(NULL) IS NOT NULL;
DROP TABLE temp.demo_clock;
DROP TABLE temp.demo_op;

.print
.print '== 16. Sam, on the phone, looks at the session and signs out every other device.'
.print '   session_info(token) says what a cookie needs (Max-Age = expires_at - now):'
.mode box
SELECT json_extract(i, '$.user_id') AS user_id, json_extract(i, '$.is_anonymous') AS is_anonymous,
       datetime(json_extract(i, '$.last_seen_at'), 'unixepoch') AS last_seen,
       datetime(json_extract(i, '$.expires_at'), 'unixepoch') AS expires
  FROM (SELECT session_info(token) AS i FROM phone);
.print "   SELECT session_revoke_others(token): the phone stays signed in, the laptop does not."
SELECT session_revoke_others(token) AS other_sessions_revoked FROM phone;
SELECT (SELECT session_valid(token) FROM phone) AS phone_valid,
       (SELECT session_valid(token) FROM laptop) AS laptop_valid;
.print
.print '== 17. Sam signs in on the laptop again, then changes the password on the phone.'
.print "   account_set_secret(token, 'password', 'sam@example.com', '…current…', '…new…')"
.print '   checks the current password as a sign-in does, stores the new hash, revokes every'
.print '   other session (the laptop) and rotates the calling one (the phone gets a new token):'
DELETE FROM laptop;
INSERT INTO laptop SELECT account_signin('password', 'sam@example.com', 'correct horse battery staple');
CREATE TEMP TABLE old_phone AS SELECT token FROM phone;
UPDATE phone SET token = account_set_secret(token, 'password', 'sam@example.com',
                                            'correct horse battery staple', 'staple battery horse correct');
SELECT (SELECT session_valid(token) FROM old_phone) AS old_phone_token,
       (SELECT session_valid(token) FROM phone) AS new_phone_token,
       (SELECT session_valid(token) FROM laptop) AS laptop;
SELECT event, detail FROM anonauth_audit WHERE event = 'secret_changed';
.print
.print '== 18. Sam deletes the account. user_delete() runs purge.user_sql for the cart, then'
.print '   removes the user, sessions and accounts, all in one atomic call:'
SELECT user_delete(session_user(token)) AS deleted FROM phone;
SELECT (SELECT count(*) FROM cart) AS cart_rows, (SELECT count(*) FROM anon_accounts) AS accounts,
       (SELECT session_valid(token) FROM phone) AS phone_valid;
SELECT event, detail FROM anonauth_audit WHERE event IN ('revoke_others', 'user_delete') ORDER BY id;
.mode list
