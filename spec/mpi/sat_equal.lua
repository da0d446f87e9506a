-- spec/mpi/sat_equal.lua: 12 SGD steps of fit on the sat model (caption-level batches:
-- whole captions of unequal lengths, a token-mean loss, the attention penalty) with dropout
-- 0.3 and a small CNN (frozen) run on synthetic 16x16 images in every batch; writes every
-- weight (model, then encoder) to the file arg[2], one number a line (%.9g), on rank 0 only. arg[1]: 'dist'
-- (under mpirun) or 'single'; arg[3] the batch size (16), arg[4] --accumulate. SGD, not Adam:
-- Adam divides by the gradients' size, so on parameters whose gradient is nearly zero
-- (enc_att's bias) it turns float summation-order noise into visible differences. Run by
-- spec/mpi_fit_spec.lua and spec/train/accumulate_spec.lua. Not a spec file on its own.
local common = dofile 'spec/mpi/common.lua'
local luacap = require 'luacap'
local fit = require 'luacap.train.fit'
local mode, out_path = arg[1], arg[2]
local dist = common.dist(mode)
local V, T, IMAGES, CAPTIONS = 23, 7, 10, 40
luacap.seed(3)                                  -- a frozen encoder is the same on every rank
-- the small CNN runs in every batch but is not trained: ReLU's kinks in its backward turn
-- the summation-order noise of different batch sizes into jumps of its gradients (found at
-- step 3 here), which no split could reproduce
local enc = luacap.encoders.build{name = 'smallcnn', input_size = 16, out_dim = 6, output = 'map',
  frozen = true}
luacap.seed(dist and 11 + dist.rank or 11)     -- rank 0's weights reach the others by broadcast
local model = require('luacap.models').build{model = 'sat', vocab_size = V, max_len = T,
  feat_dim = enc.out_dim, embed_dim = 5, units = 6, att_dim = 5, dropout = 0.3, att_lambda = 1}
luacap.seed(5)
local X = luacap.rand(IMAGES, 16, 16, 3)

-- caption k: image (k-1) % IMAGES + 1, 2 to T real steps, post-padded (as pairs.caption_batch)
local function len_of(k) return 2 + (k * 5) % (T - 1) end
local source = {n = CAPTIONS, image_of = function(k) return (k - 1) % IMAGES + 1 end,
  tokens = function(idx)
    local n = 0
    for _, k in ipairs(idx) do n = n + len_of(k) end
    return n
  end,
  get = function(idx)
    local B, Tn = #idx, 1
    for _, k in ipairs(idx) do Tn = math.max(Tn, len_of(k)) end
    local x, y, m, rows = {}, {}, {}, {}
    for b, k in ipairs(idx) do
      for t = 1, Tn do
        local real = t <= len_of(k)
        x[#x + 1] = real and ((k * 7 + t * 3) % (V - 1)) + 1 or 0
        y[#y + 1] = real and ((k * 5 + t * 11) % (V - 1)) + 1 or 0
        m[#m + 1] = real and 1 or 0
      end
      rows[b] = (k - 1) % IMAGES + 1
    end
    return {ids = luacap.tensor(x):reshape(B, Tn), y = luacap.tensor(y):reshape(B, Tn),
      mask = luacap.tensor(m):reshape(B, Tn), rows = rows}
  end}

fit.fit{model = model, encoder = enc, inputs = X, train = source, epochs = 1, steps_per_epoch = 12,
  batch_size = tonumber(arg[3]) or 16, accumulate = tonumber(arg[4]),
  optimizer = luacap.optim.SGD{lr = 0.1}, verbose = 0, dist = dist}

if not dist or dist.rank == 0 then
  common.write_numbers(out_path, {model, enc})
end
common.finish(dist)
