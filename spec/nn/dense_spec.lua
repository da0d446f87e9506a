-- Specs for luacap.nn.Dense and the dense_forward/backward kernels: hand-computed values,
-- finite differences, accumulation, sgemm against the plain-loop reference, the packed
-- kernel against sgemm, errors.
local luacap = require 'luacap'
local gradcheck = require 'helpers.gradcheck'
local core = luacap.core

local close = require('helpers.util').close

describe('nn.Dense', function()
  it('computes a 1x3 input through a 2x3 layer by hand', function()
    local d = luacap.nn.Dense(3, 2)
    -- kernel (C=3, OC=2) as Keras stores it; bias (2)
    d.kernel:copy(luacap.tensor{{1, 2}, {3, 4}, {5, 6}})
    d.bias:copy(luacap.tensor{0.5, -1})
    local out = d:forward(luacap.tensor{{1, 2, 3}})
    -- out[1] = 1*1 + 2*3 + 3*5 + 0.5 = 22.5;  out[2] = 1*2 + 2*4 + 3*6 - 1 = 27
    assert.same({{22.5, 27}}, out:totable())
  end)

  it('fuses relu: negative pre-activations become 0', function()
    local d = luacap.nn.Dense(3, 2, {activation = 'relu'})
    d.kernel:copy(luacap.tensor{{1, -2}, {3, -4}, {5, -6}})
    d.bias:copy(luacap.tensor{-22, 1})
    -- pre = (22 - 22, -28 + 1) = (0, -27) -> relu (0, 0); second row x = (2,0,0): (2-22, -4+1)
    local out = d:forward(luacap.tensor{{1, 2, 3}, {12, 0, 0}})
    -- second row: pre = (12 - 22, -24 + 1) = (-10, -23) -> (0, 0)
    assert.same({{0, 0}, {0, 0}}, out:totable())
    d.bias:copy(luacap.tensor{-20, 30})
    -- first row: (2, 2) ; second row: (12 - 20, -24 + 30) = (-8, 6) -> (0, 6)
    assert.same({{2, 2}, {0, 6}}, d:forward(luacap.tensor{{1, 2, 3}, {12, 0, 0}}):totable())
  end)

  it('backward by hand: dx = dout kernel^T, dkernel = x^T dout, dbias = sum dout', function()
    local d = luacap.nn.Dense(3, 2)
    d.kernel:copy(luacap.tensor{{1, 2}, {3, 4}, {5, 6}})
    local x = luacap.tensor{{1, 2, 3}}
    d:forward(x)
    local dx = d:backward(x, luacap.tensor{{1, 10}})
    -- dx = (1*1 + 10*2, 1*3 + 10*4, 1*5 + 10*6) = (21, 43, 65)
    assert.same({{21, 43, 65}}, dx:totable())
    -- dkernel[c][o] = x[c] * dout[o]
    assert.same({{1, 10}, {2, 20}, {3, 30}}, d.dkernel:totable())
    assert.same({1, 10}, d.dbias:totable())
  end)

  it('initialises glorot-uniform from the seeded generator, bias zero', function()
    luacap.seed(7)
    local a = luacap.nn.Dense(40, 24)
    luacap.seed(7)
    local b = luacap.nn.Dense(40, 24)
    assert.same(a.kernel:flat(), b.kernel:flat())
    local limit = math.sqrt(6 / (40 + 24))
    local mx = a.kernel:max()
    local mn = a.kernel:min()
    assert.is_true(mx <= limit and mn >= -limit)
    assert.is_true(mx > 0.8 * limit and mn < -0.8 * limit)   -- spread over the whole range
    assert.equal(0, a.bias:norm())
    local names = {}
    for _, p in ipairs(a:parameters()) do names[#names + 1] = p.name end
    assert.same({'kernel', 'bias'}, names)
  end)

  it('takes (B, T, C) as B*T rows and returns (B, T, OC)', function()
    luacap.seed(3)
    local d = luacap.nn.Dense(5, 4, {activation = 'relu'})
    local x = luacap.randn(2, 3, 5)
    local out = d:forward(x):clone()
    assert.same({2, 3, 4}, out:shape())
    local flat = d:forward(x:reshape(6, 5))
    close(flat, out:reshape(6, 4), 0)
    d:forward(x)
    local dx = d:backward(x, luacap.ones(2, 3, 4))
    assert.same({2, 3, 5}, dx:shape())
  end)

  it('matches the plain-loop reference on odd shapes', function()
    luacap.seed(11)
    for _, s in ipairs{{1, 1, 1}, {7, 13, 3}, {17, 31, 29}, {64, 5, 97}} do
      local N, C, OC = s[1], s[2], s[3]
      local x, k, b = luacap.randn(N, C), luacap.randn(C, OC), luacap.randn(OC)
      for _, relu in ipairs{false, true} do
        local fast, ref = luacap.zeros(N, OC), luacap.zeros(N, OC)
        core.dense_forward(fast, x, k, b, relu)
        core.dense_forward_ref(ref, x, k, b, relu)
        close(ref, fast, 1e-4)
      end
    end
  end)

  it('forward with a packed kernel equals forward, for any row count; a wrong pack is refused', function()
    luacap.seed(14)
    for _, dims in ipairs{{1, 5, 3}, {3, 7, 33}, {13, 9, 70}, {20, 64, 96}} do
      local N, C, OC = dims[1], dims[2], dims[3]
      for _, relu in ipairs{false, true} do
        local d = luacap.nn.Dense(C, OC, {activation = relu and 'relu' or nil})
        d.bias:copy(luacap.randn(OC))
        local x = luacap.randn(N, C)
        local want = d:forward(x):clone()
        close(want, d:forward(x, d:packed_kernel()), 1e-5)
      end
    end
    local d = luacap.nn.Dense(4, 40)
    local other = luacap.nn.Dense(5, 40)
    assert.has_error(function() d:forward(luacap.randn(2, 4), other:packed_kernel()) end,
      'dense_forward: packed is not pack_panels of a (4, 40) kernel')
  end)

  it('passes gradient checks for x, kernel and bias, with and without relu', function()
    for _, act in ipairs{'linear', 'relu'} do
      luacap.seed(5)
      local d = luacap.nn.Dense(6, 4, {activation = act})
      d.bias:copy(luacap.uniform(0.5, 1, 4))   -- keep pre-activations away from the kink
      local x = luacap.uniform(0.1, 1, 3, 6)
      local ok, report = gradcheck.layer_check(d, x, {eps = 1e-2})
      assert(ok, act .. '\n' .. report)
    end
    -- sequences too
    luacap.seed(6)
    local d = luacap.nn.Dense(4, 3)
    local ok, report = gradcheck.layer_check(d, luacap.randn(2, 3, 4))
    assert(ok, report)
  end)

  it('accumulates: backward twice gives twice the gradients', function()
    luacap.seed(9)
    local d = luacap.nn.Dense(5, 3, {activation = 'relu'})
    local x, dout = luacap.randn(4, 5), luacap.randn(4, 3)
    d:forward(x)
    d:backward(x, dout)
    local k1, b1 = d.dkernel:clone(), d.dbias:clone()
    d:backward(x, dout)
    close(k1:scale(2), d.dkernel, 1e-5)
    close(b1:scale(2), d.dbias, 1e-5)
    d:zero_grad()
    assert.equal(0, d.dkernel:norm())
  end)

  it('skips dx on request (no_dx): nil, and the same dkernel and dbias', function()
    luacap.seed(10)
    local d = luacap.nn.Dense(6, 4, {activation = 'relu'})
    local x, dout = luacap.randn(2, 3, 6), luacap.randn(2, 3, 4)
    d:forward(x)
    d:backward(x, dout)
    local k1, b1 = d.dkernel:clone(), d.dbias:clone()
    d:zero_grad()
    assert.is_nil(d:backward(x, dout, true))
    close(k1, d.dkernel, 1e-6)
    close(b1, d.dbias, 1e-6)
  end)

  it('names the layer, the argument and the shapes in its errors', function()
    local d = luacap.nn.Dense(3, 2, {name = 'fc'})
    assert.has_error(function() d:forward(luacap.zeros(4, 5)) end,
      'Dense fc: x has shape (4, 5), expected (B, 3) or (B, T, 3)')
    assert.has_error(function() core.dense_forward(luacap.zeros(4, 3), luacap.zeros(4, 3),
      d.kernel, d.bias, false) end,
      'dense_forward: out has shape (4, 3), expected (4, 2) = (N, OC)')
    assert.has_error(function() core.dense_forward(luacap.zeros(1, 2), luacap.zeros(1, 3),
      d.kernel, luacap.zeros(3), false) end,
      'dense_forward: bias has shape (3), expected (2) = (OC)')
    assert.has_error(function() luacap.nn.Dense(3, 2, {activation = 'tanh'}) end)
  end)
end)

describe('kernel initializers', function()
  it('draws glorot-uniform by default and he-uniform on request, within their limits', function()
    luacap.seed(11)
    local g = luacap.nn.Dense(200, 50)
    local h = luacap.nn.Dense(200, 50, {kernel_initializer = 'he_uniform'})
    local lg, lh = math.sqrt(6 / 250), math.sqrt(6 / 200)   -- 0.1549, 0.1732
    local function span(t) return math.max(t:max(), -t:min()) end
    assert.is_true(span(g.kernel) <= lg and span(g.kernel) > 0.98 * lg)
    assert.is_true(span(h.kernel) <= lh and span(h.kernel) > 0.98 * lh)
    local c = luacap.nn.Conv2d(8, 16, 3, {kernel_initializer = 'he_uniform'})
    local lc = math.sqrt(6 / (9 * 8))                        -- fan_in = 3*3*8
    assert.is_true(span(c.kernel) <= lc and span(c.kernel) > 0.95 * lc)
    assert.has_error(function() luacap.nn.Dense(2, 2, {kernel_initializer = 'zeros'}) end,
      "Dense: kernel_initializer must be 'glorot_uniform' or 'he_uniform', got 'zeros'")
  end)
end)
