-- luacap.eval.semantic: is a caption of the built-in shapes data true of its image? Reads the
-- generator's scene truth (shapes.json), finds the (colour, shape) mentions in a caption with
-- the generator's own words, and matches them to the scene's objects. Judges colour, shape and
-- counts ("two shapes: ..."); size words, positions and relations are not judged.
local shapes = require 'luacap.data.shapes'

local M = {}

-- The generator's vocabulary, by role.
local COLOUR, SHAPE, SIZE, COUNT = {}, {}, {}, {}
for _, c in ipairs(shapes.COLOURS) do COLOUR[c] = true end
for _, s in ipairs(shapes.SHAPES) do SHAPE[s] = true end
for _, ws in pairs(shapes.SIZE_WORDS) do for _, w in ipairs(ws) do SIZE[w] = true end end
for i, w in ipairs(shapes.COUNTS) do COUNT[w] = i end
local MARKER = {startseq = true, endseq = true}

-- parse(caption) -> {mentions = {{colour =, shape =}, ...}, counts = {n, ...}}.
-- A mention is a noun phrase [count] [size] [colour] shape; its colour is nil when the phrase
-- names none ("a big circle at the top"). A colour word whose phrase ends without a shape word
-- is a mention with shape nil (it still claims an object of that colour). "<count> shapes" is
-- a claim about the number of objects; a count word before a noun phrase makes it that many
-- mentions ("one red circle" is one, "two red circle" two). Words are the runs of letters,
-- lower-cased, so raw, cleaned (no 'a') and decoded captions parse alike.
function M.parse(caption)
  if type(caption) ~= 'string' then error('semantic.parse: caption must be a string', 2) end
  local words = {}
  for w in caption:lower():gmatch('%a+') do
    if not MARKER[w] then words[#words + 1] = w end
  end
  local mentions, counts = {}, {}
  local colour, count = nil, nil          -- the pending noun phrase
  local function emit(shape)
    for _ = 1, count or 1 do mentions[#mentions + 1] = {colour = colour, shape = shape} end
    colour, count = nil, nil
  end
  local i = 1
  while i <= #words do
    local w = words[i]
    if SHAPE[w] then
      emit(w)
    elseif COLOUR[w] then
      if colour then emit(nil) end         -- "red blue circle": the red names no shape
      colour = w
    elseif COUNT[w] and words[i + 1] == 'shapes' then
      if colour then emit(nil) end
      counts[#counts + 1] = COUNT[w]
      count = nil
      i = i + 1
    elseif COUNT[w] then
      if colour then emit(nil) end
      count = COUNT[w]
    elseif not SIZE[w] then                -- any other word ends the phrase
      if colour then emit(nil) end
      count = nil
    end
    i = i + 1
  end
  if colour then emit(nil) end
  return {mentions = mentions, counts = counts}
end

local function fits(m, o)
  return (m.colour == nil or m.colour == o.colour) and (m.shape == nil or m.shape == o.shape)
end

-- judge(caption, objects) -> {mentions =, true_mentions =, objects =, named =, counts_true =,
-- entirely_true =, complete =}. objects: the scene's list of {colour =, shape =, ...}.
-- Mentions are matched to distinct objects (in the generator's captions every mention is a
-- different object: lists, relations and position sentences never name one twice), by a
-- maximum bipartite matching that matches the mentions naming colour and shape first.
-- true_mentions: mentions matched; named: objects matched by a mention naming both their
-- colour and shape; entirely_true: at least one mention, every mention matched and every
-- count claim equal to the number of objects; complete: entirely true and every object named.
function M.judge(caption, objects)
  if type(objects) ~= 'table' then error('semantic.judge: objects must be a list', 2) end
  local p = M.parse(caption)
  local ms = p.mentions
  local owner = {}                         -- object index -> mention index
  local function augment(mi, seen)
    for oi, o in ipairs(objects) do
      if not seen[oi] and fits(ms[mi], o) then
        seen[oi] = true
        if not owner[oi] or augment(owner[oi], seen) then owner[oi] = mi; return true end
      end
    end
    return false
  end
  local matched = 0
  for pass = 1, 2 do
    for mi, m in ipairs(ms) do
      local full = m.colour ~= nil and m.shape ~= nil
      if (pass == 1) == full and augment(mi, {}) then matched = matched + 1 end
    end
  end
  local named = 0
  for oi in pairs(owner) do
    local m = ms[owner[oi]]
    if m.colour and m.shape then named = named + 1 end
  end
  local counts_true = true
  for _, n in ipairs(p.counts) do if n ~= #objects then counts_true = false end end
  local entirely = #ms > 0 and matched == #ms and counts_true
  return {mentions = #ms, true_mentions = matched, objects = #objects, named = named,
          counts_true = counts_true, entirely_true = entirely,
          complete = entirely and named == #objects}
end

-- scenes(path) -> id -> list of objects, from a shapes.json | nil, message.
function M.scenes(path)
  local doc, err = shapes.load(path)
  if not doc then return nil, err end
  if doc.format ~= 'luacap.shapes' or type(doc.images) ~= 'table' then
    return nil, path .. ': not a luacap shapes.json (format ' .. tostring(doc.format) .. ')'
  end
  local out = {}
  for _, rec in ipairs(doc.images) do out[rec.id] = rec.shapes end
  return out
end

-- score(scenes, ids, captions) -> {precision =, recall =, entirely_true =, complete =,
-- images =, mentions =, objects =}. captions[i] is the caption of image ids[i]; precision is
-- true mentions / mentions over all images, recall named objects / objects, entirely_true
-- and complete shares of images. Raises when an id has no scene (a programmer mistake).
function M.score(scenes, ids, captions)
  local n_m, n_t, n_o, n_named, n_true, n_complete = 0, 0, 0, 0, 0, 0
  for i, id in ipairs(ids) do
    local objs = scenes[id]
    if not objs then error('semantic.score: no scene for image ' .. tostring(id), 2) end
    local j = M.judge(captions[i] or '', objs)
    n_m, n_t = n_m + j.mentions, n_t + j.true_mentions
    n_o, n_named = n_o + j.objects, n_named + j.named
    if j.entirely_true then n_true = n_true + 1 end
    if j.complete then n_complete = n_complete + 1 end
  end
  local n = #ids
  return {precision = n_m > 0 and n_t / n_m or 0, recall = n_o > 0 and n_named / n_o or 0,
          entirely_true = n > 0 and n_true / n or 0, complete = n > 0 and n_complete / n or 0,
          images = n, mentions = n_m, objects = n_o}
end

return M
