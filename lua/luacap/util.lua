-- luacap.util: small helpers shared by the workflow scripts (time, files, JSON, buffers).
-- Not a general utility belt: each helper here has at least two callers.
local M = {}

local ffi_ok, ffi = pcall(require, 'ffi')
if ffi_ok then
  pcall(ffi.cdef, [[
    typedef struct { long tv_sec; long tv_nsec; } lc_timespec;
    int clock_gettime(int clk_id, lc_timespec *tp);
    int isatty(int fd);
    int usleep(unsigned int usec);
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

-- words(s) -> the whitespace-separated words of a caption string, in order.
function M.words(s)
  local out = {}
  for w in s:gmatch('%S+') do out[#out + 1] = w end
  return out
end

-- identity(n) -> {1, 2, ..., n}: the row list that keeps every row in order.
function M.identity(n)
  local t = {}
  for i = 1, n do t[i] = i end
  return t
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

-- A buffer of rows x (inputs' row shape) kept in ctx[key]; when the batch size changes it is
-- reshaped within its storage (tensor.ensure_capacity), grown only past the largest yet.
function M.ensure_rows(ctx, key, inputs, rows)
  local shape = inputs:shape()
  shape[1] = rows
  -- the number of rows changes from batch to batch: kept storage, reshaped
  ctx[key] = require('luacap.tensor').ensure_capacity(ctx[key], unpack(shape))
  return ctx[key]
end

-- Limits kept on the Lua side (luacap.set_limits sets them): line_bytes, the longest
-- line a line-based caption file may hold; json_bytes, the largest JSON file read whole
-- (Karpathy's caption JSON, the tokenizer's JSON).
M.limits = {line_bytes = 64 * 1048576, json_bytes = 256 * 1048576}

-- read_file(path[, max]) -> the bytes | nil, message. With max, the file is read in 1 MiB
-- chunks and given up as soon as it passes max bytes: nil, message, 'too_large'.
function M.read_file(path, max)
  local f, err = io.open(path, 'rb')
  if not f then return nil, err end
  if not max then
    local s = f:read('*a')
    f:close()
    return s
  end
  local parts, total = {}, 0
  while true do
    local chunk = f:read(1048576)
    if not chunk then break end
    total = total + #chunk
    if total > max then
      f:close()
      return nil, string.format('%s: larger than %d bytes', path, max), 'too_large'
    end
    parts[#parts + 1] = chunk
  end
  f:close()
  return table.concat(parts)
end

-- Crash points, the kill test's hooks (tools/kill-test.sh): with LUACAP_CRASH_AT=name:n in
-- the environment, the n-th time the point `name` is reached this process sends itself
-- SIGKILL. Points: step (after a training step), val (after a validation batch), h5 (a model
-- file or feature cache half-written), write (a text output half-written), commit (a
-- written temporary file before its rename). Costs one comparison when unset.
-- LUACAP_CRASH_LOG=file instead appends the name of every point reached to file (the kill
-- test counts them in an uninterrupted run to pick its moments). LUACAP_PAUSE_AT=name:ms
-- sleeps ms milliseconds at every reach of point name (a slow run for the Ctrl-C spec).
local crash_name, crash_n, crash_seen, pause_name, pause_ms
function M.crash_point(name)
  if crash_name == nil then
    local nm, n = (os.getenv('LUACAP_CRASH_AT') or ''):match('^([%w_]+):(%d+)$')
    crash_name, crash_n, crash_seen = nm or false, tonumber(n), 0
    local log = os.getenv('LUACAP_CRASH_LOG')      -- counts every point reached, one line each
    if log and log ~= '' then crash_name = io.open(log, 'a') or false end
  end
  if pause_ms == nil then
    local nm, ms = (os.getenv('LUACAP_PAUSE_AT') or ''):match('^([%w_]+):(%d+)$')
    pause_name, pause_ms = nm or false, tonumber(ms) or 0
  end
  if pause_name == name and ffi_ok then ffi.C.usleep(pause_ms * 1000) end
  if io.type(crash_name) == 'file' then crash_name:write(name, '\n'); crash_name:flush(); return end
  if crash_name ~= name then return end
  crash_seen = crash_seen + 1
  if crash_seen == crash_n then
    io.stderr:write('crash point ', name, ':', crash_n, ': SIGKILL\n')
    io.stderr:flush()
    require('luacap.core').signal_self(9)
  end
end

-- Is a failed write's (message, errno) a full disk (ENOSPC, or over quota)?
function M.is_disk_full(msg, code)
  return code == 28 or code == 122 or code == 'ENOSPC' or code == 'EDQUOT'
    or tostring(msg):find('No space left', 1, true) ~= nil
    or tostring(msg):find('quota exceeded', 1, true) ~= nil
end

local function dir_of(path) return path:match('^(.*)/[^/]*$') or '.' end

-- write_via(path, fn): the atomic write behind every output luacap writes. fn(tmp) writes
-- the whole content to tmp = path .. '.tmp' (same folder) and returns true | nil, msg[,
-- errno]; then tmp is synced to the disk and renamed over path, and the folder synced, so
-- after a crash path holds the old content or the new, never half of either. On any
-- failure tmp is removed and path is untouched. Returns true | nil, msg, errno
-- ('ENOSPC' when the disk is full; see is_disk_full).
function M.write_via(path, fn)
  local core = require 'luacap.core'
  if path == '/dev/null' then return fn(path) end   -- a sink (other MPI ranks' logs): never replaced
  local tmp = path .. '.tmp'
  local ok, err, code = fn(tmp)
  if ok then
    M.crash_point('commit')
    ok, err, code = core.fsync(tmp)
  end
  if ok then
    local rok, rerr, rcode = os.rename(tmp, path)
    if not rok then ok, err, code = nil, rerr, rcode end
  end
  if not ok then
    os.remove(tmp)
    if M.is_disk_full(err, code) then code = 'ENOSPC' end
    local msg = tostring(err)       -- named by path: the temporary is an implementation detail
    if msg:sub(1, #tmp) == tmp then msg = path .. msg:sub(#tmp + 1)
    elseif msg:sub(1, #path) ~= path then msg = path .. ': ' .. msg end
    return nil, msg, code
  end
  core.fsync(dir_of(path))      -- the rename itself durable; a folder that cannot sync is no error
  return true
end

-- The user's message for a failed output write: a full disk says what is safe and what to
-- do; anything else names the file and the reason.
function M.write_error(path, msg, code)
  if M.is_disk_full(msg, code) then
    local name = path:match('([^/]*)$')
    local kept = require('luacap.data.paths').is_file(path) and
      string.format('the previous %s is intact', name) or 'nothing was written'
    return string.format('disk full while writing %s: %s; free space and run again with --resume',
      path, kept)
  end
  local m = tostring(msg)
  if m:sub(1, #path) == path then return 'cannot write ' .. m end
  return string.format('cannot write %s: %s', path, m)
end

-- Writes a whole string to path atomically (write_via): true | nil, msg, errno.
function M.write_file(path, s)
  return M.write_via(path, function(tmp)
    local f, err, code = io.open(tmp, 'wb')
    if not f then return nil, err, code end
    local half = math.floor(#s / 2)     -- two writes, so the kill test can stop between them
    local ok, werr, wcode = f:write(s:sub(1, half))
    if ok then ok, werr, wcode = f:flush() end
    if ok then
      M.crash_point('write')
      ok, werr, wcode = f:write(s:sub(half + 1))
    end
    if ok then ok, werr, wcode = f:flush() end
    local cok, cerr, ccode = f:close()
    if ok and not cok then ok, werr, wcode = nil, cerr, ccode end
    if not ok then return nil, tmp .. ': ' .. tostring(werr), wcode end
    return true
  end)
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
