-- Specs for luacap.nn.RepeatVector and repeat_forward/backward: by hand, finite
-- differences, errors.
local luacap = require 'luacap'
local gradcheck = require 'helpers.gradcheck'

describe('nn.RepeatVector', function()
  it('repeats each row T times', function()
    local r = luacap.nn.RepeatVector(3)
    local out = r:forward(luacap.tensor{{1, 2}, {3, 4}})
    assert.same({{{1, 2}, {1, 2}, {1, 2}}, {{3, 4}, {3, 4}, {3, 4}}}, out:totable())
  end)

  it('sums the steps in backward', function()
    local r = luacap.nn.RepeatVector(2)
    local x = luacap.tensor{{1, 2}}
    r:forward(x)
    -- dx = (1+10, 2+20)
    local dx = r:backward(x, luacap.tensor{{{1, 2}, {10, 20}}})
    assert.same({{11, 22}}, dx:totable())
  end)

  it('passes a finite-difference check', function()
    luacap.seed(21)
    local ok, report = gradcheck.layer_check(luacap.nn.RepeatVector(4), luacap.randn(3, 5))
    assert.is_true(ok, report)
  end)

  it('names the shape it wanted', function()
    assert.has_error(function() luacap.nn.RepeatVector(2):forward(luacap.zeros(2, 3, 4)) end,
      'RepeatVector: x has shape (2, 3, 4), expected (B, C)')
    assert.has_error(function() luacap.core.repeat_forward(luacap.zeros(2, 3, 4), luacap.zeros(2, 5)) end,
      'repeat_forward: out has shape (2, 3, 4), expected (2, *, 5) = (B, T, C)')
  end)
end)
