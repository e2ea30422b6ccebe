#!/bin/sh
# Installs the Debian packages the tests need, if any is missing:
# Criterion (the test framework), clang (sanitizers), valgrind, pkg-config.
# Runs apt-get as root, or through sudo when not root.
set -e
need=""
for p in libcriterion-dev clang valgrind pkg-config make; do
  dpkg -s "$p" >/dev/null 2>&1 || need="$need $p"
done
[ -z "$need" ] && exit 0
echo "installing:$need"
sudo=""
[ "$(id -u)" -ne 0 ] && sudo=sudo
$sudo apt-get update -qq
# shellcheck disable=SC2086
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $need >/dev/null
