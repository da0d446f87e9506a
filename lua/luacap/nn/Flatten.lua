-- Flatten: (B, d2, d3, ...) -> (B, d2*d3*...), a view in row-major order, which for
-- channels-last maps (B, H, W, C) is exactly Keras' Flatten order (c fastest, then w, h).
-- Not a copy: the output shares the input's storage.
local Module = require 'luacap.nn.Module'

local Flatten = Module:extend('Flatten')

function Flatten:init(opts)
  self.name = (opts or {}).name or 'flatten'
end

function Flatten:forward(x)
  self.out = x:reshape(x:size(1), -1)
  return self.out
end

function Flatten:backward(x, dout)
  return dout:reshape(unpack(x:shape()))
end

function Flatten:config() return {name = self.name} end

return Flatten
