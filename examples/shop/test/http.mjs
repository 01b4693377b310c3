// The shop's story over HTTP (no browser): prints ok/FAIL lines and N passed, N failed.
// argv: fake provider port, shop port, database path, a second shop port (the non-dev run).
import { spawn } from 'node:child_process';
import Database from 'better-sqlite3';
const [fpPort, port, dbPath, port2] = process.argv.slice(2);
const B = `http://127.0.0.1:${port}`;
let pass = 0, fail = 0, log = '', html = '';
const tokens = new Set();
const check = (name, ok) => { ok ? pass++ : fail++; console.log(`${ok ? 'ok' : 'FAIL'} - shop: ${name}`); };
function start(p, dev, db) {
  const srv = spawn('node', ['server.mjs'], { cwd: new URL('..', import.meta.url).pathname, env: { ...process.env,
    SHOP_DEV: dev ? '1' : '', SHOP_PORT: p, SHOP_DB: db, SHOP_CAPTCHA_URL: `http://127.0.0.1:${fpPort}/turnstile/v0/siteverify`,
    ANONAUTH_ALLOW_LOOPBACK_CAPTCHA: '1', ANONAUTH_TURNSTILE_SECRET: '1x0000000000000000000000000000000AA' } });
  srv.stdout.on('data', d => log += d); srv.stderr.on('data', d => log += d);
  return srv;
}
const up = async p => { for (let i = 0; i < 100 && !log.includes(`shop: http://127.0.0.1:${p}/`); i++) await new Promise(r => setTimeout(r, 50)); };
const srv = start(port, true, dbPath); await up(port);

