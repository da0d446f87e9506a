-- luacap.report.plot: the training-vs-validation loss figure (the notebook's matplotlib
-- plot) drawn on a cairo canvas, with learning-rate reductions and the best epoch marked.
-- Not a plotting library: one figure kind, axes computed here, pixels drawn by core.canvas.
local core = require 'luacap.core'

local M = {}

-- matplotlib's default colour cycle (tab:blue, tab:orange, ...).
M.colors = {
  train = {0x1f / 255, 0x77 / 255, 0xb4 / 255},
  val = {0xff / 255, 0x7f / 255, 0x0e / 255},
  lr = {0x2c / 255, 0xa0 / 255, 0x2c / 255},
  best = {0xd6 / 255, 0x27 / 255, 0x28 / 255},
  text = {0.1, 0.1, 0.1},
  grid = {0.5, 0.5, 0.5},
}

local function finite(v)
  return type(v) == 'number' and v == v and v ~= math.huge and v ~= -math.huge
end
M.finite = finite

-- nice_ticks(lo, hi[, target[, integer]]) -> ticks, step: round values (1, 2 or 5 times
-- a power of ten) inside [lo, hi], about `target` of them. integer: steps of at least 1.
function M.nice_ticks(lo, hi, target, integer)
  target = target or 6
  if not (finite(lo) and finite(hi)) or hi < lo then return {}, 1 end
  local span = hi - lo
  if span == 0 then span = math.abs(lo) > 0 and math.abs(lo) or 1 end
  local raw = span / target
  local mag = 10 ^ math.floor(math.log10(raw))
  local norm = raw / mag
  local step = (norm < 1.5 and 1 or norm < 3 and 2 or norm < 7 and 5 or 10) * mag
  if integer and step < 1 then step = 1 end
  local ticks = {}
  -- Count in integers k so that k * step carries no accumulated rounding.
  local eps = 1e-9
  for k = math.ceil(lo / step - eps), math.floor(hi / step + eps) do ticks[#ticks + 1] = k * step end
  return ticks, step
end

-- The label of tick v for a given step: as many decimals as the step needs.
function M.tick_label(v, step)
  local d = math.max(0, math.ceil(-math.log10(step) - 1e-9))
  local s = string.format('%.' .. string.format('%d', d) .. 'f', v)
  if s:match('^%-0%.?0*$') then s = s:sub(2) end   -- no "-0.00"
  return s
end

-- Finite min and max over several lists (nil when none is finite).
local function range_of(lists)
  local lo, hi
  for _, list in ipairs(lists) do
    for i = 1, #list do
      local v = list[i]
      if finite(v) then
        if lo == nil or v < lo then lo = v end
        if hi == nil or v > hi then hi = v end
      end
    end
  end
  return lo, hi
end

-- A numeric list out of a history field: anything else counts as missing.
local function as_list(v)
  if type(v) ~= 'table' then return {}, 0 end
  local out, n = {}, 0
  for k in pairs(v) do
    if type(k) == 'number' and k >= 1 and k == math.floor(k) and k > n then n = k end
  end
  for i = 1, n do out[i] = tonumber(v[i]) end   -- nil holes stay nil (skipped)
  return out, n
end

-- Epoch of the smallest finite value (first one on ties), and the value.
function M.best_epoch(list)
  local best, at
  for i = 1, #list do
    local v = list[i]
    if finite(v) and (best == nil or v < best) then best, at = v, i end
  end
  return at, best
end

-- Epochs e (>= 2) whose learning rate is below the one of epoch e - 1.
function M.lr_drops(lr)
  local out = {}
  for e = 2, #lr do
    if finite(lr[e]) and finite(lr[e - 1]) and lr[e] < lr[e - 1] then out[#out + 1] = e end
  end
  return out
end

local function text_center(cv, x, y, s)
  local w = cv:measure(s)
  cv:text(x - w / 2, y, s)
end

local function set(cv, rgb, a) cv:color(rgb[1], rgb[2], rgb[3], a or 1) end

-- A five-pointed star of outer radius r centred on (x, y).
local function star(cv, x, y, r)
  local pts = {}
  for k = 0, 9 do
    local rad = (k % 2 == 0) and r or r * 0.42
    local a = -math.pi / 2 + k * math.pi / 5
    pts[#pts + 1] = x + rad * math.cos(a)
    pts[#pts + 1] = y + rad * math.sin(a)
  end
  cv:polyline(pts, true)
end

-- Draws one series: polylines through consecutive finite points (a NaN or missing value
-- breaks the line, as in matplotlib), a dot for a point with no finite neighbour.
local function draw_series(cv, list, n, px, py, rgb, lw)
  set(cv, rgb)
  cv:line_width(lw)
  cv:dash()
  local seg = {}
  local function flush()
    if #seg >= 4 then cv:polyline(seg)
    elseif #seg == 2 then cv:circle(seg[1], seg[2], lw * 1.6, true) end
    seg = {}
  end
  for e = 1, n do
    local v = list[e]
    if finite(v) then
      seg[#seg + 1] = px(e)
      seg[#seg + 1] = py(v)
    else
      flush()
    end
  end
  flush()
end

-- loss_curve(path, history[, opts]) -> true | nil, msg. history = {loss = {...},
-- val_loss = {...}, lr = {...}}, one value per epoch (epoch 1 first). opts: width (1200),
-- height (750), title, xlabel, ylabel. Non-finite values are skipped.
function M.loss_curve(path, history, opts)
  opts = opts or {}
  if type(history) ~= 'table' then return nil, 'loss_curve: history must be a table' end
  local W, H = math.floor(opts.width or 1200), math.floor(opts.height or 750)
  local s = math.min(W / 1200, H / 750)          -- scale of fonts and lines
  local loss, n_loss = as_list(history.loss)
  local val, n_val = as_list(history.val_loss)
  local lr = as_list(history.lr)
  local n = math.max(n_loss, n_val)

  local cv, err = core.canvas(W, H)
  if not cv then return nil, 'loss_curve: ' .. err end

  -- Data range, padded by 5% as matplotlib's default margins.
  local ylo, yhi = range_of({loss, val})
  local has_data = ylo ~= nil
  if not has_data then ylo, yhi = 0, 1 end
  if yhi - ylo < 1e-12 then
    local d = math.max(math.abs(ylo) * 0.1, 0.05)
    ylo, yhi = ylo - d, yhi + d
  else
    local pad = (yhi - ylo) * 0.05
    ylo, yhi = ylo - pad, yhi + pad
  end
  local xlo, xhi
  if n <= 1 then xlo, xhi = 0.5, 1.5
  else
    local pad = (n - 1) * 0.05
    xlo, xhi = 1 - pad, n + pad
  end
  local yticks, ystep = M.nice_ticks(ylo, yhi, 7)
  local xticks = M.nice_ticks(math.max(1, xlo), xhi, 10, true)

  -- Margins: room for the tick labels and axis labels.
  local f_title, f_label, f_tick, f_legend = 26 * s, 21 * s, 17 * s, 18 * s
  cv:font(f_tick)
  local ytick_w = 0
  for _, v in ipairs(yticks) do ytick_w = math.max(ytick_w, (cv:measure(M.tick_label(v, ystep)))) end
  local _, tick_asc = cv:measure('0')
  local left = math.floor(24 * s + f_label + 14 * s + ytick_w + 10 * s)
  local right = math.floor(30 * s)
  local top = math.floor(30 * s + f_title + 20 * s)
  local bottom = math.floor(10 * s + tick_asc + 16 * s + f_label + 22 * s)
  local pw, ph = W - left - right, H - top - bottom
  local function px(x) return left + (x - xlo) / (xhi - xlo) * pw end
  local function py(y) return top + ph - (y - ylo) / (yhi - ylo) * ph end

  -- Grid: light dashed lines at the ticks (plt.grid(True, linestyle='--', alpha=0.4)).
  set(cv, M.colors.grid, 0.4)
  cv:line_width(1 * s)
  cv:dash{6 * s, 4 * s}
  for _, v in ipairs(xticks) do
    local x = math.floor(px(v)) + 0.5
    cv:polyline{x, top, x, top + ph}
  end
  for _, v in ipairs(yticks) do
    local y = math.floor(py(v)) + 0.5
    cv:polyline{left, y, left + pw, y}
  end
  cv:dash()

  -- Legend geometry (drawn last, upper right inside the axes); lr labels keep out of it.
  local entries = {}
  if n_loss > 0 then entries[#entries + 1] = {'Train Loss', M.colors.train} end
  if n_val > 0 then entries[#entries + 1] = {'Val Loss', M.colors.val} end
  cv:font(f_legend)
  local tw = 0
  for _, e in ipairs(entries) do tw = math.max(tw, (cv:measure(e[1]))) end
  local _, lasc, ldesc = cv:measure('Ag')
  local line_h, swatch, lpad = (lasc + ldesc) * 1.25, 36 * s, 10 * s
  local bw, bh = lpad + swatch + 8 * s + tw + lpad, lpad * 2 + line_h * #entries
  local bx, by = left + pw - bw - 12 * s, top + 12 * s

  -- Learning-rate reductions: dotted vertical lines labelled 'lr ↓' along the top.
  local drops = M.lr_drops(lr)
  cv:font(math.max(15 * s, 10))
  local last_label_end = -math.huge
  for _, e in ipairs(drops) do
    local x = math.floor(px(e)) + 0.5
    set(cv, M.colors.lr, 0.9)
    cv:line_width(1.5 * s)
    cv:dash{2 * s, 4 * s}
    cv:polyline{x, top, x, top + ph}
    cv:dash()
    local label = 'lr ↓'
    local w, asc = cv:measure(label)
    -- Labels that would overlap the previous one are left off; the line stays.
    local lx, ly = x + 4 * s, top + asc + 4 * s
    local hits_legend = #entries > 0 and lx < bx + bw and lx + w > bx and ly > by
                        and ly - asc < by + bh
    if lx > last_label_end + 4 * s and lx + w < left + pw and not hits_legend then
      cv:text(lx, ly, label)
      last_label_end = lx + w
    end
  end

  -- The curves, clipped to the axes.
  cv:clip(left, top, pw, ph)
  draw_series(cv, loss, n_loss, px, py, M.colors.train, 2.5 * s)
  draw_series(cv, val, n_val, px, py, M.colors.val, 2.5 * s)
  cv:unclip()

  -- Best epoch: a star on the smallest validation loss, labelled 'best'.
  local best_e, best_v = M.best_epoch(val)
  if best_e then
    local x, y = px(best_e), py(best_v)
    set(cv, M.colors.best)
    star(cv, x, y, 11 * s)
    cv:font(16 * s, true)
    local label = string.format('best (epoch %d, %.4g)', best_e, best_v)
    local w, asc, desc = cv:measure(label)
    local tx = x + 12 * s
    if tx + w > left + pw - 4 * s then tx = x - 12 * s - w end   -- flip left at the edge
    local ty = y + 14 * s + asc
    if ty + desc > top + ph - 4 * s then ty = y - 14 * s end     -- above when at the bottom
    cv:text(tx, ty, label)
  end

  if not has_data then
    set(cv, M.colors.text)
    cv:font(f_label)
    text_center(cv, left + pw / 2, top + ph / 2, 'no finite loss values')
  end

  -- Axes frame and ticks.
  set(cv, M.colors.text)
  cv:line_width(1.2 * s)
  cv:rect(left + 0.5, top + 0.5, pw, ph)
  cv:font(f_tick)
  for _, v in ipairs(xticks) do
    local x = math.floor(px(v)) + 0.5
    cv:polyline{x, top + ph, x, top + ph + 6 * s}
    text_center(cv, x, top + ph + 8 * s + tick_asc, M.tick_label(v, 1))
  end
  for _, v in ipairs(yticks) do
    local y = math.floor(py(v)) + 0.5
    cv:polyline{left - 6 * s, y, left, y}
    local label = M.tick_label(v, ystep)
    local w = cv:measure(label)
    cv:text(left - 10 * s - w, y + tick_asc / 2, label)
  end

  -- Title and axis labels.
  cv:font(f_title)
  text_center(cv, left + pw / 2, 30 * s + f_title * 0.8, opts.title or 'Training vs Validation Loss')
  cv:font(f_label)
  text_center(cv, left + pw / 2, H - 22 * s, opts.xlabel or 'Epoch')
  local ylabel = opts.ylabel or 'Loss'
  local yw, yasc = cv:measure(ylabel)
  cv:text(24 * s + yasc, top + ph / 2 + yw / 2, ylabel, -math.pi / 2)

  -- Legend, upper right inside the axes.
  if #entries > 0 then
    cv:font(f_legend)
    local asc, desc, pad = lasc, ldesc, lpad
    cv:color(1, 1, 1, 0.85)
    cv:rect(bx, by, bw, bh, true)
    cv:color(0.8, 0.8, 0.8)
    cv:line_width(1 * s)
    cv:rect(bx, by, bw, bh)
    for i, e in ipairs(entries) do
      local cy = by + pad + line_h * (i - 0.5)
      set(cv, e[2])
      cv:line_width(2.5 * s)
      cv:polyline{bx + pad, cy, bx + pad + swatch, cy}
      set(cv, M.colors.text)
      cv:text(bx + pad + swatch + 8 * s, cy + (asc - desc) / 2, e[1])
    end
  end

  -- atomically: a temporary PNG in the same folder, synced, renamed over path
  local ok, werr = require('luacap.util').write_via(path, function(tmp) return cv:write_png(tmp) end)
  cv:free()
  if not ok then return nil, 'loss_curve: ' .. werr end
  return true
end

return M
