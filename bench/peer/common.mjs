// common.mjs — what both sides of the peer benchmark share: the command
// line, the database pragmas, the order in which sessions are checked, the
// clock and the peak RSS. Each side runs in its own Node process (run.sh).
import { readFileSync } from 'node:fs';

export function parseArgs(argv) {
  const opts = { db: null, signins: 5000, checks: 20000, warmup: 500, so: null, joins: 0 };
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, '');
    if (!(key in opts) || i + 1 >= argv.length) throw new Error(`usage: --db FILE [--signins N] [--checks N] [--warmup N] [--so PATH] [--joins 0|1] (bad: ${argv[i]})`);
    opts[key] = ['db', 'so'].includes(key) ? argv[i + 1] : Number(argv[i + 1]);
  }
  if (!opts.db) throw new Error('--db FILE is required (a fresh file in a scratch folder)');
  for (const k of ['signins', 'checks', 'warmup'])
    if (!Number.isInteger(opts[k]) || opts[k] < 1) throw new Error(`--${k} must be a positive integer`);
  if (opts.joins !== 0 && opts.joins !== 1) throw new Error('--joins must be 0 or 1');
  return opts;
}

// The same pragmas on both sides; everything else is SQLite's default.
// (better-sqlite3's own default busy timeout, 5000 ms, applies to both.)
export function setPragmas(db) {
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  const mode = db.pragma('journal_mode', { simple: true });
  const sync = db.pragma('synchronous', { simple: true });
  if (mode !== 'wal' || sync !== 1) throw new Error(`pragmas not applied: ${mode}, ${sync}`);
}

// Which of the n measured sessions the i-th check asks about: a fixed
// pseudo-random walk (xorshift32, same seed), identical on both sides.
export function checkOrder(count, n) {
  const order = new Uint32Array(count);
  let x = 0x9e3779b9;
  for (let i = 0; i < count; i++) {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    order[i] = x % n;
  }
  return order;
}

export const now = () => Number(process.hrtime.bigint()) / 1e9;

function statusKiB(field) {
  const m = readFileSync('/proc/self/status', 'utf8').match(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm'));
  return m ? Number(m[1]) : -1;
}
export const peakRssKiB = () => statusKiB('VmHWM');
export const rssKiB = () => statusKiB('VmRSS');

// One JSON line on stdout, which run.sh collects.
export function report(fields) {
  process.stdout.write(JSON.stringify(fields) + '\n');
}
