-- Resume spec for `--model sat` (Show-Attend-Tell): a run with the small CNN trained end to
-- end, dropout 0.3 and the attention penalty on, killed with SIGKILL in the middle of epoch 2
-- (LUACAP_CRASH_AT=step:N, util.crash_point) and resumed with --resume, ends bit for bit
-- where an uninterrupted run ends (--threads 1; judged by tools/kill-check.lua, as the seed
-- model's crash_spec is). Not the kill test itself (tools/kill-test.sh kills at random).
local paths = require 'luacap.data.paths'
local cjson = require 'cjson'
local U = require 'spec.helpers.util'

-- (ok, exit code) of a shell command, under LuaJIT's os.execute and 5.2+'s alike
local function sh(cmd)
  local ok, _, code = os.execute(cmd)
  if type(ok) == 'number' then return ok == 0, math.floor(ok / 256) end
  return ok == true, code
end

describe('--model sat killed (SIGKILL) in epoch 2 and resumed', function()
  local W = U.tmpdir()
  -- sat trains on whole captions: 36 training images x 5 = 180, batch 8: 23 steps an epoch
  -- (the last of 4); step 35 is epoch 2's 12th
  local STEPS, KILL_AT = 23, 35
  local ARGS = ' --model sat --encoder smallcnn --shapes-dir ' .. W .. '/shapes --n-images 40' ..
    ' --shapes-size 32 --data-seed 3 --max-shapes 2 --image-size 32 --cnn-channels 4,8 --units 16' ..
    ' --embed-dim 8 --att-dim 8 --att-lambda 1 --dropout 0.3 --batch-size 8 --epochs 3 --beam 0' ..
    ' --max-test 4 --threads 1 --quiet'
  -- runs examples/train.lua into W/out; pre is put before the script (env, luajit -e)
  local function train(out, extra, pre)
    return sh((pre and pre.env or '') .. ' luajit ' .. (pre and pre.lua or '') .. ' examples/train.lua' ..
      ARGS .. ' --out ' .. W .. '/' .. out .. (extra or '') .. ' >>' .. W .. '/' .. out .. '.log 2>&1')
  end
  local function log(out) return U.read(W .. '/' .. out .. '.log') end
  local function differences(out)
    local p = io.popen('luajit tools/kill-check.lua same ' .. W .. '/ref ' .. W .. '/' .. out .. ' 2>&1')
    local report = p:read('*a')
    p:close()
    return report
  end
  local function history(out) return cjson.decode(U.read(W .. '/' .. out .. '/results/train_history.json')) end
  -- every value of a model file's decoder and encoder parameters, in order, and the bundle
  local function weights(out, file)
    local b = assert(require('luacap.train.checkpoint').load(W .. '/' .. out .. '/models/' .. file))
    local v = {}
    for _, part in ipairs({b.model, b.encoder}) do
      for _, p in ipairs(part:parameters()) do
        for _, x in ipairs(p.value:flat()) do v[#v + 1] = x end
      end
    end
    return v, b
  end
  -- the first index where a and b differ (nil when equal, bit for bit)
  local function first_difference(a, b)
    assert.equal(#a, #b)
    for i = 1, #a do if a[i] ~= b[i] then return i end end
    return nil
  end

  setup(function()
    assert.is_true(train('ref'), log('ref'))
    local ok, code = train('cut', nil, {env = 'LUACAP_CRASH_AT=step:' .. KILL_AT})
    assert.is_false(ok, log('cut'))
    assert.equal(137, code, log('cut'))                  -- 128 + SIGKILL
    for _, copy in ipairs{'ep1', 'norng', 'seed2'} do
      assert(os.execute('cp -r ' .. W .. '/cut ' .. W .. '/' .. copy))
    end
  end)
  teardown(function() os.execute('rm -rf ' .. paths.quote(W)) end)

  it('trains what it says: sat, the small CNN in the update, dropout, the attention penalty', function()
    local ref, b = weights('ref', 'final.h5')
    assert.equal('sat', b.model.cfg.model)
    assert.equal(0.3, b.model.cfg.dropout)
    assert.equal(1, b.model.cfg.att_lambda)
    assert.is_true(b.encoder.trainable)
    local h = history('ref')
    assert.equal(3, #h.loss)
    assert.equal(3, #h.val_loss)
    -- STEPS holds, so the kill lands inside epoch 2
    local ep1, b1 = weights('ep1', 'last.h5')
    assert.equal(STEPS, math.ceil(#b1.train_state.cursor.order / 8))
    assert.truthy(KILL_AT > STEPS and KILL_AT < 2 * STEPS)
    -- epochs 2 and 3 moved the weights, each of the small CNN's tensors among them
    assert.truthy(first_difference(ref, ep1), 'epochs 2-3 left the weights as they were')
    local enc_ep1 = b1.encoder:parameters()
    for i, p in ipairs(b.encoder:parameters()) do
      assert.truthy(first_difference(p.value:flat(), enc_ep1[i].value:flat()), p.name .. ' did not train')
    end
  end)

  it('was killed mid epoch 2: last.h5 and the logs hold epoch 1 only', function()
    assert.truthy(log('cut'):find('crash point step:' .. KILL_AT .. ': SIGKILL', 1, true), log('cut'))
    local _, b = weights('ep1', 'last.h5')
    assert.equal(1, b.train_state.epoch)
    assert.equal(1, #history('ep1').loss)
    local csv = U.read(W .. '/ep1/results/training_log.csv')
    assert.matches('^epoch,loss,lr,val_loss\r\n0,[^\n]*\r\n$', csv)
    assert.falsy(paths.is_file(W .. '/ep1/models/final.h5'))
  end)

  it('resumes with --resume to the uninterrupted run\'s losses, logs and weights, bit for bit', function()
    assert.is_true(train('cut', ' --resume'), log('cut'))
    local ref, got = history('ref'), history('cut')
    assert.same(ref.loss, got.loss)                      -- numbers compared with ==
    assert.same(ref.val_loss, got.val_loss)
    assert.same(ref.lr, got.lr)
    local a, b = weights('ref', 'final.h5'), weights('cut', 'final.h5')
    local i = first_difference(a, b)
    assert.is_nil(i, i and string.format('final.h5 value %d: %.9g, uninterrupted %.9g', i, b[i], a[i]))
    -- and every tensor of final/best/last.h5 (optimizer moments included), the bytes of
    -- train_history.json, training_log.csv, bleu_metrics.json, qualitative_examples.json
    assert.equal('', differences('cut'))
  end)

  it('refuses a resume under another --seed (dropout masks are keyed by it)', function()
    local ok, code = train('seed2', ' --resume --seed 2')
    assert.is_false(ok)
    assert.equal(1, code)
    assert.truthy(log('seed2'):find('cannot resume: .*last%.h5 was trained with %-%-seed 1, this run has %-%-seed 2'),
      log('seed2'))
  end)

  it('can fail: the same resume without the saved generator state (epoch 2\'s shuffle) differs', function()
    local stub = '-e ' .. paths.quote("package.path = 'lua/?.lua;lua/?/init.lua;' .. package.path; " ..
      "package.cpath = 'lua/?.so;' .. package.cpath; require('luacap.core').set_rng_state = function() end")
    assert.is_true(train('norng', ' --resume', {lua = stub}), log('norng'))
    local ref, got = history('ref'), history('norng')
    assert.equal(ref.loss[1], got.loss[1])
    assert.are_not.equal(ref.loss[2], got.loss[2])
    assert.are_not.equal(ref.val_loss[3], got.val_loss[3])
    assert.truthy(first_difference(weights('ref', 'final.h5'), weights('norng', 'final.h5')))
  end)
end)
