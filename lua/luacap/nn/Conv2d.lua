-- Conv2d: Keras' Conv2D on channels-last images, x (B, IH, IW, C) -> (B, OH, OW, OC), on
-- csrc/nn/conv2d.c (im2col + sgemm) or, for 3x3 stride-1 kernels, csrc/nn/winograd.c
-- (Winograd F(4x4,3x3) or F(2x2,3x3) forward; backward is always im2col). Kernel
-- (KH, KW, C, OC) as Keras stores it, bias (OC). Not dilated, grouped or depthwise;
-- activation is relu (fused) or none.
local core = require 'luacap.core'
local T = require 'luacap.tensor'
local Module = require 'luacap.nn.Module'

local Conv2d = Module:extend('Conv2d')

local ALGORITHMS = {auto = true, direct = true, winograd4 = true, winograd2 = true}

-- 'auto' leaves layers with fewer input channels to im2col: with C = 3 (an RGB input) the
-- Winograd products are (tiles, 3) @ (3, OC) sgemms, too thin to pay for the transforms.
Conv2d.WINOGRAD_MIN_C = 8

local function pair(v, what)
  if type(v) == 'number' then v = {v, v} end
  assert(type(v) == 'table' and type(v[1]) == 'number' and type(v[2]) == 'number'
    and v[1] >= 1 and v[2] >= 1 and v[1] % 1 == 0 and v[2] % 1 == 0,
    'Conv2d: ' .. what .. ' must be a positive integer or a pair of them')
  return v[1], v[2]
end

-- Conv2d(C, OC, K, {stride = 1, padding = 'valid' | 'same', activation = 'relu' | nil,
--                   name = 'conv2d', use_bias = true, trainable = true,
--                   kernel_initializer = 'glorot_uniform' | 'he_uniform',
--                   algorithm = 'auto' | 'direct' | 'winograd4' | 'winograd2'});
-- K and stride: a number or {h, w}. algorithm picks the forward kernel: 'direct' is
-- im2col + sgemm, 'winogradM' is F(MxM, 3x3) (3x3 stride-1 kernels only), 'auto' is
-- winograd4 for those kernels when C >= WINOGRAD_MIN_C and direct otherwise.
function Conv2d:init(C, OC, K, opts)
  opts = opts or {}
  self.C, self.OC = C, OC
  self.KH, self.KW = pair(K, 'kernel size K')
  self.SH, self.SW = pair(opts.stride or 1, 'stride')
  self.padding = opts.padding or 'valid'
  if self.padding ~= 'same' and self.padding ~= 'valid' then
    error("Conv2d: padding must be 'same' or 'valid', got '" .. tostring(self.padding) .. "'", 3)
  end
  local act = opts.activation
  if act ~= nil and act ~= 'relu' and act ~= 'linear' then
    error("Conv2d: activation must be 'relu', 'linear' or nil, got '" .. tostring(act) .. "'", 3)
  end
  self.activation, self.relu = act, act == 'relu'
  self.name = opts.name or 'conv2d'
  self.use_bias = opts.use_bias ~= false
  self.trainable = opts.trainable ~= false
  self.kernel_initializer = opts.kernel_initializer or 'glorot_uniform'
  if self.kernel_initializer ~= 'glorot_uniform' and self.kernel_initializer ~= 'he_uniform' then
    error("Conv2d: kernel_initializer must be 'glorot_uniform' or 'he_uniform', got '" ..
      tostring(self.kernel_initializer) .. "'", 3)
  end
  self.algorithm = opts.algorithm or 'auto'
  if not ALGORITHMS[self.algorithm] then
    error("Conv2d: algorithm must be 'auto', 'direct', 'winograd4' or 'winograd2', got '" ..
      tostring(self.algorithm) .. "'", 3)
  end
  if self.algorithm:match('^winograd') and not self:winograd_fits() then
    error("Conv2d: algorithm '" .. self.algorithm .. "' needs a 3x3 kernel with stride 1", 3)
  end
  self.kernel, self.dkernel = self:add_param('kernel', T.zeros(self.KH, self.KW, C, OC))
  if self.use_bias then self.bias, self.dbias = self:add_param('bias', T.zeros(OC)) end
  self:reset()
end

-- Glorot-uniform as Keras: fan_in = KH*KW*C, fan_out = KH*KW*OC, l = sqrt(6 / (fan_in +
-- fan_out)); or He-uniform, l = sqrt(6 / fan_in), which keeps the scale through relu
-- layers trained from scratch; zero bias.
function Conv2d:reset()
  local rf = self.KH * self.KW
  local limit = self.kernel_initializer == 'he_uniform' and math.sqrt(6 / (rf * self.C))
    or math.sqrt(6 / (rf * self.C + rf * self.OC))
  self.kernel:copy(core.rand(-limit, limit, self.KH, self.KW, self.C, self.OC))
  if self.bias then self.bias:zero() end
  return self
