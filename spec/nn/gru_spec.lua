-- Specs for luacap.nn.GRU and csrc/nn/gru.c (Keras GRU, reset_after=True): a hand-computed
-- 1-unit sequence, masks, initial state, the decoding step, finite differences (inputs and
-- every parameter, with and without a mask), accumulation, sgemm path against the
-- plain-loop reference, Keras' parameter count, error messages.
local luacap = require 'luacap'
local gradcheck = require 'helpers.gradcheck'
local core = luacap.core
local nn = luacap.nn

local util = require 'helpers.util'
local close, row, copy_weights, slice_t = util.close, util.row, util.copy_weights, util.slice_t

local function sigmoid(a) return 1 / (1 + math.exp(-a)) end

-- Gradient check with an optional mask and initial state: L = sum(out * R).
local function check_gru(l, x, mask, state)
  return gradcheck.module_check(l, {
    coords = 40, eps = 1e-2, tol = 2e-2, input = x,
    forward = function() return l:forward(x, mask, state) end,
    backward = function(R) return l:backward(x, R) end,
    state = state and {h0 = state.h},
    state_grads = state and function() return {h0 = l.dstate.h} end,
  })
end

describe('nn.GRU', function()
  it('matches a hand-computed 1-unit, 2-step sequence', function()
    local l = nn.GRU(1, 1, {return_sequences = true})
    local k = {0.5, -0.4, 0.8}                    -- kernel (1, 3): z, r, h
    local u = {0.3, 0.6, -0.7}                    -- recurrent_kernel (1, 3)
    local bi, br = {0.1, 0.0, -0.2}, {0.0, 0.2, 0.3}   -- bias (2, 3): input, recurrent
    l.kernel:copy(luacap.tensor{k}); l.recurrent_kernel:copy(luacap.tensor{u})
    l.bias:copy(luacap.tensor{bi, br})
    -- step 1 (h0 = 0): xz = (0.6, -0.4, 0.6), rz = (0, 0.2, 0.3)
    --   z = sigmoid(0.6) = 0.6456563, r = sigmoid(-0.2) = 0.4501660
    --   hh = tanh(0.6 + 0.4501660 * 0.3) = tanh(0.7350498) = 0.6261450
    --   h1 = z * 0 + (1 - z) * hh = 0.3543437 * 0.6261450 = 0.2218705
    -- step 2: xz = (-0.9, 0.8, -1.8), rz = 0.2218705 * u + br = (0.0665612, 0.3331223, 0.1446906)
    --   z = sigmoid(-0.8334388) = 0.3029184, r = sigmoid(1.1331223) = 0.7564147
    --   hh = tanh(-1.8 + 0.7564147 * 0.1446906) = tanh(-1.6905539) = -0.9342177
    --   h2 = 0.3029184 * 0.2218705 + 0.6970816 * -0.9342177 = -0.5840173
    local y = l:forward(luacap.tensor{{{1.0}, {-2.0}}})
    assert.near(0.2218705, y:get(1, 1, 1), 1e-6)
    assert.near(-0.5840173, y:get(1, 2, 1), 1e-6)
    -- and the equations scalar by scalar agree with the comment
    local h = 0
    for _, x in ipairs{1.0, -2.0} do
      local z = sigmoid(x * k[1] + bi[1] + h * u[1] + br[1])
      local r = sigmoid(x * k[2] + bi[2] + h * u[2] + br[2])
      local hh = math.tanh(x * k[3] + bi[3] + r * (h * u[3] + br[3]))
      h = z * h + (1 - z) * hh
    end
    assert.near(-0.5840173, h, 1e-7)
    -- the reference path and the last-output mode give the same numbers
    l.use_ref = true
    assert.near(-0.5840173, l:forward(luacap.tensor{{{1.0}, {-2.0}}}):get(1, 2, 1), 1e-6)
    l.use_ref, l.return_sequences = false, false
    assert.near(-0.5840173, l:forward(luacap.tensor{{{1.0}, {-2.0}}}):get(1, 1), 1e-6)
  end)

  it('carries h over a masked step', function()
    luacap.seed(3)
    local l = nn.GRU(3, 4, {return_sequences = true})
    l.bias:copy(luacap.uniform(-0.5, 0.5, 2, 12))
    local x = luacap.randn(2, 3, 3)
    local mask = luacap.tensor{{1, 0, 1}, {1, 1, 1}}
    local y = l:forward(x, mask):clone()
    assert.same(row(y, 1, 1), row(y, 1, 2))         -- the carried output
    for k = 1, 4 do assert.equal(l.hs:get(1, 1, k), l.hs:get(2, 1, k)) end
    assert.is_not.equal(y:get(1, 1, 1), y:get(1, 3, 1))
    -- equals the sequence without the masked step
    local x2 = luacap.zeros(1, 2, 3)
    for c = 1, 3 do x2:set(1, 1, c, x:get(1, 1, c)); x2:set(1, 2, c, x:get(1, 3, c)) end
    local y2 = l:forward(x2)
    for k = 1, 4 do assert.near(y2:get(1, 2, k), y:get(1, 3, k), 1e-6) end
    -- a pre-padded row: zero outputs before the first real step, then as if unpadded
    local yp = l:forward(x, luacap.tensor{{0, 0, 1}, {1, 1, 1}}):clone()
    assert.same({0, 0, 0, 0}, row(yp, 1, 1))
    local bare = l:forward(slice_t(x, 3, 3))
    for k = 1, 4 do assert.near(bare:get(1, 1, k), yp:get(1, 3, k), 1e-6) end
    -- last-output mode returns the last real step's output
    l.return_sequences = false
    local last = l:forward(x, luacap.tensor{{1, 1, 0}, {1, 1, 1}})
    l.return_sequences = true
    local full = l:forward(slice_t(x, 1, 2))
    for k = 1, 4 do assert.near(full:get(1, 2, k), last:get(1, k), 1e-6) end
  end)

  it('step equals forward step by step; an initial state continues a sequence', function()
    luacap.seed(6)
    local l = nn.GRU(3, 4, {return_sequences = true})
    l.bias:copy(luacap.uniform(-0.5, 0.5, 2, 12))
    local x = luacap.randn(2, 4, 3)
    local y = l:forward(x):clone()
    local state
    for t = 1, 4 do
      local h
      h, state = l:step(slice_t(x, t, t):reshape(2, 3), state)
      for b = 1, 2 do
        for k = 1, 4 do assert.near(y:get(b, t, k), h:get(b, k), 1e-6) end
      end
    end
    local h2 = luacap.zeros(2, 4); h2:copy(slice_t(y, 2, 2))
    close(slice_t(y, 3, 4), l:forward(slice_t(x, 3, 4), nil, {h = h2}), 1e-6)
  end)

  it('initialises as Keras: glorot-uniform kernel, orthogonal recurrent kernel, zero bias', function()
    luacap.seed(8)
    local l = nn.GRU(5, 6)
    local W = l.recurrent_kernel                 -- (H, 3H): rows orthonormal
    local P = luacap.zeros(6, 6)
    core.sgemm(P, W, W, false, true)
    for i = 1, 6 do
      for j = 1, 6 do assert.near(i == j and 1 or 0, P:get(i, j), 1e-5) end
    end
    local limit = math.sqrt(6 / (5 + 18))
    assert.is_true(l.kernel:max() <= limit and l.kernel:min() >= -limit)
    assert.is_true(l.kernel:max() > limit / 2)
    assert.same({2, 18}, l.bias:shape())
    assert.equal(0, l.bias:norm())
    local names = {}
    for _, p in ipairs(l:parameters()) do names[#names + 1] = p.name end
    assert.same({'kernel', 'recurrent_kernel', 'bias'}, names)
  end)

  it("counts Keras' parameters: 3 * H * (C + H + 2) with reset_after", function()
    for _, d in ipairs{{5, 6}, {300, 256}, {1, 1}} do
      local C, H = d[1], d[2]
      local n = nn.GRU(C, H):num_params()
      assert.equal(3 * (C * H + H * H + 2 * H), n)
      assert.equal(3 * H * (C + H + 2), n)
    end
    assert.equal(428544, nn.GRU(300, 256):num_params())   -- 3*256*(300+256+2)
  end)

  for _, case in ipairs{
    {rs = true, mask = false}, {rs = false, mask = false},
    {rs = true, mask = true}, {rs = false, mask = true},
  } do
    local label = string.format('return_sequences=%s mask=%s', tostring(case.rs), tostring(case.mask))
    for _, ref in ipairs{false, true} do
      it('passes a finite-difference check, ' .. label .. (ref and ' (reference path)' or ''), function()
        luacap.seed(11)
        local l = nn.GRU(3, 4, {return_sequences = case.rs})
        l.use_ref = ref
        l.bias:copy(luacap.uniform(-0.5, 0.5, 2, 12))
        local x = luacap.randn(2, 4, 3)
        -- a pre-padded row and a row with a hole and post-padding
        local mask = case.mask and luacap.tensor{{0, 1, 1, 1}, {1, 0, 1, 0}} or nil
        local ok, report = check_gru(l, x, mask)
        assert(ok, report)
      end)
    end
  end

  it('passes a finite-difference check through an initial state', function()
    luacap.seed(12)
    local l = nn.GRU(2, 3, {return_sequences = true})
    l.bias:copy(luacap.uniform(-0.5, 0.5, 2, 9))
    local x = luacap.randn(2, 3, 2)
    local state = {h = luacap.uniform(-0.5, 0.5, 2, 3)}
    local ok, report = check_gru(l, x, luacap.tensor{{1, 0, 1}, {0, 1, 1}}, state)
    assert(ok, report)
  end)

  it('accumulates: backward twice gives twice the gradients', function()
    luacap.seed(13)
    local l = nn.GRU(3, 4, {return_sequences = true})
    local x = luacap.randn(2, 5, 3)
    local mask = luacap.tensor{{0, 0, 1, 1, 1}, {1, 1, 1, 1, 1}}
    local dout = luacap.randn(2, 5, 4)
    local dx1, dx2, g1 = util.backward_twice(l, x, mask, dout)
    close(dx1, dx2, 1e-6)   -- dx is written, not added
    for i, p in ipairs(l:parameters()) do close(g1[i]:clone():scale(2), p.grad, 1e-5) end
  end)

  it('agrees with the plain-loop reference on odd shapes', function()
    for _, dims in ipairs{{1, 1, 1, 1}, {3, 5, 7, 5}, {5, 7, 3, 2}, {2, 1, 4, 3}} do
      for _, rs in ipairs{false, true} do
        for _, with_h0 in ipairs{false, true} do
          local B, Tn, C, H = dims[1], dims[2], dims[3], dims[4]
          luacap.seed(14)
          local fast = nn.GRU(C, H, {return_sequences = rs})
          fast.bias:copy(luacap.uniform(-0.5, 0.5, 2, 3 * H))
          local ref = nn.GRU(C, H, {return_sequences = rs})
          copy_weights(ref, fast)
          ref.use_ref = true
          local x = luacap.randn(B, Tn, C)
          local mask = luacap.zeros(B, Tn)
          for b = 1, B do
            for t = 1, Tn do mask:set(b, t, (b + t) % 3 == 0 and 0 or 1) end
          end
          local state = with_h0 and {h = luacap.randn(B, H)} or nil
          close(ref:forward(x, mask, state), fast:forward(x, mask, state), 1e-5)
          close(ref.hs, fast.hs, 1e-5)
          local dout = luacap.randn(fast.out:shape())
          fast:zero_grad(); ref:zero_grad()
          close(ref:backward(x, dout), fast:backward(x, dout), 1e-4)
          for i, p in ipairs(fast:parameters()) do close(ref:parameters()[i].grad, p.grad, 1e-4) end
          if with_h0 then close(ref.dstate.h, fast.dstate.h, 1e-4) end
        end
      end
    end
  end)

  it('names the argument and the shapes in its errors', function()
    local l = nn.GRU(3, 2)
    assert.has_error(function() l:forward(luacap.zeros(2, 4, 5)) end,
      'GRU gru: x has shape (2, 4, 5), expected (B, T, 3)')
    assert.has_error(function() l:forward(luacap.zeros(2, 4, 3), luacap.zeros(2, 5)) end,
      'gru_forward: mask has shape (2, 5), expected (2, 4) = (B, T)')
    assert.has_error(function() l:step(luacap.zeros(2, 4)) end,
      'GRU gru: x_t has shape (2, 4), expected (B, 3)')
    local k = luacap.zeros(3, 6)
    assert.has_error(function()
      core.gru_forward(luacap.zeros(2, 2), luacap.zeros(4, 2, 6), luacap.zeros(4, 2, 6),
        luacap.zeros(4, 2, 2), luacap.zeros(2, 4, 6), luacap.zeros(2, 4, 3), nil, k,
        luacap.zeros(2, 6), luacap.zeros(6))
    end, 'gru_forward: bias has shape (6), expected (2, 6) = (2, 3H)')
    assert.has_error(function()
      core.gru_forward(luacap.zeros(2, 2), luacap.zeros(4, 2, 6), luacap.zeros(4, 2, 6),
        luacap.zeros(4, 2, 2), luacap.zeros(2, 4, 6), luacap.zeros(2, 4, 3), nil,
        luacap.zeros(3, 7), luacap.zeros(2, 6), luacap.zeros(2, 6))
    end, 'gru_forward: kernel has 7 columns, expected a positive multiple of 3 (3H)')
  end)
end)
