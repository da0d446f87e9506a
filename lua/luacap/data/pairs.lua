-- luacap.data.pairs: the notebook's data_generator, vectorised: every caption of n ids
-- gives n-1 (image, prefix, next word) pairs; batches are built as whole tensors.
-- Not a loader of image features: a batch names its image rows, the caller gathers them.
local core = require 'luacap.core'

local M = {}

-- build(ids_list, captions_by_id, tokenizer, max_len) -> pairs:
--   {ids = ids_list, n = number of pairs, n_captions =, max_len =,
--    tokens = every caption's ids, one flat list,
--    cap_start[c], cap_len[c] = where caption c's ids sit in tokens, cap_image[c] its row,
--    pair_image[k] = row of the image in ids_list, pair_caption[k] = c,
--    pair_pos[k] = p: the prefix is caption c's ids 1..p and the target is id p+1}.
-- Pairs come in the generator's order: image by image, caption by caption, p = 1..n-1.
-- max_len defaults to the longest caption; a longer prefix is cut from the front.
function M.build(ids_list, captions_by_id, tokenizer, max_len)
  local p = {ids = ids_list, tokens = {}, cap_start = {}, cap_len = {}, cap_image = {},
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
      p.cap_start[c], p.cap_len[c], p.cap_image[c] = #tokens + 1, #seq, row
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

-- caption_batch(pairs, caps) -> in_ids, y, mask (B, T), images: whole captions for
-- teacher forcing (models with caption_level, e.g. sat): caption caps[b] of n ids gives
-- in_ids ids 1..n-1 and y ids 2..n, post-padded with 0 to T = the longest n-1 (at most
-- max_len), mask 1 at real steps; images[b] the caption's image row.
function M.caption_batch(p, caps)
  local B, T = #caps, 1
  local cap_image = p.cap_image
  for _, c in ipairs(caps) do T = math.max(T, math.min(p.cap_len[c] - 1, p.max_len)) end
  local x, y, m, images = {}, {}, {}, {}
  for b, c in ipairs(caps) do
    local start, n = p.cap_start[c], math.min(p.cap_len[c] - 1, p.max_len)
    for t = 1, T do
      local o = (b - 1) * T + t
      local real = t <= n
      x[o] = real and p.tokens[start + t - 1] or 0
      y[o] = real and p.tokens[start + t] or 0
      m[o] = real and 1 or 0
    end
    images[b] = cap_image[c]
  end
  return core.from_flat(x, {B, T}), core.from_flat(y, {B, T}), core.from_flat(m, {B, T}), images
end

-- A fit batch source over whole captions (one item per caption of at least 2 ids), image
-- rows rows[image]: get(list) -> {ids = in_ids, y =, mask =, rows =}; tokens(list) -> the
-- real (masked-in) steps of those captions (fit weighs a share of a batch by them).
function M.caption_source(p, rows)
  local list = {}
  for c = 1, p.n_captions do
    if p.cap_len[c] >= 2 then list[#list + 1] = c end
  end
  return {n = #list, image_of = function(k) return p.cap_image[list[k]] end,
    tokens = function(idx)
      local n = 0
      for _, k in ipairs(idx) do n = n + math.min(p.cap_len[list[k]] - 1, p.max_len) end
      return n
    end,
    get = function(idx)
      local caps = {}
      for i, k in ipairs(idx) do caps[i] = list[k] end
      local x, y, mask, images = M.caption_batch(p, caps)
      local r = {}
      for i, im in ipairs(images) do r[i] = rows[im] end
      return {ids = x, y = y, mask = mask, rows = r}
    end}
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
