#!/bin/sh
# bench/guard.sh — the in-process benchmarks in a short mode, as a regression
# guard for CI (make bench-guard): fails only when a figure is more than 2×
# its target (a maximum over twice the target, a minimum under half of it).
# It is not the measurement: `make bench` is. Short runs on a shared machine
# are noisy, so the guard's margin is wide, and it judges the CPU-time
# figures the programs print, not wall time.
#
# Targets still missed by more than 2× are listed in KNOWN below with the
# figure they stood at: they are reported, and fail only when they get worse
# than that by more than half. Remove an id from KNOWN once it is within 2×.
#
# Environment: CC (cc), GUARD_SCALE (0.05), BUILD (build: the library of
# the check flow's build, -O2, is the one judged; no separate build).
set -eu
cd "$(dirname "$0")/.."
CC=${CC:-cc}
SCALE=${GUARD_SCALE:-0.05}
BUILD=${BUILD:-build}
PROGS="get set set_watch fanout scale dispatch memory"
# id:figure when the guard was written (bench/notes.md says why each is missed).
KNOWN="mem.watch:420 mem.watch2:256 scale.ratio.rand:11 dispatch.stream:2000000"

[ -f $BUILD/libreactivestate.a ] || make -s BUILD=$BUILD $BUILD/libreactivestate.a
mkdir -p $BUILD/guard
out=$BUILD/guard.tsv
: > $out
for p in $PROGS; do
  $CC -std=c11 -O2 -DNDEBUG -Wall -Wextra -Wpedantic -Iinclude -Ibench bench/$p.c -o $BUILD/guard/$p \
    $BUILD/libreactivestate.a -pthread -lm
  $BUILD/guard/$p --scale "$SCALE" --out $out > /dev/null
done
awk -F'\t' -v known="$KNOWN" '
  BEGIN { n = split(known, k, " "); for (i = 1; i <= n; i++) { split(k[i], kv, ":"); was[kv[1]] = kv[2] } }
  $14 == "<" || $14 == ">" {
    id = $3; v = $6 + 0; t = $15 + 0; cmp = $14
    bad = cmp == "<" ? v > 2 * t : v < t / 2
    note = ""
    if (bad && (id in was)) {
      w = was[id] + 0
      bad = cmp == "<" ? v > 1.5 * w : v < w / 1.5
      note = sprintf(" (known miss, was %g)", w)
    }
    printf "%-20s %12.4g %-8s target %s= %-10g %s%s\n", id, v, $5, cmp, t, bad ? "REGRESSED" : "ok", note
    if (bad) fails++
  }
  END { if (fails) { printf "bench-guard: %d figure(s) beyond the guard\n", fails; exit 1 } }' $out
