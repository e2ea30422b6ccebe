# mk/suites.mk — every test suite as jobs whose output is captured
# (tests/job.sh), run side by side under make -j, and reported in a fixed
# order (tests/report.sh): the log of each failed job, one line per suite
# naming it ("asan-unit: 461 passed, 0 failed (22 programs, 78 s)"), and
# last the grand total ("total: N passed, N failed (29 suites, ...)").
# Included at the end of the Makefile.
#
#   make test       deps, then every suite below, $(TEST_JOBS) jobs at a time
#   make check      the plain build's suites (CHECK_SUITES); make asan, tsan,
#                   valgrind: those of their build; make -jN runs them N at a time
#   make suites SUITES="unit tools-cli"   only those (each builds what it runs)
#
# A suite is a list of jobs, SUITE_KEYS_<suite>: test programs, each run by
# SUITE_RUN_<suite> with the program's name appended (tests/run.sh under the
# suite's runner and environment), or the one key "all", SUITE_RUN_<suite>
# run as it is. Every job's output ends with "N passed, N failed" (a job
# without it counts as one check). SUITE_BUILD_<suite> is the build it needs
# (build-plain, build-asan, build-tsan, build-valgrind), made once before its jobs start.
# Logs: build/suites/<suite>/<key>.log.
#
# To add a suite: its SUITE_KEYS_, SUITE_RUN_ and SUITE_BUILD_, and its name
# in the list of its flavour below (CHECK_SUITES, ...), which TEST_SUITES takes.

SUITE_DIR := build/suites
TEST_JOBS ?= $(shell n=$$(nproc 2>/dev/null || echo 2); [ "$$n" -lt 2 ] && n=2; echo $$n)

ASAN_BUILD := build-asan
TSAN_BUILD := build-tsan
ASAN_VARS := BUILD=$(ASAN_BUILD) CC=clang \
  CFLAGS="-O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
VALGRIND_BUILD := build-valgrind
# Criterion cannot start under ThreadSanitizer (Snaipe/Criterion#274), and
# under valgrind it costs a second of CPU per test (it executes the program
# again for each test, and valgrind starts over, reading the twenty
# libraries Criterion links), so these builds compile the same tests
# against the stand-in header in tests/shim/, which forks without exec.
TSAN_VARS := BUILD=$(TSAN_BUILD) CC=clang CFLAGS="-O1 -g -fsanitize=thread" CPPFLAGS=-Itests/shim CRITERION_LIBS=
# (gcc: valgrind 3.19 cannot read clang 14's DWARF 5; the stand-in's empty
# variadic arguments are pedantic warnings the plain build already checks)
VALGRIND_VARS := BUILD=$(VALGRIND_BUILD) CFLAGS="-O2 -g -Wno-pedantic -Wno-format-zero-length" CPPFLAGS=-Itests/shim CRITERION_LIBS=
TSAN_ENV := TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1"

# Each test runs in a forked process; valgrind follows the children, and
# tests/run.sh fails a program whose output shows a valgrind error or leak.
# --vgdb=no: a test process that becomes another user (test_remote's peer
# suite, as root) cannot reach the gdbserver files root's valgrind made.
VALGRIND_OPTS := -q --vgdb=no --leak-check=full --show-leak-kinds=definite,indirect,possible \
  --errors-for-leak-kinds=definite,indirect,possible --error-exitcode=99
VALGRIND := env RSTATE_TEST_QUICK=1 valgrind $(VALGRIND_OPTS) --trace-children=yes --trace-children-skip=*redis-server*,*redis-check-rdb*,*redis-sentinel*

UNIT_KEYS := $(TEST_SRCS:tests/%.c=%)
TRANSPORT_KEYS := $(TRANSPORT_TESTS:%=test_%)
# the longest programs first, so that make -j does not end on one of them
LONG_KEYS := test_server test_store test_remote test_load test_threads test_watch
long_first = $(filter $(LONG_KEYS),$(1)) $(filter-out $(LONG_KEYS),$(1))

# ---- the suites ------------------------------------------------------------

