-- Allocation limits: headers that claim huge images are refused before any pixel buffer
-- is allocated (the headers are crafted here, a few dozen bytes each, never real images);
-- JSON files over json_bytes are refused before they are held whole; the commands' limit
-- options reach luacap.set_limits.
local image = require 'luacap.image'
local bit = require 'bit'

local function be16(n) return string.char(bit.band(bit.rshift(n, 8), 255), bit.band(n, 255)) end
local function be32(n) return be16(bit.band(bit.rshift(n, 16), 65535)) .. be16(bit.band(n, 65535)) end

-- CRC-32 (IEEE 802.3, reflected 0xEDB88320), as the PNG spec's Annex D computes it.
local function crc32(s)
  local c = bit.bnot(0)
  for i = 1, #s do
    c = bit.bxor(c, s:byte(i))
    for _ = 1, 8 do
      if bit.band(c, 1) ~= 0 then c = bit.bxor(bit.rshift(c, 1), 0xEDB88320)
      else c = bit.rshift(c, 1) end
    end
  end
  return bit.bnot(c)
end

local function png_chunk(kind, data)
  return be32(#data) .. kind .. data .. be32(crc32(kind .. data))
end

-- A PNG signature, an IHDR claiming W x H 8-bit RGB, one empty IDAT and IEND.
local function png_header(W, H)
  return '\137PNG\r\n\26\n'
    .. png_chunk('IHDR', be32(W) .. be32(H) .. '\8\2\0\0\0')
    .. png_chunk('IDAT', '') .. png_chunk('IEND', '')
end

-- SOI, one all-ones DQT, a baseline SOF0 claiming W x H grey, and an SOS: enough for
-- jpeg_read_header, which is where the size check runs.
local function jpeg_header(W, H)
  return '\255\216'
    .. '\255\219' .. be16(67) .. '\0' .. string.rep('\1', 64)
    .. '\255\192' .. be16(11) .. '\8' .. be16(H) .. be16(W) .. '\1' .. '\1\17\0'
    .. '\255\218' .. be16(8) .. '\1' .. '\1\0' .. '\0\63\0'
    .. string.rep('\0', 16) .. '\255\217'
end

describe('image size limits', function()
  it('checks the CRC helper against the PNG spec value for IEND', function()
    -- every PNG ends with 00 00 00 00 49 45 4E 44 AE 42 60 82
    assert.equal(be32(0xAE426082), be32(crc32('IEND')))
  end)

  it('refuses a PNG header claiming 60000 x 60000 pixels before decoding', function()
    local img, err = image.decode(png_header(60000, 60000), 'big.png')
    assert.is_nil(img)
    assert.truthy(err:find('^big%.png: .*too large'), err)
  end)

  it('refuses a JPEG header claiming 60000 x 60000 pixels before decoding', function()
    local img, err = image.decode(jpeg_header(60000, 60000), 'big.jpg')
    assert.is_nil(img)
    assert.truthy(err:find('^big%.jpg: .*too large'), err)
  end)

  it('still reads the claimed size of such headers (info allocates nothing)', function()
    local path = os.tmpname()
    local f = assert(io.open(path, 'wb'))
    f:write(png_header(60000, 60000))
    f:close()
    local info, err = image.info(path)
    os.remove(path)
    -- info reads the header only and allocates nothing, so it reports the claim as is
    assert.is_nil(err)
    assert.equal(60000, info.width)
    assert.equal(60000, info.height)
    assert.equal('png', info.format)
  end)

  it('lets a small crafted header through the size check (the check is on size only)', function()
    local _, err = image.decode(jpeg_header(8, 8), 'small.jpg')
    assert.falsy(err and err:find('too large'), err)
  end)
end)

-- json_bytes: the JSON files luacap reads whole (Karpathy's captions, a tokenizer) are
-- refused once the reading passes the limit. Each spec restores the limits it changed.
describe('the json_bytes limit', function()
  local luacap = require 'luacap'
  local captions = require 'luacap.data.captions'
  local tokenizer = require 'luacap.data.tokenizer'
  local util = require 'helpers.util'
  local KARPATHY = 'spec/fixtures/captions/karpathy.json'
  local saved
  before_each(function() saved = luacap.limits() end)
  after_each(function() luacap.set_limits(saved) end)

  it('is reported by limits() with its 256 MiB default and refuses 0', function()
    assert.equal(256 * 2 ^ 20, luacap.limits().json_bytes)
    assert.has_error(function() luacap.set_limits{json_bytes = 0} end,
      'set_limits: json_bytes must be a whole number >= 1, got 0')
    assert.has_error(function() luacap.set_limits{json = 5} end,
      "set_limits: unknown limit 'json' (image_pixels, dataset_bytes, line_bytes, json_bytes)")
    local old = luacap.set_limits{json_bytes = 4096}
    assert.equal(256 * 2 ^ 20, old.json_bytes)
    assert.equal(4096, luacap.limits().json_bytes)
  end)

  it('refuses a Karpathy JSON one byte over it and loads one at it', function()
    local size = #util.read(KARPATHY)
    luacap.set_limits{json_bytes = size - 1}
    local ds, msg = captions.load(KARPATHY)
    assert.is_nil(ds)
    assert.equal(string.format('captions: %s: JSON file is larger than %d bytes ' ..
      '(luacap.set_limits{json_bytes = ...})', KARPATHY, size - 1), msg)
    luacap.set_limits{json_bytes = size}
    ds = assert(captions.load(KARPATHY))
    assert.equal('karpathy', ds.format)
  end)

  it('refuses a JSON caption file larger than it before reading it whole (3 MiB, 1 MiB chunks)', function()
    local dir = util.tmpdir()
    local path = dir .. '/dataset.json'
    util.write(path, '{"images": [], "pad": "' .. string.rep('x', 3 * 1048576) .. '"}')
    luacap.set_limits{json_bytes = 1000, line_bytes = 1000}   -- JSON is not held to line_bytes
    local ds, msg = captions.load(path)
    os.remove(path)
    os.remove(dir)
    assert.is_nil(ds)
    assert.matches('JSON file is larger than 1000 bytes', msg, 1, true)
  end)

  it('refuses a tokenizer file over it and loads it at it', function()
    local dir = util.tmpdir()
    local path = dir .. '/tokenizer.json'
    assert(tokenizer.fit({'startseq a red circle endseq', 'startseq two blue squares endseq'}):save(path))
    local size = #util.read(path)
    luacap.set_limits{json_bytes = size - 1}
    local tok, msg = tokenizer.load(path)
    luacap.set_limits{json_bytes = size}
    local ok = tokenizer.load(path)
    os.remove(path)
    os.remove(dir)
    assert.is_nil(tok)
    assert.equal(string.format('tokenizer: %s: JSON file is larger than %d bytes ' ..
      '(luacap.set_limits{json_bytes = ...})', path, size - 1), msg)
    assert.truthy(ok)
    assert.equal(9, ok:vocab_size())   -- 8 words and the padding id
  end)
end)

-- The command-line form: --max-image-pixels, --max-dataset-bytes, --max-line-bytes and
-- --max-json-bytes on both commands, applied before any file is read.
describe('limit options of the commands', function()
  local luacap = require 'luacap'
  local cli_args = require 'luacap.cli.args'
  local util = require 'helpers.util'
  local saved
  before_each(function() saved = luacap.limits() end)
  after_each(function() luacap.set_limits(saved) end)

  for _, cmd in ipairs({'train', 'caption'}) do
    it('parses all four on ' .. cmd .. ' and hands them to set_limits', function()
      local parser = require('luacap.cli.' .. cmd).parser(cmd .. '.lua', 'train.lua')
      local argv = {'--max-image-pixels', '100', '--max-dataset-bytes', '2000',
        '--max-line-bytes', '300', '--max-json-bytes', '4000'}
      if cmd == 'caption' then argv[#argv + 1] = 'x.jpg' end
      local args = parser:parse(argv)
      cli_args.apply_limits(args)
      assert.same({image_pixels = 100, dataset_bytes = 2000, line_bytes = 300, json_bytes = 4000},
        luacap.limits())
      assert.is_nil(args.max_json_bytes)   -- taken out, the pipeline never sees them
      local ok, err = parser:pparse({'--max-json-bytes', '0', 'x.jpg'})
      assert.is_false(ok)
      assert.matches("expected an integer from 1 to 9e15, got '0'", err, 1, true)
      assert.is_false((parser:pparse({'--max-line-bytes', '1e300', 'x.jpg'})))
    end)
  end

  it('leaves the limits not given at their values', function()
    local args = require('luacap.cli.train').parser('train.lua'):parse({'--max-line-bytes', '300'})
    cli_args.apply_limits(args)
    local l = luacap.limits()
    assert.equal(300, l.line_bytes)
    assert.equal(saved.json_bytes, l.json_bytes)
    assert.equal(saved.image_pixels, l.image_pixels)
  end)

  it('makes train.lua refuse a caption line over --max-line-bytes 1000', function()
    local dir = util.tmpdir()
    util.write(dir .. '/captions.txt', 'image,caption\na.jpg,a short one\nb.jpg,' ..
      string.rep('x', 3000) .. '\n')
    local p = io.popen('luajit examples/train.lua --data ' .. dir .. ' --out ' .. dir ..
      '/out --quiet --max-line-bytes 1000 2>&1; echo "exit $?"')
    local log = p:read('*a')
    p:close()
    os.execute('rm -rf "' .. dir .. '"')
    assert.equal('train.lua: captions: ' .. dir .. '/captions.txt: line 3 is longer than 1000 bytes ' ..
      '(luacap.set_limits{line_bytes = ...})\nexit 1\n', log)
  end)
end)
