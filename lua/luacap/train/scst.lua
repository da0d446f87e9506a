-- Self-critical sequence training (Rennie et al. 2017, "Self-critical Sequence Training for
-- Image Captioning"), run after cross-entropy training: for each batch of images, K captions
-- sampled per image (multinomial over the softmax), each rewarded with CIDEr-D against its
-- image's references (document frequencies cached from the training references), a
-- baseline b subtracted (the greedy caption's reward, or the mean of the image's other
-- samples), and one step on the policy-gradient loss
--   loss = -(1/n) sum_k (r_k - b_k) sum_t log p(w_kt | w_k1..w_k(t-1), image)   (n samples)
-- written as a cross-entropy on the sampled words with per-token weight r_k - b_k, through
-- the model's own training forward/backward: (prefix -> next word) pairs for the pair
-- models (seed, transformer), teacher forcing on whole captions for models that have
-- forward_sequences (sat). Sampling, the greedy baseline and the gradient pass all run in
-- evaluation mode (no dropout), so the log-probabilities differentiated are exactly those
-- the captions were drawn from. The encoder stays frozen.
-- Not beam-search sampling, no entropy bonus, no reward other than CIDEr-D.
local luacap = require 'luacap'
local decode = require 'luacap.eval.decode'

local M = {}

local function identity(n)
  local t = {}
  for i = 1, n do t[i] = i end
  return t
end

-- The step-wise decoding interface of COMMON.md for a model: its own methods when it has
-- them (sat), else an adapter over forward_image / forward_caption that keeps each row's
-- prefix and feeds it pre-padded (the pair models).
function M.stepper(model)
  if model.decode_start then return model end
  local max_len = model.cfg.max_len
  local A = {}
  function A.decode_start(_, feats)
    local fe = model:forward_image(feats):clone()
    local prefixes = {}
    for b = 1, feats:size(1) do prefixes[b] = {} end
    return {fe = fe, rows = identity(feats:size(1)), prefixes = prefixes, full = true}
  end
  function A.decode_step(_, st, ids)
    for b, p in ipairs(st.prefixes) do p[#p + 1] = ids[b] end
    local fe = st.fe
    if not st.full then
      local shape = fe:shape()
      shape[1] = #st.rows
      st.buf = (st.buf and st.buf:size(1) == #st.rows) and st.buf or luacap.zeros(shape)
      luacap.core.gather(st.buf, fe, st.rows)
      fe = st.buf
    end
    return model:forward_caption(fe, decode.prefix_ids(st.prefixes, max_len))
  end
  function A.decode_select(_, st, rows)
    local prefixes, r = {}, {}
    for i, j in ipairs(rows) do
      local p = {}
      for t, id in ipairs(st.prefixes[j]) do p[t] = id end
      prefixes[i], r[i] = p, st.rows[j]
    end
    st.prefixes, st.rows = prefixes, r
    st.full = #r == st.fe:size(1)
    if st.full then
      for i = 1, #r do if r[i] ~= i then st.full = false break end end
    end
  end
  return A
end

-- One draw from softmax(row) of a logits row (columns base+1 .. base+V), with luacap's
-- generator; returns the column. Max subtracted first, in double.
local function draw(flat, base, V)
  local mx = -math.huge
  for j = 1, V do
    local v = flat[base + j]
    if v > mx then mx = v end
  end
  local s = 0
  for j = 1, V do s = s + math.exp(flat[base + j] - mx) end
  local u, c = luacap.random() * s, 0
  for j = 1, V do
    c = c + math.exp(flat[base + j] - mx)
    if u < c then return j end
  end
  return V
end

local function argmax(flat, base, V)
  local best, bj = -math.huge, 1
  for j = 1, V do
    if flat[base + j] > best then best, bj = flat[base + j], j end
  end
  return bj
end

-- sample(model, feats, vocab, opts) -> seqs, owner: opts.k (1) captions for each row of
-- feats (B, ...), seqs[(b-1)*k + j] the generated ids (the 'startseq' fed first is not
-- included; the last id is 'endseq', or 0 / an id without a word, which end a caption as
-- in greedy decoding, unless max_len ran out), owner[i] = the row of feats it belongs to.
-- opts.greedy: the argmax instead of a draw (then equal to decode.greedy's words);
-- opts.max_len: the model's by default. The model runs in evaluation mode.
function M.sample(model, feats, vocab, opts)
  opts = opts or {}
  local K = opts.k or 1
  local max_len = opts.max_len or model.cfg.max_len
  local B = feats:size(1)
  local owner = {}
  for b = 1, B do for _ = 1, K do owner[#owner + 1] = b end end
  local n = #owner
  local fk = feats
  if K > 1 then
    local shape = feats:shape()
    shape[1] = n
    fk = luacap.zeros(shape)
    luacap.core.gather(fk, feats, owner)
  end
  model:evaluate()
  local sm = M.stepper(model)
  local st = sm:decode_start(fk)
  local seqs, active, ids = {}, identity(n), {}
  for i = 1, n do seqs[i], ids[i] = {}, vocab.start end
  for _ = 1, max_len do
    local logits = sm:decode_step(st, ids)
    local V = logits:size(2)
    local flat = logits:flat()
    local keep, next_active, next_ids = {}, {}, {}
    for r, i in ipairs(active) do
      local j = opts.greedy and argmax(flat, (r - 1) * V, V) or draw(flat, (r - 1) * V, V)
      local id = j - 1            -- column j is token id j-1
      local s = seqs[i]
      s[#s + 1] = id
      if id ~= vocab.stop and id ~= 0 and vocab.index_word[id] then
        keep[#keep + 1] = r
        next_active[#next_active + 1] = i
        next_ids[#next_ids + 1] = id
      end
    end
    if #keep == 0 then break end
    if #keep < #active then sm:decode_select(st, keep) end
    active, ids = next_active, next_ids
  end
  return seqs, owner
end

-- The caption of generated ids as evaluation sees it (decode.finish's rules: the final
-- 'endseq' dropped, one word or none gives the empty caption; an ending 0 is no word).
function M.words(seq, vocab)
  local w = {'startseq'}
  for _, id in ipairs(seq) do
    local word = vocab.index_word[id]
    if id == 0 or not word then break end
    w[#w + 1] = word
  end
  local s = decode.finish(w, 'endseq')
  local out = {}
  for t in s:gmatch('%S+') do out[#out + 1] = t end
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
-- Pair models: every (prefix -> next word) pair of the samples, opts.pair_batch (256) at a
-- time through model:forward / backward; models with forward_sequences: teacher forcing.
-- The caller zeroes the gradients and sets evaluation or training mode.
function M.pg_backward(model, feats, seqs, owner, weights, norm, opts)
  opts = opts or {}
  local crit = opts.criterion or luacap.nn.SoftmaxCrossEntropy()
  local start = opts.start or error('scst.pg_backward: opts.start (the startseq id) is required', 2)
  if model.forward_sequences then
    return M.pg_backward_sequences(model, feats, seqs, owner, weights, norm, crit, start)
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
    local logits = model:forward(fb, luacap.core.from_flat(x, {B, max_len}))
    total = total + crit:forward_weighted(logits, luacap.core.from_flat(y, {B}),
      luacap.core.from_flat(w, {B}), norm)
    model:backward(crit:backward())
  end
  return total
end

-- Teacher forcing for models with forward_sequences(feats (n, ...), ids (n, T)) -> logits
-- (n, T, V) and backward_sequences(dlogits): inputs startseq, s[1..L-1], targets s[1..L],
-- per-token weights (0 at padding).
function M.pg_backward_sequences(model, feats, seqs, owner, weights, norm, crit, start)
  local keep = {}
  for k = 1, #seqs do if weights[k] ~= 0 and #seqs[k] > 0 then keep[#keep + 1] = k end end
  if #keep == 0 then return 0 end
  local T = 0
  for _, k in ipairs(keep) do T = math.max(T, #seqs[k]) end
  local n = #keep
  local x, y, w, rows = {}, {}, {}, {}
  for i, k in ipairs(keep) do
    local s = seqs[k]
    for t = 1, T do
      local o = (i - 1) * T + t
      x[o] = t <= #s and (t == 1 and start or s[t - 1]) or 0
      y[o] = t <= #s and s[t] or 0
      w[o] = t <= #s and weights[k] or 0
    end
    rows[i] = owner[k]
  end
  local fshape = feats:shape()
  fshape[1] = n
  local fb = luacap.zeros(fshape)
  luacap.core.gather(fb, feats, rows)
  local logits = model:forward_sequences(fb, luacap.core.from_flat(x, {n, T}))
  local loss = crit:forward_weighted(logits, luacap.core.from_flat(y, {n, T}),
    luacap.core.from_flat(w, {n, T}), norm)
  model:backward_sequences(crit:backward())
  return loss
end

-- run{model=, inputs = tensor (N, ...) (features, or images with encoder=), encoder =
--   (optional, frozen), images = list of rows of inputs to train on, references = one list
--   of reference token lists per entry of images, vocab = decode.vocab_of(tok),
--   epochs = 1, batch_images = 16, k = 5, baseline = 'greedy' | 'mean',
--   optimizer = luacap.optim.Adam{lr = 5e-5}, clip_norm, scorer = (optional, a
--   metrics.cider_scorer over references), pair_batch = 256, verbose = 1, log = fn(line)}
-- -> history {reward = {per epoch mean sample reward}, baseline = {..}, greedy = {..}
--    (mean greedy reward, when baseline is greedy), loss = {..}}
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
  for epoch = 1, opts.epochs or 1 do
    local t0 = util.now()
    local order = shuffle(#images)
    local sum_r, sum_b, sum_g, sum_loss, n_s, n_b = 0, 0, 0, 0, 0, 0
    for first = 1, #images, bs do
      local count = math.min(bs, #images - first + 1)
      local idx, rows = {}, {}
      for i = 1, count do
        idx[i] = order[first + i - 1]      -- entry of images / the scorer's image number
        rows[i] = images[idx[i]]
      end
      local shape = inputs:shape()
      shape[1] = count
      local X = luacap.zeros(shape)
      luacap.core.gather(X, inputs, rows)
      local feats = encoder and encoder:forward(X):clone() or X
      model:evaluate()
      -- rewards of K samples per image, and the baseline
      local seqs, owner = M.sample(model, feats, vocab, {k = K})
      local hyps, imgs = {}, {}
      for i, s in ipairs(seqs) do hyps[i], imgs[i] = M.words(s, vocab), idx[owner[i]] end
      local r = scorer:score(hyps, imgs)
      local greedy_r
      if kind == 'greedy' then
        local gseqs = M.sample(model, feats, vocab, {greedy = true})
        local gh = {}
        for i, s in ipairs(gseqs) do gh[i] = M.words(s, vocab) end
        greedy_r = scorer:score(gh, idx)
        for i = 1, count do sum_g = sum_g + greedy_r[i] end
      end
      local b = M.baselines(r, K, kind, greedy_r)
      local w = {}
      for i = 1, #r do
        w[i] = r[i] - b[i]
        sum_r, sum_b = sum_r + r[i], sum_b + b[i]
      end
      n_s, n_b = n_s + #r, n_b + count
      for _, p in ipairs(params) do p.grad:zero() end
      local loss = M.pg_backward(model, feats, seqs, owner, w, #seqs,
        {start = vocab.start, pair_batch = opts.pair_batch})
      if opts.clip_norm then luacap.optim.clip_grad_norm(params, opts.clip_norm) end
      optimizer:step(params)
      sum_loss = sum_loss + loss * count
      collectgarbage('step', 1000)
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
