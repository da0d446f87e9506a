-- Sequential: a chain of layers; forward in order, backward in reverse (STYLE.md §2).
-- Parameters are prefixed by each child's name (or its position when it has none).
-- Not a graph: models with branches write their own forward/backward.
local Module = require 'luacap.nn.Module'

local Sequential = Module:extend('Sequential')

-- Sequential({layer1, layer2, ...}, {name = 'sequential'})
function Sequential:init(layers, opts)
  self.children = {}
  self.name = (opts or {}).name or 'sequential'
  for _, l in ipairs(layers or {}) do self:add(l) end
end

function Sequential:add(layer)
  self.children[#self.children + 1] = layer
  return self
end

local function label(i, child)
  return string.format('[%d] %s%s', i, child.__name or '?',
    child.name and (' ' .. child.name) or '')
end

-- Runs child:method(...) and prefixes the child's path to any error it raises.
local function call(self, i, child, method, ...)
  local ok, res = pcall(child[method], child, ...)
  if not ok then
    error(string.format('%s%s: %s', self.name, label(i, child), tostring(res)), 0)
  end
  return res
end

-- forward(x): keeps every child's input for backward; returns the last output.
function Sequential:forward(x)
  self.inputs = self.inputs or {}
  for i, child in ipairs(self.children) do
    self.inputs[i] = x
    x = call(self, i, child, 'forward', x)
  end
  self.out = x
  return x
end

-- backward(x, dout): children in reverse, each with the input it saw in forward.
function Sequential:backward(_, dout)
  assert(self.inputs, self.name .. ': backward before forward')
  for i = #self.children, 1, -1 do
    dout = call(self, i, self.children[i], 'backward', self.inputs[i], dout)
  end
  return dout
end

-- Forward up to and including the child named `name` (or at position `name`).
function Sequential:forward_until(x, name)
  self.inputs = self.inputs or {}
  for i, child in ipairs(self.children) do
    self.inputs[i] = x
    x = call(self, i, child, 'forward', x)
    if child.name == name or i == name then return x end
  end
  error(self.name .. ": no layer named '" .. tostring(name) .. "'", 2)
end

function Sequential:get(name)
  for i, child in ipairs(self.children) do
    if child.name == name or i == name then return child end
  end
end

function Sequential:parameters()
  local out = {}
  for i, child in ipairs(self.children) do
    for _, p in ipairs(Module.prefixed(child.name or tostring(i), child)) do out[#out + 1] = p end
  end
  return out
end

return Sequential
