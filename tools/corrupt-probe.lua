-- tools/corrupt-probe.lua: how luacap's loaders take randomly damaged HDF5 files.
--   luajit tools/corrupt-probe.lua [N [SEED]]     (make probe-h5 PROBE_N=N)
-- Writes a small model file (a seed model + tokenizer, through the checkpoint writer) and
-- a feature cache (through luacap.h5 with the cache's attributes), then N damaged copies
-- split evenly over: a few bytes flipped anywhere, one byte flipped inside a weight's raw
-- data, and a truncation at a random length. Each copy is loaded in its own luajit process
-- (the checkpoint loader for model files, features.load for caches), so a crash is counted,
-- not fatal, and timeout 20 catches a hang. Each load is one of:
--   refused     nil, message (the message is tallied)
--   same        loaded, every tensor and attribute equal to the undamaged file's (the
--               damage hit bytes the loader never reads: padding, free space)
--   SILENT      loaded, but something differs from the undamaged file: the bad case
--   CRASH       the process died (signal, or a Lua error instead of nil, message)
--   HANG        killed by the timeout
-- Prints one line per (kind, damage) and the totals; exits 0.
-- Child mode (internal): luajit tools/corrupt-probe.lua --load KIND DAMAGED ORIGINAL
package.path = 'lua/?.lua;lua/?/init.lua;' .. package.path
package.cpath = 'lua/?.so;' .. package.cpath
local luacap = require 'luacap'
local h5 = require 'luacap.h5'
local ckpt = require 'luacap.train.checkpoint'
local features = require 'luacap.features'

