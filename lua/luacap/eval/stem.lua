-- luacap.eval.stem: the Porter (1980) suffix-stripping stemmer as nltk 3.8's PorterStemmer()
-- runs it by default (mode NLTK_EXTENSIONS), for METEOR's stem module (luacap.eval.metrics).
-- Not Snowball/Porter2, not Unicode-aware: lower-cases ASCII only and works on bytes.
--
-- The NLTK_EXTENSIONS differences from the paper, all reproduced here: a small table of
-- irregular forms (skies -> sky, dying -> die, ...); words of 1 or 2 letters are only
-- lower-cased; "ies"/"ied" in 4-letter words give "ie"; other "ied" gives "i"; *o also holds
-- for a 2-letter vowel-consonant stem; step 1c turns y into i only after a consonant that is
-- not the word's first letter; step 2 applies "alli" -> "al" first and runs step 2 again,
-- uses "bli" -> "ble" (not "abli" -> "able") and adds "fulli" -> "ful" and "logi" -> "log"
-- (the measure taken with the l). As in nltk, the first rule of a step whose suffix matches
-- decides: when its condition fails, the word leaves the step unchanged.

local byte, sub = string.byte, string.sub

local M = {}

-- nltk's irregular forms; looked up with the word as given (before lower-casing), as nltk does
local IRREGULAR = {
  sky = 'sky', skies = 'sky', dying = 'die', lying = 'lie', tying = 'tie', news = 'news',
  innings = 'inning', inning = 'inning', outings = 'outing', outing = 'outing',
  cannings = 'canning', canning = 'canning', howe = 'howe', proceed = 'proceed',
  exceed = 'exceed', succeed = 'succeed',
}

local A, E, I, O, U, Y = byte('aeiouy', 1, 6)

