-- luacap.report: the figures and the page people look at after a run: the loss curve,
-- the captioned-image grid, one captioned image, and an offline HTML results page.
-- Not allowed to stop a run: bad data or a failed write gives nil, msg, never an error.
local plot = require 'luacap.report.plot'
local grid = require 'luacap.report.grid'
local html = require 'luacap.report.html'

local M = {}

-- Wraps f so that anything raised while drawing comes back as nil, 'name: msg'. A path of
-- the wrong type is a programmer mistake and raises in the caller.
local function guarded(name, f)
  return function(path, ...)
    if type(path) ~= 'string' or path == '' then
      error(string.format('%s: path must be a non-empty string, got %s', name, type(path)), 2)
    end
    local ok, a, b = pcall(f, path, ...)
    if not ok then
      local msg = tostring(a)
      if msg:sub(1, #name + 1) ~= name .. ':' then msg = name .. ': ' .. msg end
      return nil, msg
    end
    if a == nil and b == nil then return nil, name .. ': failed' end
    return a, b
  end
end

-- loss_curve(path, history[, opts]): PNG of train/val loss per epoch, LR drops, best epoch.
M.loss_curve = guarded('loss_curve', plot.loss_curve)
-- caption_grid(path, items[, opts]): PNG of images with `Pred:` / `GT:` under each.
M.caption_grid = guarded('caption_grid', grid.caption_grid)
-- captioned_image(path, img, caption[, opts]): PNG of one image and its caption.
M.captioned_image = guarded('captioned_image', grid.captioned_image)
-- attention(path, img, words, alphas[, opts]): PNG of a caption's words, each over the
-- image dimmed where the model did not look (report/attention.lua).
M.attention = guarded('attention', require('luacap.report.attention').figure)
-- html(dir, data): dir/index.html and dir/images/, all paths relative.
M.html = guarded('html', html.html)

-- Helpers the figures use, public for tests and callers laying out their own text.
M.wrap = grid.wrap                 -- wrap(text, max_width[, font_size]) -> lines
M.text_width = grid.text_width     -- text_width(s[, font_size]) -> pixels
M.escape = html.escape             -- escape(s) -> HTML-safe text
M.nice_ticks = plot.nice_ticks     -- nice_ticks(lo, hi[, target[, integer]]) -> ticks, step

return M
