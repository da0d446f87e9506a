-- Specs for nn/MultiHeadAttention.lua and csrc/nn/mha.c: causal attention on 2 positions by
-- hand, key padding, fully masked rows (zeros, no NaN), the sgemm path against the plain
-- loops, finite-difference gradients for both inputs and every weight, accumulation, messages.
local luacap = require 'luacap'
local gradcheck = require 'helpers.gradcheck'
local MHA = require 'luacap.nn.MultiHeadAttention'
local core = luacap.core

local function near_list(want, got, tol, what)
  assert.equal(#want, #got)
  for i = 1, #want do
    if math.abs(want[i] - got[i]) > tol then
      error(string.format('%s element %d: expected %.7g, got %.7g', what or '', i, want[i], got[i]), 2)
    end
  end
end

local function no_nan(t)
  for _, v in ipairs(t:flat()) do assert.is_true(v == v, 'NaN found') end
end

-- one head, D = 2, B = 1, T = 2: q1 = (1, 0), q2 = (0, 2); k1 = (1, 0), k2 = (0, 1);
-- v1 = (1, 2), v2 = (3, 4)
local q = luacap.tensor{{{1, 0}, {0, 2}}}
local k = luacap.tensor{{{1, 0}, {0, 1}}}
local v = luacap.tensor{{{1, 2}, {3, 4}}}

describe('mha kernel', function()
  it('computes causal attention on two positions by hand', function()
    for _, fn in ipairs{core.mha_forward, core.mha_forward_ref} do
      local ctx, probs = luacap.zeros(1, 2, 2), luacap.zeros(1, 1, 2, 2)
      fn(ctx, probs, q, k, v, nil, 1, true)
      -- position 1 sees key 1 only: probs (1, 0), ctx = v1 = (1, 2).
      -- position 2: scores (q2.k1, q2.k2) / sqrt(2) = (0, sqrt(2)); probs = (1, e^sqrt2) / (1 + e^sqrt2)
      local e = math.exp(math.sqrt(2))
      local p21, p22 = 1 / (1 + e), e / (1 + e)          -- 0.1955672, 0.8044328
      near_list({1, 0, p21, p22}, probs:flat(), 1e-6, 'probs')
      near_list({1, 2, p21 * 1 + p22 * 3, p21 * 2 + p22 * 4}, ctx:flat(), 1e-6, 'ctx')
      -- without the causal mask position 1 also sees key 2: scores (1, 0) / sqrt(2)
      fn(ctx, probs, q, k, v, nil, 1, false)
      local a = math.exp(1 / math.sqrt(2))
      near_list({a / (a + 1), 1 / (a + 1)}, probs:reshape(4):narrow(1, 2):flat(), 1e-6, 'probs')
    end
  end)

  it('gives a fully masked row zeros, not NaN, forward and backward', function()
    -- key 1 is padding and causal: position 1 sees nothing; position 2 sees key 2 alone
    local mask = luacap.tensor{{0, 1}}
    for _, fn in ipairs{core.mha_forward, core.mha_forward_ref} do
      local ctx, probs = luacap.zeros(1, 2, 2), luacap.zeros(1, 1, 2, 2)
      fn(ctx, probs, q, k, v, mask, 1, true)
      near_list({0, 0, 0, 1}, probs:flat(), 1e-7, 'probs')
      near_list({0, 0, 3, 4}, ctx:flat(), 1e-6, 'ctx')
    end
    local ctx, probs = luacap.zeros(1, 2, 2), luacap.zeros(1, 1, 2, 2)
    core.mha_forward(ctx, probs, q, k, v, luacap.zeros(1, 2), 1, false)   -- every key masked
    near_list({0, 0, 0, 0}, ctx:flat(), 0, 'ctx')
    local dq, dk, dv = luacap.zeros(1, 2, 2), luacap.zeros(1, 2, 2), luacap.zeros(1, 2, 2)
    core.mha_backward(dq, dk, dv, luacap.ones(1, 2, 2), probs, q, k, v, 1)
    for _, t in ipairs{dq, dk, dv} do
      no_nan(t)
      near_list({0, 0, 0, 0}, t:flat(), 0, 'gradient')
    end
  end)

  it('sgemm path equals the plain loops on odd shapes, with masks and heads', function()
    luacap.seed(1)
    for _, case in ipairs{{3, 5, 7, 6, 3, false}, {2, 5, 5, 6, 2, true}, {1, 1, 1, 4, 4, true},
      {4, 3, 2, 5, 1, false}} do
      local B, Tq, Tk, D, NH, causal = case[1], case[2], case[3], case[4], case[5], case[6]
      local qq, kk, vv = luacap.randn(B, Tq, D), luacap.randn(B, Tk, D), luacap.randn(B, Tk, D)
      local mask = luacap.ones(B, Tk)
      for b = 1, B do mask:set(b, 1 + (b - 1) % Tk, 0) end   -- one padded key per row
      local c1, p1 = luacap.zeros(B, Tq, D), luacap.zeros(B, NH, Tq, Tk)
      local c2, p2 = luacap.zeros(B, Tq, D), luacap.zeros(B, NH, Tq, Tk)
      core.mha_forward(c1, p1, qq, kk, vv, mask, NH, causal)
      core.mha_forward_ref(c2, p2, qq, kk, vv, mask, NH, causal)
      near_list(p2:flat(), p1:flat(), 1e-5, 'probs')
      near_list(c2:flat(), c1:flat(), 1e-5, 'ctx')
      no_nan(c1)
    end
  end)

  it('names the function, argument and shapes in its errors', function()
    local z = luacap.zeros
    assert.has_error(function()
      core.mha_forward(z(1, 2, 6), z(1, 4, 2, 3), z(1, 2, 6), z(1, 3, 6), z(1, 3, 6), nil, 4, false)
    end, 'mha_forward: heads must be a positive integer dividing D = 6, got 4')
    assert.has_error(function()
      core.mha_forward(z(1, 2, 6), z(1, 2, 2, 3), z(1, 2, 6), z(1, 3, 6), z(1, 3, 6), nil, 2, true)
    end, 'mha_forward: causal needs Tq == Tk, got Tq = 2, Tk = 3')
    assert.has_error(function()
      core.mha_forward(z(1, 2, 6), z(1, 2, 2, 3), z(1, 2, 6), z(1, 3, 6), z(1, 3, 6), z(1, 2), 2, false)
    end, 'mha_forward: key_mask has shape (1, 2), expected (1, 3) = (B, Tk)')
    assert.has_error(function()
      core.mha_backward(z(1, 2, 6), z(1, 3, 6), z(1, 3, 6), z(1, 2, 6), z(1, 2, 2, 2), z(1, 2, 6),
        z(1, 3, 6), z(1, 3, 6), 2)
    end, 'mha_backward: probs has shape (1, 2, 2, 2), expected (1, 2, 2, 3) = (B, NH, Tq, Tk)')
  end)
end)

-- Gradient check of a MultiHeadAttention on {xq, xkv} with a key mask: both inputs and
-- every weight (30 random coordinates of each, all of the small biases).
local function check_mha(m, xq, xkv, mask)
  return gradcheck.inputs_check(m, {'xq', 'xkv'}, {xq, xkv}, mask,
    {coords = 30, eps = 1e-2, tol = 1e-2})
end

describe('MultiHeadAttention', function()
  it('has four D x D projections with Keras-style names', function()
    local m = MHA(6, 2)
    local names = {}
    for _, p in ipairs(m:parameters()) do names[#names + 1] = p.name end
    assert.same({'query.kernel', 'query.bias', 'key.kernel', 'key.bias', 'value.kernel',
      'value.bias', 'output.kernel', 'output.bias'}, names)
    assert.equal(4 * (36 + 6), m:num_params())
  end)

  it('backpropagates causal self-attention with key padding (finite differences)', function()
    luacap.seed(2)
    local m = MHA(6, 2, {causal = true})
    for _, p in ipairs(m:parameters()) do if p.name:find('bias') then p.value:copy(luacap.randn(6)) end end
    local mask = luacap.tensor{{0, 0, 1, 1}, {1, 1, 1, 1}, {0, 1, 1, 1}}
    local ok, report = check_mha(m, luacap.randn(3, 4, 6), luacap.randn(3, 4, 6), mask)
    assert.is_true(ok, report)
  end)

  it('backpropagates cross-attention to a longer key sequence (finite differences)', function()
    luacap.seed(3)
    local m = MHA(8, 4)
    local mask = luacap.tensor{{1, 1, 0, 1, 1}, {1, 0, 1, 1, 1}}
    local ok, report = check_mha(m, luacap.randn(2, 3, 8), luacap.randn(2, 5, 8), mask)
    assert.is_true(ok, report)
  end)

  it('adds into its gradients: backward twice gives twice the gradients', function()
    luacap.seed(4)
    local m = MHA(4, 2, {causal = true})
    local x, dout = luacap.randn(2, 3, 4), luacap.randn(2, 3, 4)
    m:forward({x, x})
    m:zero_grad()
    m:backward({x, x}, dout)
    local once = {}
    for i, p in ipairs(m:parameters()) do once[i] = p.grad:clone() end
    m:backward({x, x}, dout)
    for i, p in ipairs(m:parameters()) do
      near_list(once[i]:scale(2):flat(), p.grad:flat(), 1e-5, p.name)
    end
  end)
end)
