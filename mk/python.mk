# The Python binding (bindings/python), included at the end of the Makefile.
#
#   make python-check  the binding's unittests against $(BUILD)/libreactivestate.so,
#                      then python-e2e
#   make python-e2e    the cross-language tests: the Python and C process pairs
#                      of examples/python over a Unix socket
#   make python-bench  Python set through the binding vs a plain ctypes call, and
#                      the latency of a change from a C process to asyncio
#
# `make check` runs python-check too, except in sanitizer builds (make asan):
# a sanitized library cannot be loaded into an unsanitized python3.

PYTHON ?= python3
PY_ENV = REACTIVESTATE_LIB=$(CURDIR)/$(BUILD)/libreactivestate.so PYTHONPATH=$(CURDIR)/bindings/python CC="$(CC)"
PY_EXAMPLE_SRCS := $(wildcard examples/python/*.c)
PY_EXAMPLE_BINS := $(PY_EXAMPLE_SRCS:examples/%.c=$(BUILD)/examples/%)

.PHONY: python-check python-e2e python-bench

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

ifeq ($(findstring -fsanitize,$(CFLAGS)),)
check: python-check
endif
