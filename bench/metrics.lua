-- bench/metrics.lua: caption metrics on a Flickr8k-sized test split (1000 hypotheses x 5
-- references of ~12 words, a skewed 2000-word vocabulary); medians of wall time.
-- Not a comparison with nltk or coco-caption (they are not installed in CI).
-- Run: luajit bench/run.lua metrics  (from the repository root)
local metrics = require 'luacap.eval.metrics'
local core = require 'luacap.core'
local sgemm = require 'sgemm'

local S, K, V = 1000, 5, 2000

local M = {}

function M.run(ctx)
local REPS = tonumber(os.getenv('BENCH_REPS') or '') or (ctx.quick and 5 or 21)
local function time(fn) return (sgemm.time(fn, REPS)) end

-- deterministic corpus: a small LCG, word ranks skewed toward frequent words
local seed = 12345
local function rand()
  seed = (seed * 1103515245 + 12345) % 2147483648
  return seed / 2147483648
end
local function sentence()
  local t = {}
  for i = 1, 9 + math.floor(rand() * 7) do
    t[i] = 'w' .. math.floor(V * rand() ^ 3)
  end
  return t
end
local refs, hyps = {}, {}
for s = 1, S do
  refs[s] = {}
  for k = 1, K do refs[s][k] = sentence() end
  hyps[s] = sentence()
end

local enc = {metrics.encode(refs, hyps)}
local rows = {
  {'encode (intern strings, flatten)', function() metrics.encode(refs, hyps) end},
  {'core.bleu_stats (C counting only)', function()
    core.bleu_stats(enc[1], enc[2], enc[3], enc[4], enc[5], 4) end},
  {'metrics.bleu_scores (BLEU-1..4)', function() metrics.bleu_scores(refs, hyps) end},
  {'metrics.corpus_bleu (one weight)', function() metrics.corpus_bleu(refs, hyps) end},
  {'metrics.cider_d', function() metrics.cider_d(refs, hyps) end},
  {'metrics.rouge_l', function() metrics.rouge_l(refs, hyps) end},
  {'metrics.meteor (exact + stem)', function() metrics.meteor(refs, hyps) end},
}
print(('%d hypotheses x %d references, %d words each on average; median of %d runs')
  :format(S, K, 12, REPS))
for _, r in ipairs(rows) do
  print(('%-36s %8.2f ms'):format(r[1], time(r[2]) * 1e3))
end
end

return M
