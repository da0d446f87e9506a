-- luacap.util: small helpers shared by the workflow scripts (time, files, JSON, buffers).
-- Not a general utility belt: each helper here has at least two callers.
local M = {}

local ffi_ok, ffi = pcall(require, 'ffi')
if ffi_ok then
  pcall(ffi.cdef, [[
    typedef struct { long tv_sec; long tv_nsec; } lc_timespec;
    int clock_gettime(int clk_id, lc_timespec *tp);
    int isatty(int fd);
  ]])
end

-- Is standard error a terminal? (progress lines are redrawn in place only there)
function M.stderr_is_tty()
  if not ffi_ok then return false end
  return ffi.C.isatty(2) == 1
end

-- A progress writer on io.stderr: show(t, final, make_line) writes make_line() redrawn in
-- place on a terminal (at most 5 times a second), elsewhere as one line every `every`
-- seconds of t (a clock reading or elapsed seconds); a final call always writes and ends the
-- line. tty = false forces the plain-line form. Returns whether it wrote.
function M.progress_writer(every, tty)
  local is_tty = M.stderr_is_tty() and tty ~= false
  local last = -math.huge
  return function(t, final, make_line)
    if not final and t - last < (is_tty and 0.2 or every) then return false end
    last = t
    local line = make_line()
    if is_tty then
      io.stderr:write('\r', line, final and '\n' or '')
    else
      io.stderr:write(line, '\n')
    end
    io.stderr:flush()
    return true
  end
end

-- Wall-clock seconds (monotonic), for rates and ETAs.
function M.now()
  if ffi_ok then
    local ts = ffi.new('lc_timespec')
    ffi.C.clock_gettime(1, ts)
    return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
  end
  return os.time()
end

-- A buffer of rows x (inputs' row shape) kept in ctx[key], reallocated when the batch size changes.
function M.ensure_rows(ctx, key, inputs, rows)
  local shape = inputs:shape()
  shape[1] = rows
  local t = ctx[key]
  if t and t:size(1) == rows then return t end
  t = require('luacap.core').zeros(shape)
  ctx[key] = t
  return t
end

function M.read_file(path)
  local f, err = io.open(path, 'rb')
  if not f then return nil, err end
  local s = f:read('*a')
  f:close()
  return s
end

-- Writes a whole file through a temporary name and a rename, so readers never see half of it.
function M.write_file(path, s)
  local tmp = path .. '.tmp'
  local f, err = io.open(tmp, 'wb')
  if not f then return nil, err end
  f:write(s)
  f:close()
  local ok, rerr = os.rename(tmp, path)
  if not ok then os.remove(tmp) return nil, rerr end
  return true
end

-- Compact JSON whose numbers read back as the same doubles (cjson keeps 14 digits):
-- Python-style shortest repr, and inf / -inf / nan, which cjson's decoder accepts. For
-- training state that must resume exactly.
function M.json_exact(v)
  local cjson = require 'cjson'
  local t = type(v)
  if t == 'number' then
    if v ~= v then return 'nan' end
    if v == math.huge then return 'inf' end
    if v == -math.huge then return '-inf' end
    return require('luacap.train.callbacks').repr(v)
  elseif t ~= 'table' then
    return cjson.encode(v)
  end
  local n = #v
  local is_array = next(v) == nil or n > 0
  if is_array then
    for k in pairs(v) do
      if type(k) ~= 'number' or k < 1 or k > n or k % 1 ~= 0 then is_array = false break end
    end
  end
  local parts = {}
  if is_array then
    for i = 1, n do parts[i] = M.json_exact(v[i]) end
    return '[' .. table.concat(parts, ',') .. ']'
  end
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  for _, k in ipairs(keys) do
    parts[#parts + 1] = cjson.encode(tostring(k)) .. ':' .. M.json_exact(v[k])
  end
  return '{' .. table.concat(parts, ',') .. '}'
end

-- JSON with sorted keys and indentation (cjson does neither), for files people read.
function M.json_pretty(v, indent)
  local cjson = require 'cjson'
  indent = indent or ''
  local t = type(v)
  if t ~= 'table' then
    if t == 'number' and (v ~= v or v == math.huge or v == -math.huge) then return 'null' end
    if t == 'number' then
      -- counts print as integers; every other number as Python's repr of a float
      if v == math.floor(v) and math.abs(v) < 2 ^ 53 then
        return string.format('%d', v)
      end
      return require('luacap.train.callbacks').repr(v)
    end
    return cjson.encode(v)
  end
  local inner = indent .. '  '
  if #v > 0 or next(v) == nil then
    if next(v) == nil then return '[]' end
    local parts = {}
    for i = 1, #v do parts[i] = inner .. M.json_pretty(v[i], inner) end
    return '[\n' .. table.concat(parts, ',\n') .. '\n' .. indent .. ']'
  end
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = tostring(k) end
  table.sort(keys)
  local parts = {}
  for _, k in ipairs(keys) do
    local val = v[k]
    if val == nil then val = v[tonumber(k)] end
    parts[#parts + 1] = inner .. cjson.encode(k) .. ': ' .. M.json_pretty(val, inner)
  end
  return '{\n' .. table.concat(parts, ',\n') .. '\n' .. indent .. '}'
end

return M
