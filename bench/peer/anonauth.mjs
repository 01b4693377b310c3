// anonauth.mjs — anonauth's side of the peer benchmark: the extension
// loaded into better-sqlite3, one prepared `SELECT anon_signin()` and one
// prepared `SELECT session_valid(?)`, called one at a time from this process.
//
//   node anonauth.mjs --db FILE --so PATH/anonauth.so [--signins N] [--checks N] [--warmup N]
import Database from 'better-sqlite3';
import { parseArgs, setPragmas, checkOrder, now, peakRssKiB, rssKiB, report } from './common.mjs';

const opts = parseArgs(process.argv.slice(2));
if (!opts.so) throw new Error('--so PATH/anonauth.so is required');

const db = new Database(opts.db);
setPragmas(db);
db.loadExtension(opts.so);

const signin = db.prepare('SELECT anon_signin()').pluck();
const valid = db.prepare('SELECT session_valid(?)').pluck();
const rssReady = rssKiB();

// Warm-up, not timed: creates anonauth's tables, fills its statement and
// configuration caches, lets V8 compile the loop.
for (let i = 0; i < opts.warmup; i++) {
  const token = signin.get();
  if (valid.get(token) !== 1) throw new Error('warm-up: a new session is not valid');
}

const tokens = new Array(opts.signins);
let t0 = now();
for (let i = 0; i < opts.signins; i++) tokens[i] = signin.get();
const signinSeconds = now() - t0;

const order = checkOrder(opts.checks, opts.signins);
const changes = db.prepare('SELECT total_changes()').pluck();
const changesBefore = changes.get();
let ok = 0;
t0 = now();
for (let i = 0; i < opts.checks; i++) ok += valid.get(tokens[order[i]]);
const checkSeconds = now() - t0;
if (ok !== opts.checks) throw new Error(`${opts.checks - ok} of ${opts.checks} checks said invalid`);
if (changes.get() !== changesBefore) throw new Error('the checks wrote to the database');
if (!tokens.every((t) => typeof t === 'string' && t.startsWith('anonauth_sess_'))) throw new Error('a sign-in returned no token');

const peak = peakRssKiB();
db.close();
report({
  side: 'anonauth',
  signins: opts.signins, signin_seconds: signinSeconds, signins_per_s: opts.signins / signinSeconds,
  checks: opts.checks, check_seconds: checkSeconds, checks_per_s: opts.checks / checkSeconds,
  rss_ready_kib: rssReady, peak_rss_kib: peak,
});
