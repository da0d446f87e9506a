-- luacap.nn: the layers. Each lives in its own file (lua/luacap/nn/Name.lua) and loads on
-- first use: luacap.nn.Dense, luacap.nn.LSTM, ... Module is the base class.
return setmetatable({}, {
  __index = function(t, k)
    local ok, mod = pcall(require, 'luacap.nn.' .. k)
    if not ok then
      if tostring(mod):find("module 'luacap.nn." .. k .. "' not found", 1, true) then
        error("luacap.nn has no layer '" .. tostring(k) .. "'", 2)
      end
      error(mod, 2)
    end
    rawset(t, k, mod)
    return mod
  end,
})
