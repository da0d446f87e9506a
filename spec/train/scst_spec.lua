-- Specs for luacap.train.scst (self-critical sequence training) on the seed, transformer
-- and sat models: the loss pg_backward differentiates is that of decode.sample's draws (its
-- reported log-probs; the padding column masked), its gradient against finite differences
-- of -(1/n) sum_k (r_k - b_k) log p(sample_k) computed apart (pair models: one prefix per
-- forward; sat: its step-wise decode interface, not the teacher-forced path; log-softmax in
-- Lua), zero gradient for a sample whose reward equals its baseline, the baselines by hand,
-- and tiny cases where the mean reward rises.
local luacap = require 'luacap'
local gradcheck = require 'helpers.gradcheck'
local scst = require 'luacap.train.scst'
local decode = require 'luacap.eval.decode'
local Seed = require 'luacap.models.seed'
local Transformer = require 'luacap.models.transformer'
local Sat = require 'luacap.models.sat'

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

local function tiny_sat(V, T)
  local m = Sat{vocab_size = V, max_len = T, regions = 3, feat_dim = 6, embed_dim = 4, units = 5,
    att_dim = 3, dropout = 0.5}
  -- larger than the default init, so attention is far from uniform
  for _, p in ipairs(m:parameters()) do p.value:mul(2) end
  return m
end

local function feats_for(m, B)
  if m.caption_level then return luacap.randn(B, 3, 6) end
  return luacap.randn(B, 6)
end

-- log softmax(row)[col] in double over the columns allowed[j] (all when allowed is nil).
local function log_softmax_at(row, col, allowed)
  local mx = -math.huge
  for j = 1, #row do if not allowed or allowed[j] then mx = math.max(mx, row[j]) end end
  local z = 0
  for j = 1, #row do if not allowed or allowed[j] then z = z + math.exp(row[j] - mx) end end
  return row[col] - mx - math.log(z)
end

