-- PositionalEncoding: the Transformer's fixed sinusoids ("Attention Is All You Need" 3.5),
--   out[b, t, :] = scale * x[b, t, :] + PE[t, :],  PE[t, 2i] = sin(t / 10000^(2i/D)),
--   PE[t, 2i+1] = cos(t / 10000^(2i/D)), t = 0 .. T-1 (column positions of the padded row).
-- scale is sqrt(D) in the paper (embeddings are multiplied by it). No parameters; not learned.
local core = require 'luacap.core'
local T = require 'luacap.tensor'
local Module = require 'luacap.nn.Module'

local PE = Module:extend('PositionalEncoding')

-- PositionalEncoding(D, {scale = 1, name = 'positional_encoding'})
function PE:init(D, opts)
  opts = opts or {}
  assert(type(D) == 'number' and D >= 1 and D % 1 == 0,
    'PositionalEncoding: width D must be a positive integer, got ' .. tostring(D))
  self.D = D
  self.scale = opts.scale or 1
  self.name = opts.name or 'positional_encoding'
end

-- The (T, D) table of sinusoids, built once per T.
function PE:table(Tn)
  if self.pe and self.pe:size(1) == Tn then return self.pe end
  local flat, D = {}, self.D
  for t = 0, Tn - 1 do
    for i = 0, D - 1 do
      local angle = t / 10000 ^ ((i - i % 2) / D)
      flat[t * D + i + 1] = i % 2 == 0 and math.sin(angle) or math.cos(angle)
    end
  end
  self.pe = core.from_flat(flat, {Tn, D})
  return self.pe
end

function PE:forward(x)                     -- x (B, T, D) -> out (B, T, D)
  if x:dim() ~= 3 or x:size(3) ~= self.D then
    error(string.format('%s %s: x has shape (%s), expected (B, T, %d)', self.__name, self.name,
      table.concat(x:shape(), ', '), self.D), 2)
  end
  local B, Tn = x:size(1), x:size(2)
  local pe = self:table(Tn)
  self.out = T.ensure(self.out, B, Tn, self.D)
  for b = 1, B do self.out:narrow(b, 1):copy(pe) end
  self.out:add(x, self.scale)
  return self.out
end

function PE:backward(x, dout)              -- dx = scale * dout
  self.dx = T.ensure(self.dx, x:size(1), x:size(2), self.D)
  return self.dx:copy(dout):scale(self.scale)
end

return PE
