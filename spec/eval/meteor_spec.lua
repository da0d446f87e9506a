-- Specs for luacap.eval.metrics.meteor (nltk 3.8 meteor_score without WordNet synonyms):
-- hand-computed cases with the arithmetic in comments, nltk's values for 32 random pairs
-- recorded in spec/fixtures/meteor_cases.json (gen_meteor_cases.py; no nltk needed), errors.
local metrics = require 'luacap.eval.metrics'
local core = require 'luacap.core'
local cjson = require 'cjson'
local util = require 'helpers.util'

local words = util.words

local assert_near = util.assert_near

-- Defaults alpha 0.9, beta 3, gamma 0.5 throughout:
--   Fmean = P R / (0.9 P + 0.1 R), penalty = 0.5 (chunks / m)^3, score = (1 - penalty) Fmean
describe('metrics.meteor', function()
  it('scores a sentence against itself 1 - gamma (1/m)^beta', function()
    -- m = 6, P = R = 1, Fmean = 1 / (0.9 + 0.1) = 1; one chunk: 0.5 (1/6)^3 = 1/432
    local s = words 'a dog runs on the grass'
    local mean, scores = metrics.meteor({{s}}, {s})
    assert_near(431 / 432, mean)
    assert_near(431 / 432, scores[1])
  end)

  it('gives 0 when nothing matches', function()
    local mean, scores = metrics.meteor({{words 'a cat sleeps'}}, {words 'the dog runs'})
    assert.equal(0, mean); assert.same({0}, scores)
  end)

  it('matches Porter stems after exact words (dogs ~ dog, run ~ runs)', function()
    -- exact: the-the; stem: dogs/dog -> dog, run/runs -> run. m = 3 in one chunk:
    --   1 - 0.5 (1/3)^3 = 53/54
    local refs, hyps = {{words 'the dog runs'}}, {words 'the dogs run'}
    assert_near(53 / 54, (metrics.meteor(refs, hyps)))
    -- without the stem module only "the": P = R = 1/3, Fmean = (1/9) / (1/3) = 1/3,
    -- chunks / m = 1: (1 - 0.5) / 3 = 1/6
    assert_near(1 / 6, (metrics.meteor(refs, hyps, {stem = false})))
    -- a stem-only match alone: dogs ~ dog, m = 1, P = R = 1, penalty 0.5 -> 0.5
    assert_near(0.5, (metrics.meteor({{{'dog'}}}, {{'dogs'}})))
  end)

  it('counts chunks of a reordered sentence', function()
    -- hyp "on the grass a dog runs" vs ref "a dog runs on the grass": m = 6, P = R = 1;
    -- pairs by hyp position (0,3) (1,4) (2,5) | (3,0) (4,1) (5,2): 2 chunks
    -- penalty 0.5 (2/6)^3 = 1/54 -> 53/54
    assert_near(53 / 54, (metrics.meteor({{words 'a dog runs on the grass'}},
                                         {words 'on the grass a dog runs'})))
    -- hyp "dog a runs" (3) vs ref "a dog runs fast" (4): (0,1) | (1,0) | (2,2): 3 chunks
    -- P = 1, R = 3/4, Fmean = 0.75 / (0.9 + 0.075) = 10/13; penalty 0.5 (3/3)^3 = 0.5 -> 5/13
    local refs, hyps = {{words 'a dog runs fast'}}, {words 'dog a runs'}
    assert_near(5 / 13, (metrics.meteor(refs, hyps)))
    -- opt: alpha 0.5, gamma 0: Fmean = 0.75 / (0.5 + 0.375) = 6/7, no penalty
    assert_near(6 / 7, (metrics.meteor(refs, hyps, {alpha = 0.5, gamma = 0})))
  end)

  it('aligns greedily in nltk order, not with the fewest chunks', function()
    -- hyp "the dog the" vs ref "the dog": hyp positions from the last, each to the last
    -- free equal reference word: the(2) -> 0, dog(1) -> 1, the(0) unmatched.
    -- (1,1) (2,0): 2 chunks, m = 2. P = 2/3, R = 1, Fmean = (2/3) / (0.6 + 0.1) = 20/21;
    -- penalty 0.5 (2/2)^3 = 0.5 -> 10/21 (nltk 3.8 gives 0.4761904761904762).
    -- The one-chunk alignment the(0) dog(1) would give 20/21 (1 - 1/16) = 25/28.
    assert_near(10 / 21, (metrics.meteor({{words 'the dog'}}, {words 'the dog the'})))
  end)

  it('takes the max over references and the mean over images', function()
    -- image 1: "a cat" matches nothing (0), "the dog runs" is identical: 1 - 0.5/27 = 53/54
    -- image 2: "dog a runs" vs "a dog runs fast" = 5/13 (above), vs "x" = 0
    local refs = {{words 'a cat', words 'the dog runs'}, {words 'x', words 'a dog runs fast'}}
    local mean, scores = metrics.meteor(refs, {words 'the dog runs', words 'dog a runs'})
    assert_near(53 / 54, scores[1])
    assert_near(5 / 13, scores[2])
    assert_near((53 / 54 + 5 / 13) / 2, mean)
  end)

  it('gives 0 for an empty hypothesis or an empty reference', function()
    -- nltk: P = 0/0 or R = 0/0 raises ZeroDivisionError, caught as 0
    local mean, scores = metrics.meteor({{words 'a dog'}, {{}}}, {{}, words 'a dog'})
    assert.same({0, 0}, scores); assert.equal(0, mean)
  end)

  it('lower-cases first, as nltk preprocess=str.lower; the stemmer lower-cases anyway', function()
    -- "The Dog" vs "the dog": 1 - 0.5 (1/2)^3 = 15/16, with or without lower
    assert_near(15 / 16, (metrics.meteor({{words 'the dog'}}, {words 'The Dog'})))
    assert_near(15 / 16, (metrics.meteor({{words 'the dog'}}, {words 'The Dog'}, {lower = false})))
    -- but nltk looks up its irregular forms before lower-casing: stem("Skies") = "ski",
    -- stem("skies") = "sky"; lowered, the exact module matches them: m = 1 -> 0.5
    assert_near(0.5, (metrics.meteor({{{'skies'}}}, {{'Skies'}})))
    assert.equal(0, (metrics.meteor({{{'skies'}}}, {{'Skies'}}, {lower = false})))
  end)

  it('agrees with nltk 3.8 meteor_score on 32 random pairs (spec/fixtures/meteor_cases.json)', function()
    local f = assert(io.open('spec/fixtures/meteor_cases.json', 'rb'))
    local data = cjson.decode(f:read('*a'))
    f:close()
    local refs, hyps = {}, {}
    for i, c in ipairs(data.cases) do refs[i], hyps[i] = c.references, c.hypothesis end
    assert.equal(32, #hyps)
    local mean, scores = metrics.meteor(refs, hyps)
    local sum = 0
    for i, c in ipairs(data.cases) do
      assert_near(c.meteor, scores[i])
      sum = sum + c.meteor
    end
    assert_near(sum / #hyps, mean)
  end)

  it('is part of metrics.all', function()
    local s, u = words 'a dog runs fast', words 'a cat sleeps there'
    local t = metrics.all({{s}, {u}}, {s, u})
    assert_near(1 - 0.5 / 64, t.METEOR)     -- m = 4 in one chunk, both images
  end)

  it('names bad options and bad arguments', function()
    local r, h = {{words 'a b'}}, {words 'a b'}
    assert.has_error(function() metrics.meteor(r, h, {alpha = 'x'}) end,
      'meteor: opt.alpha is a string, expected a number')
    assert.has_error(function() metrics.meteor(r, h, 3) end,
      'meteor: opt is a number, expected a table')
    assert.has_error(function() metrics.meteor(r, h, {alpha = 2}) end,
      'meteor: alpha must be in [0, 1], got 2')
    assert.has_error(function() metrics.meteor(r, h, {beta = -1}) end,
      'meteor: beta must be finite and >= 0, got -1')
    assert.has_error(function() metrics.meteor(r, {h[1], h[1]}) end,
      'meteor: 1 reference lists for 2 hypotheses, expected one per hypothesis')
    -- the core function checks its stem arrays against the id arrays
    assert.has_error(function() core.meteor({1, 2}, {2}, {1, 2}, {2}, {1}, {1}, {1, 2}) end,
      'meteor: hyp_stem has 1 entries but hyp has 2, expected them equal')
    assert.has_error(function() core.meteor({1, 2}, {2}, {1, 2}, {2}, {1}, {1, 2}, {1, 0.5}) end,
      'meteor: ref_stem[2] must be an integer in [-2147483648, 2147483647]')
  end)
end)

describe('metrics.encode', function()
  it('interns a token "n" like any other word', function()
    -- BLEU-1 of hyp "a n" against ref "a a": only "a" matches, 1/2 (n is not a)
    assert.equal(0.5, metrics.corpus_bleu({{words 'a a'}}, {words 'a n'}, {1}))
    local hyp, _, ref = metrics.encode({{words 'a a'}}, {words 'n a'})
    assert.same({1, 2}, hyp); assert.same({2, 2}, ref)
  end)
end)
