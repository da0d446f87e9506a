-- TransformerDecoderLayer: one post-norm decoder block of "Attention Is All You Need" (3.1):
--   x1 = LN1(x  + Drop(SelfAttn(x, x; causal, key-padding mask)))
--   x2 = LN2(x1 + Drop(CrossAttn(x1, memory)))
--   x3 = LN3(x2 + Drop(Dense(D)(Dense(ffn, relu)(x2))))
-- Not pre-norm, no incremental decoding cache: every call sees the whole (B, T, D) prefix.
local T = require 'luacap.tensor'
local Module = require 'luacap.nn.Module'
local Dense = require 'luacap.nn.Dense'
local Dropout = require 'luacap.nn.Dropout'
local LayerNorm = require 'luacap.nn.LayerNorm'
local MHA = require 'luacap.nn.MultiHeadAttention'

local Layer = Module:extend('TransformerDecoderLayer')

local NAMES = {'self_attn', 'ln1', 'cross_attn', 'ln2', 'ffn1', 'ffn2', 'ln3'}

-- TransformerDecoderLayer(D, heads, ffn, {dropout = 0.1, eps = 1e-5, name = 'decoder_layer'})
function Layer:init(D, heads, ffn, opts)
  opts = opts or {}
  self.D, self.heads, self.ffn = D, heads, ffn
  self.name = opts.name or 'decoder_layer'
  local p = opts.dropout or 0.1
  self.self_attn = MHA(D, heads, {causal = true, name = 'self_attn'})
  self.cross_attn = MHA(D, heads, {name = 'cross_attn'})
  self.ln1 = LayerNorm(D, {eps = opts.eps, name = 'ln1'})
  self.ln2 = LayerNorm(D, {eps = opts.eps, name = 'ln2'})
  self.ln3 = LayerNorm(D, {eps = opts.eps, name = 'ln3'})
  self.ffn1 = Dense(D, ffn, {activation = 'relu', name = 'ffn1'})
  self.ffn2 = Dense(ffn, D, {name = 'ffn2'})
  self.drop1, self.drop2, self.drop3 = Dropout(p), Dropout(p), Dropout(p)
  self.children = {self.self_attn, self.drop1, self.ln1, self.cross_attn, self.drop2, self.ln2,
    self.ffn1, self.ffn2, self.drop3, self.ln3}
  self.named_children = {}
  for i, name in ipairs(NAMES) do self.named_children[i] = {name, self[name]} end
end

-- out = a + b into a buffer of our own
local function sum_into(buf, a, b)
  buf = T.ensure(buf, a:size(1), a:size(2), a:size(3))
  return buf:copy(a):add(b)
end

local function inputs(self, xm)
  if type(xm) ~= 'table' or not T.is_tensor(xm[1]) or not T.is_tensor(xm[2]) then
    error(string.format('%s %s: expected {x (B, T, D), memory (B, M, D)}', self.__name,
      self.name), 3)
  end
  return xm[1], xm[2]
end

-- {x (B, T, D), memory (B, M, D)}, key_mask (B, T) 1/0 or nil -> out (B, T, D)
function Layer:forward(xm, key_mask)
  local x, mem = inputs(self, xm)
  self.a = self.self_attn:forward({x, x}, key_mask)
  self.r1 = sum_into(self.r1, x, self.drop1:forward(self.a))
  self.x1 = self.ln1:forward(self.r1)
  self.c = self.cross_attn:forward({self.x1, mem})
  self.r2 = sum_into(self.r2, self.x1, self.drop2:forward(self.c))
  self.x2 = self.ln2:forward(self.r2)
  self.f1 = self.ffn1:forward(self.x2)
  self.f2 = self.ffn2:forward(self.f1)
  self.r3 = sum_into(self.r3, self.x2, self.drop3:forward(self.f2))
  self.out = self.ln3:forward(self.r3)
  return self.out
end

-- dout (B, T, D) -> {dx (B, T, D), dmemory (B, M, D)}; adds into every weight gradient.
-- Each residual sum sends its gradient down both of its branches.
function Layer:backward(xm, dout)
  local x, mem = inputs(self, xm)
  local dr3 = self.ln3:backward(self.r3, dout)
  local df2 = self.drop3:backward(self.f2, dr3)
  local dx2_ffn = self.ffn1:backward(self.x2, self.ffn2:backward(self.f1, df2))
  self.dx2 = sum_into(self.dx2, dr3, dx2_ffn)
  local dr2 = self.ln2:backward(self.r2, self.dx2)
  local dc = self.drop2:backward(self.c, dr2)
  local dcross = self.cross_attn:backward({self.x1, mem}, dc)
  self.dx1 = sum_into(self.dx1, dr2, dcross[1])
  local dr1 = self.ln1:backward(self.r1, self.dx1)
  local da = self.drop1:backward(self.a, dr1)
  local dself = self.self_attn:backward({x, x}, da)
  self.dx = sum_into(self.dx, dr1, dself[1]):add(dself[2])
  return {self.dx, dcross[2]}
end

return Layer
