-- Data-parallel training on MPI (docs/distributed.md): what fit asks of the ranks. Every
-- rank runs the same fit with the same seed, so the shuffles and the global batches are
-- the same everywhere; each rank computes its contiguous share of every global batch, and
-- the gradients, scaled by share / global batch, are summed by allreduce, so every
-- optimiser step equals the one-process step on the whole batch (up to float summation
-- order). Overlap: the model's gradients go in buckets whose allreduce starts while its
-- backward still runs (grad_buckets below) and while a trainable encoder's backward runs;
-- the encoder's gradients follow in a second call.
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

-- Gradient buckets: the allreduce of a step overlapped with the model's backward, as
-- PyTorch's DDP and Horovod do. grad_buckets(params, bucket_values) groups params, in the
-- order backward completes them (the list reversed: a model lists its layers input first,
-- backward runs output first), into buckets of at least bucket_values values (the last one
-- smaller; a parameter is never split); each bucket keeps its packed buffer between steps.
-- A step: b:begin(loss); the model's backward calls b:ready(layer) (through
-- model.grad_ready, Module:grads_final) once layer's gradients are final, which starts the
-- non-blocking allreduce of every bucket whose parameters are then all final and lets MPI
-- progress those in flight (OpenMPI advances them only inside MPI calls); b:flush() starts
-- the rest; b:finish() waits, unpacks the sums and returns the summed loss, which rides in
-- the first bucket. Correct whatever backward reports: a model that never calls ready has
-- every bucket started by flush. b.early counts the buckets started during backward,
-- b.wait_s the seconds finish spent waiting (the communication backward did not hide).
local now = require('luacap.util').now
local Buckets = {}
Buckets.__index = Buckets

function Dist:grad_buckets(params, bucket_values)
  assert(bucket_values and bucket_values >= 1, 'grad_buckets: bucket_values must be >= 1')
  local b = setmetatable({dist = self, buckets = {}, of = {}, layer_params = {}, step = 0,
    early = 0, wait_s = 0}, Buckets)
  local cur
  for i = #params, 1, -1 do
    if not cur then
      cur = {params = {}, n = 0}
      b.buckets[#b.buckets + 1] = cur
    end
    local p = params[i]
    cur.params[#cur.params + 1] = p
    cur.n = cur.n + p.value:numel()
    b.of[p.grad] = cur
    if cur.n >= bucket_values then cur = nil end
  end
  if #b.buckets == 0 then b.buckets[1] = {params = {}, n = 0} end
  self.grad_bucketing = b                           -- the latest, for reports and specs
  local T = require 'luacap.tensor'
  for i, bk in ipairs(b.buckets) do
    bk.len = bk.n + (i == 1 and 1 or 0)             -- the loss after the first's gradients
    bk.buf = T.zeros(math.max(bk.len, 1))
    bk.final = {}                                   -- grad -> the step it became final
  end
  return b
end

function Buckets:begin(loss)
  self.step = self.step + 1
  self.loss = loss
  for _, bk in ipairs(self.buckets) do bk.left, bk.req, bk.done = #bk.params, nil, false end
end

local function start(self, bk)
  local mpi = self.dist.mpi
  mpi.pack(bk.buf, bk.params, 'grad')
  if bk == self.buckets[1] then bk.buf:set(bk.len, self.loss) end
  bk.req = mpi.iallreduce(bk.buf, 1, bk.len)
end

-- Each in-flight request tested once: MPI moves it on.
local function poll(self)
  for _, bk in ipairs(self.buckets) do
    if bk.req and not bk.done then bk.done = bk.req:test() end
  end
end

function Buckets:ready(layer)
  local ps = self.layer_params[layer]
  if not ps then
    ps = layer:parameters()
    self.layer_params[layer] = ps
  end
  for _, p in ipairs(ps) do
    local bk = self.of[p.grad]
    if bk and bk.final[p.grad] ~= self.step then
      bk.final[p.grad] = self.step
      bk.left = bk.left - 1
      if bk.left == 0 and not bk.req then
        start(self, bk)
        self.early = self.early + 1
      end
    end
  end
  poll(self)
end

function Buckets:flush()
  for _, bk in ipairs(self.buckets) do
    if not bk.req then start(self, bk) end
  end
end

function Buckets:finish()
  self:flush()
  local mpi = self.dist.mpi
  local t0 = now()
  for _, bk in ipairs(self.buckets) do bk.req:wait() end
  self.wait_s = self.wait_s + (now() - t0)
  for _, bk in ipairs(self.buckets) do mpi.unpack(bk.buf, bk.params, 'grad') end
  local first = self.buckets[1]
  return first.buf:get(first.len)
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

-- share_rows(m, counts): m (sum of counts, ...) holds rank r's block of counts[r + 1] rows
-- (the blocks in rank order) filled on rank r; afterwards every rank holds every block. Each
-- block is broadcast from its rank, in calls of at most 2^26 values: bit for bit (a sum with
-- zeros would turn -0 into +0). Feature extraction sharded by rank uses it.
local ROWS_CHUNK = 2 ^ 26
function Dist:share_rows(m, counts)
  assert(#counts == self.size, 'share_rows: one count per rank')
  local total = 0
  for _, c in ipairs(counts) do total = total + c end
  if total == 0 then return m end
  local row = m:numel() / m:size(1)
  assert(m:size(1) >= total, 'share_rows: m has fewer rows than the counts add up to')
  local off = 0
  for r, c in ipairs(counts) do
    local first, left = off * row + 1, c * row
    while left > 0 do
      local n = math.min(left, ROWS_CHUNK)
      self.mpi.broadcast(m, r - 1, first, n)
      first, left = first + n, left - n
    end
    off = off + c
  end
  return m
end

return M
