-- luacap.data.paths: where the dataset and the outputs live, as the notebook decides it
-- (env FLICKR8K_DIR, then ./data/flickr8k, then /kaggle/input/flickr8k; outputs under env
-- A5_OUTPUT_DIR or ./outputs with models/ and results/). Not a filesystem library: LuaJIT
-- has no lfs, so directories are probed with io.open and made with `mkdir -p`.
local M = {}

-- quote(s): s as one single-quoted POSIX shell word ('it'"'"'s' style escaping).
function M.quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- join(a, b, ...): path parts with single slashes between them.
function M.join(...)
  local parts = {...}
  local out = parts[1] or ''
  for i = 2, #parts do
    local p = parts[i]
    if p:sub(1, 1) == '/' then
      out = p
    elseif out == '' or out:sub(-1) == '/' then
      out = out .. p
    else
      out = out .. '/' .. p
    end
  end
  return out
end

local EISDIR = 21   -- Linux errno: reading a directory opened with fopen

-- Opens path and reads n bytes: false when it cannot be opened, else true and the read's
-- error code (nil when the read worked).
local function probe(path, n)
  if type(path) ~= 'string' or path == '' then return false end
  local f = io.open(path, 'rb')
  if not f then return false end
  local _, _, code = f:read(n)
  f:close()
  return true, code
end

-- is_dir(path): true when path is a directory (fopen on a directory succeeds on Linux,
-- and the first read fails with EISDIR).
function M.is_dir(path)
  local opened, code = probe(path, 1)
  return opened and code == EISDIR
end

-- is_file(path): true for a readable file that is not a directory.
function M.is_file(path)
  local opened, code = probe(path, 0)
  return opened and code ~= EISDIR
end

local cwd_cache
-- cwd(): the working directory (asked once from `pwd`, falling back to $PWD).
function M.cwd()
  if cwd_cache then return cwd_cache end
  local p = io.popen('pwd 2>/dev/null')
  local dir = p and p:read('*l')
  if p then p:close() end
  cwd_cache = (dir and dir ~= '') and dir or os.getenv('PWD') or '.'
  return cwd_cache
end

-- mkdir_p(path) -> true | nil, message.
function M.mkdir_p(path)
  if M.is_dir(path) then return true end
  local ok = os.execute('mkdir -p ' .. M.quote(path) .. ' 2>/dev/null')
  -- LuaJIT (5.1 API) returns the exit status as a number; 5.2+ returns true/nil.
  if (ok == true or ok == 0) and M.is_dir(path) then return true end
  return nil, 'mkdir -p ' .. path .. ': could not create the directory'
end

-- input_dir{create = false, env = os.getenv}: the first existing of $FLICKR8K_DIR,
-- <cwd>/data/flickr8k, /kaggle/input/flickr8k; when none exists, <cwd>/data/flickr8k
-- (created when create is true, as the notebook's os.makedirs does).
function M.input_dir(opt)
  opt = opt or {}
  local getenv = opt.env or os.getenv
  local default = M.join(M.cwd(), 'data', 'flickr8k')
  local candidates = {getenv('FLICKR8K_DIR'), default, '/kaggle/input/flickr8k'}
  for i = 1, 3 do
    local c = candidates[i]
    if c and c ~= '' and M.is_dir(c) then return c end
  end
  if opt.create then
    local ok, err = M.mkdir_p(default)
    if not ok then return nil, err end
  end
  return default
end

-- images_dir(input) and captions_file(input): the notebook's Images/ and captions.txt.
function M.images_dir(input) return M.join(input or M.input_dir(), 'Images') end
function M.captions_file(input) return M.join(input or M.input_dir(), 'captions.txt') end

-- output_dir{env = os.getenv}: $A5_OUTPUT_DIR or <cwd>/outputs (not created).
function M.output_dir(opt)
  local getenv = (opt and opt.env) or os.getenv
  local e = getenv('A5_OUTPUT_DIR')
  if e and e ~= '' then return e end
  return M.join(M.cwd(), 'outputs')
end

-- output_dirs([root]) -> {root =, models =, results =} with all three created,
-- or nil, message when one cannot be made.
function M.output_dirs(root)
  root = root or M.output_dir()
  local dirs = {root = root, models = M.join(root, 'models'), results = M.join(root, 'results')}
  for _, k in ipairs({'root', 'models', 'results'}) do
    local ok, err = M.mkdir_p(dirs[k])
    if not ok then return nil, err end
  end
  return dirs
end

-- list_dir(path) -> array of entry names (sorted by `ls`, hidden ones included, no . and ..)
-- | nil, message when path is not a directory.
function M.list_dir(path)
  if not M.is_dir(path) then return nil, path .. ': not a directory' end
  local p = io.popen('LC_ALL=C ls -1A ' .. M.quote(path) .. ' 2>/dev/null')
  if not p then return nil, path .. ': cannot list' end
  local out = {}
  for line in p:lines() do out[#out + 1] = line end
  p:close()
  return out
end

return M
