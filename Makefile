# kmsd top-level Makefile (GNU make).
#
#   make                 build/kmsd, build/kmsctl, build/kmipbench, one lib per module
#   make test            install deps, ASan+UBSan build, run every suite, print "N passed, N failed"
#   make run             install deps, build, first-run setup in var/, start kmsd on 127.0.0.1:5696
#   make fuzz            libFuzzer targets in build-fuzz/ (clang)
#   make deb             Debian package in build/ (installs debhelper if missing)
#   make SANITIZE=address,undefined BUILD=build-asan   sanitizer variant
#   make install PREFIX=/usr DESTDIR=...
#   V=1                  show full command lines

BUILD      ?= build
# Parallel jobs for the builds `make test` and `make run` start (one per CPU).
JOBS       ?= $(shell nproc 2>/dev/null || echo 1)
PREFIX     ?= /usr/local
DESTDIR    ?=
PKG_CONFIG ?= pkg-config
SANITIZE   ?=

CFLAGS ?= -O2 -g
# override: a CFLAGS given on the command line (make CFLAGS=...) still gets
# the warnings, -Werror and the dependency files.
override CFLAGS += -std=c11 -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wvla \
          -fno-strict-aliasing -fstack-protector-strong -MMD -MP
CPPFLAGS += -D_GNU_SOURCE -I.
ifneq ($(SANITIZE),)
override CFLAGS  += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS += -fsanitize=$(SANITIZE)
endif

PKGS     := openssl sqlite3 libuv yaml-0.1 libargon2 jansson expat
DEP_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(PKGS) 2>/dev/null)
# libhttp-parser (the HTTPS listener) ships no .pc file in Debian 12.
DEP_LIBS   := $(shell $(PKG_CONFIG) --libs $(PKGS) 2>/dev/null) -lhttp_parser -ldl -lpthread -lm
CMOCKA_LIBS := $(shell $(PKG_CONFIG) --libs cmocka 2>/dev/null)
CPPFLAGS += $(DEP_CFLAGS)

ifeq ($(V),1)
Q :=
else
Q := @
endif

