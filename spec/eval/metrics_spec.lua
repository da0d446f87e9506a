-- Specs for luacap.eval.metrics BLEU: hand-counted cases (arithmetic in comments), nltk 3.8
-- values recorded in spec/fixtures/bleu_cases.json, and error messages. No nltk needed.
local metrics = require 'luacap.eval.metrics'
local cjson = require 'cjson'
local util = require 'helpers.util'

local DBL_MIN = 2.2250738585072014e-308   -- nltk's sys.float_info.min for a zero precision

local words = util.words

-- relative closeness; exact equality for 0
local function near(expected, got, rel)
  rel = rel or 1e-12
  if expected == 0 then return got == 0 end
  return math.abs(got - expected) <= rel * math.abs(expected)
end

local function assert_near(expected, got, rel)
  assert(near(expected, got, rel),
    ('expected %.17g, got %.17g'):format(expected, got))
end

local W1, W2, W4 = {1, 0, 0, 0}, {0.5, 0.5, 0, 0}, {0.25, 0.25, 0.25, 0.25}

describe('metrics.corpus_bleu', function()
  it('scores a sentence against itself 1.0', function()
    -- every p_n = 1, c = r = 6 so BP = exp(1 - 6/6) = 1
    local s = words 'a cat sits on the mat'
    assert.equal(1, metrics.corpus_bleu({{s}}, {s}))
    assert.equal(1, metrics.sentence_bleu({s}, s, W2))
  end)

  it('counts a small case by hand, brevity penalty included', function()
    -- hyp "the cat sat on mat" (c = 5), ref "the cat sat on the mat" (r = 6)
    -- p1 = 5/5; p2: the-cat cat-sat sat-on | on-mat     -> 3/4
    -- p3: the-cat-sat cat-sat-on | sat-on-mat           -> 2/3
    -- p4: the-cat-sat-on | cat-sat-on-mat               -> 1/2
    -- BP = exp(1 - 6/5) = exp(-0.2); BLEU-4 = BP * (1 * 3/4 * 2/3 * 1/2)^(1/4) = BP * 0.25^0.25
    local refs, hyps = {{words 'the cat sat on the mat'}}, {words 'the cat sat on mat'}
    local bp = math.exp(-0.2)
    assert_near(bp, metrics.corpus_bleu(refs, hyps, W1))
    assert_near(bp * math.sqrt(3 / 4), metrics.corpus_bleu(refs, hyps, W2))
    assert_near(bp * 0.25 ^ 0.25, metrics.corpus_bleu(refs, hyps, W4))
    local st = metrics.bleu_stats(refs, hyps, 4)
    assert.same({5, 3, 2, 1}, st.num)
    assert.same({5, 4, 3, 2}, st.den)
    assert.equal(5, st.hyp_len); assert.equal(6, st.ref_len)
  end)

  it('gives 0 for an empty hypothesis alone and for an empty corpus', function()
    -- no unigram matches at all (and c = 0 gives BP = 0)
    assert.equal(0, metrics.corpus_bleu({{words 'a b'}}, {{}}))
    assert.equal(0, metrics.corpus_bleu({}, {}))
    assert.same({0, 0}, metrics.corpus_bleu({}, {}, {W1, W4}))
  end)

  it('lets an empty hypothesis add 1 to every denominator and its closest ref to r', function()
    -- hyp1 "a b c d" = its ref: num {4,3,2,1}, den {4,3,2,1}; hyp2 empty: den +1 each,
    -- refs of lengths 2 and 3, closest to 0 is 2. num {4,3,2,1} / den {5,4,3,2}; c = 4,
    -- r = 4 + 2 = 6: BP = exp(1 - 6/4) = exp(-0.5)
    -- BLEU-1 = BP * 4/5; BLEU-4 = BP * (4/5 * 3/4 * 2/3 * 1/2)^(1/4) = BP * 0.2^0.25
    local refs = {{words 'a b c d'}, {words 'x y z', words 'x y'}}
    local hyps = {words 'a b c d', {}}
    assert_near(math.exp(-0.5) * 0.8, metrics.corpus_bleu(refs, hyps, W1))
    assert_near(math.exp(-0.5) * 0.2 ^ 0.25, metrics.corpus_bleu(refs, hyps, W4))
  end)

  it('penalises a hypothesis shorter than every reference, and shorter than n', function()
    -- hyp "a cat" (c = 2); refs of lengths 4 and 6: closest is 4, BP = exp(1 - 4/2) = e^-1
    -- p1 = 2/2, p2 = 1/1, p3 = p4 = 0/1 (no trigram at all): nltk puts DBL_MIN there
    -- BLEU-2 = e^-1; BLEU-4 = e^-1 * exp(0.25 log DBL_MIN + 0.25 log DBL_MIN)
    local refs, hyps = {{words 'a cat is here', words 'a cat sleeps on a mat'}}, {words 'a cat'}
    assert_near(math.exp(-1), metrics.corpus_bleu(refs, hyps, W2))
    local b4 = metrics.corpus_bleu(refs, hyps, W4)
    assert_near(math.exp(-1) * math.exp(0.5 * math.log(DBL_MIN)), b4)
    assert.is_true(b4 > 0 and b4 < 1e-150)
  end)

  it('counts a hypothesis shorter than n once in that order\'s denominator', function()
    -- hyp1 "a b c d" = ref; hyp2 "a" = ref. num {5,3,2,1}, den {5,3+1,2+1,1+1}; c = r = 5
    -- BLEU-4 = (1 * 3/4 * 2/3 * 1/2)^(1/4) = 0.25^0.25
    local refs = {{words 'a b c d'}, {words 'a'}}
    local hyps = {words 'a b c d', words 'a'}
    assert_near(0.25 ^ 0.25, metrics.corpus_bleu(refs, hyps, W4))
    assert.same({5, 4, 3, 2}, metrics.bleu_stats(refs, hyps).den)
  end)

  it('clips repeated words by the largest count in any single reference', function()
    -- "the the the the" vs "the cat": min(4, 1) = 1 of 4; c = 4 > r = 2, BP = 1
    assert_near(0.25, metrics.corpus_bleu({{words 'the cat'}}, {words 'the the the the'}, W1))
    -- Papineni's example: 7 x "the"; refs hold "the" twice and once: clip at 2, not 3.
    -- c = 7, refs 6 and 7 long: r = 7, BP = exp(0) = 1; BLEU-1 = 2/7
    local refs = {{words 'the cat is on the mat', words 'there is a cat on the mat'}}
    assert_near(2 / 7, metrics.corpus_bleu(refs, {words 'the the the the the the the'}, W1))
  end)

  it('is exactly 0 when no unigram matches', function()
    assert.equal(0, metrics.corpus_bleu({{words 'a cat sleeps'}}, {words 'dog runs'}, W1))
    assert.equal(0, metrics.corpus_bleu({{words 'a cat sleeps'}}, {words 'dog runs'}, W4))
  end)

  it('is tiny but positive for BLEU-4 with no higher-order match; BLEU-1 stays normal', function()
    -- "cat the sat" vs "the cat sat": p1 = 3/3; p2 = 0/2, p3 = 0/1, p4 = 0/1 -> DBL_MIN
    -- c = r = 3, BP = 1. BLEU-1 = exp(1*log 1 + 0*log DBL_MIN * 3) = 1 (weight 0 terms vanish)
    -- BLEU-2 = exp(0.5 log DBL_MIN); BLEU-4 = exp(0.75 log DBL_MIN) ~ 1.8e-231
    local refs, hyps = {{words 'the cat sat'}}, {words 'cat the sat'}
    assert.equal(1, metrics.corpus_bleu(refs, hyps, W1))
    assert_near(math.exp(0.5 * math.log(DBL_MIN)), metrics.corpus_bleu(refs, hyps, W2))
    local b4 = metrics.corpus_bleu(refs, hyps, W4)
    assert_near(math.exp(0.75 * math.log(DBL_MIN)), b4)
    assert.is_true(b4 > 0)
    local all = metrics.bleu_scores(refs, hyps)
    assert.equal(1, all['BLEU-1'])
    assert.equal(b4, all['BLEU-4'])
  end)

  it('breaks a tie for the closest reference length toward the shorter one', function()
    -- hyp of 5 words, refs of 4 and 6 (both 1 away): r = 4, c = 5 > r, BP = 1.
    -- Had the tie gone to 6, BLEU-1 would be exp(1 - 6/5).
    local hyp = words 'a b c d e'
    local r4, r6 = words 'a b c d', words 'a b c d e f'
    assert.equal(1, metrics.corpus_bleu({{r4, r6}}, {hyp}, W1))
    assert.equal(1, metrics.corpus_bleu({{r6, r4}}, {hyp}, W1))
    assert.equal(4, metrics.bleu_stats({{r6, r4}}, {hyp}).ref_len)
  end)

  it('gives per-sentence counts that add up to the corpus counts', function()
    -- sentence 1: "a b" vs "a b": num {2,1}, den {2,1}, c 2, r 2
    -- sentence 2: "c d e f" vs "x y z w": num {0,0}, den {4,3}, c 4, r 4
    local refs = {{words 'a b'}, {words 'x y z w'}}
    local hyps = {words 'a b', words 'c d e f'}
    local per = metrics.bleu_stats(refs, hyps, 2, true)
    -- (guess, coco-caption's denominators, equal den here: no hypothesis is shorter than 2)
    assert.same({num = {2, 1}, den = {2, 1}, guess = {2, 1}, hyp_len = 2, ref_len = 2}, per[1])
    assert.same({num = {0, 0}, den = {4, 3}, guess = {4, 3}, hyp_len = 4, ref_len = 4}, per[2])
    assert.same({num = {2, 1}, den = {6, 4}, guess = {6, 4}, hyp_len = 6, ref_len = 6},
      metrics.bleu_stats(refs, hyps, 2))
  end)

  it('differs from the average of sentence scores', function()
    -- "a b" vs "a b": 1.0. "c d e f" vs "x y z w": 0. Average 0.5.
    -- Corpus: p1 = (2 + 0) / (2 + 4) = 1/3, c = r = 6, BP = 1 -> 1/3
    local refs = {{words 'a b'}, {words 'x y z w'}}
    local hyps = {words 'a b', words 'c d e f'}
    assert_near(1 / 3, metrics.corpus_bleu(refs, hyps, W1))
    local avg = (metrics.sentence_bleu(refs[1], hyps[1], W1)
               + metrics.sentence_bleu(refs[2], hyps[2], W1)) / 2
    assert.equal(0.5, avg)
  end)

  it('matches nltk\'s corpus_bleu doctest', function()
    local hyp1 = words 'It is a guide to action which ensures that the military always obeys the commands of the party'
    local ref1a = words 'It is a guide to action that ensures that the military will forever heed Party commands'
    local ref1b = words('It is the guiding principle which guarantees the military forces always ' ..
      'being under the command of the Party')
    local ref1c = words 'It is the practical guide for the army always to heed the directions of the party'
    local hyp2 = words 'he read the book because he was interested in world history'
    local ref2a = words 'he was interested in world history because he read the book'
    local refs, hyps = {{ref1a, ref1b, ref1c}, {ref2a}}, {hyp1, hyp2}
    assert_near(0.5920778868801042, metrics.corpus_bleu(refs, hyps))
    local many = metrics.corpus_bleu(refs, hyps, {{0.5, 0.5}, {0.333, 0.333, 0.334},
      {0.25, 0.25, 0.25, 0.25}, {0.2, 0.2, 0.2, 0.2, 0.2}})
    assert_near(0.8242803277698696, many[1])
    assert_near(0.7067259260175768, many[2])
    assert_near(0.5920778868801042, many[3])
    assert_near(0.4719230742411042, many[4])
  end)

  it('equals nltk 3.8 on the recorded random corpora to 1e-12 relative', function()
    local f = assert(io.open('spec/fixtures/bleu_cases.json', 'rb'))
    local data = cjson.decode(f:read('*a'))
    f:close()
    assert.is_true(#data.cases >= 50)
    local checked, tiny, zero = 0, 0, 0
    for k, case in ipairs(data.cases) do
      local got = metrics.corpus_bleu(case.references, case.hypotheses, case.weights)
      for i, e in ipairs(case.expected) do
        assert(near(e, got[i]), ('case %d weights %d: nltk %.17g, got %.17g'):format(
          k, i, e, got[i]))
        checked = checked + 1
        if e == 0 then zero = zero + 1 elseif e < 1e-50 then tiny = tiny + 1 end
      end
    end
    -- the fixture exercises both special paths, not only ordinary scores
    assert.is_true(zero > 0 and tiny > 0 and checked - zero - tiny > 100)
  end)
end)

describe('metrics errors', function()
  it('names the argument that is wrong', function()
    assert.has_error(function() metrics.corpus_bleu({{{'a'}}}, {{'a'}, {'b'}}) end,
      'corpus_bleu: 1 reference lists for 2 hypotheses, expected one per hypothesis')
    assert.has_error(function() metrics.corpus_bleu({{}}, {{'a'}}) end,
      'corpus_bleu: references[1] is empty, expected a non-empty list of token lists')
    assert.has_error(function() metrics.corpus_bleu({{{'a', {}}}}, {{'a'}}) end,
      'corpus_bleu: references[1][1][2] is a table, expected a string token')
    assert.has_error(function() metrics.corpus_bleu({{{'a'}}}, {'a b'}) end,
      'corpus_bleu: hypotheses[1] is a string, expected a list of tokens')
    assert.has_error(function() metrics.corpus_bleu({{{'a'}}}, {{'a'}}, {1, 'x'}) end,
      'corpus_bleu: weights[2] is a string, expected a number')
  end)

  it('checks the flat arrays at the C boundary', function()
    local core = require 'luacap.core'
    assert.has_error(function() core.bleu_stats({1, 2}, {3}, {1}, {1}, {1}, 4) end,
      'bleu_stats: hyp_lens add up to 3 but hyp has 2 ids')
    assert.has_error(function() core.bleu_stats({1}, {1}, {1}, {1}, {0}, 4) end,
      'bleu_stats: nrefs[1] must be an integer in [1, 2147483647]')
    assert.has_error(function() core.bleu_stats({1.5}, {1}, {1}, {1}, {1}, 4) end,
      'bleu_stats: hyp[1] must be an integer in [-2147483648, 2147483647]')
  end)
end)

describe("coco-caption's BLEU (pycocoevalcap Bleu)", function()
  it('scores a short hypothesis with its epsilons where nltk gives DBL_MIN', function()
    -- hyp "a b" (c = 2) vs "a b c" (r = 3): correct {2, 1, 0, 0}, guess {2, 1, 0, 0}
    -- (max(0, L-n+1)); q = 2/3 < 1: BP = exp(1 - 3/2) = exp(-0.5)
    -- BLEU-2 = BP; BLEU-3 = BP (1e-15 / 1e-9)^(1/3) = BP 1e-2; BLEU-4 = BP 1e-3
    local s = metrics.coco_bleu_scores({{words 'a b c'}}, {words 'a b'})
    local bp = math.exp(-0.5)
    assert.is_near(bp, s['BLEU-1'], 1e-8)
    assert.is_near(bp, s['BLEU-2'], 1e-8)
    assert.is_near(bp * 1e-2, s['BLEU-3'], 1e-9)
    assert.is_near(bp * 1e-3, s['BLEU-4'], 1e-10)
    assert.is_true(metrics.corpus_bleu({{words 'a b c'}}, {words 'a b'}, W4) < 1e-150)
  end)

  it('sums its own denominators over a corpus: a hypothesis shorter than n adds 0', function()
    -- "the cat sat on the mat" vs "the cat is on the mat": correct {5, 3, 1, 0} of
    -- guess {6, 5, 4, 3}; "a dog" vs "a dog runs": {2, 1, 0, 0} of {2, 1, 0, 0}
    -- totals correct {7, 4, 1, 0}, guess {8, 6, 4, 3}; c = 8, r = 6 + 3 = 9: BP = exp(-1/8)
    local refs = {{words 'the cat is on the mat'}, {words 'a dog runs'}}
    local hyps = {words 'the cat sat on the mat', words 'a dog'}
    local s = metrics.coco_bleu_scores(refs, hyps)
    local bp = math.exp(1 - 9 / 8)
    assert.is_near(bp * 7 / 8, s['BLEU-1'], 1e-9)
    assert.is_near(bp * (7 / 8 * 4 / 6) ^ (1 / 2), s['BLEU-2'], 1e-9)
    assert.is_near(bp * (7 / 8 * 4 / 6 * 1 / 4) ^ (1 / 3), s['BLEU-3'], 1e-9)
    assert.is_near(bp * (7 / 8 * 4 / 6 * 1 / 4 * 1e-15 / 3) ^ (1 / 4), s['BLEU-4'], 1e-10)
    -- nltk counts the short hypothesis' trigram slot (den 5, not 4): a different BLEU-3
    assert_near(bp * (7 / 8 * 4 / 6 * 1 / 5) ^ (1 / 3), metrics.corpus_bleu(refs, hyps, {1 / 3, 1 / 3, 1 / 3}))
    assert.same({8, 6, 4, 3}, metrics.bleu_stats(refs, hyps).guess)
  end)

  it('is in metrics.all beside nltk\'s, and equals nltk\'s where no order is missing', function()
    -- every hypothesis at least 4 long and a match in every order: the epsilons are
    -- below 1e-9 relative and the denominators agree, so the two BLEUs meet
    local refs = {{words 'a b c d e'}, {words 'x y z w v u'}}
    local hyps = {words 'a b c d f', words 'x y z w'}
    local all = metrics.all(refs, hyps)
    for n = 1, 4 do assert.is_near(all['BLEU-' .. n], all['coco BLEU-' .. n], 1e-8) end
  end)
end)
