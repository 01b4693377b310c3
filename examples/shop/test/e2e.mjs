// The shop in headless Chromium: anonymous cart (page script fills the CAPTCHA field) → sign up
// → sign out → anonymous again → sign in → merged cart; screenshots into build/shop/.
import { chromium } from 'playwright-core';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
const [fpPort, port, dbPath, outDir] = process.argv.slice(2);
const B = `http://127.0.0.1:${port}`;
let pass = 0, fail = 0, log = '';
const check = (name, ok) => { ok ? pass++ : fail++; console.log(`${ok ? 'ok' : 'FAIL'} - shop e2e: ${name}`); };
fs.mkdirSync(outDir, { recursive: true });
const srv = spawn('node', ['server.mjs'], { cwd: new URL('..', import.meta.url).pathname, env: { ...process.env,
  SHOP_DEV: '1', SHOP_PORT: port, SHOP_DB: dbPath, SHOP_CAPTCHA_URL: `http://127.0.0.1:${fpPort}/turnstile/v0/siteverify`,
  ANONAUTH_ALLOW_LOOPBACK_CAPTCHA: '1', ANONAUTH_TURNSTILE_SECRET: '1x0000000000000000000000000000000AA' } });
srv.stdout.on('data', d => log += d); srv.stderr.on('data', d => log += d);
for (let i = 0; i < 100 && !log.includes('shop:'); i++) await new Promise(r => setTimeout(r, 50));
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox', '--disable-gpu',
  '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'] });
let html = '';
try {
  const ctx = await browser.newContext({ viewport: { width: 800, height: 600 } });
  const p = await ctx.newPage();
  await p.goto(B + '/'); await p.screenshot({ path: `${outDir}/shop-home.png` });
  await p.locator('li', { hasText: 'Green tea' }).getByRole('button').click();
  await p.goto(B + '/'); await p.locator('li', { hasText: 'Green tea' }).getByRole('button').click();
  check('anonymous cart shows 2 tea', (await p.locator('[data-sku=tea] .qty').textContent()) === '2');
  html += await p.content(); await p.screenshot({ path: `${outDir}/shop-cart.png` });
  await p.goto(B + '/signup'); await p.fill('input[name=email]', 'b@example.com'); await p.fill('input[name=password]', 'correct-horse-battery');
  await p.screenshot({ path: `${outDir}/shop-signup.png` }); await p.click('text=Create account');
  check('after sign-up the cart is kept', (await p.locator('[data-sku=tea] .qty').textContent()) === '2');
  const ck = (await ctx.cookies()).find(c => c.name === 'sid');
  check('cookie is HttpOnly, SameSite=Lax', ck && ck.httpOnly && ck.sameSite === 'Lax');
  await p.click('text=Sign out');
  await p.locator('li', { hasText: 'Green tea' }).getByRole('button').click();
  await p.goto(B + '/signin'); await p.fill('input[name=email]', 'b@example.com'); await p.fill('input[name=password]', 'correct-horse-battery');
  await p.click('form[action="/signin"] button');
  check('signed in again, the carts merged (3 tea)', (await p.locator('[data-sku=tea] .qty').textContent()) === '3');
  html += await p.content();
  await p.goto(B + '/account'); html += await p.content(); await p.screenshot({ path: `${outDir}/shop-account.png` });
  check('account page marks this device', (await p.content()).includes('(this device)'));
} catch (e) { check(`story ran (${e.message.split('\n')[0]})`, false); }
await browser.close(); srv.kill();
const tok = /anonauth_sess_[A-Za-z0-9_-]{20,}/;
check('no token in pages or server log', !tok.test(html) && !tok.test(log));
console.log(`${pass} passed, ${fail} failed`); process.exit(fail ? 1 : 0);
