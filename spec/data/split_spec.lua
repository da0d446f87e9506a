-- Specs for luacap.data.split: the notebook's 90/10 cut, the validation holdout, the
-- official Flickr_8k.*Images.txt lists and Karpathy's splits.
local split = require 'luacap.data.split'
local captions = require 'luacap.data.captions'

local FIX = 'spec/fixtures/captions/'

local function ids(n)
  local t = {}
  for i = 1, n do t[i] = 'id' .. i end
  return t
end

describe('split.notebook', function()
  it('takes the first int(0.9 n) ids for training, in order', function()
    local train, test = split.notebook(ids(10))            -- int(9.0) = 9
    assert.are.same({'id1', 'id2', 'id3', 'id4', 'id5', 'id6', 'id7', 'id8', 'id9'}, train)
    assert.are.same({'id10'}, test)
    train, test = split.notebook(ids(7))                   -- int(6.3) = 6
    assert.are.equal(6, #train)
    assert.are.same({'id7'}, test)
    train, test = split.notebook(ids(8091))                -- Flickr8k: int(7281.9) = 7281
    assert.are.equal(7281, #train)
    assert.are.equal(810, #test)
    train, test = split.notebook({})
    assert.are.same({}, train)
    assert.are.same({}, test)
  end)
end)

describe('split.holdout', function()
  it('takes the last fraction of the training ids', function()
    local fit, val = split.holdout(ids(10), 0.2)
    assert.are.same({'id9', 'id10'}, val)
    assert.are.equal(8, #fit)
    assert.are.equal('id8', fit[8])
  end)

  it('keeps at least one id for validation when asked for some', function()
    local fit, val = split.holdout(ids(3), 0.1)
    assert.are.same({'id1', 'id2'}, fit)
    assert.are.same({'id3'}, val)
    fit, val = split.holdout(ids(3), 0)
    assert.are.equal(3, #fit)
    assert.are.same({}, val)
  end)

  it('rejects a fraction outside [0, 1)', function()
    assert.has_error(function() split.holdout(ids(3), 1) end,
      'split.holdout: fraction is 1, expected a number in [0, 1)')
  end)
end)

describe('split.official', function()
  it('reads the three lists (file names, CRLF, blank lines) as ids', function()
    local s = assert(split.official(FIX))
    assert.are.same({'1000_aa', '1002_cc'}, s.train)
    assert.are.same({'1001_bb'}, s.val)
    assert.are.same({'1009_zz'}, s.test)
  end)

  it('restricts the lists to ids with captions when chosen for a dataset', function()
    local ds = assert(captions.load(FIX .. 'kaggle.csv'))
    local s = assert(split.choose(ds, 'official'))
    assert.are.same({'1000_aa', '1002_cc'}, s.train)
    assert.are.same({'1001_bb'}, s.val)
    assert.are.same({}, s.test)                              -- 1009_zz has no captions
    local kept, dropped = split.restrict({'1009_zz', '1000_aa'}, ds)
    assert.are.same({'1000_aa'}, kept)
    assert.are.equal(1, dropped)
  end)

  it('returns nil and a message when the train list is missing', function()
    local s, err = split.official('/nonexistent')
    assert.is_nil(s)
    assert.are.equal('/nonexistent/Flickr_8k.trainImages.txt: no such file', err)
  end)
end)

describe('split.karpathy and split.choose', function()
  it('gives the JSON splits and the notebook split on request', function()
    local ds = assert(captions.load(FIX .. 'karpathy.json'))
    assert.are.same({train = {'1000_aa', '1001_bb', '1004_ee'}, val = {'1002_cc'},
                     test = {'1003_dd'}}, split.choose(ds, 'karpathy'))
    local nb = split.choose(ds, 'notebook')                 -- 5 ids: int(4.5) = 4
    assert.are.same({'1000_aa', '1001_bb', '1002_cc', '1003_dd'}, nb.train)
    assert.are.same({'1004_ee'}, nb.test)
    assert.are.same({}, nb.val)
    local kg = assert(captions.load(FIX .. 'kaggle.csv'))
    local s, err = split.karpathy(kg)
    assert.is_nil(s)
    assert.truthy(err:find('no splits', 1, true))
  end)
end)
