-- Specs for luacap.nn.Dropout and dropout_forward/backward: evaluation identity, the kept
-- fraction and scale on a large tensor, seeded masks, backward through the same mask.
local luacap = require 'luacap'

describe('nn.Dropout', function()
  it('is the identity in evaluation mode', function()
    local d = luacap.nn.Dropout(0.5):evaluate()
    local x = luacap.randn(3, 4)
    local out = d:forward(x)
    assert.same(x:flat(), out:flat())
    local dout = luacap.randn(3, 4)
    assert.same(dout:flat(), d:backward(x, dout):flat())
    d:train()
    assert.are_not.same(x:flat(), d:forward(x):flat())
  end)

  it('drops a fraction p and scales the kept values by 1/(1-p)', function()
    luacap.seed(3)
    local p, n = 0.3, 100000
    local d = luacap.nn.Dropout(p)
    local x = luacap.full(2, 10, n / 10)
    local out = d:forward(x):flat()
    local dropped, bad = 0, 0
    local kept_value = 2 / (1 - p)
    for i = 1, #out do
      if out[i] == 0 then dropped = dropped + 1
      elseif math.abs(out[i] - kept_value) > 1e-5 then bad = bad + 1 end
    end
    assert.equal(0, bad)
    -- binomial std: sqrt(p(1-p)/n) = 0.00145; allow 4 of them
    assert.near(p, dropped / n, 0.006)
    assert.near(2, d.out:mean(), 0.02)   -- inverted dropout keeps the mean
  end)

  it('draws the same mask from the same seed, another from another', function()
    local d = luacap.nn.Dropout(0.5)
    local x = luacap.ones(4, 5, 6)
    luacap.seed(9)
    local a = d:forward(x):flat()
    luacap.seed(9)
    local b = d:forward(x):flat()
    assert.same(a, b)
    luacap.seed(10)
    assert.are_not.same(a, d:forward(x):flat())
  end)

  it('uses the forward mask in backward', function()
    luacap.seed(4)
    local d = luacap.nn.Dropout(0.25)
    local x = luacap.randn(7, 9)
    local out = d:forward(x):flat()
    local xf = x:flat()
    local dout = luacap.randn(7, 9)
    local dx = d:backward(x, dout):flat()
    local df = dout:flat()
    for i = 1, #xf do
      -- out = x * m, so m = out / x and dx = dout * m
      local m = out[i] == 0 and 0 or 1 / 0.75
      assert.near(xf[i] * m, out[i], 1e-5)
      assert.near(df[i] * m, dx[i], 1e-5)
    end
  end)

  it('rejects a rate outside [0, 1)', function()
    assert.has_error(function() luacap.nn.Dropout(1) end)
    assert.has_error(function()
      luacap.core.dropout_forward(luacap.zeros(2), luacap.zeros(2), luacap.zeros(2), 1.5)
    end, 'dropout_forward: rate p is 1.5, expected 0 <= p < 1')
  end)
end)
