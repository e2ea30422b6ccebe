#!/bin/sh
# python_install.sh — the Python binding as a pip user gets it: `pip install
# --no-build-isolation ./bindings/python` into a fresh virtual environment
# (the package's build backend builds the C library and ships it inside),
# `import reactivestate` there from outside the checkout with no
# REACTIVESTATE_LIB, and the binding's unittests against that installed copy
# (tests/support.py refuses to run them from the checkout); then `pip wheel`,
# and the wheel installed into a second fresh environment. No package index
# is used. Run by `make test` (suite python-install).
# Usage: python_install.sh SCRATCH_DIR   (PYTHON: the interpreter, python3)
set -u
scratch=${1:?usage: python_install.sh SCRATCH_DIR}
python=${PYTHON:-python3}
repo=$(cd "$(dirname "$0")/.." && pwd)
rm -rf "$scratch" && mkdir -p "$scratch" && scratch=$(cd "$scratch" && pwd)
passed=0 failed=0
ok() { passed=$((passed + 1)); }
fail() { failed=$((failed + 1)); echo "FAIL: $*"; }
# nothing of the checkout, and no library named from outside
unset REACTIVESTATE_LIB PYTHONPATH
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INDEX=1 PIP_NO_CACHE_DIR=1
check_import() { # VENV: imports from /, the library must be the package's own
  (cd / && "$1/bin/python" -c '
import os, reactivestate as rs, reactivestate._native as n
pkg = os.path.dirname(rs.__file__)
assert os.path.dirname(n.lib._name) == pkg, (n.lib._name, pkg)
with rs.Store() as s:
    s.define("x", "integer", 1)
    s["x"] = 2
    assert s["x"] == 2
print("imported", rs.__file__, "with", os.path.basename(n.lib._name))
')
}

if "$python" -m venv "$scratch/venv" && "$scratch/venv/bin/python" -m pip install -q --no-build-isolation "$repo/bindings/python"; then
  ok
  if check_import "$scratch/venv"; then ok; else fail "import reactivestate from the pip-installed copy"; fi
  if (cd / && RSTATE_TEST_INSTALLED=1 sh "$repo/tests/pyunit.sh" "$scratch/venv/bin/python" -m unittest discover \
      -s "$repo/bindings/python/tests" -t "$repo/bindings/python/tests") >"$scratch/unittest.log" 2>&1; then ok; else
    fail "the binding's tests against the installed copy"; cat "$scratch/unittest.log"
  fi
  tail -n 1 "$scratch/unittest.log" | sed 's/^/the binding'"'"'s tests, installed copy: /'
else
  fail "pip install --no-build-isolation ./bindings/python into a fresh venv"
fi

if "$scratch/venv/bin/python" -m pip wheel -q --no-build-isolation --no-deps -w "$scratch/wheels" "$repo/bindings/python"; then
  ok
  whl=$(ls "$scratch"/wheels/reactivestate-*.whl)
  echo "wheel: $(basename "$whl")"
  if "$python" -m venv "$scratch/venv2" && "$scratch/venv2/bin/python" -m pip install -q "$whl" && check_import "$scratch/venv2"; then
    ok
  else
    fail "the wheel installed into a fresh venv"
  fi
else
  fail "pip wheel ./bindings/python"
fi
# pip builds in place: nothing may be left behind but bytecode caches
git -C "$repo" status --porcelain --ignored bindings/python | grep '^!!' | grep -v '__pycache__' &&
  fail "building the package left files in the checkout"
echo "python-install: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
