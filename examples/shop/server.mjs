// anonauth shop example: anonymous cart, CAPTCHA-gated anonymous sign-in inside the cart's
// transaction, sign-up links the visitor in place, sign-in (password or emailed code) merges
// the anonymous cart or converts the visitor in place.
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';

// Not import.meta.dirname: Debian 12's Node is 18, which lacks it.
const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '../..');
const PORT = Number(process.env.SHOP_PORT || 8080);
const ORIGIN = process.env.SHOP_ORIGIN || `http://127.0.0.1:${PORT}`;
const SECURE = ORIGIN.startsWith('https:');            // Secure cookie only over https
const DEV = process.env.SHOP_DEV === '1';
const SITEKEY = process.env.SHOP_TURNSTILE_SITEKEY || '1x00000000000000000000AA'; // Turnstile test key
const DB_PATH = process.env.SHOP_DB || path.join(HERE, 'shop.db');
const ITEMS = { tea: 'Green tea', mug: 'Mug', pot: 'Teapot' };

function open() {
  const db = new Database(DB_PATH, { timeout: 5000 });   // busy_timeout 5 s
  db.pragma('journal_mode = WAL');
  db.loadExtension(path.join(ROOT, 'anonauth'));
  return db;
}
const db = open();
db.exec(`CREATE TABLE IF NOT EXISTS cart(user_id INTEGER NOT NULL, sku TEXT NOT NULL,
         qty INTEGER NOT NULL, PRIMARY KEY(user_id, sku))`);
const cfg = (k, v) => db.prepare('SELECT anonauth_config(?, ?)').get(k, v);
cfg('link.on_conflict', 'merge');
cfg('link.merge_sql', `INSERT INTO cart(user_id, sku, qty)
    SELECT :to_user, sku, qty FROM cart WHERE user_id = :from_user
    ON CONFLICT(user_id, sku) DO UPDATE SET qty = qty + excluded.qty;
  DELETE FROM cart WHERE user_id = :from_user`);
cfg('purge.user_sql', 'DELETE FROM cart WHERE user_id = :user_id');
// Sliding sessions: a week without a visit ends one (at most session.max_age, 30 days, in all).
cfg('session.idle_timeout', '604800');
// CAPTCHA: provider + secret name from the environment; the fake provider is just another url.
cfg('captcha.provider', 'turnstile');
cfg('captcha.secret', 'env:ANONAUTH_TURNSTILE_SECRET');
cfg('captcha.url', process.env.SHOP_CAPTCHA_URL || null);
// The check runs inside the cart's write transaction: keep it below the busy timeout (5 s) so
// another writer waiting for the lock gives up only if the provider is down, not when it is slow.
cfg('captcha.timeout_ms', '3000');
if (DEV) { cfg('password.opslimit', '1'); cfg('password.memlimit', '8192'); cfg('ratelimit.anon_per_hour', '10000'); }

// Every statement is prepared once and reused.
const q = {
  info: db.prepare('SELECT session_info(?)').pluck(),
  sessionUser: db.prepare('SELECT session_user(?)').pluck(),
  anonSignin: db.prepare("SELECT anon_signin(json_object('ip', ?, 'user_agent', ?, 'captcha', ?))").pluck(),
  addItem: db.prepare(`INSERT INTO cart(user_id, sku, qty) VALUES (?, ?, 1)
                       ON CONFLICT(user_id, sku) DO UPDATE SET qty = qty + 1`),
  cart: db.prepare('SELECT sku, qty FROM cart WHERE user_id = ? ORDER BY sku'),
  emptyCart: db.prepare('DELETE FROM cart WHERE user_id = ?'),
  link: db.prepare("SELECT link_account(?, 'email', ?, ?)").pluck(),
  signin: db.prepare(`SELECT account_signin('email', ?, ?,
                        json_object('anon_token', ?, 'ip', ?, 'user_agent', ?))`).pluck(),
  issueCode: db.prepare("SELECT verification_issue('email', ?, 'signin', json_object('ip', ?))").pluck(),
  signinCode: db.prepare(`SELECT account_signin('email', ?, NULL,
                            json_object('code', ?, 'anon_token', ?, 'ip', ?, 'user_agent', ?))`).pluck(),
  signout: db.prepare('SELECT anon_signout(?)'),
  revokeOthers: db.prepare('SELECT session_revoke_others(?)'),
  setSecret: db.prepare("SELECT account_set_secret(?, 'email', ?, ?, ?)").pluck(),
  deleteUser: db.prepare('SELECT user_delete(?)'),
  sessions: db.prepare("SELECT id, ip, created_at FROM anon_sessions WHERE user_id = ? AND status = 'active' ORDER BY id"),
  email: db.prepare("SELECT account_id FROM anon_accounts WHERE user_id = ? AND provider = 'email'").pluck(),
};

