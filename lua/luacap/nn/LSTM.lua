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
  self:check_count('in-features C', C)
  self:check_count('units H', H)
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

-- The 16 arguments of core.lstm_forward for x (B, T, C), or x (B, C) repeated over
-- `steps`, with the module's buffers sized for it.
local NARGS = 16
local function forward_args(self, x, mask, steps, initial_state, projected)
  local Tn
  if projected then
    self:check_rows(x, 'x', 3, 4 * self.H)
    Tn = x:size(2)
  elseif steps then
    self:check_rows(x, 'x', 2, self.C)
    assert(type(steps) == 'number' and steps >= 1 and steps % 1 == 0,
      'LSTM ' .. self.name .. ': steps must be a positive integer, got ' .. tostring(steps))
    Tn = steps
  else
    self:check_rows(x, 'x', 3, self.C)
    Tn = x:size(2)
  end
  local B, H = x:size(1), self.H
  self.mask = mask
  self.steps = steps
  self.h0 = initial_state and initial_state.h or nil
  self.c0 = initial_state and initial_state.c or nil
  -- every element of these is written by each forward, so a smaller call may take a view
  -- of a larger one's buffers (see reserve)
  local ensure = T.ensure_capacity
  if self.return_sequences then
    self.out = ensure(self.out, B, Tn, H)
  else
    self.out = ensure(self.out, B, H)
  end
  self.gates = ensure(self.gates, Tn, B, 4 * H)     -- post-activation (fast path: compact)
  self.cs = ensure(self.cs, Tn, B, H)
  self.hs = ensure(self.hs, Tn, B, H)
  if steps then                                     -- forward: x @ kernel; backward: dz
    self.zx1 = ensure(self.zx1, B, 4 * H)
  else
    self.zx = ensure(self.zx, B, Tn, 4 * H)
  end
  self.ran_ref = self.use_ref
  self.projected = projected and x or nil
  return {self.out, self.gates, self.cs, self.hs, steps and self.zx1 or self.zx, x, mask,
    not projected and self.kernel or nil, self.recurrent_kernel, self.bias, self.h0, self.c0,
    self.go_backwards,
    self.return_sequences, self.zero_output_for_mask, steps}
end

-- Two calls' argument lists of n each (nil holes included) as one list of 2n values.
local function two_calls(a, b, n)
  for i = 1, n do a[n + i] = b[i] end
  return unpack(a, 1, 2 * n)
end

local function run_forward(self, args)
  local fn = self.use_ref and core.lstm_forward_ref or core.lstm_forward
  fn(unpack(args, 1, NARGS))
  return self.out
end