end

-- Output size for an IH x IW input: OH, OW.
function Conv2d:out_size(IH, IW)
  local OH, OW = core.conv_out_size(IH, IW, self.KH, self.KW, self.SH, self.SW, self.padding)
  return OH, OW
end

function Conv2d:winograd_fits()
  return self.KH == 3 and self.KW == 3 and self.SH == 1 and self.SW == 1
end

-- The output tile m of the Winograd kernel this layer's forward uses; 0 for im2col.
function Conv2d:winograd_tile()
  local a = self.algorithm
  if a == 'winograd4' then return 4 elseif a == 'winograd2' then return 2 end
  if a == 'auto' and self:winograd_fits() and self.C >= Conv2d.WINOGRAD_MIN_C then return 4 end
  return 0
end

-- The filter transform U (a*a, C, OC) for tile m, cached: rebuilt only when m or the
-- kernel's fingerprint changed (any new value, as after an optimizer step or a load).
local function filter_transform(self, m)
  local fp = core.winograd_fingerprint(self.kernel)
  if self.wino_u and self.wino_m == m and self.wino_fp == fp then return self.wino_u end
  self.wino_u = T.ensure(self.wino_u, (m + 2) * (m + 2), self.C, self.OC)
  core.winograd_filter(self.wino_u, self.kernel, m)
  self.wino_m, self.wino_fp = m, fp
  return self.wino_u
end

-- One scratch buffer for every convolution (layers run one at a time): Winograd's tiles,
-- im2col's column buffers. Kept across calls, so that a batch does not pay fresh pages
-- (up to 32 MB of column buffers a backward) on every call.
local work

local function scratch(n)
  if n == 0 then return nil end
  if not work or work:numel() < n then
    if work then work:free() end
    work = T.empty(n)
  end
  return work
end

local function workspace(x, self, m)
  return scratch(core.winograd_workspace_size(x:size(1), x:size(2), x:size(3), self.C, self.OC, m,
    self.padding))
end

local function check_input(self, x)
  if x:dim() ~= 4 or x:size(4) ~= self.C then
    error(string.format('%s %s: x has shape (%s), expected (B, IH, IW, %d)', self.__name,
      self.name, table.concat(x:shape(), ', '), self.C), 3)
  end
end

function Conv2d:forward(x)               -- x (B, IH, IW, C) -> out (B, OH, OW, OC)
  check_input(self, x)
  local OH, OW = self:out_size(x:size(2), x:size(3))
  self.out = T.ensure_capacity(self.out, x:size(1), OH, OW, self.OC)
  local m = self:winograd_tile()
  if m > 0 then
    core.conv2d_winograd_forward(self.out, x, filter_transform(self, m), self.bias, m,
      self.padding, self.relu, workspace(x, self, m))
  else
    core.conv2d_forward(self.out, x, self.kernel, self.bias, self.SH, self.SW, self.padding,
      self.relu, scratch(core.conv2d_workspace_size(x, self.kernel, self.SH, self.SW, self.padding,
      'forward')))
  end
  return self.out
end

-- Returns dx (B, IH, IW, C); adds into dkernel, dbias. Call after forward(x).
function Conv2d:backward(x, dout)
  self:check_trainable()
  check_input(self, x)
  -- forward: out = max(pre, 0);  dpre = dout * (out > 0), masked inside the kernel
  local relu_out = self.relu and self.out or nil
  -- no_input_grad (set by a caller that discards dx, e.g. a network's first layer on images):
  -- only the parameter gradients, dx is neither computed nor returned
  local dx = nil
  if not self.no_input_grad then
    self.dx = T.ensure_capacity(self.dx, unpack(x:shape())):zero()
    dx = self.dx
  end
  local need = core.conv2d_workspace_size(x, self.kernel, self.SH, self.SW, self.padding,
    dx and 'backward_dx' or 'backward', relu_out ~= nil)
  core.conv2d_backward(dx, self.dkernel, self.dbias, dout, x, self.kernel, self.SH, self.SW,
    self.padding, scratch(need), relu_out)
  return dx
end

function Conv2d:config()
  return {C = self.C, OC = self.OC, K = {self.KH, self.KW}, stride = {self.SH, self.SW},
          padding = self.padding, activation = self.activation, name = self.name,
          use_bias = self.use_bias, trainable = self.trainable, algorithm = self.algorithm}
end

return Conv2d
