-- luacap.data.captions: read caption files (Kaggle's captions.txt CSV, the original
-- Flickr8k.token.txt, Karpathy's dataset_flickr8k.json) and clean captions exactly as the
-- notebook's clean() does. Not a general CSV library: two columns, RFC 4180 quoting.
local paths = require 'luacap.data.paths'

local M = {}

------------------------------------------------------------------------ image ids

-- image_id('1000268201_693b08cb0e.jpg#0') -> '1000268201_693b08cb0e': the notebook's
-- image_part.split('.')[0].split('#')[0].
function M.image_id(name)
  local id = name:match('^[^.]*')
  return id:match('^[^#]*')
end

------------------------------------------------------------------------ dataset table

local function new_dataset(file)
  return {ids = {}, captions = {}, files = {}, skipped = 0, problems = {}, file = file}
end

local function add(ds, image_part, caption)
  local id = M.image_id(image_part)
  local list = ds.captions[id]
  if not list then
    list = {}
    ds.captions[id] = list
    ds.ids[#ds.ids + 1] = id
    ds.files[id] = image_part:match('^[^#]*')
  end
  list[#list + 1] = caption
end

-- A malformed record: counted and reported as "file:line: reason", or raised when strict.
local function problem(ds, opt, line, reason)
  local msg = string.format('%s:%d: %s', ds.file, line, reason)
  if opt.strict then error('captions: ' .. msg, 0) end
  ds.skipped = ds.skipped + 1
  ds.problems[#ds.problems + 1] = msg
end

-- A stripped (image, caption) pair of line: added, or reported when either is empty.
local function add_checked(ds, opt, line, image, caption)
  if image == '' then
    problem(ds, opt, line, 'empty image name')
  elseif caption == '' then
    problem(ds, opt, line, 'empty caption')
  else
    add(ds, image, caption)
  end
end

-- Python's str.strip() for ASCII whitespace (space, \t \n \v \f \r).
local function strip(s) return (s:gsub('^%s+', ''):gsub('%s+$', '')) end

------------------------------------------------------------------------ file reading

-- Reads in 1 MiB chunks; a line-based file (not starting with '{' or '[', Karpathy's
-- JSON) whose line runs past luacap.limits().line_bytes, or a JSON file past
-- luacap.limits().json_bytes, is refused as soon as the reading passes the limit, so a
-- 1 GB line or document is never held whole.
local CHUNK = 1048576
local function read_all(path)
  local f, err = io.open(path, 'rb')
  if not f then return nil, 'captions: ' .. tostring(err) end
  local limits = require('luacap.util').limits
  local limit, json_limit = limits.line_bytes, limits.json_bytes
  local parts, line_start, total, line_no, json = {}, 0, 0, 1, nil
  while true do
    local chunk = f:read(CHUNK)
    if not chunk then break end
    if json == nil then json = chunk:match('^\239?\187?\191?%s*[%[{]') ~= nil end
    if json and total + #chunk > json_limit then
      f:close()
      return nil, string.format('captions: %s: JSON file is larger than %d bytes ' ..
        '(luacap.set_limits{json_bytes = ...})', path, json_limit)
    end
    if not json then
      local pos = 1
      while true do
        local e = chunk:find('[\r\n]', pos)
        if not e then break end
        if total + e - line_start > limit + 1 then break end
        line_start, pos, line_no = total + e, e + 1, line_no + 1
      end
      if total + #chunk - line_start > limit then
        f:close()
        return nil, string.format('captions: %s: line %d is longer than %d bytes ' ..
          '(luacap.set_limits{line_bytes = ...})', path, line_no, limit)
      end
    end
    parts[#parts + 1] = chunk
    total = total + #chunk
  end
  f:close()
  local s = table.concat(parts)
  if s:sub(1, 3) == '\239\187\191' then s = s:sub(4) end   -- UTF-8 byte order mark
  return s
end

-- Physical lines of s without their \n or \r\n (a lone \r also ends a line).
local function split_lines(s)
  local lines = {}
  s = s:gsub('\r\n', '\n'):gsub('\r', '\n')
  local pos, n = 1, #s
  while pos <= n do
    local e = s:find('\n', pos, true)
    if not e then lines[#lines + 1] = s:sub(pos); break end
    lines[#lines + 1] = s:sub(pos, e - 1)
    pos = e + 1
  end
  return lines
end

------------------------------------------------------------------------ formats

-- detect(text) -> 'kaggle' | 'token' | 'karpathy' | nil, reason, from the first
-- non-blank line: '{' starts JSON; a header "image,caption" or a first field without a
-- tab is Kaggle's CSV; "name#N<TAB>caption" is the original token file.
function M.detect(text)
  if text:sub(1, 3) == '\239\187\191' then text = text:sub(4) end
  local first = text:match('^%s*([^\r\n]*)')
  if not first or first == '' then return nil, 'empty file' end
  if first:sub(1, 1) == '{' then return 'karpathy' end
  if strip(first):lower() == 'image,caption' then return 'kaggle' end
  local head = first:match('^[^\t,]*')
  local sep = first:sub(#head + 1, #head + 1)
  if sep == '\t' then return 'token' end
  if sep == ',' then return 'kaggle' end
  return nil, 'neither image,caption CSV nor name#N<TAB>caption lines'
end

-- One CSV record starting at lines[i] -> fields, index of the line after it | nil, reason.
-- Quoted fields may hold commas, doubled quotes and line breaks.
local function csv_record(lines, i)
  local line = lines[i]
  local fields, pos = {}, 1
  while true do
    if line:sub(pos, pos) == '"' then
      local buf, p = {}, pos + 1
      while true do
        local q = line:find('"', p, true)
        if not q then                          -- the field goes on over the next line
          buf[#buf + 1] = line:sub(p)
          if i + 1 > #lines then return nil, 'unterminated quoted field' end
          buf[#buf + 1] = '\n'
          i = i + 1
          line, p = lines[i], 1
        elseif line:sub(q + 1, q + 1) == '"' then   -- "" is one quote
          buf[#buf + 1] = line:sub(p, q)
          p = q + 2
        else
          buf[#buf + 1] = line:sub(p, q - 1)
          pos = q + 1
          break
        end
      end
      fields[#fields + 1] = table.concat(buf)
      local c = line:sub(pos, pos)
      if c == '' then return fields, i + 1 end
      if c ~= ',' then
        -- trailing spaces after a closing quote are tolerated, anything else is not
        if line:sub(pos):match('^%s*$') then return fields, i + 1 end
        return nil, 'text after a closing quote'
      end
      pos = pos + 1
    else
      local c = line:find(',', pos, true)
      local field = line:sub(pos, (c or 0) - 1)
      if field:find('"', 1, true) then
        return nil, 'quote inside an unquoted field'
      end
      fields[#fields + 1] = field
      if not c then return fields, i + 1 end
      pos = c + 1
    end
  end
end

local function parse_kaggle(ds, text, opt)
  local lines = split_lines(text)
  local i, header_seen = 1, false
  while i <= #lines do
    local start = i
    if strip(lines[i]) == '' then
      i = i + 1
    elseif not header_seen and strip(lines[i]):lower() == 'image,caption' then
      header_seen = true
      i = i + 1
    else
      header_seen = true          -- a header is only looked for before the first record
      local fields, after = csv_record(lines, i)
      if not fields then
        -- skip only this line: an unterminated quote would otherwise swallow the rest
        i = start + 1
        problem(ds, opt, start, after)
      else
        i = after
        local image = strip(fields[1])
        -- More than two fields: unquoted commas belong to the caption, as the notebook's
        -- line.split(',', 1) keeps them.
        local caption = strip(table.concat(fields, ',', 2))
        if #fields < 2 then
          problem(ds, opt, start, 'expected image,caption, found no comma')
        else
          add_checked(ds, opt, start, image, caption)
        end
      end
    end
  end
end

local function parse_token(ds, text, opt)
  local lines = split_lines(text)
  for i = 1, #lines do
    local line = lines[i]
    if strip(line) ~= '' then
      local image, caption = line:match('^([^\t]*)\t(.*)$')
      if not image then
        problem(ds, opt, i, 'expected name#N<TAB>caption, found no tab')
      else
        add_checked(ds, opt, i, strip(image), strip(caption))
      end
    end
  end
end

local function parse_karpathy(ds, text, opt)
  local cjson = require 'cjson.safe'
  local doc, err = cjson.decode(text)
  if type(doc) ~= 'table' or type(doc.images) ~= 'table' then
    local msg = string.format('%s: not a Karpathy dataset JSON (%s)', ds.file,
      err or 'no images[] array')
    if opt.strict then error('captions: ' .. msg, 0) end
    return nil, 'captions: ' .. msg
  end
  ds.splits = {train = {}, val = {}, test = {}}
  ds.tokens = {}
  for n, img in ipairs(doc.images) do
    local name = type(img) == 'table' and img.filename
    if type(img) ~= 'table' then
      problem(ds, opt, n, 'images[' .. n .. '] is ' .. (img == cjson.null and 'null' or
        'a ' .. type(img)) .. ', expected an object')
    elseif type(name) ~= 'string' or name == '' then
      problem(ds, opt, n, 'images[' .. n .. '] has no filename')
    else
      local id = M.image_id(name)
      local got = 0
      for _, s in ipairs(type(img.sentences) == 'table' and img.sentences or {}) do
        local raw = type(s) == 'table' and s.raw
        if type(raw) == 'string' and strip(raw) ~= '' then
          add(ds, name, strip(raw))
          local toks = ds.tokens[id] or {}
          ds.tokens[id] = toks
          toks[#toks + 1] = type(s.tokens) == 'table' and s.tokens or {}
          got = got + 1
        else
          problem(ds, opt, n, 'images[' .. n .. '] (' .. name .. ') has a sentence without raw text')
        end
      end
      if got > 0 then
        local sp = img.split == 'restval' and 'train' or img.split
        if ds.splits[sp] then
          local list = ds.splits[sp]
          if list[#list] ~= id then list[#list + 1] = id end
        else
          problem(ds, opt, n, 'images[' .. n .. '] (' .. name .. ') has split ' ..
            tostring(img.split) .. ', expected train, val, test or restval')
        end
      end
    end
  end
  return true
end

-- load(path[, {strict = false, format = nil}]) -> dataset | nil, message.
-- dataset = {ids = {in order of first appearance}, captions = {id -> {raw captions in
-- file order}}, files = {id -> image file name}, skipped = n, problems = {"file:line:
-- reason", ...}, format = 'kaggle' | 'token' | 'karpathy', file = path}; Karpathy's JSON
-- adds splits = {train =, val =, test =} ('restval' counts as train) and tokens =
-- {id -> {its token lists}}; there "line" is the 1-based index into images[].
-- A malformed line is skipped and reported; with strict = true it raises instead.
-- A missing or unreadable file returns nil, message.
function M.load(path, opt)
  opt = opt or {}
  if type(path) ~= 'string' then
    error('captions.load: bad argument #1 (path): expected a string, got ' .. type(path), 2)
  end
  local text, err = read_all(path)
  if not text then return nil, err end
  local format = opt.format
  if not format then
    format, err = M.detect(text)
    if not format then
      if opt.strict then error('captions: ' .. path .. ': ' .. err, 0) end
      return nil, 'captions: ' .. path .. ': ' .. err
    end
  end
  local ds = new_dataset(path)
  ds.format = format
  if format == 'kaggle' then
    parse_kaggle(ds, text, opt)
  elseif format == 'token' then
    parse_token(ds, text, opt)
  elseif format == 'karpathy' then
    local ok, perr = parse_karpathy(ds, text, opt)
    if not ok then return nil, perr end
  else
    error("captions.load: format '" .. tostring(format) ..
      "', expected 'kaggle', 'token' or 'karpathy'", 2)
  end
  return ds
end

------------------------------------------------------------------------ cleaning

-- clean(caption): the notebook's clean() for one caption:
--   lower() ; re.sub(r"[^a-z\s]", " ") ; re.sub(r"\s+", " ").strip() ;
--   'startseq ' + ' '.join(w for w in split() if len(w) > 1) + ' endseq'
-- Every character that is not a-z ends up a space, so the words are exactly the runs of
-- a-z. Non-ASCII: each byte of a multi-byte UTF-8 character is outside a-z and becomes a
-- space, which is what Python gives too ('é'.lower() is still not a-z; Unicode spaces
-- are \s and collapse the same way), with the only two code points whose lower case is
-- ASCII handled as Python does: U+212A KELVIN SIGN -> 'k', U+0130 'İ' -> 'i' + U+0307.
-- A caption with no word of two letters gives 'startseq  endseq' (two spaces), as in Python.
function M.clean(caption)
  local s = caption:gsub('\226\132\170', 'k'):gsub('\196\176', 'i '):lower()
  local words = {}
  for w in s:gmatch('%l+') do
    -- %l is locale-dependent in C; LuaJIT runs in the "C" locale, where it is a-z.
    if #w > 1 then words[#words + 1] = w end
  end
  return 'startseq ' .. table.concat(words, ' ') .. ' endseq'
end

-- clean_all(captions_by_id) -> a new table id -> {cleaned captions}; the input is kept.
function M.clean_all(captions_by_id)
  local out = {}
  for id, list in pairs(captions_by_id) do
    local c = {}
    for i = 1, #list do c[i] = M.clean(list[i]) end
    out[id] = c
  end
  return out
end

-- all(captions_by_id, ids) -> flat list of captions, ids in order, each id's in order
-- (the notebook's all_captions when ids are the dataset's ids).
function M.all(captions_by_id, ids)
  local out = {}
  for _, id in ipairs(ids) do
    for _, c in ipairs(captions_by_id[id] or {}) do out[#out + 1] = c end
  end
  return out
end

-- count(ds) -> total number of captions.
function M.count(ds)
  local n = 0
  for _, id in ipairs(ds.ids) do n = n + #ds.captions[id] end
  return n
end

------------------------------------------------------------------------ images on disk

local image_ext = {jpg = true, jpeg = true, png = true}

-- check_images(ds, images_dir) -> {missing = {ids whose file is not in the folder},
-- extra = {image files in the folder (.jpg/.jpeg/.png) whose id has no caption},
-- n_found = images present, error = message when the folder cannot be listed}.
-- Never raises for a missing folder: every id is then missing.
function M.check_images(ds, images_dir)
  local report = {missing = {}, extra = {}, n_found = 0}
  local names, err = paths.list_dir(images_dir)
  if not names then
    report.error = err
    for _, id in ipairs(ds.ids) do report.missing[#report.missing + 1] = id end
    return report
  end
  local on_disk = {}
  for _, name in ipairs(names) do on_disk[name] = true end
  for _, id in ipairs(ds.ids) do
    local file = ds.files[id]
    if on_disk[file] then
      report.n_found = report.n_found + 1
    else
      report.missing[#report.missing + 1] = id
    end
  end
  for _, name in ipairs(names) do
    local ext = name:match('%.([^.]+)$')
    if ext and image_ext[ext:lower()] and not ds.captions[M.image_id(name)] then
      report.extra[#report.extra + 1] = name
    end
  end
  return report
end

return M
