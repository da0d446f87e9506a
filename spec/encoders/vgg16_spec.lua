-- Specs for encoders.vgg16: a tiny Keras-layout weights file written here with
-- luacap.h5.save (real layer names, groups and weight_names; channels scaled by 1/32),
-- the encoder against the same network computed layer by layer with the plain kernels,
-- and the weight reader's refusals (wrong shape, missing layer, garbage, truncation).
local luacap = require 'luacap'
local core = luacap.core
local vgg16 = luacap.encoders.vgg16

local keras = require 'helpers.keras'
local W, SIZE, CLASSES, CONVS, DENSES = keras.W, keras.SIZE, keras.CLASSES, keras.CONVS, keras.DENSES
local write_keras = keras.write_keras

local tmp = os.tmpname()
os.remove(tmp)
local function path(tag) return tmp .. '_' .. tag .. '.h5' end

local close = require('helpers.util').close

-- The same network with the plain kernels: direct convolution, pooling, loop dense.
local function reference(tensors, x, upto)
  local h = x
  for i, c in ipairs(CONVS) do
    local t = tensors[c[1]]
    local k, b = t[c[1] .. '_W_1:0'], t[c[1] .. '_b_1:0']
    local out = luacap.zeros(h:size(1), h:size(2), h:size(3), c[3])
    core.conv2d_forward_ref(out, h, k, b, 1, 1, 'same', true)
    h = out
    if c[1] == upto then return h end
    if i == 2 or i == 4 or i == 7 or i == 10 or i == 13 then
      local p = luacap.zeros(h:size(1), h:size(2) / 2, h:size(3) / 2, c[3])
      core.maxpool2d_forward(p, h, 2, 2, 2, 2, 'valid')
      h = p
    end
  end
  if upto == 'block5_pool' then return h end
  h = h:reshape(h:size(1), -1)
  for _, d in ipairs(DENSES) do
    local t = tensors[d[1]]
    local out = luacap.zeros(h:size(1), d[3])
    core.dense_forward_ref(out, h, t[d[1] .. '_W_1:0'], t[d[1] .. '_b_1:0'], d[1] ~= 'predictions')
    h = out
    if d[1] == upto then return h end
  end
  return h
end

local function tiny(opts)
  opts.width, opts.input_size, opts.classes = W, SIZE, CLASSES
  return vgg16.new(opts)
end

