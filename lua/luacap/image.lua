-- luacap.image: JPEG/PNG images as (H, W, 3) RGB tensors of 0..255 (load, decode, save,
-- encode, info), Pillow-exact resizing and Keras' VGG16 'caffe' preprocessing.
-- Not an imaging library: no other formats, no EXIF rotation, no colour management.
local core = require 'luacap.core'

local M = {}

local function check_type(fn, pos, name, v, want)
  if type(v) ~= want then
    error(string.format('%s: bad argument #%d (%s): expected a %s, got %s', fn, pos, name,
      want, type(v)), 3)
  end
end

local function check_tensor(fn, pos, name, v)
  if type(v) ~= 'userdata' or getmetatable(v) ~= core.Tensor then
    error(string.format('%s: bad argument #%d (%s): expected a tensor, got %s', fn, pos, name,
      type(v)), 3)
  end
end

-- Reads a whole file; nil, "path: reason" when it cannot.
local function read_file(path)
  local f, err = io.open(path, 'rb')
  if not f then return nil, err end          -- io.open's message already names the path
  local bytes, rerr = f:read('*a')
  f:close()
  if not bytes then return nil, path .. ': ' .. tostring(rerr) end
  return bytes
end

-- load(path) -> (H, W, 3) tensor of RGB values 0..255 | nil, "path: reason".
-- The format comes from the file's first bytes, not its name.
function M.load(path)
  check_type('image.load', 1, 'path', path, 'string')
  local bytes, err = read_file(path)
  if not bytes then return nil, err end
  return core.image_decode(bytes, path)
end

-- decode(bytes[, name]) -> tensor | nil, "name: reason": load for data in memory.
function M.decode(bytes, name)
  check_type('image.decode', 1, 'bytes', bytes, 'string')
  if name ~= nil then check_type('image.decode', 2, 'name', name, 'string') end
  return core.image_decode(bytes, name or 'image data')
end

-- info(path) -> {format = 'jpeg' | 'png', height =, width =, channels =} | nil, msg.
-- channels counts what the file stores (1 grey, 2 grey+alpha, 3, 4 RGBA or CMYK).
function M.info(path)
  check_type('image.info', 1, 'path', path, 'string')
  local bytes, err = read_file(path)
  if not bytes then return nil, err end
  local fmt, h, w, c = core.image_info(bytes, path)
  if not fmt then return nil, h end
  return {format = fmt, height = h, width = w, channels = c}
end

local formats = {png = 'png', jpg = 'jpeg', jpeg = 'jpeg'}

local function check_opts(fn, pos, opts)
  if opts == nil then return {} end
  check_type(fn, pos, 'opts', opts, 'table')
  local q = opts.quality
  if q ~= nil and (type(q) ~= 'number' or q ~= math.floor(q) or q < 1 or q > 100) then
    error(string.format('%s: opts.quality is %s, expected an integer in 1..100', fn,
      tostring(q)), 3)
  end
  return opts
end

-- encode(img, 'png' | 'jpeg'[, {quality = 90}]) -> string of file bytes | nil, reason.
-- img is (H, W, 3) RGB or (H, W, 1) / (H, W) grey; values are rounded and clipped to 0..255.
function M.encode(img, format, opts)
  check_tensor('image.encode', 1, 'img', img)
  check_type('image.encode', 2, 'format', format, 'string')
  local fmt = formats[format:lower()]
  if not fmt then
    error("image.encode: format '" .. format .. "', expected 'png', 'jpg' or 'jpeg'", 2)
  end
  opts = check_opts('image.encode', 3, opts)
  return core.image_encode(img, fmt, opts.quality or 90)
end

-- save(path, img[, {quality = 90}]) -> true | nil, "path: reason". The extension picks the
-- format: .png (lossless: load(save(x)) == x for integral x) or .jpg / .jpeg.
function M.save(path, img, opts)
  check_type('image.save', 1, 'path', path, 'string')
  check_tensor('image.save', 2, 'img', img)
  opts = check_opts('image.save', 3, opts)
  local ext = path:match('%.([^./\\]+)$')
  local fmt = ext and formats[ext:lower()]
  if not fmt then
    error("image.save: cannot tell the format from '" .. path ..
      "', expected a name ending in .png, .jpg or .jpeg", 2)
  end
  local bytes, err = core.image_encode(img, fmt, opts.quality or 90)
  if not bytes then return nil, path .. ': ' .. err end
  -- atomically (a temporary file, fsync, rename): no half-written image is ever left behind
  local ok, werr = require('luacap.util').write_via(path, function(tmp)
    local f, oerr = io.open(tmp, 'wb')
    if not f then return nil, oerr end
    local wok, werr2 = f:write(bytes)
    local closed, cerr = f:close()
    if not wok or not closed then return nil, tostring(werr2 or cerr) end
    return true
  end)
  if not ok then return nil, werr end
  return true
end

-- resize(img, h, w[, 'nearest' | 'bilinear']) -> new (h, w, C) tensor.
-- 'nearest' (the default) is exactly Pillow's Image.resize(NEAREST), as Keras'
-- load_img(target_size=...) uses. 'bilinear' is Pillow's antialiased BILINEAR (the
-- triangle filter widens when shrinking), kept in floats: within about 1 of Pillow's.
function M.resize(img, h, w, mode)
  check_tensor('image.resize', 1, 'img', img)
  check_type('image.resize', 2, 'h', h, 'number')
  check_type('image.resize', 3, 'w', w, 'number')
  if mode ~= nil then check_type('image.resize', 4, 'mode', mode, 'string') end
  return core.image_resize(img, h, w, mode or 'nearest')
end

-- vgg_preprocess(img) -> new (H, W, 3) tensor: Keras' VGG16 preprocess_input ('caffe'
-- mode): channels reversed to BGR, then 103.939, 116.779, 123.68 subtracted; no scaling.
function M.vgg_preprocess(img)
  check_tensor('image.vgg_preprocess', 1, 'img', img)
  return core.image_vgg_preprocess(img)
end

-- prepare(img, size[, resize = 'nearest']) -> (size, size, 3) caffe-mode tensor: the one
-- image preparation of luacap's encoders: resized when its sides differ from size (Keras'
-- load_img uses 'nearest'), then vgg_preprocess. Training, feature caches and captioning
-- all go through here, so their pixels agree.
function M.prepare(img, size, resize)
  if img:size(1) ~= size or img:size(2) ~= size then
    img = M.resize(img, size, size, resize or 'nearest')
  end
  return M.vgg_preprocess(img)
end

return M