-- -(1/n) sum_k w_k sum_t log p(s_k[t] | prefix): a second implementation of pg_backward's
-- loss. Pair models: one forward per prefix (pre-padded); the caption-level model (sat):
-- its step-wise decode interface, one image and one token at a time (not the teacher-forced
-- path pg_backward takes). allowed: the columns the softmax runs over (nil: all).
local function pg_loss_apart(model, feats, seqs, owner, w, n, start, allowed)
  local T = model.cfg.max_len
  local total = 0
  for k, s in ipairs(seqs) do
    local f = feats:narrow(owner[k], 1)
    local st = model.caption_level and model:decode_start(f)
    for t = 1, #s do
      local logits
      if st then
        logits = model:decode_step(st, {t == 1 and start or s[t - 1]}):flat()
      else
        local prefix = {start}
        for i = 1, t - 1 do prefix[#prefix + 1] = s[i] end
        logits = model:forward(f, decode.prefix_ids({prefix}, T)):flat()
      end
      total = total + w[k] * log_softmax_at(logits, s[t] + 1, allowed)
    end
  end
  return -total / n
end

local function grads_of(model)
  local g = {}
  for _, p in ipairs(model:parameters()) do g[p.name] = p.grad:clone() end
  return g
end

local builders = {seed = tiny_seed, transformer = tiny_transformer, sat = tiny_sat}
local order = {'seed', 'transformer', 'sat'}

describe('scst sampling', function()
  it('differentiates the distribution decode.sample draws from (its log-probs)', function()
    for _, name in ipairs(order) do
      luacap.seed(3)
      local V, T = 9, 5
      local m = builders[name](V, T)
      local vocab = vocab_of(V)
      local feats = feats_for(m, 3)
      local samples = decode.sample(m, feats, nil, {vocab = vocab, k = 4, seed = 17})
      local seqs, owner, w, want = {}, {}, {}, 0
      for i = 1, 3 do
        for s = 1, 4 do
          local h = samples[i][s]
          local k = #seqs + 1
          seqs[k], owner[k], w[k] = h.ids, i, (k % 3) - 1.2
          for _, lp in ipairs(h.logprobs) do want = want - w[k] * lp end
        end
      end
      want = want / #seqs
      m:evaluate()
      m:zero_grad()
      local got = scst.pg_backward(m, feats, seqs, owner, w, #seqs, {start = 1, vocab = vocab})
      assert.near(want, got, 1e-5 * math.max(1, math.abs(want)), name)
      -- the padding column carries mass at this init: without the vocab the loss differs
      m:zero_grad()
      local full = scst.pg_backward(m, feats, seqs, owner, w, #seqs, {start = 1})
      assert.is_true(math.abs(full - want) > 1e-3, name .. ': the unmasked loss should differ')
    end
  end)

  it('masks the padding column and ids without a word, and nothing else', function()
    local vocab = vocab_of(6)
    vocab.index_word[4] = nil
    assert.same({{-1e30, 0, 0, 0, -1e30, 0}},
      (function()
        local r = scst.allowed_columns(vocab, 6):totable()
        for j = 1, 6 do if r[1][j] < -1e29 then r[1][j] = -1e30 end end
        return r
      end)())
  end)
end)

describe('scst policy gradient', function()
  it('has the gradient of -(1/n) sum_k (r_k - b_k) log p(sample_k) (finite differences)', function()
    for _, name in ipairs(order) do
     for _, masked in ipairs({false, true}) do
      luacap.seed(5)
      local V, T = 8, 4
      local m = builders[name](V, T)
      m:evaluate()
      local feats = feats_for(m, 2)
      local vocab = masked and vocab_of(V) or nil
      local allowed
      if masked then
        allowed = {}
        for j = 1, V do allowed[j] = j > 1 end
      end
      -- samples of both images; one longer than max_len (its prefix is cut from the front)
      local seqs = {{3, 4, 2}, {5, 2}, {6, 6, 3, 7, 4}, {2}}
      local owner = {1, 1, 2, 2}
      local w = {0.7, -0.4, 1.3, -0.9}          -- r - b
      local ok, report = gradcheck.check{
        eps = 3e-3, tol = 2e-2, atol = 2e-4, coords = 6,
        forward = function()
          return luacap.tensor(pg_loss_apart(m, feats, seqs, owner, w, 4, 1, allowed))
        end,
        backward = function(R)
          m:zero_grad()
          scst.pg_backward(m, feats, seqs, owner, w, 4,
            {start = 1, pair_batch = 3, seq_batch = 3, vocab = vocab})
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
      assert.is_true(ok, name .. (masked and ' (masked)' or '') .. '\n' .. report)
      -- and the loss pg_backward returns is the same number
      m:zero_grad()
      local loss = scst.pg_backward(m, feats, seqs, owner, w, 4, {start = 1, vocab = vocab})
      assert.near(pg_loss_apart(m, feats, seqs, owner, w, 4, 1, allowed), loss, 1e-5)
     end
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
  -- four images with distinct features, each with two references of its own words
  local refs = {
    {{'a', 'b', 'c'}, {'a', 'b', 'c', 'd'}},
    {{'d', 'e', 'f'}, {'d', 'e'}},
    {{'g', 'a', 'e'}, {'g', 'a'}},
    {{'b', 'f', 'g'}, {'b', 'f', 'g', 'a'}},
  }
  local function rises(m, feats, lr)
    local lines = {}
    local hist = scst.run{model = m, inputs = feats, images = {1, 2, 3, 4}, references = refs,
      vocab = vocab_of(10), epochs = 60, batch_images = 4, k = 8, baseline = 'mean',
      optimizer = luacap.optim.Adam{lr = lr}, log = function(l) lines[#lines + 1] = l end}
    assert.equal(60, #hist.reward)
    assert.equal(60, #lines)
    assert.matches('^SCST epoch 1/60: mean reward', lines[1])
    -- from scratch the samples score about 0.5 (a perfect caption about 6); the first and
    -- last three epochs' means
    local first = (hist.reward[1] + hist.reward[2] + hist.reward[3]) / 3
    local last = (hist.reward[58] + hist.reward[59] + hist.reward[60]) / 3
    assert.is_true(last > first + 1, string.format('mean reward %.3f -> %.3f', first, last))
  end

  it('raises the mean reward on a tiny overfitting case (seed)', function()
    luacap.seed(8)
    local m = Seed{vocab_size = 10, max_len = 5, feat_dim = 6, img_dense = 5, embed_dim = 12,
      units = 12, dec_dense = 16, dropout = 0.5}
    m.dec_dense.bias:fill(0.5)
    m.img_dense.bias:fill(0.5)
    rises(m, luacap.randn(4, 6):scale(2), 0.03)
  end)

  it('raises the mean reward on a tiny overfitting case (sat, teacher-forced samples)', function()
    luacap.seed(8)
    local m = Sat{vocab_size = 10, max_len = 5, regions = 3, feat_dim = 6, embed_dim = 12,
      units = 12, att_dim = 8, dropout = 0.5}
    rises(m, luacap.randn(4, 3, 6):scale(2), 0.03)
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
