-- bench/run.lua: the `make bench` driver. Runs bench/sgemm.lua first (the machine's sgemm
-- GFLOP/s, the yardstick for every ratio), then every other bench/*.lua in name order;
-- each prints its own section. Not a benchmark itself.
-- A section file either returns {run = function(ctx)} (ctx.sgemm_gflops, ctx.quick,
-- ctx.threads) or is a plain script that does its work when loaded.
-- Usage: luajit bench/run.lua [--threads N] [--quick] [name ...]  (names: sgemm, encoders, ...)
package.path = 'lua/?.lua;lua/?/init.lua;bench/?.lua;' .. package.path
package.cpath = 'lua/?.so;' .. package.cpath
local luacap = require 'luacap'

local ctx = {quick = false, only = {}}
local i = 1
while i <= #arg do
  local a = arg[i]
  if a == '--threads' then
    ctx.threads = assert(tonumber(arg[i + 1]), '--threads needs a number')
    i = i + 1
  elseif a == '--quick' then
    ctx.quick = true
  else
    ctx.only[#ctx.only + 1] = a
  end
  i = i + 1
end
if ctx.threads then luacap.set_threads(ctx.threads) end

local function wanted(name)
  if #ctx.only == 0 then return true end
  for _, n in ipairs(ctx.only) do if n == name then return true end end
  return false
end

local names = {}
local p = io.popen('ls bench/*.lua')
for line in p:lines() do
  local name = line:match('^bench/(.+)%.lua$')
  if name and name ~= 'run' and name ~= 'sgemm' then names[#names + 1] = name end
end
p:close()
table.sort(names)
table.insert(names, 1, 'sgemm')

print(string.format('luacap bench: %d threads%s', luacap.get_threads(),
  ctx.quick and ', quick' or ''))
for _, name in ipairs(names) do
  if wanted(name) or name == 'sgemm' then   -- sgemm always: the others quote ratios to it
    print(string.format('\n== %s', name))
    io.stdout:flush()
    local mod = name == 'sgemm' and require('sgemm') or dofile('bench/' .. name .. '.lua')
    if type(mod) == 'table' and type(mod.run) == 'function' then
      mod.run(ctx)
    elseif type(mod) == 'function' then
      mod(ctx)
    end
    io.stdout:flush()
  end
end
