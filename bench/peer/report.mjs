// report.mjs — the table of the peer benchmark: reads the JSON lines that
// betterauth.mjs and anonauth.mjs printed (one per process), takes the median
// of each measure over the rounds, and prints ops/s, the ratio
// anonauth / Better Auth and each process's peak RSS.
//
//   node report.mjs RESULTS.jsonl
import { readFileSync } from 'node:fs';

const rows = readFileSync(process.argv[2], 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const of = (side, key) => rows.filter((r) => r.side === side).map((r) => r[key]);
const sides = ['betterauth', 'anonauth'];
for (const side of sides) if (of(side, 'side').length === 0) throw new Error(`no result from ${side}`);

const int = (x) => Math.round(x).toLocaleString('en-US');
const mib = (kib) => (kib / 1024).toFixed(0);
const all = (side, key, f) => of(side, key).map(f).join(', ');

const lines = [
  ['measure (median of ' + of('anonauth', 'side').length + ')', 'Better Auth', 'anonauth', 'anonauth / Better Auth'],
];
for (const [label, key] of [['anonymous sign-ins/s', 'signins_per_s'], ['session checks/s (valid)', 'checks_per_s']]) {
  const b = median(of('betterauth', key)), a = median(of('anonauth', key));
  lines.push([label, int(b), int(a), (a / b).toFixed(1) + '×']);
}
const pb = median(of('betterauth', 'peak_rss_kib')), pa = median(of('anonauth', 'peak_rss_kib'));
lines.push(['peak RSS of the process (MiB)', mib(pb), mib(pa), (pa / pb).toFixed(2) + '×']);
const rb = median(of('betterauth', 'rss_ready_kib')), ra = median(of('anonauth', 'rss_ready_kib'));
lines.push(['RSS before the first call (MiB)', mib(rb), mib(ra), '']);

const width = lines[0].map((_, c) => Math.max(...lines.map((l) => l[c].length)));
for (const [i, l] of lines.entries()) {
  console.log(l.map((cell, c) => (c === 0 ? cell.padEnd(width[c]) : cell.padStart(width[c]))).join('  '));
  if (i === 0) console.log(width.map((w) => '-'.repeat(w)).join('  '));
}
console.log('');
console.log('every round (sign-ins/s; checks/s; peak RSS MiB):');
for (const side of sides)
  console.log(`  ${side.padEnd(10)}  ${all(side, 'signins_per_s', int)};  ${all(side, 'checks_per_s', int)};  ${all(side, 'peak_rss_kib', mib)}`);