# The plain build (and valgrind over it).
SUITE_KEYS_examples := all
SUITE_RUN_examples = sh tests/examples.sh $(BUILD)/examples
SUITE_KEYS_unit := $(call long_first,$(UNIT_KEYS))
SUITE_RUN_unit = sh tests/run.sh "$(RUNNER)" $(BUILD)/tests/
SUITE_KEYS_unit-unix := $(call long_first,$(TRANSPORT_KEYS))
SUITE_RUN_unit-unix = env RSTATE_TEST_TRANSPORT=unix sh tests/run.sh "$(RUNNER)" $(BUILD)/tests/
SUITE_KEYS_unit-tcp := $(call long_first,$(TRANSPORT_KEYS))
SUITE_RUN_unit-tcp = env RSTATE_TEST_TRANSPORT=tcp sh tests/run.sh "$(RUNNER)" $(BUILD)/tests/
SUITE_KEYS_layering := all
SUITE_RUN_layering = sh mk/layering.sh
SUITE_KEYS_layering-selftest := all
SUITE_RUN_layering-selftest = sh mk/layering-test.sh
SUITE_KEYS_unit-file := $(call long_first,$(TRANSPORT_KEYS))
SUITE_RUN_unit-file = env RSTATE_TEST_TRANSPORT=file sh tests/run.sh "$(RUNNER)" $(BUILD)/tests/
SUITE_KEYS_unit-redis := $(call long_first,$(TRANSPORT_KEYS))
SUITE_RUN_unit-redis = env RSTATE_TEST_TRANSPORT=redis sh tests/redis.sh sh tests/run.sh "$(RUNNER)" $(BUILD)/tests/
SUITE_KEYS_http := all
SUITE_RUN_http = $(MAKE) -s --no-print-directory http-check
SUITE_KEYS_browser := all
SUITE_RUN_browser = $(MAKE) -s --no-print-directory browser-check
SUITE_KEYS_symbols := all
SUITE_RUN_symbols = $(MAKE) -s --no-print-directory symbols
SUITE_KEYS_man := all
SUITE_RUN_man = $(MAKE) -s --no-print-directory man-check
SUITE_KEYS_tools-cli := all
SUITE_RUN_tools-cli = bash tests/tools/cli.sh $(BUILD)/tools
SUITE_KEYS_tools-integration := all
SUITE_RUN_tools-integration = python3 tests/tools/integration.py $(BUILD)/tools
SUITE_KEYS_python := all
SUITE_RUN_python = env $(PY_ENV) sh tests/pyunit.sh $(PYTHON) -m unittest discover -s bindings/python/tests \
  -t bindings/python/tests
SUITE_KEYS_python-e2e := all
SUITE_RUN_python-e2e = env $(PY_ENV) RSTATE_EXAMPLES=$(CURDIR)/$(BUILD)/examples/python sh tests/pyunit.sh \
  $(PYTHON) -m unittest discover -s bindings/python/e2e -t bindings/python/e2e
SUITE_KEYS_python-install := all
SUITE_RUN_python-install = env PYTHON=$(PYTHON) sh tests/python_install.sh $(BUILD)/python-install
SUITE_KEYS_pkgconfig := all
SUITE_RUN_pkgconfig = $(MAKE) -s --no-print-directory pkgconfig-check
SUITE_KEYS_valgrind-unit := $(call long_first,$(UNIT_KEYS))
SUITE_RUN_valgrind-unit = sh tests/run.sh "$(VALGRIND)" $(VALGRIND_BUILD)/tests/
SUITE_KEYS_valgrind-unit-unix := $(call long_first,$(TRANSPORT_KEYS))
SUITE_RUN_valgrind-unit-unix = env RSTATE_TEST_TRANSPORT=unix sh tests/run.sh "$(VALGRIND)" $(VALGRIND_BUILD)/tests/
# every rstate and rstated process under valgrind: an error or a leak
# changes the exit status, which the script checks everywhere
SUITE_KEYS_valgrind-tools := all
SUITE_RUN_valgrind-tools = env TOOL_RUNNER="valgrind $(VALGRIND_OPTS)" python3 tests/tools/integration.py $(BUILD)/tools

