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

  it("draws its mask from the generator's stream: value i kept where the i-th uniform >= p", function()
    local p, n = 0.3, 1000
    local d = luacap.nn.Dropout(p)
    luacap.seed(21)
    local mask = d:forward(luacap.ones(n)):flat()
    local after = luacap.random()          -- the generator goes on where the mask left it
    luacap.seed(21)
    local kept = 0
    for i = 1, n do
      local want = luacap.random() >= p and 1 / (1 - p) or 0
      assert.near(want, mask[i], 1e-6)
      if want > 0 then kept = kept + 1 end
    end
    assert.equal(luacap.random(), after)
    assert.truthy(kept > 600 and kept < 800, kept .. ' kept')
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

  describe('keyed masks (Dropout.set_keys)', function()
    local Dropout = luacap.nn.Dropout
    after_each(function() Dropout.set_keys(nil) end)

    -- two layers applied in turn (as the seed model's three are), rows = pairs
    local function masks(ids, epoch, R)
      local d1, d2 = Dropout(0.5), Dropout(0.25)
      Dropout.set_keys(epoch, ids)
      local x = luacap.ones(#ids, R)
      local m1 = d1:forward(x):clone()
      local m2 = d2:forward(luacap.ones(#ids, 3, R)):clone()
      Dropout.set_keys(nil)
      return m1, m2
    end

    it('a batch gets the masks of its two halves computed separately, whatever the generator did', function()
      luacap.seed(5)
      local ids = {17, 3, 250, 9, 42, 1, 77, 8}
      local a1, a2 = masks(ids, 2, 40)
      luacap.seed(5)
      luacap.rand(0, 1, 1000)                 -- the running stream moved on: no effect
      local h1, h2 = masks({17, 3, 250, 9}, 2, 40)
      local g1, g2 = masks({42, 1, 77, 8}, 2, 40)
      local function cat(a, b)
        local t = a:flat()
        for _, v in ipairs(b:flat()) do t[#t + 1] = v end
        return t
      end
      assert.same(a1:flat(), cat(h1, g1))
      assert.same(a2:flat(), cat(h2, g2))
      -- a pair's row follows the pair, in any position
      local r1 = masks({8, 17}, 2, 40)
      assert.same(a1:narrow(8, 1):flat(), r1:narrow(1, 1):flat())
      assert.same(a1:narrow(1, 1):flat(), r1:narrow(2, 1):flat())
    end)

    it('differ between epochs, pairs, layers and seeds, and keep the rate and scale', function()
      luacap.seed(5)
      local m1, m2 = masks({1, 2}, 1, 20000)
      local e1 = masks({1, 2}, 2, 20000)
      luacap.seed(6)
      local s1 = masks({1, 2}, 1, 20000)
      local function differ(a, b)
        local fa, fb, n = a:flat(), b:flat(), 0
        for i = 1, #fa do if fa[i] ~= fb[i] then n = n + 1 end end
        return n / #fa
      end
      assert.near(0.5, differ(m1, e1), 0.02)            -- independent masks: half differ
      assert.near(0.5, differ(m1, s1), 0.02)
      assert.near(0.5, differ(m1:narrow(1, 1), m1:narrow(2, 1)), 0.02)
      local f, dropped = m1:flat(), 0
      for _, v in ipairs(f) do
        if v == 0 then dropped = dropped + 1 else assert.equal(2, v) end
      end
      assert.near(0.5, dropped / #f, 0.01)
      local g, d2 = m2:flat(), 0
      for _, v in ipairs(g) do
        if v == 0 then d2 = d2 + 1 else assert.near(1 / 0.75, v, 1e-6) end
      end
      assert.near(0.25, d2 / #g, 0.01)
    end)

    it('backward uses the keyed mask; bad row ids are errors', function()
      local d = Dropout(0.5)
      Dropout.set_keys(1, {4, 5})
      local x = luacap.randn(2, 6)
      local out = d:forward(x):clone()
      local dx = d:backward(x, luacap.ones(2, 6)):flat()
      local m, xf, of = d.mask:flat(), x:flat(), out:flat()
      for i = 1, #m do
        assert.equal(m[i], dx[i])
        assert.near(xf[i] * m[i], of[i], 1e-6)
      end
      assert.has_error(function()
        luacap.core.dropout_forward_keyed(d.out, d.mask, x, 0.5, 1, 1, {1, -2})
      end, 'dropout_forward_keyed: row id 2 is not a non-negative integer')
      assert.has_error(function()
        luacap.core.dropout_forward_keyed(d.out, d.mask, x, 0.5, 1, 1, {1})
      end, 'dropout_forward_keyed: 1 row ids for a batch of 2')
    end)
  end)
end)
