-- Specs for luacap.nn.Concat and concat_forward/backward: by hand on 3-d and 2-d parts,
-- finite differences of every part, errors.
local luacap = require 'luacap'
local gradcheck = require 'helpers.gradcheck'

describe('nn.Concat', function()
  it('joins the last axis of 3-d parts', function()
    local c = luacap.nn.Concat()
    local a = luacap.tensor{{{1}, {2}}}              -- (1, 2, 1)
    local b = luacap.tensor{{{10, 11}, {20, 21}}}    -- (1, 2, 2)
    assert.same({{{1, 10, 11}, {2, 20, 21}}}, c:forward{a, b}:totable())
  end)

  it('joins 2-d parts and three of them', function()
    local c = luacap.nn.Concat()
    local out = c:forward{luacap.tensor{{1, 2}, {3, 4}}, luacap.tensor{{5}, {6}},
      luacap.tensor{{7, 8, 9}, {0, 0, 1}}}
    assert.same({{1, 2, 5, 7, 8, 9}, {3, 4, 6, 0, 0, 1}}, out:totable())
  end)

  it('splits the gradient back by columns', function()
    local c = luacap.nn.Concat()
    local a, b = luacap.zeros(1, 2, 1), luacap.zeros(1, 2, 2)
    c:forward{a, b}
    local d = c:backward({a, b}, luacap.tensor{{{1, 2, 3}, {4, 5, 6}}})
    assert.same({{{1}, {4}}}, d[1]:totable())
    assert.same({{{2, 3}, {5, 6}}}, d[2]:totable())
  end)

  it('passes a finite-difference check for every part', function()
    luacap.seed(8)
    local c = luacap.nn.Concat()
    local a, b = luacap.randn(2, 3, 4), luacap.randn(2, 3, 5)
    local ok, report = gradcheck.inputs_check(c, {'a', 'b'}, {a, b})
    assert.is_true(ok, report)
  end)

  it('names a part whose leading dims differ', function()
    local c = luacap.nn.Concat()
    assert.has_error(function() c:forward{luacap.zeros(2, 3, 4), luacap.zeros(2, 2, 4)} end,
      'concat_forward: part 2 has shape (2, 2, 4), expected (2, 3, *)')
    assert.has_error(function()
      luacap.core.concat_forward(luacap.zeros(2, 5), {luacap.zeros(2, 1), luacap.zeros(2, 3)})
    end, 'concat_forward: parts have 4 features in all, out has 5')
  end)
end)
