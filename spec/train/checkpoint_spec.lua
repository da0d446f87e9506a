-- Specs for lua/luacap/train/checkpoint.lua: a tiny seed model and its tokenizer survive a
-- save/load round trip bit for bit; damaged, foreign, old and mismatched files give nil and
-- a message naming the problem; saving never leaves a temporary or a half-written target.
local luacap = require 'luacap'
local ckpt = require 'luacap.train.checkpoint'
local h5 = require 'luacap.h5'
local Seed = require 'luacap.models.seed'
local tokenizer = require 'luacap.data.tokenizer'
local util = require 'helpers.util'

local dir = util.tmpdir()

local read = util.read
local write = util.write
local listing = util.listing

local function tiny(seed)
  luacap.seed(seed)
  local tok = tokenizer.fit{'startseq a red circle endseq', 'startseq a blue square endseq'}
  local model = Seed{vocab_size = tok:vocab_size(), max_len = 5, feat_dim = 6, img_dense = 5,
    embed_dim = 4, units = 3, dec_dense = 5}
  return model, tok
end

-- The saved weight tree of a model: {['model/<layer>/<weight>'] = tensor}.
local function tree_of(model)
  local t = {}
  for _, p in ipairs(model:parameters()) do t['model/' .. p.name:gsub('%.', '/')] = p.value end
  return t
end

