-- Specs for fine-tuning VGG16 (encoders.vgg16's fine_tune_from) on the tiny Keras-layout
-- weights file (channels 1/32, 32 x 32 input): the tail's gradients against central
-- differences, prefix then tail against the whole frozen network, the split's names and
-- errors, Adam's encoder learning rate, and a pipeline run (--fine-tune-from block5) whose
-- cached prefix maps, saved tail weights and captions from a fresh process are checked.
local luacap = require 'luacap'
local vgg16 = luacap.encoders.vgg16
local gradcheck = require 'helpers.gradcheck'
local keras = require 'helpers.keras'
local U = require 'helpers.util'

local dir = U.tmpdir()
local weights = dir .. '/vgg16.h5'
local tensors = keras.write_keras(weights)

local function tiny(opts)
  opts.width, opts.input_size, opts.classes, opts.weights = keras.W, keras.SIZE, keras.CLASSES, weights
  return assert(vgg16.new(opts))
end

-- Caffe-scale images (B, 32, 32, 3).
local function images(B, seed)
  luacap.seed(seed)
  return luacap.normal(0, 50, B, keras.SIZE, keras.SIZE, 3)
end

local VERBOSE = os.getenv('LUACAP_SPEC_VERBOSE')

-- Which linear piece the tail's network is on (gradcheck's signature): every ReLU's mask
-- and every 2 x 2 max-pool's switches (the position of each window's first maximum).
local function pieces(net)
  local parts = {}
  for i, layer in ipairs(net.children) do
    if layer.relu then
      local o, bits = layer.out:flat(), {}
      for k = 1, #o do bits[k] = o[k] > 0 and 1 or 0 end
      parts[#parts + 1] = table.concat(bits)
    elseif layer.__name == 'MaxPool2d' then
      local x = net.inputs[i]                       -- (B, H, W, C)
      local B, H, W, C = unpack(x:shape())
      local xf, sw = x:flat(), {}
      for b = 0, B - 1 do for h = 0, H - 2, 2 do for w = 0, W - 2, 2 do for c = 0, C - 1 do
        local best, at = -math.huge, 0
        for k = 0, 3 do
          local v = xf[((b * H + h + math.floor(k / 2)) * W + w + k % 2) * C + c + 1]
          if v > best then best, at = v, k end
        end
        sw[#sw + 1] = at
      end end end end
      parts[#parts + 1] = table.concat(sw)
    end
  end
  return table.concat(parts, '|')
end

describe('encoders.vgg16 fine_tune_from', function()

  it("checks the tail's weight and input gradients against central differences", function()
    -- block5 to block5_conv3 (sat's map: 3 convs on 2 x 2 maps) and to fc2 (+ pool, fc1, fc2).
    -- The direct convolution: the Winograd forward ('auto') is the same function to 1e-4
    -- (vgg16_spec), but its transforms move outputs by an ulp that the direct sum leaves
    -- alone, noise the quotients below would see. Images at std 1 (maps up to about 7):
    -- L (about 9 at block5_conv3, 40 at fc2) carries float32 rounding of 1e-6 to 1e-5,
    -- up to 2e-3 in a quotient over 2h = 6e-3 (the most seen over 8 seeds); hence atol
    -- 3e-3 besides the relative 1e-2. Steps that cross a ReLU or pool switch are skipped.
    for _, output in ipairs{'block5_conv3', 'fc2'} do
      local enc = tiny{output = output, fine_tune_from = 'block5', conv_algorithm = 'direct'}
      local tail = enc.tail
      luacap.seed(11)
      local maps = enc.prefix:forward(luacap.normal(0, 1, 2, keras.SIZE, keras.SIZE, 3)):clone()
      assert.same({2, 2, 2, 16}, maps:shape())                    -- block4_pool
      local ok, report = gradcheck.module_check(tail, {input = maps, input_name = 'maps',
        forward = function() return tail:forward(maps) end,
        backward = function(R) return tail:backward(maps, R) end,
        signature = function() return pieces(tail.net) end,
        eps = 3e-3, tol = 1e-2, atol = 3e-3})
      if VERBOSE then print(output .. ':\n' .. report) end
      assert(ok, report)
      local n = 0
      for _ in report:gmatch('worst relative error') do n = n + 1 end
      assert.equal(output == 'fc2' and 11 or 7, n)     -- the maps and every kernel and bias
    end
  end)

  it('gives the frozen network\'s output as prefix then tail, for every split and output', function()
    local x = images(3, 12)
    for _, output in ipairs{'block5_conv3', 'block5_pool', 'fc1', 'fc2'} do
      local want = tiny{output = output}:forward(x):clone()
      for _, from in ipairs{'block1', 'block3_conv2', 'block5', 'block5_conv3'} do
        local enc = tiny{output = output, fine_tune_from = from}
        local got = enc.tail:forward(enc.prefix:forward(x)):clone()
        assert.same({3, enc.out_dim}, got:shape())       -- the rows the feature cache would hold
        U.close(want, got, 1e-5)
        U.close(want, enc:forward(x), 1e-5)               -- the whole encoder on images
      end
    end
    -- sat's regions: (B, L, D) from the tail as from the frozen encoder
    local frozen = tiny{output = 'block5_conv3'}:use_regions()
    local enc = tiny{output = 'block5_conv3', fine_tune_from = 'block5'}:use_regions()
    assert.same({3, 4, 16}, enc:forward(x):shape())
    U.close(frozen:forward(x), enc.tail:forward(enc.prefix:forward(x)), 1e-5)
  end)

  it('splits where asked: the prefix frozen and named by its last layer, the tail trainable', function()
    local enc = tiny{output = 'block5_conv3', fine_tune_from = 'block5'}
    assert.is_true(enc.trainable)
    assert.is_false(enc.prefix.trainable)
    assert.same({2, 2, 16}, enc.prefix.out_shape)
    assert.equal('block4_pool', enc.prefix.cfg.output)
    assert.equal('block5_conv1', enc.prefix.cfg.fine_tune_from)
    -- the parameters trained and saved: the tail's; the prefix has no gradient buffers
    local names = {}
    for i, p in ipairs(enc:parameters()) do names[i] = p.name; assert.is_not_nil(p.grad) end
    assert.same({'block5_conv1.kernel', 'block5_conv1.bias', 'block5_conv2.kernel', 'block5_conv2.bias',
      'block5_conv3.kernel', 'block5_conv3.bias'}, names)
    for _, p in ipairs(enc.prefix:parameters()) do assert.is_nil(p.grad) end
    -- a layer name is taken as it is; the feature cache's key differs from a whole network's
    assert.equal('block5_conv1', tiny{output = 'fc2', fine_tune_from = 'block5_conv2'}.prefix.cfg.output)
    assert.equal('input', tiny{output = 'fc2', fine_tune_from = 'block1'}.prefix.cfg.output)
    assert.equal('flatten', tiny{output = 'fc2', fine_tune_from = 'fc1'}.prefix.cfg.output)
    assert.are_not.same(tiny{output = 'block5_conv3'}:config(), enc.prefix:config())
    -- a rebuilt encoder (a model file's) has the same split
    local again = assert(luacap.encoders.build(enc:config()))
    assert.equal(enc.prefix.cfg.output, again.prefix.cfg.output)
  end)

  it('names the valid blocks and layers for an unknown one, and refuses predictions', function()
    assert.has_error(function() tiny{output = 'block5_conv3', fine_tune_from = 'fc1'} end,
      "vgg16: fine_tune_from 'fc1' is not a block or layer of VGG16 up to block5_conv3 (expected " ..
      'one of block1, block2, block3, block4, block5, block1_conv1, block1_conv2, block2_conv1, ' ..
      'block2_conv2, block3_conv1, block3_conv2, block3_conv3, block4_conv1, block4_conv2, ' ..
      'block4_conv3, block5_conv1, block5_conv2, block5_conv3)')
    assert.has_error(function() tiny{output = 'fc2', fine_tune_from = 'block6'} end)
    assert.has_error(function() tiny{output = 'predictions', fine_tune_from = 'block5'} end,
      'vgg16: fine_tune_from needs output fc2, fc1, block5_pool or block5_conv3, not predictions ' ..
      '(its softmax has no backward)')
    local enc = tiny{output = 'fc2', fine_tune_from = 'block5'}
    assert.has_error(function() enc.tail:forward(luacap.zeros(1, 4, 4, 16)) end,
      "vgg16: the fine-tuned tail's input has shape (1, 4, 4, 16), expected (B, 2, 2, 16): " ..
      'the maps of the prefix up to block4_pool')
    assert.has_error(function() tiny{output = 'fc2'}:use_regions() end)
  end)

  it('steps the tail at --cnn-lr and the model at --lr: first Adam step lr * sign(g)', function()
    local pipeline = require 'luacap.pipeline'
    local fit = require 'luacap.train.fit'
    local enc = tiny{output = 'fc2', fine_tune_from = 'fc2'}      -- the tail is fc2 alone
    local Dense = require 'luacap.nn.Dense'
    local model = Dense(3, 2, {name = 'head'})
    local params = fit.trained_params(model, enc.tail)
    assert.equal('encoder.fc2.kernel', params[3].name)
    local opt = {lr = 1e-3, cnn_lr = 1e-4}
    local adam = pipeline.optimizer(opt)
    luacap.seed(13)
    local before = {}
    for i, p in ipairs(params) do
      -- gradients of at least 0.05: the epsilon's share of the step (1e-7 / sqrt(1e-3) / |g|) < 1e-4
      local g = luacap.core.rand(0.05, 1, p.value:numel()):flat()
      for k = 1, #g do if k % 2 == 0 then g[k] = -g[k] end end
      p.grad:copy(luacap.tensor(g):reshape(unpack(p.value:shape())))
      before[i] = p.value:flat()
    end
    adam:step(params)
    for i, p in ipairs(params) do
      local lr = p.name:match('^encoder%.') and 1e-4 or 1e-3
      local after, g = p.value:flat(), p.grad:flat()
      for k = 1, #after do
        local want = before[i][k] - lr * (g[k] > 0 and 1 or -1)
        assert(math.abs(after[k] - want) <= 1e-4 * lr + 2e-7 * math.abs(want),
          string.format('%s[%d]: moved %.6g, expected %.6g', p.name, k, after[k] - before[i][k], want - before[i][k]))
      end
    end
    -- the encoder's rate is a multiplier on lr, so ReduceLROnPlateau's change of lr moves both
    assert.near(0.1, adam.lr_scale['encoder.'], 1e-15)
  end)
end)

describe('pipeline --fine-tune-from block5', function()
  local pipeline = require 'luacap.pipeline'
  local cjson = require 'cjson'
  local out = dir .. '/out'
  local function opts(extra)
    local o = {out = out, shapes_dir = dir .. '/shapes', n_images = 20, shapes_size = 32, data_seed = 3,
      seed = 7, epochs = 1, batch_size = 16, lr = 0.005, cnn_lr = 0.002, embed_dim = 8, units = 8,
      att_dim = 8, dropout = 0, lr_patience = 3, lr_factor = 0.5, es_patience = 6, decode_batch = 64,
      quiet = true, encoder = 'vgg16', vgg16_weights = weights, model = 'sat', beam = 0,
      fine_tune_from = 'block5',
      encoder_options = {width = keras.W, input_size = keras.SIZE, classes = keras.CLASSES}}
    for k, v in pairs(extra or {}) do o[k] = v end
    return o
  end
  local res
  setup(function() res = pipeline.run(opts()) end)
  teardown(function() os.execute('rm -rf "' .. dir .. '"') end)    -- the last describe here

  it('caches the prefix maps under the split and trains the tail from the Keras weights', function()
    local ids, m, cfg = luacap.features.load(out .. '/img_features_vgg16_block4_pool.h5')
    assert.equal(20, #ids)
    assert.same({20, 2 * 2 * 16}, m:shape())       -- block4_pool maps (2, 2, 16) per image
    assert.equal('block5_conv1', cfg.fine_tune_from)
    assert.equal(20, res.data.features_info.computed)
    assert.equal(4, res.model.cfg.regions)              -- block5_conv3: 2 x 2 regions of 16
    assert.is_false(res.data.features_info.rebuilt)
    for _, p in ipairs(res.encoder:parameters()) do
      local layer, what = p.name:match('^(.-)%.(%a+)$')
      local keras_w = tensors[layer][layer .. (what == 'kernel' and '_W_1:0' or '_b_1:0')]
      local d = p.value:clone():add(keras_w, -1):norm()
      assert(d > 1e-4, p.name .. ' did not move')
    end
    -- the frozen layers did not
    local b4 = res.encoder.net:get('block4_conv3').kernel
    U.close(tensors.block4_conv3['block4_conv3_W_1:0'], b4, 0)
  end)

  it('saves the tail with the model, and a fresh process captions as the run did', function()
    local path = out .. '/models/best.h5'
    local tree = assert(luacap.h5.load(path))
    local saved = {}
    for name in pairs(tree.encoder) do saved[#saved + 1] = name end
    table.sort(saved)
    assert.same({'block5_conv1', 'block5_conv2', 'block5_conv3'}, saved)
    -- the round trip: the loaded encoder is prefix (Keras) then the saved tail
    local b = assert(require('luacap.train.checkpoint').load(path))
    assert.is_truthy(b.encoder.tail)
    for i, p in ipairs(b.encoder:parameters()) do
      U.close(res.encoder:parameters()[i].value, p.value, 0)
    end
    -- examples/caption.lua on the test images, in one batch as the pipeline decoded them
    local files = {}
    for i, id in ipairs(res.test_ids) do files[i] = pipeline.image_path(res.data, id) end
    local p = io.popen('luajit examples/caption.lua --json --batch 64 --model ' .. path .. ' ' ..
      table.concat(files, ' ') .. ' 2>&1')
    local got = {}
    for line in p:lines() do got[#got + 1] = cjson.decode(line).caption end
    p:close()
    assert.same(res.preds, got)
  end)

  it('resumes to the same losses and tail as a run never stopped', function()
    local o = opts({out = dir .. '/two', epochs = 2})
    local straight = pipeline.run(o)
    o.out = dir .. '/resumed'
    o.epochs = 1
    pipeline.run(o)
    o.epochs, o.resume = 2, true
    local resumed = pipeline.run(o)
    assert.same(straight.history.loss, resumed.history.loss)
    assert.equal(20, resumed.data.features_info.reused)
    for i, p in ipairs(straight.encoder:parameters()) do
      U.close(p.value, resumed.encoder:parameters()[i].value, 0)
    end
  end)

  it('refuses the small CNN, --freeze-encoder and --cnn-lr without a trained encoder', function()
    assert.has_error(function() pipeline.choose_encoder(opts({encoder = 'smallcnn'})) end,
      "--fine-tune-from fine-tunes VGG16's blocks (--encoder vgg16), not the smallcnn encoder " ..
      '(the small CNN trains whole: leave --fine-tune-from out)')
    assert.has_error(function() pipeline.choose_encoder(opts({freeze_encoder = true})) end,
      '--fine-tune-from trains the chosen VGG16 blocks and --freeze-encoder freezes the encoder: ' ..
      'give one of them')
    local frozen = opts()
    frozen.fine_tune_from = nil
    assert.has_error(function() pipeline.choose_encoder(frozen) end,
      '--cnn-lr is the learning rate of a trained encoder: give --fine-tune-from BLOCK (vgg16) or ' ..
      'train the small CNN (without --freeze-encoder)')
    local args = require('luacap.cli.train').parser('train.lua'):parse({'--fine-tune-from', 'block4',
      '--cnn-lr', '1e-4'})
    assert.equal('block4', args.fine_tune_from)
    assert.equal(1e-4, args.cnn_lr)
  end)
end)
