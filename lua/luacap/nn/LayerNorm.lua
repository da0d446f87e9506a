-- LayerNorm: layer normalization over the last axis (Ba et al. 2016) on csrc/nn/layernorm.c:
-- out = gamma * (x - mean) / sqrt(var + eps) + beta, per row; x (..., D), any leading dims.
-- Not batch normalization (no running statistics, same in training and evaluation).
-- eps defaults to 1e-5 (PyTorch's), not Keras' 1e-3: the captioner's embeddings start at
-- U(-0.05, 0.05), variance 8e-4, so an eps of 1e-3 would shrink their normalized values
-- by about a third; 1e-5 normalizes them nearly exactly and only guards the division.
local core = require 'luacap.core'
local T = require 'luacap.tensor'
local Module = require 'luacap.nn.Module'

local unpack = table.unpack or unpack

local LayerNorm = Module:extend('LayerNorm')

LayerNorm.EPS = 1e-5

-- LayerNorm(D, {eps = 1e-5, name = 'layer_norm'}); weights named gamma, beta as Keras.
function LayerNorm:init(D, opts)
  opts = opts or {}
  assert(type(D) == 'number' and D >= 1 and D % 1 == 0,
    'LayerNorm: width D must be a positive integer, got ' .. tostring(D))
  self.D = D
  self.eps = opts.eps or LayerNorm.EPS
  self.name = opts.name or 'layer_norm'
  self.gamma, self.dgamma = self:add_param('gamma', T.ones(D))    -- (D)
  self.beta, self.dbeta = self:add_param('beta', T.zeros(D))      -- (D)
end

function LayerNorm:reset()
  self.gamma:fill(1)
  self.beta:zero()
  return self
end

-- x (..., D) -> (N, D) rows
local function rows(self, x)
  local d = x:dim()
  if d < 1 or x:size(d) ~= self.D then
    error(string.format('%s %s: x has shape (%s), expected (..., %d)', self.__name, self.name,
      table.concat(x:shape(), ', '), self.D), 3)
  end
  return x:reshape(x:numel() / self.D, self.D)
end

function LayerNorm:forward(x)              -- x (..., D) -> out shaped like x
  local x2 = rows(self, x)
  local N = x2:size(1)
  self.out = T.ensure(self.out, N, self.D)
  self.mean = T.ensure(self.mean, N)
  self.rstd = T.ensure(self.rstd, N)
  core.layernorm_forward(self.out, self.mean, self.rstd, x2, self.gamma, self.beta, self.eps)
  return self.out:reshape(unpack(x:shape()))
end

-- dout shaped like x -> dx shaped like x; adds into dgamma, dbeta. Uses forward's caches.
function LayerNorm:backward(x, dout)
  local x2 = rows(self, x)
  local N = x2:size(1)
  if not self.mean or self.mean:size(1) ~= N then
    error(self.__name .. ' ' .. self.name .. ': backward before forward on this batch', 2)
  end
  self.dx = T.ensure(self.dx, N, self.D)
  core.layernorm_backward(self.dx, self.dgamma, self.dbeta, dout:reshape(N, self.D), x2,
    self.mean, self.rstd, self.gamma)
  return self.dx:reshape(unpack(x:shape()))
end

return LayerNorm
