-- bench/torch/seed.lua: luacap's side of the seed-model comparison in `make bench-torch`:
-- bench/seed.lua's training and greedy-decoding benches, printed as one JSON line per
-- figure in bench/torch/compare.lua's format (the figures bench/torch/seed.py prints).
-- Usage: luajit bench/torch/seed.lua [--threads N] [--reps R] [--quick] [--only a,b]
package.path = 'lua/?.lua;lua/?/init.lua;bench/?.lua;' .. package.path
package.cpath = 'lua/?.so;' .. package.cpath
local luacap = require 'luacap'
local cjson = require 'cjson'
local bench = dofile('bench/seed.lua')
local Seed = require 'luacap.models.seed'

local opt = {threads = 2, reps = 5, quick = false, only = {}}
local i = 1
while i <= #arg do
  local a = arg[i]
  if a == '--threads' then opt.threads = assert(tonumber(arg[i + 1]), '--threads N'); i = i + 1
  elseif a == '--reps' then opt.reps = assert(tonumber(arg[i + 1]), '--reps R'); i = i + 1
  elseif a == '--quick' then opt.quick = true
  elseif a == '--only' then
    for n in arg[i + 1]:gmatch('[^,]+') do opt.only[n] = true end
    i = i + 1
  else error('unknown argument ' .. a) end
  i = i + 1
end
luacap.set_threads(opt.threads)

local function wanted(name) return next(opt.only) == nil or opt.only[name] end
local function emit(figure, value, unit, better)
  print(cjson.encode{figure = figure, value = value, unit = unit, better = better,
    side = 'luacap', threads = luacap.get_threads()})
  io.stdout:flush()
end

luacap.seed(1)
math.randomseed(1)
local m = Seed{vocab_size = bench.V, max_len = bench.TMAX}
-- exact mode (PyTorch's replica computes the same), then --share-image-branch (luacap only:
-- its rows show n/a on PyTorch's side)
for _, shared in ipairs{false, true} do
  for _, B in ipairs{32, 256} do
    local name = (shared and 'train_shared_b' or 'train_b') .. B
    if wanted(name) then
      local s = bench.train_bench(m, B, B == 32 and opt.reps or math.max(2, math.floor(opt.reps / 2)),
        shared)
      emit(name, B / s, 'pairs/s', 'higher')
      if B == 32 then   -- extrapolated from the same step time, as bench/torch/seed.py does
        local fl = bench.FLICKR
        emit(shared and 'flickr8k_epoch_shared_b32' or 'flickr8k_epoch_b32',
          fl.images * fl.captions * 11 / (B / s) / 60, 'min', 'lower')
      end
    end
  end
end
m:evaluate()
for _, cfg in ipairs{{1, opt.quick and 2 or 3}, {64, 64}} do
  local batch, N = cfg[1], cfg[2]
  local name = 'decode_b' .. batch
  if wanted(name) then
    local s = bench.decode_bench(m, N, batch, opt.quick and 1 or 2)
    emit(name, s * 1e3, 'ms/image', 'lower')
  end
end
