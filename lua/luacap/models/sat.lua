-- Show, Attend and Tell (Xu et al. 2015): an LSTM decoder with soft additive attention
-- over L image regions of D features, the gate beta, h0/c0 from the mean region, dropout
-- before the output layer and the doubly stochastic penalty lambda/(B L) sum_b sum_l
-- (1 - sum_t alpha_btl)^2. Teacher forcing on whole captions: forward(feats (B, L, D),
-- in_ids (B, T)) -> logits (B, T, V), padding (id 0) masked. Written out by hand, no
-- autograd; the step kernels are csrc/nn/additive_attention.c and lstm.c's cached cell.
local core = require 'luacap.core'
local T = require 'luacap.tensor'

local unpack = table.unpack or unpack
local nn = require 'luacap.nn'
local Module = require 'luacap.nn.Module'

local Sat = Module:extend('SatCaptioner')

Sat.defaults = {
  regions = nil,        -- L (required unless feats tell): regions of the conv map
  feat_dim = 512,       -- D: features per region (VGG16 block5_conv3: 512)
  embed_dim = 128,      -- E: word embedding width
  units = 256,          -- H: decoder LSTM units
  att_dim = 128,        -- A: attention width
  dropout = 0.5,        -- before the output layer
  att_lambda = 1.0,     -- the doubly stochastic penalty's weight
}

local function with_defaults(cfg)
  local c = {}
  for k, v in pairs(Sat.defaults) do c[k] = v end
  for k, v in pairs(cfg or {}) do c[k] = v end
  if not c.vocab_size then error("sat model: missing required option 'vocab_size'", 3) end
  if not c.max_len then error("sat model: missing required option 'max_len'", 3) end
  c.model = 'sat'
  return c
end

local Raw = Module:extend('SatDecoder')   -- the decoder's matrices, updated by hand

function Sat:init(cfg)
  local c = with_defaults(cfg)
  self.cfg = c
  local D, E, H, A = c.feat_dim, c.embed_dim, c.units, c.att_dim
  self.init_h = nn.Dense(D, H, {name = 'init_h'})          -- h0 = tanh(mean_l a_l W + b)
  self.init_c = nn.Dense(D, H, {name = 'init_c'})          -- c0 likewise
  self.enc_att = nn.Dense(D, A, {name = 'enc_att'})        -- encp = a W_e + b_e
  self.embed = nn.Embedding(c.vocab_size, E, {mask_zero = true})
  self.emb_proj = nn.Dense(E, 4 * H, {name = 'emb_proj'})  -- x W_x + b, all steps at once
  local dec = Raw()
  dec.name = 'decoder'
  local lim = function(n) return 1 / math.sqrt(n) end
  dec.w_ha, dec.grad_w_ha = dec:add_param('w_ha', core.rand(-lim(H), lim(H), H, A))        -- hp = h W_ha
  dec.att_w, dec.grad_att_w = dec:add_param('att_w', core.rand(-lim(A), lim(A), A))         -- s = w . tanh(.)
  dec.w_beta, dec.grad_w_beta = dec:add_param('w_beta', core.rand(-lim(H), lim(H), H, 1))    -- g = h w + b
  dec.b_beta, dec.grad_b_beta = dec:add_param('b_beta', T.zeros(1, 1))
  dec.w_z, dec.grad_w_z = dec:add_param('w_z', core.rand(-lim(D), lim(D), D, 4 * H))      -- zg W_z
  dec.w_hh, dec.grad_w_hh = dec:add_param('w_hh', core.rand(-lim(H), lim(H), H, 4 * H))    -- h W_hh
  self.dec = dec
  self.drop = nn.Dropout(c.dropout)
  self.out = nn.Dense(H, c.vocab_size, {name = 'out'})
  self.named_children = {{'init_h', self.init_h}, {'init_c', self.init_c},
    {'enc_att', self.enc_att}, {'embed', self.embed}, {'emb_proj', self.emb_proj},
    {'decoder', dec}, {'out', self.out}}
  self.children = {self.drop}
  self.caption_level = true     -- fit trains it on whole captions (in_ids, targets, mask)
end

-- A (B, X) view of step t of a (T, B, X) buffer.
local function at(buf, t)
  local s = buf:shape()
  return buf:narrow(t, 1):reshape(s[2], s[3])
end

-- y (N) in place: tanh; and dpre = dy * (1 - y^2).
local function tanh_(x)
  local f = x:flat()
  for i = 1, #f do f[i] = math.tanh(f[i]) end
  x:copy(core.from_flat(f, x:shape()))
  return x
