-- Specs for the step-wise decode interface of lua/luacap/eval/decode.lua: the adapter's
-- logits equal forward_caption's on the pre-padded prefixes (seed and transformer, with
-- rows reordered and duplicated by decode_select), greedy on the interface gives the
-- captions of the former greedy (spec/helpers/decode_ref.lua) on random and trained tiny
-- models, a model with native decode_* methods decodes through them, and the sampler
-- (seeded, K per image, temperature) against a scripted model's known probabilities.
local luacap = require 'luacap'
local decode = require 'luacap.eval.decode'
local ref = require 'helpers.decode_ref'
local Seed = require 'luacap.models.seed'
local Transformer = require 'luacap.models.transformer'

local V, MAX_LEN = 9, 5

local function fake_tokenizer(nwords)
  local wi = {startseq = 1, endseq = 2}
  for id = 3, nwords do wi['w' .. id] = id end
  return {word_index = wi}
end

local function tiny_seed(seed, scale)
  luacap.seed(seed)
  local m = Seed{vocab_size = V, max_len = MAX_LEN, feat_dim = 6, img_dense = 5,
    embed_dim = 4, units = 3, dec_dense = 5, dropout = 0.5}
  for _, p in ipairs(m:parameters()) do p.value:scale(scale or 3) end
  return m
end

local function tiny_transformer(seed, scale)
  luacap.seed(seed)
  local m = Transformer{vocab_size = V, max_len = MAX_LEN, feat_dim = 6, d_model = 8, heads = 2,
    layers = 2, ffn = 12, mem_tokens = 3, dropout = 0.1}
  for _, p in ipairs(m:parameters()) do p.value:scale(scale or 2) end
  return m
end

local function assert_rows_near(want, got, tol)
  assert.same(want:shape(), got:shape())
  local a, b = want:flat(), got:flat()
  for i = 1, #a do
    assert.is_true(math.abs(a[i] - b[i]) <= tol * math.max(1, math.abs(a[i])),
      string.format('element %d: %.7g vs %.7g', i, a[i], b[i]))
  end
end

-- Train a tiny model on two captions of two images ((image, prefix) -> next word pairs).
local CAPS = {{1, 3, 4, 6, 2}, {1, 3, 5, 7, 2}}
local TOK = {word_index = {startseq = 1, endseq = 2, a = 3, red = 4, blue = 5, circle = 6,
  square = 7, big = 8}}
