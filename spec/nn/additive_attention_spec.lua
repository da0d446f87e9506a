-- Specs of csrc/nn/additive_attention.c (Show-Attend-Tell's attention step) and lstm.c's
-- cached cell: a hand case, fast against *_ref, central differences of every input.
local luacap = require 'luacap'
local core = luacap.core
local T = require 'luacap.tensor'
local gradcheck = require 'spec.helpers.gradcheck'

local B, L, A, D = 2, 5, 3, 4

local function inputs()
  luacap.seed(7)
  return {encp = T.randn(B, L, A), hp = T.randn(B, A), feats = T.randn(B, L, D),
    w = T.randn(A), g = T.randn(B)}
end

local function forward(x, ref)
  local o = {zg = T.zeros(B, D), z = T.zeros(B, D), alpha = T.zeros(B, L), beta = T.zeros(B)}
  local fn = ref and core.additive_attention_forward_ref or core.additive_attention_forward
  fn(o.zg, o.z, o.alpha, o.beta, x.encp, x.hp, x.feats, x.w, x.g)
  return o
end

describe('additive_attention', function()
  it('with w = 0 attends uniformly: z is the mean region, zg = sigmoid(g) z', function()
    local x = inputs()
    x.w:zero()
    x.g = T.zeros(B)                    -- beta = sigmoid(0) = 0.5
    local o = forward(x)
    for b = 1, B do
      for l = 1, L do assert.is_near(1 / L, o.alpha:get(b, l), 1e-6) end
      for d = 1, D do
        local mean = 0
        for l = 1, L do mean = mean + x.feats:get(b, l, d) / L end
        assert.is_near(mean, o.z:get(b, d), 1e-5)
        assert.is_near(0.5 * mean, o.zg:get(b, d), 1e-5)
      end
    end
  end)

  it('matches the reference and its weights sum to 1', function()
    local x = inputs()
    local f, r = forward(x), forward(x, true)
    for _, k in ipairs({'zg', 'z', 'alpha', 'beta'}) do
      local a, b = f[k]:flat(), r[k]:flat()
      for i = 1, #a do assert.is_near(b[i], a[i], 1e-5) end
    end
    for b = 1, B do
      local s = 0
      for l = 1, L do s = s + f.alpha:get(b, l) end
      assert.is_near(1, s, 1e-6)
    end
  end)

  for _, ref in ipairs({false, true}) do
    it('backward' .. (ref and ' (ref)' or '') .. ' agrees with central differences', function()
      local x = inputs()
      local function fwd()
        local o = forward(x, ref)
        -- out = [zg, alpha] flattened so one R checks both paths
        local out = T.zeros(B, D + L)
        local zf, af, flat = o.zg:flat(), o.alpha:flat(), {}
        for b = 1, B do
          for d = 1, D do flat[#flat + 1] = zf[(b - 1) * D + d] end
          for l = 1, L do flat[#flat + 1] = af[(b - 1) * L + l] end
        end
        out:copy(core.from_flat(flat, {B, D + L}))
        return out, o
      end
      local ok, report = gradcheck.check{
        forward = function() return (fwd()) end,
        backward = function(R)
          local _, o = fwd()
          local rf = R:flat()
          local dzg, dal = {}, {}
          for b = 1, B do
            for d = 1, D do dzg[#dzg + 1] = rf[(b - 1) * (D + L) + d] end
            for l = 1, L do dal[#dal + 1] = rf[(b - 1) * (D + L) + D + l] end
          end
          local g = {encp = T.zeros(B, L, A), hp = T.zeros(B, A), feats = T.zeros(B, L, D),
            w = T.zeros(A), g = T.zeros(B)}
          local fn = ref and core.additive_attention_backward_ref or core.additive_attention_backward
          fn(g.encp, g.hp, g.feats, g.w, g.g, T.zeros(B, L + A), core.from_flat(dzg, {B, D}),
            core.from_flat(dal, {B, L}), o.z, o.alpha, o.beta, x.encp, x.hp, x.feats, x.w)
          return g
        end,
        wrt = x, coords = 60, eps = 1e-2, tol = 1e-2,
      }
      assert.is_true(ok, report)
    end)
  end

  it('names the wrong shape', function()
    local x = inputs()
    local o = forward(x)
    assert.has_error(function()
      core.additive_attention_forward(o.zg, o.z, o.alpha, o.beta, x.encp, T.zeros(B, A + 1),
        x.feats, x.w, x.g)
    end, 'additive_attention_forward: hp has shape (2, 4), expected (2, 3) = (B, A)')
  end)
end)

describe('lstm_cell', function()
  it('with zero pre-activations: every gate 0.5, c = 0.5 c_prev, h = 0.5 tanh(c)', function()
    local h, c, g = T.zeros(1, 2), T.zeros(1, 2), T.zeros(1, 8)
    local cp = luacap.tensor{{1, -2}}
    core.lstm_cell_forward(h, c, g, cp)
    -- i = f = o = sigmoid(0) = 0.5, g = tanh(0) = 0: c = 0.5 c_prev + 0.5 * 0
    assert.is_near(0.5, c:get(1, 1), 1e-6)
    assert.is_near(-1, c:get(1, 2), 1e-6)
    assert.is_near(0.5 * math.tanh(0.5), h:get(1, 1), 1e-6)
    assert.is_near(0.5 * math.tanh(-1), h:get(1, 2), 1e-6)
  end)

  it('backward agrees with central differences', function()
    luacap.seed(5)
    local Bn, H = 3, 2
    local z, cp = T.randn(Bn, 4 * H), T.randn(Bn, H)
    local h, c, g = T.zeros(Bn, H), T.zeros(Bn, H), T.zeros(Bn, 4 * H)
    local function fwd()
      g:copy(z)
      core.lstm_cell_forward(h, c, g, cp)
      local out = T.zeros(Bn, 2 * H)
      local hf, cf, flat = h:flat(), c:flat(), {}
      for b = 1, Bn do
        for k = 1, H do flat[#flat + 1] = hf[(b - 1) * H + k] end
        for k = 1, H do flat[#flat + 1] = cf[(b - 1) * H + k] end
      end
      out:copy(core.from_flat(flat, {Bn, 2 * H}))
      return out
    end
    local ok, report = gradcheck.check{
      forward = fwd,
      backward = function(R)
        fwd()
        local rf, dh, dc = R:flat(), {}, {}
        for b = 1, Bn do
          for k = 1, H do dh[#dh + 1] = rf[(b - 1) * 2 * H + k] end
          for k = 1, H do dc[#dc + 1] = rf[(b - 1) * 2 * H + H + k] end
        end
        local dz, dct = T.zeros(Bn, 4 * H), core.from_flat(dc, {Bn, H})
        core.lstm_cell_backward(dz, dct, core.from_flat(dh, {Bn, H}), g, c, cp)
        return {z = dz, cp = dct}
      end,
      wrt = {z = z, cp = cp}, eps = 1e-2, tol = 1e-2,
    }
    assert.is_true(ok, report)
  end)
end)
