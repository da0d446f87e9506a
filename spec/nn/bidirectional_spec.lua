-- Specs for luacap.nn.Bidirectional: Keras' masked behaviour (zeros at padded steps, the
-- backward direction reading the real tokens last to first), the concat layout,
-- parameter names, finite differences and accumulation.
local luacap = require 'luacap'
local gradcheck = require 'helpers.gradcheck'
local nn = luacap.nn

-- x (B, T, C) steps t1..t2 (reversed when reverse) of batch element b, as (1, n, C).
local function slice_t(x, b, t1, t2, reverse)
  local C = x:size(3)
  local out = luacap.zeros(1, t2 - t1 + 1, C)
  for t = t1, t2 do
    local to = reverse and (t2 - t + 1) or (t - t1 + 1)
    for c = 1, C do out:set(1, to, c, x:get(b, t, c)) end
  end
  return out
end

local copy_weights = require('helpers.util').copy_weights

describe('nn.Bidirectional', function()
  it('names its parameters forward_lstm.* then backward_lstm.*', function()
    local bi = nn.Bidirectional(3, 2, {return_sequences = true})
    local names = {}
    for _, p in ipairs(bi:parameters()) do names[#names + 1] = p.name end
    assert.same({'forward_lstm.kernel', 'forward_lstm.recurrent_kernel', 'forward_lstm.bias',
      'backward_lstm.kernel', 'backward_lstm.recurrent_kernel', 'backward_lstm.bias'}, names)
    assert.equal(2 * (3 * 8 + 2 * 8 + 8), bi:num_params())
  end)

  it('follows Keras under a pre-padding mask', function()
    luacap.seed(21)
    local C, H = 3, 4
    local bi = nn.Bidirectional(C, H, {return_sequences = true})
    local x = luacap.randn(2, 5, C)
    local mask = luacap.tensor{{0, 0, 1, 1, 1}, {1, 1, 1, 1, 1}}   -- row 1: [0 0 a b c]
    local y = bi:forward(x, mask):clone()
    assert.same({2, 5, 2 * H}, y:shape())
    -- zeros in both halves at the padded steps
    for t = 1, 2 do
      for k = 1, 2 * H do assert.equal(0, y:get(1, t, k)) end
    end
    -- plain LSTMs with the same weights on the unpadded sequence
    local f = nn.LSTM(C, H, {return_sequences = true})
    local b = nn.LSTM(C, H, {return_sequences = true})
    copy_weights(f, bi.forward_lstm)
    copy_weights(b, bi.backward_lstm)
    local yf = f:forward(slice_t(x, 1, 3, 5)):clone()         -- a b c
    local yb = b:forward(slice_t(x, 1, 3, 5, true)):clone()   -- c b a
    for s = 1, 3 do
      for k = 1, H do
        -- forward half at position 2+s has read a..(that token)
        assert.near(yf:get(1, s, k), y:get(1, 2 + s, k), 1e-6)
        -- backward half at position 6-s has read c..(that token): at a (position 3) all
        -- three real tokens, at c (position 5) only c
        assert.near(yb:get(1, s, k), y:get(1, 6 - s, H + k), 1e-6)
      end
    end
    -- an unmasked row equals the same without a mask
    local ynm = bi:forward(slice_t(x, 2, 1, 5))
    for t = 1, 5 do
      for k = 1, 2 * H do assert.near(ynm:get(1, t, k), y:get(2, t, k), 1e-6) end
    end
  end)

  it('concatenates the last outputs without return_sequences', function()
    luacap.seed(22)
    local C, H = 3, 2
    local bi = nn.Bidirectional(C, H)
    local x = luacap.randn(1, 4, C)
    local y = bi:forward(x, luacap.tensor{{0, 1, 1, 1}}):clone()
    assert.same({1, 2 * H}, y:shape())
    local f, b = nn.LSTM(C, H), nn.LSTM(C, H)
    copy_weights(f, bi.forward_lstm)
    copy_weights(b, bi.backward_lstm)
    local lf = f:forward(slice_t(x, 1, 2, 4)):clone()
    local lb = b:forward(slice_t(x, 1, 2, 4, true))   -- read last to first: ends on token 2
    for k = 1, H do
      assert.near(lf:get(1, k), y:get(1, k), 1e-6)
      assert.near(lb:get(1, k), y:get(1, H + k), 1e-6)
    end
  end)

  for _, rs in ipairs{true, false} do
    it('passes a finite-difference check with a mask, return_sequences=' .. tostring(rs), function()
      luacap.seed(23)
      local bi = nn.Bidirectional(3, 3, {return_sequences = rs})
      local x = luacap.randn(2, 4, 3)
      local mask = luacap.tensor{{0, 0, 1, 1}, {1, 1, 0, 1}}
      local ok, report = gradcheck.module_check(bi, {
        coords = 30, tol = 2e-2, input = x,
        forward = function() return bi:forward(x, mask) end,
        backward = function(R) return bi:backward(x, R) end,
      })
      assert(ok, report)
    end)
  end

  it('accumulates: backward twice gives twice the gradients', function()
    luacap.seed(24)
    local bi = nn.Bidirectional(3, 2, {return_sequences = true})
    local x = luacap.randn(2, 3, 3)
    local dout = luacap.randn(2, 3, 4)
    bi:forward(x)
    bi:zero_grad()
    local dx1 = bi:backward(x, dout):clone()
    local g1 = {}
    for i, p in ipairs(bi:parameters()) do g1[i] = p.grad:clone() end
    local dx2 = bi:backward(x, dout)
    for i = 1, dx1:numel() do assert.near(dx1:flat()[i], dx2:flat()[i], 1e-6) end
    for i, p in ipairs(bi:parameters()) do
      local a, b = g1[i]:flat(), p.grad:flat()
      for j = 1, #a do assert.near(2 * a[j], b[j], 1e-5 * math.max(1, math.abs(b[j]))) end
    end
  end)
  it('forward_repeated equals RepeatVector then forward, fast and reference', function()
    for _, rs in ipairs{false, true} do
      for _, use_ref in ipairs{false, true} do
        luacap.seed(41)
        local B, Tn, C, H = 3, 5, 4, 2
        local a = nn.Bidirectional(C, H, {return_sequences = rs})
        local b = nn.Bidirectional(C, H, {return_sequences = rs})
        copy_weights(b.forward_lstm, a.forward_lstm)
        copy_weights(b.backward_lstm, a.backward_lstm)
        a.forward_lstm.use_ref, a.backward_lstm.use_ref = use_ref, use_ref
        local x = luacap.randn(B, C)
        local rv = nn.RepeatVector(Tn)
        local xr = rv:forward(x)
        local mask = luacap.tensor{{0, 0, 1, 1, 1}, {1, 1, 1, 1, 1}, {0, 1, 0, 1, 1}}
        local ya = a:forward_repeated(x, Tn, mask):clone()
        local yb = b:forward(xr, mask)
        local fa, fb = ya:flat(), yb:flat()
        for i = 1, #fa do assert.near(fb[i], fa[i], 1e-5) end
        local dout = luacap.randn(ya:shape())
        a:zero_grad(); b:zero_grad()
        local dxa = a:backward(x, dout):flat()
        local dxb = rv:backward(x, b:backward(xr, dout)):flat()
        assert.equal(#dxb, #dxa)
        for i = 1, #dxa do assert.near(dxb[i], dxa[i], 1e-4) end
        for i, p in ipairs(a:parameters()) do
          local ga, gb = p.grad:flat(), b:parameters()[i].grad:flat()
          for j = 1, #ga do assert.near(gb[j], ga[j], 1e-4) end
        end
      end
    end
  end)
end)
