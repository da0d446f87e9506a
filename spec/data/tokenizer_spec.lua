-- Specs for luacap.data.tokenizer: Keras Tokenizer() ordering (count, then first seen),
-- filters, dropping unknown words, sequences back to text, and the JSON round trip.
local tokenizer = require 'luacap.data.tokenizer'

describe('tokenizer', function()
  -- words in order:  the cat sat | the dog sat | a dog
  -- counts: the 2, cat 1, sat 2, dog 2, a 1; first seen: the, cat, sat, dog, a.
  -- Descending count, ties by first appearance: the 1, sat 2, dog 3, cat 4, a 5.
  local texts = {'the cat sat', 'The dog, sat!', 'A  Dog'}
  local tok = tokenizer.fit(texts)

  it('orders the index by count, ties in order of first appearance', function()
    assert.are.same({'the', 'sat', 'dog', 'cat', 'a'}, tok.index_word)
    assert.are.same({the = 1, sat = 2, dog = 3, cat = 4, a = 5}, tok.word_index)
    assert.are.same({the = 2, cat = 1, sat = 2, dog = 2, a = 1}, tok.word_counts)
    assert.are.same({'the', 'cat', 'sat', 'dog', 'a'}, tok.word_order)
    assert.are.equal(3, tok.document_count)
    assert.are.equal(6, tok:vocab_size())
  end)

  it('splits like text_to_word_sequence: filters become spaces, apostrophes stay', function()
    assert.are.same({"don't", 'stop', 'me', 'now'}, tok:text_to_word_sequence("Don't stop-me,now!"))
    assert.are.same({'tab', 'sep', 'nl'}, tok:text_to_word_sequence('tab\tsep\nnl'))
    -- \r is not among Keras' filters, so it stays inside the word
    assert.are.same({'cr\rx'}, tok:text_to_word_sequence('cr\rx'))
  end)

  it('drops words not in the index (no oov_token), and round-trips known text', function()
    assert.are.same({{1, 3}, {}, {5, 4, 2}}, tok:texts_to_sequences({'the unknown dog', 'zebra', 'a cat sat'}))
    assert.are.same({'dog the', 'a cat sat'}, tok:sequences_to_texts({{3, 0, 1, 99}, {5, 4, 2}}))
    local s = 'the dog sat a cat'
    assert.are.equal(s, tok:sequence_to_text(tok:text_to_sequence(s)))
  end)

  it('max_length counts ids, not characters', function()
    assert.are.equal(3, tok:max_length(texts))
    assert.are.equal(2, tok:max_length({'the unknown dog'}))
  end)

  it('refits incrementally as Keras does', function()
    local t = tokenizer.fit({'b a'})
    t:fit_on_texts({'a c'})
    -- counts b 1, a 2, c 1; first seen b, a, c -> a 1, b 2, c 3
    assert.are.same({'a', 'b', 'c'}, t.index_word)
    assert.are.equal(2, t.document_count)
  end)

  it('saves to JSON and loads the same order back', function()
    local path = os.tmpname()
    assert(tok:save(path))
    local back = assert(tokenizer.load(path))
    os.remove(path)
    assert.are.same(tok.index_word, back.index_word)
    assert.are.same(tok.word_index, back.word_index)
    assert.are.same(tok.word_counts, back.word_counts)
    assert.are.same(tok.word_order, back.word_order)
    assert.are.equal(tok.document_count, back.document_count)
    assert.are.equal(tok.filters, back.filters)
    assert.are.equal(tok:to_json(), back:to_json())
  end)

  it('keeps ties in order through a save when many words share a count', function()
    local words = {}
    for i = 1, 300 do words[i] = 'w' .. (301 - i) end     -- w300 first, all counted once
    local t = tokenizer.fit({table.concat(words, ' ')})
    local back = assert(tokenizer.from_json(t:to_json()))
    assert.are.equal('w300', back.index_word[1])
    assert.are.equal('w1', back.index_word[300])
  end)

  it('refuses a file whose index disagrees with its counts', function()
    local s = tok:to_json():gsub('"index_word":%["the","sat"', '"index_word":["sat","the"')
    local t, err = tokenizer.from_json(s)
    assert.is_nil(t)
    assert.are.equal("tokenizer: index_word[1] is 'sat', the counts give 'the'", err)
    local t2, err2 = tokenizer.from_json('{"format": "keras"}')
    assert.is_nil(t2)
    assert.are.equal("tokenizer: format is keras, expected 'luacap.tokenizer'", err2)
  end)
end)
