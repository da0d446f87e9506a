-- Specs for nn/LayerNorm.lua and csrc/nn/layernorm.c: hand-computed rows, the epsilon we
-- chose (1e-5, not Keras' 1e-3), finite-difference gradients, accumulation, messages.
local luacap = require 'luacap'
local gradcheck = require 'helpers.gradcheck'
local LayerNorm = require 'luacap.nn.LayerNorm'

local function near_list(want, got, tol)
  assert.equal(#want, #got)
  for i = 1, #want do assert.near(want[i], got[i], tol) end
end

describe('LayerNorm', function()
  it('normalizes a tiny row by hand', function()
    -- x = (1, 2, 3): mean 2, biased var (1 + 0 + 1) / 3 = 2/3,
    -- rstd = 1 / sqrt(2/3 + 1e-5) = 1.2247357; xhat = (-1.2247357, 0, 1.2247357)
    local ln = LayerNorm(3)
    near_list({-1.2247357, 0, 1.2247357}, ln:forward(luacap.tensor{{1, 2, 3}}):flat(), 1e-6)
    -- gamma (2, 1, 1), beta (0, 0, 0.5): (-2.4494714, 0, 1.7247357)
    ln.gamma:copy(luacap.tensor{2, 1, 1})
    ln.beta:copy(luacap.tensor{0, 0, 0.5})
    near_list({-2.4494714, 0, 1.7247357}, ln:forward(luacap.tensor{{1, 2, 3}}):flat(), 1e-6)
    assert.near(2, ln.mean:get(1), 1e-7)
    assert.near(1.2247357, ln.rstd:get(1), 1e-6)
  end)

  it('uses eps 1e-5 by default; Keras 1e-3 would damp rows of small variance', function()
    -- x = (0.01, 0.02, 0.03) (the scale of U(-0.05, 0.05) embeddings): var = 6.6667e-5
    -- eps 1e-5: 0.01 / sqrt(7.6667e-5) = 1.1420805;  eps 1e-3: 0.01 / sqrt(1.06667e-3) = 0.3061862
    assert.equal(1e-5, LayerNorm.EPS)
    local x = luacap.tensor{{0.01, 0.02, 0.03}}
    assert.near(1.1420805, LayerNorm(3):forward(x):get(1, 3), 1e-5)
    assert.near(0.3061862, LayerNorm(3, {eps = 1e-3}):forward(x):get(1, 3), 1e-5)
  end)

  it('keeps any leading shape and normalizes each row alone', function()
    luacap.seed(1)
    local ln = LayerNorm(5)
    local out = ln:forward(luacap.randn(2, 3, 5):scale(3):add(7))
    assert.same({2, 3, 5}, out:shape())
    for r = 1, 6 do
      local row = out:reshape(6, 5):narrow(r, 1)
      assert.near(0, row:mean(), 1e-5)
      assert.near(math.sqrt(5), row:norm(), 1e-3)   -- unit variance: sum of squares = D
    end
  end)

  it('backpropagates to x, gamma and beta (finite differences)', function()
    luacap.seed(2)
    local ln = LayerNorm(5)
    ln.gamma:copy(luacap.randn(5))
    ln.beta:copy(luacap.randn(5))
    local ok, report = gradcheck.layer_check(ln, luacap.randn(2, 3, 5), {eps = 1e-3})
    assert.is_true(ok, report)
  end)

  it('adds into its gradients: backward twice gives twice the gradients', function()
    luacap.seed(3)
    local ln = LayerNorm(4)
    ln.gamma:copy(luacap.randn(4))
    local x, dout = luacap.randn(3, 4), luacap.randn(3, 4)
    ln:forward(x)
    ln:zero_grad()
    local dx1 = ln:backward(x, dout):clone()
    local g1, b1 = ln.dgamma:clone(), ln.dbeta:clone()
    local dx2 = ln:backward(x, dout)
    near_list(dx1:flat(), dx2:flat(), 1e-6)
    near_list(g1:scale(2):flat(), ln.dgamma:flat(), 1e-5)
    near_list(b1:scale(2):flat(), ln.dbeta:flat(), 1e-5)
  end)

  it('names the function, argument and shapes in its errors', function()
    local ln = LayerNorm(4)
    assert.has_error(function() ln:forward(luacap.zeros(2, 3)) end,
      'LayerNorm layer_norm: x has shape (2, 3), expected (..., 4)')
    local core = luacap.core
    assert.has_error(function()
      core.layernorm_forward(luacap.zeros(2, 4), luacap.zeros(2), luacap.zeros(2),
        luacap.zeros(2, 4), luacap.zeros(3), luacap.zeros(4), 1e-5)
    end, 'layernorm_forward: gamma has shape (3), expected (4) = (D)')
  end)
end)
