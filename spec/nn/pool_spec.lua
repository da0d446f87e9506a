-- Specs for luacap.nn.MaxPool2d, ReLU and Flatten: hand-made maps, windows other than
-- 2x2, routing of gradients (first maximum on ties), finite differences.
local luacap = require 'luacap'
local gradcheck = require 'helpers.gradcheck'

-- Values spaced 0.1 apart in a seeded random order: no ties, so finite differences with a
-- step below 0.05 (eps 2e-3 times |x| <= 13) never move the maximum of a window.
local function spaced(...)
  local t = luacap.zeros(...)
  local n = t:numel()
  local v = {}
  for i = 1, n do v[i] = (i - n / 2) * 0.1 end
  for i = n, 2, -1 do
    local j = luacap.random(i)
    v[i], v[j] = v[j], v[i]
  end
  return luacap.tensor(v):reshape(unpack(t:shape()))
end

describe('nn.MaxPool2d', function()
  it('takes 2x2 maxima with stride 2 on a hand-made map', function()
    -- 1 2 3 4 / 5 6 7 8 / 9 10 11 12 / 13 14 15 16 -> 6 8 / 14 16
    local p = luacap.nn.MaxPool2d(2)
    assert.same({6, 8, 14, 16}, p:forward(luacap.arange(1, 17):reshape(1, 4, 4, 1)):flat())
    -- 5x5 input, 'valid': the last row and column are dropped, as Keras does
    local out = p:forward(luacap.arange(1, 26):reshape(1, 5, 5, 1))
    assert.same({1, 2, 2, 1}, out:shape())
    assert.same({7, 9, 17, 19}, out:flat())
  end)

  it('pools each channel separately (channels-last)', function()
    -- two channels: c1 = 1..4, c2 = 40, 30, 20, 10 over a 2x2 map
    local x = luacap.tensor{{{{1, 40}, {2, 30}}, {{3, 20}, {4, 10}}}}
    assert.same({4, 40}, luacap.nn.MaxPool2d(2):forward(x):flat())
  end)

  it('handles a 3x3 window with stride 2', function()
    local p = luacap.nn.MaxPool2d(3, {stride = 2})
    -- 5x5 of 1..25: windows start at rows/cols 1 and 3 -> maxima 13 15 23 25
    assert.same({13, 15, 23, 25}, p:forward(luacap.arange(1, 26):reshape(1, 5, 5, 1)):flat())
  end)

  it('routes the gradient to the maximum, the first one on ties', function()
    local p = luacap.nn.MaxPool2d(2)
    local x = luacap.tensor{{{{1}, {3}}, {{3}, {2}}}}   -- the 3s tie: the first (row 1) wins
    p:forward(x)
    assert.same({0, 5, 0, 0}, p:backward(x, luacap.tensor{{{{5}}}}):flat())
  end)

  it('routes 2x2/2 gradients as a plain loop over the windows does, ties and odd sides too', function()
    -- the 2x2 stride-2 backward has its own vectorised kernel: compared with the window
    -- loop written here on a map of small integers (many ties: the first maximum in row-major
    -- window order takes the gradient), odd sides (the last row and column dropped)
    luacap.seed(77)
    local B, H, W, C = 2, 7, 5, 19
    local ints = {}
    for i = 1, B * H * W * C do ints[i] = luacap.random(4) end
    local x, dout = luacap.tensor(ints):reshape(B, H, W, C), luacap.randn(B, 3, 2, C)
    local p = luacap.nn.MaxPool2d(2)
    p:forward(x)
    local dx = p:backward(x, dout)
    local want = luacap.zeros(B, H, W, C)
    for b = 1, B do for oh = 1, 3 do for ow = 1, 2 do for c = 1, C do
      local best, bi, bj
      for i = 2 * oh - 1, 2 * oh do for j = 2 * ow - 1, 2 * ow do
        local v = x:get(b, i, j, c)
        if not best or v > best then best, bi, bj = v, i, j end
      end end
      want:set(b, bi, bj, c, want:get(b, bi, bj, c) + dout:get(b, oh, ow, c))
    end end end end
    assert.same(want:flat(), dx:flat())
  end)

  it('passes gradient checks (2x2/2 and 3x3/2, several channels)', function()
    for _, cfg in ipairs{{2, 2}, {3, 2}, {3, 1}} do
      luacap.seed(cfg[1] * 10 + cfg[2])
      local p = luacap.nn.MaxPool2d(cfg[1], {stride = cfg[2]})
      local ok, report = gradcheck.layer_check(p, spaced(2, 7, 6, 3), {eps = 2e-3, coords = 60})
      assert(ok, report)
    end
  end)

  it('passes gradient checks past one 16-channel block, overlapping windows', function()
    -- backward splits the work by (image, block of 16 channels): 19 channels give a full
    -- and a partial block; the 3x3 stride-1 windows overlap, stride 2 does not.
    for _, cfg in ipairs{{3, 1}, {2, 2}} do
      luacap.seed(40 + cfg[1])
      local p = luacap.nn.MaxPool2d(cfg[1], {stride = cfg[2]})
      local ok, report = gradcheck.layer_check(p, spaced(2, 5, 6, 19), {eps = 2e-3, coords = 80})
      assert(ok, report)
    end
  end)
end)

describe('nn.ReLU', function()
  it('zeroes negatives and passes gradients only where the output is positive', function()
    local r = luacap.nn.ReLU()
    local x = luacap.tensor{{-2, -0.5, 0.5, 3}}
    assert.same({{0, 0, 0.5, 3}}, r:forward(x):totable())
    assert.same({{0, 0, 7, 8}}, r:backward(x, luacap.tensor{{5, 6, 7, 8}}):totable())
  end)

  it('passes a gradient check away from 0', function()
    luacap.seed(2)
    local ok, report = gradcheck.layer_check(luacap.nn.ReLU(), spaced(3, 5))
    assert(ok, report)
  end)
end)

describe('nn.Flatten', function()
  it('flattens channels-last maps in Keras order (channel fastest) and back', function()
    local x = luacap.arange(24):reshape(2, 2, 3, 2)
    local f = luacap.nn.Flatten()
    local out = f:forward(x)
    assert.same({2, 12}, out:shape())
    -- image 2, pixel (h=1, w=2), channel 2 -> position (1*3 + 1)*2 + 1 = 9 (0-based) in row 2
    assert.equal(x:get(2, 2, 2, 2), out:get(2, ((1 * 3) + 1) * 2 + 1 + 1))
    assert.same(x:shape(), f:backward(x, out):shape())
  end)
end)
