#!/bin/sh
# bench/redis_lua.sh — Redis's CPU time per set of the Function library
# (src/redis/library.c) at several git revisions, alternated on one
# redis-server of its own (bench/notes.md, redis.latency.p50x).
#
#   sh bench/redis_lua.sh [REV ...]        (default: HEAD~1 and the working tree, "." )
#
# Each revision's library text is dumped, a loop function is appended that
# calls `sets` (one set of a float) 200 times in one FCALL, and each
# repetition runs CALLS such FCALLs per text, texts in turn. A figure is
# the server's main-thread on-CPU time (/proc/PID/task/PID/schedstat, so
# preemption does not count) per set; `wall` is INFO commandstats'
# usec_per_call over 200. Prints each repetition, then medians and ranges.
# Environment: CALLS (40), REPS (8), PORT (16479).
set -eu
cd "$(dirname "$0")/.."
CALLS=${CALLS:-40}
REPS=${REPS:-8}
PORT=${PORT:-16479}
[ $# -gt 0 ] || set -- HEAD~1 .
tmp=$(mktemp -d)
cli="redis-cli -p $PORT"
cleanup() { $cli shutdown nosave >/dev/null 2>&1 || true; rm -rf "$tmp"; }
trap cleanup EXIT INT TERM

printf '#include <stdio.h>\nextern const char *const rstate__redis_library[];\nint main(void) {\n  for (int i = 0; rstate__redis_library[i]; i++) fputs(rstate__redis_library[i], stdout);\n  return 0;\n}\n' > "$tmp/dump.c"
i=0
for rev in "$@"; do
  i=$((i + 1))
  mkdir -p "$tmp/$i"
  if [ "$rev" = . ]; then
    cp src/redis/library.c src/redis/redis.h "$tmp/$i/"
  else
    git show "$rev:src/redis/library.c" > "$tmp/$i/library.c"
    git show "$rev:src/redis/redis.h" > "$tmp/$i/redis.h"
  fi
  ${CC:-cc} -std=c11 -Isrc -Iinclude -I"$tmp/$i" -o "$tmp/$i/dump" "$tmp/dump.c" "$tmp/$i/library.c"
  "$tmp/$i/dump" > "$tmp/$i/lib.lua"
  cat >> "$tmp/$i/lib.lua" <<'LUA'
redis.register_function('rstate_bench_loop', function(K, A)
  local n, args = tonumber(A[1]), {}
  for i = 2, #A do args[i - 1] = A[i] end
  for i = 1, n do args[10] = 'f' .. i; sets(K, args) end
  return n
end)
LUA
  sed -n 's/^#!lua name=\(.*\)$/\1/p' "$tmp/$i/lib.lua" > "$tmp/$i/name"
done

redis-server --port $PORT --bind 127.0.0.1 --save '' --appendonly no --daemonize yes --dir "$tmp" \
  --logfile "$tmp/redis.log" --pidfile "$tmp/redis.pid" >/dev/null
n=0
until $cli ping >/dev/null 2>&1; do
  n=$((n + 1)); [ $n -lt 100 ] || { echo "redis_lua: redis-server did not start on $PORT" >&2; exit 1; }
  sleep 0.1
done
pid=$($cli info server | sed -n 's/^process_id:\([0-9]*\).*/\1/p')
K="rs:{b}:meta rs:{b}:defs rs:{b}:vars rs:{b}:log"

: > "$tmp/out"
for r in $(seq "$REPS"); do
  line="rep $r load $(cut -d' ' -f1 /proc/loadavg)"
  i=0
  for rev in "$@"; do
    i=$((i + 1))
    name=$(cat "$tmp/$i/name")
    $cli function flush >/dev/null
    $cli -x function load replace < "$tmp/$i/lib.lua" >/dev/null
    if [ "$r" = 1 ] && [ "$i" = 1 ]; then
      $cli fcall "${name}_define" 4 $K tok - "" 100000 lib D 3 f0 >/dev/null
    fi
    $cli config resetstat >/dev/null
    c0=$(cut -d' ' -f1 /proc/$pid/task/$pid/schedstat)
    for c in $(seq "$CALLS"); do
      echo "FCALL rstate_bench_loop 4 $K 200 100000 1 tok - \"\" 1 lib 1 0 f 0"
    done | $cli >/dev/null
    c1=$(cut -d' ' -f1 /proc/$pid/task/$pid/schedstat)
    u=$($cli info commandstats | sed -n 's/^cmdstat_fcall:.*usec_per_call=\([0-9.]*\).*/\1/p')
    line="$line  $rev $(echo "($c1 - $c0) / 200000 / $CALLS" | bc -l | cut -c1-5) wall $(echo "$u / 200" | bc -l | cut -c1-5)"
  done
  echo "$line" | tee -a "$tmp/out"
done
for rev in "$@"; do
  awk -v r="$rev" '{ for (i = 5; i < NF; i += 4) if ($i == r) print $(i + 1) }' "$tmp/out" | sort -n |
    awk -v r="$rev" '{ a[NR] = $1 } END { m = NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2
                      printf "%s: CPU per set median %.1f us (%.1f-%.1f), n=%d\n", r, m, a[1], a[NR], NR }'
done
