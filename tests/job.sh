#!/bin/sh
# job.sh — runs one job of a test suite (mk/suites.mk) with its output
# captured: DIR/SUITE/KEY.log, its exit status in .rc, its seconds in
# .time, the CPU seconds of its processes in .cpu. Always exits 0, so that `make -j` runs every other job too;
# tests/report.sh reads the results. When the suite's last job is done
# it prints one progress line ("  finished asan-unit"): whole results
# come at the end, in order.
# Usage: job.sh DIR SUITE/KEY COMMAND...
dir=$1; job=$2; shift 2
suite=${job%%/*}
mkdir -p "$dir/$suite"
t0=$(date +%s)
"$@" >"$dir/$job.log" 2>&1 </dev/null
echo $? >"$dir/$job.rc"
echo $(( $(date +%s) - t0 )) >"$dir/$job.time"
# the CPU seconds of the job's processes (user + system), for report.sh
# (times must run in this shell, not a pipeline's subshell, to see them)
times >"$dir/$job.cpu"
sed -n 2p "$dir/$job.cpu" | awk '{ n = 0; for (i = 1; i <= 2; i++) { split($i, t, "m"); n += t[1] * 60 + t[2] }
  printf "%d\n", n + 0.5 }' >"$dir/$job.cpu.tmp" && mv "$dir/$job.cpu.tmp" "$dir/$job.cpu"
want=$(wc -w <"$dir/$suite.jobs" 2>/dev/null || echo 0)
have=$(find "$dir/$suite" -name '*.rc' | wc -l)
# mkdir is atomic: one job prints the line even when two finish at once
if [ "$have" -ge "$want" ] && mkdir "$dir/$suite.finished" 2>/dev/null; then
  failed=$(cat "$dir/$suite"/*.rc | grep -cv '^0$')
  echo "  finished $suite$( [ "$failed" -gt 0 ] && echo " ($failed of $want jobs failed)")"
fi
exit 0
