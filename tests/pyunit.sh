#!/bin/sh
# Runs a Python unittest command and adds the line every suite ends with:
# "N passed, N failed" (failures and errors failed; skipped tests neither).
# Exits with the command's status.
# Usage: pyunit.sh COMMAND...
out=$(mktemp)
trap 'rm -f "$out"' EXIT
"$@" >"$out" 2>&1
rc=$?
cat "$out"
ran=$(sed -n 's/^Ran \([0-9]*\) tests\{0,1\} in .*/\1/p' "$out" | tail -n 1)
sum() { sed -n "s/^FAILED (.*$1=\([0-9]*\).*/\1/p" "$out" | tail -n 1; }
failures=$(sum failures); errors=$(sum errors); skipped=$(sed -n 's/.*skipped=\([0-9]*\).*/\1/p' "$out" | tail -n 1)
unexpected=$(sum "unexpected successes")
failed=$(( ${failures:-0} + ${errors:-0} + ${unexpected:-0} ))
passed=$(( ${ran:-0} - failed - ${skipped:-0} ))
if [ -z "$ran" ] || { [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; }; then
  note=""
  [ -z "$ran" ] && note=', no "Ran N tests" line'
  echo "FAILED: $* (exit $rc$note)"
  failed=$((failed + 1))
fi
echo "$passed passed, $failed failed"
exit $rc
