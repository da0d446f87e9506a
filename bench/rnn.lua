-- bench/rnn.lua: LSTM forward+backward throughput at the seed model's sizes, and the
-- dot-product attention, beside a 1024^3 sgemm measured in the same run (medians).
-- Not a comparison with other frameworks: run it next to `make bench`'s other sections.
-- Run: luajit bench/run.lua rnn  (from the repository root; `make bench` runs every section)
local luacap = require 'luacap'
local sgemm = require 'sgemm'

local M = {}

function M.run(ctx)
local REPS = tonumber(os.getenv('BENCH_REPS') or '') or (ctx.quick and 3 or 5)
local function time(fn) return (sgemm.time(fn, REPS)) end
luacap.seed(1)
print(string.format('rnn bench: %d threads, median of %d; sgemm %.1f GFLOP/s', luacap.get_threads(),
  REPS, ctx.sgemm_gflops or 0))

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

-- The image BiLSTM's two directions (the repeated (B, 512) input, 35 steps, H 256),
-- forward and backward: one direction after the other, each on every thread, against
-- LSTM.forward_pair / backward_pair (one direction per thread when there are two),
-- interleaved in this process so both see the same machine.
for _, B in ipairs{32, 256} do
  local la = luacap.nn.LSTM(512, 256, {return_sequences = true, zero_output_for_mask = true})
  local lb = luacap.nn.LSTM(512, 256, {return_sequences = true, zero_output_for_mask = true,
    go_backwards = true})
  local x, da, db = luacap.randn(B, 512), luacap.randn(B, 35, 256), luacap.randn(B, 35, 256)
  local LSTM = luacap.nn.LSTM
  local t = {seq = {}, pair = {}, seq_f = {}, pair_f = {}}
  for r = 1, 2 * REPS + 1 do
    t.seq_f[r] = time(function() la:forward_repeated(x, 35); lb:forward_repeated(x, 35) end)
    t.seq[r] = time(function()
      la:forward_repeated(x, 35); lb:forward_repeated(x, 35); la:backward(x, da); lb:backward(x, db)
    end)
    t.pair_f[r] = time(function() LSTM.forward_pair(la, x, nil, lb, x, nil, 35) end)
    t.pair[r] = time(function()
      LSTM.forward_pair(la, x, nil, lb, x, nil, 35); LSTM.backward_pair(la, x, da, lb, x, db)
    end)
  end
  local m = REPS + 1
  local function med(k) table.sort(t[k]); return t[k][m] * 1e3, t[k][1] * 1e3, t[k][#t[k]] * 1e3 end
  for _, part in ipairs{{'forward', '_f'}, {'forward+backward', ''}} do
    local s1, s2, s3 = med('seq' .. part[2])
    local p1, p2, p3 = med('pair' .. part[2])
    print(string.format('  BiLSTM %s B=%d T=35 C=512 H=256: directions in turn %.2f ms (%.2f-%.2f), '
      .. 'paired %.2f ms (%.2f-%.2f): %.2fx', part[1], B, s1, s2, s3, p1, p2, p3, s1 / p1))
  end
end

-- attention at the seed model's sizes: q, v (32, 34, 512)
do
  local B, Tn, D = 32, 34, 512
  local attn = luacap.nn.Attention()
  local q, v, d = luacap.randn(B, Tn, D), luacap.randn(B, Tn, D), luacap.randn(B, Tn, D)
  local both = time(function() attn:forward({q, v}); attn:backward({q, v}, d) end)
  print(string.format('  Attention B=%d Tq=Tv=%d D=%d: forward+backward %.2f ms', B, Tn, D, both * 1e3))
end
end

return M
