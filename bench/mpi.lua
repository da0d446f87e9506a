-- bench/mpi.lua: the MPI line of `make bench` (docs/distributed.md): allreduce GB/s of a
-- 15M-float buffer (the seed model's gradient is about that size) between 2 local ranks,
-- and the seed model's training pairs/s at the notebook's sizes, global batch 32, with 2
-- ranks x 1 thread against 1 process x 2 threads. Spawns bench/mpi/worker.lua under
-- mpirun; prints a skip line when mpirun or luacap.mpi_core is missing.
local M = {}

local function sh(cmd)
  local p = io.popen(cmd .. ' 2>&1')
  local out = p:read('*a')
  p:close()
  return out
end

local function results(out)
  local r = {}
  for k, v in out:gmatch('result (%S+) (%S+)') do r[k] = tonumber(v) end
  return r
end

local MPIRUN = 'mpirun --allow-run-as-root --oversubscribe --bind-to none -np 2 '

function M.run(ctx)
  if sh('command -v mpirun') == '' or not pcall(require, 'luacap.mpi_core') then
    print('mpi: skipped (mpirun or luacap.mpi_core missing: make deps && make)')
    return
  end
  local n = 15000000
  local a = results(sh(MPIRUN .. 'luajit bench/mpi/worker.lua allreduce ' .. n .. ' 5'))
  if not a.allreduce_s then
    print('mpi: allreduce run failed')
    return
  end
  local bytes = 4 * n
  print(string.format('allreduce 15M floats (60 MB), 2 local ranks: %.3f s, %.2f GB/s (algorithm), ' ..
    '%.2f GB/s (ring bus bandwidth: 2(N-1)/N x bytes / t, N = 2); 1-float latency %.1f us', a.allreduce_s,
    bytes / a.allreduce_s / 1e9, bytes / a.allreduce_s / 1e9, a.latency_s * 1e6))
  local steps = ctx.quick and 3 or 8
  -- interleaved: 2 ranks with fit's buckets, 1 process, 2 ranks with one bucket (started
  -- only after backward: no overlap)
  local d = results(sh(MPIRUN .. 'luajit bench/mpi/worker.lua train dist 1 ' .. steps))
  local s = results(sh('luajit bench/mpi/worker.lua train single 2 ' .. steps))
  local o = results(sh(MPIRUN .. 'luajit bench/mpi/worker.lua train dist 1 ' .. steps .. ' 1000'))
  if not (d.pairs_per_s and s.pairs_per_s and o.pairs_per_s) then
    print('mpi: training run failed')
    return
  end
  print(string.format('seed model (%.1fM params), global batch 32: 2 ranks x 1 thread %.1f pairs/s ' ..
    '(%.3f s/step), 1 process x 2 threads %.1f pairs/s (%.3f s/step): ratio %.2f',
    d.params / 1e6, d.pairs_per_s, d.step_s, s.pairs_per_s, s.step_s, d.pairs_per_s / s.pairs_per_s))
  print(string.format('  allreduce wait after backward per step: %d buckets of %g MiB %.1f ms (%.1f pairs/s), ' ..
    'one bucket after backward %.1f ms (%.1f pairs/s)', d.buckets, require('luacap.train.fit').BUCKET_MB,
    d.wait_s * 1e3, d.pairs_per_s, o.wait_s * 1e3, o.pairs_per_s))
end

return M
