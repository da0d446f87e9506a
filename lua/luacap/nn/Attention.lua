-- Attention: the notebook's dot-product attention, on csrc/nn/attention.c:
--   weights = softmax(Dot(axes=[2, 2])(q, v)) over v's steps;  context = weights @ v.
-- No parameters, no 1/sqrt(D) scaling, no mask on v (Keras' Dot drops masks). An optional
-- query mask skips the rows nobody reads (they get context 0; see csrc/nn/attention.c).
local core = require 'luacap.core'
local T = require 'luacap.tensor'
local Module = require 'luacap.nn.Module'

local Attention = Module:extend('Attention')

function Attention:init(opts)
  opts = opts or {}
  self.name = opts.name or 'attention'
  self.use_ref = false   -- specs: true runs the plain-loop kernels
end

-- {q, v} of a method's caller; depth: the helpers between that method and this one
local function inputs(self, qv, depth)
  if type(qv) ~= 'table' or not T.is_tensor(qv[1]) or not T.is_tensor(qv[2]) then
    error(string.format('%s %s: expected {q (B, Tq, D), v (B, Tv, D)}', self.__name, self.name),
      3 + (depth or 0))
  end
  return qv[1], qv[2]
end

-- inputs, both 3-d (the forwards' check; the error names the forward's caller)
local function sequences(self, qv)
  local q, v = inputs(self, qv, 1)
  if q:dim() ~= 3 or v:dim() ~= 3 then
    error(string.format('%s %s: q and v must be (B, Tq, D) and (B, Tv, D)', self.__name, self.name), 3)
  end
  return q, v
end

-- dq, dv from dscores, the scratch (dctx given) or the weights' gradient (dctx nil).
local function run_backward(self, q, v, dscores, dctx)
  self.dq = T.ensure(self.dq, q:size(1), q:size(2), q:size(3))
  self.dv = T.ensure(self.dv, v:size(1), v:size(2), v:size(3))
  local fn = self.use_ref and core.attention_backward_ref or core.attention_backward
  fn(self.dq, self.dv, dscores, dctx, q, v, self.weights, self.qmask)
  return {self.dq, self.dv}
end

-- {q (B, Tq, D), v (B, Tv, D)} -> context (B, Tq, D). self.weights (B, Tq, Tv) stays
-- readable until the next forward. qmask (B, Tq) of 1/0 or nil: rows with 0 get context
-- and weights 0 and no gradient (for a consumer that never reads them, as a masked LSTM).
function Attention:forward(qv, qmask)
  local q, v = sequences(self, qv)
  local B, Tq, Tv, D = q:size(1), q:size(2), v:size(2), q:size(3)
  self.out = T.ensure(self.out, B, Tq, D)
  self.weights = T.ensure(self.weights, B, Tq, Tv)
  local fn = self.use_ref and core.attention_forward_ref or core.attention_forward
  self.qmask = qmask
  fn(self.out, self.weights, q, v, qmask)
  return self.out
end

-- The weights alone, {q, v} -> weights (B, Tq, Tv) as forward's (self.weights), for a
-- caller that multiplies them by something else than v; backward_weights follows.
function Attention:forward_weights(qv, qmask)
  local q, v = sequences(self, qv)
  self.weights = T.ensure(self.weights, q:size(1), q:size(2), v:size(2))
  self.qmask = qmask
  if self.use_ref then
    self.out = T.ensure(self.out, q:size(1), q:size(2), q:size(3))
    core.attention_forward_ref(self.out, self.weights, q, v, qmask)
  else
    core.attention_weights(self.weights, q, v, qmask)
  end
  return self.weights
end

-- dcontext (B, Tq, D) -> {dq (B, Tq, D), dv (B, Tv, D)}, from the last forward's weights.
function Attention:backward(qv, dctx)
  local q, v = inputs(self, qv)
  self.dscores = T.ensure(self.dscores, q:size(1), q:size(2), v:size(2))
  return run_backward(self, q, v, self.dscores, dctx)
end

-- The same from dweights (B, Tq, Tv), the gradient of the weights of the last forward,
-- for a caller that multiplied them by something of its own instead of reading the
-- context: {dq, dv}, dv without the context's w^T @ dctx term. dweights is overwritten.
function Attention:backward_weights(qv, dweights)
  local q, v = inputs(self, qv)
  return run_backward(self, q, v, dweights, nil)
end

return Attention
