// Access tokens against an independent verifier: Node's `jose` verifies
// session_jwt()'s tokens with the key set anonauth_jwks() publishes, as a
// service behind the app would (issuer, audience, typ at+jwt, the
// algorithm pinned), for both algorithms; and a token for another audience,
// or one past its exp, fails there too. Prints ok/FAIL lines and
// "N passed, N failed".
//
//   node jwt_jose.mjs DB_PATH EXTENSION_PATH
import Database from 'better-sqlite3';
import { createLocalJWKSet, jwtVerify, decodeProtectedHeader } from 'jose';

const [dbPath, extension] = process.argv.slice(2);
const db = new Database(dbPath);
db.loadExtension(extension);

let passed = 0, failed = 0;
function check(ok, what, detail) {
  if (ok) { passed++; console.log(`ok - node: ${what}`); }
  else { failed++; console.log(`FAIL - node: ${what}${detail ? `\n    ${detail}` : ''}`); }
}
const one = (sql, ...args) => db.prepare(sql).pluck().get(...args);

const NOW = 1800000000;
one('SELECT anonauth_set_clock(?)', BigInt(NOW));
one("SELECT anonauth_config('jwt.issuer', 'https://auth.example.test')");
one("SELECT anonauth_config('jwt.audience', 'api.example.test')");
const token = one('SELECT anon_signin()');
const userId = one('SELECT session_user(?)', token);

async function verifies(jwt, jwks, alg, options = {}) {
  try {
    const r = await jwtVerify(jwt, createLocalJWKSet(jwks), {
      issuer: 'https://auth.example.test', audience: 'api.example.test', typ: 'at+jwt',
      algorithms: [alg], currentDate: new Date(NOW * 1000), ...options,
    });
    return { payload: r.payload, header: r.protectedHeader };
  } catch (e) {
    return { error: e.code || e.message };
  }
}

for (const alg of ['ES256', 'EdDSA']) {
  one("SELECT anonauth_config('jwt.alg', ?)", alg);
  const jwt = one('SELECT session_jwt(?, ?)', token, JSON.stringify({ claims: { plan: 'free' } }));
  const jwks = JSON.parse(one('SELECT anonauth_jwks()'));
  const r = await verifies(jwt, jwks, alg);
  check(r.error === undefined && r.payload.sub === String(userId) && r.payload.plan === 'free' &&
        r.payload.is_anonymous === true && r.header.kid === decodeProtectedHeader(jwt).kid,
        `${alg}: jose verifies the token through the JWKS (iss, aud, typ, alg)`, r.error);
  const wrongAud = await verifies(jwt, jwks, alg, { audience: 'other.api' });
  check(wrongAud.error === 'ERR_JWT_CLAIM_VALIDATION_FAILED',
        `${alg}: jose refuses it for another audience`, wrongAud.error);
  const late = await verifies(jwt, jwks, alg, { currentDate: new Date((NOW + 3601) * 1000) });
  check(late.error === 'ERR_JWT_EXPIRED', `${alg}: jose refuses it after exp (jwt.ttl 3600)`,
        late.error);
  const other = alg === 'ES256' ? 'EdDSA' : 'ES256';
  const pinned = await verifies(jwt, jwks, other);
  check(pinned.error !== undefined, `${alg}: jose refuses it when pinned to ${other}`);
}

// The refresh token is the session token: after a rotation the old one is
// spent, and an access token from the new one verifies as before.
const next = one('SELECT session_refresh(?)', token);
check(typeof next === 'string' && next !== token && one('SELECT session_valid(?)', token) === 0,
      'session_refresh hands out a new token and the old one stops working');
const jwks = JSON.parse(one('SELECT anonauth_jwks()'));
const r = await verifies(one('SELECT session_jwt(?)', next), jwks, 'EdDSA');
check(r.error === undefined && r.payload.sub === String(userId),
      'a token from the refreshed session verifies for the same user', r.error);

console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
