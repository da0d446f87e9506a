-- Incremental decoding for the seed model (models/seed.lua's decode_start / decode_step /
-- decode_select, the interface of eval/decode.lua). Evaluation only: no backward.
--
-- Every prefix of a state has the same length L (a step appends one id to every row,
-- decode_select copies rows), so a step works on the last L steps alone: padded steps
-- change no logit (the masked LSTMs skip them, attention skips their query rows), and the
-- logits are forward_caption's on the pre-padded window. What does not change as a prefix
-- grows is kept for its L steps, and a step adds the new token's part:
--   yf (B, L, U), h, c   the caption BiLSTM's forward states (one LSTM step a token)
--   zb (B, L, 4U)        x @ Kb: the backward LSTM's projection of the embedded tokens
--   zf (B, L, 4D)        yf @ Wf: the decoder's projection of the forward states
--   p (B, Ti, 4D)        img @ Wc, once per image (in packed panels): the decoder's
--                        projection of the attention context, (A @ img) @ Wc, is A @ p
-- where the decoder kernel is split by rows as its input [ctx (2U), yf (U), yb (U)] into
-- [Wc; Wf; Wb]. A step then runs the backward LSTM over the L steps, the attention
-- weights A, and the decoder LSTM on zf + A @ p + yb @ Wb (its bias added inside). That
-- is about half the products of recomputing the caption branch and the decoder's input
-- projection (bench/seed.lua's decode lines). A prefix longer than the window (truncation
-- changes its first tokens) or a padding id recomputes the kept parts from the ids; in
-- training mode (dropout on) a step is forward_caption on the whole window.
local core = require 'luacap.core'
local tensor = require 'luacap.tensor'

local M = {}

-- From this many rows the output layers run on kernels packed at decode_start (fewer go
-- through sgemv, which reads the kernel once and packs nothing).
local PACK_MIN_ROWS = 8

-- buf when its storage holds (n, window, W) floats, else a new (n, window, W) tensor:
-- beam search selects rows at every step, and the buffers keep their storage.
local function room(buf, n, window, W)
  if buf and buf:recast(n, window, W) then return buf end
  return tensor.zeros(n, window, W)
end

-- The (B, L, W) view of the state's scratch buffer `key`.
local function scratch(st, key, L, W)
  local B = #st.prefixes
  local buf = room(st.scratch[key], B, st.window, W)
  st.scratch[key] = buf
  return buf:recast(B, L, W)
end

-- A kept sequence: cur (B, L, W), a view of one of two buffers (base); spare is the
-- other, which the next step's appended sequence goes into. kept(k, B, window, W) makes
-- both hold B rows (k nil: a new one).
local function kept(k, B, window, W)
  k = k or {W = W}
  k.base, k.spare = room(k.base, B, window, W), room(k.spare, B, window, W)
  return k
end

local function set_length(k, B, L)
  k.cur = k.base:recast(B, L, k.W)
  return k.cur
end

-- k.cur (B, L - 1, W) followed by last (B, W), as the new k.cur (B, L, W).
local function append(st, k, last)
  local B, L = k.cur:size(1), k.cur:size(2) + 1
  local new = k.spare:recast(B, L, k.W)
  core.shift_append(new, k.cur, st.ident, last)
  k.base, k.spare, k.cur = k.spare, k.base, new
end

-- k.cur's rows (a Lua array of n rows) as the new k.cur (n, L, W).
local function select_kept(k, rows, n, L, window)
  local dst = room(k.spare, n, window, k.W)
  core.gather(dst:recast(n, L, k.W), k.cur, rows)
  k.spare, k.base = room(k.base, n, window, k.W), dst
  k.cur = dst:recast(n, L, k.W)
end

local identity = require('luacap.util').identity

-- The decoder kernel's rows for [ctx; yf; yb] (views), or nil for a GRU decoder.
local function decoder_parts(model)
  if model.cfg.decoder ~= 'lstm' then return nil end
  local U, K = model.cfg.units, model.dec_lstm.kernel
  return K:narrow(1, 2 * U), K:narrow(2 * U + 1, U), K:narrow(3 * U + 1, U)
