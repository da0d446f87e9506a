-- Crash safety (docs/robustness.md): atomic writes, a full disk during a checkpoint write,
-- Ctrl-C during training, and resumed runs bit-identical to an uninterrupted one (judged
-- by tools/kill-check.lua, the kill test's own checker; tools/kill-test.sh kills -9).
local util = require 'luacap.util'
local paths = require 'luacap.data.paths'
local callbacks = require 'luacap.train.callbacks'

local function sh(cmd)
  local ok, how, code = os.execute(cmd)
  if type(ok) == "number" then return ok == 0, math.floor(ok / 256) end   -- LuaJIT: a wait status
  return ok == true, code, how
end

describe('util.write_file', function()
  local dir = os.tmpname()
  before_each(function() os.remove(dir); assert(paths.mkdir_p(dir)) end)
  after_each(function() os.execute('rm -rf ' .. paths.quote(dir)) end)

  it('writes the whole content and leaves no temporary file', function()
    local p = dir .. '/a.json'
    assert.is_true(util.write_file(p, '{"a": 1}\n'))
    assert.equal('{"a": 1}\n', util.read_file(p))
    assert.same({'a.json'}, paths.list_dir(dir))
  end)

  it('leaves the previous file intact when the write fails, naming the file', function()
    local p = dir .. '/a.json'
    assert.is_true(util.write_file(p, 'old'))
    assert(paths.mkdir_p(p .. '.tmp'))       -- the temporary cannot be created: a directory is there
    local ok, err = util.write_file(p, 'new')
    assert.is_nil(ok)
    assert.matches('^' .. p:gsub('%p', '%%%0') .. ': ', err)
    assert.equal('old', util.read_file(p))
  end)

  it('says what a full disk means for the run', function()
    local p = dir .. '/last.h5'
    assert.is_true(util.write_file(p, 'x'))
    assert.equal('disk full while writing ' .. p .. ': the previous last.h5 is intact; free space ' ..
      'and run again with --resume', util.write_error(p, p .. ': No space left on device', 28))
    assert.equal('disk full while writing ' .. dir .. '/best.h5: nothing was written; free space ' ..
      'and run again with --resume', util.write_error(dir .. '/best.h5', 'x', 'ENOSPC'))
    assert.equal('cannot write ' .. p .. ': Permission denied',
      util.write_error(p, p .. ': Permission denied', 13))
  end)
end)

describe('CSVLogger across a resume', function()
  local path = os.tmpname()
  after_each(function() os.remove(path) end)
  local function epoch(cb, e, loss) cb.on_epoch_end({epoch = e, logs = {loss = loss}}) end

  it('restores its rows from the checkpoint and drops a row written after it', function()
    local cb = callbacks.CSVLogger{path = path}
    cb.on_train_begin()
    epoch(cb, 1, 0.5)
    local saved = cb.get_state()              -- what last.h5 holds after epoch 1
    saved = require('cjson').decode(util.json_exact(saved))
    epoch(cb, 2, 0.25)                        -- written, then the process dies before last.h5
    assert.equal('epoch,loss\r\n0,0.5\r\n1,0.25\r\n', util.read_file(path))
    local again = callbacks.CSVLogger{path = path, append = true}
    again.set_state(saved)
    again.on_train_begin()
    assert.equal('epoch,loss\r\n0,0.5\r\n', util.read_file(path))
    epoch(again, 2, 0.25)
    assert.equal('epoch,loss\r\n0,0.5\r\n1,0.25\r\n', util.read_file(path))
  end)
end)

describe('a training run', function()
  local W = os.tmpname()
  os.remove(W)
  assert(paths.mkdir_p(W))
  local ARGS = ' --shapes-dir ' .. W .. '/shapes --n-images 40 --shapes-size 32 --data-seed 3' ..
    ' --image-size 16 --epochs 6 --embed-dim 12 --units 8 --img-dense 12 --dec-dense 12' ..
    ' --feat-dim 12 --batch-size 8 --encoder smallcnn --freeze-encoder --es-patience 3' ..
    ' --lr-patience 1 --beam 2 --threads 1 --quiet'
  local function train(out, extra, env)
    return sh((env or '') .. ' luajit examples/train.lua' .. ARGS .. ' --out ' .. out .. (extra or '') ..
      ' >>' .. out .. '.log 2>&1')
  end
  local function same_as_reference(out)
    local p = io.popen('luajit tools/kill-check.lua same ' .. W .. '/ref ' .. out .. ' 2>&1')
    local report = p:read('*a')
    p:close()
    return report
  end
  local function size(p)
    local f = assert(io.open(p, 'rb'))
    local n = f:seek('end')
    f:close()
    return n
  end

  setup(function() assert.is_true(train(W .. '/ref'), util.read_file(W .. '/ref.log')) end)
  teardown(function() os.execute('rm -rf ' .. paths.quote(W)) end)

  it('stops with a clear message when the disk fills during a checkpoint write, and resumes', function()
    local mnt = W .. '/disk'
    assert(paths.mkdir_p(mnt))
    -- the tmpfs holds epoch 1's best.h5 + last.h5 and epoch 2's new best.h5 beside them,
    -- but not epoch 2's last.h5 written beside the old one: it fills during that write
    local B, L = size(W .. '/ref/models/best.h5'), size(W .. '/ref/models/last.h5')
    local kb = math.floor((1.5 * B + 1.5 * L) / 1024)
    if not sh('mount -t tmpfs -o size=' .. kb .. 'k tmpfs ' .. mnt .. ' 2>/dev/null') then
      pending('mount -t tmpfs is not permitted here (needs root)')
      return
    end
    finally(function() os.execute('umount ' .. mnt .. ' 2>/dev/null') end)
    local out = mnt .. '/out'
    local ok, code = train(out)
    local log = util.read_file(out .. '.log') or ''
    assert.is_false(ok, log)
    assert.equal(1, code)
    assert.matches('disk full while writing ' .. out:gsub('%p', '%%%0') ..
      '/models/%a+%.h5: the previous %a+%.h5 is intact; free space and run again with %-%-resume', log)
    -- what is there is whole: both checkpoints load, no temporary is left
    local ckpt = require 'luacap.train.checkpoint'
    local last = assert(ckpt.load(out .. '/models/last.h5'))
    assert.equal(1, last.train_state.epoch)
    assert.is_table((assert(ckpt.load(out .. '/models/best.h5'))))
    for _, name in ipairs(paths.list_dir(out .. '/models')) do assert.falsy(name:match('%.tmp'), name) end
    -- space freed: --resume finishes the run, as if it had never stopped
    assert.is_true(sh('mount -o remount,size=64m ' .. mnt))
    assert.is_true(train(out, ' --resume'), util.read_file(out .. '.log'))
    assert.equal('', same_as_reference(out))
  end)

  it('stops at Ctrl-C between steps with exit 130, says how to resume, and resumes exactly', function()
    local out = W .. '/int'
    -- 30 ms per step so the run is still training when the signal comes
    local cmd = 'LUACAP_PAUSE_AT=step:30 luajit examples/train.lua' .. ARGS .. ' --out ' .. out ..
      ' >' .. out .. '.log 2>&1 & echo $! >' .. W .. '/pid; wait $!; echo $? >' .. W .. '/rc'
    os.execute('sh -c ' .. paths.quote(cmd) .. ' &')
    local waited = 0
    while waited < 1200 do          -- until epoch 1 is in the CSV log
      local csv = util.read_file(out .. '/results/training_log.csv') or ''
      if select(2, csv:gsub('\n', '')) >= 2 then break end
      os.execute('sleep 0.05')
      waited = waited + 1
    end
    local pid = assert(tonumber(util.read_file(W .. '/pid')))
    assert.is_true(sh('kill -INT ' .. pid))
    waited = 0
    -- `echo $? >rc` creates the file before it writes the code: wait for the digits
    local function rc() return (util.read_file(W .. '/rc') or ''):match('%d+') end
    while not rc() and waited < 1200 do os.execute('sleep 0.05'); waited = waited + 1 end
    local log = util.read_file(out .. '.log')
    assert.equal('130', rc(), log)
    assert.matches('interrupted %(Ctrl%-C%) during epoch %d+: that epoch is abandoned', log)
    assert.matches('To resume: %S*luajit examples/train.lua .* %-%-resume\n', log)
    local p = io.popen('luajit tools/kill-check.lua readable ' .. out)
    local report = p:read('*a')
    p:close()
    assert.equal('', report)
    assert.is_true(train(out, ' --resume'), util.read_file(out .. '.log'))
    assert.equal('', same_as_reference(out))
  end)
end)
