-- luacap.models: captioning models by name; build(config) rebuilds one from its saved config.
local M = {}

M.names = {seed = 'luacap.models.seed'}
M.names.transformer = 'luacap.models.transformer'
M.names.sat = 'luacap.models.sat'

function M.get(name)
  local mod = M.names[name]
  if not mod then
    local known = {}
    for k in pairs(M.names) do known[#known + 1] = k end
    table.sort(known)
    error(string.format("unknown model '%s' (known: %s)", tostring(name), table.concat(known, ', ')), 2)
  end
  return require(mod)
end

function M.build(cfg)
  return M.get(cfg.model or 'seed')(cfg)
end

return M
