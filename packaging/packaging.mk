# Packaging: release archives, npm packages, Python wheels, Debian packages
# (docs/install.md). Included by the Makefile; the work is in packaging/*.sh.
#   make dist             build/dist/anonauth-<v>-linux-{x64,arm64}.tar.gz + SHA256SUMS
#   make npm              build/npm/*.tgz (anonauth, anonauth-linux-x64, anonauth-linux-arm64)
#   make wheel            build/wheel/anonauth-<v>-py3-none-linux_{x86_64,aarch64}.whl
#   make deb              build/deb/{libsqlite3-mod-anonauth,libanonauth-dev}_<v>_{amd64,arm64}.deb
#   make packaging-deps   installs the Debian packages these need (arm64 cross toolchain
#                         and multiarch libraries, qemu-user-static, lintian, ...)
#   make test-packages    builds and checks all of them (packaging/test.sh)
# ARCHS="x64" limits them to one platform.

DEB_PACKAGING := gcc-aarch64-linux-gnu libc6-dev-arm64-cross binutils-aarch64-linux-gnu \
                 libsqlite3-dev:arm64 libsodium-dev:arm64 libcurl4-openssl-dev:arm64 libssl-dev:arm64 \
                 libreadline8:arm64 qemu-user-static lintian python3-venv python3-wheel \
                 python3-setuptools dpkg-dev debootstrap gzip tar g++ $(DEB_NODE)

.PHONY: dist npm wheel deb packaging-deps test-packages

packaging-deps:
	@dpkg --print-foreign-architectures | grep -qx arm64 || { \
	  if [ "$$(id -u)" = 0 ]; then sudo=""; else sudo=sudo; fi; \
	  echo "anonauth: adding the arm64 architecture (dpkg --add-architecture arm64)"; \
	  $$sudo dpkg --add-architecture arm64 && $$sudo apt-get update -qq; }
	@$(MAKE) --no-print-directory deps DEB_PACKAGES="$(DEB_BUILD) $(DEB_PACKAGING)"

dist npm wheel deb: packaging-deps build/schema_sql.h
	@sh packaging/build.sh $@

test-packages: packaging-deps build/schema_sql.h
	@sh packaging/test.sh
