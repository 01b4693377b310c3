#!/usr/bin/env bash
# The fake CAPTCHA provider as a standalone tool (make fake-provider,
# docs/fake-provider.md): started on a fixed port it answers a passing and a
# failing siteverify (over HTTP, over its TLS port, and through anonauth's
# verify_turnstile), stops on SIGTERM and SIGINT with exit 0 even with a
# keep-alive client connected, and leaves its ports free for the next one.
# It prints only ok/FAIL lines and "N passed, N failed": the test secrets it
# sends stay out of the output (the suite greps for them).
set -u
cd "$(dirname "$0")/.."
root=$(pwd)
label=${TEST_LABEL:-fake-provider}
work=$(mktemp -d "${TMPDIR:-/tmp}/anonauth-fake-provider.XXXXXX")
# Only this script's own children are killed at the end (jobs -p), never a
# PID that may have been reused since.
trap 'kill -KILL $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT
passed=0
failed=0
py=python3
[ -x /usr/bin/python3 ] && py=/usr/bin/python3

pass() { passed=$((passed + 1)); echo "ok - $label: $1"; }
fail() {
  failed=$((failed + 1)); echo "FAIL - $label: $1"
  [ -n "${2:-}" ] && [ -f "$2" ] && head -n 10 "$2" | sed 's/^/    /'
  return 0
}
# t NAME CMD...: a check; on failure shows $work/out (where checks write).
t() { local name=$1; shift; : > "$work/out"; if "$@"; then pass "$name"; else fail "$name" "$work/out"; fi; }

if ! { make -s --no-print-directory fake-provider && make -s --no-print-directory all; } \
     > "$work/build.log" 2>&1; then
  fail "make fake-provider builds build/fake-provider (and anonauth.so)" "$work/build.log"
  echo "$passed passed, $failed failed"; exit 1
fi
bin=$root/build/fake-provider

TS_PASS=1x0000000000000000000000000000000AA
TS_FAIL=2x0000000000000000000000000000000AA
TS_LIVE=0x4AAAAAAAfakeLiveTurnstileSecret
HC_SECRET=0x0000000000000000000000000000000000000000
HC_RESPONSE=10000000-aaaa-bbbb-cccc-000000000001

# post URL [--insecure] FIELD=VALUE...: prints "STATUS BODY" (a form POST).
cat > "$work/post.py" <<'EOF'
import ssl, sys, urllib.error, urllib.parse, urllib.request
url, args = sys.argv[1], sys.argv[2:]
ctx = None
if url.startswith("https:"):
    ctx = ssl.create_default_context()
    if "--insecure" in args:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
fields = dict(a.split("=", 1) for a in args if a != "--insecure")
req = urllib.request.Request(url, data=urllib.parse.urlencode(fields).encode())
try:
    with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
        status, body = r.status, r.read()
except urllib.error.HTTPError as e:
    status, body = e.code, e.read()
except urllib.error.URLError as e:
    print("no answer:", type(e.reason).__name__)
    sys.exit(3)
print(status, body.decode("utf-8", "replace"))
EOF
post() { "$py" "$work/post.py" "$@" > "$work/out" 2>&1; }

# A client that keeps its connection open (keep-alive) after one request.
cat > "$work/hold.py" <<'EOF'
import http.client, sys, time
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=30)
c.request("POST", "/turnstile/v0/siteverify", "secret=&response=x",
          {"Content-Type": "application/x-www-form-urlencoded"})
c.getresponse().read()
print("holding", flush=True)
time.sleep(30)
EOF

# wait_for FILE PATTERN: until FILE holds PATTERN (at most 10 s: catches a hang).
wait_for() {
  local i
  for i in $(seq 1 200); do
    grep -q "$2" "$1" 2>/dev/null && return 0
    sleep 0.05
  done
  return 1
}

# alive PID: the process exists and is not a zombie.
alive() {
  local state
  state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)
  [ -n "$state" ] && [ "$state" != Z ]
}

