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
  self.named_children = {{'forward_lstm', self.forward_lstm}, {'backward_lstm', self.backward_lstm}}
end

function Bidirectional:reset()
  self.forward_lstm:reset()
  self.backward_lstm:reset()
  return self
end

local function merge(self, yf, yb, B, Tn)
  local H = self.H
  if self.return_sequences then
    self.out = T.ensure(self.out, B, Tn, 2 * H)
  else
    self.out = T.ensure(self.out, B, 2 * H)
  end
  core.bidir_concat_forward(self.out, yf, yb, self.return_sequences)
  return self.out
end

-- x (B, T, C), mask (B, T) of 1/0 or nil.
function Bidirectional:forward(x, mask)
  self.steps = nil
  local yf = self.forward_lstm:forward(x, mask)
  local yb = self.backward_lstm:forward(x, mask)
  return merge(self, yf, yb, x:size(1), x:size(2))
end

-- x (B, C) repeated over `steps` (Keras' RepeatVector(steps) then this layer), without
-- building the (B, steps, C) input; backward(x, dout) then returns dx (B, C).
function Bidirectional:forward_repeated(x, steps, mask)
  self.steps = steps
  local yf = self.forward_lstm:forward_repeated(x, steps, mask)
  local yb = self.backward_lstm:forward_repeated(x, steps, mask)
  return merge(self, yf, yb, x:size(1), steps)
end

-- dout shaped like the output -> dx shaped like x; adds into both directions' gradients.
function Bidirectional:backward(x, dout)
  local B, H = x:size(1), self.H
  local Tn = self.steps or x:size(2)
  if self.return_sequences then
    self.dyf = T.ensure(self.dyf, B, Tn, H)
    self.dyb = T.ensure(self.dyb, B, Tn, H)
  else
    self.dyf = T.ensure(self.dyf, B, H)
    self.dyb = T.ensure(self.dyb, B, H)
  end
  core.bidir_concat_backward(self.dyf, self.dyb, dout, self.return_sequences)
  local dx
  if self.steps then
    self.dx1 = T.ensure(self.dx1, B, self.C)
    dx = self.dx1
  else
    self.dx = T.ensure(self.dx, B, Tn, self.C)
    dx = self.dx
  end
  dx:copy(self.forward_lstm:backward(x, self.dyf))
  dx:add(self.backward_lstm:backward(x, self.dyb))
  return dx
end

return Bidirectional
