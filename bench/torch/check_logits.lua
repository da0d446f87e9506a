-- bench/torch/check_logits.lua: the one-time check that bench/torch/seed.py is a faithful
-- replica of models/seed.lua: builds a luacap seed model (the notebook's max_len 35, small
-- widths so the weights fit a JSON file), writes its weights, inputs and evaluation-mode
-- logits, and runs bench/torch/check_logits.py, which copies the weights into the replica
-- and compares its logits (relative to the largest |logit|; passes under 1e-4).
-- Usage: luajit bench/torch/check_logits.lua   (from the repository root)
package.path = 'lua/?.lua;lua/?/init.lua;' .. package.path
package.cpath = 'lua/?.so;' .. package.cpath
local luacap = require 'luacap'
local cjson = require 'cjson'
local Seed = require 'luacap.models.seed'
local decode = require 'luacap.eval.decode'

local cfg = {vocab_size = 500, max_len = 35, feat_dim = 64, img_dense = 48, embed_dim = 40,
  units = 32, dec_dense = 56}
luacap.seed(7)
math.randomseed(7)
local m = Seed(cfg)
m:evaluate()
-- bias every parameter a little so the unit-forget-bias and zero biases are not special
for _, p in ipairs(m:parameters()) do p.value:add(luacap.core.rand(-0.05, 0.05, unpack(p.value:shape()))) end
local B = 6
local feats = luacap.randn(B, cfg.feat_dim)
-- prefixes of lengths 1, 2, 5, 11, 34 and 35 (a full row), pre-padded
local lens, prefixes = {1, 2, 5, 11, 34, 35}, {}
for b = 1, B do
  prefixes[b] = {}
  for t = 1, lens[b] do prefixes[b][t] = math.random(1, cfg.vocab_size - 1) end
end
local ids = decode.prefix_ids(prefixes, cfg.max_len)
local logits = m:forward(feats, ids)
local params = {}
for _, p in ipairs(m:parameters()) do params[p.name] = {shape = p.value:shape(), data = p.value:flat()} end
local path = os.tmpname()
local f = assert(io.open(path, 'w'))
f:write(cjson.encode{cfg = cfg, params = params, feats = {shape = feats:shape(), data = feats:flat()},
  ids = {shape = ids:shape(), data = ids:flat()}, logits = {shape = logits:shape(), data = logits:flat()}})
f:close()
local python = os.getenv('PYTHON') or '/usr/bin/python3'
local ok = os.execute(python .. ' bench/torch/check_logits.py ' .. path)
os.remove(path)
os.exit((ok == 0 or ok == true) and 0 or 1)
