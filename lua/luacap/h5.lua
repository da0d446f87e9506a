-- luacap.h5: named float32 tensors and string attributes in HDF5 files (bind/h5.c, io/h5.c).
-- Not a general HDF5 binding: no partial reads, no compression, datasets are float32 on
-- disk (float64 is converted on read), attributes written are strings or string arrays.
--
-- Names: nested tables are groups, and a key may hold '/' itself, so
--   {encoder = {dense = {kernel = T}}}  and  {['encoder/dense/kernel'] = T}
-- both write the dataset /encoder/dense/kernel.
-- Attributes (the attrs argument of save): a key without a leading '/' is an attribute
-- of the root; a key with one names an object whose attributes its table holds:
--   {config = '{"units": 256}', layer_names = {'dense', 'lstm'},  -- root
--    ['/encoder'] = {weight_names = {'kernel:0', 'bias:0'}}}         -- group /encoder
-- A string value is a scalar string; an array of strings a 1-d fixed-length, NUL-padded
-- string array, the layout Keras (numpy 'S' arrays via h5py) uses for layer_names and
-- weight_names. A group named only in attrs is created, empty.
-- Failures: argument mistakes raise; a missing, truncated or non-HDF5 file, a missing
-- object or a write the file system refuses give nil, "<path>: reason".
local core = require 'luacap.core'

local M = {}

local function is_tensor(x)
  return type(x) == 'userdata' and getmetatable(x) == core.Tensor
end

