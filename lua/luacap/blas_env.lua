-- luacap.blas_env: chooses OpenBLAS' kernel family before OpenBLAS loads, where OpenBLAS
-- itself would choose badly. Debian's OpenBLAS 0.3.21 picks its kernels by CPU model when
-- the library loads; on a CPU model it does not know (Intel family 6 model 207, Emerald
-- Rapids, seen here) it falls back to "Prescott", its SSE3 kernels, and sgemm runs at a
-- fifth of the CPU's rate (37 against 183-233 GFLOP/s at 2 threads). The CPU's own feature
-- flags say which family fits: AVX-512 with BF16 -> Cooperlake, AVX-512 F/BW/DQ/VL ->
-- SkylakeX. Anything else is left to OpenBLAS.
--
-- An OPENBLAS_CORETYPE already in the environment is the user's choice and always wins;
-- LUACAP_BLAS_PICK=0 turns this off. The choice is made through setenv(3), so that child
-- processes (MPI ranks, the PyTorch side of `make bench-torch`) load the same kernels.
local M = {}

-- pick(flags) -> family name or nil; flags: the text of /proc/cpuinfo's "flags" line.
function M.pick(flags)
  local have = {}
  for f in flags:gmatch('%S+') do have[f] = true end
  if not (have.avx512f and have.avx512bw and have.avx512dq and have.avx512vl) then return nil end
  return have.avx512_bf16 and 'Cooperlake' or 'SkylakeX'
end

-- The first "flags" line of /proc/cpuinfo (Linux), or nil.
function M.cpu_flags(path)
  local f = io.open(path or '/proc/cpuinfo', 'r')
  if not f then return nil end
  for line in f:lines() do
    local v = line:match('^flags%s*:%s*(.*)$')
    if v then f:close(); return v end
  end
  f:close()
  return nil
end

-- apply(getenv, setenv, flags) -> the name set, or nil and why not. Must run before the
-- first `require 'luacap.core'` (which loads OpenBLAS); luacap's init does that.
function M.apply(getenv, setenv, flags)
  if getenv('OPENBLAS_CORETYPE') then return nil, 'OPENBLAS_CORETYPE is set' end
  if getenv('LUACAP_BLAS_PICK') == '0' then return nil, 'LUACAP_BLAS_PICK=0' end
  local name = flags and M.pick(flags)
  if not name then return nil, 'left to OpenBLAS' end
  setenv('OPENBLAS_CORETYPE', name)
  setenv('LUACAP_BLAS_PICKED', name)
  return name
end

-- Where the family in use came from, for benchmark headers: "set by luacap for this CPU",
-- "OPENBLAS_CORETYPE=NAME" (the user's), or "OpenBLAS' own pick".
function M.describe(getenv)
  getenv = getenv or os.getenv
  local v = getenv('OPENBLAS_CORETYPE')
  if not v then return "OpenBLAS' own pick" end
  if getenv('LUACAP_BLAS_PICKED') == v then return 'OPENBLAS_CORETYPE=' .. v .. ', set by luacap for this CPU' end
  return 'OPENBLAS_CORETYPE=' .. v
end

-- The process' own environment through LuaJIT's FFI; a no-op where FFI is missing.
function M.apply_here()
  local ok, ffi = pcall(require, 'ffi')
  if not ok or ffi.os == 'Windows' then return nil, 'no setenv' end
  pcall(ffi.cdef, 'int setenv(const char *name, const char *value, int overwrite);')
  return M.apply(os.getenv, function(k, v) ffi.C.setenv(k, v, 1) end, M.cpu_flags())
end

return M