# stop PID SIGNAL: sends it to a child of this script, waits for the exit and
# puts the status in $rc (137 when it had to be killed after 10 s).
stop() {
  local pid=$1 i
  kill "-$2" "$pid" 2>/dev/null
  for i in $(seq 1 200); do
    alive "$pid" || break
    sleep 0.05
  done
  alive "$pid" && kill -KILL "$pid"
  wait "$pid"; rc=$?
  return 0
}

# --- the command line -------------------------------------------------------------
t "--help exits 0 and describes the flags" \
  sh -c '"$1" --help > "$2/help" 2>&1 && grep -q -- "--tls-port" "$2/help" && grep -q -- "--port-file" "$2/help"' \
  _ "$bin" "$work"
bad_port() { "$bin" --port 70000 > /dev/null 2>&1; [ $? -eq 2 ]; }
t "a bad argument (--port 70000) exits 2" bad_port

# --- port 0, a port file, SIGTERM ----------------------------------------------------
"$bin" --port 0 --tls-port 0 --port-file "$work/ports" --quiet > "$work/first.out" 2>&1 &
pid=$!
if wait_for "$work/ports" '^[0-9][0-9]* [0-9][0-9]*$'; then
  pass "with --port 0 --tls-port 0 it picks free ports and writes them to --port-file"
else
  fail "with --port 0 --tls-port 0 it picks free ports and writes them to --port-file" "$work/first.out"
fi
read -r port tls_port < "$work/ports" 2>/dev/null || { port=0; tls_port=0; }
stop "$pid" TERM
t "SIGTERM stops it with exit 0 (exit $rc)" [ "$rc" -eq 0 ]

# --- the same ports again, given explicitly -------------------------------------------
"$bin" --port "$port" --tls-port "$tls_port" --log "$work/requests.log" > "$work/second.out" 2>&1 &
pid=$!
if wait_for "$work/second.out" "http://127.0.0.1:$port/turnstile/v0/siteverify"; then
  pass "restarted on the same fixed ports (--port, --tls-port): they were free again; it prints its endpoints"
else
  fail "restarted on the same fixed ports (--port, --tls-port): they were free again; it prints its endpoints" "$work/second.out"
fi
url=http://127.0.0.1:$port

in_use() { "$bin" --port "$port" --quiet > "$work/out" 2>&1; [ $? -eq 1 ] && grep -q "127.0.0.1:$port" "$work/out"; }
t "a second one on a port in use exits 1, naming the port" in_use

t "Turnstile test secret 1x…AA: HTTP 200, success true" \
  eval 'post "$url/turnstile/v0/siteverify" secret=$TS_PASS response=XXXX.DUMMY.TOKEN.XXXX &&
        grep -q "^200 {\"success\":true," "$work/out"'
t "Turnstile test secret 2x…AA: HTTP 200, success false, invalid-input-response" \
  eval 'post "$url/turnstile/v0/siteverify" secret=$TS_FAIL response=XXXX.DUMMY.TOKEN.XXXX &&
        grep -q "^200 {\"success\":false,\"error-codes\":\[\"invalid-input-response\"\]" "$work/out"'
t "an unknown secret: HTTP 400, invalid-input-secret" \
  eval 'post "$url/turnstile/v0/siteverify" secret=not-a-known-secret response=x &&
        grep -q "^400 .*invalid-input-secret" "$work/out"'
t "hCaptcha test secret and response: success true, hostname dummy-key-pass" \
  eval 'post "$url/hcaptcha/siteverify" secret=$HC_SECRET response=$HC_RESPONSE &&
        grep -q "^200 {\"success\":true,.*\"hostname\":\"dummy-key-pass\"" "$work/out"'
single_use() {
  post "$url/turnstile/v0/siteverify" secret=$TS_LIVE response=pass-cli-1 &&
    grep -q '^200 {"success":true,' "$work/out" &&
    post "$url/turnstile/v0/siteverify" secret=$TS_LIVE response=pass-cli-1 &&
    grep -q '^200 {"success":false,"error-codes":\["timeout-or-duplicate"\]' "$work/out"
}
t "the live Turnstile secret: a pass-… token passes once, then timeout-or-duplicate" single_use
t "a /slow-50/host=app.test modifier: the passing answer reports hostname app.test" \
  eval 'post "$url/slow-50/host=app.test/turnstile/v0/siteverify" secret=$TS_PASS response=x &&
        grep -q "\"hostname\":\"app.test\"" "$work/out"'