-- Everything a load gives, as one comparable string (floats by their bits).
local ffi = require 'ffi'
local function bits(t)
  local v = t:totable()
  local flat = {}
  local function walk(x)
    if type(x) == 'table' then for _, y in ipairs(x) do walk(y) end
    else flat[#flat + 1] = x end
  end
  walk(v)
  local buf = ffi.new('float[?]', math.max(#flat, 1))
  for i, x in ipairs(flat) do buf[i - 1] = x end
  return table.concat(t:shape(), 'x') .. ':' .. ffi.string(buf, 4 * #flat)
end

local function fingerprint(kind, path)
  if kind == 'model' then
    local b, err = ckpt.load(path, {no_encoder = true})
    if not b then return nil, err end
    local parts = {}
    for _, p in ipairs(b.model:parameters()) do parts[#parts + 1] = p.name .. '=' .. bits(p.value) end
    local names = {}
    for k in pairs(b.attrs) do names[#names + 1] = k end
    table.sort(names)
    for _, k in ipairs(names) do parts[#parts + 1] = k .. '=' .. tostring(b.attrs[k]) end
    parts[#parts + 1] = b.tokenizer and b.tokenizer:to_json() or ''
    return table.concat(parts, '\n')
  else
    local ids, m, _, key = features.load(path)
    if not ids then return nil, m end
    return table.concat(ids, ',') .. '\n' .. bits(m) .. '\n' .. tostring(key)
  end
end

if arg[1] == '--load' then
  local kind, damaged, original = arg[2], arg[3], arg[4]
  local want = assert(fingerprint(kind, original))
  local got, err = fingerprint(kind, damaged)
  if not got then
    io.write('REFUSED\t', tostring(err), '\n')
  elseif got == want then
    io.write('SAME\n')
  else
    io.write('SILENT\n')
  end
  os.exit(0)
end

local N = tonumber(arg[1]) or 1002
local SEED = tonumber(arg[2]) or 20261206
local dir = os.getenv('TMPDIR') or '/tmp'
dir = dir .. '/corrupt-probe.' .. tostring(os.time()) .. '.' .. tostring(math.random(1e6))
assert(os.execute('mkdir -p ' .. dir) == 0 or true)

local function read(p) local f = assert(io.open(p, 'rb')); local s = f:read('*a'); f:close(); return s end
local function write(p, s) local f = assert(io.open(p, 'wb')); f:write(s); f:close() end

-- The two undamaged files.
luacap.seed(7)
local tok = require('luacap.data.tokenizer').fit{'startseq a red circle endseq',
  'startseq a blue square endseq', 'startseq two green triangles endseq'}
local model = require('luacap.models.seed'){vocab_size = tok:vocab_size(), max_len = 6,
  feat_dim = 32, img_dense = 16, embed_dim = 8, units = 8, dec_dense = 16}
local model_path = dir .. '/model.h5'
assert(ckpt.save(model_path, {model = model, tokenizer = tok, train_state = {epoch = 3}}))
local feats = luacap.randn and luacap.randn(12, 32) or nil
if not feats then
  feats = luacap.zeros(12, 32)
  for i = 1, 12 do for j = 1, 32 do feats:set(i, j, math.sin(i * 31 + j)) end end
end
local ids = {}
for i = 1, 12 do ids[i] = string.format('img%02d.jpg', i) end
local cache_path = dir .. '/features.h5'
assert(h5.save(cache_path, {features = feats}, {format = features.FORMAT, ids = ids,
  key = '{"encoder": "probe"}'}))

-- Where the weights' raw bytes are: each tensor's float32 bytes found in the file.
local function data_ranges(bytes, tensors)
  local ranges = {}
  for _, t in ipairs(tensors) do
    local raw = bits(t):match(':(.*)$')
    if #raw >= 16 then
      local at = bytes:find(raw, 1, true)
      if at then ranges[#ranges + 1] = {at, at + #raw - 1} end
    end
  end
  return ranges
end

local kinds = {
  {name = 'model', path = model_path, tensors = (function()
    local t = {}
    for _, p in ipairs(model:parameters()) do t[#t + 1] = p.value end
    return t
  end)()},
  {name = 'cache', path = cache_path, tensors = {feats}},
}
math.randomseed(SEED)
local damages = {'flip', 'dataflip', 'truncate'}
local function flip(bytes, i)
  return bytes:sub(1, i - 1) .. string.char(bit.bxor(bytes:byte(i), math.random(1, 255))) ..
    bytes:sub(i + 1)
end
local function damage(bytes, how, ranges)
  if how == 'truncate' then return bytes:sub(1, math.random(0, #bytes - 1)) end
  if how == 'flip' then
    for _ = 1, math.random(1, 4) do bytes = flip(bytes, math.random(1, #bytes)) end
    return bytes
  end
  local r = ranges[math.random(1, #ranges)]
  return flip(bytes, math.random(r[1], r[2]))
end

local total = {refused = 0, same = 0, silent = 0, crash = 0, hang = 0}
local per = math.floor(N / (#kinds * #damages))
local messages = {}
io.write(string.format('corrupt-probe: %d damaged copies per (kind, damage), seed %d\n', per, SEED))
io.write('kind   damage    refused  same  SILENT  CRASH  HANG\n')
for _, k in ipairs(kinds) do
  local bytes = read(k.path)
  local ranges = data_ranges(bytes, k.tensors)
  assert(#ranges > 0, 'no weight data found in ' .. k.path)
  for _, how in ipairs(damages) do
    local c = {refused = 0, same = 0, silent = 0, crash = 0, hang = 0}
    for i = 1, per do
      local p = string.format('%s/%s-%s-%04d.h5', dir, k.name, how, i)
      write(p, damage(bytes, how, ranges))
      local cmd = string.format('timeout 20 luajit tools/corrupt-probe.lua --load %s %s %s 2>&1; echo "rc=$?"',
        k.name, p, k.path)
      local f = io.popen(cmd)
      local out = f:read('*a')
      f:close()
      local rc = tonumber(out:match('rc=(%d+)%s*$'))
      local verdict
      if rc == 124 then verdict = 'hang'
      elseif rc ~= 0 then verdict = 'crash'
      elseif out:match('^REFUSED') then verdict = 'refused'
      elseif out:match('^SAME') then verdict = 'same'
      elseif out:match('^SILENT') then verdict = 'silent'
      else verdict = 'crash' end
      if verdict == 'refused' then
        local msg = out:match('^REFUSED\t[^:]*: ([^\n]*)') or '?'
        msg = msg:gsub("'[^']*'", "'...'"):gsub('%d%d+', 'N')
        messages[msg] = (messages[msg] or 0) + 1
      elseif verdict ~= 'same' and verdict ~= 'silent' then
        io.write(string.format('  %s: %s (rc %s) %s\n', verdict, p, tostring(rc), out:sub(1, 200)))
      end
      c[verdict] = c[verdict] + 1
      total[verdict] = total[verdict] + 1
      if verdict == 'same' or verdict == 'refused' then os.remove(p) end
    end
    io.write(string.format('%-6s %-9s %7d %5d %7d %6d %5d\n', k.name, how, c.refused, c.same,
      c.silent, c.crash, c.hang))
  end
end
io.write(string.format('total  %-9d %7d %5d %7d %6d %5d\n', per * #kinds * #damages, total.refused,
  total.same, total.silent, total.crash, total.hang))
io.write('refusal messages:\n')
local ms = {}
for m, n in pairs(messages) do ms[#ms + 1] = {m, n} end
table.sort(ms, function(a, b) return a[2] > b[2] end)
for _, m in ipairs(ms) do io.write(string.format('  %5d  %s\n', m[2], m[1])) end
io.write('damaged files kept (silent loads, crashes) in ', dir, '\n')
