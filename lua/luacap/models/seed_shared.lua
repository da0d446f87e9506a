-- The seed model's decoder in shared training (--share-image-branch, Seed:forward_shared)
-- with an LSTM decoder: the decoder's input projection factored so that what pairs share
-- is projected once, as incremental decoding does (models/seed_decode.lua).
--
-- The decoder reads [ctx; yf; yb] @ K, ctx = A @ fe4 (A the attention weights (T, T) of a
-- pair, fe4 (T, 2U) its image's sequence), yf and yb the caption BiLSTM's two directions.
-- Split K by rows into [Wc; Wf; Wb]:
--   [ctx; yf; yb] @ K = A @ (fe4 @ Wc) + yf @ Wf + yb @ Wb
-- P = fe4u @ Wc (U, T, 4D) is computed once per image of the batch, and yf @ Wf once per
-- representative prefix (a prefix's forward states are its representative's, shifted:
-- Bidirectional:forward_prefixes); only yb @ Wb is per pair. In a Flickr8k-shaped batch
-- of 32 pairs (1.6 images, 7.6 representatives, about 200 real pair rows and 70 real
-- representative rows) that is about 240 MFLOP of forward products instead of 870, and
-- the backward's products shrink alike.
--
-- Products run on real rows only, gathered into compact blocks: the pairs' rows grouped
-- by image (rows), so that each image's A @ P is one sgemm over its pairs' rows, and the
-- representatives' rows (frows), with fidx mapping each pair row to its representative's:
--   forward   zf_c (Nr, 4D) = yf_c @ Wf
--             z_c (N, 4D) = zf_c[fidx] + yb_c @ Wb + A_c[u] @ P_u     z = scatter(z_c)
--             h = dec_lstm:forward_projected(z, mask)     (the bias is added there)
--   backward  dz = dec_lstm:backward_projected(dh);       dz_c = gather(dz)
--             dyb_c = dz_c @ Wb^T      dWb += yb_c^T @ dz_c
--             dzf_c = scatter_add(dz_c, fidx)    dyf_c = dzf_c @ Wf^T    dWf += yf_c^T @ dzf_c
--             dA_c[u] = dz_c[u] @ P_u^T      dP_u = A_c[u]^T @ dz_c[u]
--             dWc += fe4u^T @ dP        dfe4u = dP @ Wc^T
--             the attention's backward from dA (Attention:backward_weights)
-- The logits and gradients are those of the unfactored decoder (spec/models/seed_shared_spec.lua).
local core = require 'luacap.core'
local tensor = require 'luacap.tensor'

local M = {}

local ensure = tensor.ensure_capacity

-- The decoder kernel's (or its gradient's) row blocks for ctx, yf and yb (views).
local function split(K, U)
  return K:narrow(1, 2 * U), K:narrow(2 * U + 1, U), K:narrow(3 * U + 1, U)
end

