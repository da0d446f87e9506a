-- Runs the REPL session shown in README.md ("The REPL") as written: the `$` commands in a
-- shell from the repository root, the `>` lines one by one in the real `luajit -i` that the
-- last `$` command starts, and compares each output line the README shows.
-- Not a Lua parser: one input line is one statement, as a reader would type it.
local luacap = require 'luacap'
local util = require 'luacap.util'
local paths = require 'luacap.data.paths'

-- The block after the marker comment: {commands = {...}, steps = {{input=, expected={}}}}.
local function read_session(readme)
  local text = assert(util.read_file(readme))
  local lines = {}
  for l in (text .. '\n'):gmatch('([^\n]*)\n') do lines[#lines + 1] = l end
  local i = 1
  while lines[i] and not lines[i]:find('<!-- repl-session', 1, true) do i = i + 1 end
  assert(lines[i], readme .. ': no <!-- repl-session --> marker')
  i = i + 1
  assert(lines[i] and lines[i]:match('^```'), readme .. ': no code block after the marker')
  local s = {commands = {}, steps = {}}
  local cmd
  i = i + 1
  while lines[i] and not lines[i]:match('^```') do
    local l = lines[i]
    if cmd then                                  -- continuation of a `$` command
      cmd = cmd .. ' ' .. l:gsub('^%s+', '')
    elseif l:match('^%$ ') then
      cmd = l:sub(3)
    elseif l:match('^> ') then
      s.steps[#s.steps + 1] = {input = l:sub(3), expected = {}}
    else
      assert(#s.steps > 0, readme .. ': output before the first > line: ' .. l)
      table.insert(s.steps[#s.steps].expected, l)
    end
    if cmd and not cmd:match('\\$') then s.commands[#s.commands + 1] = cmd; cmd = nil
    elseif cmd then cmd = cmd:gsub('%s*\\$', '') end
    i = i + 1
  end
  assert(lines[i], readme .. ': the session block is not closed')
  return s
end

local function norm(l) return (l:gsub('%s+', ' '):gsub('^ ', ''):gsub(' $', '')) end

local session = read_session('README.md')

describe('README REPL session', function()
  local tmp, subst, outputs, stderr, rcs

  -- the README's folders, moved into a temporary one
  local function fill(s)
    return (s:gsub('outputs/tiny', tmp .. '/out'):gsub('data/tiny%-shapes', tmp .. '/shapes'))
  end

  setup(function()
    local p = io.popen('mktemp -d /tmp/luacap_repl_spec.XXXXXX')
    tmp = p:read('*l')
    p:close()
    subst = fill
    -- the inputs, each followed by a marker line so that outputs can be told apart
    local input = {"print('@@0@@')"}
    for k, st in ipairs(session.steps) do
      input[#input + 1] = fill(st.input)
      input[#input + 1] = "print('@@" .. k .. "@@')"
    end
    assert(util.write_file(tmp .. '/input.lua', table.concat(input, '\n') .. '\n'))
    local script = {}
    local n = #session.commands
    for k, c in ipairs(session.commands) do
      local redirect = k == n and (' <' .. paths.quote(tmp .. '/input.lua')) or ''
      script[#script + 1] = string.format('%s%s >%s 2>%s; echo $? >%s', fill(c), redirect,
        paths.quote(tmp .. '/out' .. k), paths.quote(tmp .. '/err' .. k), paths.quote(tmp .. '/rc' .. k))
    end
    assert(util.write_file(tmp .. '/session.sh', table.concat(script, '\n') .. '\n'))
    os.execute('sh ' .. paths.quote(tmp .. '/session.sh'))
    rcs, stderr = {}, {}
    for k = 1, n do
      rcs[k] = tonumber((util.read_file(tmp .. '/rc' .. k) or ''):match('%d+'))
      stderr[k] = util.read_file(tmp .. '/err' .. k) or ''
    end
    -- split the REPL's stdout at the markers; each piece is "> " .. output .. "> "
    local raw = util.read_file(tmp .. '/out' .. n) or ''
    outputs = {}
    local _, pos = raw:find('@@0@@\n', 1, true)
    for k = 1, #session.steps do
      if not pos then break end
      local a, b = raw:find('@@' .. k .. '@@\n', pos + 1, true)
      if not a then break end
      local piece = raw:sub(pos + 1, a - 1)
      if piece:sub(1, 2) == '> ' and piece:sub(-2) == '> ' and #piece >= 4 then
        piece = piece:sub(3, -3)
      else
        piece = '<unexpected REPL output: ' .. piece .. '>'
      end
      local ls = {}
      for l in piece:gmatch('([^\n]*)\n') do ls[#ls + 1] = l end
      if piece:sub(-1) ~= '\n' and #piece > 0 then ls[#ls + 1] = piece:match('[^\n]*$') end
      outputs[k] = ls
      pos = b
    end
  end)

  teardown(function() if tmp then os.execute('rm -rf ' .. paths.quote(tmp)) end end)

  it('the README shows a session: commands, then REPL lines with outputs', function()
    assert.is_true(#session.commands >= 1)
    assert.matches('luajit %-i', session.commands[#session.commands])
    assert.is_true(#session.steps >= 5)
  end)

  it('every $ command exits 0 and the REPL writes nothing to stderr', function()
    for k, c in ipairs(session.commands) do
      assert.equal(0, rcs[k], subst(c) .. '\n' .. stderr[k])
    end
    assert.equal('', stderr[#session.commands])
  end)

  for k, st in ipairs(session.steps) do
    it('> ' .. st.input, function()
      local got = outputs[k]
      assert.is_table(got, 'the REPL stopped before this line; stderr:\n' .. stderr[#session.commands])
      local shown = table.concat(got, '\n')
      assert.equal(#st.expected, #got, 'README shows ' .. #st.expected .. ' lines, the REPL printed:\n' .. shown)
      for j, e in ipairs(st.expected) do
        if e == '...' then
          assert.is_true(norm(got[j]) ~= '', 'line ' .. j .. ' is empty')
        else
          assert.equal(norm(e), norm(got[j]), 'line ' .. j .. ' of:\n' .. shown)
        end
      end
    end)
  end

  it('the caption the session prints is the model\'s caption of that image', function()
    local model_path, image
    for _, st in ipairs(session.steps) do
      model_path = model_path or st.input:match("luacap%.load%('([^']+)'%)")
      image = image or st.input:match("luacap%.caption%(model, '([^']+%.jpg)'%)")
    end
    assert.is_string(model_path)
    assert.is_string(image)
    local c = assert(luacap.load(subst(model_path)))
    local cap = assert(luacap.caption(c, subst(image)))
    assert.matches('^[a-z]+[a-z ]*$', cap)
    local found = false
    for k = 1, #session.steps do
      for _, l in ipairs(outputs[k] or {}) do found = found or l == cap end
    end
    assert.is_true(found, 'no output line is "' .. cap .. '"')
  end)
end)
