-- luacap.data.tokenizer: the Keras Tokenizer() the notebook uses (fit_on_texts,
-- texts_to_sequences, sequences_to_texts; no num_words, no oov_token), saved as JSON.
-- Not a subword or Unicode-aware tokenizer: lower-casing is ASCII only (Keras' str.lower
-- also folds non-ASCII letters; captions are cleaned to a-z before they get here).
local M = {}

local Tokenizer = {}
Tokenizer.__index = Tokenizer

M.DEFAULT_FILTERS = '!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n'
M.FORMAT = 'luacap.tokenizer'
M.VERSION = 1

-- A Lua pattern class matching any one character of filters.
local function filter_class(filters)
  if filters == '' then return nil end
  local parts = {}
  for i = 1, #filters do
    local c = filters:sub(i, i)
    parts[#parts + 1] = c:match('%w') and c or '%' .. c
  end
  return '[' .. table.concat(parts) .. ']'
end

-- new{filters =, lower = true, split = ' '} -> an empty tokenizer.
function M.new(opt)
  opt = opt or {}
  local self = setmetatable({
    filters = opt.filters or M.DEFAULT_FILTERS,
    lower = opt.lower ~= false,
    split = opt.split or ' ',
    document_count = 0,
    word_counts = {},   -- word -> count
    word_order = {},    -- words in order of first appearance (Keras' OrderedDict)
    word_index = {},    -- word -> index (1-based; 0 is padding)
    index_word = {},    -- index -> word
  }, Tokenizer)
  if self.split == '' then error('tokenizer.new: split must not be empty', 2) end
  self._class = filter_class(self.filters)
  return self
end

-- text_to_word_sequence(text): Keras' keras.preprocessing.text.text_to_word_sequence:
-- lower, every filter character -> split, split on split, drop empty strings.
function Tokenizer:text_to_word_sequence(text)
  if self.lower then text = text:lower() end
  if self._class then
    local sp = self.split:gsub('%%', '%%%%')
    text = text:gsub(self._class, sp)
  end
  local words, pos, sp, n = {}, 1, self.split, #text
  while pos <= n + 1 do
    local a, b = text:find(sp, pos, true)
    local w = text:sub(pos, (a or n + 1) - 1)
    if w ~= '' then words[#words + 1] = w end
    if not a then break end
    pos = b + 1
  end
  return words
end

-- Keras sorts (word, count) pairs by count, descending, with Python's stable sort: ties
-- keep the order in which the words were first seen. table.sort is not stable, so the
-- first-seen position breaks ties explicitly.
function Tokenizer:_reindex()
  local order = self.word_order
  local pos = {}
  for i, w in ipairs(order) do pos[w] = i end
  local sorted = {}
  for i, w in ipairs(order) do sorted[i] = w end
  local counts = self.word_counts
  table.sort(sorted, function(a, b)
    local ca, cb = counts[a], counts[b]
    if ca ~= cb then return ca > cb end
    return pos[a] < pos[b]
  end)
  self.word_index, self.index_word = {}, {}
  for i, w in ipairs(sorted) do
    self.word_index[w] = i
    self.index_word[i] = w
  end
end

-- fit_on_texts(texts): adds the word counts of texts (a list of strings) and rebuilds
-- the index; may be called more than once, as in Keras.
function Tokenizer:fit_on_texts(texts)
  if type(texts) ~= 'table' then
    error('tokenizer:fit_on_texts: expected a list of strings, got ' .. type(texts), 2)
  end
  local counts, order = self.word_counts, self.word_order
  for i, text in ipairs(texts) do
    if type(text) ~= 'string' then
      error('tokenizer:fit_on_texts: texts[' .. i .. '] is a ' .. type(text) ..
        ', expected a string', 2)
    end
    self.document_count = self.document_count + 1
    for _, w in ipairs(self:text_to_word_sequence(text)) do
      local c = counts[w]
      if c then
        counts[w] = c + 1
      else
        counts[w] = 1
        order[#order + 1] = w
      end
    end
  end
  self:_reindex()
  return self
end

-- text_to_sequence(text) -> list of ids; words not in the index are dropped.
function Tokenizer:text_to_sequence(text)
  local seq, index = {}, self.word_index
  for _, w in ipairs(self:text_to_word_sequence(text)) do
    local i = index[w]
    if i then seq[#seq + 1] = i end
  end
  return seq
end

-- texts_to_sequences(texts) -> list of lists of ids.
function Tokenizer:texts_to_sequences(texts)
  local out = {}
  for i, t in ipairs(texts) do out[i] = self:text_to_sequence(t) end
  return out
end

-- sequence_to_text(ids) -> words joined by ' '; ids with no word (0 = padding) dropped.
-- ids may be a Lua list or a 1-d tensor.
function Tokenizer:sequence_to_text(seq)
  if type(seq) == 'userdata' then seq = seq:flat() end
  local words, iw = {}, self.index_word
  for _, i in ipairs(seq) do
    local w = iw[i]
    if w then words[#words + 1] = w end
  end
  return table.concat(words, ' ')
end

function Tokenizer:sequences_to_texts(seqs)
  local out = {}
  for i, s in ipairs(seqs) do out[i] = self:sequence_to_text(s) end
  return out
end

-- vocab_size(): number of words + 1 (index 0 is padding), the notebook's vocab_size.
function Tokenizer:vocab_size() return #self.index_word + 1 end

-- max_length(texts) -> the most ids any text gets (the notebook's max_caption_length).
function Tokenizer:max_length(texts)
  local m = 0
  for _, t in ipairs(texts) do
    local n = #self:text_to_sequence(t)
    if n > m then m = n end
  end
  return m
end

------------------------------------------------------------------------ JSON

-- to_json() -> string. Objects in JSON (and in lua-cjson) have no order, so the order
-- lives in arrays: word_counts as [[word, count], ...] in first-seen order and
-- index_word as the words by index.
function Tokenizer:to_json()
  local cjson = require 'cjson'
  local wc = {}
  for i, w in ipairs(self.word_order) do wc[i] = {w, self.word_counts[w]} end
  local iw = {}
  for i, w in ipairs(self.index_word) do iw[i] = w end   -- unpack() caps out near 8000
  local doc = {
    format = M.FORMAT, version = M.VERSION,
    filters = self.filters, lower = self.lower, split = self.split,
    document_count = self.document_count,
    word_counts = setmetatable(wc, cjson.array_mt),
    index_word = setmetatable(iw, cjson.array_mt),
  }
  return cjson.encode(doc)
end

-- from_json(s) -> tokenizer | nil, message. The stored index is checked against the one
-- the counts give, so a hand-edited file cannot silently disagree with itself.
function M.from_json(s)
  local cjson = require 'cjson.safe'
  local doc, err = cjson.decode(s)
  if type(doc) ~= 'table' then return nil, 'tokenizer: not JSON (' .. tostring(err) .. ')' end
  if doc.format ~= M.FORMAT then
    return nil, "tokenizer: format is " .. tostring(doc.format) .. ", expected '" .. M.FORMAT .. "'"
  end
  if doc.version ~= M.VERSION then
    return nil, 'tokenizer: version ' .. tostring(doc.version) .. ', expected ' .. M.VERSION
  end
  if type(doc.word_counts) ~= 'table' or type(doc.index_word) ~= 'table' then
    return nil, 'tokenizer: word_counts and index_word must be arrays'
  end
  local tok = M.new{filters = doc.filters, lower = doc.lower, split = doc.split}
  tok.document_count = tonumber(doc.document_count) or 0
  for i, pair in ipairs(doc.word_counts) do
    if type(pair) ~= 'table' or type(pair[1]) ~= 'string' or type(pair[2]) ~= 'number' then
      return nil, 'tokenizer: word_counts[' .. i .. '] is not [word, count]'
    end
    if tok.word_counts[pair[1]] then
      return nil, "tokenizer: word_counts repeats '" .. pair[1] .. "'"
    end
    tok.word_counts[pair[1]] = pair[2]
    tok.word_order[i] = pair[1]
  end
  tok:_reindex()
  if #doc.index_word ~= #tok.index_word then
    return nil, 'tokenizer: index_word has ' .. #doc.index_word .. ' words, word_counts ' ..
      #tok.index_word
  end
  for i, w in ipairs(doc.index_word) do
    if tok.index_word[i] ~= w then
      return nil, 'tokenizer: index_word[' .. i .. "] is '" .. tostring(w) ..
        "', the counts give '" .. tok.index_word[i] .. "'"
    end
  end
  return tok
end

-- save(path) -> true | nil, message. Atomic (util.write_file: temporary, fsync, rename).
function Tokenizer:save(path)
  return require('luacap.util').write_file(path, self:to_json() .. '\n')
end

-- load(path) -> tokenizer | nil, message. A file over luacap.limits().json_bytes is
-- refused as soon as the reading passes the limit, before it is held whole.
function M.load(path)
  local util = require 'luacap.util'
  local limit = util.limits.json_bytes
  local s, err, why = util.read_file(path, limit)
  if why == 'too_large' then
    return nil, string.format('tokenizer: %s: JSON file is larger than %d bytes ' ..
      '(luacap.set_limits{json_bytes = ...})', path, limit)
  end
  if not s then return nil, err end
  local tok, perr = M.from_json(s)
  if not tok then return nil, path .. ': ' .. perr end
  return tok
end

-- fit(texts[, opt]) -> a new tokenizer fitted on texts.
function M.fit(texts, opt)
  return M.new(opt):fit_on_texts(texts)
end

M.Tokenizer = Tokenizer
return M
