-- The README and docs/ as documentation that can be wrong:
-- * the toy training loop in docs/api.md (the code block after the toy-example marker) runs
--   as written and trains: the printed loss at step 100 is below 0.01;
-- * README.md stays a first read (under 20 KB) whose "Documentation" list links every
--   docs/*.md file;
-- * every relative link in README.md and docs/*.md names a file that exists, and a
--   `#anchor` names one of that file's headings (GitHub's slugs);
-- * every option that `train.lua --help` and `caption.lua --help` print is written in
--   docs/commands.md.
-- (The REPL session in README.md is run by spec/repl_spec.lua.)
local util = require 'helpers.util'

local function docs_files()
  local names = {}
  for _, n in ipairs(util.listing('docs')) do
    if n:match('%.md$') then names[#names + 1] = 'docs/' .. n end
  end
  return names
end

-- GitHub's heading anchor: lower case, punctuation but '-' and '_' dropped, spaces to '-'.
local function slug(heading)
  return (heading:lower():gsub('[^%w%s_-]', ''):gsub('%s', '-'))
end

-- The anchors of a Markdown file's headings (outside code blocks), as a set.
local function anchors(text)
  local set, fenced = {}, false
  for l in (text .. '\n'):gmatch('([^\n]*)\n') do
    if l:match('^```') then fenced = not fenced
    elseif not fenced then
      local h = l:match('^#+%s+(.-)%s*$')
      if h then set[slug(h)] = true end
    end
  end
  return set
end

-- The folder part of a path ('' for the root).
local function dirname(p) return p:match('^(.*/)') or '' end

-- `a/b/../c` -> `a/c`.
local function normpath(p)
  local parts = {}
  for s in p:gmatch('[^/]+') do
    if s == '..' and #parts > 0 and parts[#parts] ~= '..' then parts[#parts] = nil
    elseif s ~= '.' then parts[#parts + 1] = s end
  end
  return table.concat(parts, '/')
end

describe('docs/api.md toy example', function()
  it('runs as written and its loss falls', function()
    local text = util.read('docs/api.md')
    local code = text:match('<!%-%- toy%-example:[^\n]*\n```lua\n(.-)```')
    assert.is_string(code)
    local printed = {}
    local env = setmetatable({print = function(...) printed[#printed + 1] = {...} end},
      {__index = _G})
    local chunk = assert(loadstring(code, 'docs/api.md toy example'))
    setfenv(chunk, env)
    chunk()
    assert.equal(2, #printed)
    assert.equal(100, printed[2][1])
    assert.is_true(tonumber(printed[2][2]) < 0.01, 'final loss ' .. tostring(printed[2][2]))
    assert.is_true(tonumber(printed[2][2]) < tonumber(printed[1][2]))
  end)
end)

describe('README.md', function()
  local readme = util.read('README.md')

  it('is under 20 KB (the reference belongs in docs/)', function()
    assert.is_true(#readme < 20 * 1024, 'README.md is ' .. #readme .. ' bytes')
  end)

  it('shows the two commands a newcomer runs', function()
    assert.truthy(readme:find('make deps && make test', 1, true))
    assert.truthy(readme:find('luajit examples/train.lua', 1, true))
  end)

  it('links every docs/*.md file from its Documentation list', function()
    local list = readme:match('\n## Documentation\n(.-)\n## ') or readme:match('\n## Documentation\n(.*)$')
    assert.is_string(list, 'README.md has no "## Documentation" section')
    local files = docs_files()
    assert.is_true(#files >= 5)
    for _, f in ipairs(files) do
      assert.truthy(list:find('](' .. f .. ')', 1, true),
        f .. ' is not linked from README.md\'s Documentation list: add a line "- [' .. f .. '](' .. f .. '): ..."')
    end
  end)
end)

describe('links in README.md and docs/*.md', function()
  local files = docs_files()
  table.insert(files, 1, 'README.md')
  local cache = {}
  local function heading_set(path)
    if cache[path] == nil then
      local f = io.open(path, 'rb')
      cache[path] = f and anchors(f:read('*a')) or false
      if f then f:close() end
    end
    return cache[path]
  end

  for _, file in ipairs(files) do
    it(file .. ': every relative link resolves', function()
      local text = util.read(file)
      local n = 0
      for target in text:gmatch('%]%(([^)%s]+)%)') do
        if not target:match('^%a[%w+.-]*:') then           -- not http:, mailto:, ...
          n = n + 1
          local path, anchor = target:match('^([^#]*)#?(.*)$')
          local resolved = path == '' and file or normpath(dirname(file) .. path)
          local set = heading_set(resolved)
          if not resolved:match('/$') and path:match('%.md$') then
            assert.is_table(set, file .. ': link to a missing file ' .. target)
            if anchor ~= '' then
              assert.is_true(set[anchor] == true, file .. ': ' .. target .. ': no such heading in ' .. resolved)
            end
          elseif anchor ~= '' then
            assert.is_table(set, file .. ': anchor into a non-Markdown target ' .. target)
          else
            local f = io.open(resolved, 'rb')
            assert.is_not_nil(f, file .. ': link to a missing path ' .. target)
            f:close()
          end
        end
      end
      if file == 'README.md' then assert.is_true(n >= 10) end
    end)
  end

  it('the slug rule is GitHub\'s', function()
    assert.equal('options-of-examplestrainlua', slug('Options of `examples/train.lua`'))
    assert.equal('the-demos-sizes', slug('The demo\'s sizes'))
    assert.equal('make-memcheck', slug('make memcheck'))
  end)
end)

describe('docs/commands.md', function()
  local doc = util.read('docs/commands.md')
  for _, cmd in ipairs{'examples/train.lua', 'examples/caption.lua'} do
    it('documents every option of ' .. cmd .. ' --help', function()
      local p = io.popen('luajit ' .. cmd .. ' --help 2>&1')
      local help = p:read('*a')
      p:close()
      local opts = {}
      for l in help:gmatch('[^\n]+') do
        local o = l:match('^%s+(%-%-[%w][%w-]*)')
        if o and o ~= '--help' then opts[#opts + 1] = o end
      end
      assert.is_true(#opts >= 5, cmd .. ' --help printed:\n' .. help)
      for _, o in ipairs(opts) do
        -- the option as a word: `--beam` must not be found inside `--beam-width`
        assert.truthy(doc:find('`' .. o:gsub('%-', '%%-') .. '[` ]'),
          o .. ' (' .. cmd .. ') is not documented in docs/commands.md')
      end
    end)
  end
end)