-- Is byte i of w a consonant? A letter other than a e i o u, and y only after a vowel or
-- at the start (Porter's definition; any other byte counts as a consonant).
local function consonant(w, i)
  local c = byte(w, i)
  if c == A or c == E or c == I or c == O or c == U then return false end
  if c == Y then return i == 1 or not consonant(w, i - 1) end
  return true
end

-- Porter's m: the number of vowel-consonant transitions in [C](VC){m}[V].
local function measure(w)
  local m, prev = 0, true      -- prev: was the previous letter a consonant
  for i = 1, #w do
    local c = byte(w, i)
    local cons
    if c == A or c == E or c == I or c == O or c == U then cons = false
    elseif c == Y then cons = i == 1 or not prev
    else cons = true end
    if cons and not prev then m = m + 1 end
    prev = cons
  end
  return m
end

local function contains_vowel(w)
  for i = 1, #w do
    if not consonant(w, i) then return true end
  end
  return false
end

-- *d: ends with a double consonant
local function ends_double(w)
  local n = #w
  return n >= 2 and byte(w, n) == byte(w, n - 1) and consonant(w, n)
end

-- *o: ends consonant-vowel-consonant with the last not w, x, y; or (nltk) is exactly
-- vowel-consonant
local function ends_cvc(w)
  local n = #w
  if n >= 3 then
    local c = sub(w, n)
    return consonant(w, n - 2) and not consonant(w, n - 1) and consonant(w, n)
           and c ~= 'w' and c ~= 'x' and c ~= 'y'
  end
  return n == 2 and not consonant(w, 1) and consonant(w, 2)
end

local function ends(w, suffix)
  return #w >= #suffix and sub(w, -#suffix) == suffix
end

local function positive(stem) return measure(stem) > 0 end
local function above_one(stem) return measure(stem) > 1 end

-- Applies the first rule {suffix, replacement, condition(stem) or false} whose suffix ends w:
-- stem .. replacement when the condition holds, else w unchanged. No rule matches: w.
local function apply(w, rules)
  for k = 1, #rules do
    local r = rules[k]
    local suffix = r[1]
    if ends(w, suffix) then
      local stem = sub(w, 1, #w - #suffix)
      if not r[3] or r[3](stem) then return stem .. r[2] end
      return w
    end
  end
  return w
end

local STEP1A = {{'sses', 'ss'}, {'ies', 'i'}, {'ss', 'ss'}, {'s', ''}}

local function step1a(w)
  if #w == 4 and ends(w, 'ies') then return sub(w, 1, 1) .. 'ie' end
  return apply(w, STEP1A)
end

local STEP1B_AFTER = {{'at', 'ate'}, {'bl', 'ble'}, {'iz', 'ize'}}

local function step1b(w)
  if ends(w, 'ied') then
    return sub(w, 1, #w - 3) .. (#w == 4 and 'ie' or 'i')
  end
  if ends(w, 'eed') then
    local stem = sub(w, 1, #w - 3)
    return measure(stem) > 0 and stem .. 'ee' or w
  end
  local stem
  if ends(w, 'ed') and contains_vowel(sub(w, 1, #w - 2)) then stem = sub(w, 1, #w - 2)
  elseif ends(w, 'ing') and contains_vowel(sub(w, 1, #w - 3)) then stem = sub(w, 1, #w - 3)
  else return w end
  -- after removing -ed or -ing: at -> ate, bl -> ble, iz -> ize; else undouble a final
  -- consonant other than l, s, z; else (m = 1 and *o) add e
  local r = apply(stem, STEP1B_AFTER)
  if r ~= stem then return r end
  if ends_double(stem) then
    local last = sub(stem, -1)
    if last ~= 'l' and last ~= 's' and last ~= 'z' then return sub(stem, 1, #stem - 1) end
    return stem
  end
  if measure(stem) == 1 and ends_cvc(stem) then return stem .. 'e' end
  return stem
end

local function step1c(w)
  local n = #w
  -- (*c and not the first letter) y -> i
  if n > 2 and sub(w, n) == 'y' and consonant(w, n - 1) then return sub(w, 1, n - 1) .. 'i' end
  return w
end

local STEP2 = {
  {'ational', 'ate', positive}, {'tional', 'tion', positive}, {'enci', 'ence', positive},
  {'anci', 'ance', positive}, {'izer', 'ize', positive}, {'bli', 'ble', positive},
  {'alli', 'al', positive}, {'entli', 'ent', positive}, {'eli', 'e', positive},
  {'ousli', 'ous', positive}, {'ization', 'ize', positive}, {'ation', 'ate', positive},
  {'ator', 'ate', positive}, {'alism', 'al', positive}, {'iveness', 'ive', positive},
  {'fulness', 'ful', positive}, {'ousness', 'ous', positive}, {'aliti', 'al', positive},
  {'iviti', 'ive', positive}, {'biliti', 'ble', positive}, {'fulli', 'ful', positive},
  -- logi -> log with the measure of the stem plus its l ("geologi" -> "geolog")
  {'logi', 'log', function(stem) return measure(stem .. 'l') > 0 end},
}

local function step2(w)
  if ends(w, 'alli') then
    local stem = sub(w, 1, #w - 4)
    if measure(stem) > 0 then return step2(stem .. 'al') end
  end
  return apply(w, STEP2)
end

local STEP3 = {
  {'icate', 'ic', positive}, {'ative', '', positive}, {'alize', 'al', positive},
  {'iciti', 'ic', positive}, {'ical', 'ic', positive}, {'ful', '', positive},
  {'ness', '', positive},
}

local STEP4 = {
  {'al', '', above_one}, {'ance', '', above_one}, {'ence', '', above_one},
  {'er', '', above_one}, {'ic', '', above_one}, {'able', '', above_one},
  {'ible', '', above_one}, {'ant', '', above_one}, {'ement', '', above_one},
  {'ment', '', above_one}, {'ent', '', above_one},
  {'ion', '', function(stem)
    local last = sub(stem, -1)
    return measure(stem) > 1 and (last == 's' or last == 't')
  end},
  {'ou', '', above_one}, {'ism', '', above_one}, {'ate', '', above_one},
  {'iti', '', above_one}, {'ous', '', above_one}, {'ive', '', above_one},
  {'ize', '', above_one},
}

local function step5a(w)
  if sub(w, -1) ~= 'e' then return w end
  local stem = sub(w, 1, #w - 1)
  local m = measure(stem)
  if m > 1 or (m == 1 and not ends_cvc(stem)) then return stem end
  return w
end

local function step5b(w)
  -- (m > 1 and *d and *L) -> single letter; m of the word less its last l
  if ends(w, 'll') and measure(sub(w, 1, #w - 1)) > 1 then return sub(w, 1, #w - 1) end
  return w
end

-- stem(word) -> the Porter stem of word, lower-cased (ASCII), as nltk's
-- PorterStemmer().stem(word).
function M.stem(word)
  if type(word) ~= 'string' then
    error(('stem: word is a %s, expected a string'):format(type(word)), 2)
  end
  local irregular = IRREGULAR[word]
  if irregular then return irregular end
  local w = word:lower()
  if #w <= 2 then return w end
  w = step1a(w)
  w = step1b(w)
  w = step1c(w)
  w = step2(w)
  w = apply(w, STEP3)
  w = apply(w, STEP4)
  w = step5a(w)
  return step5b(w)
end

-- cached(word) -> stem(word), remembered: a caption vocabulary is small and the same words
-- come back at every evaluation. The memory is dropped whole past CACHE_MAX words.
local CACHE_MAX = 100000
local cache, cached_n = {}, 0
function M.cached(word)
  local s = cache[word]
  if s then return s end
  s = M.stem(word)
  if cached_n >= CACHE_MAX then cache, cached_n = {}, 0 end
  cache[word] = s
  cached_n = cached_n + 1
  return s
end

-- exposed for the specs
M.measure = measure

return M
