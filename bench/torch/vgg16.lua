-- bench/torch/vgg16.lua: luacap's side of the VGG16 comparison in `make bench-torch`:
-- VGG16 to fc2 at 224x224 (random weights), images/s at batch 1 and 16, and the extraction
-- time of Flickr8k's 8,091 images at batch 16, one JSON line per figure in the fields
-- bench/torch/vgg16.py prints. Not the accuracy check: that is bench/encoders.lua's.
-- Usage: luajit bench/torch/vgg16.lua [--threads N] [--quick]
package.path = 'lua/?.lua;lua/?/init.lua;bench/?.lua;' .. package.path
package.cpath = 'lua/?.so;' .. package.cpath
local luacap = require 'luacap'
local cjson = require 'cjson'
local sgemm = require 'sgemm'

local FLICKR8K_IMAGES = 8091
local opt = {threads = 2, quick = false}
local i = 1
while i <= #arg do
  local a = arg[i]
  if a == '--threads' then opt.threads = assert(tonumber(arg[i + 1]), '--threads N'); i = i + 1
  elseif a == '--quick' then opt.quick = true
  else error('unknown argument ' .. a) end
  i = i + 1
end
luacap.set_threads(opt.threads)

local function emit(figure, value, unit, better, runs)
  print(cjson.encode{figure = figure, value = value, unit = unit, better = better,
    side = 'luacap', threads = luacap.get_threads(), runs = runs})
  io.stdout:flush()
end

luacap.seed(1)
local enc = assert(luacap.encoders.vgg16.new{output = 'fc2'})
for _, B in ipairs{1, 16} do
  -- the same run counts as bench/torch/vgg16.py: 7 at batch 1, 3 above, after a warm-up
  local runs = opt.quick and 2 or (B == 1 and 7 or 3)
  local x = luacap.normal(0, 60, B, 224, 224, 3)
  enc:forward(x)
  local ts = {}
  for r = 1, runs do ts[r] = select(2, sgemm.time(function() enc:forward(x) end, 1))[1] end
  local ips = B / sgemm.median({unpack(ts)})
  emit('vgg16_b' .. B, ips, 'images/s', 'higher', ts)
  if B == 16 then emit('flickr8k_extract', FLICKR8K_IMAGES / ips / 60, 'min', 'lower') end
end
