-- Specs for luacap.data.captions: both caption formats with quoting, CRLF, a BOM, blank
-- and malformed lines; Karpathy's JSON; clean() on tricky strings; images on disk.
local captions = require 'luacap.data.captions'
local paths = require 'luacap.data.paths'
local util = require 'helpers.util'

local FIX = 'spec/fixtures/captions/'

local tmpdir = util.tmpdir
local write = util.write

describe('captions.load on Kaggle captions.txt', function()
  local ds = assert(captions.load(FIX .. 'kaggle.csv'))

  it('detects the format and keeps ids in order of first appearance', function()
    assert.are.equal('kaggle', ds.format)
    assert.are.same({'1000_aa', '1001_bb', '1002_cc'}, ds.ids)
    assert.are.same({['1000_aa'] = '1000_aa.jpg', ['1001_bb'] = '1001_bb.jpg',
                     ['1002_cc'] = '1002_cc.jpg'}, ds.files)
  end)

  it('reads quoted commas, doubled quotes, CRLF and trailing spaces', function()
    assert.are.same({
      'A child in a pink dress is climbing up stairs .',
      'A girl, going into a wooden building .',             -- quoted comma
      'A little girl climbing, unquoted comma kept',        -- split(',', 1) semantics
    }, ds.captions['1000_aa'])
    assert.are.same({
      'A dog said "woof" , twice',                          -- "" is one quote
      'A black dog and a spotted dog are fighting',         -- trailing spaces stripped
    }, ds.captions['1001_bb'])
    assert.are.same({'Two dogs on pavement moving toward each other .'}, ds.captions['1002_cc'])
    assert.are.equal(6, captions.count(ds))
  end)

  it('skips and reports malformed lines with file and line number', function()
    assert.are.equal(3, ds.skipped)
    assert.are.same({
      FIX .. 'kaggle.csv:6: expected image,caption, found no comma',
      FIX .. 'kaggle.csv:10: unterminated quoted field',
      FIX .. 'kaggle.csv:12: empty caption',
    }, ds.problems)
  end)

  it('raises on the first malformed line when strict', function()
    local ok, err = pcall(captions.load, FIX .. 'kaggle.csv', {strict = true})
    assert.is_false(ok)
    assert.are.equal('captions: ' .. FIX .. 'kaggle.csv:6: expected image,caption, found no comma', err)
  end)

  it('lets a quoted field run over a line break and counts physical lines', function()
    local dir = tmpdir()
    local p = dir .. '/multi.txt'
    write(p, 'image,caption\na.jpg,"two\nlines, one caption"\nbroken line\nb.jpg,x y\n')
    local d = assert(captions.load(p))
    assert.are.same({'two\nlines, one caption'}, d.captions.a)
    assert.are.same({'x y'}, d.captions.b)
    assert.are.same({p .. ':4: expected image,caption, found no comma'}, d.problems)
    os.execute('rm -rf ' .. paths.quote(dir))
  end)

  it('reads a CSV without a header and rejects text after a closing quote', function()
    local dir = tmpdir()
    local p = dir .. '/nohead.csv'
    write(p, 'a.jpg,first\na.jpg,"quoted" tail\n')
    local d = assert(captions.load(p))
    assert.are.same({'a'}, d.ids)
    assert.are.same({'first'}, d.captions.a)
    assert.are.same({p .. ':2: text after a closing quote'}, d.problems)
    os.execute('rm -rf ' .. paths.quote(dir))
  end)

  it('returns nil and a message for a missing file', function()
    local d, err = captions.load(FIX .. 'no_such_file.txt')
    assert.is_nil(d)
    assert.truthy(err:find('no_such_file.txt', 1, true))
  end)
end)

describe('captions.load on Flickr8k.token.txt', function()
  local ds = assert(captions.load(FIX .. 'token.txt'))

  it('detects the format; ids as the notebook cuts them (before the first . then #)', function()
    assert.are.equal('token', ds.format)
    assert.are.same({'1000_aa', '1001_bb', '1002_cc'}, ds.ids)
    assert.are.equal('1002_cc.jpg.1', ds.files['1002_cc'])   -- the file name as written
  end)

  it('keeps captions in file order', function()
    assert.are.same({'A child in a pink dress is climbing up stairs .',
                     'A girl , going into a wooden building .'}, ds.captions['1000_aa'])
    assert.are.same({'A dog said "woof" .', 'A black dog .'}, ds.captions['1001_bb'])
    assert.are.same({'Two dogs on pavement .'}, ds.captions['1002_cc'])
  end)

  it('reports the line without a tab', function()
    assert.are.equal(1, ds.skipped)
    assert.are.same({FIX .. 'token.txt:5: expected name#N<TAB>caption, found no tab'}, ds.problems)
    local ok, err = pcall(captions.load, FIX .. 'token.txt', {strict = true})
    assert.is_false(ok)
    assert.are.equal('captions: ' .. FIX .. 'token.txt:5: expected name#N<TAB>caption, found no tab', err)
  end)
end)

