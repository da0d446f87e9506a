#!/bin/sh
# test-browser.sh: renders a small luacap.report.html page in headless Chromium and checks
# that every <img> decoded and every caption is on the page. Run from the repository root
# (`make test-browser`). Installs Debian's chromium when missing (root, apt). When a run's
# page exists (RESULTS, default outputs/results, e.g. after `make demo`), it is checked too:
# every image loaded, the first test images' predicted captions shown, relative paths only.
# Not a layout test: it checks what a reader must see, not where it is drawn.
set -u

LUAJIT=${LUAJIT:-luajit}
passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok   $1"; }
bad() { failed=$((failed + 1)); echo "FAIL $1"; }
finish() { echo "$passed passed, $failed failed"; [ "$failed" -eq 0 ]; exit $?; }

CHROME=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
if [ -z "$CHROME" ]; then
  echo "chromium not found; installing Debian's chromium"
  if [ "$(id -u)" -eq 0 ]; then
    apt-get install -y chromium >/dev/null 2>&1 || { apt-get update >/dev/null 2>&1 && apt-get install -y chromium >/dev/null 2>&1; }
  else
    sudo apt-get install -y chromium >/dev/null 2>&1
  fi
  CHROME=$(command -v chromium || true)
fi
if [ -z "$CHROME" ]; then bad "chromium available"; finish; fi
ok "chromium available ($CHROME)"

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT INT TERM
OUTDIR="$WORK/results"

# A results folder from the Lua API: generated images (tensors and a PNG file), fake
# metrics and history, captions with characters that need escaping.
if LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="lua/?.so;;" "$LUAJIT" - "$OUTDIR" "$WORK" \
    > "$WORK/gen.txt" 2>&1 <<'EOF'
local luacap = require 'luacap'
local out, work = arg[1], arg[2]
luacap.seed(7)
local function picture(h, w, r, g, b)
  local img = luacap.zeros(h, w, 3)
  for i = 1, h do for j = 1, w do
    img:set(i, j, 1, (r + 5 * i) % 256); img:set(i, j, 2, (g + 3 * j) % 256); img:set(i, j, 3, b)
  end end
  return img
end
local file_png = work .. '/from_file.png'
assert(luacap.report.captioned_image(file_png, picture(24, 32, 10, 200, 90), 'a source file'))
local items = {
  {id = '1000268201_693b08cb0e', image = picture(30, 40, 0, 0, 200),
   pred = 'a dog runs on the grass', refs = {'a brown dog runs', 'a dog <b>jumps</b> & plays'}},
  {id = 'kids', image = picture(40, 30, 120, 40, 0),
   pred = 'two "kids" play', refs = {"children's game on a beach"}},
  {id = 'file', image = file_png, pred = 'an image read from a file', gt = 'the reference caption'},
}
local h = {loss = {2.1, 1.6, 1.3, 1.2, 1.15}, val_loss = {2.2, 1.8, 1.6, 1.62, 1.61},
           lr = {1e-3, 1e-3, 1e-3, 5e-4, 5e-4}}
assert(luacap.report.html(out, {title = 'browser check', history = h, items = items,
  metrics = {['BLEU-1'] = 0.51, ['BLEU-2'] = 0.31, ['BLEU-4'] = 0.11}}))
EOF
then ok "results folder generated"; else cat "$WORK/gen.txt"; bad "results folder generated"; finish; fi

# render PAGE DOM BUDGET_MS: the DOM of PAGE after its scripts ran, in a fresh profile with
# the flags this closed network needs; prints Chromium's error tail when it fails.
render() {
  profile=$(mktemp -d)
  timeout 120 "$CHROME" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$profile" --virtual-time-budget="$3" --dump-dom \
    "file://$1" > "$2" 2> "$WORK/chrome.err"
  rc=$?
  rm -rf "$profile"
  if [ $rc -eq 0 ] && [ -s "$2" ]; then return 0; fi
  tail -5 "$WORK/chrome.err"
  return 1
}

DOM="$WORK/dom.html"
if render "$OUTDIR/index.html" "$DOM" 5000; then ok "chromium rendered the page"
else bad "chromium rendered the page"; finish; fi

# 4 images: the loss curve and the three test images.
check=$(grep -o '<div id="img-check"[^>]*>[^<]*' "$DOM" || true)
echo "     $check"
case "$check" in *'data-total="4"'*) ok "4 <img> elements on the page" ;; *) bad "4 <img> elements on the page" ;; esac
case "$check" in *'data-loaded="4"'*) ok "every image decoded (naturalWidth > 0)" ;; *) bad "every image decoded (naturalWidth > 0)" ;; esac
case "$check" in *'data-broken=""'*) ok "no broken images" ;; *) bad "no broken images" ;; esac

for text in 'a dog runs on the grass' 'a dog &lt;b&gt;jumps&lt;/b&gt; &amp; plays' \
            'two "kids" play' "children's game on a beach" 'the reference caption' \
            'BLEU-4' '0.1100'; do
  if grep -qF -- "$text" "$DOM"; then ok "page shows: $text"; else bad "page shows: $text"; fi
done
if grep -q '<b>jumps</b>' "$DOM"; then bad "captions are escaped"; else ok "captions are escaped"; fi
if grep -Eq '(src|href)="(https?:|//|/)' "$OUTDIR/index.html"; then bad "only relative resources"
else ok "only relative resources"; fi

# The page of a real run, when there is one.
RESULTS=${RESULTS:-outputs/results}
if [ -f "$RESULTS/index.html" ]; then
  RES=$(cd "$RESULTS" && pwd)
  DOM2="$WORK/run_dom.html"
  if render "$RES/index.html" "$DOM2" 10000; then ok "$RESULTS/index.html rendered"
  else bad "$RESULTS/index.html rendered"; finish; fi
  check=$(grep -o '<div id="img-check"[^>]*>[^<]*' "$DOM2" || true)
  total=$(echo "$check" | sed -n 's/.*data-total="\([0-9]*\)".*/\1/p')
  loaded=$(echo "$check" | sed -n 's/.*data-loaded="\([0-9]*\)".*/\1/p')
  echo "     $RESULTS: $loaded of $total images loaded"
  if [ -n "$total" ] && [ "$total" -gt 1 ] && [ "$total" = "$loaded" ]; then ok "$RESULTS: every image decoded"
  else bad "$RESULTS: every image decoded"; fi
  case "$check" in *'data-broken=""'*) ok "$RESULTS: no broken images" ;; *) bad "$RESULTS: no broken images" ;; esac
  if [ -f "$RESULTS/qualitative_examples.json" ]; then
    LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="lua/?.so;;" "$LUAJIT" -e "
      local q = require('cjson').decode(io.open('$RESULTS/qualitative_examples.json'):read('*a'))
      for _, r in ipairs(q) do print(r.predicted) end" > "$WORK/preds.txt" 2>/dev/null
    n=0; miss=0
    while IFS= read -r cap; do
      n=$((n + 1))
      grep -qF -- "$cap" "$DOM2" || miss=$((miss + 1))
    done < "$WORK/preds.txt"
    if [ "$n" -gt 0 ] && [ "$miss" -eq 0 ]; then ok "$RESULTS: the $n predicted captions of qualitative_examples.json are on the page"
    else bad "$RESULTS: predicted captions on the page ($miss of $n missing)"; fi
  fi
  if grep -Eq '(src|href)="(https?:|//|/)' "$RES/index.html"; then bad "$RESULTS: only relative resources"
  else ok "$RESULTS: only relative resources"; fi
fi

finish
