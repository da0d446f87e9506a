-- Conv2d: Keras' Conv2D on channels-last images, x (B, IH, IW, C) -> (B, OH, OW, OC), on
-- csrc/nn/conv2d.c (im2col + sgemm). Kernel (KH, KW, C, OC) as Keras stores it, bias (OC).
-- Not dilated, grouped or depthwise; activation is relu (fused) or none.
local core = require 'luacap.core'
local T = require 'luacap.tensor'
local Module = require 'luacap.nn.Module'

local Conv2d = Module:extend('Conv2d')

local function pair(v, what)
  if type(v) == 'number' then v = {v, v} end
  assert(type(v) == 'table' and type(v[1]) == 'number' and type(v[2]) == 'number'
    and v[1] >= 1 and v[2] >= 1 and v[1] % 1 == 0 and v[2] % 1 == 0,
    'Conv2d: ' .. what .. ' must be a positive integer or a pair of them')
  return v[1], v[2]
end

-- Conv2d(C, OC, K, {stride = 1, padding = 'valid' | 'same', activation = 'relu' | nil,
--                   name = 'conv2d', use_bias = true, trainable = true,
--                   kernel_initializer = 'glorot_uniform' | 'he_uniform'});
-- K and stride: a number or {h, w}.
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

local function check_input(self, x)
  if x:dim() ~= 4 or x:size(4) ~= self.C then
    error(string.format('%s %s: x has shape (%s), expected (B, IH, IW, %d)', self.__name,
      self.name, table.concat(x:shape(), ', '), self.C), 3)
  end
end

function Conv2d:forward(x)               -- x (B, IH, IW, C) -> out (B, OH, OW, OC)
  check_input(self, x)
  local OH, OW = self:out_size(x:size(2), x:size(3))
  self.out = T.ensure(self.out, x:size(1), OH, OW, self.OC)
  core.conv2d_forward(self.out, x, self.kernel, self.bias, self.SH, self.SW, self.padding,
    self.relu)
  return self.out
end

-- Returns dx (B, IH, IW, C); adds into dkernel, dbias. Call after forward(x).
function Conv2d:backward(x, dout)
  self:check_trainable()
  check_input(self, x)
  local g = dout
  if self.relu then
    -- forward: out = max(pre, 0);  dpre = dout * (out > 0)
    self.dpre = T.ensure(self.dpre, unpack(dout:shape())):zero()
    core.relu_backward(self.dpre, dout, self.out)
    g = self.dpre
  end
  self.dx = T.ensure_zeroed(self.dx, unpack(x:shape()))
  core.conv2d_backward(self.dx, self.dkernel, self.dbias, g, x, self.kernel, self.SH, self.SW,
    self.padding)
  return self.dx
end

function Conv2d:config()
  return {C = self.C, OC = self.OC, K = {self.KH, self.KW}, stride = {self.SH, self.SW},
          padding = self.padding, activation = self.activation, name = self.name,
          use_bias = self.use_bias, trainable = self.trainable}
end

return Conv2d
