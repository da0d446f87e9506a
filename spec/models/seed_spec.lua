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

-- pre-padded id prefixes (B, T) with zeros on the left
local function prefixes(V, B, T)
  local rows = {}
  for b = 1, B do
    local n = 1 + (b - 1) % T
    local r = {}
    for t = 1, T do r[t] = t > T - n and (1 + (b * 7 + t * 3) % (V - 1)) or 0 end
    rows[b] = r
  end
  return luacap.tensor(rows)
end

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
    local feats, ids = luacap.randn(3, 6), prefixes(9, 3, 4)
    local wrt = {feats = feats}
    for _, p in ipairs(m:parameters()) do wrt[p.name] = p.value end
    local ok, report = gradcheck.check{
      coords = 6, eps = 1e-3, tol = 2e-2, atol = 2e-4,
      forward = function() return m:forward(feats, ids) end,
      backward = function(R)
        m:forward(feats, ids)
        m:zero_grad()
        local res = {feats = m:backward(R):clone()}
        for _, p in ipairs(m:parameters()) do res[p.name] = p.grad:clone() end
        return res
      end,
      wrt = wrt,
    }
    assert.is_true(ok, report)
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
end)
