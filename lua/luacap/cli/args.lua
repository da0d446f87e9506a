-- luacap.cli.args: what the two commands share: option converters that refuse bad values
-- at parse time, and the one-line form of an error for a user.
-- Not an option parser (lua-argparse is).
local M = {}

-- argparse converter: an integer >= min (1 by default), or nil and a message.
function M.int_at_least(min)
  min = min or 1
  return function(s)
    local n = tonumber(s)
    if not n or n ~= math.floor(n) or n < min then
      return nil, string.format("expected an integer >= %d, got '%s'", min, tostring(s))
    end
    return n
  end
end

-- argparse converter: a number > 0.
function M.positive(s)
  local n = tonumber(s)
  if not n or not (n > 0) then return nil, string.format("expected a number > 0, got '%s'", tostring(s)) end
  return n
end

-- The first line of an error, without the "file.lua:123: " position Lua puts in front of
-- errors raised at a level > 0: that is for LUACAP_DEBUG's traceback, not for a user.
function M.user_message(err)
  local line = tostring(err):match('^[^\n]*')
  return (line:gsub('^[^:%s]+%.lua:%d+: ', ''))
end

-- "16,32,64" for a list option in the printed options
function M.show(v)
  if type(v) == 'table' then
    local parts = {}
    for i, x in ipairs(v) do parts[i] = tostring(x) end
    return table.concat(parts, ',')
  end
  return tostring(v)
end

return M