// The first write: sign the visitor in (CAPTCHA checked by anon_signin) and put the item in the
// cart, in one BEGIN IMMEDIATE transaction. A refused CAPTCHA or a failed insert rolls back
// everything, so no anonymous user without a cart is left behind. Returns the new token, if any;
// the caller sets the cookie only after the commit.
const addToCart = db.transaction((token, client, captcha, sku) => {
  let uid = token ? q.sessionUser.get(token) : null;
  let fresh = null;
  if (uid == null) {
    fresh = q.anonSignin.get(client.ip, client.ua, captcha);
    uid = q.sessionUser.get(fresh);
  }
  q.addItem.run(uid, sku);
  return fresh;
});

const MESSAGES = {
  captcha_required: 'Please complete the check that you are not a robot.',
  captcha_rejected: 'The robot check failed. Please try again.',
  captcha_unavailable: 'The robot check is unavailable right now. Please try again shortly.',
  rate_limited: 'Too many attempts. Please wait a while and try again.',
  invalid_credentials: 'That email and password do not match.',
  account_exists: 'An account with that email already exists. Please sign in instead.',
  weak_secret: 'Please choose a longer password.',
  invalid_session: 'Your session has ended. Please sign in again.',
  invalid_argument: 'Please check what you entered.',
  no_mail: 'Sign-in by email code is not available here. Please use your password.',
};
// The code sign-in says the same about a wrong, used, expired or worn-out code: anonauth answers
// invalid_credentials for all of them (and for an unknown address), so nobody learns which.
const CODE_MESSAGES = {
  invalid_credentials: 'That code is not right, or it has expired or been tried too often. Check it, or ask for a new code.',
  rate_limited: 'Too many codes or tries for this address. Please wait an hour, or sign in with your password.',
  invalid_argument: 'Please enter a valid email address and the code we sent.',
};
const codeOf = e => (/anonauth: ([a-z_]+):/.exec(String(e && e.message)) || [])[1];
function friendly(e, messages = MESSAGES) {
  const c = codeOf(e);
  if (messages[c] || MESSAGES[c]) return messages[c] || MESSAGES[c];
  console.error('error:', c || 'internal');             // never the message: it could carry input
  return 'Something went wrong. Please try again.';
}
const fail = code => new Error(`anonauth: ${code}: shop`);

// Delivering a sign-in code. In development it goes to the server log and to /dev/mail; in
// production, put your mail service here. Without one the code sign-in is not offered.
const devMail = [];
const sendCode = DEV ? (email, code) => {
  console.log(`dev mail: sign-in code for ${email}: ${code}`);
  devMail.unshift({ email, code, at: new Date().toISOString() }); devMail.length = Math.min(devMail.length, 20);
} : null;

