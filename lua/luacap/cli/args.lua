-- luacap.cli.args: what the two commands share: option converters that refuse bad values
-- at parse time, and the one-line form of an error for a user.
-- Not an option parser (lua-argparse is).
local M = {}

-- argparse converter: an integer >= min (1 by default), or nil and a message.
function M.int_at_least(min)
  min = min or 1
  return function(s)
    local n = tonumber(s)
    if not n or n ~= math.floor(n) or n < min then
      return nil, string.format("expected an integer >= %d, got '%s'", min, tostring(s))
    end
    return n
  end
end

-- argparse converter: a number > 0.
function M.positive(s)
  local n = tonumber(s)
  if not n or not (n > 0) then return nil, string.format("expected a number > 0, got '%s'", tostring(s)) end
  return n
end

-- argparse converter: a number >= 0.
function M.non_negative(s)
  local n = tonumber(s)
  if not n or not (n >= 0) then return nil, string.format("expected a number >= 0, got '%s'", tostring(s)) end
  return n
end

-- beam_options(parser): beam search's --length-penalty and --block-ngram (docs/decoding.md)
-- on both commands; not given, decode.beam's defaults.
function M.beam_options(parser)
  parser:option('--length-penalty', 'Beam search: rank finished captions by log-probability / ' ..
    'length^ALPHA (0: raw log-probability). Default: ' .. require('luacap.eval.decode').LENGTH_PENALTY .. '.')
    :convert(M.non_negative)
  parser:option('--block-ngram', 'Beam search: never repeat an n-gram of this length within a ' ..
    'caption (0: off).', '0'):convert(M.int_at_least(0))
end

-- The allocation limits (docs/robustness.md#allocation-limits), one option each for both
-- commands; not given, a limit keeps the library's default.
local LIMITS = {
  {'image_pixels', '--max-image-pixels', 'Refuse a JPEG or PNG claiming more pixels than this ' ..
    '(default 2^28).'},
  {'dataset_bytes', '--max-dataset-bytes', 'Refuse an HDF5 dataset (model file, checkpoint, ' ..
    'feature cache, weights) claiming more bytes than this (default 2^34).'},
  {'line_bytes', '--max-line-bytes', 'Refuse a caption file with a line longer than this many ' ..
    'bytes (default 64 MiB).'},
  {'json_bytes', '--max-json-bytes', 'Refuse a JSON file (Karpathy\'s captions, a tokenizer) ' ..
    'larger than this many bytes (default 256 MiB).'},
}

-- argparse converter for a limit: an integer from 1 to 9e15 (what the C side keeps exactly).
local function limit_value(s)
  local n = tonumber(s)
  if not n or n ~= math.floor(n) or n < 1 or n > 9e15 then
    return nil, string.format("expected an integer from 1 to 9e15, got '%s'", tostring(s))
  end
  return n
end

-- limit_options(parser): declares --max-image-pixels, --max-dataset-bytes, --max-line-bytes
-- and --max-json-bytes on an argparse parser (no default: the library's stays).
function M.limit_options(parser)
  for _, l in ipairs(LIMITS) do parser:option(l[2], l[3]):argname('<N>'):convert(limit_value) end
end

-- apply_limits(args) -> the previous limits: luacap.set_limits with the limit options that
-- were given (args as argparse returns them, max_image_pixels = ...); takes them out of args.
function M.apply_limits(args)
  local t = {}
  for _, l in ipairs(LIMITS) do
    local key = l[2]:gsub('^%-%-', ''):gsub('-', '_')
    t[l[1]], args[key] = args[key], nil
  end
  return require('luacap').set_limits(t)
end

-- The first line of an error, without the "file.lua:123: " position Lua puts in front of
-- errors raised at a level > 0: that is for LUACAP_DEBUG's traceback, not for a user.
function M.user_message(err)
  local line = tostring(err):match('^[^\n]*')
  return (line:gsub('^[^:%s]+%.lua:%d+: ', ''))
end

-- "16,32,64" for a list option in the printed options
function M.show(v)
  if type(v) == 'table' then
    local parts = {}
    for i, x in ipairs(v) do parts[i] = tostring(x) end
    return table.concat(parts, ',')
  end
  return tostring(v)
end

return M