local function trained(m)
  local feats = luacap.randn(2, 6)
  local rows, prefixes, targets = {}, {}, {}
  for i, cap in ipairs(CAPS) do
    for n = 1, #cap - 1 do
      rows[#rows + 1] = i
      prefixes[#prefixes + 1] = {unpack(cap, 1, n)}
      targets[#targets + 1] = cap[n + 1]
    end
  end
  local f = luacap.zeros(#rows, 6)
  luacap.core.gather(f, feats, rows)
  local ids, y = decode.prefix_ids(prefixes, MAX_LEN), luacap.tensor(targets)
  local opt = luacap.optim.Adam{lr = 0.01}
  local crit = luacap.nn.SoftmaxCrossEntropy()
  m:train(true)
  for _ = 1, 400 do
    m:zero_grad()
    crit:forward(m:forward(f, ids), y)
    m:backward(crit:backward())
    opt:step(m:parameters())
  end
  return m, feats
end

describe('decode adapter', function()
  for _, case in ipairs{{'seed', tiny_seed}, {'transformer', tiny_transformer}} do
    it('gives forward_caption\'s logits step by step on ' .. case[1] .. ', across decode_select', function()
      local m = case[2](3)
      m:evaluate()
      local feats = luacap.randn(3, 6)
      local state = decode.decode_start(m, feats)
      -- the rows' images and prefixes, tracked by hand
      local imgs, prefixes = {1, 2, 3}, {{}, {}, {}}
      local steps = {{1, 1, 1}, {4, 5, 6}, {7, 3, 8}, {2, 6, 5}}
      local selects = {nil, {3, 1, 1, 2}, {2, 4}, nil}
      for s, ids in ipairs(steps) do
        if selects[s] then
          decode.decode_select(m, state, selects[s])
          local ni, np = {}, {}
          for k, r in ipairs(selects[s]) do ni[k], np[k] = imgs[r], {unpack(prefixes[r])} end
          imgs, prefixes = ni, np
        end
        ids = {unpack(ids, 1, #imgs)}
        while #ids < #imgs do ids[#ids + 1] = 3 end
        for k = 1, #imgs do prefixes[k][#prefixes[k] + 1] = ids[k] end
        local got = decode.decode_step(m, state, ids):clone()
        local f = luacap.zeros(#imgs, 6)
        luacap.core.gather(f, feats, imgs)
        local want = m:forward_caption(m:forward_image(f):clone(), decode.prefix_ids(prefixes, MAX_LEN))
        assert.equal(#imgs, got:size(1))
        assert_rows_near(want, got, 1e-5)
      end
      assert.is_nil(decode.decode_alphas(m, state))
    end)
  end

  it('names a wrong ids list or row', function()
    local m = tiny_seed(1)
    local state = decode.decode_start(m, luacap.randn(2, 6))
    assert.has_error(function() decode.decode_step(m, state, {1}) end,
      'decode_step: expected a Lua array of 2 ids, got 1 ids')
    assert.has_error(function() decode.decode_select(m, state, {1, 3}) end,
      'decode_select: row 2 is 3, expected 1..2')
  end)
end)

describe('decode.greedy on the interface', function()
  it('gives the former greedy\'s captions on random seed and transformer models', function()
    local tok = fake_tokenizer(V - 1)
    local differ = 0
    for seed = 1, 4 do
      for _, make in ipairs{tiny_seed, tiny_transformer} do
        local m = make(seed, 2 + seed)
        local feats = luacap.randn(9, 6)
        local got = decode.greedy(m, feats, tok, {batch = 4})
        assert.same(ref.greedy(m, feats, tok, {batch = 4}), got)
        for i = 2, 9 do if got[i] ~= got[1] then differ = differ + 1 end end
      end
    end
    assert.is_true(differ > 0)   -- the models do depend on the image
  end)

  it('gives the former greedy\'s captions on trained tiny seed and transformer models', function()
    for _, make in ipairs{tiny_seed, tiny_transformer} do
      local m, feats = trained(make(11, 1))
      local got = decode.greedy(m, feats, TOK)
      assert.same({'a red circle', 'a blue square'}, got)
      assert.same(ref.greedy(m, feats, TOK), got)
    end
  end)

  it('decodes through a model\'s native decode_* methods', function()
    -- a counting model: logits favour id (last id + 1), 'endseq' (2) after id 5; image 2
    -- starts at id 4. Greedy: image 1 "w3 w4 w5", image 2 "w4 w5".
    local calls = {start = 0, step = {}, select = {}}
    local model = {cfg = {max_len = 6}}
    function model.evaluate() end
    function model.decode_start(_, feats)
      calls.start = calls.start + 1
      local st = {img = {}, last = {}}
      for b = 1, feats:size(1) do st.img[b] = feats:get(b, 1) end
      return st
    end
    function model.decode_step(_, st, ids)
      calls.step[#calls.step + 1] = #ids
      local out = luacap.zeros(#ids, 7)
      for b, id in ipairs(ids) do
        local nxt = id == 1 and (st.img[b] == 2 and 4 or 3) or (id >= 5 and 2 or id + 1)
        out:set(b, nxt + 1, 5)
      end
      return out
    end
    function model.decode_select(_, st, rows)
      calls.select[#calls.select + 1] = rows
      local img = {}
      for k, r in ipairs(rows) do img[k] = st.img[r] end
      st.img = img
    end
    local tok = {word_index = {startseq = 1, endseq = 2, w3 = 3, w4 = 4, w5 = 5, w6 = 6}}
    local caps = decode.greedy(model, luacap.tensor{{1}, {2}}, tok)
    assert.same({'w3 w4 w5', 'w4 w5'}, caps)
    assert.equal(1, calls.start)
    assert.same({2, 2, 2, 1}, calls.step)     -- image 2 ends at step 3
    assert.same({{1}}, calls.select)
  end)
end)

-- The scripted model for the sampler: after startseq a .5, b .3, endseq .2 (pad and
-- startseq get probability 0 in effect); after a: endseq .6, c .4; anything else: endseq 1.
local function script_model()
  local model = {cfg = {max_len = 3}}
  function model.evaluate() end
  function model.forward_image(_, feats) return feats:clone() end
  function model.forward_caption(_, _, ids)
    local n, T = ids:size(1), ids:size(2)
    local out = luacap.zeros(n, 6)
    for r = 1, n do
      local last = ids:get(r, T)
      local p = last == 1 and {[2] = .2, [3] = .5, [4] = .3} or last == 3 and {[2] = .6, [5] = .4}
        or {[2] = 1}
      for j = 1, 6 do out:set(r, j, p[j - 1] and math.log(p[j - 1]) or -60) end
    end
    return out
  end
  return model
end
local SCRIPT_TOK = {word_index = {startseq = 1, endseq = 2, a = 3, b = 4, c = 5}}

describe('decode.sample', function()
  it('draws with the model\'s probabilities and reports their logs', function()
    local samples, caps = decode.sample(script_model(), luacap.tensor{{1}, {1}}, SCRIPT_TOK,
      {k = 1000, seed = 7})
    assert.equal(2, #samples)
    assert.equal(1000, #samples[1])
    local count = {}
    for i = 1, 2 do
      for s, h in ipairs(samples[i]) do
        local key = table.concat(h.ids, ' ')
        count[key] = (count[key] or 0) + 1
        -- the sequences that exist and their exact log-probabilities
        local want = ({['2'] = {.2}, ['3 2'] = {.5, .6}, ['3 5 2'] = {.5, .4, 1}, ['4 2'] = {.3, 1}})[key]
        assert.is_not_nil(want, key)
        for t = 1, #want do assert.near(math.log(want[t]), h.logprobs[t], 1e-6) end
        assert.equal(({['2'] = '', ['3 2'] = 'a', ['3 5 2'] = 'a c', ['4 2'] = 'b'})[key], caps[i][s])
      end
    end
    -- 2000 draws: "end" .2, "a end" .3, "a c end" .2, "b end" .3; 4 standard deviations
    for key, p in pairs{['2'] = .2, ['3 2'] = .3, ['3 5 2'] = .2, ['4 2'] = .3} do
      local sd = math.sqrt(2000 * p * (1 - p))
      assert.is_true(math.abs((count[key] or 0) - 2000 * p) < 4 * sd,
        string.format('%s drawn %d times, expected %.0f', key, count[key] or 0, 2000 * p))
    end
  end)

  it('is reproducible from its seed, and a low temperature gives greedy', function()
    local tok = fake_tokenizer(V - 1)
    local m = tiny_seed(4)
    m.out.bias:set(1, -100)   -- padding never wins, so greedy and sample follow one rule
    local feats = luacap.randn(5, 6)
    local a = decode.sample(m, feats, tok, {k = 3, seed = 42, batch = 2})
    luacap.seed(99)   -- luacap's own generator plays no part
    local b = decode.sample(m, feats, tok, {k = 3, seed = 42, batch = 2})
    local c = decode.sample(m, feats, tok, {k = 3, seed = 43})
    assert.same(a, b)
    assert.are_not.same(a, c)
    local _, cold = decode.sample(m, feats, tok, {k = 2, seed = 1, temperature = 1e-4})
    local greedy = decode.greedy(m, feats, tok)
    for i = 1, 5 do assert.same({greedy[i], greedy[i]}, cold[i]) end
  end)

  it('refuses a bad k or temperature', function()
    assert.has_error(function() decode.sample(script_model(), luacap.tensor{{1}}, SCRIPT_TOK, {k = 0}) end,
      'decode.sample: k must be a positive integer, got 0')
    assert.has_error(function()
      decode.sample(script_model(), luacap.tensor{{1}}, SCRIPT_TOK, {temperature = 0})
    end, 'decode.sample: temperature must be a positive number, got 0')
  end)
end)
