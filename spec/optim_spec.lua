-- Specs for luacap.optim: Adam's first step by hand, several steps against a Lua
-- re-implementation in double, a quadratic minimised, learning-rate groups (lr_scale),
-- state round trips and their errors, SGD by hand, gradient clipping.
local luacap = require 'luacap'
local optim = require 'luacap.optim'

local function param(name, values)
  local v = luacap.tensor(values)
  return {name = name, value = v, grad = v:clone():zero()}
end

-- Keras' Adam in double, one scalar at a time: the formula the C kernel must follow.
local function adam_ref(p, g, m, v, t, lr, b1, b2, eps)
  local lr_t = lr * math.sqrt(1 - b2 ^ t) / (1 - b1 ^ t)
  m = b1 * m + (1 - b1) * g
  v = b2 * v + (1 - b2) * g * g
  return p - lr_t * m / (math.sqrt(v) + eps), m, v
end

describe('optim.Adam', function()
  it('moves each weight by about lr * sign(g) on the first step', function()
    local opt = optim.Adam{}
    local p = param('w', {1, -2, 3, 0.5})
    p.grad:copy(luacap.tensor{0.5, -0.1, 2, -1e-3})
    opt:step({p})
    -- m = 0.1 g, v = 0.001 g^2, lr_t = 0.001 sqrt(0.001) / 0.1, so the step is
    -- 0.001 * g / (|g| + 1e-7 / sqrt(0.001)) = 0.001 sign(g) short by the relative
    -- amount 3.2e-6 / |g|: 3.2e-6 absolute for the last weight (|g| = 1e-3)
    local got = p.value:flat()
    local want = {1 - 0.001, -2 + 0.001, 3 - 0.001, 0.5 + 0.001}
    for i = 1, 4 do assert.near(want[i], got[i], 4e-6) end
    assert.is_true(math.abs(got[4] - want[4]) > 2.5e-6)   -- the epsilon is visible there
    assert.equal(1, opt.t)
    -- and exactly the formula, to float32 rounding
    local g = {0.5, -0.1, 2, -1e-3}
    local p0 = {1, -2, 3, 0.5}
    for i = 1, 4 do
      local r = adam_ref(p0[i], g[i], 0, 0, 1, 0.001, 0.9, 0.999, 1e-7)
      assert.near(r, got[i], 3e-7)
    end
  end)

  it('follows the formula in double over several steps, lr changed midway', function()
    luacap.seed(31)
    local opt = optim.Adam{lr = 0.01}
    local a = {name = 'a', value = luacap.randn(3, 4)}
    a.grad = luacap.zeros(3, 4)
    local b = {name = 'b', value = luacap.randn(5)}
    b.grad = luacap.zeros(5)
    local params = {a, b}
    local ref = {}
    for _, p in ipairs(params) do
      local r = {p = p.value:flat(), m = {}, v = {}}
      for i = 1, #r.p do r.m[i], r.v[i] = 0, 0 end
      ref[p.name] = r
    end
    for t = 1, 8 do
      if t == 5 then opt.lr = 0.003 end   -- as ReduceLROnPlateau does
      for _, p in ipairs(params) do
        p.grad:copy(luacap.randn(p.value:shape()))
        local r, g = ref[p.name], p.grad:flat()
        for i = 1, #r.p do
          r.p[i], r.m[i], r.v[i] = adam_ref(r.p[i], g[i], r.m[i], r.v[i], t, opt.lr, 0.9, 0.999, 1e-7)
        end
      end
      opt:step(params)
      for _, p in ipairs(params) do
        local got, want = p.value:flat(), ref[p.name].p
        for i = 1, #got do
          if math.abs(got[i] - want[i]) > 2e-6 then
            error(string.format('step %d %s[%d]: C %.9g, reference %.9g', t, p.name, i, got[i], want[i]))
          end
        end
      end
    end
  end)

  it('minimises a small quadratic', function()
    -- f(w) = sum (w - c)^2, grad 2 (w - c)
    local c = luacap.tensor{3, -1, 0.5, 2}
    local w = param('w', {0, 0, 0, 0})
    local opt = optim.Adam{lr = 0.05}
    local function f() local d = w.value:clone():add(c, -1); return d:norm() ^ 2 end
    local f0 = f()
    for _ = 1, 600 do
      w.grad:copy(w.value):add(c, -1):scale(2)
      opt:step({w})
    end
    assert.is_true(f() < 1e-4 * f0, 'f went from ' .. f0 .. ' to ' .. f())
  end)

  it('round-trips its state: a restored optimizer takes the same next steps', function()
    luacap.seed(12)
    local function model()
      return {param('x.w', luacap.randn(2, 3):totable()), param('x.b', {0.1, 0.2})}
    end
    local params = model()
    local grads = {}
    for k = 1, 5 do grads[k] = {luacap.randn(2, 3), luacap.randn(2)} end
    local function step(opt, ps, k)
      ps[1].grad:copy(grads[k][1]); ps[2].grad:copy(grads[k][2])
      opt:step(ps)
    end
    local opt = optim.Adam{lr = 0.02}
    for k = 1, 3 do step(opt, params, k) end
    local saved = opt:state()
    local values = {params[1].value:clone(), params[2].value:clone()}
    for k = 4, 5 do step(opt, params, k) end
    -- a fresh optimizer on a copy of the weights, state loaded
    local copy = {param('x.w', values[1]:totable()), param('x.b', values[2]:totable())}
    local opt2 = optim.Adam{}
    opt2:load_state(saved, copy)
    assert.equal(3, opt2.t)
    assert.equal(0.02, opt2.lr)
    for k = 4, 5 do step(opt2, copy, k) end
    assert.same(params[1].value:flat(), copy[1].value:flat())
    assert.same(params[2].value:flat(), copy[2].value:flat())
    -- the saved state is a copy: training on did not move it
    assert.are_not.same(opt:state().m['x.b']:flat(), saved.m['x.b']:flat())
  end)

  it('steps a group of lr_scale s at lr * s, lr changed midway for both, state round trip', function()
    -- as --cnn-lr 1e-4 beside --lr 1e-3: 'encoder.' at 0.1 x lr; the longest prefix wins
    luacap.seed(32)
    local scales = {['encoder.'] = 0.1, ['encoder.head.'] = 2}
    local opt = optim.Adam{lr = 1e-3, lr_scale = scales}
    local params = {param('lstm.kernel', luacap.randn(4):totable()),
                    param('encoder.conv.kernel', luacap.randn(3):totable()),
                    param('encoder.head.bias', luacap.randn(2):totable())}
    local s_of = {1, 0.1, 2}
    local ref, grads = {}, {}
    for i, p in ipairs(params) do ref[i] = {p = p.value:flat(), m = {0, 0, 0, 0}, v = {0, 0, 0, 0}} end
    local saved, values
    for t = 1, 4 do
      if t == 3 then
        opt.lr = 5e-4                      -- ReduceLROnPlateau: every group's rate halves
        saved, values = opt:state(), {}
        for i, p in ipairs(params) do values[i] = p.value:clone() end
      end
      grads[t] = {}
      for i, p in ipairs(params) do
        grads[t][i] = luacap.randn(p.value:numel())
        p.grad:copy(grads[t][i])
        local r, g = ref[i], p.grad:flat()
        for k = 1, #r.p do
          r.p[k], r.m[k], r.v[k] = adam_ref(r.p[k], g[k], r.m[k], r.v[k], t, opt.lr * s_of[i], 0.9,
            0.999, 1e-7)
        end
      end
      opt:step(params)
      for i, p in ipairs(params) do
        local got = p.value:flat()
        for k = 1, #got do
          assert(math.abs(got[k] - ref[i].p[k]) <= 1e-7 + 1e-6 * math.abs(ref[i].p[k]),
            string.format('step %d %s[%d]: C %.9g, reference %.9g', t, p.name, k, got[k], ref[i].p[k]))
        end
      end
    end
    -- lr_scale is configuration (like beta1), not state: a restored optimizer built with the
    -- same scales takes the same steps 3 and 4
    assert.is_nil(saved.lr_scale)
    local opt2 = optim.Adam{lr_scale = scales}:load_state(saved)
    assert.equal(5e-4, opt2.lr)
    local copy = {}
    for i, p in ipairs(params) do copy[i] = {name = p.name, value = values[i], grad = p.grad:clone()} end
    for t = 3, 4 do
      for i, p in ipairs(copy) do p.grad:copy(grads[t][i]) end
      opt2:step(copy)
    end
    for i, p in ipairs(params) do assert.same(p.value:flat(), copy[i].value:flat()) end
    assert.has_error(function() optim.Adam{lr_scale = {['encoder.'] = -1}} end,
      "Adam: lr_scale['encoder.'] must be a number >= 0, got -1")
  end)

  it('names the first difference when a state does not fit', function()
    local opt = optim.Adam{}
    local ps = {param('enc.w', {{1, 2}}), param('enc.b', {0})}
    opt:step(ps)
    local s = opt:state()
    local other = {param('enc.w', {{1, 2, 3}}), param('enc.b', {0})}
    assert.has_error(function() optim.Adam{}:load_state(s, other) end,
      "Adam:load_state: optimizer state m entry 'enc.w' has shape (1, 2), parameter has (1, 3)")
    local renamed = {param('enc.w', {{1, 2}}), param('enc.bias', {0})}
    assert.has_error(function() optim.Adam{}:load_state(s, renamed) end,
      "Adam:load_state: optimizer state m has no entry for parameter 'enc.bias'")
    assert.has_error(function() optim.Adam{}:load_state(s, {ps[1]}) end,
      "Adam:load_state: optimizer state m has an entry 'enc.b' that matches no parameter")
    s.v['enc.b'] = nil
    assert.has_error(function() optim.Adam{}:load_state(s) end,
      "Adam:load_state: optimizer state v has no entry for parameter 'enc.b'")
    assert.has_error(function() opt:step(renamed) end,
      "Adam:step: no state for parameter 'enc.bias' after 1 steps " ..
      '(a renamed parameter, or state loaded for another model)')
    assert.has_error(function()
      luacap.core.adam_update(luacap.zeros(2), luacap.zeros(2), luacap.zeros(3), luacap.zeros(2),
        0.1, 0.9, 0.999, 1e-7)
    end, 'adam_update: v has shape (3) but param has shape (2), expected them equal')
  end)
end)

