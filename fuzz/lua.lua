-- fuzz/lua.lua: the Lua parsers under a mutation loop of luacap's own (no fuzzer drives
-- Lua code): the caption readers (Kaggle CSV with quoting, Flickr8k's token file,
-- Karpathy's JSON, each through captions.load with its format and through format
-- detection) and the tokenizer JSON reader (tokenizer.load), each followed by what the
-- pipeline does next with a loaded result (cleaning, fitting a tokenizer, sequences).
--
--   luajit fuzz/lua.lua [--seconds 60] [--runs N] [--timeout 10] [--findings DIR] [TARGET...]
--
-- Every input ends as one of: ok (a dataset or tokenizer, its invariants checked),
-- refused (nil, message: what a bad file must give), a Lua error (raised: a bug, counted
-- apart and saved as error-<target>-<n>), a crash (the worker process died: saved as
-- crash-<target>-<n>) or a hang (one input over --timeout seconds: hang-<target>-<n>).
-- Guidance instead of coverage: an input whose outcome has a signature not seen before
-- (the refusal's message without its numbers, or the shape of an accepted result) joins
-- the corpus, as libFuzzer keeps an input that reaches new code.
-- The driver runs the mutation loop in a worker process (`--worker TARGET`) that writes
-- each input to DIR/current-<target> before parsing it, so an input that kills or hangs
-- the worker is known; the driver restarts the worker for the time left.
package.path = 'lua/?.lua;lua/?/init.lua;' .. package.path
package.cpath = 'lua/?.so;' .. package.cpath

local SEEDS = 'spec/fixtures/captions/'
local TARGETS = {'kaggle', 'token', 'karpathy', 'detect', 'tokenizer'}

local util = require 'luacap.util'

-- The whole file, or nil when it does not exist (luacap.util.read_file).
local function read(p) return (util.read_file(p)) end

-- Plain, not util.write_file's atomic write: the loop writes every input, and a
-- half-written input from a killed worker is still the input that killed it.
local function write(p, s)
  local f = assert(io.open(p, 'wb'))
  f:write(s)
  f:close()
end

local function parse_args(argv)
  local o = {seconds = 60, runs = -1, timeout = 10, findings = 'build/fuzz/findings/lua',
             targets = {}}
  local i = 1
  while i <= #argv do
    local a = argv[i]
    local key = a:match('^%-%-(.*)')
    if key == 'worker' then
      o.worker = argv[i + 1]
      i = i + 2
    elseif key and o[key] ~= nil then
      o[key] = tonumber(argv[i + 1]) or argv[i + 1]
      i = i + 2
    elseif key then
      error('fuzz/lua.lua: unknown option ' .. a)
    else
      o.targets[#o.targets + 1] = a
      i = i + 1
    end
  end
  if #o.targets == 0 then o.targets = TARGETS end
  return o
end

------------------------------------------------------------------------ targets

local captions, tokenizer  -- loaded in the worker

-- The shape of an accepted dataset, checked on the way: every id has captions, a file
-- name and no '#', ids are unique, skipped counts the problems.
local function check_dataset(ds)
  local seen = {}
  for _, id in ipairs(ds.ids) do
    assert(not seen[id], 'id repeated in ds.ids: ' .. id)
    seen[id] = true
    assert(type(ds.captions[id]) == 'table' and #ds.captions[id] > 0, 'id without captions')
    assert(type(ds.files[id]) == 'string', 'id without a file name')
    for _, c in ipairs(ds.captions[id]) do assert(type(c) == 'string' and c ~= '', 'empty caption kept') end
  end
  assert(ds.skipped == #ds.problems, 'skipped ~= #problems')
  -- what the pipeline does next: the notebook's cleaning, a tokenizer, sequences
  local cleaned = captions.clean_all(ds.captions)
  local texts = captions.all(cleaned, ds.ids)
  local tok = tokenizer.fit(texts)
  for _, seq in ipairs(tok:texts_to_sequences(texts)) do
    for _, w in ipairs(seq) do assert(w >= 1 and w < tok:vocab_size(), 'index out of range') end
  end
  return string.format('ok ids=%d skipped=%s', math.min(#ds.ids, 3), ds.skipped > 0 and 'y' or 'n')
end

local function check_tokenizer(tok)
  -- a loaded tokenizer round-trips through its own JSON and maps its words both ways
  local again = assert(tokenizer.from_json(tok:to_json()), 'own JSON refused')
  assert(again:vocab_size() == tok:vocab_size(), 'round trip changed the vocabulary')
  for i, w in ipairs(tok.index_word) do
    assert(tok.word_index[w] == i, 'word_index and index_word disagree')
  end
  local seq = tok:text_to_sequence('startseq a red circle endseq')
  assert(type(seq) == 'table')
  return string.format('ok vocab=%d', math.min(tok:vocab_size(), 4))
end

local function run_target(target, path)
  if target == 'tokenizer' then
    local tok, err = tokenizer.load(path)
    if not tok then return 'refused', err end
    return check_tokenizer(tok)
  end
  local ds, err = captions.load(path, {format = target ~= 'detect' and target or nil})
  if not ds then return 'refused', err end
  return check_dataset(ds)
end

local function seeds(target)
  if target == 'tokenizer' then
    local tok = require('luacap.data.tokenizer').fit{'startseq a red circle endseq',
      'startseq two blue squares endseq', 'startseq a "quoted" word, endseq'}
    return {tok:to_json()}
  end
  local files = {kaggle = {'kaggle.csv'}, token = {'token.txt'}, karpathy = {'karpathy.json'},
                 detect = {'kaggle.csv', 'token.txt', 'karpathy.json'}}
  local out = {}
  for _, f in ipairs(files[target]) do out[#out + 1] = assert(read(SEEDS .. f), SEEDS .. f) end
  return out
end

------------------------------------------------------------------------ mutations

local DICT = {'"', ',', '\n', '\r\n', '\t', '#', '#0', '.jpg', '{', '}', '[', ']', ':', '\\',
  '\0', '\255', '\239\187\191', '""', '","', '\\u00e9', '\\ud800', '1e309', '-1', '0',
  'null', 'true', '[]', '{}', '"images"', '"sentences"', '"raw"', '"tokens"', '"split"',
  '"filename"', '"test"', '"restval"', 'image,caption', 'startseq', 'endseq',
  '"word_counts"', '"index_word"', '"format"', '"version"', '"document_count"',
  string.rep('a', 300), string.rep('"', 7)}

local function mutate(s, corpus)
  local n = #s
  local op = math.random(9)
  if n == 0 then op = 5 end
  local i = math.random(math.max(n, 1))
  if op == 1 then                                  -- flip a bit
    local b = s:byte(i)
    return s:sub(1, i - 1) .. string.char(bit.bxor(b, bit.lshift(1, math.random(0, 7)))) .. s:sub(i + 1)
  elseif op == 2 then                              -- a random byte
    return s:sub(1, i - 1) .. string.char(math.random(0, 255)) .. s:sub(i + 1)
  elseif op == 3 then                              -- delete a range
    local j = math.min(n, i + math.random(0, 32))
    return s:sub(1, i - 1) .. s:sub(j + 1)
  elseif op == 4 then                              -- duplicate a range
    local j = math.min(n, i + math.random(0, 64))
    return s:sub(1, j) .. s:sub(i, j) .. s:sub(j + 1)
  elseif op == 5 then                              -- insert a dictionary token
    return s:sub(1, i - 1) .. DICT[math.random(#DICT)] .. s:sub(i)
  elseif op == 6 then                              -- replace a byte by a token
    return s:sub(1, i - 1) .. DICT[math.random(#DICT)] .. s:sub(i + 1)
  elseif op == 7 then                              -- truncate
    return s:sub(1, i)
  elseif op == 8 then                              -- splice with another input
    local o = corpus[math.random(#corpus)]
    local k = math.random(math.max(#o, 1))
    return s:sub(1, i) .. o:sub(k)
  end
  local j = math.random(n)                         -- swap two bytes
  if i > j then i, j = j, i end
  if i == j then return s end
  return s:sub(1, i - 1) .. s:sub(j, j) .. s:sub(i + 1, j - 1) .. s:sub(i, i) .. s:sub(j + 1)
end

------------------------------------------------------------------------ the worker

-- The counts a worker left in its stats file ("execs=N ok=N ..."), {} when none.
local function read_stats(path)
  local st = {}
  for k, v in (read(path) or ''):gmatch('(%w+)=(%d+)') do st[k] = tonumber(v) end
  return st
end

local function worker(o)
  captions = require 'luacap.data.captions'
  tokenizer = require 'luacap.data.tokenizer'
  local target = o.worker
  local current = o.findings .. '/current-' .. target
  local corpus = seeds(target)
  local seen, stats = {}, {execs = 0, ok = 0, refused = 0, errors = 0, hangs = 0}
  local stats_path = o.findings .. '/stats-' .. target
  local function save_stats()
    write(stats_path, string.format('execs=%d ok=%d refused=%d errors=%d hangs=%d corpus=%d\n',
      stats.execs, stats.ok, stats.refused, stats.errors, stats.hangs, #corpus))
  end
  for k, v in pairs(read_stats(stats_path)) do   -- go on counting after a restart
    if stats[k] then stats[k] = v end
  end
  local deadline = os.time() + o.seconds
  math.randomseed(os.time() + stats.execs)
  local started
  -- a Lua-level endless loop: the hook raises once an input has run --timeout seconds
  debug.sethook(function()
    if os.clock() - started > o.timeout then error('fuzz: input timed out', 2) end
  end, '', 100000)
  while os.time() < deadline and (o.runs < 0 or stats.execs < o.runs) do
    local input = mutate(corpus[math.random(#corpus)], corpus)
    if math.random(4) == 1 then input = mutate(input, corpus) end
    write(current, input)
    started = os.clock()
    local ok, kind, detail = pcall(run_target, target, current)
    stats.execs = stats.execs + 1
    local sig
    if not ok then
      if tostring(kind):match('fuzz: input timed out') then
        write(string.format('%s/hang-%s-%d', o.findings, target, stats.execs), input)
        stats.hangs = stats.hangs + 1
      else
        stats.errors = stats.errors + 1
        local name = string.format('%s/error-%s-%d', o.findings, target, stats.errors)
        if stats.errors <= 20 then
          write(name, input)
          write(name .. '.txt', tostring(kind) .. '\n')
        end
      end
      sig = 'error ' .. tostring(kind):gsub('%d+', '')
    elseif kind == 'refused' then
      stats.refused = stats.refused + 1
      local msg = tostring(detail)
      local at = msg:find(current, 1, true)
      if at then msg = msg:sub(1, at - 1) .. msg:sub(at + #current) end
      sig = 'refused ' .. msg:gsub("'[^']*'", "''"):gsub('%d+', '')
    else
      stats.ok = stats.ok + 1
      sig = kind
    end
    if not seen[sig] then
      seen[sig] = true
      if #corpus < 1000 and #input < 65536 then corpus[#corpus + 1] = input end
    end
    if stats.execs % 500 == 0 then save_stats() end
  end
  debug.sethook()
  save_stats()
  os.remove(current)
end

------------------------------------------------------------------------ the driver

local function driver(o)
  assert(require('luacap.data.paths').mkdir_p(o.findings))
  local self = arg[0]
  print(string.format('%-10s %10s %8s %8s %8s %8s %6s %8s', 'target', 'executions', 'ok',
    'refused', 'errors', 'crashes', 'hangs', 'seconds'))
  local failed = false
  for _, target in ipairs(o.targets) do
    local start = os.time()
    local stats_path = o.findings .. '/stats-' .. target
    os.remove(stats_path)
    local crashes, hangs = 0, 0
    while os.time() - start < o.seconds do
      local left = o.seconds - (os.time() - start)
      -- a hang inside C (a Lua pattern, cjson) is not seen by the hook: the worker is
      -- killed 30 s after its time is up and its current input is the hang
      local cmd = string.format('timeout -s KILL %d luajit %s --worker %s --seconds %d --runs %d ' ..
        '--timeout %d --findings %s', left + 30, self, target, left, o.runs, o.timeout, o.findings)
      local r, _, c = os.execute(cmd)   -- LuaJIT: a wait status; Lua 5.2 mode: ok, how, code
      local code = type(r) == 'number' and math.floor(r / 256) or c
      local current = o.findings .. '/current-' .. target
      local input = read(current)
      if code == 0 and not input then break end
      if code > 0 and code < 128 then   -- the worker's own Lua error: a bug in this script
        print('fuzz/lua.lua: worker for ' .. target .. ' failed (exit ' .. code .. ')')
        failed = true
        break
      end
      if input then
        local what = code == 137 and 'hang' or 'crash'
        if what == 'hang' then hangs = hangs + 1 else crashes = crashes + 1 end
        write(string.format('%s/%s-%s-%d', o.findings, what, target, crashes + hangs), input)
        os.remove(current)
        failed = true
      elseif code ~= 0 then
        print('fuzz/lua.lua: worker for ' .. target .. ' exited ' .. code .. ' with no input pending')
        failed = true
        break
      end
    end
    local st = read_stats(stats_path)
    hangs = hangs + (st.hangs or 0)
    if (st.errors or 0) > 0 or hangs > 0 then failed = true end
    print(string.format('%-10s %10d %8d %8d %8d %8d %6d %8d', target, st.execs or 0, st.ok or 0,
      st.refused or 0, st.errors or 0, crashes, hangs, os.time() - start))
  end
  os.exit(failed and 1 or 0)
end

local o = parse_args(arg)
if o.worker then worker(o) else driver(o) end