-- x (B, T, C), mask (B, T) of 1/0 or nil, initial_state {h = (B, H), c = (B, H)} or nil.
-- Returns (B, T, H) with return_sequences (in processing order: reversed when
-- go_backwards, as Keras' bare LSTM), else (B, H): the last step's output. At a masked
-- step h and c carry over; its output is the previous output, or 0 with
-- zero_output_for_mask. Masked steps cost nothing (only real (step, row) pairs are
-- computed). The returned tensor is the module's and is overwritten next call.
function LSTM:forward(x, mask, initial_state)
  return run_forward(self, forward_args(self, x, mask, nil, initial_state))
end

-- The same as forward(RepeatVector(steps):forward(x), mask, initial_state) for x (B, C),
-- without building the (B, steps, C) input: the input projection is computed once per
-- row. backward(x, dout) after it returns dx (B, C), the gradient summed over the steps.
function LSTM:forward_repeated(x, steps, mask, initial_state)
  return run_forward(self, forward_args(self, x, mask, steps, initial_state))
end

-- Sizes the forward buffers for up to B rows and Tn steps, so that later forwards within
-- that take views of them instead of fresh memory (decoding's prefix grows a step a call).
function LSTM:reserve(B, Tn)
  local H = self.H
  self.out = self.return_sequences and T.zeros(B, Tn, H) or T.zeros(B, H)
  self.gates, self.zx = T.zeros(Tn, B, 4 * H), T.zeros(B, Tn, 4 * H)
  self.cs, self.hs = T.zeros(Tn, B, H), T.zeros(Tn, B, H)
end

-- The same as forward(x, mask, initial_state) given zx = x @ kernel (B, T, 4H) instead of
-- x (the bias is still added here): decoding and the seed model's shared training
-- assemble zx from parts. backward_projected(dout) may follow.
function LSTM:forward_projected(zx, mask, initial_state)
  return run_forward(self, forward_args(self, zx, mask, nil, initial_state, true))
end

-- Two LSTMs' forwards at once, e.g. a BiLSTM's directions (core.lstm_forward_pair: on two
-- threads, one each): the same as la:forward(xa, ma) and lb:forward(xb, mb), or
-- forward_repeated(x, steps, mask) for both when steps is given, or with b_projected
-- lb:forward_projected(xb, mb) for the second. Returns both outputs.
function LSTM.forward_pair(la, xa, ma, lb, xb, mb, steps, b_projected)
  assert(not (steps and b_projected), 'LSTM.forward_pair: steps and b_projected exclude each other')
  local a, b = forward_args(la, xa, ma, steps), forward_args(lb, xb, mb, steps, nil, b_projected)
  if la.use_ref or lb.use_ref then return run_forward(la, a), run_forward(lb, b) end
  core.lstm_forward_pair(two_calls(a, b, NARGS))
  return la.out, lb.out
end

-- The 22 arguments of core.lstm_backward after the last forward, and the dx they fill.
local BNARGS = 22
local function backward_args(self, x, dout)
  local steps = self.steps
  if self.projected then
    assert(rawequal(x, self.projected), 'LSTM ' .. self.name
      .. ': after forward_projected the backward is backward_projected(dout)')
  elseif steps then
    assert(T.is_tensor(x) and x:dim() == 2 and x:size(2) == self.C, 'LSTM ' .. self.name
      .. ': backward after forward_repeated expects x (B, ' .. self.C .. ')')
  else
    self:check_rows(x, 'x', 3, self.C)
  end
  local B, Tn, H = x:size(1), steps or x:size(2), self.H
  assert(self.gates and self.gates:size(1) == Tn and self.gates:size(2) == B,
    'LSTM ' .. self.name .. ': backward before forward on this x')
  local C = self.projected and 4 * H or self.C
  assert(self.ran_ref == self.use_ref,
    'LSTM ' .. self.name .. ': use_ref changed between forward and backward')
  if steps then
    self.dx1 = T.ensure(self.dx1, B, C)
  else
    self.dx = T.ensure(self.dx, B, Tn, C)
  end
  self.dz = T.ensure(self.dz, Tn, B, 4 * H)
  local dh0, dc0
  if self.h0 or self.c0 then
    self.dstate = {h = T.ensure(self.dstate and self.dstate.h, B, H),
                   c = T.ensure(self.dstate and self.dstate.c, B, H)}
    dh0, dc0 = self.dstate.h, self.dstate.c
  end
  local dx = steps and self.dx1 or self.dx
  local kernel = not self.projected and self.kernel or nil
  return {dx, kernel and self.dkernel, self.drecurrent_kernel, self.dbias, dh0, dc0, self.dz,
    steps and self.zx1 or self.zx, dout, x, self.mask, kernel, self.recurrent_kernel,
    self.gates, self.cs, self.hs, self.h0, self.c0, self.go_backwards, self.return_sequences,
    self.zero_output_for_mask, steps}, dx
end

-- dout shaped like forward's output -> dx shaped like x (B, T, C), or (B, C) after
-- forward_repeated; adds into dkernel, drecurrent_kernel, dbias. Uses the mask and
-- initial state given to the last forward (whose caches it reads, so call it right after
-- forward on the same x). With an initial state, self.dstate = {h = (B, H), c = (B, H)}
-- holds its gradient.
function LSTM:backward(x, dout)
  local args, dx = backward_args(self, x, dout)
  local fn = self.use_ref and core.lstm_backward_ref or core.lstm_backward
  fn(unpack(args, 1, BNARGS))
  return dx
end

-- After forward_projected(zx, ...): dout -> dzx (B, T, 4H), the gradient of zx (0 at
-- masked steps); adds into drecurrent_kernel and dbias (the kernel is the caller's).
function LSTM:backward_projected(dout)
  assert(self.projected, 'LSTM ' .. self.name .. ': backward_projected before forward_projected')
  return self:backward(self.projected, dout)
end

-- Two LSTMs' backwards at once (core.lstm_backward_pair), each after its own forward:
-- the same as la:backward(xa, da) and lb:backward(xb, db). Returns both dx.
function LSTM.backward_pair(la, xa, da, lb, xb, db)
  if la.use_ref or lb.use_ref then return la:backward(xa, da), lb:backward(xb, db) end
  local a, dxa = backward_args(la, xa, da)
  local b, dxb = backward_args(lb, xb, db)
  core.lstm_backward_pair(two_calls(a, b, BNARGS))
  return dxa, dxb
end

-- One decoding step without a cache: x_t (B, C), state {h =, c =} (B, H) each or nil
-- (zeros). Returns h (B, H) and the new state {h =, c =} (fresh tensors each call).
function LSTM:step(x_t, state)
  self:check_rows(x_t, 'x_t', 2, self.C)
  local B, H = x_t:size(1), self.H
  local h, c = T.zeros(B, H), T.zeros(B, H)
  self.step_gates = T.ensure(self.step_gates, B, 4 * H)   -- scratch only
  core.lstm_step(h, c, self.step_gates, x_t, state and state.h, state and state.c,
    self.kernel, self.recurrent_kernel, self.bias)
  return h, {h = h, c = c}
end

return LSTM
