#!/bin/sh
# Instructions per in-process operation, by callgrind: runs
# bench/instructions.c (built against build-bench/, as bench/run.sh builds
# it) with N and 2N sets and prints the difference over N, per set, or per
# delivered event for the fan-outs. Needs valgrind.
# Usage: sh bench/instructions.sh [MODE...]   (value watch1 fan10 fan1000)
set -e
cd "$(dirname "$0")/.."
make -s BUILD=build-bench CFLAGS="-O2 -DNDEBUG" build-bench/libreactivestate.a
mkdir -p build-bench/bench
${CC:-cc} -std=c11 -O2 -DNDEBUG -Iinclude bench/instructions.c -o build-bench/bench/instructions \
  build-bench/libreactivestate.a -pthread -lm
count() { # mode n: instructions of the whole run
  valgrind --tool=callgrind --callgrind-out-file=/dev/null build-bench/bench/instructions "$1" "$2" 2>&1 |
    awk '/Collected/ {print $4}'
}
for mode in ${*:-value watch1 fan10 fan1000}; do
  case $mode in fan1000) n=2000 per=1000 ;; fan10) n=20000 per=10 ;; *) n=20000 per=1 ;; esac
  a=$(count "$mode" "$n")
  b=$(count "$mode" $((2 * n)))
  echo "$mode $a $b $n $per" | awk '{printf "%-8s %8.1f instructions per %s\n", $1, ($3 - $2) / $4 / $5, ($5 > 1 ? "event" : "set")}'
done
