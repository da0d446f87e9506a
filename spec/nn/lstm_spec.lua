-- Specs for luacap.nn.LSTM and csrc/nn/lstm.c: hand-computed steps, masks, go_backwards,
-- finite differences, accumulation, sgemm path against the plain-loop reference, the
-- decoding step, Keras' orthogonal initialiser, error messages.
local luacap = require 'luacap'
local gradcheck = require 'helpers.gradcheck'
local core = luacap.core
local nn = luacap.nn

local util = require 'helpers.util'
local close, row, copy_weights, slice_t = util.close, util.row, util.copy_weights, util.slice_t

local function sigmoid(z) return 1 / (1 + math.exp(-z)) end

-- Gradient check with an optional mask and initial state: L = sum(out * R).
local function check_lstm(l, x, mask, state, opts)
  opts = opts or {}
  return gradcheck.module_check(l, {
    coords = opts.coords or 40, eps = opts.eps or 1e-2, tol = opts.tol or 2e-2, input = x,
    forward = function() return l:forward(x, mask, state) end,
    backward = function(R) return l:backward(x, R) end,
    state = state and {h0 = state.h, c0 = state.c},
    state_grads = state and function() return {h0 = l.dstate.h, c0 = l.dstate.c} end,
  })
end

describe('nn.LSTM', function()
  it('steps with zero weights: every gate is 0.5', function()
    local l = nn.LSTM(2, 1, {return_sequences = true})
    l.kernel:zero(); l.recurrent_kernel:zero(); l.bias:zero()
    l.bias:set(3, 1)   -- cell-gate bias 1 so that the state moves: g = tanh(1)
    local y = l:forward(luacap.tensor{{{3, -2}, {5, 7}}})
    -- i = f = o = sigmoid(0) = 0.5, g = tanh(1) = 0.7615942
    -- c1 = 0.5*0 + 0.5*0.7615942 = 0.3807971;  h1 = 0.5*tanh(0.3807971) = 0.1816997
    -- c2 = 0.5*0.3807971 + 0.3807971 = 0.5711956;  h2 = 0.5*tanh(0.5711956) = 0.2581184
    assert.near(0.1816997, y:get(1, 1, 1), 1e-6)
    assert.near(0.2581184, y:get(1, 2, 1), 1e-6)
    -- and with every weight and bias 0: c = 0.5*0 + 0.5*tanh(0) = 0, h = 0
    l.bias:zero()
    assert.same({{{0}, {0}}}, l:forward(luacap.tensor{{{3, -2}, {5, 7}}}):totable())
  end)

  it('matches a hand-computed 1-unit, 2-step sequence', function()
    local l = nn.LSTM(1, 1, {return_sequences = true})
    local w = {0.5, -0.3, 0.8, 0.2}      -- kernel (1, 4): i, f, c, o
    local u = {0.1, 0.4, -0.6, 0.3}      -- recurrent_kernel (1, 4)
    local bb = {0.0, 1.0, 0.1, -0.2}     -- bias (4)
    l.kernel:copy(luacap.tensor{w}); l.recurrent_kernel:copy(luacap.tensor{u})
    l.bias:copy(luacap.tensor(bb))
    local xs, h, c, want = {1.0, -2.0}, 0, 0, {}
    for t = 1, 2 do   -- the equations, scalar by scalar
      local z = {}
      for j = 1, 4 do z[j] = xs[t] * w[j] + h * u[j] + bb[j] end
      local i, f, g, o = sigmoid(z[1]), sigmoid(z[2]), math.tanh(z[3]), sigmoid(z[4])
      c = f * c + i * g
      h = o * math.tanh(c)
      want[t] = h
    end
    -- step 1: z = (0.5, 0.7, 0.9, 0) -> c1 = 0.6225*0.7163 = 0.4459, h1 = 0.5*tanh(c1) = 0.2093
    assert.near(0.2093, want[1], 1e-4)
    local y = l:forward(luacap.tensor{{{1.0}, {-2.0}}})
    assert.near(want[1], y:get(1, 1, 1), 1e-6)
    assert.near(want[2], y:get(1, 2, 1), 1e-6)
  end)

  it('carries h and c over a masked step', function()
    luacap.seed(3)
    local l = nn.LSTM(3, 4, {return_sequences = true})
    local x = luacap.randn(2, 3, 3)
    local mask = luacap.tensor{{1, 0, 1}, {1, 1, 1}}
    local y = l:forward(x, mask):clone()
    assert.same(row(y, 1, 1), row(y, 1, 2))         -- the carried output
    for k = 1, 4 do                                   -- state unchanged through step 2
      assert.equal(l.hs:get(1, 1, k), l.hs:get(2, 1, k))   -- hs, cs are (T, B, H)
      assert.equal(l.cs:get(1, 1, k), l.cs:get(2, 1, k))
    end
    assert.is_not.equal(l.hs:get(1, 1, 1), l.hs:get(3, 1, 1))
    -- equals the sequence without the masked step
    local x2 = luacap.zeros(2, 2, 3)
    for c = 1, 3 do x2:set(1, 1, c, x:get(1, 1, c)); x2:set(1, 2, c, x:get(1, 3, c)) end
    local y2 = l:forward(x2)
    for k = 1, 4 do assert.near(y2:get(1, 2, k), y:get(1, 3, k), 1e-6) end
    -- zero_output_for_mask: the masked step outputs 0, the state still carries
    l.zero_output_for_mask = true
    local yz = l:forward(x, mask)
    assert.same({0, 0, 0, 0}, row(yz, 1, 2))
    for k = 1, 4 do assert.near(y:get(1, 3, k), yz:get(1, 3, k), 1e-7) end
  end)

  it('gives the same last output for a pre-padded and an unpadded sequence', function()
    luacap.seed(4)
    local l = nn.LSTM(3, 5)
    local x = luacap.randn(1, 5, 3)
    local last = l:forward(x, luacap.tensor{{0, 0, 1, 1, 1}}):clone()
    local bare = l:forward(slice_t(x, 3, 5))
    close(bare, last, 1e-6)
    -- post-padding too: the last output is the last real step's
    local last_post = l:forward(x, luacap.tensor{{1, 1, 1, 0, 0}}):clone()
    close(l:forward(slice_t(x, 1, 3)), last_post, 1e-6)
  end)

  it('goes backwards as Keras: reversed input, output in processing order', function()
    luacap.seed(5)
    local fwd = nn.LSTM(3, 4, {return_sequences = true})
    local bwd = nn.LSTM(3, 4, {return_sequences = true, go_backwards = true})
    copy_weights(bwd, fwd)
    local x = luacap.randn(2, 5, 3)
    local yb = bwd:forward(x):clone()
    close(fwd:forward(slice_t(x, 1, 5, true)), yb, 1e-6)
    -- with a pre-padding mask: reads the real tokens last to first, then skips the pads
    local mask = luacap.tensor{{0, 0, 1, 1, 1}, {1, 1, 1, 1, 1}}
    local ym = bwd:forward(x, mask):clone()
    local yr = fwd:forward(slice_t(x, 3, 5, true))   -- c b a
    for s = 1, 3 do
      for k = 1, 4 do assert.near(yr:get(1, s, k), ym:get(1, s, k), 1e-6) end
    end
    assert.same(row(ym, 1, 3), row(ym, 1, 5))        -- carried after the last real token
  end)

  it('step equals forward on a one-step sequence, and chains like forward', function()
    luacap.seed(6)
    local l = nn.LSTM(3, 4, {return_sequences = true})
    local x = luacap.randn(2, 3, 3)
    local y = l:forward(x):clone()
    local state
    for t = 1, 3 do
      local h
      h, state = l:step(slice_t(x, t, t):reshape(2, 3), state)
      for b = 1, 2 do
        for k = 1, 4 do assert.near(y:get(b, t, k), h:get(b, k), 1e-6) end
      end
    end
  end)

  it('continues from an initial state', function()
    luacap.seed(7)
    local l = nn.LSTM(3, 4, {return_sequences = true})
    local x = luacap.randn(2, 4, 3)
    local y = l:forward(x):clone()
    local h2 = luacap.zeros(2, 4); h2:copy(slice_t(y, 2, 2))
    local c2 = luacap.zeros(2, 4); c2:copy(l.cs:narrow(2, 1))
    local tail = l:forward(slice_t(x, 3, 4), nil, {h = h2, c = c2})
    close(slice_t(y, 3, 4), tail, 1e-6)
  end)

  it('draws an orthogonal recurrent kernel: W W^T = I', function()
    luacap.seed(8)
    local l = nn.LSTM(5, 6)
    local W = l.recurrent_kernel                 -- (H, 4H): rows orthonormal
    local P = luacap.zeros(6, 6)
    core.sgemm(P, W, W, false, true)
    for i = 1, 6 do
      for j = 1, 6 do assert.near(i == j and 1 or 0, P:get(i, j), 1e-5) end
    end
    local tall = core.orthogonal(luacap.zeros(7, 3))   -- (N, M), N > M: columns orthonormal
    local Q = luacap.zeros(3, 3)
    core.sgemm(Q, tall, tall, true, false)
    for i = 1, 3 do
      for j = 1, 3 do assert.near(i == j and 1 or 0, Q:get(i, j), 1e-5) end
    end
    -- glorot-uniform kernel inside sqrt(6 / (C + 4H)); bias 0 except the forget block
    local limit = math.sqrt(6 / (5 + 24))
    assert.is_true(l.kernel:max() <= limit and l.kernel:min() >= -limit)
    assert.is_true(l.kernel:max() > limit / 2)
    assert.same({0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1}, l.bias:narrow(1, 12):totable())
    assert.equal(6, l.bias:sum())
    local names = {}
    for _, p in ipairs(l:parameters()) do names[#names + 1] = p.name end
    assert.same({'kernel', 'recurrent_kernel', 'bias'}, names)
  end)

  for _, case in ipairs{
    {rs = true, mask = false, gb = false},
    {rs = false, mask = false, gb = false},
    {rs = true, mask = true, gb = false},
    {rs = false, mask = true, gb = false},
    {rs = true, mask = true, gb = true, zero = true},
    {rs = false, mask = true, gb = true},
  } do
    local label = string.format('return_sequences=%s mask=%s go_backwards=%s',
      tostring(case.rs), tostring(case.mask), tostring(case.gb))
    it('passes a finite-difference check, ' .. label, function()
      luacap.seed(11)
      local l = nn.LSTM(3, 4, {return_sequences = case.rs, go_backwards = case.gb,
        zero_output_for_mask = case.zero})
      l.bias:copy(luacap.uniform(-0.5, 0.5, 16))
      local x = luacap.randn(2, 4, 3)
      -- a pre-padded row, a row with a hole, a post-padded row
      local mask = case.mask and luacap.tensor{{0, 1, 1, 1}, {1, 0, 1, 0}} or nil
      local ok, report = check_lstm(l, x, mask)
      assert(ok, report)
    end)
  end

  it('passes a finite-difference check through an initial state', function()
    luacap.seed(12)
    local l = nn.LSTM(2, 3, {return_sequences = true})
    local x = luacap.randn(2, 3, 2)
    local state = {h = luacap.uniform(-0.5, 0.5, 2, 3), c = luacap.uniform(-0.5, 0.5, 2, 3)}
    local ok, report = check_lstm(l, x, luacap.tensor{{1, 0, 1}, {1, 1, 1}}, state)
    assert(ok, report)
  end)

  it('accumulates: backward twice gives twice the gradients', function()
    luacap.seed(13)
    local l = nn.LSTM(3, 4, {return_sequences = true})
    local x = luacap.randn(2, 5, 3)
    local mask = luacap.tensor{{0, 0, 1, 1, 1}, {1, 1, 1, 1, 1}}
    local dout = luacap.randn(2, 5, 4)
    local dx1, dx2, g1 = util.backward_twice(l, x, mask, dout)
    close(dx1, dx2, 1e-6)   -- dx is written, not added
    for i, p in ipairs(l:parameters()) do close(g1[i]:clone():scale(2), p.grad, 1e-5) end
  end)

  it('agrees with the plain-loop reference on odd shapes', function()
    -- B 13: the recurrences' packed product (8 to 64 rows; 13 = 8 + 5 rows, 4H = 36 columns:
    -- one full panel and a partial one); B 70: sgemm
    for _, dims in ipairs{{1, 1, 1, 1}, {3, 5, 7, 5}, {5, 7, 3, 2}, {13, 6, 5, 9}, {70, 3, 4, 5}} do
      for _, gb in ipairs{false, true} do
        for _, rs in ipairs{false, true} do
          local B, Tn, C, H = dims[1], dims[2], dims[3], dims[4]
          luacap.seed(14)
          local fast = nn.LSTM(C, H, {return_sequences = rs, go_backwards = gb,
            zero_output_for_mask = gb})
          local ref = nn.LSTM(C, H, {return_sequences = rs, go_backwards = gb,
            zero_output_for_mask = gb})
          copy_weights(ref, fast)
          ref.use_ref = true
          local x = luacap.randn(B, Tn, C)
          local mask = luacap.zeros(B, Tn)
          for b = 1, B do
            for t = 1, Tn do mask:set(b, t, (b + t) % 3 == 0 and 0 or 1) end
          end
          close(ref:forward(x, mask), fast:forward(x, mask), 1e-5)
          local dout = luacap.randn(fast.out:shape())
          fast:zero_grad(); ref:zero_grad()
          close(ref:backward(x, dout), fast:backward(x, dout), 1e-4)
          for i, p in ipairs(fast:parameters()) do close(ref:parameters()[i].grad, p.grad, 1e-4) end
        end
      end
    end
  end)

  -- Random masks for the active-rows path: pre-padded (a real suffix per row), post-padded,
  -- arbitrary holes, all-masked rows and an all-masked step.
  local function random_mask(kind, B, Tn)
    local m = luacap.zeros(B, Tn)
    for b = 1, B do
      local n = math.random(0, Tn)
      for t = 1, Tn do
        local v
        if kind == 'pre' then v = t > Tn - n
        elseif kind == 'post' then v = t <= n
        else v = math.random() < 0.6 end
        m:set(b, t, v and 1 or 0)
      end
    end
    if kind == 'holes' and Tn >= 2 then
      for b = 1, B do m:set(b, 2, 0) end                -- a step where no row is real
    end
    return m
  end

  -- fast (active rows only) against the plain-loop reference: output, caches h/c, dx,
  -- parameter gradients and the initial state's gradients.
  local function compare_fast_ref(B, Tn, C, H, opts, mask, with_state, steps, scale)
    luacap.seed(31)
    local fast = nn.LSTM(C, H, opts)
    if scale then fast.kernel:scale(scale); fast.bias:fill(0.01) end
    local ref = nn.LSTM(C, H, opts)
    copy_weights(ref, fast)
    ref.use_ref = true
    local x = steps and luacap.randn(B, C) or luacap.randn(B, Tn, C)
    local state = with_state and {h = luacap.randn(B, H), c = luacap.randn(B, H)} or nil
    local yf, yr
    if steps then
      yf, yr = fast:forward_repeated(x, steps, mask, state), ref:forward_repeated(x, steps, mask, state)
    else
      yf, yr = fast:forward(x, mask, state), ref:forward(x, mask, state)
    end
    close(yr, yf, 1e-5)
    close(ref.hs, fast.hs, 1e-5)
    close(ref.cs, fast.cs, 1e-5)
    local dout = luacap.randn(yf:shape())
    fast:zero_grad(); ref:zero_grad()
    close(ref:backward(x, dout), fast:backward(x, dout), 1e-4)
    for i, p in ipairs(fast:parameters()) do close(ref:parameters()[i].grad, p.grad, 1e-4) end
    if with_state then
      close(ref.dstate.h, fast.dstate.h, 1e-4)
      close(ref.dstate.c, fast.dstate.c, 1e-4)
    end
  end

  it('computes only real steps, exactly as the reference, for any mask', function()
    math.randomseed(7)
    for _, kind in ipairs{'pre', 'post', 'holes'} do
      for _, gb in ipairs{false, true} do
        for _, rs in ipairs{false, true} do
          for _, zo in ipairs{false, true} do
            for _, st in ipairs{false, true} do
              local B, Tn, C, H = 6, 7, 5, 3
              if kind == 'pre' then C = 13 end   -- C > 4H: the gathered-x buffer path
              compare_fast_ref(B, Tn, C, H, {return_sequences = rs, go_backwards = gb,
                zero_output_for_mask = zo}, random_mask(kind, B, Tn), st)
            end
          end
        end
      end
    end
  end)

  it('keeps the reference gate values for tiny and huge pre-activations', function()
    -- scale 1e-3: |z| < 1/16 (tanh's series); 300: |z| past the exp clamp (saturation)
    for _, scale in ipairs{1e-3, 300} do
      compare_fast_ref(5, 6, 7, 4, {return_sequences = true}, random_mask('pre', 5, 6), true,
        nil, scale)
    end
  end)

  it('matches the reference on a larger batch at one and two BLAS threads', function()
    local threads = luacap.get_threads()
    math.randomseed(9)
    for _, n in ipairs{1, 2} do
      luacap.set_threads(n)
      for _, kind in ipairs{'pre', 'holes'} do
        for _, gb in ipairs{false, true} do
          compare_fast_ref(13, 11, 5, 3, {return_sequences = gb, go_backwards = gb,
            zero_output_for_mask = gb}, random_mask(kind, 13, 11), gb)
          compare_fast_ref(13, 11, 5, 3, {return_sequences = true}, nil, false, 11)
        end
      end
    end
    luacap.set_threads(threads)
  end)

  it('splits few-row products over threads by columns: the same bits at 1 and 2 threads', function()
    -- B = 2 rows (under the 8-row sgemm cutoff), H = 160: the recurrent product's 640
    -- columns run as 5 blocks of 128 on the threads; each element's sum keeps its order
    local threads = luacap.get_threads()
    luacap.seed(31)
    local fast = nn.LSTM(24, 160, {return_sequences = true})
    local ref = nn.LSTM(24, 160, {return_sequences = true})
    copy_weights(ref, fast)
    ref.use_ref = true
    local x = luacap.randn(2, 6, 24)
    local outs = {}
    for i, n in ipairs{1, 2} do
      luacap.set_threads(n)
      outs[i] = fast:forward(x):clone()
    end
    luacap.set_threads(threads)
    assert.same(outs[1]:flat(), outs[2]:flat())
    close(ref:forward(x), outs[2], 1e-5)
  end)

  it('forward_pair, backward_pair: each LSTM\'s own outputs, caches and gradients, at 1 and 2 threads', function()
    -- 16 rows: the packed recurrent kernel; 2 threads: each LSTM on its own thread
    local threads = luacap.get_threads()
    luacap.seed(37)
    local B, Tn, C, H = 16, 7, 12, 10
    local mask = luacap.ones(B, Tn)
    for b = 1, B do for t = 1, (b - 1) % Tn do mask:set(b, t, 0) end end   -- pre-padding
    local cases = {
      {x = luacap.randn(B, Tn, C), opts = {return_sequences = true, zero_output_for_mask = true}},
      {x = luacap.randn(B, C), steps = Tn, opts = {return_sequences = true, go_backwards = true}},
      {x = luacap.randn(B, Tn, C), opts = {go_backwards = true}},
    }
    for _, n in ipairs{1, 2} do
      luacap.set_threads(n)
      for _, cs in ipairs(cases) do
        local la, lb = nn.LSTM(C, H, cs.opts), nn.LSTM(C, H, cs.opts)
        local ra, rb = nn.LSTM(C, H, cs.opts), nn.LSTM(C, H, cs.opts)
        copy_weights(ra, la); copy_weights(rb, lb)
        local xb = cs.steps and luacap.randn(B, C) or luacap.randn(B, Tn, C)
        local ya, yb = nn.LSTM.forward_pair(la, cs.x, mask, lb, xb, nil, cs.steps)
        local want_a = cs.steps and ra:forward_repeated(cs.x, cs.steps, mask) or ra:forward(cs.x, mask)
        local want_b = cs.steps and rb:forward_repeated(xb, cs.steps) or rb:forward(xb)
        close(want_a, ya, 1e-6); close(want_b, yb, 1e-6)
        for _, k in ipairs{'gates', 'cs', 'hs'} do close(ra[k], la[k], 1e-6); close(rb[k], lb[k], 1e-6) end
        local da, db = luacap.randn(ya:shape()), luacap.randn(yb:shape())
        local dxa, dxb = nn.LSTM.backward_pair(la, cs.x, da, lb, xb, db)
        close(ra:backward(cs.x, da), dxa, 1e-5)
        close(rb:backward(xb, db), dxb, 1e-5)
        for _, k in ipairs{'dkernel', 'drecurrent_kernel', 'dbias'} do
          close(ra[k], la[k], 1e-5); close(rb[k], lb[k], 1e-5)
        end
      end
    end
    luacap.set_threads(threads)
  end)

  it('after a larger call (or reserve) a smaller one reuses the buffers: results as a fresh layer\'s', function()
    -- stale values in the reused buffers must never show: a fit's last, smaller batch,
    -- and decoding's prefix growing inside reserved buffers
    luacap.seed(38)
    local C, H = 6, 9
    for _, opts in ipairs{{return_sequences = true, zero_output_for_mask = true, go_backwards = true},
                          {return_sequences = false}} do
      for _, ref in ipairs{false, true} do
        for _, reserve in ipairs{false, true} do
          local l, fresh = nn.LSTM(C, H, opts), nn.LSTM(C, H, opts)
          copy_weights(fresh, l)
          l.use_ref, fresh.use_ref = ref, ref
          if reserve then l:reserve(16, 9) end
          -- a larger call leaves other values in every buffer
          l:forward(luacap.randn(reserve and 16 or 12, reserve and 9 or 8, C):scale(3))
          local x = luacap.randn(5, 4, C)
          local mask = luacap.tensor{{0, 0, 1, 1}, {1, 1, 1, 1}, {0, 1, 1, 1}, {1, 0, 1, 0}, {0, 0, 0, 1}}
          local y = l:forward(x, mask)
          close(fresh:forward(x, mask), y, 0)
          -- the fast path's gates cache is a compact block: only the reference's is whole
          for _, k in ipairs(ref and {'gates', 'cs', 'hs'} or {'cs', 'hs'}) do close(fresh[k], l[k], 0) end
          local dout = luacap.randn(y:shape())
          close(fresh:backward(x, dout), l:backward(x, dout), 0)
          for _, k in ipairs{'dkernel', 'drecurrent_kernel', 'dbias'} do close(fresh[k], l[k], 0) end
        end
      end
    end
  end)

  it('forward_pair and backward_pair refuse two calls that write into the same tensor', function()
    local l = nn.LSTM(3, 2, {return_sequences = true})
    local x = luacap.randn(4, 5, 3)
    l:forward(x)
    local args = {l.out, l.gates, l.cs, l.hs, l.zx, x, nil, l.kernel, l.recurrent_kernel,
      l.bias, nil, nil, false, true, false, nil}
    for i = 1, 16 do args[16 + i] = args[i] end
    assert.has_error(function() core.lstm_forward_pair(unpack(args, 1, 32)) end,
      'lstm_forward_pair: the two calls write into the same tensor (argument 1 of the first, 1 of the second)')
    local other = nn.LSTM(3, 2, {return_sequences = true})
    other:forward(x)
    local dout = luacap.randn(4, 5, 2)
    local dx = luacap.zeros(4, 5, 3)
    local b = {dx, l.dkernel, l.drecurrent_kernel, l.dbias, nil, nil, luacap.zeros(5, 4, 8), l.zx, dout,
      x, nil, l.kernel, l.recurrent_kernel, l.gates, l.cs, l.hs, nil, nil, false, true, false, nil}
    local c = {luacap.zeros(4, 5, 3), other.dkernel, other.drecurrent_kernel, other.dbias, nil, nil,
      luacap.zeros(5, 4, 8), luacap.zeros(4, 5, 8), dout, x, nil, other.kernel, other.recurrent_kernel,
      other.gates, other.cs, other.hs, nil, nil, false, true, false, nil}
    c[3] = l.drecurrent_kernel   -- the second call's drecurrent_kernel is the first's
    for i = 1, 22 do b[22 + i] = c[i] end
    assert.has_error(function() core.lstm_backward_pair(unpack(b, 1, 44)) end,
      'lstm_backward_pair: the two calls write into the same tensor (argument 3 of the first, 3 of the second)')
  end)

  it('handles a batch whose every step is masked', function()
    for _, rs in ipairs{false, true} do
      compare_fast_ref(3, 4, 2, 2, {return_sequences = rs}, luacap.zeros(3, 4), false)
      compare_fast_ref(3, 4, 2, 2, {return_sequences = rs}, luacap.zeros(3, 4), true)
    end
  end)

  it('forward_repeated equals RepeatVector then forward, with gradients summed', function()
    math.randomseed(8)
    for _, gb in ipairs{false, true} do
      for _, rs in ipairs{false, true} do
        for _, kind in ipairs{'none', 'pre', 'holes'} do
          local B, Tn, C, H = 4, 5, 6, 3
          local mask = kind ~= 'none' and random_mask(kind, B, Tn) or nil
          local opts = {return_sequences = rs, go_backwards = gb, zero_output_for_mask = gb}
          compare_fast_ref(B, Tn, C, H, opts, mask, false, Tn)   -- fast vs ref, repeated
          luacap.seed(32)
          local a, b = nn.LSTM(C, H, opts), nn.LSTM(C, H, opts)
          copy_weights(b, a)
          local x = luacap.randn(B, C)
          local rv = nn.RepeatVector(Tn)
          local xr = rv:forward(x)
          close(b:forward(xr, mask), a:forward_repeated(x, Tn, mask), 1e-5)
          local dout = luacap.randn(a.out:shape())
          a:zero_grad(); b:zero_grad()
          local dx = a:backward(x, dout)
          assert.same({B, C}, dx:shape())
          close(rv:backward(x, b:backward(xr, dout)), dx, 1e-4)
          for i, p in ipairs(a:parameters()) do close(b:parameters()[i].grad, p.grad, 1e-4) end
        end
      end
    end
  end)

  it('forward_repeated passes finite differences', function()
    luacap.seed(33)
    local l = nn.LSTM(3, 2, {return_sequences = true})
    local x = luacap.randn(2, 3)
    local ok, report = gradcheck.module_check(l, {
      coords = 30, eps = 1e-2, tol = 2e-2, input = x,
      forward = function() return l:forward_repeated(x, 4) end,
      backward = function(R) return l:backward(x, R) end,
    })
    assert.is_true(ok, report)
  end)

  it('names the argument and the shapes in its errors', function()
    local l = nn.LSTM(3, 2)
    assert.has_error(function() l:forward(luacap.zeros(2, 4, 5)) end,
      'LSTM lstm: x has shape (2, 4, 5), expected (B, T, 3)')
    assert.has_error(function() l:forward(luacap.zeros(2, 4, 3), luacap.zeros(2, 5)) end,
      'lstm_forward: mask has shape (2, 5), expected (2, 4) = (B, T)')
    local k = luacap.zeros(3, 8)
    assert.has_error(function()
      core.lstm_forward(luacap.zeros(2, 2), luacap.zeros(4, 2, 8), luacap.zeros(4, 2, 2),
        luacap.zeros(4, 2, 2), luacap.zeros(2, 4, 8), luacap.zeros(2, 4, 3), nil, k,
        luacap.zeros(2, 7), luacap.zeros(8))
    end, 'lstm_forward: recurrent_kernel has shape (2, 7), expected (2, 8) = (H, 4H)')
    assert.has_error(function() l:forward_repeated(luacap.zeros(2, 4, 3), 5) end,
      'LSTM lstm: x has shape (2, 4, 3), expected (B, 3)')
    assert.has_error(function()
      core.lstm_forward(luacap.zeros(2, 2), luacap.zeros(4, 2, 8), luacap.zeros(4, 2, 2),
        luacap.zeros(4, 2, 2), luacap.zeros(2, 4, 8), luacap.zeros(2, 3), nil, k,
        luacap.zeros(2, 8), luacap.zeros(8), nil, nil, false, false, false, 4)
    end, 'lstm_forward: zx has shape (2, 4, 8), expected (2, 8) = (B, 4H) with steps')
  end)
end)
