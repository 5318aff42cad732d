-- A first conversion entry point built from the networks (the reference's module/convertor.py):
--   z = match_features(CE.encode(wave), target); e = energy(wave); f0 = PE.estimate(wave)
--   (or a given track); f0 * 2^(pitch_shift/12); y = decoder.synthesize(z, f0, e).
--
--   local Convertor = require "modules.convertor"
--   local cv = Convertor.new{ pitch_estimator = pe, content_encoder = ce, decoder = dec }
--   local target = cv:encode_target(target_wave)                 -- [1, 768, T/4]
--   local y = cv:convert(wave, target, {pitch_shift = 0, alpha = 0, k = 4, metric = "cos"})
--   -- also Convertor.convert(models, wave, target, opts)
-- wave [B, L] at 24 kHz with L a multiple of 480 (it is right-padded with zeros otherwise and the
-- output is cut back to L). opts.f0 [B, 1, T] replaces the pitch estimator's track.
local fsvc = require "fsvc"
local knn = require "modules.knn"

local Convertor = {}
Convertor.__index = Convertor

function Convertor.new(models)
  assert(models and models.content_encoder and models.decoder,
    "Convertor.new: needs {content_encoder, decoder, pitch_estimator (unless f0 is given)}")
  return setmetatable({ pitch_estimator = models.pitch_estimator,
    content_encoder = models.content_encoder, decoder = models.decoder }, Convertor)
end

function Convertor:encode_target(wave, opts)
  return knn.encode_target(self.content_encoder, wave, opts)
end

function Convertor:convert_impl(wave, target, opts)
  opts = opts or {}
  return fsvc.no_grad(function()
    if wave.ndim == 1 then wave = wave:unsqueeze(0) end
    local L = wave.shape[2]
    local frame = self.decoder.frame_size
    local rem = L % frame
    if rem ~= 0 then wave = fsvc.pad(wave, { 0, frame - rem }) end
    local z = self.content_encoder:encode(wave)
    if target then
      if target.ndim == 2 then target = target:unsqueeze(0) end
      if target.shape[1] ~= z.shape[1] then target = target:expand(z.shape[1], target.shape[2], target.shape[3]) end
      -- a short target has fewer than k frames: use them all
      z = knn.match_features(z, target, { k = math.min(opts.k or 4, target.shape[3]), alpha = opts.alpha or 0,
        metric = opts.metric or "cos" })
    end
    local e = fsvc.dsp.energy(wave, frame)
    local f0 = opts.f0 or self.pitch_estimator:estimate(wave)
    if opts.pitch_shift and opts.pitch_shift ~= 0 then f0 = f0 * 2 ^ (opts.pitch_shift / 12) end
    local y = self.decoder:synthesize(z, f0, e)
    if rem ~= 0 then y = y:narrow(1, 0, L) end
    return y
  end)
end

-- cv:convert(wave, target, opts) on an instance, or Convertor.convert(models, wave, target, opts)
function Convertor.convert(self_or_models, wave, target, opts)
  local cv = self_or_models
  if getmetatable(cv) ~= Convertor then cv = Convertor.new(self_or_models) end
  return cv:convert_impl(wave, target, opts)
end

return Convertor
