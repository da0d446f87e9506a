-- Specs for lua/luacap/train/distributed.lua without MPI: the gradient buckets (grouping in
-- backward's order, a bucket's allreduce started only once all its parameters are final,
-- flush for what backward never reported, the loss in the first bucket) and the row shares,
-- over a fake communicator that records the calls and sums "2 identical ranks" (x 2).
local luacap = require 'luacap'
local mpi = require 'luacap.mpi'
local distributed = require 'luacap.train.distributed'

-- A fake luacap.mpi for one process: iallreduce doubles the range when waited on (or when
-- test says it is done, the second time it is tested) and logs what was started.
local function fake(size, rank)
  local log = {}
  local f = {layout = mpi.layout, pack = mpi.pack, unpack = mpi.unpack, log = log,
    rank = function() return rank or 0 end, size = function() return size or 2 end}
  function f.iallreduce(buf, first, count)
    local req = {tests = 0}
    log[#log + 1] = {count = count, values = buf:flat()}
    local function complete()
      if req.done then return end
      req.done = true
      buf:narrow(first, count):scale(2)
    end
    function req.wait() complete() end
    function req.test()
      req.tests = req.tests + 1
      if req.tests >= 2 then complete() end
      return req.done or false
    end
    return req
  end
  return f
end

-- A layer with parameters of the given sizes (grad = i * 1 everywhere for the i-th).
local function layer(sizes, start)
  local l = {params = {}}
  for i, n in ipairs(sizes) do
    local g = luacap.full(start + i - 1, n)
    l.params[i] = {name = 'p' .. (start + i - 1), value = luacap.zeros(n), grad = g}
  end
  function l.parameters() return l.params end
  return l
end

describe('distributed.grad_buckets', function()
  -- a "model" listing its layers input first: a (sizes 3, 2), b (4), c (5, 1)
  local a, b, c = layer({3, 2}, 1), layer({4}, 3), layer({5, 1}, 4)
  local params = {}
  for _, l in ipairs({a, b, c}) do
    for _, p in ipairs(l.params) do params[#params + 1] = p end
  end

  it('groups parameters in reverse order into buckets of at least bucket_values values', function()
    local d = distributed.new(fake())
    local bk = d:grad_buckets(params, 5)
    -- reversed: p5 (1), p4 (5) | p3 (4), p2 (2) | p1 (3)
    assert.equal(3, #bk.buckets)
    local names = {}
    for i, x in ipairs(bk.buckets) do
      names[i] = {}
      for _, p in ipairs(x.params) do names[i][#names[i] + 1] = p.name end
    end
    assert.same({{'p5', 'p4'}, {'p3', 'p2'}, {'p1'}}, names)
    assert.same({6, 6, 3}, {bk.buckets[1].n, bk.buckets[2].n, bk.buckets[3].n})
    assert.equal(d.grad_bucketing, bk)
  end)

  it('starts a bucket only when all its parameters are final, sums every gradient and the loss', function()
    local f = fake()
    local d = distributed.new(f)
    local bk = d:grad_buckets(params, 5)
    bk:begin(0.25)
    bk:ready(c)                                   -- p5 and p4: bucket 1 complete
    assert.equal(1, #f.log)
    assert.equal(7, f.log[1].count)               -- 6 gradient values and the loss
    assert.same({5, 4, 4, 4, 4, 4, 0.25}, f.log[1].values)
    assert.equal(1, bk.early)
    bk:ready(c)                                   -- reported twice: counted once
    assert.equal(1, #f.log)
    bk:flush()                                    -- b and a never reported: started here
    assert.equal(3, #f.log)
    assert.equal(1, bk.early)
    local loss = bk:finish()
    assert.equal(0.5, loss)
    for i, p in ipairs(params) do
      for _, v in ipairs(p.grad:flat()) do assert.equal(2 * i, v) end
    end
  end)

  it('a second step starts afresh (buffers reused, gradients final again only when reported)', function()
    local f = fake()
    local d = distributed.new(f)
    local bk = d:grad_buckets(params, 5)
    for _, p in ipairs(params) do p.grad:fill(1) end
    bk:begin(1)
    bk:ready(c); bk:ready(b); bk:ready(a)
    assert.equal(3, #f.log)
    assert.equal(3, bk.early)
    assert.equal(2, bk:finish())
    bk:begin(3)
    assert.equal(3, #f.log)                       -- nothing started before its layer is done
    bk:ready(b)                                   -- p3 alone: bucket 2 waits for p2 (layer a)
    assert.equal(3, #f.log)
    bk:ready(a)                                   -- p2 and p1: buckets 2 and 3
    assert.equal(5, #f.log)
    assert.equal(6, bk:finish())
    for _, p in ipairs(params) do
      for _, v in ipairs(p.grad:flat()) do assert.equal(4, v) end
    end
  end)

  it('a parameter list with nothing in it still carries the loss', function()
    local d = distributed.new(fake())
    local bk = d:grad_buckets({}, 10)
    bk:begin(1.5)
    assert.equal(3, bk:finish())
  end)
end)

describe('distributed shares', function()
  it('splits n rows into contiguous shares, the first n % size ranks one more', function()
    local got = {}
    for r = 0, 2 do
      local first, count = distributed.new(fake(3, r)):share(8)
      got[#got + 1] = {first, count}
    end
    assert.same({{1, 3}, {4, 3}, {7, 2}}, got)
    assert.same({'c', 'd'}, distributed.new(fake(3, 1)):part({'a', 'b', 'c', 'd', 'e'}))
  end)
end)
