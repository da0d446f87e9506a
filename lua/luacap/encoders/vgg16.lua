-- encoders.vgg16: Keras' VGG16 (13 conv 3x3 'same' relu, 5 max-pools, fc1, fc2, predictions)
-- on channels-last batches preprocessed in 'caffe' mode, weights from Keras' own HDF5 files.
-- Frozen (no gradient buffers) unless fine_tune_from names where a trainable tail begins;
-- returns fc2 (4096, after relu) by default.
local T = require 'luacap.tensor'
local nn = require 'luacap.nn'
local h5 = require 'luacap.h5'
local Module = require 'luacap.nn.Module'

local M = {}

M.WEIGHTS = 'data/weights/vgg16_weights_tf_dim_ordering_tf_kernels.h5'
M.WEIGHTS_NOTOP = 'data/weights/vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5'
M.OUTPUTS = {fc2 = true, fc1 = true, predictions = true, block5_pool = true,
             block5_conv3 = true}

-- {convs in the block, channels}: the five blocks of Keras' VGG16.
local BLOCKS = {{2, 64}, {2, 128}, {3, 256}, {3, 512}, {3, 512}}

local Encoder = {}
Encoder.__index = Encoder
local Tail = {}         -- the trainable part of a fine-tuned encoder (fine_tune below)
Tail.__index = Tail

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
    if layers[#layers].name == cfg.output then return layers end
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

-- One image's output shape after the first n layers of specs (n = 0: the image itself):
-- {S, S, C} for a map, {D} after flatten or a dense layer.
local function row_shape(specs, n, size)
  local shape = {size, size, 3}
  for i = 1, n do
    local s = specs[i]
    if s.kind == 'conv' then shape[3] = s.OC
    elseif s.kind == 'pool' then shape = {math.floor(shape[1] / 2), math.floor(shape[2] / 2), shape[3]}
    elseif s.kind == 'flatten' then shape = {shape[1] * shape[2] * shape[3]}
    else shape = {s.OC} end
  end
  return shape
end

-- Values in one row of a shape {S, S, C} or {D}.
local function row_size(shape)
  local n = 1
  for _, d in ipairs(shape) do n = n * d end
  return n
end

-- Layers from position first_trainable on (none when nil) get gradients: the fine-tuned tail.
local function build_net(specs, cfg, first_trainable)
  local layers = {}
  for i, s in ipairs(specs) do
    local trainable = first_trainable ~= nil and i >= first_trainable
    if s.kind == 'conv' then
      layers[#layers + 1] = nn.Conv2d(s.C, s.OC, 3, {padding = 'same', activation = 'relu',
        name = s.name, trainable = trainable, algorithm = cfg.conv_algorithm})
    elseif s.kind == 'pool' then
      layers[#layers + 1] = nn.MaxPool2d(2, {name = s.name})
    elseif s.kind == 'flatten' then
      layers[#layers + 1] = nn.Flatten({name = s.name})
    else
      layers[#layers + 1] = nn.Dense(s.C, s.OC, {activation = s.relu and 'relu' or nil,
        name = s.name, trainable = trainable})
    end
  end
  return nn.Sequential(layers, {name = 'vgg16'})
end

-- Where fine-tuning starts: the position in specs of the layer fine_tune_from names, a block
-- ('block5': its first conv) or a conv or dense layer up to the output ('block5_conv2').
-- Returns the position | nil, message listing the names that would do.
local function split_point(specs, name, output)
  local want = type(name) == 'string' and name:match('^block%d$') and name .. '_conv1' or name
  local valid = {}
  for b = 1, #BLOCKS do valid[b] = 'block' .. b end
  for i, s in ipairs(specs) do
    if s.kind == 'conv' or s.kind == 'dense' then
      if s.name == want then return i end
      valid[#valid + 1] = s.name
    end
  end
  return nil, string.format("vgg16: fine_tune_from '%s' is not a block or layer of VGG16 up " ..
    'to %s (expected one of %s)', tostring(name), output, table.concat(valid, ', '))
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

-- Fine-tuning (sgrvinod's Show-Attend-Tell tutorial fine-tunes ResNet's last blocks this
-- way): the layers before specs[split] form enc.prefix, a frozen encoder whose output maps
-- (B, S', S', C) the feature cache keeps (its config names the split, so the cache key
-- differs from a whole network's); the layers from there to the output form enc.tail, a
-- trainable encoder on those maps that returns what the whole encoder returns. Both share
-- enc.net's layers: the Keras weights load into all of them, and the tail's train.
-- enc:forward(images) runs prefix then tail; enc:parameters() lists the tail's only (the
-- weights trained and saved with the model; the prefix's come from the Keras file).
local function fine_tune(enc, specs, split)
  local layers = enc.net.children
  local pcfg = enc:config()
  pcfg.fine_tune_from = specs[split].name
  pcfg.output = split > 1 and specs[split - 1].name or 'input'   -- the layer whose output is cached
  pcfg.part = 'prefix'
  local prefix = setmetatable({cfg = pcfg, trainable = false,
    net = nn.Sequential({unpack(layers, 1, split - 1)}, {name = 'vgg16'}),
    out_shape = row_shape(specs, split - 1, enc.cfg.input_size)}, Encoder)
  prefix.out_dim = row_size(prefix.out_shape)
  local tail = setmetatable({parent = enc, in_shape = prefix.out_shape, out_dim = enc.out_dim,
    net = nn.Sequential({unpack(layers, split)}, {name = 'vgg16'}), trainable = true,
    save_weights = true}, Tail)
  enc.prefix, enc.tail = prefix, tail
  enc.trainable, enc.save_weights = true, true
  return enc
end

-- new{output = 'fc2' | 'fc1' | 'block5_pool' | 'block5_conv3' | 'predictions',
--     weights = path | 'imagenet' | nil (glorot-random from the seeded generator),
--     input_size = 224, classes = 1000, width = 1 (test-only channel multiplier),
--     conv_algorithm = 'auto' | 'direct' | 'winograd4' | 'winograd2',
--     fine_tune_from = nil | 'block1'..'block5' | a conv or fc layer name: the
--     frozen prefix before it, the trainable tail from it, see fine_tune above)}
-- Returns the encoder | nil, message (a missing, truncated or mismatched weights file).
function M.new(opts)
  opts = opts or {}
  local cfg = {
    name = 'vgg16', output = opts.output or 'fc2', weights = opts.weights,
    input_size = opts.input_size or 224, classes = opts.classes or 1000, width = opts.width or 1,
    conv_algorithm = opts.conv_algorithm or 'auto', fine_tune_from = opts.fine_tune_from or nil,
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
  local specs = plan(cfg)
  local split
  if cfg.fine_tune_from then
    if cfg.output == 'predictions' then
      error("vgg16: fine_tune_from needs output fc2, fc1, block5_pool or block5_conv3, not " ..
        "predictions (its softmax has no backward)", 2)
    end
    local err
    split, err = split_point(specs, cfg.fine_tune_from, cfg.output)
    if not split then error(err, 2) end
  end
  local enc = setmetatable({cfg = cfg, net = build_net(specs, cfg, split)}, Encoder)
  enc.trainable = false     -- frozen: features are cached, weights come from the Keras file
  enc.out_shape = row_shape(specs, #specs, cfg.input_size)
  enc.out_dim = row_size(enc.out_shape)
  if split then fine_tune(enc, specs, split) end
  if cfg.weights then
    local ok, err = M.load_weights(enc, cfg.weights)
    if not ok then return nil, 'vgg16: ' .. err end
  end
  return enc
end

-- forward(images (B, S, S, 3), 'caffe'-preprocessed) -> (B, 4096) for fc1/fc2,
-- (B, classes) softmax for predictions, (B, 7, 7, 512) / (B, 14, 14, 512) for the maps, or
-- (B, L, D) after use_regions. Fine-tuned: the prefix's maps through the tail, as the tail
-- returns them. The result is a buffer owned by the encoder, overwritten by the next call.
function Encoder:forward(images)
  local S = self.cfg.input_size
  if images:dim() ~= 4 or images:size(2) ~= S or images:size(3) ~= S or images:size(4) ~= 3 then
    error(string.format('vgg16: images have shape %s, expected (B, %d, %d, 3)',
      shape_str(images:shape()), S, S), 2)
  end
  if self.tail then
    self.maps = self.prefix:forward(images)
    return self.tail:forward(self.maps)
  end
  local out = self.net:forward(images)
  if self.regions then return out:reshape(out:size(1), self.regions, self.out_dim) end
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

-- Fine-tuned: backward(images, dfeat) after forward(images) -> dmaps, the gradient of the
-- prefix's maps (the prefix is frozen); adds into the tail's parameter gradients.
function Encoder:backward(_, dfeat)
  if not self.tail then
    error('vgg16: the encoder is frozen (no backward); give fine_tune_from, or use smallcnn ' ..
      'to train an encoder', 2)
  end
  return self.tail:backward(self.maps, dfeat)
end

function Encoder:parameters()
  if self.tail then return self.tail:parameters() end
  return self.net:parameters()
end

function Encoder:zero_grad() if self.tail then self.tail:zero_grad() end end
function Encoder:train() return self end      -- no dropout or batch statistics in VGG16
function Encoder:evaluate() return self end
Encoder.num_params = Module.num_params

-- Reads a conv map output (block5_conv3, block5_pool) as L = S'*S' regions (row-major) of
-- D = C features, as sat attends over them: out_dim becomes D, forward (and a fine-tuned
-- tail) return (B, L, D), and features.extract caches one L x D row per image.
function Encoder:use_regions()
  local sh = self.out_shape
  if #sh ~= 3 then
    error('vgg16: output ' .. self.cfg.output .. ' is not a conv map (block5_conv3 or ' ..
      'block5_pool), so it has no regions', 2)
  end
  self.regions, self.out_dim = sh[1] * sh[2], sh[3]
  if self.tail then self.tail.regions, self.tail.out_dim = self.regions, self.out_dim end
  return self
end

-- The table saved with models and feature caches; encoders.build(config) rebuilds it.
function Encoder:config()
  local c = {}
  for k, v in pairs(self.cfg) do c[k] = v end
  return c
end

---------------------------------------------------------------------------- the tail

-- forward(maps (B, S', S', C), the prefix's output) -> what features.extract caches for the
-- whole network: (B, D), or (B, L, D) after use_regions; owned by the tail's last layer.
function Tail:forward(maps)
  local want = self.in_shape
  local ok = maps:dim() == #want + 1
  for d = 1, #want do ok = ok and maps:size(d + 1) == want[d] end
  if not ok then
    error(string.format("vgg16: the fine-tuned tail's input has shape %s, expected (B, %s): " ..
      'the maps of the prefix up to %s', shape_str(maps:shape()), table.concat(want, ', '),
      self.parent.prefix.cfg.output), 2)
  end
  local out = self.net:forward(maps)
  if self.regions then return out:reshape(out:size(1), self.regions, self.out_dim) end
  return out:reshape(out:size(1), self.out_dim)
end

-- backward(maps, dfeat shaped like forward's result) -> dmaps (B, S', S', C); adds into every
-- parameter gradient. Call after forward(maps).
function Tail:backward(maps, dfeat)
  return self.net:backward(maps, dfeat:reshape(unpack(self.net.out:shape())))
end

function Tail:parameters() return self.net:parameters() end
function Tail:zero_grad() return self.net:zero_grad() end
function Tail:train() return self end
function Tail:evaluate() return self end
Tail.num_params = Module.num_params

-- The whole encoder's config: a model file saves the tail's weights under it, and
-- encoders.build rebuilds prefix and tail from it.
function Tail:config() return self.parent:config() end

M.Encoder, M.Tail = Encoder, Tail
return M
