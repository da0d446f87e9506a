-- Specs for luacap.eval.semantic: hand-made scenes and captions (true, wrong colour, wrong
-- shape, missing object, extra object, counts), the scores counted by hand, and the
-- generator's own reference captions (raw and cleaned) all entirely true.
local semantic = require 'luacap.eval.semantic'
local shapes = require 'luacap.data.shapes'
local captions = require 'luacap.data.captions'
local paths = require 'luacap.data.paths'
local util = require 'helpers.util'

local RED_CIRCLE = {colour = 'red', shape = 'circle', size = 'big'}
local BLUE_SQUARE = {colour = 'blue', shape = 'square', size = 'small'}
local ORANGE_STAR = {colour = 'orange', shape = 'star', size = 'small'}
local SCENE = {RED_CIRCLE, BLUE_SQUARE}

describe('semantic.parse', function()
  it('finds colour-shape mentions, shape-only mentions, dangling colours and counts', function()
    local p = semantic.parse('startseq two shapes: a big red circle and a small blue square endseq')
    assert.same({{colour = 'red', shape = 'circle'}, {colour = 'blue', shape = 'square'}}, p.mentions)
    assert.same({2}, p.counts)
    assert.same({{shape = 'star'}}, semantic.parse('a little star at the top').mentions)
    -- a colour that ends its phrase without a shape, and a colour replaced by another
    assert.same({{colour = 'red'}, {colour = 'green'}, {colour = 'blue', shape = 'cross'}},
      semantic.parse('red and green blue cross').mentions)
    -- a count word before a noun phrase: that many mentions
    assert.same({{colour = 'red', shape = 'circle'}, {colour = 'red', shape = 'circle'}},
      semantic.parse('two red circle').mentions)
    assert.same({}, semantic.parse('there is on the left').mentions)
  end)
end)

describe('semantic.judge', function()
  local function j(c, scene) return semantic.judge(c, scene or SCENE) end

  it('a true caption naming everything is entirely true and complete', function()
    local r = j('a red circle to the left of a blue square')
    assert.same({mentions = 2, true_mentions = 2, objects = 2, named = 2, counts_true = true,
      entirely_true = true, complete = true}, r)
    -- cleaned and decoded forms ('a' dropped, markers) parse alike
    assert.same(r, j('startseq red circle to the left of blue square endseq'))
  end)

  it('a true caption naming one object is true but not complete', function()
    local r = j('there is a red circle on the left')
    assert.is_true(r.entirely_true)
    assert.is_false(r.complete)
    assert.equal(1, r.named)
    -- a shape without a colour is true, but names no object's colour
    r = j('a small square at the bottom')
    assert.is_true(r.entirely_true)
    assert.equal(1, r.true_mentions)
    assert.equal(0, r.named)
  end)

  it('a wrong colour is a false mention', function()
    local r = j('a green circle and a blue square')
    assert.equal(2, r.mentions)
    assert.equal(1, r.true_mentions)
    assert.equal(1, r.named)
    assert.is_false(r.entirely_true)
  end)

  it('a wrong shape is a false mention', function()
    local r = j('a red triangle and a blue square')
    assert.equal(1, r.true_mentions)
    assert.is_false(r.entirely_true)
    assert.is_false(j('a big triangle at the top').entirely_true)
  end)

  it('an extra object is false, a missing one lowers recall only', function()
    local r = j('an orange star, a red circle and a blue square')
    assert.equal(3, r.mentions)
    assert.equal(2, r.true_mentions)
    assert.is_false(r.entirely_true)
    r = j('an orange star, a red circle and a blue square', {RED_CIRCLE, BLUE_SQUARE, ORANGE_STAR})
    assert.is_true(r.complete)
    r = j('a red circle', {RED_CIRCLE, BLUE_SQUARE, ORANGE_STAR})
    assert.is_true(r.entirely_true)
    assert.is_false(r.complete)
    assert.equal(1, r.named)
  end)

  it('one object named twice where the scene has one is false (matching is one to one)', function()
    local r = j('a red circle and a red circle')
    assert.equal(1, r.true_mentions)
    assert.is_false(r.entirely_true)
    -- but a shape-only mention may take the object a full mention does not need
    r = j('a square above a red circle')
    assert.equal(2, r.true_mentions)
    assert.is_true(r.entirely_true)
    -- the full mention keeps its object: 'circle' alone cannot steal the red circle
    r = j('a circle and a red circle', {RED_CIRCLE, {colour = 'green', shape = 'circle'}})
    assert.equal(2, r.true_mentions)
    assert.equal(1, r.named)
  end)

  it('count words must equal the number of objects', function()
    assert.is_true(j('two shapes: a red circle and a blue square').entirely_true)
    local r = j('three shapes: a red circle and a blue square')
    assert.is_false(r.counts_true)
    assert.is_false(r.entirely_true)
    assert.equal(2, r.true_mentions)
    assert.is_true(j('one red circle', {RED_CIRCLE}).entirely_true)
    assert.is_false(j('two red circle', {RED_CIRCLE}).entirely_true)
  end)

  it('a caption that names nothing is not true', function()
    local r = j('startseq there is on the left endseq')
    assert.equal(0, r.mentions)
    assert.is_false(r.entirely_true)
  end)
end)

describe('semantic.score', function()
  it('adds mentions and objects over the images (counted by hand)', function()
    local scenes = {a = SCENE, b = {ORANGE_STAR}}
    -- a: 2 mentions, 1 true, 1 named of 2; b: 1 mention, 1 true, 1 named of 1
    local s = semantic.score(scenes, {'a', 'b'}, {'a red circle and a green square', 'an orange star'})
    assert.equal(3, s.mentions)
    assert.equal(3, s.objects)
    assert.near(2 / 3, s.precision, 1e-12)
    assert.near(2 / 3, s.recall, 1e-12)
    assert.equal(0.5, s.entirely_true)
    assert.equal(0.5, s.complete)
    assert.has_error(function() semantic.score(scenes, {'c'}, {'x'}) end,
      'semantic.score: no scene for image c')
  end)

  it("scores every one of the generator's reference captions entirely true", function()
    local dir = util.tmpdir()
    local g = assert(shapes.generate{dir = dir, n = 120, size = 32, seed = 7})
    local scenes = assert(semantic.scenes(g.shapes_file))
    local ds = assert(captions.load(paths.join(dir, 'captions.txt')))
    local ids, raw, clean, seen_counts = {}, {}, {}, false
    for _, id in ipairs(ds.ids) do
      for _, c in ipairs(ds.captions[id]) do
        ids[#ids + 1] = id
        raw[#raw + 1] = c
        clean[#clean + 1] = captions.clean(c)
        if c:find('shapes:', 1, true) then seen_counts = true end
      end
    end
    assert.is_true(#ids >= 500)
    assert.is_true(seen_counts)
    for _, caps in ipairs({raw, clean}) do
      local s = semantic.score(scenes, ids, caps)
      assert.equal(1, s.entirely_true)
      assert.equal(1, s.precision)
      assert.is_true(s.recall > 0.3 and s.recall < 1)
    end
    -- and a caption of another image is mostly false: the check can fail
    local shifted = {}
    for i = 1, #raw do shifted[i] = raw[(i + 5 * 7 - 1) % #raw + 1] end
    assert.is_true(semantic.score(scenes, ids, shifted).entirely_true < 0.5)
    assert.is_nil((semantic.scenes(paths.join(dir, 'captions.txt'))))
  end)
end)
