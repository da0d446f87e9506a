-- fit: the training loop, read top to bottom: for each epoch, for each batch:
-- batch -> encoder? -> model forward -> loss -> backward -> update -> log; then
-- validation, callbacks, history. Keras' fit semantics (per-epoch logs loss, val_loss, lr;
-- callbacks with named hooks). Not a scheduler framework: callbacks only set state.
local luacap = require 'luacap'
local callbacks = require 'luacap.train.callbacks'
local Dropout = require 'luacap.nn.Dropout'
local crash_point = require('luacap.util').crash_point

local M = {}

-- A source of batches: n pairs, and get(list of pair numbers) -> {ids=(B,T), y=(B), rows={..}}
-- where rows are 1-based rows of the inputs tensor (image features or images).

local function fmt_time(s)
  s = math.max(0, math.floor(s + 0.5))
  return string.format('%d:%02d:%02d', math.floor(s / 3600), math.floor(s / 60) % 60, s % 60)
end

-- Progress on stderr (util.progress_writer): redrawn in place on a terminal, one line every
-- few seconds when not, and always a last line per epoch.
local function progress(opts)
  local write = require('luacap.util').progress_writer(opts.log_every or 10, opts.tty)
  return function(step, steps, loss, pairs_per_s, elapsed, final)
    if opts.verbose == 0 then return end
    write(elapsed, final, function()
      local eta = pairs_per_s > 0 and (steps - step) * (elapsed / math.max(step, 1)) or 0
      return string.format('  %d/%d - loss %.4f - %.0f pairs/s - %s %s', step, steps, loss,
        pairs_per_s, final and 'took' or 'ETA', fmt_time(final and elapsed or eta))
    end)
  end
end

local unpack = table.unpack or unpack

local function now() return require('luacap.util').now() end