describe('optim.SGD', function()
  it('steps p -= lr g, and with momentum v = mu v - lr g; p += v', function()
    local p = param('w', {1, 2})
    p.grad:copy(luacap.tensor{10, -20})
    optim.SGD{lr = 0.1}:step({p})
    assert.same({0, 4}, p.value:flat())
    local q = param('w', {1, 2})
    local opt = optim.SGD{lr = 0.1, momentum = 0.5}
    q.grad:copy(luacap.tensor{1, 1})
    opt:step({q})             -- v = -0.1;  p = 0.9, 1.9
    opt:step({q})             -- v = -0.05 - 0.1 = -0.15;  p = 0.75, 1.75
    local got = q.value:flat()
    assert.near(0.75, got[1], 1e-6); assert.near(1.75, got[2], 1e-6)
  end)
end)

describe('optim.clip_grad_norm', function()
  it('scales all grads together to max_norm and returns the norm before', function()
    local a, b = param('a', {0, 0}), param('b', {0})
    a.grad:copy(luacap.tensor{3, 0}); b.grad:copy(luacap.tensor{4})   -- global norm 5
    assert.equal(5, optim.clip_grad_norm({a, b}, 1))
    assert.near(0.6, a.grad:get(1), 1e-7); assert.near(0.8, b.grad:get(1), 1e-7)
    assert.near(1, optim.clip_grad_norm({a, b}, 2), 1e-7)   -- under the limit: untouched
    assert.near(0.6, a.grad:get(1), 1e-7)
  end)
end)
