#!/bin/sh
# memcheck.sh: every spec under valgrind's memcheck (`make memcheck` builds, then runs this).
# Fails (non-zero) on an invalid read or write, a use of uninitialised memory, or a
# definite leak; a spec that fails only warns (see below). Not a sanitizer run: `make test-sanitize` (tools/test-sanitize.sh) is.
#
# busted is itself a Lua script (/usr/bin/busted starts with `#!/usr/bin/env lua`), so
# valgrind runs luajit on it directly; --ignore-lua stops busted from re-executing itself
# under the `lua = 'luajit'` of .busted, which would leave valgrind watching nothing.
# --keep-debuginfo keeps symbols of core.so after LuaJIT dlclose()s it at exit, so a leak
# in luacap's C code is reported by function name and line.
#
#   sh tools/memcheck.sh                          every spec under spec/ but MEMCHECK_SKIP's
#   MEMCHECK_SPECS="spec/h5_spec.lua" sh tools/memcheck.sh     only these
#   MEMCHECK_SKIP="" sh tools/memcheck.sh         all of them (the slow ones take long)
set -u
cd "$(dirname "$0")/.." || exit 2

LUAJIT=${LUAJIT:-luajit}
BUSTED_BIN=${BUSTED_BIN:-$(command -v busted)}
# Specs that take seconds natively take many minutes under valgrind (20-50x): the
# end-to-end training run, 2000 synthetic images, full-size VGG16 and report pages, the
# example scripts (which run in child processes valgrind does not follow anyway). The
# kernels they use are covered by the fast specs (conv2d, canvas, image, h5, ...).
# MEMCHECK_SKIP="" runs everything.
MEMCHECK_SKIP=${MEMCHECK_SKIP-spec/pipeline_spec.lua spec/data/shapes_spec.lua \
spec/encoders/vgg16_spec.lua spec/report/report_spec.lua spec/examples/caption_spec.lua}
if [ -z "${MEMCHECK_SPECS:-}" ]; then
  MEMCHECK_SPECS=$(find spec -name '*_spec.lua' | sort | while read -r f; do
    case " $MEMCHECK_SKIP " in *" $f "*) ;; *) echo "$f" ;; esac
  done)
fi
SPECS=$MEMCHECK_SPECS
LOG=${MEMCHECK_LOG:-build/memcheck.log}

if ! command -v valgrind >/dev/null 2>&1; then
  echo "memcheck: valgrind not found (apt-get install valgrind, or make deps)" >&2
  exit 2
fi
if [ -z "$BUSTED_BIN" ]; then
  echo "memcheck: busted not found (apt-get install lua-busted)" >&2
  exit 2
fi
mkdir -p "$(dirname "$LOG")"

# LuaJIT dlclose()s core.so when the Lua state closes, which unloads cairo, fontconfig,
# pixman, HDF5 and OpenBLAS with it; their global caches, still pointed to from their own
# static data a moment earlier, would then read as "definitely lost". Preloading core.so's
# libraries keeps them mapped to the end, so only memory nobody points to is a leak.
SO=lua/luacap/core.so
PRELOAD=$(readelf -d "$SO" 2>/dev/null | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' \
  | grep -v -e '^libc\.' -e '^libm\.' -e '^ld-linux' | tr '\n' ' ')

echo "memcheck: $(echo $SPECS | wc -w) spec files under valgrind (skipped: ${MEMCHECK_SKIP:-none}); log in $LOG"
# shellcheck disable=SC2086  # SPECS is a list of paths without spaces
LD_PRELOAD="${LD_PRELOAD:+$LD_PRELOAD }$PRELOAD" \
valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite \
  --show-leak-kinds=definite --keep-debuginfo=yes --num-callers=30 \
  --suppressions=tools/valgrind.supp --log-file="$LOG" \
  "$LUAJIT" "$BUSTED_BIN" --ignore-lua $SPECS
rc=$?

errors=$(sed -n 's/.*ERROR SUMMARY: \([0-9]*\) errors.*/\1/p' "$LOG" | tail -n 1)
if [ -z "$errors" ]; then
  echo "memcheck: valgrind wrote no summary (exit $rc); see $LOG" >&2
  exit 2
fi
if [ "$errors" -gt 0 ]; then
  # The reports themselves: every block between a "==pid== <Kind> ..." line and a blank one.
  grep -v -e 'Memcheck, a memory error' -e 'Copyright' -e 'Using Valgrind' -e 'Command:' "$LOG" \
    | sed -n '/HEAP SUMMARY/q;p' | grep -v '^==[0-9]*== *$' | head -n 200 >&2
  grep -A 25 'definitely lost in loss record' "$LOG" | head -n 120 >&2
  echo "memcheck: FAILED, $errors memory error(s) (full report in $LOG)" >&2
  exit 1
fi
if [ "$rc" -ne 0 ]; then
  # Specs are `make test`'s business: under valgrind everything runs 20-50x slower, so
  # a spec that times itself (shapes.generate "fast") fails here for no memory reason.
  echo "memcheck: warning: busted exited $rc under valgrind (failing specs above; run" \
       "make test to see whether they fail without valgrind too)" >&2
fi
echo "memcheck: OK, 0 memory errors, no definite leaks"
