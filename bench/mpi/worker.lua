-- bench/mpi/worker.lua: the processes bench/mpi.lua starts (under mpirun, or alone).
--   luajit bench/mpi/worker.lua allreduce N REPS   -- median seconds of a sum allreduce of N floats
--   luajit bench/mpi/worker.lua train dist|single THREADS STEPS [BUCKET_MB]
--       seed model at the notebook's sizes, batch 32 (global), random pairs: pairs/s of fit's
--       steps after one warm-up step; with dist, data-parallel over the mpirun ranks, the
--       gradients in allreduce buckets of BUCKET_MB MiB (fit's default), and the seconds per
--       step spent waiting for the allreduce after backward (wait_s)
-- Prints one line "result <name> <value>" on rank 0. Not a benchmark driver.
package.path = 'lua/?.lua;lua/?/init.lua;' .. package.path
package.cpath = 'lua/?.so;' .. package.cpath
local luacap = require 'luacap'
local util = require 'luacap.util'
local what = arg[1]

local function median(xs)
  table.sort(xs)
  return xs[math.floor((#xs + 1) / 2)]
end

if what == 'allreduce' then
  local mpi = require 'luacap.mpi'
  local rank = mpi.init()
  local n, reps = tonumber(arg[2]), tonumber(arg[3]) or 5
  local t = luacap.full(1, n)
  mpi.allreduce(t)               -- warm-up (connections, pages)
  local times = {}
  for i = 1, reps do
    mpi.barrier()
    local t0 = mpi.wtime()
    mpi.allreduce(t)
    times[i] = mpi.wtime() - t0
  end
  local small = luacap.full(1, 1)
  local lat = {}
  for i = 1, 50 do
    local t0 = mpi.wtime()
    mpi.allreduce(small)
    lat[i] = mpi.wtime() - t0
  end
  if rank == 0 then
    print(string.format('result allreduce_s %.6f', median(times)))
    print(string.format('result latency_s %.8f', median(lat)))
  end
  mpi.finalize()
  return
end

-- train
local mode, threads, steps = arg[2], tonumber(arg[3]) or 1, tonumber(arg[4]) or 8
luacap.set_threads(threads)
local dist
if mode == 'dist' then
  local mpi = require 'luacap.mpi'
  mpi.init()
  dist = require('luacap.train.distributed').new(mpi)
end
luacap.seed(1)
local V, T, F, IMAGES = 8485, 35, 4096, 64
local model = require('luacap.models').build{model = 'seed', vocab_size = V, max_len = T, feat_dim = F}
local X = luacap.randn(IMAGES, F)
local src = {n = 100000, get = function(idx)
  local ids, y, rows = {}, {}, {}
  for i, k in ipairs(idx) do
    local len = 1 + (k * 7) % 11
    for t = 1, T do ids[#ids + 1] = t > T - len and ((k * 131 + t * 17) % (V - 1)) + 1 or 0 end
    y[i] = ((k * 31) % (V - 1)) + 1
    rows[i] = (k - 1) % IMAGES + 1
  end
  return {ids = luacap.tensor(ids):reshape(#idx, T), y = luacap.tensor(y), rows = rows}
end}
local fit = require 'luacap.train.fit'
local t_first
local n_params = 0
for _, p in ipairs(model:parameters()) do n_params = n_params + p.value:numel() end
local wait0 = 0
local cb = {on_batch_end = function(state)
  if state.batch == 1 then
    t_first = util.now()
    wait0 = dist and dist.grad_bucketing.wait_s or 0
  end
end}
fit.fit{model = model, inputs = X, train = src, epochs = 1, steps_per_epoch = steps + 1, batch_size = 32,
  verbose = 0, dist = dist, callbacks = {cb}, bucket_mb = tonumber(arg[5])}
local el = util.now() - t_first
if not dist or dist.rank == 0 then
  print(string.format('result pairs_per_s %.2f', steps * 32 / el))
  print(string.format('result step_s %.4f', el / steps))
  print(string.format('result params %d', n_params))
  if dist then
    local b = dist.grad_bucketing
    print(string.format('result wait_s %.5f', (b.wait_s - wait0) / steps))
    print(string.format('result buckets %d', #b.buckets))
  end
end
if dist then require('luacap.mpi').finalize() end
