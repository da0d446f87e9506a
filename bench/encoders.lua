-- bench/encoders.lua: VGG16 to fc2 at 224x224 (random weights): first the accuracy check
-- of the Winograd convolutions (fc2 against the all-direct network, on the spec fixtures'
-- JPEGs and natural-like synthetic images, Glorot- and He-scaled weights), then images/s at
-- batch 1 and 16 at the run's threads and at 1 thread (interleaved), with GFLOP/s by the
-- direct convolution's count and its ratio to the sgemm rate measured in the same run, then
-- the extraction time of Flickr8k's 8,091 images beside PyTorch's (bench/torch/vgg16.py,
-- when $PYTHON, default /usr/bin/python3, has torchvision; LUACAP_BENCH_TORCH=0 skips it).
-- LUACAP_BENCH_LAYERS=1 first times every conv shape with each algorithm.
local luacap = require 'luacap'
local image = require 'luacap.image'
local T = require 'luacap.tensor'
local sgemm = require 'sgemm'

local M = {}

local S = 224
local FLICKR8K = 8091

-- Multiply-add = 2 flops: conv 2*OH*OW*KH*KW*C*OC, dense 2*C*OC, per image.
function M.flops_per_image(enc)
  local side, total = enc.cfg.input_size, 0
  for _, l in ipairs(enc.net.children) do
    if l.KH and l.kernel then
      total = total + 2 * side * side * l.KH * l.KW * l.C * l.OC
    elseif l.__name == 'MaxPool2d' then
      side = side / 2
    elseif l.kernel then
      total = total + 2 * l.C * l.OC
    end
  end
  return total
end

-- A natural-like (H, W, 3) image in 0..255: smooth low-frequency shading, a few flat
-- rectangles with sharp edges (objects), fine noise; seeded by `seed` alone.
function M.natural_image(seed, H, W)
  local state = seed * 2654435761 % 4294967296
  local function rand()      -- a small LCG, so images do not depend on Lua's math.random
    state = (state * 1664525 + 1013904223) % 4294967296
    return state / 4294967296
  end
  local waves, rects = {}, {}
  for k = 1, 6 do
    waves[k] = {0.06 * rand(), 0.06 * rand(), 6.28 * rand(), 10 + 30 * rand()}
  end
  for k = 1, 8 do
    local y0, x0 = math.floor(rand() * H), math.floor(rand() * W)
    rects[k] = {y0, x0, y0 + math.floor(rand() * H / 2), x0 + math.floor(rand() * W / 2),
                {200 * (rand() - 0.5), 200 * (rand() - 0.5), 200 * (rand() - 0.5)}}
  end
  local v, i = {}, 0
  for y = 0, H - 1 do
    for x = 0, W - 1 do
      local shade = 128
      for _, w in ipairs(waves) do shade = shade + w[4] * math.sin(w[1] * x + w[2] * y + w[3]) end
      for c = 1, 3 do
        local val = shade + 15 * (c - 2)
        for _, r in ipairs(rects) do
          if y >= r[1] and y <= r[3] and x >= r[2] and x <= r[4] then val = val + r[5][c] end
        end
        i = i + 1
        v[i] = math.max(0, math.min(255, val + 8 * (rand() - 0.5)))
      end
    end
  end
  return T.tensor(v):reshape(H, W, 3)
end

