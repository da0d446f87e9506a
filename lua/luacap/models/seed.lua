-- The notebook's captioner: a BiLSTM image branch and a BiLSTM caption branch joined by
-- dot-product attention, then an LSTM decoder that predicts the next word of a prefix.
-- Written out by hand (forward in order, backward in reverse), no autograd; sizes default
-- to the notebook's (Keras counts 15,122,049 parameters at vocab 8485, max_len 35).
local nn = require 'luacap.nn'
local Module = require 'luacap.nn.Module'
local luacap_core = require 'luacap.core'
local tensor = require 'luacap.tensor'
local seed_decode = require 'luacap.models.seed_decode'
local seed_shared = require 'luacap.models.seed_shared'

local Seed = Module:extend('SeedCaptioner')

Seed.defaults = {
  feat_dim = 4096,     -- image feature width (VGG16 fc2)
  img_dense = 512,     -- Dense(512, relu) on the features
  embed_dim = 300,     -- Embedding width
  units = 256,         -- LSTM units per direction of both BiLSTMs
  dec_units = nil,     -- decoder LSTM units (default 2 * units, as the notebook)
  dec_dense = 512,     -- Dense(512, relu) after the decoder
  dropout = 0.5,       -- all three Dropout layers
  decoder = 'lstm',    -- the decoder RNN: 'lstm' (the notebook's) or 'gru' (its extension)
}

local function with_defaults(cfg)
  local c = {}
  for k, v in pairs(Seed.defaults) do c[k] = v end
  for k, v in pairs(cfg or {}) do c[k] = v end
  if not c.vocab_size then error("seed model: missing required option 'vocab_size'", 3) end
  if not c.max_len then error("seed model: missing required option 'max_len'", 3) end
  c.dec_units = c.dec_units or 2 * c.units
  if c.decoder ~= 'lstm' and c.decoder ~= 'gru' then
    error("seed model: decoder must be 'lstm' or 'gru', got '" .. tostring(c.decoder) .. "'", 3)
  end
  c.model = 'seed'
  return c
end

-- cfg: vocab_size, max_len (required) and any of Seed.defaults.
function Seed:init(cfg)
  local c = with_defaults(cfg)
  self.cfg = c
  local H2 = 2 * c.units
  -- image branch: (B, F) -> (B, T, 2U)
  self.img_drop = nn.Dropout(c.dropout)
  self.img_dense = nn.Dense(c.feat_dim, c.img_dense, {activation = 'relu'})
  self.repeat_vec = nn.RepeatVector(c.max_len)
  self.img_lstm = nn.Bidirectional(c.img_dense, c.units, {return_sequences = true})
  -- caption branch: (B, T) ids -> (B, T, 2U), zeros at padded steps
  self.embed = nn.Embedding(c.vocab_size, c.embed_dim, {mask_zero = true})
  self.cap_drop = nn.Dropout(c.dropout)
  self.cap_lstm = nn.Bidirectional(c.embed_dim, c.units, {return_sequences = true})
  -- attention and decoder
  self.attn = nn.Attention()
  self.concat = nn.Concat()
  -- the decoder RNN keeps the field name dec_lstm; its parameters are named dec_lstm.* or
  -- dec_gru.*, so a file of the other kind fails to load with a message naming the weight
  local RNN = c.decoder == 'gru' and nn.GRU or nn.LSTM
  self.dec_lstm = RNN(2 * H2, c.dec_units, {return_sequences = false})
  local dec_name = c.decoder == 'gru' and 'dec_gru' or 'dec_lstm'
  self.dec_drop = nn.Dropout(c.dropout)
  self.dec_dense = nn.Dense(c.dec_units, c.dec_dense, {activation = 'relu'})
  self.out = nn.Dense(c.dec_dense, c.vocab_size)
  -- named children, in Keras' layer order (parameter names, summary, checkpoints)
  self.named_children = {
    {'img_dense', self.img_dense}, {'embed', self.embed}, {'img_lstm', self.img_lstm},
    {'cap_lstm', self.cap_lstm}, {dec_name, self.dec_lstm},
    {'dec_dense', self.dec_dense}, {'out', self.out},
  }
  self.children = {self.img_drop, self.img_dense, self.repeat_vec, self.img_lstm, self.embed,
    self.cap_drop, self.cap_lstm, self.attn, self.concat, self.dec_lstm, self.dec_drop,
    self.dec_dense, self.out}
end

-- Image branch alone: feats (B, F) -> image sequence (B, T, 2U). Decoding computes it
-- once per image and reuses it for every step.
function Seed:forward_image(feats)
  self.fe1 = self.img_drop:forward(feats)
  self.fe2 = self.img_dense:forward(self.fe1)
  -- RepeatVector(T) then the BiLSTM, fused: the repeated input's projection is computed
  -- once per image instead of once per step (repeat_vec stays for the summary's rows)
  self.fe4 = self.img_lstm:forward_repeated(self.fe2, self.cfg.max_len)
  return self.fe4
end

-- Caption branch, attention and decoder: image sequence (B, T, 2U), ids (B, T) -> logits (B, V).
function Seed:forward_caption(fe4, ids)
  self.shared = false
  self.se1 = self.embed:forward(ids)
  self.mask = self.embed.mask
  self.se2 = self.cap_drop:forward(self.se1)
  self.se3 = self.cap_lstm:forward(self.se2, self.mask)
  return self:forward_decoder(fe4)
end

-- The step-wise decoding interface (eval/decode.lua), native and incremental: a prefix
-- one token longer keeps what did not change (models/seed_decode.lua). The logits are
-- forward_caption's on the pre-padded prefixes.
function Seed:decode_start(feats) return seed_decode.start(self, feats) end
function Seed:decode_step(st, ids) return seed_decode.step(self, st, ids) end
function Seed:decode_select(st, rows) return seed_decode.select(self, st, rows) end

-- Attention, concatenation and decoder on self.se3 (B, T, 2U), self.mask, fe4 (B, T, 2U).
function Seed:forward_decoder(fe4)
  self.fe4_in = fe4
  -- the decoder never reads a padded step: attention skips those query rows (context 0)
  self.ctx = self.attn:forward({self.se3, fe4}, self.mask)
  self.dec_in = self.concat:forward({self.ctx, self.se3})
  return self:forward_output(self.dec_lstm:forward(self.dec_in, self.mask))
end

-- The decoder's output h (B, D) -> logits (B, V): Dropout, Dense(relu), the output Dense.
function Seed:forward_output(h)
  self.h = h
  self.h2 = self.dec_drop:forward(self.h)
  self.d1 = self.dec_dense:forward(self.h2)
  self.logits = self.out:forward(self.d1)
  return self.logits
end

-- feats (B, F), ids (B, T) pre-padded prefixes -> logits (B, V) for the next word.
function Seed:forward(feats, ids)
  self.shared, self.feats, self.ids = false, feats, ids
  return self:forward_caption(self:forward_image(feats), ids)
end

-- Shared work (--share-image-branch). Pairs of one image share its image branch, and a
-- pair whose prefix begins a longer prefix of the same image in the batch (the same
-- caption, or one that starts alike) shares that representative's embedded tokens and
-- forward caption states: rep[b] (1-based) is pair b's representative among the reps'
-- pair numbers, shift[b] its steps of delay. img (B) maps pairs to image rows.
function Seed.prefix_groups(ids, img)
  local B, Tn = ids:size(1), ids:size(2)
  local flat, len, order = ids:flat(), {}, {}
  for b = 1, B do
    local n = 0
    for t = Tn, 1, -1 do if flat[(b - 1) * Tn + t] ~= 0 then n = Tn - t + 1 else break end end
    len[b], order[b] = n, b
  end
  table.sort(order, function(a, b) return len[a] > len[b] or (len[a] == len[b] and a < b) end)
  local reps, rep, shift = {}, {}, {}
  for _, b in ipairs(order) do
    local k, o = len[b], (b - 1) * Tn + Tn - len[b]   -- pair b's tokens: flat[o + 1 .. o + k]
    for r, a in ipairs(reps) do
      if img[a] == img[b] then
        local oa, same = (a - 1) * Tn + Tn - len[a], true
        for j = 1, k do if flat[oa + j] ~= flat[o + j] then same = false; break end end
        if same then rep[b], shift[b] = r, len[a] - k; break end
      end
    end
    if not rep[b] then reps[#reps + 1] = b; rep[b], shift[b] = #reps, 0 end
  end
  return reps, rep, shift
end

-- feats_u (U, F) one row per image, img (B) 1-based image row of each pair, ids (B, T)
-- -> logits (B, V). With dropout off it equals forward(feats_u[img], ids); in training
-- each image gets one feature dropout mask and each representative prefix one embedding
-- mask. backward(dlogits) then returns dfeats_u (U, F).
function Seed:forward_shared(feats_u, img, ids)
  self.shared, self.feats, self.img = true, feats_u, img
  local reps, rep, shift = Seed.prefix_groups(ids, img)
  local fe4u = self:forward_image(feats_u)                               -- (U, T, 2U)
  self.fe4_pairs = tensor.ensure(self.fe4_pairs, ids:size(1), fe4u:size(2), fe4u:size(3))
  luacap_core.gather(self.fe4_pairs, fe4u, img)                          -- (B, T, 2U)
  self.ids_r = tensor.ensure(self.ids_r, #reps, ids:size(2))
  luacap_core.gather(self.ids_r, ids, reps)                              -- (R, T)
  self.se1 = self.embed:forward(self.ids_r)
  self.se2 = self.cap_drop:forward(self.se1)
  self.se3 = self.cap_lstm:forward_prefixes(self.se2, self.embed.mask, rep, shift)
  self.mask = self.cap_lstm.pair_mask
  -- an LSTM decoder reads the context through each image's projected rows once per image
  -- (models/seed_shared.lua); a GRU decoder runs as in the exact mode
  self.factored = self.cfg.decoder == 'lstm'
  if self.factored then
    return self:forward_output(seed_shared.forward(self, self.se3, fe4u, self.fe4_pairs, img,
      self.mask))
  end
  return self:forward_decoder(self.fe4_pairs)
end

-- dlogits (B, V) -> dfeats (B, F); adds into every parameter gradient. With
-- self.no_input_grad (fit sets it when no encoder trains) dfeats is not computed: nil.
function Seed:backward(dlogits)
  local dd1 = self.out:backward(self.d1, dlogits)
  self:grads_final(self.out)         -- (data-parallel fit starts their allreduce: Module.lua)
  local dh2 = self.dec_dense:backward(self.h2, dd1)
  self:grads_final(self.dec_dense)
  local dh = self.dec_drop:backward(self.h, dh2)
  local dse3, dfe4, dfe4u, dcap
  if self.shared and self.factored then
    dse3, dfe4, dfe4u, dcap = seed_shared.backward(self, dh)
    self:grads_final(self.dec_lstm)
  else
    local ddec_in = self.dec_lstm:backward(self.dec_in, dh)
    self:grads_final(self.dec_lstm)
    local dcat = self.concat:backward({self.ctx, self.se3}, ddec_in)
    local dattn = self.attn:backward({self.se3, self.fe4_in}, dcat[1])
    -- se3 feeds both the attention query and the concatenation: gradients add (into the
    -- attention's dq buffer, which its next backward overwrites)
    dse3, dfe4 = dattn[1]:add(dcat[2]), dattn[2]
  end
  local dse2 = self.shared and self.cap_lstm:backward_prefixes(dse3, dcap)
    or self.cap_lstm:backward(self.se2, dse3)
  self:grads_final(self.cap_lstm)
  local dse1 = self.cap_drop:backward(self.se1, dse2)
  self.embed:backward(self.shared and self.ids_r or self.ids, dse1)
  self:grads_final(self.embed)
  if self.shared then   -- fe4 = fe4u[img]  =>  dfe4u = scatter-add of the pairs' gradients
    self.dfe4u = tensor.ensure(self.dfe4u, self.fe2:size(1), dfe4:size(2), dfe4:size(3))
    if dfe4u then self.dfe4u:copy(dfe4u) else self.dfe4u:zero() end   -- (the decoder's part)
    luacap_core.scatter_add(self.dfe4u, dfe4, self.img)
    dfe4 = self.dfe4u
  end
  local dfe2 = self.img_lstm:backward(self.fe2, dfe4)
  self:grads_final(self.img_lstm)
  local dfe1 = self.img_dense:backward(self.fe1, dfe2, self.no_input_grad)
  self:grads_final(self.img_dense)
  if self.no_input_grad then return nil end
  return self.img_drop:backward(self.feats, dfe1)
end

-- Keras-like table of layers, output shapes and parameter counts; returns the text.
function Seed:summary(print_fn)
  local c = self.cfg
  local T, U2 = c.max_len, 2 * c.units
  local rows = {
    {'image_features (Input)', string.format('(None, %d)', c.feat_dim), 0},
    {'dropout (Dropout)', string.format('(None, %d)', c.feat_dim), 0},
    {'caption_input (Input)', string.format('(None, %d)', T), 0},
    {'dense (Dense, relu)', string.format('(None, %d)', c.img_dense), self.img_dense:num_params()},
    {'embedding (Embedding)', string.format('(None, %d, %d)', T, c.embed_dim), self.embed:num_params()},
    {'repeat_vector (RepeatVector)', string.format('(None, %d, %d)', T, c.img_dense), 0},
    {'dropout_1 (Dropout)', string.format('(None, %d, %d)', T, c.embed_dim), 0},
    {'bidirectional (Bidirectional)', string.format('(None, %d, %d)', T, U2), self.img_lstm:num_params()},
    {'bidirectional_1 (Bidirectional)', string.format('(None, %d, %d)', T, U2), self.cap_lstm:num_params()},
    {'attention_scores (Dot)', string.format('(None, %d, %d)', T, T), 0},
    {'attention_weights (Activation)', string.format('(None, %d, %d)', T, T), 0},
    {'context_vector (Lambda)', string.format('(None, %d, %d)', T, U2), 0},
    {'decoder_concat (Concatenate)', string.format('(None, %d, %d)', T, 2 * U2), 0},
    {c.decoder == 'gru' and 'gru (GRU)' or 'lstm (LSTM)', string.format('(None, %d)', c.dec_units),
      self.dec_lstm:num_params()},
    {'dropout_2 (Dropout)', string.format('(None, %d)', c.dec_units), 0},
    {'dense_1 (Dense, relu)', string.format('(None, %d)', c.dec_dense), self.dec_dense:num_params()},
    {'word_predictions (Dense)', string.format('(None, %d)', c.vocab_size), self.out:num_params()},
  }
  return Module.summary_table('seed_captioner', rows, self:num_params(), print_fn)
end

return Seed