const esc = s => String(s).replace(/[&<>"']/g, c => `&#${c.charCodeAt(0)};`);
function cookiesOf(req) {
  const jar = {};
  for (const part of (req.headers.cookie || '').split(';')) {
    const m = /^\s*(sid|sid_exp)=([A-Za-z0-9_-]*)\s*$/.exec(part);
    if (m) jar[m[1]] = m[2];
  }
  return jar;
}
const ATTRS = `Path=/; HttpOnly; SameSite=Lax${SECURE ? '; Secure' : ''}`;
// sid holds the token; sid_exp (not secret) the expiry the browser was last given, so that the
// app can tell when the session's expires_at has moved on and the cookie needs a new Max-Age.
function setSession(res, token, info) {
  const maxAge = Math.max(0, info.expires_at - Math.floor(Date.now() / 1000));
  res.setHeader('Set-Cookie', [`sid=${token}; ${ATTRS}; Max-Age=${maxAge}`,
                               `sid_exp=${info.expires_at}; ${ATTRS}; Max-Age=${maxAge}`]);
}
function clearSession(res) {
  res.setHeader('Set-Cookie', [`sid=; ${ATTRS}; Max-Age=0`, `sid_exp=; ${ATTRS}; Max-Age=0`]);
}
const infoOf = token => { const i = token ? q.info.get(token) : null; return i == null ? null : JSON.parse(i); };
function issue(res, token) {           // after a sign-in: the new token with its Max-Age
  const info = infoOf(token); if (info) setSession(res, token, info);
}
function page(res, title, body, user, msg) {
  res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
  res.end(`<!doctype html><meta charset=utf-8><title>${esc(title)} — Tea shop</title>
<nav><a href="/">Shop</a> · <a href="/cart">Cart</a> · ${user && !user.anon ? '<a href="/account">Account</a> · <form method=post action=/signout style=display:inline><button>Sign out</button></form>' : '<a href="/signin">Sign in</a>'}${DEV ? ' · <a href="/dev/mail">Dev mail</a>' : ''}</nav>
${msg ? `<p class=msg role=alert>${esc(msg)}</p>` : ''}<h1>${esc(title)}</h1>${body}`);
}
const redirect = (res, to) => { res.writeHead(303, { Location: to }); res.end(); };
const clientOf = req => ({ ip: req.socket.remoteAddress,
  ua: (req.headers['user-agent'] || '').slice(0, 128) || null });   // ≤ 512 bytes of UTF-8

const captchaField = `<input type=hidden name=captcha><div class=cf-turnstile data-sitekey="${esc(SITEKEY)}"></div>`;
// Stands in for the Turnstile widget (each form gets its test sitekey's dummy token).
const widgetScript = `<script>for (const i of document.querySelectorAll('input[name=captcha]')) i.value = 'XXXX.DUMMY.TOKEN.XXXX';</script>`;
const codeRequestForm = (email = '') => sendCode ? `<h2>Or sign in with a code</h2>
<form method=post action=/signin/code/send><label>Email <input name=email type=email required value="${esc(email)}"></label>
<button>Email me a code</button></form>` : '';
const codeEntryForm = email => `<p>We sent a sign-in code to <b>${esc(email)}</b>. It is valid for 15 minutes.</p>
<form method=post action=/signin/code><input type=hidden name=email value="${esc(email)}">
<label>Code <input name=code inputmode=numeric autocomplete=one-time-code required></label>
<button>Sign in with the code</button></form>
<form method=post action=/signin/code/send><input type=hidden name=email value="${esc(email)}"><button>Send a new code</button></form>`;

async function body(req) {
  let s = ''; for await (const c of req) { s += c; if (s.length > 1e5) throw new Error('too large'); }
  return new URLSearchParams(s);
}

async function handle(req, res) {
  const url = new URL(req.url, ORIGIN);
  const jar = cookiesOf(req);
  let token = jar.sid || null;
  const info = infoOf(token);          // session_info: user, anonymity, expiry (and the touch)
  let user = info && { id: info.user_id, anon: info.is_anonymous, session: info.session_id };
  if (token && !info) { clearSession(res); token = null; }
  // Sliding expiry: when the session's expires_at has moved more than a minute past what the
  // browser was last told (anonauth moves it at most once per session.touch_interval), re-issue.
  if (info && !(Number(jar.sid_exp) >= info.expires_at - 60)) setSession(res, token, info);
  if (req.method === 'POST') {
    if (req.headers.origin !== ORIGIN) { res.writeHead(403); res.end('cross-site request refused'); return; }
    const f = await body(req);
    const anonToken = user && user.anon ? token : null;
    try {
      if (url.pathname === '/add') {
        const sku = f.get('sku'); if (!ITEMS[sku]) throw fail('invalid_argument');
        const fresh = addToCart.immediate(token, clientOf(req), f.get('captcha'), sku);
        if (fresh) issue(res, fresh);   // committed: now the browser may have it
        return redirect(res, '/cart');
      }
      if (url.pathname === '/signup') {
        if (!user) throw fail('invalid_session');
        token = q.link.get(token, f.get('email'), f.get('password') || '');
        issue(res, token); return redirect(res, '/cart');
      }
      if (url.pathname === '/signin') {
        // Never call account_signin without a secret for what a user typed: an account created
        // by a code has none, and a NULL secret would open it.
        if (!f.get('password')) throw fail('invalid_credentials');
        const c = clientOf(req);
        token = q.signin.get(f.get('email'), f.get('password'), anonToken, c.ip, c.ua);
        issue(res, token); return redirect(res, '/cart');
      }
      if (url.pathname === '/signin/code/send') {
        if (!sendCode) throw fail('no_mail');
        const email = f.get('email');
        try { sendCode(email, q.issueCode.get(email, clientOf(req).ip)); }
        catch (e) { return page(res, 'Sign in with a code', codeRequestForm(email), user, friendly(e, CODE_MESSAGES)); }
        return page(res, 'Enter your code', codeEntryForm(email), user);
      }
      if (url.pathname === '/signin/code') {
        if (!sendCode) throw fail('no_mail');
        const email = f.get('email'), c = clientOf(req);
        try { token = q.signinCode.get(email, f.get('code'), anonToken, c.ip, c.ua); }
        catch (e) { return page(res, 'Enter your code', codeEntryForm(email), user, friendly(e, CODE_MESSAGES)); }
        issue(res, token); return redirect(res, '/cart');
      }
      if (url.pathname === '/signout') {
        if (token) q.signout.get(token);
        clearSession(res); return redirect(res, '/');
      }
      if (url.pathname === '/checkout') {
        if (!user || user.anon) return redirect(res, '/signup');
        q.emptyCart.run(user.id);
        return page(res, 'Thank you', '<p>Your order is placed.</p>', user);
      }
      if (url.pathname === '/account/revoke-others') { q.revokeOthers.get(token); return redirect(res, '/account'); }
      if (url.pathname === '/account/password') {
        token = q.setSecret.get(token, f.get('email'), f.get('current'), f.get('password') || '');
        issue(res, token); return redirect(res, '/account');
      }
      if (url.pathname === '/operator/purge' && isOperator(req)) {
        const n = db.prepare('SELECT anon_purge() AS n').get().n;
        return page(res, 'Operator', `<p>Purged: ${esc(n)}</p><p><a href="/operator">Back</a></p>`, user);
      }
      if (url.pathname === '/account/delete') {
        if (!user || user.anon) throw fail('invalid_session');
        q.deleteUser.get(user.id); clearSession(res); return redirect(res, '/');
      }
    } catch (e) {
      return page(res, 'Sorry', `<p><a href="/">Back to the shop</a></p>`, user, friendly(e));
    }
    res.writeHead(404); res.end(); return;
  }
  if (url.pathname === '/') {
    const list = Object.entries(ITEMS).map(([k, v]) => `<li>${esc(v)} <form method=post action=/add style=display:inline>
      <input type=hidden name=sku value=${k}>${user ? '' : captchaField}<button>Add to cart</button></form></li>`).join('');
    return page(res, 'Shop', `<ul>${list}</ul>${user ? '' : widgetScript}`, user);
  }
  if (url.pathname === '/cart') {
    const rows = user ? q.cart.all(user.id) : [];
    const items = rows.map(r => `<li class=item data-sku=${esc(r.sku)}>${esc(ITEMS[r.sku] || r.sku)} × <span class=qty>${r.qty}</span></li>`).join('');
    return page(res, 'Cart', `<ul>${items || '<li>Your cart is empty.</li>'}</ul>
      <form method=post action=/checkout><button>Checkout</button></form>`, user);
  }
  if (url.pathname === '/signup') return page(res, 'Checkout: your account', user ? `<h2>New customer</h2><form method=post action=/signup>
      <label>Email <input name=email type=email required></label> <label>Password <input name=password type=password required></label>
      <button>Create account</button></form><p>Already a customer? <a href="/signin">Sign in</a></p>${codeRequestForm()}` : '<p>Add something to your cart first.</p>', user);
  if (url.pathname === '/signin') return page(res, 'Sign in', `<form method=post action=/signin>
      <label>Email <input name=email type=email required></label> <label>Password <input name=password type=password required></label>
      <button>Sign in</button></form>${codeRequestForm()}`, user);
  if (url.pathname === '/account' && user && !user.anon) {
    const sessions = q.sessions.all(user.id);
    return page(res, 'Your account', `<p>Signed in as <b class=email>${esc(q.email.get(user.id) ?? '')}</b></p>
      <h2>Signed-in devices</h2><ul>${sessions.map(s => `<li class=session>session ${s.id} from ${esc(s.ip)}${s.id === user.session ? ' <b class=mine>(this device)</b>' : ''}</li>`).join('')}</ul>
      <form method=post action=/account/revoke-others><button>Sign out other devices</button></form>
      <h2>Password</h2><form method=post action=/account/password><label>Email <input name=email></label> <label>Current <input name=current type=password></label>
      <label>New <input name=password type=password></label><button>Change password</button></form>
      <h2>Delete</h2><form method=post action=/account/delete><button>Delete account</button></form>`, user);
  }
  if (url.pathname === '/dev/mail' && sendCode) {
    return page(res, 'Dev mail', `<p>Development only: the mail the shop would have sent.</p>
      <ul>${devMail.map(m => `<li class=mail>${esc(m.at)} to <span class=to>${esc(m.email)}</span>: your sign-in code is <code>${esc(m.code)}</code></li>`).join('') || '<li>No mail yet.</li>'}</ul>`, user);
  }
  if (url.pathname === '/operator' && isOperator(req)) {
    const users = db.prepare('SELECT id, created_at FROM anon_users WHERE is_anonymous = 1 ORDER BY id').all();
    const sess = db.prepare("SELECT id, user_id, status, ip FROM anon_sessions ORDER BY id").all();
    return page(res, 'Operator', `<h2>Anonymous users (${users.length})</h2><ul>${users.map(u => `<li>user ${u.id}</li>`).join('')}</ul>
      <h2>Sessions (${sess.length})</h2><ul>${sess.map(x => `<li>session ${x.id} user ${x.user_id} ${esc(x.status)} ${esc(x.ip)}</li>`).join('')}</ul>
      <form method=post action=/operator/purge><button>Purge idle anonymous users</button></form>`, user);
  }
  res.writeHead(404); res.end('not found');
}
// The operator page: from 127.0.0.1, or with SHOP_ADMIN_SECRET in the X-Admin-Secret header.
function isOperator(req) {
  const secret = process.env.SHOP_ADMIN_SECRET;
  if (secret && req.headers['x-admin-secret'] === secret) return true;
  return ['127.0.0.1', '::ffff:127.0.0.1'].includes(req.socket.remoteAddress);
}

const server = http.createServer((req, res) => handle(req, res).catch(() => {
  console.error('error: internal'); if (!res.headersSent) res.writeHead(500); res.end();
})).listen(PORT, '127.0.0.1', () => console.log(`shop: ${ORIGIN}/`));

// Stopping: SIGTERM/SIGINT close the listener and the database (WAL checkpointed), then exit.
// With SHOP_EXIT_WITH_PARENT=1 (run.sh sets it) the server also exits when the process that
// started it is gone, so a killed run.sh or make cannot leave it behind.
function stop() { server.close(); server.closeAllConnections(); db.close(); process.exit(0); }
process.on('SIGTERM', stop); process.on('SIGINT', stop); process.on('SIGHUP', stop);
if (process.env.SHOP_EXIT_WITH_PARENT === '1') {
  const parent = process.ppid;
  setInterval(() => { if (process.ppid !== parent) stop(); }, 1000).unref();
}
