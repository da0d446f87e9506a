-- Specs for luacap.eval.stem: the Porter stemmer against a table of nltk 3.8
-- PorterStemmer() (NLTK_EXTENSIONS) stems computed once with Debian's python3-nltk and
-- committed here (no nltk needed), plus the measure m of Porter's paper.
local stem = require 'luacap.eval.stem'

-- {word, nltk 3.8 PorterStemmer().stem(word)}: the paper's examples for each step, then the
-- NLTK_EXTENSIONS cases, then caption words.
local NLTK = {
  -- step 1a, 1b, 1c
  {'caresses', 'caress'}, {'ponies', 'poni'}, {'ties', 'tie'}, {'cats', 'cat'},
  {'feed', 'feed'}, {'agreed', 'agre'}, {'plastered', 'plaster'}, {'bled', 'bled'},
  {'motoring', 'motor'}, {'sing', 'sing'}, {'conflated', 'conflat'}, {'troubled', 'troubl'},
  {'sized', 'size'}, {'hopping', 'hop'}, {'tanned', 'tan'}, {'falling', 'fall'},
  {'hissing', 'hiss'}, {'fizzed', 'fizz'}, {'failing', 'fail'}, {'filing', 'file'},
  {'happy', 'happi'}, {'sky', 'sky'},
  -- step 2
  {'relational', 'relat'}, {'conditional', 'condit'}, {'rational', 'ration'},
  {'valenci', 'valenc'}, {'hesitanci', 'hesit'}, {'digitizer', 'digit'},
  {'conformabli', 'conform'}, {'radicalli', 'radic'}, {'differentli', 'differ'},
  {'vileli', 'vile'}, {'analogousli', 'analog'}, {'vietnamization', 'vietnam'},
  {'predication', 'predic'}, {'operator', 'oper'}, {'feudalism', 'feudal'},
  {'decisiveness', 'decis'}, {'hopefulness', 'hope'}, {'callousness', 'callous'},
  {'formaliti', 'formal'}, {'sensitiviti', 'sensit'}, {'sensibiliti', 'sensibl'},
  -- step 3
  {'triplicate', 'triplic'}, {'formative', 'form'}, {'formalize', 'formal'},
  {'electriciti', 'electr'}, {'electrical', 'electr'}, {'hopeful', 'hope'},
  {'goodness', 'good'},
  -- step 4
  {'revival', 'reviv'}, {'allowance', 'allow'}, {'inference', 'infer'},
  {'airliner', 'airlin'}, {'gyroscopic', 'gyroscop'}, {'adjustable', 'adjust'},
  {'defensible', 'defens'}, {'irritant', 'irrit'}, {'replacement', 'replac'},
  {'adjustment', 'adjust'}, {'dependent', 'depend'}, {'adoption', 'adopt'},
  {'homologou', 'homolog'}, {'communism', 'commun'}, {'activate', 'activ'},
  {'angulariti', 'angular'}, {'homologous', 'homolog'}, {'effective', 'effect'},
  {'bowdlerize', 'bowdler'},
  -- step 5
  {'probate', 'probat'}, {'rate', 'rate'}, {'cease', 'ceas'}, {'controll', 'control'},
  {'roll', 'roll'},
  -- NLTK_EXTENSIONS: irregular forms (looked up before lower-casing), 4-letter ies/ied,
  -- y -> i, alli first, logi, fulli, short words untouched
  {'skies', 'sky'}, {'Skies', 'ski'}, {'dying', 'die'}, {'Dying', 'dy'}, {'innings', 'inning'},
  {'news', 'news'}, {'dies', 'die'}, {'died', 'die'}, {'spied', 'spi'}, {'flies', 'fli'},
  {'xies', 'xie'}, {'enjoy', 'enjoy'}, {'spy', 'spi'}, {'geology', 'geolog'},
  {'geologi', 'geolog'}, {'hopefulli', 'hope'}, {'fulli', 'fulli'}, {'hopefully', 'hope'},
  {'is', 'is'}, {'IS', 'is'}, {'as', 'as'}, {'a', 'a'}, {'ii', 'ii'},
  {'generalization', 'gener'}, {'syzygy', 'syzygi'}, {'toy', 'toy'}, {'oats', 'oat'},
  -- caption words
  {'Running', 'run'}, {'Dogs', 'dog'}, {'dogs', 'dog'}, {'running', 'run'},
  {'playing', 'play'}, {'children', 'children'}, {'jumping', 'jump'}, {'grassy', 'grassi'},
  {'standing', 'stand'}, {'biking', 'bike'},
}

describe('stem.stem', function()
  it('gives nltk 3.8 PorterStemmer stems for ' .. #NLTK .. ' words', function()
    local wrong = {}
    for _, p in ipairs(NLTK) do
      local got = stem.stem(p[1])
      if got ~= p[2] then wrong[#wrong + 1] = ('%s -> %s, expected %s'):format(p[1], got, p[2]) end
    end
    assert.same({}, wrong)
  end)

  it('leaves a word that no rule changes as it is', function()
    -- "happi" -> "happi" (no rule applies); "gener" -> "gener"
    assert.equal('happi', stem.stem('happi'))
    assert.equal('gener', stem.stem('gener'))
  end)

  it('remembers stems in cached (same answers as stem)', function()
    for _, p in ipairs(NLTK) do
      assert.equal(p[2], stem.cached(p[1]))
      assert.equal(p[2], stem.cached(p[1]))
    end
  end)

  it('names a non-string argument', function()
    assert.has_error(function() stem.stem(3) end, 'stem: word is a number, expected a string')
  end)
end)

describe('stem.measure', function()
  it('counts VC sequences as in the paper', function()
    -- m = 0: TR, EE, TREE, Y, BY; m = 1: TROUBLE, OATS, TREES, IVY;
    -- m = 2: TROUBLES, PRIVATE, OATEN, ORRERY (y after a consonant is a vowel: "ivy" = VCV)
    for _, w in ipairs{'tr', 'ee', 'tree', 'y', 'by', ''} do assert.equal(0, stem.measure(w)) end
    for _, w in ipairs{'trouble', 'oats', 'trees', 'ivy'} do assert.equal(1, stem.measure(w)) end
    for _, w in ipairs{'troubles', 'private', 'oaten', 'orrery'} do
      assert.equal(2, stem.measure(w))
    end
  end)
end)
