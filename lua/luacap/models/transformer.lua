-- The captioner with a Transformer decoder (the notebook's "replace LSTM with GRU/Transformer"
-- extension), written out by hand (forward in order, backward in reverse), no autograd:
--   image feats (B, F) -> Dropout -> Dense(M*D, relu) -> reshape: a memory of M tokens (B, M, D)
--   caption ids (B, T), pre-padded -> Embedding(V, D, mask_zero) * sqrt(D) + sinusoids
--     -> Dropout -> N post-norm decoder layers ("Attention Is All You Need", Vaswani et al.
--     2017): causal self-attention with a key-padding mask from id 0, cross-attention to the
--     memory, a relu FFN, each with dropout, residual and LayerNorm
--   -> the output at the LAST position (the next word of the prefix, as the notebook's model
--     predicts one word from a pre-padded prefix) -> Dense(V) logits.
-- Not an encoder-decoder over image regions (the features are one vector), no cached keys
-- for decoding: each step reruns the whole prefix, as the seed model does.
local nn = require 'luacap.nn'
local T = require 'luacap.tensor'
local Module = require 'luacap.nn.Module'

local Transformer = Module:extend('TransformerCaptioner')

Transformer.defaults = {
  feat_dim = 4096,     -- image feature width (VGG16 fc2)
  d_model = 256,       -- D, the width of every token
  heads = 4,           -- attention heads (D divisible by heads)
  layers = 2,          -- decoder layers
  ffn = 512,           -- hidden width of the position-wise FFN
  dropout = 0.1,       -- every Dropout (features, embeddings, each residual branch)
  mem_tokens = 4,      -- M, image memory tokens: Dense(F, M*D) reshaped to (M, D)
  eps = 1e-5,          -- LayerNorm epsilon (see nn/LayerNorm.lua for why not Keras' 1e-3)
}

local function with_defaults(cfg)
  local c = {}
  for k, v in pairs(Transformer.defaults) do c[k] = v end
  for k, v in pairs(cfg or {}) do c[k] = v end
  if not c.vocab_size then error("transformer model: missing required option 'vocab_size'", 3) end
  if not c.max_len then error("transformer model: missing required option 'max_len'", 3) end
  if c.d_model % c.heads ~= 0 then
    error(string.format('transformer model: d_model %d is not divisible by heads %d', c.d_model,
      c.heads), 3)
  end
  c.model = 'transformer'
  return c
end

-- cfg: vocab_size, max_len (required) and any of Transformer.defaults.
function Transformer:init(cfg)
  local c = with_defaults(cfg)
  self.cfg = c
  local D = c.d_model
  -- image branch: (B, F) -> memory (B, M, D)
  self.img_drop = nn.Dropout(c.dropout)
  self.img_dense = nn.Dense(c.feat_dim, c.mem_tokens * D, {activation = 'relu'})
  -- caption branch: (B, T) ids -> (B, T, D)
  self.embed = nn.Embedding(c.vocab_size, D, {mask_zero = true})
  self.pos = nn.PositionalEncoding(D, {scale = math.sqrt(D)})
  self.emb_drop = nn.Dropout(c.dropout)
  self.dec = {}
  for l = 1, c.layers do
    self.dec[l] = nn.TransformerDecoderLayer(D, c.heads, c.ffn,
      {dropout = c.dropout, eps = c.eps, name = 'dec' .. l})
  end
  self.out = nn.Dense(D, c.vocab_size)
  -- named children: parameter names, summary, checkpoints
  self.named_children = {{'img_dense', self.img_dense}, {'embed', self.embed}}
  for l = 1, c.layers do self.named_children[#self.named_children + 1] = {'dec' .. l, self.dec[l]} end
  self.named_children[#self.named_children + 1] = {'out', self.out}
  self.children = {self.img_drop, self.img_dense, self.embed, self.pos, self.emb_drop}
  for l = 1, c.layers do self.children[#self.children + 1] = self.dec[l] end
  self.children[#self.children + 1] = self.out
end

-- Image branch alone: feats (B, F) -> memory (B, M, D). Decoding computes it once per image.
function Transformer:forward_image(feats)
  local c = self.cfg
  self.fe1 = self.img_drop:forward(feats)
  self.fe2 = self.img_dense:forward(self.fe1)
  self.mem = self.fe2:reshape(feats:size(1), c.mem_tokens, c.d_model)
  return self.mem
end

-- 1-based rows of the (B*T, D) view that hold each sequence's last position
local function last_rows(B, Tn)
  local rows = {}
  for b = 1, B do rows[b] = b * Tn end
  return rows
end

-- memory (B, M, D), ids (B, T) pre-padded prefixes -> logits (B, V) for the next word.
function Transformer:forward_caption(mem, ids)
  local B, Tn, D = ids:size(1), ids:size(2), self.cfg.d_model
  self.mem_in, self.ids = mem, ids
  self.e = self.embed:forward(ids)
  self.mask = self.embed.mask                       -- (B, T): 0 at padding
  self.p = self.pos:forward(self.e)
  local h = self.emb_drop:forward(self.p)
  self.h_in = {}
  for l, layer in ipairs(self.dec) do
    self.h_in[l] = h
    h = layer:forward({h, mem}, self.mask)
  end
  self.h = h
  self.rows = last_rows(B, Tn)
  self.last = T.ensure(self.last, B, D)
  require('luacap.core').gather(self.last, h:reshape(B * Tn, D), self.rows)
  self.logits = self.out:forward(self.last)
  return self.logits
end

-- feats (B, F), ids (B, T) -> logits (B, V).
function Transformer:forward(feats, ids)
  self.feats = feats
  return self:forward_caption(self:forward_image(feats), ids)
end

-- dlogits (B, V) -> dfeats (B, F); adds into every parameter gradient.
function Transformer:backward(dlogits)
  local c = self.cfg
  local B, Tn, D = self.ids:size(1), self.ids:size(2), c.d_model
  local dlast = self.out:backward(self.last, dlogits)
  self:grads_final(self.out)        -- (data-parallel fit starts their allreduce: Module.lua)
  -- only the last position reached the logits: its gradient, zeros elsewhere
  self.dh = T.ensure_zeroed(self.dh, B, Tn, D)
  require('luacap.core').scatter_add(self.dh:reshape(B * Tn, D), dlast, self.rows)
  self.dmem = T.ensure_zeroed(self.dmem, B, c.mem_tokens, D)
  local dh = self.dh
  for l = #self.dec, 1, -1 do
    local g = self.dec[l]:backward({self.h_in[l], self.mem_in}, dh)
    dh = g[1]
    self.dmem:add(g[2])               -- every layer reads the memory: gradients add
    self:grads_final(self.dec[l])
  end
  local dp = self.emb_drop:backward(self.p, dh)
  self.embed:backward(self.ids, self.pos:backward(self.e, dp))
  self:grads_final(self.embed)
  local dfe1 = self.img_dense:backward(self.fe1, self.dmem:reshape(B, c.mem_tokens * D),
    self.no_input_grad)
  self:grads_final(self.img_dense)
  if self.no_input_grad then return nil end   -- fit with frozen features: no dfeats
  return self.img_drop:backward(self.feats, dfe1)
end

-- Keras-like table of layers, output shapes and parameter counts; returns the text.
function Transformer:summary(print_fn)
  local c = self.cfg
  local T_, D, M = c.max_len, c.d_model, c.mem_tokens
  local rows = {
    {'image_features (Input)', string.format('(None, %d)', c.feat_dim), 0},
    {'dropout (Dropout)', string.format('(None, %d)', c.feat_dim), 0},
    {'dense (Dense, relu)', string.format('(None, %d)', M * D), self.img_dense:num_params()},
    {'image_memory (Reshape)', string.format('(None, %d, %d)', M, D), 0},
    {'caption_input (Input)', string.format('(None, %d)', T_), 0},
    {'embedding (Embedding)', string.format('(None, %d, %d)', T_, D), self.embed:num_params()},
    {'positional_encoding (x sqrt(D) + sin)', string.format('(None, %d, %d)', T_, D), 0},
    {'dropout_1 (Dropout)', string.format('(None, %d, %d)', T_, D), 0},
  }
  for l, layer in ipairs(self.dec) do
    rows[#rows + 1] = {string.format('dec%d (TransformerDecoderLayer)', l),
      string.format('(None, %d, %d)', T_, D), layer:num_params()}
  end
  rows[#rows + 1] = {'last_position (Lambda)', string.format('(None, %d)', D), 0}
  rows[#rows + 1] = {'word_predictions (Dense)', string.format('(None, %d)', c.vocab_size),
    self.out:num_params()}
  return Module.summary_table('transformer_captioner', rows, self:num_params(), print_fn)
end

return Transformer
