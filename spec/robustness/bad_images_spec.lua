-- Images that cannot be decoded (docs/robustness.md, "Bad images"): each is skipped by
-- name and counted, the run goes on; more than --max-bad-images stop it with a summary.
-- Both loaders: the feature cache of a frozen encoder and the images of a trainable one.
local pipeline = require 'luacap.pipeline'
local util = require 'luacap.util'
local paths = require 'luacap.data.paths'

describe('bad images', function()
  local W = os.tmpname()
  os.remove(W)
  local data = W .. '/data'
  setup(function()
    assert(require('luacap.data.shapes').generate{dir = data, n = 20, size = 32, seed = 5, max_shapes = 2})
    -- two of the twenty images broken: one truncated JPEG, one that is not an image at all
    local jpg = assert(util.read_file(data .. '/Images/shape_00004.jpg'))
    assert(util.write_file(data .. '/Images/shape_00004.jpg', jpg:sub(1, 40)))
    assert(util.write_file(data .. '/Images/shape_00011.jpg', 'not a JPEG\n'))
  end)
  teardown(function() os.execute('rm -rf ' .. paths.quote(W)) end)

  local function opts(out, extra)
    local o = {out = W .. '/' .. out, data = data, seed = 3, epochs = 1, batch_size = 16,
      embed_dim = 8, units = 8, img_dense = 8, dec_dense = 8, feat_dim = 8, image_size = 16,
      lr_patience = 3, lr_factor = 0.5, es_patience = 6, decode_batch = 64, quiet = true,
      encoder = 'smallcnn', beam = 0}
    for k, v in pairs(extra or {}) do o[k] = v end
    return o
  end

  it('reads a limit as a share or a count', function()
    assert.equal(1, pipeline.bad_image_limit(nil, 20))       -- the default, 5%
    assert.equal(2, pipeline.bad_image_limit('10%', 20))
    assert.equal(2, pipeline.bad_image_limit('0.1', 20))
    assert.equal(3, pipeline.bad_image_limit('3', 20))
    assert.equal(0, pipeline.bad_image_limit('0', 20))
    assert.has_error(function() pipeline.bad_image_limit('many', 20) end,
      "--max-bad-images: 'many' is not a count (3) or a share (5% or 0.05)")
  end)

  for _, frozen in ipairs({true, false}) do
    local what = frozen and 'the feature cache (frozen encoder)' or 'the images of a trainable encoder'
    it('skips them in ' .. what .. ' and trains on the rest within the limit', function()
      local res = pipeline.run(opts(frozen and 'f_ok' or 't_ok', {freeze_encoder = frozen, max_bad_images = '10%'}))
      local all = {}
      for _, list in ipairs({res.data.train, res.data.val, res.data.test}) do
        for _, id in ipairs(list) do all[id] = true end
      end
      assert.is_nil(all['shape_00004'])
      assert.is_nil(all['shape_00011'])
      assert.truthy(all['shape_00001'])
      assert.equal(1, #res.history.loss)
    end)

    it('stops with a summary naming them beyond the limit in ' .. what, function()
      for _, limit in ipairs({'1', '5%'}) do
        local ok, err = pcall(pipeline.run, opts(frozen and 'f_bad' or 't_bad',
          {freeze_encoder = frozen, max_bad_images = limit}))
        assert.is_false(ok)
        assert.matches('^2 of 20 images could not be read, more than %-%-max%-bad%-images ' ..
          limit:gsub('%%', '%%%%') .. ' allows %(1%): ', err)
        assert.matches('shape_00004', err)
        assert.matches('shape_00011', err)
      end
    end)
  end
end)
