-- Specs for the Transformer decoder's layers: PositionalEncoding (sinusoids by hand, its
-- gradient) and TransformerDecoderLayer (finite-difference gradients for x, the memory and
-- every weight under causal and key-padding masks; accumulation; dropout on and off).
local luacap = require 'luacap'
local gradcheck = require 'helpers.gradcheck'
local PE = require 'luacap.nn.PositionalEncoding'
local Layer = require 'luacap.nn.TransformerDecoderLayer'

local function near_list(want, got, tol, what)
  assert.equal(#want, #got)
  for i = 1, #want do
    if math.abs(want[i] - got[i]) > tol then
      error(string.format('%s element %d: expected %.7g, got %.7g', what or '', i, want[i], got[i]), 2)
    end
  end
end

describe('PositionalEncoding', function()
  it('adds the sinusoids of "Attention Is All You Need" to scale * x', function()
    -- D = 4: PE[t] = (sin t, cos t, sin(t / 100), cos(t / 100)), since 10000^(2/4) = 100
    local pe = PE(4, {scale = 2})
    local x = luacap.ones(1, 3, 4)
    local want = {}
    for t = 0, 2 do
      for _, v in ipairs{math.sin(t), math.cos(t), math.sin(t / 100), math.cos(t / 100)} do
        want[#want + 1] = 2 + v
      end
    end
    near_list(want, pe:forward(x):flat(), 1e-6, 'out')
    near_list({6, 6, 6, 6, 6, 6}, pe:backward(luacap.ones(1, 3, 4), luacap.full(3, 1, 3, 4))
      :reshape(12):narrow(1, 6):flat(), 0, 'dx')
  end)
end)

-- a decoder layer with random biases and gains; the FFN relu bias is +3, so its inputs stay
-- off the kink at 0 (a finite-difference step across it would fail the check)
local function layer(D, heads, ffn, seed)
  luacap.seed(seed)
  local l = Layer(D, heads, ffn, {dropout = 0.3})
  for _, p in ipairs(l:parameters()) do
    if p.name:find('bias') or p.name:find('beta') then p.value:copy(luacap.randn(p.value:numel())) end
    if p.name:find('gamma') then p.value:copy(luacap.rand(p.value:numel())):add(0.5) end
  end
  l.ffn1.bias:add(3)
  return l
end

describe('TransformerDecoderLayer', function()
  it('lists its weights with prefixed names', function()
    local l = Layer(8, 2, 12)
    local names = {}
    for _, p in ipairs(l:parameters()) do names[#names + 1] = p.name end
    assert.equal('self_attn.query.kernel', names[1])
    assert.equal('ln3.beta', names[#names])
    -- 2 attentions 4*(64+8), 3 LayerNorms 2*8, FFN 8*12+12 + 12*8+8
    assert.equal(2 * 4 * 72 + 3 * 16 + 108 + 104, l:num_params())
  end)

  it('backpropagates to x, the memory and every weight (finite differences, masks on)', function()
    local l = layer(8, 2, 12, 1)
    l:evaluate()
    local x, mem = luacap.randn(2, 4, 8), luacap.randn(2, 3, 8)
    local mask = luacap.tensor{{0, 0, 1, 1}, {0, 1, 1, 1}}
    local ok, report = gradcheck.inputs_check(l, {'x', 'mem'}, {x, mem}, mask,
      {coords = 12, eps = 1e-2, tol = 2e-2, atol = 2e-4})
    assert.is_true(ok, report)
  end)

  it('passes no gradient from a padded position to the real ones after it', function()
    -- causal + key padding: outputs at real positions do not depend on padded inputs
    local l = layer(8, 2, 12, 2)
    l:evaluate()
    local x, mem = luacap.randn(1, 4, 8), luacap.randn(1, 2, 8)
    local mask = luacap.tensor{{0, 0, 1, 1}}
    l:forward({x, mem}, mask)
    local R = luacap.zeros(1, 4, 8)
    for d = 1, 8 do R:set(1, 3, d, 1); R:set(1, 4, d, -1) end   -- loss on real positions only
    local dx = l:backward({x, mem}, R)[1]
    for t = 1, 2 do
      for d = 1, 8 do assert.equal(0, dx:get(1, t, d)) end
    end
  end)

  it('adds into its gradients, and its dropout is on in training only', function()
    local l = layer(8, 2, 12, 3)
    l:evaluate()
    local x, mem, dout = luacap.randn(2, 3, 8), luacap.randn(2, 2, 8), luacap.randn(2, 3, 8)
    local mask = luacap.tensor{{0, 1, 1}, {1, 1, 1}}
    local a = l:forward({x, mem}, mask):clone()
    near_list(a:flat(), l:forward({x, mem}, mask):flat(), 0, 'evaluate')
    l:zero_grad()
    l:backward({x, mem}, dout)
    local once = {}
    for i, p in ipairs(l:parameters()) do once[i] = p.grad:clone() end
    l:backward({x, mem}, dout)
    for i, p in ipairs(l:parameters()) do
      near_list(once[i]:scale(2):flat(), p.grad:flat(), 1e-4, p.name)
    end
    l:train()
    local b = l:forward({x, mem}, mask)
    local differ = false
    for i, v in ipairs(b:flat()) do if math.abs(v - a:flat()[i]) > 1e-6 then differ = true end end
    assert.is_true(differ)
  end)
end)
