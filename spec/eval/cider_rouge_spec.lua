-- Specs for luacap.eval.metrics CIDEr-D and ROUGE-L (coco-caption semantics): hand-computed
-- cases with the arithmetic in comments. No comparison with pycocoevalcap here.
local metrics = require 'luacap.eval.metrics'
local util = require 'helpers.util'

local words = util.words

local assert_near = util.assert_near

describe('metrics.rouge_l', function()
  it('is 1 for a sentence against itself', function()
    -- P = R = 1: (1 + b^2) / (1 + b^2) = 1
    local s = words 'a dog runs on the grass'
    local mean, scores = metrics.rouge_l({{s}}, {s})
    assert.equal(1, mean); assert.same({1}, scores)
  end)

  it('takes the LCS F-measure with beta 1.2', function()
    -- hyp "a b c d" (4), ref "a x c d e" (5): LCS "a c d" = 3, P = 3/4, R = 3/5
    -- F = 2.44 * 0.75 * 0.6 / (0.6 + 1.44 * 0.75) = 1.098 / 1.68
    local mean = metrics.rouge_l({{words 'a x c d e'}}, {words 'a b c d'})
    assert_near(1.098 / 1.68, mean)
  end)

  it('takes the best precision and the best recall over references separately', function()
    -- ref "a b": LCS 2, P = 2/4, R = 2/2; ref "a x c d e": P = 3/4, R = 3/5
    -- Pmax = 0.75, Rmax = 1: F = 2.44 * 0.75 / (1 + 1.44 * 0.75) = 1.83 / 2.08
    local mean = metrics.rouge_l({{words 'a b', words 'a x c d e'}}, {words 'a b c d'})
    assert_near(1.83 / 2.08, mean)
  end)

  it('averages over images and gives 0 for an empty or unrelated hypothesis', function()
    local mean, scores = metrics.rouge_l({{words 'a b'}, {words 'c d'}, {words 'e'}},
                                         {words 'a b', {}, words 'z'})
    assert.same({1, 0, 0}, scores)
    assert_near(1 / 3, mean)
  end)
end)

describe('metrics.cider_d', function()
  it('weights unigrams by tf-idf and takes the clipped cosine (n = 1)', function()
    -- 2 images, so idf = log 2 - log df; every word has df 1: weight log 2.
    -- image 1: "a b" vs "a b": cosine 1 -> 10 * 1 / 1 ref = 10
    -- image 2: "c" vs "c d": (log2 * log2) / (log2 * sqrt2 log2) = 1/sqrt2 -> 10/sqrt2
    local mean, scores = metrics.cider_d({{words 'a b'}, {words 'c d'}},
                                         {words 'a b', words 'c'}, {n = 1})
    assert_near(10, scores[1])
    assert_near(10 / math.sqrt(2), scores[2])
    assert_near((10 + 10 / math.sqrt(2)) / 2, mean)
  end)

  it('counts a hypothesis word absent from every reference in its norm only', function()
    -- image 2: hyp {c, z}, z has df 0 -> weight log 2 - log max(1, 0) = log 2
    -- (log2^2) / (sqrt2 log2 * sqrt2 log2) = 1/2 -> 5
    local _, scores = metrics.cider_d({{words 'a b'}, {words 'c d'}},
                                      {words 'a b', words 'c z'}, {n = 1})
    assert_near(5, scores[2])
  end)

  it('clips the hypothesis weight at the reference weight (the D of CIDEr-D)', function()
    -- hyp "a a": v = 2 log2, norm 2 log2; ref "a b": v_a = v_b = log2, norm sqrt2 log2
    -- min(2 log2, log2) * log2 / (2 log2 * sqrt2 log2) = 1 / (2 sqrt2) -> 10 / (2 sqrt2)
    local _, scores = metrics.cider_d({{words 'a b'}, {words 'c'}},
                                      {words 'a a', words 'c'}, {n = 1})
    assert_near(10 / (2 * math.sqrt(2)), scores[1])
  end)

  it('averages orders 1..4 (empty orders give 0) and applies the length penalty', function()
    -- image 1 "a b" vs "a b": orders 1 and 2 give 1, orders 3, 4 have no n-grams -> 0
    --   10 * (1 + 1 + 0 + 0) / 4 = 5
    -- image 2 "c" vs "c d": order 1 gives 1/sqrt2, the rest 0; lengths (bigram counts)
    --   0 and 1: penalty exp(-1 / (2 * 36)) -> 10 * exp(-1/72) / sqrt2 / 4
    local _, scores = metrics.cider_d({{words 'a b'}, {words 'c d'}}, {words 'a b', words 'c'})
    assert_near(5, scores[1])
    assert_near(10 * math.exp(-1 / 72) / math.sqrt(2) / 4, scores[2])
  end)

  it('divides by the number of references and sees document frequency per image', function()
    -- image 1 refs "a b" twice: df(a) = df(b) = 1 (counted once per image), idf log 2.
    -- each ref gives cosine 1 (n = 1): (1 + 1) / 2 refs * 10 = 10
    local _, scores = metrics.cider_d({{words 'a b', words 'a b'}, {words 'c'}},
                                      {words 'a b', words 'c'}, {n = 1})
    assert_near(10, scores[1])
    -- a word in every image's references has idf log 2 - log 2 = 0: nothing to match
    local _, s2 = metrics.cider_d({{words 'a'}, {words 'a'}}, {words 'a', words 'a'}, {n = 1})
    assert.same({0, 0}, s2)
  end)
end)

describe('metrics.all', function()
  it('returns BLEU-1..4, CIDEr-D and ROUGE-L in one table', function()
    -- four words at least, or BLEU-4 would have no 4-gram to match (and be tiny)
    local s, u = words 'a dog runs fast', words 'a cat sleeps there'
    local t = metrics.all({{s}, {u}}, {s, u})
    for _, k in ipairs{'BLEU-1', 'BLEU-2', 'BLEU-3', 'BLEU-4', 'ROUGE-L'} do
      assert.equal(1, t[k])
    end
    assert.is_number(t['CIDEr-D'])
  end)
end)
