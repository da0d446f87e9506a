-- luacap.train: the fit loop, callbacks and model files, loaded on first use.
return setmetatable({}, {__index = function(t, k)
  local mod = require('luacap.train.' .. k)
  rawset(t, k, mod)
  return mod
end})
