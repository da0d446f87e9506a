-- LSTM: Keras' (TF2) LSTM layer over a batch-major sequence, on csrc/nn/lstm.c.
-- Gates i, f, c, o; sigmoid / tanh; weights stored as Keras stores them (kernel (C, 4H),
-- recurrent_kernel (H, 4H), bias (4H)). Not stateful, no dropout inside the recurrence.
local core = require 'luacap.core'
local T = require 'luacap.tensor'
local Module = require 'luacap.nn.Module'

local LSTM = Module:extend('LSTM')

-- LSTM(C, H, {return_sequences = false, go_backwards = false, zero_output_for_mask = false,
--             unit_forget_bias = true, name = 'lstm'})
function LSTM:init(C, H, opts)
  opts = opts or {}
  assert(type(C) == 'number' and C >= 1 and C % 1 == 0,
    'LSTM: in-features C must be a positive integer, got ' .. tostring(C))
  assert(type(H) == 'number' and H >= 1 and H % 1 == 0,
    'LSTM: units H must be a positive integer, got ' .. tostring(H))
  self.C, self.H = C, H
  self.name = opts.name or 'lstm'
  self.return_sequences = opts.return_sequences or false
  self.go_backwards = opts.go_backwards or false
  self.zero_output_for_mask = opts.zero_output_for_mask or false
  self.unit_forget_bias = opts.unit_forget_bias ~= false
  self.kernel, self.dkernel = self:add_param('kernel', T.zeros(C, 4 * H))                -- (C, 4H)
  self.recurrent_kernel, self.drecurrent_kernel =
    self:add_param('recurrent_kernel', T.zeros(H, 4 * H))                                -- (H, 4H)
  self.bias, self.dbias = self:add_param('bias', T.zeros(4 * H))                         -- (4H)
  self.use_ref = false   -- specs: true runs the plain-loop kernels
  self:reset()
end

-- Keras' defaults, from luacap's seeded generator: glorot-uniform kernel
-- (limit sqrt(6 / (C + 4H))), orthogonal recurrent kernel, zero bias with the forget
-- block (H+1..2H) set to 1 (unit_forget_bias).
function LSTM:reset()
  local C, H = self.C, self.H
  local limit = math.sqrt(6 / (C + 4 * H))
  self.kernel:copy(core.rand(-limit, limit, C, 4 * H))
  core.orthogonal(self.recurrent_kernel)
  self.bias:zero()
  if self.unit_forget_bias then self.bias:narrow(H + 1, H):fill(1) end
  return self
end

local function shape_str(x) return '(' .. table.concat(x:shape(), ', ') .. ')' end

local function check_x(self, x)
  if not T.is_tensor(x) or x:dim() ~= 3 or x:size(3) ~= self.C then
    error(string.format('%s %s: x has shape %s, expected (B, T, %d)', self.__name, self.name,
      T.is_tensor(x) and shape_str(x) or type(x), self.C), 3)
  end
end

-- x (B, T, C), mask (B, T) of 1/0 or nil, initial_state {h = (B, H), c = (B, H)} or nil.
-- Returns (B, T, H) with return_sequences (in processing order: reversed when
-- go_backwards, as Keras' bare LSTM), else (B, H): the last step's output. At a masked
-- step h and c carry over; its output is the previous output, or 0 with
-- zero_output_for_mask. The returned tensor is the module's and is overwritten next call.
function LSTM:forward(x, mask, initial_state)
  check_x(self, x)
  local B, Tn, H = x:size(1), x:size(2), self.H
  self.mask = mask
  self.h0 = initial_state and initial_state.h or nil
  self.c0 = initial_state and initial_state.c or nil
  if self.return_sequences then
    self.out = T.ensure(self.out, B, Tn, H)
  else
    self.out = T.ensure(self.out, B, H)
  end
  self.gates = T.ensure(self.gates, Tn, B, 4 * H)   -- post-activation, by step
  self.cs = T.ensure(self.cs, Tn, B, H)
  self.hs = T.ensure(self.hs, Tn, B, H)
  self.zx = T.ensure(self.zx, B, Tn, 4 * H)         -- forward: x @ kernel; backward: dz by time
  local fn = self.use_ref and core.lstm_forward_ref or core.lstm_forward
  fn(self.out, self.gates, self.cs, self.hs, self.zx, x, mask, self.kernel,
    self.recurrent_kernel, self.bias, self.h0, self.c0, self.go_backwards,
    self.return_sequences, self.zero_output_for_mask)
  return self.out
end

-- dout shaped like forward's output -> dx (B, T, C); adds into dkernel, drecurrent_kernel,
-- dbias. Uses the mask and initial state given to the last forward (whose caches it
-- reads, so call it right after forward on the same x). With an initial state,
-- self.dstate = {h = (B, H), c = (B, H)} holds its gradient.
function LSTM:backward(x, dout)
  check_x(self, x)
  local B, Tn, H = x:size(1), x:size(2), self.H
  assert(self.gates and self.gates:size(1) == Tn and self.gates:size(2) == B,
    'LSTM ' .. self.name .. ': backward before forward on this x')
  self.dx = T.ensure(self.dx, B, Tn, self.C)
  self.dz = T.ensure(self.dz, Tn, B, 4 * H)
  local dh0, dc0
  if self.h0 or self.c0 then
    self.dstate = {h = T.ensure(self.dstate and self.dstate.h, B, H),
                   c = T.ensure(self.dstate and self.dstate.c, B, H)}
    dh0, dc0 = self.dstate.h, self.dstate.c
  end
  local fn = self.use_ref and core.lstm_backward_ref or core.lstm_backward
  fn(self.dx, self.dkernel, self.drecurrent_kernel, self.dbias, dh0, dc0, self.dz, self.zx,
    dout, x, self.mask, self.kernel, self.recurrent_kernel, self.gates, self.cs, self.hs,
    self.h0, self.c0, self.go_backwards, self.return_sequences, self.zero_output_for_mask)
  return self.dx
end

-- One decoding step without a cache: x_t (B, C), state {h =, c =} (B, H) each or nil
-- (zeros). Returns h (B, H) and the new state {h =, c =} (fresh tensors each call).
function LSTM:step(x_t, state)
  if not T.is_tensor(x_t) or x_t:dim() ~= 2 or x_t:size(2) ~= self.C then
    error(string.format('%s %s: x_t has shape %s, expected (B, %d)', self.__name, self.name,
      T.is_tensor(x_t) and shape_str(x_t) or type(x_t), self.C), 2)
  end
  local B, H = x_t:size(1), self.H
  local h, c = T.zeros(B, H), T.zeros(B, H)
  self.step_gates = T.ensure(self.step_gates, B, 4 * H)   -- scratch only
  core.lstm_step(h, c, self.step_gates, x_t, state and state.h, state and state.c,
    self.kernel, self.recurrent_kernel, self.bias)
  return h, {h = h, c = c}
end

return LSTM
