-- Allocation limits: headers that claim huge images are refused before any pixel buffer
-- is allocated. The headers are crafted here (a few dozen bytes each), never real images.
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
