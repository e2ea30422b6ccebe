# libreactivestate — build, test, install.
#
#   make              the shared and static library and reactivestate.pc in build/
#   make example      build what the README uses (the shared and static library,
#                     rstated, rstate, every example) and run examples/basics
#   make test         install what the tests need, then every suite of the four
#                     below and more, side by side (mk/suites.mk); the last line
#                     is the grand total "total: N passed, N failed (...)"
#   make check        the Criterion tests (on mem:, unix:, tcp:), the examples,
#                     the exported-symbol check, the tools' and the binding's tests,
#                     the layering check of src/ (mk/layering) and its self-test
#   make asan         the tests under AddressSanitizer + UndefinedBehaviorSanitizer
#   make tsan         every test under ThreadSanitizer
#   make valgrind     every test under valgrind, failing on any leak or error
#   make pkgconfig-check  install to a scratch prefix, run the README's install block
#   make bench        benchmarks through hyperfine; writes bench/RESULTS.md
#   make bench-peers  the same beside GSettings, GObject, Redis and NATS (installs them)
#   make fuzz         every libFuzzer target in fuzz/ for FUZZ_SECONDS each (60)
#   make soak-redis   redis-sentinel: writers and a watcher through failovers (40 s)
#   make install      PREFIX=/usr/local DESTDIR=
#
# Honours CC, CFLAGS, CPPFLAGS, LDFLAGS, PREFIX, DESTDIR. Sanitizer builds go
# to their own directory (BUILD=...), so they never mix with the normal one.

# The version is written once, in include/reactivestate.h (RSTATE_VERSION_*);
# the soname, the file names, reactivestate.pc and the manual pages take it
# from there, and so does the Python package (through rstate_version()).
rstate_version_part = $(shell sed -n 's/^\#define RSTATE_VERSION_$(1) \([0-9][0-9]*\).*/\1/p' include/reactivestate.h)
VERSION_MAJOR := $(call rstate_version_part,MAJOR)
VERSION := $(VERSION_MAJOR).$(call rstate_version_part,MINOR).$(call rstate_version_part,PATCH)
ifneq ($(words $(subst ., ,$(VERSION))),3)
$(error no RSTATE_VERSION_MAJOR/MINOR/PATCH found in include/reactivestate.h)
endif

CC ?= cc
CFLAGS ?= -O2 -g
PREFIX ?= /usr/local
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
BUILD ?= build

WARN := -std=c11 -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes -Wmissing-prototypes
LIB_CPPFLAGS := -Iinclude -Isrc -D_GNU_SOURCE -DRSTATE_BUILDING
LIB_CFLAGS := $(WARN) -fPIC -fvisibility=hidden -pthread
LIBS := -pthread -lm

# One folder per subsystem (README, "Layout"); a new folder compiles with no
# edit here.
SRCS := $(wildcard src/*/*.c)
OBJS := $(SRCS:src/%.c=$(BUILD)/obj/%.o)
SONAME := libreactivestate.so.$(VERSION_MAJOR)
SHARED := $(BUILD)/libreactivestate.so.$(VERSION)
STATIC := $(BUILD)/libreactivestate.a
PC := $(BUILD)/reactivestate.pc

TEST_SRCS := $(wildcard tests/test_*.c)
TEST_BINS := $(TEST_SRCS:tests/%.c=$(BUILD)/tests/%)
TEST_HELPERS := $(filter-out $(TEST_SRCS),$(wildcard tests/*.c))
EXAMPLE_SRCS := $(wildcard examples/*.c)
EXAMPLE_BINS := $(EXAMPLE_SRCS:examples/%.c=$(BUILD)/examples/%)

CRITERION_LIBS ?= -lcriterion

# The tests of what every store guarantees run again over a served store,
# once per transport (tests/helpers.h, RSTATE_TEST_TRANSPORT; mk/suites.mk):
# unix, tcp, file, and redis beside a Redis server tests/redis.sh starts for
# the run (and stops after it).
TRANSPORT_TESTS := watch order reentrancy debounce dispatch set set_many threads store errors backend

.PHONY: soak-redis fuzz bench bench-peers bench-guard all test deps check layering layering-selftest asan tsan valgrind example examples install uninstall clean symbols pkgconfig-check

all: $(SHARED) $(BUILD)/libreactivestate.so $(STATIC) $(PC)

$(BUILD)/obj/%.o: src/%.c $(wildcard src/*/*.h) include/reactivestate.h include/reactivestate/backend.h
	@mkdir -p $(dir $@)
	$(CC) $(LIB_CPPFLAGS) $(CPPFLAGS) $(LIB_CFLAGS) $(CFLAGS) -c $< -o $@

