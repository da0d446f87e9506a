-- RepeatVector: Keras' (B, C) -> (B, T, C), the same vector at every step, on
-- csrc/nn/elementwise.c; backward sums the steps' gradients. Not general broadcasting.
local core = require 'luacap.core'
local T = require 'luacap.tensor'
local Module = require 'luacap.nn.Module'

local RepeatVector = Module:extend('RepeatVector')

function RepeatVector:init(steps)
  self:check_count('steps T', steps)
  self.T = steps
end

local function check2d(x, what)
  if x:dim() ~= 2 then
    error(string.format('RepeatVector: %s has shape (%s), expected (B, C)', what,
      table.concat(x:shape(), ', ')), 3)
  end
end

function RepeatVector:forward(x)            -- x (B, C) -> (B, T, C)
  check2d(x, 'x')
  self.out = T.ensure(self.out, x:size(1), self.T, x:size(2))
  core.repeat_forward(self.out, x)
  return self.out
end

function RepeatVector:backward(x, dout)     -- dx (B, C) = sum over T of dout (B, T, C)
  check2d(x, 'x')
  self.dx = T.ensure(self.dx, x:size(1), x:size(2))
  core.repeat_backward(self.dx, dout)
  return self.dx
end

return RepeatVector
