// anonauth shop example: anonymous cart, CAPTCHA-gated anonymous sign-in,
// sign-up links the visitor in place, sign-in merges the anonymous cart.
import http from 'node:http';
import path from 'node:path';
import Database from 'better-sqlite3';

const ROOT = path.resolve(import.meta.dirname, '../..');
const PORT = Number(process.env.SHOP_PORT || 8080);
const ORIGIN = process.env.SHOP_ORIGIN || `http://127.0.0.1:${PORT}`;
const SECURE = ORIGIN.startsWith('https:');            // Secure cookie only over https
const DEV = process.env.SHOP_DEV === '1';
const SITEKEY = process.env.SHOP_TURNSTILE_SITEKEY || '1x00000000000000000000AA'; // Turnstile test key
const DB_PATH = process.env.SHOP_DB || path.join(import.meta.dirname, 'shop.db');
const ITEMS = { tea: 'Green tea', mug: 'Mug', pot: 'Teapot' };

function open() {
  const db = new Database(DB_PATH);
  db.pragma('journal_mode = WAL');
  db.pragma('busy_timeout = 5000');
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
// CAPTCHA: provider + secret name from the environment; the fake provider is just another url.
cfg('captcha.provider', 'turnstile');
cfg('captcha.secret', 'env:ANONAUTH_TURNSTILE_SECRET');
cfg('captcha.url', process.env.SHOP_CAPTCHA_URL || null);
if (DEV) { cfg('password.opslimit', '1'); cfg('password.memlimit', '8192'); cfg('ratelimit.anon_per_hour', '10000'); }

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
};
function friendly(e) {
  const m = /anonauth: ([a-z_]+):/.exec(String(e && e.message));
  if (m && MESSAGES[m[1]]) return MESSAGES[m[1]];
  console.error('error:', m ? m[1] : 'internal');        // never the message: it could carry input
  return 'Something went wrong. Please try again.';
}

