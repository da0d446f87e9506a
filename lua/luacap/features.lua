-- luacap.features: the image-feature cache. Runs images through a frozen encoder in batches
-- and keeps an HDF5 file of ids (string-array attribute) and an N x D float32 matrix, keyed
-- by the encoder's config, a digest of its weights and the preprocessing. Not a data loader.
local T = require 'luacap.tensor'
local h5 = require 'luacap.h5'
local util = require 'luacap.util'

local M = {}

M.FORMAT = 'luacap-features-1'

-- The cache key: everything that changes the numbers, as sorted-key JSON.
local function key_of(encoder, size, resize, float16)
  local encoders = require 'luacap.encoders'
  return util.json_pretty({encoder = encoder:config(), size = size, resize = resize,
                           weights = encoders.fingerprint(encoder), dtype = float16 and 'float16' or nil})
end

-- images: {id -> path}; or a dataset {image_dir = dir, ext = '.jpg'} (path dir/id..ext);
-- or an object with image_path(id).
local function path_of(images, id)
  if type(images.image_path) == 'function' then return images:image_path(id) end
  if type(images.image_dir) == 'string' then
    return images.image_dir .. '/' .. id .. (images.ext or '.jpg')
  end
  return images[id]
end

-- load(path) -> ids, matrix (N, D), config (the encoder's, decoded) | nil, message
function M.load(path)
  local attrs, err = h5.attrs(path, '/')
  if not attrs then return nil, err end
  if attrs.format ~= M.FORMAT then
    return nil, path .. ': not a luacap feature cache (format attribute ' ..
      tostring(attrs.format) .. ', expected ' .. M.FORMAT .. ')'
  end
  local m, rerr = h5.read(path, '/features')
  if not m then return nil, rerr end
  local ids = h5.chunked(attrs, 'ids')
  if m:dim() ~= 2 or m:size(1) ~= #ids then
    return nil, string.format('%s: %d ids but features of shape (%s)', path, #ids,
      table.concat(m:shape(), ', '))
  end
  local ok, key = pcall(require('cjson').decode, attrs.key or '')
  if not ok then return nil, path .. ': unreadable key attribute' end
  return ids, m, key.encoder, attrs.key
end

-- A progress reporter on io.stderr: redrawn in place on a terminal (at most 5 per
-- second), otherwise one line every `every` seconds and one at the end. `who` names a
-- rank's share ('rank 0 of 2: ') when extraction is sharded.
local function progress(total, every, who)
  local start, show = util.now(), util.progress_writer(every)
  return function(done, final)
    local now = util.now()
    show(now, final, function()
      local rate = done / math.max(now - start, 1e-9)
      local eta = rate > 0 and (total - done) / rate or 0
      return string.format('features: %s%d/%d images, %.1f images/s, ETA %dm%02ds', who or '',
        done, total, rate, math.floor(eta / 60), math.floor(eta % 60))
    end)
  end
end

-- extract{encoder =, images = {id -> path} | dataset, ids = {...} (default: every id of
--         images, sorted), out = 'features.h5', batch = 16, size = encoder's input size,
--         resize = 'nearest' (Keras' load_img), progress = true, every = 5 (seconds),
--         dist = nil (luacap.train.distributed: shard the work over MPI ranks),
--         float16 = false (store the matrix as float16: half the bytes, about 3 significant
--         digits; 8,091 VGG16 conv maps of 196 x 512 take 1.6 GB instead of 3.2 GB; the
--         returned values are the rounded ones, as a later read gives them)}
-- -> ids, matrix (N, D), info {computed =, reused =, failed = {{id =, message =}}, rebuilt =}
-- A cache at `out` made with the same key is reused; the images it lacks are computed and
-- added; a cache with another key (encoder, layer, weights, size) is rebuilt, saying why.
-- An image that cannot be read is reported by name on io.stderr and skipped.
-- With dist, every rank calls extract alike: each reads and encodes a contiguous run of
-- whole batches of the images the cache lacks (dist:share), the rows and the failures are
-- gathered on every rank, rank 0 alone prints and writes the cache, and every rank returns
-- what one process would (the same file, ids, values bit for bit and info); extract
-- returns once the cache is on disk.
function M.extract(opt)
  local image = require 'luacap.image'
  local enc = assert(opt.encoder, 'features.extract: missing required option encoder')
  local images = assert(opt.images, 'features.extract: missing required option images')
  local out = assert(opt.out, 'features.extract: missing required option out')
  local batch = opt.batch or 16
  local size = opt.size or (enc.cfg and enc.cfg.input_size) or 224
  local resize = opt.resize or 'nearest'
  local ids = opt.ids
  if not ids then
    ids = {}
    for id in pairs(images) do if type(id) == 'string' then ids[#ids + 1] = id end end
    table.sort(ids)
  end
  local key = key_of(enc, size, resize, opt.float16)
  local info = {computed = 0, reused = 0, failed = {}, rebuilt = false}
  local dist = opt.dist
  if dist and dist.size < 2 then dist = nil end
  local rank0 = not dist or dist.rank == 0
  local function say(...) if rank0 then io.stderr:write(...) end end

  -- what the cache already holds
  local have, old_ids, old_m = {}, {}, nil
  if require('luacap.data.paths').is_file(out) then
    local cids, cm, _, ckey = M.load(out)
    if not cids then
      say('features: ', tostring(cm), ': rebuilding\n')
      info.rebuilt = true
    elseif ckey ~= key then
      say('features: ', out, ' was made by another encoder, layer, weights, ' ..
        'image size or storage type: rebuilding\n')
      info.rebuilt = true
    else
      old_ids, old_m = cids, cm
      for i, id in ipairs(cids) do have[id] = i end
    end
  end
  local todo = {}
  for _, id in ipairs(ids) do if not have[id] then todo[#todo + 1] = id end end
  info.reused = #ids - #todo
  local mine = todo
  if dist then
    -- the shares are only the same images everywhere if every rank sees the same cache
    -- and the same encoder
    local seen = dist.mpi.allgather({key = key, todo = #todo})
    for r, s in ipairs(seen) do
      if s.key ~= key then
        error(string.format('features.extract: rank %d has another encoder, layer, weights or ' ..
          'image size than rank %d', r - 1, dist.rank), 2)
      elseif s.todo ~= #todo then
        error(string.format('features.extract: rank %d finds %d images missing from %s, rank %d ' ..
          'finds %d (every rank needs the same file: a shared file system)', r - 1, s.todo,
          out, dist.rank, #todo), 2)
      end
    end
    -- whole batches: rank r takes a contiguous run of them (dist:share)
    local g1, gn = dist:share(math.ceil(#todo / batch))
    mine = {}
    for i = (g1 - 1) * batch + 1, math.min((g1 + gn - 1) * batch, #todo) do mine[#mine + 1] = todo[i] end
  end

  -- run the missing images (this rank's share of them) through the encoder. A batch is
  -- `batch` consecutive images of todo, one that cannot be read leaving it one short: every
  -- image meets the same batch on one process and sharded, and so gets the same values bit
  -- for bit (the kernels' sums depend on the batch: sgemv at 1 row, sgemm tiles, chunks).
  -- a row per image: D features, or an encoder's conv map (enc.regions R of D: sat) as R x D
  local R = enc.regions or 1
  local D = enc.out_dim * R
  local new_m = T.zeros(math.max(#mine, 1), D)
  local new_ids = {}
  local report = function() end
  if opt.progress ~= false and rank0 then
    report = progress(#mine, opt.every or 5,
      dist and string.format('rank 0 of %d: ', dist.size) or nil)
  end
  local x = T.zeros(batch, size, size, 3)
  local pending = {}
  local function flush()
    if #pending == 0 then return end
    local xb = #pending == batch and x or x:narrow(1, #pending)
    local f = enc:forward(xb):reshape(#pending, D)
    new_m:narrow(#new_ids + 1, #pending):copy(f)
    for _, id in ipairs(pending) do new_ids[#new_ids + 1] = id end
    pending = {}
  end
  local function skipped(id, path, err)
    say(string.format('features: skipping %s (%s): %s\n', id, tostring(path), tostring(err)))
  end
  for n, id in ipairs(mine) do
    local path = path_of(images, id)
    local img, err
    if type(path) ~= 'string' then
      err = 'no image path for this id'
    else
      img, err = image.load(path)
    end
    if not img then
      if not dist then skipped(id, path, err) end    -- sharded: rank 0 says all, below
      info.failed[#info.failed + 1] = {id = id, message = tostring(err)}
    else
      x:narrow(#pending + 1, 1):copy(image.prepare(img, size, resize))
      pending[#pending + 1] = id
    end
    if n % batch == 0 then flush() end
    report(n)
  end
  flush()
  if #mine > 0 then report(#mine, true) end
  if dist then
    -- every rank's ids and failures in rank order (= the order of todo), then its rows
    local parts = dist.mpi.allgather({ids = new_ids, failed = info.failed})
    local counts, all_new, failed = {}, {}, {}
    for r, part in ipairs(parts) do
      counts[r] = #part.ids
      for _, id in ipairs(part.ids) do all_new[#all_new + 1] = id end
      for _, f in ipairs(part.failed) do
        failed[#failed + 1] = f
        skipped(f.id, path_of(images, f.id), f.message)
      end
    end
    local before = 0
    for r = 1, dist.rank do before = before + counts[r] end
    local full = T.zeros(math.max(#all_new, 1), D)
    if #new_ids > 0 then full:narrow(before + 1, #new_ids):copy(new_m:narrow(1, #new_ids)) end
    dist:share_rows(full, counts)
    new_ids, new_m, info.failed = all_new, full, failed
  end
  info.computed = #new_ids

  -- merge: cached rows in their order, then the new ones; keep only what is on disk or new
  local all_ids = {}
  for _, id in ipairs(old_ids) do all_ids[#all_ids + 1] = id end
  for _, id in ipairs(new_ids) do all_ids[#all_ids + 1] = id end
  local m
  if #new_ids == 0 and old_m then
    m = old_m
  else
    m = T.zeros(math.max(#all_ids, 1), D)
    if #old_ids > 0 then m:narrow(1, #old_ids):copy(old_m) end
    if #new_ids > 0 then m:narrow(#old_ids + 1, #new_ids):copy(new_m:narrow(1, #new_ids)) end
    if opt.float16 then require('luacap.core').round_half(m) end   -- as the file holds them
    if #all_ids == 0 then
      error('features.extract: no image could be read (' .. #info.failed .. ' failed)', 2)
    end
    if rank0 then
      local ok, werr = h5.save(out, {features = m}, {format = M.FORMAT, ids = all_ids, key = key},
        {float16 = opt.float16 and true or nil})
      if not ok then
        if util.is_disk_full(werr) then error(util.write_error(out, werr), 0) end
        error('features.extract: ' .. tostring(werr), 2)
      end
    end
    if dist then dist.mpi.barrier() end    -- the cache is on disk for every rank
  end

  -- the rows asked for, in the order asked
  local row = {}
  for i, id in ipairs(all_ids) do row[id] = i end
  local got = {}
  for _, id in ipairs(ids) do if row[id] then got[#got + 1] = id end end
  local res = T.zeros(math.max(#got, 1), D)
  for i, id in ipairs(got) do res:narrow(i, 1):copy(m:narrow(row[id], 1)) end
  if #got == 0 then res = T.zeros(0, D) end
  if enc.regions then res = res:reshape(res:size(1), R, enc.out_dim) end
  return got, res, info
end

return M
