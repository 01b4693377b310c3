// betterauth.mjs — Better Auth's side of the peer benchmark: its anonymous
// plugin on its SQLite support (a better-sqlite3 Database handed to
// `database`, which Better Auth wraps in Kysely's SqliteDialect), called
// in-process through its server API, one call at a time, no HTTP server:
//
//   sign-in: auth.api.signInAnonymous({ headers, returnHeaders: true })
//            (the response's Set-Cookie carries the signed session cookie)
//   check:   auth.api.getSession({ headers: { cookie } })
//
// The cookie cache is off (session.cookieCache.enabled: false, Better Auth's
// default, said explicitly) and only the session-token cookie is sent, so
// every check reads the session and its user from the database. Session
// refresh stays at Better Auth's default (a check writes only when a session
// is more than a day old: `session.updateAge`), so checks here write
// nothing, as on anonauth's side (`session.touch_interval`, an hour); both
// scripts assert that. run.sh runs both with NODE_ENV=production.
//
// --joins 1 turns on Better Auth's optional database joins
// (advanced.database.joins, off by default): getSession then reads the
// session and its user in one SELECT instead of two.
//
//   node betterauth.mjs --db FILE [--signins N] [--checks N] [--warmup N] [--joins 0|1]
import Database from 'better-sqlite3';
import { betterAuth } from 'better-auth';
import { anonymous } from 'better-auth/plugins/anonymous';
import { getMigrations } from 'better-auth/db/migration';
import { parseArgs, setPragmas, checkOrder, now, peakRssKiB, rssKiB, report } from './common.mjs';

const opts = parseArgs(process.argv.slice(2));

const db = new Database(opts.db);
setPragmas(db);
const options = {
  database: db,
  baseURL: 'http://localhost:3000',
  secret: 'peer-benchmark-secret-0123456789abcdef0123456789',
  plugins: [anonymous()],
  session: { cookieCache: { enabled: false } },
  rateLimit: { enabled: false },     // off outside production anyway; anonauth's per-IP limit needs an ip, none is given
  telemetry: { enabled: false },
  advanced: { database: { joins: opts.joins === 1 } },
};

// The schema, programmatically (what `npx @better-auth/cli migrate` runs).
const { runMigrations } = await getMigrations(options);
await runMigrations();
const auth = betterAuth(options);
const rssReady = rssKiB();

async function signIn() {
  const { headers, response } = await auth.api.signInAnonymous({ headers: new Headers(), returnHeaders: true });
  // "better-auth.session_token", with the "__Secure-" prefix on https.
  const setCookie = headers.getSetCookie().find((c) => /^[^=]*better-auth\.session_token=/.test(c));
  if (!setCookie || !response?.token) throw new Error('sign-in: no session cookie');
  return setCookie.split(';')[0];             // "better-auth.session_token=<token>.<signature>"
}
async function check(cookie) {
  const session = await auth.api.getSession({ headers: { cookie } });
  return session?.user?.isAnonymous === true ? 1 : 0;
}

// Warm-up, not timed (as on anonauth's side).
for (let i = 0; i < opts.warmup; i++) {
  if (await check(await signIn()) !== 1) throw new Error('warm-up: a new session is not valid');
}

const cookies = new Array(opts.signins);
let t0 = now();
for (let i = 0; i < opts.signins; i++) cookies[i] = await signIn();
const signinSeconds = now() - t0;

const order = checkOrder(opts.checks, opts.signins);
const changes = db.prepare('SELECT total_changes()').pluck();
const changesBefore = changes.get();
let ok = 0;
t0 = now();
for (let i = 0; i < opts.checks; i++) ok += await check(cookies[order[i]]);
const checkSeconds = now() - t0;
if (ok !== opts.checks) throw new Error(`${opts.checks - ok} of ${opts.checks} checks said invalid`);
if (changes.get() !== changesBefore) throw new Error('the checks wrote to the database');

const peak = peakRssKiB();
db.close();
report({
  side: 'betterauth', joins: opts.joins === 1,
  signins: opts.signins, signin_seconds: signinSeconds, signins_per_s: opts.signins / signinSeconds,
  checks: opts.checks, check_seconds: checkSeconds, checks_per_s: opts.checks / checkSeconds,
  rss_ready_kib: rssReady, peak_rss_kib: peak,
});
