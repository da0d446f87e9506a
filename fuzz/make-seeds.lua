-- fuzz/make-seeds.lua: writes the HDF5 seeds of fuzz/corpus/h5/ with luacap's own writers,
-- small so that each fuzzing execution stays fast: a model file with optimizer state (the
-- checkpoint writer: tensors, tokenizer and train state as attributes, digests), a
-- feature cache (format, ids, key attributes), and a Keras-layout VGG16 weights file
-- (spec/helpers/keras.lua's layout, layer_names and weight_names) cut to its first two
-- layers. h5_mixed.h5 (spec/fixtures, an h5py-style file) is copied beside them.
--   luajit fuzz/make-seeds.lua [dir]     (default fuzz/corpus/h5)
package.path = 'lua/?.lua;lua/?/init.lua;spec/?.lua;' .. package.path
package.cpath = 'lua/?.so;' .. package.cpath
local luacap = require 'luacap'
local h5 = luacap.h5
local ckpt = require 'luacap.train.checkpoint'
local features = require 'luacap.features'
local dir = arg[1] or 'fuzz/corpus/h5'

luacap.seed(7)
local tok = require('luacap.data.tokenizer').fit{'startseq a red circle endseq',
  'startseq a blue square endseq'}
local model = require('luacap.models.seed'){vocab_size = tok:vocab_size(), max_len = 5,
  feat_dim = 4, img_dense = 4, embed_dim = 3, units = 2, dec_dense = 4}
assert(ckpt.save(dir .. '/model.h5', {model = model, tokenizer = tok, train_state = {epoch = 2}}))

local feats = luacap.zeros(3, 4)
for i = 1, 3 do for j = 1, 4 do feats:set(i, j, math.sin(i * 31 + j)) end end
assert(h5.save(dir .. '/features.h5', {features = feats}, {format = features.FORMAT,
  ids = {'a.jpg', 'b.jpg', 'c.jpg'}, key = '{"encoder": "seed"}'}))

local W = {['block1_conv1_W_1:0'] = luacap.zeros(3, 3, 3, 2), ['block1_conv1_b_1:0'] = luacap.zeros(2)}
assert(h5.save(dir .. '/keras.h5', {block1_conv1 = W, fc2 = {['fc2_W_1:0'] = luacap.zeros(2, 2),
  ['fc2_b_1:0'] = luacap.zeros(2)}}, {layer_names = {'input_1', 'block1_conv1', 'fc2'},
  ['/block1_conv1'] = {weight_names = {'block1_conv1_W_1:0', 'block1_conv1_b_1:0'}},
  ['/fc2'] = {weight_names = {'fc2_W_1:0', 'fc2_b_1:0'}}}))
for _, f in ipairs{'model.h5', 'features.h5', 'keras.h5'} do
  local h = assert(io.open(dir .. '/' .. f, 'rb'))
  print(dir .. '/' .. f, h:seek('end') .. ' bytes')
  h:close()
end
