-- bench/rnn.lua: LSTM forward+backward throughput at the seed model's sizes, and the
-- dot-product attention, beside a 1024^3 sgemm measured in the same run (medians).
-- Not a comparison with other frameworks: run it next to `make bench`'s other sections.
-- Run: luajit bench/rnn.lua  (from the repository root; `make bench` runs it via bench/run.lua)
package.path = 'lua/?.lua;lua/?/init.lua;' .. package.path
package.cpath = 'lua/?.so;' .. package.cpath
local luacap = require 'luacap'
local util = require 'luacap.util'
local core = luacap.core

local REPS = tonumber(os.getenv('BENCH_REPS') or '') or 5

local function median(xs)
  table.sort(xs)
  local n = #xs
  if n % 2 == 1 then return xs[(n + 1) / 2] end
  return (xs[n / 2] + xs[n / 2 + 1]) / 2
end

-- median seconds of fn() over REPS runs after one warm-up run
local function time(fn)
  fn()
  local ts = {}
  for i = 1, REPS do
    local t0 = util.now()
    fn()
    ts[i] = util.now() - t0
  end
  return median(ts)
end

luacap.seed(1)
print(string.format('rnn bench: %d threads, median of %d', luacap.get_threads(), REPS))

-- sgemm reference: C (1024, 1024) = A @ B, 2 * 1024^3 flops
do
  local N = 1024
  local A, Bm, Cm = luacap.randn(N, N), luacap.randn(N, N), luacap.zeros(N, N)
  local s = time(function() core.sgemm(Cm, A, Bm) end)
  print(string.format('  sgemm %dx%dx%d: %.2f ms, %.1f GFLOP/s', N, N, N, s * 1e3,
    2 * N ^ 3 / s / 1e9))
end

-- LSTM: forward 2*B*T*4H*(C+H) flops in sgemm; backward twice that (dx, dkernel,
-- dh, drecurrent_kernel). The elementwise gate work is not counted.
for _, sz in ipairs{{32, 35, 1024, 512, 'decoder LSTM'}, {32, 35, 300, 256, 'caption BiLSTM, one direction'}} do
  local B, Tn, C, H, what = sz[1], sz[2], sz[3], sz[4], sz[5]
  local l = luacap.nn.LSTM(C, H, {return_sequences = true})
  local x, dout = luacap.randn(B, Tn, C), luacap.randn(B, Tn, H)
  local mask = luacap.ones(B, Tn)
  local fwd = time(function() l:forward(x, mask) end)
  local both = time(function() l:forward(x, mask); l:backward(x, dout) end)
  local flops = 6 * B * Tn * 4 * H * (C + H)
  print(string.format('  LSTM B=%d T=%d C=%d H=%d (%s): forward %.1f ms, forward+backward %.1f ms'
    .. ' per batch, %.1f GFLOP/s', B, Tn, C, H, what, fwd * 1e3, both * 1e3, flops / both / 1e9))
end

-- attention at the seed model's sizes: q, v (32, 34, 512)
do
  local B, Tn, D = 32, 34, 512
  local attn = luacap.nn.Attention()
  local q, v, d = luacap.randn(B, Tn, D), luacap.randn(B, Tn, D), luacap.randn(B, Tn, D)
  local both = time(function() attn:forward({q, v}); attn:backward({q, v}, d) end)
  print(string.format('  Attention B=%d Tq=Tv=%d D=%d: forward+backward %.2f ms', B, Tn, D, both * 1e3))
end
