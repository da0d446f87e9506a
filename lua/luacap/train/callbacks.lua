-- Training callbacks with Keras' semantics (tf.keras 2.x): ModelCheckpoint,
-- ReduceLROnPlateau, EarlyStopping, CSVLogger, and a user callback from plain functions.
-- A callback only has side effects through named hooks that receive the fit `state`
-- (state.model, state.optimizer, state.epoch (1-based), state.logs, state.history,
-- state.save(path), state.get_weights(), state.set_weights(w)); it asks to stop by setting
-- state.stop = true. Not a place for control flow of the loop itself.
local M = {}

local function say(cb, fmt, ...)
  if cb.verbose and cb.verbose > 0 then
    io.stderr:write(string.format(fmt, ...), '\n')
  end
end

-- Keras tests a monitored value with numpy comparisons, so a missing value (nil) skips the
-- epoch but a NaN is simply never an improvement.
local function missing(v) return type(v) ~= 'number' end

-- Shortest decimal that reads back as the same double (Python's repr of a float): fixed
-- notation for 1e-4 <= |v| < 1e16 (with '.0' on whole numbers), exponent notation beyond.
function M.repr(v)
  if type(v) ~= 'number' then return tostring(v) end
  if v ~= v then return 'nan' end
  if v == math.huge then return 'inf' end
  if v == -math.huge then return '-inf' end
  if v == math.floor(v) and math.abs(v) < 1e16 then return string.format('%.1f', v) end
  -- %g picks fixed notation up to an exponent below its precision; Python switches at 16
  local conv = math.abs(v) >= 1e16 and 'e' or 'g'
  for prec = 1, 17 do
    local s = string.format('%.' .. (conv == 'e' and prec - 1 or prec) .. conv, v)
    if tonumber(s) == v then return s end
  end
  return string.format('%.17g', v)
end

---------------------------------------------------------------- ModelCheckpoint
-- ModelCheckpoint{path=, monitor='val_loss', mode='min', save_best_only=true, verbose=1}
-- Saves when the monitored value improves on the best so far (strictly, no min_delta,
-- as Keras); without save_best_only, saves every epoch. Messages as tf.keras 2.9+ prints
-- them, with the 1-based epoch: 'Epoch 3: val_loss improved from 0.50000 to 0.40000,
-- saving model to P' / 'Epoch 4: val_loss did not improve from 0.40000'.
function M.ModelCheckpoint(opts)
  local cb = {name = 'ModelCheckpoint', path = assert(opts.path, 'ModelCheckpoint: path is required'),
    monitor = opts.monitor or 'val_loss', mode = opts.mode or 'min',
    save_best_only = opts.save_best_only ~= false, verbose = opts.verbose or 1}
  cb.best = cb.mode == 'min' and math.huge or -math.huge
  local function better(a, b) if cb.mode == 'min' then return a < b end return a > b end
  function cb.on_epoch_end(state)
    local current = state.logs[cb.monitor]
    if not cb.save_best_only then
      say(cb, 'Epoch %d: saving model to %s', state.epoch, cb.path)
      state.save(cb.path)
      return
    end
    if missing(current) then
      say(cb, 'Can save best model only with %s available, skipping.', cb.monitor)
      return
    end
    if better(current, cb.best) then   -- a NaN is never better
      say(cb, 'Epoch %d: %s improved from %.5f to %.5f, saving model to %s', state.epoch,
        cb.monitor, cb.best, current, cb.path)
      cb.best = current
      state.save(cb.path)
    else
      say(cb, 'Epoch %d: %s did not improve from %.5f', state.epoch, cb.monitor, cb.best)
    end
  end
  function cb.get_state() return {best = cb.best} end
  function cb.set_state(s) cb.best = s.best end
  return cb
end

---------------------------------------------------------------- ReduceLROnPlateau
-- ReduceLROnPlateau{monitor='val_loss', factor=0.5, patience=3, min_delta=1e-4,
--   cooldown=0, min_lr=0, verbose=1}. Keras: logs.lr is the rate used in this epoch;
-- improvement means current < best - min_delta; after `patience` epochs without one,
-- lr = max(lr * factor, min_lr) when lr > min_lr, then `cooldown` epochs in which wait
-- stays 0. A NaN counts as no improvement. (Keras keeps lr in float32; here it is a double.)
function M.ReduceLROnPlateau(opts)
  opts = opts or {}
  local cb = {name = 'ReduceLROnPlateau', monitor = opts.monitor or 'val_loss',
    factor = opts.factor or 0.5, patience = opts.patience or 3,
    min_delta = opts.min_delta or 1e-4, cooldown = opts.cooldown or 0,
    min_lr = opts.min_lr or 0, verbose = opts.verbose or 1}
  if cb.factor >= 1 then error('ReduceLROnPlateau does not support a factor >= 1', 2) end
  cb.best, cb.wait, cb.cooldown_counter = math.huge, 0, 0
  function cb.on_train_begin()
    if cb.resumed then cb.resumed = nil; return end   -- set_state() just restored it
    cb.best, cb.wait, cb.cooldown_counter = math.huge, 0, 0
  end
  function cb.on_epoch_end(state)
    local opt = state.optimizer
    state.logs.lr = opt.lr
    local current = state.logs[cb.monitor]
    if missing(current) then return end
    local in_cooldown = cb.cooldown_counter > 0
    if in_cooldown then
      cb.cooldown_counter = cb.cooldown_counter - 1
      cb.wait = 0
    end
    if current < cb.best - cb.min_delta then
      cb.best = current
      cb.wait = 0
    elseif not (cb.cooldown_counter > 0) then
      cb.wait = cb.wait + 1
      if cb.wait >= cb.patience then
        local old = opt.lr
        if old > cb.min_lr then
          local new = math.max(old * cb.factor, cb.min_lr)
          opt.lr = new
          say(cb, 'Epoch %d: ReduceLROnPlateau reducing learning rate to %s.', state.epoch, M.repr(new))
          cb.cooldown_counter = cb.cooldown
          cb.wait = 0
        end
      end
    end
  end
  function cb.get_state() return {best = cb.best, wait = cb.wait, cooldown_counter = cb.cooldown_counter} end
  function cb.set_state(s)
    cb.best, cb.wait, cb.cooldown_counter, cb.resumed = s.best, s.wait, s.cooldown_counter, true
  end
  return cb
end

---------------------------------------------------------------- EarlyStopping
-- EarlyStopping{monitor='val_loss', patience=6, min_delta=0, restore_best_weights=true,
--   verbose=1}. Keras 2.x: wait counts epochs since the last improvement; stopping is
-- checked only after the first epoch; improvement means current < best - min_delta; a NaN
-- is no improvement; best weights are restored when it stops (not when training simply
-- runs out of epochs).
function M.EarlyStopping(opts)
  opts = opts or {}
  local cb = {name = 'EarlyStopping', monitor = opts.monitor or 'val_loss',
    patience = opts.patience or 6, min_delta = math.abs(opts.min_delta or 0),
    restore_best_weights = opts.restore_best_weights ~= false, verbose = opts.verbose or 1}
  cb.wait, cb.best, cb.best_epoch, cb.stopped_epoch = 0, math.huge, 0, 0
  function cb.on_train_begin()
    if cb.resumed then cb.resumed = nil; return end   -- set_state() just restored it
    cb.wait, cb.best, cb.best_weights, cb.best_epoch, cb.stopped_epoch = 0, math.huge, nil, 0, 0
  end
  function cb.on_epoch_end(state)
    local current = state.logs[cb.monitor]
    if missing(current) then return end
    if cb.restore_best_weights and cb.best_weights == nil then
      cb.best_weights = state.get_weights()   -- progress never made: restore the first epoch
    end
    cb.wait = cb.wait + 1
    if current + cb.min_delta < cb.best then   -- Keras: (current - (-min_delta)) < best
      cb.best = current
      cb.best_epoch = state.epoch
      if cb.restore_best_weights then cb.best_weights = state.get_weights() end
      cb.wait = 0
    end
    if cb.wait >= cb.patience and state.epoch > 1 then
      cb.stopped_epoch = state.epoch
      state.stop = true
      state.stop_reason = string.format('early stopping: %s did not improve for %d epochs',
        cb.monitor, cb.patience)
      if cb.restore_best_weights and cb.best_weights then
        say(cb, 'Restoring model weights from the end of the best epoch: %d.', cb.best_epoch)
        state.set_weights(cb.best_weights)
      end
    end
  end
  function cb.on_train_end()
    if cb.stopped_epoch > 0 then say(cb, 'Epoch %d: early stopping', cb.stopped_epoch) end
  end
  function cb.get_state()
    return {wait = cb.wait, best = cb.best, best_epoch = cb.best_epoch}
  end
  function cb.set_state(s)
    cb.wait, cb.best, cb.best_epoch, cb.resumed = s.wait, s.best, s.best_epoch, true
  end
  return cb
end

---------------------------------------------------------------- CSVLogger
-- CSVLogger{path=, separator=',', append=false}: Keras' layout: a header 'epoch,<sorted
-- keys>' and one row per epoch with the 0-based epoch number and Python-style floats.
-- The rows are kept in memory and the whole file is rewritten atomically after every
-- epoch (util.write_file: a temporary file, fsync, rename), so a crash leaves the file of
-- the epoch before or of this one. get_state() carries the rows into last.h5: a resumed
-- run restores them and drops any row written after that checkpoint (an epoch that is
-- being run again). A write that fails raises "disk full while writing ..." or "cannot
-- write ..." (util.write_error).
function M.CSVLogger(opts)
  local util = require 'luacap.util'
  local cb = {name = 'CSVLogger', path = assert(opts.path, 'CSVLogger: path is required'),
    sep = opts.separator or ',', append = opts.append or false}
  local function write()
    local ok, err, code = util.write_file(cb.path, table.concat(cb.lines))
    if not ok then error(util.write_error(cb.path, err, code), 0) end
  end
  function cb.on_train_begin()
    if cb.resumed then cb.resumed = nil; cb.started = true; return end   -- set_state() restored the rows
    cb.lines, cb.keys, cb.header_written = {}, nil, false
    local old = cb.append and util.read_file(cb.path) or nil
    if old and old ~= '' then
      for line in old:gmatch('[^\n]*\n?') do
        if line ~= '' then cb.lines[#cb.lines + 1] = line end
      end
      cb.header_written = true
    end
    cb.started = true
    write()
  end
  function cb.on_epoch_end(state)
    if not cb.started then cb.on_train_begin() end
    local keys = {}
    for k in pairs(state.logs) do keys[#keys + 1] = k end
    table.sort(keys)
    if not cb.header_written then
      cb.keys = keys
      cb.lines[#cb.lines + 1] = 'epoch' .. cb.sep .. table.concat(keys, cb.sep) .. '\r\n'
      cb.header_written = true
    end
    local row = {tostring(state.epoch - 1)}
    for _, k in ipairs(cb.keys or keys) do
      local v = state.logs[k]
      row[#row + 1] = v == nil and 'NA' or M.repr(v)
    end
    cb.lines[#cb.lines + 1] = table.concat(row, cb.sep) .. '\r\n'
    write()
  end
  function cb.on_train_end() cb.started = nil end
  function cb.get_state()
    return {lines = cb.lines or {}, keys = cb.keys or false, header_written = cb.header_written or false}
  end
  function cb.set_state(s)
    cb.lines, cb.header_written, cb.resumed = s.lines or {}, s.header_written, true
    cb.keys = s.keys or nil
    write()
  end
  return cb
end

---------------------------------------------------------------- LambdaCallback
-- Lambda{on_train_begin=fn, on_epoch_begin=fn, on_epoch_end=fn, on_batch_begin=fn,
--   on_batch_end=fn, on_train_end=fn}: a user's own hooks, each called with the state.
function M.Lambda(hooks)
  local cb = {name = 'Lambda'}
  for k, v in pairs(hooks) do cb[k] = v end
  return cb
end

-- Calls hook `name` of every callback in order.
function M.call(list, name, state)
  for _, cb in ipairs(list or {}) do
    local f = cb[name]
    if f then f(state) end
  end
end

return M
