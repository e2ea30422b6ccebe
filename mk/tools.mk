# mk/tools.mk — the command-line tools: rstated (the daemon) and rstate (the
# client), their manual pages, their tests. Included at the end of the
# Makefile.
#
#   make                 also builds $(BUILD)/tools/rstated and $(BUILD)/tools/rstate
#   make tools-check     tests/tools/cli.sh (the binaries without a server)
#   make man-check       the pages format without a groff warning
#   make tools-integration  tests/tools/integration.py: rstated and rstate over a socket
#   make tools-valgrind  the same with every tool process under valgrind
#                        (make check and valgrind run them as suites: mk/suites.mk)
#   make install         also installs both tools in BINDIR and their pages in MANDIR
#
# The tools link the static library, so they need nothing at run time, and
# sanitizer flags in CFLAGS cover them too. tests/test_tools.c (built by the
# Makefile's test rule) links the tools' helpers as well.

BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man

TOOL_MAINS := tools/rstate.c tools/rstated.c
TOOL_HELPERS := $(filter-out $(TOOL_MAINS),$(wildcard tools/*.c))
TOOL_BINS := $(TOOL_MAINS:tools/%.c=$(BUILD)/tools/%)
TOOL_CFLAGS := $(WARN) -Iinclude -D_GNU_SOURCE -pthread
MAN_PAGES := man/rstate.1 man/rstated.1

.PHONY: tools tools-check tools-integration tools-valgrind install-tools uninstall-tools man-check http-check browser-check screenshot bench-http

all: $(TOOL_BINS)
tools: $(TOOL_BINS)

$(BUILD)/tools/%: tools/%.c $(TOOL_HELPERS) tools/*.h $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(TOOL_CFLAGS) $(CPPFLAGS) $(CFLAGS) $< $(TOOL_HELPERS) -o $@ $(STATIC) $(LDFLAGS) $(LIBS)

# rstated's HTTP side (tools/http/, rstated --http) links GNU libmicrohttpd,
# found through pkg-config; nothing else does. The live page is embedded:
# page.c is generated from page.html.
MHD_CFLAGS := $(shell pkg-config --cflags libmicrohttpd 2>/dev/null)
MHD_LIBS := $(or $(shell pkg-config --libs libmicrohttpd 2>/dev/null),-lmicrohttpd)
HTTP_SRCS := $(wildcard tools/http/*.c)
HTTP_PAGE_C := $(BUILD)/tools/http/page.c
$(HTTP_PAGE_C): tools/http/page.html tools/http/embed.sh
	@mkdir -p $(dir $@)
	sh tools/http/embed.sh $< http_page > $@.tmp && mv $@.tmp $@
$(BUILD)/tools/rstated: tools/rstated.c $(TOOL_HELPERS) $(HTTP_SRCS) $(HTTP_PAGE_C) tools/*.h tools/http/*.h $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(TOOL_CFLAGS) $(MHD_CFLAGS) $(CPPFLAGS) $(CFLAGS) $< $(TOOL_HELPERS) $(HTTP_SRCS) $(HTTP_PAGE_C) -o $@ \
	  $(STATIC) $(LDFLAGS) $(MHD_LIBS) $(LIBS)

$(BUILD)/tests/test_tools: $(TOOL_HELPERS) tools/*.h
$(BUILD)/tests/test_tools: TEST_HELPERS += $(TOOL_HELPERS)

tools-check: $(TOOL_BINS)
	@bash tests/tools/cli.sh $(BUILD)/tools

tools-integration: $(TOOL_BINS)
	@command -v python3 >/dev/null || { echo "tools-integration: python3 is needed"; exit 1; }
	@python3 tests/tools/integration.py $(BUILD)/tools

# rstated --http with curl: every row of API.md's table, errors, tokens,
# resume, limits, 10,000 changes on a slow stream (tests/tools/http_api.py).
http-check: $(TOOL_BINS)
	@command -v curl >/dev/null || { echo "http-check: curl is needed (make deps)"; exit 1; }
	@python3 tests/tools/http_api.py $(BUILD)/tools

# The live page in headless chromium (tests/tools/browser.py): it loads,
# shows every variable, shows a socket change within a second, and an edit
# in the page reaches a socket watcher.
browser-check: $(TOOL_BINS)
	@python3 tests/tools/browser.py $(BUILD)/tools

# bench/http.c: change -> SSE line beside the socket client, one stream's
# rate, 1,000 streams (an optimised build of its own, like make bench).
bench-http:
	$(MAKE) BUILD=build-bench CFLAGS="-O2 -g -DNDEBUG" build-bench/libreactivestate.a build-bench/tools/http/page.c
	@mkdir -p build-bench/bench
	$(CC) -O2 -g -DNDEBUG $(TOOL_CFLAGS) $(MHD_CFLAGS) -Ibench bench/http.c $(HTTP_SRCS) build-bench/tools/http/page.c \
	  $(TOOL_HELPERS) -o build-bench/bench/http build-bench/libreactivestate.a $(MHD_LIBS) $(LIBS)
	build-bench/bench/http

# Regenerates docs/live-page.png and docs/live-page-phone.png from the page.
screenshot: $(TOOL_BINS)
	@python3 tests/tools/browser.py $(BUILD)/tools --screenshot docs

# The same with every rstate and rstated process under valgrind: an error or
# a leak changes the exit status, which the script checks everywhere.
tools-valgrind: $(TOOL_BINS)
	@TOOL_RUNNER="valgrind -q --leak-check=full --show-leak-kinds=definite,indirect,possible \
	  --errors-for-leak-kinds=definite,indirect,possible --error-exitcode=99" \
	  python3 tests/tools/integration.py $(BUILD)/tools
	@TOOL_RUNNER="valgrind -q --leak-check=full --show-leak-kinds=definite,indirect,possible \
	  --errors-for-leak-kinds=definite,indirect,possible --error-exitcode=99" \
	  python3 tests/tools/http_api.py $(BUILD)/tools

# The pages must format without a warning (skipped when groff is missing).
# Their .TH line names "libreactivestate" without a number: install-tools
# writes the header's version (VERSION, Makefile) into the installed copy.
man-check:
	@command -v groff >/dev/null || { echo "man-check: groff not installed, pages not checked"; exit 0; }; \
	for p in $(MAN_PAGES); do \
	  out=$$(LC_ALL=C.UTF-8 MANWIDTH=80 groff -man -Tutf8 -ww -z $$p 2>&1); \
	  if [ -n "$$out" ]; then echo "$$p: $$out"; exit 1; fi; \
	done; echo "man-check: $(MAN_PAGES) format without warnings"

install: install-tools
install-tools: $(TOOL_BINS)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1
	install -m 755 $(TOOL_BINS) $(DESTDIR)$(BINDIR)/
	for p in $(MAN_PAGES); do \
	  sed 's/^\(\.TH .*"libreactivestate\)"/\1 $(VERSION)"/' $$p >$(DESTDIR)$(MANDIR)/man1/$${p##*/} && \
	  chmod 644 $(DESTDIR)$(MANDIR)/man1/$${p##*/} || exit 1; \
	done

uninstall: uninstall-tools
uninstall-tools:
	rm -f $(DESTDIR)$(BINDIR)/rstate $(DESTDIR)$(BINDIR)/rstated
	rm -f $(DESTDIR)$(MANDIR)/man1/rstate.1 $(DESTDIR)$(MANDIR)/man1/rstated.1
