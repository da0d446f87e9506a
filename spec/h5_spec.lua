-- Specs for luacap.h5: round trips of named tensors and string attributes, Keras' weight
-- file layout, float64 and foreign string forms (spec/fixtures/h5_mixed.h5, made by
-- spec/fixtures/h5_mixed.c with libhdf5 directly), bad files, and the atomic save.
local luacap = require 'luacap'
local util = require 'helpers.util'
local h5 = luacap.h5

local FIXTURE = 'spec/fixtures/h5_mixed.h5'

local dir
local function tmp(name) return dir .. '/' .. name end

local files_in = util.listing
local write_file = util.write
local read_file = util.read

describe('luacap.h5', function()
  before_each(function()
    local p = io.popen('mktemp -d /tmp/luacap_h5_spec.XXXXXX')
    dir = p:read('*l')
    p:close()
  end)

  after_each(function()
    os.execute('rm -rf "' .. dir .. '"')
  end)

  it('round-trips nested named tensors with exact values and shapes', function()
    luacap.seed(7)
    local kernel = luacap.randn(3, 4)
    local conv = luacap.randn(2, 3, 1, 5)               -- 4-d
    local bias = luacap.tensor{0.1, -2.5, 3e-8, 1e30}    -- 1-d, values float32 keeps exactly
    local empty = luacap.zeros(0, 3)
    local path = tmp('m.h5')
    assert.is_true(h5.save(path, {
      encoder = {dense = {kernel = kernel, bias = bias}},
      ['decoder/conv/w'] = conv,                         -- '/' in a name makes groups too
      empty = empty,
    }))
    local t, attrs = h5.load(path)
    assert.same({}, attrs)
    assert.same({3, 4}, t.encoder.dense.kernel:shape())
    assert.same(kernel:flat(), t.encoder.dense.kernel:flat())
    assert.same(bias:flat(), t.encoder.dense.bias:flat())
    assert.same({2, 3, 1, 5}, t.decoder.conv.w:shape())
    assert.same(conv:flat(), t.decoder.conv.w:flat())
    assert.same({0, 3}, t.empty:shape())
    -- and one dataset by path, with or without the leading '/'
    assert.same(conv:flat(), h5.read(path, '/decoder/conv/w'):flat())
    assert.same(bias:flat(), h5.read(path, 'encoder/dense/bias'):flat())
  end)

  it('stores chosen datasets as float16: half the bytes, values rounded to nearest even', function()
    -- hand-rounded: 1/3 -> 0.333251953125 (0x3555); 2049 -> 2048 and 2051 -> 2052 (ties to
    -- even at spacing 2); 65504 kept, 65519 -> 65504, 65520 -> inf; 1e-8 -> 0 and 3e-8 ->
    -- 2^-24 (subnormals); negatives alike
    local x = luacap.tensor{1 / 3, 2049, 2051, 65504, 65519, 65520, 1e-8, 3e-8, -1 / 3, 0, -2.5}
    local want = {0.333251953125, 2048, 2052, 65504, 65504, math.huge, 0, 2 ^ -24,
      -0.333251953125, 0, -2.5}
    local big = luacap.randn(256, 64)
    local p16, p32 = tmp('h.h5'), tmp('f.h5')
    assert.is_true(h5.save(p16, {x = x, g = {big = big}, keep = big}, nil, {float16 = {x = true, ['g/big'] = true}}))
    assert.is_true(h5.save(p32, {x = x, g = {big = big}, keep = big}))
    local t = assert(h5.load(p16))
    local got = t.x:flat()
    for i = 1, #want do
      assert.equal(want[i], got[i], 'value ' .. i)
    end
    assert.same(big:flat(), t.keep:flat())               -- not named: float32, exact
    local b16, b32 = t.g.big:flat(), big:flat()
    local worst = 0
    for i = 1, #b32 do worst = math.max(worst, math.abs(b16[i] - b32[i]) / math.max(math.abs(b32[i]), 2 ^ -14)) end
    assert.is_true(worst > 0 and worst <= 2 ^ -11, 'relative rounding error ' .. worst)
    -- 16384 values of 2 bytes less: the file is smaller by about 32 KiB
    local s16, s32 = #util.read(p16), #util.read(p32)
    assert.is_true(s32 - s16 > 30000 and s32 - s16 < 36000, s32 .. ' - ' .. s16)
    -- the checksum covers the rounded values: a flipped byte in the float16 data is caught
    local bytes = util.read(p16)
    -- 1/3, 2048, 2052 as float16 (0x3555, 0x6800, 0x6802), little-endian
    local at = bytes:find(string.char(0x55, 0x35, 0x00, 0x68, 0x02, 0x68), 1, true)
    assert.truthy(at)
    write_file(p16, bytes:sub(1, at - 1) .. string.char(0x56) .. bytes:sub(at + 1))
    local ok, err = h5.read(p16, 'x')
    assert.is_nil(ok)
    assert.truthy(err:find('checksum mismatch', 1, true), err)
  end)

  it('lists members of a group in name order with their kinds', function()
    local path = tmp('l.h5')
    assert.is_true(h5.save(path, {b = luacap.zeros(1), a = {x = luacap.zeros(1)},
                                  c = {d = {e = luacap.ones(2)}}}))
    local names, kinds = h5.list(path)
    assert.same({'a', 'b', 'c'}, names)
    assert.same({'group', 'dataset', 'group'}, kinds)
    assert.same({'d'}, (h5.list(path, '/c')))
    assert.same({'e'}, (h5.list(path, 'c/d')))
    local none, msg = h5.list(path, '/nope')
    assert.is_nil(none)
    assert.equal(path .. ": no group '/nope'", msg)
  end)

  it('round-trips string and string-array attributes on the root and on groups', function()
    local path = tmp('a.h5')
    local config = '{"rnn_size": 256, "vocab": ["startseq", "endseq"]}'
    local big = string.rep('x', 100000)                  -- over the 64 KiB header limit
    assert.is_true(h5.save(path, {enc = {w = luacap.ones(2)}}, {
      config = config, big = big, empty_string = '',
      layer_names = {'enc', 'a_much_longer_name', ''},
      ['/enc'] = {weight_names = {'w:0'}, note = 'group attr'},
      ['/no_weights'] = {weight_names = {}},             -- a group made only for attrs
    }))
    local _, root = h5.load(path)
    assert.equal(config, root.config)
    assert.equal(big, root.big)
    assert.equal('', root.empty_string)
    assert.same({'enc', 'a_much_longer_name', ''}, root.layer_names)
    assert.same({weight_names = {'w:0'}, note = 'group attr'}, h5.attrs(path, '/enc'))
    assert.same({weight_names = {}}, h5.attrs(path, '/no_weights'))
    assert.same(root, h5.attrs(path))
    assert.same({'enc', 'no_weights'}, (h5.list(path)))
    local none, msg = h5.attrs(path, '/missing')
    assert.is_nil(none)
    assert.equal(path .. ": no object '/missing'", msg)
  end)

  it("writes Keras' VGG16 weight file layout and reads it back as Keras does", function()
    -- layer_names at the root, weight_names per layer group, datasets named
    -- '<layer>/<layer>_W_1:0' (':' is fine in HDF5 names), layers without weights present.
    local path = tmp('vgg.h5')
    local W = luacap.arange(3 * 3 * 3 * 2):reshape(3, 3, 3, 2)  -- (K, K, C, OC)
    local b = luacap.tensor{0.5, -0.5}
    assert.is_true(h5.save(path, {
      block1_conv1 = {['block1_conv1_W_1:0'] = W, ['block1_conv1_b_1:0'] = b},
    }, {
      layer_names = {'input_1', 'block1_conv1', 'block1_pool'},
      backend = 'tensorflow', keras_version = '2.0.0',
      ['/input_1'] = {weight_names = {}},
      ['/block1_conv1'] = {weight_names = {'block1_conv1_W_1:0', 'block1_conv1_b_1:0'}},
      ['/block1_pool'] = {weight_names = {}},
    }))
    -- load_weights_from_hdf5_group, in Lua
    local root = h5.attrs(path)
    local got = {}
    for _, layer in ipairs(h5.chunked(root, 'layer_names')) do
      for _, wname in ipairs(h5.attrs(path, '/' .. layer).weight_names) do
        got[#got + 1] = {layer .. '/' .. wname, h5.read(path, '/' .. layer .. '/' .. wname)}
      end
    end
    assert.equal(2, #got)
    assert.equal('block1_conv1/block1_conv1_W_1:0', got[1][1])
    assert.same({3, 3, 3, 2}, got[1][2]:shape())
    assert.same(W:flat(), got[1][2]:flat())
    assert.same({0.5, -0.5}, got[2][2]:totable())
    assert.equal('tensorflow', root.backend)
  end)

  it('joins attributes Keras split into name0, name1, ...', function()
    assert.same({'a', 'b', 'c'}, h5.chunked({layer_names0 = {'a', 'b'}, layer_names1 = {'c'}},
                                            'layer_names'))
    assert.same({'x'}, h5.chunked({n = 'x'}, 'n'))
    assert.same({}, h5.chunked({}, 'n'))
  end)

  it('reads float64 datasets as float32 and foreign attribute forms', function()
    local t = assert(h5.read(FIXTURE, '/f64'))
    assert.same({2, 3}, t:shape())
    -- values float32 represents exactly, and 1e-3 / 1e10 rounded to float32
    local f = t:flat()
    assert.same({0.5, 1.25, -2, 3}, {f[1], f[2], f[3], f[5]})
    assert.near(1e-3, f[4], 1e-10)
    assert.near(1e10, f[6], 1e3)
    local s = assert(h5.read(FIXTURE, '/grp/scalar'))  -- a scalar dataset: a 0-d tensor
    assert.equal(0, s:dim())
    assert.equal(7.5, s:totable())
    local a = assert(h5.attrs(FIXTURE))
    assert.same({'block1_conv1_W_1:0', 'b:0', ''}, a.vnames)   -- variable-length array
    assert.equal('vlen scalar', a.vscalar)
    assert.equal('ab', a.padded)                                -- space-padded fixed string
    assert.same({}, a.empty)                                    -- float64 array of length 0
    assert.equal(12, a.epoch)
    assert.same({0.25, -1}, a.pair)
  end)

  it('reports datasets of other types or ranks clearly', function()
    local t, msg = h5.read(FIXTURE, '/grp/ints')
    assert.is_nil(t)
    assert.equal(FIXTURE .. ": dataset '/grp/ints' holds 4-byte integers, expected float32 or float64", msg)
    t, msg = h5.read(FIXTURE, 'five')
    assert.is_nil(t)
    assert.equal(FIXTURE .. ": dataset '/five' has 5 dims, luacap tensors hold at most 4", msg)
    t, msg = h5.load(FIXTURE)
    assert.is_nil(t)
    assert.matches("dataset '/five' has 5 dims", msg, 1, true)
  end)

  it('gives nil and a clear message for a missing dataset or a group read as one', function()
    local path = tmp('d.h5')
    assert.is_true(h5.save(path, {x = {y = luacap.ones(1)}}))
    local t, msg = h5.read(path, '/x/z')
    assert.is_nil(t)
    assert.equal(path .. ": no dataset '/x/z'", msg)
    t, msg = h5.read(path, '/q/r/s')
    assert.is_nil(t)
    assert.equal(path .. ": no dataset '/q/r/s'", msg)
    t, msg = h5.read(path, '/x/y/deeper')
    assert.is_nil(t)
    assert.equal(path .. ": no dataset '/x/y/deeper'", msg)
    t, msg = h5.read(path, '/x')
    assert.is_nil(t)
    assert.equal(path .. ": '/x' is a group, not a dataset", msg)
    assert.same({1}, h5.read(path, '/x/y'):totable())   -- the next call works
  end)

  it('gives nil and a clear message for missing, truncated and non-HDF5 files', function()
    local good = tmp('good.h5')
    assert.is_true(h5.save(good, {w = luacap.ones(64, 64)}, {config = 'c'}))
    local bytes = read_file(good)
    local cut = tmp('cut.h5')
    write_file(cut, bytes:sub(1, math.floor(#bytes / 2)))
    local text = tmp('notes.txt')
    write_file(text, 'just some text, not an HDF5 file\n')
    local cases = {
      {tmp('missing.h5'), 'No such file or directory'},
      {cut, 'corrupt or truncated file (' .. math.floor(#bytes / 2) .. ' bytes, the superblock says ' .. #bytes .. ')'},
      {text, 'not an HDF5 file (no HDF5 signature)'},
      {dir, 'is a directory'},
    }
    for _, c in ipairs(cases) do
      local path, want = c[1], c[2]
      for _, call in ipairs{
        function() return h5.load(path) end,
        function() return h5.read(path, '/w') end,
        function() return h5.attrs(path) end,
        function() return h5.list(path) end,
      } do
        local r, msg = call()
        assert.is_nil(r)
        assert.equal(path .. ': ', msg:sub(1, #path + 2))
        assert.matches(want, msg, 1, true)
      end
      -- and the next call on a good file works
      assert.same({64, 64}, h5.read(good, '/w'):shape())
    end
  end)

  it('raises on argument mistakes, naming what came', function()
    local path = tmp('e.h5')
    assert.has_error(function() h5.save(path, {a = 'text'}) end,
      "save: '/a' is a string, expected a tensor or a table of them")
    assert.has_error(function() h5.save(path, {luacap.ones(1)}) end)   -- a number key
    assert.has_error(function() h5.save(path, {['a//b'] = luacap.ones(1)}) end)
    assert.has_error(function() h5.save(path, {a = luacap.ones(1), ['a/b'] = luacap.ones(1)}) end,
      "save: '/a' is a tensor and also the group of '/a/b'")
    assert.has_error(function() h5.save(path, {a = {b = luacap.ones(1)}, ['a/b'] = luacap.ones(1)}) end,
      "save: '/a/b' is given twice")
    assert.has_error(function() h5.save(path, {}, {n = 5}) end,
      "save: attribute 'n' of '/' is a number, expected a string or an array of strings")
    assert.has_error(function() h5.save(path, {}, {n = {'a', 3}}) end,
      "save: attribute 'n' of '/' element 2 is a number, expected a string")
    assert.has_error(function() h5.save(path, {}, {['/g'] = 'x'}) end)
    assert.has_error(function() h5.save(path, {}, {n = 'a\0b'}) end)
    assert.has_error(function() h5.save(path, 'x') end)
    assert.has_error(function() h5.read(path, 3) end, 'read: dataset name is a number, expected a string')
    assert.has_error(function() h5.list(path, {}) end, 'list: group name is a table, expected a string')
    assert.same({}, files_in(dir))                       -- nothing was created
  end)

  it('saves atomically: a failed save leaves the old file and no temporary', function()
    local path = tmp('ckpt.h5')
    assert.is_true(h5.save(path, {w = luacap.full(3, 2, 2)}, {epoch = '1'}))
    assert.same({'ckpt.h5'}, files_in(dir))              -- no .tmp after success
    local before = read_file(path)
    -- A freed tensor is found while writing, after the temporary file exists.
    local freed = luacap.ones(2)
    freed:free()
    assert.has_error(function()
      h5.save(path, {a = luacap.ones(4), z = freed}, {epoch = '2'})
    end)
    assert.has_error(function() h5.save(path, {w = 42}) end)
    -- A NUL byte is refused by the binding, after the datasets were written.
    assert.has_error(function() h5.save(path, {w = luacap.ones(1)}, {bad = 'a\0b'}) end)
    assert.same({'ckpt.h5'}, files_in(dir))
    assert.equal(before, read_file(path))
    local t, attrs = h5.load(path)
    assert.same({{3, 3}, {3, 3}}, t.w:totable())
    assert.equal('1', attrs.epoch)
    -- A folder that does not exist: nil and a message, nothing raised.
    local ok, msg = h5.save(tmp('no/such/dir.h5'), {w = luacap.ones(1)})
    assert.is_nil(ok)
    assert.matches('cannot create ' .. tmp('no/such/dir.h5') .. '.tmp.', msg, 1, true)
    assert.matches('No such file or directory', msg, 1, true)
    -- Overwriting works and replaces the contents.
    assert.is_true(h5.save(path, {v = luacap.ones(1)}))
    assert.same({'v'}, (h5.list(path)))
    assert.same({'ckpt.h5'}, files_in(dir))
  end)
end)