-- The compact rows of a batch, from the caption BiLSTM's shared prefixes (Bidirectional's
-- prefix: rep, shift, and its representatives' real rows frows and their positions fpos),
-- the pairs' mask (B, T) and img (B). Returns
-- rows  the pairs' real (b, t) as 1-based rows of the (B T) flattening, grouped by image
--       (image u's from off[u] + 1, n[u] of them)
-- brows the same rows of the backward LSTM's output, which is in processing order
-- fidx  for each of rows, the position in frows of its representative's row
local function compact_rows(prefix, mask, img, nimg)
  local B, Tn = mask:size(1), mask:size(2)
  local m, by = mask:flat(), {}
  for u = 1, nimg do by[u] = {} end
  for b = 1, B do local l = by[img[b]]; l[#l + 1] = b end
  local c = {rows = {}, brows = {}, fidx = {}, off = {}, n = {}}
  local rep, shift, fpos = prefix.rep, prefix.shift, prefix.fpos
  for u = 1, nimg do
    c.off[u] = #c.rows
    for _, b in ipairs(by[u]) do
      for t = 1, Tn do
        if m[(b - 1) * Tn + t] ~= 0 then
          local k = #c.rows + 1
          c.rows[k], c.brows[k] = (b - 1) * Tn + t, (b - 1) * Tn + Tn - t + 1
          c.fidx[k] = fpos[(rep[b] - 1) * Tn + t - shift[b]]
        end
      end
    end
    c.n[u] = #c.rows - c.off[u]
  end
  return c
end

-- After cap_lstm:forward_prefixes: se3 (B, T, 2U) the pairs' caption states, fe4u
-- (U, T, 2U) the image rows, fe4_pairs (B, T, 2U) their rows per pair, img (B), mask
-- (B, T) -> h (B, D), the decoder's last output.
function M.forward(model, se3, fe4u, fe4_pairs, img, mask)
  local s = model.shared_dec or {}
  model.shared_dec = s
  local B, Tn, U = se3:size(1), se3:size(2), model.cfg.units
  local nimg = fe4u:size(1)
  local fl, bl = model.cap_lstm.forward_lstm, model.cap_lstm.backward_lstm
  local K = model.dec_lstm.kernel
  local G = K:size(2)
  local Wc, Wf, Wb = split(K, U)
  local prefix = model.cap_lstm.prefix
  local c = compact_rows(prefix, mask, img, nimg)
  c.frows = prefix.frows
  local N, Nr = #c.rows, #c.frows
  s.c, s.se3, s.fe4u, s.fe4_pairs, s.nimg = c, se3, fe4u, fe4_pairs, nimg
  local A = model.attn:forward_weights({se3, fe4_pairs}, mask)          -- (B, T, T)
  s.P = ensure(s.P, nimg * Tn, G)
  core.sgemm(s.P, fe4u:reshape(nimg * Tn, 2 * U), Wc)                     -- (U T, 4D)
  s.yf_c, s.zf_c = ensure(s.yf_c, Nr, U), ensure(s.zf_c, Nr, G)
  s.yb_c, s.A_c, s.z_c = ensure(s.yb_c, N, U), ensure(s.A_c, N, Tn), ensure(s.z_c, N, G)
  s.z = ensure(s.z, B, Tn, G)   -- its masked rows are never read (the LSTM skips them)
  if N > 0 then
    core.gather(s.yf_c, fl.out:reshape(fl.out:size(1) * Tn, U), c.frows)
    core.sgemm(s.zf_c, s.yf_c, Wf)
    core.gather(s.z_c, s.zf_c, c.fidx)
    core.gather(s.yb_c, bl.out:reshape(B * Tn, U), c.brows)
    core.sgemm(s.z_c, s.yb_c, Wb, false, false, 1, 1)
    core.gather(s.A_c, A:reshape(B * Tn, Tn), c.rows)
    for u = 1, nimg do
      if c.n[u] > 0 then
        core.sgemm(s.z_c:narrow(c.off[u] + 1, c.n[u]), s.A_c:narrow(c.off[u] + 1, c.n[u]),
          s.P:narrow((u - 1) * Tn + 1, Tn), false, false, 1, 1)
      end
    end
    core.scatter(s.z:reshape(B * Tn, G), s.z_c, c.rows)
  end
  return model.dec_lstm:forward_projected(s.z, mask)
end

-- dh (B, D) -> dse3 (B, T, 2U) (the attention query's), dfe4_pairs (B, T, 2U) (the
-- attention's, per pair), dfe4u (U, T, 2U) (through P, per image) and extra = {dyf_r =
-- (R, T, U), dyb = (B, T, U) in processing order} for Bidirectional:backward_prefixes;
-- adds into the decoder's gradients.
function M.backward(model, dh)
  local s = assert(model.shared_dec, 'seed model: shared decoder backward before its forward')
  local c, nimg = s.c, s.nimg
  local B, Tn, U = s.se3:size(1), s.se3:size(2), model.cfg.units
  local N, Nr, R = #c.rows, #c.frows, model.cap_lstm.forward_lstm.out:size(1)
  local K, dK = model.dec_lstm.kernel, model.dec_lstm.dkernel
  local G = K:size(2)
  local Wc, Wf, Wb = split(K, U)
  local dWc, dWf, dWb = split(dK, U)
  local dz = model.dec_lstm:backward_projected(dh)                       -- (B, T, 4D)
  s.dz_c, s.dzf_c = ensure(s.dz_c, N, G), ensure(s.dzf_c, Nr, G):zero()
  s.dyb_c, s.dyf_c = ensure(s.dyb_c, N, U), ensure(s.dyf_c, Nr, U)
  s.dA_c, s.dP = ensure(s.dA_c, N, Tn), ensure(s.dP, nimg * Tn, G):zero()
  s.dyf_r, s.dyb = ensure(s.dyf_r, R, Tn, U):zero(), ensure(s.dyb, B, Tn, U):zero()
  s.dA = ensure(s.dA, B, Tn, Tn):zero()
  if N > 0 then
    core.gather(s.dz_c, dz:reshape(B * Tn, G), c.rows)
    core.sgemm(s.dyb_c, s.dz_c, Wb, false, true)
    core.sgemm(dWb, s.yb_c, s.dz_c, true, false, 1, 1)
    core.scatter_add(s.dzf_c, s.dz_c, c.fidx)
    core.sgemm(s.dyf_c, s.dzf_c, Wf, false, true)
    core.sgemm(dWf, s.yf_c, s.dzf_c, true, false, 1, 1)
    for u = 1, nimg do
      if c.n[u] > 0 then
        local o, n = c.off[u] + 1, c.n[u]
        local dz_u, P_u = s.dz_c:narrow(o, n), s.P:narrow((u - 1) * Tn + 1, Tn)
        core.sgemm(s.dA_c:narrow(o, n), dz_u, P_u, false, true)
        core.sgemm(s.dP:narrow((u - 1) * Tn + 1, Tn), s.A_c:narrow(o, n), dz_u, true, false)
      end
    end
    core.scatter(s.dyf_r:reshape(R * Tn, U), s.dyf_c, c.frows)
    core.scatter(s.dyb:reshape(B * Tn, U), s.dyb_c, c.brows)
    core.scatter(s.dA:reshape(B * Tn, Tn), s.dA_c, c.rows)
  end
  core.sgemm(dWc, s.fe4u:reshape(nimg * Tn, 2 * U), s.dP, true, false, 1, 1)
  s.dfe4u = ensure(s.dfe4u, nimg, Tn, 2 * U)
  core.sgemm(s.dfe4u:reshape(nimg * Tn, 2 * U), s.dP, Wc, false, true)
  local d = model.attn:backward_weights({s.se3, s.fe4_pairs}, s.dA)
  return d[1], d[2], s.dfe4u, {dyf_r = s.dyf_r, dyb = s.dyb}
end

return M
