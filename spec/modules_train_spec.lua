-- modules/: each network trains. A few AdamW steps on a fixed tiny batch (small configs, seconds)
-- with the reference's objective must lower the loss:
--   pitch estimator: weighted cross-entropy (class 0 weighted 0.005) against fixed labels;
--   content encoder: L1 to a fixed random target;
--   decoder: log-mel L1 against a fixed waveform (fixed source signal, so the batch is fixed);
--   discriminator: LSGAN steps (real -> 0, fake -> 1, the reference's labels).
local nn = fsvc.nn
local optim = fsvc.optim
local PitchEstimator = require "modules.pitch_estimator"
local ContentEncoder = require "modules.content_encoder"
local Decoder = require "modules.decoder"
local Discriminator = require "modules.discriminator"
local losses = require "modules.losses"
local common = require "modules.common"

local small = { n_fft = 128, hop_size = 32, internal_channels = 24, kernel_size = 5,
  dilations = { 1, 3, 9, 1 } }

-- runs `steps` AdamW steps of loss_fn() on net; returns the first and last losses
local function train(net, loss_fn, steps, opts)
  opts = opts or {}
  local opt = optim.AdamW(net:parameters(), { lr = opts.lr or 1e-3, betas = opts.betas })
  local first, last
  for i = 1, steps do
    opt:zero_grad()
    local loss = loss_fn()
    loss:backward()
    nn.utils.clip_grad_norm_(net:parameters(), opts.clip or 1.0)
    opt:step()
    last = loss:item()
    if i == 1 then first = last end
  end
  -- the loss after the last step
  last = fsvc.no_grad(loss_fn):item()
  return first, last
end

-- a voiced-looking test signal: a few harmonics with a slow vibrato, plus a little noise
local function test_wave(B, L, sr)
  local t = fsvc.arange(L, { dtype = "float32" }) / sr
  local rows = {}
  for b = 1, B do
    local f = 110 * b
    local x = (t * (2 * math.pi * f)):sin() * 0.5 + (t * (4 * math.pi * f)):sin() * 0.2
    rows[b] = x + fsvc.randn(L) * 0.01
  end
  return fsvc.stack(rows, 0)
end

describe("modules: training on a fixed tiny batch lowers the loss", function()
  it("pitch estimator, weighted cross-entropy", function()
    fsvc.manual_seed(10)
    local pe = PitchEstimator(common.config(small, { output_channels = 40 }))
    local wave = fsvc.randn(2, 640)
    local labels = fsvc.randint(0, 40, { 2, 20 })
    local w = losses.pitch_class_weights(40)
    local first, last = train(pe, function() return losses.cross_entropy(pe:logits(wave), labels, w) end, 15)
    assert.is_true(last < 0.7 * first, string.format("loss %.4f -> %.4f", first, last))
  end)

  it("content encoder, L1 to a random target", function()
    fsvc.manual_seed(11)
    local ce = ContentEncoder(common.config(small, { output_channels = 32 }))
    local wave = fsvc.randn(2, 640)
    local target = fsvc.randn(2, 32, 20)
    local first, last = train(ce, function() return (ce:encode(wave) - target):abs():mean() end, 15)
    assert.is_true(last < 0.9 * first, string.format("loss %.4f -> %.4f", first, last))
  end)

  it("decoder, log-mel L1", function()
    fsvc.manual_seed(12)
    local dec = Decoder { channels = { 16, 12, 8 }, factors = { 2, 3, 4 }, cond_channels = { 16, 12, 8 },
      num_harmonics = 1, content_channels = 20, sample_rate = 2400, frame_size = 24 }
    local T = 50
    local real = test_wave(2, 24 * T, 2400)
    local x = fsvc.randn(2, 20, T)
    local f0 = fsvc.full({ 2, 1, T }, 110)
    local e = fsvc.dsp.energy(real, 24)
    local src = fsvc.no_grad(function() return dec:generate_source(f0) end)
    local first, last = train(dec, function() return losses.log_mel(dec(x, f0, e, src), real) end, 15,
      { lr = 3e-3, betas = { 0.8, 0.99 } })
    assert.is_true(last < 0.9 * first, string.format("loss %.4f -> %.4f", first, last))
  end)

  it("discriminator, LSGAN", function()
    fsvc.manual_seed(13)
    local d = Discriminator { scales = { 1, 2 }, periods = { 2, 3 }, mpd_num_layers = 2, msd_num_layers = 3,
      mpd_channels = 4, msd_channels = 8, mpd_max_channels = 16, msd_max_channels = 32 }
    local real = test_wave(2, 600, 2400)
    local fake = fsvc.randn(2, 600) * 0.3
    local function loss()
      local real_logits = d(real)
      local fake_logits = d(fake)
      return losses.discriminator_adversarial(real_logits, fake_logits)
    end
    local first, last = train(d, loss, 3, { lr = 1e-3, betas = { 0.8, 0.99 } })
    assert.is_true(last < first, string.format("loss %.4f -> %.4f", first, last))
  end)
end)