// A jar is { sid, sid_exp, set }: set holds the Set-Cookie headers of the last response.
async function req(jar, path, form, base = B) {
  const r = await fetch(base + path, { method: form ? 'POST' : 'GET', redirect: 'manual',
    headers: { ...(form ? { Origin: base } : {}), ...(jar.sid ? { Cookie: `sid=${jar.sid}; sid_exp=${jar.sid_exp ?? ''}` } : {}) },
    body: form ? new URLSearchParams(form) : undefined });
  // Headers.getSetCookie() is Node 19.7+; Debian 12's Node 18 joins the headers with ", "
  // (the shop's cookies carry Max-Age, never an Expires date with a comma).
  jar.set = typeof r.headers.getSetCookie === 'function' ? r.headers.getSetCookie()
    : (r.headers.get('set-cookie') || '').split(/, (?=[A-Za-z0-9_]+=)/).filter(Boolean);
  for (const c of jar.set) {
    const m = /^(sid|sid_exp)=([^;]*)/.exec(c); if (!m) continue;
    jar[m[1]] = m[2] || undefined; if (m[1] === 'sid' && m[2]) tokens.add(m[2]);
  }
  const t = await r.text(); html += t; return { status: r.status, text: t };
}
const qty = async (jar, sku) => { const t = (await req(jar, '/cart')).text; const m = new RegExp(`data-sku=${sku}>[^<]*<span class=qty>(\\d+)`).exec(t); return m ? +m[1] : 0; };
const CAP = 'XXXX.DUMMY.TOKEN.XXXX', pw = 'correct-horse-battery', email = 'shopper@example.com';
const codeFromLog = who => { const all = [...log.matchAll(new RegExp(`dev mail: sign-in code for ${who.replace('.', '\\.')}: (\\d{8})`, 'g'))]; return all.length ? all.at(-1)[1] : null; };
try {
  const db = new Database(dbPath, { readonly: true, fileMustExist: true });
  const rw = new Database(dbPath, { timeout: 5000 });       // the test's hand: triggers, time travel
  const count = t => db.prepare(`SELECT count(*) n FROM ${t}`).get().n;
  const a = {};
  check('add without captcha is refused with a shopper message', (await req({}, '/add', { sku: 'tea' })).text.includes('not a robot'));
  check('cross-site POST is refused', (await fetch(B + '/add', { method: 'POST', headers: { Origin: 'http://evil.example' }, body: 'sku=tea' })).status === 403);

  // CAPTCHA inside the cart's transaction: a refusal or a failed insert leaves nothing behind.
  let before = [count('anonauth_users'), count('anonauth_sessions'), count('anonauth_audit'), count('cart')];
  const refused = {}; const r0 = await req(refused, '/add', { sku: 'tea', captcha: '' });
  check('a refused CAPTCHA: shopper message, no cookie, no user, session, audit row or cart row',
    r0.text.includes('robot check failed') && !refused.sid &&
    JSON.stringify(before) === JSON.stringify([count('anonauth_users'), count('anonauth_sessions'), count('anonauth_audit'), count('cart')]));
  rw.exec("CREATE TRIGGER test_cart_fails BEFORE INSERT ON cart WHEN NEW.sku = 'pot' BEGIN SELECT RAISE(ABORT, 'test: no pots'); END");
  before = [count('anonauth_users'), count('anonauth_sessions')];
  const orphan = {}; const r1 = await req(orphan, '/add', { sku: 'pot', captcha: CAP });
  check('a cart insert that fails rolls back the anonymous sign-in (no orphan user, no cookie)',
    r1.text.includes('Something went wrong') && !orphan.sid &&
    JSON.stringify(before) === JSON.stringify([count('anonauth_users'), count('anonauth_sessions')]));
  rw.exec('DROP TRIGGER test_cart_fails');

  await req(a, '/add', { sku: 'tea', captcha: CAP });
  const anonId = db.prepare('SELECT max(id) id FROM anonauth_users WHERE is_anonymous = 1').get().id;
  await req(a, '/add', { sku: 'tea' });
  check('anonymous cart holds 2 tea', await qty(a, 'tea') === 2);
  await req(a, '/signup', { email, password: pw });
  check('sign-up converted the visitor in place, cart kept', await qty(a, 'tea') === 2 &&
    db.prepare("SELECT count(*) n FROM anonauth_users WHERE is_anonymous = 0 AND id = ?").get(anonId).n === 1);

  // Sliding expiry: the cookie is re-issued only when the session's expires_at moved.
  await req(a, '/cart');
  check('a request with an up-to-date cookie gets no Set-Cookie', a.set.length === 0);
  const exp0 = Number(a.sid_exp); a.sid_exp = String(exp0 - 3600);
  await req(a, '/cart');
  const maxAge = Number((/Max-Age=(\d+)/.exec(a.set.find(c => c.startsWith('sid=')) || '') || [])[1]);
  check('a cookie an hour behind is re-issued with Max-Age = expires_at - now',
    Number(a.sid_exp) === exp0 && Math.abs(maxAge - (exp0 - Math.floor(Date.now() / 1000))) <= 5);
  // Two hours pass for this session (stored times moved back: the server's clock cannot be set).
  rw.prepare(`UPDATE anonauth_sessions SET created_at = created_at - 7200, last_seen_at = last_seen_at - 7200,
              expires_at = expires_at - 7200 WHERE user_id = ? AND revoked_at IS NULL`).run(anonId);
  a.sid_exp = String(exp0 - 7200);                   // the browser's copy is two hours older too
  await req(a, '/cart');
  check('after two idle hours the next request slides expires_at and re-issues the cookie',
    a.set.some(c => c.startsWith('sid=')) && Number(a.sid_exp) >= exp0);

  await req(a, '/signout', {});
  await req(a, '/add', { sku: 'tea', captcha: CAP }); await req(a, '/add', { sku: 'mug' });
  await req(a, '/signin', { email, password: pw });
  check('sign-in merged the anonymous cart (tea 3, mug 1)', await qty(a, 'tea') === 3 && await qty(a, 'mug') === 1);

  // Sign-in with an emailed code: a new address converts the visitor in place.
  const c = {}, email3 = 'coder@example.com';
  await req(c, '/add', { sku: 'mug', captcha: CAP });
  const cId = db.prepare('SELECT max(id) id FROM anonauth_users WHERE is_anonymous = 1').get().id;
  const sent = await req(c, '/signin/code/send', { email: email3 });
  const code3 = codeFromLog(email3);
  check('the code is "sent": in the server log and on the dev page', sent.text.includes('Enter your code') &&
    /^\d{8}$/.test(code3 || '') && (await req({}, '/dev/mail')).text.includes(`<code>${code3}</code>`));
  const wrong = code3 === '00000000' ? '11111111' : '00000000';
  check('a wrong code: shopper message, still anonymous', (await req(c, '/signin/code', { email: email3, code: wrong })).text.includes('That code is not right') &&
    db.prepare('SELECT is_anonymous a FROM anonauth_users WHERE id = ?').get(cId).a === 1);
  await req(c, '/signin/code', { email: email3, code: code3 });
  check('the right code converts the visitor in place (same user, cart kept, account without password)',
    await qty(c, 'mug') === 1 && db.prepare(`SELECT count(*) n FROM anonauth_users u JOIN anonauth_accounts x ON x.user_id = u.id
      WHERE u.id = ? AND u.is_anonymous = 0 AND x.account_id = ? AND x.secret_hash IS NULL`).get(cId, email3).n === 1);
  check('a used code is refused', (await req({}, '/signin/code', { email: email3, code: code3 })).text.includes('That code is not right'));
  check('password sign-in without a password does not open a code-made account',
    (await req({}, '/signin', { email: email3 })).text.includes('do not match') && (await req({}, '/signin', { email: email3, password: '' })).text.includes('do not match'));
  // Too many wrong tries kill the code.
  await req({}, '/signin/code/send', { email: email3 }); const code3b = codeFromLog(email3);
  const bad = code3b === '00000000' ? '11111111' : '00000000';
  for (let i = 0; i < 5; i++) await req({}, '/signin/code', { email: email3, code: bad });
  const worn = {}; const rw5 = await req(worn, '/signin/code', { email: email3, code: code3b });
  check('after 5 wrong tries the right code is refused too', rw5.text.includes('That code is not right') && !worn.sid);
  // An existing account with a password: the code signs in and merges the anonymous cart.
  const d = {}; await req(d, '/add', { sku: 'pot', captcha: CAP });
  await req(d, '/signin/code/send', { email });
  await req(d, '/signin/code', { email, code: codeFromLog(email) });
  check('a code for an existing account signs in and merges the cart (pot 1 added)', await qty(d, 'pot') === 1 && await qty(d, 'tea') === 3);
  const e4 = 'many@example.com'; let last;
  for (let i = 0; i < 6; i++) last = await req({}, '/signin/code/send', { email: e4 });
  check('the sixth code in an hour for one address is refused as too many', last.text.includes('Too many codes'));

  const b = {}; await req(b, '/signin', { email, password: pw });
  check('account page marks this device', /\(this device\)/.test((await req(a, '/account')).text));
  await req(a, '/account/revoke-others', {});
  check('the other device is signed out', (await req(b, '/account')).status === 404);
  await req(a, '/account/password', { email, current: pw, password: 'a-new-long-password' });
  check('password changed: cookie still works', (await req(a, '/account')).status === 200);
  check('old password refused', (await req({}, '/signin', { email, password: pw })).text.includes('do not match'));
  const uid = db.prepare("SELECT user_id u FROM anonauth_accounts WHERE account_id = ?").get(email).u;
  await req(a, '/account/delete', {});
  check('account deleted with its cart rows', db.prepare('SELECT count(*) n FROM cart WHERE user_id = ?').get(uid).n === 0 &&
    db.prepare('SELECT count(*) n FROM anonauth_users WHERE id = ?').get(uid).n === 0);
  check('operator page lists sessions', /Sessions \(\d+\)/.test((await req({}, '/operator')).text));
  check('operator purge runs', /Purged: /.test((await req({}, '/operator/purge', {})).text));

  // Not in dev mode: no dev page, no code sign-in (no mail service configured), no code issued.
  const srv2 = start(port2, false, dbPath); await up(port2);
  const B2 = `http://127.0.0.1:${port2}`, codes = count('anonauth_codes');
  check('without SHOP_DEV: /dev/mail is 404', (await req({}, '/dev/mail', null, B2)).status === 404);
  check('without SHOP_DEV: no code is issued or logged', (await req({}, '/signin/code/send', { email: 'x@example.com' }, B2)).text.includes('not available') &&
    count('anonauth_codes') === codes && !log.includes('x@example.com'));
  srv2.kill();

  const tok = /anonauth_sess_[A-Za-z0-9_-]{20,}/;
  check(`no token in any page (${tokens.size} tokens seen)`, tokens.size >= 8 && !tok.test(html) && ![...tokens].some(t => html.includes(t)));
  check('no token in the server log', !tok.test(log) && ![...tokens].some(t => log.includes(t)));
} catch (e) { check(`story ran (${e.message})`, false); }
srv.kill(); console.log(`${pass} passed, ${fail} failed`); process.exit(fail ? 1 : 0);
