-- bench/torch/compare.lua: the `make bench-torch` driver. Runs luacap's and PyTorch's
-- sides of every suite below in separate processes, interleaved (luacap, torch, luacap,
-- torch, ... for --rounds rounds) at each thread count, and prints each figure's median
-- and range for both sides, the ratio of medians (how many times faster luacap is) and
-- this run's sgemm GFLOP/s per thread count. Not a benchmark itself.
--
-- PyTorch gets its best configuration: LD_LIBRARY_PATH = OpenBLAS' OpenMP flavour (for
-- the torch process only; the system's alternatives stay as they are), OMP_NUM_THREADS=N
-- and --threads N (the script calls torch.set_num_threads(N)).
--
-- A side is a command that takes `--threads N [--quick]` and prints one JSON object per
-- line per figure (other lines are ignored):
--   {"figure": "train_b32", "value": 231.5, "unit": "pairs/s", "better": "higher",
--    "side": "luacap", "threads": 2}
-- figure: a name unique within its suite; better: "higher" (rates, the default) or
-- "lower" (times). Optional "variant": several lines of one figure (e.g. PyTorch layouts)
-- show as separate rows, figure [variant]; the variant "best" is the figure itself, the
-- row compared with the other side.
-- To add a suite, add an entry to SUITES: {name =, luacap = command, torch = command}.
--
-- Usage: luajit bench/torch/compare.lua [--rounds R] [--threads 1,2] [--quick]
--          [--blas-core NAME|cpu] [suite ...]
-- --blas-core runs the whole comparison (both sides and the sgemm yardstick) with
-- OPENBLAS_CORETYPE=NAME (e.g. Haswell, SkylakeX), or with it unset and luacap's own
-- choice off (cpu: OpenBLAS' own pick for this CPU); without it, the environment's
-- setting stands, or luacap's choice (luacap.blas_env), which the PyTorch side inherits. The header names the
-- kernel family in use. (The command re-runs itself under that environment.)
local opt = {rounds = 3, threads = {1, 2}, quick = false, only = {}}
local i = 1
while i <= #arg do
  local a = arg[i]
  if a == '--rounds' then
    opt.rounds = assert(tonumber(arg[i + 1]), '--rounds needs a number'); i = i + 1
  elseif a == '--threads' then
    opt.threads = {}
    for n in arg[i + 1]:gmatch('[^,]+') do opt.threads[#opt.threads + 1] = assert(tonumber(n)) end
    i = i + 1
  elseif a == '--quick' then
    opt.quick = true
  elseif a == '--blas-core' then
    opt.blas_core = assert(arg[i + 1], '--blas-core needs a name (or cpu)'); i = i + 1
  else
    opt.only[a] = true
  end
  i = i + 1
end


-- --blas-core: the same command again under the chosen OPENBLAS_CORETYPE (it must be in the
-- environment before OpenBLAS loads, in this process and in every side's)
if opt.blas_core and os.getenv('LUACAP_BENCH_BLAS_CORE') ~= opt.blas_core then
  if not opt.blas_core:match('^[%w_]+$') then error('--blas-core: not a core name: ' .. opt.blas_core) end
  local words = {}
  for k = 1, #arg do words[k] = "'" .. arg[k]:gsub("'", "'\\''") .. "'" end
  local env = opt.blas_core == 'cpu' and 'env -u OPENBLAS_CORETYPE LUACAP_BLAS_PICK=0' or
    'env OPENBLAS_CORETYPE=' .. opt.blas_core
  local r = os.execute(string.format('%s LUACAP_BENCH_BLAS_CORE=%s luajit bench/torch/compare.lua %s',
    env, opt.blas_core, table.concat(words, ' ')))
  os.exit((r == 0 or r == true) and 0 or 1)
end

package.path = 'lua/?.lua;lua/?/init.lua;bench/?.lua;' .. package.path
package.cpath = 'lua/?.so;' .. package.cpath
local luacap = require 'luacap'
local cjson = require 'cjson'
local sgemm = require 'sgemm'

local TORCH_ENV = 'LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp'
local PYTHON = os.getenv('PYTHON') or '/usr/bin/python3'

local SUITES = {
  {name = 'seed', luacap = 'luajit bench/torch/seed.lua', torch = PYTHON .. ' bench/torch/seed.py'},
  {name = 'vgg16', luacap = 'luajit bench/torch/vgg16.lua', torch = PYTHON .. ' bench/torch/vgg16.py'},
}

-- Without PyTorch every torch row would be n/a after minutes of luacap runs: say so first.
do
  local r = os.execute(PYTHON .. " -c 'import torch, torchvision' >/dev/null 2>&1")
  if not (r == 0 or r == true) then
    io.stderr:write(string.format('bench-torch: %s cannot import torch and torchvision; `make bench-torch` ' ..
      'installs them (python3-torch, python3-torchvision from Debian), or run ' ..
      '`sh tools/deps.sh python3-torch python3-torchvision libopenblas0-openmp`\n', PYTHON))
    os.exit(2)
  end
end

local function median(xs)
  local s = {}
  for k, v in ipairs(xs) do s[k] = v end
  table.sort(s)
  local n = #s
  return n % 2 == 1 and s[(n + 1) / 2] or (s[n / 2] + s[n / 2 + 1]) / 2
end

-- Runs one side; returns its figures {name -> {value =, unit =, better =}} in print order.
local function run_side(cmd, threads)
  local full = string.format('%s --threads %d%s', cmd, threads, opt.quick and ' --quick' or '')
  io.stderr:write('  $ ' .. full .. '\n')
  local p = assert(io.popen(full .. ' 2>&1'))
  local figs = {}
  for line in p:lines() do
    local ok, t = pcall(cjson.decode, line)
    if ok and type(t) == 'table' and t.figure and t.value then
      figs[#figs + 1] = t
    else
      io.stderr:write('    ' .. line .. '\n')
    end
  end
  local ok = p:close()
  if not ok then io.stderr:write('  (that command failed)\n') end
  return figs
end

local results = {}   -- results[threads] = {sgemm = {..}, rows = {ordered figure keys}, [key] = row}
for _, N in ipairs(opt.threads) do
  local res = {sgemm = {}, rows = {}}
  results[N] = res
  luacap.set_threads(N)
  for r = 1, opt.rounds do
    res.sgemm[#res.sgemm + 1] = sgemm.measure(1024, 5)
    io.stderr:write(string.format('threads %d, round %d of %d\n', N, r, opt.rounds))
    for _, s in ipairs(SUITES) do
      if next(opt.only) == nil or opt.only[s.name] then
        for _, side in ipairs{'luacap', 'torch'} do
          local cmd = side == 'torch' and
            string.format('%s OMP_NUM_THREADS=%d %s', TORCH_ENV, N, s.torch) or
            string.format('OMP_NUM_THREADS=%d %s', N, s.luacap)
          for _, f in ipairs(run_side(cmd, N)) do
            local key = s.name .. '.' .. f.figure
            if f.variant and f.variant ~= 'best' then key = key .. ' [' .. f.variant .. ']' end
            local row = res[key]
            if not row then
              row = {unit = f.unit or '', better = f.better or 'higher', luacap = {}, torch = {}}
              res[key] = row
              res.rows[#res.rows + 1] = key
            end
            table.insert(row[side], f.value)
          end
        end
      end
    end
  end
end

local function cell(xs)
  if #xs == 0 then return string.format('%-24s', 'n/a') end
  local lo, hi = math.min(unpack(xs)), math.max(unpack(xs))
  return string.format('%-24s', string.format('%.4g (%.4g-%.4g)', median(xs), lo, hi))
end

print(string.format('\nbench-torch: %d rounds, luacap and PyTorch interleaved; median (range);'
  .. ' ratio = how many times faster luacap is (ratio of medians)', opt.rounds))
print(string.format('OpenBLAS kernels: %s (%s), both sides', luacap.core.blas_core(),
  require('luacap.blas_env').describe()))
print(string.format('%-22s %-9s %3s  %-24s %-24s %s', 'figure', 'unit', 'thr', 'luacap', 'PyTorch',
  'ratio'))
for _, N in ipairs(opt.threads) do
  local res = results[N]
  for _, key in ipairs(res.rows) do
    local row = res[key]
    local ratio = 'n/a'
    if #row.luacap > 0 and #row.torch > 0 then
      local l, t = median(row.luacap), median(row.torch)
      ratio = string.format('%.2fx', row.better == 'lower' and t / l or l / t)
    end
    print(string.format('%-22s %-9s %3d  %s %s %s', key, row.unit, N, cell(row.luacap),
      cell(row.torch), ratio))
  end
  print(string.format('%-22s %-9s %3d  %s', 'sgemm 1024', 'GFLOP/s', N, cell(res.sgemm)))
end