end
local function dtanh(dy, y)
  local a, b = dy:flat(), y:flat()
  for i = 1, #a do a[i] = a[i] * (1 - b[i] * b[i]) end
  return core.from_flat(a, dy:shape())
end

-- mean region (B, D) of feats (B, L, D): one product per row, (1, L) ones times (L, D).
local function mean_regions(out, feats, ones_L)
  local B, L, D = feats:size(1), feats:size(2), feats:size(3)
  for b = 1, B do
    core.sgemm(out:narrow(b, 1), ones_L, feats:narrow(b, 1):reshape(L, D), false, false, 1 / L, 0)
  end
  return out
end

-- Packing (as PyTorch's pack_padded_sequence): the decoder runs on the captions sorted by
-- decreasing length, so that at step t only the first n_t rows, the captions still going,
-- are computed; a padded step is never computed (about a third of a batch's steps on the
-- built-in data). order[j] is the caption in sorted row j (ties by index), n_at[t] the live
-- rows at step t. Captions must be post-padded (id 0 after the last word); a batch that
-- is not keeps n_t = B (all rows computed, the padded ones masked as before).
local function pack(ids, B, Tn)
  local f = ids:flat()
  local len, post = {}, true
  for b = 1, B do
    local n, o = 0, (b - 1) * Tn
    for t = 1, Tn do if f[o + t] ~= 0 then n = n + 1 end end
    for t = 1, n do if f[o + t] == 0 then post = false end end
    len[b] = n
  end
  local order = {}
  for b = 1, B do order[b] = b end
  table.sort(order, function(a, b)
    if len[a] ~= len[b] then return len[a] > len[b] end
    return a < b
  end)
  local n_at = {}
  for t = 1, Tn do
    local n = 0
    if post then
      while n < B and len[order[n + 1]] >= t do n = n + 1 end
    else
      n = B
    end
    n_at[t] = n
  end
  return order, n_at
end

-- Row maps for gather between the (B, T) layout of the batch and the sorted (T, B) layout
-- of the decoder (row j of step t is caption order[j]): p[(b-1)T + t] picks (B, T) rows
-- from a (T, B) source, q the other way; inv[b] is caption b's sorted row.
local function bt_to_tb(B, Tn, order)
  local p, q, inv = {}, {}, {}
  for j = 1, B do inv[order[j]] = j end
  for b = 1, B do
    for t = 1, Tn do
      p[(b - 1) * Tn + t] = (t - 1) * B + inv[b]
      q[(t - 1) * B + inv[b]] = (b - 1) * Tn + t
    end
  end
  return p, q, inv
end

-- The first n rows of x (a view), or x itself when n is all of them.
local function live(x, n)
  if n == x:size(1) then return x end
  return x:narrow(1, n)
end

-- h0, c0 (B, H) from feats (B, L, D); encp (B, L, A).
function Sat:start(feats)
  local B, L, D = feats:size(1), feats:size(2), feats:size(3)
  self.ones_L = T.ensure(self.ones_L, 1, L):fill(1)
  self.abar = mean_regions(T.ensure(self.abar, B, D), feats, self.ones_L)
  local h0 = tanh_(self.init_h:forward(self.abar):clone())
  local c0 = tanh_(self.init_c:forward(self.abar):clone())
  local encp = self.enc_att:forward(feats):clone()
  return h0, c0, encp
end

-- One decoder step from h_prev, c_prev (B, H) and the input projection xw (B, 4H); writes
-- hp (B, A), g (B, 1), zg, z (B, D), alpha (B, L), beta (B), gates (B, 4H), h, c (B, H).
function Sat:step(s, feats, encp, h_prev, c_prev, xw)
  local d = self.dec
  local B = h_prev:size(1)
  core.sgemm(s.hp, h_prev, d.w_ha)                                 -- hp = h W_ha
  s.ones_B = T.ensure(s.ones_B, B, 1):fill(1)
  core.sgemm(s.g, h_prev, d.w_beta)                                -- g = h w_beta
  core.sgemm(s.g, s.ones_B, d.b_beta, false, false, 1, 1)          --   + b_beta
  core.additive_attention_forward(s.zg, s.z, s.alpha, s.beta, encp, s.hp, feats, d.att_w,
    s.g:reshape(B))
  s.gates:copy(xw)                                                 -- gates = x W_x + b
  core.sgemm(s.gates, s.zg, d.w_z, false, false, 1, 1)             --   + zg W_z
  core.sgemm(s.gates, h_prev, d.w_hh, false, false, 1, 1)          --   + h W_hh
  core.lstm_cell_forward(s.h, s.c, s.gates, c_prev)
end

-- feats (B, L, D), ids (B, T) -> logits (B, T, V); keeps the caches backward needs.
-- Inside, the captions run sorted by length (pack above) and the logits come back in the
-- batch's order.
function Sat:forward(feats, ids)
  local c = self.cfg
  local B, L, D, Tn = feats:size(1), feats:size(2), feats:size(3), ids:size(2)
  local H, A = c.units, c.att_dim
  self.B, self.L, self.Tn = B, L, Tn
  self.order, self.n_at = pack(ids, B, Tn)
  self.p_bt, self.p_tb, self.inv = bt_to_tb(B, Tn, self.order)
  local fs = T.ensure(self.feats_s, B, L, D)                       -- feats in sorted order
  core.gather(fs:reshape(B, L * D), feats:reshape(B, L * D), self.order)
  self.feats_s = fs
  local ids_tb = T.ensure(self.ids_tb, Tn * B)
  core.gather(ids_tb, ids:reshape(B * Tn), self.p_tb)
  self.ids_tb = ids_tb
  local h0, c0, encp = self:start(fs)
  self.encp = encp
  local x = self.embed:forward(ids_tb:reshape(Tn, B))              -- (T, B, E)
  self.mask = self.embed.mask                                      -- (T, B)
  self.x = x
  self.xw = self.emb_proj:forward(x)                               -- (T, B, 4H), one sgemm
  local buf = function(name, ...) self[name] = T.ensure(self[name], ...) return self[name] end
  -- states of finished captions stay 0: their (masked) logits are computed, never used
  local Hs, Cs = buf('Hs', Tn + 1, B, H):zero(), buf('Cs', Tn + 1, B, H):zero()
  at(Hs, 1):copy(h0); at(Cs, 1):copy(c0)
  buf('HP', Tn, B, A); buf('G', Tn, B, 1); buf('ZG', Tn, B, D); buf('Z', Tn, B, D)
  buf('AL', Tn, B, L); buf('BE', Tn, B, 1); buf('GA', Tn, B, 4 * H)
  for t = 1, Tn do
    local n = self.n_at[t]
    if n > 0 then
      local s = {hp = live(at(self.HP, t), n), g = live(at(self.G, t), n),
        zg = live(at(self.ZG, t), n), z = live(at(self.Z, t), n), alpha = live(at(self.AL, t), n),
        beta = live(at(self.BE, t), n):reshape(n), gates = live(at(self.GA, t), n),
        h = live(at(Hs, t + 1), n), c = live(at(Cs, t + 1), n)}
      self:step(s, live(fs, n), live(encp, n), live(at(Hs, t), n), live(at(Cs, t), n),
        live(at(self.xw, t), n))
    end
  end
  self.hout = Hs:narrow(2, Tn)                                     -- (T, B, H)
  -- to (B, T) rows before dropout: its masks are keyed per caption (nn/Dropout.lua), the
  -- same in any batch or rank; the logits then come out in (B, T) order
  self.hbt = T.ensure(self.hbt, B, Tn, H)
  core.gather(self.hbt:reshape(B * Tn, H), self.hout:reshape(Tn * B, H), self.p_bt)
  self.hd = self.drop:forward(self.hbt)
  self.logits = self.out:forward(self.hd)                          -- (B, T, V)
  return self.logits
end

-- The doubly stochastic penalty of the last forward: lambda/(B L) sum_b sum_l (1 - S_bl)^2,
-- S_bl = sum over real steps t of alpha_tbl: the mean over captions and regions, as
-- sgrvinod's Show-Attend-Tell tutorial has it (the paper's sum over regions is L times this:
-- with few words per caption over many regions, T << L, that sum is large and pulls
-- attention towards uniform; on the built-in data at 64 regions it cost a third of the
-- captions entirely true, docs/sat.md). Also keeps dalpha (T, B, L) for backward.
function Sat:penalty()
  local lam, B, L, Tn = self.cfg.att_lambda, self.B, self.L, self.Tn
  local al, m = self.AL:flat(), self.mask:flat()
  local S = {}
  for i = 1, B * L do S[i] = 0 end
  for t = 1, Tn do
    for b = 1, B do
      local mt = m[(t - 1) * B + b]
      if mt ~= 0 then
        local o = ((t - 1) * B + (b - 1)) * L
        for l = 1, L do S[(b - 1) * L + l] = S[(b - 1) * L + l] + al[o + l] end
      end
    end
  end
  local p = 0
  for i = 1, B * L do p = p + (1 - S[i]) ^ 2 end
  -- dP/dalpha_tbl = -2 lambda/(B L) (1 - S_bl) at real steps, 0 at padding
  local da = {}
  for t = 1, Tn do
    for b = 1, B do
      local mt = m[(t - 1) * B + b]
      local o = ((t - 1) * B + (b - 1)) * L
      for l = 1, L do da[o + l] = mt ~= 0 and -2 * lam / (B * L) * (1 - S[(b - 1) * L + l]) or 0 end
    end
  end
  self.dalpha = core.from_flat(da, {Tn, B, L})
  return lam / (B * L) * p
