#!/bin/sh
# report.sh — the end of `make test` (and of check, asan, tsan, valgrind):
# the log of every failed job, then one line per suite, in the order given,
# naming it ("asan-unit: 165 passed, 0 failed"), then the grand total as
# the very last line ("total: 1234 passed, 0 failed ..."). A job's counts
# are the last "N passed, N failed" of its log; a job whose log has none
# counts as one check, passed when it exited 0; a job that exited non-zero
# counts as failed at least once; a job that never ran (its build failed)
# counts as one failure. Exits 1 when anything failed.
# Usage: report.sh DIR SUITE...
dir=$1; shift
total_p=0 total_f=0 n=0 lines="" cpu=0
nl='
'
for suite in "$@"; do
  n=$((n + 1))
  sp=0 sf=0 secs=0 jobs=0
  # shellcheck disable=SC2013 # keys are words
  for key in $(cat "$dir/$suite.jobs" 2>/dev/null); do
    jobs=$((jobs + 1))
    log=$dir/$suite/$key.log
    if [ ! -f "$dir/$suite/$key.rc" ]; then
      echo "==== $suite/$key did not run (did its build fail?)"
      sf=$((sf + 1))
      continue
    fi
    rc=$(cat "$dir/$suite/$key.rc")
    secs=$((secs + $(cat "$dir/$suite/$key.time" 2>/dev/null || echo 0)))
    cpu=$((cpu + $(cat "$dir/$suite/$key.cpu" 2>/dev/null || echo 0)))
    last=$(grep -E '[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
    counts=$(echo "$last" | grep -oE '[0-9]+ passed, [0-9]+ failed' | tail -n 1)
    p=$(echo "$counts" | awk '{print $1}')
    f=$(echo "$counts" | awk '{print $3}')
    if [ -z "$p" ]; then
      if [ "$rc" -eq 0 ]; then p=1 f=0; else p=0 f=1; fi
    fi
    [ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && f=1
    if [ "$rc" -ne 0 ] || [ "$f" -ne 0 ]; then
      echo "==== FAILED: $suite/$key (exit $rc), the last 150 lines of $log:"
      tail -n 150 "$log"
      echo "==== end of $suite/$key"
    fi
    sp=$((sp + p)) sf=$((sf + f))
  done
  [ "$jobs" -eq 0 ] && { echo "==== $suite: no jobs recorded"; sf=$((sf + 1)); }
  what=""
  [ "$jobs" -gt 1 ] && what="$jobs programs, "
  lines="$lines$suite: $sp passed, $sf failed ($what${secs} s)$nl"
  total_p=$((total_p + sp)) total_f=$((total_f + sf))
done
printf '%s' "$lines"
wall=""
[ -f "$dir/start" ] && s=$(( $(date +%s) - $(cat "$dir/start") )) && wall=", $((s / 60)) min $((s % 60)) s"
# CPU time: the jobs' processes, not the builds
echo "total: $total_p passed, $total_f failed ($n suites$wall; the tests took $((cpu / 60)) min $((cpu % 60)) s of CPU)"
[ "$total_f" -eq 0 ]
