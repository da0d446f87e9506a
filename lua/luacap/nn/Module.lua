-- Module: the base of every layer (Torch nn's protocol, simplified; see STYLE.md §2).
-- forward(x) -> out (owned by the module, overwritten next call); backward(x, dout) -> dx,
-- ADDING into parameter gradients; parameters() -> ordered {name=, value=, grad=};
-- train(on) switches dropout and similar. Not an autograd engine: models write their
-- graph out by hand.
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

-- Ordered list of {name=, value=, grad=}. Leaf layers list self.params; containers
-- override this and prefix their children's names.
function Module:parameters()
  return self.params or {}
end

function Module:zero_grad()
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
function Module:add_param(name, value)
  self.params = self.params or {}
  local grad = value:clone():zero()
  local p = {name = name, value = value, grad = grad}
  self.params[#self.params + 1] = p
  return value, grad
end

-- Prefixes every parameter name of child with prefix .. '.'.
function Module.prefixed(prefix, child)
  local out = {}
  for _, p in ipairs(child:parameters()) do
    out[#out + 1] = {name = prefix .. '.' .. p.name, value = p.value, grad = p.grad}
  end
  return out
end

function Module:__tostring()
  return string.format('%s (%d parameters)', self.__name, self:num_params())
end

return Module
