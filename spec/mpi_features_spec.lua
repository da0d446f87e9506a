-- Specs for feature extraction sharded by rank (features.extract's dist option, the train
-- command's --distributed with a frozen encoder) on 2 local ranks under mpirun and timeout:
-- the cache rank 0 writes holds the ids, the values (bit for bit) and the key attributes
-- of the one-process cache, and the unreadable image is reported alike. Pending when
-- mpirun or mpi_core.so is missing (see spec/helpers/mpi.lua).
local H = require 'spec.helpers.mpi'
local U = require 'spec.helpers.util'
local luacap = require 'luacap'
local cjson = require 'cjson'

-- the same float, sign of zero and NaN included
local function same_bits(a, b)
  if a ~= a then return b ~= b end
  return a == b and (a ~= 0 or 1 / a == 1 / b)
end

-- asserts that caches a and b hold the same ids, key, format and values; returns ids, m
local function assert_same_cache(a, b)
  local aa, ba = assert(luacap.h5.attrs(a, '/')), assert(luacap.h5.attrs(b, '/'))
  assert.equal(aa.format, ba.format)
  assert.equal(aa.key, ba.key)
  assert.same(luacap.h5.chunked(aa, 'ids'), luacap.h5.chunked(ba, 'ids'))
  assert.same(luacap.h5.list(a, '/'), luacap.h5.list(b, '/'))
  local am, bm = assert(luacap.h5.read(a, '/features')), assert(luacap.h5.read(b, '/features'))
  assert.same(am:shape(), bm:shape())
  local x, y = am:flat(), bm:flat()
  for i = 1, #x do
    if not same_bits(x[i], y[i]) then
      error(string.format('%s and %s differ at value %d: %.9g and %.9g', a, b, i, x[i], y[i]))
    end
  end
  -- not a matrix of zeros, nor one row repeated: every row has a value and differs
  local N, D, rows = am:size(1), am:size(2), {}
  for r = 1, N do
    local row = {unpack(x, (r - 1) * D + 1, r * D)}
    local nonzero = false
    for _, v in ipairs(row) do nonzero = nonzero or v ~= 0 end
    assert.is_true(nonzero, 'row ' .. r .. ' of ' .. a .. ' is zeros')
    local k = table.concat(row, ',')
    assert.is_nil(rows[k], 'rows ' .. tostring(rows[k]) .. ' and ' .. r .. ' of ' .. a .. ' are the same')
    rows[k] = r
  end
  return luacap.h5.chunked(aa, 'ids'), am
end

local function lines_with(out, pattern)
  local got = {}
  for line in out:gmatch('[^\n]+') do if line:find(pattern, 1, true) then got[#got + 1] = line end end
  return got
end

local function sh(cmd)
  local p = io.popen(cmd .. ' 2>&1; echo "exit=$?"')
  local out = p:read('*a')
  p:close()
  return out, out:match('exit=(%d+)%s*$') == '0'
end

describe('feature extraction sharded over 2 ranks', function()
  if not H.usable() then
    pending('skipped: ' .. H.why_not())
    return
  end
  local dir = U.tmpdir()
  teardown(function() os.execute('rm -rf "' .. dir .. '"') end)

  -- 12 ids (shares of 4-image batches: 8 and 4), PNG and JPEG of different sizes, one
  -- unreadable file in each rank's share
  local imgs = dir .. '/img'
  assert(require('luacap.data.paths').mkdir_p(imgs))
  luacap.seed(3)
  local ids = {}
  for i = 1, 10 do
    local img = luacap.uniform(0, 255, 20 + i, 30 - i, 3)
    local id = string.format('im%02d', i)
    assert(luacap.image.save(string.format('%s/%s.%s', imgs, id, i % 3 == 0 and 'jpg' or 'png'), img))
    ids[#ids + 1] = id
  end
  U.write(imgs .. '/im05b.png', 'not a png')
  U.write(imgs .. '/im09b.jpg', '\255\216\255 truncated')

  local function extract(mode, out, enc, count)
    local args = string.format('%s "%s" "%s" %s %s', mode, imgs, out, enc, count or '')
    if mode == 'single' then return sh('timeout 60 luajit spec/mpi/extract_shard.lua ' .. args) end
    return H.run(2, 'spec/mpi/extract_shard.lua', args, 60)
  end
  local function info(path) return cjson.decode(U.read(path)) end

  for _, enc in ipairs({'smallcnn', 'vgg16'}) do
    it('equals the one-process cache bit for bit (' .. enc .. (enc == 'vgg16' and ', a conv map' or '') ..
       '), the unreadable image reported once, alike', function()
      local one, two = dir .. '/one_' .. enc .. '.h5', dir .. '/two_' .. enc .. '.h5'
      local out1, ok1 = extract('single', one, enc)
      assert(ok1, out1)
      local out2, ok2 = extract('dist', two, enc)
      assert(ok2, out2)
      assert.truthy(out2:find('ok rank 0', 1, true), out2)
      assert.truthy(out2:find('ok rank 1', 1, true), out2)
      local got_ids, m = assert_same_cache(one, two)
      assert.same(ids, got_ids)                     -- sorted, the unreadable one left out
      assert.equal(10, m:size(1))
      if enc == 'smallcnn' then
        -- row i is image i's features: the encoder on that image alone, to float rounding
        luacap.seed(7)
        local e = luacap.encoders.smallcnn.new{input_size = 16, channels = {2, 3}, out_dim = 5, frozen = true}
        for i, id in ipairs(got_ids) do
          local path = string.format('%s/%s.%s', imgs, id, i % 3 == 0 and 'jpg' or 'png')
          local x = luacap.image.prepare(luacap.image.load(path), 16, 'nearest'):reshape(1, 16, 16, 3)
          U.close(e:forward(x), m:narrow(i, 1), 1e-4)     -- row i is image id
        end
      end
      -- every rank returned what one process did, each told about both failures
      local i1 = info(one .. '.info.0')
      assert.same({computed = 10, reused = 0, rebuilt = false}, {computed = i1.computed,
        reused = i1.reused, rebuilt = i1.rebuilt})
      assert.same({'im05b', 'im09b'}, {i1.failed[1].id, i1.failed[2].id})
      assert.equal(2, #i1.failed)
      assert.same(i1, info(two .. '.info.0'))
      assert.same(i1, info(two .. '.info.1'))
      local skip1, skip2 = lines_with(out1, 'skipping'), lines_with(out2, 'skipping')
      assert.equal(2, #skip1, out1)
      assert.same(skip1, skip2)
      -- progress from rank 0 alone, of its share (8 of the 12)
      assert.truthy(out2:find('features: rank 0 of 2: 8/8 images', 1, true), out2)
      assert.falsy(out2:find('rank 1 of 2', 1, true), out2)
    end)
  end

  -- #nosan: under make test-sanitize, LeakSanitizer's own tracer crashes (signal 11 in its
  -- StopTheWorld, "LeakSanitizer has encountered a fatal error") at the exit of the
  -- one-process run completing the cache, every time under busted and never when the same
  -- commands run by hand; no report of luacap's memory. Completing a cache is checked under
  -- the sanitizers by spec/features_spec.lua.
  it('completes a cache the same way: the reused rows kept, the missing ones sharded #nosan', function()
    local one, two = dir .. '/part_one.h5', dir .. '/part_two.h5'
    local out0, ok0 = extract('single', one, 'smallcnn', 3)
    assert(ok0, out0)
    assert(os.execute(string.format('cp "%s" "%s"', one, two)))
    local out1, ok1 = extract('single', one, 'smallcnn')
    assert(ok1, out1)
    local out2, ok2 = extract('dist', two, 'smallcnn')
    assert(ok2, out2)
    assert_same_cache(one, two)
    local i1, i2 = info(one .. '.info.0'), info(two .. '.info.1')
    assert.same({7, 3}, {i1.computed, i1.reused})
    assert.same(i1, i2)
  end)

  it('the train command with --distributed --freeze-encoder writes the one-process cache', function()
    -- the synthetic shapes of tools/kill-test.sh (41 images), one of them made unreadable
    local shapes = dir .. '/shapes'
    local args = '--shapes-dir ' .. shapes .. ' --n-images 41 --shapes-size 32 --data-seed 3 ' ..
      '--image-size 16 --epochs 1 --embed-dim 12 --units 8 --img-dense 12 --dec-dense 12 ' ..
      '--feat-dim 12 --batch-size 8 --encoder smallcnn --beam 2 --threads 1 --freeze-encoder'
    require('luacap.pipeline').ensure_shapes{shapes_dir = shapes, n_images = 41, shapes_size = 32,
      data_seed = 3, quiet = true}
    U.write(shapes .. '/Images/shape_00007.jpg', 'truncated')
    local out1, ok1 = sh('timeout 60 luajit examples/train.lua ' .. args .. ' --out ' .. dir .. '/run1')
    assert(ok1, out1)
    local out2, ok2 = H.run(2, 'examples/train.lua', args .. ' --distributed --out ' .. dir .. '/run2', 90)
    assert(ok2, out2)
    local got_ids = assert_same_cache(dir .. '/run1/img_features_smallcnn.h5', dir .. '/run2/img_features_smallcnn.h5')
    assert.equal(40, #got_ids)
    for _, what in ipairs({'skipping shape_00007', 'Skipped 1 of 41 images'}) do
      local a, b = lines_with(out1, what), lines_with(out2, what)
      assert.equal(1, #a, what .. ':\n' .. out1)
      assert.same(a, b)
    end
    assert.equal(1, #lines_with(out1, '0 reused from'), out1)
    assert.equal(1, #lines_with(out2, '0 reused from'), out2)    -- rank 0 only
    assert.truthy(out2:find('40 computed in [%d.]+ s, 1 failed'), out2)
  end)
end)
