-- luacap.report.html: one offline results page, dir/index.html, with the metrics table,
-- the loss curve and every test image beside its predicted and reference captions.
-- Not a web app: no external resources, no JavaScript beyond an image-load self-check.
local core = require 'luacap.core'
local grid = require 'luacap.report.grid'
local plot = require 'luacap.report.plot'
local util = require 'luacap.util'

local M = {}

local ESC = {['&'] = '&amp;', ['<'] = '&lt;', ['>'] = '&gt;', ['"'] = '&quot;', ["'"] = '&#39;'}

-- escape(s): text safe inside HTML elements and quoted attributes.
function M.escape(s)
  return (tostring(s):gsub('[&<>"\']', ESC))
end


-- A file name made of the id: letters, digits, '-', '_' and '.' (not leading).
local function safe_name(id, i)
  local s = tostring(id or ''):gsub('[^%w%-_%.]', '_'):gsub('%.%.+', '_'):gsub('^%.', '_')
  if s == '' then s = 'item' .. i end
  return s:sub(1, 100)
end

-- Every file of the page is written atomically (util.write_file: temporary, fsync, rename).
local function write_all(path, data) return util.write_file(path, data) end

-- Writes img (tensor) as a PNG of at most `max_side` pixels on its long side.
local function write_thumbnail(path, img, max_side)
  local ih, iw = img:size(1), img:size(2)
  local k = math.min(1, max_side / math.max(ih, iw))
  local w, h = math.max(1, math.floor(iw * k + 0.5)), math.max(1, math.floor(ih * k + 0.5))
  local cv, err = core.canvas(w, h)
  if not cv then return nil, err end
  local ok, ierr = cv:image(img, 0, 0, w, h)
  if ok then ok, ierr = util.write_via(path, function(tmp) return cv:write_png(tmp) end) end
  cv:free()
  return ok, ierr
end

-- Puts item i's image into dir/images/: a JPEG or PNG file is copied byte for byte, a
-- tensor becomes a PNG thumbnail. Returns the relative path, or nil, reason.
local function place_image(dir, name, image, max_side)
  if type(image) == 'string' then
    local ext = image:lower():match('%.(jpe?g)$') or image:lower():match('%.(png)$')
    if ext then
      local data, err = util.read_file(image)
      if not data then return nil, err end
      local rel = 'images/' .. name .. '.' .. ext
      local ok, werr = write_all(dir .. '/' .. rel, data)
      if not ok then return nil, werr end
      return rel
    end
  end
  local img, err = grid.load_image(image)
  if not img then return nil, err end
  local rel = 'images/' .. name .. '.png'
  local ok, werr = write_thumbnail(dir .. '/' .. rel, img, max_side)
  if not ok then return nil, werr end
  return rel
end

local METRIC_ORDER = {'BLEU-1', 'BLEU-2', 'BLEU-3', 'BLEU-4', 'METEOR', 'ROUGE-L', 'CIDEr'}

