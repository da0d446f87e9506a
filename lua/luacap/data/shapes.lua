-- luacap.data.shapes: the built-in synthetic captioning dataset: 1 to 3 coloured shapes on a
-- noisy grey background, five different true captions each, written as Images/*.jpg plus a
-- Kaggle-format captions.txt and a shapes.json ground truth. Not a renderer: no antialias.
local core = require 'luacap.core'
local paths = require 'luacap.data.paths'
local util = require 'luacap.util'

local M = {}

------------------------------------------------------------------------ the grammar

-- Canonical words and the RGB values they are drawn with (kept inside 20..245 so that
-- the background noise rarely clips).
M.COLOURS = {'red', 'green', 'blue', 'yellow', 'purple', 'orange'}
M.RGB = {
  red = {220, 40, 40}, green = {40, 180, 60}, blue = {50, 90, 230},
  yellow = {240, 220, 40}, purple = {150, 60, 200}, orange = {245, 140, 30},
}
M.SHAPES = {'circle', 'square', 'triangle', 'star', 'cross'}
M.SIZES = {'small', 'big'}
M.SIZE_WORDS = {small = {'small', 'little'}, big = {'big', 'large'}}
-- Radius (half the extent) as a fraction of the image side; a 3x3 grid cell is 1/3.
M.RADIUS = {small = 0.08, big = 0.15}
M.ROWS = {'top', 'middle', 'bottom'}
M.COLS = {'left', 'centre', 'right'}
-- Where a shape is, by grid cell "row col", and the phrases that say so.
M.POSITIONS = {
  ['top left'] = {'at the top left', 'in the top left corner'},
  ['top centre'] = {'at the top'},
  ['top right'] = {'at the top right', 'in the top right corner'},
  ['middle left'] = {'on the left'},
  ['middle centre'] = {'in the centre', 'in the middle'},
  ['middle right'] = {'on the right'},
  ['bottom left'] = {'at the bottom left', 'in the bottom left corner'},
  ['bottom centre'] = {'at the bottom'},
  ['bottom right'] = {'at the bottom right', 'in the bottom right corner'},
}
-- Relations between two shapes a, b, by their grid cells.
M.RELATIONS = {
  {phrase = 'to the left of', holds = function(a, b) return a.c < b.c end},
  {phrase = 'to the right of', holds = function(a, b) return a.c > b.c end},
  {phrase = 'above', holds = function(a, b) return a.r < b.r end},
  {phrase = 'below', holds = function(a, b) return a.r > b.r end},
}
M.COUNTS = {'one', 'two', 'three'}

local rand = core.random      -- luacap's seeded generator: rand(n) in 1..n, rand() in [0, 1)

local function pick(list) return list[rand(#list)] end

-- 'a' or 'an' by the next word (only 'orange' starts with a vowel sound here).
local function article(word) return word:match('^[aeiou]') and 'an' or 'a' end

-- Noun phrase for shape o. form: 'c' colour shape, 'sc' size colour shape, 's' size shape.
local function np(o, form)
  local words = {}
  if form:find('s', 1, true) then words[#words + 1] = pick(M.SIZE_WORDS[o.size]) end
  if form:find('c', 1, true) then words[#words + 1] = o.colour end
  words[#words + 1] = o.shape
  return article(words[1]) .. ' ' .. table.concat(words, ' ')
end

-- "x", "x and y", "x, y and z"
local function list(objs, form)
  local parts = {}
  for i, o in ipairs(objs) do parts[i] = np(o, form) end
  if #parts == 1 then return parts[1] end
  return table.concat(parts, ', ', 1, #parts - 1) .. ' and ' .. parts[#parts]
end

local function position(o) return pick(M.POSITIONS[o.row .. ' ' .. o.col]) end

local function relation(a, b)
  local ok = {}
  for _, rel in ipairs(M.RELATIONS) do
    if rel.holds(a, b) then ok[#ok + 1] = rel.phrase end
  end
  return pick(ok)
end

-- Every caption template, in a fixed order; synonyms are drawn from the generator.
-- objs is in reading order (top to bottom, then left to right).
local function candidates(objs)
  local n, out = #objs, {}
  local function add(s) out[#out + 1] = s end
  add(list(objs, 'c'))
  add(list(objs, 'sc'))
  add('there is ' .. list(objs, pick({'c', 'sc'})))
  if n == 1 then
    add('a picture of ' .. np(objs[1], 'sc'))
    add('one ' .. objs[1].colour .. ' ' .. objs[1].shape)
  else
    add(M.COUNTS[n] .. ' shapes: ' .. list(objs, 'c'))
    add('an image with ' .. list(objs, 'c'))
  end
  for _, o in ipairs(objs) do
    add(np(o, 'sc') .. ' ' .. position(o))
    add('there is ' .. np(o, 'c') .. ' ' .. position(o))
    add(np(o, 's') .. ' ' .. position(o))
  end
  for i = 1, n do
    for j = 1, n do
      if i ~= j then
        add(np(objs[i], 'c') .. ' ' .. relation(objs[i], objs[j]) .. ' ' .. np(objs[j], 'c'))
        add(np(objs[i], 'sc') .. ' is ' .. relation(objs[i], objs[j]) .. ' ' .. np(objs[j], 'c'))
      end
    end
  end
  return out
end

-- Five different captions: the distinct candidates, shuffled (Fisher-Yates), first five.
local function choose_captions(objs, k)
  local seen, uniq = {}, {}
  for _, s in ipairs(candidates(objs)) do
    if not seen[s] then seen[s] = true; uniq[#uniq + 1] = s end
  end
  for i = #uniq, 2, -1 do
    local j = rand(i)
    uniq[i], uniq[j] = uniq[j], uniq[i]
  end
  local out = {}
  for i = 1, math.min(k, #uniq) do out[i] = uniq[i] end
  return out
end

------------------------------------------------------------------------ drawing

-- A five-pointed star: 10 vertices, outer radius 1, inner 0.45, first point up.
local STAR = {}
for i = 0, 9 do
  local rr = (i % 2 == 0) and 1 or 0.45
  local a = -math.pi / 2 + i * math.pi / 5
  STAR[#STAR + 1] = {rr * math.cos(a), rr * math.sin(a)}
end

-- Even-odd rule point-in-polygon for (x, y) against poly scaled by r.
local function in_poly(poly, r, x, y)
  local inside, j = false, #poly
  for i = 1, #poly do
    local xi, yi = poly[i][1] * r, poly[i][2] * r
    local xj, yj = poly[j][1] * r, poly[j][2] * r
    if (yi > y) ~= (yj > y) and x < (xj - xi) * (y - yi) / (yj - yi) + xi then
      inside = not inside
    end
    j = i
  end
  return inside
end

-- inside(shape, dx, dy, r): is the pixel centre offset (dx, dy) from the shape's centre
-- (y grows downwards) inside a shape of radius r?
local function inside(shape, dx, dy, r)
  if shape == 'circle' then
    return dx * dx + dy * dy <= r * r
  elseif shape == 'square' then
    local h = 0.85 * r                       -- a square of side 1.7 r looks as big as the disc
    return dx >= -h and dx <= h and dy >= -h and dy <= h
  elseif shape == 'triangle' then          -- apex up at -r, base at +0.75 r, base half-width r
    if dy < -r or dy > 0.75 * r then return false end
    local half = (dy + r) / 1.75
    return dx >= -half and dx <= half
  elseif shape == 'cross' then             -- a plus sign with arms 0.3 r thick
    local t = 0.3 * r
    return (dx >= -t and dx <= t and dy >= -r and dy <= r)
        or (dy >= -t and dy <= t and dx >= -r and dx <= r)
  elseif shape == 'star' then
    return in_poly(STAR, r, dx, dy)
  end
  error('shapes: unknown shape ' .. tostring(shape))
end

-- render(objs, size, background) -> (size, size, 3) tensor of 0..255 (before noise).
-- Pixels are filled in a flat Lua table (row-major, RGB interleaved), then one from_flat.
function M.render(objs, size, background)
  local flat, n = {}, size * size * 3
  for i = 1, n do flat[i] = background end
  for _, o in ipairs(objs) do
    local rgb = M.RGB[o.colour]
    local cr, cg, cb = rgb[1], rgb[2], rgb[3]
    local r = o.radius
    local y0, y1 = math.max(0, math.floor(o.y - r - 1)), math.min(size - 1, math.ceil(o.y + r + 1))
    local x0, x1 = math.max(0, math.floor(o.x - r - 1)), math.min(size - 1, math.ceil(o.x + r + 1))
    for y = y0, y1 do
      local dy = y + 0.5 - o.y
      for x = x0, x1 do
        if inside(o.shape, x + 0.5 - o.x, dy, r) then
          local k = (y * size + x) * 3
          flat[k + 1], flat[k + 2], flat[k + 3] = cr, cg, cb
        end
      end
    end
  end
  return core.from_flat(flat, {size, size, 3})
end

-- Draw one image's shapes: 1..3 shapes in distinct cells of a 3x3 grid, distinct colours,
-- any shape kinds and sizes, centres jittered inside their cells.
local function layout(size, max_shapes)
  local k = rand(max_shapes)
  local cells = {}
  for i = 1, 9 do cells[i] = i end
  local colours = {}
  for i = 1, #M.COLOURS do colours[i] = i end
  local objs = {}
  for i = 1, k do
    local j = i - 1 + rand(9 - i + 1)         -- partial Fisher-Yates: distinct cells
    cells[i], cells[j] = cells[j], cells[i]
    local m = i - 1 + rand(#colours - i + 1)  -- and distinct colours
    colours[i], colours[m] = colours[m], colours[i]
    local cell = cells[i] - 1
    local r, c = math.floor(cell / 3) + 1, cell % 3 + 1
    local sz = pick(M.SIZES)
    local radius = M.RADIUS[sz] * size
    local cellw = size / 3
    local jit = math.max(0, math.floor((cellw / 2 - radius) / 2))
    local o = {
      shape = pick(M.SHAPES), colour = M.COLOURS[colours[i]], size = sz,
      r = r, c = c, row = M.ROWS[r], col = M.COLS[c], radius = radius,
      x = (c - 0.5) * cellw + (jit > 0 and rand(2 * jit + 1) - jit - 1 or 0),
      y = (r - 0.5) * cellw + (jit > 0 and rand(2 * jit + 1) - jit - 1 or 0),
    }
    objs[i] = o
  end
  table.sort(objs, function(a, b)                -- reading order
    if a.r ~= b.r then return a.r < b.r end
    return a.c < b.c
  end)
  return objs
end

------------------------------------------------------------------------ files

local function csv_field(s)
  if s:find('[",\r\n]') then return '"' .. s:gsub('"', '""') .. '"' end
  return s
end

local function json_str(s)
  return '"' .. s:gsub('[%c"\\]', function(ch)
    if ch == '"' then return '\\"' elseif ch == '\\' then return '\\\\' end
    return string.format('\\u%04x', ch:byte())
  end) .. '"'
end

local function num(x) return string.format('%.3f', x) end

-- shapes.json with keys in a fixed order, so that the file is byte-identical per seed.
local function write_json(path, info, records)
  local out = {}
  local function w(s) out[#out + 1] = s end
  w('{"format": "luacap.shapes", "version": 1, "size": ' .. info.size .. ', "seed": ' ..
    info.seed .. ', "n": ' .. #records .. ',\n "images": [\n')
  for i, rec in ipairs(records) do
    w('  {"id": ' .. json_str(rec.id) .. ', "file": ' .. json_str(rec.file) ..
      ', "background": ' .. rec.background .. ',\n   "shapes": [')
    for j, o in ipairs(rec.shapes) do
      w((j > 1 and ', ' or '') .. '{"shape": ' .. json_str(o.shape) .. ', "colour": ' ..
        json_str(o.colour) .. ', "size": ' .. json_str(o.size) .. ', "row": ' ..
        json_str(o.row) .. ', "col": ' .. json_str(o.col) .. ', "x": ' .. num(o.x) ..
        ', "y": ' .. num(o.y) .. ', "radius": ' .. num(o.radius) .. '}')
    end
    w('],\n   "captions": [')
    for j, c in ipairs(rec.captions) do w((j > 1 and ', ' or '') .. json_str(c)) end
    w(']}' .. (i < #records and ',' or '') .. '\n')
  end
  w(' ]}\n')
  return require('luacap.util').write_file(path, table.concat(out))   -- atomic
end

-- generate{dir =, n = 2000, size = 64, seed = 1, captions = 5, noise = 12, quality = 90,
--          max_shapes = 3 (each image shows 1..max_shapes shapes)}
-- -> {dir =, ids =, images = {{id =, file =, background =, shapes = {...}, captions =
-- {...}}}, captions_file =, shapes_file =, images_dir =} | nil, message.
-- Writes dir/Images/shape_00001.jpg ..., dir/captions.txt (Kaggle CSV) and dir/shapes.json.
-- Reseeds luacap's generator with seed: the same seed gives byte-identical files.
function M.generate(opt)
  opt = opt or {}
  if type(opt.dir) ~= 'string' then error("shapes.generate: missing required option 'dir'", 2) end
  local n, size, seed = opt.n or 2000, opt.size or 64, opt.seed or 1
  local per, noise, quality = opt.captions or 5, opt.noise or 12, opt.quality or 90
  if n < 1 or n ~= math.floor(n) then
    error('shapes.generate: n is ' .. tostring(n) .. ', expected an integer >= 1', 2)
  end
  if size < 16 or size ~= math.floor(size) then
    error('shapes.generate: size is ' .. tostring(size) .. ', expected an integer >= 16', 2)
  end
  if per < 1 or per > 5 then error('shapes.generate: captions is ' .. tostring(per) .. ', expected 1..5', 2) end
  local max_shapes = opt.max_shapes or 3
  if max_shapes ~= 1 and max_shapes ~= 2 and max_shapes ~= 3 then
    error('shapes.generate: max_shapes is ' .. tostring(max_shapes) .. ', expected 1, 2 or 3', 2)
  end
  local image = require 'luacap.image'
  local images_dir = paths.join(opt.dir, 'Images')
  local ok, err = paths.mkdir_p(images_dir)
  if not ok then return nil, err end
  core.seed(seed)
  local records, ids, lines = {}, {}, {'image,caption'}
  for i = 1, n do
    local id = string.format('shape_%05d', i)
    local file = id .. '.jpg'
    local objs = layout(size, max_shapes)
    local background = 50 + rand(60)            -- a dark grey, 51..110
    local img = M.render(objs, size, background)
    if noise > 0 then img:add(core.rand(-noise, noise, size, size, 3)) end
    local saved, serr = image.save(paths.join(images_dir, file), img, {quality = quality})
    img:free()
    if not saved then return nil, serr end
    local caps = choose_captions(objs, per)
    for _, c in ipairs(caps) do lines[#lines + 1] = file .. ',' .. csv_field(c) end
    local shapes = {}
    for j, o in ipairs(objs) do
      shapes[j] = {shape = o.shape, colour = o.colour, size = o.size, row = o.row, col = o.col,
                   x = o.x, y = o.y, radius = o.radius}
    end
    ids[i] = id
    records[i] = {id = id, file = file, background = background, shapes = shapes, captions = caps}
    if i % 64 == 0 then collectgarbage('step') end   -- the pixel tensors live outside the heap
  end
  local captions_file = paths.join(opt.dir, 'captions.txt')
  local cok, ferr = require('luacap.util').write_file(captions_file, table.concat(lines, '\n') .. '\n')
  if not cok then return nil, ferr end
  local shapes_file = paths.join(opt.dir, 'shapes.json')
  ok, err = write_json(shapes_file, {size = size, seed = seed}, records)
  if not ok then return nil, err end
  return {dir = opt.dir, ids = ids, images = records, captions_file = captions_file,
          shapes_file = shapes_file, images_dir = images_dir}
end

-- load(path) -> the table shapes.json holds | nil, message.
function M.load(path)
  local s, err = util.read_file(path)
  if not s then return nil, err end
  local doc, derr = require('cjson.safe').decode(s)
  if not doc then return nil, path .. ': ' .. tostring(derr) end
  return doc
end

-- vocabulary() -> sorted list of every word a caption can contain, before cleaning
-- (so 'a' is listed; clean() drops it).
function M.vocabulary()
  local set = {}
  local function add_words(s) for w in s:gmatch('%a+') do set[w] = true end end
  for _, c in ipairs(M.COLOURS) do add_words(c) end
  for _, s in ipairs(M.SHAPES) do add_words(s) end
  for _, ws in pairs(M.SIZE_WORDS) do for _, w in ipairs(ws) do add_words(w) end end
  for _, ps in pairs(M.POSITIONS) do for _, p in ipairs(ps) do add_words(p) end end
  for _, r in ipairs(M.RELATIONS) do add_words(r.phrase) end
  for _, c in ipairs(M.COUNTS) do add_words(c) end
  add_words('a an is there shapes picture of image with and')
  local out = {}
  for w in pairs(set) do out[#out + 1] = w end
  table.sort(out)
  return out
end

return M
