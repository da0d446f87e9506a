-- luacap.mpi: OpenMPI for data-parallel training (docs/distributed.md), over the separate
-- C module luacap.mpi_core (csrc/bind/mpi.c, built only where mpicc is). Loading this file
-- loads MPI; nothing else in luacap requires it unless --distributed asks.
--   mpi.available() -> true | false, why         (is mpi_core.so built and loadable?)
--   mpi.init() -> rank, size (0-based rank); mpi.finalize(); mpi.rank(); mpi.size()
--   mpi.barrier(); mpi.broadcast(t, root[, first, count]); mpi.allreduce(t[, first, count])
--   mpi.iallreduce(t[, first, count]) -> request; request:wait() / mpi.wait(request);
--     request:test() / mpi.test(request) -> done (lets MPI progress it; true once complete)
--   mpi.allgather(value) -> {value of rank 0, value of rank 1, ...} (small Lua values: JSON)
--   mpi.allreduce_params(params, field) sums every p[field] over ranks (one packed buffer)
--   mpi.fail(msg) writes "rank R: msg" to stderr and aborts the whole job (exit status 1)
-- Tensors are float32; (first, count) select a flat range of their values (1-based first).
-- MPI's errors come back as Lua errors "mpi.<fn>: <MPI's message>".
local M = {}

local ok_core, core = pcall(require, 'luacap.mpi_core')

function M.available()
  if ok_core then return true end
  return false, 'luacap.mpi_core is not built (install OpenMPI: make deps, then make): ' .. tostring(core)
end

local function need()
  if not ok_core then error(select(2, M.available()), 3) end
  return core
end

local cjson = require 'cjson'
local json_exact = require('luacap.util').json_exact

function M.init() return need().init() end
function M.initialized() return ok_core and core.initialized() or false end
function M.finalize() return need().finalize() end
function M.rank() return need().rank() end
function M.size() return need().size() end
function M.barrier() return need().barrier() end
function M.wtime() return need().wtime() end
function M.broadcast(t, root, first, count) return need().broadcast(t, root or 0, first, count) end
function M.allreduce(t, first, count) return need().allreduce(t, first, count) end
function M.iallreduce(t, first, count) return need().iallreduce(t, first, count) end
function M.wait(req) return need().wait(req) end
function M.test(req) return need().test(req) end
function M.abort(code) return need().abort(code or 1) end

-- Small Lua values (numbers, strings, booleans, tables of them) through a byte buffer;
-- numbers keep every bit (util.json_exact).
function M.allgather(value)
  local parts = need().allgather(json_exact({v = value}))
  local out = {}
  for i, s in ipairs(parts) do out[i] = cjson.decode(s).v end
  return out
end

-- A packed buffer for a list of parameters: total values and each one's offset.
local function layout(params)
  local n, offs = 0, {}
  for i, p in ipairs(params) do
    offs[i] = n
    n = n + p.value:numel()
  end
  return n, offs
end
M.layout = layout

-- pack(buf, params, field): copies every p[field] into buf (flat) at its offset; unpack back.
function M.pack(buf, params, field)
  local _, offs = layout(params)
  local flat = buf:reshape(buf:numel())
  for i, p in ipairs(params) do
    local t = p[field]
    local n = t:numel()
    if n > 0 then flat:narrow(offs[i] + 1, n):copy(t:reshape(n)) end
  end
end
function M.unpack(buf, params, field)
  local _, offs = layout(params)
  local flat = buf:reshape(buf:numel())
  for i, p in ipairs(params) do
    local t = p[field]
    local n = t:numel()
    if n > 0 then t:reshape(n):copy(flat:narrow(offs[i] + 1, n)) end
  end
end

-- allreduce_params(params, field, buf) sums p[field] ('grad' or 'value') over the ranks in
-- one call on a packed buffer; returns the buffer (reuse it: pass it back next time).
function M.allreduce_params(params, field, buf)
  local T = require 'luacap.tensor'
  local n = layout(params)
  buf = (buf and buf:numel() == n) and buf or T.zeros(math.max(n, 1))
  M.pack(buf, params, field)
  M.allreduce(buf, 1, n)
  M.unpack(buf, params, field)
  return buf
end

-- broadcast_params(params, root): every rank gets root's parameter values.
function M.broadcast_params(params, root, buf)
  local T = require 'luacap.tensor'
  local n = layout(params)
  buf = (buf and buf:numel() == n) and buf or T.zeros(math.max(n, 1))
  M.pack(buf, params, 'value')
  M.broadcast(buf, root or 0, 1, n)
  M.unpack(buf, params, 'value')
  return buf
end

-- fail(msg): this rank's message on stderr, then the whole job ends (no rank hangs in a
-- collective waiting for this one).
function M.fail(msg, code)
  local r = (ok_core and core.initialized()) and core.rank() or 0
  io.stderr:write(string.format('rank %d: %s\n', r, tostring(msg)))
  io.stderr:flush()
  if ok_core then core.abort(code or 1) end
  os.exit(code or 1)
end

return M
