#!/bin/sh
# bench/run.sh — the benchmarks: `make bench` (sh bench/run.sh) and
# `make bench-peers` (sh bench/run.sh --peers).
#
# 1. Builds an optimised copy of the library in build-bench/ (-O2 -DNDEBUG)
#    and every program of bench/ against its static archive.
# 2. Runs each program through hyperfine (warmup, several runs; JSON and
#    Markdown exports in bench/results/). Every run of a program appends its
#    own figures (mean, p50 / p99 / max, the floor measured in the same run,
#    the ratio) to bench/results/raw.tsv.
# 3. Folds the runs into one figure each (the median over the runs) and
#    writes bench/RESULTS.md: date, machine, compiler, the targets, every
#    figure beside its floor, and the noise within this run and against the
#    previous one.
# With --peers it also installs GLib's development files and the Redis and
# NATS servers when they are missing (apt-get, as root) and measures
# GSettings and GObject, Redis and NATS beside us, and durable writes
# beside Redis's append-only file (peers_file.c).
# With --report it only rewrites bench/RESULTS.md from the files the last
# run left in bench/results/ (after an edit of bench/notes.md).
#
# Environment: CC (cc), BENCH_RUNS (7), BENCH_WARMUP (1), BENCH_SCALE (1:
# the programs' sample counts; 0.1 for a quick try), BENCH_NICE (-10: the
# priority the runs get when root, so other work on the machine disturbs
# them less; "none" to leave it alone), BENCH_REV (unset: the working tree;
# a git revision: benchmark the library as committed there, e.g. HEAD).
set -eu
cd "$(dirname "$0")/.."

peers=0
report_only=0
case "${1:-}" in
  --peers) peers=1 ;;
  --report) report_only=1 ;; # rewrite RESULTS.md from the last run's files (after editing notes.md)
  "") ;;
  *) echo "usage: sh bench/run.sh [--peers | --report]" >&2; exit 2 ;;
esac

CC=${CC:-cc}
RUNS=${BENCH_RUNS:-7}
WARMUP=${BENCH_WARMUP:-1}
SCALE=${BENCH_SCALE:-1}
BUILD=build-bench
BIN=$BUILD/bench
OUT=bench/results
RAW=$OUT/raw.tsv
RESULTS=bench/RESULTS.md
PROGS="get set set_watch fanout scale set_many dispatch threads memory remote_latency remote_throughput remote_fanout remote_watchers file redis"

# RESULTS.md: the header the run wrote, the tables, the hyperfine table.
write_results() {
  prev=/dev/null
  if [ -f $OUT/summary.prev.tsv ]; then prev=$OUT/summary.prev.tsv; fi
  {
    cat $OUT/header.md
    awk -v notes=bench/notes.md -v prev=$prev -v prev_desc="$(cat $OUT/prev_desc)" -f bench/report.awk \
      bench/notes.md $prev $OUT/summary.tsv
    echo "## Whole programs (hyperfine)"
    echo
    echo "Wall time of each program run, setup included (building 100,000 variables, starting threads):"
    echo "not a per-operation figure, but its spread is another view of the machine's noise."
    echo
    cat $OUT/hyperfine.md
  } > $RESULTS
  echo "bench: wrote $RESULTS (raw figures and hyperfine exports in $OUT/)"
  awk -F'\t' '$16 != "-" { printf "  %-18s %-62s %12.4g %-9s %s\n", $3, $4, $7, $5, $18 }' $OUT/summary.tsv
}

if [ $report_only = 1 ]; then
  for f in header.md prev_desc summary.tsv hyperfine.md; do
    [ -f $OUT/$f ] || { echo "bench: no $OUT/$f: run make bench first" >&2; exit 1; }
  done
  write_results
  exit 0
fi

command -v hyperfine >/dev/null || { echo "bench: hyperfine is needed (apt-get install hyperfine)" >&2; exit 1; }

# ---- build -------------------------------------------------------------------
# The library under test: the working tree, or BENCH_REV exported from git.
tree=.
if [ -n "${BENCH_REV:-}" ]; then
  tree=$BUILD/tree
  rm -rf $tree && mkdir -p $tree
  git archive --format=tar "$BENCH_REV" Makefile mk src include pkgconfig | tar -x -C $tree
  echo "bench: building the library of $BENCH_REV ($(git rev-parse --short "$BENCH_REV")) with -O2 -DNDEBUG in $tree/$BUILD/"
else
  echo "bench: building the library with -O2 -DNDEBUG in $BUILD/"
fi
LIB=$tree/$BUILD/libreactivestate.a
# the static library alone: the programs link nothing else (and an exported
# tree has no tools/ for `all`)
make -s -C $tree BUILD=$BUILD CFLAGS="-O2 -DNDEBUG" $BUILD/libreactivestate.a
mkdir -p $BIN $OUT
for p in $PROGS; do
  $CC -std=c11 -O2 -DNDEBUG -Wall -Wextra -Wpedantic -I$tree/include -Ibench bench/$p.c -o $BIN/$p $LIB -pthread -lm
done

