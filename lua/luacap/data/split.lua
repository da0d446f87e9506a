-- luacap.data.split: train/test splits: the notebook's (first int(0.9 n) ids for training),
-- the official Flickr_8k.{train,dev,test}Images.txt lists and Karpathy's JSON splits, plus
-- a validation holdout taken from the end of the training ids. Not random: shuffle elsewhere.
local captions = require 'luacap.data.captions'
local paths = require 'luacap.data.paths'

local M = {}

-- notebook(ids[, fraction = 0.9]) -> train, test: the first int(n * fraction) ids train,
-- the rest test, in order (Python's int() truncates; math.floor is the same for n >= 0,
-- and n * 0.9 is the same double product in both languages).
function M.notebook(ids, fraction)
  fraction = fraction or 0.90
  local cut = math.floor(#ids * fraction)
  local train, test = {}, {}
  for i = 1, #ids do
    if i <= cut then train[#train + 1] = ids[i] else test[#test + 1] = ids[i] end
  end
  return train, test
end

-- holdout(train_ids, fraction) -> fit, val: the LAST floor(n * fraction) ids become the
-- validation set (at least one when fraction > 0 and n > 1), the rest stay for fitting.
-- Taking the end keeps the split deterministic and leaves the notebook's order alone.
function M.holdout(train_ids, fraction)
  if type(fraction) ~= 'number' or fraction < 0 or fraction >= 1 then
    error('split.holdout: fraction is ' .. tostring(fraction) .. ', expected a number in [0, 1)', 2)
  end
  local n = #train_ids
  local k = math.floor(n * fraction)
  if k == 0 and fraction > 0 and n > 1 then k = 1 end
  local fit, val = {}, {}
  for i = 1, n do
    if i <= n - k then fit[#fit + 1] = train_ids[i] else val[#val + 1] = train_ids[i] end
  end
  return fit, val
end

-- read_list(path) -> ids (one file name a line, blank lines skipped, order kept)
-- | nil, message.
function M.read_list(path)
  local f, err = io.open(path, 'rb')
  if not f then return nil, err end
  local ids = {}
  for line in f:lines() do
    line = line:gsub('^\239\187\191', ''):gsub('^%s+', ''):gsub('%s+$', '')
    if line ~= '' then ids[#ids + 1] = captions.image_id(line) end
  end
  f:close()
  return ids
end

-- official(dir) -> {train =, val =, test =} from Flickr_8k.trainImages.txt,
-- Flickr_8k.devImages.txt (val) and Flickr_8k.testImages.txt in dir | nil, message when
-- the train list is absent (val and test lists may be absent: empty then).
function M.official(dir)
  local files = {train = 'Flickr_8k.trainImages.txt', val = 'Flickr_8k.devImages.txt',
                 test = 'Flickr_8k.testImages.txt'}
  local out = {}
  for _, k in ipairs({'train', 'val', 'test'}) do
    local p = paths.join(dir, files[k])
    if paths.is_file(p) then
      local ids, err = M.read_list(p)
      if not ids then return nil, err end
      out[k] = ids
    elseif k == 'train' then
      return nil, p .. ': no such file'
    else
      out[k] = {}
    end
  end
  return out
end

-- karpathy(ds) -> {train =, val =, test =} from a dataset loaded from Karpathy's JSON
-- ('restval' already counted as train by captions.load) | nil, message.
function M.karpathy(ds)
  if not ds.splits then return nil, 'split.karpathy: the dataset has no splits (not from Karpathy JSON)' end
  return ds.splits
end

-- restrict(list, ds) -> ids of list that have captions in ds, and the count dropped
-- (official lists name a few images the captions file lacks).
function M.restrict(list, ds)
  local out, dropped = {}, 0
  for _, id in ipairs(list) do
    if ds.captions[id] then out[#out + 1] = id else dropped = dropped + 1 end
  end
  return out, dropped
end

-- choose(ds, how[, dir]) -> {train =, val =, test =}: how = 'notebook' (val empty),
-- 'official' (lists in dir, default the captions file's folder) or 'karpathy'.
function M.choose(ds, how, dir)
  if how == 'notebook' then
    local train, test = M.notebook(ds.ids)
    return {train = train, val = {}, test = test}
  elseif how == 'official' then
    dir = dir or (ds.file and ds.file:match('^(.*)/[^/]*$')) or '.'
    local s, err = M.official(dir)
    if not s then return nil, err end
    return {train = M.restrict(s.train, ds), val = M.restrict(s.val, ds),
            test = M.restrict(s.test, ds)}
  elseif how == 'karpathy' then
    return M.karpathy(ds)
  end
  error("split.choose: how is '" .. tostring(how) .. "', expected 'notebook', 'official' or 'karpathy'", 2)
end

return M
