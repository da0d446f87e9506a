-- Specs for luacap.data.pairs: the generator's (image, prefix, next word) pairs counted
-- and padded by hand on two captions; batches, truncation and the seeded shuffle.
local pairs_ = require 'luacap.data.pairs'
local tokenizer = require 'luacap.data.tokenizer'
local luacap = require 'luacap'

describe('pairs', function()
  local caps = {
    img1 = {'startseq red circle endseq'},
    img2 = {'startseq big blue square endseq'},
  }
  -- counts startseq 2, endseq 2, the rest 1; first seen startseq red circle endseq big
  -- blue square -> startseq 1, endseq 2, red 3, circle 4, big 5, blue 6, square 7.
  -- img1: [1 3 4 2] (3 pairs); img2: [1 5 6 7 2] (4 pairs); longest caption 5.
  local tok = tokenizer.fit({caps.img1[1], caps.img2[1]})
  local p = pairs_.build({'img1', 'img2'}, caps, tok)

  it('makes n-1 pairs per caption of n ids, in the generator order', function()
    assert.are.same({'startseq', 'endseq', 'red', 'circle', 'big', 'blue', 'square'}, tok.index_word)
    assert.are.equal(7, p.n)
    assert.are.equal(2, p.n_captions)
    assert.are.equal(5, p.max_len)
    assert.are.same({1, 1, 1, 2, 2, 2, 2}, p.pair_image)
    assert.are.same({1, 1, 1, 2, 2, 2, 2}, p.pair_caption)
    assert.are.same({1, 2, 3, 1, 2, 3, 4}, p.pair_pos)
  end)

  it('pre-pads the prefixes with zeros and gives the next word', function()
    local X, y, images = pairs_.batch(p, nil, 1, 7)
    assert.are.same({7, 5}, X:shape())
    assert.are.same({
      {0, 0, 0, 0, 1}, {0, 0, 0, 1, 3}, {0, 0, 1, 3, 4},
      {0, 0, 0, 0, 1}, {0, 0, 0, 1, 5}, {0, 0, 1, 5, 6}, {0, 1, 5, 6, 7},
    }, X:totable())
    assert.are.same({3, 4, 2, 5, 6, 7, 2}, y:totable())
    assert.are.same({1, 1, 1, 2, 2, 2, 2}, images)
  end)

  it('follows an order, cuts the last batch short and truncates from the front', function()
    local X, y, images = pairs_.batch(p, {7, 3, 1, 5}, 2, 10, 2)
    assert.are.same({{3, 4}, {0, 1}, {1, 5}}, X:totable())  -- prefix 1 3 4 keeps 3 4
    assert.are.same({2, 3, 6}, y:totable())
    assert.are.same({1, 1, 2}, images)
    assert.has_error(function() pairs_.batch(p, nil, 8, 1) end,
      'pairs.batch: first 8 is past the last of 7 pairs')
    assert.has_error(function() pairs_.batch(p, nil, 1, 0) end,
      'pairs.batch: count is 0, expected an integer >= 1')
  end)

  it('shuffle gives a permutation that the seed repeats', function()
    luacap.seed(42)
    local a = pairs_.shuffle(50)
    luacap.seed(42)
    local b = pairs_.shuffle(50)
    assert.are.same(a, b)
    local seen, moved = {}, 0
    for i, v in ipairs(a) do
      seen[v] = true
      if v ~= i then moved = moved + 1 end
    end
    for i = 1, 50 do assert.is_true(seen[i]) end
    assert.is_true(moved > 25)
    luacap.seed(43)
    assert.are_not.same(a, pairs_.shuffle(50))
  end)

  it('names an image without captions', function()
    assert.has_error(function() pairs_.build({'img3'}, caps, tok) end,
      "pairs.build: image 'img3' has no captions")
  end)
end)
