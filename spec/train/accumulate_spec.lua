-- Specs for fit's accumulate option (--accumulate K): the seed model with dropout 0.3
-- trained 20 updates with batch 8 x accumulate 4 ends with the weights of batch 32 (one
-- process each, spec/mpi/fit_equal.lua in 'single' mode: no MPI needed), and another batch
-- (16 without accumulation) does not.
local U = require 'spec.helpers.util'

local function numbers(path)
  local t = {}
  for line in io.lines(path) do t[#t + 1] = tonumber(line) end
  return t
end

local function worst(a, b)
  assert.equal(#a, #b)
  local w = 0
  for i = 1, #a do w = math.max(w, math.abs(a[i] - b[i]) / math.max(1, math.abs(a[i]))) end
  return w
end

describe('fit accumulate', function()
  it('batch 8 x accumulate 4 = batch 32 after 20 updates of the seed model with dropout (1e-5)', function()
    local dir = U.tmpdir()
    local function run(name, extra)
      local path = dir .. '/' .. name
      assert(os.execute('luajit spec/mpi/fit_equal.lua single ' .. path .. ' ' .. extra .. ' >/dev/null 2>&1'))
      return numbers(path)
    end
    local whole, acc, other = run('whole', '32'), run('acc', '8 4'), run('other', '16')
    assert.truthy(#whole > 4000)
    local w = worst(whole, acc)
    assert.truthy(w <= 1e-5, 'largest difference ' .. w)
    assert.truthy(worst(whole, other) > 1e-3)
    if os.getenv('LUACAP_MPI_SPEC_VERBOSE') then print(string.format('accumulate: 8x4 vs 32 %.3g', w)) end
    os.execute('rm -rf "' .. dir .. '"')
  end)

  it('sat (whole captions of unequal lengths, token-mean loss, attention penalty, dropout, a CNN in ' ..
     'every batch): batch 4 x accumulate 4 = batch 16 after 12 steps (1e-5)', function()
    local dir = U.tmpdir()
    local function run(name, extra)
      local path = dir .. '/' .. name
      assert(os.execute('luajit spec/mpi/sat_equal.lua single ' .. path .. ' ' .. extra .. ' >/dev/null 2>&1'))
      return numbers(path)
    end
    local whole, acc, other = run('whole', '16'), run('acc', '4 4'), run('other', '8')
    assert.truthy(#whole > 1000)
    local w = worst(whole, acc)
    assert.truthy(w <= 1e-5, 'largest difference ' .. w)
    assert.truthy(worst(whole, other) > 1e-3)
    if os.getenv('LUACAP_MPI_SPEC_VERBOSE') then print(string.format('accumulate sat: 4x4 vs 16 %.3g', w)) end
    os.execute('rm -rf "' .. dir .. '"')
  end)
end)
