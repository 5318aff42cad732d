-- fsvc.dsp against PyTorch 1.13 values (spec/data/dsp_expected.lua, made by
-- spec/data/make_dsp_expected.py), the reference fixtures (../shared/reference/fixtures) and its
-- own whole-signal calls (streaming objects).
local dsp = fsvc.dsp
local E = dofile("spec/data/dsp_expected.lua")
local FX = "../shared/reference/fixtures/"

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

-- the deterministic signal of make_dsp_expected.py: [b, n]
local function signal(b, n, dtype)
  local rows = {}
  for r = 0, b - 1 do
    local row = {}
    for i = 0, n - 1 do row[i + 1] = math.sin(0.31 * i * (r + 1)) + 0.5 * math.cos(0.077 * i * i + r) end
    rows[r + 1] = row
  end
  return fsvc.tensor(rows, { dtype = dtype or "float64" })
end

local function T(list, shape, dtype)
  local t = fsvc.tensor(list, { dtype = dtype or "float64" })
  return shape and t:reshape(shape) or t
end

-- max |a - b| <= tol, with a message naming the error
local function near(a, b, tol, what)
  assert.are.same(b.shape, a.shape, (what or "") .. ": shapes")
  local d = fsvc.max_abs_diff(a:to("float64"), b:to("float64"))
  assert(d <= tol, string.format("%s: max abs error %.3g > %.3g", what or "values", d, tol))
  return d
end

local function maxabs(t) return t:abs():max():item() end

