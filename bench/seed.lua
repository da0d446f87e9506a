-- bench/seed.lua: the notebook's captioner (models/seed.lua) at the notebook's sizes:
-- training pairs/s (forward, loss, backward, Adam) at batch 32 and 256 and greedy decoding
-- ms per image at batch 1 and 64, each with its FLOP rate beside this run's sgemm rate and
-- its ratio to PyTorch 1.13 on the same 2-core machine. Random data, not a quality check.
-- Run: luajit bench/run.lua seed   (or `make bench`); BENCH_REPS=n sets the repetitions.
local luacap = require 'luacap'
local util = require 'luacap.util'
local Seed = require 'luacap.models.seed'
local decode = require 'luacap.eval.decode'

local M = {}

-- the notebook's sizes
local V, TMAX, F = 8485, 35, 4096
-- PyTorch 1.13, 2 threads, this machine (the issue's figures): pairs/s and ms per image
local TORCH = {train32 = 160, train256 = 220, dec1 = 450, dec64_lo = 45, dec64_hi = 80}

local function median(xs)
  local s = {}
  for i, v in ipairs(xs) do s[i] = v end
  table.sort(s)
  local n = #s
  return n % 2 == 1 and s[(n + 1) / 2] or (s[n / 2] + s[n / 2 + 1]) / 2
end

-- Pre-padded prefixes of captions of ~12 tokens: row b gets a length drawn in 1..11.
local function random_ids(B)
  local flat = {}
  for b = 1, B do
    local n = math.random(1, 11)
    for t = 1, TMAX do flat[(b - 1) * TMAX + t] = t > TMAX - n and math.random(1, V - 1) or 0 end
  end
  return luacap.core.from_flat(flat, {B, TMAX})
end

-- Matrix-product flops of the model's forward, counting what the computation needs: the
-- image branch's input projection once per image (not per step) and the masked layers'
-- work once per real (step, row) pair; backward is counted as twice the forward.
--   image: Dense F->512, BiLSTM 2 directions x (projection + T recurrence steps)
--   caption (B rows, `real` pairs): BiLSTM over real pairs, attention's two (T, T)
--   products, decoder LSTM over real pairs, Dense 512 and the output Dense
local function image_flops(c, B)
  local U = c.units
  return 2 * B * F * c.img_dense + 2 * (2 * B * c.img_dense * 4 * U + 2 * B * TMAX * U * 4 * U)
end

local function caption_flops(c, B, real)
  local U, D = c.units, c.dec_units
  local f = 2 * 2 * real * (c.embed_dim + U) * 4 * U
  f = f + 2 * 2 * B * TMAX * TMAX * 2 * U
  f = f + 2 * real * (4 * U + D) * 4 * D
  return f + 2 * B * (D * c.dec_dense + c.dec_dense * V)
end

local function forward_flops(c, B, real) return image_flops(c, B) + caption_flops(c, B, real) end

local function real_steps(ids)
  local n = 0
  for _, v in ipairs(ids:flat()) do if v ~= 0 then n = n + 1 end end
  return n
end

local function train_bench(m, B, reps)
  local opt = luacap.optim.Adam{lr = 1e-4}
  local crit = luacap.nn.SoftmaxCrossEntropy()
  m:train(true)
  local ts, flops = {}, {}
  for r = 0, reps do
    local feats, ids = luacap.randn(B, F), random_ids(B)
    local flat = {}
    for b = 1, B do flat[b] = math.random(1, V - 1) end
    local y = luacap.core.from_flat(flat, {B})
    collectgarbage('step')
    local t0 = util.now()
    m:zero_grad()
    crit:forward(m:forward(feats, ids), y)
    m:backward(crit:backward())
    opt:step(m:parameters())
    local dt = util.now() - t0
    if r > 0 then   -- the first is a warm-up
      ts[#ts + 1] = dt
      flops[#flops + 1] = 3 * forward_flops(m.cfg, B, real_steps(ids)) / dt
    end
  end
  return median(ts), median(flops)
end

-- ms per image and flop rate of greedy decoding; counts the forward_caption calls' rows
-- (decoding steps) and real pairs through a wrapper on this model instance.
local function decode_bench(m, N, batch, reps)
  local wi = {startseq = 1, endseq = 2}
  for i = 3, V - 1 do wi['w' .. i] = i end
  local tok = {word_index = wi}
  local vocab = decode.vocab_of(tok)
  local count = {steps = 0, flops = 0}
  local plain = m.forward_caption
  m.forward_caption = function(self, fe4, ids)
    count.steps = count.steps + ids:size(1)
    count.flops = count.flops + caption_flops(self.cfg, ids:size(1), real_steps(ids))
    return plain(self, fe4, ids)
  end
  local ts, rates, steps = {}, {}, {}
  for r = 0, reps do
    local feats = luacap.randn(N, F)
    count.steps, count.flops = 0, image_flops(m.cfg, N)
    local t0 = util.now()
    decode.greedy(m, feats, tok, {batch = batch, vocab = vocab})
    local dt = util.now() - t0
    if r > 0 then
      ts[#ts + 1], rates[#rates + 1], steps[#steps + 1] = dt / N, count.flops / dt, count.steps / N
    end
  end
  m.forward_caption = nil   -- back to the class's method
  return median(ts), median(rates), median(steps)
end

function M.run(ctx)
  local reps = tonumber(os.getenv('BENCH_REPS') or '') or (ctx.quick and 3 or 7)
  luacap.seed(1)
  math.randomseed(1)
  local m = Seed{vocab_size = V, max_len = TMAX}
  local g = ctx.sgemm_gflops or 0
  print(string.format('seed model V=%d T=%d F=%d: %d threads, median of %d, sgemm %.1f GFLOP/s',
    V, TMAX, F, luacap.get_threads(), reps, g))
  for _, B in ipairs{32, 256} do
    local s, fl = train_bench(m, B, reps)
    local ref = TORCH['train' .. B]
    print(string.format('  train batch %3d: %7.1f pairs/s (%.1f ms/batch), %.1f GFLOP/s = %.2f of sgemm;'
      .. ' %.2fx PyTorch (%d pairs/s)', B, B / s, s * 1e3, fl / 1e9, fl / 1e9 / g, B / s / ref, ref))
  end
  m:evaluate()
  -- decoding: random weights rarely emit 'endseq', so most images run all max_len steps
  for _, cfg in ipairs{{1, ctx.quick and 2 or 4}, {64, 64}} do
    local batch, N = cfg[1], cfg[2]
    local s, fl, steps = decode_bench(m, N, batch, math.max(2, math.floor(reps / 2)))
    local lo, hi = batch == 1 and TORCH.dec1 or TORCH.dec64_lo, batch == 1 and TORCH.dec1 or TORCH.dec64_hi
    print(string.format('  greedy decode batch %2d: %7.1f ms/image (%.1f steps/image), %.1f GFLOP/s'
      .. ' = %.2f of sgemm; PyTorch %s ms/image: %.2fx%s', batch, s * 1e3, steps, fl / 1e9,
      fl / 1e9 / g, lo == hi and tostring(lo) or (lo .. '-' .. hi), lo / (s * 1e3),
      lo == hi and '' or string.format(' to %.2fx', hi / (s * 1e3))))
  end
end

return M
