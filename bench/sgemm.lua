-- bench/sgemm.lua: sgemm GFLOP/s of this machine (OpenBLAS through lc_sgemm), the
-- yardstick other sections divide by. Sets ctx.sgemm_gflops. Not a BLAS tuning tool.
local luacap = require 'luacap'
local util = require 'luacap.util'

local M = {}

local function median(xs)
  table.sort(xs)
  local n = #xs
  return n % 2 == 1 and xs[(n + 1) / 2] or (xs[n / 2] + xs[n / 2 + 1]) / 2
end
M.median = median

-- Times fn() `runs` times after one warm-up call; returns the median seconds and all runs.
function M.time(fn, runs)
  fn()
  local ts = {}
  for r = 1, runs do
    local t0 = util.now()
    fn()
    ts[r] = util.now() - t0
  end
  return median({unpack(ts)}), ts
end

-- GFLOP/s of C (N,N) = A (N,N) @ B (N,N): 2 N^3 flops (a multiply-add counts 2).
function M.measure(N, runs)
  luacap.seed(1)
  local A, B, C = luacap.randn(N, N), luacap.randn(N, N), luacap.zeros(N, N)
  local s = M.time(function() luacap.core.sgemm(C, A, B, false, false, 1, 0) end, runs)
  return 2 * N ^ 3 / s / 1e9, s
end

function M.run(ctx)
  local N, runs = 1024, ctx.quick and 5 or 11
  local g, s = M.measure(N, runs)
  ctx.sgemm_gflops = g
  print(string.format('sgemm %dx%dx%d: %.1f GFLOP/s (median of %d, %.2f ms), OpenBLAS kernels %s (%s)',
    N, N, N, g, runs, s * 1e3, luacap.core.blas_core(), require('luacap.blas_env').describe()))
end

return M
