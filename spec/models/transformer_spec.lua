-- Specs for the Transformer-decoder captioner (lua/luacap/models/transformer.lua): parameter
-- count by hand, shapes, the whole model's gradients against finite differences, accumulation,
-- initial loss ~ log(V), overfitting two captions, greedy and beam decoding, and a model file
-- round trip through luacap.train.checkpoint.
local luacap = require 'luacap'
local gradcheck = require 'helpers.gradcheck'
local util = require 'helpers.util'
local Transformer = require 'luacap.models.transformer'
local decode = require 'luacap.eval.decode'
local ckpt = require 'luacap.train.checkpoint'

local function tiny(V, Tn, opts)
  local cfg = {vocab_size = V, max_len = Tn, feat_dim = 6, d_model = 8, heads = 2, layers = 2,
    ffn = 12, mem_tokens = 3, dropout = 0.1}
  for k, v in pairs(opts or {}) do cfg[k] = v end
  return Transformer(cfg)
end

local prefixes = require('helpers.util').prefixes

local function near_list(want, got, tol, what)
  assert.equal(#want, #got)
  for i = 1, #want do
    if math.abs(want[i] - got[i]) > tol * math.max(1, math.abs(want[i])) then
      error(string.format('%s element %d: expected %.7g, got %.7g', what or '', i, want[i], got[i]), 2)
    end
  end
end

describe('transformer model', function()
  it('has the parameter count computed by hand at the default sizes', function()
    luacap.seed(1)
    local m = require('luacap.models').build{model = 'transformer', vocab_size = 8485, max_len = 35}
    -- image Dense 4096 -> 4*256: 4096*1024 + 1024 = 4,195,328; Embedding 8485*256 = 2,172,160;
    -- per decoder layer: 2 attentions 2*4*(256*256 + 256) = 526,336, 3 LayerNorms 3*512 = 1,536,
    -- FFN 256*512 + 512 + 512*256 + 256 = 262,912: 790,784, times 2 = 1,581,568;
    -- output Dense 256*8485 + 8485 = 2,180,645. Total 10,129,701.
    assert.equal(10129701, m:num_params())
    local text = m:summary(false)
    assert.matches('Total params: 10,129,701', text, 1, true)
    assert.matches('dec2 (TransformerDecoderLayer)', text, 1, true)
    assert.equal('transformer', m:config().model)
    assert.equal(0.1, m:config().dropout)
    assert.has_error(function() Transformer{vocab_size = 5, max_len = 3, d_model = 10, heads = 4} end,
      'transformer model: d_model 10 is not divisible by heads 4')
    assert.has_error(function() Transformer{max_len = 3} end,
      "transformer model: missing required option 'vocab_size'")
  end)

  it('names its weights with prefixes and maps (B, F), (B, T) to (B, V) logits', function()
    luacap.seed(2)
    local m = tiny(11, 5)
    local names = {}
    for _, p in ipairs(m:parameters()) do names[p.name] = true end
    for _, n in ipairs{'img_dense.kernel', 'embed.embeddings', 'dec1.self_attn.query.kernel',
      'dec2.cross_attn.output.bias', 'dec2.ln3.gamma', 'dec1.ffn1.kernel', 'out.bias'} do
      assert.is_true(names[n] == true, n)
    end
    m:evaluate()
    local logits = m:forward(luacap.randn(4, 6), prefixes(11, 4, 5))
    assert.same({4, 11}, logits:shape())
    assert.same({4, 3, 8}, m.mem:shape())
    -- a row of padding only reaches the logits without NaN (its self-attention reads nothing)
    local lg = m:forward(luacap.randn(2, 6), luacap.tensor{{0, 0, 0, 0, 0}, {0, 0, 0, 1, 2}})
    for _, v in ipairs(lg:flat()) do assert.is_true(v == v) end
  end)

  it('starts near log(V)', function()
    luacap.seed(3)
    local m = tiny(50, 5)
    m:evaluate()
    local crit = luacap.nn.SoftmaxCrossEntropy()
    local y = luacap.tensor{1, 2, 3, 4, 5, 6, 7, 8}
    local loss = crit:forward(m:forward(luacap.randn(8, 6), prefixes(50, 8, 5)), y)
    assert.near(math.log(50), loss, 0.3)
  end)

  it('backpropagates to every weight and to the features (finite differences)', function()
    luacap.seed(4)
    local m = tiny(9, 4)
    m:evaluate()                 -- dropout off: the function must be deterministic
    -- relu inputs kept off the kink at 0: image Dense and FFN biases well above 0
    m.img_dense.bias:fill(2)
    for _, l in ipairs(m.dec) do l.ffn1.bias:fill(3) end
    local feats, ids = luacap.randn(3, 6), prefixes(9, 3, 4)
    local wrt = {feats = feats}
    for _, p in ipairs(m:parameters()) do wrt[p.name] = p.value end
    local ok, report = gradcheck.check{
      coords = 4, eps = 1e-2, tol = 2e-2, atol = 2e-4,
      forward = function() return m:forward(feats, ids) end,
      backward = function(R)
        m:forward(feats, ids)
        m:zero_grad()
        local res = {feats = m:backward(R):clone()}
        for _, p in ipairs(m:parameters()) do res[p.name] = p.grad:clone() end
        return res
      end,
      wrt = wrt,
    }
    assert.is_true(ok, report)
  end)

  it('adds into its gradients: backward twice gives twice the gradients', function()
    luacap.seed(5)
    local m = tiny(9, 4)
    m:evaluate()
    local feats, ids, dlogits = luacap.randn(3, 6), prefixes(9, 3, 4), luacap.randn(3, 9)
    m:forward(feats, ids)
    m:zero_grad()
    local df1 = m:backward(dlogits):clone()
    local once = {}
    for i, p in ipairs(m:parameters()) do once[i] = p.grad:clone() end
    near_list(df1:flat(), m:backward(dlogits):flat(), 1e-5, 'dfeats')
    for i, p in ipairs(m:parameters()) do near_list(once[i]:scale(2):flat(), p.grad:flat(), 1e-4, p.name) end
  end)

  -- two images, two captions: (image, prefix) -> next word pairs, as the notebook builds them
  local TOK = {word_index = {startseq = 1, endseq = 2, a = 3, red = 4, blue = 5, circle = 6,
    square = 7}}
  local CAPS = {{1, 3, 4, 6, 2}, {1, 3, 5, 7, 2}}   -- startseq a red circle / a blue square endseq
  local MAXLEN = 5
  local function pairs_of(feats)
    local rows, prefixes_, targets = {}, {}, {}
    for i, cap in ipairs(CAPS) do
      for n = 1, #cap - 1 do
        rows[#rows + 1] = i
        local p = {}
        for j = 1, n do p[j] = cap[j] end
        prefixes_[#prefixes_ + 1] = p
        targets[#targets + 1] = cap[n + 1]
      end
    end
    local f = luacap.zeros(#rows, feats:size(2))
    luacap.core.gather(f, feats, rows)
    return f, decode.prefix_ids(prefixes_, MAXLEN), luacap.tensor(targets)
  end

  local function trained()
    luacap.seed(6)
    local m = tiny(8, MAXLEN, {d_model = 16, ffn = 32})
    local feats = luacap.randn(2, 6)
    local f, ids, y = pairs_of(feats)
    local opt = luacap.optim.Adam{lr = 0.01}
    local crit = luacap.nn.SoftmaxCrossEntropy()
    m:evaluate()
    local first = crit:forward(m:forward(f, ids), y)
    local loss
    for _ = 1, 150 do
      m:zero_grad()
      loss = crit:forward(m:forward(f, ids), y)
      m:backward(crit:backward())
      opt:step(m:parameters())
    end
    return m, feats, first, loss
  end

  it('skips the features\' gradient under no_input_grad: nil, the same weight gradients', function()
    luacap.seed(15)
    local m = tiny(9, 4)
    m:evaluate()
    require('helpers.util').check_no_input_grad(m, luacap.randn(3, 6), prefixes(9, 3, 4),
      luacap.randn(3, 9))
  end)

  it('overfits two captions with Adam, and greedy decoding reads them back', function()
    local m, feats, first, loss = trained()
    assert.is_true(loss < 0.05 * first, ('loss %.4f from %.4f'):format(loss, first))
    assert.same({'a red circle', 'a blue square'}, decode.greedy(m, feats, TOK))
    local beam = decode.beam(m, feats, TOK, {beam = 3})
    assert.same({'a red circle', 'a blue square'}, beam)
  end)

  it('decodes with beam 1 exactly as greedy on a random model', function()
    local tok = {word_index = {startseq = 1, endseq = 2}}
    for i = 3, 12 do tok.word_index['w' .. i] = i end
    for _, seed in ipairs{7, 8, 9} do
      luacap.seed(seed)
      local m = tiny(13, 6)
      local feats = luacap.randn(5, 6)
      local greedy = decode.greedy(m, feats, tok)
      assert.equal(5, #greedy)
      assert.same(greedy, (decode.beam(m, feats, tok, {beam = 1})))
    end
  end)

  it('saves and loads through checkpoint: the same logits', function()
    local m, feats = trained()
    local dir = util.tmpdir()
    local path = dir .. '/transformer.h5'
    assert.is_true(ckpt.save(path, {model = m}))
    local bundle = assert(ckpt.load(path))
    local m2 = bundle.model
    assert.equal('TransformerCaptioner', m2.__name)
    assert.equal(16, m2.cfg.d_model)
    m:evaluate()
    m2:evaluate()
    local ids = decode.prefix_ids({{1, 3}, {1, 3, 5, 7}}, MAXLEN)
    local a = m:forward(feats, ids):clone()
    near_list(a:flat(), m2:forward(feats, ids):flat(), 0, 'logits')
    os.remove(path)
    os.remove(dir)
  end)
end)
