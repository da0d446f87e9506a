-- Model files: one HDF5 file holds the weights, the model and encoder configs, the
-- tokenizer and (for resuming) the optimizer and training state, so that a new process
-- can caption images with nothing else. Written through luacap.h5.save, which writes a
-- temporary file and renames it: a crash never leaves a half-written model.
-- Layout: /model/<layer>/<weight>, /encoder/... (trainable encoders), /optimizer/{m,v}/...;
-- root attributes: format, format_version, model_config, encoder_config, tokenizer,
-- train_state, optimizer_state, meta (dataset folder, image resize mode) (JSON strings).
local cjson = require 'cjson'
local h5 = require 'luacap.h5'

local M = {}

M.FORMAT = 'luacap-model'
M.VERSION = '1'

-- The training state is written with util.json_exact: every double reads back the same
-- (cjson's encoder keeps 14 digits), and infinities (a callback's best before any finite
-- val_loss) as inf / -inf, which cjson's decoder accepts.
local json_exact = require('luacap.util').json_exact

-- 'img_lstm.forward_lstm.kernel' -> 'img_lstm/forward_lstm/kernel'
local function path_of(name) return (name:gsub('%.', '/')) end

local function put(tree, prefix, params)
  for _, p in ipairs(params) do tree[prefix .. '/' .. path_of(p.name)] = p.value end
end

-- save(path, {model=, encoder=, tokenizer=, optimizer=, train_state=}) -> true | nil, msg
function M.save(path, bundle)
  local tensors = {}
  put(tensors, 'model', bundle.model:parameters())
  if bundle.encoder and (bundle.encoder.trainable or bundle.encoder.save_weights) then
    put(tensors, 'encoder', bundle.encoder:parameters())
  end
  local attrs = {
    format = M.FORMAT, format_version = M.VERSION,
    model_config = cjson.encode(bundle.model:config()),
  }
  if bundle.encoder then attrs.encoder_config = cjson.encode(bundle.encoder:config()) end
  if bundle.tokenizer then attrs.tokenizer = bundle.tokenizer:to_json() end
  if bundle.optimizer then
    local st = bundle.optimizer:state()
    for name, t in pairs(st.m or {}) do tensors['optimizer/m/' .. path_of(name)] = t end
    for name, t in pairs(st.v or {}) do tensors['optimizer/v/' .. path_of(name)] = t end
    attrs.optimizer_state = json_exact({t = st.t, lr = bundle.optimizer.lr})
  end
  if bundle.train_state then attrs.train_state = json_exact(bundle.train_state) end
  if bundle.meta then attrs.meta = cjson.encode(bundle.meta) end
  return h5.save(path, tensors, attrs)
end

local function lookup(tree, prefix, name)
  local node = tree[prefix]
  for part in name:gmatch('[^%.]+') do
    if type(node) ~= 'table' then return nil end
    node = node[part]
  end
  return node
end

-- Whole shapes, not element counts: a (5, 6) kernel must not load into a (6, 5) one.
local function same_shape(a, b)
  local sa, sb = a:shape(), b:shape()
  if #sa ~= #sb then return false end
  for i = 1, #sa do
    if sa[i] ~= sb[i] then return false end
  end
  return true
end

-- Copies saved weights into params; fails naming the first missing or mismatched tensor.
function M.load_params(file, tree, prefix, params)
  for _, p in ipairs(params) do
    local t = lookup(tree, prefix, p.name)
    if t == nil then
      return nil, string.format("%s: no weight '%s/%s' in the file (is it from another model or version?)",
        file, prefix, path_of(p.name))
    end
    if type(t) ~= 'userdata' or not same_shape(t, p.value) then
      local want = table.concat(p.value:shape(), 'x')
      local got = type(t) == 'userdata' and table.concat(t:shape(), 'x') or type(t)
      return nil, string.format("%s: weight '%s/%s' has shape %s, the model expects %s",
        file, prefix, path_of(p.name), got, want)
    end
    p.value:copy(t)
  end
  return true
