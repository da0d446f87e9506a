-- Data-parallel training on MPI (docs/distributed.md): what fit asks of the ranks. Every
-- rank runs the same fit with the same seed, so the shuffles and the global batches are
-- the same everywhere; each rank computes its contiguous share of every global batch, and
-- the gradients, scaled by share / global batch, are summed by allreduce, so every
-- optimiser step equals the one-process step on the whole batch (up to float summation
-- order). Overlap: the model's gradients are allreduced (non-blocking) while a trainable
-- encoder's backward still runs; the encoder's follow in a second call. The model's own
-- backward is one hand-written function, so its gradients are not bucketed while it runs.
-- Not a launcher: mpirun starts the ranks.
local M = {}

local Dist = {}
Dist.__index = Dist

-- new(mpi) -> dist: mpi is luacap.mpi, initialised (mpi.init) by the caller.
function M.new(mpi)
  local d = setmetatable({mpi = mpi, rank = mpi.rank(), size = mpi.size(), bufs = {}}, Dist)
  return d
end

-- from_options(opt) -> dist for the train command's --distributed: initialises MPI (a
-- message when luacap.mpi is not built); ranks other than 0 become quiet.
function M.from_options(opt)
  local mpi = require 'luacap.mpi'
  local ok, why = mpi.available()
  if not ok then error('--distributed: ' .. why, 0) end
  mpi.init()
  local d = M.new(mpi)
  if d.rank > 0 then opt.quiet = true end
  return d
end

-- share(n) -> first, count: this rank's contiguous share of n rows (1-based first); the
-- first n % size ranks get one row more.
function Dist:share(n)
  local base, extra = math.floor(n / self.size), n % self.size
  local r = self.rank
  local count = base + (r < extra and 1 or 0)
  local first = r * base + math.min(r, extra) + 1
  return first, count
end

-- The rows of list that are this rank's share (a new list).
function Dist:part(list)
  local first, count = self:share(#list)
  local out = {}
  for i = 1, count do out[i] = list[first + i - 1] end
  return out
end

local function buffer(self, key, n)
  local b = self.bufs[key]
  if not b or b:numel() ~= n then
    b = require('luacap.tensor').zeros(math.max(n, 1))
    self.bufs[key] = b
  end
  return b
end

-- Rank 0's parameter values on every rank.
function Dist:broadcast_params(params)
  local n = self.mpi.layout(params)
  local buf = buffer(self, 'bcast', n)
  self.mpi.pack(buf, params, 'value')
  self.mpi.broadcast(buf, 0, 1, n)
  self.mpi.unpack(buf, params, 'value')
end

-- start_grads(params, w, loss) packs w * grad of params and w * loss (the last value) into
-- one buffer and starts its allreduce; returns a handle for finish_grads.
function Dist:start_grads(params, w, loss, key)
  local n = self.mpi.layout(params)
  local buf = buffer(self, key or 'grads', n + 1)
  self.mpi.pack(buf, params, 'grad')
  buf:set(n + 1, loss)
  buf:scale(w)
  return {buf = buf, n = n, params = params, req = self.mpi.iallreduce(buf, 1, n + 1)}
end

-- finish_grads(handle) waits, unpacks the summed gradients; returns the global loss.
function Dist:finish_grads(h)
  h.req:wait()
  self.mpi.unpack(h.buf, h.params, 'grad')
  return h.buf:get(h.n + 1)
end

-- allreduce_grads(params, w): the same as one blocking call, for a second group.
function Dist:allreduce_grads(params, w, key)
  if #params == 0 then return end
  local h = self:start_grads(params, w, 0, key or 'grads2')
  self:finish_grads(h)
end

-- sum(list of numbers) -> the element-wise sums over ranks, in doubles, added in rank order.
function Dist:sum(values)
  local all = self.mpi.allgather(values)
  local out = {}
  for i = 1, #values do
    local s = 0
    for r = 1, #all do s = s + all[r][i] end
    out[i] = s
  end
  return out
end

-- gather(list) -> on every rank, the concatenation of every rank's list in rank order.
function Dist:gather(list)
  local out = {}
  for _, part in ipairs(self.mpi.allgather(list)) do
    for _, v in ipairs(part) do out[#out + 1] = v end
  end
  return out
end

return M
