#!/bin/sh
# tools/kill-test.sh [KILLS]: kill -9 a small training run at KILLS moments (default 20;
# `make test-crash`), resume it each time until it finishes, and check that every time the
# final weights, history, CSV log and metrics equal an uninterrupted run's bit for bit and
# that no output was ever left half-written or unreadable (tools/kill-check.lua).
# The run: the synthetic shapes (40 images), a tiny seed model, 6 epochs, the small CNN
# frozen (--freeze-encoder) so that a feature cache is written, ReduceLROnPlateau and
# EarlyStopping with short patience so that their counters matter.
# Moments: half are crash points hit exactly (LUACAP_CRASH_AT, lua/luacap/util.lua), in
# turn: an HDF5 file half-written (the feature cache, the first checkpoint, then any
# checkpoint), a validation batch, a training step, a text output half-written, a complete
# temporary before its rename; the n-th reach is drawn from the uninterrupted run's counts. The other half are kill -9
# from outside at a random time within the uninterrupted run's duration.
# Prints one line per kill and "kill test: S/T survived"; exits 0 when all survived.
# KILL_TEST_SEED seeds the draws (default: the date); KILL_TEST_KEEP=1 keeps the folder;
# KILL_TEST_FREEZE=0 trains the small CNN with the model instead (no feature cache).
set -u
cd "$(dirname "$0")/.."
KILLS=${1:-${KILL_TEST_KILLS:-20}}
SEED=${KILL_TEST_SEED:-$(date +%s)}
W=$(mktemp -d /tmp/luacap-kill.XXXXXX)
LUAJIT=${LUAJIT:-luajit}
ARGS="--shapes-dir $W/shapes --n-images 40 --shapes-size 32 --data-seed 3 --image-size 16
  --epochs 6 --embed-dim 12 --units 8 --img-dense 12 --dec-dense 12 --feat-dim 12
  --batch-size 8 --encoder smallcnn --es-patience 3 --lr-patience 1
  --beam 2 --threads 1 --quiet"
[ "${KILL_TEST_FREEZE:-1}" = 1 ] && ARGS="$ARGS --freeze-encoder"

# R = a pseudo-random number in [lo, hi], the CALLS-th draw of seed SEED (reproducible;
# not called in $(...), whose subshell would lose the count)
CALLS=0
rand() {
  CALLS=$((CALLS + 1))
  R=$(awk -v s="$SEED" -v k="$CALLS" -v lo="$1" -v hi="$2" \
    'BEGIN { srand(s); for (i = 1; i < k; i++) rand(); print int(lo + rand() * (hi - lo + 1)) }')
}

echo "kill test: $KILLS kills, seed $SEED, in $W"
t0=$(date +%s%N)
$LUAJIT examples/train.lua $ARGS --out "$W/ref" 2>"$W/ref.log" || {
  echo "kill test: the uninterrupted run failed:"; cat "$W/ref.log"; exit 1; }
# a second uninterrupted run (the dataset now exists, as in every later run) counts the
# crash points reached and must itself equal the first
t0=$(date +%s%N)
LUACAP_CRASH_LOG=$W/points.log $LUAJIT examples/train.lua $ARGS --out "$W/ref2" 2>"$W/ref2.log" || {
  echo "kill test: the second uninterrupted run failed:"; cat "$W/ref2.log"; exit 1; }
ref_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
if ! d=$($LUAJIT tools/kill-check.lua same "$W/ref" "$W/ref2"); then
  echo "kill test: two uninterrupted runs differ: $d"; exit 1; fi
count() { c=$(grep -c "^$1\$" "$W/points.log"); echo "${c:-0}"; }
echo "reference run: ${ref_ms} ms; points reached: step $(count step), val $(count val)," \
  "h5 $(count h5), write $(count write), commit $(count commit)"

# runs the training once into $1 (resuming when last.h5 is there); extra env in $2
run_once() {
  resume=""
  [ -f "$1/models/last.h5" ] && resume="--resume"
  env $2 $LUAJIT examples/train.lua $ARGS --out "$1" $resume >>"$1.log" 2>&1
}

survived=0
points="h5 val step write commit"
h5_kills=0
for k in $(seq 1 "$KILLS"); do
  out=$W/run$k
  mkdir -p "$out"
  : >"$out.log"
  if [ $((k % 2)) = 1 ]; then
    # a crash point, reached exactly
    # the points in turn (h5 first); the first h5 kill is the feature cache's write (the
    # first HDF5 file of a run), the second the first checkpoint's, later ones at random
    i=$(( (k - 1) / 2 % 5 + 1 ))
    p=$(echo $points | cut -d' ' -f"$i")
    n=$(count "$p")
    [ "$n" -gt 0 ] || { p=step; n=$(count step); }
    rand 1 "$n"
    r=$R
    if [ "$p" = h5 ]; then
      h5_kills=$((h5_kills + 1))
      [ $h5_kills -le 2 ] && [ "$n" -ge $h5_kills ] && r=$h5_kills
    fi
    what="crash point $p:$r of $n"
    run_once "$out" "LUACAP_CRASH_AT=$p:$r"
    rc=$?
  else
    # kill -9 from outside at a random moment of the run
    rand 50 "$ref_ms"
    ms=$R
    what="kill -9 after $ms ms"
    resume=""
    $LUAJIT examples/train.lua $ARGS --out "$out" >>"$out.log" 2>&1 &
    pid=$!
    sleep "$(awk "BEGIN { print $ms / 1000 }")"
    kill -9 $pid 2>/dev/null
    wait $pid 2>/dev/null
    rc=$?
  fi
  ok=1 note=""
  if [ "$rc" = 0 ]; then note=" (finished before the kill)"; fi
  # right after the kill: every output reads back whole (temporaries are only listed)
  if ! check=$($LUAJIT tools/kill-check.lua readable "$out"); then ok=0; note="$note; $check"; fi
  tmp=$(echo "$check" | grep '^temporary' | sed 's/^temporary (removed by the next run): //')
  [ -n "$tmp" ] && note="$note; left $tmp"
  tries=0
  while [ "$rc" != 0 ] && [ $tries -lt 4 ]; do
    tries=$((tries + 1))
    run_once "$out" ""
    rc=$?
  done
  if [ "$rc" != 0 ]; then ok=0; note="$note; resume failed: $(tail -n 2 "$out.log" | tr '\n' ' ')"; fi
  if ! diff=$($LUAJIT tools/kill-check.lua same "$W/ref" "$out"); then ok=0; note="$note; $(echo "$diff" | head -n 3 | tr '\n' ' ')"; fi
  if [ $ok = 1 ]; then survived=$((survived + 1)); verdict=ok; else verdict=FAILED; fi
  echo "kill $k: $what, $tries resume(s): $verdict$note"
  [ $ok = 1 ] && [ "${KILL_TEST_KEEP:-0}" != 1 ] && rm -rf "$out" "$out.log"
done
echo "kill test: $survived/$KILLS survived"
[ "${KILL_TEST_KEEP:-0}" != 1 ] && [ "$survived" = "$KILLS" ] && rm -rf "$W"
[ "$survived" = "$KILLS" ]
