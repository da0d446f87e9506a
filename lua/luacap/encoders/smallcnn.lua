-- encoders.smallcnn: a small trainable CNN, conv3x3+relu+maxpool blocks then a Dense
-- projection, with vgg16's interface: images (B, S, S, 3) 'caffe'-preprocessed -> (B, D).
-- Not pretrained: weights come from the seeded generator and are saved with the model.
local T = require 'luacap.tensor'
local nn = require 'luacap.nn'
local Module = require 'luacap.nn.Module'

local M = {}

local Encoder = {}
Encoder.__index = Encoder

-- new{input_size = 64, channels = {16, 32, 64}, out_dim = 256, activation = 'relu',
--     input_scale = 1/128}  -- caffe-mode pixels span about +-128: scaled to about +-1
function M.new(opts)
  opts = opts or {}
  local cfg = {
    name = 'smallcnn', input_size = opts.input_size or 64,
    channels = opts.channels or {16, 32, 64}, out_dim = opts.out_dim or 256,
    activation = opts.activation == nil and 'relu' or opts.activation,
    input_scale = opts.input_scale or 1 / 128,
    frozen = opts.frozen or nil,
    output = opts.output or 'dense',   -- 'map': the last conv block's map as (B, L, C) regions
  }
  if cfg.output ~= 'dense' and cfg.output ~= 'map' then
    error(string.format("smallcnn: output '%s' (expected dense or map)", tostring(cfg.output)), 2)
  end
  local S = cfg.input_size
  if S % (2 ^ #cfg.channels) ~= 0 then
    error(string.format('smallcnn: input_size %d must be a multiple of 2^%d (one halving ' ..
      'per block)', S, #cfg.channels), 2)
  end
  local layers, C = {}, 3
  for i, OC in ipairs(cfg.channels) do
    layers[#layers + 1] = nn.Conv2d(C, OC, 3, {padding = 'same', activation = 'relu',
      name = 'conv' .. i, kernel_initializer = 'he_uniform'})
    layers[#layers + 1] = nn.MaxPool2d(2, {name = 'pool' .. i})
    C, S = OC, S / 2
  end
  if cfg.output == 'dense' then
    layers[#layers + 1] = nn.Flatten({name = 'flatten'})
    local act = cfg.activation
    if act == 'linear' or act == false then act = nil end
    layers[#layers + 1] = nn.Dense(S * S * C, cfg.out_dim, {activation = act, name = 'proj',
      kernel_initializer = 'he_uniform'})
  end
  local enc = setmetatable({cfg = cfg, net = nn.Sequential(layers, {name = 'smallcnn'})},
    Encoder)
  enc.out_dim, enc.out_shape = cfg.out_dim, {cfg.out_dim}
  if cfg.output == 'map' then
    -- (B, S', S', C) after the last pool, read as L = S'*S' regions (row-major) of D = C
    enc.map_side, enc.regions = S, S * S
    enc.out_dim, enc.out_shape = C, {S * S, C}
  end
  -- trains with the captioner; frozen (--freeze-encoder) it keeps its seeded weights and its
  -- features are cached like vgg16's. Either way its weights are saved with the model.
  enc.trainable = not cfg.frozen
  enc.save_weights = true
  return enc
end

local function check(self, images)
  local S = self.cfg.input_size
  if images:dim() ~= 4 or images:size(2) ~= S or images:size(3) ~= S or images:size(4) ~= 3 then
    error(string.format('smallcnn: images have shape (%s), expected (B, %d, %d, 3)',
      table.concat(images:shape(), ', '), S, S), 3)
  end
end

-- forward(images (B, S, S, 3)) -> features (B, out_dim), or with output = 'map' the last
-- block's map (B, L, C), L = (S / 2^blocks)^2 regions; owned by the encoder.
function Encoder:forward(images)
  check(self, images)
  self.x = T.ensure_capacity(self.x, unpack(images:shape())):copy(images):scale(self.cfg.input_scale)
  local y = self.net:forward(self.x)
  if self.cfg.output == 'map' then return y:reshape(y:size(1), self.regions, self.out_dim) end
  return y
end

-- backward(images, dfeat (B, out_dim) or (B, L, C)[, want_dimages = true]) -> dimages, or
-- nothing with want_dimages false (training: the first convolution then skips its input
-- gradient, a product and a col2im over the largest map); adds into every parameter
-- gradient. Call after forward(images).
function Encoder:backward(images, dfeat, want_dimages)
  check(self, images)
  -- forward: x = images * scale;  dimages = dx * scale
  if self.cfg.output == 'map' then
    dfeat = dfeat:reshape(dfeat:size(1), self.map_side, self.map_side, self.out_dim)
  end
  local first = self.net.children[1]
  first.no_input_grad = want_dimages == false
  local dx = self.net:backward(self.x, dfeat)
  first.no_input_grad = nil
  if want_dimages == false then return nil end
  self.dimages = T.ensure_capacity(self.dimages, unpack(images:shape())):copy(dx)
    :scale(self.cfg.input_scale)
  return self.dimages
end

function Encoder:parameters() return self.net:parameters() end
function Encoder:zero_grad() return self.net:zero_grad() end
function Encoder:train(on) self.net:train(on); return self end
function Encoder:evaluate() self.net:train(false); return self end
Encoder.num_params = Module.num_params

function Encoder:config()
  local c = {}
  for k, v in pairs(self.cfg) do c[k] = v end
  c.channels = {unpack(self.cfg.channels)}
  return c
end

M.Encoder = Encoder
return M
