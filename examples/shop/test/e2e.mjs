// The shop's whole story in headless Chromium, two browser contexts as two devices (and a
// third for a new customer): anonymous cart (the page script plays the CAPTCHA widget) →
// sign-up at checkout → sign out → anonymous again → sign in, carts merged → device B signs in
// → A's account page lists both → A signs out other devices → A changes password (old one
// refused in B) → sign-in with an emailed code (read from the dev page, and from the server log)
// → delete account. Asserts on the pages and, read-only, on the database; screenshots into outDir.
import { chromium } from 'playwright-core';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import Database from 'better-sqlite3';
const [fpPort, port, dbPath, outDir] = process.argv.slice(2);
const B = `http://127.0.0.1:${port}`;
let pass = 0, fail = 0, log = '', html = '';
const check = (name, ok) => { ok ? pass++ : fail++; console.log(`${ok ? 'ok' : 'FAIL'} - shop e2e: ${name}`); };
fs.mkdirSync(outDir, { recursive: true });
const srv = spawn('node', ['server.mjs'], { cwd: new URL('..', import.meta.url).pathname, env: { ...process.env,
  SHOP_DEV: '1', SHOP_PORT: port, SHOP_DB: dbPath, SHOP_CAPTCHA_URL: `http://127.0.0.1:${fpPort}/turnstile/v0/siteverify`,
  ANONAUTH_ALLOW_LOOPBACK_CAPTCHA: '1', ANONAUTH_TURNSTILE_SECRET: '1x0000000000000000000000000000000AA' } });
srv.stdout.on('data', d => log += d); srv.stderr.on('data', d => log += d);
for (let i = 0; i < 100 && !log.includes('shop:'); i++) await new Promise(r => setTimeout(r, 50));
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox', '--disable-gpu',
  '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'] });

const contexts = [], pending = [], tokens = new Set();
async function device() {
  const ctx = await browser.newContext({ viewport: { width: 800, height: 600 } });
  const p = await ctx.newPage();
  // Every HTML page the browser receives, for the token check at the end.
  p.on('response', r => { if (r.request().resourceType() === 'document' && r.status() === 200) pending.push(r.text().then(t => { html += t; }, () => {})); });
  contexts.push(ctx); return p;
}
async function grabTokens() {      // every session token the browsers hold, at each step
  for (const ctx of contexts) for (const c of await ctx.cookies()) if (c.name === 'sid' && c.value) tokens.add(c.value);
}
// Click a form's button and wait for the page it leads to (a same-URL page too).
let lastPress = '';
async function press(p, name, within = p) {
  lastPress = name;
  await Promise.all([p.waitForEvent('framenavigated', f => f === p.mainFrame()), within.getByRole('button', { name, exact: true }).click()]);
  await p.waitForLoadState(); await grabTokens();
}
const shot = (p, name) => p.screenshot({ path: `${outDir}/${name}.png` });
async function add(p, item) {
  await p.goto(B + '/');
  await press(p, 'Add to cart', p.locator('li', { hasText: item }));
}
async function qty(p, sku) {
  if (p.url() !== B + '/cart') await p.goto(B + '/cart');
  const q = p.locator(`[data-sku=${sku}] .qty`);
  return (await q.count()) ? Number(await q.textContent()) : 0;
}
async function signin(p, email, password) {
  await p.goto(B + '/signin'); await p.fill('form[action="/signin"] input[name=email]', email);
  await p.fill('form[action="/signin"] input[name=password]', password);
  await press(p, 'Sign in');
}
const signedIn = async p => (await p.getByRole('link', { name: 'Account' }).count()) === 1;
const signout = p => press(p, 'Sign out');
const codeFromLog = who => { const all = [...log.matchAll(/dev mail: sign-in code for (\S+): (\d{8})/g)].filter(m => m[1] === who); return all.length ? all.at(-1)[2] : null; };

