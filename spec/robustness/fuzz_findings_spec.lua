-- Regression specs for what the fuzzers found (fuzz/, docs/robustness.md's Fuzzing
-- section): each minimised input in spec/fixtures/fuzz/ goes through the loader that
-- crashed on it, in a child luajit, since a regression would end the process itself
-- rather than fail an assertion. The child prints the loader's result on one line.

local FIX = 'spec/fixtures/fuzz/'

-- run(code) -> ok, output: `code` in a fresh luajit with luacap on its paths.
local function run(code)
  local script, out = os.tmpname(), os.tmpname()
  local h = assert(io.open(script, 'w'))
  h:write("package.path = 'lua/?.lua;lua/?/init.lua;' .. package.path\n",
          "package.cpath = 'lua/?.so;' .. package.cpath\n", code, '\n')
  h:close()
  local f = assert(io.popen('luajit ' .. script .. ' > ' .. out .. ' 2>&1; echo $?'))
  local status = f:read('*l')
  f:close()
  h = assert(io.open(out))
  local text = h:read('*a')
  h:close()
  os.remove(script)
  os.remove(out)
  return status == '0', text
end

describe('fuzz findings', function()
  it('the control: a child luajit really reports a result', function()
    local ok, out = run("print(require(\"luacap.h5\").attrs(\"spec/fixtures/h5_mixed.h5\", \"/\") ~= nil)")
    assert.is_true(ok, out)
    assert.equal('true\n', out)
  end)

  -- fuzz/h5.c, 167 executions from h5_mixed.h5: an attribute message of the root (an
  -- h5py-style version-1 object header, no checksum) that fails to decode made
  -- H5Aiterate2 free table entries it never filled: SEGV in libhdf5's H5A__close.
  it('h5-attr-crash.h5: corrupt attribute messages are refused, not a crash in libhdf5', function()
    for _, call in ipairs{'attrs(P, "/")', 'load(P)'} do
      local ok, out = run("local h5 = require(\"luacap.h5\"); local P = \"" .. FIX ..
        "h5-attr-crash.h5\"; local r, msg = h5." .. call .. "; print(r == nil, msg)")
      assert.is_true(ok, call .. ': ' .. out)
      assert.matches('^true\t', out, 1)
      assert.matches('h5%-attr%-crash%.h5: ', out)
    end
    local ok, out = run("print(require(\"luacap.h5\").attrs(\"" .. FIX .. "h5-attr-crash.h5\", \"/\"))")
    assert.is_true(ok, out)
    assert.matches("corrupt or truncated file: the attributes of '/' cannot be decoded", out, 1, true)
  end)
end)
