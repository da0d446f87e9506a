-- Dense: Keras' fully connected layer, out = act(x @ kernel + bias), on csrc/nn/dense.c.
-- Weights as Keras stores them (kernel (C, OC), bias (OC)); x (B, C) or (B, T, C).
-- Not a general activation zoo: relu (fused) or none; softmax belongs to the loss.
local core = require 'luacap.core'
local T = require 'luacap.tensor'
local Module = require 'luacap.nn.Module'

local Dense = Module:extend('Dense')

local ACTIVATIONS = {relu = true, linear = false}

-- Dense(C, OC, {activation = 'relu' | 'linear' | nil, name = 'dense', use_bias = true,
--              trainable = true, kernel_initializer = 'glorot_uniform' | 'he_uniform'})
function Dense:init(C, OC, opts)
  opts = opts or {}
  self:check_count('in-features C', C)
  self:check_count('out-features OC', OC)
  local act = opts.activation
  if act ~= nil and ACTIVATIONS[act] == nil then
    error("Dense: activation must be 'relu', 'linear' or nil, got '" .. tostring(act) .. "'", 3)
  end
  self.C, self.OC = C, OC
  self.relu = ACTIVATIONS[act] or false
  self.activation = act
  self.name = opts.name or 'dense'
  self.use_bias = opts.use_bias ~= false
  self.trainable = opts.trainable ~= false
  self.kernel_initializer = opts.kernel_initializer or 'glorot_uniform'
  if self.kernel_initializer ~= 'glorot_uniform' and self.kernel_initializer ~= 'he_uniform' then
    error("Dense: kernel_initializer must be 'glorot_uniform' or 'he_uniform', got '" ..
      tostring(self.kernel_initializer) .. "'", 3)
  end
  self.kernel, self.dkernel = self:add_param('kernel', T.zeros(C, OC))   -- (C, OC)
  if self.use_bias then
    self.bias, self.dbias = self:add_param('bias', T.zeros(OC))          -- (OC)
  end
  self:reset()
end

-- Glorot-uniform kernel (Keras' default): U(-l, l), l = sqrt(6 / (C + OC)); He-uniform:
-- l = sqrt(6 / C); zero bias. Draws from luacap's seeded generator, so luacap.seed(n)
-- fixes the weights.
function Dense:reset()
  local limit = self.kernel_initializer == 'he_uniform' and math.sqrt(6 / self.C)
    or math.sqrt(6 / (self.C + self.OC))
  self.kernel:copy(core.rand(-limit, limit, self.C, self.OC))
  if self.bias then self.bias:zero() end
  return self
end

-- (B, C) -> (B, C) rows; (B, T, C) -> (B*T, C) rows and the shape to restore.
local function rows(self, x, what)
  local d = x:dim()
  if (d ~= 2 and d ~= 3) or x:size(d) ~= self.C then
    error(string.format('%s %s: %s has shape (%s), expected (B, %d) or (B, T, %d)',
      self.__name, self.name, what, table.concat(x:shape(), ', '), self.C, self.C), 3)
  end
  if d == 2 then return x, nil end
  return x:reshape(x:size(1) * x:size(2), self.C), {x:size(1), x:size(2)}
end

-- x (B, C) -> (B, OC); (B, T, C) -> (B, T, OC). packed (optional): packed_kernel()'s
-- result, the same kernel packed once for many calls on unchanged weights.
function Dense:forward(x, packed)
  local x2, bt = rows(self, x, 'x')
  self.out = T.ensure(self.out, x2:size(1), self.OC)
  core.dense_forward(self.out, x2, self.kernel, self.bias, self.relu, packed)
  if bt then return self.out:reshape(bt[1], bt[2], self.OC) end
  return self.out
end

-- The kernel in csrc/nn/packed_gemm.c's panels (a new tensor the caller owns), for
-- forward(x, packed): decoding's 35 steps on one set of weights pack it once instead of
-- OpenBLAS packing it in every call. Stale once the weights change.
function Dense:packed_kernel()
  return core.pack_panels(self.kernel)
end

-- Returns dx shaped like x; adds into dkernel and dbias. Uses the output kept by forward,
-- so call it after forward(x) on the same x. With no_dx, dx is not computed (the layer's
-- input needs no gradient: one product less) and nil is returned.
function Dense:backward(x, dout, no_dx)
  self:check_trainable()
  local x2, bt = rows(self, x, 'x')
  local N = x2:size(1)
  if dout:numel() ~= N * self.OC then
    error(string.format('%s %s: dout has shape (%s), expected %d rows of %d', self.__name,
      self.name, table.concat(dout:shape(), ', '), N, self.OC), 2)
  end
  if not self.out or self.out:size(1) ~= N then
    error(self.__name .. ' ' .. self.name .. ': backward before forward on this batch', 2)
  end
  if not no_dx then self.dx = T.ensure_zeroed(self.dx, N, self.C) end
  core.dense_backward(not no_dx and self.dx or nil, self.dkernel, self.dbias,
    dout:reshape(N, self.OC), self.out, x2, self.kernel, self.relu)
  if no_dx then return nil end
  if bt then return self.dx:reshape(bt[1], bt[2], self.C) end
  return self.dx
end

-- The layer's constructor arguments, for models that save their structure.
function Dense:config()
  return {C = self.C, OC = self.OC, activation = self.activation, name = self.name,
          use_bias = self.use_bias, trainable = self.trainable}
end

return Dense
