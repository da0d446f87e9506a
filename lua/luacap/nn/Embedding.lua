-- Embedding: Keras' token-id lookup, out[b, t, :] = embeddings[ids[b, t], :], on
-- csrc/nn/embedding.c. With mask_zero, self.mask (B, T) marks real tokens (1) and padding
-- (0); row 0 is still looked up and trained, as in Keras. Not a sparse-gradient layer.
local core = require 'luacap.core'
local T = require 'luacap.tensor'
local Module = require 'luacap.nn.Module'

local unpack = table.unpack or unpack

local Embedding = Module:extend('Embedding')

-- Embedding(V, D, {mask_zero = false, name = 'embedding'})
function Embedding:init(V, D, opts)
  opts = opts or {}
  self:check_count('vocabulary size V', V)
  self:check_count('width D', D)
  self.V, self.D = V, D
  self.mask_zero = opts.mask_zero == true
  self.name = opts.name or 'embedding'
  self.weight, self.dweight = self:add_param('embeddings', T.zeros(V, D))   -- (V, D)
  self:reset()
end

-- Keras' default initializer for Embedding: uniform(-0.05, 0.05), from the seeded generator.
function Embedding:reset()
  self.weight:copy(core.rand(-0.05, 0.05, self.V, self.D))
  return self
end

-- ids (B, T) (or (B)) integer ids in [0, V-1] riding as floats -> out ids' shape + (D).
function Embedding:forward(ids)
  local shape = ids:shape()
  shape[#shape + 1] = self.D
  self.out = T.ensure(self.out, unpack(shape))
  if self.mask_zero then
    self.mask = T.ensure(self.mask, unpack(ids:shape()))
    core.embedding_forward(self.out, ids, self.weight, self.mask)
  else
    self.mask = nil
    core.embedding_forward(self.out, ids, self.weight)
  end
  return self.out
end

-- Adds dout's rows into dweight at ids (repeated ids add up). Ids have no gradient: nil.
function Embedding:backward(ids, dout)
  core.embedding_backward(self.dweight, dout, ids)
  return nil
end

return Embedding
