-- gradcheck: compares analytic gradients with central differences (STYLE.md §6.2).
-- With a fixed random R shaped like the output, L = sum(out * R) (accumulated in double)
-- checks the whole Jacobian through one scalar: backward(R) must give dL/dx.
-- float32 steps follow ggml: eps about 1e-2..1e-3 times max(1, |x|); relative error
-- |a - n| / max(|a| + |n|, 1e-6) below tol (1e-2 by default).
local luacap = require 'luacap'

local M = {}

-- L = sum(out * R) in double precision.
function M.dot(out, R)
  local a, b = out:flat(), R:flat()
  local s = 0
  for i = 1, #a do s = s + a[i] * b[i] end
  return s
end

-- check{forward = fn() -> out, backward = fn(R) -> {name = analytic grad tensor},
--       wrt = {name = value tensor}, coords = 30 (per tensor; all when smaller),
--       eps = 1e-2, tol = 1e-2, seed = 1,
--       signature = nil | fn() -> string, called after forward: which linear piece the
--       network is on (ReLU masks, max-pool switches). A coordinate whose +h or -h step
--       changes it crossed a kink, where central differences mean nothing: it is skipped
--       and another drawn (random picks only), and the report counts the skips.}
-- Returns ok, report (worst relative error per tensor and the failing coordinates).
function M.check(opts)
  local eps, tol, coords = opts.eps or 1e-2, opts.tol or 1e-2, opts.coords or 30
  local out = opts.forward()
  local sig = opts.signature and opts.signature()
  luacap.seed(opts.seed or 1234)
  local R = luacap.randn(out:shape())
  local analytic = opts.backward(R)
  local ok, lines = true, {}
  local names = {}
  for name in pairs(opts.wrt) do names[#names + 1] = name end
  table.sort(names)
  for _, name in ipairs(names) do
    local x = opts.wrt[name]
    local g = assert(analytic[name], 'gradcheck: backward gave no gradient for ' .. name)
    assert(g:numel() == x:numel(), 'gradcheck: gradient of ' .. name .. ' has the wrong size')
    local gflat = g:flat()
    local n = x:numel()
    local flat_view = x:reshape(n)
    local picks = {}
    local random_picks = n > coords
    if not random_picks then
      for i = 1, n do picks[i] = i end
    else
      for i = 1, coords do picks[i] = luacap.random(n) end
    end
    local worst, skipped, k = 0, 0, 0
    while k < #picks do
      k = k + 1
      local i = picks[k]
      local orig = flat_view:get(i)
      local h = eps * math.max(1, math.abs(orig))
      flat_view:set(i, orig + h)
      local lp = M.dot(opts.forward(), R)
      local crossed = sig and opts.signature() ~= sig
      flat_view:set(i, orig - h)
      local lm = M.dot(opts.forward(), R)
      crossed = crossed or (sig and opts.signature() ~= sig)
      flat_view:set(i, orig)
      if crossed then
        skipped = skipped + 1
        if random_picks and skipped <= 3 * coords then picks[#picks + 1] = luacap.random(n) end
        goto continue
      end
      -- the step actually taken in float32
      local numeric = (lp - lm) / ((orig + h) - (orig - h))
      local a = gflat[i]
      local rel = math.abs(a - numeric) / math.max(math.abs(a) + math.abs(numeric), 1e-6)
      -- tiny gradients drown in float32 rounding: also accept a small absolute error
      if rel > tol and math.abs(a - numeric) > (opts.atol or 1e-4) then
        ok = false
        lines[#lines + 1] = string.format('  %s[%d]: analytic %.6g numeric %.6g (rel %.3g)',
          name, i, a, numeric, rel)
      end
      if rel > worst then worst = rel end
      ::continue::
    end
    lines[#lines + 1] = string.format('%s: worst relative error %.3g over %d coords', name, worst,
      #picks - skipped) .. (sig and string.format(' (%d skipped at kinks)', skipped) or '')
    if #picks - skipped < math.min(coords, n) / 2 then   -- a check of almost nothing fails
      ok = false
      lines[#lines + 1] = string.format('  %s: fewer than half the coordinates away from kinks', name)
    end
  end
  opts.forward()  -- leave the module's caches as they were for the unperturbed input
  return ok, table.concat(lines, '\n')
end

-- A module's input and every parameter under check():
--   module_check(m, {input = x, input_name = 'input', forward = fn() -> out,
--                    backward = fn(R) -> gradient of the input (run after forward),
--                    state = {name = tensor} (extra inputs, e.g. an initial state),
--                    state_grads = fn() -> {name = their gradients},
--                    coords =, eps =, tol =, atol =, signature =})
-- Each analytic gradient comes from forward(); m:zero_grad(); backward(R).
function M.module_check(m, opts)
  local input_name = opts.input_name or 'input'
  local wrt = {[input_name] = opts.input}
  for _, p in ipairs(m:parameters()) do wrt[p.name] = p.value end
  for name, t in pairs(opts.state or {}) do wrt[name] = t end
  return M.check{
    eps = opts.eps, tol = opts.tol, coords = opts.coords, atol = opts.atol,
    signature = opts.signature, forward = opts.forward,
    backward = function(R)
      opts.forward()
      m:zero_grad()
      local res = {[input_name] = opts.backward(R):clone()}
      for _, p in ipairs(m:parameters()) do res[p.name] = p.grad:clone() end
      if opts.state_grads then
        for name, g in pairs(opts.state_grads()) do res[name] = g:clone() end
      end
      return res
    end,
    wrt = wrt,
  }
end

-- A layer whose input is a list of tensors (Attention, Concat, MultiHeadAttention, the
-- decoder layer): checks every input and every parameter.
--   inputs_check(m, {'q', 'v'}, {q, v}[, extra], {coords=, eps=, tol=, atol=})
-- forward is m:forward(xs, extra); backward is m:backward(xs, R) -> {dx1, dx2, ...}.
function M.inputs_check(m, names, xs, extra, opts)
  opts = opts or {}
  local wrt = {}
  for i, name in ipairs(names) do wrt[name] = xs[i] end
  for _, p in ipairs(m:parameters()) do wrt[p.name] = p.value end
  return M.check{
    eps = opts.eps, tol = opts.tol, coords = opts.coords, atol = opts.atol,
    forward = function() return m:forward(xs, extra) end,
    backward = function(R)
      m:forward(xs, extra)
      m:zero_grad()
      local g = m:backward(xs, R)
      local res = {}
      for i, name in ipairs(names) do res[name] = g[i]:clone() end
      for _, p in ipairs(m:parameters()) do res[p.name] = p.grad:clone() end
      return res
    end,
    wrt = wrt,
  }
end

-- Convenience for a layer with one tensor input: checks dx and every parameter.
--   layer_check(layer, x, {coords=, eps=, tol=})
function M.layer_check(layer, x, opts)
  opts = opts or {}
  return M.module_check(layer, {
    input = x, coords = opts.coords, eps = opts.eps, tol = opts.tol, atol = opts.atol,
    forward = function() return layer:forward(x) end,
    backward = function(R) return layer:backward(x, R) end,
  })
end

return M
