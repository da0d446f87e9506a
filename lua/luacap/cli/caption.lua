-- The caption command: examples/caption.lua and the installed luacap-caption both call
-- main(). Captions image files or dataset ids (looked up as <data>/Images/<id>.jpg|.jpeg|.png,
-- as the notebook's find_image_path) with a trained model file; for a dataset image it
-- also prints the reference captions, as the notebook's generate_caption. Images are
-- captioned in batches. Exit status 1 when any image failed.
-- Not the captioning itself (luacap.captioner) and not a library API: it prints and exits.
local cli_args = require 'luacap.cli.args'

local M = {}

-- parser(prog, train_prog): the argparse parser; prog names the command in messages.
function M.parser(prog, train_prog)
  local argparse = require 'argparse'
  local parser = argparse(prog, 'Caption images with a trained luacap model.')
  parser:argument('images', 'Image files or dataset image ids.'):args('+')
  parser:option('--model', 'Model file written by ' .. train_prog .. '.', 'outputs/models/best.h5')
  parser:option('--data', 'Dataset folder for ids and reference captions (default: the one the model was trained on).')
  parser:option('--save', 'Folder where each image is written with its caption drawn under it.')
  parser:option('--attention', 'Folder where each image is written with a panel per word of its ' ..
    'caption showing where the model looked (models with spatial attention: --model sat).')
  parser:option('--batch', 'Images captioned together.', '64'):convert(cli_args.int_at_least(1))
  parser:option('--beam', 'Beam width; 1 is the notebook\'s greedy decoding.', '1'):convert(cli_args.int_at_least(1))
  cli_args.beam_options(parser)
  parser:flag('--json', 'Print one JSON object per image instead of text.')
  cli_args.limit_options(parser)
  return parser
end

-- main(argv[, prog[, train_prog]]) -> exit status (0: every image captioned, 1 otherwise).
-- argv is a list of strings as the global `arg`; --help and bad options exit in argparse.
function M.main(argv, prog, train_prog)
  prog = prog or 'luacap-caption'
  local args = M.parser(prog, train_prog or 'luacap-train'):parse(argv)
  cli_args.apply_limits(args)   -- before the model file, the images and the captions are read
  local luacap = require 'luacap'
  local paths = require 'luacap.data.paths'
  local captions = require 'luacap.data.captions'

  local c, err = luacap.load(args.model)
  if not c then
    io.stderr:write(prog, ': ', err, '\n')
    return 1
  end

  -- Reference captions of the dataset, when there is one.
  local data_dir = args.data or c.meta.dataset_dir
  -- As the notebook's generate_caption prints them: cleaned, without startseq / endseq.
  -- The Kaggle captions.txt or the original Flickr8k.token.txt, whichever is there.
  local refs = nil
  for _, name in ipairs({'captions.txt', 'Flickr8k.token.txt'}) do
    local f = data_dir and paths.join(data_dir, name)
    if not refs and f and paths.is_file(f) then
      local ds = captions.load(f)
      if ds then
        refs = {}
        for id, list in pairs(captions.clean_all(ds.captions)) do
          local r = {}
          for k, cap in ipairs(list) do r[k] = cap:gsub('^startseq ?', ''):gsub(' ?endseq$', '') end
          refs[id] = r
        end
      end
    end
  end

  local function find_image(x)
    if paths.is_file(x) then return x, captions.image_id(x:match('[^/]*$')) end
    local id = captions.image_id(x)
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
    else
      errors[i] = x .. ': no such file' ..
        (data_dir and (' or image id in ' .. paths.join(data_dir, 'Images')) or '')
    end
  end

  -- caption every file that exists, in batches
  local list, where = {}, {}
  for i = 1, #args.images do
    if files[i] then list[#list + 1] = files[i]; where[#list] = i end
  end
  local caps, bad = c:caption(list, {batch = args.batch, beam = args.beam,
    length_penalty = args.length_penalty, block_ngram = args.block_ngram})
  local out = {}
  for k, i in pairs(where) do
    if caps[k] then out[i] = caps[k] else errors[i] = bad[k] end
  end

  for _, key in ipairs({'save', 'attention'}) do
    if args[key] then
      local ok, merr = paths.mkdir_p(args[key])
      if not ok then
        io.stderr:write(prog, ': ', tostring(merr), '\n')
        return 1
      end
    end
  end
  -- where the model looked for each word of each caption
  local maps = {}
  if args.attention then
    local list_caps = {}
    for k, i in pairs(where) do list_caps[k] = out[i] end
    local m, merr = c:attention(list, list_caps, {batch = args.batch})
    if not m then
      io.stderr:write(prog, ': --attention: ', tostring(merr), '\n')
      return 1
    end
    for k, i in pairs(where) do maps[i] = m[k] end
  end

  local cjson = require 'cjson'
  local n_bad = 0
  for i, x in ipairs(args.images) do
    if errors[i] then
      n_bad = n_bad + 1
      io.stderr:write(prog, ': ', errors[i], '\n')
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
      local name = files[i]:match('([^/]*)$'):gsub('%.[^.]*$', '') .. '.png'
      if args.save then
        local ok, derr = luacap.report.captioned_image(paths.join(args.save, name), files[i], out[i])
        if not ok then io.stderr:write(prog, ': could not draw ', name, ': ', tostring(derr), '\n') end
      end
      if maps[i] then
        local ok, derr = luacap.report.attention(paths.join(args.attention, name), files[i],
          maps[i].words, maps[i].alphas)
        if not ok then io.stderr:write(prog, ': could not draw ', name, ': ', tostring(derr), '\n') end
      end
    end
  end
  return n_bad > 0 and 1 or 0
end

return M
