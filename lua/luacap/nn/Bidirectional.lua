-- Bidirectional: Keras' Bidirectional(LSTM(H)) with merge_mode='concat', on two LSTMs and
-- csrc/nn/lstm.c's concat kernel. Masks as in Keras: the backward LSTM runs go_backwards
-- over the reversed padded sequence and mask; with return_sequences its output is
-- re-reversed onto the input positions and both directions output 0 at masked steps.
-- Not a general wrapper: LSTM only, concat only.
local core = require 'luacap.core'
local T = require 'luacap.tensor'
local Module = require 'luacap.nn.Module'
local LSTM = require 'luacap.nn.LSTM'

local Bidirectional = Module:extend('Bidirectional')

-- Bidirectional(C, H, {return_sequences = false, name = 'bidirectional'}):
-- (B, T, C) -> (B, T, 2H) with return_sequences, else (B, 2H) = [last fwd, last bwd].
-- The forward direction is initialised first, then the backward one (Keras' order).
function Bidirectional:init(C, H, opts)
  opts = opts or {}
  self.C, self.H = C, H
  self.name = opts.name or 'bidirectional'
  self.return_sequences = opts.return_sequences or false
  local rs = self.return_sequences
  self.forward_lstm = LSTM(C, H, {return_sequences = rs, zero_output_for_mask = rs,
    name = 'forward_lstm'})
  self.backward_lstm = LSTM(C, H, {return_sequences = rs, zero_output_for_mask = rs,
    go_backwards = true, name = 'backward_lstm'})
  self.children = {self.forward_lstm, self.backward_lstm}
  self.named_children = {{'forward_lstm', self.forward_lstm}, {'backward_lstm', self.backward_lstm}}
end

function Bidirectional:reset()
  self.forward_lstm:reset()
  self.backward_lstm:reset()
  return self
end

local function merge(self, yf, yb, B, Tn)
  local H = self.H
  if self.return_sequences then
    self.out = T.ensure(self.out, B, Tn, 2 * H)
  else
    self.out = T.ensure(self.out, B, 2 * H)
  end
  core.bidir_concat_forward(self.out, yf, yb, self.return_sequences)
  return self.out
end

-- x (B, T, C), mask (B, T) of 1/0 or nil.
function Bidirectional:forward(x, mask)
  self.steps, self.prefix = nil, nil
  local yf, yb = LSTM.forward_pair(self.forward_lstm, x, mask, self.backward_lstm, x, mask)
  return merge(self, yf, yb, x:size(1), x:size(2))
end

-- x (B, C) repeated over `steps` (Keras' RepeatVector(steps) then this layer), without
-- building the (B, steps, C) input; backward(x, dout) then returns dx (B, C).
function Bidirectional:forward_repeated(x, steps, mask)
  self.steps, self.prefix = steps, nil
  local yf, yb = LSTM.forward_pair(self.forward_lstm, x, mask, self.backward_lstm, x, mask, steps)
  return merge(self, yf, yb, x:size(1), steps)
end

-- Prefix sharing (return_sequences, pre-padded prefixes): x_r (R, T, C) and mask_r (R, T)
-- hold R representative sequences; pair b is the prefix of rep[b] (1-based) that ends
-- shift[b] steps before it, i.e. x[b, t] = x_r[rep[b], t - shift[b]]. The forward
-- direction runs once per representative (a prefix's forward states are its
-- representative's, shifted); the backward direction runs per pair, on its input
-- projection x @ kernel computed once per representative row and gathered to the pairs.
-- Returns out (B, T, 2H), the same as forward(x, mask) on the pairs' sequences;
-- self.pair_mask (B, T) is the pairs' mask. self.prefix keeps the compact rows (below).
-- backward_prefixes(dout) -> dx_r (R, T, C).
--
-- Compact rows: frows the representatives' real rows of the (R T) flattening, fpos[r] the
-- position in frows of such a row r; rows the pairs' real rows of the (B T) flattening,
-- fidx[k] the position in frows of rows[k]'s representative row.
local function compact_rows(mask_r, pair_mask, rep, shift)
  local Tn = mask_r:size(2)
  local rm, frows, fpos = mask_r:flat(), {}, {}
  for r = 1, #rm do
    if rm[r] ~= 0 then frows[#frows + 1] = r; fpos[r] = #frows end
  end
  local pm, rows, fidx = pair_mask:flat(), {}, {}
  for b = 1, #rep do
    for t = 1, Tn do
      if pm[(b - 1) * Tn + t] ~= 0 then
        rows[#rows + 1] = (b - 1) * Tn + t
        fidx[#rows] = fpos[(rep[b] - 1) * Tn + t - shift[b]]
      end
    end
  end
  return frows, fpos, rows, fidx
end

function Bidirectional:forward_prefixes(x_r, mask_r, rep, shift)
  assert(self.return_sequences, 'Bidirectional ' .. self.name .. ': forward_prefixes needs return_sequences')
  local B, Tn, R, C = #rep, x_r:size(2), x_r:size(1), self.C
  local G = 4 * self.H
  local pr = {x_r = x_r, rep = rep, shift = shift}
  self.steps, self.prefix = nil, pr
  self.pair_mask = T.ensure(self.pair_mask, B, Tn)
  core.shift_gather(self.pair_mask:reshape(B, Tn, 1), mask_r:reshape(R, Tn, 1), rep, shift)
  pr.frows, pr.fpos, pr.rows, pr.fidx = compact_rows(mask_r, self.pair_mask, rep, shift)
  local Nr, N = #pr.frows, #pr.rows
  -- zp (B, T, 4H): each pair's x @ kernel of the backward LSTM, from its representative's
  local ensure = T.ensure_capacity
  self.xr_c, self.zr_c = ensure(self.xr_c, Nr, C), ensure(self.zr_c, Nr, G)
  self.zp_c, self.zp = ensure(self.zp_c, N, G), ensure(self.zp, B, Tn, G)
  if N > 0 then
    core.gather(self.xr_c, x_r:reshape(R * Tn, C), pr.frows)
    core.sgemm(self.zr_c, self.xr_c, self.backward_lstm.kernel)
    core.gather(self.zp_c, self.zr_c, pr.fidx)
    core.scatter(self.zp:reshape(B * Tn, G), self.zp_c, pr.rows)   -- masked rows: never read
  end
  local yf_r, yb = LSTM.forward_pair(self.forward_lstm, x_r, mask_r, self.backward_lstm, self.zp,
    self.pair_mask, nil, true)
  self.yfp = T.ensure(self.yfp, B, Tn, self.H)
  core.shift_gather(self.yfp, yf_r, rep, shift)
  return merge(self, self.yfp, yb, B, Tn)
end

-- extra (or nil): {dyf_r = (R, T, H), dyb = (B, T, H)}, gradients of the
-- representatives' forward outputs and of the pairs' backward outputs (in the backward
-- LSTM's processing order) from a consumer that read them itself, added to dout's.
function Bidirectional:backward_prefixes(dout, extra)
  local pr = assert(self.prefix, 'Bidirectional ' .. self.name .. ': backward_prefixes before forward_prefixes')
  local B, Tn, H, C = #pr.rep, pr.x_r:size(2), self.H, self.C
  local R, G, Nr, N = pr.x_r:size(1), 4 * H, #pr.frows, #pr.rows
  self.dyf = T.ensure(self.dyf, B, Tn, H)
  self.dyb = T.ensure(self.dyb, B, Tn, H)
  core.bidir_concat_backward(self.dyf, self.dyb, dout, true)
  -- yf = shift(yf_r)  =>  dyf_r = shift^T(dyf)
  self.dyf_r = T.ensure(self.dyf_r, R, Tn, H):zero()
  core.shift_scatter_add(self.dyf_r, self.dyf, pr.rep, pr.shift)
  if extra then
    self.dyf_r:add(extra.dyf_r)
    self.dyb:add(extra.dyb)
  end
  local bl = self.backward_lstm
  local dxf, dzp = LSTM.backward_pair(self.forward_lstm, pr.x_r, self.dyf_r, bl, self.zp, self.dyb)
  self.dxr = T.ensure(self.dxr, R, Tn, C):copy(dxf)
  -- zp[rows] = (xr_c @ kernel)[fidx]  =>  dzr_c = scatter-add of the pairs' dzp by fidx;
  -- dkernel += xr_c^T @ dzr_c;  dx_r[frows] += dzr_c @ kernel^T
  local ensure = T.ensure_capacity
  self.dzp_c, self.dzr_c = ensure(self.dzp_c, N, G), ensure(self.dzr_c, Nr, G):zero()
  self.dxr_c = ensure(self.dxr_c, Nr, C)
  if N > 0 then
    core.gather(self.dzp_c, dzp:reshape(B * Tn, G), pr.rows)
    core.scatter_add(self.dzr_c, self.dzp_c, pr.fidx)
    core.sgemm(bl.dkernel, self.xr_c, self.dzr_c, true, false, 1, 1)
    core.sgemm(self.dxr_c, self.dzr_c, bl.kernel, false, true)
    core.scatter_add(self.dxr:reshape(R * Tn, C), self.dxr_c, pr.frows)
  end
  return self.dxr
end

-- dout shaped like the output -> dx shaped like x; adds into both directions' gradients.
function Bidirectional:backward(x, dout)
  local B, H = x:size(1), self.H
  local Tn = self.steps or x:size(2)
  if self.return_sequences then
    self.dyf = T.ensure(self.dyf, B, Tn, H)
    self.dyb = T.ensure(self.dyb, B, Tn, H)
  else
    self.dyf = T.ensure(self.dyf, B, H)
    self.dyb = T.ensure(self.dyb, B, H)
  end
  core.bidir_concat_backward(self.dyf, self.dyb, dout, self.return_sequences)
  local dx
  if self.steps then
    self.dx1 = T.ensure(self.dx1, B, self.C)
    dx = self.dx1
  else
    self.dx = T.ensure(self.dx, B, Tn, self.C)
    dx = self.dx
  end
  local dxf, dxb = LSTM.backward_pair(self.forward_lstm, x, self.dyf, self.backward_lstm, x, self.dyb)
  dx:copy(dxf)
  dx:add(dxb)
  return dx
end

return Bidirectional
