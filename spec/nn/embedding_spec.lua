-- Specs for luacap.nn.Embedding and embedding_forward/backward: lookup and mask by hand,
-- scatter-add with repeated ids by hand, finite differences of the weight, errors.
local luacap = require 'luacap'
local gradcheck = require 'helpers.gradcheck'

describe('nn.Embedding', function()
  local function small()
    local e = luacap.nn.Embedding(4, 2, {mask_zero = true})
    -- row r (0-based id) = {10r + 1, 10r + 2}
    e.weight:copy(luacap.tensor{{1, 2}, {11, 12}, {21, 22}, {31, 32}})
    return e
  end

  it('looks up rows by id, row 0 included', function()
    local e = small()
    local out = e:forward(luacap.tensor{{3, 1, 0}, {2, 2, 0}})
    assert.same({2, 3, 2}, out:shape())
    assert.same({{{31, 32}, {11, 12}, {1, 2}}, {{21, 22}, {21, 22}, {1, 2}}}, out:totable())
  end)

  it('keeps a mask: 1 for real ids, 0 for padding id 0', function()
    local e = small()
    e:forward(luacap.tensor{{3, 1, 0}, {0, 2, 0}})
    assert.same({{1, 1, 0}, {0, 1, 0}}, e.mask:totable())
    local plain = luacap.nn.Embedding(4, 2)
    plain:forward(luacap.tensor{{0, 1}})
    assert.is_nil(plain.mask)
  end)

  it('initialises uniformly in [-0.05, 0.05) from the seeded generator', function()
    luacap.seed(5)
    local a = luacap.nn.Embedding(50, 40)
    luacap.seed(5)
    local b = luacap.nn.Embedding(50, 40)
    assert.same(a.weight:flat(), b.weight:flat())
    assert.is_true(a.weight:min() >= -0.05 and a.weight:max() < 0.05)
    assert.is_true(a.weight:max() > 0.045 and a.weight:min() < -0.045)
    assert.near(0, a.weight:mean(), 0.003)
    assert.equal('embeddings', a:parameters()[1].name)
  end)

  it('scatter-adds gradients, repeated ids summing, and returns nil', function()
    local e = small()
    local ids = luacap.tensor{{2, 2}, {0, 2}}
    e:forward(ids)
    local dout = luacap.tensor{{{1, 2}, {3, 4}}, {{5, 6}, {7, 8}}}
    e:zero_grad()
    assert.is_nil(e:backward(ids, dout))
    -- row 2 gets (1,2)+(3,4)+(7,8) = (11,14); row 0 gets (5,6); rows 1, 3 nothing
    assert.same({{5, 6}, {0, 0}, {11, 14}, {0, 0}}, e.dweight:totable())
    e:backward(ids, dout)   -- adding is the rule: twice gives twice
    assert.same({{10, 12}, {0, 0}, {22, 28}, {0, 0}}, e.dweight:totable())
  end)

  it('passes a finite-difference check of the weight', function()
    luacap.seed(11)
    local e = luacap.nn.Embedding(6, 3, {mask_zero = true})
    local ids = luacap.tensor{{1, 5, 5, 0}, {2, 1, 3, 5}}
    local ok, report = gradcheck.check{
      forward = function() return e:forward(ids) end,
      backward = function(R)
        e:forward(ids)
        e:zero_grad()
        e:backward(ids, R)
        return {embeddings = e.dweight:clone()}
      end,
      wrt = {embeddings = e.weight},
      coords = 18,
    }
    assert.is_true(ok, report)
  end)

  it('rejects ids that are out of range or not integers', function()
    local e = small()
    local function raises(prefix, fn)
      local ok, err = pcall(fn)
      assert.is_false(ok)
      assert.truthy(tostring(err):find(prefix, 1, true), tostring(err))
    end
    raises('embedding_forward: ids holds 4 at flat position 2, expected an integer id in [0, 3]',
      function() e:forward(luacap.tensor{{1, 4}}) end)
    raises('embedding_forward: ids holds 1.5 at flat position 1, expected an integer id in [0, 3]',
      function() e:forward(luacap.tensor{{1.5}}) end)
    raises('embedding_forward: ids holds -1 at flat position 1, expected an integer id in [0, 3]',
      function() e:forward(luacap.tensor{{-1}}) end)
    assert.has_error(function()
      e:backward(luacap.tensor{{1, 2}}, luacap.zeros(1, 2, 3))
    end, "embedding_backward: dout has shape (1, 2, 3), expected (1, 2, 2) = ids' shape + (D)")
  end)
end)
