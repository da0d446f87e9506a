-- Specs for luacap.nn.Sequential: order of forward/backward, prefixed parameter names,
-- a whole conv -> pool -> flatten -> dense chain under finite differences, error paths.
local luacap = require 'luacap'
local gradcheck = require 'helpers.gradcheck'
local nn = luacap.nn

local function small_net()
  return nn.Sequential({
    nn.Conv2d(2, 3, 3, {padding = 'same', activation = 'relu', name = 'c1'}),
    nn.MaxPool2d(2, {name = 'p1'}),
    nn.Flatten(),
    nn.Dense(3 * 3 * 3, 4, {name = 'fc'}),
  }, {name = 'net'})
end

describe('nn.Sequential', function()
  it('lists parameters prefixed by child names, in order', function()
    local names = {}
    for _, p in ipairs(small_net():parameters()) do names[#names + 1] = p.name end
    assert.same({'c1.kernel', 'c1.bias', 'fc.kernel', 'fc.bias'}, names)
  end)

  it('equals calling the layers one by one', function()
    luacap.seed(8)
    local net = small_net()
    local x = luacap.randn(2, 6, 7, 2)
    local out = net:forward(x):clone()
    local h = x
    for _, l in ipairs(net.children) do h = l:forward(h) end
    assert.same(h:flat(), out:flat())
    assert.same({2, 4}, out:shape())
    assert.same(net:get('c1').out:flat(), net:forward_until(x, 'c1'):flat())
  end)

  it('passes a gradient check through conv, relu, pool, flatten and dense', function()
    luacap.seed(12)
    local net = small_net()
    net:get('c1').bias:fill(0.3)
    local ok, report = gradcheck.layer_check(net, luacap.randn(2, 6, 7, 2),
      {coords = 25, eps = 3e-3})
    assert(ok, report)
  end)

  it('prefixes the failing child to an error', function()
    local net = small_net()
    local ok, err = pcall(net.forward, net, luacap.zeros(1, 6, 6, 5))
    assert.is_false(ok)
    assert.equal('net[1] Conv2d c1: Conv2d c1: x has shape (1, 6, 6, 5), expected (B, IH, IW, 2)',
      err)
  end)
end)