end

-- Buffers for B rows: the kept sequences and the LSTMs' own (their contents are not kept).
local function size_for(model, st, B)
  local c, Tn = model.cfg, st.window
  local U = c.units
  local widths = {yf = U, zb = 4 * U, mask = 1, zf = decoder_parts(model) and 4 * c.dec_units}
  for key, W in pairs(widths) do st.keep[key] = kept(st.keep[key], B, Tn, W) end
  if B > st.reserved then
    model.cap_lstm.backward_lstm:reserve(B, Tn)
    if widths.zf then model.dec_lstm:reserve(B, Tn) end
    st.reserved = B
  end
  st.ident = identity(B)
end

function M.start(model, feats)
  local rows = model:forward_image(feats):clone()
  local B, Ti, D2 = rows:size(1), rows:size(2), rows:size(3)
  local st = {rows = rows, prefixes = {}, window = model.cfg.max_len, L = 0, ok = false,
    keep = {}, scratch = {}, spares = {}, reserved = 0}
  for b = 1, B do st.prefixes[b] = {} end
  size_for(model, st, B)
  if B >= PACK_MIN_ROWS then   -- the two Dense kernels packed once for every step
    st.dense_pk, st.out_pk = model.dec_dense:packed_kernel(), model.out:packed_kernel()
  end
  local Wc = decoder_parts(model)
  if Wc then   -- p = rows @ Wc, each image's (Ti, 4D) in packed panels
    local p = tensor.zeros(B, Ti, Wc:size(2))
    core.sgemm(p:reshape(B * Ti, Wc:size(2)), rows:reshape(B * Ti, D2), Wc)
    st.p = core.pack_panels(p)
  end
  return st
end

-- The kept parts of an L-step window from the pre-padded ids (B, L): the embedded tokens,
-- the forward LSTM over them, the projections.
local function recompute(model, st, ids, L)
  local B, U = ids:size(1), model.cfg.units
  local fl, bl = model.cap_lstm.forward_lstm, model.cap_lstm.backward_lstm
  local x = model.embed:forward(ids)                                     -- (B, L, E)
  local mask = model.embed.mask
  local yf = fl:forward(x, mask)
  set_length(st.keep.yf, B, L):copy(yf)
  set_length(st.keep.mask, B, L):copy(mask:reshape(B, L, 1))
  st.h = tensor.ensure(st.h, B, U):copy(fl.hs:narrow(L, 1):reshape(B, U))
  st.c = tensor.ensure(st.c, B, U):copy(fl.cs:narrow(L, 1):reshape(B, U))
  local E = x:size(3)
  core.sgemm(set_length(st.keep.zb, B, L):reshape(B * L, 4 * U), x:reshape(B * L, E), bl.kernel)
  local _, Wf = decoder_parts(model)
  if Wf then
    local zf = set_length(st.keep.zf, B, L)
    core.sgemm(zf:reshape(B * L, zf:size(3)), st.keep.yf.cur:reshape(B * L, U), Wf)
  end
end

-- The new tokens ids (B) at the end of every row: one forward-LSTM step, each kept part
-- one step longer.
local function extend(model, st, ids)
  local B, c = #ids, model.cfg
  local U = c.units
  local fl, bl = model.cap_lstm.forward_lstm, model.cap_lstm.backward_lstm
  st.x = tensor.ensure(st.x, B, c.embed_dim)
  core.embedding_forward(st.x, core.from_flat(ids, {B}), model.embed.weight)
  st.h2, st.c2 = tensor.ensure(st.h2, B, U), tensor.ensure(st.c2, B, U)
  st.gates = tensor.ensure(st.gates, B, 4 * U)
  core.lstm_step(st.h2, st.c2, st.gates, st.x, st.h, st.c, fl.kernel, fl.recurrent_kernel, fl.bias)
  st.h, st.h2, st.c, st.c2 = st.h2, st.h, st.c2, st.c
  append(st, st.keep.yf, st.h)
  st.ones = tensor.ensure(st.ones, B, 1)
  append(st, st.keep.mask, st.ones:fill(1))
  st.zb_new = tensor.ensure(st.zb_new, B, 4 * U)
  core.sgemm(st.zb_new, st.x, bl.kernel)
  append(st, st.keep.zb, st.zb_new)
  local _, Wf = decoder_parts(model)
  if Wf then
    st.zf_new = tensor.ensure(st.zf_new, B, Wf:size(2))
    core.sgemm(st.zf_new, st.h, Wf)
    append(st, st.keep.zf, st.zf_new)
  end