const esc = s => String(s).replace(/[&<>"']/g, c => `&#${c.charCodeAt(0)};`);
function cookieOf(req) {
  const m = /(?:^|;\s*)sid=([A-Za-z0-9_-]+)/.exec(req.headers.cookie || '');
  return m ? m[1] : null;
}
function setCookie(res, token) {
  if (!token) { res.setHeader('Set-Cookie', `sid=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0${SECURE ? '; Secure' : ''}`); return; }
  const info = JSON.parse(db.prepare('SELECT session_info(?) AS i').get(token).i);
  const maxAge = Math.max(0, Number(info.expires_at) - Math.floor(Date.now() / 1000));
  res.setHeader('Set-Cookie', `sid=${token}; Path=/; HttpOnly; SameSite=Lax; Max-Age=${maxAge}${SECURE ? '; Secure' : ''}`);
}
function userOf(token) {
  if (!token) return null;
  const r = db.prepare('SELECT session_user(?) AS u, user_is_anonymous(session_user(?)) AS a').get(token, token);
  return r.u == null ? null : { id: r.u, anon: !!r.a };
}
function page(res, title, body, user, msg) {
  res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
  res.end(`<!doctype html><meta charset=utf-8><title>${esc(title)} — Tea shop</title>
<nav><a href="/">Shop</a> · <a href="/cart">Cart</a> · ${user && !user.anon ? '<a href="/account">Account</a> · <form method=post action=/signout style=display:inline><button>Sign out</button></form>' : '<a href="/signin">Sign in</a>'}</nav>
${msg ? `<p class=msg role=alert>${esc(msg)}</p>` : ''}<h1>${esc(title)}</h1>${body}`);
}
const redirect = (res, to) => { res.writeHead(303, { Location: to }); res.end(); };
const ip = req => req.socket.remoteAddress;

function cartRows(uid) {
  return uid == null ? [] : db.prepare('SELECT sku, qty FROM cart WHERE user_id = ? ORDER BY sku').all(uid);
}
const captchaField = `<input type=hidden name=captcha id=captcha>
<div class=cf-turnstile data-sitekey="${esc(SITEKEY)}"></div>
<script>/* stands in for the Turnstile widget: its test sitekey's dummy token */
document.getElementById('captcha').value = 'XXXX.DUMMY.TOKEN.XXXX';</script>`;

async function body(req) {
  let s = ''; for await (const c of req) { s += c; if (s.length > 1e5) throw new Error('too large'); }
  return new URLSearchParams(s);
}

async function handle(req, res) {
  const url = new URL(req.url, ORIGIN);
  let token = cookieOf(req);
  let user = userOf(token);
  if (token && !user) { setCookie(res, null); token = null; }
  if (req.method === 'POST') {
    if (req.headers.origin !== ORIGIN) { res.writeHead(403); res.end('cross-site request refused'); return; }
    const f = await body(req);
    try {
      if (url.pathname === '/add') {
        const sku = f.get('sku'); if (!ITEMS[sku]) throw new Error('anonauth: invalid_argument: item');
        if (!user) {      // CAPTCHA goes over the network: sign in outside the write lock
          token = db.prepare("SELECT anon_signin(json_object('ip', ?, 'captcha', ?)) AS t").get(ip(req), f.get('captcha')).t;
          user = userOf(token); setCookie(res, token);
        }
        db.transaction(() => db.prepare(`INSERT INTO cart(user_id, sku, qty) VALUES (?, ?, 1)
          ON CONFLICT(user_id, sku) DO UPDATE SET qty = qty + 1`).run(user.id, sku)).immediate();
        return redirect(res, '/cart');
      }
      if (url.pathname === '/signup') {
        if (!user) throw new Error('anonauth: invalid_session: none');
        token = db.prepare("SELECT link_account(?, 'email', ?, ?) AS t").get(token, f.get('email'), f.get('password')).t;
        setCookie(res, token); return redirect(res, '/cart');
      }
      if (url.pathname === '/signin') {
        token = db.prepare("SELECT account_signin('email', ?, ?, json_object('anon_token', ?)) AS t")
          .get(f.get('email'), f.get('password'), user && user.anon ? token : null).t;
        setCookie(res, token); return redirect(res, '/cart');
      }
      if (url.pathname === '/signout') {
        if (token) db.prepare('SELECT anon_signout(?)').get(token);
        setCookie(res, null); return redirect(res, '/');
      }
      if (url.pathname === '/checkout') {
        if (!user || user.anon) return redirect(res, '/signup');
        db.prepare('DELETE FROM cart WHERE user_id = ?').run(user.id);
        return page(res, 'Thank you', '<p>Your order is placed.</p>', user);
      }
      if (url.pathname === '/account/revoke-others') { db.prepare('SELECT session_revoke_others(?)').get(token); return redirect(res, '/account'); }
      if (url.pathname === '/account/password') {
        token = db.prepare("SELECT account_set_secret(?, 'email', ?, ?, ?) AS t")
          .get(token, f.get('email'), f.get('current'), f.get('password')).t;
        setCookie(res, token); return redirect(res, '/account');
      }
      if (url.pathname === '/operator/purge' && isOperator(req)) {
        const n = db.prepare('SELECT anon_purge() AS n').get().n;
        return page(res, 'Operator', `<p>Purged: ${esc(n)}</p><p><a href="/operator">Back</a></p>`, user);
      }
      if (url.pathname === '/account/delete') {
        db.prepare('SELECT user_delete(?)').get(user.id); setCookie(res, null); return redirect(res, '/');
      }
    } catch (e) {
      return page(res, 'Sorry', `<p><a href="/">Back to the shop</a></p>`, user, friendly(e));
    }
    res.writeHead(404); res.end(); return;
  }
  if (url.pathname === '/') {
    const list = Object.entries(ITEMS).map(([k, v]) => `<li>${esc(v)} <form method=post action=/add style=display:inline>
      <input type=hidden name=sku value=${k}>${user ? '' : captchaField}<button>Add to cart</button></form></li>`).join('');
    return page(res, 'Shop', `<ul>${list}</ul>`, user);
  }
  if (url.pathname === '/cart') {
    const rows = cartRows(user && user.id);
    const items = rows.map(r => `<li class=item data-sku=${r.sku}>${esc(ITEMS[r.sku] || r.sku)} × <span class=qty>${r.qty}</span></li>`).join('');
    return page(res, 'Cart', `<ul>${items || '<li>Your cart is empty.</li>'}</ul>
      <form method=post action=/checkout><button>Checkout</button></form>`, user);
  }
  if (url.pathname === '/signup') return page(res, 'Create an account', user ? `<form method=post action=/signup>
      <label>Email <input name=email type=email required></label> <label>Password <input name=password type=password required></label>
      <button>Create account</button></form><p>Already a customer? <a href="/signin">Sign in</a></p>` : '<p>Add something to your cart first.</p>', user);
  if (url.pathname === '/signin') return page(res, 'Sign in', `<form method=post action=/signin>
      <label>Email <input name=email type=email required></label> <label>Password <input name=password type=password required></label>
      <button>Sign in</button></form>`, user);
  if (url.pathname === '/account' && user && !user.anon) {
    const sessions = db.prepare("SELECT id, ip, created_at FROM anon_sessions WHERE user_id = ? AND status = 'active' ORDER BY id").all(user.id);
    const mine = JSON.parse(db.prepare('SELECT session_info(?) AS i').get(token).i).session_id;
    return page(res, 'Your account', `<ul>${sessions.map(s => `<li>session ${s.id} from ${esc(s.ip)}${s.id === mine ? ' (this device)' : ''}</li>`).join('')}</ul>
      <form method=post action=/account/revoke-others><button>Sign out other devices</button></form>
      <form method=post action=/account/password><label>Email <input name=email></label> <label>Current <input name=current type=password></label>
      <label>New <input name=password type=password></label><button>Change password</button></form>
      <form method=post action=/account/delete><button>Delete account</button></form>`, user);
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

http.createServer((req, res) => handle(req, res).catch(e => { console.error('error: internal'); res.writeHead(500); res.end(); }))
  .listen(PORT, '127.0.0.1', () => console.log(`shop: ${ORIGIN}/`));
