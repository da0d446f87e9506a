-- Specs for luacap.train.scst (self-critical sequence training): the sampler (greedy mode
-- equals decode.greedy; draws follow the softmax), the policy-gradient loss' gradient against
-- finite differences of -(1/n) sum_k (r_k - b_k) log p(sample_k) computed apart (one pair at
-- a time, log-softmax in Lua), zero gradient for a sample whose reward equals its baseline,
-- the baselines by hand, and a tiny case where the mean reward rises.
local luacap = require 'luacap'
local gradcheck = require 'helpers.gradcheck'
local scst = require 'luacap.train.scst'
local decode = require 'luacap.eval.decode'
local Seed = require 'luacap.models.seed'
local Transformer = require 'luacap.models.transformer'

-- ids 1 startseq, 2 endseq, 3.. words a, b, c, ...
local function vocab_of(V)
  local iw = {[1] = 'startseq', [2] = 'endseq'}
  for i = 3, V - 1 do iw[i] = string.char(94 + i) end   -- 3 -> 'a'
  return {start = 1, stop = 2, index_word = iw}
end

local function tiny_seed(V, T)
  local m = Seed{vocab_size = V, max_len = T, feat_dim = 6, img_dense = 5, embed_dim = 4,
    units = 3, dec_dense = 5, dropout = 0.5}
  -- relu layers' biases well above 0: pre-activations stay away from the kink
  m.dec_dense.bias:fill(0.5)
  m.img_dense.bias:fill(0.5)
  return m
end

local function tiny_transformer(V, T)
  return Transformer{vocab_size = V, max_len = T, feat_dim = 6, d_model = 8, heads = 2,
    layers = 1, ffn = 12, mem_tokens = 3, dropout = 0.1}
end

