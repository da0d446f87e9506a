-- The seed model's decoder in shared training (--share-image-branch, Seed:forward_shared)
-- with an LSTM decoder: the decoder's input projection factored so that its image part is
-- computed once per image, as incremental decoding does (models/seed_decode.lua).
--
-- The decoder reads [ctx; se3] @ K, ctx = A @ fe4 (A the attention weights (T, T) of a
-- pair, fe4 (T, 2U) its image's sequence). Split K by rows into [Wc; Ws]:
--   [ctx; se3] @ K = A @ (fe4 @ Wc) + se3 @ Ws = A @ P[img] + se3 @ Ws
-- P = fe4u @ Wc (U, T, 4D) is computed once per image of the batch, where ctx @ Wc cost a
-- (real rows, 2U) @ (2U, 4D) product per pair: in a Flickr8k-shaped batch of 32 pairs
-- (one or two images, about 200 real rows) it replaces about 400 MFLOP by about 100, and
-- the backward's two products by the same.
--
-- Every product runs on the real (pair, step) rows only, gathered into a compact block
-- grouped by image (rows), so that each image's A @ P is one sgemm over its pairs' rows:
--   forward   z_c (N, 4D) = se3_c @ Ws + A_c[u] @ P_u      z = scatter(z_c)  (B, T, 4D)
--             h = dec_lstm:forward_projected(z, mask)     (the bias is added there)
--   backward  dz = dec_lstm:backward_projected(dh);       dz_c = gather(dz)
--             dse3_c = dz_c @ Ws^T      dWs += se3_c^T @ dz_c
--             dA_c[u] = dz_c[u] @ P_u^T      dP_u = A_c[u]^T @ dz_c[u]
--             dWc += fe4u^T @ dP        dfe4u = dP @ Wc^T
--             the attention's backward from dA (Attention:backward_weights)
-- The logits and gradients are those of the unfactored decoder (spec/models/seed_shared_spec.lua).
local core = require 'luacap.core'
local tensor = require 'luacap.tensor'

local M = {}

local ensure = tensor.ensure_capacity

-- The decoder kernel's (or its gradient's) row blocks for ctx and se3 (views).
local function split(K, U2) return K:narrow(1, U2), K:narrow(U2 + 1, U2) end