describe('encoders.vgg16', function()
  local good = path('good')
  local tensors = write_keras(good)
  teardown(function()
    for _, tag in ipairs{'good', 'shape', 'missing', 'garbage', 'trunc', 'notop'} do
      os.remove(path(tag))
    end
  end)

  it('gives the layer-by-layer reference result at fc2, block5_pool and block5_conv3', function()
    luacap.seed(5)
    local x = luacap.normal(0, 50, 2, SIZE, SIZE, 3)   -- caffe-mode pixel scale
    for _, case in ipairs{{'fc2', {2, 128}}, {'block5_pool', {2, 1, 1, 16}},
                          {'block5_conv3', {2, 2, 2, 16}}, {'fc1', {2, 128}}} do
      local enc = assert(tiny{weights = good, output = case[1]})
      local out = enc:forward(x)
      assert.same(case[2], out:shape())
      local ref = reference(tensors, x, case[1])
      assert.is_true(ref:norm() > 0)
      close(ref, out, 1e-3)
      local n = 1
      for i = 2, #case[2] do n = n * case[2][i] end
      assert.equal(n, enc.out_dim)
    end
  end)

  it('keeps fc2 within 1e-4 of the direct computation with every conv algorithm', function()
    -- maps of 32, 16, 8, 4, 2: F(4) tiles overhang the last two, F(2) the last but one
    luacap.seed(6)
    local x = luacap.normal(0, 50, 3, SIZE, SIZE, 3)
    local ref = reference(tensors, x, 'fc2')
    local rf, mx = ref:flat(), 0
    for _, v in ipairs(rf) do mx = math.max(mx, math.abs(v)) end
    assert.is_true(mx > 0)
    for _, alg in ipairs{'auto', 'direct', 'winograd4', 'winograd2'} do
      local enc = assert(tiny{weights = good, output = 'fc2', conv_algorithm = alg})
      local of, md = enc:forward(x):flat(), 0
      for i = 1, #rf do md = math.max(md, math.abs(of[i] - rf[i])) end
      assert(md / mx < 1e-4, string.format('%s: %g', alg, md / mx))
    end
    assert.has_error(function() tiny{conv_algorithm = 'fft'} end,
      "vgg16: conv_algorithm must be auto, direct, winograd4 or winograd2, got 'fft'")
  end)

  it('ends in a softmax for predictions', function()
    luacap.seed(6)
    local enc = assert(tiny{weights = good, output = 'predictions'})
    local p = enc:forward(luacap.normal(0, 50, 3, SIZE, SIZE, 3))
    assert.same({3, CLASSES}, p:shape())
    for b = 1, 3 do
      local s = 0
      for k = 1, CLASSES do s = s + p:get(b, k) end
      assert.is_true(math.abs(s - 1) < 1e-5)
    end
  end)

  it('has the real VGG16 shapes: 138,357,544 parameters, fc2 of 4096', function()
    luacap.seed(1)
    local enc = assert(vgg16.new{output = 'predictions'})
    local n = 0
    for _, p in ipairs(enc:parameters()) do n = n + p.value:numel() end
    assert.equal(138357544, n)
    assert.equal(1000, enc.out_dim)
    assert.equal('block1_conv1.kernel', enc:parameters()[1].name)
    assert.same({3, 3, 3, 64}, enc:parameters()[1].value:shape())
    assert.same({25088, 4096}, enc.net:get('fc1').kernel:shape())   -- 7*7*512 flattened
    enc = nil      -- luacheck: ignore 311 (dropped so the collector can free 528 MiB)
    collectgarbage()
    local notop = assert(vgg16.new{output = 'block5_pool'})
    assert.same({7, 7, 512}, notop.out_shape)
    assert.equal(25088, notop.out_dim)
  end)

  it('rebuilds from its config through encoders.build', function()
    local enc = assert(tiny{weights = good, output = 'fc2'})
    local again = assert(luacap.encoders.build(enc:config()))
    local x = luacap.normal(0, 50, 1, SIZE, SIZE, 3)
    assert.same(enc:forward(x):flat(), again:forward(x):flat())
    assert.equal(luacap.encoders.fingerprint(enc), luacap.encoders.fingerprint(again))
  end)

  it('rejects a kernel of the wrong shape, naming file, layer and shapes', function()
    local p = path('shape')
    write_keras(p, function(t)
      t.block2_conv1['block2_conv1_W_1:0'] = luacap.zeros(3, 3, 2, 5)
    end)
    local enc, err = tiny{weights = p}
    assert.is_nil(enc)
    assert.equal('vgg16: ' .. p .. ': layer block2_conv1: kernel block2_conv1_W_1:0 has shape ' ..
      '(3, 3, 2, 5), expected (3, 3, 2, 4) = (KH, KW, C, OC)', err)
  end)

  it('rejects a file missing a layer', function()
    local p = path('missing')
    write_keras(p, function(t, attrs, names)
      t.fc1 = nil
      attrs['/fc1'] = nil
      for i, n in ipairs(names) do if n == 'fc1' then table.remove(names, i) end end
    end)
    local enc, err = tiny{weights = p}
    assert.is_nil(enc)
    assert.truthy(err:find(p .. ': layer fc1 is missing', 1, true), err)
    assert.truthy(err:find('_notop', 1, true), err)
    -- the same file serves the convolutional part
    assert.truthy(tiny{weights = p, output = 'block5_pool'})
  end)

  it('rejects garbage bytes, a truncated file and a missing file', function()
    local g = path('garbage')
    local f = assert(io.open(g, 'wb'))
    f:write(string.rep('not an hdf5 file ', 100))
    f:close()
    local enc, err = tiny{weights = g}
    assert.is_nil(enc)
    assert.truthy(err:find(g .. ': not a readable Keras weights file', 1, true), err)

    local tr = path('trunc')
    local src = assert(io.open(good, 'rb'))
    local bytes = src:read('*a')
    src:close()
    f = assert(io.open(tr, 'wb'))
    f:write(bytes:sub(1, math.floor(#bytes * 0.6)))
    f:close()
    enc, err = tiny{weights = tr}
    assert.is_nil(enc)
    assert.truthy(err:find(tr, 1, true), err)

    enc, err = tiny{weights = path('absent')}
    assert.is_nil(enc)
    assert.truthy(err:find('VGG16 weights file not found', 1, true), err)
  end)

  it('checks its input shape and refuses backward', function()
    local enc = assert(tiny{weights = good})
    assert.has_error(function() enc:forward(luacap.zeros(1, 31, 32, 3)) end,
      'vgg16: images have shape (1, 31, 32, 3), expected (B, 32, 32, 3)')
    assert.has_error(function() enc:backward() end)
  end)
end)
