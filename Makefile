# anonauth — an authentication layer inside SQLite, as a loadable extension.
#
#   make            anonauth.so (load with `.load ./anonauth`)
#   make static     libanonauth.a, for programs that link SQLite themselves
#   make deps       install missing Debian packages (apt-get)
#   make demo       deps + build + the walkthrough in sql/demo.sql
#   make test       deps + build + the whole suite (ASan/UBSan, valgrind, fuzz smoke)
#   make fuzz       the libFuzzer harnesses, FUZZ_SECONDS (default 120) each
#   make install    PREFIX=/usr/local
#   make clean

PREFIX   ?= /usr/local
CC       ?= cc
SQLITE3  ?= sqlite3

PKGS      := sqlite3 libsodium libcurl
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs libsodium libcurl 2>/dev/null)

WARN     := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes
BASE_CFLAGS = -std=c11 -D_POSIX_C_SOURCE=200809L $(WARN) -Ibuild -Isrc $(PKG_CFLAGS)
CFLAGS   ?= -O2
LIBS      = $(PKG_LIBS) -lpthread

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
             libcurl4-openssl-dev libjsmn-dev
DEB_TEST  := clang libclang-rt-14-dev valgrind python3 cppcheck clang-tidy libssl-dev
DEB_PACKAGES ?= $(DEB_BUILD) $(DEB_TEST)

.PHONY: all static deps demo test fuzz install uninstall clean

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
	ar rcs $@ $(STATIC_OBJ)

# Installs what is missing, as root or through sudo; otherwise prints the
# command to run and stops.
deps:
	@missing=""; \
	for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; \
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

FUZZ_SECONDS ?= 120
fuzz: deps
	@$(MAKE) --no-print-directory build/schema_sql.h
	@bash tests/fuzz/run.sh $(FUZZ_SECONDS)

install: anonauth.so libanonauth.a
	install -d $(DESTDIR)$(PREFIX)/lib
	install -m 0755 anonauth.so $(DESTDIR)$(PREFIX)/lib/anonauth.so
	install -m 0644 libanonauth.a $(DESTDIR)$(PREFIX)/lib/libanonauth.a
	install -d $(DESTDIR)$(PREFIX)/include
	install -m 0644 anonauth.h $(DESTDIR)$(PREFIX)/include/anonauth.h

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/lib/anonauth.so $(DESTDIR)$(PREFIX)/lib/libanonauth.a \
	      $(DESTDIR)$(PREFIX)/include/anonauth.h

clean:
	rm -rf build anonauth.so libanonauth.a
