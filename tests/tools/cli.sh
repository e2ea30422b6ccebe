#!/usr/bin/env bash
# cli.sh — the rstate and rstated binaries where no server is needed: help
# and version, every usage error (exit 2, a sentence and a "Try" hint),
# a missing daemon (exit 3), and rstated's start-up failures (exit 1 with a
# sentence: token file, schema, snapshot unreadable or unwritable). Run by `make check`.
# Usage: cli.sh BINDIR   (the directory holding rstate and rstated)
set -u
bindir=${1:?usage: cli.sh BINDIR}
rstate=$bindir/rstate
rstated=$bindir/rstated
work=$(mktemp -d /tmp/rstate-cli-XXXXXX)
trap 'rm -rf "$work"' EXIT
export XDG_RUNTIME_DIR=$work   # the default socket: nobody listens there
unset RSTATE_URI RSTATE_TOKEN

passed=0 failed=0

# expect STATUS STDERR-SUBSTRING STDOUT-SUBSTRING -- COMMAND...
# (an empty substring matches anything)
expect() {
  local want=$1 err_want=$2 out_want=$3
  shift 4
  # none of these needs a server: a command still running after 30 s hangs
  timeout 30 "$@" >"$work/out" 2>"$work/err"
  local got=$?
  local why=
  [ "$got" -eq 124 ] && why="still running after 30 s (killed)"
  [ -n "$why" ] || [ "$got" -eq "$want" ] || why="exit status $got, want $want"
  if [ -z "$why" ] && [ -n "$err_want" ] && ! grep -qF -- "$err_want" "$work/err"; then
    why="stderr lacks \"$err_want\""
  fi
  if [ -z "$why" ] && [ -n "$out_want" ] && ! grep -qF -- "$out_want" "$work/out"; then
    why="stdout lacks \"$out_want\""
  fi
  if [ -z "$why" ] && [ "$want" -ne 0 ] && [ ! -s "$work/err" ]; then
    why="no sentence on stderr"
  fi
  if [ -z "$why" ] && [ "$want" -eq 2 ] && ! grep -q "^Try '" "$work/err"; then
    why="a usage error without its \"Try '... --help'\" hint"
  fi
  if [ -n "$why" ]; then
    failed=$((failed + 1))
    echo "FAIL: $*: $why"
    sed 's/^/  stdout: /' "$work/out"
    sed 's/^/  stderr: /' "$work/err"
  else
    passed=$((passed + 1))
  fi
}

# --- rstate: help and version -------------------------------------------
expect 0 "" "Usage: rstate [--connect URI]" -- "$rstate" --help
expect 0 "" "Usage: rstate [--connect URI]" -- "$rstate" -h
expect 0 "" "rstate 0." -- "$rstate" --version
for c in get set set-many define undefine list watch info stats; do
  expect 0 "" "Usage: rstate $c" -- "$rstate" "$c" --help
  expect 0 "" "Usage: rstate $c" -- "$rstate" --help "$c"
done
expect 0 "" "--if-version N" -- "$rstate" set -h

# --- rstate: usage errors (exit 2), all found before connecting -----------
expect 2 "no command given" "" -- "$rstate"
expect 2 "unknown command \"frob\"" "" -- "$rstate" frob
expect 2 "unknown option --frob" "" -- "$rstate" --frob get x
expect 2 "get: unknown option --frob" "" -- "$rstate" get x --frob
expect 2 "get: missing arguments" "" -- "$rstate" get
expect 2 "set: missing arguments" "" -- "$rstate" set x
expect 2 "set: too many arguments" "" -- "$rstate" set x 1 2
expect 2 "set: option --source needs a value" "" -- "$rstate" set x 1 --source
expect 2 "set: --if-version: \"v2\" is not a version number" "" -- "$rstate" set x 1 --if-version v2
expect 2 "set: option --help takes no value" "" -- "$rstate" set x 1 --help=1
expect 2 "set: unknown option --json" "" -- "$rstate" set x 1 --json
expect 2 "set-many: \"x\" is not NAME=VALUE" "" -- "$rstate" set-many a=1 x
expect 2 "set-many: \"=1\" is not NAME=VALUE" "" -- "$rstate" set-many =1
expect 2 "define: \"double\" is not a type" "" -- "$rstate" define x double 1
expect 2 "define: --min: \"low\" is not a number" "" -- "$rstate" define x float 1 --min low
expect 2 "define: --max-length: \"-1\" is not a length in bytes" "" -- "$rstate" define x string a --max-length -1
expect 2 "undefine: too many arguments" "" -- "$rstate" undefine a b
expect 2 "list: too many arguments" "" -- "$rstate" list a b
expect 2 "watch: missing arguments" "" -- "$rstate" watch --json
expect 2 "stats: too many arguments" "" -- "$rstate" stats now
expect 2 "is not a store URI" "" -- "$rstate" --connect bogus:x get x

