-- Specs of the seed model's incremental decoding (models/seed_decode.lua) and the kernels
-- it adds: LSTM:forward_projected and backward_projected against forward and backward,
-- attention_weights against attention_forward, shift_append growing and sliding,
-- reverse_steps_add; then decode_start / step / select against forward_caption on the
-- pre-padded prefixes, at sizes whose decoder gates (4D = 40) take both the kernels'
-- 32-column blocks and their tail, with an LSTM and a GRU decoder.
local luacap = require 'luacap'
local Seed = require 'luacap.models.seed'
local decode = require 'luacap.eval.decode'
local close = require('helpers.util').close
local core = luacap.core
local nn = luacap.nn

-- Raises, naming the step, unless decode_step's logits are forward_caption's.
local function check_step(want, got, step)
  local ok, err = pcall(close, want, got, 1e-5)
  assert(ok, 'step ' .. step .. ': ' .. tostring(err))
end

local function mid(V, T, decoder)
  return Seed{vocab_size = V, max_len = T, feat_dim = 7, img_dense = 6, embed_dim = 4,
    units = 5, dec_dense = 6, dropout = 0.5, decoder = decoder}
end

describe('seed model, incremental decoding', function()
  it('forward_projected, backward_projected: forward and backward given x @ kernel, fast and ref', function()
    luacap.seed(61)
    local B, Tn, C, H = 3, 5, 4, 6
    local x = luacap.randn(B, Tn, C)
    local mask = luacap.tensor{{0, 0, 1, 1, 1}, {1, 1, 1, 1, 1}, {1, 0, 1, 1, 0}}
    for _, opts in ipairs{{return_sequences = true, go_backwards = true, zero_output_for_mask = true},
                          {return_sequences = false}} do
      for _, ref in ipairs{false, true} do
        local l = nn.LSTM(C, H, opts)
        l.bias:copy(luacap.randn(4 * H))
        l.use_ref = ref
        local want = l:forward(x, mask):clone()
        local dout = luacap.randn(want:shape())
        l:zero_grad()
        local dx_want = l:backward(x, dout):clone()
        local drk, db = l.drecurrent_kernel:clone(), l.dbias:clone()
        local zx = luacap.zeros(B * Tn, 4 * H)
        core.sgemm(zx, x:reshape(B * Tn, C), l.kernel)
        close(want, l:forward_projected(zx:reshape(B, Tn, 4 * H), mask), 1e-5)
        assert.has_error(function() l:backward(x, want) end,
          'LSTM lstm: after forward_projected the backward is backward_projected(dout)')
        -- zx = x @ kernel  =>  dx = dzx @ kernel^T; the kernel's gradient is the caller's
        l:zero_grad()
        local dzx = l:backward_projected(dout)
        assert.same({B, Tn, 4 * H}, dzx:shape())
        local dx = luacap.zeros(B * Tn, C)
        core.sgemm(dx, dzx:reshape(B * Tn, 4 * H), l.kernel, false, true)
        close(dx_want, dx:reshape(B, Tn, C), 1e-5)
        close(drk, l.drecurrent_kernel, 1e-5)
        close(db, l.dbias, 1e-5)
        assert.equal(0, l.dkernel:norm())
        for b = 1, B do
          for t = 1, Tn do
            if mask:get(b, t) == 0 then
              for j = 1, 4 * H do assert.equal(0, dzx:get(b, t, j)) end
            end
          end
        end
      end
    end
    local l = nn.LSTM(C, H)
    assert.has_error(function() l:forward_projected(x, mask) end,
      'LSTM lstm: x has shape (3, 5, 4), expected (B, T, 24)')
    assert.has_error(function()
      core.lstm_forward(luacap.zeros(B, H), luacap.zeros(Tn, B, 4 * H), luacap.zeros(Tn, B, H),
        luacap.zeros(Tn, B, H), luacap.zeros(B, Tn, 4 * H), x, nil, nil, l.recurrent_kernel, l.bias)
    end, 'lstm_forward: without a kernel x is the input projection, last dim 4H = 24, got 4')
  end)

  it('attention_weights gives attention_forward\'s weights (masked rows 0)', function()
    luacap.seed(62)
    -- Tq = 9 with 7 real rows per batch row: blocks of 4 and 3
    local B, Tq, Tv, D = 2, 9, 6, 5
    local q, v = luacap.randn(B, Tq, D), luacap.randn(B, Tv, D)
    local m = luacap.tensor{{0, 0, 1, 1, 1, 1, 1, 1, 1}, {1, 1, 0, 1, 1, 1, 0, 1, 1}}
    local ctx, w = luacap.zeros(B, Tq, D), luacap.zeros(B, Tq, Tv)
    core.attention_forward(ctx, w, q, v, m)
    local w2 = luacap.full(7, B, Tq, Tv)
    core.attention_weights(w2, q, v, m)
    close(w, w2, 1e-6)
    assert.equal(0, w2:get(1, 1, 3))
  end)

  it('shift_append grows or slides a sequence; reverse_steps_add adds it reversed', function()
    local src = luacap.tensor{{{1, 2}, {3, 4}}, {{5, 6}, {7, 8}}}          -- (2, 2, 2)
    local last = luacap.tensor{{9, 10}, {11, 12}}
    local grown = luacap.zeros(2, 3, 2)
    core.shift_append(grown, src, {2, 1}, last)
    assert.same({{{5, 6}, {7, 8}, {9, 10}}, {{1, 2}, {3, 4}, {11, 12}}}, grown:totable())
    local slid = luacap.zeros(2, 2, 2)
    core.shift_append(slid, src, {1, 1}, last)
    assert.same({{{3, 4}, {9, 10}}, {{3, 4}, {11, 12}}}, slid:totable())
    assert.has_error(function() core.shift_append(luacap.zeros(2, 4, 2), src, {1, 2}, last) end,
      'shift_append: expected out (B, T, W) and src (R, T, W) or (R, T - 1, W)')
    local out = luacap.zeros(2, 3, 2)
    core.reverse_steps_add(out, grown, luacap.tensor{{{1, 1}, {2, 2}, {3, 3}}, {{0, 0}, {0, 0}, {1, -1}}})
    assert.same({{{8, 9}, {9, 10}, {10, 11}}, {{2, 1}, {3, 4}, {11, 12}}}, out:totable())
  end)

  for _, decoder in ipairs{'lstm', 'gru'} do
    it('decode_step gives forward_caption\'s logits across selects, truncation and padding ids ('
      .. decoder .. ' decoder)', function()
      luacap.seed(63)
      local V, T = 11, 5
      local m, ref = mid(V, T, decoder), mid(V, T, decoder)
      for i, p in ipairs(m:parameters()) do
        p.value:scale(2)
        ref:parameters()[i].value:copy(p.value)
      end
      m:evaluate(); ref:evaluate()
      local feats = luacap.randn(4, 7)
      local st = m:decode_start(feats)
      local rows = ref:forward_image(feats):clone()
      local prefixes = {{}, {}, {}, {}}
      -- a select before the first step; step 4 feeds a padding id to the first row; steps
      -- 6 and on outgrow the window of 5; selects drop, duplicate and reorder rows, and
      -- change their count (4, 6, 2, 5: the buffers grow, are reused, grow again)
      local firsts = {1, 4, 7, 0, 5, 8, 9, 3}
      local selects = {[1] = {4, 3, 2, 1}, [3] = {2, 3, 3, 1, 4, 4}, [5] = {6, 1},
        [7] = {2, 2, 1, 1, 2}}
      for step, first in ipairs(firsts) do
        local sel = selects[step]
        if sel then
          m:decode_select(st, sel)
          local r2 = luacap.zeros(#sel, rows:size(2), rows:size(3))
          core.gather(r2, rows, sel)
          local np = {}
          for k, r in ipairs(sel) do np[k] = {unpack(prefixes[r])} end
          rows, prefixes = r2, np
        end
        local ids = {first}
        for b = 2, #prefixes do ids[b] = (first + b) % (V - 1) + 1 end
        for b = 1, #prefixes do prefixes[b][#prefixes[b] + 1] = ids[b] end
        local got = m:decode_step(st, ids):clone()
        check_step(ref:forward_caption(rows, decode.prefix_ids(prefixes, T)), got, step)
      end
    end)
  end

  it('with 9 rows (the output layers on packed kernels) as forward_caption', function()
    luacap.seed(65)
    local V, T = 40, 4
    local m = mid(V, T)
    for _, p in ipairs(m:parameters()) do p.value:scale(2) end
    m:evaluate()
    local feats = luacap.randn(9, 7)
    local st = m:decode_start(feats)
    assert.is_truthy(st.out_pk)
    local rows, prefixes = m:forward_image(feats):clone(), {}
    for b = 1, 9 do prefixes[b] = {} end
    for step = 1, 5 do
      local ids = {}
      for b = 1, 9 do ids[b] = (b * step) % (V - 1) + 1; prefixes[b][step] = ids[b] end
      local got = m:decode_step(st, ids):clone()
      check_step(m:forward_caption(rows, decode.prefix_ids(prefixes, T)), got, step)
    end
  end)

  it('in training mode a step is forward_caption on the whole window (dropout on)', function()
    local V, T = 11, 5
    luacap.seed(64)
    local m = mid(V, T)
    m:train(true)
    local feats = luacap.randn(2, 7)
    local st = m:decode_start(feats)
    m:decode_step(st, {1, 2})
    luacap.seed(7)
    local got = m:decode_step(st, {3, 4}):clone()
    luacap.seed(7)
    local want = m:forward_caption(st.rows, decode.prefix_ids({{1, 3}, {2, 4}}, T))
    close(want, got, 0)
  end)
end)
