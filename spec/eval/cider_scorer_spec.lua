-- Specs for luacap.eval.metrics.cider_scorer, the CIDEr-D scorer with document frequencies
-- cached from a fixed reference set (self-critical training's reward): hand cases, then
-- a second implementation (the corpus scorer metrics.cider_d) on random corpora.
local luacap = require 'luacap'
local metrics = require 'luacap.eval.metrics'
local util = require 'helpers.util'

local words = util.words
local assert_near = util.assert_near

-- A random corpus: S images with 1..4 references of 0..10 words from a small vocabulary
-- (so n-grams repeat and df > 1), hypotheses from a larger one (so some words are unseen).
local function random_corpus(S)
  local refs, hyps = {}, {}
  for s = 1, S do
    local rs = {}
    for j = 1, luacap.random(4) do
      local r = {}
      for i = 1, luacap.random(11) - 1 do r[i] = 'w' .. luacap.random(6) end
      rs[j] = r
    end
    refs[s] = rs
    local h = {}
    for i = 1, luacap.random(13) - 1 do h[i] = 'w' .. luacap.random(9) end
    hyps[s] = h
  end
  return refs, hyps
end

describe('metrics.cider_scorer', function()
  it('takes the idf from its own references, not from those scored against', function()
    -- df from 3 images {a b}, {c d}, {c e} (n = 1): idf(c) = log 3 - log 2, idf(d) = log 3.
    -- "c" against image 2 ("c d"): v_h(c) = idf(c), |v_h| = idf(c);
    -- |v_r| = sqrt(idf(c)^2 + idf(d)^2): cosine = idf(c)^2 / (idf(c) |v_r|) = idf(c) / |v_r|
    local sc = metrics.cider_scorer({{words 'a b'}, {words 'c d'}, {words 'c e'}}, {n = 1})
    local ic, id = math.log(3) - math.log(2), math.log(3)
    local got = sc:score({words 'c'}, {2})
    assert_near(10 * ic / math.sqrt(ic * ic + id * id), got[1], 1e-12)
    -- the same caption against image 1 shares nothing: 0
    assert.same({0}, sc:score({words 'c'}, {1}))
  end)

  it('counts an unseen word with idf log S, repeats included, in the norm only', function()
    -- 2 images, n = 1: "c z z" against "c d"; idf log 2 for all (df(c) = 1, df(z) = 0).
    -- v_h = (log2, 2 log2), |v_h| = sqrt5 log2; |v_r| = sqrt2 log2; dot = log2^2
    -- cosine = 1 / sqrt10
    local sc = metrics.cider_scorer({{words 'a b'}, {words 'c d'}}, {n = 1})
    assert_near(10 / math.sqrt(10), sc:score({words 'c z z'}, {2})[1], 1e-12)
  end)

  it('equals the corpus scorer when the df come from the references scored against', function()
    luacap.seed(7)
    for _, n in ipairs({4, 2, 1}) do
      for _, S in ipairs({1, 2, 5, 40}) do
        local refs, hyps = random_corpus(S)
        local _, want = metrics.cider_d(refs, hyps, {n = n})
        local sc = metrics.cider_scorer(refs, {n = n})
        local imgs = {}
        for s = 1, S do imgs[s] = s end
        local got = sc:score(hyps, imgs)
        assert.equal(S, #got)
        for s = 1, S do assert_near(want[s], got[s], 1e-9) end
      end
    end
  end)

  it('scores many candidates of the same image in one call, in any order', function()
    luacap.seed(11)
    local refs, hyps = random_corpus(6)
    local sc = metrics.cider_scorer(refs)
    local _, want = metrics.cider_d(refs, hyps)
    -- every hypothesis scored against its own image, shuffled and repeated
    local hs, imgs, expect = {}, {}, {}
    for k = 1, 30 do
      local s = luacap.random(6)
      hs[k], imgs[k], expect[k] = hyps[s], s, want[s]
    end
    local got = sc:score(hs, imgs)
    for k = 1, 30 do assert_near(expect[k], got[k], 1e-9) end
  end)

  it('accepts token ids as well as strings', function()
    local sc = metrics.cider_scorer({{{3, 4}}, {{5, 6}}})
    local sw = metrics.cider_scorer({{words 'c d'}, {words 'e f'}})
    assert.same(sw:score({words 'e f e'}, {2}), sc:score({{5, 6, 5}}, {2}))
  end)

  it('names the mistake: an image out of range, a freed scorer, bad tokens', function()
    local sc = metrics.cider_scorer({{words 'a b'}, {words 'c d'}})
    assert.equal(2, sc:images())
    assert.has_error(function() sc:score({words 'a'}, {3}) end,
      'cider_scorer:score: images[1] must be an integer in [1, 2] (the scorer\'s images)')
    assert.has_error(function() sc:score({words 'a'}, {1, 2}) end,
      'cider_scorer:score: 1 hypotheses for 2 images, expected one image per hypothesis')
    assert.has_error(function() metrics.cider_scorer({}) end,
      'cider_scorer: nrefs is empty, expected at least one image')
    assert.has_error(function() metrics.cider_scorer({{}}) end,
      'cider_scorer: references[1] is empty, expected a non-empty list of token lists')
    sc:free()
    sc:free()   -- twice is harmless, and so is the GC after it
    assert.has_error(function() sc:score({words 'a'}, {1}) end,
      'bad argument #1: cider scorer was freed')
    assert.truthy(tostring(sc.c):find('freed'))
  end)
end)
