-- Specs for luacap.report: the loss-curve and caption-grid PNGs decoded back and checked by
-- pixel statistics, word wrapping measured against the cell, and the HTML page's content.
-- Not pixel-exact comparisons with matplotlib: fonts and antialiasing differ.
local core = require 'luacap.core'
local luacap = require 'luacap'
local report = require 'luacap.report'
local util = require 'helpers.util'

local TMP = util.tmpdir()

local function load(path)
  local cv = assert(core.canvas_load_png(path))
  local img = cv:pixels()
  cv:free()
  return img
end

-- Pixels in rows r1..r2 (1-based) within tol of rgb (0..255).
local function count_color(img, rgb, tol, r1, r2)
  r1, r2 = r1 or 1, r2 or img:size(1)
  local flat = img:narrow(r1, r2 - r1 + 1):flat()
  local n = 0
  for k = 1, #flat, 3 do
    if math.abs(flat[k] - rgb[1]) <= tol and math.abs(flat[k + 1] - rgb[2]) <= tol
        and math.abs(flat[k + 2] - rgb[3]) <= tol then
      n = n + 1
    end
  end
  return n
end

local function dark(img, r1, r2) return count_color(img, {0, 0, 0}, 90, r1, r2) end
local BLUE, ORANGE = {0x1f, 0x77, 0xb4}, {0xff, 0x7f, 0x0e}
local GREEN, RED = {0x2c, 0xa0, 0x2c}, {0xd6, 0x27, 0x28}

local function history(n)
  local h = {loss = {}, val_loss = {}, lr = {}}
  for e = 1, n do
    h.loss[e] = 2 * math.exp(-e / 4) + 0.3
    h.val_loss[e] = 2 * math.exp(-e / 5) + 0.5 + 0.01 * (e - 6) ^ 2
    h.lr[e] = e < 5 and 1e-3 or 5e-4
  end
  return h
end

local read = util.read

local function exists(path)
  local f = io.open(path, 'rb')
  if f then f:close() end
  return f ~= nil
end