# AddressSanitizer + UndefinedBehaviorSanitizer (no Python: a sanitized
# library cannot be loaded into an unsanitized python3).
SUITE_KEYS_asan-examples := all
SUITE_RUN_asan-examples = sh tests/examples.sh $(ASAN_BUILD)/examples
SUITE_KEYS_asan-unit := $(SUITE_KEYS_unit)
SUITE_RUN_asan-unit = sh tests/run.sh "" $(ASAN_BUILD)/tests/
SUITE_KEYS_asan-unit-unix := $(SUITE_KEYS_unit-unix)
SUITE_RUN_asan-unit-unix = env RSTATE_TEST_TRANSPORT=unix sh tests/run.sh "" $(ASAN_BUILD)/tests/
SUITE_KEYS_asan-unit-tcp := $(SUITE_KEYS_unit-tcp)
SUITE_RUN_asan-unit-tcp = env RSTATE_TEST_TRANSPORT=tcp sh tests/run.sh "" $(ASAN_BUILD)/tests/
SUITE_KEYS_asan-unit-file := $(SUITE_KEYS_unit-file)
SUITE_RUN_asan-unit-file = env RSTATE_TEST_TRANSPORT=file sh tests/run.sh "" $(ASAN_BUILD)/tests/
SUITE_KEYS_asan-unit-redis := $(SUITE_KEYS_unit-redis)
SUITE_RUN_asan-unit-redis = env RSTATE_TEST_TRANSPORT=redis sh tests/redis.sh sh tests/run.sh "" $(ASAN_BUILD)/tests/
SUITE_KEYS_asan-symbols := all
SUITE_RUN_asan-symbols = $(MAKE) -s --no-print-directory symbols BUILD=$(ASAN_BUILD)
SUITE_KEYS_asan-tools-cli := all
SUITE_RUN_asan-tools-cli = bash tests/tools/cli.sh $(ASAN_BUILD)/tools
SUITE_KEYS_asan-tools-integration := all
SUITE_RUN_asan-tools-integration = python3 tests/tools/integration.py $(ASAN_BUILD)/tools

# ThreadSanitizer.
SUITE_KEYS_tsan-unit := $(SUITE_KEYS_unit)
SUITE_RUN_tsan-unit = env $(TSAN_ENV) sh tests/run.sh "" $(TSAN_BUILD)/tests/
SUITE_KEYS_tsan-unit-unix := $(SUITE_KEYS_unit-unix)
SUITE_RUN_tsan-unit-unix = env RSTATE_TEST_TRANSPORT=unix $(TSAN_ENV) sh tests/run.sh "" $(TSAN_BUILD)/tests/
SUITE_KEYS_tsan-unit-tcp := $(SUITE_KEYS_unit-tcp)
SUITE_RUN_tsan-unit-tcp = env RSTATE_TEST_TRANSPORT=tcp $(TSAN_ENV) sh tests/run.sh "" $(TSAN_BUILD)/tests/
SUITE_KEYS_tsan-unit-file := $(SUITE_KEYS_unit-file)
SUITE_RUN_tsan-unit-file = env RSTATE_TEST_TRANSPORT=file $(TSAN_ENV) sh tests/run.sh "" $(TSAN_BUILD)/tests/
SUITE_KEYS_tsan-unit-redis := $(SUITE_KEYS_unit-redis)
SUITE_RUN_tsan-unit-redis = env RSTATE_TEST_TRANSPORT=redis $(TSAN_ENV) sh tests/redis.sh sh tests/run.sh "" \
  $(TSAN_BUILD)/tests/

# The flavours. Python cannot load a sanitized library: a sanitized plain
# build (make check CFLAGS=-fsanitize=...) leaves the Python suites out.
PY_SUITES := $(if $(findstring -fsanitize,$(CFLAGS)),,python python-e2e)
CHECK_SUITES := layering layering-selftest examples unit unit-unix unit-tcp unit-file unit-redis symbols man tools-cli \
  tools-integration http browser $(PY_SUITES)
# (the layering and the man pages do not depend on the build: checked once)
ASAN_SUITES := asan-examples asan-unit asan-unit-unix asan-unit-tcp asan-unit-file asan-unit-redis asan-symbols \
  asan-tools-cli asan-tools-integration
