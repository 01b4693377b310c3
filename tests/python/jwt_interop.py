"""Access tokens against an independent verifier: PyJWT (python3-jwt with
python3-cryptography) verifies session_jwt()'s tokens through the JWKS from
anonauth_jwks(), for both algorithms; and jwt_verify() refuses what a forger
could send (tampering, alg none, HS256 keyed with the public key, unknown or
dropped kid, expired, wrong iss/aud, malformed base64 and JSON), the
well-signed ones included: the test signs with the stored private key.

Run: /usr/bin/python3 jwt_interop.py DB EXTENSION_PATH_WITHOUT_SO
"""
import base64
import hashlib
import hmac
import json
import sqlite3
import sys

import jwt as pyjwt
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

db_path, ext = sys.argv[1], sys.argv[2]
passed = failed = 0


def check(name, cond):
    global passed, failed
    if cond:
        passed += 1
        print("ok - python: " + name)
    else:
        failed += 1
        print("FAIL - python: " + name)


def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def unb64(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


db = sqlite3.connect(db_path, isolation_level=None)
db.enable_load_extension(True)
db.load_extension(ext)


def one(sql, *args):
    return db.execute(sql, args).fetchone()[0]


NOW = 1_800_000_000
one("SELECT anonauth_set_clock(?)", NOW)
one("SELECT anonauth_config('jwt.issuer', 'https://auth.example.test')")
one("SELECT anonauth_config('jwt.audience', 'api.example.test')")
token = one("SELECT anon_signin()")
user_id = one("SELECT session_user(?)", token)


def verify(t, opts=None):
    if opts is None:
        return one("SELECT jwt_verify(?)", t)
    return one("SELECT jwt_verify(?, ?)", t, opts)


def signer(kid):
    """The stored private key (no jwt.key_secret here), as cryptography's."""
    alg, priv = db.execute(
        "SELECT alg, private_key FROM anonauth_jwt_keys WHERE kid = ?", (kid,)).fetchone()
    if alg == "EdDSA":
        key = Ed25519PrivateKey.from_private_bytes(priv[:32])
        return alg, lambda msg: key.sign(msg)
    key = serialization.load_der_private_key(priv, password=None)

    def sign(msg):
        r, s = decode_dss_signature(key.sign(msg, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return alg, sign


def forge(kid, header, claims, raw_payload=None, raw_header=None):
    """A token signed with the real key over whatever header and claims."""
    alg, sign = signer(kid)
    h = raw_header if raw_header is not None else json.dumps(header, separators=(",", ":")).encode()
    p = raw_payload if raw_payload is not None else json.dumps(claims, separators=(",", ":")).encode()
    msg = (b64(h) + "." + b64(p)).encode()
    return msg.decode() + "." + b64(sign(msg))


for alg in ("ES256", "EdDSA"):
    one("SELECT anonauth_config('jwt.alg', ?)", alg)
    t = one("SELECT session_jwt(?, ?)", token, json.dumps({"claims": {"role": "member"}}))
    header = json.loads(unb64(t.split(".")[0]))
    kid = header["kid"]
    check(alg + ": header alg, kid, typ at+jwt",
          header["alg"] == alg and header["typ"] == "at+jwt" and len(kid) >= 16)
    jwks = json.loads(one("SELECT anonauth_jwks()"))
    check(alg + ": the JWKS publishes the key with use sig and no private part",
          any(k["kid"] == kid and k["alg"] == alg and k["use"] == "sig" and "d" not in k
              for k in jwks["keys"]))
    jwk = pyjwt.PyJWKSet.from_dict(jwks)
    key = next(k for k in jwk.keys if k.key_id == kid)
    # PyJWT checks exp against the real clock: verify with anonauth's time.
    claims = pyjwt.decode(t, key.key, algorithms=[alg], audience="api.example.test",
                          issuer="https://auth.example.test",
                          options={"verify_exp": False, "verify_iat": False})
    check(alg + ": PyJWT verifies the signature, iss and aud through the JWKS",
          claims["sub"] == str(user_id) and claims["is_anonymous"] is True
          and claims["role"] == "member" and claims["exp"] == NOW + 3600
          and claims["iat"] == NOW and isinstance(claims["jti"], str)
          and claims["sid"] == str(one("SELECT json_extract(session_info(?), '$.session_id')", token)))
    check(alg + ": jwt_verify returns the same claims",
          json.loads(verify(t)) == claims)

    base = {k: v for k, v in claims.items()}
    hdr = dict(header)
    check(alg + ": a token the test signs with the stored key verifies (the forge is sound)",
          verify(forge(kid, hdr, base)) is not None)

    h64, p64, s64 = t.split(".")
    changed = dict(base, sub="999999")
    check(alg + ": a changed payload is refused",
          verify(h64 + "." + b64(json.dumps(changed).encode()) + "." + s64) is None)
    check(alg + ": a changed header is refused",
          verify(b64(json.dumps(dict(hdr, x=1)).encode()) + "." + p64 + "." + s64) is None)
    check(alg + ": a changed signature is refused",
          verify(h64 + "." + p64 + "." + ("A" if s64[0] != "A" else "B") + s64[1:]) is None)
    none_h = b64(json.dumps({"alg": "none", "kid": kid, "typ": "at+jwt"}).encode())
    check(alg + ": alg none is refused", verify(none_h + "." + p64 + ".") is None)
    check(alg + ": alg none with a signature part is refused", verify(none_h + "." + p64 + "." + s64) is None)
    jwk_json = next(json.dumps(k) for k in jwks["keys"] if k["kid"] == kid).encode()
    pem = key.key.public_bytes(serialization.Encoding.PEM,
                               serialization.PublicFormat.SubjectPublicKeyInfo)
    for label, secret in (("the PEM", pem), ("the JWK", jwk_json)):
        hs_h = b64(json.dumps({"alg": "HS256", "kid": kid, "typ": "at+jwt"}).encode())
        mac = hmac.new(secret, (hs_h + "." + p64).encode(), hashlib.sha256).digest()
        check(alg + ": HS256 keyed with the public key (" + label + ") is refused",
              verify(hs_h + "." + p64 + "." + b64(mac)) is None)
    other = "EdDSA" if alg == "ES256" else "ES256"
    check(alg + ": the header naming another algorithm than the key's is refused",
          verify(forge(kid, dict(hdr, alg=other), base)) is None)
    check(alg + ": an unknown kid is refused",
          verify(forge(kid, dict(hdr, kid="no-such-key-0000"), base)) is None)
    check(alg + ": a missing typ is refused",
          verify(forge(kid, {"alg": alg, "kid": kid}, base)) is None)
    check(alg + ": typ JWT is refused", verify(forge(kid, dict(hdr, typ="JWT"), base)) is None)
    check(alg + ": typ application/at+jwt is accepted",
          verify(forge(kid, dict(hdr, typ="application/at+jwt"), base)) is not None)
    check(alg + ": a crit header is refused",
          verify(forge(kid, dict(hdr, crit=["exp"]), base)) is None)
    check(alg + ": a wrong aud is refused", verify(forge(kid, hdr, dict(base, aud="other"))) is None)
    check(alg + ": aud as an array holding ours is accepted",
          verify(forge(kid, hdr, dict(base, aud=["other", "api.example.test"]))) is not None)
    check(alg + ": aud as an array without ours is refused",
          verify(forge(kid, hdr, dict(base, aud=["other"]))) is None)
    check(alg + ": a wrong iss is refused",
          verify(forge(kid, hdr, dict(base, iss="https://evil.test"))) is None)
    check(alg + ": a missing exp is refused",
          verify(forge(kid, hdr, {k: v for k, v in base.items() if k != "exp"})) is None)
    check(alg + ": a fractional exp is refused",
          verify(forge(kid, hdr, dict(base, exp=NOW + 100.5))) is None)
    check(alg + ": exp in the past beyond the leeway is refused",
          verify(forge(kid, hdr, dict(base, exp=NOW - 31))) is None)
    check(alg + ": exp in the past within the leeway is accepted",
          verify(forge(kid, hdr, dict(base, exp=NOW - 29))) is not None)
    check(alg + ": nbf in the future beyond the leeway is refused",
          verify(forge(kid, hdr, dict(base, nbf=NOW + 31))) is None)
    check(alg + ": a signed payload that is not JSON is refused",
          verify(forge(kid, hdr, None, raw_payload=b'{"sub":"1",')) is None)
    check(alg + ": a signed payload with a duplicate key is refused",
          verify(forge(kid, hdr, None, raw_payload=json.dumps(base)[:-1].encode()
                       + b',"sub":"2"}')) is None)
    check(alg + ": a signed header that is not JSON is refused",
          verify(forge(kid, None, base, raw_header=b'{"alg":"' + alg.encode() + b'"')) is None)
    check(alg + ": base64 with padding is refused", verify(h64 + "=." + p64 + "." + s64) is None
          or len(h64) % 4 == 0)
    check(alg + ": base64 with a standard-alphabet character is refused",
          verify(h64 + "." + p64.replace("-", "+").replace("_", "/") + "." + s64) is None
          or ("-" not in p64 and "_" not in p64))
    # A non-canonical last character: same bytes, non-zero unused bits.
    last = s64[-1]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    nc = alphabet[alphabet.index(last) | 1] if alphabet.index(last) % 2 == 0 else alphabet[alphabet.index(last) & ~1]
    check(alg + ": a non-canonical base64 signature is refused",
          unb64(s64[:-1] + nc) == unb64(s64) and verify(h64 + "." + p64 + "." + s64[:-1] + nc) is None)
    check(alg + ": two parts, four parts, empty are refused",
          verify(h64 + "." + p64) is None and verify(t + ".x") is None and verify("") is None
          and verify("..") is None)
    if alg == "ES256":
        _, sign = signer(kid)
        der_sig = serialization.load_der_private_key(
            db.execute("SELECT private_key FROM anonauth_jwt_keys WHERE kid = ?", (kid,)).fetchone()[0],
            password=None).sign((h64 + "." + p64).encode(), ec.ECDSA(hashes.SHA256()))
        check("ES256: a DER signature (not r||s) is refused",
              verify(h64 + "." + p64 + "." + b64(der_sig)) is None)

# Expiry by anonauth's clock: the last token is EdDSA, exp NOW + 3600.
t = one("SELECT session_jwt(?)", token)
one("SELECT anonauth_set_clock(?)", NOW + 3600 + 29)
check("within exp + leeway it verifies", verify(t) is not None)
one("SELECT anonauth_set_clock(?)", NOW + 3600 + 30)
check("at exp + leeway it is refused", verify(t) is None)
one("SELECT anonauth_set_clock(?)", NOW)

# Configuration: iss and aud are checked against the current settings.
one("SELECT anonauth_config('jwt.audience', 'another.api')")
check("a token for another audience is refused", verify(t) is None)
one("SELECT anonauth_config('jwt.audience', 'api.example.test')")
check("and verifies again with the audience back", verify(t) is not None)
one("SELECT anonauth_config('jwt.accept', 'ES256')")
check("jwt.accept ES256 refuses an EdDSA token", verify(t) is None)
one("SELECT anonauth_config('jwt.accept', 'key')")

# Revocation: the token lives on unless the verifier asks for the session.
live_opts = '{"require_live_session":true}'
check("require_live_session accepts a live session's token", verify(t, live_opts) is not None)
one("SELECT anon_signout(?)", token)
check("after sign-out the token still verifies without the session check", verify(t) is not None)
check("require_live_session refuses it after sign-out", verify(t, live_opts) is None)
check("session_jwt is NULL for a revoked session", one("SELECT session_jwt(?)", token) is None)

# Rotation: the retired key stays published until its tokens expired.
token = one("SELECT anon_signin()")
t_old = one("SELECT session_jwt(?)", token)
old_kid = json.loads(unb64(t_old.split(".")[0]))["kid"]
new_kid = one("SELECT anonauth_jwt_rotate()")
t_new = one("SELECT session_jwt(?)", token)
check("after rotation new tokens carry the new kid",
      json.loads(unb64(t_new.split(".")[0]))["kid"] == new_kid != old_kid)
kids = [k["kid"] for k in json.loads(one("SELECT anonauth_jwks()"))["keys"]]
check("the retired key is still published, after the current one",
      kids[0] == new_kid and old_kid in kids)
check("a token of the retired key still verifies", verify(t_old) is not None)
one("SELECT anonauth_set_clock(?)", NOW + 3600 + 30)
kids = [k["kid"] for k in json.loads(one("SELECT anonauth_jwks()"))["keys"]]
check("past ttl + leeway the retired key is no longer published", old_kid not in kids)
one("SELECT anonauth_jwt_rotate()")
check("the next rotation deleted it",
      one("SELECT count(*) FROM anonauth_jwt_keys WHERE kid = ?", old_kid) == 0)
one("SELECT anonauth_set_clock(?)", NOW)
check("a token of a dropped key is refused even when its exp is fine", verify(t_old) is None)

# The connection keeps the current key parsed: it must notice another
# connection's rotation, and not keep a key whose creation was rolled back.
other = sqlite3.connect(db_path, isolation_level=None)
other.enable_load_extension(True)
other.load_extension(ext)
other.execute("SELECT anonauth_set_clock(?)", (NOW,))
token = one("SELECT anon_signin()")
kid_of = lambda t: json.loads(unb64(t.split(".")[0]))["kid"]
before = kid_of(one("SELECT session_jwt(?)", token))
rotated = other.execute("SELECT anonauth_jwt_rotate()").fetchone()[0]
after = kid_of(one("SELECT session_jwt(?)", token))
check("a rotation by another connection is seen at the next session_jwt", after == rotated != before)
db.execute("BEGIN")
inside = one("SELECT anonauth_jwt_rotate()")
t_inside = one("SELECT session_jwt(?)", token)
db.execute("ROLLBACK")
t_after = one("SELECT session_jwt(?)", token)
check("inside the rotating transaction the new key signs",
      kid_of(t_inside) == inside)
check("after its rollback the previous key signs again, and its tokens verify",
      kid_of(t_after) == rotated and verify(t_after) is not None)
other.close()

print("%d passed, %d failed" % (passed, failed))
sys.exit(1 if failed else 0)