-- Copies of every parameter value (EarlyStopping's best weights), and back.
local function get_weights(params)
  local w = {}
  for i, p in ipairs(params) do w[i] = p.value:clone() end
  return w
end
local function set_weights(params, w)
  for i, p in ipairs(params) do p.value:copy(w[i]) end
end

-- One forward pass of the model on a batch; returns logits. With an encoder, each image
-- of the batch goes through it once (pairs of one image share it exactly: the encoder has
-- no dropout) and its features are copied to every pair of that image.
local function forward_batch(ctx, b)
  local util = luacap.util
  if not ctx.encoder and not ctx.share then
    local X = util.ensure_rows(ctx, 'Xbuf', ctx.inputs, #b.rows)
    luacap.core.gather(X, ctx.inputs, b.rows)
    return ctx.model:forward(X, b.ids)
  end
  local uniq, map, seen = {}, {}, {}
  for i, r in ipairs(b.rows) do
    local u = seen[r]
    if not u then
      u = #uniq + 1
      uniq[u], seen[r] = r, u
    end
    map[i] = u
  end
  local X = util.ensure_rows(ctx, 'Xbuf', ctx.inputs, #uniq)
  luacap.core.gather(X, ctx.inputs, uniq)
  ctx.X, ctx.map = X, map
  -- shared work (--share-image-branch): the model runs its image branch once per image
  if ctx.share then
    ctx.fu = ctx.encoder and ctx.encoder:forward(X) or X
    return ctx.model:forward_shared(ctx.fu, map, b.ids)
  end
  local fu = ctx.encoder:forward(X)                         -- (U, F)
  local feats = util.ensure_rows(ctx, 'Fbuf', fu, #b.rows)  -- (B, F)
  luacap.core.gather(feats, fu, map)
  ctx.X, ctx.map, ctx.fu = X, map, fu
  return ctx.model:forward(feats, b.ids)
end

-- Gradient of forward_batch's copy: sums the pairs' feature gradients per image, then
-- back through the encoder (its parameters only: the images' gradient is not wanted).
local function backward_encoder(ctx, dfeats)
  if ctx.share then return ctx.encoder:backward(ctx.X, dfeats, false) end   -- already (U, F)
  local dfu = luacap.util.ensure_rows(ctx, 'dFbuf', ctx.fu, ctx.fu:size(1)):zero()
  luacap.core.scatter_add(dfu, dfeats, ctx.map)
  ctx.encoder:backward(ctx.X, dfu, false)
end

-- The gradients of one update on the batch idx, left in params; returns the batch's mean
-- loss. With accumulate K the batch runs as K micro-batches, each one's dlogits scaled by
-- its share of the batch, so the gradients (added by backward) equal those of the whole
-- batch at once. With dist (opts.dist, train/distributed.lua) this rank runs only its
-- contiguous share of idx and the gradients are then summed over ranks by allreduce, the
-- model's in buckets started while the last micro-batch's backward runs (dist:grad_buckets)
-- and before a trainable encoder's backward; the loss returned is then the same on every
-- rank (a NaN on any rank makes it NaN everywhere).
local function batch_grads(ctx, dist, idx, source, params, K)
  local mine = dist and dist:part(idx) or idx
  for _, p in ipairs(params) do p.grad:zero() end
  local n = #mine
  local per = math.max(1, math.ceil(n / (K or 1)))
  local loss, last_dfeats = 0, nil
  -- caption-level sources (sat) average the loss over the batch's real tokens: a chunk's
  -- mean then weighs by its tokens' share of the whole batch's, not its captions'
  local batch_tokens = source.tokens and source.tokens(idx)
  for c0 = 1, n, per do
    local chunk = {}
    for i = c0, math.min(c0 + per - 1, n) do chunk[#chunk + 1] = mine[i] end
    local w = #chunk / #idx
    -- dropout masks keyed by (epoch, pair number): the same whatever the batch's split
    Dropout.set_keys(ctx.epoch, chunk)
    local b = source.get(chunk)
    local logits = forward_batch(ctx, b)
    -- caption-level batches (b.mask) of a model with a penalty (sat's attention) add it,
    -- a mean over captions
    local with_penalty = b.mask ~= nil and ctx.model.penalty ~= nil
    local l = ctx.crit:forward(logits, b.y, b.mask)
    local wx = batch_tokens and ctx.crit.count / batch_tokens or w
    loss = loss + l * wx
    if with_penalty then loss = loss + ctx.model:penalty() * w end
    local dlogits = ctx.crit:backward()
    if wx ~= 1 then dlogits:scale(wx) end
    if with_penalty and w ~= 1 then ctx.model.dalpha:scale(w) end
    local last = c0 + per > n
    if dist and last then              -- the gradients become final during this backward
      ctx.buckets:begin(loss)
      ctx.model.grad_ready = ctx.grad_ready
    end
    -- frozen features need no gradient (models that read the flag skip that product)
    ctx.model.no_input_grad = not ctx.train_encoder
    local dfeats = ctx.model:backward(dlogits, with_penalty)
    ctx.model.grad_ready, ctx.model.no_input_grad = nil, nil
    if ctx.train_encoder then
      if last then last_dfeats = dfeats else backward_encoder(ctx, dfeats) end
    end
  end
  if not dist then
    if last_dfeats then backward_encoder(ctx, last_dfeats) end
    return loss
  end
  if n == 0 then ctx.buckets:begin(loss) end   -- a rank with no pairs still takes part
  ctx.buckets:flush()
  if ctx.encoder_params then
    if last_dfeats then backward_encoder(ctx, last_dfeats) end
    dist:allreduce_grads(ctx.encoder_params, 1)
  end
  return ctx.buckets:finish()
end

local identity = require('luacap.util').identity

-- Fisher-Yates with luacap's seeded generator (the same seed gives the same order).
local shuffle = require('luacap.data.pairs').shuffle

-- An epoch's order with images in groups of G: images shuffled, then each group's pairs
-- shuffled together. Batches then hold few distinct images, so a trainable encoder runs
-- on fewer images per batch (every pair is still seen once per epoch).
function M.grouped_order(source, G)
  local by_img, imgs = {}, {}
  for k = 1, source.n do
    local im = source.image_of(k)
    local list = by_img[im]
    if not list then
      list = {}
      by_img[im] = list
      imgs[#imgs + 1] = im
    end
    list[#list + 1] = k
  end
  local perm = shuffle(#imgs)
  local order = {}
  for g = 1, #imgs, G do
    local chunk = {}
    for j = g, math.min(g + G - 1, #imgs) do
      for _, k in ipairs(by_img[imgs[perm[j]]]) do chunk[#chunk + 1] = k end
    end
    local p = shuffle(#chunk)
    for i = 1, #chunk do order[#order + 1] = chunk[p[i]] end
  end
  return order
end

-- Mean loss over a batch source (evaluation mode, no gradients); steps optional. With
-- dist, each rank evaluates its share of every batch and the sums are added over ranks.
function M.evaluate(ctx, source, batch_size, steps, cursor, dist)
  ctx.model:evaluate()
  if ctx.encoder then ctx.encoder:train(false) end
  local n = source.n
  local total_steps = steps or math.ceil(n / batch_size)
  local sum, count = 0, 0
  local pos = cursor and cursor.pos or 0
  for _ = 1, total_steps do
    local idx = {}
    for i = 1, batch_size do
      if not steps and pos >= n then break end
      idx[i] = (pos % n) + 1
      pos = pos + 1
    end
    if #idx == 0 then break end
    if dist then idx = dist:part(idx) end
    if #idx > 0 then
      local b = source.get(idx)
      local logits = forward_batch(ctx, b)
      local loss = ctx.crit:forward(logits, b.y, b.mask)
      sum = sum + loss * ctx.crit.count      -- weighed by its rows (real tokens when masked)
      count = count + ctx.crit.count
    end
    crash_point('val')
    if ctx.poll_sigint and luacap.core.sigint_pending() > 0 then ctx.interrupted = true; return nil end
  end
  if cursor then cursor.pos = pos % math.max(n, 1) end
  if dist then sum, count = unpack(dist:sum({sum, count})) end
  return count > 0 and sum / count or 0 / 0
end

-- With dist, the model's gradients are allreduced in buckets of this many MiB (float32),
-- each started as soon as backward has finished its layers (PyTorch's DDP uses 25 MiB;
-- smaller buckets start earlier, each call costs a latency).
M.BUCKET_MB = 8

-- The parameters fit updates, in one order (optimizer state, EarlyStopping's weights and
-- resuming rely on it): the model's, then a trainable encoder's prefixed 'encoder.'.
function M.trained_params(model, encoder)
  local params = model:parameters()
  if encoder then
    for _, p in ipairs(require('luacap.nn.Module').prefixed('encoder', encoder)) do params[#params + 1] = p end
  end
  return params
end

-- fit{model=, encoder= (optional; trained when encoder.trainable), inputs = tensor (N, ...),
--   train = source, val = source (optional), epochs = 50, batch_size = 32,
--   optimizer = luacap.optim.Adam{...}, callbacks = {...}, steps_per_epoch, validation_steps,
--   shuffle = true, group_images = nil (G: batches drawn from groups of G images),
--   share_image_branch = false (models with forward_shared: image branch once per image of
--   the batch, shared caption prefixes; group_images defaults to 1 then),
--   initial_epoch = 0, save = function(path, state) (for checkpoints),
--   verbose = 1, max_loss_factor = 10,
--   accumulate = 1 (K: updates on K micro-batches of batch_size, equal to batch K * batch_size),
--   dist = train.distributed.new(mpi) (data-parallel: every rank calls fit alike; rank 0's
--   weights are broadcast first; batch_size is the global batch),
--   bucket_mb = M.BUCKET_MB (with dist: MiB of gradients per allreduce bucket)}
-- Returns history {loss = {...}, val_loss = {...}, lr = {...}} and the final state
-- (state.stop_reason says why it stopped early; state.failed when the loss was NaN or
-- exploded, in which case that epoch is not validated, logged or checkpointed).
function M.fit(opts)
  if opts.catch_sigint then
    -- Ctrl-C sets a flag (csrc/bind/os.c) polled after every step and validation batch:
    -- the epoch is abandoned, nothing of it is validated, logged or saved, and the state
    -- says interrupted = true. A second Ctrl-C ends the process at once.
    luacap.core.sigint_catch(true)
    local inner = setmetatable({catch_sigint = false, poll_sigint = true}, {__index = opts})
    local ok, hist, st = pcall(M.fit, inner)
    luacap.core.sigint_catch(false)
    if not ok then error(hist, 0) end
    return hist, st
  end
  local model = assert(opts.model, 'fit: model is required')
  local train = assert(opts.train, 'fit: train batches are required')
  local inputs = assert(opts.inputs, 'fit: inputs (features or images) are required')
  local epochs, bs = opts.epochs or 50, opts.batch_size or 32
  local optimizer = opts.optimizer or luacap.optim.Adam{}
  local crit = opts.criterion or luacap.nn.SoftmaxCrossEntropy()
  local encoder = opts.encoder
  local train_encoder = encoder and encoder.trainable
  local cbs = opts.callbacks or {}
  local params = M.trained_params(model, train_encoder and encoder or nil)
  local ctx = {model = model, encoder = encoder, inputs = inputs, crit = crit,
    share = opts.share_image_branch and model.forward_shared and true or nil}
  local dist = opts.dist
  ctx.train_encoder = train_encoder
  if dist then
    ctx.model_params = model:parameters()
    ctx.buckets = dist:grad_buckets(ctx.model_params,
      math.floor((opts.bucket_mb or M.BUCKET_MB) * 2 ^ 20 / 4))
    ctx.grad_ready = function(layer) ctx.buckets:ready(layer) end
    ctx.encoder_params = train_encoder and require('luacap.nn.Module').prefixed('encoder', encoder) or nil
    dist:broadcast_params(params)
  end
  ctx.poll_sigint = opts.poll_sigint and not dist   -- ranks must stop together: not polled under MPI
  -- shared work needs pairs of one image in one batch: groups of one image by default
  local group_images = opts.group_images or (ctx.share and 1 or nil)
  local history = opts.history or {loss = {}, val_loss = {}, lr = {}}
  local state = {model = model, encoder = encoder, optimizer = optimizer, history = history,
    params = params, stop = false, logs = {}}
  state.get_weights = function() return get_weights(params) end
  state.set_weights = function(w) set_weights(params, w) end
  state.save = function(path)
    if opts.save then opts.save(path, state) end
  end
  local show = progress(opts)
  -- accumulate K: each update is K micro-batches of batch_size pairs (batch K * batch_size)
  local accumulate = opts.accumulate or 1
  local update_bs = bs * accumulate
  local steps_per_epoch = opts.steps_per_epoch or math.ceil(train.n / update_bs)
  -- With steps_per_epoch the pass over the data continues across epochs, as a Keras
  -- generator does (the notebook's fills every batch, running on into the next pass);
  -- otherwise each epoch is one full, freshly shuffled pass ending in a short batch.
  local cursor = opts.cursor or {pos = 0, order = nil}
  local val_cursor = opts.val_cursor or {pos = 0}
  local first_loss

  callbacks.call(cbs, 'on_train_begin', state)
  for epoch = (opts.initial_epoch or 0) + 1, epochs do
    state.epoch = epoch
    state.logs = {}
    if opts.verbose ~= 0 then io.stderr:write(string.format('Epoch %d/%d\n', epoch, epochs)) end
    callbacks.call(cbs, 'on_epoch_begin', state)
    model:train(true)
    if encoder then encoder:train(train_encoder and true or false) end
    local t0 = now()
    local loss_sum, seen, steps_done = 0, 0, 0
    for step = 1, steps_per_epoch do
      local idx = {}
      for i = 1, update_bs do
        if cursor.order == nil or cursor.pos >= train.n then
          if i > 1 and not opts.steps_per_epoch then break end
          if opts.shuffle == false then cursor.order = identity(train.n)
          elseif group_images and train.image_of then cursor.order = M.grouped_order(train, group_images)
          else cursor.order = shuffle(train.n) end
          cursor.pos = 0
        end
        cursor.pos = cursor.pos + 1
        idx[i] = cursor.order[cursor.pos]
      end
      state.batch = step
      ctx.epoch = epoch
      callbacks.call(cbs, 'on_batch_begin', state)
      local loss = batch_grads(ctx, dist, idx, train, params, accumulate)
      if loss ~= loss or loss == math.huge then
        state.stop, state.failed = true, true
        state.stop_reason = string.format('loss is %s at epoch %d step %d', tostring(loss), epoch, step)
        break
      end
      first_loss = first_loss or loss
      if loss > (opts.max_loss_factor or 10) * first_loss and step > 1 then
        state.stop, state.failed = true, true
        state.stop_reason = string.format('loss %.4g exploded to more than %gx the first loss %.4g',
          loss, opts.max_loss_factor or 10, first_loss)
        break
      end
      if opts.clip_norm then luacap.optim.clip_grad_norm(params, opts.clip_norm) end
      optimizer:step(params)
      loss_sum, seen, steps_done = loss_sum + loss * #idx, seen + #idx, step
      state.logs.batch_loss = loss
      callbacks.call(cbs, 'on_batch_end', state)
      local el = now() - t0
      show(step, steps_per_epoch, loss_sum / seen, seen / math.max(el, 1e-9), el, false)
      if step % 20 == 0 then collectgarbage('step', 1000) end
      crash_point('step')
      if ctx.poll_sigint and luacap.core.sigint_pending() > 0 then state.stop, state.interrupted = true, true end
      if state.stop then break end    -- Keras ends the epoch when a batch hook stops training
    end
    Dropout.set_keys(nil)
    state.logs.batch_loss = nil
    -- A NaN or exploded loss fails the epoch: its weights are not validated, logged or
    -- checkpointed (best.h5 and last.h5 keep the last good epoch's).
    if state.failed or state.interrupted or (state.stop and seen == 0) then break end
    local elapsed = now() - t0
    state.logs.loss = loss_sum / math.max(seen, 1)
    state.pairs_per_s = seen / math.max(elapsed, 1e-9)
    show(steps_done, steps_per_epoch, state.logs.loss, state.pairs_per_s, elapsed, true)
    if opts.val then
      state.logs.val_loss = M.evaluate(ctx, opts.val, bs, opts.validation_steps,
        opts.validation_steps and val_cursor or nil, dist)
      if ctx.interrupted then state.stop, state.interrupted = true, true; break end
    end
    local lr_used = optimizer.lr      -- the epoch's rate, before any callback changes it
    callbacks.call(cbs, 'on_epoch_end', state)
    state.logs.lr = state.logs.lr or lr_used
    for k, v in pairs(state.logs) do
      history[k] = history[k] or {}
      history[k][#history[k] + 1] = v
    end
    if opts.verbose ~= 0 then
      io.stderr:write(string.format('  loss: %.4f%s - lr: %s\n', state.logs.loss,
        state.logs.val_loss and string.format(' - val_loss: %.4f', state.logs.val_loss) or '',
        callbacks.repr(state.logs.lr)))
    end
    if opts.on_epoch_saved then opts.on_epoch_saved(state, cursor, val_cursor) end
    if state.stop then break end
  end
  if state.interrupted then state.stop_reason = 'interrupted (Ctrl-C)' end
  if state.stop_reason and opts.verbose ~= 0 then
    io.stderr:write('Training stopped: ', state.stop_reason, '\n')
  end
  callbacks.call(cbs, 'on_train_end', state)
  return history, state
end

return M