if [ $peers = 1 ]; then
  # The peers' Debian packages, installed (as root) when missing: GLib for
  # peers.c, the Redis and NATS servers for peers_remote.c (which starts its
  # own servers; nats-server is in /usr/sbin).
  pkgs=""
  if ! command -v pkg-config >/dev/null || ! pkg-config --exists gio-2.0 gobject-2.0 ||
     ! command -v glib-compile-schemas >/dev/null; then
    pkgs="libglib2.0-dev libglib2.0-bin pkg-config"
  fi
  for s in redis-server nats-server; do
    command -v $s >/dev/null || [ -x /usr/sbin/$s ] || [ -x /usr/bin/$s ] || pkgs="$pkgs $s"
  done
  if [ -n "$pkgs" ]; then
    if [ "$(id -u)" != 0 ]; then
      echo "bench: --peers needs $pkgs; run as root to install them" >&2
      exit 1
    fi
    echo "bench: installing $pkgs"
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q $pkgs >/dev/null ||
      { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $pkgs >/dev/null; }
  fi
  # shellcheck disable=SC2046
  $CC -std=gnu11 -O2 -DNDEBUG -Wall -Wextra -I$tree/include -Ibench bench/peers.c -o $BIN/peers \
    $(pkg-config --cflags --libs gio-2.0 gobject-2.0) -pthread -lm
  $CC -std=gnu11 -O2 -DNDEBUG -Wall -Wextra -I$tree/include -Ibench bench/peers_remote.c -o $BIN/peers_remote \
    $LIB -pthread -lm
  $CC -std=gnu11 -O2 -DNDEBUG -Wall -Wextra -I$tree/include -Ibench bench/peers_file.c -o $BIN/peers_file \
    $LIB -pthread -lm
  PROGS="$PROGS peers peers_remote peers_file"
fi

# ---- run -----------------------------------------------------------------------
nice=""
if [ "${BENCH_NICE:--10}" != none ] && [ "$(id -u)" = 0 ] && nice -n "${BENCH_NICE:--10}" true 2>/dev/null; then
  nice="nice -n ${BENCH_NICE:--10}"
fi

set --
for p in $PROGS; do
  set -- "$@" -n "$p" "$BIN/$p --out $RAW --scale $SCALE"
done
rm -f $RAW
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
start=$(date +%s)
echo "bench: $(echo $PROGS | wc -w) programs, $WARMUP warmup + $RUNS runs each${nice:+ ($nice)}"
$nice hyperfine -N --style basic --warmup "$WARMUP" --runs "$RUNS" \
  --export-json $OUT/hyperfine.json --export-markdown $OUT/hyperfine.md "$@"
elapsed=$(( $(date +%s) - start ))
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- report --------------------------------------------------------------------
rm -f $OUT/summary.prev.tsv $OUT/summary.prev.info
if [ -f $OUT/summary.tsv ]; then
  mv $OUT/summary.tsv $OUT/summary.prev.tsv
  if [ -f $OUT/summary.info ]; then mv $OUT/summary.info $OUT/summary.prev.info; fi
fi
awk -v warmup="$WARMUP" -f bench/summarize.awk $RAW > $OUT/summary.tsv
date_now=$(date -u '+%Y-%m-%d %H:%M UTC')

cpu=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1)
family=$(lscpu 2>/dev/null | sed -n 's/^CPU family: *//p' | head -1)
model=$(lscpu 2>/dev/null | sed -n 's/^Model: *//p' | head -1)
hyper=$(lscpu 2>/dev/null | sed -n 's/^Hypervisor vendor: *//p' | head -1)
clocksrc=$(cat /sys/devices/system/clocksource/clocksource0/current_clocksource 2>/dev/null || echo "?")
thp=$(sed -n 's/.*\[\(.*\)\].*/\1/p' /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null || echo "?")
commit=$(git rev-parse --short "${BENCH_REV:-HEAD}" 2>/dev/null || echo "?")
if [ -z "${BENCH_REV:-}" ] && [ -n "$(git status --porcelain -- src include 2>/dev/null)" ]; then
  # name the uncommitted state by a checksum of the sources, so two runs can tell
  commit="$commit + uncommitted changes in src/ or include/ ($(find src include -type f | sort | xargs cat 2>/dev/null | cksum | cut -d' ' -f1))"
fi
printf '%s\t%s\n' "$date_now" "$commit" > $OUT/summary.info
prev_desc="an earlier run"
if [ -f $OUT/summary.prev.info ]; then
  prev_date=$(awk -F'\t' '{ print $1 }' $OUT/summary.prev.info)
  prev_lib=$(awk -F'\t' '{ print (NF > 1 ? $2 : "?") }' $OUT/summary.prev.info)
  if [ "$prev_lib" = "$commit" ]; then prev_desc="$prev_date, same library"
  else prev_desc="$prev_date, library $prev_lib: the library changed between the runs, so this is not noise alone"; fi
fi
echo "$prev_desc" > $OUT/prev_desc

