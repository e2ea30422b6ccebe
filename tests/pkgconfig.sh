#!/bin/sh
# pkgconfig.sh — an installed copy, used as the README tells a user to:
# runs the README's block for a prefix of one's own ("Installed into a
# prefix of your own" in "Building and installing") line by line as
# written, with HOME a scratch directory, app.c the tour (examples/tour.c)
# and `make` the checkout's Makefile. Each program must print the tour's
# lines; the same program without rpath or LD_LIBRARY_PATH must fail to
# start (what the README warns about). Run by `make pkgconfig-check`.
set -u
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/rstate-pkgconfig-XXXXXX)
trap 'rm -rf "$work"' EXIT
passed=0 failed=0
ok() { passed=$((passed + 1)); }
fail() { failed=$((failed + 1)); echo "FAIL: $*"; }

awk '/^## Building and installing/ {b = 1} b && /prefix of your own/ {p = 1}
     p && /^```sh$/ {c = 1; next} c && /^```$/ {exit} c' "$repo/README.md" >"$work/block.sh"
grep -q 'make install PREFIX=' "$work/block.sh" || fail "no install block found in the README"
if ! grep -q 'rpath' "$work/block.sh" || ! grep -q 'LD_LIBRARY_PATH' "$work/block.sh"; then
  fail "the README's block does not name both rpath and LD_LIBRARY_PATH"
fi
mkdir -p "$work/home" "$work/app"
cp "$repo/examples/tour.c" "$work/app/app.c"
(
  cd "$work/app" || exit 1
  export HOME="$work/home"
  unset PKG_CONFIG_PATH LD_LIBRARY_PATH
  # the checkout's Makefile, quietly and as from a shell of its own (not
  # as a sub-make of make test); every other word as the README has it
  # shellcheck disable=SC2317 # called by the README's block
  make() { env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s -C "$repo" "$@" >/dev/null; }
  set -e
  # shellcheck disable=SC1091
  . "$work/block.sh"
) >"$work/out" 2>&1
rc=$?
want=$(printf 'model: - -> gpt-4\nmodel: gpt-4 -> claude-3\nmodel: "gpt-5" is not one of the choices gpt-4, claude-3, gemini')
n_runs=$(grep -c '\./app' "$work/block.sh")
if [ "$rc" -eq 0 ] && [ "$(cat "$work/out")" = "$(for _ in $(seq "$n_runs"); do echo "$want"; done)" ]; then ok; else
  fail "the README's install block (exit $rc) did not run the program as it says"
  sed 's/^/  block: /' "$work/block.sh"
  sed 's/^/  output: /' "$work/out"
fi
# without rpath or LD_LIBRARY_PATH: the failure the README warns about
PKG_CONFIG_PATH="$work/home/.local/lib/pkgconfig"
export PKG_CONFIG_PATH
# shellcheck disable=SC2046
cc "$work/app/app.c" $(pkg-config --cflags --libs reactivestate) -o "$work/app/bare" 2>"$work/err" || fail "cc: $(cat "$work/err")"
if env -u LD_LIBRARY_PATH "$work/app/bare" >/dev/null 2>"$work/err"; then
  fail "a program without rpath or LD_LIBRARY_PATH started (is $work/home/.local/lib in the loader's path?)"
elif grep -q 'libreactivestate.so.0: cannot open shared object file' "$work/err"; then ok; else
  fail "a program without rpath failed, but not as the README says: $(cat "$work/err")"
fi
echo "pkgconfig: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
