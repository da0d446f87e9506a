#!/bin/sh
# deps.sh PKG...: installs the Debian packages that are missing, with apt-get.
# Runs `apt-get update` first when this machine has never fetched the package lists.
# Without root it prints the exact command to run instead.
missing=""
for p in "$@"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "luacap: installing missing Debian packages:$missing"
if [ "$(id -u)" != 0 ]; then
  echo "luacap: not root; run this, then try again:" >&2
  echo "  sudo sh -c 'apt-get update && apt-get install -y$missing'" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
if [ -z "$(ls -A /var/lib/apt/lists 2>/dev/null | grep -v -e lock -e partial)" ]; then
  apt-get update -q || exit 1
fi
apt-get install -y -q $missing || { apt-get update -q && apt-get install -y -q $missing; }
