-- The operator's view (issue 5): who is signed in, revoking a session with
-- DELETE, and the clean-up of stale anonymous users. Spliced into
-- sql/demo.sql; expects the extension loaded. Never prints a token: tokens
-- stay in a TEMP table.
.print
.print ==== The operator's view ====
.print
.print Two more visitors arrive, on a phone and on a laptop:
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
.print The laptop was stolen: DELETE on anon_sessions revokes its session.
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
.print Clean-up: 31 days later nobody has come back. anon_purge() deletes anonymous
.print users with no account idle for purge.max_idle (30 days) with their sessions,
.print at most purge.batch per call; call it until it returns 0:
CREATE TEMP TABLE demo_clock AS
  SELECT anonauth_set_clock((SELECT max(last_seen_at) FROM anon_users) + 31 * 86400) AS t;
.mode box
SELECT anon_purge() AS users_purged;
SELECT anon_purge() AS users_purged;
SELECT count(*) AS users_left, coalesce(sum(is_anonymous), 0) AS anonymous_left FROM anon_users;
SELECT event, detail FROM anonauth_audit WHERE event = 'purge';
.mode list
DELETE FROM temp.demo_clock WHERE anonauth_set_clock(NULL) IS NOT NULL;
DROP TABLE temp.demo_clock;
DROP TABLE temp.demo_op;
