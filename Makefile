# anonauth — an authentication layer inside SQLite, as a loadable extension.
#
#   make            anonauth.so (load with `.load ./anonauth`)
#   make static     libanonauth.a, for programs that link SQLite themselves
#   make deps       install missing Debian packages (apt-get)
#   make demo       deps + build + the walkthrough in sql/demo.sql
#   make test       deps + build + the whole suite (ASan/UBSan, valgrind, fuzz smoke)
#   make test-sql   only the SQL cases;  make test-c  only the C programs
#   make cluster    build/cluster/anonauth-node: a dqlite node with anonauth
#   make cluster-demo  a 3-node cluster on 127.0.0.1, a leader kill, the walkthrough
#   make fuzz       the libFuzzer harnesses, FUZZ_SECONDS (default 120) each
#   make install    anonauth.so, libanonauth.a, anonauth.h, anonauth.pc; PREFIX=/usr/local,
#                   LIBDIR, INCLUDEDIR, PKGCONFIGDIR, DESTDIR (make uninstall too)
#   make fake-provider  build/fake-provider: a local Turnstile/hCaptcha stand-in
#                   for apps' tests (docs/fake-provider.md)
#   make dist, npm, wheel, deb   release archives and packages (packaging/packaging.mk)
#   make test-packages  builds and checks them all (docs/install.md)
#   make clean

PREFIX   ?= /usr/local
LIBDIR   ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
CC       ?= cc
SQLITE3  ?= sqlite3

PKGS      := sqlite3 libsodium libcurl libcrypto
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs libsodium libcurl libcrypto 2>/dev/null)

WARN     := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes
BASE_CFLAGS = -std=c11 -D_POSIX_C_SOURCE=200809L $(WARN) -Ibuild -Isrc $(PKG_CFLAGS)
CFLAGS   ?= -O2
LIBS      = $(PKG_LIBS) -lpthread

# The C test programs (tests/c): how tests/run.sh (make print-test-cflags,
# make print-test-libs) and make stress compile them, defined only here.
TEST_CC     ?= cc
TEST_CFLAGS  = -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE $(WARN) -I. -Isrc -Itests/c
TEST_LIBS    = -lsqlite3 $(PKG_LIBS) -lpthread

# BUILD and the output names can be overridden: tests/run.sh builds
# sanitizer and clang variants side by side with the normal build.
BUILD    ?= build
SO       ?= anonauth.so
LIB      ?= libanonauth.a
LDFLAGS  ?=

