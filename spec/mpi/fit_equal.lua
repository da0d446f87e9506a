-- spec/mpi/fit_equal.lua: 20 steps of fit on the seed model with dropout 0.3 (global batch
-- 32, 2 epochs of 10 steps, validation each epoch) on synthetic features and pairs; writes
-- every trained weight, then the history's losses, to the file arg[2] (one number a line,
-- %.9g), on rank 0 only. arg[1]: 'dist' (under mpirun: data-parallel fit) or 'single'
-- (one process, no MPI); arg[3] the batch size (32), arg[4] --accumulate, arg[5] the
-- allreduce bucket size in MiB (fit's default); with dist, rank 0 also writes
-- "<buckets> <started during backward> <steps>" to arg[2].buckets. Run by
-- spec/mpi_fit_spec.lua and spec/train/accumulate_spec.lua. Not a spec file on its own.
local common = dofile 'spec/mpi/common.lua'
local luacap = require 'luacap'
local fit = require 'luacap.train.fit'
local mode, out_path = arg[1], arg[2]
local dist = common.dist(mode)
-- a different generator state on every rank before the model is built: rank 0's weights
-- must reach the others by the broadcast (the shuffles must not depend on it: reseeded)
luacap.seed(dist and 11 + dist.rank or 11)
local V, T, F, IMAGES, PAIRS = 23, 6, 12, 30, 200
local model = require('luacap.models').build{model = 'seed', vocab_size = V, max_len = T,
  feat_dim = F, img_dense = 16, embed_dim = 8, units = 6, dec_dense = 16, dropout = 0.3}
luacap.seed(5)
local X = luacap.randn(IMAGES, F)

-- pair k: image (k-1) % IMAGES + 1, a left-padded prefix of length 1 + k % T, next word
local function source(n, salt)
  return {n = n, image_of = function(k) return (k - 1) % IMAGES + 1 end, get = function(idx)
    local ids, y, rows = {}, {}, {}
    for i, k in ipairs(idx) do
      local len = 1 + (k + salt) % T
      for t = 1, T do ids[#ids + 1] = t > T - len and ((k * 7 + t * 3 + salt) % (V - 1)) + 1 or 0 end
      y[i] = ((k * 5 + salt) % (V - 1)) + 1
      rows[i] = (k - 1) % IMAGES + 1
    end
    return {ids = luacap.tensor(ids):reshape(#idx, T), y = luacap.tensor(y), rows = rows}
  end}
end

local hist = fit.fit{model = model, inputs = X, train = source(PAIRS, 0), val = source(50, 3),
  epochs = 2, steps_per_epoch = 10, batch_size = tonumber(arg[3]) or 32,
  accumulate = tonumber(arg[4]), bucket_mb = tonumber(arg[5]), optimizer = luacap.optim.Adam{lr = 0.01},
  verbose = 0, dist = dist}

if not dist or dist.rank == 0 then
  common.write_numbers(out_path, {model}, {hist.loss, hist.val_loss})
  if dist then
    local b = dist.grad_bucketing
    local f = assert(io.open(out_path .. '.buckets', 'w'))
    f:write(string.format('%d %d %d\n', #b.buckets, b.early, b.step))
    f:close()
  end
end
common.finish(dist)
