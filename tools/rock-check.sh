#!/bin/sh
# rock-check.sh: installs luacap with `luarocks make` into a temporary tree from a copy of
# the working tree's sources, then, with Lua's paths and PATH pointing only at that tree
# and the system's folders (not the checkout's lua/, not ./, not /usr/local), and from a
# folder outside the checkout, runs `luacap-caption --help`, trains a tiny model with the
# installed `luacap-train` and captions one of its images with the installed
# `luacap-caption`. Prints "rock-check: ok" or "rock-check: FAILED: <what>" and exits 1.
# Not a test of the captions themselves (the specs do that). About 15 s on 2 cores.
cd "$(dirname "$0")/.." || exit 1
repo=$(pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/luacap-rock.XXXXXX") || { echo "rock-check: FAILED: mktemp"; exit 1; }
trap 'rm -rf "$tmp"' EXIT
log="$tmp/log"

fail() {
  echo "rock-check: FAILED: $1"
  if [ -s "$log" ]; then echo "--- last lines of the log:"; tail -n 25 "$log"; fi
  exit 1
}

command -v luarocks >/dev/null 2>&1 || fail "luarocks is not installed (make deps installs Debian's luarocks)"

# 1. the sources, without build outputs, so the rock is built from scratch
mkdir "$tmp/src" "$tmp/work" || fail "mkdir"
tar --exclude='*.so' --exclude='*.o' -cf - Makefile luacap-scm-1.rockspec csrc lua bin README.md |
  tar -xf - -C "$tmp/src" || fail "copying the sources"

# 2. the documented install command (README: Install with LuaRocks), into the tree
tree="$tmp/tree"
( cd "$tmp/src" && MAKEFLAGS=-j2 luarocks --lua-version=5.1 make --tree "$tree" --deps-mode=none \
    LUA_INCDIR=/usr/include/luajit-2.1 \
    OPENBLAS_INCDIR=/usr/include/x86_64-linux-gnu/openblas-pthread \
    HDF5_INCDIR=/usr/include/hdf5/serial HDF5_LIBDIR=/usr/lib/x86_64-linux-gnu/hdf5/serial \
    luacap-scm-1.rockspec ) >"$log" 2>&1 || fail "luarocks make"
for f in bin/luacap-train bin/luacap-caption lib/lua/5.1/luacap/core.so share/lua/5.1/luacap/init.lua \
    share/lua/5.1/luacap/cli/caption.lua share/lua/5.1/luacap/cli/train.lua; do
  [ -e "$tree/$f" ] || fail "the rock did not install $f"
done
# the MPI module is built and installed wherever mpicc is (docs/distributed.md)
if command -v mpicc >/dev/null 2>&1; then
  [ -e "$tree/lib/lua/5.1/luacap/mpi_core.so" ] || fail "mpicc is present but the rock did not install luacap/mpi_core.so"
fi

# 3. paths: the tree, then the system's folders from LuaJIT's defaults minus ./ and /usr/local
sys_path=$(env -u LUA_PATH -u LUA_PATH_5_1 luajit -e 'print(package.path)' | tr ';' '\n' |
  grep -v -e '^\./' -e '^/usr/local/' -e '^$' | paste -sd ';' -)
sys_cpath=$(env -u LUA_CPATH -u LUA_CPATH_5_1 luajit -e 'print(package.cpath)' | tr ';' '\n' |
  grep -v -e '^\./' -e '^/usr/local/' -e '^$' | paste -sd ';' -)
LUA_PATH="$tree/share/lua/5.1/?.lua;$tree/share/lua/5.1/?/init.lua;$sys_path"
LUA_CPATH="$tree/lib/lua/5.1/?.so;$sys_cpath"
PATH="$tree/bin:/usr/local/bin:/usr/bin:/bin"
export LUA_PATH LUA_CPATH PATH
unset LUA_PATH_5_1 LUA_CPATH_5_1 LUA_INIT
cd "$tmp/work" || fail "cd"

# the modules resolve into the tree, and nowhere into the checkout
where=$(luajit -e 'print(package.searchpath("luacap", package.path), package.searchpath("luacap.core", package.cpath))') ||
  fail "luajit cannot search the paths"
case "$where" in
  *"$repo"*) fail "luacap resolves into the checkout: $where" ;;
  "$tree"*"$tree"*) ;;
  *) fail "luacap does not resolve into the tree: $where" ;;
esac

# 4. the installed commands
luacap-caption --help >"$log" 2>&1 || fail "luacap-caption --help exited non-zero"
grep -q '^Usage: luacap-caption' "$log" || fail "luacap-caption --help printed no usage"
luacap-train --out "$tmp/out" --n-images 30 --shapes-size 32 --image-size 16 --epochs 1 \
  --embed-dim 8 --units 8 --img-dense 8 --dec-dense 8 --feat-dim 8 --encoder smallcnn \
  --shapes-dir "$tmp/shapes" --quiet >"$log" 2>&1 || fail "luacap-train on a tiny synthetic dataset"
[ -f "$tmp/out/models/best.h5" ] || fail "luacap-train wrote no models/best.h5"
luacap-caption --model "$tmp/out/models/best.h5" --json "$tmp/shapes/Images/shape_00001.jpg" >"$log" 2>&1 ||
  fail "luacap-caption of one image"
grep -q '"caption":"[a-z ]*"' "$log" || fail "luacap-caption printed no caption"
echo "rock-check: ok ($(luajit -v | cut -d' ' -f1-2), tree $(du -sh "$tree" | cut -f1))"
