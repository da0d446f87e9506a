-- The train command: examples/train.lua and the installed luacap-train both call main().
-- It parses the options (each with a default and a help string), prints them, and runs
-- the notebook's whole job through luacap.pipeline.run(opt).
-- Not the pipeline itself (luacap.pipeline) and not a library API: it prints and exits.
local cli_args = require 'luacap.cli.args'

local M = {}

-- parser(prog): the argparse parser; prog names the command in usage and messages.
function M.parser(prog)
  local argparse = require 'argparse'
  local parser = argparse(prog, 'Train the notebook\'s captioner and caption the test split.')
  parser:option('--data', 'Dataset folder with Images/ and captions.txt (Flickr8k layout). ' ..
    'Default: the synthetic shapes dataset, generated on first use in data/shapes.')
  parser:option('--out', 'Output folder (models/ and results/ are created). Default: $A5_OUTPUT_DIR or ./outputs.')
  parser:option('--encoder',
    'Image encoder: auto (vgg16 when its weights are present, else smallcnn), vgg16 or smallcnn.', 'auto')
  parser:option('--vgg16-weights', 'Keras VGG16 weights file.',
    'data/weights/vgg16_weights_tf_dim_ordering_tf_kernels.h5')
  parser:option('--epochs', 'Epochs (an epoch is one full pass over the training pairs).', '50')
    :convert(cli_args.int_at_least(1))
  parser:option('--batch-size', 'Pairs per batch.', '32'):convert(cli_args.int_at_least(1))
  parser:option('--accumulate', 'Gradient accumulation: each update on this many batches of --batch-size ' ..
    '(the same update as one batch K times as big).', '1'):convert(cli_args.int_at_least(1))
  parser:option('--lr', 'Adam learning rate.', '0.001'):convert(cli_args.positive)
  parser:option('--fine-tune-from', 'Fine-tune VGG16 from this block (block1 .. block5) or layer ' ..
    '(e.g. block5_conv2) to its output: those layers train (at --cnn-lr), the earlier ones stay ' ..
    'frozen and their output maps are cached (docs/models.md, "Fine-tuning VGG16").'):argname('<NAME>')
  parser:option('--cnn-lr', 'Adam learning rate of the trained encoder\'s parameters (the ' ..
    'fine-tuned VGG16 blocks, or the small CNN); ReduceLROnPlateau lowers it with --lr. ' ..
    'Default: --lr.'):convert(cli_args.positive)
  parser:option('--seed', 'Seed of the one random generator.', '1'):convert(tonumber)
  parser:option('--threads', 'Threads for OpenBLAS and the parallel loops.'):convert(tonumber)
  parser:option('--steps-per-epoch',
    'Batches per epoch (the notebook\'s shorter epochs); default: a full pass.'):convert(tonumber)
  parser:option('--validation-steps', 'Validation batches per epoch; default: all validation pairs.'):convert(tonumber)
  parser:option('--embed-dim', 'Embedding width.', '300'):convert(tonumber)
  parser:option('--units', 'LSTM units per direction of both BiLSTMs (decoder: twice this).', '256'):convert(tonumber)
  parser:option('--model', 'Captioning model: seed (the notebook\'s), transformer or sat ' ..
    '(Show-Attend-Tell over the small CNN\'s last conv map).', 'seed')
  parser:option('--att-dim', 'sat: attention width A.', '128'):convert(cli_args.int_at_least(1))
  parser:option('--att-lambda', 'sat: weight of the doubly stochastic attention penalty.', '1')
    :convert(tonumber)
  parser:option('--decoder', 'Decoder RNN: lstm (the notebook\'s) or gru.', 'lstm')
  parser:option('--img-dense', 'Width of the Dense layer on the image features.', '512'):convert(tonumber)
  parser:option('--dec-dense', 'Width of the Dense layer after the decoder.', '512'):convert(tonumber)
  parser:option('--dropout', 'Rate of the three Dropout layers.', '0.5'):convert(tonumber)
  parser:option('--feat-dim', 'Feature width of the small CNN.', '256'):convert(tonumber)
  parser:option('--image-size', 'Input size of the small CNN (images are resized to it).', '64'):convert(tonumber)
  parser:option('--cnn-channels', 'Channels of the small CNN\'s conv blocks, comma-separated.', '16,32,64')
    :convert(function(s)
      local t = {}
      for c in s:gmatch('[^,]+') do
        local n = tonumber(c)
        if not n or n < 1 or n % 1 ~= 0 then return nil, 'expected positive integers like 16,32,64' end
        t[#t + 1] = n
      end
      if #t == 0 then return nil, 'expected positive integers like 16,32,64' end
      return t
    end)
  parser:option('--lr-patience', 'ReduceLROnPlateau patience (epochs).', '3'):convert(tonumber)
  parser:option('--lr-factor', 'ReduceLROnPlateau factor.', '0.5'):convert(tonumber)
  parser:option('--es-patience', 'EarlyStopping patience (epochs).', '6'):convert(tonumber)
  parser:option('--beam',
    'Also caption the test split with beam search of this width and score it (0: off).', '3'):convert(tonumber)
  cli_args.beam_options(parser)
  parser:option('--decode-batch', 'Images decoded together.', '64'):convert(cli_args.int_at_least(1))
  parser:option('--decode-with', 'Weights for the test captions: best (best.h5) or final.', 'best')
  parser:option('--max-test', 'Caption at most this many test images.'):convert(tonumber)
  parser:option('--n-images', 'Images in the synthetic dataset.', '1000'):convert(tonumber)
  parser:option('--shapes-size', 'Side of the synthetic images in pixels.', '64'):convert(tonumber)
  parser:option('--max-shapes', 'Shapes per synthetic image: 1 to this many (1, 2 or 3).', '3'):convert(tonumber)
  parser:option('--shapes-dir', 'Where the synthetic dataset is generated.', 'data/shapes')
  parser:option('--data-seed', 'Seed of the synthetic dataset.', '1'):convert(tonumber)
  parser:flag('--no-shuffle', 'Keep the notebook generator\'s order (image by image, caption by caption, ' ..
    'prefix by prefix) instead of shuffling the pairs each epoch.')
  parser:option('--group-images', 'Draw each batch from a shuffled group of this many images ' ..
    '(fewer encoder passes per batch); default: pairs shuffled freely.'):convert(tonumber)
  parser:flag('--share-image-branch', 'Seed model: compute the image branch once per image of a ' ..
    'batch (one dropout mask per image) and the caption\'s forward LSTM once per caption; ' ..
    'batches drawn from groups of images (--group-images, default 1).')
  parser:option('--clip-norm', 'Clip the global gradient norm to this (off by default, as Keras).'):convert(tonumber)
  parser:option('--scst-epochs', 'Self-critical training epochs after cross-entropy training ' ..
    '(CIDEr-D reward; 0: off).', '0'):convert(cli_args.int_at_least(0))
  parser:option('--scst-baseline', 'SCST baseline: greedy (the greedy caption\'s reward) or mean ' ..
    '(of the image\'s other samples).', 'greedy'):choices({'greedy', 'mean'})
  parser:option('--scst-samples', 'SCST: captions sampled per image.', '5'):convert(cli_args.int_at_least(1))
  parser:option('--scst-lr', 'SCST: Adam learning rate.', '0.00005'):convert(cli_args.positive)
  parser:option('--scst-batch', 'SCST: images per batch.', '16'):convert(cli_args.int_at_least(1))
  parser:flag('--resume', 'Resume from <out>/models/last.h5 (weights, optimizer, callbacks, data position).')
  parser:flag('--distributed', 'Data-parallel training under mpirun (docs/distributed.md): --batch-size is ' ..
    'the global batch, rank 0 writes every file.')
  parser:option('--bucket-mb', 'With --distributed: MiB of gradients per allreduce bucket; each bucket\'s ' ..
    'allreduce starts while backward still runs.', '8'):convert(cli_args.positive)
  parser:option('--feature-dtype', 'How the feature cache stores a frozen encoder\'s features: ' ..
    'float32, or float16 (half the disk, e.g. for VGG16 conv maps with --model sat).', 'float32')
    :choices({'float32', 'float16'})
  parser:flag('--freeze-encoder', 'Keep the small CNN at its seeded initial weights and cache its ' ..
    'features as vgg16\'s are (a quick run with a feature cache).')
  parser:option('--max-bad-images', 'Stop when more images than this cannot be read (each is skipped by ' ..
    'name): a share (5% or 0.05) or a count (3).', '5%')
  cli_args.limit_options(parser)
  parser:flag('--strict', 'Stop at the first malformed caption line instead of skipping it.')
  parser:flag('--quiet', 'Print only errors.')
  return parser
end

-- options(args) -> opt: argparse's result with '-' in names turned into '_'.
function M.options(args)
  local opt = {}
  for k, v in pairs(args) do opt[k:gsub('-', '_')] = v end
  return opt
end

-- The command line that resumes this run: the same arguments and --resume.
local function resume_command(argv, prog)
  local words = {}
  if arg and arg[0] and arg[0]:match('train%.lua$') then
    local i = -1   -- the interpreter is arg's lowest index (options such as -e chunk above it)
    while arg[i - 1] ~= nil do i = i - 1 end
    words[1], words[2] = arg[i] or 'luajit', arg[0]
  else
    words[1] = prog
  end
  local has = false
  for _, a in ipairs(argv or {}) do
    if a == '--resume' then has = true end
    words[#words + 1] = a:match('^[%w%-_./=,:]+$') and a or ("'" .. a:gsub("'", "'\\''") .. "'")
  end
  if not has then words[#words + 1] = '--resume' end
  return table.concat(words, ' ')
end

-- main(argv[, prog]) -> exit status (0 done, 1 failed with a message on stderr, 130
-- interrupted by Ctrl-C with the command that resumes it).
function M.main(argv, prog)
  prog = prog or 'luacap-train'
  local opt = M.options(M.parser(prog):parse(argv))
  local rank = tonumber(os.getenv('OMPI_COMM_WORLD_RANK') or os.getenv('PMI_RANK') or '0') or 0
  if not opt.quiet and not (opt.distributed and rank > 0) then
    local keys = {}
    for k in pairs(opt) do keys[#keys + 1] = k end
    table.sort(keys)
    io.stderr:write('Options:\n')
    for _, k in ipairs(keys) do io.stderr:write(string.format('  %-16s %s\n', k, cli_args.show(opt[k]))) end
  end
  cli_args.apply_limits(opt)   -- --max-*-bytes, --max-image-pixels: before any file is read
  opt.catch_sigint = true      -- Ctrl-C: the fit loop stops between steps (exit 130)
  local ok, err = xpcall(function() return require('luacap.pipeline').run(opt) end, debug.traceback)
  if not ok and type(err) == 'table' and err.exit_code then
    io.stderr:write(prog, ': ', tostring(err.message), '\n')
    if err.exit_code == 130 and tostring(err.message):find('--resume', 1, true) then
      io.stderr:write('To resume: ', resume_command(argv, prog), '\n')
    end
    return err.exit_code
  end
  if not ok then
    -- errors raised with level 0 are messages for the user; others keep their traceback
    local msg = tostring(err)
    msg = os.getenv('LUACAP_DEBUG') and msg or cli_args.user_message(msg)
    -- one rank's failure ends the whole job (no rank left waiting in a collective)
    if opt.distributed and package.loaded['luacap.mpi'] and package.loaded['luacap.mpi'].initialized() then
      package.loaded['luacap.mpi'].fail(prog .. ': ' .. msg)
    end
    io.stderr:write(prog, ': ', msg, '\n')
    return 1
  end
  if opt.distributed then require('luacap.mpi').finalize() end
  return 0
end

return M
