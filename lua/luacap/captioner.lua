-- A trained captioner ready to use: the model, its encoder and tokenizer loaded from one
-- model file, and caption(images) that prepares, encodes and decodes them in batches.
-- This is what luacap.load / luacap.caption and examples/caption.lua use. Not training.
local luacap = require 'luacap'
local ckpt = require 'luacap.train.checkpoint'
local decode = require 'luacap.eval.decode'

local M = {}
local Captioner = {}
Captioner.__index = Captioner

-- load(path) -> captioner | nil, message
function M.load(path)
  if type(path) ~= 'string' then error('load: expected a model file path, got ' .. type(path), 2) end
  local b, err = ckpt.load(path)
  if not b then return nil, err end
  if not b.encoder then return nil, path .. ': the model file names no encoder' end
  if not b.tokenizer then return nil, path .. ': the model file holds no tokenizer' end
  local meta = b.meta or {}
  local c = setmetatable({model = b.model, encoder = b.encoder, tokenizer = b.tokenizer,
    path = path, meta = meta, resize = meta.resize or 'nearest',
    size = b.encoder:config().input_size}, Captioner)
  b.model:evaluate()
  b.encoder:train(false)
  return c
end

-- Prepares a list of images (paths or H x W x 3 tensors) into one batch tensor.
-- Returns the tensor, the positions that loaded, and {position -> message} for the rest.
function Captioner:prepare(images)
  local good, bad, prepared = {}, {}, {}
  for i, x in ipairs(images) do
    local img, err = x, nil
    if type(x) == 'string' then img, err = luacap.image.load(x) end
    if img then
      prepared[#prepared + 1] = luacap.image.prepare(img, self.size, self.resize)
      good[#good + 1] = i
    else
      bad[i] = err or 'not an image'
    end
  end
  local X = luacap.zeros(math.max(#prepared, 1), self.size, self.size, 3)
  for k, t in ipairs(prepared) do X:narrow(k, 1):copy(t) end
  return X, good, bad
end

-- caption(images[, {batch = 64, beam = 1, length_penalty =, block_ngram =}]) -> captions
-- {position -> string}, errors {position -> msg} (length_penalty, block_ngram: decode.beam's)
-- images: a list of paths and/or image tensors, or one of them.
function Captioner:caption(images, opts)
  opts = opts or {}
  local single = type(images) == 'string' or luacap.is_tensor(images)
  if single then images = {images} end
  local X, good, bad = self:prepare(images)
  local out = {}
  if #good > 0 then
    -- greedy (the notebook's rules) by default; beam search when opts.beam > 1
    local decoder = (opts.beam or 1) > 1 and decode.beam or decode.greedy
    local caps = decoder(self.model, X:narrow(1, #good), self.tokenizer,
      {batch = opts.batch or 64, encoder = self.encoder, beam = opts.beam,
       length_penalty = opts.length_penalty, block_ngram = opts.block_ngram})
    for k, i in ipairs(good) do out[i] = caps[k] end
  end
  if single then return out[1], bad[1] end
  return out, bad
end

-- attention(images, captions[, {batch = 64}]) -> maps {position -> {words =, alphas =}},
-- errors {position -> msg} | nil, msg: where the model looked for each word of captions[i]
-- (a caption string of image i, e.g. from caption()); alphas[t] = word t's region weights
-- (decode.attention). nil and a message for a model without spatial attention.
function Captioner:attention(images, captions, opts)
  opts = opts or {}
  if not self.model.decode_alphas then
    return nil, 'attention maps need a model with spatial attention (--model sat)'
  end
  if type(images) == 'string' or luacap.is_tensor(images) then images = {images} end
  if type(captions) == 'string' then captions = {captions} end
  local X, good, bad = self:prepare(images)
  local out = {}
  if #good == 0 then return out, bad end
  local wi = self.tokenizer.word_index
  local ids_lists, words_of = {}, {}
  for k, i in ipairs(good) do
    local words, ids = {}, {}
    for w in tostring(captions[i] or ''):gmatch('%S+') do
      if wi[w] then words[#words + 1], ids[#ids + 1] = w, wi[w] end
    end
    ids_lists[k], words_of[k] = ids, words
  end
  local maps, err = decode.attention(self.model, X:narrow(1, #good), self.tokenizer, ids_lists,
    {batch = opts.batch or 64, encoder = self.encoder})
  if not maps then return nil, err end
  for k, i in ipairs(good) do out[i] = {words = words_of[k], alphas = maps[k]} end
  return out, bad
end

M.Captioner = Captioner
return M
