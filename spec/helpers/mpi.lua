-- spec/helpers/mpi.lua: runs a Lua script on N local ranks for the MPI specs and says
-- whether that is possible here. Not a check of luacap's behaviour.
local M = {}

local function sh_ok(cmd)
  local r = os.execute(cmd .. ' >/dev/null 2>&1')
  return r == true or r == 0
end

function M.why_not()
  if not sh_ok('command -v mpirun') then return 'mpirun is not installed (OpenMPI: make deps)' end
  if not sh_ok('command -v timeout') then return 'timeout (coreutils) is missing' end
  local ok, err = pcall(require, 'luacap.mpi_core')
  if not ok then return 'luacap.mpi_core is not built (make with mpicc present): ' .. tostring(err) end
  return nil
end

function M.usable() return M.why_not() == nil end

-- run(n, script, args, timeout_s, env) -> output (stdout and stderr), ok, exit code (124:
-- timed out); env: "NAME=value" set for every rank (mpirun's environment reaches them)
function M.run(n, script, args, timeout_s, env)
  local cmd = string.format('%stimeout -k 5 %d mpirun --allow-run-as-root --oversubscribe -np %d luajit %s %s 2>&1;' ..
    ' echo "exit=$?"', env and ('env ' .. env .. ' ') or '', timeout_s or 60, n, script, args or '')
  local p = io.popen(cmd)
  local out = p:read('*a')
  p:close()
  local code = tonumber(out:match('exit=(%d+)%s*$'))
  return out, code == 0, code
end

return M
