-- spec/mpi/fail.lua: run by spec/mpi_spec.lua under `mpirun -np 2`: rank 1 raises while
-- rank 0 waits in an allreduce that rank 1 never joins; the job must end non-zero with rank
-- 1's message, not hang: with arg 'fail' through luacap.mpi.fail (MPI_Abort), with 'raise'
-- as an uncaught error (luajit exits 1 and mpirun ends the job). Not a spec file on its own.
package.path = 'lua/?.lua;lua/?/init.lua;' .. package.path
package.cpath = 'lua/?.so;' .. package.cpath
local luacap = require 'luacap'
local mpi = require 'luacap.mpi'
local rank = mpi.init()
local ok, err = pcall(function()
  if rank == 1 then error('rank one cannot read its shard', 0) end
  mpi.allreduce(luacap.zeros(10))     -- waits for a rank that never comes
end)
if not ok then
  if arg[1] == 'raise' then error(err, 0) end
  mpi.fail(err)
end
print('rank ' .. rank .. ' finished')
mpi.finalize()