SRC      := anonauth.c $(sort $(wildcard src/*.c))
HDRS     := anonauth.h $(wildcard src/*.h) build/schema_sql.h
OBJ      := $(patsubst %.c,$(BUILD)/obj/%.o,$(SRC))
STATIC_OBJ := $(patsubst %.c,$(BUILD)/static/%.o,$(SRC))

# Debian packages: the build's, then the tests'.
DEB_BUILD := gcc make pkg-config sqlite3 libsqlite3-dev libsodium-dev \
             libcurl4-openssl-dev libjsmn-dev libssl-dev
# What `pkg-config --static --libs libcurl` names on Debian (libcurl's
# Libs.private): the install test links through anonauth.pc that way.
DEB_CURL_STATIC := libnghttp2-dev librtmp-dev libssh2-1-dev libpsl-dev libkrb5-dev \
             libldap-dev libzstd-dev libbrotli-dev libidn2-dev
# The README's Node snippet (tests/readme.sh) needs node, npm and, when
# better-sqlite3's prebuilt binary cannot be downloaded, g++, python3, make
# and Node's headers to build it. Debian's nodejs/npm/libnode-dev only when no
# node or npm is on PATH: next to another install (NodeSource's package,
# /usr/local, nvm) Debian's would conflict or shadow it.
DEB_NODE  := $(shell command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 \
               || echo nodejs npm libnode-dev)
DEB_TEST  := clang libclang-rt-14-dev valgrind python3 python3-jwt python3-cryptography \
             cppcheck clang-tidy \
             g++ $(DEB_NODE) $(DEB_CURL_STATIC)
DEB_PACKAGES ?= $(DEB_BUILD) $(DEB_TEST)
# Only for the cluster targets (and the cluster step of tests/run.sh):
# libdqlite 1.11 with libraft, and go-dqlite's `dqlite` shell.
DEB_CLUSTER := libdqlite-dev libraft-dev go-dqlite

.PHONY: example shop-screenshots all static deps demo test test-sql test-c print-test-cflags print-test-libs stress bench lint \
        coverage fuzz install uninstall clean FORCE \
        cluster cluster-deps cluster-demo bench-cluster fake-provider

all: $(SO)

build/schema_sql.h: sql/schema.sql sql/embed-schema.awk
	@mkdir -p build
	awk -f sql/embed-schema.awk sql/schema.sql > $@.tmp && mv $@.tmp $@

$(BUILD)/obj/%.o: %.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(CFLAGS) -fPIC -fvisibility=hidden -c $< -o $@

$(BUILD)/static/%.o: %.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(CFLAGS) -fPIC -DSQLITE_CORE -c $< -o $@

$(SO): $(OBJ)
	$(CC) -shared $(LDFLAGS) -o $@ $(OBJ) $(LIBS)

static: $(LIB)
$(LIB): $(STATIC_OBJ)
	rm -f $@
	$(AR) rcs $@ $(STATIC_OBJ)

# Installs what is missing, as root or through sudo; otherwise prints the
# command to run and stops. A package counts only in this machine's own
# architecture (or arch-independent): sqlite3:arm64, installed for a cross
# build, replaces the native sqlite3 shell the tests run.
deps:
	@missing=""; native=$$(dpkg --print-architecture); \
	for p in $(DEB_PACKAGES); do \
	  case $$p in *:*) want=$${p#*:} ;; *) want="$$native|all" ;; esac; \
	  dpkg-query -W -f='$${Status} $${Architecture}\n' $$p 2>/dev/null \
	    | grep -Eq "ok installed ($$want)$$" || missing="$$missing $$p"; \
	done; \
	[ -z "$$missing" ] && exit 0; \
	if [ "$$(id -u)" = 0 ]; then sudo=""; \
	elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo="sudo"; \
	else echo "anonauth: these Debian packages are missing:$$missing"; \
	     echo "run: sudo sh -c 'apt-get update && apt-get install -y$$missing'"; exit 1; fi; \
	echo "anonauth: installing$$missing"; \
	export DEBIAN_FRONTEND=noninteractive; \
	if ! ls /var/lib/apt/lists/*_Packages >/dev/null 2>&1; then $$sudo apt-get update -qq; fi; \
	$$sudo apt-get install -y -qq --no-install-recommends $$missing >/dev/null \
	  || { $$sudo apt-get update -qq && $$sudo apt-get install -y -qq --no-install-recommends $$missing >/dev/null; }

demo: deps
	@$(MAKE) --no-print-directory all
	@rm -f build/demo.db build/demo.db-wal build/demo.db-shm
	@$(SQLITE3) -batch build/demo.db < sql/demo.sql

test: deps
	@$(MAKE) --no-print-directory all static
	@sh tests/run.sh

# One part of the suite, each ending with its "N passed, N failed" line:
# the SQL cases in the sqlite3 shell, or the C programs (no sanitizers).
test-sql: deps
	@$(MAKE) --no-print-directory all
	@tests/sqltest.sh tests/sql/*.test

test-c: deps
	@$(MAKE) --no-print-directory all static
	@sh tests/run.sh c

print-test-cflags:
	@echo '$(TEST_CFLAGS)'
print-test-libs:
	@echo '$(TEST_LIBS)'

# The long versions of the crash and concurrency tests (make test runs short
# ones): 300 SIGKILL rounds, and 8 processes mixing every operation for 30 s.
stress: deps
	@$(MAKE) --no-print-directory all static
	@mkdir -p build/stress
	@for t in crash mixed_load; do \
	  $(TEST_CC) $(TEST_CFLAGS) -O2 -o build/stress/test_$$t tests/c/test_$$t.c $(LIB) $(TEST_LIBS) \
	  || exit 1; done
	CRASH_ROUNDS=300 ANONAUTH_SO=$(CURDIR)/anonauth ANONAUTH_TEST_TMP=$(CURDIR)/build/stress \
	  build/stress/test_crash
	LOAD_SECONDS=30 ANONAUTH_SO=$(CURDIR)/anonauth ANONAUTH_TEST_TMP=$(CURDIR)/build/stress \
	  build/stress/test_mixed_load

# Medians of 3 runs against a floor measured in the same run; N=20000 by
# default (make bench N=100000); BENCH_FLAGS=-scale adds the table-size sweep.
# The local fake CAPTCHA provider runs for the verify_turnstile line.
N ?= 20000
BENCH_FLAGS ?=
build/bench/bench: bench/bench.c
	@mkdir -p build/bench
	$(CC) -std=c11 -D_POSIX_C_SOURCE=200809L $(WARN) -O2 -o $@ $< $(PKG_CFLAGS) -lsqlite3 $(PKG_LIBS)

bench: deps
	@$(MAKE) --no-print-directory all build/bench/bench
	@. tests/fake_provider.sh; \
	  fake_provider_start build/bench/provider "$$(pwd)" || echo "bench: the fake CAPTCHA provider did not start"; \
	  build/bench/bench -n $(N) $(BENCH_FLAGS); rc=$$?; fake_provider_stop; exit $$rc
	@if [ -x $(CLUSTER_NODE) ]; then $(MAKE) --no-print-directory $(CLUSTER_NODE); fi
	@if [ -x $(CLUSTER_NODE) ]; then echo; /usr/bin/python3 bench/cluster_bench.py -n $(CLUSTER_N); fi

# The cluster line (bench/cluster_bench.py): sign-ins through a 3-node dqlite
# cluster on 127.0.0.1 against plain two-row INSERTs through the same client
# and cluster. Each waits for a Raft quorum, so N defaults to 2000 here
# (make bench-cluster N=5000); make bench adds the line with CLUSTER_N once
# the node is built. CLUSTER_PORT_BASE fixes the ports (free ones otherwise).
CLUSTER_N ?= 2000
bench-cluster: cluster
	@$(MAKE) --no-print-directory all
	@/usr/bin/python3 bench/cluster_bench.py -n $(if $(filter command line,$(origin N)),$(N),$(CLUSTER_N))

# Better Auth's anonymous plugin and anonauth side by side from Node
# (bench/peer/run.sh; npm installs into build/peer, not the repository).
# PEER_FLAGS: -signins N -checks N -warmup N -rounds R (5000, 20000, 500, 3).
PEER_FLAGS ?=
.PHONY: bench-peer
bench-peer: all
	bench/peer/run.sh $(PEER_FLAGS)

# cppcheck and clang-tidy (checks in .clang-tidy), both with warnings as errors.
lint: deps build/schema_sql.h
	cppcheck -q --enable=warning,performance,portability --std=c11 --error-exitcode=1 \
	  --inline-suppr --suppress=missingIncludeSystem -Isrc -Ibuild -I. anonauth.c src/*.c
	@out=$$(clang-tidy -quiet anonauth.c src/*.c -- -std=c11 -D_POSIX_C_SOURCE=200809L \
	  -Isrc -Ibuild -I. $(PKG_CFLAGS) 2>&1); rc=$$?; \
	  printf '%s\n' "$$out" | grep -v 'warnings\{0,1\} generated\.$$' | grep . ; \
	  [ $$rc -eq 0 ] && echo "clang-tidy: clean"; exit $$rc

# Line and branch coverage of src/ under the SQL and C suites (gcov).
coverage: deps
	@sh tests/coverage.sh

# The cluster node links the static library (dqlite's VFS cannot load
# extensions); the deps step runs only for these targets.
CLUSTER_NODE := build/cluster/anonauth-node
cluster-deps:
	@$(MAKE) --no-print-directory deps DEB_PACKAGES="$(DEB_BUILD) python3 $(DEB_CLUSTER)"

cluster: cluster-deps
	@$(MAKE) --no-print-directory $(CLUSTER_NODE)

$(CLUSTER_NODE): cluster/anonauth-node.c anonauth.h $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(CFLAGS) -I. -o $@ cluster/anonauth-node.c $(LIB) \
	  $$(pkg-config --libs dqlite) $(LIBS) -lsqlite3

cluster-demo: cluster
	@bash cluster/demo.sh

# The fake CAPTCHA provider of the suites (tests/fake_provider.c), as a tool:
# it needs only OpenSSL besides the C compiler.
FAKE_PROVIDER := build/fake-provider
fake-provider:
	@$(MAKE) --no-print-directory deps DEB_PACKAGES="gcc make libssl-dev"
	@$(MAKE) --no-print-directory $(FAKE_PROVIDER)

$(FAKE_PROVIDER): tests/fake_provider.c
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -D_POSIX_C_SOURCE=200809L $(WARN) $(CFLAGS) -pthread -o $@ $< -lssl -lcrypto

FUZZ_SECONDS ?= 120
fuzz: deps
	@$(MAKE) --no-print-directory build/schema_sql.h
	@bash tests/fuzz/run.sh $(FUZZ_SECONDS)

# anonauth.pc from anonauth.pc.in: the version is anonauth.h's, and a libdir
# or includedir under PREFIX is written relative to ${prefix}, so that
# `pkg-config --define-variable=prefix=...` can move the whole tree.
VERSION := $(shell sed -n 's/^\#define ANONAUTH_VERSION *"\(.*\)"/\1/p' anonauth.h)
pc_dir   = $(patsubst $(PREFIX)%,$${prefix}%,$(1))
build/anonauth.pc: anonauth.pc.in anonauth.h Makefile FORCE
	@mkdir -p build
	@sed -e 's|@prefix@|$(PREFIX)|' -e 's|@libdir@|$(call pc_dir,$(LIBDIR))|' \
	  -e 's|@includedir@|$(call pc_dir,$(INCLUDEDIR))|' -e 's|@version@|$(VERSION)|' \
	  anonauth.pc.in > $@.tmp && mv $@.tmp $@

install: $(SO) $(LIB) build/anonauth.pc
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(PKGCONFIGDIR)
	install -m 0755 $(SO) $(DESTDIR)$(LIBDIR)/anonauth.so
	install -m 0644 $(LIB) $(DESTDIR)$(LIBDIR)/libanonauth.a
	install -m 0644 anonauth.h $(DESTDIR)$(INCLUDEDIR)/anonauth.h
	install -m 0644 build/anonauth.pc $(DESTDIR)$(PKGCONFIGDIR)/anonauth.pc

uninstall:
	rm -f $(DESTDIR)$(LIBDIR)/anonauth.so $(DESTDIR)$(LIBDIR)/libanonauth.a \
	      $(DESTDIR)$(INCLUDEDIR)/anonauth.h $(DESTDIR)$(PKGCONFIGDIR)/anonauth.pc

include packaging/packaging.mk

FORCE:

clean:
	rm -rf build anonauth.so libanonauth.a

# The shop example (docs/web-app.md) on 127.0.0.1 with the fake CAPTCHA provider.
example: all fake-provider
	bash examples/shop/run.sh

# Small PNGs of the shop's main pages for docs/web-app.md (800×600, from the browser test).
shop-screenshots: all fake-provider
	SHOP_SCREENSHOTS=docs/img bash tests/shop.sh
