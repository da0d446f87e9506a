-- Specs for luacap.data.shapes: same seed -> byte-identical files, another seed -> other
-- files; every caption is true of its image (parsed against shapes.json, positions and
-- relations checked on pixel coordinates); pixels show the colours; small vocabulary; speed.
local shapes = require 'luacap.data.shapes'
local captions = require 'luacap.data.captions'
local paths = require 'luacap.data.paths'
local image = require 'luacap.image'
local util = require 'helpers.util'

local tmpdir = util.tmpdir
local slurp = util.read

local function set(list) local s = {} for _, w in ipairs(list) do s[w] = true end return s end

local COLOUR = set(shapes.COLOURS)
local SHAPE = set(shapes.SHAPES)
local SIZE = {small = 'small', little = 'small', big = 'big', large = 'big'}
local PLACE = set({'top', 'bottom', 'left', 'right', 'centre', 'middle'})
local RELATIONS = {   -- cleaned words, and the test on pixel coordinates
  {{'to', 'the', 'left', 'of'}, function(a, b) return a.x < b.x end},
  {{'to', 'the', 'right', 'of'}, function(a, b) return a.x > b.x end},
  {{'above'}, function(a, b) return a.y < b.y end},
  {{'below'}, function(a, b) return a.y > b.y end},
}

-- Does shape o sit where the position words say? Thirds of the image, from x and y.
local function placed(o, words, size)
  local third = size / 3
  local hmid = o.x > third and o.x < 2 * third
  local vmid = o.y > third and o.y < 2 * third
  local only_mid = true
  for w in pairs(words) do
    if w ~= 'centre' and w ~= 'middle' then only_mid = false end
  end
  if only_mid then return hmid and vmid end
  if words.top and not (o.y < third) then return false end
  if words.bottom and not (o.y > 2 * third) then return false end
  if words.left and not (o.x < third) then return false end
  if words.right and not (o.x > 2 * third) then return false end
  return true
end

