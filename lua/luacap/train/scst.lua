-- Self-critical sequence training (Rennie et al. 2017, "Self-critical Sequence Training for
-- Image Captioning"), run after cross-entropy training: for each batch of images, K captions
-- sampled per image (multinomial over the softmax), each rewarded with CIDEr-D against its
-- image's references (document frequencies cached from the training references), a
-- baseline b subtracted (the greedy caption's reward, or the mean of the image's other
-- samples), and one step on the policy-gradient loss
--   loss = -(1/n) sum_k (r_k - b_k) sum_t log p(w_kt | w_k1..w_k(t-1), image)   (n samples)
-- written as a cross-entropy on the sampled words with per-token weight r_k - b_k, through
-- the model's own training forward/backward: (prefix -> next word) pairs for the pair
-- models (seed, transformer), teacher forcing on whole captions for the caption-level
-- model (sat). The samples come from decode.sample (the one sampler: softmax over the
-- columns that are a word), the baseline captions from decode.greedy, and the softmax
-- differentiated masks the same columns. Sampling, the greedy baseline and the gradient
-- pass all run in evaluation mode (no dropout), so the log-probabilities differentiated
-- are exactly those the captions were drawn from. The encoder stays frozen.
-- Not beam-search sampling, no entropy bonus, no reward other than CIDEr-D.
local luacap = require 'luacap'
local decode = require 'luacap.eval.decode'

local M = {}

-- The sampler is decode.sample: it draws from the softmax over the columns that are a word
-- (not padding, not an id without a word). allowed_columns(vocab, V) -> a (1, V) row of 0
-- at those columns and -1e30 at the others: added to logits before the cross-entropy, it
-- makes the differentiated log p the sampling distribution's (the masked columns get
-- probability 0 and no gradient).
function M.allowed_columns(vocab, V)
  local row = {}
  for j = 1, V do row[j] = (j > 1 and vocab.index_word[j - 1] ~= nil) and 0 or -1e30 end
  return luacap.core.from_flat(row, {1, V})
end

