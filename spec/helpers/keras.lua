-- spec/helpers/keras.lua: a tiny VGG16 weights file in Keras' own layout (root attribute
-- layer_names, one group per layer, weight_names naming each kernel and bias dataset),
-- written with luacap.h5.save: the real layer names and structure, channels scaled by W.
-- Used by the vgg16 encoder specs and the pipeline's Flickr8k-layout spec.
local luacap = require 'luacap'
local h5 = luacap.h5

local M = {}

M.W, M.SIZE, M.CLASSES = 1 / 32, 32, 5
local CLASSES = M.CLASSES
M.CONVS = {{'block1_conv1', 3, 2}, {'block1_conv2', 2, 2},
           {'block2_conv1', 2, 4}, {'block2_conv2', 4, 4},
           {'block3_conv1', 4, 8}, {'block3_conv2', 8, 8}, {'block3_conv3', 8, 8},
           {'block4_conv1', 8, 16}, {'block4_conv2', 16, 16}, {'block4_conv3', 16, 16},
           {'block5_conv1', 16, 16}, {'block5_conv2', 16, 16}, {'block5_conv3', 16, 16}}
M.DENSES = {{'fc1', 16, 128}, {'fc2', 128, 128}, {'predictions', 128, CLASSES}}

local CONVS, DENSES = M.CONVS, M.DENSES

-- Writes a Keras-1 style VGG16 weights file: root attribute layer_names; one group per
-- layer; weight_names on each weighted layer naming its kernel and bias datasets.
-- edit(tensors, attrs, names) may break it before saving.
function M.write_keras(p, edit)
  luacap.seed(77)
  local names = {'input_1'}
  local tensors, attrs = {}, {}
  local function add(name, kshape, OC)
    names[#names + 1] = name
    local wn = {name .. '_W_1:0', name .. '_b_1:0'}
    -- He-scaled, so activations keep their size through the 16 layers
    local fan_in = 1
    for i = 1, #kshape - 1 do fan_in = fan_in * kshape[i] end
    tensors[name] = {[wn[1]] = luacap.normal(0, math.sqrt(2 / fan_in), unpack(kshape)),
                     [wn[2]] = luacap.normal(0, 0.1, OC)}
    attrs['/' .. name] = {weight_names = wn}
  end
  for i, c in ipairs(CONVS) do
    add(c[1], {3, 3, c[2], c[3]}, c[3])
    if i == 2 or i == 4 or i == 7 or i == 10 or i == 13 then
      names[#names + 1] = c[1]:match('^(block%d)') .. '_pool'
    end
  end
  names[#names + 1] = 'flatten'
  for _, d in ipairs(DENSES) do add(d[1], {d[2], d[3]}, d[3]) end
  attrs.layer_names = names
  if edit then edit(tensors, attrs, names) end
  assert(h5.save(p, tensors, attrs))
  return tensors
end


return M
