-- luacap.eval: decoding (greedy, beam) and caption metrics, loaded on first use.
return setmetatable({}, {__index = function(t, k)
  local mod = require('luacap.eval.' .. k)
  rawset(t, k, mod)
  return mod
end})