-- (B, 224, 224, 3) caffe-prepared: the spec fixtures' photo-like JPEGs (16x12, scaled up
-- bilinearly) and natural-like synthetic images.
local function check_batch()
  local imgs = {}
  for _, f in ipairs{'baseline', 'progressive', 'subsampled444'} do
    imgs[#imgs + 1] = image.prepare(assert(image.load('spec/fixtures/images/' .. f .. '.jpg')),
      S, 'bilinear')
  end
  for seed = 1, 3 do imgs[#imgs + 1] = image.prepare(M.natural_image(seed, S, S), S) end
  local X = luacap.zeros(#imgs, S, S, 3)
  for i, t in ipairs(imgs) do X:narrow(i, 1):copy(t) end
  return X
end

-- Worst over images of max |fc2 - fc2_direct| / max |fc2_direct|.
local function rel_err(got, ref)
  local g, r, B, D, worst = got:flat(), ref:flat(), ref:size(1), ref:size(2), 0
  for b = 0, B - 1 do
    local mx, md = 0, 0
    for k = 1, D do
      mx = math.max(mx, math.abs(r[b * D + k]))
      md = math.max(md, math.abs(r[b * D + k] - g[b * D + k]))
    end
    worst = math.max(worst, md / math.max(mx, 1e-30))
  end
  return worst
end

-- fc2 of the default algorithms (and of F(4)/F(2) forced everywhere) against the direct
-- network with the same weights, for Glorot-uniform weights (vgg16.new's) and the same
-- rescaled to He-uniform (which keeps the activations' scale through the 15 relu layers).
function M.check()
  local X = check_batch()
  luacap.seed(1)
  local enc = assert(luacap.encoders.vgg16.new{output = 'fc2'})
  local function run(alg)
    for _, l in ipairs(enc.net.children) do
      if l.KH and l.kernel then
        l.algorithm = (alg == 'auto' or l:winograd_fits()) and alg or 'direct'
      end
    end
    return enc:forward(X):clone()
  end
  for _, scaling in ipairs{'glorot', 'he'} do
    if scaling == 'he' then
      for _, l in ipairs(enc.net.children) do
        if l.kernel then
          local rf = (l.KH or 1) * (l.KW or 1)
          l.kernel:scale(math.sqrt((rf * l.C + rf * l.OC) / (rf * l.C)))
        end
      end
    end
    local ref = run('direct')
    local line = {}
    for _, alg in ipairs{'auto', 'winograd4', 'winograd2'} do
      line[#line + 1] = string.format('%s %.1e', alg, rel_err(run(alg), ref))
    end
    print(string.format('vgg16 fc2 error vs direct, %d images, %s weights (max |d| / max ' ..
      '|fc2| per image, worst): %s', X:size(1), scaling, table.concat(line, ', ')))
  end
  run('auto')
end

-- Per-layer study (LUACAP_BENCH_LAYERS=1): ms of each distinct VGG16 conv shape at batch
-- 1 and 16 with im2col, F(4x4) and F(2x2), interleaved, median of 3 (the measurements
-- behind vgg16's choice of algorithm per layer).
function M.layers()
  local shapes = {{224, 3, 64}, {224, 64, 64}, {112, 64, 128}, {112, 128, 128}, {56, 128, 256},
                  {56, 256, 256}, {28, 256, 512}, {28, 512, 512}, {14, 512, 512}}
  for _, B in ipairs{1, 16} do
    for _, shp in ipairs(shapes) do
      local side, C, OC = shp[1], shp[2], shp[3]
      local x = luacap.normal(0, 1, B, side, side, C)
      local algs, layers, ts = {'direct', 'winograd4', 'winograd2'}, {}, {}
      for i, alg in ipairs(algs) do
        layers[i] = luacap.nn.Conv2d(C, OC, 3, {padding = 'same', activation = 'relu',
          algorithm = alg, trainable = false})
        layers[i]:forward(x)
        ts[i] = {}
      end
      for r = 1, 3 do
        for i = 1, #algs do ts[i][r] = select(2, sgemm.time(function() layers[i]:forward(x) end, 1))[1] end
      end
      local line = {}
      for i, alg in ipairs(algs) do
        line[i] = string.format('%s %7.1f ms', alg, 1e3 * sgemm.median(ts[i]))
      end
      print(string.format('conv %3dx%-3d %3d->%3d batch %2d: %s', side, side, C, OC, B,
        table.concat(line, '  ')))
    end
  end
  collectgarbage()
end

local function fmt_runs(ts)
  local out = {}
  for i, t in ipairs(ts) do out[i] = string.format('%.3f', t) end
  return table.concat(out, ' ')
end

local function range(ts)
  local lo, hi = math.huge, 0
  for _, t in ipairs(ts) do lo, hi = math.min(lo, t), math.max(hi, t) end
  return lo, hi
end

-- Seconds per image of decoding a Flickr-sized (500x375) JPEG and preparing it for VGG16.
local function prepare_seconds()
  local bytes = assert(image.encode(M.natural_image(9, 375, 500), 'jpeg'))
  local s = sgemm.time(function()
    image.prepare(assert(image.decode(bytes)), S)
  end, 9)
  return s
end

-- PyTorch's best images/s at batch 16 (bench/torch/vgg16.py) or nil, why.
local function torch_batch16(threads)
  if os.getenv('LUACAP_BENCH_TORCH') == '0' then return nil, 'LUACAP_BENCH_TORCH=0' end
  local cmd = string.format('OMP_NUM_THREADS=%d LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/' ..
    'openblas-openmp %s bench/torch/vgg16.py --threads %d --batch 16 --runs 2 2>/dev/null',
    threads, os.getenv('PYTHON') or '/usr/bin/python3', threads)
  local p = io.popen(cmd)
  local best
  for line in p:lines() do
    if line:match('"figure": "vgg16_b16"') then
      best = {value = tonumber(line:match('"value": ([%d%.]+)')),
              layout = line:match('"layout": "([%w_]+)"')}
    end
  end
  p:close()
  if not best or not best.value then return nil, 'python3 with torchvision not available' end
  return best
end

function M.run(ctx)
  if os.getenv('LUACAP_BENCH_LAYERS') == '1' then M.layers() end
  M.check()
  luacap.seed(1)
  local enc = assert(luacap.encoders.vgg16.new{output = 'fc2'})
  local flops = M.flops_per_image(enc)
  local threads = luacap.get_threads()
  print(string.format('vgg16 to fc2, random weights: %.2f GFLOP per image (direct count); ' ..
    'block1_conv1 im2col, the other 12 convs Winograd F(4x4,3x3)', flops / 1e9))
  -- the sgemm rate at 1 thread, for the 1-thread ratios
  luacap.set_threads(1)
  local sgemm1 = sgemm.measure(1024, ctx.quick and 3 or 5)
  luacap.set_threads(threads)
  local rates = {[threads] = ctx.sgemm_gflops, [1] = sgemm1}
  print(string.format('sgemm at 1 thread: %.1f GFLOP/s', sgemm1))
  local per = {}
  for _, B in ipairs{1, 16} do
    local rounds = (ctx.quick or B == 16) and 3 or 7
    local x = luacap.normal(0, 60, B, S, S, 3)
    local ts = {[threads] = {}, [1] = {}}
    local order = threads == 1 and {1} or {threads, 1}
    for _ = 1, rounds do            -- interleaved: N threads, 1 thread, N threads, ...
      for _, n in ipairs(order) do
        luacap.set_threads(n)
        local _, all = sgemm.time(function() enc:forward(x) end, 1)
        ts[n][#ts[n] + 1] = all[1]
      end
    end
    luacap.set_threads(threads)
    for _, n in ipairs(order) do
      local s = sgemm.median({unpack(ts[n])})
      local lo, hi = range(ts[n])
      local gf = B * flops / s / 1e9
      per[B .. ':' .. n] = B / s
      print(string.format('vgg16 batch %2d, %d thread%s: %6.2f images/s (%.2f-%.2f), %6.1f ' ..
        'GFLOP/s = %3.0f%% of sgemm (median of %d: %s s)', B, n, n == 1 and ' ' or 's', B / s,
        B / hi, B / lo, gf, 100 * gf / rates[n], rounds, fmt_runs(ts[n])))
    end
  end
  local prep = prepare_seconds()
  local ips = per['16:' .. threads]
  local minutes = FLICKR8K * (1 / ips + prep) / 60
  local torch, why = torch_batch16(threads)
  local theirs = torch and string.format('; PyTorch (%s, batch 16, %.2f images/s, same ' ..
      'decode time): %.1f min', torch.layout, torch.value,
      FLICKR8K * (1 / torch.value + prep) / 60) or ' (PyTorch: ' .. why .. ')'
  print(string.format('VGG16 extraction time for 8,091 images: %.1f min (batch 16, %d ' ..
    'threads, %.2f images/s + %.1f ms/image JPEG decode and resize)%s', minutes, threads, ips,
    prep * 1e3, theirs))
  collectgarbage()
end

return M
