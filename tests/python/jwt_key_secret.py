"""jwt.key_secret: with env:NAME set, the private key is stored sealed (the
DER or raw key is not in the file), tokens are issued and verify; without
the variable, or with another value, session_jwt fails with
jwt_misconfigured and jwt_verify still works (it needs only public keys).

Run: /usr/bin/python3 jwt_key_secret.py DB EXTENSION_PATH_WITHOUT_SO
"""
import os
import sqlite3
import sys

db_path, ext = sys.argv[1], sys.argv[2]
passed = failed = 0


def check(name, cond):
    global passed, failed
    passed += bool(cond)
    failed += not cond
    print(("ok - " if cond else "FAIL - ") + "python: key_secret: " + name)


db = sqlite3.connect(db_path, isolation_level=None)
db.enable_load_extension(True)
db.load_extension(ext)


def one(sql, *args):
    return db.execute(sql, args).fetchone()[0]


def error(sql, *args):
    try:
        db.execute(sql, args).fetchone()
        return None
    except sqlite3.Error as e:
        return str(e)


os.environ["ANONAUTH_JWT_TEST_SECRET"] = "correct horse battery staple"
one("SELECT anonauth_config('jwt.issuer', 'i')")
one("SELECT anonauth_config('jwt.audience', 'a')")
one("SELECT anonauth_config('jwt.key_secret', 'env:ANONAUTH_JWT_TEST_SECRET')")
token = one("SELECT anon_signin()")
for alg in ("ES256", "EdDSA"):
    one("SELECT anonauth_config('jwt.alg', ?)", alg)
    t = one("SELECT session_jwt(?)", token)
    check(alg + ": a token is issued and verifies", t is not None and one("SELECT jwt_verify(?)", t) is not None)
    enc, priv = db.execute("SELECT encrypted, private_key FROM anonauth_jwt_keys "
                           "WHERE alg = ? AND retired_at IS NULL", (alg,)).fetchone()
    check(alg + ": the private key is stored sealed", enc == 1 and len(priv) > 40)
check("the secret's value appears nowhere in the database file",
      b"correct horse" not in open(db_path, "rb").read())

one("SELECT anonauth_jwt_rotate()")
t = one("SELECT session_jwt(?)", token)
os.environ["ANONAUTH_JWT_TEST_SECRET"] = "another value"
err = error("SELECT session_jwt(?)", token)
check("another secret: session_jwt fails with jwt_misconfigured",
      err is not None and "jwt_misconfigured" in err and "does not open" in err)
check("another secret: jwt_verify still verifies (public keys only)",
      one("SELECT jwt_verify(?)", t) is not None)
del os.environ["ANONAUTH_JWT_TEST_SECRET"]
err = error("SELECT session_jwt(?)", token)
check("no variable: session_jwt fails with jwt_misconfigured",
      err is not None and "jwt_misconfigured" in err and "is not set" in err)
one("SELECT anonauth_config('jwt.key_secret', NULL)")
err = error("SELECT session_jwt(?)", token)
check("the setting removed: a sealed key cannot be used", err is not None and "jwt_misconfigured" in err)
os.environ["ANONAUTH_JWT_TEST_SECRET"] = "correct horse battery staple"
one("SELECT anonauth_config('jwt.key_secret', 'env:ANONAUTH_JWT_TEST_SECRET')")
check("the right secret back: session_jwt works again", one("SELECT session_jwt(?)", token) is not None)

print("%d passed, %d failed" % (passed, failed))
sys.exit(1 if failed else 0)
