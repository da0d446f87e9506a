-- End-to-end specs of the notebook's run (lua/luacap/pipeline.lua) on a tiny synthetic
-- dataset: every output file, a falling loss, a model file that captions the same in a
-- new process, batched decoding equal to one image at a time, and exact resuming.
local luacap = require 'luacap'
local cjson = require 'cjson'
local pipeline = require 'luacap.pipeline'
local util = require 'luacap.util'

local tmp = os.tmpname()
os.remove(tmp)
local shapes_dir = tmp .. '_shapes'

local function opts(out, extra)
  local o = {out = out, shapes_dir = shapes_dir, n_images = 40, shapes_size = 32, data_seed = 3,
    seed = 7, epochs = 3, batch_size = 16, lr = 0.005, embed_dim = 12, units = 8, img_dense = 12,
    dec_dense = 12, dropout = 0.2, feat_dim = 12, image_size = 16, lr_patience = 3, lr_factor = 0.5,
    es_patience = 6, decode_batch = 64, quiet = true, encoder = 'smallcnn', beam = 2}
  for k, v in pairs(extra or {}) do o[k] = v end
  return o
end

local function read(path)
  local s, err = util.read_file(path)
  if not s then error(err) end
  return s
end

describe('pipeline', function()
  local out = tmp .. '_run'
  local res

  setup(function() res = pipeline.run(opts(out)) end)
  teardown(function() os.execute('rm -rf ' .. tmp .. '_*') end)

  it('writes every output the notebook writes', function()
    for _, f in ipairs({'models/best.h5', 'models/final.h5', 'models/last.h5',
        'results/training_log.csv', 'results/train_history.json', 'results/bleu_metrics.json',
        'results/qualitative_examples.json', 'results/qualitative_examples.png',
        'results/train_val_loss_curve.png', 'results/index.html'}) do
      assert.is_true(require('luacap.data.paths').is_file(out .. '/' .. f), f)
    end
    local csv = read(out .. '/results/training_log.csv')
    assert.matches('^epoch,loss,lr,val_loss\r\n0,', csv)
    local hist = cjson.decode(read(out .. '/results/train_history.json'))
    assert.equal(3, #hist.loss)
    assert.equal(3, #hist.val_loss)
    assert.equal(3, #hist.lr)
    local m = cjson.decode(read(out .. '/results/bleu_metrics.json'))
    for _, k in ipairs({'BLEU-1', 'BLEU-2', 'BLEU-3', 'BLEU-4', 'METEOR', 'CIDEr-D', 'ROUGE-L'}) do
      assert.is_number(m[k])
      assert.is_number(m.baseline[k])
    end
    assert.equal(2, m.beam_search.beam)
    local page = read(out .. '/results/index.html')
    assert.matches('BLEU-4 (baseline: most frequent caption)', page, 1, true)
    assert.matches('BLEU-4 (beam search, width 2)', page, 1, true)
    assert.is_number(m.beam_search['BLEU-4'])
    local q = cjson.decode(read(out .. '/results/qualitative_examples.json'))
    assert.is_true(#q >= 1 and #q <= 10)
    assert.is_string(q[1].predicted)
  end)

  it('scores the test captions against the shapes scenes (metrics file and page)', function()
    local semantic = require 'luacap.eval.semantic'
    local m = cjson.decode(read(out .. '/results/bleu_metrics.json'))
    local scenes = assert(semantic.scenes(shapes_dir .. '/shapes.json'))
    local want = semantic.score(scenes, res.test_ids, res.preds)
    assert.equal(#res.test_ids, m.semantic.images)
    for _, k in ipairs({'precision', 'recall', 'entirely_true', 'complete', 'mentions', 'objects'}) do
      assert.near(want[k], m.semantic[k], 1e-9, k)
    end
    assert.is_number(m.beam_search.semantic.entirely_true)
    local page = read(out .. '/results/index.html')
    assert.matches('captions entirely true (shapes scenes)', page, 1, true)
    assert.matches('object recall (shapes scenes)', page, 1, true)
  end)

  it('says why it gives no semantic accuracy when shapes.json is damaged', function()
    local dir2 = tmp .. '_damaged_shapes'
    assert.is_true(os.execute(('cp -r %s %s'):format(shapes_dir, dir2)) == 0)
    assert(util.write_file(dir2 .. '/shapes.json', '{"format": "luacap-shapes-1", "images": ['))
    local o = tmp .. '_damaged_run'
    pipeline.run(opts(o, {shapes_dir = dir2, epochs = 1, beam = 0}))
    local m = cjson.decode(read(o .. '/results/bleu_metrics.json'))
    assert.is_nil(m.semantic)
    assert.matches('shapes.json', m.semantic_error, 1, true)
  end)

  it('trains: the loss falls', function()
    assert.is_true(res.history.loss[3] < res.history.loss[1],
      ('loss %s -> %s'):format(res.history.loss[1], res.history.loss[3]))
  end)

  it('decodes in batches exactly as one image at a time', function()
    local decode = require 'luacap.eval.decode'
    local X = luacap.zeros(#res.test_ids, res.data and 16 or 16, 16, 3)
    local images = pipeline.load_images({resize = 'bilinear', quiet = true}, res.data, res.test_ids, 16)
    X:copy(images)
    local batched = decode.greedy(res.model, X, res.data.tok, {batch = 64, encoder = res.encoder})
    assert.same(res.preds, batched)
    for i = 1, math.min(3, #res.test_ids) do
      local one = decode.greedy(res.model, X:narrow(i, 1), res.data.tok, {batch = 1, encoder = res.encoder})
      assert.equal(res.preds[i], one[1])
    end
  end)

  it('captions the test images the same from best.h5 in a new process', function()
    local files = {}
    for i, id in ipairs(res.test_ids) do files[i] = pipeline.image_path(res.data, id) end
    local cmd = 'luajit examples/caption.lua --json --batch 3 --model ' .. out .. '/models/best.h5 ' ..
      table.concat(files, ' ') .. ' 2>&1'
    local p = io.popen(cmd)
    local got = {}
    for line in p:lines() do
      local ok, obj = pcall(cjson.decode, line)
      assert.is_true(ok, line)
      got[#got + 1] = obj.caption
    end
    p:close()
    assert.same(res.preds, got)
  end)

  it('resumes from last.h5 and reproduces the next epoch exactly', function()
    local out2 = tmp .. '_resume'
    pipeline.run(opts(out2, {epochs = 2}))
    local resumed = pipeline.run(opts(out2, {epochs = 3, resume = true}))
    assert.equal(3, #resumed.history.loss)
    assert.equal(res.history.loss[3], resumed.history.loss[3])
    assert.equal(res.history.val_loss[3], resumed.history.val_loss[3])
    local csv = read(out2 .. '/results/training_log.csv')
    local rows = 0
    for _ in csv:gmatch('\n') do rows = rows + 1 end
    assert.equal(4, rows)              -- the header and epochs 0, 1, 2
    -- resuming with another encoder setting names both counts instead of copying wrong tensors
    local ok, err = pcall(pipeline.run, opts(out2, {epochs = 4, resume = true, freeze_encoder = true}))
    assert.is_false(ok)
    assert.truthy(tostring(err):find('cannot resume: .*last%.h5 holds %d+ trained tensors, this run trains %d+'),
      tostring(err))
  end)

  it('leaves a loadable best.h5 when the process is killed in the middle of training #nosan', function()
    local out3 = tmp .. '_killed'
    local cmd = 'luajit examples/train.lua --out ' .. out3 .. ' --shapes-dir ' .. shapes_dir ..
      ' --n-images 40 --shapes-size 32 --data-seed 3 --image-size 16 --epochs 200' ..
      ' --embed-dim 12 --units 8 --img-dense 12 --dec-dense 12 --feat-dim 12 --batch-size 4' ..
      ' --encoder smallcnn --es-patience 1000 --lr-patience 1000 --quiet'
    local p = io.popen('sh -c \'' .. cmd .. ' >/dev/null 2>&1 & echo $!\'')
    local pid = p:read('*l')
    p:close()
    assert.truthy(tonumber(pid))
    -- wait until the first epoch saved best.h5 and the log has more epochs, then kill -9
    local log = out3 .. '/results/training_log.csv'
    local waited = 0
    while waited < 600 do
      local text = util.read_file(log) or ''
      local _, rows = text:gsub('\n', '')
      if require('luacap.data.paths').is_file(out3 .. '/models/best.h5') and rows >= 4 then break end
      os.execute('sleep 0.05')
      waited = waited + 1
    end
    os.execute('sleep 0.13')
    assert.equal(0, os.execute('kill -0 ' .. pid .. ' 2>/dev/null'))   -- still training
    os.execute('kill -9 ' .. pid .. ' 2>/dev/null')
    local c, err = luacap.load(out3 .. '/models/best.h5')
    assert.is_table(c, err)
    assert.is_string((c:caption(pipeline.image_path(res.data, res.test_ids[1]))))
  end)

  it('fails, saying why, when the loss explodes, and saves nothing from broken weights', function()
    local out4 = tmp .. '_explode'
    -- lr 1000 blows the loss up at the second step of the first epoch
    local ok, err = pcall(pipeline.run, opts(out4, {lr = 1000}))
    assert.is_false(ok)
    assert.matches('^training failed: loss %S+ exploded to more than 10x the first loss %S+%. ' ..
      'No epoch finished, so nothing was saved%. Try a lower %-%-lr or %-%-clip%-norm%.$', err)
    assert.is_false(require('luacap.data.paths').is_file(out4 .. '/models/best.h5'))
    assert.is_false(require('luacap.data.paths').is_file(out4 .. '/models/final.h5'))
  end)

  it('runs self-critical training after cross-entropy and scores before and after', function()
    local o = tmp .. '_scst'
    local r = pipeline.run(opts(o, {scst_epochs = 2, scst_samples = 3, scst_lr = 1e-3}))
    local m = cjson.decode(read(o .. '/results/bleu_metrics.json'))
    -- before SCST: the same training, so the same greedy scores as the run without it
    assert.same(res.metrics, m.scst.before)
    assert.same(r.metrics, m.scst.after)
    assert.equal(r.metrics['CIDEr-D'], m['CIDEr-D'])
    assert.equal(2, #m.scst.reward)
    assert.equal(2, #m.scst.baseline_reward)
    assert.equal(2, #m.scst.greedy_reward)
    assert.equal('greedy', m.scst.baseline)
    assert.is_true(require('luacap.data.paths').is_file(o .. '/models/scst.h5'))
    assert.truthy(read(o .. '/results/index.html'):find('CIDEr-D (before SCST)', 1, true))
    -- and the cross-entropy model's beam search and scene scores: the run without SCST's
    local plain = cjson.decode(read(out .. '/results/bleu_metrics.json'))
    for _, k in ipairs({'BLEU-4', 'CIDEr-D', 'ROUGE-L'}) do
      assert.equal(plain.beam_search[k], m.scst.before_beam[k], k)
    end
    assert.equal(plain.beam_search.semantic.entirely_true, m.scst.before_beam.semantic.entirely_true)
    assert.equal(plain.semantic.entirely_true, m.scst.before_semantic.entirely_true)
    assert.truthy(read(o .. '/results/index.html'):find('CIDEr-D (before SCST, beam search, width 2)', 1, true))
  end)

  it('runs the same twice with the same seed', function()
    local again = pipeline.run(opts(tmp .. '_again'))
    assert.same(res.metrics, again.metrics)
    assert.same(res.history.loss, again.history.loss)
  end)
end)
