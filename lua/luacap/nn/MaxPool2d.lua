-- MaxPool2d: Keras' MaxPooling2D on channels-last maps, (B, IH, IW, C) -> (B, OH, OW, C),
-- on csrc/nn/pool.c. Backward routes each gradient to its window's (first) maximum.
-- Not average or global pooling; no parameters.
local core = require 'luacap.core'
local T = require 'luacap.tensor'
local Module = require 'luacap.nn.Module'

local MaxPool2d = Module:extend('MaxPool2d')

-- MaxPool2d(K = 2, {stride = K, padding = 'valid' | 'same', name = 'max_pooling2d'})
function MaxPool2d:init(K, opts)
  opts = opts or {}
  K = K or 2
  if type(K) == 'number' then K = {K, K} end
  local S = opts.stride or K
  if type(S) == 'number' then S = {S, S} end
  self.KH, self.KW, self.SH, self.SW = K[1], K[2], S[1], S[2]
  self.padding = opts.padding or 'valid'
  self.name = opts.name or 'max_pooling2d'
end

function MaxPool2d:forward(x)            -- x (B, IH, IW, C) -> out (B, OH, OW, C)
  if x:dim() ~= 4 then
    error(string.format('MaxPool2d %s: x has shape (%s), expected (B, IH, IW, C)', self.name,
      table.concat(x:shape(), ', ')), 2)
  end
  local OH, OW = core.conv_out_size(x:size(2), x:size(3), self.KH, self.KW, self.SH, self.SW,
    self.padding)
  self.out = T.ensure_capacity(self.out, x:size(1), OH, OW, x:size(4))
  core.maxpool2d_forward(self.out, x, self.KH, self.KW, self.SH, self.SW, self.padding)
  return self.out
end

function MaxPool2d:backward(x, dout)     -- returns dx (B, IH, IW, C)
  self.dx = T.ensure_capacity(self.dx, unpack(x:shape())):zero()
  core.maxpool2d_backward(self.dx, dout, x, self.KH, self.KW, self.SH, self.SW, self.padding)
  return self.dx
end

function MaxPool2d:config()
  return {K = {self.KH, self.KW}, stride = {self.SH, self.SW}, padding = self.padding,
          name = self.name}
end

return MaxPool2d
