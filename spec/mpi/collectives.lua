-- spec/mpi/collectives.lua: run by spec/mpi_spec.lua under `mpirun -np N`; each rank checks
-- luacap.mpi's collectives against values it computes itself, and prints "ok rank R" at the
-- end (an assert ends the job non-zero with its message). Not a spec file on its own.
package.path = 'lua/?.lua;lua/?/init.lua;' .. package.path
package.cpath = 'lua/?.so;' .. package.cpath
local luacap = require 'luacap'
local mpi = require 'luacap.mpi'
local rank, size = mpi.init()
assert(mpi.rank() == rank and mpi.size() == size)

-- rank r's value i: a small integer, so every sum is exact in float32 whatever the order
local function value(r, i) return ((r + 1) * 7 + i * 3) % 101 - 50 end
local function filled(r, n)
  local t = luacap.zeros(math.max(n, 1))
  local f = {}
  for i = 1, n do f[i] = value(r, i) end
  if n > 0 then t:narrow(1, n):copy(luacap.tensor(f, {n})) end
  return n > 0 and t:narrow(1, n) or luacap.zeros(0)
end
local function expect_sum(t, n, what)
  local got = t:flat()
  assert(#got == n, what .. ': size ' .. #got)
  for i = 1, n do
    local want = 0
    for r = 0, size - 1 do want = want + value(r, i) end
    if got[i] ~= want then error(string.format('%s: element %d is %g, expected %g', what, i, got[i], want)) end
  end
end

-- blocking, non-blocking, and a flat range of a bigger buffer; sizes incl. 0 and odd ones
for _, n in ipairs({0, 1, 2, 3, 5, 7, 64, 999, 4097, 100003}) do
  local t = filled(rank, n)
  mpi.allreduce(t)
  expect_sum(t, n, 'allreduce n=' .. n)
  local u = filled(rank, n)
  local req = mpi.iallreduce(u)
  req:wait()
  expect_sum(u, n, 'iallreduce n=' .. n)
  local v = filled(rank, n)                   -- completed by test() alone, no wait
  local rv, tests = mpi.iallreduce(v), 1
  while not rv:test() do tests = tests + 1 end
  assert(rv:test() and mpi.test(rv), 'test: a completed request stays completed')
  expect_sum(v, n, 'iallreduce + test n=' .. n .. ' (' .. tests .. ' tests)')
  local big = luacap.full(1000, n + 10)       -- a flat range [6, 6+n) of it
  if n > 0 then big:narrow(6, n):copy(filled(rank, n)) end
  mpi.allreduce(big, 6, n)
  local f = big:flat()
  for i = 1, 5 do assert(f[i] == 1000 and f[n + 5 + i] == 1000, 'range: outside values changed') end
  if n > 0 then expect_sum(big:narrow(6, n), n, 'range n=' .. n) end
end
-- a 2-D tensor in place
local m = luacap.full(rank + 1, 3, 5)
mpi.allreduce(m)
for _, v in ipairs(m:flat()) do assert(v == size * (size + 1) / 2, '2-D allreduce') end

-- broadcast from the last rank
local b = luacap.full(rank, 17)
mpi.broadcast(b, size - 1)
for _, v in ipairs(b:flat()) do assert(v == size - 1, 'broadcast') end

-- allgather of Lua values: numbers keep every bit, strings and tables come through
local g = mpi.allgather({rank = rank, third = (rank + 1) / 3, name = string.rep('x', rank * 3)})
assert(#g == size, 'allgather: ' .. #g .. ' values')
for r = 0, size - 1 do
  assert(g[r + 1].rank == r and g[r + 1].third == (r + 1) / 3 and #g[r + 1].name == r * 3, 'allgather value')
end

-- a bad range is a Lua error naming the function
local okr, err = pcall(mpi.allreduce, luacap.zeros(4), 3, 5)
assert(not okr and err:find('mpi.allreduce: range'), tostring(err))

mpi.barrier()
print('ok rank ' .. rank)
mpi.finalize()
