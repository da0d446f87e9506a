-- Specs for luacap.nn.Attention and csrc/nn/attention.c: softmax rows sum to 1, uniform
-- weights for zero queries, a hand-computed case, finite differences for both inputs,
-- the sgemm path against the plain-loop reference, errors.
local luacap = require 'luacap'
local gradcheck = require 'helpers.gradcheck'
local core = luacap.core
local nn = luacap.nn

local close = require('helpers.util').close

describe('nn.Attention', function()
  it('gives weights that sum to 1 over the image steps', function()
    luacap.seed(31)
    local attn = nn.Attention()
    local q, v = luacap.randn(2, 3, 4), luacap.randn(2, 5, 4)
    local ctx = attn:forward({q, v})
    assert.same({2, 3, 4}, ctx:shape())
    assert.same({2, 3, 5}, attn.weights:shape())
    for b = 1, 2 do
      for i = 1, 3 do
        local s = 0
        for j = 1, 5 do s = s + attn.weights:get(b, i, j) end
        assert.near(1, s, 1e-6)
      end
    end
  end)

  it('is uniform for a zero query: the context is the mean of v', function()
    local attn = nn.Attention()
    local v = luacap.tensor{{{1, 2}, {3, -4}, {5, 8}}}   -- (1, 3, 2)
    local ctx = attn:forward({luacap.zeros(1, 1, 2), v})
    for j = 1, 3 do assert.near(1 / 3, attn.weights:get(1, 1, j), 1e-7) end
    -- mean of v rows: ((1+3+5)/3, (2-4+8)/3) = (3, 2)
    assert.near(3, ctx:get(1, 1, 1), 1e-6)
    assert.near(2, ctx:get(1, 1, 2), 1e-6)
  end)

  it('matches a hand-computed two-step case', function()
    local attn = nn.Attention()
    -- q = (1, 0); v1 = (2, 1), v2 = (0, 3): scores 2 and 0
    -- w = (e^2, 1) / (e^2 + 1) = (0.8807971, 0.1192029)
    -- ctx = 0.8807971*(2, 1) + 0.1192029*(0, 3) = (1.7615942, 1.2384058)
    local ctx = attn:forward({luacap.tensor{{{1, 0}}}, luacap.tensor{{{2, 1}, {0, 3}}}})
    assert.near(0.8807971, attn.weights:get(1, 1, 1), 1e-6)
    assert.near(1.7615942, ctx:get(1, 1, 1), 1e-6)
    assert.near(1.2384058, ctx:get(1, 1, 2), 1e-6)
  end)

  it('subtracts the max: large scores stay finite', function()
    local attn = nn.Attention()
    local ctx = attn:forward({luacap.tensor{{{100, 0}}}, luacap.tensor{{{100, 0}, {99, 0}}}})
    -- scores 10000 and 9900: the first takes all the weight
    assert.near(1, attn.weights:get(1, 1, 1), 1e-6)
    assert.near(100, ctx:get(1, 1, 1), 1e-4)
  end)

  it('passes a finite-difference check for q and v', function()
    luacap.seed(32)
    local attn = nn.Attention()
    local q, v = luacap.randn(2, 3, 4), luacap.randn(2, 5, 4)
    local ok, report = gradcheck.inputs_check(attn, {'q', 'v'}, {q, v}, nil, {coords = 40})
    assert(ok, report)
  end)

  it('agrees with the plain-loop reference on odd shapes', function()
    for _, dims in ipairs{{1, 1, 1, 1}, {3, 5, 7, 2}, {2, 7, 3, 5}} do
      luacap.seed(33)
      local B, Tq, Tv, D = dims[1], dims[2], dims[3], dims[4]
      local q, v = luacap.randn(B, Tq, D), luacap.randn(B, Tv, D)
      local fast, ref = nn.Attention(), nn.Attention()
      ref.use_ref = true
      close(ref:forward({q, v}), fast:forward({q, v}), 1e-5)
      close(ref.weights, fast.weights, 1e-5)
      local dctx = luacap.randn(B, Tq, D)
      local df, dr = fast:backward({q, v}, dctx), ref:backward({q, v}, dctx)
      close(dr[1], df[1], 1e-4)
      close(dr[2], df[2], 1e-4)
    end
  end)

  it('with a query mask: masked rows 0, the others as without it, fast = ref, gradients', function()
    luacap.seed(34)
    local B, Tq, Tv, D = 3, 5, 7, 6
    local q, v = luacap.randn(B, Tq, D), luacap.randn(B, Tv, D)
    -- row 1 pre-padded (last 2 real), row 2 all real, row 3 with a hole (1, 0, 1, 1, 0)
    local m = luacap.tensor{{0, 0, 0, 1, 1}, {1, 1, 1, 1, 1}, {1, 0, 1, 1, 0}}
    local plain, fast, ref = nn.Attention(), nn.Attention(), nn.Attention()
    ref.use_ref = true
    local cp = plain:forward({q, v}):clone()
    local cf, cr = fast:forward({q, v}, m), ref:forward({q, v}, m)
    close(cr, cf, 1e-5)
    close(ref.weights, fast.weights, 1e-5)
    local dctx = luacap.randn(B, Tq, D)
    -- the gradient a masked consumer sends: zero at masked rows
    for b = 1, B do for i = 1, Tq do
      if m:get(b, i) == 0 then for d = 1, D do dctx:set(b, i, d, 0) end end
    end end
    local dp = plain:backward({q, v}, dctx)
    local dpq, dpv = dp[1]:clone(), dp[2]:clone()
    local df, dr = fast:backward({q, v}, dctx), ref:backward({q, v}, dctx)
    close(dr[1], df[1], 1e-4)
    close(dr[2], df[2], 1e-4)
    for b = 1, B do for i = 1, Tq do
      for d = 1, D do
        if m:get(b, i) == 0 then
          assert.equal(0, cf:get(b, i, d))
          assert.equal(0, df[1]:get(b, i, d))
        else
          assert.near(cp:get(b, i, d), cf:get(b, i, d), 1e-5)
        end
      end
    end end
    -- the masked consumer's gradients are those of the unmasked attention
    close(dpq, df[1], 1e-4)
    close(dpv, df[2], 1e-4)
    local masked = nn.Attention()
    local fwd = masked.forward
    masked.forward = function(self, qv) return fwd(self, qv, m) end
    local ok, report = gradcheck.inputs_check(masked, {'q', 'v'}, {q, v}, nil, {coords = 40})
    assert(ok, report)
  end)

  it('backward from the weights\' gradient (dctx nil): dq and the q part of dv, fast = ref', function()
    -- ctx = w @ v  =>  dw = dctx @ v^T; given that dw, dq is the full backward's and dv is
    -- the full one less w^T @ dctx
    luacap.seed(35)
    local B, Tq, Tv, D = 3, 5, 7, 6
    local q, v = luacap.randn(B, Tq, D), luacap.randn(B, Tv, D)
    local m = luacap.tensor{{0, 0, 0, 1, 1}, {1, 1, 1, 1, 1}, {1, 0, 1, 1, 0}}
    for _, ref in ipairs{false, true} do
      local a = nn.Attention()
      a.use_ref = ref
      a:forward({q, v}, m)
      local w = a.weights:clone()
      local dctx = luacap.randn(B, Tq, D)
      local full = a:backward({q, v}, dctx)
      local dq_want, dv_want = full[1]:clone(), full[2]:clone()
      local dw, dv_ctx = luacap.zeros(B, Tq, Tv), luacap.zeros(B, Tv, D)
      for b = 1, B do
        local dw_b, vb, db = dw:narrow(b, 1):reshape(Tq, Tv), v:narrow(b, 1):reshape(Tv, D),
          dctx:narrow(b, 1):reshape(Tq, D)
        core.sgemm(dw_b, db, vb, false, true)
        core.sgemm(dv_ctx:narrow(b, 1):reshape(Tv, D), w:narrow(b, 1):reshape(Tq, Tv), db, true)
      end
      local got = a:backward_weights({q, v}, dw)
      close(dq_want, got[1], 1e-4)
      dv_want:add(dv_ctx:scale(-1))
      close(dv_want, got[2], 1e-4)
    end
  end)

  it('names the argument and the shapes in its errors', function()
    local attn = nn.Attention()
    assert.has_error(function() attn:forward({luacap.zeros(2, 3, 4), luacap.zeros(2, 5, 3)}) end,
      'attention_forward: v has shape (2, 5, 3), expected (2, *, 4) = (B, Tv, D)')
    assert.has_error(function()
      core.attention_forward(luacap.zeros(2, 3, 4), luacap.zeros(2, 3, 4), luacap.zeros(2, 3, 4),
        luacap.zeros(2, 5, 4))
    end, 'attention_forward: weights has shape (2, 3, 4), expected (2, 3, 5) = (B, Tq, Tv)')
  end)
end)
