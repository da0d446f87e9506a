-- Caption decoding, batched over many images, on one step-wise interface:
--   state  = model:decode_start(feats)        feats (B, ...): B rows, one per image
--   logits = model:decode_step(state, ids)    ids: Lua array of B previous ids (first step:
--            'startseq'); returns (B, V) logits of the next token (column j = id j-1)
--            and advances the state; the tensor may be the model's own buffer
--   model:decode_select(state, rows)          keep/reorder/duplicate rows (1-based indices)
--   alphas = model:decode_alphas(state)       (B, L) attention of the last step, or nil
-- Models with these methods (models/sat.lua) decode through them; models that only have
-- forward_image/forward_caption (seed, transformer) get them from the adapter below, whose
-- state keeps each row's image-branch output and its prefix and re-runs forward_caption on
-- the pre-padded prefix at every step (the notebook's rule). Call them as
-- decode.decode_start(model, feats) etc.: the native method when the model has one.
-- Decoders: greedy (the notebook's rules), sample (multinomial, K per image, for SCST),
-- beam (see below).
local luacap = require 'luacap'

local M = {}

-- The notebook's stripping of a decoded word list (including 'startseq').
function M.finish(words, stop_word)
  if #words <= 2 then return '' end
  local last = #words
  if words[last] == stop_word then last = last - 1 end
  return table.concat(words, ' ', 2, last)
end

-- vocab: {start = id, stop = id, index_word = {id -> word}} from a tokenizer.
function M.vocab_of(tok)
  local wi = tok.word_index
  local start, stop = wi.startseq, wi.endseq
  if not start or not stop then
    error("decode: the tokenizer has no 'startseq' / 'endseq' words", 2)
  end
  local iw = {}
  for w, i in pairs(wi) do iw[i] = w end
  return {start = start, stop = stop, index_word = iw}
end

-- Pre-padded (B, max_len) ids of the last max_len ids of each prefix (pad_sequences with
-- padding='pre', truncating='pre').
local function prefix_ids(prefixes, max_len)
  local B = #prefixes
  local flat = {}
  for b = 1, B do
    local p = prefixes[b]
    local n = #p
    local base = (b - 1) * max_len
    for t = 1, max_len do
      local src = n - max_len + t      -- position in p that lands at column t
      flat[base + t] = src >= 1 and p[src] or 0
    end
  end
  return luacap.core.from_flat(flat, {B, max_len})
end
M.prefix_ids = prefix_ids

-- The interface's argument checks, shared by the adapter and native implementations
-- (models/seed_decode.lua). level: where the error points, counted from the caller.
-- append_ids adds ids (a Lua array, one per row) to the prefixes.
function M.append_ids(prefixes, ids, level)
  local B = #prefixes
  if type(ids) ~= 'table' or #ids ~= B then
    error(string.format('decode_step: expected a Lua array of %d ids, got %s', B,
      type(ids) == 'table' and #ids .. ' ids' or type(ids)), level + 1)
  end
  for b = 1, B do
    local p = prefixes[b]
    p[#p + 1] = ids[b]
  end
end

-- selected_prefixes -> copies of the prefixes of rows (1-based row numbers), in order.
function M.selected_prefixes(prefixes, rows, level)
  local B, out = #prefixes, {}
  for k, r in ipairs(rows) do
    if type(r) ~= 'number' or r < 1 or r > B or r % 1 ~= 0 then
      error(string.format('decode_select: row %d is %s, expected 1..%d', k, tostring(r), B), level + 1)
    end
    out[k] = {unpack(prefixes[r])}
  end
  return out
end

-- The adapter ------------------------------------------------------------------------
-- state = {rows = (B, ...) image-branch output (a copy), prefixes = {B id lists}, window}
local adapter = {}

function adapter.start(model, feats)
  local rows = model:forward_image(feats):clone()
  local prefixes = {}
  for b = 1, rows:size(1) do prefixes[b] = {} end
  return {rows = rows, prefixes = prefixes, window = model.cfg.max_len}
end

function adapter.step(model, state, ids)
  M.append_ids(state.prefixes, ids, 3)
  return model:forward_caption(state.rows, prefix_ids(state.prefixes, state.window))
end

function adapter.select(_, state, rows)
  local prefixes = M.selected_prefixes(state.prefixes, rows, 3)
  if #rows > 0 then
    local shape = state.rows:shape()
    shape[1] = #rows
    local new = luacap.zeros(shape)
    luacap.core.gather(new, state.rows, rows)
    state.rows = new
  end
  state.prefixes = prefixes
end
M.adapter = adapter

-- The interface, native when the model has it, else the adapter's.
function M.decode_start(model, feats)
  if model.decode_start then return model:decode_start(feats) end
  return adapter.start(model, feats)
end
function M.decode_step(model, state, ids)
  if model.decode_step then return model:decode_step(state, ids) end
  return adapter.step(model, state, ids)
end
function M.decode_select(model, state, rows)
  if model.decode_select then return model:decode_select(state, rows) end
  return adapter.select(model, state, rows)
end
function M.decode_alphas(model, state)
  if model.decode_alphas then return model:decode_alphas(state) end
  return nil
end

-- Image features of one chunk (through opts.encoder when given), model in evaluation mode.
local function chunks(model, feats, opts)
  local B = opts.batch or 64
  local N = feats:size(1)
  model:evaluate()
  if opts.encoder then opts.encoder:train(false) end
  local first = 1 - B
  return function()
    first = first + B
    if first > N then return nil end
    local count = math.min(B, N - first + 1)
    local chunk = feats:narrow(first, count)
    return first, count, opts.encoder and opts.encoder:forward(chunk) or chunk
  end
end

-- greedy(model, feats, tok, opts) -> list of caption strings (one per row of feats).
--   feats (N, ...): image features (or, with opts.encoder, images (N, H, W, 3)).
--   opts.batch (64): images decoded together; opts.max_len: the model's by default.
-- Start from 'startseq'; each step takes the argmax word, stops at 'endseq' or after
-- max_len words, or when the argmax is the padding id 0 or an id with no word (the
-- notebook's get_word_from_index gives None and it breaks); then strips as finish does.
-- Rows that stop leave the state (decode_select), so each step runs the live rows only.
function M.greedy(model, feats, tok, opts)
  opts = opts or {}
  local vocab = opts.vocab or M.vocab_of(tok)
  local max_len = opts.max_len or model.cfg.max_len
  local out = {}
  for first, count, f in chunks(model, feats, opts) do
    local state = M.decode_start(model, f)
    local words, active, ids = {}, {}, {}
    for i = 1, count do
      words[i] = {'startseq'}
      active[i] = i
      ids[i] = vocab.start
    end
    for _ = 1, max_len do
      if #active == 0 then break end
      local logits = M.decode_step(model, state, ids)
      local best = logits:argmax(2):flat()
      local still, keep, next_ids = {}, {}, {}
      for k, i in ipairs(active) do
        local id = best[k] - 1      -- column k is token id k-1
        local w = vocab.index_word[id]
        if id ~= 0 and w then
          words[i][#words[i] + 1] = w
          if id ~= vocab.stop then
            still[#still + 1], keep[#keep + 1], next_ids[#next_ids + 1] = i, k, id
          end
        end
      end
      if #still > 0 and #still < #active then M.decode_select(model, state, keep) end
      active, ids = still, next_ids
    end
    for i = 1, count do out[first + i - 1] = M.finish(words[i], 'endseq') end
  end
  return out
end

-- A seeded uniform generator in [0, 1) (xorshift32, Marsaglia 2003), kept apart from
-- luacap's own generator so that sampling does not shift training's random stream.
local function xorshift(seed)
  local x = bit.tobit(seed * 2654435761 % 4294967296)
  if x == 0 then x = 0x6d2b79f5 end
  return function()
    x = bit.bxor(x, bit.lshift(x, 13))
    x = bit.bxor(x, bit.rshift(x, 17))
    x = bit.bxor(x, bit.lshift(x, 5))
    return (x % 4294967296) / 4294967296
  end
end
M.xorshift = xorshift

-- sample(model, feats, tok, opts) -> samples, captions
--   opts.k (1): samples per image; opts.temperature (1): the logits are divided by it;
--   opts.seed: a seeded generator of its own (else opts.rng, a function giving [0, 1),
--   else luacap.random); opts.rng_of: instead, rng_of(i) -> the generator of image i's K
--   samples (i a row of feats), so an image's samples do not depend on the others in its
--   batch (distributed SCST); opts.batch (64) images per chunk; opts.max_len; opts.encoder.
-- samples[i][s] = {ids = generated ids ('endseq' included when drawn),
--   logprobs = {log p of each id under the sampling distribution}};
-- captions[i][s] the stripped caption string (as finish strips it).
-- Each row draws from softmax(logits / temperature) over the ids that have a word and are
-- not padding (the ids greedy would stop at are masked, as beam masks them); a row stops
-- at 'endseq' or after max_len ids. The K samples of an image are K rows of one state
-- (decode_select duplicates the image's row), so a chunk's K * count rows run together.
function M.sample(model, feats, tok, opts)
  opts = opts or {}
  local vocab = opts.vocab or M.vocab_of(tok)
  local max_len = opts.max_len or model.cfg.max_len
  local K = opts.k or 1
  if type(K) ~= 'number' or K < 1 or K % 1 ~= 0 then
    error('decode.sample: k must be a positive integer, got ' .. tostring(K), 2)
  end
  local temp = opts.temperature or 1
  if type(temp) ~= 'number' or not (temp > 0) then
    error('decode.sample: temperature must be a positive number, got ' .. tostring(temp), 2)
  end
  local rng = opts.seed and xorshift(opts.seed) or opts.rng or luacap.random
  local rng_of = opts.rng_of
  local samples, captions = {}, {}
  local allowed, V_allowed
  for first, count, f in chunks(model, feats, opts) do
    local state = M.decode_start(model, f)
    local rows, active, ids, hyps, gens = {}, {}, {}, {}, {}
    for i = 1, count do
      samples[first + i - 1], captions[first + i - 1] = {}, {}
      local g = rng_of and rng_of(first + i - 1) or rng
      for s = 1, K do
        local r = #rows + 1
        rows[r], active[r], ids[r], gens[r] = i, r, vocab.start, g
        hyps[r] = {ids = {}, logprobs = {}}
        samples[first + i - 1][s] = hyps[r]
      end
    end
    if K > 1 then M.decode_select(model, state, rows) end
    for _ = 1, max_len do
      if #active == 0 then break end
      local logits = M.decode_step(model, state, ids)
      local V = logits:size(2)
      if V_allowed ~= V then
        allowed, V_allowed = {}, V
        for j = 1, V do allowed[j] = j > 1 and vocab.index_word[j - 1] ~= nil end
      end
      local flat = logits:flat()
      local still, keep, next_ids = {}, {}, {}
      local p = {}
      for k, r in ipairs(active) do
        local base = (k - 1) * V
        local mx = -math.huge
        for j = 1, V do
          if allowed[j] and flat[base + j] / temp > mx then mx = flat[base + j] / temp end
        end
        local total = 0
        for j = 1, V do
          local e = allowed[j] and math.exp(flat[base + j] / temp - mx) or 0
          p[j] = e
          total = total + e
        end
        local u, acc, col = gens[r]() * total, 0, nil
        for j = 1, V do
          if p[j] > 0 then
            acc = acc + p[j]
            col = j
            if u < acc then break end
          end
        end
        local id = col - 1
        local h = hyps[r]
        h.ids[#h.ids + 1] = id
        h.logprobs[#h.logprobs + 1] = math.log(p[col] / total)
        if id ~= vocab.stop then
          still[#still + 1], keep[#keep + 1], next_ids[#next_ids + 1] = r, k, id
        end
      end
      if #still > 0 and #still < #active then M.decode_select(model, state, keep) end
      active, ids = still, next_ids
    end
    for i = 1, count do
      for s, h in ipairs(samples[first + i - 1]) do
        local words = {'startseq'}
        for t, id in ipairs(h.ids) do words[t + 1] = vocab.index_word[id] end
        captions[first + i - 1][s] = M.finish(words, 'endseq')
      end
    end
  end
  return samples, captions
end

-- attention(model, feats, tok, ids_lists, opts) -> maps | nil, msg: where a spatial-attention
-- model looked for each word of given captions. ids_lists[i]: caption i's generated ids
-- ('startseq' excluded, as beam's hyps[i].ids; a final 'endseq' may be there), fed to the
-- model step by step (teacher forcing, so any decoder's captions can be shown);
-- maps[i][t] = the L attention weights (a Lua list, summing to 1) the model used to
-- predict ids_lists[i][t]. opts.batch (64), opts.encoder as in greedy. nil and a message
-- for a model without decode_alphas (the seed and transformer models attend over no
-- regions).
function M.attention(model, feats, tok, ids_lists, opts)
  opts = opts or {}
  if not model.decode_alphas then
    return nil, 'attention maps need a model with spatial attention (--model sat)'
  end
  local start = (opts.vocab or M.vocab_of(tok)).start
  local maps = {}
  for first, count, f in chunks(model, feats, opts) do
    local state = M.decode_start(model, f)
    local longest, prev = 0, {}
    for i = 1, count do
      maps[first + i - 1] = {}
      longest = math.max(longest, #ids_lists[first + i - 1])
      prev[i] = start
    end
    for t = 1, longest do
      M.decode_step(model, state, prev)
      local al = M.decode_alphas(model, state)
      local L = al:size(2)
      local flat = al:flat()
      for i = 1, count do
        local ids = ids_lists[first + i - 1]
        if t <= #ids then
          local row = {}
          for l = 1, L do row[l] = flat[(i - 1) * L + l] end
          maps[first + i - 1][t] = row
        end
        prev[i] = ids[t] or start      -- finished rows keep stepping; their maps are not kept
      end
    end
  end
  return maps
end

-- The k best allowed columns of one logits row, best first: (logit, column) pairs, ties to
-- the lower column (as argmax). Column j is id j-1; allowed[j] says whether it may be
-- emitted, banned[j] (optional) bans it for this row. A k-slot insertion list: k is small
-- and V large, so O(V k) beats a sort.
local function top_k(flat, base, V, k, allowed, banned)
  local vals, cols, n = {}, {}, 0
  for j = 1, V do
    if allowed[j] and not (banned and banned[j]) then
      local v = flat[base + j]
      if n < k or v > vals[n] then
        local pos = n < k and n + 1 or n
        while pos > 1 and v > vals[pos - 1] do
          vals[pos], cols[pos] = vals[pos - 1], cols[pos - 1]
          pos = pos - 1
        end
        vals[pos], cols[pos] = v, j
        if n < k then n = n + 1 end
      end
    end
  end
  return vals, cols, n
end

-- log(sum(exp(row))) of one logits row, in double, max subtracted first.
local function log_sum_exp(flat, base, V)
  local mx = -math.huge
  for j = 1, V do
    local v = flat[base + j]
    if v > mx then mx = v end
  end
  local s = 0
  for j = 1, V do s = s + math.exp(flat[base + j] - mx) end
  return mx + math.log(s)
end

-- The columns that would repeat an n-gram of ids (words generated so far): every id that
-- followed an earlier occurrence of ids' last n-1 ids. nil when nothing is banned.
local function repeated_ngrams(ids, n)
  local len = #ids
  if n < 1 or len < n - 1 then return nil end
  local banned
  for p = 1, len - n + 1 do      -- ids[p .. p+n-2] against the last n-1, then ids[p+n-1]
    local same = true
    for q = 0, n - 2 do
      if ids[p + q] ~= ids[len - n + 2 + q] then same = false; break end
    end
    if same then
      banned = banned or {}
      banned[ids[p + n - 1] + 1] = true
    end
  end
  return banned
end

-- The final ranking of a finished hypothesis: score / len^alpha, len its generated ids
-- ('endseq' included).
local function rank_of(score, len, alpha)
  if alpha == 0 then return score end
  return score / math.max(len, 1) ^ alpha
end

local function better(a, b)
  if a.score ~= b.score then return a.score > b.score end
  return a.order < b.order
end

-- M.LENGTH_PENALTY: beam's default alpha (docs/decoding.md says how it was chosen).
M.LENGTH_PENALTY = 0.5

-- beam(model, feats, tok, opts) -> captions (one string per row of feats), hyps
--   opts.beam (3): K; opts.batch (64): images decoded together; opts.max_len: the model's
--   by default; opts.length_penalty (M.LENGTH_PENALTY): alpha, the final ranking is
--   score / len^alpha (len: ids generated, a final 'endseq' included); opts.block_ngram
--   (0: off): n, never emit a word that repeats an n-gram of the hypothesis; opts.encoder
--   as in greedy.
-- On the step-wise interface (decode_start / decode_step / decode_select), so the seed and
-- transformer models (through the adapter) and sat (natively) all decode with it; the rows
-- of the state are the live hypotheses of every image of the chunk, one decode_step per
-- step for all of them. A hypothesis' score is the sum of its words' log-softmax
-- probabilities (the softmax over every column, padding included). Each step, every image
-- ranks the K best words of each of its live hypotheses; in that order a candidate that
-- ends (emits 'endseq', or reaches max_len words) among the first K is finished, the others
-- fill the K live places (the beam stays K wide: ended hypotheses do not take live places).
-- An image is done when no live hypothesis can reach the best finished one's ranking (its
-- score can only fall; divided by at most max_len^alpha), however many have finished;
-- its rows then leave the state. The best finished hypothesis by the ranking wins (ties:
-- found first). Start, stop and strip rules as greedy's, except that beam never emits the
-- padding id 0 or an id with no word (greedy stops at them), so beam 1 equals greedy
-- whenever greedy's argmax is never 0.
-- hyps[i] = {ids = generated ids ('startseq' excluded), score = raw sum, rank}.
function M.beam(model, feats, tok, opts)
  opts = opts or {}
  local vocab = opts.vocab or M.vocab_of(tok)
  local max_len = opts.max_len or model.cfg.max_len
  local K = opts.beam or 3
  if type(K) ~= 'number' or K < 1 or K % 1 ~= 0 then
    error('decode.beam: beam must be a positive integer, got ' .. tostring(K), 2)
  end
  local alpha = opts.length_penalty or M.LENGTH_PENALTY
  local block = opts.block_ngram or 0
  local captions, hyps_out = {}, {}
  local allowed, V_allowed
  for first, count, f in chunks(model, feats, opts) do
    local state = M.decode_start(model, f)
    -- rows of the state: live hypotheses {img =, ids = generated ids, score =}
    local rows, best_done = {}, {}
    for i = 1, count do
      rows[i] = {img = i, ids = {}, score = 0}
    end
    local found = 0     -- finishing order, for ties in the final ranking
    local last = {}
    for i = 1, count do last[i] = vocab.start end
    for step = 1, max_len do
      if #rows == 0 then break end
      local logits = M.decode_step(model, state, last)
      local V = logits:size(2)
      if V_allowed ~= V then   -- padding and ids without a word are never emitted
        allowed, V_allowed = {}, V
        for j = 1, V do allowed[j] = j > 1 and vocab.index_word[j - 1] ~= nil end
      end
      local flat = logits:flat()
      local cands, order = {}, {}
      for r, h in ipairs(rows) do
        local base = (r - 1) * V
        local lse = log_sum_exp(flat, base, V)
        local vals, cols, m = top_k(flat, base, V, K, allowed,
          block > 0 and repeated_ngrams(h.ids, block) or nil)
        local ci = cands[h.img]
        if not ci then
          ci = {}
          cands[h.img] = ci
          order[#order + 1] = h.img
        end
        for c = 1, m do
          ci[#ci + 1] = {row = r, id = cols[c] - 1, score = h.score + (vals[c] - lse), order = base + cols[c]}
        end
      end
      local keep, next_rows, next_last = {}, {}, {}
      for _, i in ipairs(order) do
        local ci = cands[i]
        table.sort(ci, better)
        local live, best_live = 0, -math.huge
        for c, cand in ipairs(ci) do
          local ends = cand.id == vocab.stop or step == max_len
          if ends then
            if c <= K then
              local ids = {unpack(rows[cand.row].ids)}
              ids[#ids + 1] = cand.id
              found = found + 1
              local h = {ids = ids, score = cand.score, rank = rank_of(cand.score, #ids, alpha), found = found}
              local b = best_done[i]
              if not b or h.rank > b.rank or (h.rank == b.rank and h.found < b.found) then best_done[i] = h end
            end
          elseif live < K then
            live = live + 1
            local ids = {unpack(rows[cand.row].ids)}
            ids[#ids + 1] = cand.id
            next_rows[#next_rows + 1] = {img = i, ids = ids, score = cand.score, parent = cand.row}
            best_live = math.max(best_live, cand.score)
          end
          if live >= K and c >= K then break end
        end
        -- done when no live hypothesis can still beat the best finished one. Not when K
        -- have finished: short hypotheses that end early in the top K would then stop a
        -- live one scoring above them all (on the demo's model that made beam 3's captions
        -- shorter and its BLEU-4 lower than greedy's; spec/eval/decode_spec.lua)
        local b = best_done[i]
        local finished = b and rank_of(best_live, alpha > 0 and max_len or 1, alpha) <= b.rank
        if finished then
          while #next_rows > 0 and next_rows[#next_rows].img == i do next_rows[#next_rows] = nil end
        end
      end
      for k, h in ipairs(next_rows) do
        keep[k], next_last[k] = h.parent, h.ids[#h.ids]
        h.parent = nil
      end
      if #next_rows > 0 then M.decode_select(model, state, keep) end
      rows, last = next_rows, next_last
    end
    for i = 1, count do
      local best = best_done[i] or {ids = {}, score = 0, rank = 0}   -- max_len 0: nothing decoded
      local words = {'startseq'}
      for t, id in ipairs(best.ids) do words[t + 1] = vocab.index_word[id] end
      captions[first + i - 1] = M.finish(words, 'endseq')
      hyps_out[first + i - 1] = {ids = best.ids, score = best.score, rank = best.rank}
    end
  end
  return captions, hyps_out
end

return M
