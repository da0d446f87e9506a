-- Module: the base of every layer (Torch nn's protocol, simplified; see STYLE.md §2).
-- forward(x) -> out (owned by the module, overwritten next call); backward(x, dout) -> dx,
-- ADDING into parameter gradients; parameters() -> ordered {name=, value=, grad=};
-- train(on) switches dropout and similar. Not an autograd engine: models write their
-- graph out by hand.
local T = require 'luacap.tensor'

local Module = {}
Module.__index = Module
Module.__name = 'Module'

-- Cls = Module:extend('Name'); obj = Cls(...) runs Cls.init(obj, ...).
function Module:extend(name)
  local cls = setmetatable({}, {__index = self, __call = function(c, ...) return c.new(...) end})
  cls.__index = cls
  cls.__name = name
  cls.__tostring = self.__tostring
  cls.super = self
  cls.new = function(...)
    local obj = setmetatable({is_training = true}, cls)
    if obj.init then obj:init(...) end
    return obj
  end
  return cls
end

function Module:forward()
  error(self.__name .. ': forward is not implemented', 2)
end

function Module:backward()
  error(self.__name .. ': backward is not implemented', 2)
end

-- Ordered list of {name=, value=, grad=}. Leaf layers list self.params; a container sets
-- self.named_children = {{'name', child}, ...} and gets its children's parameters in that
-- order, each prefixed with its name (decoder.lstm.kernel).
function Module:parameters()
  if self.named_children then
    local out = {}
    for _, nc in ipairs(self.named_children) do
      for _, p in ipairs(Module.prefixed(nc[1], nc[2])) do out[#out + 1] = p end
    end
    return out
  end
  return self.params or {}
end

-- grads_final(layer): in a model's backward, says that layer's parameter gradients are
-- complete for this step, so that data-parallel fit (train/distributed.lua) can start
-- their allreduce while backward goes on. A no-op unless fit has set self.grad_ready.
function Module:grads_final(layer)
  local f = self.grad_ready
  if f then f(layer) end
end

-- A copy of the constructor's config table (self.cfg), saved with models.
function Module:config()
  local c = {}
  for k, v in pairs(self.cfg or {}) do c[k] = v end
  return c
end

-- A layer built with trainable = false (Dense, Conv2d) has no gradients to zero.
function Module:zero_grad()
  if self.trainable == false then return end
  for _, p in ipairs(self:parameters()) do p.grad:zero() end
end

-- train(on): on (default true) enables dropout and the like; evaluate() is train(false).
function Module:train(on)
  if on == nil then on = true end
  self.is_training = on
  for _, child in ipairs(self.children or {}) do child:train(on) end
  return self
end

function Module:evaluate() return self:train(false) end

function Module:num_params()
  local n = 0
  for _, p in ipairs(self:parameters()) do n = n + p.value:numel() end
  return n
end

-- Adds a parameter: name, value tensor; its gradient is a zero tensor of the same shape.
-- In a layer built with trainable = false no gradient is allocated (a frozen VGG16 would
-- otherwise carry 550 MB of zeros) and the returned grad is nil.
function Module:add_param(name, value)
  self.params = self.params or {}
  local grad = self.trainable ~= false and value:clone():zero() or nil
  local p = {name = name, value = value, grad = grad}
  self.params[#self.params + 1] = p
  return value, grad
end

-- For backward in layers with a trainable option: raises, blaming backward's caller,
-- when the layer was built with trainable = false.
function Module:check_trainable()
  if self.trainable == false then
    error(self.__name .. ' ' .. self.name .. ': built with trainable = false, no backward', 3)
  end
end

-- For constructors: raises, at the line of init that calls it, unless v (described by
-- what, e.g. 'units H') is a positive integer.
function Module:check_count(what, v)
  if not (type(v) == 'number' and v >= 1 and v % 1 == 0) then
    error(self.__name .. ': ' .. what .. ' must be a positive integer, got ' .. tostring(v), 2)
  end
end

local function shape_str(x) return '(' .. table.concat(x:shape(), ', ') .. ')' end

-- For forward/backward/step of sequence layers: raises, blaming the caller of the method
-- that calls it, "<Class> <name>: x has shape (..), expected (B, T, C)" ((B, C) for 2 dims)
-- unless x is a tensor of ndim dims whose last size is C.
function Module:check_rows(x, what, ndim, C)
  if not T.is_tensor(x) or x:dim() ~= ndim or x:size(ndim) ~= C then
    error(string.format('%s %s: %s has shape %s, expected %s', self.__name, self.name, what,
      T.is_tensor(x) and shape_str(x) or type(x),
      ndim == 3 and ('(B, T, %d)'):format(C) or ('(B, %d)'):format(C)), 3)
  end
end

-- Prefixes every parameter name of child with prefix .. '.'.
function Module.prefixed(prefix, child)
  local out = {}
  for _, p in ipairs(child:parameters()) do
    out[#out + 1] = {name = prefix .. '.' .. p.name, value = p.value, grad = p.grad}
  end
  return out
end

-- '15122049' -> '15,122,049'
local function commas(n)
  local s = tostring(n)
  repeat
    local k
    s, k = s:gsub('^(%d+)(%d%d%d)', '%1,%2')
  until k == 0
  return s
end

-- A Keras-like model summary: rows of {'name (Type)', 'output shape', parameter count},
-- then the totals. Prints it with print_fn (print by default; false prints nothing) and
-- returns the text. Models build their rows; this draws the table.
function Module.summary_table(title, rows, total, print_fn)
  local lines = {'Model: "' .. title .. '"', string.rep('_', 78),
    string.format('%-40s %-24s %12s', 'Layer (type)', 'Output Shape', 'Param #'), string.rep('=', 78)}
  for _, r in ipairs(rows) do
    lines[#lines + 1] = string.format('%-40s %-24s %12s', r[1], r[2], commas(r[3]))
  end
  lines[#lines + 1] = string.rep('=', 78)
  lines[#lines + 1] = 'Total params: ' .. commas(total)
  lines[#lines + 1] = 'Trainable params: ' .. commas(total)
  lines[#lines + 1] = 'Non-trainable params: 0'
  lines[#lines + 1] = string.rep('_', 78)
  local text = table.concat(lines, '\n')
  if print_fn ~= false then (print_fn or print)(text) end
  return text
end

function Module:__tostring()
  return string.format('%s (%d parameters)', self.__name, self:num_params())
end

return Module