{
  echo "# Benchmark results"
  echo
  if [ $peers = 1 ]; then by='`make bench-peers` (our figures and the peers'"'"', in one run)'; else by='`make bench`'; fi
  echo "Written by $by; do not edit by hand (see bench/README.md; \`sh bench/run.sh --report\` rewrites it"
  echo "from the last run after an edit of bench/notes.md)."
  echo
  echo "| | |"
  echo "|---|---|"
  echo "| Date | $date_now |"
  echo "| CPU | ${cpu:-?} (family $family, model $model)${hyper:+, $hyper guest}, clocksource $clocksrc, transparent huge pages: $thp |"
  echo "| Cores | $(nproc) |"
  echo "| Kernel | $(uname -sr) |"
  echo "| Compiler | $($CC --version | head -1), \`-O2 -DNDEBUG\` |"
  echo "| C library | $(ldd --version 2>/dev/null | head -1) |"
  if [ $peers = 1 ]; then
    echo "| GLib | $(pkg-config --modversion glib-2.0) |"
    redis_v=$(redis-server --version | sed -n 's/.* v=\([^ ]*\).*/\1/p')
    nats_v=$(PATH=$PATH:/usr/sbin nats-server --version | sed 's/^nats-server: *//')
    echo "| Redis, NATS | redis-server $redis_v, nats-server $nats_v (Debian's packages; started by \`bench/peers_remote.c\` and \`bench/peers_file.c\`) |"
  fi
  echo "| hyperfine | $(hyperfine --version) — $WARMUP warmup + $RUNS measured runs per program${nice:+, under \`$nice\`} |"
  echo "| Library | libreactivestate $commit |"
  echo "| Load average | $load_before before, $load_after after ($elapsed s; the benchmarks' own threads count too) |"
  echo
  echo "## Method"
  echo
  echo "- Every figure is the median over the $RUNS measured runs of the program that measures it;"
  echo "  each run measures its own floors too, and the ratio is taken within a run."
  echo "- **mean** is the per-operation mean: the thread's CPU time (CLOCK_THREAD_CPUTIME_ID, read once"
  echo "  around the whole loop) over the operations, so time spent descheduled by other work on this"
  echo "  2-core machine does not count; **wall mean** is the same over wall-clock time when it differs."
  echo "  Throughputs across threads (events/s, sets/s) are wall clock."
  echo "- **p50 / p99 / max** come from wall-clock (CLOCK_MONOTONIC) samples of a batch of 100 operations"
  echo "  each (fan-out: whole sets; dispatch latency and the eventfd floor: one event per sample), so"
  echo "  the clock's ~20 ns cost is a fraction of a nanosecond per operation; they are percentiles of"
  echo "  the per-operation time of each batch, and max includes any preemption."
  echo "- Loops reuse one \`rstate_value\` (or \`rstate_assign\` array), changing only its number, as"
  echo "  a user's tight loop would; every set is a real change (an equal value would send no event)."
  echo "  The scalar shortcuts (\`rstate_get_float\`, \`rstate_set_float\`) are measured too."
  echo "- Watchers are inline unless the figure says queued; each callback increments a counter, and"
  echo "  every program checks that each watcher got every event before it reports."
  echo "- Floors: \`floor.call\` an indirect call through a pointer the compiler cannot see through;"
  echo "  \`floor.mutex\` an uncontended pthread mutex lock+unlock; \`floor.clock\` a read of"
  echo "  CLOCK_REALTIME (every accepted change is stamped with it); \`floor.eventfd\` a write to an"
  echo "  eventfd waking a thread blocked in read() until it acknowledges; \`floor.handoff\` events"
  echo "  through a mutex-protected list to a thread woken by an eventfd (the least a cross-thread"
  echo "  queue costs); \`floor.mutex4\` four threads on one mutex; \`floor.miss\` one dependent load"
  echo "  from a random cache line of a region as big as the 100,000-variable store; \`payload\` the"
  echo "  bytes the information itself takes."
  echo "- Remote figures (\`remote_*\`): a server in the same process serves a \`mem:\` store; clients are"
  echo "  \`unix:\`/\`tcp:\` stores in the same process (each its own connection and connection thread),"
  echo "  so one CLOCK_MONOTONIC times a set on one thread and the callback on another. Latencies are"
  echo "  one change per sample, the setter waiting for the last callback before the next change; the"
  echo "  mean is wall clock. Their floors move messages of one EVENT frame's size (89 bytes):"
  echo "  \`floor.X.rtt\` a socket ping-pong round trip between two threads; \`floor.X.relay\` a write"
  echo "  relayed by a middle thread into a second socket, read by a third thread, timed as ours"
  echo "  (the hops of a served change; \`remote.X.relay.p50x\` / \`.p99x\`: ours over it, percentile for"
  echo "  percentile, within the run);"
  echo "  \`floor.unix.stream\` / \`floor.unix.msg\` frames through a socket in 64 KiB writes / one"
  echo "  write each; \`floor.unix.fan100\` one thread writing into 100 sockets, each read by its"
  echo "  own blocked thread, to the last read. Targets on p50 / p99 are checked on that percentile."
  echo
} > $OUT/header.md

write_results