describe("dsp: windows and STFT (torch)", function()
  it("hann_window periodic and symmetric", function()
    near(dsp.hann_window(7, { dtype = "float64" }), T(E.hann_p), 1e-15, "periodic")
    near(dsp.hann_window(7, { periodic = false, dtype = "float64" }), T(E.hann_s), 1e-15, "symmetric")
    assert.are.equal("float32", dsp.hann_window(4).dtype)
    assert.are.equal(1, dsp.hann_window(1):item())
  end)

  it("rfft equals a direct DFT (even, odd, n = 1, batched, float64 and float32)", function()
    fsvc.manual_seed(11)
    for _, n in ipairs({ 1, 2, 7, 8, 30 }) do
      for _, dt in ipairs({ "float64", "float32" }) do
        local x = fsvc.randn({ 2, n }, { dtype = dt })
        local X = fsvc.dsp.rfft(x)
        assert.are.same({ 2, n // 2 + 1, 2 }, X.shape)
        assert.are.equal(dt, X.dtype)
        local xv, worst = x:double():tolist(), 0
        for b = 1, 2 do
          for f = 0, n // 2 do
            local re, im = 0, 0
            for k = 0, n - 1 do
              re = re + xv[b][k + 1] * math.cos(2 * math.pi * f * k / n)
              im = im - xv[b][k + 1] * math.sin(2 * math.pi * f * k / n)
            end
            worst = math.max(worst, math.abs(X:get(b - 1, f, 0) - re), math.abs(X:get(b - 1, f, 1) - im))
          end
        end
        assert(worst < (dt == "float64" and 1e-12 or 1e-5), string.format("n=%d %s: %g", n, dt, worst))
      end
    end
    assert.has_error(function() fsvc.dsp.rfft(fsvc.zeros({ 2, 3 }, { dtype = "int64" })) end,
                     "rfft: input must be float32 or float64, got int64")
    assert.has_error(function() fsvc.dsp.rfft(fsvc.zeros({ 2, 0 })) end)
  end)

  it("stft: centred reflect, [B, L] -> [B, F, T, 2], float64 and float32", function()
    local shape = { 2, 5, 11, 2 }
    local ref = T(E.stft_a, shape)
    near(dsp.stft(signal(2, 20), { n_fft = 8, hop_length = 2 }), ref, 1e-13, "float64")
    near(dsp.stft(signal(2, 20, "float32"), { n_fft = 8, hop_length = 2 }), ref, 2e-6, "float32")
    -- method form and a 1-D input drop the batch dim
    near(signal(2, 20):select(0, 1):stft { n_fft = 8, hop_length = 2 }, ref:select(0, 1), 1e-13, "1-D")
  end)

  it("stft: odd n_fft, short symmetric window, constant padding, two-sided", function()
    local w5 = dsp.hann_window(5, { periodic = false, dtype = "float64" })
    local s = dsp.stft(signal(1, 17):select(0, 0), { n_fft = 9, hop_length = 3, win_length = 5,
      window = w5, pad_mode = "constant", onesided = false })
    near(s, T(E.stft_b, { 9, 6, 2 }), 1e-13, "stft_b")
    local s32 = dsp.stft(signal(1, 17, "float32"):select(0, 0), { n_fft = 9, hop_length = 3,
      win_length = 5, window = w5:float(), pad_mode = "constant", onesided = false })
    near(s32, T(E.stft_b, { 9, 6, 2 }), 2e-6, "stft_b float32")
  end)

  it("stft: non-centred", function()
    near(dsp.stft(signal(1, 30), { n_fft = 12, hop_length = 5, center = false }),
      T(E.stft_c, { 1, 7, 4, 2 }), 1e-13, "stft_c")
  end)

  it("istft matches torch.istft and inverts stft", function()
    local spec = T(E.istft_in, E.istft_in_shape)
    near(dsp.istft(spec, { n_fft = 16, hop_length = 4, length = 37 }), T(E.istft_out, { 2, 37 }), 1e-12, "istft")
    near(dsp.istft(spec:float(), { n_fft = 16, hop_length = 4, length = 37 }), T(E.istft_out, { 2, 37 }), 2e-5, "istft f32")
    local x = fsvc.randn({ 3, 1000 })
    local y = dsp.istft(dsp.stft(x, { n_fft = 64, hop_length = 16 }), { n_fft = 64, hop_length = 16, length = 1000 })
    near(y, x, 2e-5, "round trip float32")
    local x64 = fsvc.randn({ 1000 }, { dtype = "float64" })
    near(dsp.istft(dsp.stft(x64, { n_fft = 30, hop_length = 10 }), { n_fft = 30, hop_length = 10 }), x64, 1e-12,
      "round trip float64, n_fft 30")
  end)

  it("magnitude: |X|^p with a zero gradient at 0", function()
    local s = fsvc.tensor({ { 3, 4 }, { 0, 0 }, { -1, 0 } }, { dtype = "float64", requires_grad = true })
    assert.are.same({ 5, 0, 1 }, dsp.magnitude(s):tolist())
    assert.are.same({ 25, 0, 1 }, dsp.magnitude(s, { power = 2 }):tolist())
    dsp.magnitude(s):sum():backward()
    near(s.grad, T({ { 0.6, 0.8 }, { 0, 0 }, { -1, 0 } }), 1e-15, "gradient")
  end)

  it("is fast enough on the decoder's batch (16 x 24000, n_fft 1024, hop 256)", function()
    local x = fsvc.randn({ 16, 24000 })
    local t0 = fsvc.time()
    local s = dsp.stft(x, { n_fft = 1024, hop_length = 256 })
    local dt = fsvc.time() - t0
    assert.are.same({ 16, 513, 94, 2 }, s.shape)
    -- generous bound: a shared 2-core CI machine; typically ~15-30 ms on one core
    assert(dt < 1.0, string.format("stft took %.3f s", dt))
  end)
end)

describe("dsp: mel (torchaudio formulas)", function()
  it("mel_filterbank htk / slaney with slaney norm", function()
    near(dsp.mel_filterbank { sample_rate = 8000, n_fft = 16, n_mels = 4, dtype = "float64" },
      T(E.fb_htk, { 9, 4 }), 1e-14, "htk")
    near(dsp.mel_filterbank { sample_rate = 8000, n_freqs = 17, n_mels = 5, f_min = 100, f_max = 3000,
      mel_scale = "slaney", norm = "slaney", dtype = "float64" }, T(E.fb_slaney, { 17, 5 }), 1e-14, "slaney")
    local big = dsp.mel_filterbank { sample_rate = 24000, n_fft = 1024, n_mels = 128 }
    assert.are.same({ 513, 128 }, big.shape)
    assert(math.abs(big:sum():item() - E.fb_big_sum) < 1e-3)
    near(big:sum(0), T(E.fb_big_colsum), 1e-5, "column sums")
  end)

  it("mel_spectrogram = |stft|^2 projected", function()
    local m = dsp.mel_spectrogram(signal(2, 50), { sample_rate = 8000, n_fft = 16, hop_length = 4, n_mels = 4 })
    near(m, T(E.mel, { 2, 4, 13 }), 1e-12, "mel")
  end)
end)

describe("dsp: reference fixtures", function()
  local function fixture(name)
    local path = FX .. name .. ".safetensors"
    if not exists(path) then
      print("skipping: fixture " .. path .. " is absent")
      return nil
    end
    return fsvc.load_safetensors(path)
  end

  it("spectrogram (n_fft 1920, hop 480, first frame dropped)", function()
    local t = fixture("spectrogram")
    if not t then return end
    local out = dsp.spectrogram(t["input.wave"], 1920, 480)
    -- float32 FFTs of 1920 points: relative error ~2e-7 of the largest bin
    near(out, t["output.spec"], 2e-5, "spectrogram")
  end)

  it("energy", function()
    local t = fixture("energy")
    if not t then return end
    near(dsp.energy(t["input.wave"]), t["output.energy"], 0, "energy")
  end)

  it("oscillate_harmonics (phase carried in float64; the fixture's cumsum is float32)", function()
    local t = fixture("oscillate_harmonics")
    if not t then return end
    local h, ph = dsp.oscillate_harmonics(t["input.f0"], 48, 4800, 3, { return_phase = true })
    -- float32 cumsum over 480 samples drifts by ~1e-5 cycles; measured 2.2e-5 / 3.6e-6
    near(h, t["output.harmonics"], 1e-4, "harmonics")
    -- phases compare modulo 1 (a value near 1 may wrap to 0 in the other computation)
    local d = (ph - t["output.phase"]):abs()
    d = fsvc.minimum(d, 1 - d)
    assert(maxabs(d) < 1e-4, "phase error " .. maxabs(d))
  end)

  for _, case in ipairs {
    { "loss_logmel", "log_mel_loss", 1e-6, 1e-6 },
    -- the multi-scale gradient is ill-conditioned in float32 (log of small bins): torch's own
    -- float64 gradient differs from its float32 fixture by 1.0e-4; ours (float32) by 2.7e-5
    { "loss_multiscale_stft", "multiscale_stft_loss", 1e-5, 2e-4 },
  } do
    it(case[1] .. ": value and gradient", function()
      local t = fixture(case[1])
      if not t then return end
      local x = t["input.x"]:clone()
      x.requires_grad = true
      local loss = dsp[case[2]](x, t["input.y"])
      loss:backward()
      local ref = t["output.loss"]:item()
      assert(math.abs(loss:item() - ref) <= case[3] * math.abs(ref), string.format("loss %.9g vs %.9g", loss:item(), ref))
      near(x.grad, t["grad.input.x"], case[4], case[1] .. " gradient")
    end)
  end
end)

describe("dsp: streaming equals whole-signal", function()
  local function cat_last(list)
    local dim = #list[1].shape
    return fsvc.cat(list, dim - 1)
  end

  it("Oscillator: chunks of any size + flush == oscillate_harmonics", function()
    fsvc.manual_seed(7)
    local f0 = (fsvc.rand({ 2, 1, 23 }, { dtype = "float64" }) * 300 + 50)
    f0:narrow(2, 5, 3):fill_(0) -- an unvoiced stretch
    local whole = dsp.oscillate_harmonics(f0, 480, 24000, 2)
    local osc = dsp.Oscillator { frame_size = 480, sample_rate = 24000, num_harmonics = 2 }
    local outs, pos, n = {}, 0, 0
    for _, len in ipairs { 1, 4, 0, 7, 2, 9 } do
      local y = osc:process(f0:narrow(2, pos, len))
      pos = pos + len
      n = n + y.shape[3]
      if len > 0 then
        -- everything up to the centre of the last frame received
        assert.are.equal(pos * 480 - 240, n)
      end
      outs[#outs + 1] = y
    end
    outs[#outs + 1] = osc:flush()
    local streamed = cat_last(outs)
    near(streamed, whole, 1e-12, "streamed")
    -- float32 as well
    local osc32 = dsp.Oscillator { num_harmonics = 2 }
    local a = osc32:process(f0:float():narrow(2, 0, 10))
    local b = osc32:process(f0:float():narrow(2, 10, 13))
    local c = osc32:flush()
    near(cat_last { a, b, c }, whole, 1e-5, "streamed float32")
  end)

  it("Oscillator: odd frame size", function()
    local f0 = fsvc.tensor({ { { 100, 200, 150, 120 } } }, { dtype = "float64" })
    local whole = dsp.oscillate_harmonics(f0, 5, 1000, 0)
    local osc = dsp.Oscillator { frame_size = 5, sample_rate = 1000 }
    local a = osc:process(f0:narrow(2, 0, 1))
    assert.are.equal(3, a.shape[3]) -- samples 0..2: src <= 0
    local b = osc:process(f0:narrow(2, 1, 3))
    near(cat_last { a, b, osc:flush() }, whole, 1e-12, "odd frame")
  end)

  for _, cfg in ipairs {
    { n_fft = 16, hop_length = 4 },
    { n_fft = 16, hop_length = 5, center = true },
    { n_fft = 15, hop_length = 4, center = true, pad_mode = "constant" },
    { n_fft = 12, hop_length = 12, center = true, pad_mode = "replicate" },
    { n_fft = 8, hop_length = 11 },                 -- hop > n_fft: samples between frames skipped
    { n_fft = 8, hop_length = 13, center = true },
  } do
    it(string.format("StreamSTFT n_fft %d hop %d center %s", cfg.n_fft, cfg.hop_length, tostring(cfg.center)), function()
      fsvc.manual_seed(3)
      local x = fsvc.randn({ 2, 203 })
      local whole = dsp.stft(x, {
        n_fft = cfg.n_fft, hop_length = cfg.hop_length, center = cfg.center or false, pad_mode = cfg.pad_mode,
      })
      local st = dsp.StreamSTFT(cfg)
      local outs, pos = {}, 0
      for _, len in ipairs { 3, 0, 1, 17, 40, 2, 100, 40 } do
        outs[#outs + 1] = st:process(x:narrow(1, pos, len))
        pos = pos + len
      end
      outs[#outs + 1] = st:flush()
      local got = fsvc.cat(outs, 2)
      near(got, whole, 0, "streamed frames") -- same kernel on the same samples: identical
    end)
  end

  it("StreamSTFT emits a frame as soon as its samples are in (non-centred)", function()
    local st = dsp.StreamSTFT { n_fft = 8, hop_length = 4 }
    assert.are.same({ 5, 0, 2 }, st:process(fsvc.randn(7)).shape)
    assert.are.same({ 5, 1, 2 }, st:process(fsvc.randn(1)).shape)
    assert.are.same({ 5, 1, 2 }, st:process(fsvc.randn(4)).shape)
  end)
end)

describe("dsp: pitch helpers", function()
  it("pitch_shift", function()
    local f0 = fsvc.tensor({ 0, 100, 220 }, { dtype = "float32" })
    near(dsp.pitch_shift(f0, 12), fsvc.tensor({ 0, 200, 440 }, { dtype = "float32" }), 1e-4, "octave")
    near(dsp.pitch_shift(f0, -12), fsvc.tensor({ 0, 50, 110 }, { dtype = "float32" }), 1e-4, "octave down")
  end)

  it("freq2id / id2freq (48 classes per octave from 10 Hz)", function()
    local fr = fsvc.tensor({ 0.0, 5.0, 10.0, 10.5, 55.0, 110.0, 440.0, 1000.0, 3000.0, 30000.0 }, { dtype = "float64" })
    local ids = dsp.freq2id(fr)
    assert.are.equal("int64", ids.dtype)
    local want = {}
    for i, v in ipairs(E.freq2id) do want[i] = math.tointeger(v) end
    assert.are.same(want, ids:tolist())
    local f = dsp.id2freq(fsvc.tensor({ 0, 48, 96, 511 }, { dtype = "int64" }), { dtype = "float64" })
    near(f, fsvc.tensor({ 0, 20, 40, 10 * 2 ^ (511 / 48) }, { dtype = "float64" }), 1e-9, "id2freq")
    -- round trip
    assert.are.same({ 48, 96, 300 }, dsp.freq2id(dsp.id2freq(fsvc.tensor({ 48, 96, 300 }, { dtype = "int64" }))):tolist())
  end)

  it("interpolate_f0 (linear, align_corners=False)", function()
    local f0 = fsvc.tensor({ { { 0.0, 100.0, 120.0, 0.0, 150.0, 160.0, 300.0 } } }, { dtype = "float64" })
    near(dsp.interpolate_f0(f0, 16), T(E.interp_f0, { 1, 1, 16 }), 1e-12, "up")
    near(dsp.interpolate_f0(f0, 3), T(E.interp_f0_down, { 1, 1, 3 }), 1e-12, "down")
    near(dsp.interpolate_f0(f0:reshape(-1), 16), T(E.interp_f0), 1e-12, "1-D")
  end)
end)

describe("dsp: resample and F0", function()
  it("resample keeps a sine and predicts the length", function()
    local n = 2400
    local x = fsvc.arange(n):to("float64") * (2 * math.pi * 440 / 24000)
    x = x:sin():reshape(1, n)
    local y = dsp.resample(x, 24000, 16000)
    assert.are.same({ 1, 1600 }, y.shape)
    assert.are.equal("float64", y.dtype)
    local ref = (fsvc.arange(1600):to("float64") * (2 * math.pi * 440 / 16000)):sin()
    -- away from the edges the band-limited resampler is exact to ~1e-4
    near(y:select(0, 0):narrow(0, 100, 1400), ref:narrow(0, 100, 1400), 1e-3, "sine")
    assert.are.same({ 3, 2, 1200 }, dsp.resample(fsvc.randn(3, 2, 2400), 48000, 24000).shape)
  end)

  it("harvest / dio agree with WORLD on a fixture signal", function()
    local base = FX .. "f0/02_tone_low_24k"
    if not exists(base .. ".wav") then
      print("skipping: " .. base .. ".wav is absent")
      return
    end
    local x, sr = fsvc.audio.load(base .. ".wav")
    assert.are.equal(24000, sr)
    for _, m in ipairs { "harvest", "dio" } do
      local f0 = dsp[m](x, sr, { f0_floor = 71, f0_ceil = 800, frame_period = 5 })
      assert.are.equal("float64", f0.dtype)
      local ref = {}
      for line in io.lines(base .. "." .. m .. ".txt") do
        local _, v = line:match("(%S+)%s+(%S+)")
        ref[#ref + 1] = tonumber(v)
      end
      assert.are.equal(#ref, f0.shape[1])
      local worst = 0
      for i, v in ipairs(ref) do
        local g = f0:get(i - 1)
        assert.are.equal(v > 0, g > 0, m .. ": voicing differs at frame " .. (i - 1))
        if v > 0 then worst = math.max(worst, math.abs(g - v) / v) end
      end
      assert(worst < 1e-3, string.format("%s: worst relative error %.3g", m, worst))
    end
  end)
end)
