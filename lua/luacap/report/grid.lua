-- luacap.report.grid: images with their captions drawn under them (the notebook's
-- qualitative-results figure, two columns of `Pred: ...` / `GT: ...`), and word wrapping.
-- Not a layout engine: fixed cells, one font (DejaVu Sans), left-aligned wrapped lines.
local core = require 'luacap.core'

local M = {}

local function is_tensor(x)
  return type(x) == 'userdata' and getmetatable(x) == core.Tensor
end

-- A 1 x 1 canvas kept for measuring text outside any figure.
local measurer
local function measuring_canvas(font_size)
  if not measurer or measurer:isfreed() then measurer = assert(core.canvas(1, 1)) end
  measurer:font(font_size)
  return measurer
end

-- Width in pixels of text s at font_size (DejaVu Sans).
function M.text_width(s, font_size)
  return (measuring_canvas(font_size or 16):measure(s))
end

-- UTF-8 characters of s (invalid bytes count as one character each).
local function utf8_chars(s)
  local out = {}
  for ch in s:gmatch('[%z\1-\127\194-\244][\128-\191]*') do out[#out + 1] = ch end
  if #out == 0 and #s > 0 then for i = 1, #s do out[i] = s:sub(i, i) end end
  return out
end

-- Breaks one word wider than max_width into pieces that fit (at least one char each).
-- It starts on the current line (prefix) so that a long token does not leave a gap.
local function split_word(cv, prefix, word, max_width, lines)
  local piece = prefix
  for _, ch in ipairs(utf8_chars(word)) do
    if piece ~= '' and cv:measure(piece .. ch) > max_width then
      lines[#lines + 1] = piece
      piece = ch
    else
      piece = piece .. ch
    end
  end
  return piece
end

-- wrap_on(canvas, text, max_width) -> lines: greedy word wrap with the canvas' current
-- font; every line measures at most max_width unless a single character is wider.
function M.wrap_on(cv, text, max_width)
  local lines, line = {}, ''
  for word in tostring(text):gmatch('%S+') do
    local candidate = line == '' and word or line .. ' ' .. word
    if cv:measure(candidate) <= max_width then
      line = candidate
    else
      if cv:measure(word) <= max_width then
        if line ~= '' then lines[#lines + 1] = line end
        line = word
      else
        line = split_word(cv, line == '' and '' or line .. ' ', word, max_width, lines)
      end
    end
  end
  if line ~= '' or #lines == 0 then lines[#lines + 1] = line end
  return lines
end

-- wrap(text, max_width[, font_size]) -> lines, measured in DejaVu Sans at font_size (16).
function M.wrap(text, max_width, font_size)
  return M.wrap_on(measuring_canvas(font_size or 16), text, max_width)
end

-- load_image(x) -> (H, W, 3) tensor | nil, msg: x is a tensor or a file path (JPEG or PNG
-- through luacap.image when present, else PNG through cairo).
function M.load_image(x)
  if is_tensor(x) then
    if x:isfreed() then return nil, 'image tensor was freed' end
    local d = x:dim()
    if not ((d == 3 and (x:size(3) == 3 or x:size(3) == 1)) or d == 2)
        or x:size(1) < 1 or x:size(2) < 1 then
      local shape = table.concat(x:size(), ', ')
      return nil, 'image has shape (' .. shape .. '), expected (H, W, 3)'
    end
    return x
  end
  if type(x) ~= 'string' then return nil, 'image must be a tensor or a path, got ' .. type(x) end
  local ok, image = pcall(require, 'luacap.image')
  if ok and type(image) == 'table' and image.load then return image.load(x) end
  local cv, err = core.canvas_load_png(x)
  if not cv then return nil, err end
  local img = cv:pixels()
  cv:free()
  return img
end

local TEXT = {0.08, 0.08, 0.08}
local GT = {0.15, 0.35, 0.15}

-- Draws img fitted (aspect kept, centred) into the box, or a grey placeholder with the
-- reason when it could not be loaded.
local function draw_fitted(cv, img, why, x, y, w, h, font_size)
  if img then
    local ih, iw = img:size(1), img:size(2)
    local k = math.min(w / iw, h / ih)
    local dw, dh = iw * k, ih * k
    local ok, err = cv:image(img, x + (w - dw) / 2, y + (h - dh) / 2, dw, dh)
    if ok then return end
    why = err
  end
  cv:color(0.9, 0.9, 0.9)
  cv:rect(x, y, w, h, true)
  cv:color(0.35, 0.35, 0.35)
  cv:font(font_size)
  local lines = M.wrap_on(cv, 'image unavailable: ' .. tostring(why), w - 20)
  local _, asc, desc = cv:measure('Ag')
  for i, line in ipairs(lines) do
    cv:text(x + 10, y + 10 + asc + (i - 1) * (asc + desc) * 1.2, line)
  end
end

-- Lays out the cells: each is an image box plus wrapped text blocks; rows take the height
-- of their tallest text. Returns the figure height and each cell's position and lines.
local function layout(cells, cols, cell_w, img_h, pad, font_size)
  local cv = measuring_canvas(font_size)
  local _, asc, desc = cv:measure('Ag')
  local line_h = math.ceil((asc + desc) * 1.25)
  local text_w = cell_w - 2 * pad
  local y = 0
  for r = 1, math.ceil(#cells / cols) do
    local max_lines = 0
    for c = 1, cols do
      local cell = cells[(r - 1) * cols + c]
      if cell then
        cell.lines = {}
        for _, block in ipairs(cell.texts) do
          for _, line in ipairs(M.wrap_on(cv, block[1], text_w)) do
            cell.lines[#cell.lines + 1] = {line, block[2]}
          end
        end
        max_lines = math.max(max_lines, #cell.lines)
        cell.x, cell.y = (c - 1) * cell_w, y
      end
    end
    y = y + pad + img_h + math.floor(pad / 2) + max_lines * line_h + pad
  end
  return y, asc, line_h
end

local function render(path, cells, cols, cell_w, img_h, pad, font_size)
  local H, asc, line_h = layout(cells, cols, cell_w, img_h, pad, font_size)
  local W = cols * cell_w
  if H > 32767 or W > 32767 then
    return nil, string.format('figure of %d x %d pixels is too large; draw fewer items', W, H)
  end
  local cv, err = core.canvas(W, H)
  if not cv then return nil, err end
  for _, cell in ipairs(cells) do
    draw_fitted(cv, cell.img, cell.why, cell.x + pad, cell.y + pad, cell_w - 2 * pad, img_h,
      font_size)
    cv:font(font_size)
    local ty = cell.y + pad + img_h + math.floor(pad / 2) + asc
    for i, l in ipairs(cell.lines) do
      local rgb = l[2]
      cv:color(rgb[1], rgb[2], rgb[3])
      cv:text(cell.x + pad, ty + (i - 1) * line_h, l[1])
    end
  end
  -- atomically: a temporary PNG in the same folder, synced, renamed over path
  local ok, werr = require('luacap.util').write_via(path, function(tmp) return cv:write_png(tmp) end)
  cv:free()
  if not ok then return nil, werr end
  return true
end

-- caption_grid(path, items[, opts]) -> true | nil, msg. items: list of {image = tensor or
-- path, pred = 'caption', gt = 'caption'}. opts: cols (2), cell_width (600 px),
-- image_height (420 px), font_size (18), padding (20). An image that cannot be loaded is
-- drawn as a grey box with the reason; the other cells are still drawn.
function M.caption_grid(path, items, opts)
  opts = opts or {}
  if type(items) ~= 'table' or #items == 0 then
    return nil, 'caption_grid: items must be a non-empty list'
  end
  local cells = {}
  for i, item in ipairs(items) do
    if type(item) ~= 'table' then item = {} end
    local img, why = M.load_image(item.image)
    cells[i] = {
      img = img, why = why,
      texts = {{'Pred: ' .. tostring(item.pred or ''), TEXT},
               {'GT: ' .. tostring(item.gt or ''), GT}},
    }
  end
  local ok, err = render(path, cells, math.max(1, math.floor(opts.cols or 2)),
    math.floor(opts.cell_width or 600), math.floor(opts.image_height or 420),
    opts.padding or 20, opts.font_size or 18)
  if not ok then return nil, 'caption_grid: ' .. err end
  return true
end

-- panel_grid(path, items[, opts]) -> true | nil, msg: images side by side in rows, one text
-- line (wrapped) under each. items: list of {image = tensor or path, text = 'word'}. opts:
-- cols (6), cell_width (200 px), image_height (cell's width less padding), font_size (16),
-- padding (8). The attention figures (report/attention.lua) are drawn with it.
function M.panel_grid(path, items, opts)
  opts = opts or {}
  if type(items) ~= 'table' or #items == 0 then
    return nil, 'panel_grid: items must be a non-empty list'
  end
  local cells = {}
  for i, item in ipairs(items) do
    local img, why = M.load_image(item.image)
    cells[i] = {img = img, why = why, texts = {{tostring(item.text or ''), TEXT}}}
  end
  local pad = opts.padding or 8
  local cell_w = math.floor(opts.cell_width or 200)
  local ok, err = render(path, cells, math.max(1, math.floor(opts.cols or 6)), cell_w,
    math.floor(opts.image_height or (cell_w - 2 * pad)), pad, opts.font_size or 16)
  if not ok then return nil, 'panel_grid: ' .. err end
  return true
end

-- captioned_image(path, img, caption[, opts]) -> true | nil, msg: one image (tensor or
-- path) with its caption wrapped under it. opts: width (the image's, within 360..1024),
-- font_size (20), padding (16).
function M.captioned_image(path, img, caption, opts)
  opts = opts or {}
  local loaded, why = M.load_image(img)
  local pad = opts.padding or 16
  local W = opts.width
  local img_h
  if loaded then
    local ih, iw = loaded:size(1), loaded:size(2)
    W = W or math.min(1024, math.max(360, iw + 2 * pad))
    img_h = math.floor((W - 2 * pad) * ih / iw + 0.5)
  else
    W = W or 480
    img_h = math.floor((W - 2 * pad) * 0.75)
  end
  local cells = {{img = loaded, why = why, texts = {{tostring(caption or ''), TEXT}}}}
  local ok, err = render(path, cells, 1, math.floor(W), math.max(1, img_h), pad,
    opts.font_size or 20)
  if not ok then return nil, 'captioned_image: ' .. err end
  return true
end

return M
