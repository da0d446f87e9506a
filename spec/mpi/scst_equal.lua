-- spec/mpi/scst_equal.lua: 2 epochs of self-critical training (train/scst.lua) on a tiny
-- seed or sat model, 9 images in batches of 4 (the last batch holds one image, so under 2
-- ranks one rank has none), 3 samples per image keyed by sample_seed, the greedy baseline,
-- SGD; writes every weight to the file arg[3], one number a line (%.9g), on rank 0 only,
-- and the logged lines to arg[3] .. '.log'. arg[1]: 'dist' (under mpirun) or 'single';
-- arg[2]: 'seed' or 'sat'; arg[4]: the sample seed (17). Run by spec/mpi_fit_spec.lua. Not
-- a spec file on its own.
local common = dofile 'spec/mpi/common.lua'
local luacap = require 'luacap'
local scst = require 'luacap.train.scst'
local mode, kind, out_path = arg[1], arg[2], arg[3]
local dist = common.dist(mode)
local V, T, N = 10, 5, 9
-- ids 1 startseq, 2 endseq, 3.. words a, b, c, ...
local iw = {[1] = 'startseq', [2] = 'endseq'}
for i = 3, V - 1 do iw[i] = string.char(94 + i) end
local vocab = {start = 1, stop = 2, index_word = iw}
luacap.seed(8)          -- the same weights and features on every rank
local model, feats
if kind == 'sat' then
  model = require('luacap.models.sat'){vocab_size = V, max_len = T, regions = 3, feat_dim = 6,
    embed_dim = 8, units = 8, att_dim = 5, dropout = 0.5}
  feats = luacap.randn(N, 3, 6):scale(2)
else
  model = require('luacap.models.seed'){vocab_size = V, max_len = T, feat_dim = 6, img_dense = 5,
    embed_dim = 8, units = 8, dec_dense = 8, dropout = 0.5}
  feats = luacap.randn(N, 6):scale(2)
end
local refs = {}
for i = 1, N do
  local a, b, c = iw[3 + i % 7], iw[3 + (i * 3) % 7], iw[3 + (i * 5) % 7]
  refs[i] = {{a, b, c}, {a, b}}
end
local images = {}
for i = 1, N do images[i] = i end
local lines = {}
scst.run{model = model, inputs = feats, images = images, references = refs, vocab = vocab,
  epochs = 2, batch_images = 4, k = 3, baseline = 'greedy', sample_seed = tonumber(arg[4]) or 17,
  optimizer = luacap.optim.SGD{lr = 0.5}, dist = dist, log = function(l) lines[#lines + 1] = l end}

if not dist or dist.rank == 0 then
  common.write_numbers(out_path, {model})
  local f = assert(io.open(out_path .. '.log', 'w'))
  f:write(table.concat(lines, '\n'), '\n')
  f:close()
end
common.finish(dist)
