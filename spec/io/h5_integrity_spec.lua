-- Specs for the integrity checks of csrc/io/h5.c and the run-time limits (luacap.set_limits):
-- every dataset luacap writes carries a CRC-32C that reads check, a flipped byte inside a
-- weight gives "corrupt or truncated file (dataset ...: checksum mismatch)" from the raw
-- reader, the checkpoint loader and the feature cache loader; files without the checksum
-- still load; a truncated file is refused from its superblock; a dataset over the limit or
-- larger than the file is refused before allocation (the latter not crafted here: v2 object headers
-- carry libhdf5's own checksum, so a rewritten dims field fails libhdf5's check
-- first); caption lines over line_bytes too.
local luacap = require 'luacap'
local core = require 'luacap.core'
local h5 = require 'luacap.h5'
local ckpt = require 'luacap.train.checkpoint'
local features = require 'luacap.features'
local captions = require 'luacap.data.captions'
local util = require 'helpers.util'
local ffi = require 'ffi'

local dir = util.tmpdir()

local function float_bytes(values)
  local buf = ffi.new('float[?]', #values)
  for i, v in ipairs(values) do buf[i - 1] = v end
  return ffi.string(buf, 4 * #values)
end

-- bytes with the byte at 1-based i xor 0x40
local function flip(bytes, i)
  return bytes:sub(1, i - 1) .. string.char(bit.bxor(bytes:byte(i), 0x40)) .. bytes:sub(i + 1)
end

describe('HDF5 integrity', function()
  teardown(function() os.execute('rm -rf ' .. dir) end)

  it('computes CRC-32C (the standard check value and a hand case)', function()
    assert.equal(0xE3069283, core.crc32c('123456789'))
    assert.equal(0, core.crc32c(''))
    -- 32 zero bytes: RFC 3720 B.4's first vector
    assert.equal(0x8A9136AA, core.crc32c(string.rep('\0', 32)))
  end)

  it('stores the CRC-32C of the raw float32 bytes, hidden from attrs', function()
    local path = dir .. '/w.h5'
    local vals = {}
    for i = 1, 40 do vals[i] = i * 0.25 - 3 end
    assert.is_true(h5.save(path, {w = luacap.tensor(vals)}))
    local bytes = util.read(path)
    local raw = float_bytes(vals)
    assert.truthy(bytes:find(raw, 1, true))
    local crc = core.crc32c(raw)
    -- the attribute's little-endian uint32 is in the file
    local le = string.char(crc % 256, math.floor(crc / 256) % 256,
      math.floor(crc / 65536) % 256, math.floor(crc / 16777216) % 256)
    assert.truthy(bytes:find(le, 1, true))
    assert.same({}, h5.attrs(path, '/w'))
    assert.same(vals, assert(h5.read(path, '/w')):totable())
  end)

  it('refuses a flipped byte inside a weight in every loader', function()
    luacap.seed(3)
    local tok = require('luacap.data.tokenizer').fit{'startseq a red circle endseq'}
    local model = require('luacap.models.seed'){vocab_size = tok:vocab_size(), max_len = 5,
      feat_dim = 6, img_dense = 5, embed_dim = 4, units = 3, dec_dense = 5}
    local path = dir .. '/m.h5'
    assert.is_true(ckpt.save(path, {model = model, tokenizer = tok}))
    local p = model:parameters()[1]
    local bytes = util.read(path)
    local at = assert(bytes:find(float_bytes(p.value:reshape(p.value:numel()):totable()), 1, true))
    local bad = dir .. '/m-bad.h5'
    util.write(bad, flip(bytes, at + 5))
    local b, msg = ckpt.load(bad)
    assert.is_nil(b)
    assert.equal(bad .. ": corrupt or truncated file (dataset '/model/" ..
      p.name:gsub('%.', '/') .. "': checksum mismatch)", msg)
    assert.truthy(ckpt.load(path))

    local cache = dir .. '/f.h5'
    local m = luacap.tensor{{1, 2, 3}, {4, 5, 6}}
    assert.is_true(h5.save(cache, {features = m}, {format = features.FORMAT, ids = {'a', 'b'},
      key = '{"encoder": "x"}'}))
    local cb = util.read(cache)
    local fat = assert(cb:find(float_bytes{1, 2, 3, 4, 5, 6}, 1, true))
    util.write(cache, flip(cb, fat + 13))
    local ids, fmsg = features.load(cache)
    assert.is_nil(ids)
    assert.equal(cache .. ": corrupt or truncated file (dataset '/features': checksum mismatch)", fmsg)
  end)

  it('still loads files without checksums (the fixture written by plain libhdf5)', function()
    local t = assert(h5.read('spec/fixtures/h5_mixed.h5', '/f64'))
    assert.truthy(t:numel() > 0)
  end)

  it('refuses a dataset over dataset_bytes before reading it', function()
    local path = dir .. '/big.h5'
    assert.is_true(h5.save(path, {w = luacap.ones(16, 16)}))
    local old = luacap.set_limits{dataset_bytes = 1000}
    local t, msg = h5.read(path, '/w')
    luacap.set_limits{dataset_bytes = old.dataset_bytes}
    assert.is_nil(t)
    assert.equal(path .. ": dataset '/w' claims 1024 bytes, over the limit of 1000 " ..
      '(luacap.set_limits{dataset_bytes = ...})', msg)
    assert.truthy(h5.read(path, '/w'))
  end)

  it('checks set_limits arguments', function()
    assert.has_error(function() luacap.set_limits{pixels = 5} end,
      "set_limits: unknown limit 'pixels' (image_pixels, dataset_bytes, line_bytes, json_bytes)")
    assert.has_error(function() luacap.set_limits{line_bytes = 0} end,
      'set_limits: line_bytes must be a whole number >= 1, got 0')
    local l = luacap.limits()
    assert.equal(2 ^ 28, l.image_pixels)
    assert.equal(2 ^ 34, l.dataset_bytes)
    assert.equal(64 * 2 ^ 20, l.line_bytes)
  end)

  it('refuses an image over image_pixels', function()
    local bytes = util.read('spec/fixtures/images/baseline.jpg')
    local old = luacap.set_limits{image_pixels = 100}
    local img, msg = luacap.image.decode(bytes, 'b.jpg')
    luacap.set_limits{image_pixels = old.image_pixels}
    assert.is_nil(img)
    assert.matches('image too large', msg)
    assert.truthy(luacap.image.decode(bytes, 'b.jpg'))
  end)

  it('refuses a caption line over line_bytes before reading the file whole', function()
    local path = dir .. '/captions.txt'
    util.write(path, 'image,caption\na.jpg,a short one\nb.jpg,' .. string.rep('x', 3 * 1048576) .. '\n')
    local old = luacap.set_limits{line_bytes = 1000}
    local ds, msg = captions.load(path)
    luacap.set_limits{line_bytes = 1048576 * 4}
    local ok = captions.load(path)
    luacap.set_limits{line_bytes = old.line_bytes}
    assert.is_nil(ds)
    assert.equal('captions: ' .. path .. ': line 3 is longer than 1000 bytes ' ..
      '(luacap.set_limits{line_bytes = ...})', msg)
    assert.truthy(ok)
  end)
end)