end

local function decode_json(file, attrs, key, required)
  local s = attrs[key]
  if s == nil then
    if required then return nil, string.format('%s: not a luacap model file (no %s attribute)', file, key) end
    return false
  end
  local ok, v = pcall(cjson.decode, s)
  if not ok then return nil, string.format('%s: attribute %s is not valid JSON', file, key) end
  return v
end

-- load(path[, opts]) -> bundle {model=, encoder=, tokenizer=, config=, train_state=,
-- tree=, attrs=} | nil, msg. Checks the format and version first, so an old or foreign
-- file gives a message that says so.
function M.load(path, opts)
  opts = opts or {}
  local tree, attrs = h5.load(path)
  if not tree then return nil, attrs end
  if attrs.format ~= M.FORMAT then
    return nil, string.format('%s: not a luacap model file (format attribute is %s)', path,
      attrs.format and ("'" .. tostring(attrs.format) .. "'") or 'missing')
  end
  if attrs.format_version ~= M.VERSION then
    return nil, string.format('%s: model file format version %s, this luacap reads version %s',
      path, tostring(attrs.format_version), M.VERSION)
  end
  local mcfg, err = decode_json(path, attrs, 'model_config', true)
  if not mcfg then return nil, err end
  local model = require('luacap.models').build(mcfg)
  local ok, lerr = M.load_params(path, tree, 'model', model:parameters())
  if not ok then return nil, lerr end
  local bundle = {model = model, config = mcfg, tree = tree, attrs = attrs, path = path}
  local ecfg = decode_json(path, attrs, 'encoder_config', false)
  if ecfg and not opts.no_encoder then
    -- build raises on a bad config and returns nil, message on a missing or bad weights
    -- file (a vgg16 model whose Keras weights are not where they were at training)
    local eok, enc, eerr = pcall(require('luacap.encoders').build, ecfg)
    if not eok or not enc then
      return nil, string.format('%s: cannot rebuild its %s encoder: %s', path,
        tostring(ecfg.name or ecfg.type or '?'), tostring(eok and eerr or enc))
    end
    -- weights saved with the model (a trained encoder) win over the encoder's own
    if tree.encoder then
      local ok2, e2 = M.load_params(path, tree, 'encoder', enc:parameters())
      if not ok2 then return nil, e2 end
    end
    -- a model over regions (sat) reads a VGG16 conv map as L regions, as the pipeline had it
    if mcfg.regions and enc.use_regions and not enc.regions then enc:use_regions() end
    bundle.encoder = enc
  end
  if attrs.tokenizer then
    local tok = require('luacap.data.tokenizer')
    local tok_ok, t = pcall(tok.from_json, attrs.tokenizer)
    if not tok_ok or not t then return nil, path .. ': the saved tokenizer does not load: ' .. tostring(t) end
    bundle.tokenizer = t
  end
  bundle.train_state = decode_json(path, attrs, 'train_state', false) or nil
  bundle.meta = decode_json(path, attrs, 'meta', false) or nil
  bundle.optimizer_state = decode_json(path, attrs, 'optimizer_state', false) or nil
  return bundle
end

-- Restores an optimizer's moments saved by save(); names must match the parameters.
function M.restore_optimizer(bundle, optimizer, params)
  local st = bundle.optimizer_state
  if not st then return nil, bundle.path .. ': the file holds no optimizer state to resume from' end
  local m, v = {}, {}
  for _, p in ipairs(params) do
    m[p.name] = lookup(bundle.tree, 'optimizer', 'm.' .. p.name)
    v[p.name] = lookup(bundle.tree, 'optimizer', 'v.' .. p.name)
  end
  optimizer:load_state({t = st.t, m = m, v = v})
  optimizer.lr = st.lr
  return true
end

return M