# -z nodelete: the library registers a thread-exit destructor (event.c), so
# it must stay mapped after a dlclose.
$(SHARED): $(OBJS)
	$(CC) -shared -Wl,-soname,$(SONAME) -Wl,-z,nodelete $(CFLAGS) $(LDFLAGS) -o $@ $(OBJS) $(LIBS)

$(BUILD)/libreactivestate.so: $(SHARED)
	ln -sf libreactivestate.so.$(VERSION) $(BUILD)/$(SONAME)
	ln -sf $(SONAME) $@

$(STATIC): $(OBJS)
	rm -f $@
	$(AR) rcs $@ $(OBJS)

PC_SED := sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' \
	    -e 's|@VERSION@|$(VERSION)|' pkgconfig/reactivestate.pc.in

$(PC): pkgconfig/reactivestate.pc.in Makefile
	@mkdir -p $(dir $@)
	$(PC_SED) > $@

# Tests and examples link the static library, so sanitizer flags in CFLAGS
# cover the library too.
TEST_CFLAGS := $(WARN) -Iinclude -Isrc -D_GNU_SOURCE -pthread
$(BUILD)/tests/%: tests/%.c $(TEST_HELPERS) tests/*.h $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(TEST_CFLAGS) $(CPPFLAGS) $(CFLAGS) $< $(TEST_HELPERS) -o $@ $(STATIC) $(LDFLAGS) $(CRITERION_LIBS) $(LIBS)

$(BUILD)/examples/%: examples/%.c $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(TEST_CFLAGS) $(CPPFLAGS) $(CFLAGS) $< -o $@ $(STATIC) $(LDFLAGS) $(LIBS)

examples: $(EXAMPLE_BINS)

# The README's first command: every later section of it works after this
# one alone (mk/tools.mk adds rstated and rstate to all, mk/python.mk the
# C halves of examples/python).
example: all $(EXAMPLE_BINS)
	$(BUILD)/examples/basics

deps:
	@sh tests/deps.sh

# test, check, asan, tsan and valgrind: mk/suites.mk.

# Which folder of src/ may include which one's headers: mk/layering, checked
# by mk/layering.sh; layering-selftest proves the check fails on bad includes.
layering:
	@sh mk/layering.sh

layering-selftest:
	@sh mk/layering-test.sh

symbols: $(SHARED)
	@bad=$$(nm -D --defined-only $(SHARED) | awk '{print $$3}' | grep -v '^rstate_' | \
	        grep -Ev '^(_init|_fini|_edata|_end|__bss_start)$$'); \
	if [ -n "$$bad" ]; then echo "exported symbols outside rstate_: $$bad"; exit 1; fi; \
	echo "symbols: only rstate_ symbols are exported"

install: all
	install -d $(DESTDIR)$(INCLUDEDIR)/reactivestate $(DESTDIR)$(LIBDIR)/pkgconfig
	install -m 644 include/reactivestate.h $(DESTDIR)$(INCLUDEDIR)/
	install -m 644 include/reactivestate/backend.h $(DESTDIR)$(INCLUDEDIR)/reactivestate/
	install -m 755 $(SHARED) $(DESTDIR)$(LIBDIR)/
	ln -sf libreactivestate.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libreactivestate.so
	install -m 644 $(STATIC) $(DESTDIR)$(LIBDIR)/
	$(PC_SED) > $(DESTDIR)$(LIBDIR)/pkgconfig/reactivestate.pc

uninstall:
	rm -f $(DESTDIR)$(INCLUDEDIR)/reactivestate.h $(DESTDIR)$(INCLUDEDIR)/reactivestate/backend.h
	rm -f $(DESTDIR)$(LIBDIR)/libreactivestate.* $(DESTDIR)$(LIBDIR)/$(SONAME)
	rm -f $(DESTDIR)$(LIBDIR)/pkgconfig/reactivestate.pc

# Installs into a staging DESTDIR (the paths a package gets), then runs the
# README's install block as written (tests/pkgconfig.sh): install into a
# prefix of one's own, build the tour with pkg-config, run it with rpath and
# with LD_LIBRARY_PATH.
pkgconfig-check: all
	rm -rf $(BUILD)/destdir
	$(MAKE) -s install PREFIX=/usr DESTDIR=$(CURDIR)/$(BUILD)/destdir >/dev/null
	test -f $(BUILD)/destdir/usr/include/reactivestate.h
	test -L $(BUILD)/destdir/usr/lib/libreactivestate.so.0
	grep -q '^prefix=/usr$$' $(BUILD)/destdir/usr/lib/pkgconfig/reactivestate.pc
	@sh tests/pkgconfig.sh

# libFuzzer targets, built with ASan+UBSan; seeds come from fuzz/seeds/NAME/
# when present, and what a run finds is kept in build-fuzz/corpus-NAME/.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := $(patsubst fuzz/%.c,%,$(wildcard fuzz/fuzz_*.c))
fuzz:
	@sh tests/deps.sh fuzz
	@mkdir -p build-fuzz
	@for n in $(FUZZ_TARGETS); do \
	  clang -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude -Isrc -D_GNU_SOURCE \
	    fuzz/$$n.c $(SRCS) -o build-fuzz/$$n -pthread -lm || exit 1; \
	  mkdir -p build-fuzz/corpus-$$n; \
	  seeds=; [ -d fuzz/seeds/$$n ] && seeds=fuzz/seeds/$$n; \
	  echo "fuzzing $$n for $(FUZZ_SECONDS) s"; \
	  build-fuzz/$$n -max_total_time=$(FUZZ_SECONDS) -max_len=16384 -print_final_stats=1 build-fuzz/corpus-$$n $$seeds \
	    2>build-fuzz/$$n.log || { tail -40 build-fuzz/$$n.log; exit 1; }; \
	  grep -E 'stat::number_of_executed_units|stat::peak_rss' build-fuzz/$$n.log; \
	done

# Writers and a watcher on a redis-sentinel: store through kill -9 of the
# primary every few seconds, for SOAK_SECONDS (40); not part of make test.
SOAK_SECONDS ?= 40
soak-redis: $(BUILD)/tests/test_redis
	RSTATE_TEST_SOAK=$(SOAK_SECONDS) $(BUILD)/tests/test_redis --filter '*/soak*' --verbose

# Benchmarks build their own optimised copy of the library (build-bench/).
bench:
	@sh tests/deps.sh bench
	sh bench/run.sh

bench-peers:
	@sh tests/deps.sh bench
	sh bench/run.sh --peers

# The in-process targets in a short mode against this build's library,
# failing only beyond 2x a target (bench/guard.sh). Not part of check: on a
# loaded machine its short runs move by more than that (see bench/notes.md).
bench-guard: $(STATIC)
	BUILD=$(BUILD) sh bench/guard.sh

clean:
	rm -rf build build-asan build-tsan build-valgrind build-bench build-fuzz

include mk/tools.mk
include mk/python.mk
include mk/suites.mk
