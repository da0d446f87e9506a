-- The notebook's own path end to end on a tiny dataset in Flickr8k's original layout:
-- Images/*.jpg, Flickr8k.token.txt ("name.jpg#N<TAB>caption") and the official split
-- lists, with a frozen VGG16 read from a Keras-layout weights file (tiny channels), its
-- fc2 features cached in HDF5 and reused by a second run, and the saved model captioning
-- an image in a fresh captioner.
local luacap = require 'luacap'
local pipeline = require 'luacap.pipeline'
local keras = require 'helpers.keras'
local util = require 'luacap.util'

local tmp = os.tmpname()
os.remove(tmp)
local data_dir, weights = tmp .. '_flickr', tmp .. '_vgg16.h5'

local function write(path, s)
  local f = assert(io.open(path, 'w'))
  f:write(s)
  f:close()
end

-- 30 synthetic images renamed into the token format and the three official lists.
local function make_dataset()
  local gen = assert(luacap.data.shapes.generate{dir = data_dir, n = 30, size = 32, seed = 4})
  local lines, ids = {}, {}
  for i, rec in ipairs(gen.images) do
    ids[i] = rec.file
    for k, c in ipairs(rec.captions) do lines[#lines + 1] = rec.file .. '#' .. (k - 1) .. '\t' .. c end
  end
  os.remove(data_dir .. '/captions.txt')
  write(data_dir .. '/Flickr8k.token.txt', table.concat(lines, '\n') .. '\n')
  write(data_dir .. '/Flickr_8k.trainImages.txt', table.concat(ids, '\n', 1, 20) .. '\n')
  write(data_dir .. '/Flickr_8k.devImages.txt', table.concat(ids, '\n', 21, 25) .. '\n')
  write(data_dir .. '/Flickr_8k.testImages.txt', table.concat(ids, '\n', 26, 30) .. '\n')
end

local function opts(out)
  return {data = data_dir, out = out, encoder = 'vgg16', vgg16_weights = weights,
    encoder_options = {width = keras.W, input_size = keras.SIZE, classes = keras.CLASSES},
    seed = 3, epochs = 2, batch_size = 16, lr = 0.003, embed_dim = 8, units = 6, img_dense = 8,
    dec_dense = 8, dropout = 0, lr_patience = 3, lr_factor = 0.5, es_patience = 6,
    decode_batch = 8, quiet = true}
end

describe('pipeline on the Flickr8k layout with VGG16', function()
  local out = tmp .. '_out'
  local res
  setup(function()
    make_dataset()
    keras.write_keras(weights)
    res = pipeline.run(opts(out))
  end)
  teardown(function() os.execute('rm -rf ' .. tmp .. '_*') end)

  it('reads the token file and the official splits', function()
    assert.equal('token', res.data.ds.format)
    assert.equal(20, #res.data.train)
    assert.equal(5, #res.data.val)
    assert.equal(5, #res.data.test)
    assert.equal('shape_00026', res.data.test[1])
  end)

  it('caches the fc2 features of every image and reuses them on the next run', function()
    assert.equal(30, res.data.features_info.computed)
    local ids, m, cfg = luacap.features.load(out .. '/img_features_vgg16.h5')
    assert.equal(30, #ids)
    assert.same({30, 128}, m:shape())              -- fc2 of the tiny VGG16 (width 1/32)
    assert.equal('vgg16', cfg.name)
    local again = pipeline.run(opts(out))
    assert.equal(30, again.data.features_info.reused)
    assert.equal(0, again.data.features_info.computed)
    assert.same(res.history.loss, again.history.loss)
  end)

  it('trains on the cached features and scores the test split', function()
    assert.equal(2, #res.history.loss)
    assert.is_true(res.history.loss[2] == res.history.loss[2])   -- not NaN
    local text = util.read_file(out .. '/results/bleu_metrics.json')
    assert.is_string(text)
    local m = require('cjson').decode(text)
    assert.is_number(m['BLEU-4'])
    assert.equal(5, m.test_images)
  end)

  it('saves a model that captions an image with nothing else', function()
    local c = assert(luacap.load(out .. '/models/best.h5'))
    assert.equal('vgg16', c.encoder:config().name)
    assert.is_false(c.encoder.trainable)
    local cap = c:caption(data_dir .. '/Images/shape_00026.jpg')
    assert.equal(res.preds[1], cap)
  end)

  it('reads Karpathy\'s dataset_flickr8k.json and its splits', function()
    local kdir = tmp .. '_karpathy'
    os.execute('mkdir -p ' .. kdir .. ' && ln -s ' .. data_dir .. '/Images ' .. kdir .. '/Images')
    local images = {}
    for i = 1, 30 do
      local file = string.format('shape_%05d.jpg', i)
      local caps = res.data.ds.captions[file:sub(1, -5)]
      local sentences = {}
      for k, c in ipairs(caps) do sentences[k] = {raw = c, tokens = {}} end
      images[i] = {filename = file, split = i <= 18 and 'train' or i <= 20 and 'restval'
        or i <= 24 and 'val' or 'test', sentences = sentences}
    end
    write(kdir .. '/dataset_flickr8k.json', require('cjson').encode({images = images, dataset = 'flickr8k'}))
    local o = opts(tmp .. '_kout')
    o.data, o.epochs = kdir, 1
    local r = pipeline.run(o)
    assert.equal('karpathy', r.data.ds.format)
    assert.equal(20, #r.data.train)          -- 18 train + 2 restval
    assert.equal(4, #r.data.val)
    assert.equal(6, #r.data.test)
    assert.equal('shape_00025', r.data.test[1])
  end)

  it('explains a missing dataset folder and a folder without captions', function()
    local o = opts(tmp .. '_none')
    o.data = tmp .. '_nosuch'
    assert.has_error(function() pipeline.run(o) end,
      'dataset folder ' .. tmp .. '_nosuch does not exist (expected Images/ and captions.txt in it)')
    os.execute('mkdir -p ' .. tmp .. '_empty')
    o.data = tmp .. '_empty'
    assert.has_error(function() pipeline.run(o) end, tmp .. '_empty has no caption file ' ..
      '(expected one of captions.txt, Flickr8k.token.txt, dataset_flickr8k.json)')
  end)

  it('says which weights file is missing when the encoder cannot be rebuilt', function()
    os.rename(weights, weights .. '.moved')
    local c, err = luacap.load(out .. '/models/best.h5')
    os.rename(weights .. '.moved', weights)
    assert.is_nil(c)
    assert.matches(out .. '/models/best.h5: cannot rebuild its vgg16 encoder: ', err, 1, true)
    assert.matches(weights, err, 1, true)
  end)
end)
