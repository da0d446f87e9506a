-- Concat: Keras' concatenate on the last (feature) axis, on csrc/nn/elementwise.c:
-- forward{a (B, T, Ca), b (B, T, Cb), ...} -> (B, T, Ca+Cb+...) (2-d parts work too).
-- Not a concatenation on other axes: the model only joins features.
local core = require 'luacap.core'
local T = require 'luacap.tensor'
local Module = require 'luacap.nn.Module'

local unpack = table.unpack or unpack

local Concat = Module:extend('Concat')

local function check_list(xs, what)
  if type(xs) ~= 'table' or #xs < 1 then
    error('Concat: ' .. what .. ' must be a non-empty list of tensors, got ' .. type(xs), 3)
  end
end

function Concat:forward(xs)
  check_list(xs, 'input')
  local shape = xs[1]:shape()
  local last = #shape
  local total = 0
  for i = 1, #xs do total = total + xs[i]:size(xs[i]:dim()) end
  shape[last] = total
  self.out = T.ensure(self.out, unpack(shape))
  core.concat_forward(self.out, xs)   -- checks every part's leading dims
  return self.out
end

-- backward({a, b, ...}, dout) -> {da, db, ...}, each shaped as its part.
function Concat:backward(xs, dout)
  check_list(xs, 'input')
  self.dxs = self.dxs or {}
  for i = 1, #xs do self.dxs[i] = T.ensure(self.dxs[i], unpack(xs[i]:shape())) end
  for i = #xs + 1, #self.dxs do self.dxs[i] = nil end
  core.concat_backward(self.dxs, dout)
  return self.dxs
end

return Concat
