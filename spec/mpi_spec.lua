-- Specs for luacap.mpi (csrc/bind/mpi.c, lua/luacap/mpi.lua) on 2 local ranks: each runs a
-- script of spec/mpi/ under `mpirun --allow-run-as-root --oversubscribe -np 2` inside
-- `timeout`, so a hang fails the spec instead of the suite. Pending (with the reason) when
-- mpirun or luacap's mpi_core.so is missing; CI installs OpenMPI (make deps), so CI runs them.
local H = require 'spec.helpers.mpi'

describe('luacap.mpi on 2 ranks', function()
  if not H.usable() then
    pending('skipped: ' .. H.why_not())
    return
  end

  it('allreduce (blocking, non-blocking, flat ranges) of sizes 0 .. 100003 equals the sum; ' ..
     'broadcast, allgather', function()
    local out, ok = H.run(2, 'spec/mpi/collectives.lua', nil, 60)
    assert(ok, out)
    assert.truthy(out:find('ok rank 0', 1, true), out)
    assert.truthy(out:find('ok rank 1', 1, true), out)
  end)

  for _, mode in ipairs({'fail', 'raise'}) do
    it('a rank that raises (' .. mode .. ') ends the job non-zero with its message, no hang', function()
      local t0 = os.time()
      local out, ok, code = H.run(2, 'spec/mpi/fail.lua', mode, 30)
      assert.is_false(ok, out)
      assert.are_not.equal(124, code, 'the job hung until the timeout: ' .. out)
      assert.truthy(out:find('rank one cannot read its shard', 1, true), out)
      assert.falsy(out:find('finished', 1, true), out)
      assert.truthy(os.time() - t0 < 25, 'took ' .. (os.time() - t0) .. ' s')
    end)
  end
end)
