-- End-to-end spec of `--model sat` through the pipeline on a tiny synthetic dataset: the
-- small CNN gives its last conv map as (B, L, C) regions, training on whole captions makes
-- the loss fall, best.h5 loads in a Captioner that captions a test image as the run did.
local pipeline = require 'luacap.pipeline'
local smallcnn = require 'luacap.encoders.smallcnn'
local luacap = require 'luacap'

local tmp = os.tmpname()
os.remove(tmp)

describe('smallcnn map output', function()
  it('returns the last pool map as (B, L, C) and takes its gradient back', function()
    luacap.seed(3)
    local enc = smallcnn.new{input_size = 16, channels = {4, 6}, output = 'map'}
    assert.equal(16, enc.regions)
    assert.equal(6, enc.out_dim)
    local x = luacap.core.rand(-100, 100, 2, 16, 16, 3)
    local m = enc:forward(x)
    assert.same({2, 16, 6}, m:shape())
    -- the same numbers as the Sequential's last (pool) output, row-major regions
    local pool = enc.net:forward(enc.x)
    assert.same(pool:flat(), m:flat())
    -- loss = sum(map * w): the input gradient against a central difference
    local w = luacap.core.rand(-1, 1, 2, 16, 6)
    enc:zero_grad()
    local dx = enc:backward(x, w):clone()
    local function loss()
      local f, g = enc:forward(x):flat(), w:flat()
      local s = 0
      for i = 1, #f do s = s + f[i] * g[i] end
      return s
    end
    local xf = x:flat()
    local worst = 0
    for _, i in ipairs({1, 50, 333, 1000, 1536}) do
      local v = xf[i]
      xf[i] = v + 0.25; x:copy(luacap.core.from_flat(xf, x:shape())); local lp = loss()
      xf[i] = v - 0.25; x:copy(luacap.core.from_flat(xf, x:shape())); local lm = loss()
      xf[i] = v; x:copy(luacap.core.from_flat(xf, x:shape()))
      local num = (lp - lm) / 0.5
      worst = math.max(worst, math.abs(num - dx:flat()[i]) / math.max(1e-3, math.abs(num)))
    end
    assert.is_true(worst < 5e-2, 'relative error ' .. worst)
  end)
end)

describe('pipeline --model sat', function()
  local out = tmp .. '_satrun'
  local res
  setup(function()
    res = pipeline.run{out = out, shapes_dir = tmp .. '_satshapes', n_images = 40, shapes_size = 32,
      data_seed = 3, seed = 7, epochs = 2, batch_size = 16, lr = 0.005, embed_dim = 12, units = 16,
      att_dim = 8, dropout = 0.1, image_size = 16, cnn_channels = {4, 8}, lr_patience = 3,
      lr_factor = 0.5, es_patience = 6, decode_batch = 64, quiet = true, encoder = 'smallcnn',
      model = 'sat', beam = 0}
  end)
  teardown(function() os.execute('rm -rf ' .. tmp .. '_sat*') end)

  it('trains on whole captions with a falling loss and captions the test split', function()
    assert.equal('sat', res.model.cfg.model)
    assert.equal(16, res.model.cfg.regions)
    assert.is_true(res.history.loss[2] < res.history.loss[1])
    assert.equal(#res.test_ids, #res.preds)
    for _, p in ipairs(res.preds) do assert.is_string(p) end
  end)

  it('draws where it looked for the first test captions, linked from the results page', function()
    local qual = require('cjson').decode(assert(io.open(out .. '/results/qualitative_examples.json')):read('*a'))
    local n = 0
    for i, q in ipairs(qual) do
      if #res.preds[i] > 0 then
        assert.equal('attention/' .. q.image_id .. '.png', q.attention)
        local info = assert(require('luacap.image').info(out .. '/results/' .. q.attention))
        assert.equal(1200, info.width)   -- panels of 200 px, 6 a row
        n = n + 1
      end
    end
    assert.is_true(n > 0)
    local page = assert(io.open(out .. '/results/index.html')):read('*a')
    assert.truthy(page:find('class="attention" src="images/', 1, true))
  end)

  it('caption.lua --attention writes one figure per image', function()
    local dir = out .. '/att'
    local img = pipeline.image_path(res.data, res.test_ids[1])
    local cmd = 'luajit examples/caption.lua --model ' .. out .. '/models/best.h5 --attention ' .. dir ..
      ' ' .. img .. ' >' .. out .. '/cap.log 2>&1'
    assert(os.execute(cmd), assert(io.open(out .. '/cap.log')):read('*a'))
    local name = img:match('([^/]*)$'):gsub('%.[^.]*$', '') .. '.png'
    assert(require('luacap.image').info(dir .. '/' .. name))
  end)

  it('trains on a cached conv map of a frozen small CNN, stored in float16', function()
    local o2 = tmp .. '_satfrozen'
    local r = pipeline.run{out = o2, shapes_dir = tmp .. '_satshapes', n_images = 40, shapes_size = 32,
      data_seed = 3, seed = 7, epochs = 1, batch_size = 16, embed_dim = 12, units = 16, att_dim = 8,
      image_size = 16, cnn_channels = {4, 8}, quiet = true, encoder = 'smallcnn', model = 'sat',
      freeze_encoder = true, feature_dtype = 'float16', beam = 2, lr_patience = 3, lr_factor = 0.5,
      es_patience = 6}
    assert.equal(#r.test_ids, #r.preds)
    local ids, m = luacap.features.load(o2 .. '/img_features_smallcnn.h5')
    assert.equal(40, #ids)
    assert.same({40, 16 * 8}, m:shape())               -- 16 regions of 8 per row
    local f = m:flat()
    for i = 1, #f do assert.equal(f[i], luacap.core.round_half(luacap.tensor{f[i]}):flat()[1]) end
  end)

  it('saves a checkpoint that a Captioner loads and captions with', function()
    local cap = assert(require('luacap.captioner').load(out .. '/models/best.h5'))
    local img = pipeline.image_path(res.data, res.test_ids[1])
    local got = cap:caption({img})
    assert.is_string(got[1] or got)
  end)
end)
