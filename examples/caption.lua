#!/usr/bin/env luajit
-- examples/caption.lua: captions image files (JPEG or PNG, anywhere on disk) or dataset ids
-- (looked up as <data>/Images/<id>.jpg|.jpeg|.png, as the notebook's find_image_path) with
-- a trained model file. For a dataset image it also prints the reference captions, as the
-- notebook's generate_caption. Images are captioned in batches. Exit status 1 when any
-- image failed.
local script_dir = (arg and arg[0] or ''):match('^(.*)/examples/[^/]*$') or '.'
package.path = script_dir .. '/lua/?.lua;' .. script_dir .. '/lua/?/init.lua;' .. package.path
package.cpath = script_dir .. '/lua/?.so;' .. package.cpath

local argparse = require 'argparse'
local parser = argparse('caption.lua', 'Caption images with a trained luacap model.')
parser:argument('images', 'Image files or dataset image ids.'):args('+')
parser:option('--model', 'Model file written by train.lua.', 'outputs/models/best.h5')
parser:option('--data', 'Dataset folder for ids and reference captions (default: the one the model was trained on).')
parser:option('--save', 'Folder where each image is written with its caption drawn under it.')
parser:option('--batch', 'Images captioned together.', '64'):convert(tonumber)
parser:flag('--json', 'Print one JSON object per image instead of text.')
local args = parser:parse()

local luacap = require 'luacap'
local paths = require 'luacap.data.paths'

local function fail(msg)
  io.stderr:write('caption.lua: ', msg, '\n')
  os.exit(1)
end

local c, err = luacap.load(args.model)
if not c then fail(err) end

-- Reference captions of the dataset, when there is one.
local data_dir = args.data or c.meta.dataset_dir
local refs, ds = nil, nil
if data_dir and paths.is_file(paths.join(data_dir, 'captions.txt')) then
  ds = require('luacap.data.captions').load(paths.join(data_dir, 'captions.txt'))
  refs = ds and ds.captions
end

local function find_image(x)
  if paths.is_file(x) then return x, require('luacap.data.captions').image_id(x:match('[^/]*$')) end
  local id = require('luacap.data.captions').image_id(x)
  if data_dir then
    for _, ext in ipairs({'.jpg', '.jpeg', '.png'}) do
      local p = paths.join(data_dir, 'Images', id .. ext)
      if paths.is_file(p) then return p, id end
    end
  end
  return nil, id
end

local files, ids, errors = {}, {}, {}
for i, x in ipairs(args.images) do
  local path, id = find_image(x)
  ids[i] = id
  if path then files[i] = path
  else errors[i] = x .. ': no such file' .. (data_dir and (' or image id in ' .. paths.join(data_dir, 'Images')) or '') end
end

-- caption every file that exists, in batches
local list, where = {}, {}
for i = 1, #args.images do
  if files[i] then list[#list + 1] = files[i]; where[#list] = i end
end
local caps, bad = c:caption(list, {batch = args.batch})
local out = {}
for k, i in pairs(where) do
  if caps[k] then out[i] = caps[k] else errors[i] = bad[k] end
end

if args.save then
  local ok, merr = paths.mkdir_p(args.save)
  if not ok then fail(merr) end
end

local cjson = require 'cjson'
local n_bad = 0
for i, x in ipairs(args.images) do
  if errors[i] then
    n_bad = n_bad + 1
    io.stderr:write('caption.lua: ', errors[i], '\n')
  else
    local r = refs and refs[ids[i]]
    if args.json then
      print(cjson.encode({image = x, file = files[i], caption = out[i], references = r}))
    else
      print(x .. ': ' .. out[i])
      if r then
        print('  ---------------------Actual---------------------')
        for _, rc in ipairs(r) do print('  ' .. rc) end
      end
    end
    if args.save then
      local name = files[i]:match('([^/]*)$'):gsub('%.[^.]*$', '') .. '.png'
      local ok, derr = luacap.report.captioned_image(paths.join(args.save, name), files[i], out[i])
      if not ok then io.stderr:write('caption.lua: could not draw ', name, ': ', tostring(derr), '\n') end
    end
  end
end
os.exit(n_bad > 0 and 1 or 0)
