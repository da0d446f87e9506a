-- luacap.data.pairs: the notebook's data_generator, vectorised: every caption of n ids
-- gives n-1 (image, prefix, next word) pairs; batches are built as whole tensors.
-- Not a loader of image features: a batch names its image rows, the caller gathers them.
local core = require 'luacap.core'

local M = {}

-- build(ids_list, captions_by_id, tokenizer, max_len) -> pairs:
--   {ids = ids_list, n = number of pairs, n_captions =, max_len =,
--    tokens = every caption's ids, one flat list,
--    cap_start[c], cap_len[c] = where caption c's ids sit in tokens,
--    pair_image[k] = row of the image in ids_list, pair_caption[k] = c,
--    pair_pos[k] = p: the prefix is caption c's ids 1..p and the target is id p+1}.
-- Pairs come in the generator's order: image by image, caption by caption, p = 1..n-1.
-- max_len defaults to the longest caption; a longer prefix is cut from the front.
function M.build(ids_list, captions_by_id, tokenizer, max_len)
  local p = {ids = ids_list, tokens = {}, cap_start = {}, cap_len = {},
             pair_image = {}, pair_caption = {}, pair_pos = {}, n = 0, n_captions = 0}
  local tokens, longest = p.tokens, 0
  local pi, pc, pp = p.pair_image, p.pair_caption, p.pair_pos
  local k, c = 0, 0
  for row, id in ipairs(ids_list) do
    local caps = captions_by_id[id]
    if not caps then error("pairs.build: image '" .. tostring(id) .. "' has no captions", 2) end
    for _, text in ipairs(caps) do
      local seq = tokenizer:text_to_sequence(text)
      c = c + 1
      p.cap_start[c], p.cap_len[c] = #tokens + 1, #seq
      for i = 1, #seq do tokens[#tokens + 1] = seq[i] end
      if #seq > longest then longest = #seq end
      for pos = 1, #seq - 1 do
        k = k + 1
        pi[k], pc[k], pp[k] = row, c, pos
      end
    end
  end
  p.n, p.n_captions = k, c
  p.max_len = max_len or longest
  return p
end

-- batch(pairs, order, first, count[, max_len]) -> X2 (B, max_len), y (B), images:
-- the pairs order[first], ..., order[first + count - 1] (order nil: 1..n), B = count cut
-- at the end of the order. X2 holds the prefixes pre-padded with 0 (Keras pad_sequences:
-- padding='pre', truncating='pre'), y the next-word ids, images[b] the image row.
function M.batch(p, order, first, count, max_len)
  max_len = max_len or p.max_len
  local n = order and #order or p.n
  if first < 1 or first ~= math.floor(first) then
    error('pairs.batch: first is ' .. tostring(first) .. ', expected an integer >= 1', 2)
  end
  if type(count) ~= 'number' or count < 1 or count ~= math.floor(count) then
    error('pairs.batch: count is ' .. tostring(count) .. ', expected an integer >= 1', 2)
  end
  local B = math.min(count, n - first + 1)
  if B < 1 then
    error('pairs.batch: first ' .. first .. ' is past the last of ' .. n .. ' pairs', 2)
  end
  local x, y, images = {}, {}, {}
  local tokens, cs = p.tokens, p.cap_start
  local pi, pc, pp = p.pair_image, p.pair_caption, p.pair_pos
  local o = 0
  for b = 1, B do
    local k = order and order[first + b - 1] or first + b - 1
    local pos = pp[k]
    local start = cs[pc[k]]
    local L = pos < max_len and pos or max_len    -- keep the last max_len ids of the prefix
    for _ = 1, max_len - L do o = o + 1; x[o] = 0 end
    for i = start + pos - L, start + pos - 1 do o = o + 1; x[o] = tokens[i] end
    y[b] = tokens[start + pos]
    images[b] = pi[k]
  end
  return core.from_flat(x, {B, max_len}), core.from_flat(y, {B}), images
end

-- shuffle(n) -> a random permutation of 1..n from luacap's seeded generator
-- (Fisher-Yates: for i = n down to 2, swap i with luacap.random(i)).
function M.shuffle(n)
  local perm = {}
  for i = 1, n do perm[i] = i end
  for i = n, 2, -1 do
    local j = core.random(i)
    perm[i], perm[j] = perm[j], perm[i]
  end
  return perm
end

return M
