-- luacap.eval.metrics: caption metrics over token lists: corpus BLEU (nltk 3.8 corpus_bleu,
-- no smoothing), CIDEr-D and ROUGE-L (coco-caption), METEOR (nltk 3.8 meteor_score without
-- WordNet synonyms). Counting runs in C (csrc/text/).
-- Not a tokenizer: tokens arrive already split, compared as exact strings (METEOR alone
-- lower-cases and stems them, as nltk does).
local core = require 'luacap.core'
local stem = require 'luacap.eval.stem'

local M = {}

-- The notebook's weights, plus BLEU-3.
M.BLEU_WEIGHTS = {
  {'BLEU-1', {1, 0, 0, 0}},
  {'BLEU-2', {0.5, 0.5, 0, 0}},
  {'BLEU-3', {1 / 3, 1 / 3, 1 / 3, 0}},
  {'BLEU-4', {0.25, 0.25, 0.25, 0.25}},
}

-- ids maps tokens to ids; count = {n} holds the last id given (kept apart from ids, so
-- that a token "n" is a word like any other)
local function token_id(fn, ids, count, w, where)
  local id = ids[w]
  if id then return id end
  local tw = type(w)
  if (tw ~= 'string' and tw ~= 'number') or w ~= w then
    error(('%s: %s is %s, expected a string token'):format(fn, where,
      tw == 'number' and 'NaN' or 'a ' .. tw), 3)
  end
  local n = count[1] + 1
  count[1] = n
  ids[w] = n
  return n
end

