-- Specs for lua/luacap/eval/decode.lua's beam search: beam 1 equals greedy on a random
-- seed model, beam K scores at least greedy's caption, a scripted toy model where greedy
-- is myopic and beam 2 is not, batched equals per-image, one model call per step.
local luacap = require 'luacap'
local decode = require 'luacap.eval.decode'
local Seed = require 'luacap.models.seed'

local V, MAX_LEN = 9, 5

-- ids: 0 padding, 1 startseq, 2 endseq, 3..8 w3..w8
local function fake_tokenizer(nwords)
  local wi = {startseq = 1, endseq = 2}
  for id = 3, nwords do wi['w' .. id] = id end
  return {word_index = wi}
end

-- A tiny random seed model. Greedy stops when the argmax is the padding id 0 and beam
-- never emits it, so the output bias of column 1 (id 0) is set to -100: id 0 never wins
-- and the two decoders follow the same rules.
-- Every weight is scaled up so that the random model's choices are peaked and depend on
-- the image and the prefix (at Keras' initial scale it predicts nearly uniformly).
local function tiny(seed, scale)
  luacap.seed(seed)
  local m = Seed{vocab_size = V, max_len = MAX_LEN, feat_dim = 6, img_dense = 5,
    embed_dim = 4, units = 3, dec_dense = 5, dropout = 0.5}
  for _, p in ipairs(m:parameters()) do p.value:scale(scale or 3) end
  m.out.bias:set(1, -100)
  return m
end

-- log p(ids | image) under the model by teacher forcing: the sum over t of the
-- log-softmax of logits(prefix startseq, ids[1..t-1]) at ids[t].
local function sequence_score(model, feat_row, ids, start)
  model:evaluate()
  local fe4 = model:forward_image(feat_row):clone()
  local prefix, total = {start}, 0
  for _, id in ipairs(ids) do
    local row = model:forward_caption(fe4, decode.prefix_ids({prefix}, MAX_LEN)):flat()
    local mx = -math.huge
    for j = 1, #row do mx = math.max(mx, row[j]) end
    local s = 0
    for j = 1, #row do s = s + math.exp(row[j] - mx) end
    total = total + row[id + 1] - (mx + math.log(s))
    prefix[#prefix + 1] = id
  end
  return total
end

-- greedy's generated ids back from its caption: words, plus 'endseq' when it stopped
-- before max_len words (id 0 never wins here, so endseq is the only early stop; '' is
-- then 'endseq' alone).
local function greedy_ids(caption, tok)
  local ids = {}
  for w in caption:gmatch('%S+') do ids[#ids + 1] = tok.word_index[w] end
  if #ids < MAX_LEN then ids[#ids + 1] = tok.word_index.endseq end
  return ids
end

-- The toy model: a Lua table with the model's two methods, returning scripted
-- log-probabilities that depend on the whole prefix. Vocabulary: 0 pad, 1 startseq,
-- 2 endseq, 3 a, 4 b, 5 c. The image "feature" picks the script: 1 as written, 2 with
-- a and b swapped. Probabilities (pad gets 1e-6, so the log-softmax is log p to 1e-6):
--   after startseq:     a .5   b .4   c .05  end .05
--   after startseq a:   c .3   a .25  end .25  b .2
--   after startseq b:   end .9  a, b, c 1/30 each
--   after anything else: end .97  a, b, c .01 each
-- greedy: a (.5), then c (.3), then end (.97): log .5 + log .3 + log .97
--   = -0.693147 - 1.203973 - 0.030459 = -1.927579            -> "a c"
-- beam 2: step 1 keeps a (-0.693147) and b (-0.916291); step 2's candidates are
--   b end  -0.916291 + log .9 = -1.021651   (finished)
--   a c    -0.693147 + log .3 = -1.897120
--   a a, a end  -2.079442;  b a, b b, b c  -0.916291 - 3.401197 = -4.317488
--   b end is among the first 2: finished; a c and a a fill the 2 live places; no live
--   score (-1.897120 at best) can rise above b end's: done.           -> "b"
-- toy_model(log, scripts) runs another script in the same way.
local function toy_model(log, scripts)
  scripts = scripts or {
    ['1'] = {[2] = .05, [3] = .5, [4] = .4, [5] = .05},
    ['1 3'] = {[2] = .25, [3] = .25, [4] = .2, [5] = .3},
    ['1 4'] = {[2] = .9, [3] = 1 / 30, [4] = 1 / 30, [5] = 1 / 30},
  }
  local default = {[2] = .97, [3] = .01, [4] = .01, [5] = .01}
  local swap = {[3] = 4, [4] = 3}
  local model = {cfg = {max_len = 4}}
  function model.evaluate() end
  function model.forward_image(_, feats) return feats:clone() end
  function model.forward_caption(_, fe, ids)
    local n, T = ids:size(1), ids:size(2)
    if log then log[#log + 1] = n end
    local out = luacap.zeros(n, 6)
    for r = 1, n do
      local swapped = fe:get(r, 1) == 2
      local key = {}
      for t = 1, T do
        local id = ids:get(r, t)
        if id ~= 0 then key[#key + 1] = swapped and swap[id] or id end
      end
      local p = scripts[table.concat(key, ' ')] or default
      out:set(r, 1, math.log(1e-6))
      out:set(r, 2, math.log(1e-9))   -- startseq is never predicted
      for id = 2, 5 do out:set(r, (swapped and swap[id] or id) + 1, math.log(p[id])) end
    end
    return out
  end
  return model
end
local TOY_TOK = {word_index = {startseq = 1, endseq = 2, a = 3, b = 4, c = 5}}

describe('decode.beam', function()
  it('with beam 1 gives exactly greedy captions on a random seed model', function()
    local tok = fake_tokenizer(V - 1)
    for _, case in ipairs{{1, 3}, {2, 5}, {3, 8}, {4, 3}} do
      local m = tiny(case[1], case[2])
      local feats = luacap.randn(7, 6)
      local greedy = decode.greedy(m, feats, tok)
      local beam, hyps = decode.beam(m, feats, tok, {beam = 1})
      assert.same(greedy, beam)
      for i = 1, 7 do assert.same(greedy_ids(greedy[i], tok), hyps[i].ids) end
    end
  end)

  it('with beam K finds a caption scoring at least greedy’s, and reports its score', function()
    local tok = fake_tokenizer(V - 1)
    local m = tiny(4)
    local feats = luacap.randn(6, 6)
    local greedy = decode.greedy(m, feats, tok)
    local start = tok.word_index.startseq
    local index_word = decode.vocab_of(tok).index_word
    local strictly_better = 0
    for _, K in ipairs{2, 3, 5} do
      local beam, hyps = decode.beam(m, feats, tok, {beam = K, length_penalty = 0})
      for i = 1, 6 do
        local row = feats:narrow(i, 1)
        local g = sequence_score(m, row, greedy_ids(greedy[i], tok), start)
        local b = sequence_score(m, row, hyps[i].ids, start)
        assert.near(b, hyps[i].score, 1e-4)   -- the reported score is the sequence's
        assert.is_true(b >= g - 1e-5, string.format('image %d beam %d: %.6f < greedy %.6f', i, K, b, g))
        if b > g + 1e-4 then strictly_better = strictly_better + 1 end
        local words = {'startseq'}   -- the caption is the hypothesis' words, stripped
        for _, id in ipairs(hyps[i].ids) do words[#words + 1] = index_word[id] end
        assert.equal(decode.finish(words, 'endseq'), beam[i])
      end
    end
    -- the random model is not so easy that greedy is always optimal (or the test is idle)
    assert.is_true(strictly_better > 0)
  end)

  it('beats a myopic greedy on a scripted toy model (arithmetic in the model)', function()
    local model = toy_model()
    local feats = luacap.tensor{{1}}
    assert.same({'a c'}, decode.greedy(model, feats, TOY_TOK, {max_len = 4}))
    local one = decode.beam(model, feats, TOY_TOK, {beam = 1, max_len = 4})
    assert.same({'a c'}, one)
    local two, hyps = decode.beam(model, feats, TOY_TOK, {beam = 2, max_len = 4, length_penalty = 0})
    assert.same({'b'}, two)
    assert.same({4, 2}, hyps[1].ids)
    assert.near(math.log(.4) + math.log(.9), hyps[1].score, 1e-4)   -- -1.021651
    assert.near(-1.021651, hyps[1].score, 1e-4)
    -- length penalty alpha = 1: b end -1.021651 / 2 = -0.5108 still beats a c end
    -- -1.927579 / 3 = -0.6425
    local lp, lh = decode.beam(model, feats, TOY_TOK, {beam = 2, max_len = 4, length_penalty = 1})
    assert.same({'b'}, lp)
    assert.near(-1.021651 / 2, lh[1].rank, 1e-4)
    -- the swapped script: greedy "b c", beam 2 "a"
    local feats2 = luacap.tensor{{2}}
    assert.same({'b c'}, decode.greedy(model, feats2, TOY_TOK, {max_len = 4}))
    assert.same({'a'}, (decode.beam(model, feats2, TOY_TOK, {beam = 2, max_len = 4, length_penalty = 0})))
  end)

  it('goes on while a live hypothesis still beats every finished one (K finished is not the end)', function()
    -- K = 2, alpha 0. Script (end 2, a 3, b 4, c 5):
    --   after startseq:  a .6  b .25  end .14  c .01
    --   after a:         c .9  end .05  a .03  b .02
    --   after b:         end .95  a, b, c 1/60 each
    --   after a c:       b .9  end .05  a .03  c .02
    --   anything else:   end .97  a, b, c .01 each
    -- step 2: a c -0.616186 (live), b end -1.437588 (finished 1), a a -4.017384 (live)
    -- step 3: a c b -0.721547 (live), a c end -3.611918 (finished 2), a a end -4.047843
    -- Two hypotheses have finished, but a c b scores above both and can still end:
    -- step 4: a c b end -0.751997 beats b end. Stopping at K finished gave "b".
    local model = toy_model(nil, {
      ['1'] = {[2] = .14, [3] = .6, [4] = .25, [5] = .01},
      ['1 3'] = {[2] = .05, [3] = .03, [4] = .02, [5] = .9},
      ['1 4'] = {[2] = .95, [3] = 1 / 60, [4] = 1 / 60, [5] = 1 / 60},
      ['1 3 5'] = {[2] = .05, [3] = .03, [4] = .9, [5] = .02},
    })
    local caps, hyps = decode.beam(model, luacap.tensor{{1}}, TOY_TOK,
      {beam = 2, max_len = 4, length_penalty = 0})
    assert.same({'a c b'}, caps)
    assert.same({3, 5, 4, 2}, hyps[1].ids)
    assert.near(math.log(.6) + math.log(.9) + math.log(.9) + math.log(.97), hyps[1].score, 1e-4)
    assert.near(-0.751997, hyps[1].score, 1e-4)
  end)

  it('runs all live hypotheses of a chunk through one model call per step', function()
    local log = {}
    local model = toy_model(log)
    local feats = luacap.tensor{{1}, {2}, {1}}
    local caps = decode.beam(model, feats, TOY_TOK, {beam = 2, max_len = 4, length_penalty = 0})
    assert.same({'b', 'a', 'b'}, caps)
    -- step 1: 3 images x 1 start hypothesis; step 2: 3 x 2; then every image is done: its
    -- finished b end (a end) scores -1.0217 and the best live one, a c (b c), -1.8971 can
    -- only fall
    assert.same({3, 6}, log)
  end)

  it('gives the same captions batched as one image at a time', function()
    local tok = fake_tokenizer(V - 1)
    local m = tiny(5)
    local feats = luacap.randn(6, 6)
    local all, all_h = decode.beam(m, feats, tok, {beam = 3, batch = 64})
    local chunked = decode.beam(m, feats, tok, {beam = 3, batch = 4})
    assert.same(all, chunked)
    for i = 1, 6 do
      local one, one_h = decode.beam(m, feats:narrow(i, 1), tok, {beam = 3, batch = 1})
      assert.equal(all[i], one[1])
      assert.same(all_h[i].ids, one_h[1].ids)
      assert.near(all_h[i].score, one_h[1].score, 1e-5)
    end
  end)

  -- log p(ids | image) through the step-wise interface (any model)
  local function stepwise_score(model, feat_row, ids, start)
    model:evaluate()
    local st = decode.decode_start(model, feat_row)
    local prev, total = start, 0
    for _, id in ipairs(ids) do
      local row = decode.decode_step(model, st, {prev}):flat()
      local mx = -math.huge
      for j = 1, #row do mx = math.max(mx, row[j]) end
      local z = 0
      for j = 1, #row do z = z + math.exp(row[j] - mx) end
      total = total + row[id + 1] - (mx + math.log(z))
      prev = id
    end
    return total
  end

  it('decodes sat through its native step-wise interface: beam 1 = greedy, beam K >= greedy', function()
    local Sat = require 'luacap.models.sat'
    local tok = fake_tokenizer(V - 1)
    luacap.seed(21)
    local m = Sat{vocab_size = V, max_len = MAX_LEN, feat_dim = 5, embed_dim = 4, units = 4,
      att_dim = 3, dropout = 0.5}
    for _, p in ipairs(m:parameters()) do p.value:scale(3) end
    m.out.bias:set(1, -100)
    local feats = luacap.randn(6, 4, 5)
    local greedy = decode.greedy(m, feats, tok)
    local one, one_h = decode.beam(m, feats, tok, {beam = 1})
    assert.same(greedy, one)
    local start = tok.word_index.startseq
    local better = 0
    for _, K in ipairs{3, 5} do
      local _, hyps = decode.beam(m, feats, tok, {beam = K, length_penalty = 0})
      for i = 1, 6 do
        local row = feats:narrow(i, 1)
        local g = stepwise_score(m, row, one_h[i].ids, start)
        local b = stepwise_score(m, row, hyps[i].ids, start)
        assert.near(b, hyps[i].score, 1e-4)
        assert.is_true(b >= g - 1e-5, string.format('image %d beam %d: %.6f < greedy %.6f', i, K, b, g))
        if b > g + 1e-4 then better = better + 1 end
      end
    end
    assert.is_true(better > 0)
  end)

  it('block_ngram n never emits a word that repeats an n-gram of the hypothesis', function()
    local tok = fake_tokenizer(V - 1)
    local function repeats(ids, n)
      local seen = {}
      for p = 1, #ids - n + 1 do
        local key = table.concat({unpack(ids, p, p + n - 1)}, ' ')
        if seen[key] then return true end
        seen[key] = true
      end
      return false
    end
    local rep = {[1] = 0, [2] = 0}
    for _, seed in ipairs{1, 2, 3, 4, 5} do
      local m = tiny(seed, 4)
      local feats = luacap.randn(8, 6)
      for _, n in ipairs{1, 2} do
        local _, free = decode.beam(m, feats, tok, {beam = 3, max_len = 8})
        local _, blocked = decode.beam(m, feats, tok, {beam = 3, max_len = 8, block_ngram = n})
        for i = 1, 8 do
          if repeats(free[i].ids, n) then rep[n] = rep[n] + 1 end
          assert.is_false(repeats(blocked[i].ids, n), 'image ' .. i .. ': ' .. table.concat(blocked[i].ids, ' '))
        end
      end
    end
    -- without blocking the random models do repeat (else the check is idle)
    assert.is_true(rep[1] > 0 and rep[2] > 0, rep[1] .. ' ' .. rep[2])
  end)

  it('refuses a bad beam size', function()
    assert.has_error(function()
      decode.beam(toy_model(), luacap.tensor{{1}}, TOY_TOK, {beam = 0, max_len = 4})
    end, 'decode.beam: beam must be a positive integer, got 0')
  end)
end)
