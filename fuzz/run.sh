#!/bin/sh
# fuzz/run.sh: build the libFuzzer targets (fuzz/*.c) with ASan + UBSan and run each for
# FUZZ_SECONDS (or FUZZ_RUNS executions, whichever ends first) on a copy of its seed
# corpus (fuzz/corpus/<target>); then the Lua targets (fuzz/lua.lua). Prints one line per
# target: executions, crashes, hangs (an input over FUZZ_TIMEOUT seconds), out-of-memory
# (over 2 GiB), seconds. Findings are kept in build/fuzz/findings/<target>/. Leaks inside
# libhdf5 on malformed files are suppressed (fuzz/lsan.supp); luacap's own are reported.
#
#   make fuzz                          every target, 60 s each
#   make fuzz FUZZ_SECONDS=1200        the long form (docs/robustness.md's table)
#   FUZZ_TARGETS="png h5" sh fuzz/run.sh
set -u
cd "$(dirname "$0")/.." || exit 2
FUZZ_CC=${FUZZ_CC:-clang-14}
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
FUZZ_RUNS=${FUZZ_RUNS:--1}
FUZZ_TIMEOUT=${FUZZ_TIMEOUT:-10}
FUZZ_TARGETS=${FUZZ_TARGETS:-jpeg png resize h5 lua}
FUZZ_FORK=${FUZZ_FORK:-h5}
OUT=build/fuzz
command -v "$FUZZ_CC" >/dev/null || { echo "fuzz: $FUZZ_CC not found (apt-get install clang-14)" >&2; exit 2; }
mkdir -p "$OUT/findings"
CFLAGS="-g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -Icsrc \
  $(pkg-config --cflags libpng hdf5 2>/dev/null || echo -I/usr/include/libpng16 -I/usr/include/hdf5/serial)"
LIBS="$(pkg-config --libs hdf5 2>/dev/null || echo -L/usr/lib/x86_64-linux-gnu/hdf5/serial -lhdf5) -ljpeg -lpng16 -lz -lm"
SRCS="csrc/image/jpeg.c csrc/image/png.c csrc/image/resize.c csrc/image/preprocess.c csrc/io/h5.c csrc/tensor.c"
status=0
printf '%-10s %12s %8s %6s %5s %8s\n' target executions crashes hangs ooms seconds
for t in $FUZZ_TARGETS; do
  find=$OUT/findings/$t
  rm -rf "$find" "$OUT/corpus-$t" && mkdir -p "$find" "$OUT/corpus-$t"
  start=$(date +%s)
  if [ "$t" = lua ]; then
    luajit fuzz/lua.lua --seconds "$FUZZ_SECONDS" --runs "$FUZZ_RUNS" --timeout "$FUZZ_TIMEOUT" \
      --findings "$find" > "$OUT/lua.log" 2>&1
    rc=$?
    tail -n 20 "$OUT/lua.log"
    [ "$rc" -ne 0 ] && status=1
    continue
  fi
  # shellcheck disable=SC2086
  $FUZZ_CC $CFLAGS "fuzz/$t.c" $SRCS -o "$OUT/$t" $LIBS || { echo "fuzz: cannot build $t" >&2; exit 2; }
  cp fuzz/corpus/"$t"/* "$OUT/corpus-$t/"
  # h5 runs in libFuzzer's fork mode, going on after a crash: libhdf5 itself crashes on
  # some malformed files (docs/robustness.md), and one such crash must not end the run.
  mode=""
  case " $FUZZ_FORK " in *" $t "*) mode="-fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1" ;; esac
  # shellcheck disable=SC2086
  ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1} \
  LSAN_OPTIONS=suppressions=$(pwd)/fuzz/lsan.supp \
  "$OUT/$t" "$OUT/corpus-$t" -max_total_time="$FUZZ_SECONDS" -runs="$FUZZ_RUNS" $mode \
    -timeout="$FUZZ_TIMEOUT" -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$find/" \
    > "$OUT/$t.log" 2>&1
  secs=$(( $(date +%s) - start ))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$OUT/$t.log" | tail -n 1)
  [ -z "$execs" ] && execs=$(sed -n 's/^#\([0-9]*\): cov.*/\1/p' "$OUT/$t.log" | tail -n 1)
  # fork mode writes an empty crash- file for a job that died between inputs: not a finding
  find "$find" -type f -empty -delete
  crashes=$(find "$find" -name 'crash-*' -o -name 'leak-*' | wc -l)
  hangs=$(find "$find" -name 'timeout-*' | wc -l)
  ooms=$(find "$find" -name 'oom-*' | wc -l)
  printf '%-10s %12s %8s %6s %5s %8s\n' "$t" "${execs:-?}" "$crashes" "$hangs" "$ooms" "$secs"
  [ $((crashes + hangs + ooms)) -ne 0 ] && status=1 && grep -m 3 -A 12 'ERROR\|SUMMARY' "$OUT/$t.log" >&2
done
exit $status