-- logits (..., V) plus the row on every position (a copy; nil row: logits themselves).
local function mask_columns(logits, row)
  if not row then return logits end
  local shape = logits:shape()
  local V = shape[#shape]
  local out = logits:clone()
  local flat2 = out:reshape(out:numel() / V, V)
  luacap.core.sgemm(flat2, luacap.core.full(1, flat2:size(1), 1), row, false, false, 1, 1)
  return out
end

-- Baselines b (one per sample) from rewards r of K samples per image (consecutive):
-- 'mean' the mean of the image's other K-1 samples; with greedy_r (one per image) the
-- greedy caption's reward.
function M.baselines(r, K, kind, greedy_r)
  local b = {}
  for i = 1, #r do
    local img = math.floor((i - 1) / K) + 1
    if kind == 'mean' then
      local s = 0
      for j = (img - 1) * K + 1, img * K do if j ~= i then s = s + r[j] end end
      b[i] = s / (K - 1)
    else
      b[i] = greedy_r[img]
    end
  end
  return b
end

-- pg_backward(model, feats, seqs, owner, weights, norm[, opts]) -> loss: adds into the
-- model's gradients the gradient of
--   loss = -(1/norm) sum_k weights[k] sum_t log p(seqs[k][t] | startseq, seqs[k][1..t-1], feats[owner[k]])
-- (feats (B, ...) one row per image). A sample of weight 0 is skipped: it adds nothing.
-- p is the softmax over all columns, or with opts.vocab over the columns that are a word
-- (decode.sample's distribution; see allowed_columns).
-- Pair models: every (prefix -> next word) pair of the samples, opts.pair_batch (256) at a
-- time through model:forward / backward. Caption-level models (model.caption_level, sat):
-- teacher forcing on whole samples as fit trains them on pairs.caption_batch (in_ids
-- startseq, s[1..n-1], targets s[1..n], post-padded with 0, weight 0 at padding),
-- opts.seq_batch (64) samples at a time; no attention penalty.
-- The caller zeroes the gradients and sets evaluation or training mode.
function M.pg_backward(model, feats, seqs, owner, weights, norm, opts)
  opts = opts or {}
  local crit = opts.criterion or luacap.nn.SoftmaxCrossEntropy()
  local start = opts.start or error('scst.pg_backward: opts.start (the startseq id) is required', 2)
  local V = model.cfg.vocab_size
  local row = opts.vocab and M.allowed_columns(opts.vocab, V)
  if model.caption_level then
    return M.pg_backward_captions(model, feats, seqs, owner, weights, norm, crit, start, row,
      opts.seq_batch or 64)
  end
  local max_len = model.cfg.max_len
  local chunk = opts.pair_batch or 256
  -- the pairs: (sample k, position t)
  local pk, pt = {}, {}
  for k, s in ipairs(seqs) do
    if weights[k] ~= 0 then
      for t = 1, #s do pk[#pk + 1], pt[#pt + 1] = k, t end
    end
  end
  local total = 0
  local fshape = feats:shape()
  for first = 1, #pk, chunk do
    local B = math.min(chunk, #pk - first + 1)
    local x, y, w, rows = {}, {}, {}, {}
    local o = 0
    for b = 1, B do
      local k, t = pk[first + b - 1], pt[first + b - 1]
      local s = seqs[k]
      -- prefix startseq, s[1..t-1]: its last max_len ids, pre-padded
      local L = math.min(t, max_len)
      for _ = 1, max_len - L do o = o + 1; x[o] = 0 end
      for i = t - L + 1, t do o = o + 1; x[o] = i == 1 and start or s[i - 1] end
      y[b], w[b], rows[b] = s[t], weights[k], owner[k]
    end
    fshape[1] = B
    local fb = luacap.zeros(fshape)
    luacap.core.gather(fb, feats, rows)
    local logits = mask_columns(model:forward(fb, luacap.core.from_flat(x, {B, max_len})), row)
    total = total + crit:forward_weighted(logits, luacap.core.from_flat(y, {B}),
      luacap.core.from_flat(w, {B}), norm)
    model:backward(crit:backward())
  end
  return total
end

-- Teacher forcing for caption-level models: forward(feats (n, ...), in_ids (n, T)) ->
-- logits (n, T, V), backward(dlogits).
function M.pg_backward_captions(model, feats, seqs, owner, weights, norm, crit, start, row, chunk)
  local keep = {}
  for k = 1, #seqs do if weights[k] ~= 0 and #seqs[k] > 0 then keep[#keep + 1] = k end end
  local total = 0
  local fshape = feats:shape()
  for first = 1, #keep, chunk do
    local n = math.min(chunk, #keep - first + 1)
    local T = 0
    for i = first, first + n - 1 do T = math.max(T, #seqs[keep[i]]) end
    local x, y, w, rows = {}, {}, {}, {}
    for i = 1, n do
      local k = keep[first + i - 1]
      local s = seqs[k]
      for t = 1, T do
        local o = (i - 1) * T + t
        x[o] = t <= #s and (t == 1 and start or s[t - 1]) or 0
        y[o] = t <= #s and s[t] or 0
        w[o] = t <= #s and weights[k] or 0
      end
      rows[i] = owner[k]
    end
    fshape[1] = n
    local fb = luacap.zeros(fshape)
    luacap.core.gather(fb, feats, rows)
    local logits = mask_columns(model:forward(fb, luacap.core.from_flat(x, {n, T})), row)
    total = total + crit:forward_weighted(logits, luacap.core.from_flat(y, {n, T}),
      luacap.core.from_flat(w, {n, T}), norm)
    model:backward(crit:backward())
  end
  return total
end

-- batch_step(model, encoder, inputs, images, idx, scorer, vocab, K, kind, norm, opts) ->
-- loss, {r =, b =, g = sums of the sample rewards, baselines and greedy rewards}: one
-- batch's samples, rewards and policy gradient (added into the model's gradients) for the
-- images images[idx[i]] (idx: entries of images, the scorer's image numbers), the loss
-- divided by norm. opts.rng / opts.rng_of: decode.sample's; opts.pair_batch.
function M.batch_step(model, encoder, inputs, images, idx, scorer, vocab, K, kind, norm, opts)
  local util = luacap.util
  local count = #idx
  local rows = {}
  for i = 1, count do rows[i] = images[idx[i]] end
  local shape = inputs:shape()
  shape[1] = count
  local X = luacap.zeros(shape)
  luacap.core.gather(X, inputs, rows)
  local feats = encoder and encoder:forward(X):clone() or X
  model:evaluate()
  -- rewards of K samples per image (decode.sample), and the baseline
  local samples, captions = decode.sample(model, feats, nil,
    {vocab = vocab, k = K, batch = count, rng = opts.rng, rng_of = opts.rng_of})
  local seqs, owner, hyps, imgs = {}, {}, {}, {}
  for i = 1, count do
    for s = 1, K do
      local j = #seqs + 1
      seqs[j], owner[j] = samples[i][s].ids, i
      hyps[j], imgs[j] = util.words(captions[i][s]), idx[i]
    end
  end
  local r = scorer:score(hyps, imgs)
  local greedy_r
  local stats = {r = 0, b = 0, g = 0}
  if kind == 'greedy' then
    local gh = {}
    for i, c in ipairs(decode.greedy(model, feats, nil, {vocab = vocab, batch = count})) do
      gh[i] = util.words(c)
    end
    greedy_r = scorer:score(gh, idx)
    for i = 1, count do stats.g = stats.g + greedy_r[i] end
  end
  local b = M.baselines(r, K, kind, greedy_r)
  local w = {}
  for i = 1, #r do
    w[i] = r[i] - b[i]
    stats.r, stats.b = stats.r + r[i], stats.b + b[i]
  end
  local loss = M.pg_backward(model, feats, seqs, owner, w, norm,
    {start = vocab.start, vocab = vocab, pair_batch = opts.pair_batch})
  return loss, stats
end

-- Keyed sample streams: seeds below 2^21, so xorshift's seeding product stays exact in doubles.
local SEEDS = 2 ^ 21

-- run{model=, inputs = tensor (N, ...) (features, or images with encoder=), encoder =
--   (optional, frozen), images = list of rows of inputs to train on, references = one list
--   of reference token lists per entry of images, vocab = decode.vocab_of(tok),
--   epochs = 1, batch_images = 16, k = 5, baseline = 'greedy' | 'mean',
--   optimizer = luacap.optim.Adam{lr = 5e-5}, clip_norm, scorer = (optional, a
--   metrics.cider_scorer over references), pair_batch = 256, verbose = 1, log = fn(line),
--   rng = (optional, decode.sample's generator: a function giving [0, 1)),
--   sample_seed = (optional) each image's samples from a generator of their own, keyed by
--   (sample_seed, epoch, image), so they do not depend on the batch or the rank,
--   dist = (optional, train/distributed.lua: data-parallel on MPI)}
-- -> history {reward = {per epoch mean sample reward}, baseline = {..}, greedy = {..}
--    (mean greedy reward, when baseline is greedy), loss = {..}}
-- With dist every rank calls run alike. The epoch's order is rank 0's; each rank samples,
-- scores and differentiates its contiguous share of every batch's images, with the norm of
-- the whole batch (count * K samples), and the gradients are summed over ranks before the
-- step, so every rank takes the same step, the one a single process takes on the same
-- samples. The samples are keyed (sample_seed: rank 0's draw from luacap's generator
-- unless given), so 2 ranks draw what 1 process with that sample_seed draws. The logged
-- means are over all ranks.
function M.run(opts)
  local model = assert(opts.model, 'scst.run: model is required')
  local inputs = assert(opts.inputs, 'scst.run: inputs are required')
  local images = assert(opts.images, 'scst.run: images (rows of inputs) are required')
  local vocab = assert(opts.vocab, 'scst.run: vocab is required')
  local K = opts.k or 5
  local kind = opts.baseline or 'greedy'
  if kind ~= 'greedy' and kind ~= 'mean' then
    error("scst.run: baseline must be 'greedy' or 'mean', got '" .. tostring(kind) .. "'", 2)
  end
  if kind == 'mean' and K < 2 then
    error('scst.run: the mean baseline needs at least 2 samples per image, got ' .. K, 2)
  end
  local scorer = opts.scorer or luacap.metrics.cider_scorer(assert(opts.references,
    'scst.run: references (or a scorer) are required'))
  local optimizer = opts.optimizer or luacap.optim.Adam{lr = 5e-5}
  local params = model:parameters()
  local bs = opts.batch_images or 16
  local log = opts.log or function(line) if opts.verbose ~= 0 then io.stderr:write(line, '\n') end end
  local history = {reward = {}, baseline = {}, greedy = {}, loss = {}}
  local encoder = opts.encoder
  if encoder then encoder:train(false) end
  local shuffle = require('luacap.data.pairs').shuffle
  local util = luacap.util
  local dist = opts.dist
  local sample_seed = opts.sample_seed
  if dist and not sample_seed then
    sample_seed = dist.mpi.allgather(math.floor(luacap.random() * SEEDS))[1]
  end
  for epoch = 1, opts.epochs or 1 do
    local t0 = util.now()
    local order = shuffle(#images)
    if dist then order = dist.mpi.allgather(order)[1] end
    local sum_r, sum_b, sum_g, sum_loss, n_s, n_b = 0, 0, 0, 0, 0, 0
    for first = 1, #images, bs do
      local count = math.min(bs, #images - first + 1)
      local idx = {}                       -- entries of images / the scorer's image numbers
      for i = 1, count do idx[i] = order[first + i - 1] end
      if dist then idx = dist:part(idx) end
      for _, p in ipairs(params) do p.grad:zero() end
      if #idx > 0 then
        local loss, stats = M.batch_step(model, encoder, inputs, images, idx, scorer, vocab, K, kind,
          count * K, {rng = opts.rng, pair_batch = opts.pair_batch,
          rng_of = sample_seed and function(i)
            return decode.xorshift((sample_seed + 7919 * epoch + 104729 * idx[i]) % SEEDS)
          end})
        sum_r, sum_b, sum_g = sum_r + stats.r, sum_b + stats.b, sum_g + stats.g
        n_s, n_b = n_s + #idx * K, n_b + #idx
        sum_loss = sum_loss + loss * count
      end
      if dist then dist:allreduce_grads(params, 1) end
      if opts.clip_norm then luacap.optim.clip_grad_norm(params, opts.clip_norm) end
      optimizer:step(params)
      collectgarbage('step', 1000)
    end
    if dist then
      sum_r, sum_b, sum_g, sum_loss, n_s, n_b = unpack(dist:sum({sum_r, sum_b, sum_g, sum_loss, n_s, n_b}))
    end
    local e = #history.reward + 1
    history.reward[e] = sum_r / math.max(n_s, 1)
    history.baseline[e] = sum_b / math.max(n_s, 1)
    if kind == 'greedy' then history.greedy[e] = sum_g / math.max(n_b, 1) end
    history.loss[e] = sum_loss / math.max(n_b, 1)
    log(string.format('SCST epoch %d/%d: mean reward (CIDEr-D of %d samples per image) %.4f, ' ..
      'baseline (%s) %.4f, loss %.4f, %d images in %.1f s', epoch, opts.epochs or 1, K,
      history.reward[e], kind, history.baseline[e], history.loss[e], #images, util.now() - t0))
  end
  return history
end

return M