describe('report.nice_ticks', function()
  it('picks 1-2-5 steps inside the range', function()
    local t, step = report.nice_ticks(0, 1, 5)
    assert.equal(0.2, step)
    assert.equal(6, #t)
    assert.near(0.6, t[4], 1e-12)
    -- 0.93..2.61 span 1.68, /6 = 0.28 -> 0.2 after rounding to 2 x 0.1
    t, step = report.nice_ticks(0.93, 2.61, 6)
    assert.near(0.2, step, 1e-12)
    assert.near(1.0, t[1], 1e-12)
    assert.near(2.6, t[#t], 1e-12)
    -- epochs: never a fractional step
    t, step = report.nice_ticks(1, 3, 10, true)
    assert.equal(1, step)
    assert.same({1, 2, 3}, t)
  end)
end)

describe('report.loss_curve', function()
  it('writes a 1200 x 750 PNG with title, both curves, the lr drop and the best mark', function()
    local path = TMP .. '/loss.png'
    assert.same({true}, {report.loss_curve(path, history(12))})
    local img = load(path)
    assert.same({750, 1200, 3}, img:size())
    assert.is_true(dark(img, 20, 65) > 300, 'title text')
    assert.is_true(count_color(img, BLUE, 25) > 500, 'train curve')
    assert.is_true(count_color(img, ORANGE, 25) > 500, 'val curve')
    assert.is_true(count_color(img, GREEN, 30) > 50, 'lr marker')
    assert.is_true(count_color(img, RED, 30) > 50, 'best marker')
    assert.is_true(count_color(img, {255, 255, 255}, 0) > 0.6 * 750 * 1200, 'mostly white')
  end)

  it('has no lr or best marks when the lr never drops and val_loss is missing', function()
    local path = TMP .. '/train_only.png'
    local h = history(6)
    assert.is_true(report.loss_curve(path, {loss = h.loss, lr = {1, 1, 1, 1, 1, 1}}))
    local img = load(path)
    assert.is_true(count_color(img, BLUE, 25) > 200)
    assert.equal(0, count_color(img, ORANGE, 25))
    assert.equal(0, count_color(img, GREEN, 30))
    assert.equal(0, count_color(img, RED, 30))
  end)

  it('honours width and height', function()
    local path = TMP .. '/small.png'
    assert.is_true(report.loss_curve(path, history(3), {width = 600, height = 400}))
    assert.same({400, 600, 3}, load(path):size())
  end)

  it('handles one epoch, NaN and inf, and an empty history', function()
    assert.is_true(report.loss_curve(TMP .. '/one.png', {loss = {1.2}, val_loss = {1.5}}))
    local img = load(TMP .. '/one.png')
    assert.is_true(count_color(img, BLUE, 25) > 10, 'a dot for the single point')
    assert.is_true(report.loss_curve(TMP .. '/nan.png',
      {loss = {3, 0 / 0, 2, math.huge, 1}, val_loss = {-math.huge, 0 / 0}}))
    assert.is_true(count_color(load(TMP .. '/nan.png'), BLUE, 25) > 100)
    assert.is_true(report.loss_curve(TMP .. '/empty.png', {}))
    assert.equal(0, count_color(load(TMP .. '/empty.png'), BLUE, 25))
  end)

  it('returns nil, msg for bad data and an unwritable path, raises for a non-string path', function()
    local ok, err = report.loss_curve('/nonexistent-dir/loss.png', history(3))
    assert.is_nil(ok)
    assert.matches('^loss_curve: /nonexistent%-dir/loss.png: write png', err)
    ok, err = report.loss_curve(TMP .. '/x.png', 'not a table')
    assert.is_nil(ok)
    assert.matches('history must be a table', err)
    ok, err = report.loss_curve(TMP .. '/x.png', history(3), {width = 0})
    assert.is_nil(ok)
    assert.matches('^loss_curve: .*out of range', err)
    assert.has_error(function() report.loss_curve(nil, history(3)) end,
      'loss_curve: path must be a non-empty string, got nil')
  end)
end)

describe('report.wrap', function()
  local long = 'two young children are playing together on a very long and winding sandy ' ..
               'beach next to the ocean while their parents watch from the dunes'

  it('splits a long caption into lines narrower than the cell, keeping every word', function()
    local lines = report.wrap(long, 300, 18)
    assert.is_true(#lines >= 3, #lines .. ' lines')
    for _, line in ipairs(lines) do
      assert.is_true(report.text_width(line, 18) <= 300, line)
    end
    assert.equal(long, table.concat(lines, ' '))
    -- greedy: the next line's first word would not have fitted
    for i = 1, #lines - 1 do
      local next_word = lines[i + 1]:match('^%S+')
      assert.is_true(report.text_width(lines[i] .. ' ' .. next_word, 18) > 300)
    end
  end)

  it('breaks a single word wider than the cell', function()
    local word = string.rep('abcdefghij', 12)
    local lines = report.wrap(word, 150, 16)
    assert.is_true(#lines >= 3)
    for _, line in ipairs(lines) do assert.is_true(report.text_width(line, 16) <= 150) end
    assert.equal(word, table.concat(lines))
  end)

  it('gives one empty line for empty text and one line for short text', function()
    assert.same({''}, report.wrap('', 100))
    assert.same({'a dog'}, report.wrap('  a   dog ', 500))
  end)
end)

describe('report.caption_grid', function()
  local function red(h, w)
    local img = luacap.zeros(h, w, 3)
    for i = 1, h do for j = 1, w do img:set(i, j, 1, 255) end end
    return img
  end

  it('draws the images and the wrapped captions in two columns', function()
    local items = {}
    for i = 1, 3 do items[i] = {image = red(30, 40), pred = 'a dog ' .. i, gt = 'a cat ' .. i} end
    local path = TMP .. '/grid.png'
    assert.is_true(report.caption_grid(path, items, {cell_width = 300, image_height = 200}))
    local img = load(path)
    assert.equal(600, img:size(2))
    local rows = img:size(1)
    assert.is_true(rows > 2 * 200)
    -- 3 images of 40x30 fitted into 260x200 boxes: 260 x 195 each
    local n_red = count_color(img, {255, 0, 0}, 10)
    assert.is_true(math.abs(n_red - 3 * 260 * 195) < 3 * 2 * (260 + 195), n_red)
    -- text under the first row's images (rows 221..) is dark
    assert.is_true(dark(img, 221, 260) > 100)
  end)

  it('grows the row to fit a long caption instead of cutting it off', function()
    local long = string.rep('a long caption that keeps going ', 10)
    local short_path, long_path = TMP .. '/g_short.png', TMP .. '/g_long.png'
    local opts = {cell_width = 300, image_height = 100, font_size = 16}
    assert.is_true(report.caption_grid(short_path, {{image = red(4, 4), pred = 'a', gt = 'b'}}, opts))
    assert.is_true(report.caption_grid(long_path, {{image = red(4, 4), pred = long, gt = 'b'}}, opts))
    local lines = #report.wrap('Pred: ' .. long, 300 - 40, 16)
    local h_short, h_long = load(short_path):size(1), load(long_path):size(1)
    assert.is_true(lines > 4)
    assert.is_true(h_long - h_short >= (lines - 1) * 16, h_short .. ' ' .. h_long)
  end)

  it('draws a placeholder for an unloadable image and still succeeds', function()
    local path = TMP .. '/grid_bad.png'
    assert.is_true(report.caption_grid(path, {
      {image = TMP .. '/missing.jpg', pred = 'p', gt = 'g'},
      {image = luacap.zeros(2, 2, 5), pred = 'p', gt = 'g'},
      {image = 42},
    }))
    assert.is_true(exists(path))
  end)

  it('reads an image from a PNG path', function()
    local src = TMP .. '/src.png'
    local cv = core.canvas(20, 10); cv:color(1, 0, 0); cv:rect(0, 0, 20, 10, true)
    assert(cv:write_png(src)); cv:free()
    local path = TMP .. '/grid_path.png'
    assert.is_true(report.caption_grid(path, {{image = src, pred = 'p', gt = 'g'}}))
    assert.is_true(count_color(load(path), {255, 0, 0}, 10) > 1000)
  end)

  it('returns nil, msg for no items and an unwritable path', function()
    local ok, err = report.caption_grid(TMP .. '/x.png', {})
    assert.is_nil(ok)
    assert.matches('items must be a non%-empty list', err)
    ok, err = report.caption_grid('/nonexistent-dir/g.png', {{image = red(2, 2), pred = 'a'}})
    assert.is_nil(ok)
    assert.matches('^caption_grid: .*write png', err)
  end)
end)

describe('report.captioned_image', function()
  it('draws the image with its caption under it', function()
    local img = luacap.full(255, 50, 100, 3)
    for i = 1, 50 do for j = 1, 100 do img:set(i, j, 1, 0); img:set(i, j, 2, 0) end end  -- blue
    local path = TMP .. '/captioned.png'
    assert.is_true(report.captioned_image(path, img, 'a blue rectangle'))
    local out = load(path)
    assert.equal(360, out:size(2))                       -- 100 px widened to the minimum
    assert.is_true(out:size(1) > 50 * (360 - 32) / 100)  -- image scaled up, then text
    assert.is_true(count_color(out, {0, 0, 255}, 10) > 0.9 * 328 * 164)
    assert.is_true(dark(out, out:size(1) - 40, out:size(1)) > 50)
    local ok, err = report.captioned_image('/nonexistent-dir/c.png', img, 'x')
    assert.is_nil(ok)
    assert.matches('write png', err)
  end)
end)

describe('report.html', function()
  local function small(v)
    return luacap.full(v, 6, 8, 3)
  end

  it('writes an offline page with escaped captions and relative images that exist', function()
    local dir = TMP .. '/site'
    local items = {
      {id = '101669240_b2d3e7f17b', image = small(10), pred = 'startseq a <dog> & cat endseq',
       refs = {'a "quoted" caption', "it's two dogs"}},
      {id = 'bad/../id', image = small(200), pred = 'second', gt = 'ground truth'},
      {id = 'gone', image = TMP .. '/does-not-exist.jpg', pred = 'lost'},
    }
    assert.is_true(report.html(dir, {history = {loss = {2, 1}, val_loss = {2.5, 1.5}},
      metrics = {['BLEU-4'] = 0.125, ['BLEU-1'] = 0.5}, items = items}))
    local page = read(dir .. '/index.html')
    assert.truthy(page:find('a &lt;dog&gt; &amp; cat', 1, true))
    assert.is_nil(page:find('<dog>', 1, true))
    assert.is_nil(page:find('startseq', 1, true))
    assert.truthy(page:find('a &quot;quoted&quot; caption', 1, true))
    assert.truthy(page:find('it&#39;s two dogs', 1, true))
    assert.truthy(page:find('ground truth', 1, true))
    assert.truthy(page:find('image unavailable', 1, true))
    -- BLEU-1 listed before BLEU-4, values to 4 places
    local b1, b4 = page:find('BLEU-1', 1, true), page:find('BLEU-4', 1, true)
    assert.is_true(b1 < b4)
    assert.truthy(page:find('0.1250', 1, true))
    local srcs = {}
    for src in page:gmatch('<img[^>]- src="([^"]+)"') do srcs[#srcs + 1] = src end
    assert.equal(3, #srcs)                   -- the curve and two images
    for _, src in ipairs(srcs) do
      assert.is_nil(src:find('^/'))
      assert.is_nil(src:find('%.%.'))
      assert.is_nil(src:find(':', 1, true))
      assert.is_true(exists(dir .. '/' .. src), src)
    end
    assert.same({750, 1200, 3}, load(dir .. '/loss_curve.png'):size())
    assert.truthy(exists(dir .. '/images/bad___id.png'))
    local thumb = load(dir .. '/images/101669240_b2d3e7f17b.png')
    assert.same({6, 8, 3}, thumb:size())
    assert.equal(10, thumb:max())
  end)

  it('copies a JPEG or PNG file byte for byte', function()
    local src = TMP .. '/pic.png'
    local cv = core.canvas(5, 4); cv:color(0, 1, 0); cv:rect(0, 0, 5, 4, true)
    assert(cv:write_png(src)); cv:free()
    local dir = TMP .. '/site2'
    assert.is_true(report.html(dir, {items = {{id = 'p', image = src, pred = 'green'}}}))
    assert.equal(read(src), read(dir .. '/images/p.png'))
  end)

  it('returns nil, msg when the folder cannot be made', function()
    local f = io.open(TMP .. '/plainfile', 'w'); f:write('x'); f:close()
    local ok, err = report.html(TMP .. '/plainfile/site', {items = {}})
    assert.is_nil(ok)
    assert.matches('^html: mkdir', err)
    ok, err = report.html(TMP .. '/site3', 'nope')
    assert.is_nil(ok)
    assert.matches('data must be a table', err)
  end)
end)
