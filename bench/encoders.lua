-- bench/encoders.lua: VGG16 forward images/s at batch 1 and 16 (random weights, 224x224),
-- with GFLOP/s and its ratio to the sgemm rate measured in the same run (bench/sgemm.lua).
-- Conv layers dominate (im2col + sgemm); this is the number the feature cache waits on.
local luacap = require 'luacap'
local sgemm = require 'sgemm'

local M = {}

-- Multiply-add = 2 flops: conv 2*OH*OW*KH*KW*C*OC, dense 2*C*OC, per image.
function M.flops_per_image(enc)
  local S, total = enc.cfg.input_size, 0
  for _, l in ipairs(enc.net.children) do
    if l.KH and l.kernel then
      total = total + 2 * S * S * l.KH * l.KW * l.C * l.OC
    elseif l.__name == 'MaxPool2d' then
      S = S / 2
    elseif l.kernel then
      total = total + 2 * l.C * l.OC
    end
  end
  return total
end

function M.run(ctx)
  luacap.seed(1)
  local enc = assert(luacap.encoders.vgg16.new{output = 'fc2'})
  local flops = M.flops_per_image(enc)
  print(string.format('vgg16 to fc2, random weights: %.2f GFLOP per image', flops / 1e9))
  for _, B in ipairs{1, 16} do
    local runs = (ctx.quick or B == 16) and 3 or 7
    local x = luacap.normal(0, 60, B, 224, 224, 3)
    local s, all = sgemm.time(function() enc:forward(x) end, runs)
    local gf = B * flops / s / 1e9
    local ts = {}
    for i, t in ipairs(all) do ts[i] = string.format('%.3f', t) end
    print(string.format('vgg16 batch %2d: %6.2f images/s, %6.1f GFLOP/s = %3.0f%% of sgemm ' ..
      '(median of %d: %s s)', B, B / s, gf, 100 * gf / ctx.sgemm_gflops, runs,
      table.concat(ts, ' ')))
  end
end

return M