-- "a//b/" -> error; "/a/b" -> "/a/b"; "a/b" -> "/a/b". Components '.' are refused:
-- HDF5 reads them as "this group".
local function norm_name(fn, name)
  local parts = {}
  for part in (name .. '/'):gmatch('([^/]*)/') do parts[#parts + 1] = part end
  if parts[1] == '' then table.remove(parts, 1) end
  if #parts == 0 then error(fn .. ": empty name '" .. name .. "'", 0) end
  for _, p in ipairs(parts) do
    if p == '' or p == '.' then
      error(string.format("%s: name '%s' has an empty or '.' component", fn, name), 0)
    end
  end
  return '/' .. table.concat(parts, '/')
end

-- Flattens the tensors argument into a sorted list of {name = '/a/b', tensor = T},
-- raising on anything that is not a string-keyed tree of tensors.
local function collect_tensors(tensors)
  local items, seen = {}, {}
  local function walk(t, prefix, depth)
    if depth > 64 then error('save: tensors nest deeper than 64 levels (a cycle?)', 0) end
    for k, v in pairs(t) do
      if type(k) ~= 'string' then
        error(string.format("save: tensors%s has a %s key (%s), expected a string name",
          prefix == '' and '' or " at '" .. prefix .. "'", type(k), tostring(k)), 0)
      end
      local name = norm_name('save', prefix .. '/' .. k)
      if is_tensor(v) then
        if v:isfreed() then error(string.format("save: '%s' is a freed tensor", name), 0) end
        if seen[name] then error(string.format("save: '%s' is given twice", name), 0) end
        seen[name] = true
        items[#items + 1] = {name = name, tensor = v}
      elseif type(v) == 'table' then
        walk(v, name, depth + 1)
      else
        error(string.format("save: '%s' is a %s, expected a tensor or a table of them",
          name, type(v)), 0)
      end
    end
  end
  walk(tensors, '', 1)
  -- A tensor cannot also be a group: '/a' and '/a/b'.
  for _, it in ipairs(items) do
    local p = it.name:match('^(.*)/[^/]*$')
    while p and p ~= '' do
      if seen[p] then
        error(string.format("save: '%s' is a tensor and also the group of '%s'", p, it.name), 0)
      end
      p = p:match('^(.*)/[^/]*$')
    end
  end
  table.sort(items, function(a, b) return a.name < b.name end)
  return items
end

local function check_attr_value(obj, name, v)
  if type(v) == 'string' then return end
  if type(v) == 'table' then
    local n = 0
    for _ in pairs(v) do n = n + 1 end
    if n == #v then
      for i = 1, #v do
        if type(v[i]) ~= 'string' then
          error(string.format("save: attribute '%s' of '%s' element %d is a %s, expected a string",
            name, obj, i, type(v[i])), 0)
        end
      end
      return
    end
  end
  error(string.format("save: attribute '%s' of '%s' is a %s, expected a string or an array of strings",
    name, obj, type(v) == 'table' and 'table with non-array keys' or type(v)), 0)
end

-- The attrs argument as a sorted list of {obj = '/g', name = 'k', value = v}.
local function collect_attrs(attrs)
  local items = {}
  local function add(obj, name, v)
    if type(name) ~= 'string' then
      error(string.format("save: attribute key %s of '%s' is a %s, expected a string",
        tostring(name), obj, type(name)), 0)
    end
    check_attr_value(obj, name, v)
    items[#items + 1] = {obj = obj, name = name, value = v}
  end
  for k, v in pairs(attrs) do
    if type(k) == 'string' and k:sub(1, 1) == '/' then
      if type(v) ~= 'table' then
        error(string.format("save: attrs['%s'] is a %s, expected a table of that object's attributes",
          k, type(v)), 0)
      end
      local obj = k == '/' and '/' or norm_name('save', k)
      for name, value in pairs(v) do add(obj, name, value) end
    else
      add('/', k, v)
    end
  end
  table.sort(items, function(a, b)
    if a.obj ~= b.obj then return a.obj < b.obj end
    return a.name < b.name
  end)
  return items
end

-- save(path, tensors[, attrs[, {float16 = true | {name = true, ...}}]]) -> true | nil,
-- "<path>: reason"
-- Writes "<path>.tmp.<pid>" and renames it over path only when everything was written,
-- so a crash or an error never leaves a half-written file; the temporary is removed on
-- any failure. float16: every dataset (true) or the named ones (their names as in
-- tensors, e.g. 'features' or 'group/w') stored as IEEE float16, half the bytes, values
-- rounded to the nearest float16 (ties to even; beyond +-65504 infinity); reading gives
-- them back as float32 (exactly the rounded values, checksum included).
function M.save(path, tensors, attrs, opts)
  if type(path) ~= 'string' then error('save: path is a ' .. type(path) .. ', expected a string', 2) end
  if type(tensors) ~= 'table' then
    error('save: tensors is a ' .. type(tensors) .. ', expected a table of named tensors', 2)
  end
  if attrs ~= nil and type(attrs) ~= 'table' then
    error('save: attrs is a ' .. type(attrs) .. ', expected a table of strings', 2)
  end
  local ok0, items = pcall(collect_tensors, tensors)
  if not ok0 then error(items, 2) end
  local f16 = opts and opts.float16
  for _, it in ipairs(items) do
    local bare = it.name:gsub('^/+', '')
    it.half = f16 == true or (type(f16) == 'table' and (f16[bare] or f16[it.name])) or false
  end
  local ok1, aitems = pcall(collect_attrs, attrs or {})
  if not ok1 then error(aitems, 2) end
  -- A full disk is refused before HDF5 writes anything: libhdf5 does not recover from a
  -- write that fails halfway (its exit handler can crash on that file). The estimate is
  -- the data, the attributes and 64 KiB of structure, plus an eighth.
  local bytes = 65536
  for _, it in ipairs(items) do bytes = bytes + (it.half and 2 or 4) * it.tensor:numel() + 256 end
  for _, it in ipairs(aitems) do
    local v = it.value
    bytes = bytes + 256 + (type(v) == 'string' and #v or 0)
    if type(v) == 'table' then for _, x in ipairs(v) do bytes = bytes + #x + 8 end end
  end
  local free = core.free_bytes((path:match('^(.*)/[^/]*$') or '.'))
  if free and free < bytes * 1.125 then
    return nil, string.format('%s: No space left on device (about %d bytes needed, %d free)',
      path, math.floor(bytes * 1.125), free)
  end
  local w, err = core.h5_create(path)
  if not w then return nil, err end
  local ok, res, msg = pcall(function()
    local half = math.ceil(#items / 2)
    for i, it in ipairs(items) do
      local wok, werr = w:write(it.name, it.tensor, path, it.half)
      if not wok then return nil, werr end
      if i == half then require('luacap.util').crash_point('h5') end   -- the kill test's hook
    end
    for _, it in ipairs(aitems) do
      local wok, werr = w:write_attr(it.obj, it.name, it.value, path)
      if not wok then return nil, werr end
    end
    return true
  end)
  if not ok then
    w:close()                    -- removes the temporary file
    -- a raise from the binding: drop its position, which points into this file
    error('save: ' .. tostring(res):gsub('^[^:]*:%d+: ', ''), 2)
  end
  if not res then
    w:close()
    return nil, msg
  end
  return w:commit(path)
end

-- Runs fn(handle) on a file open for reading and closes it on every path.
local function with_reader(path, fn)
  local h, err = core.h5_open(path)
  if not h then return nil, err end
  local ok, a, b = pcall(fn, h)
  h:close()
  if not ok then error(a, 0) end
  return a, b
end

local function check_path(fn, path)
  if type(path) ~= 'string' then error(fn .. ': path is a ' .. type(path) .. ', expected a string', 3) end
end

local function check_name(fn, what, name)
  if name == nil then return '/' end
  if type(name) ~= 'string' then
    error(string.format('%s: %s is a %s, expected a string', fn, what, type(name)), 3)
  end
  return name
end

local function load_group(h, group, path, out)
  local names, kinds = h:list(group, path)
  if not names then return nil, kinds end
  for i, name in ipairs(names) do
    local full = (group == '/' and '' or group) .. '/' .. name
    if kinds[i] == 'group' then
      local sub, err = load_group(h, full, path, {})
      if not sub then return nil, err end
      out[name] = sub
    elseif kinds[i] == 'dataset' then
      local t, err = h:read(full, path)
      if not t then return nil, err end
      out[name] = t
    end                          -- named types and dangling links hold no tensors
  end
  return out
end

-- load(path) -> tensors (nested tables by group), attrs (the root's attributes)
--             | nil, "<path>: reason"
function M.load(path)
  check_path('load', path)
  return with_reader(path, function(h)
    local tensors, err = load_group(h, '/', path, {})
    if not tensors then return nil, err end
    local attrs, aerr = h:attrs('/', path)
    if not attrs then return nil, aerr end
    return tensors, attrs
  end)
end

-- read(path, '/group/dataset') -> tensor | nil, "<path>: no dataset '/group/dataset'"
function M.read(path, name)
  check_path('read', path)
  if type(name) ~= 'string' then
    error('read: dataset name is a ' .. type(name) .. ', expected a string', 2)
  end
  return with_reader(path, function(h) return h:read(name, path) end)
end

-- attrs(path[, '/group']) -> {name = string | {strings} | number | {numbers}} | nil, msg
-- A scalar attribute gives its value, an array attribute a Lua array (Keras' empty
-- weight_names, a float64 array of length 0, gives {}).
function M.attrs(path, obj)
  check_path('attrs', path)
  obj = check_name('attrs', 'object name', obj)
  return with_reader(path, function(h) return h:attrs(obj, path) end)
end

-- list(path[, '/group']) -> names, kinds ('group' | 'dataset' | 'other') | nil, msg
-- In name order (HDF5's and h5py's default), or creation order where the group tracks it.
function M.list(path, group)
  check_path('list', path)
  group = check_name('list', 'group name', group)
  return with_reader(path, function(h) return h:list(group, path) end)
end

-- chunked(attrs, 'layer_names') -> one array: Keras splits an attribute over 64 KiB
-- into layer_names0, layer_names1, ...; a plain string becomes a one-element array.
function M.chunked(attrs, name)
  local v = attrs[name]
  if v ~= nil then return type(v) == 'table' and v or {v} end
  local out, i = {}, 0
  while attrs[name .. i] ~= nil do
    local part = attrs[name .. i]
    for _, s in ipairs(type(part) == 'table' and part or {part}) do out[#out + 1] = s end
    i = i + 1
  end
  return out
end

return M
