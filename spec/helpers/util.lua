-- spec/helpers/util.lua: small helpers several spec files share (temporary folders, whole-file
-- reads and writes, tensor closeness, RNN weight copies, word lists).
-- Not checks of luacap's behaviour: each helper only prepares inputs or compares values.
-- busted gives spec files its assert; a required module sees the plain one, so ask luassert.
local luassert = require 'luassert'

local M = {}

-- A fresh empty directory under the system's temporary folder; the caller removes it.
function M.tmpdir()
  local p = os.tmpname()
  os.remove(p)
  assert(require('luacap.data.paths').mkdir_p(p))
  return p
end

-- The whole file as a string; raises when it cannot be opened.
function M.read(path)
  local f = assert(io.open(path, 'rb'))
  local s = f:read('*a')
  f:close()
  return s
end

-- The names in directory d (dot files included, . and .. not), sorted.
function M.listing(d)
  local p = io.popen('ls -A "' .. d .. '"')
  local names = {}
  for line in p:lines() do names[#names + 1] = line end
  p:close()
  table.sort(names)
  return names
end

-- Writes s as the whole file (directly, no temporary); raises when it cannot be opened.
function M.write(path, s)
  local f = assert(io.open(path, 'wb'))
  f:write(s)
  f:close()
end

-- Raises, naming the first differing element, unless got matches expected element by
-- element within tol (1e-5 by default) relative to max(1, |expected|).
function M.close(expected, got, tol)
  local a, b = expected:flat(), got:flat()
  luassert.equal(#a, #b)
  for i = 1, #a do
    if math.abs(a[i] - b[i]) > (tol or 1e-5) * math.max(1, math.abs(a[i])) then
      error(string.format('element %d: expected %.7g, got %.7g', i, a[i], b[i]), 2)
    end
  end
end

-- Copies kernel, recurrent_kernel and bias of one recurrent layer (LSTM, GRU) into another.
function M.copy_weights(dst, src)
  dst.kernel:copy(src.kernel)
  dst.recurrent_kernel:copy(src.recurrent_kernel)
  dst.bias:copy(src.bias)
end

-- Row (b, t, :) of a (B, T, H) tensor as a plain Lua list.
function M.row(y, b, t)
  local r = {}
  for k = 1, y:size(3) do r[k] = y:get(b, t, k) end
  return r
end

-- Steps t1..t2 (in reverse order when reverse) of every batch element of x (B, T, C), as a
-- fresh (B, t2-t1+1, C) tensor.
function M.slice_t(x, t1, t2, reverse)
  local B, C = x:size(1), x:size(3)
  local out = require('luacap').zeros(B, t2 - t1 + 1, C)
  for b = 1, B do
    for t = t1, t2 do
      local to = reverse and (t2 - t + 1) or (t - t1 + 1)
      for c = 1, C do out:set(b, to, c, x:get(b, t, c)) end
    end
  end
  return out
end

-- For accumulation specs: after l:forward(x, mask) and l:zero_grad(), runs
-- l:backward(x, dout) twice; returns dx of the first call (a copy), dx of the second, and
-- copies of every parameter gradient after the first.
function M.backward_twice(l, x, mask, dout)
  l:forward(x, mask)
  l:zero_grad()
  local dx1 = l:backward(x, dout):clone()
  local g1 = {}
  for i, p in ipairs(l:parameters()) do g1[i] = p.grad:clone() end
  local dx2 = l:backward(x, dout)
  return dx1, dx2, g1
end

-- Raises unless got is within tol (1e-12 by default) of expected, relative to
-- max(1, |expected|); the message shows both to 17 digits.
function M.assert_near(expected, got, tol)
  tol = tol or 1e-12
  assert(math.abs(got - expected) <= tol * math.max(1, math.abs(expected)),
    ('expected %.17g, got %.17g'):format(expected, got))
end

-- Pre-padded id prefixes (B, T) for a model of vocabulary V: row b has 1 + (b-1) % T real
-- ids (never 0) at its end and zeros before them, as the notebook's pad_sequences gives.
function M.prefixes(V, B, T)
  local rows = {}
  for b = 1, B do
    local n = 1 + (b - 1) % T
    local r = {}
    for t = 1, T do r[t] = t > T - n and (1 + (b * 7 + t * 3) % (V - 1)) or 0 end
    rows[b] = r
  end
  return require('luacap').tensor(rows)
end

-- A model's backward with and without model.no_input_grad (fit sets it for frozen
-- features), each after forward(feats, ids) and zero_grad: the first returns the features'
-- gradient (shaped as feats), the second nil, and every weight gradient is the same (to
-- 1e-6). Raises, naming the parameter, at the first difference.
function M.check_no_input_grad(m, feats, ids, dlogits)
  m:forward(feats, ids)
  m:zero_grad()
  luassert.same(feats:shape(), m:backward(dlogits):shape())
  local want = {}
  for i, p in ipairs(m:parameters()) do want[i] = p.grad:clone() end
  m:forward(feats, ids)
  m:zero_grad()
  m.no_input_grad = true
  local dfeats = m:backward(dlogits)
  m.no_input_grad = nil
  luassert.is_nil(dfeats)
  for i, p in ipairs(m:parameters()) do
    local ok, err = pcall(M.close, want[i], p.grad, 1e-6)
    if not ok then error(p.name .. ': ' .. tostring(err), 2) end
  end
end

-- The whitespace-separated words of s, as a list.
function M.words(s)
  local t = {}
  for w in s:gmatch('%S+') do t[#t + 1] = w end
  return t
end

return M
