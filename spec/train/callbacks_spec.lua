-- Specs for lua/luacap/train/callbacks.lua against tf.keras 2.x (keras/callbacks.py, 2.9+):
-- each callback is driven directly with a fake fit state and scripted monitor values, and
-- every expected sequence is worked out by hand in the comments. Not a spec of fit itself.
local callbacks = require 'luacap.train.callbacks'

-- Runs fn with io.stderr replaced by a buffer; returns the lines written.
local function capture(fn)
  local lines, real = {}, io.stderr
  local buf = ''
  io.stderr = {write = function(self, ...)
    for _, s in ipairs({...}) do buf = buf .. tostring(s) end
    return self
  end, flush = function() end}
  local ok, err = pcall(fn)
  io.stderr = real
  if not ok then error(err, 0) end
  for line in buf:gmatch('([^\n]*)\n') do lines[#lines + 1] = line end
  return lines
end

-- A fake fit state for epoch e (1-based) with the given logs.
local function state_for(e, logs, opt)
  return {epoch = e, logs = logs, optimizer = opt, stop = false}
end

describe('callbacks.repr (Python repr of a float)', function()
  it('prints the shortest round-tripping decimal, as Python does', function()
    -- expected strings from python3: repr(0.1), repr(1/3), ... (Python 3.11, this machine)
    local cases = {
      {0.1, '0.1'}, {1 / 3, '0.3333333333333333'}, {1e-7, '1e-07'}, {2.5, '2.5'},
      {1e22, '1e+22'}, {0.001, '0.001'}, {1e16, '1e+16'}, {1e15, '1000000000000000.0'},
      {12345678901234568.0, '1.2345678901234568e+16'}, {-0.0, '-0.0'}, {0.0005, '0.0005'},
      {2 / 3, '0.6666666666666666'}, {1.5e-5, '1.5e-05'}, {123456.789, '123456.789'},
      {5e-324, '5e-324'}, {0.1 + 0.2, '0.30000000000000004'}, {100.0, '100.0'},
      {1e-4, '0.0001'}, {0.00012, '0.00012'}, {-2.5, '-2.5'},
    }
    for _, c in ipairs(cases) do
      assert.equal(c[2], callbacks.repr(c[1]))
    end
    assert.equal('nan', callbacks.repr(0 / 0))
    assert.equal('inf', callbacks.repr(math.huge))
    assert.equal('-inf', callbacks.repr(-math.huge))
  end)
end)

describe('ReduceLROnPlateau', function()
  -- Drives cb over a val_loss script; returns logs.lr per epoch and optimizer.lr after each.
  local function drive(cb, script, lr0)
    local opt = {lr = lr0 or 0.001}
    local logged, after = {}, {}
    for e, v in ipairs(script) do
      local st = state_for(e, {val_loss = v ~= false and v or nil}, opt)
      cb.on_epoch_end(st)
      logged[e], after[e] = st.logs.lr, opt.lr
    end
    return logged, after
  end

  it('reduces after `patience` epochs without an improvement beyond min_delta', function()
    local cb = callbacks.ReduceLROnPlateau{factor = 0.5, patience = 3, min_delta = 1e-4, verbose = 0}
    cb.on_train_begin()
    -- e1 1.0 < inf: best 1.0. e2..e4 0.99995 is not < 1.0 - 1e-4 = 0.9999: wait 1, 2, 3
    -- -> at e4 wait = 3 >= patience: lr 0.001 -> 0.0005, wait 0. e5 0.9 < 0.9999: best.
    -- e6..e8 0.95: wait 1, 2, 3 -> lr 0.00025 at e8.
    local logged, after = drive(cb, {1.0, 0.99995, 0.99995, 0.99995, 0.9, 0.95, 0.95, 0.95})
    -- logs.lr is the rate used during the epoch, i.e. before that epoch's reduction
    assert.same({0.001, 0.001, 0.001, 0.001, 0.0005, 0.0005, 0.0005, 0.0005}, logged)
    assert.same({0.001, 0.001, 0.001, 0.0005, 0.0005, 0.0005, 0.0005, 0.00025}, after)
  end)

  it('counts an improvement smaller than min_delta as none, and a big one as one', function()
    local cb = callbacks.ReduceLROnPlateau{factor = 0.5, patience = 2, min_delta = 0.1, verbose = 0}
    cb.on_train_begin()
    -- e1 1.0 best; e2 0.95 (not < 0.9): wait 1; e3 0.85 (< 0.9): best 0.85, wait 0;
    -- e4 0.80 (not < 0.75): wait 1; e5 0.76: wait 2 -> reduce at e5.
    local _, after = drive(cb, {1.0, 0.95, 0.85, 0.80, 0.76})
    assert.same({0.001, 0.001, 0.001, 0.001, 0.0005}, after)
    assert.equal(0.85, cb.best)
  end)

  it('waits out `cooldown` epochs after a reduction', function()
    local cb = callbacks.ReduceLROnPlateau{factor = 0.5, patience = 1, cooldown = 2, verbose = 0}
    cb.on_train_begin()
    -- e1 best. e2 wait 1 -> reduce, cooldown_counter 2. e3: counter 2 -> 1, still in
    -- cooldown: no wait. e4: counter 1 -> 0, out of cooldown: wait 1 -> reduce, counter 2.
    -- e5: counter -> 1. e6: counter -> 0, wait 1 -> reduce.
    local logged, after = drive(cb, {1, 1, 1, 1, 1, 1}, 0.008)
    assert.same({0.008, 0.008, 0.004, 0.004, 0.002, 0.002}, logged)
    assert.same({0.008, 0.004, 0.004, 0.002, 0.002, 0.001}, after)
  end)

  it('records an improvement during cooldown as the new best', function()
    local cb = callbacks.ReduceLROnPlateau{factor = 0.5, patience = 1, cooldown = 3, verbose = 0}
    cb.on_train_begin()
    -- e1 best 1.0; e2 -> reduce (cooldown 3); e3 0.5 improves during cooldown: best 0.5
    drive(cb, {1.0, 1.0, 0.5})
    assert.equal(0.5, cb.best)
    assert.equal(0, cb.wait)
  end)

  it('never goes below min_lr, and stops reducing once there', function()
    local cb = callbacks.ReduceLROnPlateau{factor = 0.5, patience = 1, min_lr = 0.0003, verbose = 0}
    cb.on_train_begin()
    -- e2: 0.001 -> 0.0005; e3: max(0.00025, 0.0003) = 0.0003; e4, e5: lr = min_lr, no change
    local lines = capture(function()
      cb.verbose = 1
      local _, after = drive(cb, {1, 1, 1, 1, 1})
      assert.same({0.001, 0.0005, 0.0003, 0.0003, 0.0003}, after)
    end)
    assert.same({'Epoch 2: ReduceLROnPlateau reducing learning rate to 0.0005.',
      'Epoch 3: ReduceLROnPlateau reducing learning rate to 0.0003.'}, lines)
  end)

  it('counts a NaN as no improvement, and skips an epoch without the monitored value', function()
    local cb = callbacks.ReduceLROnPlateau{factor = 0.5, patience = 2, verbose = 0}
    cb.on_train_begin()
    -- e1 best 1.0; e2 NaN: wait 1; e3 missing: skipped (lr still logged); e4 NaN: wait 2
    local logged, after = drive(cb, {1.0, 0 / 0, false, 0 / 0})
    assert.same({0.001, 0.001, 0.001, 0.001}, logged)
    assert.same({0.001, 0.001, 0.001, 0.0005}, after)
  end)

  it('keeps a restored state through on_train_begin (resume), and resets otherwise', function()
    local cb = callbacks.ReduceLROnPlateau{factor = 0.5, patience = 3, verbose = 0}
    cb.set_state({best = 0.7, wait = 2, cooldown_counter = 0})
    cb.on_train_begin()
    assert.same({best = 0.7, wait = 2, cooldown_counter = 0}, cb.get_state())
    -- the next non-improving epoch is the third: reduce
    local opt = {lr = 0.002}
    cb.on_epoch_end(state_for(7, {val_loss = 0.75}, opt))
    assert.equal(0.001, opt.lr)
    cb.on_train_begin()                      -- a later, fresh fit starts over
    assert.same({best = math.huge, wait = 0, cooldown_counter = 0}, cb.get_state())
  end)

  it('refuses a factor >= 1', function()
    assert.has_error(function() callbacks.ReduceLROnPlateau{factor = 1} end,
      'ReduceLROnPlateau does not support a factor >= 1')
  end)
end)

describe('EarlyStopping', function()
  -- Drives cb over a val_loss script until it stops; weights are the epoch number.
  local function drive(cb, script)
    local restored, stopped_at = {}, nil
    cb.on_train_begin()
    local st
    for e, v in ipairs(script) do
      st = state_for(e, {val_loss = v ~= false and v or nil})
      st.get_weights = function() return {epoch = e} end
      st.set_weights = function(w) restored[#restored + 1] = w.epoch end
      cb.on_epoch_end(st)
      if st.stop then stopped_at = e; break end
    end
    cb.on_train_end(st)
    return stopped_at, restored, st
  end

  it('stops `patience` epochs after the best one and restores its weights', function()
    local cb = callbacks.EarlyStopping{patience = 6, restore_best_weights = true, verbose = 0}
    -- best at e2 (0.8); e3..e8 do not improve: wait 1..6 -> stop at e8 = 2 + 6
    local at, restored, st = drive(cb, {1.0, 0.8, 0.9, 0.9, 0.85, 0.9, 0.81, 0.9, 0.1})
    assert.equal(8, at)
    assert.same({2}, restored)
    assert.equal(2, cb.best_epoch)
    assert.equal('early stopping: val_loss did not improve for 6 epochs', st.stop_reason)
  end)

  it('says so as Keras does', function()
    local cb = callbacks.EarlyStopping{patience = 2, restore_best_weights = true, verbose = 1}
    local lines = capture(function() drive(cb, {1.0, 0.5, 0.6, 0.7}) end)
    assert.same({'Restoring model weights from the end of the best epoch: 2.',
      'Epoch 4: early stopping'}, lines)
  end)

  it('does not stop at the first epoch, even with patience 0', function()
    local cb = callbacks.EarlyStopping{patience = 0, restore_best_weights = true, verbose = 0}
    -- e1 NaN: wait 1 >= 0 but it is the first epoch; e2 NaN: stop. No epoch ever
    -- improved, so the weights restored are the first epoch's (Keras 2.9+).
    local at, restored = drive(cb, {0 / 0, 0 / 0, 1.0})
    assert.equal(2, at)
    assert.same({1}, restored)
    local cb2 = callbacks.EarlyStopping{patience = 0, verbose = 0}
    assert.equal(2, (drive(cb2, {1.0, 2.0, 0.5})))
  end)

  it('does not restore weights when training simply runs out of epochs', function()
    local cb = callbacks.EarlyStopping{patience = 6, restore_best_weights = true, verbose = 0}
    local at, restored = drive(cb, {1.0, 0.5, 0.9, 0.9, 0.9})
    assert.is_nil(at)
    assert.same({}, restored)
  end)

  it('needs an improvement larger than min_delta (and a worse value is never one)', function()
    local cb = callbacks.EarlyStopping{patience = 2, min_delta = 0.1, verbose = 0}
    -- e1 best 1.0; e2 1.05 is worse: wait 1; e3 0.85 < 1.0 - 0.1: best, wait 0;
    -- e4 0.80 (not < 0.75): wait 1; e5 0.76: wait 2 -> stop at e5
    local at = drive(cb, {1.0, 1.05, 0.85, 0.80, 0.76, 0.1})
    assert.equal(5, at)
    assert.equal(0.85, cb.best)
    assert.equal(3, cb.best_epoch)
    -- a negative min_delta means the same (Keras takes abs)
    local cb2 = callbacks.EarlyStopping{patience = 1, min_delta = -0.1, verbose = 0}
    assert.equal(2, (drive(cb2, {1.0, 0.95})))
  end)

  it('skips epochs without the monitored value', function()
    local cb = callbacks.EarlyStopping{patience = 1, verbose = 0}
    local at = drive(cb, {1.0, false, false, 1.5})
    assert.equal(4, at)
  end)

  it('keeps a restored state through on_train_begin (resume)', function()
    local cb = callbacks.EarlyStopping{patience = 3, restore_best_weights = false, verbose = 0}
    cb.set_state({wait = 2, best = 0.5, best_epoch = 4})
    cb.on_train_begin()
    local st = state_for(7, {val_loss = 0.6})
    st.get_weights = function() return {} end
    cb.on_epoch_end(st)
    assert.is_true(st.stop)                  -- wait 3 = patience
    cb.on_train_begin()
    assert.same({wait = 0, best = math.huge, best_epoch = 0}, cb.get_state())
  end)
end)

describe('ModelCheckpoint', function()
  local function drive(cb, script)
    local saved = {}
    for e, v in ipairs(script) do
      local st = state_for(e, {val_loss = v ~= false and v or nil})
      st.save = function(path) saved[#saved + 1] = {path, e} end
      cb.on_epoch_end(st)
    end
    return saved
  end

  it('with save_best_only saves on a strict improvement only, NaN never', function()
    local cb = callbacks.ModelCheckpoint{path = 'out/best.h5', save_best_only = true, verbose = 1}
    local saved
    local lines = capture(function()
      saved = drive(cb, {0.5, 0.5, 0.4, 0 / 0, false, 0.3, 0.30000001})
    end)
    assert.same({{'out/best.h5', 1}, {'out/best.h5', 3}, {'out/best.h5', 6}}, saved)
    assert.same({
      'Epoch 1: val_loss improved from inf to 0.50000, saving model to out/best.h5',
      'Epoch 2: val_loss did not improve from 0.50000',
      'Epoch 3: val_loss improved from 0.50000 to 0.40000, saving model to out/best.h5',
      'Epoch 4: val_loss did not improve from 0.40000',
      'Can save best model only with val_loss available, skipping.',
      'Epoch 6: val_loss improved from 0.40000 to 0.30000, saving model to out/best.h5',
      'Epoch 7: val_loss did not improve from 0.30000',
    }, lines)
    assert.equal(0.3, cb.get_state().best)
  end)

  it('without save_best_only saves every epoch', function()
    local cb = callbacks.ModelCheckpoint{path = 'm.h5', save_best_only = false, verbose = 1}
    local saved
    local lines = capture(function() saved = drive(cb, {0.5, 0.9}) end)
    assert.same({{'m.h5', 1}, {'m.h5', 2}}, saved)
    assert.same({'Epoch 1: saving model to m.h5', 'Epoch 2: saving model to m.h5'}, lines)
  end)

  it('resumes from a saved best', function()
    local cb = callbacks.ModelCheckpoint{path = 'b.h5', verbose = 0}
    cb.set_state({best = 0.4})
    assert.same({{'b.h5', 2}}, drive(cb, {0.45, 0.39}))
  end)
end)

describe('CSVLogger', function()
  local path = os.tmpname()
  after_each(function() os.remove(path) end)

  local read = require('helpers.util').read

  local function log_epochs(cb, first, rows)
    cb.on_train_begin()
    for i, logs in ipairs(rows) do cb.on_epoch_end(state_for(first + i - 1, logs)) end
    cb.on_train_end()
  end

  local three = {
    {loss = 0.1, val_loss = 1 / 3, lr = 0.001},
    {loss = 2.5, val_loss = 1e22, lr = 1e-7},
    {loss = 0.1 + 0.2, val_loss = 2 / 3, lr = 0.0005},
  }

  it('writes a sorted header, 0-based epochs and Python float reprs', function()
    log_epochs(callbacks.CSVLogger{path = path}, 1, three)
    -- Keras: csv.DictWriter over ['epoch'] + sorted(logs), values str()'d by Python.
    -- Keras' csv dialect ends lines with \r\n, and so does luacap.
    assert.equal('epoch,loss,lr,val_loss\r\n' ..
      '0,0.1,0.001,0.3333333333333333\r\n' ..
      '1,2.5,1e-07,1e+22\r\n' ..
      '2,0.30000000000000004,0.0005,0.6666666666666666\r\n', read(path))
  end)

  it('appends without a second header, and overwrites without append', function()
    log_epochs(callbacks.CSVLogger{path = path}, 1, {three[1]})
    log_epochs(callbacks.CSVLogger{path = path, append = true}, 2, {three[2], three[3]})
    assert.equal('epoch,loss,lr,val_loss\r\n' ..
      '0,0.1,0.001,0.3333333333333333\r\n' ..
      '1,2.5,1e-07,1e+22\r\n' ..
      '2,0.30000000000000004,0.0005,0.6666666666666666\r\n', read(path))
    log_epochs(callbacks.CSVLogger{path = path}, 1, {three[2]})
    assert.equal('epoch,loss,lr,val_loss\r\n0,2.5,1e-07,1e+22\r\n', read(path))
  end)

  it('writes the header when appending to an empty or missing file', function()
    os.remove(path)
    log_epochs(callbacks.CSVLogger{path = path, append = true}, 1, {{loss = 1.0}})
    assert.equal('epoch,loss\r\n0,1.0\r\n', read(path))
    local f = io.open(path, 'w')
    f:close()
    log_epochs(callbacks.CSVLogger{path = path, append = true}, 1, {{loss = 1.0}})
    assert.equal('epoch,loss\r\n0,1.0\r\n', read(path))
  end)

  it('keeps the first epoch\'s columns: NA for a missing value, extra keys dropped', function()
    log_epochs(callbacks.CSVLogger{path = path, separator = ';'}, 1,
      {{loss = 1.5, val_loss = 2.0}, {loss = 1.25, extra = 3}})
    assert.equal('epoch;loss;val_loss\r\n0;1.5;2.0\r\n1;1.25;NA\r\n', read(path))
  end)
end)

describe('callbacks.call and Lambda', function()
  it('calls a hook of every callback in list order, skipping those without it', function()
    local seen = {}
    local list = {
      callbacks.Lambda{on_epoch_end = function(st) seen[#seen + 1] = 'a' .. st.epoch end},
      callbacks.Lambda{on_train_end = function() seen[#seen + 1] = 'x' end},
      callbacks.Lambda{on_epoch_end = function(st) seen[#seen + 1] = 'b' .. st.epoch end},
    }
    callbacks.call(list, 'on_epoch_end', {epoch = 3})
    callbacks.call(list, 'on_batch_end', {epoch = 3})
    assert.same({'a3', 'b3'}, seen)
  end)
end)