-- The real (pair, step) rows of mask (B, T) as 1-based rows of the (B * T) flattening,
-- grouped by image: rows, and for image u its first row off[u] (0-based) and count n[u].
local function real_rows(mask, img, nimg)
  local B, Tn = mask:size(1), mask:size(2)
  local m, by = mask:flat(), {}
  for u = 1, nimg do by[u] = {} end
  for b = 1, B do local l = by[img[b]]; l[#l + 1] = b end
  local rows, off, n = {}, {}, {}
  for u = 1, nimg do
    off[u] = #rows
    for _, b in ipairs(by[u]) do
      for t = 1, Tn do
        local r = (b - 1) * Tn + t
        if m[r] ~= 0 then rows[#rows + 1] = r end
      end
    end
    n[u] = #rows - off[u]
  end
  return rows, off, n
end

-- se3 (B, T, 2U) the caption states, fe4u (U, T, 2U) the image rows, fe4_pairs (B, T, 2U)
-- their rows per pair, img (B), mask (B, T) -> h (B, D), the decoder's last output.
function M.forward(model, se3, fe4u, fe4_pairs, img, mask)
  local s = model.shared_dec or {}
  model.shared_dec = s
  local B, Tn, U2 = se3:size(1), se3:size(2), se3:size(3)
  local nimg = fe4u:size(1)
  local K = model.dec_lstm.kernel
  local G = K:size(2)
  local Wc, Ws = split(K, U2)
  s.se3, s.fe4u, s.fe4_pairs, s.nimg = se3, fe4u, fe4_pairs, nimg
  s.rows, s.off, s.n = real_rows(mask, img, nimg)
  local N = #s.rows
  local A = model.attn:forward_weights({se3, fe4_pairs}, mask)          -- (B, T, T)
  s.P = ensure(s.P, nimg * Tn, G)
  core.sgemm(s.P, fe4u:reshape(nimg * Tn, U2), Wc)                        -- (U T, 4D)
  s.se3_c, s.A_c = ensure(s.se3_c, N, U2), ensure(s.A_c, N, Tn)
  s.z_c = ensure(s.z_c, N, G)
  if N > 0 then
    core.gather(s.se3_c, se3:reshape(B * Tn, U2), s.rows)
    core.gather(s.A_c, A:reshape(B * Tn, Tn), s.rows)
    core.sgemm(s.z_c, s.se3_c, Ws)
    for u = 1, nimg do
      if s.n[u] > 0 then
        core.sgemm(s.z_c:narrow(s.off[u] + 1, s.n[u]), s.A_c:narrow(s.off[u] + 1, s.n[u]),
          s.P:narrow((u - 1) * Tn + 1, Tn), false, false, 1, 1)
      end
    end
  end
  -- masked rows of z are never read (the LSTM skips them)
  s.z = ensure(s.z, B, Tn, G)
  if N > 0 then core.scatter(s.z:reshape(B * Tn, G), s.z_c, s.rows) end
  return model.dec_lstm:forward_projected(s.z, mask)
end

-- dh (B, D) -> dse3 (B, T, 2U), dfe4_pairs (B, T, 2U) (the attention's, per pair) and
-- dfe4u (U, T, 2U) (through P, per image); adds into the decoder's gradients.
function M.backward(model, dh)
  local s = assert(model.shared_dec, 'seed model: shared decoder backward before its forward')
  local B, Tn, U2 = s.se3:size(1), s.se3:size(2), s.se3:size(3)
  local nimg, N = s.nimg, #s.rows
  local K, dK = model.dec_lstm.kernel, model.dec_lstm.dkernel
  local G = K:size(2)
  local Wc, Ws = split(K, U2)
  local dWc, dWs = split(dK, U2)
  local dz = model.dec_lstm:backward_projected(dh)                       -- (B, T, 4D)
  s.dz_c, s.dse3_c = ensure(s.dz_c, N, G), ensure(s.dse3_c, N, U2)
  s.dA_c, s.dP = ensure(s.dA_c, N, Tn), ensure(s.dP, nimg * Tn, G):zero()
  if N > 0 then
    core.gather(s.dz_c, dz:reshape(B * Tn, G), s.rows)
    core.sgemm(s.dse3_c, s.dz_c, Ws, false, true)
    core.sgemm(dWs, s.se3_c, s.dz_c, true, false, 1, 1)
    for u = 1, nimg do
      if s.n[u] > 0 then
        local o, n = s.off[u] + 1, s.n[u]
        local dz_u, P_u = s.dz_c:narrow(o, n), s.P:narrow((u - 1) * Tn + 1, Tn)
        core.sgemm(s.dA_c:narrow(o, n), dz_u, P_u, false, true)
        core.sgemm(s.dP:narrow((u - 1) * Tn + 1, Tn), s.A_c:narrow(o, n), dz_u, true, false)
      end
    end
  end
  local fe4u2 = s.fe4u:reshape(nimg * Tn, U2)
  core.sgemm(dWc, fe4u2, s.dP, true, false, 1, 1)
  s.dfe4u = ensure(s.dfe4u, nimg, Tn, U2)
  core.sgemm(s.dfe4u:reshape(nimg * Tn, U2), s.dP, Wc, false, true)
  s.dA = ensure(s.dA, B, Tn, Tn):zero()
  if N > 0 then core.scatter(s.dA:reshape(B * Tn, Tn), s.dA_c, s.rows) end
  local d = model.attn:backward_weights({s.se3, s.fe4_pairs}, s.dA)
  if N > 0 then core.scatter_add(d[1]:reshape(B * Tn, U2), s.dse3_c, s.rows) end
  return d[1], d[2], s.dfe4u
end

return M
