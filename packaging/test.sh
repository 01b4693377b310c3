#!/bin/sh
# make test-packages: builds every package and checks it the way a user gets it.
#   dist   two builds in two copies of the tree at different paths give the same
#          bytes; SHA256SUMS verifies; the archive's files, owners and .pc; the
#          unpacked .so loads in sqlite3
#   arm64  the arm64 .so is AArch64 and runs the README's SQL under qemu-user
#          with Debian's arm64 sqlite3
#   npm    the packed tarballs installed into a scratch project outside the
#          repository with better-sqlite3@12; the README's Node snippet through
#          load(db); only the platform package that fits is installed; the types
#   wheel  installed into a fresh venv (Debian's python3, pip --no-index); the
#          README's Python snippet through anonauth.load(conn); the arm64 wheel
#          is refused on x86_64 and carries an AArch64 .so
#   deb    lintian; the contents and dependencies; installed into a fresh
#          Debian 12 root, loaded by path and by name from sqlite3 and Python,
#          and the -dev package links a program
# Each check prints ok/FAIL, then "N passed, N failed". Needs root for the
# fresh root (chroot); KEEP=1 keeps the scratch directories.
set -u
root=$(pwd)
[ -f anonauth.h ] || { echo "test.sh: run it from the project's root" >&2; exit 2; }
VERSION=$(sh packaging/build.sh version)
SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null || echo 0); export SOURCE_DATE_EPOCH
tmp=$(mktemp -d "${TMPDIR:-/tmp}/anonauth-packages.XXXX")
[ "${KEEP:-}" = 1 ] || trap 'rm -rf "$tmp"' EXIT
passed=0 failed=0
ok()   { passed=$((passed + 1)); echo "ok - $*"; }
fail() { failed=$((failed + 1)); echo "FAIL - $*"; }
# check "description" command...: ok when the command succeeds; its output is
# shown (indented) only on failure.
check() {
  d=$1; shift
  if out=$("$@" 2>&1); then ok "$d"; else fail "$d"; printf '%s\n' "$out" | tail -n 20 | sed 's/^/    /'; fi
}
snippets() { # lang [n]: the README's snippets of that language (only the n-th when given)
  awk -v want="$1" -v n="${2:-0}" '/<!-- test: /{ lang = $3; pending = 1; next }
    pending && /^```/ { inb = 1; pending = 0; if (lang == want) k++; next }
    inb && /^```$/ { inb = 0; next }
    inb && lang == want && (n == 0 || k == n) { print }' "$root/README.md"
}