end

-- Logits (B, V) of the kept L-step window.
local function logits(model, st, L)
  local B, U = #st.prefixes, model.cfg.units
  local bl = model.cap_lstm.backward_lstm
  local mask = st.keep.mask.cur:reshape(B, L)
  local yb = bl:forward_projected(st.keep.zb.cur, mask)                  -- processing order
  local se3 = scratch(st, 'se3', L, 2 * U)
  core.bidir_concat_forward(se3, st.keep.yf.cur, yb, true)
  local weights = scratch(st, 'weights', L, st.rows:size(2))
  local h
  local _, _, Wb = decoder_parts(model)
  if Wb then
    core.attention_weights(weights, se3, st.rows, mask)
    local G = Wb:size(2)
    local z, y = scratch(st, 'z', L, G), scratch(st, 'y', L, G)
    core.sgemm(y:reshape(B * L, G), yb:reshape(B * L, U), Wb)
    core.reverse_steps_add(z, st.keep.zf.cur, y)      -- zf + yb @ Wb, yb in input order
    core.packed_gemm_batch(z, weights, st.p)        -- + A @ p (masked rows: A is 0)
    h = model.dec_lstm:forward_projected(z, mask)
  else
    local ctx = scratch(st, 'ctx', L, 2 * U)
    core.attention_forward(ctx, weights, se3, st.rows, mask)
    h = model.dec_lstm:forward(model.concat:forward({ctx, se3}), mask)
  end
  local d = model.dec_dense:forward(model.dec_drop:forward(h), st.dense_pk)
  return model.out:forward(d, st.out_pk)
end

function M.step(model, st, ids)
  local decode = require 'luacap.eval.decode'
  local B, Tn = #st.prefixes, st.window
  decode.append_ids(st.prefixes, ids, 3)
  local grows, L = st.ok, 0
  for b = 1, B do
    local n = #st.prefixes[b]
    if n > Tn or ids[b] == 0 then grows = false end
    L = math.max(L, math.min(n, Tn))
  end
  local prefix_ids = decode.prefix_ids
  if model.is_training then
    st.ok = false
    return model:forward_caption(st.rows, prefix_ids(st.prefixes, Tn))
  end
  if grows and L == st.L + 1 then extend(model, st, ids)
  else recompute(model, st, prefix_ids(st.prefixes, L), L) end
  st.L, st.ok = L, true
  return logits(model, st, L)
end

function M.select(model, st, rows)
  local n = #rows
  st.prefixes = require('luacap.eval.decode').selected_prefixes(st.prefixes, rows, 3)
  if n == 0 then return end
  -- st[key]'s rows as st[key], into the spare tensor of its last select when that holds them
  local function select_rows(key)
    local t = st[key]
    local shape = t:shape()
    shape[1] = n
    local dst = st.spares[key] and st.spares[key]:recast(unpack(shape)) or tensor.zeros(unpack(shape))
    core.gather(dst, t, rows)
    st.spares[key], st[key] = t, dst
  end
  select_rows('rows')
  if st.p then select_rows('p') end
  local L = st.L
  if L > 0 and st.ok then
    for _, k in pairs(st.keep) do select_kept(k, rows, n, L, st.window) end
    select_rows('h')
    select_rows('c')
  else
    st.ok = false
  end
  size_for(model, st, n)
  st.h2, st.c2, st.x, st.gates = nil, nil, nil, nil
end

return M
