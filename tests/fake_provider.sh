# Sourced by the test scripts (POSIX sh): builds and starts the fake CAPTCHA
# provider (tests/fake_provider.c) on 127.0.0.1, and stops it again.
#
#   fake_provider_start DIR ROOT   ROOT is the repository; the port and log
#                                  files go to DIR. Exports ANONAUTH_PROVIDER
#                                  (http://127.0.0.1:PORT), ANONAUTH_PROVIDER_TLS
#                                  (https://, an untrusted certificate),
#                                  ANONAUTH_PROVIDER_LOG, the secret the
#                                  env:NAME cases read, and
#                                  ANONAUTH_ALLOW_LOOPBACK_CAPTCHA=1, without
#                                  which anonauth sends nothing to 127.0.0.1.
#   fake_provider_stop             stops the server this shell started
fake_provider_start() {
  local dir=$1 top=$2 bin i
  bin="$top/build/test/fake_provider"
  if [ ! -x "$bin" ] || [ "$top/tests/fake_provider.c" -nt "$bin" ]; then
    mkdir -p "$top/build/test"
    cc -std=c11 -O1 -Wall -Wextra -Werror -pthread -o "$bin.$$" "$top/tests/fake_provider.c" \
      -lssl -lcrypto && mv "$bin.$$" "$bin" || return 1
  fi
  mkdir -p "$dir"
  rm -f "$dir/provider.port"
  : > "$dir/provider.log"
  "$bin" "$dir/provider.port" "$dir/provider.log" &
  FAKE_PROVIDER_PID=$!
  for i in $(seq 1 200); do
    [ -s "$dir/provider.port" ] && break
    sleep 0.05
  done
  [ -s "$dir/provider.port" ] || return 1
  local port tls_port
  read -r port tls_port < "$dir/provider.port"
  export ANONAUTH_PROVIDER="http://127.0.0.1:$port"
  export ANONAUTH_PROVIDER_TLS="https://127.0.0.1:$tls_port"
  export ANONAUTH_PROVIDER_LOG="$dir/provider.log"
  export ANONAUTH_TEST_CAPTCHA_SECRET=1x0000000000000000000000000000000AA
  export ANONAUTH_ALLOW_LOOPBACK_CAPTCHA=1
}

fake_provider_stop() {
  if [ -n "${FAKE_PROVIDER_PID:-}" ]; then
    kill "$FAKE_PROVIDER_PID" 2>/dev/null
    wait "$FAKE_PROVIDER_PID" 2>/dev/null
  fi
  FAKE_PROVIDER_PID=
}
