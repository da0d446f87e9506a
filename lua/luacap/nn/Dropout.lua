-- Dropout: Keras' inverted dropout on csrc/nn/dropout.c: in training each value is kept
-- with probability 1-p and scaled by 1/(1-p), the mask drawn from luacap's seeded
-- generator; in evaluation it is the identity (returns its input). Any input shape.
-- Keyed masks: while Dropout.set_keys(epoch, pair_ids) is in force (fit sets it for each
-- training batch), row b's mask is a function of (seed, epoch, pair_ids[b], which dropout
-- application of the batch this is) only, so a pair gets the same mask whatever batch or
-- rank it is in (data-parallel runs, --accumulate); rows are the first dimension.
local core = require 'luacap.core'
local T = require 'luacap.tensor'
local Module = require 'luacap.nn.Module'

local unpack = table.unpack or unpack

local Dropout = Module:extend('Dropout')

-- The keys of the batch being trained (shared by every Dropout layer): nil, or
-- {epoch =, ids = {pair number per row}, calls = dropout applications so far}.
local keys = nil

-- set_keys(epoch, pair_ids) for the next forward pass; set_keys(nil) goes back to the
-- generator's running stream.
function Dropout.set_keys(epoch, pair_ids)
  keys = epoch and {epoch = epoch, ids = pair_ids, calls = 0} or nil
end

-- Dropout(p): p the fraction dropped, 0 <= p < 1 (Keras' rate).
function Dropout:init(p)
  assert(type(p) == 'number' and p >= 0 and p < 1,
    'Dropout: rate p must be a number in [0, 1), got ' .. tostring(p))
  self.p = p
end

function Dropout:forward(x)
  if not self.is_training or self.p == 0 then
    self.mask = nil
    return x
  end
  local shape = x:shape()
  self.out = T.ensure(self.out, unpack(shape))
  self.mask = T.ensure(self.mask, unpack(shape))   -- (x's shape): 0 or 1/(1-p)
  if keys and #keys.ids == shape[1] then
    keys.calls = keys.calls + 1
    core.dropout_forward_keyed(self.out, self.mask, x, self.p, keys.calls, keys.epoch, keys.ids)
  else
    core.dropout_forward(self.out, self.mask, x, self.p)
  end
  return self.out
end

-- dx = dout * mask, the mask of the last forward; the identity when it was not applied.
function Dropout:backward(x, dout)
  if not self.mask then return dout end
  self.dx = T.ensure(self.dx, unpack(x:shape()))
  core.dropout_backward(self.dx, dout, self.mask)
  return self.dx
end

return Dropout
