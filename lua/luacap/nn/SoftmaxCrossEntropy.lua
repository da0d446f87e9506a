-- SoftmaxCrossEntropy: the loss of a softmax output on integer targets, fused on
-- csrc/nn/xent.c: loss = mean over (unmasked) rows of -log softmax(logits)[target], via
-- log-sum-exp; this is Keras' categorical_crossentropy on one-hot targets after a softmax
-- layer (Keras reads the logits in that case). Takes logits, never probabilities.
local core = require 'luacap.core'
local T = require 'luacap.tensor'
local Module = require 'luacap.nn.Module'

local unpack = table.unpack or unpack

local SoftmaxCrossEntropy = Module:extend('SoftmaxCrossEntropy')

-- loss = crit:forward(logits, targets[, mask]): logits (B, V) or (B, T, V); targets (B) or
-- (B, T) ids in [0, V-1] (class id+1 in 1-based terms); mask targets' shape, 1 real, 0
-- padding. Returns a number; keeps self.probs (logits' shape) and self.count.
function SoftmaxCrossEntropy:forward(logits, targets, mask)
  self.probs = T.ensure(self.probs, unpack(logits:shape()))
  local loss, count = core.xent_forward(self.probs, logits, targets, mask)
  self.targets, self.mask, self.count = targets, mask, count
  self.loss = loss
  return loss
end

-- loss = crit:forward_weighted(logits, targets, weights, norm): per-row weights of any sign
-- (weights shaped as targets) over a fixed normaliser norm > 0:
--   loss = sum_i w_i * -log softmax(logits_i)[t_i] / norm
-- (self-critical training: w = r - b per token of a sampled caption, norm = the samples).
-- backward() then gives w_i * (softmax - onehot) / norm.
function SoftmaxCrossEntropy:forward_weighted(logits, targets, weights, norm)
  self.probs = T.ensure(self.probs, unpack(logits:shape()))
  local loss = core.xent_weighted_forward(self.probs, logits, targets, weights, norm)
  self.targets, self.mask, self.count = targets, weights, norm
  self.loss = loss
  return loss
end

-- dlogits = w * (softmax - onehot) / count for the last forward (count = unmasked rows).
function SoftmaxCrossEntropy:backward()
  if not self.targets then
    error('SoftmaxCrossEntropy: backward called before forward', 2)
  end
  self.dlogits = T.ensure(self.dlogits, unpack(self.probs:shape()))
  core.xent_backward(self.dlogits, self.probs, self.targets, self.mask, self.count)
  return self.dlogits
end

-- Softmax probabilities of logits, without a loss (a fresh tensor, not self.probs).
function SoftmaxCrossEntropy:predict(logits)
  local probs = T.zeros(unpack(logits:shape()))
  core.xent_forward(probs, logits)
  return probs
end

return SoftmaxCrossEntropy
