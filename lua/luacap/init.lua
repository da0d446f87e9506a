-- luacap: image captioning with C kernels and Lua workflow.
-- The public entry: `local luacap = require 'luacap'`. Tensor constructors live here;
-- families load on first use (luacap.image, luacap.h5, luacap.data, luacap.nn, ...).
-- LuaJIT's default path has ./?.lua but not ./?/init.lua: when luacap was found through
-- a path entry P/?.lua (the repository root's luacap.lua link, or lua/?.lua), make its
-- families (luacap.nn, luacap.data, ...) findable as P/?/init.lua too.
do
  local src = debug.getinfo(1, 'S').source:match('^@(.*)$') or ''
  local base = src:match('^(.-)luacap%.lua$') or src:match('^(.-)luacap/init%.lua$')
  if base then
    local entry = (base == '' and './' or base) .. '?/init.lua'
    if not package.path:find(entry, 1, true) then package.path = package.path .. ';' .. entry end
  end
end

-- Before OpenBLAS loads (with core): its kernel family where it would pick a generic one.
require('luacap.blas_env').apply_here()
local core = require 'luacap.core'
local tensor = require 'luacap.tensor'

local luacap = {
  core = core,
  Tensor = core.Tensor,
  _VERSION = '0.1.0',
}

for k, v in pairs(tensor) do luacap[k] = v end

-- luacap.seed(n): the one random generator (C-side xoshiro256**), used by every
-- initialiser, dropout mask, shuffle and synthetic image.
luacap.seed = core.seed
luacap.random = core.random
luacap.set_threads = core.set_threads
luacap.get_threads = core.get_threads

-- luacap.limits() -> {image_pixels =, dataset_bytes =, line_bytes =, json_bytes =}: what
-- an input may make luacap allocate (docs/robustness.md); luacap.set_limits{...} changes
-- any of them and returns the previous values.
function luacap.limits()
  local px, db = core.limits()
  local ul = require('luacap.util').limits
  return {image_pixels = px, dataset_bytes = db, line_bytes = ul.line_bytes, json_bytes = ul.json_bytes}
end
function luacap.set_limits(t)
  if type(t) ~= 'table' then error('set_limits: expected a table of limits', 2) end
  local old = luacap.limits()
  for k, v in pairs(t) do
    if old[k] == nil then
      error("set_limits: unknown limit '" .. tostring(k) ..
        "' (image_pixels, dataset_bytes, line_bytes, json_bytes)", 2)
    end
    if type(v) ~= 'number' or v ~= v or v < 1 or v ~= math.floor(v) then
      error(string.format('set_limits: %s must be a whole number >= 1, got %s', k, tostring(v)), 2)
    end
  end
  core.limits(t.image_pixels, t.dataset_bytes)
  local ul = require('luacap.util').limits
  if t.line_bytes then ul.line_bytes = t.line_bytes end
  if t.json_bytes then ul.json_bytes = t.json_bytes end
  return old
end

-- luacap.load(path) -> a captioner (model, encoder, tokenizer) ready to caption images;
-- luacap.caption(captioner, 'img.jpg') -> the caption string (or nil, message).
function luacap.load(path) return require('luacap.captioner').load(path) end
function luacap.caption(c, images, opts)
  if type(c) ~= 'table' or not c.caption then
    error('caption: expected a captioner from luacap.load(path) as the first argument', 2)
  end
  return c:caption(images, opts)
end

-- Families load lazily so that `require 'luacap'` stays fast and a missing optional
-- part (cairo for plots) does not stop the rest.
local lazy = {
  image = 'luacap.image', h5 = 'luacap.h5', data = 'luacap.data', nn = 'luacap.nn',
  models = 'luacap.models', encoders = 'luacap.encoders', features = 'luacap.features',
  train = 'luacap.train', eval = 'luacap.eval', report = 'luacap.report', util = 'luacap.util',
  optim = 'luacap.optim', metrics = 'luacap.eval.metrics', checkpoint = 'luacap.train.checkpoint',
}
setmetatable(luacap, {
  __index = function(t, k)
    local name = lazy[k]
    if not name then return nil end
    local mod = require(name)
    rawset(t, k, mod)
    return mod
  end,
})

return luacap