# --- dist -----------------------------------------------------------------
copy_tree() { # dest: the working tree's files (tracked and new, not ignored)
  mkdir -p "$1" && git ls-files -z -co --exclude-standard | xargs -0 cp --parents -t "$1"
}
build_copy() { # dir
  copy_tree "$1" && (cd "$1" && make -s build/schema_sql.h >/dev/null && sh packaging/build.sh dist >/dev/null)
}
same_bytes() { # dir1 dir2
  for f in "$1"/build/arch/*/anonauth.so "$1"/build/arch/*/release/anonauth.so \
           "$1"/build/arch/*/libanonauth.a "$1"/build/arch/*/release/libanonauth.a "$1"/build/dist/*; do
    g=$2/${f#"$1"/}; cmp "$f" "$g" || return 1
  done
}
echo "# release archives (two builds at different paths)"
if build_copy "$tmp/one/anonauth" && build_copy "$tmp/second-copy/x/anonauth"; then
  check "dist: the .so, .a and archives are byte-identical across two builds at different paths" \
    same_bytes "$tmp/one/anonauth" "$tmp/second-copy/x/anonauth"
else fail "dist: building in copies of the tree"; fi
check "dist: make dist" sh packaging/build.sh dist
check "dist: the tree's archives are the copies' bytes (SHA256SUMS equal)" \
  cmp build/dist/SHA256SUMS "$tmp/one/anonauth/build/dist/SHA256SUMS"
check "dist: SHA256SUMS verifies" sh -c 'cd build/dist && sha256sum --quiet -c SHA256SUMS'
archive_ok() { # arch
  top=anonauth-$VERSION-linux-$1; a=build/dist/$top.tar.gz
  want="$top/ $top/CHANGELOG.md $top/README.md $top/anonauth.h $top/anonauth.pc $top/anonauth.so $top/libanonauth.a"
  [ -f LICENSE ] && want="$want $top/LICENSE"
  got=$(tar -tzf "$a" | sort | tr '\n' ' ')
  [ "$got" = "$(echo $want | tr ' ' '\n' | sort | tr '\n' ' ')" ] || { echo "files: $got"; return 1; }
  tar -tvzf "$a" | awk '$2 != "0/0" { print "owner: " $0; bad = 1 } END { exit bad }' || return 1
  gzip -l "$a" >/dev/null && [ "$(gzip -cd "$a" | head -c 0; od -An -tu4 -j4 -N4 "$a" | tr -d ' ')" = 0 ] \
    || { echo "gzip header has a timestamp"; return 1; }
}
for a in x64 arm64; do check "dist: linux-$a archive has the files, owner 0/0, no gzip time" archive_ok $a; done
unpacked_loads() {
  mkdir -p "$tmp/unpack" && tar -C "$tmp/unpack" -xzf "build/dist/anonauth-$VERSION-linux-x64.tar.gz" &&
  d=$tmp/unpack/anonauth-$VERSION-linux-x64 &&
  [ "$(cd "$d" && sqlite3 :memory: '.load ./anonauth' 'SELECT session_valid(anon_signin());')" = 1 ] &&
  [ "$(PKG_CONFIG_PATH=$d pkg-config --modversion anonauth)" = "$VERSION" ] &&
  PKG_CONFIG_PATH=$d pkg-config --cflags anonauth | grep -q -- "-I$d"
}
check "dist: the unpacked x64 archive loads in sqlite3, its anonauth.pc points at itself" unpacked_loads

# --- arm64 ----------------------------------------------------------------
echo "# linux-arm64 (cross-built, run under qemu-user)"
so=build/arch/arm64/anonauth.so
check "arm64: anonauth.so is an AArch64 ELF shared object" \
  sh -c "readelf -h $so | grep -q 'Machine: *AArch64' && readelf -h $so | grep -q 'Type: *DYN'"
check "arm64: libanonauth.a holds AArch64 objects" \
  sh -c "readelf -h build/arch/arm64/libanonauth.a | grep 'Machine:' | sort -u | grep -qx ' *Machine: *AArch64'"
# Debian's arm64 sqlite3, unpacked (not installed: sqlite3 is not Multi-Arch,
# installing sqlite3:arm64 would replace the machine's own sqlite3).
arm_sqlite() {
  sr=build/cross/sqlite3-arm64
  if [ ! -x "$sr/usr/bin/sqlite3" ]; then
    mkdir -p build/cross && (cd build/cross && rm -f sqlite3_*_arm64.deb &&
      apt-get download sqlite3:arm64 >/dev/null 2>&1) && dpkg -x build/cross/sqlite3_*_arm64.deb "$sr" || return 1
  fi
  echo "$sr/usr/bin/sqlite3"
}
arm64_runs() { # each of the README's SQL snippets on a new database; the last line is 1
  s=$(arm_sqlite) || { echo "apt-get download sqlite3:arm64 failed"; return 1; }
  count=$(snippets shell | grep -c '^\.load ')
  [ "$count" -ge 2 ] || { echo "the README has $count SQL snippets"; return 1; }
  i=1; while [ $i -le "$count" ]; do
    w=$tmp/arm64/$i; mkdir -p "$w" && cp build/arch/arm64/release/anonauth.so "$w/anonauth.so" &&
    snippets shell $i > "$w/readme.sql" || return 1
    out=$(cd "$w" && qemu-aarch64-static "$root/$s" -batch app.db < readme.sql 2>&1)
    [ "$(printf '%s\n' "$out" | tail -n 1)" = 1 ] || { echo "snippet $i:"; printf '%s\n' "$out"; return 1; }
    i=$((i + 1))
  done
}
check "arm64: the README's SQL snippets run under qemu-aarch64-static with Debian's arm64 sqlite3" arm64_runs

# --- npm ------------------------------------------------------------------
echo "# npm (packed tarballs, scratch project outside the repository)"
if sh packaging/build.sh npm >/dev/null; then ok "npm: make npm packs anonauth, anonauth-linux-x64, anonauth-linux-arm64"
else fail "npm: make npm"; fi
n=$tmp/npm; mkdir -p "$n"; cp build/npm/*.tgz "$n/"
cat > "$n/package.json" <<JSON
{ "name": "scratch", "version": "1.0.0", "private": true, "type": "module",
  "dependencies": { "anonauth": "file:./anonauth-$VERSION.tgz", "better-sqlite3": "^12",
                    "typescript": "^5", "@types/better-sqlite3": "^7", "@types/node": "^20" },
  "overrides": { "anonauth-linux-x64": "file:./anonauth-linux-x64-$VERSION.tgz",
                 "anonauth-linux-arm64": "file:./anonauth-linux-arm64-$VERSION.tgz" } }
JSON
# The platform packages come from the local tarballs (overrides), as if from
# the registry: npm installs the one whose os/cpu match and skips the other.
check "npm: npm install of the tarballs and better-sqlite3@12 in a scratch project" \
  sh -c "cd '$n' && npm install --no-audit --no-fund --loglevel=error"
check "npm: the installed packages' versions are anonauth.h's ($VERSION)" \
  sh -c "cd '$n' && node -e 'for (const p of [\"anonauth\", \"anonauth-linux-x64\"]) if (require(p + \"/package.json\").version !== \"$VERSION\") process.exit(1)'"
check "npm: only the platform package that fits is installed (os/cpu/libc)" \
  sh -c "cd '$n' && [ -f node_modules/anonauth-linux-x64/anonauth.so ] && [ ! -e node_modules/anonauth-linux-arm64 ]"
{ echo "import { load } from 'anonauth';"; snippets node | sed "s|db.loadExtension('./anonauth');|load(db);|"; } > "$n/snippet.mjs"
check "npm: the README's Node snippet uses load(db)" grep -q '^load(db);' "$n/snippet.mjs"
check "npm: the README's Node snippet runs with load(db) (better-sqlite3)" sh -c "cd '$n' && node snippet.mjs"
cat > "$n/paths.cjs" <<'JS'
const a = require('anonauth');
const p = a.getLoadablePath();
if (!p.startsWith(__dirname + '/node_modules/anonauth-linux-x64/')) throw new Error('path ' + p);
let refused = false;
try { a.load({}); } catch (e) { refused = e instanceof TypeError; }
if (!refused) throw new Error('load({}) did not throw a TypeError');
JS
check "npm: require('anonauth') (CommonJS): getLoadablePath() is in node_modules, load({}) is refused" \
  sh -c "cd '$n' && node paths.cjs"
# node:sqlite needs Node 22.5 (Node 20 here): its calling sequence, on a stand-in
# with DatabaseSync's two methods.
cat > "$n/nodesqlite.cjs" <<'JS'
const { load, getLoadablePath } = require('anonauth');
const calls = [];
load({ enableLoadExtension: (b) => calls.push(['enable', b]), loadExtension: (p) => calls.push(['load', p]) });
const want = JSON.stringify([['enable', true], ['load', getLoadablePath()], ['enable', false]]);
if (JSON.stringify(calls) !== want) throw new Error('calls ' + JSON.stringify(calls));
let msg = '';
try {
  load({ enableLoadExtension: () => { throw new Error('Cannot enable extension loading because it was disabled at database creation.'); },
         loadExtension: () => { throw new Error('not reached'); } });
} catch (e) { msg = e.message; }
if (!msg.includes('allowExtension: true')) throw new Error('message ' + msg);
JS
check "npm: load(db) on a node:sqlite-like db: enable, load, disable; without allowExtension it says to set it" \
  sh -c "cd '$n' && node nodesqlite.cjs"
cat > "$n/typed.ts" <<'TS'
import Database from 'better-sqlite3';
import { load, getLoadablePath } from 'anonauth';
const db = new Database(':memory:');
load(db);
const p: string = getLoadablePath();
db.close();
export { p };
TS
check "npm: index.d.ts type-checks a better-sqlite3 use (tsc --strict)" \
  sh -c "cd '$n' && npx tsc --strict --noEmit --module nodenext --moduleResolution nodenext --skipLibCheck typed.ts"

# --- wheel ----------------------------------------------------------------
echo "# Python wheel (fresh venv, pip --no-index)"
check "wheel: make wheel" sh packaging/build.sh wheel
wx=build/wheel/anonauth-$VERSION-py3-none-linux_x86_64.whl
wa=build/wheel/anonauth-$VERSION-py3-none-linux_aarch64.whl
check "wheel: tagged py3-none-linux_x86_64 and py3-none-linux_aarch64, Root-Is-Purelib false" \
  sh -c "[ -f $wx ] && [ -f $wa ] && unzip -p $wx 'anonauth-$VERSION.dist-info/WHEEL' | grep -qx 'Root-Is-Purelib: false'"
check "wheel: the aarch64 wheel's anonauth.so is AArch64" \
  sh -c "unzip -p $wa anonauth/anonauth.so > '$tmp/wa.so' && readelf -h '$tmp/wa.so' | grep -q 'Machine: *AArch64'"
v=$tmp/venv
check "wheel: pip install --no-index into a fresh venv of /usr/bin/python3" \
  sh -c "/usr/bin/python3 -m venv '$v' && '$v/bin/pip' install -q --no-index --disable-pip-version-check '$root/$wx'"
check "wheel: pip refuses the aarch64 wheel on this x86_64 machine" \
  sh -c "'$v/bin/pip' install --no-index --disable-pip-version-check --dry-run '$root/$wa' 2>&1 | grep -q 'is not a supported wheel on this platform'"
mkdir -p "$tmp/py"
snippets python | awk '
  /enable_load_extension\(True\)/ { print "anonauth.load(db)"; next }
  /load_extension\(|enable_load_extension\(False\)/ { next }
  { print } /^import sqlite3$/ { print "import anonauth" }' > "$tmp/py/snippet.py"
check "wheel: the README's Python snippet uses anonauth.load(db)" \
  sh -c "grep -qx 'anonauth.load(db)' '$tmp/py/snippet.py' && ! grep -q 'load_extension' '$tmp/py/snippet.py'"
check "wheel: the README's Python snippet runs through anonauth.load(conn)" \
  sh -c "cd '$tmp/py' && '$v/bin/python' snippet.py"
check "wheel: anonauth.__version__ and loadable_path() in the venv" \
  sh -c "cd '$tmp/py' && '$v/bin/python' -c 'import anonauth, os, sys; p = anonauth.loadable_path(); sys.exit(not (anonauth.__version__ == \"$VERSION\" and p.startswith(\"$v/\") and os.path.isfile(p)))'"

# --- deb ------------------------------------------------------------------
echo "# Debian packages"
check "deb: make deb" sh packaging/build.sh deb
mod=build/deb/libsqlite3-mod-anonauth_${VERSION}_amd64.deb
dev=build/deb/libanonauth-dev_${VERSION}_amd64.deb
check "deb: libsqlite3-mod-anonauth puts anonauth.so in /usr/lib/x86_64-linux-gnu (as libsqlite3-mod-spatialite)" \
  sh -c "dpkg-deb -c $mod | grep -q ' ./usr/lib/x86_64-linux-gnu/anonauth.so$'"
check "deb: it depends on libsqlite3-0, libsodium23, libcurl4 (dpkg-shlibdeps)" \
  sh -c "d=\$(dpkg-deb -f $mod Depends); echo \"\$d\"; for p in libsqlite3-0 libsodium23 libcurl4 libc6; do echo \"\$d\" | grep -q \"\$p \" || exit 1; done"
check "deb: arm64 packages name the aarch64 directory" \
  sh -c "dpkg-deb -c build/deb/libsqlite3-mod-anonauth_${VERSION}_arm64.deb | grep -q ' ./usr/lib/aarch64-linux-gnu/anonauth.so$' && dpkg-deb -c build/deb/libanonauth-dev_${VERSION}_arm64.deb | grep -q ' ./usr/lib/aarch64-linux-gnu/pkgconfig/anonauth.pc$'"
check "deb: owner root/root in every package" \
  sh -c "for d in build/deb/*.deb; do dpkg-deb -c \$d | awk '\$2 != \"root/root\" { print; bad = 1 } END { exit bad }' || exit 1; done"
# Errors and warnings fail the check, except no-copyright-file while the
# project states no license (there is nothing to put in debian/copyright);
# everything lintian says is listed.
echo "# lintian"
known=; [ -f LICENSE ] || known=no-copyright-file
for d in build/deb/*.deb; do
  out=$(lintian --tag-display-limit 0 "$d" 2>&1 | grep -v 'running with root privileges')
  printf '%s\n' "$out" | grep . | sed 's/^/#   /'
  errors=$(printf '%s\n' "$out" | grep '^[EW]: ' | grep -v ": ${known:-none}\$")
  if [ -n "$errors" ]; then fail "deb: lintian $(basename "$d"): errors or warnings"
  else ok "deb: lintian $(basename "$d"): no errors or warnings${known:+ (but $known: no license yet)}"; fi
done

# A fresh Debian 12 root: the cached minbase root of shared/tools/fresh-debian-check
# when there is one, otherwise our own debootstrap.
fresh_root() {
  base=${FRESH_BASE:-${TMPDIR:-/tmp}/fresh-base}
  r=$tmp/root
  if [ -f "$base/.ok" ]; then cp -a "$base/." "$r/"
  else
    mirror=$(grep -h '^URIs' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1 | awk '{print $2}')
    [ -n "$mirror" ] || mirror=http://deb.debian.org/debian
    debootstrap --variant=minbase --include=gcc,libc6-dev bookworm "$r" "$mirror" >"$tmp/debootstrap.log" 2>&1 || return 1
  fi
  cp /etc/resolv.conf "$r/etc/resolv.conf"
  mkdir -p "$r/opt/debs" && cp "$mod" "$dev" "$r/opt/debs/"
}
cat > "$tmp/in-root.sh" <<SH
set -e
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends /opt/debs/$(basename "$mod") sqlite3 python3 >/dev/null
echo "installed: \$(dpkg-query -W -f='\${Package} \${Version} \${Status}' libsqlite3-mod-anonauth)"
cd /tmp
test "\$(sqlite3 :memory: '.load /usr/lib/x86_64-linux-gnu/anonauth' 'SELECT session_valid(anon_signin());')" = 1
echo "sqlite3 by path: ok"
test "\$(sqlite3 :memory: '.load anonauth' 'SELECT session_valid(anon_signin());')" = 1
echo "sqlite3 by name: ok"
python3 -c '
import sqlite3
db = sqlite3.connect(":memory:")
db.enable_load_extension(True)
db.load_extension("/usr/lib/x86_64-linux-gnu/anonauth.so")
t = db.execute("SELECT anon_signin()").fetchone()[0]
assert db.execute("SELECT session_valid(?)", (t,)).fetchone()[0] == 1
'
echo "python3 by path: ok"
apt-get install -y -qq --no-install-recommends /opt/debs/$(basename "$dev") pkg-config >/dev/null
cat > app.c <<'C'
#include <sqlite3.h>
#include <anonauth.h>
#include <string.h>
int main(void) {
  sqlite3 *db; sqlite3_stmt *st; int ok;
  sqlite3_auto_extension((void (*)(void))sqlite3_anonauth_init);
  if (sqlite3_open(":memory:", &db) != SQLITE_OK) return 1;
  if (sqlite3_prepare_v2(db, "SELECT session_valid(anon_signin())", -1, &st, 0) != SQLITE_OK) return 2;
  ok = sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0) == 1;
  sqlite3_finalize(st); sqlite3_close(db);
  return ok ? 0 : 3;
}
C
cc app.c \$(pkg-config --cflags anonauth) \$(pkg-config --libs anonauth sqlite3 libsodium libcurl libcrypto) -lpthread -o app
./app
echo "libanonauth-dev: a program linked through pkg-config runs: ok"
SH
if fresh_root; then
  out=$(unshare -m sh -c "mount --bind /proc '$tmp/root/proc' && mount --bind /dev '$tmp/root/dev' &&
        mount -t tmpfs tmpfs '$tmp/root/tmp' && chroot '$tmp/root' /bin/sh -s" < "$tmp/in-root.sh" 2>&1); rc=$?
  printf '%s\n' "$out" | grep -E ': ok$|^installed' | sed 's/^/#   /'
  if [ $rc -eq 0 ]; then
    ok "deb: in a fresh Debian 12 root, apt-get installs the .deb; sqlite3 (by path and by name) and python3 load it; libanonauth-dev links a program"
  else
    fail "deb: in a fresh Debian 12 root (exit $rc)"; printf '%s\n' "$out" | tail -n 20 | sed 's/^/    /'
  fi
else fail "deb: making a fresh Debian 12 root"; fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
