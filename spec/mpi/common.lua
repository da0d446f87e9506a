-- spec/mpi/common.lua: what the rank scripts of spec/mpi/ share. Loaded from the repository
-- root before luacap (`dofile 'spec/mpi/common.lua'`), it makes luacap findable, sets one
-- thread (the specs compare bits, not speed) and returns
--   dist(mode) -> luacap.train.distributed over MPI when mode is 'dist', else nil
--   write_numbers(path, models, extra) -> every parameter of each model, then the numbers
--     of the lists in extra, one a line (%.9g): the files the specs compare
--   finish(dist) -> MPI's finalize where MPI was started
-- Not a spec file on its own.
package.path = 'lua/?.lua;lua/?/init.lua;' .. package.path
package.cpath = 'lua/?.so;' .. package.cpath
local luacap = require 'luacap'
luacap.set_threads(1)

local M = {}

function M.dist(mode)
  if mode ~= 'dist' then return nil end
  local mpi = require 'luacap.mpi'
  mpi.init()
  return require('luacap.train.distributed').new(mpi)
end

function M.write_numbers(path, models, extra)
  local f = assert(io.open(path, 'w'))
  for _, m in ipairs(models) do
    for _, p in ipairs(m:parameters()) do
      for _, v in ipairs(p.value:flat()) do f:write(string.format('%.9g\n', v)) end
    end
  end
  for _, list in ipairs(extra or {}) do
    for _, v in ipairs(list) do f:write(string.format('%.9g\n', v)) end
  end
  f:close()
end

function M.finish(dist)
  if dist then dist.mpi.finalize() end
end

return M
