-- Bidirectional: Keras' Bidirectional(LSTM(H)) with merge_mode='concat', on two LSTMs and
-- csrc/nn/lstm.c's concat kernel. Masks as in Keras: the backward LSTM runs go_backwards
-- over the reversed padded sequence and mask; with return_sequences its output is
-- re-reversed onto the input positions and both directions output 0 at masked steps.
-- Not a general wrapper: LSTM only, concat only.
local core = require 'luacap.core'
local T = require 'luacap.tensor'
local Module = require 'luacap.nn.Module'
local LSTM = require 'luacap.nn.LSTM'

local Bidirectional = Module:extend('Bidirectional')

-- Bidirectional(C, H, {return_sequences = false, name = 'bidirectional'}):
-- (B, T, C) -> (B, T, 2H) with return_sequences, else (B, 2H) = [last fwd, last bwd].
-- The forward direction is initialised first, then the backward one (Keras' order).
function Bidirectional:init(C, H, opts)
  opts = opts or {}
  self.C, self.H = C, H
  self.name = opts.name or 'bidirectional'
  self.return_sequences = opts.return_sequences or false
  local rs = self.return_sequences
  self.forward_lstm = LSTM(C, H, {return_sequences = rs, zero_output_for_mask = rs,
    name = 'forward_lstm'})
  self.backward_lstm = LSTM(C, H, {return_sequences = rs, zero_output_for_mask = rs,
    go_backwards = true, name = 'backward_lstm'})
  self.children = {self.forward_lstm, self.backward_lstm}
end

function Bidirectional:parameters()
  local out = Module.prefixed('forward_lstm', self.forward_lstm)
  for _, p in ipairs(Module.prefixed('backward_lstm', self.backward_lstm)) do out[#out + 1] = p end
  return out
end

function Bidirectional:reset()
  self.forward_lstm:reset()
  self.backward_lstm:reset()
  return self
end

-- x (B, T, C), mask (B, T) of 1/0 or nil.
function Bidirectional:forward(x, mask)
  local yf = self.forward_lstm:forward(x, mask)
  local yb = self.backward_lstm:forward(x, mask)
  local B, H = x:size(1), self.H
  if self.return_sequences then
    self.out = T.ensure(self.out, B, x:size(2), 2 * H)
  else
    self.out = T.ensure(self.out, B, 2 * H)
  end
  core.bidir_concat_forward(self.out, yf, yb, self.return_sequences)
  return self.out
end

-- dout shaped like the output -> dx (B, T, C); adds into both directions' gradients.
function Bidirectional:backward(x, dout)
  local B, H = x:size(1), self.H
  if self.return_sequences then
    self.dyf = T.ensure(self.dyf, B, x:size(2), H)
    self.dyb = T.ensure(self.dyb, B, x:size(2), H)
  else
    self.dyf = T.ensure(self.dyf, B, H)
    self.dyb = T.ensure(self.dyb, B, H)
  end
  core.bidir_concat_backward(self.dyf, self.dyb, dout, self.return_sequences)
  self.dx = T.ensure(self.dx, B, x:size(2), self.C)
  self.dx:copy(self.forward_lstm:backward(x, self.dyf))
  self.dx:add(self.backward_lstm:backward(x, self.dyb))
  return self.dx
end

return Bidirectional
