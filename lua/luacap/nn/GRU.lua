-- GRU: Keras' (tf.keras 2.x) GRU layer with reset_after=True, the TF2 default, over a
-- batch-major sequence, on csrc/nn/gru.c. Gates z, r, h; weights stored as Keras stores them
-- (kernel (C, 3H), recurrent_kernel (H, 3H), bias (2, 3H)). Not reset_after=False, not
-- go_backwards, not stateful, no dropout inside the recurrence.
local core = require 'luacap.core'
local T = require 'luacap.tensor'
local Module = require 'luacap.nn.Module'

local GRU = Module:extend('GRU')

-- GRU(C, H, {return_sequences = false, name = 'gru'})
function GRU:init(C, H, opts)
  opts = opts or {}
  self:check_count('in-features C', C)
  self:check_count('units H', H)
  self.C, self.H = C, H
  self.name = opts.name or 'gru'
  self.return_sequences = opts.return_sequences or false
  self.kernel, self.dkernel = self:add_param('kernel', T.zeros(C, 3 * H))                -- (C, 3H)
  self.recurrent_kernel, self.drecurrent_kernel =
    self:add_param('recurrent_kernel', T.zeros(H, 3 * H))                                -- (H, 3H)
  self.bias, self.dbias = self:add_param('bias', T.zeros(2, 3 * H))                      -- (2, 3H)
  self.use_ref = false   -- specs: true runs the plain-loop kernels
  self:reset()
end

-- Keras' defaults, from luacap's seeded generator: glorot-uniform kernel
-- (limit sqrt(6 / (C + 3H))), orthogonal recurrent kernel (the LSTM's core.orthogonal),
-- zero biases.
function GRU:reset()
  local C, H = self.C, self.H
  local limit = math.sqrt(6 / (C + 3 * H))
  self.kernel:copy(core.rand(-limit, limit, C, 3 * H))
  core.orthogonal(self.recurrent_kernel)
  self.bias:zero()
  return self
end

-- x (B, T, C), mask (B, T) of 1/0 or nil, initial_state {h = (B, H)} or nil.
-- Returns (B, T, H) with return_sequences, else (B, H): the last step's output. At a
-- masked step h carries over and the output is the previous output (0 before the first
-- step). The returned tensor is the module's and is overwritten next call.
function GRU:forward(x, mask, initial_state)
  self:check_rows(x, 'x', 3, self.C)
  local B, Tn, H = x:size(1), x:size(2), self.H
  self.mask = mask
  self.h0 = initial_state and initial_state.h or nil
  if self.return_sequences then
    self.out = T.ensure(self.out, B, Tn, H)
  else
    self.out = T.ensure(self.out, B, H)
  end
  self.gates = T.ensure(self.gates, Tn, B, 3 * H)   -- z, r, hh post-activation, by step
  self.rz = T.ensure(self.rz, Tn, B, 3 * H)         -- h_{t-1} @ recurrent_kernel + bias[2]
  self.hs = T.ensure(self.hs, Tn, B, H)
  self.zx = T.ensure(self.zx, B, Tn, 3 * H)         -- forward scratch: x @ kernel + bias[1]
  local fn = self.use_ref and core.gru_forward_ref or core.gru_forward
  fn(self.out, self.gates, self.rz, self.hs, self.zx, x, mask, self.kernel,
    self.recurrent_kernel, self.bias, self.h0, self.return_sequences)
  return self.out
end

-- dout shaped like forward's output -> dx (B, T, C); adds into dkernel, drecurrent_kernel,
-- dbias. Uses the mask and initial state of the last forward (whose caches it reads, so
-- call it right after forward on the same x). With an initial state, self.dstate = {h =}
-- holds its gradient.
function GRU:backward(x, dout)
  self:check_rows(x, 'x', 3, self.C)
  local B, Tn, H = x:size(1), x:size(2), self.H
  assert(self.gates and self.gates:size(1) == Tn and self.gates:size(2) == B,
    'GRU ' .. self.name .. ': backward before forward on this x')
  self.dx = T.ensure(self.dx, B, Tn, self.C)
  self.dz = T.ensure(self.dz, Tn, B, 3 * H)
  self.dzx = T.ensure(self.dzx, B, Tn, 3 * H)
  local dh0
  if self.h0 then
    self.dstate = {h = T.ensure(self.dstate and self.dstate.h, B, H)}
    dh0 = self.dstate.h
  end
  local fn = self.use_ref and core.gru_backward_ref or core.gru_backward
  fn(self.dx, self.dkernel, self.drecurrent_kernel, self.dbias, dh0, self.dz, self.dzx,
    dout, x, self.mask, self.kernel, self.recurrent_kernel, self.gates, self.rz, self.hs,
    self.h0, self.return_sequences)
  return self.dx
end

-- One decoding step without a cache: x_t (B, C), state {h = (B, H)} or nil (zeros).
-- Returns h (B, H) and the new state {h =} (fresh tensors each call).
function GRU:step(x_t, state)
  self:check_rows(x_t, 'x_t', 2, self.C)
  local B, H = x_t:size(1), self.H
  local h = T.zeros(B, H)
  self.step_work = T.ensure(self.step_work, 2, B, 3 * H)   -- scratch only
  core.gru_step(h, self.step_work, x_t, state and state.h, self.kernel,
    self.recurrent_kernel, self.bias)
  return h, {h = h}
end

return GRU
