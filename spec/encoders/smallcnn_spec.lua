-- Specs for encoders.smallcnn: shapes, parameter names, finite differences through the
-- whole encoder (images and every parameter), accumulation, rebuild from config, and a
-- few steps of plain gradient descent that must lower a regression loss.
local luacap = require 'luacap'
local gradcheck = require 'helpers.gradcheck'
local smallcnn = luacap.encoders.smallcnn

local CFG = {input_size = 16, channels = {3, 4}, out_dim = 5}

describe('encoders.smallcnn', function()
  it('maps (B, S, S, 3) to (B, out_dim) and names its parameters', function()
    luacap.seed(1)
    local enc = smallcnn.new(CFG)
    assert.equal(5, enc.out_dim)
    assert.same({2, 5}, enc:forward(luacap.normal(0, 60, 2, 16, 16, 3)):shape())
    local names = {}
    for _, p in ipairs(enc:parameters()) do names[#names + 1] = p.name end
    assert.same({'conv1.kernel', 'conv1.bias', 'conv2.kernel', 'conv2.bias', 'proj.kernel',
                 'proj.bias'}, names)
    -- 16 -> 8 -> 4 after two pools: proj takes 4*4*4 = 64 features
    assert.same({64, 5}, enc:parameters()[5].value:shape())
    assert.has_error(function() enc:forward(luacap.zeros(2, 16, 16, 1)) end,
      'smallcnn: images have shape (2, 16, 16, 1), expected (B, 16, 16, 3)')
    assert.has_error(function() smallcnn.new{input_size = 20, channels = {4, 4, 4}} end)
  end)

  it('passes a gradient check for the images and every parameter', function()
    luacap.seed(2)
    local enc = smallcnn.new{input_size = 8, channels = {3, 4}, out_dim = 3, activation = 'linear',
                            input_scale = 0.5}
    -- conv biases of 4..5 keep every pre-activation far above the relu kink (relu's own
    -- gradient is checked in spec/nn); max-pool switches stay the only kinks
    -- kernels at about glorot scale (smallcnn draws he-uniform, ~1.7x wider), so that the
    -- weight steps below cross no max-pool switch
    for _, p in ipairs(enc:parameters()) do
      if p.name:match('bias$') then p.value:copy(luacap.uniform(4, 5, p.value:numel())) end
      if p.name:match('^conv.*kernel$') then p.value:scale(0.6) end
    end
    local images = luacap.normal(0, 2, 2, 8, 8, 3)
    local function backward(R)
      enc:forward(images)
      enc:zero_grad()
      local res = {images = enc:backward(images, R):clone()}
      for _, p in ipairs(enc:parameters()) do res[p.name] = p.grad:clone() end
      return res
    end
    local params = {}
    for _, p in ipairs(enc:parameters()) do params[p.name] = p.value end
    -- A weight moves every pixel, so its step must be small to cross no relu or pool
    -- kink; an image coordinate moves one pixel, and a small step would drown its tiny
    -- gradient in float32 rounding of L. Hence two steps; with the small step, L (about 50)
    -- rounds to about 3e-6, i.e. 1.5e-3 of noise in a difference quotient: atol 5e-3.
    for _, c in ipairs{{wrt = {images = images}, eps = 1e-2},
                       {wrt = params, eps = 1e-3, atol = 5e-3}} do
      local ok, report = gradcheck.check{coords = 25, eps = c.eps, atol = c.atol, wrt = c.wrt,
        backward = backward,
        forward = function() return enc:forward(images) end}
      assert(ok, report)
    end
  end)

  it('accumulates gradients over two backward calls', function()
    luacap.seed(3)
    local enc = smallcnn.new(CFG)
    local x = luacap.normal(0, 60, 2, 16, 16, 3)
    local dfeat = luacap.randn(2, 5)
    enc:forward(x)
    enc:backward(x, dfeat)
    local first = {}
    for i, p in ipairs(enc:parameters()) do first[i] = p.grad:clone() end
    enc:backward(x, dfeat)
    for i, p in ipairs(enc:parameters()) do
      local d = first[i]:scale(2):add(p.grad, -1):norm()
      assert.is_true(d <= 1e-4 * math.max(1, p.grad:norm()), p.name)
    end
  end)

  it('without the images\' gradient (training) gives the same parameter gradients', function()
    luacap.seed(6)
    local enc = smallcnn.new(CFG)
    local x, dfeat = luacap.normal(0, 60, 2, 16, 16, 3), luacap.randn(2, 5)
    enc:forward(x)
    enc:zero_grad()
    assert.is_not_nil(enc:backward(x, dfeat))
    local full = {}
    for i, p in ipairs(enc:parameters()) do full[i] = p.grad:flat() end
    enc:zero_grad()
    assert.is_nil(enc:backward(x, dfeat, false))
    for i, p in ipairs(enc:parameters()) do assert.same(full[i], p.grad:flat(), p.name) end
    -- and the next full backward has its dimages again
    assert.equal(x:numel(), enc:backward(x, dfeat):numel())
  end)

  it('rebuilds the same structure from its config', function()
    luacap.seed(4)
    local enc = smallcnn.new(CFG)
    local cfg = enc:config()
    assert.equal('smallcnn', cfg.name)
    local again = luacap.encoders.build(cfg)
    assert.equal(enc:num_params(), again:num_params())
    assert.same(enc:config(), again:config())
  end)

  it('learns: gradient descent lowers a squared error to fixed targets', function()
    luacap.seed(5)
    local enc = smallcnn.new(CFG)
    local x, target = luacap.normal(0, 60, 4, 16, 16, 3), luacap.uniform(0, 1, 4, 5)
    local function step()
      local out = enc:forward(x)
      local diff = out:clone():add(target, -1)          -- dL/dout for L = 0.5 |out - t|^2
      local loss = 0.5 * diff:norm() ^ 2
      enc:zero_grad()
      enc:backward(x, diff)
      for _, p in ipairs(enc:parameters()) do p.value:add(p.grad, -0.02) end
      return loss
    end
    local first = step()
    local last
    for _ = 1, 40 do last = step() end
    assert.is_true(last < 0.5 * first, string.format('loss %.4f -> %.4f', first, last))
  end)
end)
