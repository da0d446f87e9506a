-- Specs for csrc/nn/packed_gemm.c (core.packed_gemm: C += A op(B), B packed into column
-- panels once, the LSTM recurrences' product): against sgemm and against a plain triple
-- loop in doubles on odd shapes (rows around the 8-row block, columns around the 32-column
-- panel, K from 1), B given as (K, N) or transposed (N, K), accumulating into C; and the
-- same bits at 1 and 2 threads (each element's sum runs over k in order on one thread);
-- the batched product on matrices packed by pack_panels.
local luacap = require 'luacap'
local core = luacap.core

local function plain(c0, a, b, tb)
  local M, K = a:size(1), a:size(2)
  local N = tb and b:size(1) or b:size(2)
  local A, B, C = a:flat(), b:flat(), c0:flat()
  local out = {}
  for m = 1, M do
    for n = 1, N do
      local s = C[(m - 1) * N + n]
      for k = 1, K do
        local bv = tb and B[(n - 1) * K + k] or B[(k - 1) * N + n]
        s = s + A[(m - 1) * K + k] * bv
      end
      out[(m - 1) * N + n] = s
    end
  end
  return out
end

describe('packed_gemm', function()
  it('equals a plain loop and sgemm on odd shapes, B plain or transposed, adding into C', function()
    luacap.seed(4)
    for _, s in ipairs{{1, 1, 1}, {7, 31, 5}, {8, 32, 16}, {9, 33, 17}, {13, 36, 9}, {24, 64, 40},
                       {17, 100, 3}, {70, 20, 130}, {2, 40, 7}, {3, 5, 2}, {10, 33, 8}} do
      local M, N, K = s[1], s[2], s[3]
      for _, tb in ipairs{false, true} do
        local a = luacap.randn(M, K)
        local b = tb and luacap.randn(N, K) or luacap.randn(K, N)
        local c0 = luacap.randn(M, N)
        local c = c0:clone()
        core.packed_gemm(c, a, b, tb)
        local want = plain(c0, a, b, tb)
        local s2 = c0:clone()
        core.sgemm(s2, a, b, false, tb, 1, 1)
        local got, viasgemm = c:flat(), s2:flat()
        local worst, worst_s = 0, 0
        for i = 1, #want do
          local scale = math.max(1, math.abs(want[i]))
          worst = math.max(worst, math.abs(got[i] - want[i]) / scale)
          worst_s = math.max(worst_s, math.abs(got[i] - viasgemm[i]) / scale)
        end
        assert.truthy(worst < 1e-5, string.format('%dx%dx%d tb=%s: %g from the plain loop', M, N, K,
          tostring(tb), worst))
        assert.truthy(worst_s < 1e-5, string.format('%dx%dx%d: %g from sgemm', M, N, K, worst_s))
      end
    end
  end)

  it('can fail: a wrong B gives a different product', function()
    local a, b = luacap.randn(9, 10), luacap.randn(10, 40)
    local c = luacap.zeros(9, 40)
    core.packed_gemm(c, a, b)
    local want = plain(luacap.zeros(9, 40), a, b:clone():scale(1.01), false)
    local worst = 0
    for i, v in ipairs(c:flat()) do worst = math.max(worst, math.abs(v - want[i])) end
    assert.truthy(worst > 1e-4)
  end)

  it('gives the same bits at 1 and 2 threads', function()
    local before = luacap.get_threads()
    local a, b = luacap.randn(32, 256), luacap.randn(256, 1024)
    local c1, c2 = luacap.zeros(32, 1024), luacap.zeros(32, 1024)
    luacap.set_threads(1)
    core.packed_gemm(c1, a, b)
    luacap.set_threads(2)
    core.packed_gemm(c2, a, b)
    luacap.set_threads(before)
    local f1, f2 = c1:flat(), c2:flat()
    for i = 1, #f1 do if f1[i] ~= f2[i] then error('element ' .. i .. ' differs') end end
  end)

  it('packed_gemm_batch: each C_i += A_i @ B_i on B packed by pack_panels (n, K, N)', function()
    luacap.seed(8)
    for _, s in ipairs{{3, 5, 40, 35}, {2, 9, 33, 4}, {4, 1, 7, 3}} do
      local n, M, N, K = s[1], s[2], s[3], s[4]
      local a, b, c0 = luacap.randn(n, M, K), luacap.randn(n, K, N), luacap.randn(n, M, N)
      local c = c0:clone()
      local pk = core.pack_panels(b)
      assert.same({n, math.ceil(N / 32), K, 32}, pk:shape())
      core.packed_gemm_batch(c, a, pk)
      local got = c:flat()
      for i = 1, n do
        local want = plain(c0:narrow(i, 1):reshape(M, N), a:narrow(i, 1):reshape(M, K),
          b:narrow(i, 1):reshape(K, N), false)
        for j = 1, M * N do
          local g = got[(i - 1) * M * N + j]
          assert(math.abs(g - want[j]) <= 1e-4 * math.max(1, math.abs(want[j])),
            ('matrix %d element %d: %.7g vs %.7g'):format(i, j, g, want[j]))
        end
      end
    end
    assert.has_error(function()
      core.packed_gemm_batch(luacap.zeros(2, 3, 40), luacap.zeros(2, 3, 5), core.pack_panels(luacap.zeros(2, 4, 40)))
    end, 'packed_gemm_batch: P has shape (2, 2, 4, 32), expected (2, 2, 5, 32) = pack_panels of (n, K, N)')
  end)

  it('names a shape mismatch', function()
    assert.has_error(function() core.packed_gemm(luacap.zeros(2, 3), luacap.zeros(2, 4), luacap.zeros(5, 3)) end,
      'packed_gemm: B has shape (5, 3), expected (4, 3) = (K, N)')
  end)
end)
