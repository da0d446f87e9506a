-- Specs for the notebook's captioner (lua/luacap/models/seed.lua): Keras' parameter count,
-- shapes, the whole model's gradients against finite differences, initial loss ~ log(V),
-- and overfitting a handful of pairs.
local luacap = require 'luacap'
local gradcheck = require 'helpers.gradcheck'
local Seed = require 'luacap.models.seed'

local function tiny(V, T)
  return Seed{vocab_size = V, max_len = T, feat_dim = 6, img_dense = 5, embed_dim = 4,
    units = 3, dec_dense = 5, dropout = 0.5}
end

local prefixes = require('helpers.util').prefixes

describe('seed model', function()
  it('has the parameter count Keras reports at the notebook sizes', function()
    luacap.seed(1)
    local m = Seed{vocab_size = 8485, max_len = 35}
    -- Dense 4096*512+512 = 2,097,664; BiLSTM(512->256) 2*4*256*(512+256+1) = 1,574,912;
    -- Embedding 8485*300 = 2,545,500; BiLSTM(300->256) 2*4*256*(300+256+1) = 1,140,736;
    -- LSTM(1024->512) 4*512*(1024+512+1) = 3,147,776; Dense 512*512+512 = 262,656;
    -- Dense 512*8485+8485 = 4,352,805; total 15,122,049.
    assert.equal(15122049, m:num_params())
    local text = m:summary(false)
    assert.matches('Total params: 15,122,049', text, 1, true)
  end)

  it('takes a GRU decoder (Keras GRU, reset_after) in place of the LSTM', function()
    luacap.seed(6)
    local m = Seed{vocab_size = 8485, max_len = 35, decoder = 'gru'}
    -- the LSTM(1024->512) 3,147,776 becomes GRU 3*512*(1024+512+2) = 2,362,368
    assert.equal(15122049 - 3147776 + 2362368, m:num_params())
    assert.matches('gru (GRU)', m:summary(false), 1, true)
    assert.has_error(function() Seed{vocab_size = 5, max_len = 3, decoder = 'rnn'} end,
      "seed model: decoder must be 'lstm' or 'gru', got 'rnn'")
    luacap.seed(7)
    local g = Seed{vocab_size = 9, max_len = 4, feat_dim = 6, img_dense = 5, embed_dim = 4,
      units = 3, dec_dense = 5, decoder = 'gru'}
    g:evaluate()
    -- relu layers' biases well above 0: pre-activations stay away from the kink
    g.dec_dense.bias:fill(0.5)
    g.img_dense.bias:fill(0.5)
    local feats, ids = luacap.randn(3, 6), prefixes(9, 3, 4)
    local wrt = {feats = feats}
    for _, p in ipairs(g:parameters()) do wrt[p.name] = p.value end
    assert.is_not_nil(wrt['dec_gru.kernel'])
    local ok, report = gradcheck.module_check(g, {
      coords = 6, eps = 1e-2, tol = 2e-2, atol = 2e-4, input = feats, input_name = 'feats',
      forward = function() return g:forward(feats, ids) end,
      backward = function(R) return g:backward(R) end,
    })
    assert.is_true(ok, report)
  end)

  it('maps (B, F) features and (B, T) prefixes to (B, V) logits', function()
    luacap.seed(2)
    local m = tiny(11, 5)
    m:evaluate()
    local logits = m:forward(luacap.randn(4, 6), prefixes(11, 4, 5))
    assert.same({4, 11}, logits:shape())
  end)

  it('starts near log(V) and its initial loss is the same for the same seed', function()
    luacap.seed(3)
    local m = tiny(11, 5)
    m:evaluate()
    local crit = luacap.nn.SoftmaxCrossEntropy()
    local y = luacap.tensor{1, 2, 3, 4, 5, 6}
    local loss = crit:forward(m:forward(luacap.randn(6, 6), prefixes(11, 6, 5)), y)
    assert.near(math.log(11), loss, 0.3)
  end)

  it('backpropagates to every weight and to the features (finite differences)', function()
    luacap.seed(4)
    local m = tiny(9, 4)
    m:evaluate()               -- dropout off: the function must be deterministic
    -- relu layers' biases well above 0, so that steps of 1e-2 stay off the kink; smaller
    -- steps drown in float32 rounding (2e-4 absolute at 1e-3 with OpenBLAS' Prescott kernels)
    m.dec_dense.bias:fill(0.5)
    m.img_dense.bias:fill(0.5)
    local feats, ids = luacap.randn(3, 6), prefixes(9, 3, 4)
    local ok, report = gradcheck.module_check(m, {
      coords = 6, eps = 1e-2, tol = 2e-2, atol = 2e-4, input = feats, input_name = 'feats',
      forward = function() return m:forward(feats, ids) end,
      backward = function(R) return m:backward(R) end,
    })
    assert.is_true(ok, report)
  end)

  it('skips the features\' gradient under no_input_grad (fit, frozen features): the same weight gradients', function()
    luacap.seed(14)
    local m = tiny(9, 4)
    m:evaluate()
    require('helpers.util').check_no_input_grad(m, luacap.randn(3, 6), prefixes(9, 3, 4),
      luacap.randn(3, 9))
  end)

  it('overfits a handful of pairs with Adam', function()
    luacap.seed(5)
    local m = tiny(7, 4)
    local opt = luacap.optim.Adam{lr = 0.02}
    local crit = luacap.nn.SoftmaxCrossEntropy()
    local feats, ids, y = luacap.randn(4, 6), prefixes(7, 4, 4), luacap.tensor{1, 3, 5, 6}
    m:evaluate()
    local first = crit:forward(m:forward(feats, ids), y)
    local loss
    for _ = 1, 150 do
      m:zero_grad()
      loss = crit:forward(m:forward(feats, ids), y)
      m:backward(crit:backward())
      opt:step(m:parameters())
    end
    assert.is_true(loss < 0.1 * first, ('loss %.4f from %.4f'):format(loss, first))
  end)
  -- The model as written before the fast paths: RepeatVector then the image BiLSTM on the
  -- (B, T, C) input, and every LSTM on the plain-loop reference kernels.
  local function set_ref(m, on)
    for _, l in ipairs{m.img_lstm.forward_lstm, m.img_lstm.backward_lstm,
      m.cap_lstm.forward_lstm, m.cap_lstm.backward_lstm, m.dec_lstm} do l.use_ref = on end
  end
  local function ref_forward_backward(m, feats, ids, dlogits)
    set_ref(m, true)
    local fe1 = m.img_drop:forward(feats)
    local fe2 = m.img_dense:forward(fe1)
    local fe3 = m.repeat_vec:forward(fe2)
    local fe4 = m.img_lstm:forward(fe3)
    local logits = m:forward_caption(fe4, ids):clone()
    local dd1 = m.out:backward(m.d1, dlogits)
    local dh = m.dec_drop:backward(m.h, m.dec_dense:backward(m.h2, dd1))
    local dcat = m.concat:backward({m.ctx, m.se3}, m.dec_lstm:backward(m.dec_in, dh))
    local dattn = m.attn:backward({m.se3, fe4}, dcat[1])
    local dse3 = dattn[1]:clone():add(dcat[2])
    m.embed:backward(ids, m.cap_drop:backward(m.se1, m.cap_lstm:backward(m.se2, dse3)))
    local dfe2 = m.repeat_vec:backward(fe2, m.img_lstm:backward(fe3, dattn[2]))
    local dfeats = m.img_drop:backward(feats, m.img_dense:backward(fe1, dfe2)):clone()
    set_ref(m, false)
    return logits, dfeats
  end

  local function near_all(a, b, tol, what)
    local fa, fb = a:flat(), b:flat()
    assert.equal(#fa, #fb)
    for i = 1, #fa do
      if math.abs(fa[i] - fb[i]) > tol * math.max(1, math.abs(fa[i])) then
        error(string.format('%s element %d: expected %.7g, got %.7g', what, i, fa[i], fb[i]), 2)
      end
    end
  end

  it('fast paths (active rows, repeated image input) match the reference model', function()
    for _, kind in ipairs{'pre', 'holes'} do
      luacap.seed(6)
      local V, Tn, B = 9, 6, 5
      local m = tiny(V, Tn)
      m:evaluate()
      local feats = luacap.randn(B, 6)
      -- pre-padded prefixes, or ids with zeros anywhere (the mask follows id 0)
      local ids = prefixes(V, B, Tn)
      if kind == 'holes' then
        local rows = {}
        for b = 1, B do
          rows[b] = {}
          for t = 1, Tn do rows[b][t] = (b * 5 + t * 7) % 4 == 0 and 0 or 1 + (b + t) % (V - 1) end
        end
        rows[1] = {0, 0, 0, 0, 0, 0}   -- a row with no real token
        ids = luacap.tensor(rows)
      end
      local dlogits = luacap.randn(B, V)
      m:zero_grad()
      local logits_ref, dfeats_ref = ref_forward_backward(m, feats, ids, dlogits)
      local grads_ref = {}
      for i, p in ipairs(m:parameters()) do grads_ref[i] = p.grad:clone() end
      m:zero_grad()
      near_all(logits_ref, m:forward(feats, ids), 1e-5, 'logits')
      near_all(dfeats_ref, m:backward(dlogits), 1e-4, 'dfeats')
      for i, p in ipairs(m:parameters()) do near_all(grads_ref[i], p.grad, 1e-4, p.name) end
    end
  end)
end)
