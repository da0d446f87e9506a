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
  self.steps, self.prefix = nil, nil
  local yf, yb = LSTM.forward_pair(self.forward_lstm, x, mask, self.backward_lstm, x, mask)
  return merge(self, yf, yb, x:size(1), x:size(2))
end

-- x (B, C) repeated over `steps` (Keras' RepeatVector(steps) then this layer), without
-- building the (B, steps, C) input; backward(x, dout) then returns dx (B, C).
function Bidirectional:forward_repeated(x, steps, mask)
  self.steps, self.prefix = steps, nil
  local yf, yb = LSTM.forward_pair(self.forward_lstm, x, mask, self.backward_lstm, x, mask, steps)
  return merge(self, yf, yb, x:size(1), steps)
end

-- Prefix sharing (return_sequences, pre-padded prefixes): x_r (R, T, C) and mask_r (R, T)
-- hold R representative sequences; pair b is the prefix of rep[b] (1-based) that ends
-- shift[b] steps before it, i.e. x[b, t] = x_r[rep[b], t - shift[b]]. The forward
-- direction runs once per representative (a prefix's forward states are its
-- representative's, shifted); the backward direction runs per pair on the shifted
-- input. Returns out (B, T, 2H), the same as forward(x, mask) on the pairs' sequences;
-- self.pair_mask (B, T) is the pairs' mask. backward_prefixes(dout) -> dx_r (R, T, C).
function Bidirectional:forward_prefixes(x_r, mask_r, rep, shift)
  assert(self.return_sequences, 'Bidirectional ' .. self.name .. ': forward_prefixes needs return_sequences')
  local B, Tn, R = #rep, x_r:size(2), x_r:size(1)
  self.steps, self.prefix = nil, {x_r = x_r, rep = rep, shift = shift}
  self.xp = T.ensure(self.xp, B, Tn, self.C)
  core.shift_gather(self.xp, x_r, rep, shift)
  self.pair_mask = T.ensure(self.pair_mask, B, Tn)
  core.shift_gather(self.pair_mask:reshape(B, Tn, 1), mask_r:reshape(R, Tn, 1), rep, shift)
  local yf_r, yb = LSTM.forward_pair(self.forward_lstm, x_r, mask_r, self.backward_lstm, self.xp,
    self.pair_mask)
  self.yfp = T.ensure(self.yfp, B, Tn, self.H)
  core.shift_gather(self.yfp, yf_r, rep, shift)
  return merge(self, self.yfp, yb, B, Tn)
end

-- extra (or nil): {dyf_r = (R, T, H), dyb = (B, T, H)}, gradients of the
-- representatives' forward outputs and of the pairs' backward outputs (in the backward
-- LSTM's processing order) from a consumer that read them itself, added to dout's.
function Bidirectional:backward_prefixes(dout, extra)
  local pr = assert(self.prefix, 'Bidirectional ' .. self.name .. ': backward_prefixes before forward_prefixes')
  local B, Tn, H = #pr.rep, pr.x_r:size(2), self.H
  local R = pr.x_r:size(1)
  self.dyf = T.ensure(self.dyf, B, Tn, H)
  self.dyb = T.ensure(self.dyb, B, Tn, H)
  core.bidir_concat_backward(self.dyf, self.dyb, dout, true)
  -- yf = shift(yf_r)  =>  dyf_r = shift^T(dyf);  xp = shift(x_r)  =>  dx_r += shift^T(dxp)
  self.dyf_r = T.ensure(self.dyf_r, R, Tn, H):zero()
  core.shift_scatter_add(self.dyf_r, self.dyf, pr.rep, pr.shift)
  if extra then
    self.dyf_r:add(extra.dyf_r)
    self.dyb:add(extra.dyb)
  end
  self.dxr = T.ensure(self.dxr, R, Tn, self.C)
  local dxf, dxb = LSTM.backward_pair(self.forward_lstm, pr.x_r, self.dyf_r, self.backward_lstm,
    self.xp, self.dyb)
  self.dxr:copy(dxf)
  core.shift_scatter_add(self.dxr, dxb, pr.rep, pr.shift)
  return self.dxr
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
  local dxf, dxb = LSTM.backward_pair(self.forward_lstm, x, self.dyf, self.backward_lstm, x, self.dyb)
  dx:copy(dxf)
  dx:add(dxb)
  return dx
end

return Bidirectional
