-- spec/blas_env_spec.lua: luacap.blas_env, OpenBLAS' kernel family chosen from the CPU's
-- flags before OpenBLAS loads.
local blas_env = require 'luacap.blas_env'

-- /proc/cpuinfo flag lines of three CPUs (abridged to the flags that matter)
local EMERALD = 'fpu sse sse2 ssse3 fma sse4_1 sse4_2 avx avx2 avx512f avx512dq avx512cd ' ..
  'avx512bw avx512vl avx_vnni avx512_bf16 avx512vbmi avx512_fp16'
local SKYLAKE_X = 'fpu sse sse2 ssse3 fma sse4_1 sse4_2 avx avx2 avx512f avx512dq avx512cd avx512bw avx512vl'
local ZEN3 = 'fpu sse sse2 ssse3 fma sse4_1 sse4_2 avx avx2 bmi2'

describe('blas_env.pick', function()
  it('names the AVX-512 families from the flags, and leaves the rest to OpenBLAS', function()
    assert.equal('Cooperlake', blas_env.pick(EMERALD))
    assert.equal('SkylakeX', blas_env.pick(SKYLAKE_X))
    assert.is_nil(blas_env.pick(ZEN3))
    -- AVX-512 F alone (Knights Landing) is not enough for the SkylakeX kernels
    assert.is_nil(blas_env.pick('sse2 avx avx2 avx512f avx512cd'))
    -- whole words only: "avx512f" inside another flag does not count
    assert.is_nil(blas_env.pick('xavx512f avx512bw avx512dq avx512vl'))
  end)
end)

describe('blas_env.apply', function()
  local function run(env, flags)
    local set = {}
    local name, why = blas_env.apply(function(k) return env[k] end,
      function(k, v) set[k] = v end, flags)
    return name, why, set
  end

  it('sets OPENBLAS_CORETYPE and marks it as its own pick', function()
    local name, _, set = run({}, EMERALD)
    assert.equal('Cooperlake', name)
    assert.same({OPENBLAS_CORETYPE = 'Cooperlake', LUACAP_BLAS_PICKED = 'Cooperlake'}, set)
  end)

  it('never overrides a setting the user made, and can be turned off', function()
    local name, why, set = run({OPENBLAS_CORETYPE = 'Haswell'}, EMERALD)
    assert.is_nil(name); assert.matches('is set', why); assert.same({}, set)
    name, why, set = run({LUACAP_BLAS_PICK = '0'}, EMERALD)
    assert.is_nil(name); assert.matches('LUACAP_BLAS_PICK', why); assert.same({}, set)
    name, why, set = run({}, ZEN3)
    assert.is_nil(name); assert.matches('left to OpenBLAS', why); assert.same({}, set)
    name, why, set = run({}, nil)
    assert.is_nil(name); assert.matches('left to OpenBLAS', why); assert.same({}, set)
  end)
end)

describe('blas_env.cpu_flags', function()
  it('reads the first flags line of a cpuinfo file', function()
    local path = os.tmpname()
    local f = assert(io.open(path, 'w'))
    f:write('processor\t: 0\nmodel name\t: X\nflags\t\t: fpu avx2 avx512f\n\nprocessor\t: 1\nflags\t\t: other\n')
    f:close()
    assert.equal('fpu avx2 avx512f', blas_env.cpu_flags(path))
    os.remove(path)
    assert.is_nil(blas_env.cpu_flags('/nonexistent/cpuinfo'))
  end)
end)

describe("luacap's init", function()
  -- a fresh process, so that OpenBLAS loads after the choice
  local function core_in_child(env)
    local p = io.popen(env .. " luajit -e \"package.path='lua/?.lua;lua/?/init.lua;'..package.path;" ..
      " package.cpath='lua/?.so;'..package.cpath; io.write(require('luacap').core.blas_core())\"")
    local out = p:read('*a'); p:close()
    return out
  end

  it('loads the family pick() names for this CPU, and an explicit setting as given', function()
    local want = blas_env.pick(blas_env.cpu_flags() or '')
    local got = core_in_child('env -u OPENBLAS_CORETYPE -u LUACAP_BLAS_PICK')
    if want then assert.equal(want, got) else assert.truthy(#got > 0) end
    assert.equal('Haswell', core_in_child('env OPENBLAS_CORETYPE=Haswell'))
  end)
end)

describe('blas_env.describe', function()
  local function env(t) return function(k) return t[k] end end
  it("says whose choice the family is", function()
    assert.equal("OpenBLAS' own pick", blas_env.describe(env({})))
    assert.equal('OPENBLAS_CORETYPE=Haswell', blas_env.describe(env({OPENBLAS_CORETYPE = 'Haswell'})))
    assert.equal('OPENBLAS_CORETYPE=Cooperlake, set by luacap for this CPU', blas_env.describe(
      env({OPENBLAS_CORETYPE = 'Cooperlake', LUACAP_BLAS_PICKED = 'Cooperlake'})))
    -- a user's setting inherited beside an older mark of luacap's is the user's
    assert.equal('OPENBLAS_CORETYPE=Haswell', blas_env.describe(
      env({OPENBLAS_CORETYPE = 'Haswell', LUACAP_BLAS_PICKED = 'Cooperlake'})))
  end)
end)