-- Metrics as ordered {name, value} pairs: from a list of pairs / {name=, value=}, or
-- from a map (known names first, then the rest sorted).
local function metric_rows(metrics)
  local rows = {}
  if type(metrics) ~= 'table' then return rows end
  if #metrics > 0 then
    for _, m in ipairs(metrics) do
      if type(m) == 'table' then rows[#rows + 1] = {m.name or m[1], m.value or m[2]} end
    end
    return rows
  end
  local seen = {}
  for _, k in ipairs(METRIC_ORDER) do
    if metrics[k] ~= nil then rows[#rows + 1] = {k, metrics[k]}; seen[k] = true end
  end
  local rest = {}
  for k in pairs(metrics) do if not seen[k] then rest[#rest + 1] = tostring(k) end end
  table.sort(rest)
  for _, k in ipairs(rest) do rows[#rows + 1] = {k, metrics[k]} end
  return rows
end

local function fmt_value(v)
  if type(v) == 'number' then
    if v == math.floor(v) and math.abs(v) < 1e15 then return string.format('%d', v) end
    return string.format('%.4f', v)
  end
  return tostring(v)
end

-- Caption text without the model's startseq / endseq markers.
local function clean(c)
  return (tostring(c or ''):gsub('^%s*startseq%s+', ''):gsub('%s+endseq%s*$', ''))
end

local CSS = [[
body { font-family: "DejaVu Sans", sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 1.6em; }
table.metrics { border-collapse: collapse; }
table.metrics td, table.metrics th { border: 1px solid #ccc; padding: 0.3em 0.9em; text-align: left; }
table.metrics td.value { text-align: right; font-variant-numeric: tabular-nums; }
img.curve { max-width: 100%; border: 1px solid #ddd; }
.items { display: grid; grid-template-columns: repeat(auto-fill, minmax(320px, 1fr)); gap: 1.2em; }
figure.item { margin: 0; border: 1px solid #ddd; padding: 0.6em; }
figure.item img { width: 100%; height: auto; display: block; margin: 0 auto; }
figure.item img.attention { margin-top: 0.4em; border-top: 1px solid #eee; }
figcaption .id { color: #888; font-size: 0.8em; }
figcaption .pred { font-weight: bold; margin: 0.4em 0; }
figcaption ul.refs { margin: 0.2em 0; padding-left: 1.2em; color: #2a5a2a; font-size: 0.92em; }
.missing { color: #a33; font-style: italic; }
]]

-- Records in #img-check whether every <img> decoded (naturalWidth > 0), for headless checks.
local CHECK_JS = [[
window.addEventListener('load', function () {
  var imgs = document.images, ok = 0, broken = [];
  for (var i = 0; i < imgs.length; i++) {
    if (imgs[i].complete && imgs[i].naturalWidth > 0) ok++;
    else broken.push(imgs[i].getAttribute('src'));
  }
  var el = document.getElementById('img-check');
  el.setAttribute('data-total', String(imgs.length));
  el.setAttribute('data-loaded', String(ok));
  el.setAttribute('data-broken', broken.join(' '));
  el.textContent = ok + ' of ' + imgs.length + ' images loaded';
});
]]

-- html(dir, data) -> true | nil, msg. data: title, metrics ({['BLEU-1'] = 0.5, ...} or a
-- list of {name, value}), history (drawn to dir/loss_curve.png) or loss_curve (a PNG path,
-- copied), items (list of {id =, image = tensor or path, pred = 'caption', refs = {...}
-- or gt = 'caption', attention = PNG path or tensor of the word-by-word attention figure,
-- optional}), thumbnail (long side of tensor images, 512). Writes dir/index.html
-- and dir/images/; every path in the page is relative, so the folder can be moved.
function M.html(dir, data)
  if type(data) ~= 'table' then return nil, 'html: data must be a table' end
  local ok, err = core.mkdir_p(dir .. '/images')
  if not ok then return nil, 'html: ' .. err end
  local out = {}
  local function w(...) for i = 1, select('#', ...) do out[#out + 1] = select(i, ...) end end
  local E = M.escape
  local title = data.title or 'luacap results'

  w('<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>', E(title),
    '</title>\n<style>\n', CSS, '</style>\n</head>\n<body>\n<h1>', E(title), '</h1>\n')

  local rows = metric_rows(data.metrics)
  if #rows > 0 then
    w('<h2>Metrics</h2>\n<table class="metrics">\n<tr><th>metric</th><th>value</th></tr>\n')
    for _, r in ipairs(rows) do
      w('<tr><td>', E(r[1]), '</td><td class="value">', E(fmt_value(r[2])), '</td></tr>\n')
    end
    w('</table>\n')
  end

  -- The loss curve: drawn here from a history, or copied from a PNG file.
  local curve, curve_err
  if type(data.history) == 'table' then
    curve, curve_err = plot.loss_curve(dir .. '/loss_curve.png', data.history)
  elseif type(data.loss_curve) == 'string' then
    local bytes, rerr = util.read_file(data.loss_curve)
    if bytes then curve, curve_err = write_all(dir .. '/loss_curve.png', bytes)
    else curve_err = rerr end
  end
  if curve then
    w('<h2>Training</h2>\n<img class="curve" src="loss_curve.png" alt="Training vs Validation Loss">\n')
  elseif curve_err then
    w('<h2>Training</h2>\n<p class="missing">loss curve unavailable: ', E(curve_err), '</p>\n')
  end

  local items = type(data.items) == 'table' and data.items or {}
  local used = {}
  w('<h2>Test images (', #items, ')</h2>\n<div class="items">\n')
  for i, item in ipairs(items) do
    if type(item) ~= 'table' then item = {} end
    local name = safe_name(item.id, i)
    if used[name] then name = name .. '_' .. i end
    used[name] = true
    local rel, why = place_image(dir, name, item.image, data.thumbnail or 512)
    w('<figure class="item" id="item-', E(name), '">\n')
    if rel then
      w('<img src="', E(rel), '" alt="', E(clean(item.pred)), '" loading="eager">\n')
    else
      w('<p class="missing">image unavailable: ', E(why), '</p>\n')
    end
    if item.attention then   -- where a spatial-attention model looked, word by word
      local arel, awhy = place_image(dir, name .. '_attention', item.attention, data.thumbnail or 512)
      if arel then
        w('<img class="attention" src="', E(arel), '" alt="attention for each word" loading="eager">\n')
      else
        w('<p class="missing">attention map unavailable: ', E(awhy), '</p>\n')
      end
    end
    w('<figcaption>\n')
    if item.id ~= nil then w('<div class="id">', E(item.id), '</div>\n') end
    w('<p class="pred">Predicted: ', E(clean(item.pred)), '</p>\n')
    local refs = item.refs
    if type(refs) ~= 'table' then refs = item.gt ~= nil and {item.gt} or {} end
    if #refs > 0 then
      w('<ul class="refs">\n')
      for _, r in ipairs(refs) do w('<li>', E(clean(r)), '</li>\n') end
      w('</ul>\n')
    end
    w('</figcaption>\n</figure>\n')
  end
  w('</div>\n<div id="img-check" hidden></div>\n<script>\n', CHECK_JS, '</script>\n</body>\n</html>\n')

  local wok, werr = write_all(dir .. '/index.html', table.concat(out))
  if not wok then return nil, 'html: ' .. tostring(werr) end
  return true
end

return M
