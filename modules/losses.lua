-- Losses of the FasterSVC training (reference: module/loss.py, train_pe.py, train_dec.py of
-- uthree/fastersvc; FASTERSVC.md "Losses").
--
--   local losses = require "modules.losses"
--   losses.log_mel(fake, real)                 mean |log mel(fake) - log mel(real)| (fsvc.dsp)
--   losses.multiscale_stft(fake, real)         hops 16..512, n_fft 4 hop (fsvc.dsp)
--   losses.cross_entropy(logits, labels, w)    PyTorch's CrossEntropyLoss(weight), mean reduction:
--                                              sum_i w[y_i] nll_i / sum_i w[y_i]
--   losses.pitch_class_weights(C)              0.005 for class 0 (unvoiced), 1 elsewhere
--   losses.discriminator_adversarial(real_logits, fake_logits)   LSGAN, the reference's labels:
--                                              sum over sub-discriminators of
--                                              mean(D(real)^2) + mean((D(fake) - 1)^2)
--   losses.generator_adversarial(fake_logits)  sum of mean(D(fake)^2)
--   losses.feature_matching(real_feats, fake_feats)  sum of mean |f_real - f_fake| (optional)
local fsvc = require "fsvc"
local F = fsvc.nn.functional

local losses = {}

function losses.log_mel(fake, real) return fsvc.dsp.log_mel_loss(fake, real) end

function losses.multiscale_stft(fake, real) return fsvc.dsp.multiscale_stft_loss(fake, real) end

-- logits [B, C, T], labels int64 [B, T], weight [C] or nil
function losses.cross_entropy(logits, labels, weight)
  return F.cross_entropy(logits, labels, { weight = weight })
end

function losses.pitch_class_weights(num_classes, dtype)
  local w = fsvc.ones({ num_classes }, { dtype = dtype or "float32" })
  w:set(0.005, 0)
  return w
end

local function sum_list(list)
  local total
  for _, v in ipairs(list) do total = total and total + v or v end
  return total
end

function losses.discriminator_adversarial(real_logits, fake_logits)
  local terms = {}
  for i = 1, #real_logits do
    terms[#terms + 1] = (real_logits[i] ^ 2):mean() + ((fake_logits[i] - 1) ^ 2):mean()
  end
  return sum_list(terms)
end

function losses.generator_adversarial(fake_logits)
  local terms = {}
  for i = 1, #fake_logits do terms[#terms + 1] = (fake_logits[i] ^ 2):mean() end
  return sum_list(terms)
end

function losses.feature_matching(real_feats, fake_feats)
  local terms = {}
  for i = 1, #real_feats do
    terms[#terms + 1] = (real_feats[i]:detach() - fake_feats[i]):abs():mean()
  end
  return sum_list(terms)
end

return losses
