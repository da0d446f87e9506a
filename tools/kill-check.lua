-- tools/kill-check.lua: the kill test's judge (tools/kill-test.sh).
--   luajit tools/kill-check.lua readable OUT      every file under OUT reads back whole
--   luajit tools/kill-check.lua same REF OUT      OUT's results equal REF's, bit for bit
-- readable: each .h5 loads with luacap.h5 (model files also with the checkpoint loader),
-- each .json decodes, each .csv has whole \r\n-terminated rows of one width, each .png
-- decodes; a temporary '*.tmp' / '*.tmp.<pid>' (an interrupted write, never renamed over
-- its target) is listed, not failed. same: every tensor of final.h5, best.h5, last.h5 and
-- the feature cache, and the bytes of train_history.json, training_log.csv,
-- bleu_metrics.json and qualitative_examples.json; and OUT holds no temporary file.
-- Prints one line per problem; exits 0 when there is none.
package.path = 'lua/?.lua;lua/?/init.lua;' .. package.path
package.cpath = 'lua/?.so;' .. package.cpath
local luacap = require 'luacap'
local h5 = require 'luacap.h5'
local cjson = require 'cjson'
local util = require 'luacap.util'
local paths = require 'luacap.data.paths'

local problems = 0
local function bad(fmt, ...)
  problems = problems + 1
  io.stdout:write(string.format(fmt, ...), '\n')
end

local function walk(dir, rel, out)
  for _, name in ipairs(paths.list_dir(dir) or {}) do
    local p, r = dir .. '/' .. name, rel == '' and name or rel .. '/' .. name
    if paths.is_dir(p) then walk(p, r, out) else out[#out + 1] = r end
  end
  return out
end

local function is_tmp(name) return name:match('%.tmp$') or name:match('%.tmp%.%d+$') end

local function check_file(path)
  if path:match('%.h5$') then
    local t, err = h5.load(path)
    if not t then return err end
    if path:match('/models/') then
      local b, berr = require('luacap.train.checkpoint').load(path)
      if not b then return berr end
    end
  elseif path:match('%.json$') then
    local s = util.read_file(path)
    local ok, err = pcall(cjson.decode, s or '')
    if not ok then return 'bad JSON: ' .. tostring(err) end
  elseif path:match('%.csv$') then
    local s = util.read_file(path) or ''
    if s ~= '' and s:sub(-2) ~= '\r\n' then return 'a row is cut off' end
    local width
    for line in s:gmatch('([^\n]*)\n') do
      local _, n = line:gsub(',', '')
      width = width or n
      if n ~= width then return 'rows of different widths' end
    end
  elseif path:match('%.png$') or path:match('%.jpe?g$') then
    local img, err = luacap.image.load(path)
    if not img then return err end
  end
  return nil
end

local function readable(out)
  local tmps = {}
  for _, rel in ipairs(walk(out, '', {})) do
    if is_tmp(rel) then tmps[#tmps + 1] = rel
    else
      local err = check_file(out .. '/' .. rel)
      if err then bad('unreadable %s: %s', rel, err) end
    end
  end
  return tmps
end

local function flat_tensors(tree, prefix, out)
  for k, v in pairs(tree) do
    local name = prefix .. '/' .. k
    if type(v) == 'table' then flat_tensors(v, name, out) else out[name] = v end
  end
  return out
end

local function same_h5(ref, out, rel)
  local a, aerr = h5.load(ref .. '/' .. rel)
  local b, berr = h5.load(out .. '/' .. rel)
  if not a then return bad('%s: reference unreadable: %s', rel, aerr) end
  if not b then return bad('%s: %s', rel, berr) end
  local ta, tb = flat_tensors(a, '', {}), flat_tensors(b, '', {})
  local n = 0
  for name, t in pairs(ta) do
    n = n + 1
    local u = tb[name]
    if not u then bad('%s: no tensor %s', rel, name)
    else
      local x, y = t:flat(), u:flat()
      if #x ~= #y then bad('%s: %s has %d values, expected %d', rel, name, #y, #x) else
        for i = 1, #x do
          if x[i] ~= y[i] and not (x[i] ~= x[i] and y[i] ~= y[i]) then
            bad('%s: %s differs at %d (%.9g, expected %.9g)', rel, name, i, y[i], x[i])
            break
          end
        end
      end
    end
  end
  for name in pairs(tb) do if not ta[name] then bad('%s: extra tensor %s', rel, name) end end
  return n
end

local mode = arg[1]
if mode == 'readable' then
  local tmps = readable(arg[2])
  if #tmps > 0 then io.stdout:write('temporary (removed by the next run): ', table.concat(tmps, ' '), '\n') end
elseif mode == 'same' then
  local ref, out = arg[2], arg[3]
  local tmps = readable(out)
  for _, t in ipairs(tmps) do bad('temporary file left: %s', t) end
  for _, rel in ipairs({'models/final.h5', 'models/best.h5', 'models/last.h5', 'img_features_smallcnn.h5'}) do
    if paths.is_file(ref .. '/' .. rel) then same_h5(ref, out, rel) end
  end
  for _, rel in ipairs({'results/train_history.json', 'results/training_log.csv',
                        'results/bleu_metrics.json', 'results/qualitative_examples.json'}) do
    local a, b = util.read_file(ref .. '/' .. rel), util.read_file(out .. '/' .. rel)
    if not a then bad('%s: missing in the reference', rel)
    elseif a ~= b then bad('%s differs from the uninterrupted run\'s', rel) end
  end
else
  io.stderr:write('usage: luajit tools/kill-check.lua readable OUT | same REF OUT\n')
  os.exit(2)
end
os.exit(problems == 0 and 0 or 1)
