-- The accounts part of `make demo`: a visitor becomes a real user without
-- losing the cart, signs out and back in with a password, and a second
-- device's anonymous cart is folded into the account on sign-in.
-- Runs on its own (sqlite3 db < sql/demo-accounts.sql) or after the
-- foundation part of sql/demo.sql. Like the rest of the demo it never prints
-- a token: tokens live in TEMP tables, as a web app keeps them in cookies.
.load ./anonauth
.headers on
.mode box
CREATE TABLE IF NOT EXISTS cart (user_id INTEGER NOT NULL, item TEXT NOT NULL, qty INTEGER NOT NULL);

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