end

-- dlogits (B, T, V) -> dfeats (B, L, D); adds into every parameter gradient, and the
-- penalty's gradient when with_penalty (call penalty() after forward first).
function Sat:backward(dlogits, with_penalty)
  local c, d = self.cfg, self.dec
  local B, L, D, Tn, H, A = self.B, self.L, self.cfg.feat_dim, self.Tn, c.units, c.att_dim
  local feats, encp = self.feats_s, self.encp                      -- sorted rows
  local dhd = self.out:backward(self.hd, dlogits)                  -- logits = out(drop(h))
  self:grads_final(self.out)        -- (data-parallel fit starts their allreduce: Module.lua)
  local dhb = self.drop:backward(self.hbt, dhd)                    -- (B, T, H)
  local dH = T.ensure(self.dH, Tn, B, H)
  core.gather(dH:reshape(Tn * B, H), dhb:reshape(B * Tn, H), self.p_tb)   -- to (T, B) rows
  self.dH = dH
  local dfs = T.ensure_zeroed(self.dfeats_s, B, L, D)              -- dfeats, sorted rows
  self.dfeats_s = dfs
  local dencp = T.ensure_zeroed(self.dencp, B, L, A)
  self.dencp = dencp
  local dXW = T.ensure_zeroed(self.dXW, Tn, B, 4 * H)              -- finished rows stay 0
  self.dXW = dXW
  local dh, dc = T.zeros(B, H), T.zeros(B, H)       -- dL/dh_t from later steps, dL/dc_t
  local dzg, dhp, dg = T.zeros(B, D), T.zeros(B, A), T.zeros(B, 1)
  local work, ones_B = T.zeros(B, L + A), T.full(1, B, 1)
  for t = Tn, 1, -1 do
    local n = self.n_at[t]        -- rows past n finished before t: no gradient reaches them
    if n > 0 then
      local function r(x) return live(x, n) end
      local h_prev, c_prev = r(at(self.Hs, t)), r(at(self.Cs, t))
      local dh_n, dc_n, dzg_n, dhp_n, dg_n = r(dh), r(dc), r(dzg), r(dhp), r(dg)
      dh_n:add(r(at(dH, t)))
      local dz = r(at(dXW, t))
      -- h_t, c_t = cell(gates_t, c_prev): dz = dgates; dc becomes dL/dc_{t-1}
      core.lstm_cell_backward(dz, dc_n, dh_n, r(at(self.GA, t)), r(at(self.Cs, t + 1)), c_prev)
      -- gates = xw + zg W_z + h_prev W_hh
      core.sgemm(dzg_n, dz, d.w_z, false, true)
      core.sgemm(d.grad_w_z, r(at(self.ZG, t)), dz, true, false, 1, 1)
      core.sgemm(dh_n, dz, d.w_hh, false, true)                    -- dh now dL/dh_prev
      core.sgemm(d.grad_w_hh, h_prev, dz, true, false, 1, 1)
      -- zg, alpha = attend(encp, hp, feats, w, g)
      core.additive_attention_backward(r(dencp), dhp_n, r(dfs), d.grad_att_w, dg_n:reshape(n),
        r(work), dzg_n, with_penalty and r(at(self.dalpha, t)) or nil, r(at(self.Z, t)),
        r(at(self.AL, t)), r(at(self.BE, t)):reshape(n), r(encp), r(at(self.HP, t)), r(feats),
        d.att_w)
      -- hp = h_prev W_ha; g = h_prev w_beta + b_beta
      core.sgemm(dh_n, dhp_n, d.w_ha, false, true, 1, 1)
      core.sgemm(d.grad_w_ha, h_prev, dhp_n, true, false, 1, 1)
      core.sgemm(dh_n, dg_n, d.w_beta, false, true, 1, 1)
      core.sgemm(d.grad_w_beta, h_prev, dg_n, true, false, 1, 1)
      core.sgemm(d.grad_b_beta, r(ones_B), dg_n, true, false, 1, 1)
    end
  end
  self:grads_final(d)
  -- xw = emb_proj(embed(ids)), all steps in one product
  self.embed:backward(self.ids_tb:reshape(Tn, B), self.emb_proj:backward(self.x, dXW))
  self:grads_final(self.emb_proj)
  self:grads_final(self.embed)
  -- encp = enc_att(feats)
  dfs:add(self.enc_att:backward(feats, dencp))
  self:grads_final(self.enc_att)
  -- h0 = tanh(init_h(abar)), c0 = tanh(init_c(abar)), abar = mean_l a_l
  local dabar = self.init_h:backward(self.abar, dtanh(dh, at(self.Hs, 1))):clone()
  dabar:add(self.init_c:backward(self.abar, dtanh(dc, at(self.Cs, 1))))
  self:grads_final(self.init_c)
  self:grads_final(self.init_h)
  for b = 1, B do
    core.sgemm(dfs:narrow(b, 1):reshape(L, D), self.ones_L, dabar:narrow(b, 1), true, false,
      1 / L, 1)
  end
  -- back to the batch's order
  local dfeats = T.ensure(self.dfeats, B, L, D)
  core.gather(dfeats:reshape(B, L * D), dfs:reshape(B, L * D), self.inv)
  self.dfeats = dfeats
  return dfeats
