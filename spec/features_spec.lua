-- Specs for luacap.features: extraction equals the encoder on each image, the cache is
-- reused, completed when images are missing, rebuilt for another encoder or other weights,
-- and a broken image is skipped by name.
local luacap = require 'luacap'
local features = luacap.features
local smallcnn = luacap.encoders.smallcnn

local dir = require('helpers.util').tmpdir()

local function make_images(n)
  luacap.seed(42)
  local paths = {}
  for i = 1, n do
    local img = luacap.uniform(0, 255, 20 + i, 18, 3)   -- sizes differ: resize is exercised
    local p = string.format('%s/img%d.png', dir, i)
    assert(luacap.image.save(p, img))
    paths['img' .. i] = p
  end
  return paths
end

local function encoder(seed, out_dim)
  luacap.seed(seed)
  return smallcnn.new{input_size = 16, channels = {2, 3}, out_dim = out_dim or 4}
end

local function quiet(opt) opt.progress = false; return opt end

describe('features', function()
  local images = make_images(7)
  local out = dir .. '/features.h5'
  teardown(function() os.execute('rm -rf ' .. dir) end)

  it('extracts in batches the same rows the encoder gives image by image', function()
    local enc = encoder(1)
    local ids, m, info = features.extract(quiet{encoder = enc, images = images, out = out,
      ids = {'img1', 'img2', 'img3', 'img4', 'img5'}, batch = 2})
    assert.same({'img1', 'img2', 'img3', 'img4', 'img5'}, ids)
    assert.same({5, 4}, m:shape())
    assert.equal(5, info.computed)
    for i, id in ipairs(ids) do
      local img = luacap.image.resize(luacap.image.load(images[id]), 16, 16, 'nearest')
      local x = luacap.image.vgg_preprocess(img):reshape(1, 16, 16, 3)
      local want = enc:forward(x):flat()
      local got = m:narrow(i, 1):flat()
      for k = 1, 4 do assert.is_true(math.abs(want[k] - got[k]) < 1e-4 * math.max(1, math.abs(want[k]))) end
    end
    local lids, lm, cfg = features.load(out)
    assert.same(ids, lids)
    assert.same(m:flat(), lm:flat())
    assert.equal('smallcnn', cfg.name)
  end)

  it('caches conv maps (sat) as (N, L, D), in float16 on request: the rounded values, half the bytes', function()
    local function map_encoder()
      luacap.seed(9)
      return smallcnn.new{input_size = 16, channels = {2, 3}, output = 'map'}
    end
    local ids5 = {'img1', 'img2', 'img3', 'img4', 'img5'}
    local p32, p16 = dir .. '/maps32.h5', dir .. '/maps16.h5'
    local _, m32 = features.extract(quiet{encoder = map_encoder(), images = images, out = p32, ids = ids5})
    local ids, m16, info = features.extract(quiet{encoder = map_encoder(), images = images, out = p16,
      ids = ids5, float16 = true})
    assert.same(ids5, ids)
    assert.same({5, 16, 3}, m32:shape())            -- L = (16 / 4)^2 regions of D = 3
    assert.same({5, 16, 3}, m16:shape())
    assert.equal(5, info.computed)
    local want = luacap.core.round_half(m32:clone()):flat()
    local got, base = m16:flat(), m32:flat()
    local differ = 0
    for i = 1, #want do
      assert.equal(want[i], got[i])
      if got[i] ~= base[i] then differ = differ + 1 end
    end
    assert.is_true(differ > 0)                        -- rounding happened
    local _, lm = features.load(p16)                  -- the file gives back the same values
    assert.same(got, lm:flat())
    -- a float16 cache is not reused for float32 (its key names the type): rebuilt
    local _, again, info2 = features.extract(quiet{encoder = map_encoder(), images = images, out = p16,
      ids = ids5})
    assert.is_true(info2.rebuilt)
    assert.same(base, again:flat())
  end)

  it('reuses the cache, and completes it with the missing images', function()
    local enc = encoder(1)
    local ids, m, info = features.extract(quiet{encoder = enc, images = images, out = out,
      ids = {'img5', 'img1'}})
    assert.same({computed = 0, reused = 2}, {computed = info.computed, reused = info.reused})
    assert.same({'img5', 'img1'}, ids)
    assert.same({2, 4}, m:shape())
    local all, m7, info7 = features.extract(quiet{encoder = enc, images = images, out = out})
    assert.equal(7, #all)
    assert.same({computed = 2, reused = 5}, {computed = info7.computed, reused = info7.reused})
    assert.same(m:narrow(2, 1):flat(), m7:narrow(1, 1):flat())   -- img1 unchanged
    local lids = features.load(out)
    assert.equal(7, #lids)
  end)

  it('rebuilds a cache made by another encoder or other weights', function()
    local _, _, info = features.extract(quiet{encoder = encoder(1, 6), images = images, out = out})
    assert.is_true(info.rebuilt)
    assert.equal(7, info.computed)
    local _, m, cfg = features.load(out)
    assert.same({7, 6}, m:shape())
    assert.equal(6, cfg.out_dim)
    -- same config, different weights: the digest differs
    local _, _, info2 = features.extract(quiet{encoder = encoder(2, 6), images = images, out = out})
    assert.is_true(info2.rebuilt)
    assert.equal(7, info2.computed)
  end)

  it('skips an unreadable image by name and keeps the rest', function()
    local bad = dir .. '/broken.jpg'
    local f = assert(io.open(bad, 'wb'))
    f:write('\255\216\255garbage')
    f:close()
    local imgs = {a = images.img1, broken = bad, c = images.img3}
    local ids, m, info = features.extract(quiet{encoder = encoder(3), images = imgs,
      out = dir .. '/skip.h5'})
    assert.same({'a', 'c'}, ids)
    assert.same({2, 4}, m:shape())
    assert.equal(1, #info.failed)
    assert.equal('broken', info.failed[1].id)
  end)

  it('reads images from a dataset table {image_dir, ext}', function()
    local ids, m = features.extract(quiet{encoder = encoder(4), out = dir .. '/ds.h5',
      images = {image_dir = dir, ext = '.png'}, ids = {'img2', 'img6'}})
    assert.same({'img2', 'img6'}, ids)
    assert.same({2, 4}, m:shape())
  end)

  it('refuses to load a file that is not a feature cache', function()
    assert(luacap.h5.save(dir .. '/other.h5', {x = luacap.zeros(2)}))
    local ids, err = features.load(dir .. '/other.h5')
    assert.is_nil(ids)
    assert.truthy(err:find('not a luacap feature cache', 1, true))
  end)
end)
