-- Specs for luacap tensors: constructors, views, reductions, errors, the generator.
local luacap = require 'luacap'

describe('tensor', function()
  it('round-trips nested tables and reports its shape', function()
    local t = luacap.tensor{{1, 2, 3}, {4, 5, 6}}
    assert.same({2, 3}, t:shape())
    assert.equal(3, t:size(2))
    assert.equal(6, t:numel())
    assert.same({{1, 2, 3}, {4, 5, 6}}, t:totable())
  end)

  it('stores token ids exactly up to 2^24', function()
    local t = luacap.tensor{16777216, 8485, 0}
    assert.same({16777216, 8485, 0}, t:totable())
  end)

  it('makes zeros, ones, arange and full', function()
    assert.same({0, 0, 0}, luacap.zeros(3):totable())
    assert.same({{1, 1}}, luacap.ones(1, 2):totable())
    assert.same({0, 1, 2, 3}, luacap.arange(4):totable())
    assert.same({2, 4, 6}, luacap.arange(2, 8, 2):totable())
    assert.same({7, 7}, luacap.full(7, {2}):totable())
  end)

  it('zeroes a large tensor in spans on the threads, every element, at 1 and 2 threads', function()
    local threads = luacap.get_threads()
    for _, n in ipairs{1, 2} do
      luacap.set_threads(n)
      local N = 3 * 65536 * 2 + 12345     -- over the parallel threshold, a partial last span
      local t = luacap.ones(N)
      assert.equal(t, t:zero())
      assert.equal(0, t:norm())
      local m = luacap.ones(4, 100000)    -- a 2-d tensor through the same path
      m:zero()
      assert.equal(0, m:norm())
      assert.equal(0, m:get(4, 100000))
    end
    luacap.set_threads(threads)
  end)

  it('gets and sets elements 1-based', function()
    local t = luacap.zeros(2, 3)
    t:set(2, 3, 9.5)
    assert.equal(9.5, t:get(2, 3))
    assert.equal(9.5, t:flat()[6])
  end)

  it('reduces: sum, mean, max, min, argmax along a dim, norm', function()
    local t = luacap.tensor{{1, 7, 3}, {9, 2, 9}}
    assert.equal(31, t:sum())
    assert.near(31 / 6, t:mean(), 1e-12)
    local v, i = t:max()
    assert.equal(9, v); assert.equal(4, i)          -- the first 9, at flat position 4
    assert.equal(1, (t:min()))
    assert.same({2, 1}, t:argmax(2):totable())       -- ties go to the first
    assert.same({2, 1, 2}, t:argmax(1):totable())
    assert.near(math.sqrt(1 + 49 + 9 + 81 + 4 + 81), t:norm(), 1e-5)
  end)

  it('argmax: NaN never wins unless first, and a large tensor (on the threads) as a plain loop', function()
    local nan = 0 / 0
    assert.same({3, 1, 2}, luacap.tensor{{1, nan, 5, 2}, {nan, 9, 9, 9}, {-1, 0, nan, 0}}:argmax(2):totable())
    luacap.seed(5)
    local x = luacap.randn(40, 8485)             -- past the threads' threshold
    local flat, got = x:flat(), x:argmax(2):flat()
    for r = 1, 40 do
      local best = 1
      for k = 2, 8485 do if flat[(r - 1) * 8485 + k] > flat[(r - 1) * 8485 + best] then best = k end end
      assert.equal(best, got[r])
    end
    local y = luacap.randn(3, 1000, 100)         -- along a middle dim: inner = 100
    local yf, yg = y:flat(), y:argmax(2):flat()
    for o = 1, 3 do for i = 1, 100 do
      local best = 1
      for k = 2, 1000 do
        if yf[((o - 1) * 1000 + k - 1) * 100 + i] > yf[((o - 1) * 1000 + best - 1) * 100 + i] then best = k end
      end
      assert.equal(best, yg[(o - 1) * 100 + i])
    end end
  end)

  it('adds, multiplies and scales in place', function()
    local a = luacap.tensor{1, 2, 3}
    a:add(luacap.tensor{10, 20, 30}, 0.5)           -- 1+5, 2+10, 3+15
    assert.same({6, 12, 18}, a:totable())
    a:mul(luacap.tensor{1, 0, -1}):add(1):scale(2)  -- (6+1)*2, (0+1)*2, (-18+1)*2
    assert.same({14, 2, -34}, a:totable())
  end)

  it('reshapes and narrows as views that share storage', function()
    local t = luacap.arange(6)
    local v = t:reshape(2, -1)
    assert.same({2, 3}, v:shape())
    v:set(2, 1, 100)
    assert.equal(100, t:get(4))
    local row = v:narrow(2, 1)
    assert.same({{100, 4, 5}}, row:totable())
    local c = t:clone():fill(0)
    assert.equal(100, t:get(4)); assert.equal(0, c:sum())
    c:copy(t)
    assert.equal(t:sum(), c:sum())
  end)

  it('prints values and size the way Torch does', function()
    local s = tostring(luacap.tensor{{1, 2}, {3, 4}})
    assert.equal('  1  2\n  3  4\n[luacap.Tensor of size 2x2]', s)
    assert.matches('%(2,%.,%.%) = ', tostring(luacap.zeros(2, 1, 1)))
  end)

  it('raises clear errors on wrong calls', function()
    local t = luacap.zeros(2, 3)
    assert.has_error(function() t:get(3, 1) end,
      'get: index 3 out of range 1..2 in dim 1 of a tensor of shape (2, 3)')
    assert.has_error(function() luacap.zeros(-1) end,
      'zeros: size 1 must be a non-negative integer, got -1')
    assert.has_error(function() t:reshape(4, 2) end,
      'reshape: cannot view (2, 3) (6 elements) as (4, 2)')
    assert.has_error(function() t:add(luacap.zeros(3)) end,
      'add: self has shape (2, 3) but other has shape (3), expected them equal')
    assert.has_error(function() luacap.tensor{{1, 2}, {3}} end)
    assert.has_error(function() t:size(3) end, 'size: dim 3 out of range for a 2-d tensor')
    assert.has_error(function() t.sum('x') end)
  end)

  it('refuses use after free, and free twice is harmless', function()
    local t = luacap.ones(4)
    local v = t:reshape(2, 2)
    t:free(); t:free()
    assert.has_error(function() t:sum() end, 'bad argument #1: tensor was freed')
    assert.equal(4, v:sum())   -- the view keeps its own reference to the storage
  end)

  it('seeds one generator: same seed, same numbers', function()
    luacap.seed(42)
    local a = luacap.randn(5):totable()
    local r1 = luacap.random(10)
    luacap.seed(42)
    local b = luacap.randn(5):totable()
    assert.same(a, b)
    assert.equal(r1, luacap.random(10))
    luacap.seed(43)
    assert.are_not.same(a, luacap.randn(5):totable())
  end)

  it('saves and restores the generator state exactly', function()
    luacap.seed(9)
    luacap.randn(3)                              -- leaves a spare normal behind
    local st = luacap.core.rng_state()
    local a = luacap.randn(5):totable()
    luacap.seed(1)
    luacap.core.set_rng_state(st)
    assert.same(a, luacap.randn(5):totable())
    assert.has_error(function() luacap.core.set_rng_state('xyz') end,
      'set_rng_state: malformed state string')
  end)

  it('draws uniform and normal numbers with the right moments', function()
    luacap.seed(7)
    local u = luacap.rand(20000)
    assert.near(0.5, u:mean(), 0.01)
    assert.is_true(u:min() >= 0 and u:max() < 1)
    local n = luacap.randn(20000)
    assert.near(0, n:mean(), 0.03)
    local sq = n:clone():mul(n)
    assert.near(1, sq:mean(), 0.05)
  end)

  it('gathers rows by 1-based number', function()
    local src = luacap.tensor{{1, 2}, {3, 4}, {5, 6}}
    local dst = luacap.zeros(3, 2)
    luacap.core.gather(dst, src, {3, 1, 3})
    assert.same({{5, 6}, {1, 2}, {5, 6}}, dst:totable())
    assert.has_error(function() luacap.core.gather(dst, src, {1, 4, 1}) end,
      'gather: row 4 at position 2 out of range 1..3')
    assert.has_error(function() luacap.core.gather(luacap.zeros(2, 2), src, {1, 2, 3}) end,
      'gather: dst has shape (2, 2), expected (3, 2)')
  end)

  it('scatter-adds rows, the gradient of gather', function()
    local dst = luacap.zeros(2, 2)
    luacap.core.scatter_add(dst, luacap.tensor{{1, 2}, {3, 4}, {5, 6}}, {2, 1, 2})
    assert.same({{3, 4}, {6, 8}}, dst:totable())     -- row 2 = (1,2) + (5,6)
    assert.has_error(function() luacap.core.scatter_add(dst, luacap.zeros(1, 2), {3}) end,
      'scatter_add: row 3 at position 1 out of range 1..2')
  end)

  it('scatters rows: the inverse of gather on distinct rows, other rows untouched', function()
    local src = luacap.tensor{{1, 2}, {3, 4}, {5, 6}, {7, 8}}
    local picked = luacap.zeros(2, 2)
    luacap.core.gather(picked, src, {4, 2})
    local dst = luacap.full(-1, 4, 2)
    luacap.core.scatter(dst, picked, {4, 2})
    assert.same({{-1, -1}, {3, 4}, {-1, -1}, {7, 8}}, dst:totable())
    luacap.core.scatter(dst, luacap.tensor{{0, 0}, {9, 9}}, {1, 1})   -- a later row wins
    assert.same({9, 9}, dst:totable()[1])
    assert.has_error(function() luacap.core.scatter(dst, luacap.zeros(1, 2), {5}) end,
      'scatter: row 5 at position 1 out of range 1..4')
    assert.has_error(function() luacap.core.scatter(dst, luacap.zeros(2, 3), {1, 2}) end,
      'scatter: src has shape (2, 3), expected (2, 2)')
  end)

  it('gathers, scatters and scatter-adds large blocks on the threads as plain loops do', function()
    -- 400 rows of 1000 floats: past the size from which the copies run on the threads;
    -- rows repeat, so the scatter's later row must win and the sums add in order
    luacap.seed(19)
    local n, W, N = 400, 1000, 150
    local f32 = require('ffi').new('float[1]')
    local src, rows = luacap.randn(n, W), {}
    for i = 1, n do rows[i] = (i * 37) % N + 1 end
    local threads = luacap.get_threads()
    for _, th in ipairs{1, 2} do
      luacap.set_threads(th)
      local g = luacap.zeros(n, W)
      local big = luacap.randn(N, W)
      luacap.core.gather(g, big, rows)
      local sc, sa = big:clone(), big:clone()
      luacap.core.scatter(sc, src, rows)
      luacap.core.scatter_add(sa, src, rows)
      local bf, sf, gf, scf, saf = big:flat(), src:flat(), g:flat(), sc:flat(), sa:flat()
      local want_sc, want_sa = {}, {}
      for k = 1, #bf do want_sc[k], want_sa[k] = bf[k], bf[k] end
      for i = 1, n do
        local r = rows[i]
        for j = 1, W do
          assert(gf[(i - 1) * W + j] == bf[(r - 1) * W + j], 'gather row ' .. i)
          want_sc[(r - 1) * W + j] = sf[(i - 1) * W + j]
          f32[0] = want_sa[(r - 1) * W + j] + sf[(i - 1) * W + j]   -- float sums, in order
          want_sa[(r - 1) * W + j] = f32[0]
        end
      end
      assert.same(want_sc, scf)
      assert.same(want_sa, saf)
    end
    luacap.set_threads(threads)
  end)

  it('multiplies matrices through OpenBLAS sgemm', function()
    -- [1 2; 3 4] @ [5 6; 7 8] = [19 22; 43 50]
    local a, b = luacap.tensor{{1, 2}, {3, 4}}, luacap.tensor{{5, 6}, {7, 8}}
    local c = luacap.zeros(2, 2)
    luacap.core.sgemm(c, a, b)
    assert.same({{19, 22}, {43, 50}}, c:totable())
    luacap.core.sgemm(c, a, b, true, false)          -- A^T @ B = [26 30; 38 44]
    assert.same({{26, 30}, {38, 44}}, c:totable())
  end)

  it('multiplies by vectors (the sgemv path) in all transposes, beta 0 ignoring NaN', function()
    local a, b = luacap.tensor{{1, 2}, {3, 4}}, luacap.tensor{{5, 6}, {7, 8}}
    local r = luacap.full(0 / 0, 1, 2)                -- NaN: beta 0 must not read it
    luacap.core.sgemm(r, luacap.tensor{{1, 2}}, b)    -- (1 2) @ [5 6; 7 8] = (19 22)
    assert.same({{19, 22}}, r:totable())
    luacap.core.sgemm(r, luacap.tensor{{1}, {2}}, b, true, true)  -- (1 2) @ B^T = (17 23)
    assert.same({{17, 23}}, r:totable())
    local col = luacap.full(0 / 0, 2, 1)
    luacap.core.sgemm(col, a, luacap.tensor{{5}, {7}})  -- A @ (5 7)^T = (19 43)^T
    assert.same({{19}, {43}}, col:totable())
    luacap.core.sgemm(col, a, luacap.tensor{{5, 7}}, true, true, 2, 1)  -- 2 A^T (5 7) + col
    assert.same({{19 + 52}, {43 + 76}}, col:totable())
  end)
end)
