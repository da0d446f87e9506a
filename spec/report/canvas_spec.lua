-- Specs for the cairo canvas (csrc/report/draw.c through core.canvas): exact pixels of
-- filled rectangles and painted tensors, PNG round trips, ownership and error messages.
-- Not the figures themselves: report_spec.lua checks those.
local core = require 'luacap.core'
local luacap = require 'luacap'

local TMP = require('helpers.util').tmpdir()

local function px(img, i, j)
  return {img:get(i, j, 1), img:get(i, j, 2), img:get(i, j, 3)}
end

describe('core.canvas', function()
  it('starts white with the requested size', function()
    local cv = core.canvas(7, 5)
    assert.same({7, 5}, {cv:size()})
    local img = cv:pixels()
    assert.same({5, 7, 3}, img:size())
    assert.equal(255, img:min())
    assert.equal(255, img:max())
  end)

  it('fills a rectangle with exact colours and leaves the rest white', function()
    local cv = core.canvas(6, 4)
    cv:color(1, 0, 0)
    cv:rect(2, 1, 3, 2, true)          -- columns 3..5, rows 2..3 (1-based)
    local img = cv:pixels()
    assert.same({255, 0, 0}, px(img, 2, 3))
    assert.same({255, 0, 0}, px(img, 3, 5))
    assert.same({255, 255, 255}, px(img, 1, 3))
    assert.same({255, 255, 255}, px(img, 2, 2))
    assert.same({255, 255, 255}, px(img, 4, 6))
    -- 6 red pixels: sum over the red-free channels drops by 6 * 255 * 2
    assert.equal(6 * 4 * 3 * 255 - 6 * 255 * 2, img:sum())
  end)

  it('blends a half-transparent fill over white', function()
    local cv = core.canvas(2, 2)
    cv:color(0, 0, 0, 0.5)
    cv:rect(0, 0, 2, 2, true)
    local v = cv:pixels():get(1, 1, 1)
    assert.is_true(math.abs(v - 127.5) <= 1, 'got ' .. v)
  end)

  it('paints an RGB tensor pixel for pixel at scale 1, clamping to 0..255', function()
    local img = luacap.tensor{{{10, 20, 30}, {255, 0, 128}}, {{-5, 300, 7}, {1, 2, 3}}}
    local cv = core.canvas(4, 3)
    assert.is_true(cv:image(img, 1, 1, 2, 2))
    local out = cv:pixels()
    assert.same({10, 20, 30}, px(out, 2, 2))
    assert.same({255, 0, 128}, px(out, 2, 3))
    assert.same({0, 255, 7}, px(out, 3, 2))
    assert.same({1, 2, 3}, px(out, 3, 3))
    assert.same({255, 255, 255}, px(out, 1, 1))
  end)

  it('scales an image into a larger rectangle', function()
    local img = luacap.full(200, 3, 5, 3)
    local cv = core.canvas(50, 30)
    cv:image(img, 0, 0, 50, 30)
    local out = cv:pixels()
    assert.equal(200, out:min())
    assert.equal(200, out:max())
  end)

  it('draws text in dark pixels and measures wider strings as wider', function()
    local cv = core.canvas(200, 40)
    cv:font(20)
    local w1, asc, desc = cv:measure('Loss')
    local w2 = cv:measure('Loss Loss')
    assert.is_true(w1 > 20 and w2 > 2 * w1 - 1, w1 .. ' ' .. w2)
    assert.is_true(asc > 10 and desc > 0)
    assert.equal(0, (cv:measure('')))
    cv:color(0, 0, 0)
    cv:text(5, 30, 'Loss')
    local img = cv:pixels()
    assert.is_true(img:min() < 50)
    -- nothing right of the measured advance (plus a pixel of antialiasing)
    local right = 0
    for j = math.ceil(5 + w1) + 2, 200 do
      for i = 1, 40 do if img:get(i, j, 1) < 250 then right = right + 1 end end
    end
    assert.equal(0, right)
  end)

  it('round-trips through a PNG file', function()
    local cv = core.canvas(9, 4)
    cv:color(0.2, 0.4, 0.6)
    cv:polyline({0, 0, 8, 3, 0, 3}, true)
    local path = TMP .. '/round.png'
    assert.is_true(cv:write_png(path))
    local back = assert(core.canvas_load_png(path))
    assert.same({9, 4}, {back:size()})
    assert.same(cv:pixels():flat(), back:pixels():flat())
  end)

  it('returns nil, msg for an unwritable path and an unreadable PNG', function()
    local cv = core.canvas(3, 3)
    local ok, err = cv:write_png('/nonexistent-dir/x.png')
    assert.is_nil(ok)
    assert.matches('/nonexistent%-dir/x.png: write png', err)
    local c2, err2 = core.canvas_load_png(TMP .. '/missing.png')
    assert.is_nil(c2)
    assert.matches('missing.png: read png', err2)
    local f = io.open(TMP .. '/bad.png', 'wb'); f:write('not a png at all'); f:close()
    local c3, err3 = core.canvas_load_png(TMP .. '/bad.png')
    assert.is_nil(c3)
    assert.matches('bad.png: read png', err3)
  end)

  it('frees once, tolerates a second free, and refuses use after free', function()
    local cv = core.canvas(3, 3)
    cv:free()
    cv:free()
    assert.is_true(cv:isfreed())
    assert.has_error(function() cv:size() end, 'bad argument #1: canvas was freed')
  end)

  it('raises on programmer mistakes, naming the function and argument', function()
    assert.has_error(function() core.canvas(0, 10) end,
      'canvas: size 0 x 10 out of range [1, 32767]')
    local cv = core.canvas(4, 4)
    assert.has_error(function() cv:polyline{1, 2, 3} end,
      'polyline: expected x, y pairs, got 3 numbers')
    assert.has_error(function() cv:polyline{1, 2, 0 / 0, 4} end)
    assert.has_error(function() cv:circle(1, 1, -2) end, 'circle: r must be >= 0, got -2')
    assert.has_error(function() cv:image(luacap.zeros(2, 2, 4), 0, 0, 1, 1) end,
      'image: img has shape (2, 2, 4), expected (*, *, 3) = (H, W, 3)')
  end)

  it('mkdir_p makes nested folders and reports a file in the way', function()
    assert.is_true(core.mkdir_p(TMP .. '/a/b/c'))
    assert.is_true(core.mkdir_p(TMP .. '/a/b/c'))
    local f = io.open(TMP .. '/file', 'w'); f:write('x'); f:close()
    local ok, err = core.mkdir_p(TMP .. '/file/sub')
    assert.is_nil(ok)
    assert.matches('mkdir .*file', err)
  end)
end)