describe('captions.load on Karpathy JSON', function()
  local ds = assert(captions.load(FIX .. 'karpathy.json'))

  it('gives the same mapping and the splits, restval counted as train', function()
    assert.are.equal('karpathy', ds.format)
    assert.are.same({'1000_aa', '1001_bb', '1002_cc', '1003_dd', '1004_ee'}, ds.ids)
    assert.are.same({'A child in a pink dress .', 'A girl, going in .'}, ds.captions['1000_aa'])
    assert.are.same({'a', 'girl', 'going', 'in'}, ds.tokens['1000_aa'][2])
    assert.are.same({train = {'1000_aa', '1001_bb', '1004_ee'}, val = {'1002_cc'},
                     test = {'1003_dd'}}, ds.splits)
    assert.are.equal(0, ds.skipped)
  end)
end)

describe('captions.detect', function()
  it('tells the formats apart from the first line', function()
    assert.are.equal('kaggle', captions.detect('\239\187\191image,caption\r\nx.jpg,y\r\n'))
    assert.are.equal('kaggle', captions.detect('\n\nx.jpg,a dog\tand a cat\n'))
    assert.are.equal('token', captions.detect('x.jpg#0\ta dog, a cat\n'))
    assert.are.equal('karpathy', captions.detect('  {"images": []}'))
    local f, err = captions.detect('no separator here')
    assert.is_nil(f)
    assert.truthy(err:find('neither', 1, true))
  end)
end)

describe('captions.clean', function()
  -- Expected strings worked out by hand from the notebook's clean() (and checked against
  -- Python 3's re): every non a-z character becomes a space, words of one letter go.
  local cases = {
    {'A dog, 2 cats & a B-52 ... in\tthe  park!  ', 'startseq dog cats in the park endseq'},
    {"Don't stop-believing", 'startseq don stop believing endseq'},
    {'I saw 3 DOGS', 'startseq saw dogs endseq'},
    {'a b c', 'startseq  endseq'},                          -- nothing left: two spaces
    {'', 'startseq  endseq'},
    {'\r\nline\fbreak\vhere\n', 'startseq line break here endseq'},
    {'A dog said "woof" , twice', 'startseq dog said woof twice endseq'},
    {'x\194\160yz', 'startseq yz endseq'},                  -- NO-BREAK SPACE is \s
    {'Caf\195\169 au lait', 'startseq caf au lait endseq'}, -- é is not a-z
    {'K\226\132\170elvin', 'startseq kkelvin endseq'},      -- KELVIN SIGN lowers to k
    {'\196\176stanbul', 'startseq stanbul endseq'},         -- İ lowers to i + U+0307
    {'startseq already endseq', 'startseq startseq already endseq endseq'},
  }
  for _, c in ipairs(cases) do
    it(string.format('%q', c[1]), function()
      assert.are.equal(c[2], captions.clean(c[1]))
    end)
  end

  it('clean_all keeps the raw captions and all() flattens in id order', function()
    local raw = {b = {'Two Dogs!'}, a = {'A cat.', 'The cat'}}
    local cleaned = captions.clean_all(raw)
    assert.are.same({'A cat.', 'The cat'}, raw.a)
    assert.are.same({'startseq cat endseq', 'startseq the cat endseq'}, cleaned.a)
    assert.are.same({'startseq two dogs endseq', 'startseq cat endseq', 'startseq the cat endseq'},
      captions.all(cleaned, {'b', 'a'}))
  end)
end)

describe('captions.check_images', function()
  local ds = assert(captions.load(FIX .. 'kaggle.csv'))

  it('counts captioned images missing on disk and images without captions', function()
    local dir = tmpdir()
    for _, name in ipairs({'1000_aa.jpg', '1002_cc.jpg', '9999_zz.jpg', 'notes.txt'}) do
      write(dir .. '/' .. name, '')
    end
    local r = captions.check_images(ds, dir)
    assert.are.same({'1001_bb'}, r.missing)
    assert.are.same({'9999_zz.jpg'}, r.extra)
    assert.are.equal(2, r.n_found)
    assert.is_nil(r.error)
    os.execute('rm -rf ' .. paths.quote(dir))
  end)

  it('reports a missing folder without raising', function()
    local r = captions.check_images(ds, '/nonexistent/luacap/Images')
    assert.are.same(ds.ids, r.missing)
    assert.are.same({}, r.extra)
    assert.truthy(r.error:find('not a directory', 1, true))
  end)
end)
