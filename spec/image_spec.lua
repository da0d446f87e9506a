-- Specs for luacap.image: codecs against Pillow's decoded values (expected.json, made by
-- spec/fixtures/images/make_fixtures.py), PNG round trips, Pillow-exact nearest resize,
-- bilinear resize, VGG preprocessing, and the nil, msg convention for bad files.
local luacap = require 'luacap'
local image = require 'luacap.image'
local cjson = require 'cjson'

local DIR = 'spec/fixtures/images/'
local expected = cjson.decode(assert(io.open(DIR .. 'expected.json')):read('*a'))

local function max_abs_diff(a, b)
  assert.equal(#a, #b)
  local m = 0
  for i = 1, #a do m = math.max(m, math.abs(a[i] - b[i])) end
  return m
end

-- An (H, W, C) tensor of integers 0..255 from the seeded generator.
local function random_image(H, W, C)
  luacap.seed(1234)
  local flat = {}
  for i = 1, H * W * C do flat[i] = luacap.random(256) - 1 end
  return luacap.core.from_flat(flat, {H, W, C})
end

local function tmpname(ext)
  return os.tmpname() .. ext
end

describe('image codecs', function()
  it('round-trips RGB through PNG exactly, on disk and in memory', function()
    local img = random_image(9, 13, 3)
    local path = tmpname('.png')
    assert.is_true(image.save(path, img))
    local back = assert(image.load(path))
    os.remove(path)
    assert.same({9, 13, 3}, back:shape())
    assert.same(img:flat(), back:flat())
    local mem = assert(image.decode(assert(image.encode(img, 'png'))))
    assert.same(img:flat(), mem:flat())
  end)

  it('rounds and clips values when saving, and writes grey as replicated RGB', function()
    local img = luacap.tensor{{{-5}, {254.6}}, {{300}, {7.4}}}       -- (2, 2, 1)
    local back = assert(image.decode(image.encode(img, 'png')))
    assert.same({0, 0, 0, 255, 255, 255, 255, 255, 255, 7, 7, 7}, back:flat())
  end)

  it('writes JPEG with a quality option, close to the original', function()
    local img = luacap.zeros(16, 16, 3)
    for y = 1, 16 do for x = 1, 16 do
      img:set(y, x, 1, 8 * x); img:set(y, x, 2, 8 * y); img:set(y, x, 3, 100)
    end end
    local path = tmpname('.JPG')
    assert.is_true(image.save(path, img, {quality = 95}))
    local back = assert(image.load(path))
    os.remove(path)
    assert.same({16, 16, 3}, back:shape())
    -- a smooth gradient survives quality 95 within a few levels
    assert.is_true(max_abs_diff(img:flat(), back:flat()) <= 6)
    local small, big = image.encode(img, 'jpeg', {quality = 10}), image.encode(img, 'jpeg', {quality = 100})
    assert.is_true(#small < #big)
    assert.equal('jpeg', image.info(DIR .. 'baseline.jpg').format)
  end)

  it('decodes every PNG colour type and bit depth as Pillow convert("RGB") does', function()
    local names = {
      'grey1.png', 'grey2.png', 'grey4.png', 'grey8.png', 'grey8_trns.png',
      'greyalpha8.png', 'greyalpha16.png', 'rgb8.png', 'rgb16.png', 'rgba8.png', 'rgba16.png',
      'palette1.png', 'palette2.png', 'palette4.png', 'palette8.png',
      'rgb8_interlaced.png', 'grey4_interlaced.png', 'rgba16_interlaced.png',
    }
    for _, name in ipairs(names) do
      local e = expected.png[name]
      local img, err = image.load(DIR .. name)
      assert(img, err)
      assert.same({e.h, e.w, 3}, img:shape())
      assert.equal(0, max_abs_diff(e.rgb, img:flat()), name .. ' (' .. e.what .. ')')
    end
  end)

  it('keeps the high byte of 16-bit grey (where Pillow 9.4 clips its "I" mode)', function()
    -- grey16.png stores (g << 8) | (255 - g) for the grey values g of grey8.png.
    -- Pillow opens 16-bit grey as mode "I" and convert('RGB') clips to 255; we take
    -- g, as Pillow itself does for 16-bit RGB, RGBA and grey+alpha.
    local g16 = assert(image.load(DIR .. 'grey16.png'))
    local g8 = assert(image.load(DIR .. 'grey8.png'))
    assert.same(g8:flat(), g16:flat())
    assert.equal('I', expected.png['grey16.png'].pillow_mode)
  end)

  it('decodes baseline, progressive, 4:4:4, greyscale and Adobe CMYK JPEG like Pillow', function()
    -- Same libjpeg(-turbo) and settings (ISLOW IDCT, fancy upsampling) as Debian's Pillow:
    -- exact here; the tolerance allows another libjpeg-turbo release's rounding.
    for _, name in ipairs{'baseline.jpg', 'progressive.jpg', 'subsampled444.jpg', 'grey.jpg',
                          'cmyk.jpg'} do
      local e = expected.jpeg[name]
      local img, err = image.load(DIR .. name)
      assert(img, err)
      assert.same({e.h, e.w, 3}, img:shape())
      assert.is_true(max_abs_diff(e.rgb, img:flat()) <= 2, name)
    end
    assert.equal('CMYK', expected.jpeg['cmyk.jpg'].pillow_mode)
  end)

  it('detects the format from the bytes, not the name', function()
    local bytes = assert(io.open(DIR .. 'rgb8.png', 'rb')):read('*a')
    local path = tmpname('.jpg')
    local f = assert(io.open(path, 'wb')); f:write(bytes); f:close()
    local img = assert(image.load(path))
    os.remove(path)
    assert.same(expected.png['rgb8.png'].rgb, img:flat())
  end)

  it('reports header facts with info', function()
    assert.same({format = 'png', height = 5, width = 7, channels = 2},
      image.info(DIR .. 'greyalpha8.png'))
    assert.same({format = 'jpeg', height = 12, width = 16, channels = 4},
      image.info(DIR .. 'cmyk.jpg'))
    assert.same({format = 'png', height = 5, width = 7, channels = 3},
      image.info(DIR .. 'palette4.png'))
  end)
end)

describe('image bad data', function()
  local cases = {
    -- name, reason, whether info (which reads the header only) fails too
    {'truncated.jpg', 'truncated JPEG', false},
    {'truncated.png', 'truncated PNG', false},
    {'empty.jpg', 'empty file', true},
    {'text.jpg', 'not a JPEG or PNG file', true},
    {'missing.jpg', 'No such file or directory', true},
  }
  for _, c in ipairs(cases) do
    it('gives nil and a message naming ' .. c[1] .. ', and the next call works', function()
      local path = DIR .. c[1]
      local img, err = image.load(path)
      assert.is_nil(img)
      assert.equal(path .. ': ', err:sub(1, #path + 2))
      assert.truthy(err:find(c[2], 1, true), err)
      if c[3] then
        local info, ierr = image.info(path)
        assert.is_nil(info)
        assert.equal(err, ierr)
      end
      assert.truthy(image.load(DIR .. 'baseline.jpg'))
    end)
  end

  it('names the buffer when decoding from memory', function()
    local bytes = assert(io.open(DIR .. 'truncated.jpg', 'rb')):read('*a')
    local img, err = image.decode(bytes)
    assert.is_nil(img)
    assert.equal('image data: truncated JPEG (premature end of data)', err)
    local _, err2 = image.decode(bytes, 'cat.jpg')
    assert.equal('cat.jpg: truncated JPEG (premature end of data)', err2)
    local _, err3 = image.decode('\255\216\255\224garbage')
    assert.truthy(err3:find('^image data: '))
  end)

  it('survives many failures in a row (no leaked state between calls)', function()
    for _ = 1, 200 do
      assert.is_nil(image.load(DIR .. 'truncated.jpg'))
      assert.is_nil(image.load(DIR .. 'truncated.png'))
    end
    assert.same(expected.png['rgb8.png'].rgb, image.load(DIR .. 'rgb8.png'):flat())
  end)

  it('returns nil and a message when it cannot write', function()
    local ok, err = image.save('/nonexistent-dir/x.png', luacap.zeros(2, 2, 3))
    assert.is_nil(ok)
    assert.truthy(err:find('^/nonexistent%-dir/x%.png: '), err)
  end)
end)

describe('image argument errors', function()
  local img = luacap.zeros(4, 5, 3)
  local cases = {
    {'load(42)', function() image.load(42) end, 'image.load: bad argument #1 (path): expected a string, got number'},
    {'decode(img)', function() image.decode(img) end, 'expected a string, got userdata'},
    {'save to .gif', function() image.save('x.gif', img) end, "cannot tell the format from 'x.gif'"},
    {'save with quality 0', function() image.save('x.jpg', img, {quality = 0}) end, 'opts.quality is 0'},
    {'save a table', function() image.save('x.png', {}) end, 'expected a tensor, got table'},
    {'save (4, 5, 2)', function() image.save('x.png', luacap.zeros(4, 5, 2)) end,
     'img has shape (4, 5, 2), expected (*, *, 3)'},
    {'resize a string', function() image.resize('x', 2, 2) end, 'image.resize: bad argument #1 (img)'},
    {'resize to 0', function() image.resize(img, 0, 2) end, 'expected integers in 1..65535'},
    {'resize to 2.5', function() image.resize(img, 2.5, 2) end, 'size 2.5 x 2'},
    {'resize cubic', function() image.resize(img, 2, 2, 'cubic') end, "mode 'cubic', expected 'nearest' or 'bilinear'"},
    {'resize 2-d', function() image.resize(luacap.zeros(4, 5), 2, 2) end, 'img has shape (4, 5), expected (*, *, *)'},
    {'preprocess (4, 5, 1)', function() image.vgg_preprocess(luacap.zeros(4, 5, 1)) end,
      'image_vgg_preprocess: img has shape (4, 5, 1), expected (*, *, 3) = (H, W, 3) RGB'},
  }
  for _, c in ipairs(cases) do
    it('raises for ' .. c[1], function()
      local ok, err = pcall(c[2])
      assert.is_false(ok)
      assert.truthy(tostring(err):find(c[3], 1, true), tostring(err))
    end)
  end

  it('raises for a freed tensor', function()
    local t = luacap.zeros(2, 2, 3)
    t:free()
    local ok, err = pcall(image.resize, t, 1, 1)
    assert.is_false(ok)
    assert.truthy(err:find('tensor was freed', 1, true))
  end)
end)

describe('image resize', function()
  it('nearest: 7x5 -> 3x4 picks the hand-computed source pixels', function()
    -- Pillow's ImagingScaleAffine: step a = in / out, position = running double sum
    -- starting at a/2, source = (int) position.
    --   rows: a = 7/3 = 2.333.. -> 1.167, 3.5, 5.833   -> rows 1, 3, 5 (0-based)
    --   cols: a = 5/4 = 1.25    -> 0.625, 1.875, 3.125, 4.375 -> cols 0, 1, 3, 4
    -- With value = row * 5 + col the output is below.
    local src = luacap.arange(35):reshape(7, 5, 1)
    local out = image.resize(src, 3, 4, 'nearest')
    assert.same({{5, 6, 8, 9}, {15, 16, 18, 19}, {25, 26, 28, 29}}, out:reshape(3, 4):totable())
  end)

  it('nearest: equals Pillow on odd sizes, upsampling and 640x480 -> 224x224', function()
    -- 640 -> 224 and 512 -> 224 are the telling cases: there the running sum picks 20 and
    -- 25 different columns from (x + 0.5) * in / out, exact or in float32.
    assert.is_true(#expected.nearest >= 6)
    for _, c in ipairs(expected.nearest) do
      -- value = row * IW + col (exact in float32 below 2^24), three identical channels
      local src = luacap.arange(c.ih * c.iw):reshape(c.ih, c.iw, 1)
      local out = image.resize(src, c.oh, c.ow):flat()
      local bad = 0
      for i = 1, c.oh do
        for j = 1, c.ow do
          if out[(i - 1) * c.ow + j] ~= c.rows[i] * c.iw + c.cols[j] then bad = bad + 1 end
        end
      end
      assert.equal(0, bad, string.format('%dx%d -> %dx%d', c.ih, c.iw, c.oh, c.ow))
    end
  end)

  it('nearest keeps every channel of a pixel together', function()
    local img = assert(image.load(DIR .. 'rgb8.png'))        -- (5, 7, 3)
    local out = image.resize(img, 3, 4, 'nearest')
    -- output (2, 3) comes from rows a = 5/3: 0.83, 2.5 -> row 2; cols a = 7/4: 0.875,
    -- 2.625, 4.375 -> col 4 (0-based)
    for c = 1, 3 do assert.equal(img:get(3, 5, c), out:get(2, 3, c)) end
  end)

  it('bilinear: hand-computed shrink and enlarge', function()
    -- 2x2 -> 1x1: scale 2, support 2, centre 1: both taps weigh triangle(0.25) = 0.75,
    -- normalized to 1/2 each: the mean.
    local sq = luacap.tensor{{{10}, {20}}, {{30}, {60}}}
    assert.near(30, image.resize(sq, 1, 1, 'bilinear'):get(1, 1, 1), 1e-5)
    -- 1x2 {0, 100} -> 1x4: centres 0.25, 0.75, 1.25, 1.75 over pixel centres 0.5, 1.5;
    -- edges clamp: 0, 0.75*0 + 0.25*100, 0.25*0 + 0.75*100, 100.
    local row = luacap.tensor{{{0}, {100}}}
    local out = image.resize(row, 1, 4, 'bilinear'):flat()
    for i, v in ipairs{0, 25, 75, 100} do assert.near(v, out[i], 1e-4) end
  end)

  it('bilinear: within 1 of Pillow (which rounds to 8 bits after each pass)', function()
    for _, c in ipairs(expected.bilinear) do
      local out = image.resize(assert(image.load(DIR .. c.src)), c.oh, c.ow, 'bilinear')
      assert.is_true(max_abs_diff(c.rgb, out:flat()) <= 1, c.oh .. 'x' .. c.ow)
    end
  end)
end)

describe('image vgg_preprocess', function()
  it('reverses to BGR and subtracts the ImageNet means, without scaling', function()
    -- pixel RGB (10, 20, 30) -> BGR (30, 20, 10) - (103.939, 116.779, 123.68)
    local img = luacap.tensor{{{10, 20, 30}, {255, 0, 128}}}
    local out = image.vgg_preprocess(img)
    local want = {30 - 103.939, 20 - 116.779, 10 - 123.68, 128 - 103.939, 0 - 116.779, 255 - 123.68}
    assert.same({1, 2, 3}, out:shape())
    for i, v in ipairs(out:flat()) do assert.near(want[i], v, 1e-4) end
    assert.same({10, 20, 30, 255, 0, 128}, img:flat())       -- the input is untouched
  end)

  it('prepares an image: nearest resize to size x size, then caffe preprocessing', function()
    -- 1x2 image, pixels (10,20,30) and (40,50,60) -> 2x2 by nearest: columns 0, 1 ->
    -- each row [(10,20,30), (40,50,60)]; caffe: BGR minus (103.939, 116.779, 123.68)
    local img = luacap.tensor{{{10, 20, 30}, {40, 50, 60}}}
    local out = image.prepare(img, 2)
    assert.same({2, 2, 3}, out:shape())
    local want = {30 - 103.939, 20 - 116.779, 10 - 123.68, 60 - 103.939, 50 - 116.779, 40 - 123.68}
    local flat = out:flat()
    for r = 0, 1 do
      for k = 1, 6 do assert.near(want[k], flat[r * 6 + k], 1e-4) end
    end
    local same = luacap.tensor{{{1, 2, 3}}}          -- already 1x1: only preprocessed
    assert.near(3 - 103.939, image.prepare(same, 1):get(1, 1, 1), 1e-4)
  end)
end)
