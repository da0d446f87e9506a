-- bench/seed.lua: the notebook's captioner (models/seed.lua) at the notebook's sizes:
-- training pairs/s (forward, loss, backward, Adam) at batch 32 and 256 and greedy decoding
-- ms per image at batch 1 and 64, each with its FLOP rate beside this run's sgemm rate.
-- Random data, not a quality check. PyTorch's figures are measured, not quoted: `make
-- bench-torch` (bench/torch/compare.lua) runs these same benches interleaved with the
-- PyTorch replica bench/torch/seed.py and prints both with their ratio.
-- Run: luajit bench/run.lua seed   (or `make bench`); BENCH_REPS=n sets the repetitions.
local luacap = require 'luacap'
local util = require 'luacap.util'
local Seed = require 'luacap.models.seed'
local seed_shared = require 'luacap.models.seed_shared'
local decode = require 'luacap.eval.decode'

local M = {}

-- the notebook's sizes
local V, TMAX, F = 8485, 35, 4096

local function median(xs)
  local s = {}
  for i, v in ipairs(xs) do s[i] = v end
  table.sort(s)
  local n = #s
  return n % 2 == 1 and s[(n + 1) / 2] or (s[n / 2] + s[n / 2 + 1]) / 2
end

M.V, M.TMAX, M.F = V, TMAX, F

-- Pre-padded prefixes of captions of ~12 tokens: row b gets a length drawn in 1..11.
local function random_ids(B)
  local flat = {}
  for b = 1, B do
    local n = math.random(1, 11)
    for t = 1, TMAX do flat[(b - 1) * TMAX + t] = t > TMAX - n and math.random(1, V - 1) or 0 end
  end
  return luacap.core.from_flat(flat, {B, TMAX})
end

-- Matrix-product flops of the model's forward, counting what the computation needs: the
-- image branch's input projection once per image (not per step) and the masked layers'
-- work once per real (step, row) pair; backward is counted as twice the forward.
--   image: Dense F->512, BiLSTM 2 directions x (projection + T recurrence steps)
--   caption (B rows, `real` pairs): BiLSTM over real pairs, attention's two (T, T)
--   products, decoder LSTM over real pairs, Dense 512 and the output Dense
local function image_flops(c, B)
  local U = c.units
  return 2 * B * F * c.img_dense + 2 * (2 * B * c.img_dense * 4 * U + 2 * B * TMAX * U * 4 * U)
end

local function caption_flops(c, B, real)
  local U, D = c.units, c.dec_units
  local f = 2 * 2 * real * (c.embed_dim + U) * 4 * U
  f = f + 2 * 2 * B * TMAX * TMAX * 2 * U
  f = f + 2 * real * (4 * U + D) * 4 * D
  return f + 2 * B * (D * c.dec_dense + c.dec_dense * V)
end

local function forward_flops(c, B, real) return image_flops(c, B) + caption_flops(c, B, real) end

local function real_steps(ids)
  local n = 0
  for _, v in ipairs(ids:flat()) do if v ~= 0 then n = n + 1 end end
  return n
end

-- Flickr8k's shape: 8,091 images x 5 captions, lengths (startseq and endseq included)
-- drawn uniformly in 8..16 (mean 12), so a caption of L tokens gives L-1 training pairs.
M.FLICKR = {images = 8091, captions = 5, len_lo = 8, len_hi = 16}

-- Batches in --share-image-branch's order (fit's group_images = 1): images one after the
-- other, each image's pairs (5 captions of Flickr8k's lengths, every prefix) shuffled
-- together, B consecutive pairs a batch. Returns next(B) -> feats_u (U, F), img (B),
-- ids (B, T), y (B), like fit's forward_batch gives forward_shared.
function M.shared_stream()
  local fl, queue, qi, nimg = M.FLICKR, {}, 1, 0
  local function refill()
    nimg = nimg + 1
    local pairs_ = {}
    for _ = 1, fl.captions do
      local L, cap = math.random(fl.len_lo, fl.len_hi), {}
      for j = 1, L do cap[j] = math.random(1, V - 1) end
      for k = 1, L - 1 do pairs_[#pairs_ + 1] = {img = nimg, cap = cap, k = k} end
    end
    for i = #pairs_, 2, -1 do
      local j = math.random(1, i)
      pairs_[i], pairs_[j] = pairs_[j], pairs_[i]
    end
    queue, qi = pairs_, 1
  end
  return function(B)
    local flat, y, img, uniq, seen = {}, {}, {}, {}, {}
    for b = 1, B do
      if qi > #queue then refill() end
      local p = queue[qi]
      qi = qi + 1
      for t = 1, TMAX do flat[(b - 1) * TMAX + t] = t > TMAX - p.k and p.cap[p.k - (TMAX - t)] or 0 end
      y[b] = p.cap[p.k + 1]
      if not seen[p.img] then uniq[#uniq + 1] = p.img; seen[p.img] = #uniq end
      img[b] = seen[p.img]
    end
    return luacap.randn(#uniq, F), img, luacap.core.from_flat(flat, {B, TMAX}),
      luacap.core.from_flat(y, {B})
  end
end

-- The model's backward as fit runs it on frozen features: no gradient for the features
-- (PyTorch computes none for an input that does not require one).
local function backward(m, dlogits)
  m.no_input_grad = true
  m:backward(dlogits)
  m.no_input_grad = nil
end

-- Training pairs/s at batch B: exact mode on shuffled random pairs (forward), or shared
-- mode (forward_shared) on shared_stream's batches. Returns the median step seconds and
-- the median matrix-product FLOP rate (counted as the exact mode's work).
function M.train_bench(m, B, reps, shared)
  local opt = luacap.optim.Adam{lr = 1e-4}
  local crit = luacap.nn.SoftmaxCrossEntropy()
  local stream = shared and M.shared_stream()
  m:train(true)
  local ts, flops = {}, {}
  for r = 0, reps do
    local feats, img, ids, y
    if shared then
      feats, img, ids, y = stream(B)
    else
      feats, ids = luacap.randn(B, F), random_ids(B)
      local flat = {}
      for b = 1, B do flat[b] = math.random(1, V - 1) end
      y = luacap.core.from_flat(flat, {B})
    end
    collectgarbage('step')
    local t0 = util.now()
    m:zero_grad()
    crit:forward(shared and m:forward_shared(feats, img, ids) or m:forward(feats, ids), y)
    backward(m, crit:backward())
    opt:step(m:parameters())
    local dt = util.now() - t0
    if r > 0 then   -- the first is a warm-up
      ts[#ts + 1] = dt
      flops[#flops + 1] = 3 * forward_flops(m.cfg, B, real_steps(ids)) / dt
    end
  end
  return median(ts), median(flops)
end

-- ms per image and flop rate of greedy decoding; counts the decode_step calls' rows
-- (decoding steps) and their prefixes' tokens through a wrapper on this model instance.
-- The flops are those of recomputing each step's caption branch and decoder from the ids
-- (caption_flops): the work the incremental decoder (models/seed_decode.lua) skips counts
-- as done, as the shared training mode's does.
function M.decode_bench(m, N, batch, reps)
  local wi = {startseq = 1, endseq = 2}
  for i = 3, V - 1 do wi['w' .. i] = i end
  local tok = {word_index = wi}
  local vocab = decode.vocab_of(tok)
  local count = {steps = 0, flops = 0}
  local plain = m.decode_step
  m.decode_step = function(self, st, ids)
    local real = 0
    for b = 1, #ids do real = real + math.min(#st.prefixes[b] + 1, self.cfg.max_len) end
    count.steps = count.steps + #ids
    count.flops = count.flops + caption_flops(self.cfg, #ids, real)
    return plain(self, st, ids)
  end
  local ts, rates, steps = {}, {}, {}
  for r = 0, reps do
    local feats = luacap.randn(N, F)
    count.steps, count.flops = 0, image_flops(m.cfg, N)
    local t0 = util.now()
    decode.greedy(m, feats, tok, {batch = batch, vocab = vocab})
    local dt = util.now() - t0
    if r > 0 then
      ts[#ts + 1], rates[#rates + 1], steps[#steps + 1] = dt / N, count.flops / dt, count.steps / N
    end
  end
  m.decode_step = nil   -- back to the class's method
  return median(ts), median(rates), median(steps)
end

-- Prefix lengths of every training pair of a synthetic Flickr8k-size dataset (one entry a
-- pair, in caption order), from math.random.
function M.flickr_pairs()
  local fl, lens = M.FLICKR, {}
  for _ = 1, fl.images * fl.captions do
    local L = math.random(fl.len_lo, fl.len_hi)
    for k = 1, L - 1 do lens[#lens + 1] = k end
  end
  return lens
end

-- One epoch of the Flickr8k-size dataset at batch B, extrapolated: times `steps`
-- training steps (after one warm-up) and returns the epoch's seconds (ceil(pairs / B)
-- steps at the mean step time) and the pair count. Exact mode: shuffled pairs drawn from
-- it; shared: shared_stream's batches through forward_shared.
function M.epoch(m, B, steps, shared)
  local lens = M.flickr_pairs()
  local opt = luacap.optim.Adam{lr = 1e-4}
  local crit = luacap.nn.SoftmaxCrossEntropy()
  local stream = shared and M.shared_stream()
  m:train(true)
  local total = 0
  for r = 0, steps do
    local feats, img, ids, yt
    if shared then
      feats, img, ids, yt = stream(B)
    else
      local flat, y = {}, {}
      for b = 1, B do
        local n = lens[math.random(1, #lens)]
        for t = 1, TMAX do flat[(b - 1) * TMAX + t] = t > TMAX - n and math.random(1, V - 1) or 0 end
        y[b] = math.random(1, V - 1)
      end
      ids, yt = luacap.core.from_flat(flat, {B, TMAX}), luacap.core.from_flat(y, {B})
      feats = luacap.randn(B, F)
    end
    collectgarbage('step')
    local t0 = util.now()
    m:zero_grad()
    crit:forward(shared and m:forward_shared(feats, img, ids) or m:forward(feats, ids), yt)
    backward(m, crit:backward())
    opt:step(m:parameters())
    if r > 0 then total = total + util.now() - t0 end
  end
  return math.ceil(#lens / B) * total / steps, #lens
end

-- Where a training step's time goes, layer by layer: wraps each child's forward and
-- backward (and the loss and Adam) on this instance with timers, runs `reps` steps at
-- batch B, and returns rows {name, seconds per step, fraction of the step, GFLOP/s} (the
-- matrix-product layers' flops as counted above, forward + 2x for backward).
function M.profile(m, B, reps, shared)
  local c, U, D = m.cfg, m.cfg.units, m.cfg.dec_units
  local opt = luacap.optim.Adam{lr = 1e-4}
  local crit = luacap.nn.SoftmaxCrossEntropy()
  m:train(true)
  local names = {'img_drop', 'img_dense', 'img_lstm', 'embed', 'cap_drop', 'cap_lstm', 'attn',
    'concat', 'dec_lstm', 'dec_drop', 'dec_dense', 'out'}
  local acc = {}
  local function timed(key, fn)
    return function(...)
      local t0 = util.now()
      local a, b2, c3, d4 = fn(...)
      acc[key] = (acc[key] or 0) + util.now() - t0
      return a, b2, c3, d4
    end
  end
  -- the shared mode's factored decoder input (models/seed_shared.lua): its own row, less
  -- the decoder LSTM's time inside it (which the dec_lstm row counts)
  local function timed_outer(key, inner, fn)
    return function(...)
      local t0, i0 = util.now(), acc[inner] or 0
      local a, b2, c3, d4 = fn(...)
      acc[key] = (acc[key] or 0) + util.now() - t0 - ((acc[inner] or 0) - i0)
      return a, b2, c3, d4
    end
  end
  local plain_shared = {forward = seed_shared.forward, backward = seed_shared.backward}
  seed_shared.forward = timed_outer('dec_proj', 'dec_lstm', plain_shared.forward)
  seed_shared.backward = timed_outer('dec_proj', 'dec_lstm', plain_shared.backward)
  for _, n in ipairs(names) do
    local mod = m[n]
    mod.forward = timed(n, mod.forward)
    if mod.forward_repeated then mod.forward_repeated = timed(n, mod.forward_repeated) end
    if mod.forward_prefixes then
      mod.forward_prefixes = timed(n, mod.forward_prefixes)
      mod.backward_prefixes = timed(n, mod.backward_prefixes)
    end
    if mod.forward_projected and n == 'dec_lstm' then
      mod.forward_projected = timed(n, mod.forward_projected)
    end
    mod.backward = timed(n, mod.backward)
  end
  crit.forward, crit.backward = timed('xent', crit.forward), timed('xent', crit.backward)
  opt.step = timed('adam', opt.step)
  local total, real = 0, 0
  local stream = shared and M.shared_stream()
  for r = 0, reps do
    local feats, img, ids, y
    if shared then
      feats, img, ids, y = stream(B)
    else
      feats, ids = luacap.randn(B, F), random_ids(B)
      local flat = {}
      for b = 1, B do flat[b] = math.random(1, V - 1) end
      y = luacap.core.from_flat(flat, {B})
    end
    collectgarbage('step')
    if r == 1 then acc = {} end   -- the first is a warm-up
    local t0 = util.now()
    m:zero_grad()
    crit:forward(shared and m:forward_shared(feats, img, ids) or m:forward(feats, ids), y)
    backward(m, crit:backward())
    opt:step(m:parameters())
    if r > 0 then total, real = total + util.now() - t0, real + real_steps(ids) end
  end
  for _, n in ipairs(names) do
    local mod = m[n]
    mod.forward, mod.forward_repeated, mod.backward = nil, nil, nil
    mod.forward_prefixes, mod.backward_prefixes, mod.forward_projected = nil, nil, nil
  end
  seed_shared.forward, seed_shared.backward = plain_shared.forward, plain_shared.backward
  real = real / reps
  local flops = {   -- forward flops per step
    img_dense = 2 * B * F * c.img_dense,
    img_lstm = 2 * (2 * B * c.img_dense * 4 * U + 2 * B * TMAX * U * 4 * U),
    cap_lstm = 2 * 2 * real * (c.embed_dim + U) * 4 * U,
    attn = 2 * 2 * B * TMAX * TMAX * 2 * U,
    dec_lstm = 2 * real * (4 * U + D) * 4 * D,
    dec_dense = 2 * B * D * c.dec_dense,
    out = 2 * B * c.dec_dense * V,
  }
  if acc.dec_proj then   -- the factored decoder: dec_lstm is its recurrence alone
    flops.dec_lstm, flops.dec_proj = 2 * real * D * 4 * D, 2 * real * 4 * U * 4 * D
  end
  local rows, sum = {}, 0
  local keys = {}
  for _, n in ipairs(names) do keys[#keys + 1] = n end
  if acc.dec_proj then keys[#keys + 1] = 'dec_proj' end
  keys[#keys + 1], keys[#keys + 2] = 'xent', 'adam'
  for _, n in ipairs(keys) do
    if acc[n] == nil then goto continue end   -- a layer this mode never runs (shared: attn)
    local s = acc[n] / reps
    sum = sum + s
    rows[#rows + 1] = {n, s, s / (total / reps), flops[n] and 3 * flops[n] / s / 1e9}
    ::continue::
  end
  rows[#rows + 1] = {'other (Lua glue, zero_grad, clones)', total / reps - sum, 1 - sum / (total / reps)}
  return rows, total / reps
end

function M.run(ctx)
  local reps = tonumber(os.getenv('BENCH_REPS') or '') or (ctx.quick and 3 or 7)
  luacap.seed(1)
  math.randomseed(1)
  local m = Seed{vocab_size = V, max_len = TMAX}
  local g = ctx.sgemm_gflops or 0
  print(string.format('seed model V=%d T=%d F=%d: %d threads, median of %d, sgemm %.1f GFLOP/s',
    V, TMAX, F, luacap.get_threads(), reps, g))
  for _, shared in ipairs{false, true} do
    for _, B in ipairs{32, 256} do
      local s, fl = M.train_bench(m, B, reps, shared)
      print(string.format('  train batch %3d%s: %7.1f pairs/s (%.1f ms/batch), %.1f GFLOP/s = %.2f of'
        .. ' sgemm%s', B, shared and ', shared' or '', B / s, s * 1e3, fl / 1e9, fl / 1e9 / g,
        shared and ' (the exact mode\'s flops: the work it saves counts as done)' or ''))
    end
  end
  local esteps = tonumber(os.getenv('BENCH_EPOCH_STEPS') or '') or (ctx.quick and 20 or 200)
  for _, shared in ipairs{false, true} do
    local esec, npairs = M.epoch(m, 32, esteps, shared)
    print(string.format('  Flickr8k-size epoch, batch 32 (%d images x %d captions, %d pairs, V=%d,'
      .. ' F=%d): %.1f min, from %d timed steps (%s)', M.FLICKR.images, M.FLICKR.captions, npairs,
      V, F, esec / 60, esteps, shared and '--share-image-branch' or 'exact mode'))
  end
  if os.getenv('BENCH_PROFILE') then
    for _, run in ipairs{{32, false}, {256, false}, {32, true}} do
      local B, shared = run[1], run[2]
      local rows, step = M.profile(m, B, reps, shared)
      print(string.format('  profile, train batch %d%s: %.1f ms/step', B, shared and
        ' (--share-image-branch; rates count the exact mode\'s work, so the shared image branch'
        .. ' and caption states exceed sgemm)' or '', step * 1e3))
      for _, r in ipairs(rows) do
        print(string.format('    %-36s %7.2f ms %5.1f%%%s', r[1], r[2] * 1e3, 100 * r[3],
          r[4] and string.format('  %6.1f GFLOP/s = %.2f of sgemm', r[4], r[4] / g) or ''))
      end
    end
  end
  m:evaluate()
  -- decoding: random weights rarely emit 'endseq', so most images run all max_len steps
  for _, cfg in ipairs{{1, ctx.quick and 2 or 4}, {64, 64}} do
    local batch, N = cfg[1], cfg[2]
    local s, fl, steps = M.decode_bench(m, N, batch, math.max(2, math.floor(reps / 2)))
    print(string.format('  greedy decode batch %2d: %7.1f ms/image (%.1f steps/image), %.1f GFLOP/s'
      .. ' = %.2f of sgemm (the recomputing decoder\'s flops)', batch, s * 1e3, steps, fl / 1e9,
      fl / 1e9 / g))
  end
end

return M
