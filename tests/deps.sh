#!/bin/sh
# Installs the Debian packages the tests need, if any is missing:
# Criterion (the test framework), clang (sanitizers), valgrind, pkg-config,
# python3 (the tools' integration test, the Python binding) with venv and
# pip (the binding installed with pip into a fresh virtual environment;
# setuptools for a pip without it), groff (man pages),
# libmicrohttpd-dev (rstated --http), curl and chromium (its tests),
# redis-server (the redis: stores' tests start their own servers);
# with the argument "fuzz", clang's libFuzzer runtime; with "bench", hyperfine and
# redis-server (bench/redis.c measures redis: stores beside Redis's own figures).
# Runs apt-get as root, or through sudo when not root.
set -e
need=""
pkgs="libcriterion-dev clang valgrind pkg-config make python3 python3-venv python3-pip python3-setuptools groff-base
  libmicrohttpd-dev curl chromium redis-server"
[ "${1:-}" = fuzz ] && pkgs="clang libclang-rt-14-dev"
[ "${1:-}" = bench ] && pkgs="hyperfine make redis-server"
for p in $pkgs; do
  dpkg -s "$p" >/dev/null 2>&1 || need="$need $p"
done
[ -z "$need" ] && exit 0
echo "installing:$need"
sudo=""
[ "$(id -u)" -ne 0 ] && sudo=sudo
$sudo apt-get update -qq
# shellcheck disable=SC2086
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $need >/dev/null
