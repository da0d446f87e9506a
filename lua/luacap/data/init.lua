-- luacap.data: caption datasets. Submodules load on first use: luacap.data.captions,
-- .tokenizer, .split, .paths, .shapes (the synthetic dataset), .pairs (training pairs).
-- Not a data-loading framework: every function takes and returns plain tables and tensors.
local names = {
  captions = 'luacap.data.captions', tokenizer = 'luacap.data.tokenizer',
  split = 'luacap.data.split', paths = 'luacap.data.paths', shapes = 'luacap.data.shapes',
  pairs = 'luacap.data.pairs',
}

return setmetatable({}, {
  __index = function(t, k)
    local name = names[k]
    if not name then error("luacap.data has no module '" .. tostring(k) .. "'", 2) end
    local mod = require(name)
    rawset(t, k, mod)
    return mod
  end,
})