describe('checkpoint', function()
  teardown(function() os.execute('rm -rf ' .. dir) end)

  it('round-trips a model and its tokenizer exactly', function()
    local model, tok = tiny(1)
    local path = dir .. '/m.h5'
    assert.is_true(ckpt.save(path, {model = model, tokenizer = tok, meta = {resize = 'nearest'}}))
    local b = assert(ckpt.load(path))
    local want, got = model:parameters(), b.model:parameters()
    assert.equal(#want, #got)
    assert.equal(22, #got)
    for i, p in ipairs(want) do
      assert.equal(p.name, got[i].name)
      assert.same(p.value:shape(), got[i].value:shape())
      assert.same(p.value:totable(), got[i].value:totable())
    end
    assert.same(model:config(), b.config)
    assert.equal(tok:to_json(), b.tokenizer:to_json())
    assert.same({'startseq', 'a', 'endseq', 'red'}, {unpack(b.tokenizer.index_word, 1, 4)})
    assert.same({resize = 'nearest'}, b.meta)
    -- a model from another seed differs, so the equality above is not vacuous
    local other = tiny(2)
    assert.are_not.same(other:parameters()[1].value:totable(), got[1].value:totable())
  end)

  it('round-trips the optimizer state and the training state', function()
    local model = tiny(3)
    local params = model:parameters()
    local opt = luacap.optim.Adam{lr = 0.0005}
    for _, p in ipairs(params) do p.grad:fill(0.01) end
    opt:step(params)
    local path = dir .. '/o.h5'
    -- a callback's best is still inf when no epoch had a finite val_loss
    local ts = {epoch = 4, history = {loss = {2.5, 1.25}}, callbacks = {{best = math.huge}}}
    assert.is_true(ckpt.save(path, {model = model, optimizer = opt, train_state = ts}))
    local b = assert(ckpt.load(path))
    assert.same(ts, b.train_state)
    local opt2 = luacap.optim.Adam{}
    assert.is_true(ckpt.restore_optimizer(b, opt2, b.model:parameters()))
    assert.equal(1, opt2.t)
    assert.equal(0.0005, opt2.lr)
    for _, p in ipairs(params) do
      assert.same(opt.m[p.name]:totable(), opt2.m[p.name]:totable())
      assert.same(opt.v[p.name]:totable(), opt2.v[p.name]:totable())
    end
    local nb = assert(ckpt.load(dir .. '/m.h5'))
    local ok, err = ckpt.restore_optimizer(nb, luacap.optim.Adam{}, nb.model:parameters())
    assert.is_nil(ok)
    assert.equal(dir .. '/m.h5: the file holds no optimizer state to resume from', err)
  end)

  it('refuses a truncated file', function()
    local s = read(dir .. '/m.h5')
    local path = dir .. '/trunc.h5'
    write(path, s:sub(1, math.floor(#s / 2)))
    local b, err = ckpt.load(path)
    assert.is_nil(b)
    assert.matches(path, err, 1, true)
    assert.matches('truncated', err, 1, true)
  end)

  it('refuses a file that is not HDF5', function()
    local path = dir .. '/text.h5'
    write(path, 'epoch,loss\n0,1.0\n')
    local b, err = ckpt.load(path)
    assert.is_nil(b)
    assert.equal(path .. ': not an HDF5 file (no HDF5 signature)', err)
    b, err = ckpt.load(dir .. '/missing.h5')
    assert.is_nil(b)
    assert.matches('^' .. dir .. '/missing.h5: ', err)
  end)

  it('refuses an HDF5 file of another kind, or of another format version', function()
    local model = tiny(4)
    local path = dir .. '/keras.h5'
    assert.is_true(h5.save(path, tree_of(model), {keras_version = '2.15.0'}))
    local b, err = ckpt.load(path)
    assert.is_nil(b)
    assert.equal(path .. ': not a luacap model file (format attribute is missing)', err)
    path = dir .. '/v99.h5'
    assert.is_true(h5.save(path, tree_of(model), {format = 'luacap-model', format_version = '99',
      model_config = require('cjson').encode(model:config())}))
    b, err = ckpt.load(path)
    assert.is_nil(b)
    assert.equal(path .. ': model file format version 99, this luacap reads version 1', err)
  end)

  it('names a missing weight', function()
    local model = tiny(5)
    local t = tree_of(model)
    t['model/dec_lstm/recurrent_kernel'] = nil
    local path = dir .. '/missing_w.h5'
    assert.is_true(h5.save(path, t, {format = 'luacap-model', format_version = '1',
      model_config = require('cjson').encode(model:config())}))
    local b, err = ckpt.load(path)
    assert.is_nil(b)
    assert.equal(path .. ": no weight 'model/dec_lstm/recurrent_kernel' in the file " ..
      '(is it from another model or version?)', err)
  end)

  it('names a wrong-shaped weight, even one with the right number of elements', function()
    local model = tiny(6)
    local cfg = require('cjson').encode(model:config())
    local t = tree_of(model)
    t['model/out/kernel'] = luacap.zeros(5, 9)              -- the model's is (5, 8)
    local path = dir .. '/shape.h5'
    assert.is_true(h5.save(path, t, {format = 'luacap-model', format_version = '1', model_config = cfg}))
    local b, err = ckpt.load(path)
    assert.is_nil(b)
    assert.equal(path .. ": weight 'model/out/kernel' has shape 5x9, the model expects 5x8", err)
    t['model/out/kernel'] = luacap.zeros(8, 5)              -- transposed: 40 elements too
    assert.is_true(h5.save(path, t, {format = 'luacap-model', format_version = '1', model_config = cfg}))
    b, err = ckpt.load(path)
    assert.is_nil(b)
    assert.equal(path .. ": weight 'model/out/kernel' has shape 8x5, the model expects 5x8", err)
  end)

  it('saves atomically: no temporary left, and a failed save leaves the target as it was', function()
    local sub = dir .. '/atomic'
    os.execute('mkdir -p ' .. sub)
    local model, tok = tiny(7)
    local path = sub .. '/best.h5'
    assert.is_true(ckpt.save(path, {model = model, tokenizer = tok}))
    assert.same({'best.h5'}, listing(sub))
    local before = read(path)
    -- Make the write fail. A read-only folder does not stop root (these specs may run as
    -- root), so block the temporary's name "<path>.tmp.<pid>" with a folder instead.
    local pid = read('/proc/self/stat'):match('^(%d+)')
    local blocker = path .. '.tmp.' .. pid
    os.execute('mkdir ' .. blocker)
    local model2 = tiny(8)
    local ok, err = ckpt.save(path, {model = model2, tokenizer = tok})
    os.execute('rmdir ' .. blocker)
    assert.is_nil(ok)
    assert.matches('cannot create ' .. blocker, err, 1, true)
    assert.equal(before, read(path))
    assert.same({'best.h5'}, listing(sub))
    -- and a successful save replaces it whole
    assert.is_true(ckpt.save(path, {model = model2, tokenizer = tok}))
    assert.same({'best.h5'}, listing(sub))
    local b = assert(ckpt.load(path))
    assert.same(model2:parameters()[1].value:totable(), b.model:parameters()[1].value:totable())
  end)
end)
