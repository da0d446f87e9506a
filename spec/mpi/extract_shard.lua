-- spec/mpi/extract_shard.lua: features.extract of the images of a folder into a cache, on
-- one process (arg[1] 'single', no MPI) or sharded over the ranks of `mpirun -np N`
-- (arg[1] 'dist', features.extract's dist option). arg[2] the image folder (every file is
-- an image id, its name without the extension; sorted), arg[3] the cache, arg[4] the
-- encoder ('smallcnn': dense output; 'vgg16': a tiny glorot-random VGG16's block5_pool map,
-- flattened), arg[5] how many of the sorted ids to extract (default all). Every rank checks
-- that what extract returned equals the cache on disk, then writes info (computed, reused,
-- failed, rebuilt, ids) as JSON to <cache>.info.<rank> and prints "ok rank R". Run by
-- spec/mpi_features_spec.lua. Not a spec file on its own.
local common = dofile 'spec/mpi/common.lua'
local luacap = require 'luacap'
local util = require 'luacap.util'
local mode, dir, out, which, count = arg[1], arg[2], arg[3], arg[4], tonumber(arg[5])

local dist = common.dist(mode)
local rank = dist and dist.rank or 0

-- the same encoder on every rank and in every run: seeded weights
local function encoder()
  luacap.seed(7)
  if which == 'vgg16' then
    return assert(luacap.encoders.vgg16.new{width = 1 / 32, input_size = 64, classes = 5,
      output = 'block5_pool'})
  end
  return luacap.encoders.smallcnn.new{input_size = 16, channels = {2, 3}, out_dim = 5,
    frozen = true}
end

local images, ids = {}, {}
local p = io.popen('ls "' .. dir .. '"')
for name in p:lines() do
  local id = name:match('^(.*)%.[^.]+$')
  if id then images[id] = dir .. '/' .. name; ids[#ids + 1] = id end
end
p:close()
table.sort(ids)
if count then for i = #ids, count + 1, -1 do ids[i] = nil end end

local got, m, info = luacap.features.extract{encoder = encoder(), images = images, ids = ids,
  out = out, batch = 4, dist = dist, every = 0}

-- what this rank got is the cache on disk (rank 1 too: it wrote nothing)
local cids, cm = assert(luacap.features.load(out))
local row = {}
for i, id in ipairs(cids) do row[id] = i end
local D = cm:size(2)
assert(m:size(1) == #got and m:size(2) == D, 'returned matrix shape')
local mv, cv = m:flat(), cm:flat()
for i, id in ipairs(got) do
  local r = assert(row[id], id .. ' is not in the cache')
  for k = 1, D do
    local a, b = mv[(i - 1) * D + k], cv[(r - 1) * D + k]
    if a ~= b then error(string.format('rank %d: %s value %d is %.9g, the cache has %.9g', rank, id, k, a, b)) end
  end
end
util.write_file(out .. '.info.' .. rank, util.json_exact({computed = info.computed,
  reused = info.reused, failed = info.failed, rebuilt = info.rebuilt, ids = got}))
print('ok rank ' .. rank)
common.finish(dist)
