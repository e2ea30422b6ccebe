#!/bin/sh
# Runs test programs (optionally under a runner such as valgrind), shows each
# one's output, and closes with one line summing Criterion's syntheses:
# "N passed, N failed". Exits non-zero if any program failed.
# Usage: run.sh "RUNNER" prog...
runner=$1; shift
passed=0; failed=0; status=0
for t in "$@"; do
  out=$(mktemp)
  # shellcheck disable=SC2086
  $runner "$t" >"$out" 2>&1
  rc=$?
  cat "$out"
  line=$(grep 'Synthesis:' "$out" | tail -n 1)
  p=$(echo "$line" | sed -n 's/.*Passing: \([0-9]*\).*/\1/p')
  f=$(echo "$line" | sed -n 's/.*Failing: \([0-9]*\).*/\1/p')
  c=$(echo "$line" | sed -n 's/.*Crashing: \([0-9]*\).*/\1/p')
  passed=$((passed + ${p:-0}))
  failed=$((failed + ${f:-0} + ${c:-0}))
  # a sanitizer or valgrind report in a test's process fails the program,
  # even when it came after the test itself had passed (leaks at exit)
  if grep -qE '^==[0-9]+== |LeakSanitizer|ThreadSanitizer|AddressSanitizer|runtime error:' "$out"; then
    echo "FAILED: $t: a sanitizer or valgrind report is in its output"
    failed=$((failed + 1))
    status=1
  fi
  if [ "$rc" -ne 0 ] || [ -z "$line" ]; then
    echo "FAILED: $t (exit $rc)"
    [ -z "$line" ] && failed=$((failed + 1))
    status=1
  fi
  rm -f "$out"
done
echo "$passed passed, $failed failed"
exit $status
