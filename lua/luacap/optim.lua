-- luacap.optim: Adam in Keras' (TF2 optimizer_v2) form and plain SGD, over the ordered
-- {name=, value=, grad=} lists of Module:parameters(); state keyed by parameter name so
-- checkpoints can save and restore it. Not a scheduler: callbacks change opt.lr directly.
local core = require 'luacap.core'
local T = require 'luacap.tensor'

local M = {}

local function shape_str(t) return '(' .. table.concat(t:shape(), ', ') .. ')' end

local function same_shape(a, b)
  if a:dim() ~= b:dim() then return false end
  for d = 1, a:dim() do
    if a:size(d) ~= b:size(d) then return false end
  end
  return true
end

local function check_params(fn, params)
  if type(params) ~= 'table' then
    error(fn .. ': params must be the list from parameters(), got ' .. type(params), 3)
  end
  for i, p in ipairs(params) do
    if type(p.name) ~= 'string' or not T.is_tensor(p.value) or not T.is_tensor(p.grad) then
      error(string.format('%s: params[%d] must be {name=, value=, grad=}', fn, i), 3)
    end
  end
end

-- Compares named slot tensors against params (or against another slot table) and returns
-- the first difference as a message, or nil. Order: params in order, then extra names.
local function first_difference(slots, params, what)
  local seen = {}
  for _, p in ipairs(params) do
    seen[p.name] = true
    local s = slots[p.name]
    if s == nil then
      return string.format("%s has no entry for parameter '%s'", what, p.name)
    end
    if not T.is_tensor(s) or not same_shape(s, p.value) then
      return string.format("%s entry '%s' has shape %s, parameter has %s", what, p.name,
        T.is_tensor(s) and shape_str(s) or type(s), shape_str(p.value))
    end
  end
  local extra = {}
  for name in pairs(slots) do
    if not seen[name] then extra[#extra + 1] = name end
  end
  table.sort(extra)
  if extra[1] then
    return string.format("%s has an entry '%s' that matches no parameter", what, extra[1])
  end
  return nil
end

-- Copies a table of named tensors (clones, so the caller's copy does not move with training).
local function clone_slots(slots)
  local out = {}
  for name, t in pairs(slots) do out[name] = t:clone() end
  return out
end

-- Which names a state's slots cover, as a params-like list for first_difference.
local function as_params(slots)
  local names, list = {}, {}
  for name in pairs(slots) do names[#names + 1] = name end
  table.sort(names)
  for _, name in ipairs(names) do list[#list + 1] = {name = name, value = slots[name]} end
  return list
end

---------------------------------------------------------------------------- Adam

local Adam = {}
Adam.__index = Adam

-- lr_scale {name prefix -> multiplier}: parameter groups with their own rate (a fine-tuned
-- encoder's 'encoder.' at --cnn-lr). Each parameter takes the multiplier of the longest
-- prefix of its name, 1 when none matches. Checked once, at construction.
local function check_scales(fn, scales)
  if scales == nil then return {} end
  if type(scales) ~= 'table' then error(fn .. ': lr_scale must be a table {prefix -> multiplier}', 3) end
  for k, v in pairs(scales) do
    if type(k) ~= 'string' or type(v) ~= 'number' or not (v >= 0) then
      error(string.format("%s: lr_scale['%s'] must be a number >= 0, got %s", fn, tostring(k),
        tostring(v)), 3)
    end
  end
  return scales
end

local function scale_of(scales, name)
  local best, len = 1, -1
  for prefix, s in pairs(scales) do
    if #prefix > len and name:sub(1, #prefix) == prefix then best, len = s, #prefix end
  end
  return best
end

-- Adam{lr = 0.001, beta1 = 0.9, beta2 = 0.999, epsilon = 1e-7}: Keras' defaults; lr_scale
-- = {prefix -> multiplier} (optional): those parameters step at lr * multiplier.
function M.Adam(opts)
  opts = opts or {}
  local self = setmetatable({
    lr = opts.lr or 0.001, beta1 = opts.beta1 or 0.9, beta2 = opts.beta2 or 0.999,
    epsilon = opts.epsilon or 1e-7, t = 0, m = {}, v = {},
    lr_scale = check_scales('Adam', opts.lr_scale),
  }, Adam)
  assert(type(self.lr) == 'number' and self.lr >= 0, 'Adam: lr must be a number >= 0')
  assert(self.beta1 >= 0 and self.beta1 < 1, 'Adam: beta1 must be in [0, 1)')
  assert(self.beta2 >= 0 and self.beta2 < 1, 'Adam: beta2 must be in [0, 1)')
  return self
end

-- One update of every parameter from its grad (Keras' update, TF ResourceApplyAdam):
--   t += 1; lr_t = lr * sqrt(1 - beta2^t) / (1 - beta1^t)      (in double, here)
--   m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2;
--   p -= lr_t * m / (sqrt(v) + epsilon)                          (csrc/nn/adam.c)
-- epsilon is Kingma & Ba's "epsilon hat" (the formula before their section 2.1), added
-- without bias correction: see the tf.keras.optimizers.Adam docs, argument epsilon.
-- opt.lr is read on every step, so ReduceLROnPlateau may change it between steps; a group
-- of lr_scale s steps with lr s in place of lr (the same formula), so a change of opt.lr
-- moves every group's rate alike. Returns the base lr_t.
function Adam:step(params)
  check_params('Adam:step', params)
  for _, p in ipairs(params) do
    local m = self.m[p.name]
    if m == nil then
      if self.t > 0 then
        error(string.format("Adam:step: no state for parameter '%s' after %d steps " ..
          '(a renamed parameter, or state loaded for another model)', p.name, self.t), 2)
      end
      self.m[p.name] = T.zeros(p.value:shape())
      self.v[p.name] = T.zeros(p.value:shape())
    elseif not same_shape(m, p.value) then
      error(string.format("Adam:step: state for '%s' has shape %s, parameter has %s",
        p.name, shape_str(m), shape_str(p.value)), 2)
    end
  end
  self.t = self.t + 1
  local t = self.t
  local function rate(lr) return lr * math.sqrt(1 - self.beta2 ^ t) / (1 - self.beta1 ^ t) end
  local lr_t = rate(self.lr)
  for _, p in ipairs(params) do
    local s = scale_of(self.lr_scale, p.name)
    core.adam_update(p.value, self.m[p.name], self.v[p.name], p.grad,
      s == 1 and lr_t or rate(self.lr * s), self.beta1, self.beta2, self.epsilon)
  end
  return lr_t
end

-- {t =, lr =, m = {name -> tensor}, v = {name -> tensor}}: copies, for a checkpoint. Like
-- beta1, beta2 and epsilon, lr_scale is configuration, not state: a resumed run gives it
-- again (the same command line), and a reduced lr keeps every group's ratio to it.
function Adam:state()
  return {t = self.t, lr = self.lr, m = clone_slots(self.m), v = clone_slots(self.v)}
end

-- Restores a state() table. With params, checks that m and v hold exactly their names and
-- shapes; without, that m and v agree with each other. Raises naming the first difference.
function Adam:load_state(s, params)
  if type(s) ~= 'table' or type(s.t) ~= 'number' or s.t < 0 or s.t % 1 ~= 0
      or type(s.m) ~= 'table' or type(s.v) ~= 'table' then
    error('Adam:load_state: expected {t = steps, m = {name -> tensor}, v = {...}}', 2)
  end
  local ref = params
  if ref then check_params('Adam:load_state', ref) else ref = as_params(s.m) end
  local diff = first_difference(s.m, ref, 'optimizer state m')
      or first_difference(s.v, ref, 'optimizer state v')
  if diff then error('Adam:load_state: ' .. diff, 2) end
  self.t, self.m, self.v = s.t, clone_slots(s.m), clone_slots(s.v)
  if s.lr then self.lr = s.lr end
  return self
end

---------------------------------------------------------------------------- SGD

local SGD = {}
SGD.__index = SGD

-- SGD{lr = 0.01, momentum = 0}: Keras' SGD: v = momentum v - lr g; p += v (p -= lr g
-- without momentum).
function M.SGD(opts)
  opts = opts or {}
  local self = setmetatable({lr = opts.lr or 0.01, momentum = opts.momentum or 0, t = 0,
    velocity = {}}, SGD)
  assert(type(self.lr) == 'number' and self.lr >= 0, 'SGD: lr must be a number >= 0')
  assert(self.momentum >= 0 and self.momentum < 1, 'SGD: momentum must be in [0, 1)')
  return self
end

function SGD:step(params)
  check_params('SGD:step', params)
  self.t = self.t + 1
  for _, p in ipairs(params) do
    if self.momentum > 0 then
      local vel = self.velocity[p.name]
      if vel == nil then
        vel = T.zeros(p.value:shape())
        self.velocity[p.name] = vel
      end
      vel:scale(self.momentum):add(p.grad, -self.lr)
      p.value:add(vel)
    else
      p.value:add(p.grad, -self.lr)
    end
  end
end

function SGD:state()
  return {t = self.t, lr = self.lr, velocity = clone_slots(self.velocity)}
end

function SGD:load_state(s, params)
  if type(s) ~= 'table' or type(s.t) ~= 'number' or type(s.velocity) ~= 'table' then
    error('SGD:load_state: expected {t = steps, velocity = {name -> tensor}}', 2)
  end
  if params and self.momentum > 0 then
    local diff = first_difference(s.velocity, params, 'optimizer state velocity')
    if diff then error('SGD:load_state: ' .. diff, 2) end
  end
  self.t, self.velocity = s.t, clone_slots(s.velocity)
  if s.lr then self.lr = s.lr end
  return self
end

---------------------------------------------------------------------------- clipping

-- Scales every grad by max_norm / max(total, max_norm), as tf.clip_by_global_norm (Keras'
-- global_clipnorm), and returns the total L2 norm before clipping. A non-finite total
-- leaves the grads alone, so the training loop can see the NaN and stop.
function M.clip_grad_norm(params, max_norm)
  check_params('clip_grad_norm', params)
  assert(type(max_norm) == 'number' and max_norm > 0,
    'clip_grad_norm: max_norm must be a number > 0, got ' .. tostring(max_norm))
  local sq = 0
  for _, p in ipairs(params) do
    local n = p.grad:norm()
    sq = sq + n * n
  end
  local total = math.sqrt(sq)
  if total > max_norm and total < math.huge then
    local scale = max_norm / total
    for _, p in ipairs(params) do p.grad:scale(scale) end
  end
  return total
end

return M
