-- luacap.report.attention: where a spatial-attention model (sat) looked for each word of a
-- caption, drawn over the image. The model attends over L = S x S regions of its encoder's
-- last conv map (row-major, region 1 top left); each word's map is upsampled to the image
-- (bilinear, image.resize) and scaled to its largest weight, and the image is dimmed where
-- the map is low: out = img * (FLOOR + (1 - FLOOR) * map / max(map)). Not a heat-map
-- renderer: one overlay rule, panels drawn by report.grid.panel_grid.
local T = require 'luacap.tensor'
local core = require 'luacap.core'
local image = require 'luacap.image'
local grid = require 'luacap.report.grid'

local M = {}

-- What an unattended pixel keeps of its brightness.
M.FLOOR = 0.25

-- The side S of a square grid of L regions, or nil and a message.
local function side_of(L)
  local s = math.floor(math.sqrt(L) + 0.5)
  if s * s ~= L then return nil, string.format('%d attention regions are not a square grid', L) end
  return s
end

-- overlay(img, alpha) -> (H, W, 3) tensor | nil, msg. img (H, W, 3) RGB 0..255; alpha: L
-- weights (a Lua list or a tensor of L values) over the S x S regions.
function M.overlay(img, alpha)
  if not T.is_tensor(img) or img:dim() ~= 3 or img:size(3) ~= 3 then
    return nil, 'attention.overlay: the image must be an (H, W, 3) tensor'
  end
  local a = T.is_tensor(alpha) and alpha:flat() or alpha
  local L = #a
  local s, err = side_of(L)
  if not s then return nil, 'attention.overlay: ' .. err end
  local H, W = img:size(1), img:size(2)
  local m = image.resize(core.from_flat(a, {s, s, 1}), H, W, 'bilinear'):flat()
  local top = 0
  for i = 1, #m do if m[i] > top then top = m[i] end end
  local px, out = img:flat(), {}
  local floor = M.FLOOR
  for i = 1, H * W do
    local k = floor + (1 - floor) * (top > 0 and math.max(m[i], 0) / top or 1)
    local o = (i - 1) * 3
    out[o + 1], out[o + 2], out[o + 3] = px[o + 1] * k, px[o + 2] * k, px[o + 3] * k
  end
  return core.from_flat(out, {H, W, 3})
end

-- figure(path, img, words, alphas[, opts]) -> true | nil, msg: a PNG with the image first
-- (its caption under it), then one panel per word, the image under that word's map.
-- img: a tensor or an image path; words: the caption's words; alphas[t]: word t's L
-- weights. opts: cols (6), cell_width (200), font_size (16).
function M.figure(path, img, words, alphas, opts)
  opts = opts or {}
  local loaded, why = grid.load_image(img)
  if not loaded then return nil, 'attention.figure: ' .. tostring(why) end
  if loaded:dim() == 2 or loaded:size(3) == 1 then   -- grey: three equal channels
    local H, W = loaded:size(1), loaded:size(2)
    local g, rgb = loaded:flat(), {}
    for i = 1, H * W do rgb[3 * i - 2], rgb[3 * i - 1], rgb[3 * i] = g[i], g[i], g[i] end
    loaded = core.from_flat(rgb, {H, W, 3})
  end
  if #words ~= #alphas then
    return nil, string.format('attention.figure: %d words but %d attention maps', #words, #alphas)
  end
  local items = {{image = loaded, text = table.concat(words, ' ')}}
  for t, w in ipairs(words) do
    local o, err = M.overlay(loaded, alphas[t])
    if not o then return nil, err end
    items[#items + 1] = {image = o, text = w}
  end
  local ok, err = grid.panel_grid(path, items, {cols = opts.cols or 6,
    cell_width = opts.cell_width or 200, font_size = opts.font_size or 16})
  if not ok then return nil, 'attention.figure: ' .. tostring(err) end
  return true
end

return M