# --- rstate: no daemon (exit 3) ------------------------------------------
# one sentence that names the address once, and how to start a daemon
nobody="(cannot connect: No such file or directory)"
expect 3 "rstate: no rstated answers at unix:$work/reactivestate.sock $nobody" "" -- "$rstate" get x
expect 3 "Start one with 'rstated' (it listens there by default)" "" -- "$rstate" list
expect 3 "no rstated answers at unix:$work/none.sock $nobody" "" -- "$rstate" --connect "unix:$work/none.sock" list
expect 3 "Start one with 'rstated --listen' and that address" "" -- "$rstate" --connect "unix:$work/none.sock" list
[ "$(grep -o "$work/none.sock" "$work/err" | wc -l)" -eq 1 ] ||
  { echo "FAIL: rstate list with no daemon names the address more than once"; sed 's/^/  stderr: /' "$work/err"; failed=$((failed + 1)); }
expect 3 "no rstated answers at unix:$work/env.sock" "" -- env RSTATE_URI="unix:$work/env.sock" "$rstate" stats
expect 3 "no rstated answers at unix:$work/none.sock" "" -- "$rstate" watch x --connect="unix:$work/none.sock"
expect 3 "no rstated answers at unix:$work/none.sock" "" -- "$rstate" watch x --connect="unix:$work/none.sock" --no-reconnect
expect 3 "no rstated answers at unix:$work/none.sock" "" -- "$rstate" set x -5 --connect "unix:$work/none.sock"
expect 2 "--peer-uid: \"bob\" is neither a uid (0 to 4294967294) nor \"any\"" "" -- "$rstate" get x --peer-uid bob
expect 3 "no rstated answers at unix:$work/none.sock" "" -- "$rstate" get x --peer-uid any --connect "unix:$work/none.sock"

# --- rstated: help, version, usage errors --------------------------------
expect 0 "" "Usage: rstated [OPTION]..." -- "$rstated" --help
expect 0 "" "rstated 0." -- "$rstated" --version
expect 2 "unknown option --frob" "" -- "$rstated" --frob
expect 2 "unexpected argument \"serve\"" "" -- "$rstated" serve
expect 2 "--log-level: \"loud\" is not one of error, warn, info, debug" "" -- "$rstated" --log-level loud
expect 2 "--history: \"many\" is not a whole number" "" -- "$rstated" --history many
expect 2 "--heartbeat-ms: \"-1\" is not a whole number" "" -- "$rstated" --heartbeat-ms -1
expect 2 "--max-clients: \"\" is not a whole number" "" -- "$rstated" --max-clients ""
expect 2 "--history: 0 is not allowed: the server keeps at least 1 event (default 65536)" "" -- "$rstated" --history 0
expect 2 "--max-clients: 0 would refuse every client: give 1 or more (default 1024)" "" -- "$rstated" --max-clients 0
expect 2 "--heartbeat-ms: 0 is not allowed: give 1 or more (default 1000)" "" -- "$rstated" --heartbeat-ms 0
expect 2 "--history-bytes: 0 is not allowed: give 1 or more (default 67108864, 64 MiB)" "" -- "$rstated" --history-bytes 0
expect 2 "--max-handshakes: 0 would refuse every connection: give 1 or more (default 64)" "" -- "$rstated" --max-handshakes 0
expect 2 "--handshake-ms: 0 is not allowed: give 1 or more (default 3000)" "" -- "$rstated" --handshake-ms 0
expect 2 "--snapshot-every needs --snapshot" "" -- "$rstated" --snapshot-every 5
expect 2 "option --listen needs a value" "" -- "$rstated" --listen