-- -(1/n) sum_k w_k sum_t log softmax(model(feats[owner_k], prefix_kt))[s_k[t]], one pair per
-- forward, log-softmax in double in Lua: a second implementation of pg_backward's loss.
local function pg_loss_apart(model, feats, seqs, owner, w, n, start)
  local T = model.cfg.max_len
  local total = 0
  for k, s in ipairs(seqs) do
    for t = 1, #s do
      local prefix = {start}
      for i = 1, t - 1 do prefix[#prefix + 1] = s[i] end
      local x = decode.prefix_ids({prefix}, T)
      local logits = model:forward(feats:narrow(owner[k], 1), x):flat()
      local mx = -math.huge
      for j = 1, #logits do mx = math.max(mx, logits[j]) end
      local z = 0
      for j = 1, #logits do z = z + math.exp(logits[j] - mx) end
      total = total + w[k] * (logits[s[t] + 1] - mx - math.log(z))
    end
  end
  return -total / n
end

local function grads_of(model)
  local g = {}
  for _, p in ipairs(model:parameters()) do g[p.name] = p.grad:clone() end
  return g
end

describe('scst sampler', function()
  it('in greedy mode gives decode.greedy\'s captions', function()
    for _, build in ipairs({tiny_seed, tiny_transformer}) do
      luacap.seed(3)
      local V = 9
      local m = build(V, 6)
      local vocab = vocab_of(V)
      local feats = luacap.randn(7, 6):scale(2)
      local want = decode.greedy(m, feats, nil, {vocab = vocab})
      local seqs = scst.sample(m, feats, vocab, {greedy = true})
      for i = 1, 7 do assert.equal(want[i], table.concat(scst.words(seqs[i], vocab), ' ')) end
    end
  end)

  it('draws each next word with its softmax probability', function()
    luacap.seed(4)
    local V = 7
    local m = tiny_seed(V, 1)           -- max_len 1: one draw per sample
    local vocab = vocab_of(V)
    local feats = luacap.randn(1, 6)
    m:evaluate()
    local logits = m:forward(feats, luacap.tensor{{1}}):flat()
    local z = 0
    for j = 1, V do z = z + math.exp(logits[j]) end
    local n = 6000
    local seqs, owner = scst.sample(m, feats, vocab, {k = n})
    assert.equal(n, #seqs)
    assert.equal(1, owner[n])
    local count = {}
    for _, s in ipairs(seqs) do
      assert.equal(1, #s)
      count[s[1]] = (count[s[1]] or 0) + 1
    end
    for j = 1, V do
      local p = math.exp(logits[j]) / z
      -- within 4 standard deviations of a binomial share
      assert.is_true(math.abs((count[j - 1] or 0) / n - p) < 4 * math.sqrt(p * (1 - p) / n) + 1e-9)
    end
  end)

  it('ends a caption at endseq, keeps it until max_len otherwise, and strips as decode.finish', function()
    local vocab = vocab_of(9)
    assert.same({'a', 'b'}, scst.words({3, 4, 2}, vocab))
    assert.same({'a'}, scst.words({3, 2}, vocab))
    assert.same({}, scst.words({3, 0}, vocab))      -- one word, no endseq: '' as decode.finish
    assert.same({'a', 'b'}, scst.words({3, 4, 0}, vocab))
    assert.same({'a', 'b', 'c'}, scst.words({3, 4, 5}, vocab))
  end)
end)

describe('scst policy gradient', function()
  it('has the gradient of -(1/n) sum_k (r_k - b_k) log p(sample_k) (finite differences)', function()
    for _, build in ipairs({tiny_seed, tiny_transformer}) do
      luacap.seed(5)
      local V, T = 8, 4
      local m = build(V, T)
      m:evaluate()
      local feats = luacap.randn(2, 6)
      -- samples of both images; one longer than max_len (its prefix is cut from the front)
      local seqs = {{3, 4, 2}, {5, 2}, {6, 6, 3, 7, 4}, {2}}
      local owner = {1, 1, 2, 2}
      local w = {0.7, -0.4, 1.3, -0.9}          -- r - b
      local ok, report = gradcheck.check{
        eps = 1e-3, tol = 2e-2, atol = 2e-4, coords = 6,
        forward = function() return luacap.tensor(pg_loss_apart(m, feats, seqs, owner, w, 4, 1)) end,
        backward = function(R)
          m:zero_grad()
          scst.pg_backward(m, feats, seqs, owner, w, 4, {start = 1, pair_batch = 3})
          local g = grads_of(m)
          for k, t in pairs(g) do g[k] = t:scale(R:get(1)) end
          return g
        end,
        wrt = (function()
          local t = {}
          for _, p in ipairs(m:parameters()) do t[p.name] = p.value end
          return t
        end)(),
      }
      assert.is_true(ok, report)
      -- and the loss pg_backward returns is the same number
      m:zero_grad()
      local loss = scst.pg_backward(m, feats, seqs, owner, w, 4, {start = 1})
      assert.near(pg_loss_apart(m, feats, seqs, owner, w, 4, 1), loss, 1e-5)
    end
  end)

  it('gives no gradient for a sample whose reward equals its baseline', function()
    luacap.seed(6)
    local m = tiny_seed(8, 4)
    m:evaluate()
    local feats = luacap.randn(2, 6)
    local seqs, owner = {{3, 4, 2}, {5, 6, 2}, {7, 2}}, {1, 1, 2}
    -- greedy rewards per image 0.5 and 0.2; sample 2's reward is its image's greedy reward
    local r = {0.9, 0.5, 0.6}
    local b = scst.baselines(r, 1, 'greedy', {0.5, 0.5, 0.2})
    assert.same({0.5, 0.5, 0.2}, b)
    local w = {r[1] - b[1], r[2] - b[2], r[3] - b[3]}
    assert.equal(0, w[2])
    m:zero_grad()
    scst.pg_backward(m, feats, seqs, owner, w, 3, {start = 1})
    local with = grads_of(m)
    m:zero_grad()
    scst.pg_backward(m, feats, {seqs[1], seqs[3]}, {1, 2}, {w[1], w[3]}, 3, {start = 1})
    local without = grads_of(m)
    for name, g in pairs(with) do assert.equal(0, (g:clone():add(without[name]:clone():scale(-1))):norm(), name) end
    -- every reward at its baseline: no gradient at all
    m:zero_grad()
    scst.pg_backward(m, feats, seqs, owner, {0, 0, 0}, 3, {start = 1})
    for _, p in ipairs(m:parameters()) do assert.equal(0, p.grad:norm()) end
    -- and through the kernel itself: a zero-weight row adds nothing to the gradient
    local crit = luacap.nn.SoftmaxCrossEntropy()
    crit:forward_weighted(luacap.randn(2, 5), luacap.tensor{1, 3}, luacap.tensor{0, 2}, 2)
    assert.same({0, 0, 0, 0, 0}, crit:backward():totable()[1])
  end)

  it('takes the mean of the other samples as the mean baseline', function()
    -- image 1 rewards 1, 2, 6: baselines (2+6)/2, (1+6)/2, (1+2)/2; image 2: 0, 3, 3
    local b = scst.baselines({1, 2, 6, 0, 3, 3}, 3, 'mean')
    assert.same({4, 3.5, 1.5, 3, 1.5, 1.5}, b)
  end)
end)

describe('scst.run', function()
  it('raises the mean reward on a tiny overfitting case', function()
    luacap.seed(8)
    local V, T = 10, 5
    local vocab = vocab_of(V)     -- words a..g (ids 3..9)
    local m = Seed{vocab_size = V, max_len = T, feat_dim = 6, img_dense = 5, embed_dim = 12,
      units = 12, dec_dense = 16, dropout = 0.5}
    m.dec_dense.bias:fill(0.5)
    m.img_dense.bias:fill(0.5)
    -- four images with distinct features, each with two references of its own words
    local feats = luacap.randn(4, 6):scale(2)
    local refs = {
      {{'a', 'b', 'c'}, {'a', 'b', 'c', 'd'}},
      {{'d', 'e', 'f'}, {'d', 'e'}},
      {{'g', 'a', 'e'}, {'g', 'a'}},
      {{'b', 'f', 'g'}, {'b', 'f', 'g', 'a'}},
    }
    local lines = {}
    local hist = scst.run{model = m, inputs = feats, images = {1, 2, 3, 4}, references = refs,
      vocab = vocab, epochs = 60, batch_images = 4, k = 8, baseline = 'mean',
      optimizer = luacap.optim.Adam{lr = 0.03}, log = function(l) lines[#lines + 1] = l end}
    assert.equal(60, #hist.reward)
    assert.equal(60, #lines)
    assert.matches('^SCST epoch 1/60: mean reward', lines[1])
    -- from scratch the samples score about 0.5 (a perfect caption about 6); the first and
    -- last three epochs' means
    local first = (hist.reward[1] + hist.reward[2] + hist.reward[3]) / 3
    local last = (hist.reward[58] + hist.reward[59] + hist.reward[60]) / 3
    assert.is_true(last > first + 1, string.format('mean reward %.3f -> %.3f', first, last))
  end)

  it('names bad options', function()
    local m = tiny_seed(8, 4)
    local base = {model = m, inputs = luacap.randn(1, 6), images = {1}, references = {{{'a'}}},
      vocab = vocab_of(8)}
    base.baseline = 'best'
    assert.has_error(function() scst.run(base) end,
      "scst.run: baseline must be 'greedy' or 'mean', got 'best'")
    base.baseline, base.k = 'mean', 1
    assert.has_error(function() scst.run(base) end,
      'scst.run: the mean baseline needs at least 2 samples per image, got 1')
  end)
end)