t "the TLS port answers the same to a client that skips verification" \
  eval 'post "https://127.0.0.1:$tls_port/turnstile/v0/siteverify" --insecure secret=$TS_PASS response=x &&
        grep -q "^200 {\"success\":true," "$work/out"'
t "the TLS port's certificate is refused by a client that verifies" \
  eval '! post "https://127.0.0.1:$tls_port/turnstile/v0/siteverify" secret=$TS_PASS response=x &&
        grep -q "no answer" "$work/out"'

# Through anonauth, as an app's test would use it.
via_anonauth() {
  ANONAUTH_ALLOW_LOOPBACK_CAPTCHA=1 sqlite3 -batch :memory: > "$work/out" 2>&1 <<EOF
.load ./anonauth
SELECT anonauth_config('captcha.url', '$url/turnstile/v0/siteverify') IS NOT NULL;
SELECT anonauth_config('captcha.secret', '$TS_PASS') IS NOT NULL;
SELECT verify_turnstile('XXXX.DUMMY.TOKEN.XXXX', '203.0.113.7');
SELECT verify_turnstile('XXXX.DUMMY.TOKEN.XXXX', NULL, '$TS_FAIL');
SELECT anonauth_config('captcha.provider', 'turnstile') IS NOT NULL;
SELECT anon_signin(json_object('captcha', 'XXXX.DUMMY.TOKEN.XXXX', 'ip', '203.0.113.7')) LIKE 'anonauth_sess_%';
EOF
  [ "$(tr '\n' ' ' < "$work/out")" = "1 1 1 0 1 1 " ]
}
t "anonauth's verify_turnstile through it: 1 with the passing secret, 0 with the failing one; anon_signin passes its gate" \
  via_anonauth

logged() {
  grep -q "^POST /turnstile/v0/siteverify conn=[0-9]* fields=secret,response" "$work/requests.log" &&
    ! grep -qE "[0-3]x0{30}|fakeLive|DUMMY|pass-cli" "$work/requests.log"
}
t "--log has a line per request, without secrets or tokens" logged

# --- a stop with a keep-alive client connected, then SIGINT ------------------------------
"$py" "$work/hold.py" "$port" > "$work/hold.out" 2>&1 &
holder=$!
wait_for "$work/hold.out" holding
stop "$pid" TERM
t "SIGTERM with a keep-alive client connected: exit 0 (exit $rc)" [ "$rc" -eq 0 ]
t "it said it stopped" grep -q "^fake-provider: stopped" "$work/second.out"
kill "$holder" 2>/dev/null; wait "$holder" 2>/dev/null

"$bin" --port "$port" --tls-port "$tls_port" --port-file "$work/ports3" --quiet > "$work/third.out" 2>&1 &
pid=$!
if wait_for "$work/ports3" "^$port $tls_port\$"; then
  pass "its ports were free again after that stop: a third one binds them"
else
  fail "its ports were free again after that stop: a third one binds them" "$work/third.out"
fi
stop "$pid" INT
t "SIGINT stops it with exit 0 (exit $rc)" [ "$rc" -eq 0 ]

# --- --exit-with-parent -----------------------------------------------------------------
# A shell starts it in the background and exits as soon as it listens.
sh -c '"$1" --port 0 --port-file "$2/ports4" --quiet --exit-with-parent & echo $! > "$2/pid4"
       for i in $(seq 1 200); do [ -s "$2/ports4" ] && exit 0; sleep 0.05; done; exit 1' \
  _ "$bin" "$work"
orphan=$(cat "$work/pid4" 2>/dev/null || echo 0)
gone() {
  local i
  for i in $(seq 1 200); do
    alive "$1" || return 0
    sleep 0.05
  done
  return 1
}
t "--exit-with-parent: it exits when the process that started it is gone" gone "$orphan"
if alive "$orphan" && grep -q fake-provider "/proc/$orphan/cmdline" 2>/dev/null; then
  kill -KILL "$orphan"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