-- Interns tokens to integer ids (equal token, equal id) and flattens the corpus into
-- the five arrays that the C functions take (see csrc/bind/text.c).
-- references: a list (one per hypothesis) of lists of token lists; hypotheses: a list
-- of token lists. Returns hyp, hyp_lens, ref, ref_lens, nrefs, and the table token -> id.
function M.encode(references, hypotheses, fn)
  fn = fn or 'encode'
  if type(references) ~= 'table' then
    error(('%s: references is a %s, expected a list of reference lists'):format(
      fn, type(references)), 2)
  end
  if type(hypotheses) ~= 'table' then
    error(('%s: hypotheses is a %s, expected a list of token lists'):format(
      fn, type(hypotheses)), 2)
  end
  if #references ~= #hypotheses then
    error(('%s: %d reference lists for %d hypotheses, expected one per hypothesis'):format(
      fn, #references, #hypotheses), 2)
  end
  local ids, count = {}, {0}
  local hyp, hyp_lens, ref, ref_lens, nrefs = {}, {}, {}, {}, {}
  local nh, nr, nl = 0, 0, 0
  for s = 1, #hypotheses do
    local h = hypotheses[s]
    if type(h) ~= 'table' then
      error(('%s: hypotheses[%d] is a %s, expected a list of tokens'):format(fn, s, type(h)), 2)
    end
    for i = 1, #h do
      local w = h[i]
      local id = ids[w] or token_id(fn, ids, count, w, ('hypotheses[%d][%d]'):format(s, i))
      nh = nh + 1
      hyp[nh] = id
    end
    hyp_lens[s] = #h
    local rs = references[s]
    if type(rs) ~= 'table' or #rs == 0 then
      error(('%s: references[%d] is %s, expected a non-empty list of token lists'):format(
        fn, s, type(rs) == 'table' and 'empty' or 'a ' .. type(rs)), 2)
    end
    for j = 1, #rs do
      local r = rs[j]
      if type(r) ~= 'table' then
        error(('%s: references[%d][%d] is a %s, expected a list of tokens'):format(
          fn, s, j, type(r)), 2)
      end
      for i = 1, #r do
        local w = r[i]
        local id = ids[w] or
                   token_id(fn, ids, count, w, ('references[%d][%d][%d]'):format(s, j, i))
        nr = nr + 1
        ref[nr] = id
      end
      nl = nl + 1
      ref_lens[nl] = #r
    end
    nrefs[s] = #rs
  end
  return hyp, hyp_lens, ref, ref_lens, nrefs, ids
end

local function check_weights(fn, w, name)
  if type(w) ~= 'table' or #w == 0 then
    error(('%s: %s is %s, expected a non-empty list of numbers'):format(
      fn, name, type(w) == 'table' and 'empty' or 'a ' .. type(w)), 3)
  end
  for i = 1, #w do
    if type(w[i]) ~= 'number' then
      error(('%s: %s[%d] is a %s, expected a number'):format(fn, name, i, type(w[i])), 3)
    end
  end
end

-- BLEU statistics: {num = {N}, den = {N}, hyp_len =, ref_len =} summed over the corpus,
-- or with per_sentence one such table per hypothesis.
function M.bleu_stats(references, hypotheses, N, per_sentence)
  local a, b, c, d, e = M.encode(references, hypotheses, 'bleu_stats')
  return core.bleu_stats(a, b, c, d, e, N or 4, per_sentence)
end

-- corpus_bleu(list_of_references, hypotheses[, weights]): nltk 3.8's corpus_bleu without
-- smoothing. weights defaults to {0.25, 0.25, 0.25, 0.25}; a list of weight lists gives a
-- list of scores (one per weight list), as in nltk.
function M.corpus_bleu(references, hypotheses, weights)
  weights = weights or {0.25, 0.25, 0.25, 0.25}
  local many = type(weights) == 'table' and type(weights[1]) == 'table'
  local list = many and weights or {weights}
  local N = 0
  for i = 1, #list do
    check_weights('corpus_bleu', list[i], many and ('weights[%d]'):format(i) or 'weights')
    N = math.max(N, #list[i])
  end
  if N == 0 then error('corpus_bleu: weights is empty, expected weight lists', 2) end
  local a, b, c, d, e = M.encode(references, hypotheses, 'corpus_bleu')
  local stats = core.bleu_stats(a, b, c, d, e, N)
  local out = {}
  for i = 1, #list do out[i] = core.bleu_score(stats, list[i]) end
  if many then return out end
  return out[1]
end

-- sentence_bleu(references, hypothesis[, weights]) = corpus_bleu({references}, {hypothesis}).
function M.sentence_bleu(references, hypothesis, weights)
  return M.corpus_bleu({references}, {hypothesis}, weights)
end

-- bleu_scores(references, hypotheses) -> {['BLEU-1'] =, ..., ['BLEU-4'] =}: corpus BLEU
-- with M.BLEU_WEIGHTS, counted once for all four.
function M.bleu_scores(references, hypotheses)
  local a, b, c, d, e = M.encode(references, hypotheses, 'bleu_scores')
  local stats = core.bleu_stats(a, b, c, d, e, 4)
  local out = {}
  for _, nw in ipairs(M.BLEU_WEIGHTS) do out[nw[1]] = core.bleu_score(stats, nw[2]) end
  return out
end

-- coco_bleu_scores(references, hypotheses) -> {['BLEU-1'] =, ..., ['BLEU-4'] =}:
-- coco-caption's corpus BLEU (pycocoevalcap Bleu, the one papers report): nltk's clipped
-- matches and closest reference lengths, its own denominators (max(0, L-n+1)) and
-- epsilons, so a missing 4-gram gives a small score rather than 0 (csrc/text/bleu.c).
function M.coco_bleu_scores(references, hypotheses)
  local a, b, c, d, e = M.encode(references, hypotheses, 'coco_bleu_scores')
  local stats = core.bleu_stats(a, b, c, d, e, 4)
  local out = {}
  for n = 1, 4 do out['BLEU-' .. n] = core.bleu_coco(stats, n) end
  return out
end

local function mean(t)
  local s = 0
  for i = 1, #t do s = s + t[i] end
  return #t > 0 and s / #t or 0
end

-- cider_d(references, hypotheses[, opt]) -> mean, per-image scores. coco-caption's
-- CIDEr-D: opt.n = 4, opt.sigma = 6; idf from these references; an empty corpus gives 0.
function M.cider_d(references, hypotheses, opt)
  opt = opt or {}
  local a, b, c, d, e = M.encode(references, hypotheses, 'cider_d')
  local scores = core.cider_d(a, b, c, d, e, opt.n or 4, opt.sigma or 6)
  return mean(scores), scores
end

-- cider_scorer(references[, opt]) -> scorer: CIDEr-D with document frequencies cached from
-- a fixed reference set (references: one list of token lists per image, as cider_d takes;
-- opt.n = 4, opt.sigma = 6), for self-critical training's many calls per batch:
--   scorer:score(hypotheses, images) -> scores: hypotheses[k] (a token list) against the
--   references of image images[k] (1-based, into references). With the df of the very
--   references scored against, the scores equal cider_d's. The df and the references'
--   tf-idf vectors live in C (csrc/text/cider.c), freed by the GC or scorer:free().
local Scorer = {}
Scorer.__index = Scorer

function M.cider_scorer(references, opt)
  opt = opt or {}
  local none = {}
  for s = 1, type(references) == 'table' and #references or 0 do none[s] = {} end
  local _, _, ref, ref_lens, nrefs, ids = M.encode(references, none, 'cider_scorer')
  local n = 0
  for _ in pairs(ids) do n = n + 1 end
  return setmetatable({c = core.cider_scorer(ref, ref_lens, nrefs, opt.n or 4), ids = ids,
    n_ids = n, sigma = opt.sigma or 6}, Scorer)
end

function Scorer:score(hypotheses, images)
  local fn = 'cider_scorer:score'
  if type(hypotheses) ~= 'table' or type(images) ~= 'table' then
    error(fn .. ': expected a list of token lists and a list of image numbers', 2)
  end
  if #hypotheses ~= #images then
    error(('%s: %d hypotheses for %d images, expected one image per hypothesis'):format(
      fn, #hypotheses, #images), 2)
  end
  -- tokens the references never hold match nothing: fresh ids for this call only
  local ids, fresh, count = self.ids, {}, {self.n_ids}
  local hyp, lens, nh = {}, {}, 0
  for k = 1, #hypotheses do
    local h = hypotheses[k]
    if type(h) ~= 'table' then
      error(('%s: hypotheses[%d] is a %s, expected a list of tokens'):format(fn, k, type(h)), 2)
    end
    for i = 1, #h do
      local w = h[i]
      nh = nh + 1
      hyp[nh] = ids[w] or fresh[w] or token_id(fn, fresh, count, w, ('hypotheses[%d][%d]'):format(k, i))
    end
    lens[k] = #h
  end
  return self.c:score(hyp, lens, images, self.sigma)
end

function Scorer:images() return self.c:images() end
function Scorer:free() self.c:free() end

-- rouge_l(references, hypotheses[, opt]) -> mean, per-image scores. coco-caption's
-- ROUGE-L with opt.beta = 1.2.
function M.rouge_l(references, hypotheses, opt)
  opt = opt or {}
  local a, b, c, d, e = M.encode(references, hypotheses, 'rouge_l')
  local scores = core.rouge_l(a, b, c, d, e, opt.beta or 1.2)
  return mean(scores), scores
end

local function check_number(fn, opt, key, default)
  local v = opt[key]
  if v == nil then return default end
  if type(v) ~= 'number' then
    error(('%s: opt.%s is a %s, expected a number'):format(fn, key, type(v)), 3)
  end
  return v
end

-- Maps every id of ids (token -> id) through key(token) to fresh ids (equal key, equal id):
-- returns the list old id -> new id.
local function reintern(ids, key)
  local new, to, n = {}, {}, 0
  for w, id in pairs(ids) do
    local k = key(w)
    local nid = new[k]
    if not nid then n = n + 1; nid = n; new[k] = nid end
    to[id] = nid
  end
  return to
end

local function map_ids(a, to)
  local out = {}
  for i = 1, #a do out[i] = to[a[i]] end
  return out
end

-- meteor(references, hypotheses[, opt]) -> mean, per-image scores. nltk 3.8's
-- meteor_score per hypothesis (the max over its references) without the WordNet synonym
-- module: exact matches, then Porter-stem matches (luacap.eval.stem), nltk's greedy
-- alignment, Fmean = P R / (alpha P + (1 - alpha) R), penalty gamma (chunks / m)^beta.
-- opt: alpha = 0.9, beta = 3, gamma = 0.5; lower = true lower-cases string tokens first
-- (nltk's preprocess=str.lower; ASCII only); stem = false turns off the stem module.
-- The mean of per-image scores, not the official METEOR's corpus-level aggregation.
function M.meteor(references, hypotheses, opt)
  local fn = 'meteor'
  opt = opt or {}
  if type(opt) ~= 'table' then
    error(('%s: opt is a %s, expected a table'):format(fn, type(opt)), 2)
  end
  local alpha = check_number(fn, opt, 'alpha', 0.9)
  local beta = check_number(fn, opt, 'beta', 3)
  local gamma = check_number(fn, opt, 'gamma', 0.5)
  local lower, stemming = opt.lower ~= false, opt.stem ~= false
  local hyp, hyp_lens, ref, ref_lens, nrefs, ids = M.encode(references, hypotheses, fn)
  -- the word as nltk compares it (after preprocess), and its stem; numbers stay as they are
  local function word(w)
    if lower and type(w) == 'string' then return w:lower() end
    return w
  end
  local function stem_of(w)
    if type(w) ~= 'string' then return w end
    return stem.cached(word(w))
  end
  local hw, rw = hyp, ref
  if lower then
    local to = reintern(ids, word)
    hw, rw = map_ids(hyp, to), map_ids(ref, to)
  end
  local hs, rs = hw, rw     -- no stem module: stem ids = word ids add no match after exact
  if stemming then
    local to = reintern(ids, stem_of)
    hs, rs = map_ids(hyp, to), map_ids(ref, to)
  end
  local scores = core.meteor(hw, hyp_lens, rw, ref_lens, nrefs, hs, rs, alpha, beta, gamma)
  return mean(scores), scores
end

-- all(references, hypotheses) -> {['BLEU-1'..'BLEU-4'] (nltk), ['coco BLEU-1'..'coco
-- BLEU-4'], CIDEr-D, ROUGE-L, METEOR}: one table of corpus numbers, ready for
-- results/metrics.json.
function M.all(references, hypotheses)
  local out = M.bleu_scores(references, hypotheses)
  for k, v in pairs(M.coco_bleu_scores(references, hypotheses)) do out['coco ' .. k] = v end
  out['CIDEr-D'] = (M.cider_d(references, hypotheses))
  out['ROUGE-L'] = (M.rouge_l(references, hypotheses))
  out['METEOR'] = (M.meteor(references, hypotheses))
  return out
end

return M
