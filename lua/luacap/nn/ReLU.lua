-- ReLU: out = max(x, 0) elementwise, any shape, on csrc/nn/activation.c.
-- Not leaky or parametric; Dense and Conv2d fuse it themselves when asked.
local core = require 'luacap.core'
local T = require 'luacap.tensor'
local Module = require 'luacap.nn.Module'

local ReLU = Module:extend('ReLU')

function ReLU:init(opts)
  self.name = (opts or {}).name or 'relu'
end

function ReLU:forward(x)
  self.out = T.ensure(self.out, unpack(x:shape()))
  core.relu_forward(self.out, x)
  return self.out
end

-- forward: out = max(x, 0);  dx = dout * (out > 0)
function ReLU:backward(x, dout)
  self.dx = T.ensure_zeroed(self.dx, unpack(x:shape()))
  core.relu_backward(self.dx, dout, self.out)
  return self.dx
end

function ReLU:config() return {name = self.name} end

return ReLU
