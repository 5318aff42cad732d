-- PitchEstimator: a 1-D CNN over the magnitude spectrogram that classifies each 20 ms frame into
-- one of `output_channels` pitch classes (class i <-> 10 * 2^(i/48) Hz; class 0 = unvoiced).
-- Reference: module/pitch_estimator.py of uthree/fastersvc; FASTERSVC.md "Pitch estimator".
--
--   local PitchEstimator = require "modules.pitch_estimator"
--   local pe = PitchEstimator{ }                 -- defaults: 8 105 472 parameters
--   local logits = pe:logits(wave)               -- wave [B, L] -> [B, 512, L/480]
--   local f0 = pe:estimate(wave)                 -- [B, 1, L/480] in Hz (0 = unvoiced)
--
-- Keys: input_layer.{weight,bias}, res_stack.N.{c1.conv,norm,c2,c3}.*, output_layer.{weight,bias}.
local fsvc = require "fsvc"
local nn = fsvc.nn
local common = require "modules.common"

local PitchEstimator = nn.Module:extend("PitchEstimator")

PitchEstimator.defaults = {
  n_fft = 1920, hop_size = 480, internal_channels = 512, kernel_size = 5,
  dilations = { 1, 3, 9, 1 }, output_channels = 512, f0_min = 10, top_k = 4,
}

function PitchEstimator:init(cfg)
  cfg = common.config(PitchEstimator.defaults, cfg)
  self.config = cfg
  self.n_fft, self.hop_size = cfg.n_fft, cfg.hop_size
  self.output_channels = cfg.output_channels
  self.f0_min = cfg.f0_min
  local C = cfg.internal_channels
  self.input_layer = nn.Conv1d(cfg.n_fft // 2 + 1, C, 1)
  self.output_layer = nn.Conv1d(C, cfg.output_channels, 1)
  local blocks = {}
  for i, d in ipairs(cfg.dilations) do
    blocks[i] = common.ResBlock(C, cfg.kernel_size, d, { norm = true, mlp_mul = 1 })
  end
  self.res_stack = nn.Sequential(table.unpack(blocks))
end

-- spec [B, n_fft/2+1, T] -> logits [B, output_channels, T]
function PitchEstimator:forward(spec)
  return self.output_layer(self.res_stack(self.input_layer(spec)))
end

-- wave [B, L] -> logits [B, output_channels, L/hop]
function PitchEstimator:logits(wave)
  return self:forward(fsvc.dsp.spectrogram(wave, self.n_fft, self.hop_size))
end

-- class ids (any shape, integer-valued) -> Hz, with frequencies <= f0_min set to 0 (unvoiced)
function PitchEstimator:id2freq(ids)
  local f = fsvc.pow(2, ids:to("float32") / 48) * 10
  return fsvc.where(f:le(self.f0_min), 0, f)
end

-- Hz -> class ids (int64): round(clamp(48 log2(f/10), 0, C-1)); f = 0 maps to class 0
function PitchEstimator:freq2id(f)
  local x = (fsvc.log(f / 10 + 1e-30) * (48 / math.log(2))):clamp(0, self.output_channels - 1)
  -- x >= 0, so truncation of x + 0.5 rounds (halves go up where torch.round goes to even; the
  -- F0 tracks never land on exact halves)
  return (x + 0.5):to("int64")
end

-- wave [B, L] -> f0 [B, 1, L/hop] Hz: softmax over the top-k logits of each frame, expected
-- frequency of those k classes; an estimate <= f0_min is unvoiced (0). No gradient.
function PitchEstimator:estimate(wave, k)
  k = k or self.config.top_k
  return fsvc.no_grad(function()
    local logits = self:logits(wave)
    local values, ids = logits:topk(k, 1)
    local p = values:softmax(1)
    local f0 = (p * self:id2freq(ids):to(p.dtype)):sum(1, true)
    return fsvc.where(f0:le(self.f0_min), 0, f0)
  end)
end

return PitchEstimator
