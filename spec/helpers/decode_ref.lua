-- spec/helpers/decode_ref.lua: a second greedy decoder, the one luacap had before the
-- step-wise interface (lua/luacap/eval/decode.lua at bcfe8ae): it calls forward_image once per
-- chunk and forward_caption on the pre-padded prefixes of the live images, gathering
-- their image rows from the first output. Specs compare decode.greedy against it.
local luacap = require 'luacap'
local decode = require 'luacap.eval.decode'

local M = {}

function M.greedy(model, feats, tok, opts)
  opts = opts or {}
  local vocab = decode.vocab_of(tok)
  local max_len = opts.max_len or model.cfg.max_len
  local B = opts.batch or 64
  local N = feats:size(1)
  model:evaluate()
  local out = {}
  for first = 1, N, B do
    local count = math.min(B, N - first + 1)
    local fe4 = model:forward_image(feats:narrow(first, count)):clone()
    local words, prefixes, active = {}, {}, {}
    for i = 1, count do
      prefixes[i], words[i], active[i] = {vocab.start}, {'startseq'}, i
    end
    for _ = 1, max_len do
      if #active == 0 then break end
      local act = {}
      for k, i in ipairs(active) do act[k] = prefixes[i] end
      local fe = fe4
      if #active < count then
        local shape = fe4:shape()
        shape[1] = #active
        fe = luacap.zeros(shape)
        luacap.core.gather(fe, fe4, active)
      end
      local best = model:forward_caption(fe, decode.prefix_ids(act, model.cfg.max_len)):argmax(2):flat()
      local still = {}
      for k, i in ipairs(active) do
        local id = best[k] - 1
        local w = vocab.index_word[id]
        if id ~= 0 and w then
          prefixes[i][#prefixes[i] + 1] = id
          words[i][#words[i] + 1] = w
          if id ~= vocab.stop then still[#still + 1] = i end
        end
      end
      active = still
    end
    for i = 1, count do out[first + i - 1] = decode.finish(words[i], 'endseq') end
  end
  return out
end

return M
