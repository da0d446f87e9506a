-- encoders.vgg16: Keras' VGG16 (13 conv 3x3 'same' relu, 5 max-pools, fc1, fc2, predictions)
-- on channels-last batches preprocessed in 'caffe' mode, weights from Keras' own HDF5 files.
-- Not trainable (frozen: no gradient buffers); returns fc2 (4096, after relu) by default.
local T = require 'luacap.tensor'
local nn = require 'luacap.nn'
local h5 = require 'luacap.h5'

local M = {}

M.WEIGHTS = 'data/weights/vgg16_weights_tf_dim_ordering_tf_kernels.h5'
M.WEIGHTS_NOTOP = 'data/weights/vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5'
M.OUTPUTS = {fc2 = true, fc1 = true, predictions = true, block5_pool = true,
             block5_conv3 = true}

-- {convs in the block, channels}: the five blocks of Keras' VGG16.
local BLOCKS = {{2, 64}, {2, 128}, {3, 256}, {3, 512}, {3, 512}}

local Encoder = {}
Encoder.__index = Encoder

-- The layer list of Keras' VGG16 up to (and including) `output`, as {name=, kind=, ...}.
-- width scales every channel and fc width (tests only); size is the input side.
local function plan(cfg)
  local w = cfg.width
  local function ch(n) return math.max(1, math.floor(n * w + 0.5)) end
  local layers, C, S = {}, 3, cfg.input_size
  for b, blk in ipairs(BLOCKS) do
    for i = 1, blk[1] do
      local name = string.format('block%d_conv%d', b, i)
      layers[#layers + 1] = {name = name, kind = 'conv', C = C, OC = ch(blk[2])}
      C = ch(blk[2])
      if name == cfg.output then return layers end
    end
    layers[#layers + 1] = {name = string.format('block%d_pool', b), kind = 'pool'}
    S = math.floor(S / 2)
    if layers[#layers].name == cfg.output then return layers, {S, S, C} end
  end
  local flat = S * S * C
  layers[#layers + 1] = {name = 'flatten', kind = 'flatten'}
  layers[#layers + 1] = {name = 'fc1', kind = 'dense', C = flat, OC = ch(4096), relu = true}
  if cfg.output == 'fc1' then return layers end
  layers[#layers + 1] = {name = 'fc2', kind = 'dense', C = ch(4096), OC = ch(4096), relu = true}
  if cfg.output == 'fc2' then return layers end
  layers[#layers + 1] = {name = 'predictions', kind = 'dense', C = ch(4096), OC = cfg.classes}
  return layers
end

-- The convolutions' forward kernels: conv_algorithm 'auto' (the default) is Winograd
-- F(4x4, 3x3) for every layer but block1_conv1, whose 3 input channels are im2col's
-- (see docs/performance.md, "VGG16 features", for the measurements behind the choice);
-- 'direct' (im2col + sgemm everywhere), 'winograd4' or 'winograd2' force one kernel.
M.CONV_ALGORITHMS = {auto = true, direct = true, winograd4 = true, winograd2 = true}

local function build_net(specs, cfg)
  local layers = {}
  for _, s in ipairs(specs) do
    if s.kind == 'conv' then
      layers[#layers + 1] = nn.Conv2d(s.C, s.OC, 3, {padding = 'same', activation = 'relu',
        name = s.name, trainable = false, algorithm = cfg.conv_algorithm})
    elseif s.kind == 'pool' then
      layers[#layers + 1] = nn.MaxPool2d(2, {name = s.name})
    elseif s.kind == 'flatten' then
      layers[#layers + 1] = nn.Flatten({name = s.name})
    else
      layers[#layers + 1] = nn.Dense(s.C, s.OC, {activation = s.relu and 'relu' or nil,
        name = s.name, trainable = false})
    end
  end
  return nn.Sequential(layers, {name = 'vgg16'})
end

local function shape_str(t) return '(' .. table.concat(t, ', ') .. ')' end

-- Loads the weights of every conv and dense layer of enc from a Keras HDF5 weights file,
-- following the file's own attributes: the root's layer_names, then each layer group's
-- weight_names (kernel first, bias second, as Keras saves them).
-- Returns true | nil, "<path>: layer <name>: what was wrong, what was expected".
function M.load_weights(enc, path)
  local f = io.open(path, 'rb')
  if not f then
    return nil, string.format('%s: VGG16 weights file not found (download it with ' ..
      'tools/get-vgg16-weights.sh, or pass weights = path)', path)
  end
  f:close()
  local root, err = h5.attrs(path, '/')
  if not root then
    return nil, string.format('%s: not a readable Keras weights file (%s)', path, tostring(err))
  end
  local names = h5.chunked(root, 'layer_names')
  if #names == 0 then
    return nil, path .. ': no layer_names attribute: not a Keras weights file'
  end
  local present = {}
  for _, n in ipairs(names) do present[n] = true end
  for _, layer in ipairs(enc.net.children) do
    if layer.kernel then
      local lname = layer.name
      if not present[lname] then
        local hint = ''
        if lname:match('^fc') or lname == 'predictions' then
          hint = " (a '_notop' file has no fc layers: use output = 'block5_pool' or the full file)"
        end
        return nil, string.format("%s: layer %s is missing (layer_names has %d layers, " ..
          "expected Keras' VGG16 layer '%s')%s", path, lname, #names, lname, hint)
      end
      local la, lerr = h5.attrs(path, '/' .. lname)
      if not la then return nil, string.format('%s: layer %s: %s', path, lname, tostring(lerr)) end
      local wn = h5.chunked(la, 'weight_names')
      if #wn ~= 2 then
        return nil, string.format('%s: layer %s has %d weights, expected 2 (kernel, bias)',
          path, lname, #wn)
      end
      for i, p in ipairs{layer.kernel, layer.bias} do
        local what = i == 1 and 'kernel' or 'bias'
        local t, rerr = h5.read(path, '/' .. lname .. '/' .. wn[i])
        if not t then
          return nil, string.format('%s: layer %s: cannot read %s %s (%s)', path, lname, what,
            wn[i], tostring(rerr))
        end
        local got, want = t:shape(), p:shape()
        local same = #got == #want
        for d = 1, #want do same = same and got[d] == want[d] end
        if not same then
          return nil, string.format('%s: layer %s: %s %s has shape %s, expected %s%s', path,
            lname, what, wn[i], shape_str(got), shape_str(want),
            i == 1 and (layer.KH and ' = (KH, KW, C, OC)' or ' = (C, OC)') or ' = (OC)')
        end
        p:copy(t)
        t:free()
      end
    end
  end
  return true
end

-- new{output = 'fc2' | 'fc1' | 'block5_pool' | 'block5_conv3' | 'predictions',
--     weights = path | 'imagenet' | nil (glorot-random from the seeded generator),
--     input_size = 224, classes = 1000, width = 1 (test-only channel multiplier),
--     conv_algorithm = 'auto' | 'direct' | 'winograd4' | 'winograd2'}
-- Returns the encoder | nil, message (a missing, truncated or mismatched weights file).
function M.new(opts)
  opts = opts or {}
  local cfg = {
    name = 'vgg16', output = opts.output or 'fc2', weights = opts.weights,
    input_size = opts.input_size or 224, classes = opts.classes or 1000, width = opts.width or 1,
    conv_algorithm = opts.conv_algorithm or 'auto',
  }
  if not M.CONV_ALGORITHMS[cfg.conv_algorithm] then
    error("vgg16: conv_algorithm must be auto, direct, winograd4 or winograd2, got '" ..
      tostring(cfg.conv_algorithm) .. "'", 2)
  end
  if not M.OUTPUTS[cfg.output] then
    error("vgg16: output must be fc2, fc1, predictions, block5_pool or block5_conv3, got '" ..
      tostring(cfg.output) .. "'", 2)
  end
  if cfg.input_size % 32 ~= 0 then
    error('vgg16: input_size must be a multiple of 32, got ' .. tostring(cfg.input_size), 2)
  end
  if cfg.weights == 'imagenet' then
    local notop_ok = cfg.output:match('^block') ~= nil
    local f = io.open(M.WEIGHTS, 'rb')
    if f then f:close() end
    cfg.weights = (f or not notop_ok) and M.WEIGHTS or M.WEIGHTS_NOTOP
  end
  local specs, map_shape = plan(cfg)
  local enc = setmetatable({cfg = cfg, net = build_net(specs, cfg)}, Encoder)
  enc.trainable = false     -- frozen: features are cached, weights come from the Keras file
  local last = specs[#specs]
  if cfg.output == 'block5_conv3' then
    local S = cfg.input_size / 16
    enc.out_shape = {S, S, last.OC}
  elseif map_shape then
    enc.out_shape = map_shape
  else
    enc.out_shape = {last.OC}
  end
  enc.out_dim = 1
  for _, d in ipairs(enc.out_shape) do enc.out_dim = enc.out_dim * d end
  if cfg.weights then
    local ok, err = M.load_weights(enc, cfg.weights)
    if not ok then return nil, 'vgg16: ' .. err end
  end
  return enc
end

-- forward(images (B, S, S, 3), 'caffe'-preprocessed) -> (B, 4096) for fc1/fc2,
-- (B, classes) softmax for predictions, (B, 7, 7, 512) / (B, 14, 14, 512) for the maps.
-- The result is a buffer owned by the encoder, overwritten by the next call.
function Encoder:forward(images)
  local S = self.cfg.input_size
  if images:dim() ~= 4 or images:size(2) ~= S or images:size(3) ~= S or images:size(4) ~= 3 then
    error(string.format('vgg16: images have shape %s, expected (B, %d, %d, 3)',
      shape_str(images:shape()), S, S), 2)
  end
  local out = self.net:forward(images)
  if self.cfg.output == 'predictions' then
    self.probs = T.ensure(self.probs, out:size(1), out:size(2))
    local B, K, v = out:size(1), out:size(2), out:flat()
    local p = {}
    for b = 0, B - 1 do             -- softmax per row, max subtracted first
      local mx = -math.huge
      for k = 1, K do mx = math.max(mx, v[b * K + k]) end
      local s = 0
      for k = 1, K do p[b * K + k] = math.exp(v[b * K + k] - mx); s = s + p[b * K + k] end
      for k = 1, K do p[b * K + k] = p[b * K + k] / s end
    end
    self.probs:copy(T.tensor(p):reshape(B, K))
    return self.probs
  end
  return out
end

function Encoder:backward()
  error('vgg16: the encoder is frozen (no backward); use smallcnn to train an encoder', 2)
end

function Encoder:parameters()
  return self.net:parameters()
end

function Encoder:train() return self end
function Encoder:evaluate() return self end

-- The table saved with models and feature caches; encoders.build(config) rebuilds it.
function Encoder:config()
  local c = {}
  for k, v in pairs(self.cfg) do c[k] = v end
  return c
end

M.Encoder = Encoder
return M
