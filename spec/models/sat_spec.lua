-- Specs of models/sat.lua (Show-Attend-Tell): whole-model central differences of every
-- parameter and the features (logits, then loss + penalty), the doubly stochastic penalty
-- by hand, masking, and step-wise decoding against the teacher-forced forward.
local luacap = require 'luacap'
local T = require 'luacap.tensor'
local Sat = require 'luacap.models.sat'
local gradcheck = require 'spec.helpers.gradcheck'

local V, B, L, D = 7, 2, 4, 5

local function tiny(extra)
  luacap.seed(11)
  local cfg = {vocab_size = V, max_len = 4, regions = L, feat_dim = D, embed_dim = 3, units = 4,
    att_dim = 3, dropout = 0.5, att_lambda = 1}
  for k, v in pairs(extra or {}) do cfg[k] = v end
  local m = Sat(cfg)
  m:evaluate()
  -- larger than the default init, so attention is far from uniform and every path matters
  for _, p in ipairs(m:parameters()) do p.value:mul(3) end
  return m, T.randn(B, L, D)
end

-- caption 1 has 4 real steps, caption 2 has 2 and 2 of padding
local function ids_targets()
  return T.tensor{{1, 3, 4, 5}, {1, 6, 0, 0}}, T.tensor{{3, 4, 5, 2}, {6, 2, 0, 0}},
    T.tensor{{1, 1, 1, 1}, {1, 1, 0, 0}}
end