# --- history and rollback, on a file: store opened by the tool itself ------
fs="file:$work/store"
expect 0 "" "" -- "$rstate" --connect "$fs" define x integer 1
expect 0 "" "" -- "$rstate" --connect "$fs" set x 5 --source cli
expect 0 "" "" -- "$rstate" --connect "$fs" set x 7
expect 0 "" " 5 revision 2 source cli" -- "$rstate" --connect "$fs" history x
expect 0 "" '{"version":3,"revision":3,' -- "$rstate" --connect "$fs" history x --json
expect 0 "" '"value":5,"source":"cli","meta":{}}' -- "$rstate" --connect "$fs" history x --json
expect 0 "" "" -- "$rstate" --connect "$fs" rollback x 2 --source undo
expect 0 "" "5" -- "$rstate" --connect "$fs" get x
expect 0 "" "4 " -- "$rstate" --connect "$fs" history x
expect 1 "x: version 99 is above the current version 4" "" -- "$rstate" --connect "$fs" rollback x 99
expect 1 "nope: no such variable" "" -- "$rstate" --connect "$fs" history nope
expect 2 "rollback: \"v2\" is not a version number" "" -- "$rstate" --connect "$fs" rollback x v2
expect 2 "history: missing arguments" "" -- "$rstate" history
expect 1 "x: this store keeps no history" "" -- "$rstate" --connect mem: history x

# --- rstated: start-up failures (exit 1), before it listens ---------------
expect 1 "$work/none.token: cannot read the token file: No such file or directory" "" -- \
  "$rstated" --token-file "$work/none.token" --listen "unix:$work/d.sock"
: >"$work/empty.token"
expect 1 "$work/empty.token: the token file is empty" "" -- \
  "$rstated" --read-token-file "$work/empty.token" --listen "unix:$work/d.sock"
printf '[x]\ntype = integer\ndefault = 5\nmax = 4\n' >"$work/bad.ini"
expect 1 "schema not loaded: $work/bad.ini:1: x: " "" -- \
  "$rstated" --schema "$work/bad.ini" --listen "unix:$work/d.sock"
expect 1 "schema not loaded: $work/none.ini" "" -- "$rstated" --schema "$work/none.ini" --listen "unix:$work/d.sock"
printf 'not a snapshot\n' >"$work/bad.snap"
expect 1 "snapshot not restored: $work/bad.snap:1: not a snapshot file" "" -- \
  "$rstated" --snapshot "$work/bad.snap" --listen "unix:$work/d.sock"
expect 1 "$work/no/dir/x.snap: the snapshot could not be written" "" -- \
  "$rstated" --snapshot "$work/no/dir/x.snap" --listen "unix:$work/d.sock"
[ "$(cat "$work/bad.snap")" = "not a snapshot" ] || { echo "FAIL: rstated overwrote a snapshot it could not read"; failed=$((failed + 1)); }
printf '# reactivestate snapshot 1\nx\tfloat\t1.5\n' >"$work/v1.snap"
expect 1 "snapshot not restored: $work/v1.snap:1: a snapshot in format 1 (rstated 0.1.0), which has no end record" "" -- \
  "$rstated" --snapshot "$work/v1.snap" --listen "unix:$work/d.sock"
[ "$(printf '# reactivestate snapshot 1\nx\tfloat\t1.5\n')" = "$(cat "$work/v1.snap")" ] || { echo "FAIL: rstated changed a format 1 snapshot"; failed=$((failed + 1)); }

expect 2 "--data and --snapshot do not go together" "" -- "$rstated" --data "$work/d" --snapshot "$work/x.snap"
expect 2 "--sync and --sync-interval-ms need --data" "" -- "$rstated" --sync always
expect 2 "--sync: \"sometimes\" is not one of always, interval, none" "" -- "$rstated" --data "$work/d" --sync sometimes
expect 2 "--keep-versions: \"many\" is not a whole number" "" -- "$rstated" --keep-versions many
expect 2 "--store and --data do not go together" "" -- "$rstated" --store mem: --data "$work/d"
expect 2 "--store and --snapshot do not go together" "" -- "$rstated" --store mem: --snapshot "$work/x.snap"
expect 2 "--store-token-file needs --store" "" -- "$rstated" --store-token-file "$work/x.token"
expect 2 "--store needs a store URI" "" -- "$rstated" --store ""
expect 1 "cannot open the store: rstate_open: \"nope:\" is not a store URI" "" -- \
  "$rstated" --store nope: --listen "unix:$work/d.sock"
expect 1 "cannot open the store: " "" -- "$rstated" --store "redis:127.0.0.1:1/x" --listen "unix:$work/d.sock"
expect 1 "cannot open the store: file:/proc/no/dir: cannot create the directory" "" -- \
  "$rstated" --data /proc/no/dir --listen "unix:$work/d.sock"

echo "tools cli: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
