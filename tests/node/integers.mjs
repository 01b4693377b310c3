// Every integer argument of every anonauth function, bound from Node with
// better-sqlite3, which binds every JavaScript number as REAL: a number that
// is an exact integer must work as that integer, and 1.5, the infinities,
// 1e300 and text must still be refused with invalid_argument. NaN binds as
// NULL (SQLite keeps no NaN). Prints ok/FAIL lines and "N passed, N failed".
//
//   node integers.mjs DB_PATH EXTENSION_PATH
import Database from 'better-sqlite3';

const [dbPath, extension] = process.argv.slice(2);
const db = new Database(dbPath);
db.loadExtension(extension);

let passed = 0, failed = 0;
function check(ok, what, detail) {
  if (ok) { passed++; console.log(`ok - node: ${what}`); }
  else { failed++; console.log(`FAIL - node: ${what}${detail ? `\n    ${detail}` : ''}`); }
}
const one = (sql, ...args) => db.prepare(sql).pluck().get(...args);
function attempt(sql, ...args) {
  try { return { value: one(sql, ...args) }; } catch (e) { return { error: e.message }; }
}
function accepts(what, sql, args, want) {
  const r = attempt(sql, ...args);
  check(r.error === undefined && (want === undefined || r.value === want), what,
        r.error ?? `got ${JSON.stringify(r.value)}, want ${JSON.stringify(want)}`);
  return r.value;
}
function refuses(what, sql, args) {
  const r = attempt(sql, ...args);
  check(r.error !== undefined && /^anonauth: invalid_argument: /.test(r.error), what,
        r.error ?? `accepted, returned ${JSON.stringify(r.value)}`);
}

check(one('SELECT typeof(?)', 3) === 'real', 'better-sqlite3 binds a JavaScript number as REAL');

// The clock first, so that every time below is known.
accepts('anonauth_set_clock(1.7e9)', 'SELECT anonauth_set_clock(?)', [1.7e9], 1700000000);
db.exec("CREATE TABLE cart(user_id INTEGER NOT NULL, item TEXT)");
accepts('anonauth_config(purge.user_sql)', 'SELECT anonauth_config(?, ?)',
        ['purge.user_sql', 'DELETE FROM cart WHERE user_id = :user_id']);

const token = one("SELECT account_signup('google', 'ann')");
const other = one("SELECT account_signin('google', 'ann')");
const user = one('SELECT session_user(?)', token);
check(typeof user === 'number', 'session_user() returns a JavaScript number');
db.prepare('INSERT INTO cart VALUES (?, ?)').run(user, 'book');

accepts('user_is_anonymous(number)', 'SELECT user_is_anonymous(?)', [user], 0);
accepts('user_profile(number)', 'SELECT user_profile(?)', [user], '{}');
accepts('user_profile(number, patch)', 'SELECT user_profile(?, ?)', [user, '{"locale":"fr"}'],
        '{"locale":"fr"}');
accepts('the integers of session_info() are numbers', 'SELECT json_extract(session_info(?), \'$.user_id\')',
        [token], user);
accepts('SELECT FROM anon_users WHERE id = number', 'SELECT count(*) FROM anon_users WHERE id = ?', [user], 1);
accepts('SELECT FROM anon_sessions WHERE user_id = number',
        'SELECT count(*) FROM anon_sessions WHERE user_id = ?', [user], 2);

// Every integer setting.
const intKeys = {
  'session.max_age': 86400, 'session.idle_timeout': 7200, 'session.touch_interval': 60,
  'password.opslimit': 1, 'password.memlimit': 8192,
  'ratelimit.failed_signin_per_hour': 10, 'ratelimit.anon_per_hour': 30,
  'captcha.timeout_ms': 5000, 'captcha.retries': 1,
  'purge.max_idle': 86400, 'purge.batch': 100, 'audit.max_age': 86400,
};
for (const [key, value] of Object.entries(intKeys)) {
  accepts(`anonauth_config('${key}', ${value})`, 'SELECT anonauth_config(?, ?)', [key, value], value);
  check(one('SELECT typeof(anonauth_config(?))', key) === 'integer', `${key} reads back as an integer`);
  refuses(`anonauth_config('${key}', ${value}.5)`, 'SELECT anonauth_config(?, ?)', [key, value + 0.5]);
}

// Refusals, for every integer argument.
const integerCalls = {
  user_is_anonymous: 'SELECT user_is_anonymous(?)',
  session_revoke_all: 'SELECT session_revoke_all(?)',
  user_delete: 'SELECT user_delete(?)',
  user_profile: 'SELECT user_profile(?)',
  'user_profile(patch)': "SELECT user_profile(?, '{}')",
  anon_purge: 'SELECT anon_purge(?)',
  anonauth_set_clock: 'SELECT anonauth_set_clock(?)',
  anonauth_config: "SELECT anonauth_config('session.max_age', ?)",
};
for (const [name, sql] of Object.entries(integerCalls)) {
  for (const bad of [1.5, Infinity, -Infinity, 1e300, -1e300, 2 ** 63, String(user)])
    refuses(`${name}(${typeof bad === 'string' ? `'${bad}'` : bad})`, sql, [bad]);
}
check(one('SELECT ? IS NULL', NaN) === 1, 'NaN binds as NULL');
accepts('user_is_anonymous(NaN) is NULL', 'SELECT user_is_anonymous(?)', [NaN], null);
refuses('session_revoke_all(NaN)', 'SELECT session_revoke_all(?)', [NaN]);
check(one('SELECT count(*) FROM anonauth_sessions WHERE revoked_at IS NOT NULL') === 0,
      'the refusals revoked nothing');
check(one('SELECT count(*) FROM anonauth_users') === 1, 'the refusals deleted nothing');

// The writing calls with numbers, last: they revoke and delete.
accepts('anon_purge(86400)', 'SELECT anon_purge(?)', [86400], 0);
db.prepare('DELETE FROM anon_sessions WHERE id = ?').run(one('SELECT json_extract(session_info(?), \'$.session_id\')', other));
check(one('SELECT session_valid(?)', other) === 0, 'DELETE FROM anon_sessions WHERE id = number revokes');
const third = one("SELECT account_signin('google', 'ann')");
accepts('session_revoke_all(number)', 'SELECT session_revoke_all(?)', [user], 2);
check(one('SELECT session_valid(?)', third) === 0, 'session_revoke_all(number) revoked the sessions');
accepts('user_delete(number)', 'SELECT user_delete(?)', [user], 1);
check(one('SELECT count(*) FROM cart') === 0, 'user_delete(number) ran purge.user_sql');
accepts('anonauth_set_clock(NaN) is back to the system clock', 'SELECT anonauth_set_clock(?) > 1700000000', [NaN], 1);

db.close();
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