# Link order: a library comes before the ones it depends on. server/ and
# kmsctl/ are libraries too (all but their main.c), so that unit tests link
# them instead of compiling their sources.
MODULES := server kmsctl admin keys audit kmip crypto replication store hsm certs conf ttlv common
src_of   = $(sort $(wildcard $(1)/*.c))
obj_of   = $(patsubst %.c,$(BUILD)/obj/%.o,$(call src_of,$(1)))
libsrc_of = $(filter-out $(1)/main.c,$(call src_of,$(1)))
libobj_of = $(patsubst %.c,$(BUILD)/obj/%.o,$(call libsrc_of,$(1)))
LIBMODS  := $(foreach m,$(MODULES),$(if $(call libsrc_of,$(m)),$(m)))
LIBS     := $(foreach m,$(LIBMODS),$(BUILD)/lib$(m).a)

SERVER_OBJ := $(if $(wildcard server/main.c),$(BUILD)/obj/server/main.o)
KMSCTL_OBJ := $(if $(wildcard kmsctl/main.c),$(BUILD)/obj/kmsctl/main.o)
BENCH_OBJ  := $(call obj_of,bench)
TESTUTIL_OBJ := $(call obj_of,tests/unit/util)
UNIT_SRC   := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BIN   := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))

PROGS := $(if $(SERVER_OBJ),$(BUILD)/kmsd) $(if $(KMSCTL_OBJ),$(BUILD)/kmsctl) \
         $(if $(BENCH_OBJ),$(BUILD)/kmipbench)

.PHONY: all libs tests test run fuzz fuzz-smoke bench bench-cluster install clean deps deb
all: libs $(PROGS)
libs: $(LIBS)
tests: all $(UNIT_BIN)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

define LIB_RULE
$(BUILD)/lib$(1).a: $(call libobj_of,$(1))
	@$$(if $$(Q),echo "  AR      $$@")
	$$(Q)rm -f $$@ && $$(AR) rcs $$@ $$^
endef
$(foreach m,$(LIBMODS),$(eval $(call LIB_RULE,$(m))))

LINK = $(CC) $(LDFLAGS) -o $@ $^ $(LIBS) $(DEP_LIBS)

$(BUILD)/kmsd: $(SERVER_OBJ) $(LIBS)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $(SERVER_OBJ) $(LIBS) $(DEP_LIBS)
$(BUILD)/kmsctl: $(KMSCTL_OBJ) $(LIBS)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $(KMSCTL_OBJ) $(LIBS) $(DEP_LIBS)
$(BUILD)/kmipbench: $(BENCH_OBJ) $(LIBS)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $(BENCH_OBJ) $(LIBS) $(DEP_LIBS)

$(BUILD)/tests/%: tests/unit/%.c $(TESTUTIL_OBJ) $(LIBS)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  TEST    $@")
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -MF $@.d $(LDFLAGS) -o $@ $< $(TESTUTIL_OBJ) $(LIBS) $(CMOCKA_LIBS) $(DEP_LIBS)

deps:
	$(Q)packaging/deps.sh

# The contract: one command installs, builds and runs every suite.
test: deps
	$(Q)$(MAKE) --no-print-directory -j$(JOBS) BUILD=build-asan SANITIZE=address,undefined tests
	$(Q)$(MAKE) --no-print-directory -j$(JOBS) BUILD=build all
	$(Q)tests/run.sh build-asan

run: deps
	$(Q)$(MAKE) --no-print-directory -j$(JOBS) BUILD=build all
	$(Q)packaging/run-dev.sh

# libFuzzer targets: fuzz sources + ttlv + common (+ conf for fuzz_conf; + kmip,
# crypto, store, hsm for fuzz_kmip; + admin/ and what it uses for fuzz_admin
# and fuzz_backup;
# + the frame codec for fuzz_repl_frame; + crypto for fuzz_keyformat), built
# with clang.
# The JSON and XML message encodings (ttlv/json.c, ttlv/xml.c) are part of
# libttlv, but need libjansson and libexpat: they stay out of FUZZ_LIBSRC, so
# the targets that compile common + ttlv need no library, and only
# fuzz_ttlv_json / fuzz_ttlv_xml add them. (Programs link libttlv.a, an
# archive: one that never calls ttlv_*_json/xml pulls in neither file.)
FUZZ_BUILD := build-fuzz
FUZZ_CFLAGS := -g -O1 -std=c11 -D_GNU_SOURCE -I. -Wall -Wextra -Werror -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
TTLV_FORM_SRC := ttlv/json.c ttlv/xml.c
FUZZ_LIBSRC := $(call src_of,common) $(filter-out $(TTLV_FORM_SRC),$(call src_of,ttlv))
FUZZ_SRC := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BIN := $(patsubst tests/fuzz/%.c,$(FUZZ_BUILD)/%,$(FUZZ_SRC))
fuzz: $(FUZZ_BIN)
# The config parser's target also links conf/ and libyaml.
$(FUZZ_BUILD)/fuzz_conf: tests/fuzz/fuzz_conf.c $(FUZZ_LIBSRC) $(call src_of,conf)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  FUZZ    $@")
	$(Q)clang $(FUZZ_CFLAGS) -o $@ $^ -lyaml
# The KMIP target runs kmip_handle() against a real store and file keyring.
FUZZ_KMIP_SRC := $(foreach m,kmip crypto store hsm,$(call src_of,$(m)))
$(FUZZ_BUILD)/fuzz_kmip: tests/fuzz/fuzz_kmip.c tests/fuzz/fuzz_keyring.h $(FUZZ_LIBSRC) $(FUZZ_KMIP_SRC)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  FUZZ    $@")
	$(Q)clang $(FUZZ_CFLAGS) -o $@ $(filter-out %.h,$^) -lssl -lcrypto -lsqlite3 -largon2 -ldl -lpthread
FUZZ_REPL_SRC := replication/frame.c replication/entity.c store/device.c
# The admin-socket target: request decoding (admin/proto.c) and the
# commands (admin/cmds.c ...) against a real store;
# the cluster commands (admin/cluster.c) call into replication/ (not
# started in the target: they answer "replication is not running").
# The backup file target restores its input through the same commands.
FUZZ_ADMIN_SRC := $(foreach m,admin audit keys kmip crypto store hsm certs conf replication,$(call src_of,$(m)))
$(FUZZ_BUILD)/fuzz_admin $(FUZZ_BUILD)/fuzz_backup: $(FUZZ_BUILD)/%: tests/fuzz/%.c \
		tests/fuzz/fuzz_admin_env.h tests/fuzz/fuzz_keyring.h $(FUZZ_LIBSRC) $(FUZZ_ADMIN_SRC)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  FUZZ    $@")
	$(Q)clang $(FUZZ_CFLAGS) -o $@ $(filter-out %.h,$^) -lssl -lcrypto -lsqlite3 -largon2 -lyaml -luv -ldl -lpthread
# The replication frame codec: replication/frame.c and entity.c are pure
# (ttlv + common only, and store/device.c's checks of device identifiers).
$(FUZZ_BUILD)/fuzz_repl_frame: tests/fuzz/fuzz_repl_frame.c $(FUZZ_LIBSRC) $(FUZZ_REPL_SRC)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  FUZZ    $@")
	$(Q)clang $(FUZZ_CFLAGS) -o $@ $^
# The HTTPS listener's request reader (server/http_parse.c) is pure: common
# and libhttp-parser.
$(FUZZ_BUILD)/fuzz_http: tests/fuzz/fuzz_http.c $(FUZZ_LIBSRC) server/http_parse.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  FUZZ    $@")
	$(Q)clang $(FUZZ_CFLAGS) -o $@ $^ -lhttp_parser
$(FUZZ_BUILD)/fuzz_ttlv_json $(FUZZ_BUILD)/fuzz_ttlv_xml: $(FUZZ_BUILD)/%: tests/fuzz/%.c \
		$(FUZZ_LIBSRC) $(TTLV_FORM_SRC)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  FUZZ    $@")
	$(Q)clang $(FUZZ_CFLAGS) -o $@ $^ -ljansson -lexpat
# The clocks codec of store/ is pure (no SQLite): it links alone.
$(FUZZ_BUILD)/fuzz_store_clocks: tests/fuzz/fuzz_store_clocks.c $(FUZZ_LIBSRC) store/clocks.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  FUZZ    $@")
	$(Q)clang $(FUZZ_CFLAGS) -o $@ $^
# The key-format target: crypto/'s parsers and builders on OpenSSL's libcrypto.
$(FUZZ_BUILD)/fuzz_keyformat: tests/fuzz/fuzz_keyformat.c $(FUZZ_LIBSRC) $(call src_of,crypto)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  FUZZ    $@")
	$(Q)clang $(FUZZ_CFLAGS) -o $@ $^ -lcrypto -lpthread
$(FUZZ_BUILD)/%: tests/fuzz/%.c $(FUZZ_LIBSRC)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  FUZZ    $@")
	$(Q)clang $(FUZZ_CFLAGS) -o $@ $^

bench: all
	$(Q)bench/compare.sh

bench-cluster: all
	$(Q)bench/cluster.sh

install: all
	install -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/kmsd
	install -m 0755 $(BUILD)/kmsd $(DESTDIR)$(PREFIX)/sbin/kmsd
	install -m 0755 $(BUILD)/kmsctl $(DESTDIR)$(PREFIX)/bin/kmsctl
	install -m 0644 conf/kmsd.yaml $(DESTDIR)$(PREFIX)/share/kmsd/kmsd.yaml.sample
	install -d $(DESTDIR)$(PREFIX)/share/man/man8 $(DESTDIR)$(PREFIX)/share/man/man5
	install -m 0644 packaging/man/kmsd.8 packaging/man/kmsctl.8 $(DESTDIR)$(PREFIX)/share/man/man8/
	install -m 0644 packaging/man/kmsd.yaml.5 $(DESTDIR)$(PREFIX)/share/man/man5/
	install -d $(DESTDIR)$(PREFIX)/share/bash-completion/completions
	install -m 0644 packaging/bash-completion/kmsctl $(DESTDIR)$(PREFIX)/share/bash-completion/completions/kmsctl

# Debian package: installs debhelper when missing, then builds the working
# tree in a private copy (build/deb/kmsd-VERSION: no ./debian in the tree, and
# debian/rules' clean cannot touch anyone's build directories), so the
# package's own build lands in that copy. Result: build/kmsd_VERSION_ARCH.deb.
DEB_VERSION = $(shell dpkg-parsechangelog -l packaging/debian/changelog -S Version 2>/dev/null || echo 0.1.0)
deb:
	$(Q)dpkg-query -W -f='$${Status}' debhelper 2>/dev/null | grep -q 'install ok installed' || \
	  { SUDO=; [ "$$(id -u)" -eq 0 ] || SUDO=sudo; $$SUDO apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends debhelper; }
	$(Q)rm -rf build/deb && mkdir -p build/deb/kmsd-$(DEB_VERSION)
	$(Q)tar -cf - --exclude=./.git --exclude='./build*' --exclude=./debian --exclude=./var . | \
	  tar -xf - -C build/deb/kmsd-$(DEB_VERSION)
	$(Q)cp -r packaging/debian build/deb/kmsd-$(DEB_VERSION)/debian
	$(Q)cd build/deb/kmsd-$(DEB_VERSION) && dpkg-buildpackage -us -uc -b
	$(Q)mv build/deb/*.deb build/ && rm -rf build/deb && ls -l build/*.deb

clean:
	rm -rf build build-asan build-fuzz

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