end

-- Step-wise decoding (COMMON.md): state rows are images; ids a Lua array of B ids.
function Sat:decode_start(feats)
  local B, L, D = feats:size(1), feats:size(2), feats:size(3)
  local c = self.cfg
  local h0, c0, encp = self:start(feats)
  return {feats = feats:clone(), encp = encp, h = h0, c = c0, B = B, L = L, D = D,
    alpha = T.zeros(B, L), H = c.units}
end

function Sat:decode_step(st, ids)
  local c = self.cfg
  local B, H = st.B, c.units
  local x = self.embed:forward(core.from_flat(ids, {B}))           -- (B, E)
  local xw = self.emb_proj:forward(x)                              -- (B, 4H)
  local s = {hp = T.zeros(B, c.att_dim), g = T.zeros(B, 1), zg = T.zeros(B, st.D),
    z = T.zeros(B, st.D), alpha = T.zeros(B, st.L), beta = T.zeros(B), gates = T.zeros(B, 4 * H),
    h = T.zeros(B, H), c = T.zeros(B, H)}
  self:step(s, st.feats, st.encp, st.h, st.c, xw)
  st.h, st.c, st.alpha = s.h, s.c, s.alpha
  return self.out:forward(s.h):clone()
end

function Sat:decode_select(st, rows)
  local n = #rows
  local function pick(t)
    local shape = t:shape()
    shape[1] = n
    local o = T.zeros(unpack(shape))
    core.gather(o, t, rows)
    return o
  end
  st.feats, st.encp, st.h, st.c, st.alpha = pick(st.feats), pick(st.encp), pick(st.h),
    pick(st.c), pick(st.alpha)
  st.B = n
  return st
end

function Sat:decode_alphas(st) return st.alpha end

function Sat:summary(print_fn)
  local c = self.cfg
  local rows = {
    {'regions (Input)', string.format('(None, L, %d)', c.feat_dim), 0},
    {'init_h, init_c (Dense, tanh)', string.format('(None, %d)', c.units),
      self.init_h:num_params() + self.init_c:num_params()},
    {'enc_att (Dense)', string.format('(None, L, %d)', c.att_dim), self.enc_att:num_params()},
    {'embedding (Embedding)', string.format('(None, T, %d)', c.embed_dim), self.embed:num_params()},
    {'emb_proj (Dense)', string.format('(None, T, %d)', 4 * c.units), self.emb_proj:num_params()},
    {'attention + LSTM cell', string.format('(None, T, %d)', c.units), self.dec:num_params()},
    {'word_predictions (Dense)', string.format('(None, T, %d)', c.vocab_size), self.out:num_params()},
  }
  return Module.summary_table('sat_captioner', rows, self:num_params(), print_fn)
end

return Sat