describe('sat model', function()
  it('backward of the logits agrees with central differences (all parameters, features)', function()
    local m, feats = tiny()
    local ids = ids_targets()
    local ok, rep = gradcheck.module_check(m, {input = feats, input_name = 'feats',
      forward = function() return m:forward(feats, ids) end,
      backward = function(R) return m:backward(R) end, coords = 12, eps = 1e-2, tol = 2e-2})
    assert(ok, rep)
  end)

  -- central differences of cross-entropy + penalty, every parameter and the features
  local function check_loss_and_penalty(m, feats, ids, y, mask)
    local crit = luacap.nn.SoftmaxCrossEntropy()
    local ok, rep = gradcheck.module_check(m, {input = feats, input_name = 'feats',
      forward = function()
        return T.full(crit:forward(m:forward(feats, ids), y, mask) + m:penalty(), 1)
      end,
      backward = function(R)
        local r = R:get(1)
        m.dalpha:mul(r)
        return m:backward(crit:backward():clone():mul(r), true)
      end, coords = 12, eps = 1e-2, tol = 2e-2})
    assert(ok, rep)
  end

  it('backward of loss + penalty agrees with central differences', function()
    local m, feats = tiny({att_lambda = 0.7})
    check_loss_and_penalty(m, feats, ids_targets())
  end)

  it('penalty by hand: uniform attention (w = 0), padding not counted', function()
    local m, feats = tiny({att_lambda = 1})
    m.dec.att_w:zero()                         -- alpha = 1/L = 1/4 at every step
    local ids = ids_targets()
    m:forward(feats, ids)
    -- caption 1: S = 4 * 1/4 = 1, (1 - S)^2 = 0 per region; caption 2: S = 2/4, 4 * (1/2)^2 = 1
    -- P = lambda / (B L) * (0 + 1) = 1/8 (the mean over captions and regions)
    assert.is_near(0.125, m:penalty(), 1e-6)
    -- dP/dalpha = -2 lambda / (B L) (1 - S): 0 for caption 1, -1/8 at caption 2's real
    -- steps, 0 at its padded steps (dalpha is (T, B, L))
    for l = 1, L do
      for t = 1, 4 do assert.is_near(0, m.dalpha:get(t, 1, l), 1e-6) end
      assert.is_near(-0.125, m.dalpha:get(1, 2, l), 1e-6)
      assert.is_near(-0.125, m.dalpha:get(2, 2, l), 1e-6)
      assert.equal(0, m.dalpha:get(3, 2, l))
      assert.equal(0, m.dalpha:get(4, 2, l))
    end
  end)

  -- Packing: captions run sorted by length, only the live rows of each step computed. A
  -- batch out of order (the short caption first, a tie) must give each caption what it
  -- gives alone: logits, dfeats rows, penalty; parameter gradients the sum of the lone ones.
  local function unsorted()
    return T.tensor{{1, 6, 0, 0}, {1, 3, 4, 5}, {1, 5, 6, 3}}, T.tensor{{6, 2, 0, 0}, {3, 4, 5, 2}, {5, 6, 3, 2}},
      T.tensor{{1, 1, 0, 0}, {1, 1, 1, 1}, {1, 1, 1, 1}}
  end

  it('a packed batch out of length order gives each caption what it gives alone', function()
    local m = tiny()
    local feats = T.randn(3, L, D)
    local ids = unsorted()
    local R = T.randn(3, 4, V)
    local function grads()
      local g = {}
      for _, p in ipairs(m:parameters()) do g[p.name] = p.grad:clone() end
      return g
    end
    m:zero_grad()
    local logits = m:forward(feats, ids):clone()
    local pen = m:penalty()
    local df = m:backward(R):clone()
    local g = grads()
    m:zero_grad()
    local pen_sum = 0
    for b = 1, 3 do
      local f1, i1, r1 = feats:narrow(b, 1):clone(), ids:narrow(b, 1):clone(), R:narrow(b, 1):clone()
      local l1 = m:forward(f1, i1)
      pen_sum = pen_sum + m:penalty()
      local want, got = l1:flat(), logits:narrow(b, 1):flat()
      for i = 1, #want do assert.is_near(want[i], got[i], 1e-5) end
      local d1 = m:backward(r1):flat()       -- parameter gradients add up over b
      local drow = df:narrow(b, 1):flat()
      for i = 1, #d1 do assert.is_near(d1[i], drow[i], 1e-5) end
    end
    assert.is_near(pen_sum / 3, pen, 1e-6)   -- lambda/(B L) sum over the batch
    for name, want in pairs(grads()) do
      local x, z = want:flat(), g[name]:flat()
      for i = 1, #x do assert.is_near(x[i], z[i], 1e-5, name) end
    end
  end)

  it('backward of loss + penalty on a batch out of length order agrees with central differences', function()
    check_loss_and_penalty(tiny({att_lambda = 0.7}), T.randn(3, L, D), unsorted())
  end)

  it('masked positions contribute nothing: more padding, same loss, penalty, gradients', function()
    local m, feats = tiny()
    local crit = luacap.nn.SoftmaxCrossEntropy()
    local function run(ids, y, mask)
      m:zero_grad()
      local loss = crit:forward(m:forward(feats, ids), y, mask) + m:penalty()
      local df = m:backward(crit:backward(), true):clone()
      local g = {}
      for _, p in ipairs(m:parameters()) do g[p.name] = p.grad:clone() end
      return loss, df, g
    end
    local ids, y, mask = ids_targets()
    local l1, d1, g1 = run(ids, y, mask)
    -- two more padded steps, and junk targets where the mask is 0
    local ids2 = T.tensor{{1, 3, 4, 5, 0, 0}, {1, 6, 0, 0, 0, 0}}
    local y2 = T.tensor{{3, 4, 5, 2, 6, 6}, {6, 2, 5, 5, 5, 5}}
    local mask2 = T.tensor{{1, 1, 1, 1, 0, 0}, {1, 1, 0, 0, 0, 0}}
    local l2, d2, g2 = run(ids2, y2, mask2)
    assert.is_near(l1, l2, 1e-5)
    local a, b = d1:flat(), d2:flat()
    for i = 1, #a do assert.is_near(a[i], b[i], 1e-5) end
    for name, g in pairs(g1) do
      local x, z = g:flat(), g2[name]:flat()
      for i = 1, #x do assert.is_near(x[i], z[i], 1e-5, name) end
    end
  end)

  it('decoding step by step gives the teacher-forced logits and attention', function()
    local m, feats = tiny()
    local ids = T.tensor{{1, 3, 4, 5}, {1, 6, 2, 3}}
    local logits = m:forward(feats, ids):clone()
    local st = m:decode_start(feats)
    for t = 1, 4 do
      local lt = m:decode_step(st, {ids:get(1, t), ids:get(2, t)})
      for b = 1, B do
        for v = 1, V do assert.is_near(logits:get(b, t, v), lt:get(b, v), 1e-5) end
        local s = 0
        for l = 1, L do
          assert.is_near(m.AL:get(t, b, l), m:decode_alphas(st):get(b, l), 1e-6)
          s = s + m:decode_alphas(st):get(b, l)
        end
        assert.is_near(1, s, 1e-5)
      end
    end
    -- decode_select: row 2 twice reproduces row 2's next logits in both rows
    local lt = m:decode_step(m:decode_select(st, {2, 2}), {7 - 1, 7 - 1})
    local st2 = m:decode_start(feats)
    for t = 1, 4 do m:decode_step(st2, {ids:get(1, t), ids:get(2, t)}) end
    local ref = m:decode_step(st2, {6, 6})
    for v = 1, V do
      assert.is_near(ref:get(2, v), lt:get(1, v), 1e-5)
      assert.is_near(ref:get(2, v), lt:get(2, v), 1e-5)
    end
  end)

  it('a small greedy loop learns to caption two images after training on them', function()
    local m, feats = tiny({dropout = 0})
    m:train(true)
    local ids = T.tensor{{1, 3, 4, 0}, {1, 5, 6, 4}}
    local y = T.tensor{{3, 4, 2, 0}, {5, 6, 4, 2}}
    local mask = T.tensor{{1, 1, 1, 0}, {1, 1, 1, 1}}
    local crit = luacap.nn.SoftmaxCrossEntropy()
    local opt = luacap.optim.Adam{lr = 0.05}
    local params = m:parameters()
    local first, loss
    for _ = 1, 150 do
      m:zero_grad()
      loss = crit:forward(m:forward(feats, ids), y, mask)
      first = first or loss
      m:backward(crit:backward())
      opt:step(params)
    end
    assert.is_true(loss < 0.05 * first, 'loss ' .. loss .. ' from ' .. first)
    m:evaluate()
    local st = m:decode_start(feats)
    local prev, out = {1, 1}, {{}, {}}
    for _ = 1, 4 do
      local lt = m:decode_step(st, prev)
      for b = 1, B do
        local _, j = lt:narrow(b, 1):reshape(V):max()
        prev[b] = j - 1
        out[b][#out[b] + 1] = j - 1
      end
    end
    assert.same({3, 4, 2}, {out[1][1], out[1][2], out[1][3]})
    assert.same({5, 6, 4, 2}, out[2])
  end)

  it('trains in fit on whole captions (pairs.caption_source), with the penalty', function()
    local pairs_mod = require 'luacap.data.pairs'
    -- a stand-in tokenizer: words are their ids
    local tok = {text_to_sequence = function(_, text)
      local out = {}
      for w in text:gmatch('%d+') do out[#out + 1] = tonumber(w) end
      return out
    end}
    local p = pairs_mod.build({'a', 'b'}, {a = {'1 3 4 2'}, b = {'1 5 6 4 2', '1 5 2'}}, tok)
    local x, y, mask, images = pairs_mod.caption_batch(p, {1, 3})
    -- caption 1 '1 3 4 2' -> in 1 3 4, out 3 4 2; caption 3 '1 5 2' -> in 1 5, out 5 2, padded
    assert.same({{1, 3, 4}, {1, 5, 0}}, x:totable())
    assert.same({{3, 4, 2}, {5, 2, 0}}, y:totable())
    assert.same({{1, 1, 1}, {1, 1, 0}}, mask:totable())
    assert.same({1, 2}, images)
    local m, feats = tiny({dropout = 0})
    local src = pairs_mod.caption_source(p, {1, 2})
    assert.equal(3, src.n)
    local fit = require 'luacap.train.fit'
    local history = fit.fit{model = m, inputs = feats, train = src, epochs = 40, batch_size = 3,
      optimizer = luacap.optim.Adam{lr = 0.03}, verbose = 0}
    assert.is_true(history.loss[40] < 0.3 * history.loss[1],
      ('loss %g -> %g'):format(history.loss[1], history.loss[40]))
  end)
end)
