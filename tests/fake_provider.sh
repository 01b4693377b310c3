# Sourced by the test scripts: builds and starts tests/fake_provider.c, a
# CAPTCHA provider on 127.0.0.1 (a free port), and stops it again.
#
#   fake_provider_start DIR   starts it with its port and log files in DIR and
#                             exports ANONAUTH_PROVIDER (http://127.0.0.1:PORT),
#                             ANONAUTH_PROVIDER_TLS (https://, self-signed),
#                             ANONAUTH_PROVIDER_LOG and the secret that the
#                             env:NAME tests read
#   fake_provider_stop        stops the server this shell started
fake_provider_start() {
  local dir=$1 root bin i
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  bin="$root/build/test/fake_provider"
  if [ ! -x "$bin" ] || [ "$root/tests/fake_provider.c" -nt "$bin" ]; then
    mkdir -p "$root/build/test"
    cc -std=c11 -O1 -Wall -Wextra -Werror -pthread -o "$bin.$$" "$root/tests/fake_provider.c" \
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
}

fake_provider_stop() {
  if [ -n "${FAKE_PROVIDER_PID:-}" ]; then
    kill "$FAKE_PROVIDER_PID" 2>/dev/null
    wait "$FAKE_PROVIDER_PID" 2>/dev/null
  fi
  FAKE_PROVIDER_PID=
}
