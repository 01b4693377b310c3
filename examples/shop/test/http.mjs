// The shop's story over HTTP (no browser yet): prints ok/FAIL lines and N passed, N failed.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import Database from 'better-sqlite3';
const [fpPort, port, dbPath] = process.argv.slice(2);
const B = `http://127.0.0.1:${port}`, O = { Origin: B };
let pass = 0, fail = 0, log = '';
const check = (name, ok) => { ok ? pass++ : fail++; console.log(`${ok ? 'ok' : 'FAIL'} - shop: ${name}`); };
const srv = spawn('node', ['server.mjs'], { cwd: new URL('..', import.meta.url).pathname, env: { ...process.env,
  SHOP_DEV: '1', SHOP_PORT: port, SHOP_DB: dbPath, SHOP_CAPTCHA_URL: `http://127.0.0.1:${fpPort}/turnstile/v0/siteverify`,
  ANONAUTH_ALLOW_LOOPBACK_CAPTCHA: '1', ANONAUTH_TURNSTILE_SECRET: '1x0000000000000000000000000000000AA' } });
srv.stdout.on('data', d => log += d); srv.stderr.on('data', d => log += d);
for (let i = 0; i < 100 && !log.includes('shop:'); i++) await new Promise(r => setTimeout(r, 50));
let html = '';
async function req(jar, path, form) {
  const r = await fetch(B + path, { method: form ? 'POST' : 'GET', redirect: 'manual',
    headers: { ...(form ? O : {}), ...(jar.c ? { Cookie: jar.c } : {}) }, body: form ? new URLSearchParams(form) : undefined });
  const sc = r.headers.get('set-cookie'); if (sc) jar.c = /sid=([^;]*)/.exec(sc)[0];
  const t = await r.text(); html += t; return { status: r.status, text: t };
}
const qty = async (jar, sku) => { const t = (await req(jar, '/cart')).text; const m = new RegExp(`data-sku=${sku}>[^<]*<span class=qty>(\\d+)`).exec(t); return m ? +m[1] : 0; };
const CAP = 'XXXX.DUMMY.TOKEN.XXXX', pw = 'correct-horse-battery', email = 'shopper@example.com';
try {
  const a = {};
  check('add without captcha is refused with a shopper message', (await req({}, '/add', { sku: 'tea' })).text.includes('not a robot'));
  check('cross-site POST is refused', (await fetch(B + '/add', { method: 'POST', headers: { Origin: 'http://evil.example' }, body: 'sku=tea' })).status === 403);
  await req(a, '/add', { sku: 'tea', captcha: CAP }); await req(a, '/add', { sku: 'tea' });
  check('anonymous cart holds 2 tea', await qty(a, 'tea') === 2);
  await req(a, '/signup', { email, password: pw });
  const db = new Database(dbPath, { readonly: true, fileMustExist: true });
  check('sign-up converted the visitor in place, cart kept', await qty(a, 'tea') === 2 && db.prepare("SELECT count(*) n FROM anonauth_users WHERE is_anonymous = 0").get().n === 1);
  await req(a, '/signout', {});
  await req(a, '/add', { sku: 'tea', captcha: CAP }); await req(a, '/add', { sku: 'mug' });
  await req(a, '/signin', { email, password: pw });
  check('sign-in merged the anonymous cart (tea 3, mug 1)', await qty(a, 'tea') === 3 && await qty(a, 'mug') === 1);
  const b = {}; await req(b, '/signin', { email, password: pw });
  check('account page marks this device', /\(this device\)/.test((await req(a, '/account')).text));
  await req(a, '/account/revoke-others', {});
  check('the other device is signed out', (await req(b, '/account')).status === 404);
  await req(a, '/account/password', { email, current: pw, password: 'a-new-long-password' });
  check('password changed: cookie still works', (await req(a, '/account')).status === 200);
  check('old password refused', (await req({}, '/signin', { email, password: pw })).text.includes('do not match'));
  await req(a, '/account/delete', {});
  check('account deleted with its cart rows', db.prepare('SELECT count(*) n FROM cart').get().n === 0 && db.prepare("SELECT count(*) n FROM anonauth_users WHERE is_anonymous = 0").get().n === 0);
  check('operator page lists sessions', /Sessions \(\d+\)/.test((await req({}, '/operator')).text));
  check('operator purge runs', /Purged: /.test((await req({}, '/operator/purge', {})).text));
  const tok = /anonauth_sess_[A-Za-z0-9_-]{20,}/;
  check('no token in any page', !tok.test(html)); check('no token in the server log', !tok.test(log));
} catch (e) { check(`story ran (${e.message})`, false); }
srv.kill(); console.log(`${pass} passed, ${fail} failed`); process.exit(fail ? 1 : 0);
