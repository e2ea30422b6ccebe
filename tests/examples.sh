#!/bin/sh
# examples.sh — the C examples as the README shows them: the README's tour
# is examples/tour.c word for word and prints what the README says; every
# example in examples/ runs and exits 0. Run by `make check`.
# Usage: examples.sh BUILD_EXAMPLES_DIR [RUNNER]
set -u
dir=${1:?usage: examples.sh BUILD_EXAMPLES_DIR [RUNNER]}
runner=${2:-}
cd "$(dirname "$0")/.." || exit 1
work=$(mktemp -d /tmp/rstate-examples-XXXXXX)
trap 'rm -rf "$work"' EXIT
passed=0 failed=0
ok() { passed=$((passed + 1)); }
fail() { failed=$((failed + 1)); echo "FAIL: $*"; }

# the first ```c block after "## A tour", and the ```console block after it
awk '/^## A tour/ {t = 1} t && /^```c$/ {c = 1; next} c && /^```$/ {exit} c' README.md >"$work/readme.c"
awk '/^## A tour/ {t = 1} t && /^```console$/ {c = 1; getline; next} c && /^```$/ {exit} c' README.md >"$work/readme.out"
if cmp -s "$work/readme.c" examples/tour.c; then ok; else
  fail "the README's tour differs from examples/tour.c"; diff "$work/readme.c" examples/tour.c | head -20
fi
# shellcheck disable=SC2086
if $runner "$dir/tour" >"$work/tour.out" 2>&1 && cmp -s "$work/tour.out" "$work/readme.out"; then ok; else
  fail "build/examples/tour does not print what the README shows"; diff "$work/readme.out" "$work/tour.out"
fi
grep -q '(null)' "$work/tour.out" && fail "the tour printed (null)"
for src in examples/*.c; do
  exe=$dir/$(basename "$src" .c)
  # shellcheck disable=SC2086
  if timeout 60 $runner "$exe" >"$work/out" 2>&1; then ok; else
    fail "$exe exited $?"; tail -20 "$work/out"
  fi
done
echo "examples: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
