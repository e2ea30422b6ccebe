#!/bin/sh
# Runs test programs (optionally under a runner such as valgrind). A program
# that passes shows its output but for Criterion's unnamed "Synthesis:"
# line, and then one line naming it: "test_store: 44 passed, 0 failed". A
# failing one shows everything. The last line sums the programs up:
# "N passed, N failed". Exits non-zero if any program failed.
# Usage: run.sh "RUNNER" prog...
runner=$1; shift
passed=0; failed=0; status=0
for t in "$@"; do
  out=$(mktemp)
  # shellcheck disable=SC2086
  $runner "$t" >"$out" 2>&1
  rc=$?
  line=$(grep 'Synthesis:' "$out" | tail -n 1)
  p=$(echo "$line" | sed -n 's/.*Passing: \([0-9]*\).*/\1/p')
  f=$(echo "$line" | sed -n 's/.*Failing: \([0-9]*\).*/\1/p')
  c=$(echo "$line" | sed -n 's/.*Crashing: \([0-9]*\).*/\1/p')
  p=${p:-0}
  f=$((${f:-0} + ${c:-0}))
  why=""
  # a sanitizer or valgrind report in a test's process fails the program,
  # even when it came after the test itself had passed (leaks at exit)
  if grep -qE '^==[0-9]+== |LeakSanitizer|ThreadSanitizer|AddressSanitizer|runtime error:' "$out"; then
    why="a sanitizer or valgrind report is in its output"
    f=$((f + 1))
  fi
  if [ "$rc" -ne 0 ] || [ -z "$line" ]; then
    why="${why:+$why; }exit $rc"
    [ -z "$line" ] && why="$why, no Criterion synthesis"
    [ "$f" -eq 0 ] && f=1 # a program that failed counts as a failure at least once
  fi
  if [ -n "$why" ] || [ "$f" -ne 0 ]; then
    cat "$out"
    echo "FAILED: $t${why:+: $why}"
    status=1
  else
    grep -v 'Synthesis:' "$out"
  fi
  echo "$(basename "$t"): $p passed, $f failed"
  passed=$((passed + p))
  failed=$((failed + f))
  rm -f "$out"
done
echo "$passed passed, $failed failed"
exit $status
