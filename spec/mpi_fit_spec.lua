-- Specs for data-parallel fit (lua/luacap/train/distributed.lua, fit's dist option) on 2
-- local ranks under mpirun and timeout: the seed model with dropout trained 20 steps on 2
-- ranks with global batch 32 ends with the weights (and losses) of one process with batch
-- 32; self-critical training on 2 ranks ends where 1 process ends. Pending when mpirun or
-- mpi_core.so is missing (see spec/helpers/mpi.lua).
local H = require 'spec.helpers.mpi'
local U = require 'spec.helpers.util'

local function numbers(path)
  local t = {}
  for line in io.lines(path) do t[#t + 1] = tonumber(line) end
  return t
end

-- the largest |a - b| / max(1, |a|) (the specs' relative tolerance) and the norm ratio
local function compare(a, b)
  assert.equal(#a, #b)
  local worst, dd, aa = 0, 0, 0
  for i = 1, #a do
    local d = math.abs(a[i] - b[i])
    worst = math.max(worst, d / math.max(1, math.abs(a[i])))
    dd, aa = dd + d * d, aa + a[i] * a[i]
  end
  return worst, math.sqrt(dd / aa)
end

-- Runs script on 2 ranks ('dist ' .. two_args) and twice as one process ('single ' .. the
-- other args), each writing its numbers to the file its args name.
local function run_three(script, two_args, one_args, other_args)
  local out, ok = H.run(2, script, 'dist ' .. two_args, 60)
  assert(ok, out)
  assert(os.execute('luajit ' .. script .. ' single ' .. one_args .. ' >/dev/null 2>&1'))
  assert(os.execute('luajit ' .. script .. ' single ' .. other_args .. ' >/dev/null 2>&1'))
end

-- The 2-rank numbers (file two) equal the 1-process ones (file one) to 1e-5, and the
-- comparison can fail: the run with the other setting (file other, what) is far from them.
-- Returns the three differences.
local function assert_agree(one, two, other, min_count, what)
  local a, b, c = numbers(one), numbers(two), numbers(other)
  assert.truthy(#a > min_count, #a .. ' numbers')
  local worst, rel = compare(a, b)
  assert.truthy(worst <= 1e-5, 'largest difference ' .. worst)
  assert.truthy(rel <= 1e-5, 'relative norm of the difference ' .. rel)
  local w2 = compare(a, c)
  assert.truthy(w2 > 1e-3, what .. ' differs by only ' .. w2)
  return worst, rel, w2
end

describe('data-parallel fit on 2 ranks', function()
  if not H.usable() then
    pending('skipped: ' .. H.why_not())
    return
  end

  it('20 steps of the seed model with dropout: 2 ranks x global batch 32 = 1 process x batch 32 (1e-5), ' ..
     'gradients allreduced in buckets started during backward', function()
      local dir = U.tmpdir()
      local one, two, half = dir .. '/one.txt', dir .. '/two.txt', dir .. '/half.txt'
      -- buckets of 0.002 MiB (524 values): several, each started as its layers finish
      run_three('spec/mpi/fit_equal.lua', two .. ' 32 1 0.002', one, half .. ' 16')
      local nb, early, steps = U.read(two .. '.buckets'):match('(%d+) (%d+) (%d+)')
      nb, early, steps = tonumber(nb), tonumber(early), tonumber(steps)
      assert.equal(20, steps)
      assert.truthy(nb >= 5, nb .. ' buckets')
      assert.equal(nb * steps, early)      -- every bucket of every step started inside backward
      -- another batch size (other updates) is far from it
      local worst, rel, w2 = assert_agree(one, two, half, 4000, 'batch 16')
      if os.getenv('LUACAP_MPI_SPEC_VERBOSE') then
        print(string.format('fit: 2 ranks vs 1 process %.3g (norm %.3g); batch 16 vs 32 %.3g', worst, rel, w2))
      end
      os.execute('rm -rf "' .. dir .. '"')
    end)

  it('12 steps of sat (whole captions of unequal lengths, attention penalty, dropout, a CNN in every batch): ' ..
     '2 ranks x global batch 16 = 1 process x batch 16 (1e-5)', function()
    local dir = U.tmpdir()
    local one, two, half = dir .. '/one.txt', dir .. '/two.txt', dir .. '/half.txt'
    run_three('spec/mpi/sat_equal.lua', two, one, half .. ' 8')
    local worst, rel, w2 = assert_agree(one, two, half, 1000, 'batch 8')
    if os.getenv('LUACAP_MPI_SPEC_VERBOSE') then
      print(string.format('sat: 2 ranks vs 1 process %.3g (norm %.3g); batch 8 vs 16 %.3g', worst, rel, w2))
    end
    os.execute('rm -rf "' .. dir .. '"')
  end)

  for _, kind in ipairs({'seed', 'sat'}) do
    it('2 epochs of self-critical training (' .. kind .. ', keyed samples, one rank without images in ' ..
       'the last batch) on 2 ranks = 1 process (1e-5), the logged means the same', function()
      local dir = U.tmpdir()
      local one, two, other = dir .. '/one.txt', dir .. '/two.txt', dir .. '/other.txt'
      run_three('spec/mpi/scst_equal.lua', kind .. ' ' .. two, kind .. ' ' .. one, kind .. ' ' .. other .. ' 18')
      -- other samples (another sample seed) train other weights
      assert_agree(one, two, other, 1000, 'another sample seed')
      local la, lb = U.read(one .. '.log'), U.read(two .. '.log')
      assert.matches('SCST epoch 2/2: mean reward', la)
      assert.equal(la:gsub('in [%d.]+ s', ''), (lb:gsub('in [%d.]+ s', '')))
      os.execute('rm -rf "' .. dir .. '"')
    end)
  end

  it('train.lua --distributed --scst-epochs 1: 2 ranks end SCST with the weights of 1 rank (1e-5), ' ..
     'each rank decoding its share of the test split before and after', function()
    local dir = U.tmpdir()
    local args = ' --n-images 30 --shapes-size 32 --image-size 16 --embed-dim 8 --units 8 --img-dense 8' ..
      ' --dec-dense 8 --feat-dim 8 --encoder smallcnn --dropout 0.3 --beam 2 --max-test 5 --threads 1' ..
      ' --batch-size 16 --steps-per-epoch 6 --validation-steps 2 --epochs 1 --scst-epochs 1 --scst-batch 4' ..
      ' --scst-lr 0.01 --quiet --distributed --shapes-dir ' .. dir .. '/shapes'
    for _, n in ipairs({2, 1}) do
      local log, ok = H.run(n, 'examples/train.lua --out ' .. dir .. '/r' .. n .. args, nil, 90)
      assert(ok, log)
    end
    local ckpt = require 'luacap.train.checkpoint'
    local function weights(path)
      local t = {}
      for _, p in ipairs(assert(ckpt.load(path)).model:parameters()) do
        for _, v in ipairs(p.value:flat()) do t[#t + 1] = v end
      end
      return t
    end
    local two, one = weights(dir .. '/r2/models/scst.h5'), weights(dir .. '/r1/models/scst.h5')
    local worst, rel = compare(one, two)
    assert.truthy(worst <= 1e-5 and rel <= 1e-5, string.format('%g, %g', worst, rel))
    -- the comparison can fail: SCST moved the weights from the cross-entropy model's
    local moved = compare(two, weights(dir .. '/r2/models/best.h5'))
    assert.truthy(moved > 1e-4, 'SCST changed the weights by only ' .. moved)
    local cjson = require 'cjson'
    local m = cjson.decode(U.read(dir .. '/r2/results/bleu_metrics.json'))
    assert.truthy(m.test_images >= 2, m.test_images .. " test images: a rank had none")
    assert.truthy(m.scst and m.scst.before and m.scst.before_beam and m.scst.after)
    os.execute('rm -rf "' .. dir .. '"')
  end)

  it('a 2-rank run killed (SIGKILL) in epoch 2 resumes with --resume on 1 and on 2 ranks to the ' ..
     'weights of an uninterrupted 2-rank run', function()
    local dir = U.tmpdir()
    local args = ' --n-images 30 --shapes-size 32 --image-size 16 --embed-dim 8 --units 8 --img-dense 8' ..
      ' --dec-dense 8 --feat-dim 8 --encoder smallcnn --dropout 0.3 --beam 0 --max-test 4 --threads 1' ..
      ' --batch-size 16 --steps-per-epoch 6 --validation-steps 2 --quiet --shapes-dir ' .. dir .. '/shapes'
    local function train(n, out, extra, env, fails)
      local cmd = 'examples/train.lua --out ' .. dir .. '/' .. out .. args .. ' ' .. extra
      if n == 1 then
        assert(os.execute('luajit ' .. cmd .. ' >' .. dir .. '/log 2>&1'), U.read(dir .. '/log'))
      else
        local log, ok = H.run(n, cmd .. ' --distributed', nil, 90, env)
        if fails then return log, ok end
        assert(ok, log)
      end
    end
    train(2, 'full', '--epochs 3')
    -- every rank sends itself SIGKILL after its 9th training step (epoch 2's third of six;
    -- util.crash_point, as tools/kill-test.sh does): mpirun ends the job
    local log, ok = train(2, 'cut', '--epochs 3', 'LUACAP_CRASH_AT=step:9', true)
    assert.is_false(ok, log)
    assert.truthy(log:find('crash point step:9: SIGKILL', 1, true), log)
    assert(os.execute('cp -r ' .. dir .. '/cut ' .. dir .. '/cut1 && cp -r ' .. dir .. '/cut ' .. dir .. '/ep1'))
    train(2, 'cut', '--epochs 3 --resume')
    train(1, 'cut1', '--epochs 3 --resume')
    local ckpt = require 'luacap.train.checkpoint'
    local function weights(out, epoch)
      local b = assert(ckpt.load(dir .. '/' .. out .. '/models/last.h5'))
      assert.equal(epoch or 3, b.train_state.epoch)
      local t = {}
      for _, p in ipairs(b.model:parameters()) do
        for _, v in ipairs(p.value:flat()) do t[#t + 1] = v end
      end
      for _, p in ipairs(b.encoder:parameters()) do
        for _, v in ipairs(p.value:flat()) do t[#t + 1] = v end
      end
      return t
    end
    local full, two, one = weights('full'), weights('cut'), weights('cut1')
    local w2, r2 = compare(full, two)
    assert.truthy(w2 <= 1e-5 and r2 <= 1e-5, string.format('2 ranks resumed: %g, %g', w2, r2))
    local w1, r1 = compare(full, one)
    assert.truthy(w1 <= 1e-5 and r1 <= 1e-5, string.format('1 rank resumed: %g, %g', w1, r1))
    -- the comparison can fail: epochs 2 and 3 moved the weights
    local w0 = compare(full, weights('ep1', 1))
    assert.truthy(w0 > 1e-4, 'epochs 2-3 changed the weights by only ' .. w0)
    if os.getenv('LUACAP_MPI_SPEC_VERBOSE') then
      print(string.format('resume: 2 ranks %.3g (norm %.3g), 1 rank %.3g (norm %.3g), vs epoch 1 %.3g',
        w2, r2, w1, r1, w0))
    end
    os.execute('rm -rf "' .. dir .. '"')
  end)
end)
