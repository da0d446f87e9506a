-- luacap.tensor: constructors for float32 tensors (the userdata lives in C, bind/tensor.c).
-- Not an autograd or broadcasting library: kernels do the heavy work on whole batches.
local core = require 'luacap.core'

local M = {}

-- Shape of a nested table of numbers, checking that it is rectangular.
local function nested_shape(t, shape, depth)
  if type(t) ~= 'table' then return shape end
  shape[depth] = #t
  if #t > 0 then nested_shape(t[1], shape, depth + 1) end
  return shape
end

local function flatten(t, shape, depth, out, path)
  if depth > #shape then
    if type(t) ~= 'number' then
      error(string.format('tensor: element %s is a %s, expected a number', path, type(t)), 4)
    end
    out[#out + 1] = t
    return
  end
  if type(t) ~= 'table' or #t ~= shape[depth] then
    error(string.format('tensor: ragged nested table: %s has %s entries, expected %d', path,
      type(t) == 'table' and #t or type(t), shape[depth]), 4)
  end
  for i = 1, #t do flatten(t[i], shape, depth + 1, out, path .. '[' .. i .. ']') end
end

-- luacap.tensor{{1,2},{3,4}} -> 2x2; luacap.tensor(5) -> 1-element 1-d tensor;
-- luacap.tensor(existing) -> a copy.
function M.tensor(t)
  if type(t) == 'number' then return core.from_flat({t}, {1}) end
  if type(t) == 'userdata' then return t:clone() end
  if type(t) ~= 'table' then
    error('tensor: expected a nested table of numbers, got ' .. type(t), 2)
  end
  local shape = nested_shape(t, {}, 1)
  if #shape > 4 then error('tensor: at most 4 dims, got ' .. #shape, 2) end
  local flat = {}
  flatten(t, shape, 1, flat, 't')
  return core.from_flat(flat, shape)
end

function M.zeros(...) return core.zeros(...) end
function M.empty(...) return core.zeros(...) end
function M.ones(...) return core.full(1, ...) end
function M.full(v, ...) return core.full(v, ...) end
-- rand(shape...): uniform in [0, 1); randn(shape...): standard normal.
function M.rand(...) return core.rand(0, 1, ...) end
function M.randn(...) return core.randn(0, 1, ...) end
function M.uniform(lo, hi, ...) return core.rand(lo, hi, ...) end
function M.normal(mean, std, ...) return core.randn(mean, std, ...) end
-- arange(n) -> 0..n-1; arange(a, b[, step]) -> a, a+step, ... below b.
function M.arange(a, b, step)
  if b == nil then a, b = 0, a end
  return core.arange(a, b, step or 1)
end

function M.is_tensor(x)
  return type(x) == 'userdata' and getmetatable(x) == core.Tensor
end

-- ensure(t, d1, d2, ...): t when it already has this shape, else a new zero tensor.
-- The buffer-reuse idiom of the layers (allocate lazily, reallocate when B or T change).
function M.ensure(t, ...)
  local shape = {...}
  if t ~= nil and not t:isfreed() and t:dim() == #shape then
    local same = true
    for d = 1, #shape do
      if t:size(d) ~= shape[d] then same = false; break end
    end
    if same then return t end
  end
  return core.zeros(...)
end

-- ensure_capacity(t, ...): as ensure, but when t's storage holds enough floats the result
-- is a view of it with the new shape (contents left over), so a buffer whose batch size
-- changes from call to call (a trainable encoder sees 7 to 12 images a batch) stops taking
-- fresh memory each call. As with ensure, the caller must be done with t's old contents.
function M.ensure_capacity(t, ...)
  if t ~= nil and not t:isfreed() then
    local shape, same = {...}, t:dim() == select('#', ...)
    for d = 1, #shape do
      if not same or t:size(d) ~= shape[d] then same = false; break end
    end
    if same then return t end
    local v = t:recast(...)
    if v then return v end
  end
  return core.zeros(...)
end

-- ensure_zeroed: as ensure, and zero-filled.
function M.ensure_zeroed(t, ...)
  return M.ensure(t, ...):zero()
end

return M
