-- Decoder: source-filter vocoder. A harmonic + noise source signal is downsampled by a stack of
-- Downsample blocks (skips at L/5 ... L/480); content features, conditioned by log-f0 and energy
-- through a FiLM, are upsampled back to the sample rate, each Upsample conditioned on one skip.
-- Reference: module/decoder.py of uthree/fastersvc; FASTERSVC.md "Decoder".
--
--   local Decoder = require "modules.decoder"
--   local dec = Decoder{ }                              -- defaults: 6 396 673 parameters
--   local y = dec:synthesize(z, f0, e)                  -- z [B,768,T], f0/e [B,1,T] -> [B, 480T]
--   local src = dec:generate_source(f0)                 -- [B, num_harmonics+2, 480T]
--   local src = dec:generate_source(f0, noise)          -- with a given noise channel [B, 1, 480T]
--   local y = dec(z, f0, e, src)                        -- forward with a given source
local fsvc = require "fsvc"
local nn = fsvc.nn
local common = require "modules.common"

local Decoder = nn.Module:extend("Decoder")

Decoder.defaults = {
  channels = { 384, 192, 96, 48, 24 }, factors = { 2, 3, 4, 4, 5 },
  cond_channels = { 384, 192, 96, 48, 24 }, num_harmonics = 0, content_channels = 768,
  sample_rate = 24000, frame_size = 480, min_frequency = 10,
}

local function reversed(t)
  local r = {}
  for i = #t, 1, -1 do r[#r + 1] = t[i] end
  return r
end

function Decoder:init(cfg)
  cfg = common.config(Decoder.defaults, cfg)
  self.config = cfg
  self.num_harmonics, self.sample_rate, self.frame_size = cfg.num_harmonics, cfg.sample_rate,
      cfg.frame_size
  local channels, factors, cond_channels = cfg.channels, cfg.factors, cfg.cond_channels
  local n = #channels
  assert(#factors == n and #cond_channels == n,
    "Decoder: channels, factors and cond_channels must have the same length")
  local prod = 1
  for _, f in ipairs(factors) do prod = prod * f end
  assert(prod == cfg.frame_size, string.format(
    "Decoder: the product of factors (%d) must equal frame_size (%d)", prod, cfg.frame_size))

  -- source path: [B, H+2, L] -> cond_channels[n] -> ... (factors reversed)
  self.down_input = nn.Conv1d(cfg.num_harmonics + 2, cond_channels[n], 1)
  local cond = reversed(cond_channels)
  local cond_next = {}
  for i = 2, n do cond_next[#cond_next + 1] = cond[i] end
  cond_next[#cond_next + 1] = cond[n]
  local rfactors = reversed(factors)
  local downs = {}
  for i = 1, n do downs[i] = common.Downsample(cond[i], cond_next[i], rfactors[i]) end
  self.downs = nn.ModuleList(downs)

  self.content_in = nn.Conv1d(cfg.content_channels, channels[1], 1)
  self.energy_in = nn.Conv1d(1, cond_channels[1], 1)
  self.pitch_in = nn.Conv1d(1, cond_channels[1], 1)
  self.film = common.FiLM(channels[1], cond_channels[1])

  -- filter path: channels[i] -> channels[i+1], conditioned on the skips in reverse order
  local up_next = {}
  for i = 2, n do up_next[#up_next + 1] = channels[i] end
  up_next[#up_next + 1] = channels[n]
  local rcond_next = reversed(cond_next)
  local ups = {}
  for i = 1, n do ups[i] = common.Upsample(channels[i], up_next[i], rcond_next[i], factors[i]) end
  self.ups = nn.ModuleList(ups)
  self.output_layer = common.DCC(channels[n], 1, 3, 1)
end

-- f0 [B, 1, T] Hz -> source [B, num_harmonics+2, T*frame_size]: harmonics of f0 (sin of the
-- integrated phase, masked where f0 < min_frequency) and one channel of white noise N(0, 1).
-- noise (optional, [B, 1, L] on p's device): the noise channel to use instead of a fresh draw
-- (a CUDA graph takes it from a static buffer: an upload cannot be captured)
function Decoder:generate_source(p, noise)
  local h = fsvc.dsp.oscillate_harmonics(p, self.frame_size, self.sample_rate, self.num_harmonics,
    { min_frequency = self.config.min_frequency })
  if not noise then
    -- drawn from the CPU generator whatever the device, so a seed gives the same source on every
    -- device; then moved next to the harmonics
    noise = fsvc.randn({ p.shape[1], 1, h.shape[3] }, { dtype = h.dtype })
    if h.device ~= noise.device then noise = noise:to(h.device) end
  end
  return fsvc.cat({ h, noise }, 1)
end

-- x content [B, Cc, T], p f0 [B, 1, T] (Hz), e energy [B, 1, T], source [B, H+2, L] -> [B, L]
function Decoder:forward(x, p, e, source_signals)
  local skips = {}
  local src = self.down_input(source_signals)
  for i = 1, #self.downs do
    src = self.downs[i](src)
    skips[i] = src
  end
  x = self.content_in(x)
  local c = self.pitch_in(fsvc.log(p:abs() + 1e-6)) + self.energy_in(e)
  x = self.film(x, c)
  for i = 1, #self.ups do
    x = self.ups[i](x, skips[#skips - i + 1])
  end
  return self.output_layer(x):squeeze(1)
end

-- content, f0, energy -> waveform [B, T*frame_size] with a freshly generated source
function Decoder:synthesize(x, p, e)
  return self:forward(x, p, e, self:generate_source(p))
end

return Decoder
