-- ContentEncoder: the same spectrogram CNN as the pitch estimator, distilled from HuBERT-base's
-- 4th layer; output 1x1 conv WITHOUT bias to `output_channels` (768).
-- Reference: module/content_encoder.py of uthree/fastersvc; FASTERSVC.md "Content encoder".
--
--   local ContentEncoder = require "modules.content_encoder"
--   local ce = ContentEncoder{ }                 -- defaults: 8 236 032 parameters
--   local z = ce:encode(wave)                    -- wave [B, L] -> [B, 768, L/480]
local fsvc = require "fsvc"
local nn = fsvc.nn
local common = require "modules.common"

local ContentEncoder = nn.Module:extend("ContentEncoder")

ContentEncoder.defaults = {
  n_fft = 1920, hop_size = 480, internal_channels = 512, kernel_size = 5,
  dilations = { 1, 3, 9, 1 }, output_channels = 768,
}

function ContentEncoder:init(cfg)
  cfg = common.config(ContentEncoder.defaults, cfg)
  self.config = cfg
  self.n_fft, self.hop_size = cfg.n_fft, cfg.hop_size
  local C = cfg.internal_channels
  self.input_layer = nn.Conv1d(cfg.n_fft // 2 + 1, C, 1)
  local blocks = {}
  for i, d in ipairs(cfg.dilations) do
    blocks[i] = common.ResBlock(C, cfg.kernel_size, d, { norm = true, mlp_mul = 1 })
  end
  self.res_stack = nn.Sequential(table.unpack(blocks))
  self.output_layer = nn.Conv1d(C, cfg.output_channels, 1, { bias = false })
end

-- spec [B, n_fft/2+1, T] -> [B, output_channels, T]
function ContentEncoder:forward(spec)
  return self.output_layer(self.res_stack(self.input_layer(spec)))
end

-- wave [B, L] -> content features [B, output_channels, L/hop]
function ContentEncoder:encode(wave)
  return self:forward(fsvc.dsp.spectrogram(wave, self.n_fft, self.hop_size))
end

return ContentEncoder
