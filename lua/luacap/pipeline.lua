-- The notebook's whole run as plain functions: data -> tokenizer -> split -> image inputs
-- (cached features of a frozen encoder, images for a trainable one, or the cached maps of a
-- fine-tuned VGG16's frozen prefix) -> model -> fit with callbacks -> saving -> greedy
-- captions of the test split -> BLEU -> pictures and pages.
-- examples/train.lua parses options and calls run(opt); specs call the pieces.
-- Not a framework: each step is a function call with plain values.
local luacap = require 'luacap'
local cjson = require 'cjson'
local paths = require 'luacap.data.paths'
local captions = require 'luacap.data.captions'
local tokenizer = require 'luacap.data.tokenizer'
local split = require 'luacap.data.split'
local pairs_ = require 'luacap.data.pairs'
local util = require 'luacap.util'

local M = {}

local function log(opt, fmt, ...)
  if opt.quiet then return end
  io.stderr:write(string.format(fmt, ...), '\n')
end

-- The default dataset: the synthetic shapes, generated on first use in opt.shapes_dir.
function M.ensure_shapes(opt)
  local dir = opt.shapes_dir or paths.join(paths.cwd(), 'data', 'shapes')
  local marker = paths.join(dir, 'captions.txt')
  local meta = paths.join(dir, 'generator.json')
  local spec = {n = opt.n_images, size = opt.shapes_size, seed = opt.data_seed, max_shapes = opt.max_shapes or 3}
  local want = cjson.encode(spec)
  -- compared field by field: cjson's key order may differ between processes (--distributed ranks)
  local okm, have = pcall(cjson.decode, util.read_file(meta) or '')
  local same = okm and type(have) == 'table'
  for k, v in pairs(spec) do same = same and have[k] == v end
  if paths.is_file(marker) and same then return dir end
  log(opt, 'Generating the synthetic shapes dataset (%d images of %dx%d) in %s',
    opt.n_images, opt.shapes_size, opt.shapes_size, dir)
  local t0 = util.now()
  local ok, err = luacap.data.shapes.generate{dir = dir, n = opt.n_images, size = opt.shapes_size,
    seed = opt.data_seed, max_shapes = opt.max_shapes}
  if not ok then error('cannot generate the synthetic dataset: ' .. tostring(err), 0) end
  local mok, merr, mcode = util.write_file(meta, want)
  if not mok then error(util.write_error(meta, merr, mcode), 0) end
  log(opt, '  done in %.1f s', util.now() - t0)
  return dir
end

-- Captions (cleaned), tokenizer, max_len and splits, as the notebook makes them.
function M.load_data(opt, dir)
  if not paths.is_dir(dir) then
    error(string.format('dataset folder %s does not exist (expected Images/ and captions.txt in it)',
      dir), 0)
  end
  -- the first present of Kaggle's captions.txt, the original token file, Karpathy's JSON
  local names = {'captions.txt', 'Flickr8k.token.txt', 'dataset_flickr8k.json'}
  local cap_file
  for _, name in ipairs(names) do
    if paths.is_file(paths.join(dir, name)) then
      cap_file = paths.join(dir, name)
      break
    end
  end
  if not cap_file then
    error(string.format('%s has no caption file (expected one of %s)', dir, table.concat(names, ', ')), 0)
  end
  local ds, err = captions.load(cap_file, {strict = opt.strict})
  if not ds then error(err, 0) end
  if ds.skipped > 0 then
    log(opt, 'Skipped %d malformed caption lines, e.g. %s', ds.skipped, ds.problems[1])
  end
  local images_dir = paths.join(dir, 'Images')
  local check = captions.check_images(ds, images_dir)
  if #check.missing > 0 or #check.extra > 0 then
    log(opt, 'Images: %d listed in the captions but missing on disk%s; %d on disk without captions',
      #check.missing, check.missing[1] and (' (e.g. ' .. check.missing[1] .. ')') or '', #check.extra)
  end
  local missing = {}
  for _, id in ipairs(check.missing) do missing[id] = true end
  local ids = {}
  for _, id in ipairs(ds.ids) do if not missing[id] then ids[#ids + 1] = id end end
  if #ids < 2 then error(string.format('%s: fewer than two images with captions were found in %s',
    cap_file, images_dir), 0) end
  local cleaned = captions.clean_all(ds.captions)
  local all = captions.all(cleaned, ds.ids)
  local tok = tokenizer.fit(all)
  local max_len = tok:max_length(all)
  -- splits: Karpathy's or the official lists when present, else the notebook's 90/10
  local train, test, val
  local official = split.official and split.official(dir)
  if ds.splits then
    train, val, test = ds.splits.train, ds.splits.val, ds.splits.test
  elseif official then
    train, val, test = official.train, official.val, official.test
  else
    train, test = split.notebook(ids, opt.train_fraction)
  end
  local function present(list)
    local out = {}
    for _, id in ipairs(list or {}) do
      if cleaned[id] and not missing[id] then out[#out + 1] = id end
    end
    return out
  end
  train, test = present(train), present(test)
  -- the notebook validates on its test split
  val = (val and #present(val) > 0) and present(val) or test
  log(opt, 'Dataset %s: %d images, %d captions; vocabulary %d, max caption length %d; train %d, val %d, test %d images',
    dir, #ids, captions.count(ds), tok:vocab_size(), max_len, #train, #val, #test)
  return {dir = dir, ds = ds, captions = cleaned, ids = ids, tok = tok, max_len = max_len,
    train = train, val = val, test = test, images_dir = images_dir}
end

-- Path of an image id: the file named in the captions, else id.jpg / .jpeg / .png
-- (the notebook's find_image_path).
function M.image_path(data, id)
  local f = data.ds.files[id]
  if f and paths.is_file(paths.join(data.images_dir, f)) then return paths.join(data.images_dir, f) end
  for _, ext in ipairs({'.jpg', '.jpeg', '.png'}) do
    local p = paths.join(data.images_dir, id .. ext)
    if paths.is_file(p) then return p end
  end
  return nil
end

-- Rows for a list of ids, in the order of all_ids (the inputs tensor's rows).
function M.rows_of(index, ids)
  local r = {}
  for i, id in ipairs(ids) do r[i] = assert(index[id], id) end
  return r
end

-- Batch source for fit over pairs whose image rows are rows[pair_image].
function M.source(p, rows)
  return {n = p.n, get = function(idx)
    local ids, y, img = pairs_.batch(p, idx, 1, #idx)
    local r = {}
    for i = 1, #img do r[i] = rows[img[i]] end
    return {ids = ids, y = y, rows = r}
  end, image_of = function(k) return p.pair_image[k] end}
end

-- Which encoder: 'vgg16' when its Keras weights file is present (or asked for, or
-- fine-tuned), else the trainable small CNN.
M.VGG16_WEIGHTS = 'data/weights/vgg16_weights_tf_dim_ordering_tf_kernels.h5'

function M.choose_encoder(opt)
  local name = opt.encoder or 'auto'
  local weights = opt.vgg16_weights or M.VGG16_WEIGHTS
  if name == 'auto' then name = (opt.fine_tune_from or paths.is_file(weights)) and 'vgg16' or 'smallcnn' end
  if opt.fine_tune_from and name ~= 'vgg16' then
    error(string.format("--fine-tune-from fine-tunes VGG16's blocks (--encoder vgg16), not the " ..
      "%s encoder (the small CNN trains whole: leave --fine-tune-from out)", name), 0)
  end
  if opt.fine_tune_from and opt.freeze_encoder then
    error('--fine-tune-from trains the chosen VGG16 blocks and --freeze-encoder freezes the encoder: ' ..
      'give one of them', 0)
  end
  local enc
  if name == 'vgg16' then
    if not paths.is_file(weights) then
      error(string.format("the vgg16 encoder needs Keras' weights file at %s (make vgg16-weights, " ..
        'or --vgg16-weights PATH)', weights), 0)
    end
    local err
    -- sat attends over regions: VGG16's block5_conv3 map (14 x 14 x 512 at 224) by default
    local cfg = {name = 'vgg16', weights = weights,
      output = opt.vgg16_layer or (opt.model == 'sat' and 'block5_conv3' or 'fc2'),
      fine_tune_from = opt.fine_tune_from}
    for k, v in pairs(opt.encoder_options or {}) do cfg[k] = v end
    enc, err = luacap.encoders.build(cfg)
    if not enc then error(err, 0) end
    if opt.model == 'sat' then
      if #enc.out_shape ~= 3 then
        error("--model sat needs a VGG16 conv map (--vgg16-layer block5_conv3 or block5_pool), not " ..
          cfg.output, 0)
      end
      enc:use_regions()    -- (N, L, D) rows, as the small CNN's map
    end
  elseif name == 'smallcnn' then
    local cfg = {name = 'smallcnn', input_size = opt.image_size, channels = opt.cnn_channels,
      out_dim = opt.feat_dim, frozen = opt.freeze_encoder or nil,
      output = opt.model == 'sat' and 'map' or nil}   -- sat attends over the conv map's regions
    for k, v in pairs(opt.encoder_options or {}) do cfg[k] = v end
    enc = luacap.encoders.build(cfg)
  else
    error(string.format("unknown encoder '%s' (expected auto, vgg16 or smallcnn)", name), 0)
  end
  if opt.cnn_lr and not enc.trainable then
    error('--cnn-lr is the learning rate of a trained encoder: give --fine-tune-from BLOCK ' ..
      '(vgg16) or train the small CNN (without --freeze-encoder)', 0)
  end
  return enc, name
end

-- What the inputs tensor's rows hold for an encoder: 'images' for a trainable one,
-- 'maps' (its frozen prefix's output, cached) for a fine-tuned VGG16, 'features' (cached)
-- for a frozen one.
function M.inputs_kind(enc)
  if enc.tail then return 'maps' end
  return enc.trainable and 'images' or 'features'
end

-- The encoder fit and decoding run on those rows: the trainable encoder, the fine-tuned
-- tail, or none (the rows are the features).
function M.row_encoder(enc)
  if enc.tail then return enc.tail end
  return enc.trainable and enc or nil
end

-- Adam at opt.lr; with opt.cnn_lr, a trained encoder's parameters (named 'encoder.' by
-- fit.trained_params) step at cnn_lr: a multiplier cnn_lr / lr on them, so that
-- ReduceLROnPlateau, which scales opt.lr, lowers both rates alike.
function M.optimizer(opt)
  local lr = opt.lr or 0.001
  return luacap.optim.Adam{lr = lr, lr_scale = opt.cnn_lr and {['encoder.'] = opt.cnn_lr / lr} or nil}
end

-- Loads, resizes and preprocesses the images of ids for a trainable encoder: one
-- (N, S, S, 3) tensor in caffe mode. A failing image is reported and left out.
function M.load_images(opt, data, ids, S)
  local image = luacap.image
  local ok_ids, bad = {}, {}
  local buf = {}
  for _, id in ipairs(ids) do
    local path = M.image_path(data, id)
    local img, err
    if path then img, err = image.load(path) else err = id .. ': no image file' end
    if img then
      buf[#buf + 1] = image.prepare(img, S, opt.resize)
      ok_ids[#ok_ids + 1] = id
    else
      bad[#bad + 1] = err
    end
  end
  for _, msg in ipairs(bad) do log(opt, 'Skipping an image: %s', msg) end
  local X = luacap.zeros(#buf, S, S, 3)
  for i, t in ipairs(buf) do X:narrow(i, 1):copy(t) end
  return X, ok_ids, bad
end

-- --max-bad-images: '5%' (a share of the images), '0.05' (the same, below 1) or '3' (a
-- count) -> the largest number of unreadable images a run of `total` images accepts.
function M.bad_image_limit(spec, total)
  spec = tostring(spec == nil and '5%' or spec)
  local pct = spec:match('^%s*([%d.]+)%%%s*$')
  local x = tonumber(pct or spec)
  if not x or x < 0 then
    error(string.format("--max-bad-images: '%s' is not a count (3) or a share (5%% or 0.05)", spec), 0)
  end
  if pct then return math.floor(total * x / 100) end
  if x < 1 and x ~= 0 then return math.floor(total * x) end
  return math.floor(x)
end

-- Every image that could not be read was skipped by name; more than --max-bad-images of
-- them stop the run with a summary (a folder of scraped files that are mostly broken).
local function check_bad_images(opt, bad, total)
  if #bad == 0 then return end
  local limit = M.bad_image_limit(opt.max_bad_images, total)
  local shown = {}
  for i = 1, math.min(5, #bad) do shown[i] = bad[i] end
  if #bad > limit then
    error(string.format('%d of %d images could not be read, more than --max-bad-images %s allows (%d): %s%s',
      #bad, total, tostring(opt.max_bad_images or '5%'), limit, table.concat(shown, '; '),
      #bad > 5 and string.format('; and %d more', #bad - 5) or ''), 0)
  end
  log(opt, 'Skipped %d of %d images that could not be read (--max-bad-images allows %d), e.g. %s',
    #bad, total, limit, shown[1])
end

-- Inputs for the model: images for a trainable encoder, else cached features, or for a
-- fine-tuned VGG16 its frozen prefix's cached maps (N, S', S', C) (with dist, every rank
-- calls this alike and encodes its share of the missing images: features.extract).
-- Returns inputs (N, ...), ids of its rows, row index {id -> row}.
function M.prepare_inputs(opt, data, enc, enc_name, dist)
  local all = {}
  local seen = {}
  for _, list in ipairs({data.train, data.val, data.test}) do
    for _, id in ipairs(list) do
      if not seen[id] then seen[id] = true; all[#all + 1] = id end
    end
  end
  local X, ids
  local t0 = util.now()
  if M.inputs_kind(enc) == 'images' then
    local bad
    X, ids, bad = M.load_images(opt, data, all, enc:config().input_size)
    log(opt, 'Loaded %d images (%dx%d) in %.1f s', #ids, X:size(2), X:size(3), util.now() - t0)
    check_bad_images(opt, bad, #all)
  else
    local images = {}
    for _, id in ipairs(all) do images[id] = M.image_path(data, id) or paths.join(data.images_dir, id .. '.jpg') end
    -- fine-tuned: the prefix's maps, in a file named after the layer they come from
    local fenc = enc.prefix or enc
    local what = enc.prefix and (enc_name .. '_' .. enc.prefix.cfg.output) or enc_name
    local cache = opt.features or paths.join(opt.out, 'img_features_' .. what .. '.h5')
    local info
    ids, X, info = luacap.features.extract{encoder = fenc, images = images, ids = all, out = cache,
      batch = opt.extract_batch or 16, resize = 'nearest', progress = not opt.quiet, dist = dist,
      float16 = opt.feature_dtype == 'float16'}
    if enc.prefix and #ids > 0 then X = X:reshape(X:size(1), unpack(enc.prefix.out_shape)) end
    data.features_info = info
    log(opt, 'Features (%s): %d reused from %s, %d computed in %.1f s, %d failed', what, info.reused,
      cache, info.computed, util.now() - t0, #info.failed)
    local bad = {}
    for i, f in ipairs(info.failed) do bad[i] = f.id .. ': ' .. f.message end
    check_bad_images(opt, bad, #all)
  end
  local index = {}
  for i, id in ipairs(ids) do index[id] = i end
  local function keep(list)
    local out = {}
    for _, id in ipairs(list) do if index[id] then out[#out + 1] = id end end
    return out
  end
  data.train, data.val, data.test = keep(data.train), keep(data.val), keep(data.test)
  return X, ids, index
end

-- Reference token lists of a test image (the notebook strips startseq/endseq, splits).
function M.references(data, id)
  local refs = {}
  for i, c in ipairs(data.captions[id]) do
    local words = util.words(c)
    if words[1] == 'startseq' then table.remove(words, 1) end
    if words[#words] == 'endseq' then table.remove(words) end
    refs[i] = words
  end
  return refs
end

-- The most frequent cleaned training caption (ties: first seen), the blind baseline.
function M.most_frequent_caption(data)
  local count, first, best, best_n = {}, {}, nil, 0
  local k = 0
  for _, id in ipairs(data.train) do
    for _, c in ipairs(data.captions[id]) do
      local s = c:gsub('^startseq ?', ''):gsub(' ?endseq$', '')
      k = k + 1
      count[s] = (count[s] or 0) + 1
      first[s] = first[s] or k
      if count[s] > best_n or (count[s] == best_n and first[s] < first[best]) then
        best, best_n = s, count[s]
      end
    end
  end
  return best or ''
end

-- The scores printed and shown on the results page, in this order.
M.METRICS = {'BLEU-1', 'BLEU-2', 'BLEU-3', 'BLEU-4', 'coco BLEU-4', 'METEOR', 'CIDEr-D', 'ROUGE-L'}

-- Scores hypotheses (strings) against the test references: BLEU-1..4, METEOR (exact +
-- Porter stem, no WordNet), CIDEr-D, ROUGE-L.
function M.score(data, ids, hyps)
  local refs, hs = {}, {}
  for i, id in ipairs(ids) do
    refs[i] = M.references(data, id)
    hs[i] = util.words(hyps[i])
  end
  return luacap.metrics.all(refs, hs)
end

-- Never lets a failure to draw stop a run that has trained: reports it and goes on.
-- A full disk is the exception: it stops the run (nothing else could be written either).
local function try_draw(opt, what, fn, ...)
  local ok, res, err = pcall(fn, ...)
  if not ok or not res then
    local msg = tostring(ok and err or res)
    if util.is_disk_full(msg) then
      error(string.format('disk full while writing %s (%s); free space and run again with --resume',
        what, msg), 0)
    end
    log(opt, 'Could not write %s: %s', what, msg)
    return false
  end
  return true
end

-- Writes a text output atomically or stops the run with a message that names the file
-- (a full disk says that the previous file is intact and how to go on).
local function write_output(path, s)
  local ok, err, code = util.write_file(path, s)
  if not ok then error(util.write_error(path, err, code), 0) end
end

-- Removes what a killed run leaves behind: temporary files of atomic writes
-- ('<name>.tmp', HDF5's '<name>.tmp.<pid>'), which never replaced their target.
function M.remove_stale_temporaries(opt, dirs)
  for _, d in ipairs(dirs) do
    for _, name in ipairs(paths.list_dir(d) or {}) do
      if name:match('%.tmp$') or name:match('%.tmp%.%d+$') then
        os.remove(paths.join(d, name))
        log(opt, 'Removed %s, left by an interrupted write', paths.join(d, name))
      end
    end
  end
end

-- Self-critical training after cross-entropy (luacap.train.scst): the test split's greedy
-- scores before it, then opt.scst_epochs epochs on the training images with CIDEr-D
-- rewards (df from the training references), the weights saved as models/scst.h5.
-- With --beam K > 1 the cross-entropy model's beam captions of the test split too (beam
-- search is compared with greedy decoding on both models).
-- Returns {before = metrics, epochs =, baseline =, samples =, lr =, reward = {..}, ...},
-- and the cross-entropy model's test captions {greedy = {..}, beam = {..} or nil}.
-- With dist (--distributed) every rank trains its share of each batch (scst.run's dist)
-- and decodes its share of the test split (Xtest), which shared_decode gathers.
function M.run_scst(opt, data, model, enc, X, index, Xtest, test_ids, dirs, save, dist, shared_decode)
  local decode = require 'luacap.eval.decode'
  local frozen = M.row_encoder(enc)
  local before_preds = shared_decode(function()
    return decode.greedy(model, Xtest, data.tok, {batch = opt.decode_batch, encoder = frozen})
  end)
  local before = M.score(data, test_ids, before_preds)
  local before_beam
  if (opt.beam or 0) > 1 then
    before_beam = shared_decode(function()
      return decode.beam(model, Xtest, data.tok, {beam = opt.beam, batch = opt.decode_batch,
        encoder = frozen, length_penalty = opt.length_penalty, block_ngram = opt.block_ngram})
    end)
  end
  local refs = {}
  for i, id in ipairs(data.train) do refs[i] = M.references(data, id) end
  local lr = opt.scst_lr or 5e-5
  local hist = require('luacap.train.scst').run{model = model, encoder = frozen, inputs = X,
    images = M.rows_of(index, data.train), references = refs, vocab = decode.vocab_of(data.tok),
    epochs = opt.scst_epochs, k = opt.scst_samples or 5, baseline = opt.scst_baseline or 'greedy',
    batch_images = opt.scst_batch or 16, optimizer = luacap.optim.Adam{lr = lr},
    clip_norm = opt.clip_norm, verbose = opt.quiet and 0 or 1, dist = dist}
  save(paths.join(dirs.models, 'scst.h5'))
  return {before = before, epochs = opt.scst_epochs, baseline = opt.scst_baseline or 'greedy',
    samples = opt.scst_samples or 5, lr = lr, reward = hist.reward, baseline_reward = hist.baseline,
    greedy_reward = hist.greedy[1] and hist.greedy or nil, loss = hist.loss},
    {greedy = before_preds, beam = before_beam}
end

-- Where a spatial-attention model (sat) looked for each word of the first ten test
-- captions: results/attention/<id>.png (report/attention.lua), linked from the results page
-- (items[i].attention) and qualitative_examples.json. Xtest's first rows are items' first
-- images (rank 0's share under --distributed). Nothing for models without decode_alphas.
function M.draw_attention(opt, model, enc, data, Xtest, items, dirs, qual)
  if not model.decode_alphas then return end
  local n = math.min(10, #items, Xtest:size(1))
  if n == 0 then return end
  local decode = require 'luacap.eval.decode'
  local wi = data.tok.word_index
  local ids_lists, words = {}, {}
  for i = 1, n do
    ids_lists[i], words[i] = {}, {}
    for w in tostring(items[i].pred):gmatch('%S+') do
      if wi[w] then ids_lists[i][#ids_lists[i] + 1], words[i][#words[i] + 1] = wi[w], w end
    end
  end
  local maps = decode.attention(model, Xtest:narrow(1, n), data.tok, ids_lists,
    {batch = opt.decode_batch, encoder = M.row_encoder(enc)})
  local adir = paths.join(dirs.results, 'attention')
  local ok, err = paths.mkdir_p(adir)
  if not ok then
    log(opt, 'Could not write the attention maps: %s', tostring(err))
    return
  end
  for i = 1, n do
    if #words[i] > 0 and items[i].image then
      local name = tostring(items[i].id):gsub('[^%w%-_.]', '_') .. '.png'
      local path = paths.join(adir, name)
      if try_draw(opt, 'the attention map of ' .. tostring(items[i].id), luacap.report.attention, path,
          items[i].image, words[i], maps[i]) then
        items[i].attention = path
        qual[i].attention = 'attention/' .. name
      end
    end
  end
end

-- run(opt): the whole job; returns a summary table (metrics, history, paths).
function M.run(opt)
  local t_start = util.now()
  -- --distributed (docs/distributed.md): every rank runs this function alike; rank 0 alone
  -- prints, writes files, checkpoints and scores; `first(fn)` runs fn on rank 0, then on
  -- the others once rank 0 is done (files rank 0 makes that the others read).
  local dist = opt.distributed and require('luacap.train.distributed').from_options(opt) or nil
  local rank0 = not dist or dist.rank == 0
  local function first(fn)
    if not dist then return fn() end
    if dist.rank == 0 then
      local r = {fn()}
      dist.mpi.barrier()
      return unpack(r)
    end
    dist.mpi.barrier()
    return fn()
  end
  luacap.seed(opt.seed)
  if opt.threads then luacap.set_threads(opt.threads) end
  opt.out = opt.out or paths.output_dir()
  opt.resize = opt.resize or 'bilinear'    -- how a trainable encoder's images are resized
  local dirs, derr = paths.output_dirs(opt.out)
  if not dirs then error('cannot create the output folders: ' .. tostring(derr), 0) end
  if rank0 then
    M.remove_stale_temporaries(opt, {dirs.root, dirs.models, dirs.results,
      paths.join(dirs.results, 'images'), opt.features and (opt.features:match('^(.*)/[^/]*$') or '.') or nil})
  end
  local dir = opt.data or first(function() return M.ensure_shapes(opt) end)
  luacap.seed(opt.seed)
  local data = M.load_data(opt, dir)
  local enc, enc_name = M.choose_encoder(opt)
  if enc.tail then
    log(opt, 'Fine-tuning VGG16 from %s to %s: %d parameters at lr %g; the maps (%s) of the ' ..
      'frozen layers up to %s are cached', enc.prefix.cfg.fine_tune_from, enc.cfg.output,
      enc.tail:num_params(), opt.cnn_lr or opt.lr or 0.001, table.concat(enc.prefix.out_shape, ', '),
      enc.prefix.cfg.output)
  end
  -- a frozen encoder's cache (a fine-tuned one's prefix maps) is extracted by every rank,
  -- each its share; rank 0 writes it
  local X, _, index
  if dist and M.inputs_kind(enc) ~= 'images' then
    X, _, index = M.prepare_inputs(opt, data, enc, enc_name, dist)
  else
    X, _, index = first(function() return M.prepare_inputs(opt, data, enc, enc_name) end)
  end
  local max_len = data.max_len
  local train_p = pairs_.build(data.train, data.captions, data.tok, max_len)
  local val_p = pairs_.build(data.val, data.captions, data.tok, max_len)
  log(opt, 'Pairs: %d for training, %d for validation', train_p.n, val_p.n)

  local model = require('luacap.models').build{model = opt.model or 'seed',
    vocab_size = data.tok:vocab_size(), max_len = max_len, feat_dim = enc.out_dim,
    img_dense = opt.img_dense, embed_dim = opt.embed_dim, units = opt.units,
    dec_units = opt.dec_units, dec_dense = opt.dec_dense, dropout = opt.dropout,
    decoder = opt.decoder, regions = enc.regions, att_dim = opt.att_dim, att_lambda = opt.att_lambda}
  if not opt.quiet then model:summary(function(s) io.stderr:write(s, '\n') end) end
  -- caption-level models (sat) train on one item per whole caption (teacher forcing)
  local source = model.caption_level and pairs_.caption_source or M.source
  local train_src = source(train_p, M.rows_of(index, data.train))
  local val_src = source(val_p, M.rows_of(index, data.val))
  local optimizer = M.optimizer(opt)
  local ckpt = require 'luacap.train.checkpoint'
  local cbs = require 'luacap.train.callbacks'
  local best_path = paths.join(dirs.models, 'best.h5')
  local last_path = paths.join(dirs.models, 'last.h5')
  local final_path = paths.join(dirs.models, 'final.h5')
  local history_path = paths.join(dirs.results, 'train_history.json')
  local list = {
    cbs.ModelCheckpoint{path = best_path, monitor = 'val_loss', save_best_only = true,
      verbose = opt.quiet and 0 or 1},
    cbs.ReduceLROnPlateau{monitor = 'val_loss', factor = opt.lr_factor, patience = opt.lr_patience,
      min_delta = 1e-4, verbose = opt.quiet and 0 or 1},
    cbs.EarlyStopping{monitor = 'val_loss', patience = opt.es_patience, restore_best_weights = true,
      verbose = opt.quiet and 0 or 1},
    cbs.CSVLogger{path = rank0 and paths.join(dirs.results, 'training_log.csv') or '/dev/null',
      append = opt.resume and true or false},
  }
  -- What fit trains, and the same list's values in a model file loaded with ckpt.load.
  local fit_mod = luacap.train.fit
  local function trained_params() return fit_mod.trained_params(model, M.row_encoder(enc)) end
  local function weights_of(b)
    local w = {}
    local b_enc = b.encoder and M.row_encoder(b.encoder) or nil
    for i, p in ipairs(fit_mod.trained_params(b.model, b_enc)) do w[i] = p.value end
    return w
  end
  -- b, a bundle loaded from path, into the trained parameters; what: the error's start
  local function load_weights(b, path, what)
    local w, params = weights_of(b), trained_params()
    if #w ~= #params then
      error(string.format('%s: %s holds %d trained tensors, this run trains %d (another model ' ..
        'or encoder setting)', what, path, #w, #params), 0)
    end
    for i, p in ipairs(params) do p.value:copy(w[i]) end
  end
  local function bundle(extra)
    local b = {model = model, encoder = enc, tokenizer = data.tok,
      meta = {dataset_dir = dir, resize = M.inputs_kind(enc) == 'images' and opt.resize or 'nearest'}}
    for k, v in pairs(extra or {}) do b[k] = v end
    return b
  end
  -- A checkpoint that cannot be written stops the run: the previous file is intact (the
  -- write goes to a temporary file renamed only when complete).
  local function save(path, extra)
    if not rank0 then return end
    local ok, err = ckpt.save(path, bundle(extra))
    if not ok then error(util.write_error(path, err), 0) end
  end
  -- Resuming: weights, optimizer, callbacks, history, data position and the generator.
  local initial_epoch, history, cursor, val_cursor = 0, nil, nil, nil
  if opt.resume then
    local b, err = ckpt.load(last_path)
    if not b then error('cannot resume: ' .. tostring(err), 0) end
    local ts = b.train_state
    if not ts then error('cannot resume: ' .. last_path .. ' holds no training state', 0) end
    if data.tok:to_json() ~= b.tokenizer:to_json() then
      error('cannot resume: the vocabulary of ' .. last_path .. ' differs from this dataset\'s', 0)
    end
    -- dropout masks are keyed by the seed (nn/Dropout.lua), which the saved generator state
    -- does not carry: another --seed would quietly make another run
    if ts.seed ~= nil and ts.seed ~= opt.seed then
      error(string.format('cannot resume: %s was trained with --seed %s, this run has --seed %s ' ..
        '(resume with the same command plus --resume)', last_path, tostring(ts.seed), tostring(opt.seed)), 0)
    end
    load_weights(b, last_path, 'cannot resume')
    assert(ckpt.restore_optimizer(b, optimizer, trained_params()))
    for i, cb in ipairs(list) do
      if cb.set_state and ts.callbacks[i] then cb.set_state(ts.callbacks[i]) end
    end
    -- EarlyStopping's best weights are those of best.h5 (the same monitor, the same strict
    -- improvement), so a run resumed after its best epoch can still restore them.
    local es = list[3]
    if es.restore_best_weights and paths.is_file(best_path) then
      local best = ckpt.load(best_path)
      if best then es.best_weights = weights_of(best) end
    end
    initial_epoch, history = ts.epoch, ts.history
    cursor, val_cursor = ts.cursor, ts.val_cursor
    luacap.core.set_rng_state(ts.rng)
    log(opt, 'Resuming after epoch %d from %s', initial_epoch, last_path)
    if ts.stopped then
      -- the run had stopped (early stopping) and was cut off after: train no further
      log(opt, 'Training had stopped after epoch %d (%s): finishing the run', initial_epoch, ts.stopped)
      initial_epoch = math.max(initial_epoch, opt.epochs)
    end
  end
  for _, cb in ipairs(opt.callbacks or {}) do list[#list + 1] = cb end

  local hist, state = fit_mod.fit{
    model = model, encoder = M.row_encoder(enc), inputs = X, train = train_src,
    val = val_src,
    epochs = opt.epochs, batch_size = opt.batch_size, optimizer = optimizer, callbacks = list,
    steps_per_epoch = opt.steps_per_epoch, validation_steps = opt.validation_steps,
    initial_epoch = initial_epoch, history = history, cursor = cursor, val_cursor = val_cursor,
    verbose = opt.quiet and 0 or 1, save = function(path) save(path) end, clip_norm = opt.clip_norm,
    catch_sigint = opt.catch_sigint,
    group_images = opt.group_images, shuffle = not opt.no_shuffle,
    share_image_branch = opt.share_image_branch,
    dist = dist, accumulate = opt.accumulate, bucket_mb = opt.bucket_mb,
    on_epoch_saved = function(st, cur, vcur)
      -- after every epoch: a resumable checkpoint and the history so far
      if not rank0 then return end
      local cb_states = {}
      for i, cb in ipairs(list) do cb_states[i] = cb.get_state and cb.get_state() or false end
      save(last_path, {optimizer = optimizer, train_state = {
        epoch = st.epoch, history = st.history, callbacks = cb_states,
        cursor = {pos = cur.pos, order = cur.order}, val_cursor = {pos = vcur.pos},
        rng = luacap.core.rng_state(), seed = opt.seed, stopped = st.stop and st.stop_reason or nil}})
      write_output(history_path, util.json_pretty(st.history))
    end,
  }
  if state.interrupted then
    local done = state.epoch and state.epoch - 1 or initial_epoch
    local kept = paths.is_file(last_path) and string.format(
      '%s holds epoch %d; run the same command again with --resume to go on from there', last_path, done)
      or 'no epoch had finished, so nothing was saved; run the same command again to start over'
    local e = {exit_code = 130, message = string.format(
      'interrupted (Ctrl-C) during epoch %d: that epoch is abandoned and nothing of it was written; %s',
      state.epoch or done + 1, kept)}
    error(setmetatable(e, {__tostring = function(x) return x.message end}), 0)
  end
  if state.failed then
    -- no final.h5, no captions from broken weights: say what happened and what is kept
    local saved_best = list[1].best ~= math.huge and list[1].best == list[1].best
    local kept = saved_best and (' The last good checkpoints are ' .. best_path ..
      ' and ' .. last_path .. '.') or ' No epoch finished, so nothing was saved.'
    error('training failed: ' .. state.stop_reason .. '.' .. kept ..
      ' Try a lower --lr or --clip-norm.', 0)
  end
  save(final_path)
  if rank0 then
    write_output(history_path, util.json_pretty(hist))
    try_draw(opt, 'the loss curve', luacap.report.loss_curve,
      paths.join(dirs.results, 'train_val_loss_curve.png'), hist)
  end
  if dist then dist.mpi.barrier() end   -- best.h5 and final.h5 are written

  -- Captions of the test split, with the best checkpoint's weights (as best.h5 holds them).
  if opt.decode_with ~= 'final' and paths.is_file(best_path) then
    local b = ckpt.load(best_path)
    if b then load_weights(b, best_path, 'cannot decode with the best weights') end
  end
  local test_ids = data.test
  if opt.max_test and #test_ids > opt.max_test then
    test_ids = {unpack(test_ids, 1, opt.max_test)}
  end
  -- with --distributed each rank decodes its contiguous share; every rank gets all
  local my_ids = dist and dist:part(test_ids) or test_ids
  local Xtest = luacap.zeros((function() local s = X:shape(); s[1] = math.max(#my_ids, 1); return s end)())
  if #my_ids > 0 then luacap.core.gather(Xtest:narrow(1, #my_ids), X, M.rows_of(index, my_ids)) end
  Xtest = Xtest:narrow(1, math.max(#my_ids, 1))
  local function shared_decode(fn)
    local p = #my_ids > 0 and fn() or {}
    return dist and dist:gather(p) or p
  end
  local scst_info, scst_preds
  if (opt.scst_epochs or 0) > 0 then
    scst_info, scst_preds = M.run_scst(opt, data, model, enc, X, index, Xtest, test_ids, dirs, save,
      dist, shared_decode)
  end
  local t0 = util.now()
  local decode = require 'luacap.eval.decode'
  local preds = shared_decode(function() return decode.greedy(model, Xtest, data.tok, {batch = opt.decode_batch,
    encoder = M.row_encoder(enc)}) end)
  local decode_s = util.now() - t0
  log(opt, 'Decoded %d test images in %.1f s (%.1f ms per image)', #test_ids, decode_s,
    1000 * decode_s / math.max(#test_ids, 1))
  local metrics = M.score(data, test_ids, preds)
  local baseline_caption = M.most_frequent_caption(data)
  local base_h = {}
  for i = 1, #test_ids do base_h[i] = baseline_caption end
  local baseline = M.score(data, test_ids, base_h)
  local out_metrics = {}
  for k, v in pairs(metrics) do out_metrics[k] = v end
  out_metrics.baseline = {method = 'most frequent training caption for every image',
    caption = baseline_caption}
  for k, v in pairs(baseline) do out_metrics.baseline[k] = v end
  out_metrics.test_images = #test_ids
  -- the built-in shapes data: is each caption true of its scene (eval/semantic.lua)?
  local semantic = require 'luacap.eval.semantic'
  local scenes_path = paths.join(dir, 'shapes.json')
  local scenes, scenes_err
  if paths.is_file(scenes_path) then scenes, scenes_err = semantic.scenes(scenes_path) end
  if scenes_err then
    log(opt, 'Semantic accuracy skipped: %s', scenes_err)
    out_metrics.semantic_error = scenes_err
  end
  local function semantic_of(p) return scenes and semantic.score(scenes, test_ids, p) end
  out_metrics.semantic = semantic_of(preds)
  if scst_info then
    scst_info.after = metrics
    out_metrics.scst = scst_info
    log(opt, 'SCST (%d epochs): test CIDEr-D %.4f before, %.4f after; BLEU-4 %.4f before, %.4f after',
      scst_info.epochs, scst_info.before['CIDEr-D'], metrics['CIDEr-D'], scst_info.before['BLEU-4'],
      metrics['BLEU-4'])
    scst_info.before_semantic = semantic_of(scst_preds.greedy)
    if scst_preds.beam then
      -- the cross-entropy model's beam search beside its greedy captions
      local bb = M.score(data, test_ids, scst_preds.beam)
      bb.beam, bb.semantic = opt.beam, semantic_of(scst_preds.beam)
      bb.length_penalty = opt.length_penalty or decode.LENGTH_PENALTY
      scst_info.before_beam = bb
      local g, b, gs = scst_info.before, bb, scst_info.before_semantic
      log(opt, 'Before SCST, beam search (width %d): BLEU-4 %.4f, CIDEr-D %.4f%s (greedy %.4f, %.4f%s)',
        opt.beam, b['BLEU-4'], b['CIDEr-D'],
        b.semantic and string.format(', %.1f%% entirely true', 100 * b.semantic.entirely_true) or '',
        g['BLEU-4'], g['CIDEr-D'], gs and string.format(', %.1f%%', 100 * gs.entirely_true) or '')
    end
  end
  -- beyond the notebook: the same test split with beam search
  if (opt.beam or 0) > 1 then
    local tb = util.now()
    local beam_preds = shared_decode(function() return decode.beam(model, Xtest, data.tok,
      {beam = opt.beam, batch = opt.decode_batch, encoder = M.row_encoder(enc),
       length_penalty = opt.length_penalty, block_ngram = opt.block_ngram}) end)
    local bm = M.score(data, test_ids, beam_preds)
    bm.beam = opt.beam
    bm.length_penalty = opt.length_penalty or decode.LENGTH_PENALTY
    bm.block_ngram = opt.block_ngram or 0
    bm.semantic = semantic_of(beam_preds)
    out_metrics.beam_search = bm
    log(opt, 'Beam search (width %d) in %.1f s: BLEU-4 %.4f, CIDEr-D %.4f%s (greedy %.4f, %.4f%s)',
      opt.beam, util.now() - tb, bm['BLEU-4'], bm['CIDEr-D'],
      bm.semantic and string.format(', %.1f%% entirely true', 100 * bm.semantic.entirely_true) or '',
      metrics['BLEU-4'], metrics['CIDEr-D'],
      out_metrics.semantic and string.format(', %.1f%%', 100 * out_metrics.semantic.entirely_true) or '')
  end
  if not rank0 then    -- the other ranks have decoded their shares; rank 0 writes
    return {metrics = metrics, baseline = baseline, history = hist, preds = preds, test_ids = test_ids,
      state = state, dirs = dirs, data = data, model = model, encoder = enc, rank = dist.rank}
  end
  write_output(paths.join(dirs.results, 'bleu_metrics.json'), util.json_pretty(out_metrics))
  for _, k in ipairs(M.METRICS) do
    log(opt, '%-8s %.4f   (baseline %.4f)', k, metrics[k], baseline[k])
  end
  local sem = out_metrics.semantic
  if sem then
    log(opt, 'Semantic: %.1f%% of test captions entirely true; per object precision %.4f, recall %.4f',
      100 * sem.entirely_true, sem.precision, sem.recall)
  end

  -- Pictures and pages: the first ten test images, then every test image in the HTML.
  local items, qual = {}, {}
  for i, id in ipairs(test_ids) do
    local gt = data.captions[id][1]:gsub('^startseq ?', ''):gsub(' ?endseq$', '')
    local refs = {}
    for j, r in ipairs(M.references(data, id)) do refs[j] = table.concat(r, ' ') end
    items[i] = {id = id, image = M.image_path(data, id), pred = preds[i], gt = gt, refs = refs}
    if i <= 10 then qual[i] = {image_id = id, predicted = preds[i], ground_truth = gt} end
  end
  M.draw_attention(opt, model, enc, data, Xtest, items, dirs, qual)
  write_output(paths.join(dirs.results, 'qualitative_examples.json'), util.json_pretty(qual))
  try_draw(opt, 'the qualitative examples', luacap.report.caption_grid,
    paths.join(dirs.results, 'qualitative_examples.png'), {unpack(items, 1, math.min(10, #items))})
  -- the page's table: greedy scores, then the blind baseline's and beam search's
  local rows = {}
  local names = M.METRICS
  for _, k in ipairs(names) do rows[#rows + 1] = {k, metrics[k]} end
  for _, k in ipairs(names) do rows[#rows + 1] = {k .. ' (baseline: most frequent caption)', baseline[k]} end
  if sem then
    rows[#rows + 1] = {'captions entirely true (shapes scenes)', sem.entirely_true}
    rows[#rows + 1] = {'object precision (shapes scenes)', sem.precision}
    rows[#rows + 1] = {'object recall (shapes scenes)', sem.recall}
  end
  if scst_info then
    for _, k in ipairs(names) do rows[#rows + 1] = {k .. ' (before SCST)', scst_info.before[k]} end
    if scst_info.before_beam then
      for _, k in ipairs(names) do
        rows[#rows + 1] = {string.format('%s (before SCST, beam search, width %d)', k, opt.beam),
          scst_info.before_beam[k]}
      end
    end
  end
  if out_metrics.beam_search then
    for _, k in ipairs(names) do
      rows[#rows + 1] = {string.format('%s (beam search, width %d)', k, opt.beam), out_metrics.beam_search[k]}
    end
  end
  try_draw(opt, 'the results page', luacap.report.html, dirs.results, {title = 'luacap results',
    metrics = rows, loss_curve = paths.join(dirs.results, 'train_val_loss_curve.png'), items = items})
  log(opt, 'Done in %.1f s. Outputs in %s', util.now() - t_start, dirs.root)
  return {metrics = metrics, baseline = baseline, history = hist, preds = preds, test_ids = test_ids,
    state = state, dirs = dirs, data = data, model = model, encoder = enc}
end

return M
