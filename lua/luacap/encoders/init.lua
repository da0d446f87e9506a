-- luacap.encoders: image encoders with one interface, vgg16 (frozen, Keras weights; or its
-- last blocks fine-tuned, fine_tune_from) and smallcnn (trainable): forward(images (B, S, S,
-- 3)) -> features, parameters(), out_dim, config(); build(config) rebuilds one from its
-- config. Not a model zoo.
local M = {
  vgg16 = require 'luacap.encoders.vgg16',
  smallcnn = require 'luacap.encoders.smallcnn',
}

-- build(config) -> encoder | nil, message. config.name picks the family.
function M.build(config)
  if type(config) ~= 'table' then
    error('encoders.build: config is a ' .. type(config) .. ', expected a table', 2)
  end
  local family = M[config.name or '']
  if type(family) ~= 'table' or not family.new then
    error("encoders.build: unknown encoder '" .. tostring(config.name) ..
      "', expected 'vgg16' or 'smallcnn'", 2)
  end
  return family.new(config)
end

-- A short digest of an encoder's weights (count, sum, sum of squares per parameter),
-- so that a feature cache made with other weights under the same config is noticed.
function M.fingerprint(encoder)
  local parts = {}
  for _, p in ipairs(encoder:parameters()) do
    local n = p.value:norm()
    parts[#parts + 1] = string.format('%s:%d:%.9g:%.9g', p.name, p.value:numel(),
      p.value:sum(), n * n)
  end
  return table.concat(parts, ';')
end

return M
