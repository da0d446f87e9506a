-- Specs for lua/luacap/report/attention.lua and decode.attention: a one-hot map lights its
-- own region of the image and dims the rest, the maps of a sat model sum to 1 and are the
-- ones its step-wise decoding used, the figure has a panel per word.
local luacap = require 'luacap'
local attention = require 'luacap.report.attention'
local decode = require 'luacap.eval.decode'
local image = require 'luacap.image'
local U = require 'spec.helpers.util'

local function pixel(t, r, c, ch) return t:get(r, c, ch or 1) end

-- The brightest pixel (channel 1) of an (H, W, 3) tensor: value, row, column (the first
-- in row-major order on ties).
local function brightest(t)
  local best, br, bc = -1, 0, 0
  for r = 1, t:size(1) do
    for c = 1, t:size(2) do
      if pixel(t, r, c) > best then best, br, bc = pixel(t, r, c), r, c end
    end
  end
  return best, br, bc
end

describe('report.attention.overlay', function()
  it('a one-hot map on a 2 x 2 grid lights its region (top right) and dims the others', function()
    local img = luacap.full(200, 40, 40, 3)
    local o = assert(attention.overlay(img, {0, 1, 0, 0}))
    assert.same({40, 40, 3}, o:shape())
    assert.is_true(pixel(o, 10, 30) > 0.95 * 200)                -- the region's centre: kept
    local best, br, bc = brightest(o)
    assert.near(200, best, 1e-3)                                   -- at full brightness
    assert.is_true(br <= 20 and bc > 20, br .. ',' .. bc)           -- in the top right quadrant
    assert.near(200 * attention.FLOOR, pixel(o, 30, 10), 5)  -- the opposite region: dimmed
    assert.near(200 * attention.FLOOR, pixel(o, 30, 30), 5)
    assert.near(200 * attention.FLOOR, pixel(o, 10, 10), 5)
    -- brightness falls off from the region's centre (bilinear upsampling)
    assert.is_true(pixel(o, 10, 30) > pixel(o, 15, 25) and pixel(o, 15, 25) > pixel(o, 25, 15))
    -- every channel alike
    assert.near(pixel(o, 10, 30, 1), pixel(o, 10, 30, 3), 1e-6)
  end)

  it('a one-hot map at the centre of a 3 x 3 grid lights the middle of the image', function()
    local img = luacap.full(100, 30, 60, 3)
    local a = {0, 0, 0, 0, 1, 0, 0, 0, 0}
    local o = assert(attention.overlay(img, luacap.tensor(a)))
    local best, br, bc = brightest(o)
    assert.near(100, best, 1e-3)
    assert.is_true(br >= 11 and br <= 20 and bc >= 21 and bc <= 40, br .. ',' .. bc)
    assert.near(100 * attention.FLOOR, pixel(o, 1, 1), 3)
  end)

  it('a uniform map keeps the image as it is; a non-square grid is refused', function()
    local img = luacap.core.rand(0, 255, 8, 8, 3)
    local o = assert(attention.overlay(img, {0.25, 0.25, 0.25, 0.25}))
    local a, b = img:flat(), o:flat()
    for i = 1, #a do assert.near(a[i], b[i], 1e-3) end
    local ok, err = attention.overlay(img, {0.5, 0.5, 0, 0, 0, 0})
    assert.is_nil(ok)
    assert.truthy(err:find('not a square grid', 1, true))
  end)
end)

describe('decode.attention', function()
  local Sat = require 'luacap.models.sat'
  local tok = {word_index = {startseq = 1, endseq = 2, w3 = 3, w4 = 4, w5 = 5, w6 = 6}}

  local function tiny()
    luacap.seed(4)
    local m = Sat{vocab_size = 7, max_len = 5, feat_dim = 5, embed_dim = 4, units = 4, att_dim = 3}
    for _, p in ipairs(m:parameters()) do p.value:scale(3) end
    m:evaluate()
    return m
  end

  it('gives each word the L weights (summing to 1) the step-wise decoder used for it', function()
    local m = tiny()
    local feats = luacap.randn(3, 4, 5)
    local ids = {{3, 4, 2}, {5}, {6, 6, 3, 4}}
    local maps = assert(decode.attention(m, feats, tok, ids, {batch = 2}))
    for i = 1, 3 do
      assert.equal(#ids[i], #maps[i])
      -- the same image alone, stepped by hand
      local st = m:decode_start(feats:narrow(i, 1))
      local prev = 1
      for t, id in ipairs(ids[i]) do
        m:decode_step(st, {prev})
        local want = m:decode_alphas(st):flat()
        local s = 0
        for l = 1, 4 do
          assert.near(want[l], maps[i][t][l], 1e-6)
          s = s + maps[i][t][l]
        end
        assert.near(1, s, 1e-5)
        prev = id
      end
    end
    -- the maps differ between words (the test is not idle)
    local d = 0
    for l = 1, 4 do d = d + math.abs(maps[3][1][l] - maps[3][4][l]) end
    assert.is_true(d > 1e-3)
  end)

  it('refuses a model without spatial attention', function()
    local Seed = require 'luacap.models.seed'
    local m = Seed{vocab_size = 7, max_len = 5, feat_dim = 6, img_dense = 4, embed_dim = 4,
      units = 3, dec_dense = 4}
    local maps, err = decode.attention(m, luacap.randn(1, 6), tok, {{3}})
    assert.is_nil(maps)
    assert.truthy(err:find('spatial attention', 1, true))
  end)
end)

describe('report.attention (figure)', function()
  it('draws the image and one panel per word, in rows of 6', function()
    local dir = U.tmpdir()
    local img = luacap.core.rand(0, 255, 32, 32, 3)
    local words = {'a', 'red', 'star', 'and', 'a', 'blue', 'circle'}
    local alphas = {}
    for t = 1, #words do
      local a = {0, 0, 0, 0}
      a[(t - 1) % 4 + 1] = 1
      alphas[t] = a
    end
    assert(luacap.report.attention(dir .. '/f.png', img, words, alphas))
    local info = assert(image.info(dir .. '/f.png'))
    assert.equal(1200, info.width)                  -- 6 panels of 200 px
    local one_row = dir .. '/g.png'
    assert(luacap.report.attention(one_row, img, {'star'}, {{1, 0, 0, 0}}))
    assert.is_true(info.height > assert(image.info(one_row)).height * 1.5)   -- 8 panels: 2 rows
    local ok, err = luacap.report.attention(dir .. '/h.png', img, {'a', 'b'}, {{1, 0, 0, 0}})
    assert.is_nil(ok)
    assert.truthy(err:find('2 words but 1 attention maps', 1, true))
    os.execute('rm -rf "' .. dir .. '"')
  end)
end)
