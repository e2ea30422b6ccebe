# The Python binding (bindings/python), included at the end of the Makefile.
#
#   make python-check  the binding's unittests against $(BUILD)/libreactivestate.so,
#                      then python-e2e
#   make python-e2e    the cross-language tests: the Python and C process pairs
#                      of examples/python over a Unix socket
#   make python-install-check  pip install ./bindings/python into a fresh venv,
#                      its tests against that copy, and pip wheel
#   make python-bench  Python set through the binding vs a plain ctypes call, and
#                      the latency of a change from a C process to asyncio
#
# `make check` runs both as the suites python and python-e2e, and `make test`
# adds python-install (tests/python_install.sh: pip install into a fresh
# venv): mk/suites.mk.

PYTHON ?= python3
PY_ENV = REACTIVESTATE_LIB=$(CURDIR)/$(BUILD)/libreactivestate.so PYTHONPATH=$(CURDIR)/bindings/python CC="$(CC)"
PY_EXAMPLE_SRCS := $(wildcard examples/python/*.c)
PY_EXAMPLE_BINS := $(PY_EXAMPLE_SRCS:examples/%.c=$(BUILD)/examples/%)

.PHONY: python-check python-e2e python-bench python-install-check

example: $(PY_EXAMPLE_BINS)

$(BUILD)/examples/python/%: examples/python/%.c examples/python/wait.h $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(TEST_CFLAGS) $(CPPFLAGS) $(CFLAGS) $< -o $@ $(STATIC) $(LDFLAGS) $(LIBS)

python-check: $(BUILD)/libreactivestate.so $(PY_EXAMPLE_BINS)
	@$(PY_ENV) $(PYTHON) -m unittest discover -s bindings/python/tests -t bindings/python/tests
	@$(MAKE) -s python-e2e

python-e2e: $(BUILD)/libreactivestate.so $(PY_EXAMPLE_BINS)
	@$(PY_ENV) RSTATE_EXAMPLES=$(CURDIR)/$(BUILD)/examples/python \
	  $(PYTHON) -m unittest discover -s bindings/python/e2e -t bindings/python/e2e

python-bench: $(BUILD)/libreactivestate.so $(PY_EXAMPLE_BINS)
	@$(PY_ENV) $(PYTHON) bench/python_set.py
	@$(PY_ENV) RSTATE_EXAMPLES=$(CURDIR)/$(BUILD)/examples/python $(PYTHON) bench/python_latency.py

python-install-check:
	@PYTHON=$(PYTHON) sh tests/python_install.sh $(BUILD)/python-install
