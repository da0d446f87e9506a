-- Specs of the seed model's shared-work mode (--share-image-branch: Seed:forward_shared,
-- Bidirectional:forward_prefixes, csrc/nn/shift.c) and of the attention query mask the
-- model passes: with dropout off the shared mode gives the exact mode's logits, loss and
-- every gradient (with the LSTM decoder's factored input projection, models/seed_shared.lua,
-- and with a GRU decoder); the shift kernels against plain loops and their adjoint identity.
-- (Decoding's use of them: spec/models/seed_decode_spec.lua.)
local luacap = require 'luacap'
local Seed = require 'luacap.models.seed'
local close = require('helpers.util').close
local core = luacap.core

local function tiny(V, T, dropout, decoder)
  return Seed{vocab_size = V, max_len = T, feat_dim = 6, img_dense = 5, embed_dim = 4,
    units = 3, dec_dense = 5, dropout = dropout or 0.5, decoder = decoder}
end

-- Pre-padded (B, T) ids from lists of real tokens.
local function padded(rows, T)
  local t = {}
  for b, r in ipairs(rows) do
    t[b] = {}
    for i = 1, T do t[b][i] = 0 end
    for j, id in ipairs(r) do t[b][T - #r + j] = id end
  end
  return luacap.tensor(t)
end

-- Two images; image 1's captions (3 5 7 2) and (3 5 4), image 2's (3 5 7 6): pairs are
-- their prefixes, in shuffled order, some of them missing, one twice.
local pair_tokens = {{3, 5}, {3, 5, 7, 2}, {3}, {3, 5, 4}, {3, 5, 7}, {3}, {3, 5, 7, 6},
  {3, 5}, {3, 5, 7}, {3, 5, 4}}
local pair_img = {1, 1, 1, 1, 1, 2, 2, 2, 1, 1}

local function grads(m)
  local g = {}
  for _, p in ipairs(m:parameters()) do g[p.name] = p.grad:clone() end
  return g
end

describe('seed model, shared work', function()
  it('groups prefixes of one image under their longest one (hand case)', function()
    local ids = padded(pair_tokens, 6)
    local reps, rep, shift = Seed.prefix_groups(ids, pair_img)
    -- longest first: pair 2 (3 5 7 2) and pair 7 (3 5 7 6, image 2) found first, then
    -- pair 4 (3 5 4: not a prefix of 3 5 7 2) opens a third group
    assert.same({2, 7, 4}, reps)
    assert.same({1, 1, 1, 3, 1, 2, 2, 2, 1, 3}, rep)
    assert.same({2, 0, 3, 0, 1, 3, 0, 2, 1, 0}, shift)
  end)

  it('shift_gather and shift_scatter_add: plain loops and the adjoint identity', function()
    luacap.seed(41)
    local R, B, T, W = 3, 5, 6, 7
    local src, dout = luacap.randn(R, T, W), luacap.randn(B, T, W)
    local rep, shift = {2, 1, 3, 2, 1}, {0, 3, 6, 5, 1}
    local out = luacap.zeros(B, T, W)
    core.shift_gather(out, src, rep, shift)
    for b = 1, B do for t = 1, T do for w = 1, W do
      local want = t > shift[b] and src:get(rep[b], t - shift[b], w) or 0
      assert.equal(want, out:get(b, t, w))
    end end end
    -- <shift(src), dout> = <src, shift^T(dout)>
    local dsrc = luacap.zeros(R, T, W)
    core.shift_scatter_add(dsrc, dout, rep, shift)
    local a, b2 = 0, 0
    local o, d, s, g = out:flat(), dout:flat(), src:flat(), dsrc:flat()
    for i = 1, #o do a = a + o[i] * d[i] end
    for i = 1, #s do b2 = b2 + s[i] * g[i] end
    assert.near(a, b2, 1e-4 * math.max(1, math.abs(a)))
    assert.has_error(function() core.shift_gather(out, src, {1, 2, 3, 4, 5}, {0, 0, 0, 0, 0}) end,
      'shift_gather: rep[4] = 4 is not a row of src (1..3)')
    assert.has_error(function() core.shift_gather(out, src, rep, {0, 0, 7, 0, 0}) end,
      'shift_gather: shift[3] = 7 is not in 0..6')
  end)

  -- an LSTM decoder takes the factored path (models/seed_shared.lua), a GRU the plain one
  for _, case in ipairs{{'evaluate', 'lstm'}, {'dropout 0', 'lstm'}, {'dropout 0', 'gru'}} do
    local mode, decoder = case[1], case[2]
    it('gives the exact mode\'s logits, loss and gradients with dropout off (' .. mode .. ', '
      .. decoder .. ' decoder)', function()
      luacap.seed(42)
      local V, T = 9, 6
      local m = tiny(V, T, mode == 'dropout 0' and 0 or 0.5, decoder)
      if mode == 'evaluate' then m:evaluate() else m:train(true) end
      m.img_dense.bias:fill(0.5)
      m.dec_dense.bias:fill(0.5)
      local feats_u = luacap.randn(2, 6)
      local ids = padded(pair_tokens, T)
      local B = ids:size(1)
      local y = luacap.tensor{1, 2, 3, 4, 5, 6, 7, 8, 2, 4}
      local crit = luacap.nn.SoftmaxCrossEntropy()
      local feats = luacap.zeros(B, 6)
      core.gather(feats, feats_u, pair_img)
      m:zero_grad()
      local le = m:forward(feats, ids):clone()
      local loss_e = crit:forward(le, y)
      local dfe = m:backward(crit:backward())
      local dfu_e = luacap.zeros(2, 6)
      core.scatter_add(dfu_e, dfe, pair_img)
      local ge = grads(m)
      m:zero_grad()
      local ls = m:forward_shared(feats_u, pair_img, ids):clone()
      local loss_s = crit:forward(ls, y)
      local dfu_s = m:backward(crit:backward())
      close(le, ls, 1e-5)
      assert.near(loss_e, loss_s, 1e-5)
      close(dfu_e, dfu_s, 1e-5)
      local gs = grads(m)
      for name, g in pairs(ge) do
        local ok, err = pcall(close, g, gs[name], 1e-5)
        assert(ok, name .. ': ' .. tostring(err))
        -- and relative to the tensor's largest gradient (these are far below 1, where
        -- close's tolerance is absolute): a product off by 1% fails here
        local a, b, big = g:flat(), gs[name]:flat(), 0
        for i = 1, #a do big = math.max(big, math.abs(a[i])) end
        for i = 1, #a do
          assert(math.abs(a[i] - b[i]) <= 1e-4 * big, string.format('%s: element %d: %.7g against %.7g '
            .. '(largest %.3g)', name, i, a[i], b[i], big))
        end
      end
    end)
  end

  it('passes a finite-difference check of every parameter and the image rows (LSTM decoder, factored)', function()
    local gradcheck = require 'helpers.gradcheck'
    luacap.seed(45)
    local m = tiny(9, 6)
    m:evaluate()                -- dropout off: a deterministic function
    m.img_dense.bias:fill(0.5)  -- relu biases off the kink (as seed_spec's check)
    m.dec_dense.bias:fill(0.5)
    local feats_u, ids = luacap.randn(2, 6), padded(pair_tokens, 6)
    local ok, report = gradcheck.module_check(m, {
      coords = 6, eps = 1e-2, tol = 2e-2, atol = 2e-4, input = feats_u, input_name = 'feats_u',
      forward = function() return m:forward_shared(feats_u, pair_img, ids) end,
      backward = function(R) return m:backward(R) end,
    })
    assert.is_true(ok, report)
  end)

  it('draws one feature dropout mask per image in training', function()
    luacap.seed(43)
    local m = tiny(9, 6, 0.5)
    m:train(true)
    local ids = padded(pair_tokens, 6)
    m:forward_shared(luacap.randn(2, 6), pair_img, ids)
    assert.same({2, 6}, m.fe1:shape())          -- the dropped features: one row per image
    assert.same({3, 6, 4}, m.se2:shape())       -- the embedded tokens: one row per group
  end)

  it('the attention query mask leaves the logits and gradients as they were', function()
    luacap.seed(44)
    local m = tiny(9, 6)
    m:evaluate()
    m.img_dense.bias:fill(0.5)
    m.dec_dense.bias:fill(0.5)
    local feats, ids = luacap.randn(10, 6), padded(pair_tokens, 6)
    local R = luacap.randn(10, 9)
    m:zero_grad()
    local lm = m:forward(feats, ids):clone()
    local dm = m:backward(R):clone()
    local gm = grads(m)
    local fwd = m.attn.forward
    m.attn.forward = function(self, qv) return fwd(self, qv, nil) end   -- every row computed
    m:zero_grad()
    local lu = m:forward(feats, ids):clone()
    local du = m:backward(R):clone()
    m.attn.forward = nil
    close(lu, lm, 1e-6)
    close(du, dm, 1e-6)
    for name, g in pairs(grads(m)) do
      local ok, err = pcall(close, g, gm[name], 1e-6)
      assert(ok, name .. ': ' .. tostring(err))
    end
  end)

  it('fit with share_image_branch trains as the exact mode does when dropout is off', function()
    local fit = require 'luacap.train.fit'
    local T = 6
    local ids_all = padded(pair_tokens, T)
    local src = {n = #pair_tokens}
    function src.image_of(k) return pair_img[k] end
    function src.get(idx)
      local rows, ids, y = {}, luacap.zeros(#idx, T), {}
      luacap.core.gather(ids, ids_all, idx)
      for i, k in ipairs(idx) do rows[i], y[i] = pair_img[k], k % 9 end
      return {ids = ids, y = luacap.tensor(y), rows = rows}
    end
    local function train(share)
      luacap.seed(45)
      local m = tiny(9, T, 0)
      m.img_dense.bias:fill(0.5)
      m.dec_dense.bias:fill(0.5)
      local seen = 0
      m.forward_image = function(self, f) seen = seen + f:size(1); return Seed.forward_image(self, f) end
      local h = fit.fit{model = m, inputs = luacap.randn(2, 6), train = src, epochs = 3,
        batch_size = 4, optimizer = luacap.optim.Adam{lr = 0.01}, verbose = 0,
        group_images = 1, share_image_branch = share}
      return h.loss, seen
    end
    local le, ne = train(false)
    local ls, ns = train(true)
    for e = 1, 3 do assert.near(le[e], ls[e], 1e-5) end
    assert.equal(3 * #pair_tokens, ne)   -- exact: one image branch row per pair
    assert.is_true(ns < ne / 2, ('shared: %d image rows for %d pairs'):format(ns, ne))
  end)
end)
