-- Specs for luacap.nn.SoftmaxCrossEntropy and xent_forward/backward: log(V) for uniform
-- logits, a 2-class case by hand, masking, extreme logits, finite differences, errors.
local luacap = require 'luacap'
local gradcheck = require 'helpers.gradcheck'

local function close(expected, got, tol)
  local a, b = type(expected) == 'table' and expected or expected:flat(), got:flat()
  assert.equal(#a, #b)
  for i = 1, #a do
    if math.abs(a[i] - b[i]) > (tol or 1e-6) then
      error(string.format('element %d: expected %.9g, got %.9g', i, a[i], b[i]), 2)
    end
  end
end

describe('nn.SoftmaxCrossEntropy', function()
  it('gives exactly log(V) for uniform logits', function()
    local crit = luacap.nn.SoftmaxCrossEntropy()
    -- every row: softmax = 1/5 each, -log(1/5) = log 5; computed as 0 + log(5) - 0
    assert.equal(math.log(5), crit:forward(luacap.zeros(3, 5), luacap.tensor{0, 4, 2}))
    assert.equal(3, crit.count)
    close({0.2, 0.2, 0.2, 0.2, 0.2}, crit.probs:narrow(1, 1))
    local loss = crit:forward(luacap.full(2.5, 2, 7), luacap.tensor{6, 0})
    assert.near(math.log(7), loss, 1e-12)
  end)

  it('computes a 2-class case by hand, loss and gradient', function()
    local crit = luacap.nn.SoftmaxCrossEntropy()
    -- logits (1, 3): p = (e/(e+e^3), e^3/(e+e^3)) = (1/(1+e^2), 1/(1+e^-2))
    -- row 1 target 0: log(1+e^2) = 2.126928011; row 2 target 1: log(1+e^-2) = 0.126928011
    local logits = luacap.tensor{{1, 3}, {1, 3}}
    local loss = crit:forward(logits, luacap.tensor{0, 1})
    assert.near((2.126928011 + 0.126928011) / 2, loss, 1e-8)
    local p0, p1 = 1 / (1 + math.exp(2)), 1 / (1 + math.exp(-2))
    -- dlogits = (p - onehot) / 2 rows
    close({(p0 - 1) / 2, p1 / 2, p0 / 2, (p1 - 1) / 2}, crit:backward())
  end)

  it('excludes masked rows from the loss, the count and the gradient', function()
    luacap.seed(2)
    local crit = luacap.nn.SoftmaxCrossEntropy()
    local logits = luacap.randn(2, 3, 4)
    local targets = luacap.tensor{{1, 3, 0}, {2, 0, 0}}
    local mask = luacap.tensor{{1, 1, 0}, {1, 0, 0}}
    local loss = crit:forward(logits, targets, mask)
    assert.equal(3, crit.count)
    -- the same three rows on their own
    local L = logits:flat()
    local rows = {}
    for _, r in ipairs{0, 1, 3} do
      for j = 1, 4 do rows[#rows + 1] = L[r * 4 + j] end
    end
    local only = luacap.core.from_flat(rows, {3, 4})
    local alone = luacap.nn.SoftmaxCrossEntropy():forward(only, luacap.tensor{1, 3, 2})
    assert.near(alone, loss, 1e-12)
    -- junk in a masked row changes nothing; its gradient is 0
    logits:set(2, 3, 1, 1e30)
    assert.near(loss, crit:forward(logits, targets, mask), 1e-12)
    local d = crit:backward():totable()
    assert.same({0, 0, 0, 0}, d[1][3])
    assert.same({0, 0, 0, 0}, d[2][2])
    assert.are_not.same({0, 0, 0, 0}, d[2][1])
    -- every row masked: loss 0, gradient 0
    assert.equal(0, crit:forward(logits, targets, luacap.zeros(2, 3)))
    assert.equal(0, crit:backward():norm())
  end)

  it('stays finite for logits of 1e4', function()
    local crit = luacap.nn.SoftmaxCrossEntropy()
    local logits = luacap.tensor{{1e4, 0, -1e4}, {1e4, 0, -1e4}}
    -- target 0: log-sum-exp = 1e4 + log(1 + e^-1e4 + e^-2e4) = 1e4, loss 0;
    -- target 2: 1e4 - (-1e4) = 2e4.  Mean 1e4.
    local loss = crit:forward(logits, luacap.tensor{0, 2})
    assert.equal(1e4, loss)
    local d = crit:backward()
    for _, v in ipairs(d:flat()) do assert.is_true(v == v and math.abs(v) < 1) end
    close({0, 0, 0, 0.5, 0, -0.5}, d)
  end)

  it('passes a finite-difference check of the logits', function()
    luacap.seed(17)
    local crit = luacap.nn.SoftmaxCrossEntropy()
    local logits = luacap.randn(2, 3, 5)
    local targets = luacap.tensor{{4, 0, 2}, {1, 1, 3}}
    local mask = luacap.tensor{{1, 1, 1}, {1, 1, 0}}
    local ok, report = gradcheck.check{
      -- the loss as a 1-element tensor; R is then one random number r and dL/dlogits =
      -- r * dloss/dlogits
      forward = function() return luacap.tensor(crit:forward(logits, targets, mask)) end,
      backward = function(R)
        crit:forward(logits, targets, mask)
        return {logits = crit:backward():clone():scale(R:get(1))}
      end,
      wrt = {logits = logits},
      coords = 30,
    }
    assert.is_true(ok, report)
  end)

  it('weights rows by any sign over a fixed normaliser (forward_weighted), by hand', function()
    local crit = luacap.nn.SoftmaxCrossEntropy()
    -- rows as the 2-class case above: nll 2.126928011 (target 0), 0.126928011 (target 1)
    -- weights 1.5 and -0.5, norm 4: (1.5 * 2.126928011 - 0.5 * 0.126928011) / 4
    local logits = luacap.tensor{{1, 3}, {1, 3}}
    local loss = crit:forward_weighted(logits, luacap.tensor{0, 1}, luacap.tensor{1.5, -0.5}, 4)
    assert.near((1.5 * 2.126928011 - 0.5 * 0.126928011) / 4, loss, 1e-8)
    local p0, p1 = 1 / (1 + math.exp(2)), 1 / (1 + math.exp(-2))
    -- dlogits_i = w_i (p_i - onehot_i) / norm
    close({1.5 * (p0 - 1) / 4, 1.5 * p1 / 4, -0.5 * p0 / 4, -0.5 * (p1 - 1) / 4}, crit:backward())
    -- weights summing to 0 still give a loss and a gradient (the mean form would give 0)
    loss = crit:forward_weighted(logits, luacap.tensor{0, 0}, luacap.tensor{1, -1}, 2)
    assert.equal(0, loss)
    local w0 = crit:forward_weighted(logits, luacap.tensor{0, 1}, luacap.tensor{1, -1}, 2)
    assert.near((2.126928011 - 0.126928011) / 2, w0, 1e-8)
    assert.has_error(function()
      crit:forward_weighted(logits, luacap.tensor{0, 1}, luacap.tensor{1, 1}, 0)
    end, 'xent_weighted_forward: norm is 0, expected > 0')
  end)

  it('passes a finite-difference check of the logits with signed weights', function()
    luacap.seed(19)
    local crit = luacap.nn.SoftmaxCrossEntropy()
    local logits = luacap.randn(2, 3, 5)
    local targets = luacap.tensor{{4, 0, 2}, {1, 1, 3}}
    local weights = luacap.tensor{{0.7, -1.3, 0}, {2.1, -0.4, 0.9}}
    local ok, report = gradcheck.check{
      forward = function() return luacap.tensor(crit:forward_weighted(logits, targets, weights, 3)) end,
      backward = function(R)
        crit:forward_weighted(logits, targets, weights, 3)
        return {logits = crit:backward():clone():scale(R:get(1))}
      end,
      wrt = {logits = logits},
      coords = 30,
    }
    assert.is_true(ok, report)
  end)

  it('predicts softmax probabilities', function()
    local crit = luacap.nn.SoftmaxCrossEntropy()
    local p = crit:predict(luacap.tensor{{0, math.log(3)}})   -- e^0 : e^log3 = 1 : 3
    close({0.25, 0.75}, p)
  end)

  it('names wrong targets and masks', function()
    local crit = luacap.nn.SoftmaxCrossEntropy()
    assert.has_error(function() crit:forward(luacap.zeros(2, 3), luacap.zeros(3)) end,
      "xent_forward: targets has shape (3), expected (2) = logits' shape without V")
    assert.has_error(function()
      crit:forward(luacap.zeros(2, 3), luacap.zeros(2), luacap.zeros(2, 1))
    end, "xent_forward: mask has shape (2, 1), expected (2) = logits' shape without V")
    local ok, err = pcall(crit.forward, crit, luacap.zeros(2, 3), luacap.tensor{0, 3})
    assert.is_false(ok)
    assert.truthy(tostring(err):find('xent_forward: targets holds 3 at flat position 2', 1, true))
    assert.has_error(function() luacap.nn.SoftmaxCrossEntropy():backward() end,
      'SoftmaxCrossEntropy: backward called before forward')
  end)
end)
