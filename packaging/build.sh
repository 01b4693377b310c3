#!/bin/sh
# Builds the release artefacts of one version, all named from anonauth.h's
# ANONAUTH_VERSION (the only copy of the version; nothing here stores another):
#   build.sh arch  x64|arm64   build/arch/<arch>/: anonauth.so, libanonauth.a
#   build.sh dist              build/dist/anonauth-<v>-linux-<arch>.tar.gz + SHA256SUMS
#   build.sh npm               build/npm/*.tgz: anonauth, anonauth-linux-<arch>
#   build.sh wheel             build/wheel/anonauth-<v>-py3-none-linux_<machine>.whl
#   build.sh deb               build/deb/{libsqlite3-mod-anonauth,libanonauth-dev}_<v>_<debarch>.deb
# ARCHS (default "x64 arm64") picks the platforms. Run from the project's root
# (make dist/npm/wheel/deb do). Output is reproducible: SOURCE_DATE_EPOCH
# (default: the last commit's time) fixes every timestamp.
set -eu
root=$(pwd)
[ -f anonauth.h ] || { echo "build.sh: run it from the project's root" >&2; exit 2; }
VERSION=$(sed -n 's/^#define ANONAUTH_VERSION *"\(.*\)"/\1/p' anonauth.h)
[ -n "$VERSION" ] || { echo "build.sh: no ANONAUTH_VERSION in anonauth.h" >&2; exit 1; }
ARCHS=${ARCHS:-x64 arm64}
: "${SOURCE_DATE_EPOCH:=$(git log -1 --format=%ct 2>/dev/null || echo 0)}"
export SOURCE_DATE_EPOCH
MAKE=${MAKE:-make}

# One platform's names: npm's (x64/arm64), Debian's, the GNU triplet, the wheel's.
names() {
  case $1 in
    x64)   debarch=amd64 triplet=x86_64-linux-gnu  machine=x86_64  cross= ;;
    arm64) debarch=arm64 triplet=aarch64-linux-gnu machine=aarch64 cross=aarch64-linux-gnu- ;;
    *) echo "build.sh: unknown platform $1 (x64, arm64)" >&2; exit 2 ;;
  esac
}

# The extension for one platform, in its own build directory. The compile is
# reproducible: no path of this checkout reaches the output (-ffile-prefix-map),
# no debug info, and the build-id is a hash of the contents; ar is deterministic
# (Debian's default, D). arm64 is cross-compiled against Debian's multiarch
# arm64 -dev packages (make packaging-deps installs them).
build_arch() {
  names "$1"; out=build/arch/$1
  if [ -n "$cross" ]; then
    set -- CC=${cross}gcc AR=${cross}ar
    PKG_CONFIG_LIBDIR=/usr/lib/$triplet/pkgconfig:/usr/share/pkgconfig; export PKG_CONFIG_LIBDIR
  else
    set -- CC=gcc AR=ar
  fi
  # Debian's hardening flags (dpkg-buildflags' defaults, with bindnow).
  $MAKE -s --no-print-directory "$@" BUILD=$out SO=$out/anonauth.so LIB=$out/libanonauth.a \
    CFLAGS="-O2 -ffile-prefix-map=$root=. -fstack-protector-strong -fstack-clash-protection -D_FORTIFY_SOURCE=2" \
    LDFLAGS="-Wl,--build-id=sha1 -Wl,-z,relro -Wl,-z,now" \
    $out/anonauth.so $out/libanonauth.a
  unset PKG_CONFIG_LIBDIR
  # What the packages ship, stripped as Debian's dh_strip does: the .so of
  # everything loading does not need, the .a of debug info; both of the
  # compiler's .comment and .note sections (the build-id note stays).
  mkdir -p $out/release
  ${cross}strip --strip-unneeded --remove-section=.comment --remove-section=.note \
    -o $out/release/anonauth.so $out/anonauth.so
  ${cross}strip --strip-debug --remove-section=.comment --remove-section=.note --enable-deterministic-archives \
    -o $out/release/libanonauth.a $out/libanonauth.a
}

# A .pc file for the archive: paths relative to the .pc file itself
# (${pcfiledir}), so `PKG_CONFIG_PATH=<unpacked dir>` works wherever it lands.
pc_relative() {
  sed -e 's|@prefix@|${pcfiledir}|' -e 's|@libdir@|${prefix}|' -e 's|@includedir@|${prefix}|' \
      -e "s|@version@|$VERSION|" anonauth.pc.in
}

# Files and directories get fixed modes, owner 0/0, SOURCE_DATE_EPOCH as mtime,
# names sorted; gzip -n leaves out the name and time of the input.
tar_gz() { # dir-containing-top, top, out.tar.gz
  tar -C "$1" --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$SOURCE_DATE_EPOCH" \
      --format=gnu -cf - "$2" | gzip -9 -n > "$3"
}

