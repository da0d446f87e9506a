-- Runs the README's toy training loop (the code block after the toy-example marker) and
-- checks that it trains: the printed loss at step 100 is below 0.01.
describe('README toy example', function()
  it('runs as written and its loss falls', function()
    local f = assert(io.open('README.md'))
    local text = f:read('*a')
    f:close()
    local code = text:match('<!%-%- toy%-example:[^\n]*\n```lua\n(.-)```')
    assert.is_string(code)
    local printed = {}
    local env = setmetatable({print = function(...) printed[#printed + 1] = {...} end},
      {__index = _G})
    local chunk = assert(loadstring(code, 'README toy example'))
    setfenv(chunk, env)
    chunk()
    assert.equal(2, #printed)
    assert.equal(100, printed[2][1])
    assert.is_true(tonumber(printed[2][2]) < 0.01, 'final loss ' .. tostring(printed[2][2]))
    assert.is_true(tonumber(printed[2][2]) < tonumber(printed[1][2]))
  end)
end)
