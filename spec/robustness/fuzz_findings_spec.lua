-- Regression specs for what the fuzzers found (fuzz/, docs/robustness.md's Fuzzing
-- section): each minimised input in spec/fixtures/fuzz/ goes through the loader that
-- crashed on it, in a child luajit, since a regression would end the process itself
-- rather than fail an assertion. The child prints the loader's result on one line.

local H = require 'spec.helpers.util'
local FIX = 'spec/fixtures/fuzz/'

-- run(code) -> ok, output: `code` in a fresh luajit with luacap on its paths.
local function run(code)
  local script, out = os.tmpname(), os.tmpname()
  H.write(script, "package.path = 'lua/?.lua;lua/?/init.lua;' .. package.path\n" ..
          "package.cpath = 'lua/?.so;' .. package.cpath\n" .. code .. '\n')
  local f = assert(io.popen('luajit ' .. script .. ' > ' .. out .. ' 2>&1; echo $?'))
  local status = f:read('*l')
  f:close()
  local text = H.read(out)
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

  -- fuzz/lua.lua karpathy, 42 Lua errors in 34k executions: an element of images[] that
  -- is not an object (true, a number) raised "attempt to index local 'img'".
  it('karpathy: an images[] element that is not an object is a reported problem', function()
    local captions = require 'luacap.data.captions'
    local p = os.tmpname()
    H.write(p, '{"images": [true, 5, "x", null, {"filename": "a.jpg", "split": "train", ' ..
      '"sentences": [{"raw": "a dog runs"}]}]}')
    local ds = captions.load(p, {format = 'karpathy'})
    os.remove(p)
    assert.same({'a'}, ds.ids)
    assert.same({'a dog runs'}, ds.captions.a)
    assert.equal(4, ds.skipped)
    assert.matches(':1: images%[1%] is a boolean, expected an object$', ds.problems[1])
    assert.matches(':2: images%[2%] is a number, expected an object$', ds.problems[2])
    assert.matches(':3: images%[3%] is a string, expected an object$', ds.problems[3])
    assert.matches(':4: images%[4%] is null, expected an object$', ds.problems[4])
  end)
end)
