-- Specs for lua/luacap/train/fit.lua: Keras' fit semantics on a tiny Dense-only model and
-- a scripted batch source: falling loss, per-epoch history (loss, val_loss, lr), the order
-- of callback hooks, stopping, the data position across epochs with steps_per_epoch and
-- validation_steps, NaN losses, determinism and grouped orders. Not a spec of callbacks.
local luacap = require 'luacap'
local fit = require 'luacap.train.fit'
local callbacks = require 'luacap.train.callbacks'
local Module = require 'luacap.nn.Module'

local F, V, IMAGES = 3, 4, 4

-- A model with the fit protocol: forward(feats, ids) -> logits (B, V) from a Dense on the
-- features (ids unused), backward(dlogits) -> dfeats.
local function tiny_model()
  local dense = luacap.nn.Dense(F, V)
  local m = {dense = dense}
  function m:forward(feats, _) self.x = feats; return dense:forward(feats) end
  function m:backward(dlogits) return dense:backward(self.x, dlogits) end
  function m:parameters() return Module.prefixed('dense', dense) end
  function m:train() end
  function m:evaluate() end
  return m
end

-- n pairs; pair k shows image (k-1) % IMAGES + 1, whose word is (image-1) % V. Every
-- get(idx) call is appended to log (a list of the pair numbers asked for).
local function source(n, log)
  local src = {n = n}
  function src.image_of(k) return (k - 1) % IMAGES + 1 end
  function src.get(idx)
    if log then log[#log + 1] = {unpack(idx)} end
    local ids, y, rows = {}, {}, {}
    for i, k in ipairs(idx) do
      local img = src.image_of(k)
      ids[i], y[i] = {0, k % 3 + 1}, (img - 1) % V
      rows[i] = src.nan and IMAGES + 1 or img
    end
    return {ids = luacap.tensor(ids), y = luacap.tensor(y), rows = rows}
  end
  return src
end

-- Image features (IMAGES + 1, F); the last row is NaN (for the NaN-loss spec).
local function inputs()
  local rows = {}
  for i = 1, IMAGES do rows[i] = {i == 1 and 1 or 0, i == 2 and 1 or 0, i >= 3 and i - 2 or 0} end
  rows[IMAGES + 1] = {0 / 0, 0 / 0, 0 / 0}
  return luacap.tensor(rows)
end

local function run(o)
  luacap.seed(o.seed or 1)
  local model = o.model or tiny_model()
  local args = {model = model, inputs = inputs(), train = o.train or source(10),
    val = o.val, epochs = o.epochs or 3, batch_size = o.batch_size or 4,
    optimizer = luacap.optim.Adam{lr = o.lr or 0.05}, callbacks = o.callbacks, verbose = 0,
    shuffle = o.shuffle, steps_per_epoch = o.steps_per_epoch,
    validation_steps = o.validation_steps, group_images = o.group_images, save = o.save}
  local history, state = fit.fit(args)
  return history, state, model
end

describe('fit', function()
  it('trains: the loss falls; history holds loss, val_loss and lr per epoch', function()
    local history = run{epochs = 8, val = source(6)}
    assert.equal(8, #history.loss)
    assert.equal(8, #history.val_loss)
    assert.same({0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05}, history.lr)
    assert.is_true(history.loss[8] < 0.5 * history.loss[1],
      ('loss %g -> %g'):format(history.loss[1], history.loss[8]))
    assert.is_true(history.val_loss[8] < history.val_loss[1])
    assert.is_nil(history.batch_loss)
  end)

  it('logs the batch-size-weighted mean of the batch losses, and val_loss of the final weights', function()
    local sizes, losses, log = {}, {}, {}
    local cb = callbacks.Lambda{on_batch_end = function(st)
      losses[#losses + 1] = st.logs.batch_loss
    end}
    local val = source(6)
    local history, _, model = run{epochs = 1, train = source(10, log), val = val, callbacks = {cb}}
    for i, idx in ipairs(log) do sizes[i] = #idx end
    assert.same({4, 4, 2}, sizes)           -- ceil(10 / 4) steps, the last one short
    local want = (losses[1] * 4 + losses[2] * 4 + losses[3] * 2) / 10
    assert.near(want, history.loss[1], 1e-12)
    -- val_loss: all 6 pairs through the trained model, weighted by batch (4 + 2)
    local crit = luacap.nn.SoftmaxCrossEntropy()
    local X = inputs()
    local sum = 0
    for _, idx in ipairs({{1, 2, 3, 4}, {5, 6}}) do
      local b = val.get(idx)
      local feats = luacap.zeros(#idx, F)
      luacap.core.gather(feats, X, b.rows)
      sum = sum + crit:forward(model:forward(feats, b.ids), b.y) * #idx
    end
    assert.near(sum / 6, history.val_loss[1], 1e-6)
  end)

  it('calls the hooks in Keras\' order', function()
    local calls = {}
    local function rec(name)
      return function(st)
        calls[#calls + 1] = name .. (name:match('batch') and (st.epoch .. '.' .. st.batch)
          or name:match('epoch') and st.epoch or '')
      end
    end
    local cb = callbacks.Lambda{on_train_begin = rec('train_begin'), on_epoch_begin = rec('epoch_begin'),
      on_batch_begin = rec('batch_begin'), on_batch_end = rec('batch_end'),
      on_epoch_end = rec('epoch_end'), on_train_end = rec('train_end')}
    run{epochs = 2, train = source(5), batch_size = 2, callbacks = {cb}}
    assert.same({'train_begin',
      'epoch_begin1', 'batch_begin1.1', 'batch_end1.1', 'batch_begin1.2', 'batch_end1.2',
      'batch_begin1.3', 'batch_end1.3', 'epoch_end1',
      'epoch_begin2', 'batch_begin2.1', 'batch_end2.1', 'batch_begin2.2', 'batch_end2.2',
      'batch_begin2.3', 'batch_end2.3', 'epoch_end2',
      'train_end'}, calls)
  end)

  it('stops after the epoch in which a callback sets state.stop', function()
    local ended = false
    local cb = callbacks.Lambda{
      on_epoch_end = function(st) if st.epoch == 2 then st.stop = true end end,
      on_train_end = function() ended = true end}
    local history = run{epochs = 5, callbacks = {cb}}
    assert.equal(2, #history.loss)
    assert.is_true(ended)
  end)

  it('ends the epoch after a batch hook sets state.stop, still validating it', function()
    local batches, epoch_ends = 0, {}
    local cb = callbacks.Lambda{
      on_batch_end = function(st)
        batches = batches + 1
        if st.epoch == 2 and st.batch == 1 then st.stop = true end
      end,
      on_epoch_end = function(st) epoch_ends[#epoch_ends + 1] = st.logs.val_loss ~= nil end}
    local history = run{epochs = 5, train = source(10), batch_size = 4, val = source(3), callbacks = {cb}}
    assert.equal(3 + 1, batches)             -- epoch 1's three batches, then one
    assert.same({true, true}, epoch_ends)
    assert.equal(2, #history.loss)
  end)

  it('with steps_per_epoch continues the data position across epochs', function()
    local log = {}
    run{epochs = 3, train = source(5, log), batch_size = 2, steps_per_epoch = 2, shuffle = false}
    -- a generator over 1..5 in batches of 2, running on: the position carries over epochs
    assert.same({{1, 2}, {3, 4}, {5, 1}, {2, 3}, {4, 5}, {1, 2}}, log)
  end)

  it('without steps_per_epoch makes each epoch one pass ending in a short batch', function()
    local log = {}
    run{epochs = 2, train = source(5, log), batch_size = 2, shuffle = false}
    assert.same({{1, 2}, {3, 4}, {5}, {1, 2}, {3, 4}, {5}}, log)
  end)

  it('with validation_steps continues the validation position across epochs', function()
    local log, log2 = {}, {}
    run{epochs = 3, val = source(3, log), batch_size = 2, validation_steps = 1}
    assert.same({{1, 2}, {3, 1}, {2, 3}}, log)
    run{epochs = 2, val = source(3, log2), batch_size = 2}
    assert.same({{1, 2}, {3}, {1, 2}, {3}}, log2)
  end)

  it('shuffles every pass with the seeded generator, covering every pair once', function()
    local log = {}
    run{epochs = 2, train = source(9, log), batch_size = 4}
    for e = 0, 1 do
      local seen = {}
      for s = 1, 3 do
        for _, k in ipairs(log[e * 3 + s]) do seen[#seen + 1] = k end
      end
      table.sort(seen)
      assert.same({1, 2, 3, 4, 5, 6, 7, 8, 9}, seen)
    end
    local first = {}
    for s = 1, 3 do for _, k in ipairs(log[s]) do first[#first + 1] = k end end
    assert.are_not.same({1, 2, 3, 4, 5, 6, 7, 8, 9}, first)
  end)

  it('stops on a NaN loss and says why, without applying it', function()
    local train = source(8)
    local cb = callbacks.Lambda{on_epoch_begin = function(st) train.nan = st.epoch == 2 end}
    local history, state, model = run{epochs = 4, train = train, callbacks = {cb}}
    assert.equal(1, #history.loss)
    assert.is_true(state.stop)
    assert.matches('^loss is %-?nan at epoch 2 step 1$', state.stop_reason)
    for _, p in ipairs(model:parameters()) do
      local t = p.value:totable()
      for _, row in ipairs(type(t[1]) == 'table' and t or {t}) do
        for _, v in ipairs(row) do assert.is_true(v == v, p.name .. ' has a NaN') end
      end
    end
  end)

  it('gives the same history for the same seed', function()
    local a = run{epochs = 3, val = source(5), seed = 11}
    local b = run{epochs = 3, val = source(5), seed = 11}
    assert.same(a, b)
    local c = run{epochs = 3, val = source(5), seed = 12}
    assert.are_not.same(a.loss, c.loss)
  end)

  it('runs the notebook\'s callbacks: lr halves on a plateau, stops, restores the best', function()
    -- val_loss scripted by a first callback: best at epoch 2, then a plateau
    local script = {1.0, 0.5, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6}
    local weights = {}
    local saved = {}
    local path = os.tmpname()
    local list = {
      callbacks.Lambda{on_epoch_end = function(st)
        st.logs.val_loss = script[st.epoch]
        weights[st.epoch] = st.get_weights()
      end},
      callbacks.ModelCheckpoint{path = 'best.h5', verbose = 0},
      callbacks.ReduceLROnPlateau{factor = 0.5, patience = 3, verbose = 0},
      callbacks.EarlyStopping{patience = 6, restore_best_weights = true, verbose = 0},
      callbacks.CSVLogger{path = path},
    }
    local history, state, model = run{epochs = 10, val = source(4), callbacks = list, lr = 0.04,
      save = function(p, st) saved[#saved + 1] = p .. '@' .. st.epoch end}
    -- ReduceLROnPlateau: epochs 3, 4, 5 do not improve -> reduce at 5; 6, 7, 8 -> at 8.
    -- EarlyStopping: wait 1..6 over epochs 3..8 -> stops at 8 = best epoch 2 + patience 6.
    assert.same({0.04, 0.04, 0.04, 0.04, 0.04, 0.02, 0.02, 0.02}, history.lr)
    assert.equal(0.01, state.optimizer.lr)
    assert.same({1.0, 0.5, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6}, history.val_loss)
    assert.same({'best.h5@1', 'best.h5@2'}, saved)
    for i, p in ipairs(model:parameters()) do
      assert.same(weights[2][i]:totable(), p.value:totable())
    end
    local f = assert(io.open(path))
    local csv = f:read('*a')
    f:close()
    os.remove(path)
    local lines = {}
    for line in csv:gmatch('([^\r\n]*)\r\n') do lines[#lines + 1] = line end
    assert.equal(9, #lines)
    assert.equal('epoch,loss,lr,val_loss', lines[1])
    assert.equal('0,' .. callbacks.repr(history.loss[1]) .. ',0.04,1.0', lines[2])
    assert.equal('7,' .. callbacks.repr(history.loss[8]) .. ',0.02,0.6', lines[9])
  end)
end)

describe('fit.grouped_order', function()
  it('covers every pair exactly once, with at most G images open at a time', function()
    local src = source(23)
    for _, G in ipairs({1, 2, 3, 8}) do
      luacap.seed(G)
      local order = fit.grouped_order(src, G)
      local sorted = {unpack(order)}
      table.sort(sorted)
      local want = {}
      for k = 1, 23 do want[k] = k end
      assert.same(want, sorted)
      -- each image's pairs form one span; no position is inside more than G spans
      local first, last = {}, {}
      for pos, k in ipairs(order) do
        local im = src.image_of(k)
        first[im] = first[im] or pos
        last[im] = pos
      end
      for pos = 1, #order do
        local open = 0
        for im = 1, IMAGES do
          if first[im] <= pos and pos <= last[im] then open = open + 1 end
        end
        assert.is_true(open <= G, ('G=%d: %d images open at %d'):format(G, open, pos))
      end
    end
  end)

  it('is what fit trains on with group_images, one pass per epoch', function()
    local log = {}
    run{epochs = 2, train = source(10, log), batch_size = 4, group_images = 2}
    local seen = {}
    for s = 1, 3 do for _, k in ipairs(log[s]) do seen[#seen + 1] = k end end
    table.sort(seen)
    assert.same({1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, seen)
  end)
end)
