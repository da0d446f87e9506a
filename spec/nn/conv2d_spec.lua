-- Specs for luacap.nn.Conv2d and the conv2d kernels: a hand-made image, the im2col path
-- against the direct convolution, TF 'same' padding, finite differences, accumulation.
local luacap = require 'luacap'
local gradcheck = require 'helpers.gradcheck'
local core = luacap.core

local close = require('helpers.util').close

-- The 4x4 single-channel image 1..16, row-major, as (1, 4, 4, 1).
local function image16()
  return luacap.arange(1, 17):reshape(1, 4, 4, 1)
end

describe('nn.Conv2d', function()
  it('sums 3x3 windows with an all-ones kernel (valid and same)', function()
    local c = luacap.nn.Conv2d(1, 1, 3)
    c.kernel:fill(1)
    -- rows 1 2 3 4 / 5 6 7 8 / 9 10 11 12 / 13 14 15 16
    -- top-left window 1+2+3+5+6+7+9+10+11 = 54; each step right adds 3, down adds 12
    assert.same({54, 63, 90, 99}, c:forward(image16()):flat())
    local s = luacap.nn.Conv2d(1, 1, 3, {padding = 'same'})
    s.kernel:fill(1)
    s.bias:fill(0.5)
    local out = s:forward(image16())
    assert.same({1, 4, 4, 1}, out:shape())
    -- corner (1,1): 1+2+5+6 = 14; edge (1,2): 1+2+3+5+6+7 = 24; centre (2,2): 54; +0.5 bias
    assert.equal(14.5, out:get(1, 1, 1, 1))
    assert.equal(24.5, out:get(1, 1, 2, 1))
    assert.equal(54.5, out:get(1, 2, 2, 1))
    -- corner (4,4): 11+12+15+16 = 54
    assert.equal(54.5, out:get(1, 4, 4, 1))
  end)

  it("places TF 'same' padding with the odd row at the bottom/right", function()
    -- IH 6, K 3, S 2: OH 3, pad_total (3-1)*2+3-6 = 1, pad_top 0
    assert.same({3, 3, 0, 0}, {core.conv_out_size(6, 6, 3, 3, 2, 2, 'same')})
    -- IH 7, K 3, S 2: OH 4, pad_total 6+3-7 = 2, pad_top 1
    assert.same({4, 4, 1, 1}, {core.conv_out_size(7, 7, 3, 3, 2, 2, 'same')})
    -- 'valid': floor((7-3)/2)+1 = 3
    assert.same({3, 3, 0, 0}, {core.conv_out_size(7, 7, 3, 3, 2, 2, 'valid')})
    -- K 2, S 1 'same' on 4x4: pad_total 1, all of it after the image, so out(1,1) is the
    -- window 1+2+5+6 = 14 and out(4,4) = 16 alone.
    local c = luacap.nn.Conv2d(1, 1, 2, {padding = 'same'})
    c.kernel:fill(1)
    local out = c:forward(image16())
    assert.equal(14, out:get(1, 1, 1, 1))
    assert.equal(16, out:get(1, 4, 4, 1))
    assert.equal(15 + 16, out:get(1, 4, 3, 1))
  end)

  it('im2col + sgemm equals the direct convolution on odd shapes', function()
    luacap.seed(21)
    local n = 0
    for _, K in ipairs{1, 3, 5} do
      for _, S in ipairs{1, 2} do
        for _, pad in ipairs{'valid', 'same'} do
          for _, shp in ipairs{{1, 7, 9, 3, 5}, {3, 11, 6, 2, 7}} do
            local B, IH, IW, C, OC = shp[1], shp[2], shp[3], shp[4], shp[5]
            local x, w, b = luacap.randn(B, IH, IW, C), luacap.randn(K, K, C, OC), luacap.randn(OC)
            local OH, OW = core.conv_out_size(IH, IW, K, K, S, S, pad)
            for _, relu in ipairs{false, true} do
              local fast, ref = luacap.zeros(B, OH, OW, OC), luacap.zeros(B, OH, OW, OC)
              core.conv2d_forward(fast, x, w, b, S, S, pad, relu)
              core.conv2d_forward_ref(ref, x, w, b, S, S, pad, relu)
              close(ref, fast, 1e-4)
              n = n + 1
            end
          end
        end
      end
    end
    assert.equal(48, n)
    -- a non-square kernel and strides differing by axis
    local x, w = luacap.randn(2, 9, 8, 3), luacap.randn(3, 2, 3, 4)
    local OH, OW = core.conv_out_size(9, 8, 3, 2, 2, 3, 'same')
    local fast, ref = luacap.zeros(2, OH, OW, 4), luacap.zeros(2, OH, OW, 4)
    core.conv2d_forward(fast, x, w, nil, 2, 3, 'same', false)
    core.conv2d_forward_ref(ref, x, w, nil, 2, 3, 'same', false)
    close(ref, fast, 1e-4)
  end)

  it('chunks large batches without changing the result', function()
    -- 32 images of 16x16x64, 3x3 kernel: 8192 pixels * 576 floats = 4.7M > one 4M-float chunk
    luacap.seed(4)
    local x, w, b = luacap.randn(32, 16, 16, 64), luacap.randn(3, 3, 64, 3), luacap.randn(3)
    local fast, ref = luacap.zeros(32, 16, 16, 3), luacap.zeros(32, 16, 16, 3)
    core.conv2d_forward(fast, x, w, b, 1, 1, 'same', false)
    core.conv2d_forward_ref(ref, x, w, b, 1, 1, 'same', false)
    close(ref, fast, 1e-4)
  end)

  it('runs in a caller\'s work buffer as in its own, chunked, forward and backward', function()
    -- 8192 pixels of 576 floats: several chunks, so the buffer is reused within a call; work
    -- starts full of junk (NaN), which no result may see; a short buffer is refused
    luacap.seed(5)
    local x, w, b = luacap.randn(32, 16, 16, 64), luacap.randn(3, 3, 64, 3), luacap.randn(3)
    local nf = core.conv2d_workspace_size(x, w, 1, 1, 'same', 'forward')
    local nb = core.conv2d_workspace_size(x, w, 1, 1, 'same', 'backward_dx', true)
    assert.is_true(nb > core.conv2d_workspace_size(x, w, 1, 1, 'same', 'backward'))
    local work = luacap.full(0 / 0, math.max(nf, nb))
    local own, given = luacap.zeros(32, 16, 16, 3), luacap.zeros(32, 16, 16, 3)
    core.conv2d_forward(own, x, w, b, 1, 1, 'same', true)
    core.conv2d_forward(given, x, w, b, 1, 1, 'same', true, work)
    assert.same(own:flat(), given:flat())
    local dout = luacap.randn(32, 16, 16, 3)
    local dx1, dw1, db1 = luacap.zeros(32, 16, 16, 64), luacap.zeros(3, 3, 64, 3), luacap.zeros(3)
    local dx2, dw2, db2 = luacap.zeros(32, 16, 16, 64), luacap.zeros(3, 3, 64, 3), luacap.zeros(3)
    core.conv2d_backward(dx1, dw1, db1, dout, x, w, 1, 1, 'same', nil, own)
    work:fill(0 / 0)
    core.conv2d_backward(dx2, dw2, db2, dout, x, w, 1, 1, 'same', work, own)
    assert.same(dx1:flat(), dx2:flat())
    assert.same(dw1:flat(), dw2:flat())
    assert.same(db1:flat(), db2:flat())
    assert.has_error(function()
      core.conv2d_backward(dx2, dw2, db2, dout, x, w, 1, 1, 'same', luacap.zeros(nb - 1), own)
    end, ('conv2d_backward: work has %d floats, needs %d'):format(nb - 1, nb))
    assert.has_error(function()
      core.conv2d_workspace_size(x, w, 1, 1, 'same', true)
    end)
  end)

  it('masks by the relu output, and gives the same per image (threads) as per batch', function()
    -- relu_out given: the gradient is dout * (relu_out > 0), as masking dout by hand first.
    -- 3 images at 2 threads take the per-image path (each thread its own images and weight
    -- gradient), 1 thread the whole-batch path: the same sums in another order.
    luacap.seed(6)
    local threads = luacap.get_threads()
    for _, shp in ipairs{{3, 64, 64, 3, 32}, {4, 16, 16, 48, 64}, {5, 7, 9, 4, 6}} do
      local B, S1, S2, C, OC = unpack(shp)
      local x, w, b = luacap.randn(B, S1, S2, C), luacap.randn(3, 3, C, OC), luacap.randn(OC)
      local out = luacap.zeros(B, S1, S2, OC)
      core.conv2d_forward(out, x, w, b, 1, 1, 'same', true)
      local dout = luacap.randn(B, S1, S2, OC)
      local masked = luacap.zeros(B, S1, S2, OC)
      core.relu_backward(masked, dout, out)      -- dout where out > 0, else 0
      local got = {}
      for _, n in ipairs{1, 2} do
        luacap.set_threads(n)
        for _, with_mask in ipairs{true, false} do
          local dx, dw, db = luacap.zeros(B, S1, S2, C), luacap.zeros(3, 3, C, OC), luacap.zeros(OC)
          if with_mask then
            core.conv2d_backward(dx, dw, db, dout, x, w, 1, 1, 'same', nil, out)
          else
            core.conv2d_backward(dx, dw, db, masked, x, w, 1, 1, 'same')
          end
          got[#got + 1] = {dx, dw, db}
        end
      end
      luacap.set_threads(threads)
      for i = 2, #got do
        for k = 1, 3 do close(got[1][k], got[i][k], 1e-4) end
      end
      -- and the forward's per-image path equals the direct convolution
      luacap.set_threads(2)
      local ref = luacap.zeros(B, S1, S2, OC)
      core.conv2d_forward_ref(ref, x, w, b, 1, 1, 'same', true)
      local fast = luacap.zeros(B, S1, S2, OC)
      core.conv2d_forward(fast, x, w, b, 1, 1, 'same', true)
      luacap.set_threads(threads)
      close(ref, fast, 1e-4)
    end
  end)

  it('masks by the relu output in a 1x1 (pointwise) convolution too', function()
    luacap.seed(3)
    local x, w, b = luacap.randn(3, 5, 5, 4), luacap.randn(1, 1, 4, 6), luacap.randn(6)
    local out = luacap.zeros(3, 5, 5, 6)
    core.conv2d_forward(out, x, w, b, 1, 1, 'valid', true)
    local dout, masked = luacap.randn(3, 5, 5, 6), luacap.zeros(3, 5, 5, 6)
    core.relu_backward(masked, dout, out)
    local got = {luacap.zeros(3, 5, 5, 4), luacap.zeros(1, 1, 4, 6), luacap.zeros(6)}
    local want = {luacap.zeros(3, 5, 5, 4), luacap.zeros(1, 1, 4, 6), luacap.zeros(6)}
    core.conv2d_backward(got[1], got[2], got[3], dout, x, w, 1, 1, 'valid', nil, out)
    core.conv2d_backward(want[1], want[2], want[3], masked, x, w, 1, 1, 'valid')
    for k = 1, 3 do assert.same(want[k]:flat(), got[k]:flat()) end
  end)

  -- max |got - expected| / max |expected|: Winograd's error is relative to the map's scale.
  local function rel_err(expected, got)
    local a, b, mx, md = expected:flat(), got:flat(), 0, 0
    assert.equal(#a, #b)
    for i = 1, #a do
      mx = math.max(mx, math.abs(a[i]))
      md = math.max(md, math.abs(a[i] - b[i]))
    end
    return md / math.max(mx, 1e-30)
  end

  it('transforms an all-ones 3x3 filter into the outer product of G 1 (Winograd)', function()
    -- F(2,3): G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1], so G 1 = (1, 1.5, 0.5, 1) and
    -- U = G 1 1^T G^T = (G 1)(G 1)^T, e.g. U[2,2] = 2.25, U[2,3] = 0.75.
    local w = luacap.ones(3, 3, 1, 1)
    local u2 = luacap.zeros(16, 1, 1)
    core.winograd_filter(u2, w, 2)
    local g2 = {1, 1.5, 0.5, 1}
    local want = {}
    for i = 1, 4 do for j = 1, 4 do want[#want + 1] = g2[i] * g2[j] end end
    assert.same(want, u2:flat())
    -- F(4,3): G rows (1/4 0 0), -(1/6)(1 1 1), (1/6)(-1 1 -1), (1/24 1/12 1/6),
    -- (1/24 -1/12 1/6), (0 0 1): G 1 = (1/4, -1/2, -1/6, 7/24, 1/8, 1).
    local u4 = luacap.zeros(36, 1, 1)
    core.winograd_filter(u4, w, 4)
    local g4 = {1 / 4, -1 / 2, -1 / 6, 7 / 24, 1 / 8, 1}
    want = {}
    for i = 1, 6 do for j = 1, 6 do want[#want + 1] = g4[i] * g4[j] end end
    close(luacap.tensor(want), u4, 1e-6)
  end)

  it('Winograd F(4x4) and F(2x2) equal the direct convolution on odd shapes', function()
    luacap.seed(23)
    local n = 0
    -- sides 1, 2, primes, not multiples of the tiles; C and OC past one 16-lane block
    local shapes = {{1, 1, 1, 1, 1}, {2, 2, 3, 3, 5}, {1, 5, 7, 17, 19}, {3, 13, 11, 7, 2},
                    {2, 9, 4, 33, 16}, {1, 4, 8, 16, 33}}
    for _, shp in ipairs(shapes) do
      local B, IH, IW, C, OC = shp[1], shp[2], shp[3], shp[4], shp[5]
      local x, w = luacap.randn(B, IH, IW, C), luacap.randn(3, 3, C, OC)
      local b = luacap.randn(OC)
      for _, pad in ipairs{'same', 'valid'} do
        if pad == 'same' or (IH >= 3 and IW >= 3) then
          local OH, OW = core.conv_out_size(IH, IW, 3, 3, 1, 1, pad)
          for _, relu in ipairs{false, true} do
            for _, bias in ipairs{b, false} do
              local ref, sg = luacap.zeros(B, OH, OW, OC), luacap.zeros(B, OH, OW, OC)
              core.conv2d_forward_ref(ref, x, w, bias or nil, 1, 1, pad, relu)
              core.conv2d_forward(sg, x, w, bias or nil, 1, 1, pad, relu)
              for _, m in ipairs{2, 4} do
                local u = luacap.zeros((m + 2) ^ 2, C, OC)
                core.winograd_filter(u, w, m)
                local wo = luacap.full(7, B, OH, OW, OC)    -- every element must be written
                core.conv2d_winograd_forward(wo, x, u, bias or nil, m, pad, relu)
                -- measured: F(2) about 2e-7, F(4) about 3e-6 of the largest output
                local tol = m == 4 and 2e-5 or 2e-6
                local e1, e2 = rel_err(ref, wo), rel_err(sg, wo)
                assert(e1 < tol and e2 < tol, string.format('shape (%s) %s m=%d: %g, %g',
                  table.concat(shp, ','), pad, m, e1, e2))
                n = n + 1
              end
            end
          end
        end
      end
    end
    -- 10 (shape, padding) cases x relu x bias x m
    assert.equal(80, n)
  end)

  it('Winograd tiles a batch larger than one chunk without changing the result', function()
    -- F(2) on 40 images of 12x12: 40 * 6 * 6 = 1440 tiles; with C = OC = 300 a chunk holds
    -- 2^23 / (16 * 600) = 873 tiles, so the batch runs as two chunks, the second partial.
    luacap.seed(5)
    local x, w, b = luacap.randn(40, 12, 12, 300), luacap.randn(3, 3, 300, 300), luacap.randn(300)
    local u = luacap.zeros(16, 300, 300)
    core.winograd_filter(u, w, 2)
    local wo, sg = luacap.zeros(40, 12, 12, 300), luacap.zeros(40, 12, 12, 300)
    core.conv2d_winograd_forward(wo, x, u, b, 2, 'same', true)
    core.conv2d_forward(sg, x, w, b, 1, 1, 'same', true)
    assert(rel_err(sg, wo) < 2e-6)
    assert(core.winograd_workspace_size(40, 12, 12, 300, 300, 2, 'same') < 16 * 1440 * 600)
  end)

  it('Conv2d picks its algorithm and rebuilds the cached filter transform', function()
    assert.equal(4, luacap.nn.Conv2d(8, 4, 3, {padding = 'same'}):winograd_tile())
    assert.equal(0, luacap.nn.Conv2d(3, 4, 3):winograd_tile())          -- C < 8: im2col
    assert.equal(0, luacap.nn.Conv2d(8, 4, 3, {stride = 2}):winograd_tile())
    assert.equal(2, luacap.nn.Conv2d(3, 4, 3, {algorithm = 'winograd2'}):winograd_tile())
    assert.equal(0, luacap.nn.Conv2d(9, 4, 3, {algorithm = 'direct'}):winograd_tile())
    assert.has_error(function() luacap.nn.Conv2d(3, 4, 5, {algorithm = 'winograd4'}) end,
      "Conv2d: algorithm 'winograd4' needs a 3x3 kernel with stride 1")
    assert.has_error(function() luacap.nn.Conv2d(3, 4, 3, {algorithm = 'fft'}) end,
      "Conv2d: algorithm must be 'auto', 'direct', 'winograd4' or 'winograd2', got 'fft'")
    luacap.seed(8)
    local c = luacap.nn.Conv2d(9, 5, 3, {padding = 'same', trainable = false})
    local x = luacap.randn(2, 6, 7, 9)
    local function direct()
      local ref = luacap.zeros(2, 6, 7, 5)
      core.conv2d_forward_ref(ref, x, c.kernel, c.bias, 1, 1, 'same', false)
      return ref
    end
    assert(rel_err(direct(), c:forward(x)) < 2e-5)
    -- one changed weight (as a load or an optimizer step does) must reach the output
    local k = c.kernel:flat()
    k[17] = k[17] + 3
    c.kernel:copy(luacap.tensor(k):reshape(3, 3, 9, 5))
    assert(rel_err(direct(), c:forward(x)) < 2e-5)
  end)

  it('passes gradient checks for input, kernel and bias', function()
    local cases = {
      {K = 3, stride = 1, padding = 'same'},
      {K = 3, stride = 2, padding = 'same'},
      {K = 5, stride = 2, padding = 'valid'},
      {K = 1, stride = 1, padding = 'valid'},
      {K = 2, stride = 1, padding = 'valid', activation = 'relu'},
      -- Winograd forward (backward is im2col's): finite differences of the Winograd output
      {K = 3, stride = 1, padding = 'same', algorithm = 'winograd4', C = 9},
      {K = 3, stride = 1, padding = 'valid', algorithm = 'winograd2', C = 3},
    }
    for i, cs in ipairs(cases) do
      luacap.seed(100 + i)
      local C = cs.C or 2
      local c = luacap.nn.Conv2d(C, 3, cs.K, cs)
      c.bias:copy(luacap.randn(3))
      if cs.activation then c.bias:fill(0.7) end
      local x = cs.activation and luacap.uniform(0.1, 1, 2, 7, 6, C) or luacap.randn(2, 7, 6, C)
      local ok, report = gradcheck.layer_check(c, x, {coords = 40})
      assert(ok, string.format('case %d\n%s', i, report))
    end
  end)

  it('accumulates: backward twice gives twice the gradients', function()
    luacap.seed(31)
    local c = luacap.nn.Conv2d(3, 4, 3, {padding = 'same', stride = 2, activation = 'relu'})
    local x = luacap.randn(2, 5, 5, 3)
    local out = c:forward(x)
    local dout = luacap.randn(unpack(out:shape()))
    local dx1 = c:backward(x, dout):clone()
    local k1, b1 = c.dkernel:clone(), c.dbias:clone()
    local dx2 = c:backward(x, dout)
    close(dx1, dx2, 1e-6)          -- dx is returned fresh each call
    close(k1:scale(2), c.dkernel, 1e-5)
    close(b1:scale(2), c.dbias, 1e-5)
  end)

  it('names the function, argument and shapes in its errors', function()
    local c = luacap.nn.Conv2d(3, 4, 3, {name = 'block1_conv1'})
    assert.has_error(function() c:forward(luacap.zeros(1, 8, 8, 2)) end,
      'Conv2d block1_conv1: x has shape (1, 8, 8, 2), expected (B, IH, IW, 3)')
    assert.has_error(function()
      core.conv2d_forward(luacap.zeros(1, 8, 8, 4), luacap.zeros(1, 8, 8, 3), c.kernel, c.bias,
        1, 1, 'valid', false)
    end, 'conv2d_forward: out has shape (1, 8, 8, 4), expected (1, 6, 6, 4) = (B, OH, OW, OC)')
    assert.has_error(function()
      core.conv2d_forward(luacap.zeros(1, 1, 1, 4), luacap.zeros(1, 2, 2, 3), c.kernel, c.bias,
        1, 1, 'valid', false)
    end, "conv2d_forward: a 3x3 window with 'valid' padding does not fit a 2x2 input")
    assert.has_error(function()
      core.conv2d_forward(luacap.zeros(1, 8, 8, 4), luacap.zeros(1, 8, 8, 3), c.kernel, c.bias,
        1, 1, 'full', false)
    end, "conv2d_forward: padding must be 'same' or 'valid', got 'full'")
  end)
end)
