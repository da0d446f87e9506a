-- MultiHeadAttention: "Attention Is All You Need" (section 3.2.2): query, key, value and
-- output projections (Dense D -> D) around csrc/nn/mha.c's per-head softmax(q k^T / sqrt(DH)) v,
-- with an optional causal mask (opts.causal) and a key-padding mask (1 real, 0 padding).
-- Not dropout on the attention weights, not incremental (cached keys) decoding.
local core = require 'luacap.core'
local T = require 'luacap.tensor'
local Module = require 'luacap.nn.Module'
local Dense = require 'luacap.nn.Dense'

local MHA = Module:extend('MultiHeadAttention')

-- MultiHeadAttention(D, heads, {causal = false, name = 'multi_head_attention'})
function MHA:init(D, heads, opts)
  opts = opts or {}
  assert(type(D) == 'number' and D >= 1 and D % 1 == 0,
    'MultiHeadAttention: width D must be a positive integer, got ' .. tostring(D))
  assert(type(heads) == 'number' and heads >= 1 and heads % 1 == 0 and D % heads == 0,
    'MultiHeadAttention: heads must be a positive integer dividing D = ' .. tostring(D) ..
    ', got ' .. tostring(heads))
  self.D, self.heads = D, heads
  self.causal = opts.causal == true
  self.name = opts.name or 'multi_head_attention'
  self.query = Dense(D, D, {name = 'query'})
  self.key = Dense(D, D, {name = 'key'})
  self.value = Dense(D, D, {name = 'value'})
  self.output = Dense(D, D, {name = 'output'})
  self.children = {self.query, self.key, self.value, self.output}
  self.named_children = {{'query', self.query}, {'key', self.key}, {'value', self.value},
    {'output', self.output}}
end

function MHA:reset()
  for _, c in ipairs(self.children) do c:reset() end
  return self
end

local function inputs(self, qkv, level)
  if type(qkv) ~= 'table' or not T.is_tensor(qkv[1]) or not T.is_tensor(qkv[2]) then
    error(string.format('%s %s: expected {xq (B, Tq, D), xkv (B, Tk, D)}', self.__name,
      self.name), level + 1)
  end
  return qkv[1], qkv[2]
end

-- {xq (B, Tq, D), xkv (B, Tk, D)}, key_mask (B, Tk) or nil -> out (B, Tq, D).
-- self.probs (B, heads, Tq, Tk) stays readable until the next forward.
function MHA:forward(qkv, key_mask)
  local xq, xkv = inputs(self, qkv, 2)
  if xq:dim() ~= 3 or xkv:dim() ~= 3 then
    error(string.format('%s %s: xq and xkv must be (B, Tq, D) and (B, Tk, D)', self.__name,
      self.name), 2)
  end
  local B, Tq, Tk = xq:size(1), xq:size(2), xkv:size(2)
  self.q = self.query:forward(xq)
  self.k = self.key:forward(xkv)
  self.v = self.value:forward(xkv)
  self.ctx = T.ensure(self.ctx, B, Tq, self.D)
  self.probs = T.ensure(self.probs, B, self.heads, Tq, Tk)
  local fn = self.use_ref and core.mha_forward_ref or core.mha_forward
  fn(self.ctx, self.probs, self.q, self.k, self.v, key_mask, self.heads, self.causal)
  self.out = self.output:forward(self.ctx)
  return self.out
end

-- dout (B, Tq, D) -> {dxq (B, Tq, D), dxkv (B, Tk, D)}; adds into every weight gradient.
-- For self-attention (xq == xkv) the caller adds the two.
function MHA:backward(qkv, dout)
  local xq, xkv = inputs(self, qkv, 2)
  local dctx = self.output:backward(self.ctx, dout)
  self.dq = T.ensure(self.dq, xq:size(1), xq:size(2), self.D)
  self.dk = T.ensure(self.dk, xkv:size(1), xkv:size(2), self.D)
  self.dv = T.ensure(self.dv, xkv:size(1), xkv:size(2), self.D)
  core.mha_backward(self.dq, self.dk, self.dv, dctx, self.probs, self.q, self.k, self.v,
    self.heads)
  local dxq = self.query:backward(xq, self.dq)
  self.dxkv = T.ensure(self.dxkv, xkv:size(1), xkv:size(2), self.D)
  self.dxkv:copy(self.key:backward(xkv, self.dk)):add(self.value:backward(xkv, self.dv))
  return {dxq, self.dxkv}
end

return MHA
