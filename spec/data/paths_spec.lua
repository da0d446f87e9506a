-- Specs for luacap.data.paths: the notebook's choice of input and output folders,
-- directory probes, mkdir -p with awkward names and shell quoting.
local paths = require 'luacap.data.paths'
local util = require 'helpers.util'

local tmpdir = util.tmpdir

describe('paths', function()
  it('quotes for the shell, single quotes included', function()
    assert.are.equal("'plain'", paths.quote('plain'))
    assert.are.equal("'it'\\''s'", paths.quote("it's"))
  end)

  it('joins parts with single slashes', function()
    assert.are.equal('a/b/c', paths.join('a', 'b', 'c'))
    assert.are.equal('a/b', paths.join('a/', 'b'))
    assert.are.equal('/abs', paths.join('a', '/abs'))
  end)

  it('tells directories from files', function()
    assert.is_true(paths.is_dir('spec'))
    assert.is_false(paths.is_dir('spec/data/paths_spec.lua'))
    assert.is_true(paths.is_file('spec/data/paths_spec.lua'))
    assert.is_false(paths.is_file('spec'))
    assert.is_false(paths.is_dir('/nonexistent/dir'))
  end)

  it('picks FLICKR8K_DIR when it exists, else <cwd>/data/flickr8k', function()
    local dir = tmpdir()
    local env = function(k) return ({FLICKR8K_DIR = dir})[k] end
    assert.are.equal(dir, paths.input_dir{env = env})
    local none = function() return nil end
    local got = paths.input_dir{env = none}
    if not paths.is_dir('/kaggle/input/flickr8k') then
      assert.are.equal(paths.join(paths.cwd(), 'data', 'flickr8k'), got)
    end
    local gone = function(k) return ({FLICKR8K_DIR = dir .. '/absent'})[k] end
    assert.are_not.equal(dir .. '/absent', paths.input_dir{env = gone})
    os.execute('rm -rf ' .. paths.quote(dir))
  end)

  it('makes outputs/models and outputs/results under A5_OUTPUT_DIR', function()
    local dir = tmpdir()
    local root = dir .. "/out it's $HOME"               -- quote, space and a dollar
    local env = function(k) return ({A5_OUTPUT_DIR = root})[k] end
    assert.are.equal(root, paths.output_dir{env = env})
    assert.are.equal(paths.join(paths.cwd(), 'outputs'), paths.output_dir{env = function() end})
    local d = assert(paths.output_dirs(paths.output_dir{env = env}))
    assert.are.same({root = root, models = root .. '/models', results = root .. '/results'}, d)
    assert.is_true(paths.is_dir(d.models))
    assert.is_true(paths.is_dir(d.results))
    assert.are.same({'models', 'results'}, paths.list_dir(root))
    os.execute('rm -rf ' .. paths.quote(dir))
  end)

  it('fails softly when a directory cannot be made', function()
    local ok, err = paths.mkdir_p('/proc/luacap_cannot_be_here')
    assert.is_nil(ok)
    assert.truthy(err:find('could not create', 1, true))
    local list, lerr = paths.list_dir('/nonexistent')
    assert.is_nil(list)
    assert.are.equal('/nonexistent: not a directory', lerr)
  end)
end)