TSAN_SUITES := tsan-unit tsan-unit-unix tsan-unit-tcp tsan-unit-file tsan-unit-redis
VALGRIND_SUITES := valgrind-unit valgrind-unit-unix valgrind-tools
# make test: every suite, reported in this order
TEST_SUITES := $(CHECK_SUITES) $(ASAN_SUITES) $(TSAN_SUITES) $(VALGRIND_SUITES) pkgconfig python-install
# and started in this one: the slowest suites first
START_FIRST := valgrind-tools valgrind-unit tsan-unit valgrind-unit-unix tsan-unit-unix tsan-unit-tcp \
  asan-unit asan-tools-integration python-install

$(foreach s,$(filter-out layering layering-selftest,$(CHECK_SUITES)) pkgconfig python-install valgrind-tools,\
  $(eval SUITE_BUILD_$(s) := build-plain))
$(foreach s,valgrind-unit valgrind-unit-unix,$(eval SUITE_BUILD_$(s) := build-valgrind))
$(foreach s,$(ASAN_SUITES),$(eval SUITE_BUILD_$(s) := build-asan))
$(foreach s,$(TSAN_SUITES),$(eval SUITE_BUILD_$(s) := build-tsan))

# ---- builds ------------------------------------------------------------------

.PHONY: build-plain build-asan build-tsan build-valgrind suites test check asan tsan valgrind

build-plain: all $(TEST_BINS) $(EXAMPLE_BINS) $(PY_EXAMPLE_BINS)

build-asan:
	@$(MAKE) -s --no-print-directory $(ASAN_VARS) all $(TEST_BINS:$(BUILD)/%=$(ASAN_BUILD)/%) \
	  $(EXAMPLE_BINS:$(BUILD)/%=$(ASAN_BUILD)/%)

build-tsan:
	@rm -rf $(TSAN_BUILD)/tests
	@$(MAKE) -s --no-print-directory $(TSAN_VARS) $(TEST_BINS:$(BUILD)/%=$(TSAN_BUILD)/%)

build-valgrind:
	@rm -rf $(VALGRIND_BUILD)/tests
	@$(MAKE) -s --no-print-directory $(VALGRIND_VARS) $(TEST_BINS:$(BUILD)/%=$(VALGRIND_BUILD)/%)

# ---- jobs ----------------------------------------------------------------------

jsuite = $(firstword $(subst /, ,$(1)))
jkey = $(lastword $(subst /, ,$(1)))
jobs_of = $(addprefix job/$(1)/,$(SUITE_KEYS_$(1)))
job_cmd = $(SUITE_RUN_$(call jsuite,$(1)))$(if $(filter all,$(call jkey,$(1))),,$(call jkey,$(1)))

$(foreach s,$(TEST_SUITES),$(eval $(call jobs_of,$(s)): $(SUITE_BUILD_$(s))))

# job/SUITE/KEY: never a file, so it always runs ('+': a sub-make in it
# shares the job slots)
job/%:
	+@sh tests/job.sh $(SUITE_DIR) $* $(call job_cmd,$*)

# Runs SUITES: their jobs (slowest suites started first; -k: a failed
# build does not stop the others), then the report in the order given.
suites:
	@rm -rf $(SUITE_DIR) && mkdir -p $(SUITE_DIR) && date +%s >$(SUITE_DIR)/start
	@$(foreach s,$(SUITES),echo $(SUITE_KEYS_$(s)) >$(SUITE_DIR)/$(s).jobs;)
	+@$(MAKE) -s --no-print-directory -k $(foreach s,$(filter $(SUITES),$(START_FIRST)) \
	  $(filter-out $(START_FIRST),$(SUITES)),$(call jobs_of,$(s))) || true
	@sh tests/report.sh $(SUITE_DIR) $(SUITES)

# What CI runs (.ci/run) and the README gives: every suite, every checker,
# side by side. The last line is the grand total.
test: deps
	+@$(MAKE) -s --no-print-directory -j$(TEST_JOBS) suites SUITES="$(TEST_SUITES)"

check:
	+@$(MAKE) -s --no-print-directory suites SUITES="$(CHECK_SUITES)"
asan:
	+@$(MAKE) -s --no-print-directory suites SUITES="$(ASAN_SUITES)"
tsan:
	+@$(MAKE) -s --no-print-directory suites SUITES="$(TSAN_SUITES)"
valgrind:
	+@$(MAKE) -s --no-print-directory suites SUITES="$(VALGRIND_SUITES)"