const email = 'b@example.com', pw = 'correct-horse-battery', pw2 = 'a-brand-new-password';
try {
  const db = new Database(dbPath, { readonly: true, fileMustExist: true });
  const one = (sql, ...a) => db.prepare(sql).get(...a);
  const cartOf = uid => Object.fromEntries(db.prepare('SELECT sku, qty FROM cart WHERE user_id = ? ORDER BY sku').all(uid).map(r => [r.sku, r.qty]));
  const a = await device(), b = await device();

  // 1. Anonymous cart, behind the CAPTCHA gate.
  await a.goto(B + '/'); await shot(a, 'shop-home');
  const caps = await a.locator('input[name=captcha]').evaluateAll(l => l.map(i => i.value));
  check('the page script fills every CAPTCHA field (the widget\'s test token)', caps.length === 3 && caps.every(v => v === 'XXXX.DUMMY.TOKEN.XXXX'));
  await add(a, 'Green tea'); await add(a, 'Green tea');
  const anonA = one('SELECT max(id) id FROM anonauth_users WHERE is_anonymous = 1').id;
  check('A: anonymous cart shows 2 tea; db: one anonymous user holding it',
    await qty(a, 'tea') === 2 && !(await signedIn(a)) && one('SELECT count(*) n FROM anonauth_users').n === 1 && cartOf(anonA).tea === 2);
  await shot(a, 'shop-cart');

  // 2. Checkout asks for an account: sign-up converts the visitor in place.
  await press(a, 'Checkout');
  await a.fill('form[action="/signup"] input[name=email]', email); await a.fill('form[action="/signup"] input[name=password]', pw);
  await shot(a, 'shop-signup');
  await press(a, 'Create account');
  check('A: sign-up keeps the cart; db: the same user, no longer anonymous',
    await qty(a, 'tea') === 2 && await signedIn(a) && one('SELECT is_anonymous a FROM anonauth_users WHERE id = ?', anonA).a === 0);
  const uid = anonA;
  const ck = (await contexts[0].cookies()).find(c => c.name === 'sid');
  check('cookie is HttpOnly, SameSite=Lax, with an expiry', ck && ck.httpOnly && ck.sameSite === 'Lax' && ck.expires > Date.now() / 1000 + 86400);

  // 3. Sign out: anonymous again, a new cart.
  await signout(a);
  check('A: signed out, the shop asks for the CAPTCHA again', !(await signedIn(a)) && await a.locator('input[name=captcha]').count() === 3);
  await add(a, 'Green tea'); await add(a, 'Mug');
  check('A: a new anonymous cart (tea 1, mug 1)', await qty(a, 'tea') === 1 && await qty(a, 'mug') === 1);

  // 4. Sign in: the anonymous cart merges into the account's (quantities added).
  await signin(a, email, pw);
  check('A: signed in, carts merged (tea 3, mug 1)', await qty(a, 'tea') === 3 && await qty(a, 'mug') === 1 && await signedIn(a));
  check('db: the merged cart is the account\'s and no anonymous user is left',
    JSON.stringify(cartOf(uid)) === JSON.stringify({ mug: 1, tea: 3 }) && one('SELECT count(*) n FROM anonauth_users WHERE is_anonymous = 1').n === 0);

  // 5. Device B signs in too; A's account page shows both sessions, this one marked.
  await signin(b, email, pw);
  check('B: signed in, sees the same cart', await qty(b, 'tea') === 3 && await signedIn(b));
  await a.goto(B + '/account');
  const mine = await a.locator('li.session:has(.mine)').textContent();
  const aSession = one(`SELECT max(id) id FROM anonauth_sessions WHERE user_id = ? AND revoked_at IS NULL AND id <
    (SELECT max(id) FROM anonauth_sessions WHERE user_id = ? AND revoked_at IS NULL)`, uid, uid).id;
  check('A: account page lists 2 sessions, this device (A\'s session) marked once',
    await a.locator('li.session').count() === 2 && await a.locator('.mine').count() === 1 && mine.includes(`session ${aSession} `));
  await shot(a, 'shop-account');

  // 6. A signs out other devices: B's next page is signed out.
  await press(a, 'Sign out other devices');
  check('A: one session left on the account page', await a.locator('li.session').count() === 1);
  await b.goto(B + '/cart');
  check('B: signed out (no account link, empty cart, cookie cleared)', !(await signedIn(b)) && await qty(b, 'tea') === 0 &&
    !(await contexts[1].cookies()).some(c => c.name === 'sid'));
  check('db: one live session for the account', one('SELECT count(*) n FROM anonauth_sessions WHERE user_id = ? AND revoked_at IS NULL', uid).n === 1);

  // 7. A changes the password: the old one is refused in B, the new one works.
  await a.fill('form[action="/account/password"] input[name=email]', email);
  await a.fill('form[action="/account/password"] input[name=current]', pw);
  await a.fill('form[action="/account/password"] input[name=password]', pw2);
  await press(a, 'Change password');
  check('A: still signed in after the change', await signedIn(a) && await a.locator('h1').textContent() === 'Your account');
  await signin(b, email, pw);
  check('B: the old password is refused with a shopper message', (await b.locator('.msg').textContent()).includes('do not match') && !(await signedIn(b)));
  await signin(b, email, pw2);
  check('B: the new password works', await signedIn(b) && await qty(b, 'tea') === 3);

  // 8. A new customer signs in with an emailed code at checkout: converted in place.
  const c = await device(), email3 = 'c@example.com';
  await add(c, 'Teapot');
  const anonC = one('SELECT max(id) id FROM anonauth_users WHERE is_anonymous = 1').id;
  await press(c, 'Checkout');
  await c.fill('form[action="/signin/code/send"] input[name=email]', email3);
  await press(c, 'Email me a code');
  const mailPage = await contexts[2].newPage(); await mailPage.goto(B + '/dev/mail');
  const code3 = await mailPage.locator('li.mail', { has: mailPage.locator('.to', { hasText: email3 }) }).first().locator('code').textContent();
  check('the code is on the dev mail page (8 digits)', /^\d{8}$/.test(code3));
  await c.fill('input[name=code]', code3 === '00000000' ? '11111111' : '00000000');
  await press(c, 'Sign in with the code');
  check('a wrong code: a shopper message, the code form again', (await c.locator('.msg').textContent()).includes('That code is not right') &&
    await c.locator('input[name=code]').count() === 1);
  await c.fill('input[name=code]', code3); await shot(c, 'shop-code');
  await press(c, 'Sign in with the code');
  check('C: signed in with the code, cart kept (pot 1)', await signedIn(c) && await qty(c, 'pot') === 1);
  check('db: the visitor was converted in place (same user, account without a password)',
    one(`SELECT count(*) n FROM anonauth_users u JOIN anonauth_accounts x ON x.user_id = u.id
         WHERE u.id = ? AND u.is_anonymous = 0 AND x.account_id = ? AND x.secret_hash IS NULL`, anonC, email3).n === 1);

  // 9. A returning customer signs in with a code (read from the server log): carts merge.
  await signout(b); await add(b, 'Mug');
  await b.goto(B + '/signin'); await b.fill('form[action="/signin/code/send"] input[name=email]', email);
  await press(b, 'Email me a code');
  const codeB = codeFromLog(email);
  await b.fill('input[name=code]', codeB || ''); await press(b, 'Sign in with the code');
  check('B: code from the log signs into the account, carts merged (tea 3, mug 2)',
    await signedIn(b) && await qty(b, 'tea') === 3 && await qty(b, 'mug') === 2 && cartOf(uid).mug === 2);

  // 10. A deletes the account: the user, its accounts, sessions and cart are gone.
  await a.goto(B + '/account'); await press(a, 'Delete account');
  check('A: after deletion the shop is anonymous', !(await signedIn(a)) && await a.locator('input[name=captcha]').count() === 3);
  await b.goto(B + '/cart');
  check('B: signed out too, empty cart', !(await signedIn(b)) && await qty(b, 'tea') === 0);
  check('db: no user, account, session or cart row of the deleted account',
    one('SELECT count(*) n FROM anonauth_users WHERE id = ?', uid).n === 0 && one('SELECT count(*) n FROM anonauth_accounts WHERE account_id = ?', email).n === 0 &&
    one('SELECT count(*) n FROM anonauth_sessions WHERE user_id = ?', uid).n === 0 && one('SELECT count(*) n FROM cart WHERE user_id = ?', uid).n === 0);
  check('db: the other customer is untouched', cartOf(anonC).pot === 1);
  await grabTokens();
} catch (e) { check(`story ran (${e.message.split('\n')[0]}; last button: ${lastPress})`, false); }
await Promise.all(pending);
await browser.close(); srv.kill();
const tok = /anonauth_sess_[A-Za-z0-9_-]{20,}/;
check(`no session token in any page (${tokens.size} tokens from the cookie jars, every HTML response)`,
  tokens.size >= 8 && html.length > 0 && !tok.test(html) && ![...tokens].some(t => html.includes(t)));
check('no session token in the server log', !tok.test(log) && ![...tokens].some(t => log.includes(t)));
console.log(`${pass} passed, ${fail} failed`); process.exit(fail ? 1 : 0);