local function matches(np, objs)
  local out = {}
  for _, o in ipairs(objs) do
    if o.shape == np.shape and (not np.colour or np.colour == o.colour)
        and (not np.size or np.size == o.size) then
      out[#out + 1] = o
    end
  end
  return out
end

local function starts_with(tokens, at, words)
  for k, w in ipairs(words) do
    if tokens[at + k - 1] ~= w then return false end
  end
  return true
end

-- check(caption, objs, size) -> true | nil, reason. The caption is cleaned as for training;
-- each noun phrase ([size] [colour] shape) must name a shape of the image, each position
-- phrase after it must hold for that shape, each relation between two noun phrases must
-- hold for some pair, and no colour, size, place or relation word may stand elsewhere.
local function check(caption, objs, size)
  local tokens = {}
  for w in captions.clean(caption):gmatch('%S+') do tokens[#tokens + 1] = w end
  table.remove(tokens, 1); table.remove(tokens)           -- startseq, endseq
  if #tokens > 12 then return nil, #tokens .. ' words' end
  local covered, nps = {}, {}
  for s, w in ipairs(tokens) do
    if SHAPE[w] then
      local np = {shape = w, stop = s, start = s}
      if COLOUR[tokens[np.start - 1]] then np.colour = tokens[np.start - 1]; np.start = np.start - 1 end
      if SIZE[tokens[np.start - 1]] then np.size = SIZE[tokens[np.start - 1]]; np.start = np.start - 1 end
      np.objs = matches(np, objs)
      if #np.objs == 0 then return nil, 'no shape in the image fits "' ..
        table.concat(tokens, ' ', np.start, np.stop) .. '"' end
      for k = np.start, np.stop do covered[k] = true end
      nps[#nps + 1] = np
    end
  end
  if #nps == 0 then return nil, 'names no shape' end
  for k, np in ipairs(nps) do
    local t = np.stop + 1
    if tokens[t] == 'is' then t = t + 1 end
    local done = false
    for _, rel in ipairs(RELATIONS) do
      if not done and starts_with(tokens, t, rel[1]) then
        done = true
        local other, next_at = nps[k + 1], t + #rel[1]
        if tokens[next_at] == 'an' then next_at = next_at + 1 end   -- 'a' is gone after cleaning
        if not other or other.start ~= next_at then return nil, 'relation without a second shape' end
        local holds = false
        for _, a in ipairs(np.objs) do
          for _, b in ipairs(other.objs) do
            if a ~= b and rel[2](a, b) then holds = true end
          end
        end
        if not holds then return nil, 'relation "' .. table.concat(rel[1], ' ') .. '" is false' end
        for j = t, t + #rel[1] - 1 do covered[j] = true end
      end
    end
    local lead = tokens[t]
    if not done and (lead == 'at' or lead == 'in' or lead == 'on') and tokens[t + 1] == 'the'
        and PLACE[tokens[t + 2]] then
      local words, j = {}, t + 2
      while PLACE[tokens[j]] do words[tokens[j]] = true; covered[j] = true; j = j + 1 end
      local ok = false
      for _, o in ipairs(np.objs) do if placed(o, words, size) then ok = true end end
      if not ok then return nil, 'position is false' end
    end
  end
  for j, w in ipairs(tokens) do
    if (COLOUR[w] or SIZE[w] or PLACE[w] or w == 'above' or w == 'below') and not covered[j] then
      return nil, 'stray word "' .. w .. '"'
    end
  end
  local counts = {one = 1, two = 2, three = 3}
  if counts[tokens[1]] and counts[tokens[1]] ~= #objs then return nil, 'wrong count' end
  return true
end

describe('shapes.generate', function()
  local base = tmpdir()

  it('draws at most max_shapes shapes per image', function()
    local m = assert(shapes.generate{dir = base .. '/m', n = 40, seed = 5, max_shapes = 2})
    local seen = {}
    for _, rec in ipairs(m.images) do
      assert.is_true(#rec.shapes >= 1 and #rec.shapes <= 2)
      seen[#rec.shapes] = true
    end
    assert.is_true(seen[1] and seen[2])
    assert.has_error(function() shapes.generate{dir = base .. '/m', n = 1, max_shapes = 4} end,
      'shapes.generate: max_shapes is 4, expected 1, 2 or 3')
  end)
  local a = assert(shapes.generate{dir = base .. '/a', n = 24, seed = 5})
  local b = assert(shapes.generate{dir = base .. '/b', n = 24, seed = 5})
  local c = assert(shapes.generate{dir = base .. '/c', n = 24, seed = 6})

  teardown(function() os.execute('rm -rf ' .. paths.quote(base)) end)

  it('writes the same bytes for the same seed and other bytes for another', function()
    assert.are.equal(slurp(a.captions_file), slurp(b.captions_file))
    assert.are.equal(slurp(a.shapes_file), slurp(b.shapes_file))
    local differ = 0
    for i, id in ipairs(a.ids) do
      assert.are.equal('shape_' .. string.format('%05d', i), id)
      local ja = slurp(a.images_dir .. '/' .. id .. '.jpg')
      assert.are.equal(ja, slurp(b.images_dir .. '/' .. id .. '.jpg'))
      if ja ~= slurp(c.images_dir .. '/' .. id .. '.jpg') then differ = differ + 1 end
    end
    assert.are.equal(24, differ)
    assert.are_not.equal(slurp(a.captions_file), slurp(c.captions_file))
  end)

  it('writes a Kaggle captions.txt that the loader reads back, five different each', function()
    local ds = assert(captions.load(a.captions_file))
    assert.are.equal('kaggle', ds.format)
    assert.are.equal(0, ds.skipped)
    assert.are.same(a.ids, ds.ids)
    for i, id in ipairs(ds.ids) do
      assert.are.same(a.images[i].captions, ds.captions[id])
      assert.are.equal(5, #ds.captions[id])
      local distinct = 0
      for _ in pairs(set(ds.captions[id])) do distinct = distinct + 1 end
      assert.are.equal(5, distinct)
    end
    local r = captions.check_images(ds, a.images_dir)
    assert.are.same({}, r.missing)
    assert.are.same({}, r.extra)
  end)

  it('shapes.json describes every image, and the pixels show the colours', function()
    local doc = assert(shapes.load(a.shapes_file))
    assert.are.equal(24, #doc.images)
    assert.are.equal(64, doc.size)
    for i, rec in ipairs(doc.images) do
      assert.are.equal(a.ids[i], rec.id)
      assert.is_true(#rec.shapes >= 1 and #rec.shapes <= 3)
      local img = assert(image.load(a.images_dir .. '/' .. rec.file))
      assert.are.same({64, 64, 3}, img:shape())
      for _, o in ipairs(rec.shapes) do
        local rgb = shapes.RGB[o.colour]
        for ch = 1, 3 do   -- the centre pixel; tolerance for noise (12) and JPEG (q 90)
          local v = img:get(math.floor(o.y) + 1, math.floor(o.x) + 1, ch)
          assert.is_true(math.abs(v - rgb[ch]) < 40, rec.id .. ' ' .. o.colour .. ' channel ' .. ch)
        end
      end
      assert.is_true(math.abs(img:get(1, 1, 1) - rec.background) < 40, rec.id .. ' background')
    end
  end)

  it('the checker catches false captions', function()
    local objs = {{shape = 'circle', colour = 'red', size = 'small', x = 10, y = 10},
                  {shape = 'square', colour = 'blue', size = 'big', x = 50, y = 50}}
    assert.is_true(check('a red circle to the left of a blue square', objs, 64))
    assert.is_true(check('a small red circle at the top left', objs, 64))
    assert.is_nil(check('a blue circle', objs, 64))
    assert.is_nil(check('a big red circle', objs, 64))
    assert.is_nil(check('a red circle below a blue square', objs, 64))
    assert.is_nil(check('a red circle at the bottom', objs, 64))
    assert.is_nil(check('a blue square in the centre', objs, 64))
    assert.is_nil(check('three shapes: a red circle and a blue square', objs, 64))
    assert.is_nil(check('a red circle, yellow', objs, 64))
    assert.is_nil(check('a red circle to the left of', objs, 64))
  end)
end)

describe('shapes.generate at full size', function()
  local base = tmpdir()
  teardown(function() os.execute('rm -rf ' .. paths.quote(base)) end)

  it('keeps captions true at other image sizes', function()
    for _, size in ipairs({32, 96}) do
      local r = assert(shapes.generate{dir = base .. '/s' .. size, n = 60, size = size, seed = 2})
      for _, rec in ipairs(r.images) do
        for _, cap in ipairs(rec.captions) do
          local ok, why = check(cap, rec.shapes, size)
          assert.is_true(ok, size .. ' ' .. rec.id .. ': "' .. cap .. '": ' .. tostring(why))
        end
      end
    end
  end)

  it('makes 2000 images fast, all captions true, short, over a small vocabulary', function()
    local t0 = os.time()
    local r = assert(shapes.generate{dir = base, n = 2000, size = 64, seed = 1})
    local seconds = os.time() - t0
    assert.is_true(seconds < 30, 'took ' .. seconds .. ' s')
    local vocab, n_words, kinds = {}, 0, {}
    for _, rec in ipairs(r.images) do
      kinds[#rec.shapes] = (kinds[#rec.shapes] or 0) + 1
      for _, cap in ipairs(rec.captions) do
        local ok, why = check(cap, rec.shapes, 64)
        assert.is_true(ok, rec.id .. ': "' .. cap .. '": ' .. tostring(why))
        for w in captions.clean(cap):gmatch('%S+') do
          if not vocab[w] then vocab[w] = true; n_words = n_words + 1 end
        end
      end
    end
    assert.is_true(n_words <= 50, n_words .. ' words')
    assert.is_true(n_words >= 25, n_words .. ' words')
    assert.is_true(kinds[1] > 400 and kinds[2] > 400 and kinds[3] > 400)
    for w in pairs(vocab) do
      assert.is_true(w == 'startseq' or w == 'endseq' or set(shapes.vocabulary())[w], w)
    end
  end)
end)
