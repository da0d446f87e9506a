-- Caption decoding: greedy, with the notebook's exact rules, batched over many images.
-- Start from 'startseq'; each step feeds the pre-padded prefix (the last max_len words),
-- takes the argmax word, stops at 'endseq' or after max_len words, or when the argmax is
-- the padding id 0 (the notebook's get_word_from_index gives None and it breaks); then
-- strips the start word and a final end word, and returns '' for two words or fewer.
-- Not beam search (see beam below), not sampling.
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

-- greedy(model, feats, tok, opts) -> list of caption strings (one per row of feats).
--   feats (N, F): image features (or, with opts.encoder, images (N, H, W, 3)).
--   opts.batch (64): images decoded together; opts.max_len: the model's by default.
function M.greedy(model, feats, tok, opts)
  opts = opts or {}
  local vocab = opts.vocab or M.vocab_of(tok)
  local max_len = opts.max_len or model.cfg.max_len
  local B = opts.batch or 64
  local N = feats:size(1)
  model:evaluate()
  if opts.encoder then opts.encoder:train(false) end
  local out = {}
  for first = 1, N, B do
    local count = math.min(B, N - first + 1)
    local chunk = feats:narrow(first, count)
    local f = opts.encoder and opts.encoder:forward(chunk) or chunk
    local fe4 = model:forward_image(f):clone()
    local words = {}
    local prefixes = {}
    local active = {}
    for i = 1, count do
      prefixes[i] = {vocab.start}
      words[i] = {'startseq'}
      active[i] = i
    end
    local fe4_rows
    for _ = 1, max_len do
      if #active == 0 then break end
      local act_prefixes = {}
      for k, i in ipairs(active) do act_prefixes[k] = prefixes[i] end
      local ids = prefix_ids(act_prefixes, max_len)
      local fe
      if #active == count then
        fe = fe4
      else
        local shape = fe4:shape()
        shape[1] = #active
        fe4_rows = (fe4_rows and fe4_rows:size(1) == #active) and fe4_rows or luacap.zeros(shape)
        luacap.core.gather(fe4_rows, fe4, active)
        fe = fe4_rows
      end
      local logits = model:forward_caption(fe, ids)
      local best = logits:argmax(2):flat()
      local still = {}
      for k, i in ipairs(active) do
        local id = best[k] - 1      -- column k is token id k-1
        local w = vocab.index_word[id]
        if id ~= 0 and w then
          prefixes[i][#prefixes[i] + 1] = id
          words[i][#words[i] + 1] = w
          if id ~= vocab.stop then still[#still + 1] = i end
        end
      end
      active = still
    end
    for i = 1, count do out[first + i - 1] = M.finish(words[i], 'endseq') end
  end
  return out
end

return M
