-- Acceptance specs of examples/caption.lua, run as a user runs it (a luajit subprocess from
-- the repository root): mixed good and bad inputs, exit status, --save, --json, and clear
-- errors for a missing or truncated model file. Not a test of caption quality: the tiny
-- model trained in setup is checked only for agreeing with luacap.load in this process.
local luacap = require 'luacap'
local cjson = require 'cjson'
local util = require 'luacap.util'
local paths = require 'luacap.data.paths'

local function q(s) return paths.quote(s) end

-- run(args) -> {out =, err =, rc =}: examples/caption.lua with args (already quoted)
local function run(tmp, args)
  local o, e, r = tmp .. '/stdout', tmp .. '/stderr', tmp .. '/rc'
  os.execute(string.format('luajit examples/caption.lua %s >%s 2>%s; echo $? >%s', args, q(o), q(e), q(r)))
  return {out = util.read_file(o) or '', err = util.read_file(e) or '',
          rc = tonumber((util.read_file(r) or ''):match('%d+'))}
end

local function lines(s)
  local t = {}
  for l in s:gmatch('[^\n]+') do t[#t + 1] = l end
  return t
end

describe('examples/caption.lua', function()
  local tmp, model, alpha, grey, junk, want

  setup(function()
    local p = io.popen('mktemp -d /tmp/luacap_caption_spec.XXXXXX')
    tmp = p:read('*l')
    p:close()
    -- the tiny model, through the training example as a user would train it
    assert(os.execute('luajit examples/train.lua --out ' .. q(tmp .. '/out') .. ' --shapes-dir ' ..
      q(tmp .. '/shapes') .. ' --n-images 30 --shapes-size 32 --image-size 16 --epochs 1' ..
      ' --embed-dim 8 --units 8 --img-dense 8 --dec-dense 8 --feat-dim 8 --encoder smallcnn' ..
      ' --quiet') == 0, 'training the tiny model failed')
    model = tmp .. '/out/models/best.h5'
    -- a PNG with alpha (the committed 7x5 RGBA fixture; image.save writes no alpha)
    alpha = tmp .. '/alpha.png'
    assert(util.write_file(alpha, assert(util.read_file('spec/fixtures/images/rgba8.png'))))
    -- a greyscale JPEG from an (H, W, 1) tensor
    grey = tmp .. '/grey.jpg'
    luacap.seed(3)
    assert(luacap.image.save(grey, luacap.rand(20, 24, 1):scale(255)))
    -- a file that is not an image, named like one
    junk = tmp .. '/notes.jpg'
    assert(util.write_file(junk, 'this is not an image\n'))
    -- what the same model says in this process
    local c = assert(luacap.load(model))
    want = {[alpha] = assert(luacap.caption(c, alpha)), [grey] = assert(luacap.caption(c, grey))}
  end)

  teardown(function() if tmp then os.execute('rm -rf ' .. q(tmp)) end end)

  it('the inputs are what the specs say they are', function()
    assert.same({format = 'png', height = 5, width = 7, channels = 4}, luacap.image.info(alpha))
    assert.same({format = 'jpeg', height = 20, width = 24, channels = 1}, luacap.image.info(grey))
    assert.is_nil(luacap.image.info(junk))
  end)

  it('captions the good images, names the bad file and exits 1', function()
    local r = run(tmp, '--model ' .. q(model) .. ' ' .. q(alpha) .. ' ' .. q(junk) .. ' ' .. q(grey))
    assert.equal(1, r.rc)
    -- two captions, in argument order, the same as luacap.caption gives in this process
    assert.same({alpha .. ': ' .. want[alpha], grey .. ': ' .. want[grey]}, lines(r.out))
    local err = lines(r.err)
    assert.equal(1, #err, r.err)
    assert.equal('caption.lua: ' .. junk .. ': not a JPEG or PNG file (unrecognised first bytes)', err[1])
  end)

  it('exits 0 when every image is captioned', function()
    local r = run(tmp, '--model ' .. q(model) .. ' ' .. q(grey) .. ' ' .. q(alpha))
    assert.equal(0, r.rc, r.err)
    assert.equal('', r.err)
    assert.same({grey .. ': ' .. want[grey], alpha .. ': ' .. want[alpha]}, lines(r.out))
  end)

  it('gives the same captions one image per batch', function()
    local r = run(tmp, '--batch 1 --model ' .. q(model) .. ' ' .. q(grey) .. ' ' .. q(alpha))
    assert.equal(0, r.rc, r.err)
    assert.same({grey .. ': ' .. want[grey], alpha .. ': ' .. want[alpha]}, lines(r.out))
  end)

  it('a missing image is an error that names it, the others still captioned', function()
    local missing = tmp .. '/nowhere.png'
    local r = run(tmp, '--model ' .. q(model) .. ' ' .. q(missing) .. ' ' .. q(grey))
    assert.equal(1, r.rc)
    assert.same({grey .. ': ' .. want[grey]}, lines(r.out))
    assert.matches('^caption.lua: ' .. missing:gsub('%p', '%%%0') .. ': no such file', r.err)
  end)

  it('--attention with a model that attends over no regions is a one-line error and exit 1', function()
    local r = run(tmp, '--attention ' .. q(tmp .. '/att') .. ' --model ' .. q(model) .. ' ' .. q(alpha))
    assert.equal(1, r.rc)
    assert.truthy(r.err:find('--attention: attention maps need a model with spatial attention', 1, true), r.err)
  end)

  it('--save writes one captioned PNG per good image', function()
    local dir = tmp .. '/saved/deeper'
    local r = run(tmp, '--save ' .. q(dir) .. ' --model ' .. q(model) .. ' ' .. q(alpha) .. ' ' ..
      q(junk) .. ' ' .. q(grey))
    assert.equal(1, r.rc)
    for _, name in ipairs({'alpha.png', 'grey.png'}) do
      local info = luacap.image.info(dir .. '/' .. name)
      assert.is_table(info, name)
      assert.equal('png', info.format)
      -- the image is drawn at least 360 wide inside a 16-pixel margin, the caption in a band
      -- under it: taller than the margins and the scaled image alone
      local src = luacap.image.info(name == 'alpha.png' and alpha or grey)
      assert.is_true(info.width >= 360, name .. ' width ' .. info.width)
      assert.is_true(info.height > (info.width - 32) * src.height / src.width + 32 + 10,
        name .. ' has no room for a caption: ' .. info.width .. 'x' .. info.height)
      assert.truthy(luacap.image.load(dir .. '/' .. name))
    end
    assert.is_false(require('luacap.data.paths').is_file(dir .. '/notes.png'))
  end)

  it('--json prints one parsable object per good image', function()
    local r = run(tmp, '--json --model ' .. q(model) .. ' ' .. q(alpha) .. ' ' .. q(junk) .. ' ' .. q(grey))
    assert.equal(1, r.rc)
    local objs = lines(r.out)
    assert.equal(2, #objs)
    local a, g = cjson.decode(objs[1]), cjson.decode(objs[2])
    assert.same({image = alpha, file = alpha, caption = want[alpha]}, a)
    assert.same({image = grey, file = grey, caption = want[grey]}, g)
    assert.matches(junk:gsub('%p', '%%%0'), r.err)
  end)

  it('a missing model file is a one-line error and exit 1', function()
    local m = tmp .. '/no/such/model.h5'
    local r = run(tmp, '--model ' .. q(m) .. ' ' .. q(grey))
    assert.equal(1, r.rc)
    assert.equal('', r.out)
    assert.equal('caption.lua: ' .. m .. ': No such file or directory\n', r.err)
  end)

  it('a truncated model file is a one-line error and exit 1', function()
    local bytes = assert(util.read_file(model))
    for _, n in ipairs({0, 100, 1000, math.floor(#bytes / 2), #bytes - 1}) do
      local m = tmp .. '/truncated_' .. n .. '.h5'
      assert(util.write_file(m, bytes:sub(1, n)))
      local r = run(tmp, '--model ' .. q(m) .. ' ' .. q(grey))
      assert.equal(1, r.rc, n .. ' bytes: ' .. r.err)
      assert.equal('', r.out, n .. ' bytes')
      local err = lines(r.err)
      assert.equal(1, #err, n .. ' bytes: ' .. r.err)
      assert.equal('caption.lua: ' .. m .. ': ', err[1]:sub(1, #m + 15), n .. ' bytes: ' .. r.err)
      assert.is_nil(err[1]:find('traceback', 1, true))
    end
  end)
end)