dist() {
  mkdir -p build/dist; rm -f build/dist/*.tar.gz build/dist/SHA256SUMS
  for a in $ARCHS; do
    build_arch "$a"
    top=anonauth-$VERSION-linux-$a; stage=build/dist/stage; rm -rf "$stage"; mkdir -p "$stage/$top"
    install -m 0755 "build/arch/$a/release/anonauth.so" "$stage/$top/anonauth.so"
    install -m 0644 "build/arch/$a/release/libanonauth.a" anonauth.h README.md CHANGELOG.md "$stage/$top/"
    [ -f LICENSE ] && install -m 0644 LICENSE "$stage/$top/"
    pc_relative > "$stage/$top/anonauth.pc"; chmod 0644 "$stage/$top/anonauth.pc"; chmod 0755 "$stage/$top"
    tar_gz "$stage" "$top" "build/dist/$top.tar.gz"
    rm -rf "$stage"
  done
  (cd build/dist && sha256sum -- *.tar.gz > SHA256SUMS)
  ls build/dist/*.tar.gz build/dist/SHA256SUMS
}

npm_pkgs() {
  rm -rf build/npm; mkdir -p build/npm/anonauth
  cp packaging/npm/anonauth/index.js packaging/npm/anonauth/index.d.ts packaging/npm/anonauth/README.md \
     build/npm/anonauth/
  deps=""
  for a in $ARCHS; do
    build_arch "$a"; names "$a"; d=build/npm/anonauth-linux-$a; mkdir -p "$d"
    install -m 0755 "build/arch/$a/release/anonauth.so" "$d/anonauth.so"
    sed -e "s/@version@/$VERSION/g" -e "s/@arch@/$a/g" packaging/npm/platform/package.json.in > "$d/package.json"
    sed -e "s/@version@/$VERSION/g" -e "s/@arch@/$a/g" packaging/npm/platform/README.md.in > "$d/README.md"
    deps="$deps${deps:+,
}    \"anonauth-linux-$a\": \"$VERSION\""
  done
  awk -v deps="$deps" -v v="$VERSION" '{ gsub(/@version@/, v); if ($0 ~ /@optional_dependencies@/) print deps; else print }' \
    packaging/npm/anonauth/package.json.in > build/npm/anonauth/package.json
  for d in build/npm/*/; do (cd build/npm && npm pack --silent "./$(basename "$d")" >/dev/null); done
  ls build/npm/*.tgz
}

wheel() {
  rm -rf build/wheel; mkdir -p build/wheel
  for a in $ARCHS; do
    build_arch "$a"; names "$a"; w=build/wheel/src-$a; mkdir -p "$w/anonauth"
    sed "s/@version@/$VERSION/g" packaging/python/anonauth/__init__.py > "$w/anonauth/__init__.py"
    cp packaging/python/setup.py packaging/python/README.md "$w/"
    install -m 0755 "build/arch/$a/release/anonauth.so" "$w/anonauth/anonauth.so"
    (cd "$w" && ANONAUTH_VERSION=$VERSION /usr/bin/python3 -B setup.py -q bdist_wheel \
        --plat-name "linux_$machine" --dist-dir .. >build.log 2>&1) \
      || { cat "$w/build.log" >&2; exit 1; }
    rm -rf "$w"
  done
  ls build/wheel/*.whl
}

# Two binary packages per platform, laid out as Debian's own SQLite modules
# (libsqlite3-mod-spatialite: the module in /usr/lib/<triplet>/), so that
# `.load anonauth` by name also finds it through the loader's search path.
deb() {
  mkdir -p build/deb; rm -f build/deb/*.deb
  maint=$(sed -n 's/^Maintainer: //p' packaging/debian/maintainer)
  for a in $ARCHS; do
    build_arch "$a"; names "$a"; r=build/deb/root
    # libsqlite3-mod-anonauth
    rm -rf "$r"; mkdir -p "$r/DEBIAN" "$r/usr/lib/$triplet" "$r/usr/share/doc/libsqlite3-mod-anonauth"
    install -m 0644 "build/arch/$a/release/anonauth.so" "$r/usr/lib/$triplet/anonauth.so"
    doc_files "$r/usr/share/doc/libsqlite3-mod-anonauth" libsqlite3-mod-anonauth
    mkdir -p "$r/usr/share/lintian/overrides"
    install -m 0644 packaging/debian/lintian-overrides "$r/usr/share/lintian/overrides/libsqlite3-mod-anonauth"
    shlibs=$(shlibdeps "$a" "build/arch/$a/release/anonauth.so")
    control libsqlite3-mod-anonauth "$debarch" "$shlibs, libsqlite3-0 (>= 3.34)" "$maint" \
      "$r" libs packaging/debian/mod.description > "$r/DEBIAN/control"
    md5sums "$r"
    dpkg-deb --root-owner-group -Zxz --build "$r" "build/deb/libsqlite3-mod-anonauth_${VERSION}_$debarch.deb" >/dev/null
    # libanonauth-dev
    rm -rf "$r"; mkdir -p "$r/DEBIAN" "$r/usr/lib/$triplet/pkgconfig" "$r/usr/include" "$r/usr/share/doc/libanonauth-dev"
    install -m 0644 "build/arch/$a/release/libanonauth.a" "$r/usr/lib/$triplet/libanonauth.a"
    install -m 0644 anonauth.h "$r/usr/include/anonauth.h"
    sed -e 's|@prefix@|/usr|' -e "s|@libdir@|\${prefix}/lib/$triplet|" -e 's|@includedir@|${prefix}/include|' \
        -e "s|@version@|$VERSION|" anonauth.pc.in > "$r/usr/lib/$triplet/pkgconfig/anonauth.pc"
    chmod 0644 "$r/usr/lib/$triplet/pkgconfig/anonauth.pc"
    doc_files "$r/usr/share/doc/libanonauth-dev" libanonauth-dev
    control libanonauth-dev "$debarch" "libsqlite3-dev (>= 3.34), libsodium-dev, libcurl4-openssl-dev | libcurl-dev, libssl-dev" \
      "$maint" "$r" libdevel packaging/debian/dev.description > "$r/DEBIAN/control"
    md5sums "$r"
    dpkg-deb --root-owner-group -Zxz --build "$r" "build/deb/libanonauth-dev_${VERSION}_$debarch.deb" >/dev/null
    rm -rf "$r"
  done
  ls build/deb/*.deb
}

# The version is native (no Debian revision: these packages are built by the
# project itself), so /usr/share/doc/<package>/changelog.gz is in Debian's
# format: one entry for this version, dated SOURCE_DATE_EPOCH, pointing at
# CHANGELOG.md for the changes.
doc_files() { # dir, package
  install -d -m 0755 "$1"
  maint=$(sed -n 's/^Maintainer: //p' packaging/debian/maintainer)
  { printf 'anonauth (%s) unstable; urgency=medium\n\n' "$VERSION"
    printf '  * anonauth %s, built by packaging/build.sh deb; the changes are in\n' "$VERSION"
    printf "    the project's CHANGELOG.md.\n\n"
    printf ' -- %s  %s\n' "$maint" "$(LC_ALL=C date -u -R -d "@$SOURCE_DATE_EPOCH")"
  } | gzip -9 -n > "$1/changelog.gz"; chmod 0644 "$1/changelog.gz"
  [ -f LICENSE ] && install -m 0644 LICENSE "$1/copyright"
  find "$1" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
}

md5sums() { # root: DEBIAN/md5sums, as dh_md5sums writes it
  (cd "$1" && find usr -type f | LC_ALL=C sort | xargs md5sum) > "$1/DEBIAN/md5sums"
  chmod 0644 "$1/DEBIAN/md5sums"
}

# dpkg-shlibdeps wants a source tree: a throw-away debian/control is enough.
shlibdeps() { # arch, file
  names "$1"; t=build/deb/shlibdeps; rm -rf "$t"; mkdir -p "$t/debian"
  printf 'Source: anonauth\n\nPackage: libsqlite3-mod-anonauth\nArchitecture: any\n' > "$t/debian/control"
  cp "$2" "$t/anonauth.so"
  (cd "$t" && DEB_HOST_ARCH=$debarch dpkg-shlibdeps -O -e anonauth.so 2>/dev/null) | sed -n 's/^shlibs:Depends=//p'
  rm -rf "$t"
}

control() { # package, arch, depends, maintainer, root, section, description-file
  size=$(du -k -s --exclude=DEBIAN "$5" | cut -f1)
  cat <<CTRL
Package: $1
Version: $VERSION
Architecture: $2
Multi-Arch: same
Maintainer: $4
Installed-Size: $size
Depends: $3
Section: $6
Priority: optional
CTRL
  cat "$7"
}

case ${1:-} in
  arch)  shift; for a in "$@"; do build_arch "$a"; done ;;
  dist)  dist ;;
  npm)   npm_pkgs ;;
  wheel) wheel ;;
  deb)   deb ;;
  version) echo "$VERSION" ;;
  *) echo "usage: packaging/build.sh arch <x64|arm64>... | dist | npm | wheel | deb | version" >&2; exit 2 ;;
esac
