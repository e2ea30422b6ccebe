#!/bin/sh
# Runs a command beside a Redis server of its own: starts redis-server on
# 127.0.0.1 on a free port, in a temporary directory, with nothing saved;
# exports RSTATE_TEST_REDIS=127.0.0.1:PORT; runs "$@"; stops that server
# (by its pid) and removes the directory. Exits with the command's status.
# Usage: redis.sh command args...
set -u
dir=$(mktemp -d /tmp/rstate-redis.XXXXXX)
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -rf "$dir"
}
trap cleanup EXIT INT TERM
for try in 1 2 3 4 5; do
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" \
    --logfile "$dir/redis.log" --daemonize no --repl-diskless-sync-delay 0 &
  pid=$!
  i=0
  while [ $i -lt 100 ]; do
    if redis-cli -p "$port" ping >/dev/null 2>&1; then break; fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.02; i=$((i + 1))
  done
  if redis-cli -p "$port" ping >/dev/null 2>&1; then break; fi
  kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; pid=
done
if [ -z "$pid" ]; then echo "redis.sh: could not start redis-server" >&2; cat "$dir/redis.log" >&2; exit 1; fi
RSTATE_TEST_REDIS=127.0.0.1:$port
export RSTATE_TEST_REDIS
"$@"
